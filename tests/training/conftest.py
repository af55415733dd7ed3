"""Shared fixtures of tests/training: a `kosov serve` of tiny-ko on a free port, one per module (test_serve_*), and
a local stand-in for a hosted OpenAI API (`hosted`, test_synth*), and a recording SIGTERM handler in place of the
default one (`before`, test_preemption*)."""

from __future__ import annotations

import signal

import pytest


@pytest.fixture(scope="module")
def server():
    from training.config import KosovConfig
    from training.serve import ServeConfig, start_in_thread

    url, stop = start_in_thread(KosovConfig(), ServeConfig(port=0))
    yield url
    stop()


@pytest.fixture(params=[True])
def hosted(request, monkeypatch):
    """Refuses request arguments it does not know (chat_template_kwargs; not with params=[False]), a prompt with
    LONG (over its context) and any key but sk-test-key."""
    from tests.data_tools.teacher_helpers import StrictOpenAI

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    fake = StrictOpenAI(key="sk-test-key", refuse_unknown=request.param)
    yield fake
    fake.close()


@pytest.fixture
def before():
    """What SIGTERM did before kosov's handler: here, a recording one (the default would end pytest)."""
    calls = []
    old = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
    yield calls
    signal.signal(signal.SIGTERM, old)
