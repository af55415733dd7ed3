"""SIGTERM handling (training/preemption.py): the SIGTERM a launcher passes on (torchrun / accelerate launch forward
the one SLURM sent the whole job step, so each worker gets it twice) must not cost the checkpoint; a SIGTERM sent
well after the first still stops the job at once."""

from __future__ import annotations

import os
import signal

import pytest

from training import preemption
from training.preemption import StopOnSigterm


@pytest.fixture
def before():
    """What SIGTERM did before kosov's handler: here, a recording one (the default would end pytest)."""
    calls = []
    old = signal.signal(signal.SIGTERM, lambda signum, frame: calls.append(signum))
    yield calls
    signal.signal(signal.SIGTERM, old)


def test_a_sigterm_passed_on_by_the_launcher_still_ends_with_the_checkpoint(before):
    stop = StopOnSigterm()
    os.kill(os.getpid(), signal.SIGTERM)  # SLURM's, to the worker
    os.kill(os.getpid(), signal.SIGTERM)  # the same one, passed on by the elastic agent
    assert stop.asked and before == [] and stop.installed  # still saving; a kill now would lose the step
    stop.restore()


def test_a_second_sigterm_well_after_the_first_stops_at_once(before, monkeypatch):
    clock = iter([100.0, 100.0 + preemption.REPEAT_S + 1])
    monkeypatch.setattr(preemption.time, "monotonic", lambda: next(clock))
    stop = StopOnSigterm()
    os.kill(os.getpid(), signal.SIGTERM)
    assert stop.asked and before == []
    os.kill(os.getpid(), signal.SIGTERM)  # the user means it: what SIGTERM did before kosov's handler
    assert before == [signal.SIGTERM] and not stop.installed


def test_a_run_stopped_early_spends_its_grace_period_on_the_checkpoint_not_the_eval_suite():
    from types import SimpleNamespace

    from training.evaluation.callback import SuiteCallback

    suite = SuiteCallback.__new__(SuiteCallback)  # only on_train_end's decision is under test here
    ran = []
    suite._run = lambda state, model: ran.append(state.global_step)
    suite.on_train_end(None, SimpleNamespace(global_step=7, max_steps=40), None)  # SIGTERM at step 7
    suite.on_train_end(None, SimpleNamespace(global_step=40, max_steps=40), None)  # the end of training
    assert ran == [40]
