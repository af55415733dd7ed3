"""Eval during training and the tracker run: the suite's scores are logged beside the Trainer's own log, not instead
of it; a failing suite does not cost the run; wandb keeps no secret of the command line, shows a run stopped by a
signal as preempted, and a disabled wandb names no folder; provenance's git sha is kosov's own."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.helpers import quick, wandb_history, wandb_records
from training.errors import KosovError
from training.recipes import compose
from training.train import train


def run_file(out: Path) -> Path:
    """The offline run file, once wandb's service has written the run's end to it (its writer flushes on its own
    time after run.finish returns)."""
    [found] = (out / "wandb").glob("offline-run-*/run-*.wandb")  # not latest-run/, a link to it
    deadline = time.monotonic() + 30
    while not any(r.WhichOneof("record_type") == "exit" for r in wandb_records(found)):
        assert time.monotonic() < deadline, f"no end of the run in {found}"
        time.sleep(0.2)
    return found


SUITE = ("eval=smoke", "eval.math.limit=2", "eval.language.limit=2")


def test_a_suite_step_that_is_a_logging_step_keeps_the_trainers_own_log(tmp_path):
    """The suite logged through the trainer from on_step_end cleared control.should_log: the step's loss (and under
    DDP the loss all-gather) was skipped, and TRL's train metrics went into the suite's row."""
    out = tmp_path / "run"
    result = train(compose(quick(f"output_dir={out}", "method.max_steps=4", "method.logging_steps=2",
                                 "eval.every_n_steps=2", "tracking=wandb", "tracking.mode=offline", *SUITE)))
    history = result.trainer.state.log_history
    losses = {h["step"]: h for h in history if "loss" in h}
    suites = {h["step"]: h for h in history if "suite/ko_mini_bench" in h}
    assert {2, 4} <= set(losses) and sorted(suites) == [2, 4]
    assert all("mean_token_accuracy" in losses[s] for s in (2, 4))  # TRL's metrics stay in the Trainer's own row
    assert not any("mean_token_accuracy" in h or "loss" in h for h in suites.values())
    assert all("suite/ko_math_heldout[off]" in h and "suite/ko_language[off]" in h for h in suites.values())
    metrics = json.loads((out / "metrics.json").read_text())
    assert [s for s, _ in metrics["train_loss_curve"]][-2:] == [2, 4]
    assert metrics["last_train_loss"] == losses[4]["loss"]
    # wandb gets both: transformers puts training-time values under train/ (the suite: train/suite/<task>)
    assert len(wandb_history(run_file(out), "train/loss")) == len(metrics["train_loss_curve"])
    assert len(wandb_history(run_file(out), "train/suite/ko_mini_bench")) == 2


def test_an_unknown_suite_task_fails_before_the_run_starts(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KosovError, match=r"unknown lm-eval task\(s\) \['no_such_task'\]"):
        train(compose(quick(f"output_dir={out}", "eval=smoke", "eval.tasks=[no_such_task]", "eval.every_n_steps=3")))
    assert not out.exists()  # before the run folder, the data and the model


def test_a_failing_suite_is_logged_and_training_goes_on_with_its_checkpoints(tmp_path, monkeypatch):
    """A suite that fails (out of memory in generation, a benchmark file gone) used to end the run at that step,
    before the step's checkpoint was saved."""
    from training.evaluation import callback

    calls = []
    real = callback.run_generative

    def fails_first(*args, **kwargs):
        calls.append(args[3])
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory (as a test)")
        return real(*args, **kwargs)

    monkeypatch.setattr(callback, "run_generative", fails_first)
    out = tmp_path / "run"
    result = train(compose(quick(f"output_dir={out}", "method.max_steps=6", "method.save_steps=3", "eval=smoke",
                                 "eval.tasks=[]", "eval.every_n_steps=3", *SUITE[1:])))
    assert result.metrics["global_step"] == 6 and len(calls) == 2
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-6"]
    assert (out / "adapter" / "adapter_config.json").is_file()
    rows = {h["step"]: h for h in result.trainer.state.log_history if any(k.startswith("suite/") for k in h)}
    assert rows[3]["suite/failed"] == 1.0 and "suite/ko_language[off]" not in rows[3]
    assert "suite/ko_language[off]" in rows[6] and "suite/failed" not in rows[6]
    log_text = (out / "train.log").read_text()
    assert "suite smoke at step 3 failed; training goes on" in log_text
    assert "RuntimeError: CUDA out of memory (as a test)" in log_text  # with its traceback
    assert result.metrics["suite_failures"] == 1  # a run whose suites failed says so in metrics.json


def test_a_failed_suite_gives_the_gpu_memory_back_and_leaves_the_model_training(monkeypatch):
    import torch
    from transformers import TrainerControl, TrainerState

    from training.evaluation import callback

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory (as a test)")

    emptied = []
    monkeypatch.setattr(callback, "evaluate_live", oom)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    state = TrainerState(global_step=3)
    logged = []
    handler = SimpleNamespace(on_log=lambda args, state, control, logs: (logged.append(logs), control)[1])
    control = TrainerControl(should_log=True)
    trainer = SimpleNamespace(state=state, control=control, callback_handler=handler,
                              args=SimpleNamespace(include_num_input_tokens_seen="no"))
    suite = callback.SuiteCallback(compose(["eval=smoke", "eval.every_n_steps=3"]).eval, tokenizer=None)
    suite.trainer = trainer
    model = torch.nn.Linear(2, 2)
    model.train()
    suite.on_step_end(None, state, control, model=model)
    assert emptied and model.training and [logs.get("suite/failed") for logs in logged] == [1.0]
    assert control.should_log and trainer.control is control  # the step's own log still comes


def test_a_configuration_error_at_a_suite_step_stops_the_run(monkeypatch):
    """A suite that cannot run as configured (a thinking limit the model's window cannot hold) failed at every suite
    step, each swallowed as "training goes on": the run finished with status 0 and no scores."""
    import torch
    from transformers import TrainerControl, TrainerState

    from training.evaluation import callback

    def misconfigured(*args, **kwargs):
        raise KosovError("eval.thinking_max_new_tokens=8192 does not fit the context window (as a test)")

    monkeypatch.setattr(callback, "evaluate_live", misconfigured)
    state, logged = TrainerState(global_step=3), []
    handler = SimpleNamespace(on_log=lambda args, state, control, logs: (logged.append(logs), control)[1])
    trainer = SimpleNamespace(state=state, control=TrainerControl(), callback_handler=handler,
                              args=SimpleNamespace(include_num_input_tokens_seen="no"))
    suite = callback.SuiteCallback(compose(["eval=smoke", "eval.every_n_steps=3"]).eval, tokenizer=None)
    suite.trainer = trainer
    model = torch.nn.Linear(2, 2)
    model.train()
    with pytest.raises(KosovError, match="does not fit the context window"):
        suite.on_step_end(None, state, trainer.control, model=model)
    assert model.training and logged == []


def test_an_empty_prompt_file_of_the_suite_fails_before_training(tmp_path):
    """Read at the first suite step, an empty eval.math.data stopped the run there (a KosovError: under DDP, on the
    main process alone)."""
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = tmp_path / "run"
    with pytest.raises(KosovError, match=f"eval.math.data: the prompt file {empty} has no rows"):
        train(compose(["experiment=smoke-sft", *SUITE, "eval.every_n_steps=2", f"eval.math.data={empty}",
                       f"output_dir={out}"]))
    assert not (out / "checkpoints").exists() and not (out / "adapter").exists()


def test_a_thinking_limit_the_models_window_cannot_hold_fails_before_training():
    from training.evaluation.callback import check_suite_window, context_window

    ecfg = compose(["eval=smoke", "eval.every_n_steps=3", "eval.thinking=[on]",
                    "eval.thinking_max_new_tokens=8192"]).eval
    model = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=4096))
    assert context_window(model) == 4096 and context_window(SimpleNamespace(config=None)) is None
    with pytest.raises(KosovError, match="does not fit the context window of tiny-ko"):
        check_suite_window(ecfg, ["on"], context_window(model), "tiny-ko")
    with pytest.raises(KosovError, match="does not fit the context window of tiny-ko"):  # kosov's evals think too
        check_suite_window(ecfg, [], context_window(model), "tiny-ko")
    lm_eval_only = compose(["eval=smoke", "eval.every_n_steps=3", "eval.thinking=[on]", "eval.math.enabled=false",
                            "eval.language.enabled=false", "eval.thinking_max_new_tokens=8192"]).eval
    check_suite_window(lm_eval_only, ["off", None], 4096, "tiny-ko")  # no thinking limit without thinking
    check_suite_window(ecfg, ["on"], None, "tiny-ko")  # an unknown window: the suite's own check, at its step


def test_two_processes_finish_a_run_whose_suite_steps_are_logging_steps(tmp_path):
    """Under DDP the main process skipped the step's log, and with it the loss all-gather the other process still
    did: gloo's "Received data size doesn't match expected size"."""
    from tests.training.test_scale_out import ACCELERATE, kosov_bin

    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                           str(ACCELERATE / "cpu-ddp.yaml"), kosov_bin(), "train", "experiment=smoke-sft",
                           f"output_dir={out}", "method.max_steps=4", "method.logging_steps=2",
                           "method.eval_steps=100", "method.save_steps=100", "data.max_rows=24",
                           "eval.every_n_steps=2", *SUITE],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["global_step"] == 4 and [s for s, _ in metrics["train_loss_curve"]][-2:] == [2, 4]
    assert (out / "train.log").read_text().count("suite smoke at step") == 2


SECRET = "sk-LEAKME1234567890"


def test_wandb_keeps_no_secret_of_the_command_line(tmp_path, monkeypatch):
    """wandb stores sys.argv[1:] as the run's command (and uploads it): a teacher's base_url with credentials, or a
    secret-named override, reached the run file in clear. kosov eval opens its tracker the same way."""
    from training.run_dir import RunDir
    from training.tracking import open_tracker

    argv = ["kosov", "train", f"synth.teacher.base_url=https://alice:{SECRET}@llm.example.com/v1",
            f"+judge.api_key={SECRET}x", "peft.r=8"]
    monkeypatch.setattr(sys, "argv", list(argv))
    run = RunDir(tmp_path)
    tracker = open_tracker(compose(["tracking=wandb", "tracking.mode=offline"]).tracking, run, "t", {"x": 1})
    assert sys.argv == argv  # the process's own command line is left as it was
    tracker.run.log({"a": 1.0})
    tracker.finish(run)
    records = wandb_records(run_file(tmp_path))  # written to the end
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".wandb") for p in files)
    for path in files:
        assert b"LEAKME" not in path.read_bytes(), path
    [args] = [list(r.environment.args) for r in records
              if r.WhichOneof("record_type") == "environment" and r.environment.args]
    assert args == ["train", "synth.teacher.base_url=https://***@llm.example.com/v1", "+judge.api_key=***", "peft.r=8"]


def test_a_run_stopped_by_sigterm_is_preempted_in_wandb_not_failed(tmp_path, monkeypatch, caplog):
    """Closed with exit code 1, wandb showed a requeued run as failed between its segments."""
    from transformers import TrainerCallback

    from tests.training.test_preemption import trainers_warned_by

    class TermAtStepOne(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 0:
                os.kill(os.getpid(), signal.SIGTERM)

    caplog.set_level(logging.INFO, logger="training.tracking")
    old = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        trainers_warned_by(monkeypatch, TermAtStepOne())
        out = tmp_path / "run"
        with pytest.raises(KosovError, match="stopped by SIGTERM at step 1"):
            train(compose(quick(f"output_dir={out}", "tracking=wandb", "tracking.mode=offline")))
    finally:
        signal.signal(signal.SIGTERM, old)
    records = wandb_records(run_file(out))
    kinds = [r.WhichOneof("record_type") for r in records]
    assert "preempting" in kinds
    [code] = [r.exit.exit_code for r in records if r.WhichOneof("record_type") == "exit"]
    assert code == 75  # kosov's status for a stop with a checkpoint (EX_TEMPFAIL), not a failure's 1
    assert "closed as preempted" in caplog.text


def test_a_disabled_wandb_names_no_folder(tmp_path, monkeypatch, caplog):
    from training.run_dir import RunDir
    from training.tracking import open_tracker

    monkeypatch.setenv("WANDB_MODE", "disabled")
    caplog.set_level(logging.INFO, logger="training.tracking")
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    tracker = open_tracker(compose(["tracking=wandb"]).tracking, run, "t", {"x": 1})
    tracker.finish(run)
    assert "wandb is disabled" in caplog.text
    assert "wandb/" not in caplog.text and "/wandb" not in caplog.text and "wandb sync" not in caplog.text
    assert not (run.path / "wandb_run.json").exists()


def test_provenance_records_no_git_sha_of_a_repository_kosov_is_only_installed_in(tmp_path, monkeypatch):
    """A virtual environment inside the user's own repository: git, asked in site-packages/.., answered with the
    user's HEAD."""
    from training import provenance

    outer = tmp_path / "project"
    package = outer / ".venv" / "lib" / "python3.11" / "site-packages" / "training"
    package.mkdir(parents=True)
    (package / "provenance.py").write_text("")
    git = ["git", "-C", str(outer), "-c", "user.name=u", "-c", "user.email=u@x"]
    subprocess.run([*git, "init", "-q"], check=True)
    (outer / "README").write_text("the user's project\n")
    subprocess.run([*git, "add", "README"], check=True)
    subprocess.run([*git, "commit", "-qm", "user"], check=True)
    monkeypatch.setattr(provenance, "__file__", str(package / "provenance.py"))
    assert provenance._git_sha() is None
    # kosov's own checkout still records its commit
    checkout = outer / "kosov"
    (checkout / "training").mkdir(parents=True)
    (checkout / "training" / "provenance.py").write_text("")
    subprocess.run(["git", "-C", str(checkout), "init", "-q"], check=True)
    subprocess.run(["git", "-C", str(checkout), "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-q",
                    "--allow-empty", "-m", "kosov"], check=True)
    monkeypatch.setattr(provenance, "__file__", str(checkout / "training" / "provenance.py"))
    head = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert provenance._git_sha() in (head, head + "-dirty")


def test_the_tracker_run_is_closed_under_kosovs_sigterm_handler(tmp_path, monkeypatch):
    """The handler was taken down before tracker.finish: a SIGTERM during a slow (online) wandb finish killed the job
    before wandb had closed its run."""
    from training.preemption import StopOnSigterm
    from training.tracking import Tracker

    held, real = [], Tracker.finish

    def finish(self, *args, **kwargs):
        held.append(isinstance(getattr(signal.getsignal(signal.SIGTERM), "__self__", None), StopOnSigterm))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Tracker, "finish", finish)
    train(compose(quick(f"output_dir={tmp_path / 'run'}", "method.max_steps=2")))
    assert held == [True] and not isinstance(getattr(signal.getsignal(signal.SIGTERM), "__self__", None),
                                             StopOnSigterm)  # taken down after it
