"""What metrics.json says of a run that resumed: the curve starts at the base model's eval loss however the run
started, and the run's wall time covers the training before the resume, as its training time does."""

from __future__ import annotations

import time

from transformers import TrainerCallback

from tests.helpers import quick
from tests.training.test_preemption import trainers_warned_by
from training.recipes import compose
from training.train import train


def test_a_run_that_always_resumes_records_the_base_models_eval_loss_on_its_first_start(tmp_path):
    """A SLURM recipe sets resume=true for its first start too (and a run killed before its first checkpoint starts
    again under it): the eval loss at step 0 was never taken, so first_eval_loss and the card's "eval loss: first ->
    last" began at eval_steps. Resumed from a checkpoint, the run takes no second eval at the step it resumes at."""
    out = tmp_path / "run"
    common = [f"output_dir={out}", "method.eval_steps=2", "method.save_steps=2", "resume=true"]
    first = train(compose(quick(*common, "method.max_steps=2")))
    assert [step for step, _ in first.metrics["eval_loss_curve"]] == [0, 2]
    resumed = train(compose(quick(*common, "method.max_steps=4")))
    assert [step for step, _ in resumed.metrics["eval_loss_curve"]] == [0, 2, 4]
    assert resumed.metrics["first_eval_loss"] == first.metrics["first_eval_loss"]


class SlowSteps(TrainerCallback):
    """Each optimizer step takes a second more: the first segment trains for longer than the second one loads."""

    def on_step_end(self, args, state, control, **kwargs):
        time.sleep(1.0)


def test_a_resumed_runs_wall_time_covers_the_training_before_the_resume(tmp_path, monkeypatch):
    """wall_time_s counted only the last segment while train_runtime_s summed them all: a resumed run said it took
    less wall time than it trained."""
    common = [f"output_dir={tmp_path / 'run'}", "method.save_steps=8", "data.eval_ratio=0"]
    trainers_warned_by(monkeypatch, SlowSteps())
    first = train(compose(quick(*common, "method.max_steps=8")))
    trainers_warned_by(monkeypatch, None)
    began = time.time()
    resumed = train(compose(quick(*common, "method.max_steps=9", "resume=true")))
    segment = time.time() - began  # the second segment's wall time, and a little more
    metrics = resumed.metrics
    assert metrics["global_step"] == 9 and first.metrics["train_runtime_s"] >= 8
    assert metrics["train_runtime_s"] > first.metrics["train_runtime_s"]
    assert metrics["wall_time_s"] >= metrics["train_runtime_s"]
    assert metrics["wall_time_s"] > segment + first.metrics["train_runtime_s"] / 2  # the first segment's 8 s count
