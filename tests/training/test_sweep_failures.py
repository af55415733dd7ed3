"""An Optuna sweep whose max_failure_rate lets failed trials through: when every trial fails it ends with one kosov
error (exit 2) naming the first failure, not a traceback from study.best_trial; when one trial succeeds, the sweep
succeeds and reports it as the best. The real CLI runs both sweeps on the tiny model; a bug keeps its traceback.
A job of the submitit launcher (SLURM) that fails with a kosov error fails the submitting command the same way."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.training.test_scale_out import kosov_bin, run

OPTUNA = ["train", "-m", "experiment=sweep-smoke-sft-optuna", "hydra.sweeper.max_failure_rate=1.0",
          "method.max_steps=2", "method.eval_steps=2"]


def test_an_optuna_sweep_whose_every_trial_fails_ends_with_a_kosov_error(tmp_path):
    done = run([kosov_bin(), *OPTUNA, "hydra.sweeper.n_trials=2", f"model.name_or_path={tmp_path / 'no-such-model'}"],
               tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "No trials are completed" not in done.stderr, done.stderr[-3000:]
    last = done.stderr[done.stderr.index("all 2 trials of the sweep failed"):]  # the error ends the output
    assert "no-such-model" in last and "no such folder" in last and "Fix:" in last
    assert not list(tmp_path.rglob("optimization_results.yaml"))


def test_an_optuna_sweep_without_an_objective_is_refused_before_anything_trains(tmp_path):
    done = run([kosov_bin(), "train", "-m", "experiment=sweep-smoke-sft-optuna", "objective=null",
                "hydra.sweeper.n_trials=2"], tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "objective is null" in done.stderr and "objective=eval_loss" in done.stderr
    assert not list(tmp_path.rglob("metrics.json")) and not list(tmp_path.rglob("checkpoint-*"))


def test_an_optuna_sweep_with_some_failed_trials_reports_the_best_of_the_others(tmp_path):
    # The recipe's seeded sampler tries both models: the missing one fails in its job, tiny-ko trains.
    done = run([kosov_bin(), *OPTUNA, "hydra.sweeper.n_trials=2",
                f"model.name_or_path=choice(tiny-ko,{tmp_path / 'no-such-model'})"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "no such folder" in done.stderr and "1 of 2 trials of the sweep failed" in done.stderr
    [results] = tmp_path.rglob("optimization_results.yaml")
    best = yaml.safe_load(results.read_text())
    [metrics] = tmp_path.rglob("metrics.json")
    assert best["best_params"]["model.name_or_path"] == "tiny-ko"
    assert best["best_value"] == json.loads(metrics.read_text())["eval_loss"]


def test_every_trial_failing_on_a_bug_ends_with_the_first_trials_exception_not_optunas():
    from hydra.core.utils import JobReturn, JobStatus
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper

    from training.sweep_jobs import optuna_failures_reported

    bug = RuntimeError("a bug in the trial")

    class Launcher:
        def launch(self, job_overrides, initial_job_idx):
            return [JobReturn(status=JobStatus.FAILED, _return_value=bug) for _ in job_overrides]

    class Optuna:  # the sweeper's own loop, reduced: two failed trials let through, then study.best_trial
        launcher, max_failure_rate = Launcher(), 1.0

        def sweep(self, arguments):
            self.launcher.launch([["peft.r=4"], ["peft.r=8"]], initial_job_idx=0)
            raise ValueError("No trials are completed yet.")

    sweeper, status, plain = OptunaSweeper.__new__(OptunaSweeper), {"code": 0}, OptunaSweeper.sweep
    sweeper.sweeper = Optuna()
    with pytest.raises(RuntimeError) as raised, optuna_failures_reported(status):
        sweeper.sweep([])
    assert raised.value is bug and status["code"] == 0  # a bug keeps its traceback and Hydra's exit status 1
    assert OptunaSweeper.sweep is plain  # put back after the sweep


def test_a_kosov_error_in_a_submitit_job_fails_the_command_that_submitted_it(tmp_path):
    # The submitit launcher (SLURM; here its local executor) runs each job in a process of its own: a job that
    # reported its kosov error and returned told the submitting command it had succeeded (exit 0).
    done = run([kosov_bin(), "train", "-m", "experiment=smoke-sft", "hydra/launcher=submitit_local",
                f"model.name_or_path={tmp_path / 'no-such-model'}"], tmp_path)  # found missing in the job
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    last = done.stderr[done.stderr.index("a job of the sweep failed"):]  # the error ends the output
    assert "no-such-model" in last and "no such folder" in last and "Fix:" in last
    logs = "\n".join(p.read_text() for p in tmp_path.rglob("*_log.err"))
    assert "no-such-model': no such folder" in logs  # and the job's own log says so, on the cluster
    assert not list(tmp_path.rglob("checkpoint-*"))
    # On SLURM, srun runs the job's process: its exit status is what sacct, --mail-type=FAIL and afterok read.
    # Run that process again, as the cluster would: it exits 2 (it exited 0 and the job was recorded as COMPLETED).
    [submitted] = tmp_path.rglob("*_submitted.pkl")
    job = run_job_process(submitted, tmp_path)
    assert job.returncode == 2, job.stderr[-3000:]
    assert "no-such-model': no such folder" in job.stderr and "Traceback" not in job.stderr, job.stderr[-3000:]
    assert pickle.loads((submitted.parent / f"{submitted.parent.name}_0_result.pkl").read_bytes())[0] == "success"


def test_a_submitit_sweep_runs_every_batch_and_names_every_failed_job(tmp_path):
    # With hydra.sweeper.max_batch_size, Hydra's sweeper raised the first failed job's error and launched no later
    # batch: a second job never ran, and only the first error reached the command.
    bad = [tmp_path / "no-such-model", tmp_path / "no-such-model-either"]
    done = run([kosov_bin(), "train", "-m", "experiment=smoke-sft", "hydra/launcher=submitit_local",
                "hydra.sweeper.max_batch_size=1", f"model.name_or_path={bad[0]},{bad[1]}"], tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert len(list(tmp_path.rglob("*_submitted.pkl"))) == 2  # both batches ran
    for number, model in enumerate(bad):  # each failed job named here, with its overrides and its error
        named = f"job #{number} of the sweep (experiment=smoke-sft model.name_or_path={model}) failed: "
        assert f"{named}model.name_or_path='{model}'" in done.stderr, done.stderr[-3000:]
    last = done.stderr[done.stderr.index("2 of 2 jobs of the sweep failed"):]  # the error ends the output
    assert "(#0, #1); the first, #0:" in last and "no-such-model'" in last and "Fix:" in last


def test_a_bug_in_a_submitit_job_fails_the_job_process():
    # A bug (not a kosov error) is kept by Hydra's run_job for the submitting command: the job's process exits 1.
    done = subprocess.run([sys.executable, "-c", JOB_STATUS_AFTER_A_BUG], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == "last words\n", (done.returncode, done.stdout, done.stderr)


def test_a_failed_task_exits_only_once_every_task_of_its_job_has_its_result(tmp_path, monkeypatch):
    # Where SLURM ends a job step at its first failed task (KillOnBadExit=1), task 0 exiting 2 could end task 1
    # before submitit wrote its result, and the sweep's process, which reads every task's, would fail on it.
    import threading

    from submitit.core.utils import JobPaths

    from training.sweep_jobs import siblings_done

    for key, value in dict(SUBMITIT_EXECUTOR="local", SUBMITIT_LOCAL_JOB_ID="9", SUBMITIT_LOCAL_NTASKS="2",
                           SUBMITIT_LOCAL_GLOBALID="0", SUBMITIT_LOCAL_LOCALID="0", SUBMITIT_LOCAL_NODEID="0",
                           SUBMITIT_LOCAL_JOB_NUM_NODES="1", SUBMITIT_FOLDER=str(tmp_path / "%j")).items():
        monkeypatch.setenv(key, value)
    own, sibling = (JobPaths(tmp_path / "%j", job_id="9", task_id=task).result_pickle for task in (0, 1))
    own.parent.mkdir(parents=True)
    own.write_bytes(b"")  # submitit wrote this task's result before the exit handlers run
    threading.Timer(0.5, sibling.write_bytes, (b"",)).start()  # task 1 is still writing its own
    siblings_done(timeout_s=60)
    assert sibling.exists()  # waited for it (not the whole minute: it returns as soon as both are there)
    sibling.unlink()
    siblings_done(timeout_s=0.3)  # a task that never writes one (killed, hung) costs at most timeout_s


JOB_STATUS_AFTER_A_BUG = """
from training.sweep_jobs import exit_status_for_slurm, job_failed
exit_status_for_slurm()
exit_status_for_slurm()  # once per process
job_failed(1)
print("last words", end="\\n")  # flushed before the process ends
"""


def run_job_process(submitted, cwd) -> subprocess.CompletedProcess:
    """The job's process as submitit's local executor starts it (on SLURM, srun starts the same command)."""
    folder = submitted.parent
    env = dict(os.environ, SUBMITIT_EXECUTOR="local", SUBMITIT_LOCAL_JOB_ID=folder.name, SUBMITIT_LOCAL_NTASKS="1",
               SUBMITIT_LOCAL_GLOBALID="0", SUBMITIT_LOCAL_LOCALID="0", SUBMITIT_LOCAL_NODEID="0",
               SUBMITIT_LOCAL_JOB_NUM_NODES="1")
    return subprocess.run([sys.executable, "-u", "-m", "submitit.core._submit", str(folder.parent / "%j")], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=400)


def test_a_sigterm_ends_a_local_sweep_and_resume_finishes_every_job(tmp_path):
    """A job of a local sweep stopped by SIGTERM was reported and the sweep went on to its next job, with a handler
    of its own: one SIGTERM a job to end the sweep, and SLURM's grace period spent starting the next. The sweep ends
    with the stopped job (status 75), and the same command with resume=true finishes every job."""
    out = tmp_path / "sweep"
    sweep = [kosov_bin(), "train", "-m", "experiment=smoke-sft", "peft.r=4,8,16", f"output_dir={out}",
             "method.save_steps=3", "method.eval_steps=1000", "data.max_rows=24"]
    proc = subprocess.Popen([*sweep, "method.max_steps=60"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (out / "0" / "checkpoints" / "checkpoint-3" / "trainer_state.json").exists():
        assert proc.poll() is None and time.time() < deadline, "job 0 ended before its first checkpoint"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 75 and "Traceback" not in stderr, stderr[-3000:]
    assert "job #0 of the sweep was stopped by a signal, and the sweep with it: no later job starts" in stderr
    assert not (out / "1").exists() and not (out / "2").exists() and "#1 : " not in stderr  # never started
    step = int(re.search(r"stopped by SIGTERM at step (\d+)", stderr).group(1))
    done = run([*sweep, f"method.max_steps={step + 1}", "resume=true"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resuming from {out / '0' / 'checkpoints' / f'checkpoint-{step}'}" in done.stderr
    assert [json.loads((out / job / "metrics.json").read_text())["global_step"] for job in "012"] == [step + 1] * 3


def test_a_submitit_job_stopped_by_a_signal_ends_the_sweep(caplog):
    """A job of the submitit launcher (its own process, on SLURM) stopped by SIGTERM comes back to the sweep's process
    as its TrialFailed: the sweep ends there (status 75), naming the job, rather than launch its next batch."""
    from hydra.core.utils import JobReturn, JobStatus

    from training.cli import TrialFailed
    from training.errors import KosovError
    from training.sweep_jobs import STOPPED_JOB, stopped_jobs_end_the_sweep

    finished, stopped = JobReturn(), JobReturn()
    finished.status, finished.overrides, finished._return_value = JobStatus.COMPLETED, ["peft.r=4"], None
    stopped.status, stopped.overrides = JobStatus.FAILED, ["peft.r=8", "synth.teacher.api_key=sk-LEAKME123456"]
    error = KosovError("stopped by SIGTERM at step 4, with a checkpoint (out/1/checkpoints/checkpoint-4)",
                       fix="continue it with the same command and resume=true")
    stopped._return_value = TrialFailed(f"{STOPPED_JOB}{error}")
    status = {"code": 0}
    stopped_jobs_end_the_sweep([finished], 0, status)  # a batch without a stopped job: the sweep goes on
    assert status["code"] == 0
    with pytest.raises(TrialFailed, match=r"job #1 of the sweep was stopped by a signal, and the sweep with it: no "
                                          r"later job starts \(stopped by SIGTERM at step 4") as ended:
        stopped_jobs_end_the_sweep([finished, stopped], 0, status)
    assert status["code"] == 75 and "resume=true" in str(ended.value)
    assert "job #1 of the sweep (peft.r=8 synth.teacher.api_key=***) was stopped" in caplog.text


NAN_TRIAL = """
import sys, types
import training.cli as cli
calls = []
def train(cfg):  # the second trial diverged: its run ends with a NaN eval_loss
    calls.append(cfg.method.learning_rate)
    return types.SimpleNamespace(metrics={"eval_loss": float("nan") if len(calls) == 2 else 1.0 + len(calls)})
cli._command = lambda name: train
status = cli.main(sys.argv[1:])
print("trials run", len(calls))
sys.exit(status)
"""


def test_a_diverged_trial_is_a_failed_trial_not_the_end_of_the_optuna_sweep(tmp_path):
    # A NaN objective went to Optuna, which refuses it; the sweeper's report of that failure (tell(FAIL, [nan]))
    # raised again, and the sweep died with a traceback even with max_failure_rate letting failed trials through.
    script = tmp_path / "nan_trial.py"
    script.write_text(NAN_TRIAL)
    done = run([sys.executable, str(script), "train", "-m", "experiment=sweep-smoke-sft-optuna",
                f"output_dir={tmp_path / 'sweep'}", "hydra.sweeper.n_trials=3", "hydra.sweeper.n_jobs=3",
                "hydra.sweeper.max_failure_rate=0.5"],
               tmp_path)
    assert done.returncode == 0 and "trials run 3" in done.stdout, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "the run diverged: eval_loss is nan" in done.stderr and "1 of 3 trials of the sweep failed" in done.stderr
    [results] = tmp_path.rglob("optimization_results.yaml")
    assert yaml.safe_load(results.read_text())["best_value"] == 2.0
