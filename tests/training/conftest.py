"""Shared fixtures of tests/training: a `kosov serve` of tiny-ko on a free port, one per module (test_serve_*)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def server():
    from training.config import KosovConfig
    from training.serve import ServeConfig, start_in_thread

    url, stop = start_in_thread(KosovConfig(), ServeConfig(port=0))
    yield url
    stop()
