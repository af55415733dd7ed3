"""SIGTERM handling (training/preemption.py): the SIGTERM a launcher passes on (torchrun / accelerate launch forward
the one SLURM sent the whole job step, so each worker gets it twice) must not cost the checkpoint; a SIGTERM sent
well after the first still stops the job at once."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.training.test_scale_out import kosov_bin
from training import preemption
from training.preemption import StopOnSigterm, StoppedBySignal


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


@pytest.mark.parametrize("requeue_left", [True, False])
def test_a_warning_that_came_while_a_finished_job_loaded_is_handed_to_submitit(before, caplog, requeue_left):
    # A requeued job finishing from its last checkpoint takes no step: a warning that came while it loaded goes to
    # submitit's handler before the end suite (here a recording one); out of requeues, the job finishes in itself.
    calls, old = [], signal.getsignal(signal.SIGUSR2)

    def submitit_handler(signum, frame):
        calls.append(signum)
        if not requeue_left:
            raise RuntimeError("Job has timed-out too many times")  # as submitit's UncompletedJobError says

    stop = StopOnSigterm()
    stop.requeue, stop.requeue_signal = submitit_handler, signal.SIGUSR2
    signal.signal(signal.SIGUSR2, stop._on_preempt_warning)
    try:
        os.kill(os.getpid(), signal.SIGUSR2)  # while the job loaded
        assert stop.requeue_asked and calls == []
        stop.no_step_left()
        assert calls == [signal.SIGUSR2]
        given_back = signal.getsignal(signal.SIGUSR2)  # a later warning is submitit's own, out of requeues too
        assert isinstance(given_back, preemption.CarryOnUnlessRequeued) and given_back.handler is submitit_handler
        assert ("finishing the run in this one" in caplog.text) is not requeue_left
    finally:
        stop.restore()
        signal.signal(signal.SIGUSR2, old)


def test_a_run_stopped_early_spends_its_grace_period_on_the_checkpoint_not_the_eval_suite():
    from types import SimpleNamespace

    from training.evaluation.callback import SuiteCallback

    suite = SuiteCallback.__new__(SuiteCallback)  # only on_train_end's decision is under test here
    ran = []
    suite._run = lambda state, model: ran.append(state.global_step)
    suite.on_train_end(None, SimpleNamespace(global_step=7, max_steps=40), None)  # SIGTERM at step 7
    suite.on_train_end(None, SimpleNamespace(global_step=40, max_steps=40), None)  # the end of training
    assert ran == [40]


@pytest.mark.parametrize("stopped_at, requeue, resume, runs", [
    (40, False, False, False),  # SIGTERM during the last step: the run stops with its checkpoint; resumed, it runs
    (40, True, True, False),  # SLURM's warning, requeued with resume=true: the requeued job runs it
    (40, True, False, True),  # SLURM's warning submitit cannot requeue (no resume=true): the run finishes here
    (None, False, False, True),  # SIGTERM after the last step's end: no checkpoint to stop with, the run finishes
])
def test_the_end_suite_is_skipped_exactly_when_the_run_stops_instead_of_finishing(stopped_at, requeue, resume, runs):
    from types import SimpleNamespace

    from training.evaluation.callback import SuiteCallback

    suite = SuiteCallback.__new__(SuiteCallback)
    ran = []
    suite._run = lambda state, model: ran.append(state.global_step)
    stop = StopOnSigterm.__new__(StopOnSigterm)  # its decision only: no signal handlers installed
    stop.asked, stop.stopped_at, stop.requeue_asked, stop.requeue_signal = True, stopped_at, requeue, None
    suite.stop, suite.resume = stop, resume
    suite.on_train_end(None, SimpleNamespace(global_step=40, max_steps=40), None)
    assert (ran == [40]) is runs and stop.stops_run(resume) is not runs


def _submitit_tasks(folder: Path) -> list[int]:
    """The pids of the submitit job tasks working from `folder` (their command line names it)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone, or not a process
            continue
        if b"submitit.core._submit" in cmd and any(str(folder).encode() in part for part in cmd):
            pids.append(int(proc.name))
    return pids


@pytest.mark.parametrize("tasks", [1, 2])
def test_slurms_warning_through_submitit_ends_with_a_checkpoint_and_the_requeued_job_resumes(tmp_path, tasks):
    """Under Hydra's submitit launcher SLURM warns with SIGUSR2 before a time limit or preemption; submitit's own
    handler requeued the job at once, mid-step and without a checkpoint. Here the local submitit executor, which
    runs a requeued job again as SLURM does, gets the warning after the first checkpoint. With two tasks (one per
    GPU on a cluster; DDP over gloo here, SLURM_JOB_ID set so that each task gets torch.distributed's variables as
    on SLURM) rank 1 leaves the requeue to rank 0 and ends quietly: it ended with a kosov error saying to resume."""
    out, folder = tmp_path / "run", tmp_path / "submitit"
    env = dict(os.environ, **({"SLURM_JOB_ID": "4242"} if tasks > 1 else {}))
    proc = subprocess.Popen(
        [kosov_bin(), "train", "-m", "experiment=smoke-sft", "hydra/launcher=submitit_local",
         f"hydra.launcher.tasks_per_node={tasks}",
         f"hydra.launcher.submitit_folder={folder}", f"output_dir={out}", "resume=true", "method.max_steps=60",
         "method.save_steps=7", "method.eval_steps=1000", "method.logging_steps=1", "method.save_total_limit=100"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 240
    while not (out / "0" / "checkpoints" / "checkpoint-7" / "trainer_state.json").exists():
        assert proc.poll() is None and time.time() < deadline, "the job ended before its first checkpoint"
        time.sleep(0.2)
    for pid in _submitit_tasks(folder):
        os.kill(pid, signal.SIGUSR2)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    log = "\n".join(p.read_text() for p in sorted(folder.rglob("*_log.*")))
    assert "SIGUSR2 from SLURM through submitit" in log and "Requeued job" in log, log[-3000:]
    saved = re.search(r"(\S+checkpoint-(\d+)) saved: submitit requeues the job", log)
    assert saved and 7 <= int(saved.group(2)) < 60, log[-3000:]
    assert f"resuming from {saved.group(1)}" in log  # the requeued job continued from the warning's checkpoint
    assert json.loads((out / "0" / "metrics.json").read_text())["global_step"] == 60
    assert json.loads((out / "0" / "provenance.json").read_text())["processes"] == tasks
    if tasks > 1:
        rank1 = "\n".join(p.read_text() for p in sorted(folder.rglob("*_1_log.*")))
        assert "SLURM task 1 of 2" in rank1 and "this one (rank 1) ends here" in rank1, rank1[-3000:]
        assert " ERROR " not in rank1 and "stopped by" not in rank1, rank1[-3000:]


def test_slurms_warning_at_the_last_step_leaves_the_finish_to_the_requeued_job(tmp_path, monkeypatch, caplog,
                                                                              kept_signals):
    """The warning can come during the last step: its checkpoint is saved, the job is handed to submitit (here its
    local executor's environment, whose requeue exits 144) without the end-of-training suite, and the requeued job
    finishes from that checkpoint without another step. A warning as that job comes to its end suite (no step left
    to end with a checkpoint) is submitit's again and requeues it at once: kosov used to hold it, and the suite ran
    on until SLURM's kill, with no requeue."""
    from transformers import TrainerCallback

    from tests.helpers import quick
    from training.recipes import compose
    from training.train import train

    paths = as_a_submitit_job(tmp_path, monkeypatch, rank=0)
    out = tmp_path / "run"
    args = quick(f"output_dir={out}", "method.max_steps=4", "method.save_steps=100", "eval=smoke",
                 "eval.every_n_steps=100", "resume=true")

    class WarnAtTheLastStep(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == state.max_steps - 1:
                os.kill(os.getpid(), signal.SIGUSR2)

    class WarnAtTheEnd(TrainerCallback):  # added before kosov's callbacks: just before the end suite
        def on_train_end(self, args, state, control, **kwargs):
            os.kill(os.getpid(), signal.SIGUSR2)

    trainers_warned_by(monkeypatch, WarnAtTheLastStep())
    caplog.set_level(logging.INFO, logger="training.evaluation.callback")
    with pytest.raises(SystemExit) as requeued:
        train(compose(args))
    assert requeued.value.code == 144 and paths.submitted_pickle.is_file()  # submitit requeued the job
    assert (out / "checkpoints" / "checkpoint-4" / "trainer_state.json").is_file()
    assert not (out / "metrics.json").exists() and "suite smoke at step" not in caplog.text  # left to the requeue
    paths.submitted_pickle.unlink()
    trainers_warned_by(monkeypatch, WarnAtTheEnd())
    with pytest.raises(SystemExit) as again:
        train(compose(args))
    assert again.value.code == 144 and paths.submitted_pickle.is_file()  # requeued again, before the suite
    assert not (out / "metrics.json").exists() and "suite smoke at step" not in caplog.text
    trainers_warned_by(monkeypatch, None)
    finished = train(compose(args))
    assert finished.metrics["global_step"] == 4 and not (out / "checkpoints" / "checkpoint-5").exists()
    assert "suite smoke at step 4" in caplog.text  # the requeued job ran the end-of-training suite


def test_a_sigterm_during_the_last_step_stops_with_its_checkpoint_and_the_resumed_run_finishes(
        tmp_path, monkeypatch, caplog, before):
    """SIGTERM during the last step (scancel, a time limit): its checkpoint is saved and the job stops with status 75
    without the end-of-training suite, as at any other step; SLURM's grace period is too short for a suite. kosov's
    handler used to stay installed through the suite, which ran on until SIGKILL."""
    from transformers import TrainerCallback

    from tests.helpers import quick
    from training.errors import KosovError
    from training.recipes import compose
    from training.train import train

    out = tmp_path / "run"
    args = quick(f"output_dir={out}", "method.max_steps=4", "method.save_steps=100", "eval=smoke",
                 "eval.every_n_steps=100")

    class TermAtTheLastStep(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == state.max_steps - 1:
                os.kill(os.getpid(), signal.SIGTERM)

    trainers_warned_by(monkeypatch, TermAtTheLastStep())
    caplog.set_level(logging.INFO, logger="training.evaluation.callback")
    with pytest.raises(KosovError, match="stopped by SIGTERM at step 4"):
        train(compose(args))
    assert before == []  # the SIGTERM went to kosov, not to what handled it before
    assert (out / "checkpoints" / "checkpoint-4").is_dir() and not (out / "metrics.json").exists()
    assert "suite smoke at step" not in caplog.text
    trainers_warned_by(monkeypatch, None)
    finished = train(compose([*args, "resume=true"]))
    assert finished.metrics["global_step"] == 4 and "suite smoke at step 4" in caplog.text


@pytest.mark.parametrize("every, stop_step", [(100, 4), (2, 2)])  # the end-of-training suite; one mid-run
def test_a_sigterm_during_an_eval_suite_gives_it_up_for_the_checkpoint(tmp_path, monkeypatch, caplog, before, every,
                                                                       stop_step):
    """A suite's generation runs for minutes, SLURM's grace period 30 s: a SIGTERM while it runs gives it up, and the
    job stops with the checkpoint of that step (status 75). The end suite used to run on until SIGKILL."""
    from tests.helpers import quick
    from training.errors import KosovError
    from training.evaluation import callback
    from training.recipes import compose
    from training.train import train

    out = tmp_path / "run"
    args = quick(f"output_dir={out}", "method.max_steps=4", "method.save_steps=100", "eval=smoke",
                 f"eval.every_n_steps={every}")
    real = callback.evaluate_live

    def terminated_while_scoring(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)

    monkeypatch.setattr(callback, "evaluate_live", terminated_while_scoring)
    caplog.set_level(logging.INFO, logger="training.evaluation.callback")
    with pytest.raises(KosovError, match=f"stopped by SIGTERM at step {stop_step}"):
        train(compose(args))
    assert before == []
    assert (out / "checkpoints" / f"checkpoint-{stop_step}").is_dir() and not (out / "metrics.json").exists()
    assert "suite smoke at step" not in caplog.text and f"SIGTERM: no suite at step {stop_step}" in caplog.text
    monkeypatch.setattr(callback, "evaluate_live", real)
    finished = train(compose([*args, "resume=true"]))
    assert finished.metrics["global_step"] == 4 and "suite smoke at step 4" in caplog.text


@pytest.mark.parametrize("case", ["warned during the last step's suite", "sigterm after the last step's suite"])
def test_a_stop_that_does_not_stop_the_run_leaves_it_its_end_suite(tmp_path, monkeypatch, caplog, kept_signals,
                                                                   case):
    """SLURM's warning during the suite of the last step, which submitit cannot requeue without resume=true: the run
    finishes in this job, and its end suite used to be skipped as "already run at this step" though it had been given
    up. A SIGTERM after that suite had run (in the last checkpoint's save) stopped a finished run with status 75,
    unfinished: the run now finishes (adapter, metrics.json), then stops, saying it is complete."""
    from transformers import TrainerCallback

    from tests.helpers import quick
    from training.evaluation import callback
    from training.recipes import compose
    from training.train import train

    out, real, calls = tmp_path / "run", callback.evaluate_live, []

    def scoring(*a, **k):
        calls.append(1)
        if case.startswith("warned") and len(calls) == 2:  # the suite of step 4, the last
            os.kill(os.getpid(), signal.SIGUSR2)
        return real(*a, **k)

    class TermInTheLastSave(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if case.startswith("sigterm") and state.global_step == state.max_steps:
                os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(callback, "evaluate_live", scoring)
    trainers_warned_by(monkeypatch, TermInTheLastSave())
    as_a_submitit_job(tmp_path, monkeypatch, rank=0)
    caplog.set_level(logging.INFO, logger="training.evaluation.callback")
    args = compose(quick(f"output_dir={out}", "method.max_steps=4", "method.save_steps=100", "eval=smoke",
                         "eval.every_n_steps=2"))
    if case.startswith("sigterm"):  # the command stops (a sweep starts no further job), with the run finished
        with pytest.raises(StoppedBySignal, match="the run in .* is complete"):
            train(args)
    else:
        train(args)
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 4 and (out / "adapter").is_dir()
    assert "suite smoke at step 4" in caplog.text and len(calls) == 3 - case.startswith("sigterm")


def trainers_warned_by(monkeypatch, callback) -> None:
    """SFT trainers built from here on also get `callback` (which sends SLURM's warning), added before kosov's own
    callbacks; None: as they are."""
    from training import train as train_module

    method = train_module.METHODS["sft"]
    build = getattr(method.build_trainer, "plain", method.build_trainer)

    def build_and_warn(*a, **k):
        trainer = build(*a, **k)
        trainer.add_callback(callback)
        return trainer

    build_and_warn.plain = build
    monkeypatch.setattr(method, "build_trainer", build if callback is None else build_and_warn)


@pytest.fixture
def kept_signals():
    """The handlers of SIGUSR2, SIGTERM and SIGCONT (submitit's job sets all three), put back after the test."""
    old = {signum: signal.getsignal(signum) for signum in (signal.SIGUSR2, signal.SIGTERM, signal.SIGCONT)}
    yield
    for signum, handler in old.items():
        signal.signal(signum, handler)


def as_a_submitit_job(tmp_path, monkeypatch, rank: int, requeues: int = 3):
    """This process as task `rank` of a job of submitit's local executor, with submitit's signal handlers set as it
    sets them before the job runs (the test takes kept_signals, which puts the handlers back). Returns the job's
    paths."""
    from submitit import JobEnvironment
    from submitit.core.utils import DelayedSubmission, JobPaths

    for key, value in dict(SUBMITIT_EXECUTOR="local", SUBMITIT_LOCAL_JOB_ID="7", SUBMITIT_LOCAL_NTASKS="2",
                           SUBMITIT_LOCAL_JOB_NUM_NODES="1", SUBMITIT_LOCAL_NODEID="0",
                           SUBMITIT_LOCAL_GLOBALID=str(rank), SUBMITIT_LOCAL_LOCALID=str(rank)).items():
        monkeypatch.setenv(key, value)

    class Job:  # what submitit asks of a requeueable callable
        def __call__(self):
            return None

        def checkpoint(self):
            return DelayedSubmission(self)

    paths = JobPaths(tmp_path / "submitit", job_id="7")
    paths.folder.mkdir(parents=True)
    submission = DelayedSubmission(Job())
    submission.set_timeout(60, requeues)  # a 60-minute limit, requeues after time limits
    JobEnvironment()._handle_signals(paths, submission)
    return paths


def test_the_other_ranks_of_a_requeued_job_end_quietly(tmp_path, monkeypatch, caplog, kept_signals):
    """On ranks other than 0 submitit's handler leaves the requeue to rank 0 and returns: kosov then raised its
    "stopped ... resume=true" error there, which fails the task (and, where SLURM kills a job step on a failed task,
    KillOnBadExit, could end rank 0 before it requeued). Such a rank now ends with LeftToRankZero after the
    checkpoint, which the CLI ends with status 0 (the two-task job above)."""
    from training.preemption import LeftToRankZero
    from transformers import TrainerCallback

    from tests.helpers import quick
    from training.recipes import compose
    from training.train import train

    class WarnAtStep2(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 1:
                os.kill(os.getpid(), signal.SIGUSR2)

    trainers_warned_by(monkeypatch, WarnAtStep2())
    paths = as_a_submitit_job(tmp_path, monkeypatch, rank=1)
    out = tmp_path / "run"
    caplog.set_level(logging.INFO)
    with pytest.raises(LeftToRankZero, match=r"first process requeues the job, or says why it could not"):
        train(compose(quick(f"output_dir={out}", "method.max_steps=4", "method.save_steps=100", "resume=true")))
    assert (out / "checkpoints" / "checkpoint-2" / "trainer_state.json").is_file()  # the step's checkpoint first
    assert not paths.submitted_pickle.exists() and not (out / "metrics.json").exists()  # rank 0 requeues, not this


def test_out_of_requeues_a_warning_during_the_end_suite_lets_the_run_finish(tmp_path, monkeypatch, caplog,
                                                                          kept_signals):
    """With no requeue left (hydra.launcher.max_num_timeout), submitit's handler raised its UncompletedJobError in
    the middle of the end-of-training suite: the job ended with a traceback, unfinished. It now finishes in this
    job, which the warning leaves signal_delay_s for."""
    from transformers import TrainerCallback

    from tests.helpers import quick
    from training.recipes import compose
    from training.train import train

    class WarnAtTheEnd(TrainerCallback):  # added before kosov's callbacks: just before the end suite
        def on_train_end(self, args, state, control, **kwargs):
            os.kill(os.getpid(), signal.SIGUSR2)

    trainers_warned_by(monkeypatch, WarnAtTheEnd())
    as_a_submitit_job(tmp_path, monkeypatch, rank=0, requeues=0)
    signal.getsignal(signal.SIGUSR2).__self__._start_time -= 3600  # an hour in: at its time limit, out of requeues
    out = tmp_path / "run"
    caplog.set_level(logging.INFO)
    done = train(compose(quick(f"output_dir={out}", "method.max_steps=3", "eval=smoke", "eval.every_n_steps=100",
                               "resume=true")))
    assert "SIGUSR2: submitit did not requeue the job" in caplog.text and "timed-out too many times" in caplog.text
    assert done.metrics["global_step"] == 3 and (out / "metrics.json").is_file()
    assert "suite smoke at step 3" in caplog.text  # the end suite ran to its end
