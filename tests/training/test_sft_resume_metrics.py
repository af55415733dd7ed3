"""What metrics.json says of a run that resumed: the curve starts at the base model's eval loss however the run
started, and the run's wall time covers every segment before the resume, its loading included."""

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


SLOW_LOAD_S = 4.0


def test_a_resumed_runs_wall_time_covers_the_loading_of_the_segments_before_it(tmp_path, monkeypatch):
    """wall_time_s added the earlier segments' training seconds only: a segment that spent minutes loading an 8B base
    (or waiting for a SLURM node's disk) before its first step was missing from the resumed run's wall time. Each
    checkpoint records the run's wall time up to it, loading included."""
    import training.train as T

    common = [f"output_dir={tmp_path / 'run'}", "method.save_steps=4", "data.eval_ratio=0"]
    load = T.load_base_model

    def slow_load(*args, **kwargs):
        time.sleep(SLOW_LOAD_S)
        return load(*args, **kwargs)

    monkeypatch.setattr(T, "load_base_model", slow_load)
    first = train(compose(quick(*common, "method.max_steps=4")))
    monkeypatch.setattr(T, "load_base_model", load)
    assert first.metrics["wall_time_s"] > SLOW_LOAD_S + first.metrics["train_runtime_s"]
    began = time.time()
    resumed = train(compose(quick(*common, "method.max_steps=5", "resume=true")))
    segment = time.time() - began  # the second segment's wall time, and a little more
    # the first segment's wall time up to its checkpoint at step 4 (all of it but its final save and metrics)
    assert resumed.metrics["wall_time_s"] > segment + SLOW_LOAD_S + first.metrics["train_runtime_s"]
    assert resumed.metrics["wall_time_s"] < segment + first.metrics["wall_time_s"]


def test_a_checkpoint_cut_short_is_skipped_with_one_warning_and_the_run_resumes_from_the_one_before(tmp_path, caplog):
    """The run folder's resume_from is the one place that picks the checkpoint: the SFT trainer used to look through
    checkpoints/ again (to decide on the step-0 eval) and warned of the cut-short checkpoint a second time."""
    out = tmp_path / "run"
    common = [f"output_dir={out}", "method.eval_steps=2", "method.save_steps=1", "method.save_total_limit=5"]
    train(compose(quick(*common, "method.max_steps=3")))
    (out / "checkpoints" / "checkpoint-3" / "trainer_state.json").write_text("")  # the disk filled up
    (out / "metrics.json").unlink()  # killed as it saved its last checkpoint
    with caplog.at_level("WARNING"):
        resumed = train(compose(quick(*common, "method.max_steps=4", "resume=true")))
    skipped = [r for r in caplog.records if "did not finish saving" in r.getMessage()]
    assert [r.getMessage() for r in skipped] == [f"skipping {out / 'checkpoints' / 'checkpoint-3'}: it did not "
                                                 "finish saving"]
    # resumed from checkpoint-2: no second base-model eval at step 2, the curve goes on from it
    assert resumed.metrics["global_step"] == 4
    assert [step for step, _ in resumed.metrics["eval_loss_curve"]] == [0, 2, 4]
