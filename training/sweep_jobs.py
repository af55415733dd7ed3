"""The jobs of a sweep (`kosov train -m ...`), seen from the sweep's process and from each job's: a failed job is
named with its overrides and the sweep ends with one kosov error (exit 2), whichever launcher ran it; a job stopped
by a signal (SIGTERM, SLURM's warning) ends the sweep, which starts no further job (exit STOPPED_EXIT, 75); a submitit
job that failed exits non-zero, so that SLURM records it as failed; the sweep's record (multirun.yaml) holds no
secret."""

from __future__ import annotations

import atexit
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from training.errors import KosovError

log = logging.getLogger("kosov")

# kosov's exit status for a command stopped by a signal (SIGTERM, SLURM's warning: StoppedBySignal), with a checkpoint
# to continue from or its run finished: EX_TEMPFAIL of sysexits.h ("a temporary failure: retry"), so that a requeue
# script tells it from a user error (2) and runs the command again with resume=true.
STOPPED_EXIT = 75
JOB_EXIT = {"code": 0, "watched": False}  # a submitit job's exit status (exit_status_for_slurm)


def exit_status_for_slurm() -> None:
    """Called as a job of the submitit launcher starts, in its own process. A job that fails with a kosov error hands
    its TrialFailed to submitit, which pickles it for the submitting command, and then the process exits 0: SLURM
    would record the job as COMPLETED (sacct, --mail-type=FAIL, afterok dependencies). The exit status of a failed
    job (job_failed) is set by the exit handler registered here, first, so that it runs after the others."""
    if not JOB_EXIT["watched"]:
        JOB_EXIT["watched"] = True
        atexit.register(_exit_with_job_status)


def job_failed(code: int = 2) -> None:
    JOB_EXIT["code"] = code


def _exit_with_job_status() -> None:
    if not JOB_EXIT["code"]:
        return
    siblings_done()
    for handler in logging.getLogger().handlers:  # logging's own exit handler, registered before, does not run
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(JOB_EXIT["code"])  # the job's result is pickled already: only the status changes


def siblings_done(timeout_s: float = 60.0) -> None:
    """Where SLURM ends a job step at its first failed task (KillOnBadExit=1), a task exiting non-zero could end the
    others before submitit wrote their results, which the sweep's process reads (every task's, not only rank 0's):
    wait, at most timeout_s, until each task of this job has written its own."""
    try:
        from submitit import JobEnvironment
        from submitit.core.utils import JobPaths

        env = JobEnvironment()
        results = [JobPaths(os.environ["SUBMITIT_FOLDER"], job_id=env.job_id, task_id=task).result_pickle
                   for task in range(env.num_tasks)]
    except Exception:  # not a submitit job after all: nothing to wait for
        return
    deadline = time.monotonic() + timeout_s
    while not all(path.exists() for path in results) and time.monotonic() < deadline:
        time.sleep(0.2)


FAILED_TRIAL = "a trial of the sweep failed: "
FAILED_JOB = "a job of the sweep failed: "
STOPPED_JOB = "a job of the sweep was stopped: "  # by a signal (StoppedBySignal): the sweep ends with it


@contextmanager
def launches_watched(launcher: Any, watch: Callable[[list[Any], int], list[Any]]) -> Iterator[None]:
    """Each batch of jobs the launcher ran passes through watch(jobs, number of the first), in the sweep's process,
    whichever launcher runs them. Patched on its class: the launcher the submitit launcher pickles for each job
    carries nothing of it (not the jobs seen so far)."""
    cls = type(launcher)
    own, plain = cls.__dict__.get("launch"), cls.launch

    def launch(self: Any, job_overrides: Any, initial_job_idx: int) -> Any:
        if self is launcher and getattr(self, "config", None) is not None:
            redact_sweep_record(self.config)  # written by the basic sweeper before its first launch
        if self is launcher:
            private_submitit_folder(self)
        done = plain(self, job_overrides, initial_job_idx=initial_job_idx)
        return watch(done, initial_job_idx) if self is launcher else done

    cls.launch = launch
    try:
        yield
    finally:
        if own is None:
            del cls.launch  # inherited again
        else:
            cls.launch = own


def private_submitit_folder(launcher: Any) -> None:
    """The submitit launcher's folder (hydra.launcher.submitit_folder, output_dir/.submitit/%j) holds each job's
    pickles: its overrides and composed recipe, and its log. Created readable by the user alone (0700) before
    submitit writes into it (with the umask's 0644 files, under a shared output_dir readable by every user)."""
    folder = str((getattr(launcher, "params", None) or {}).get("submitit_folder") or "")
    if not folder:  # not the submitit launcher
        return
    base = Path(folder.split("%j", 1)[0].rstrip("/") or ".")  # the part every job's folder is under
    if base == Path(".") or base.resolve() == Path.cwd().resolve():
        return  # not a folder of the sweep's own: left as it is
    try:
        base.mkdir(parents=True, exist_ok=True)
        base.chmod(0o700)
    except OSError as e:  # submitit reports a folder it cannot write; a folder of another user's stays theirs
        log.warning("could not make %s readable by you alone (%s): the jobs' pickles there hold their recipes",
                    base, e.strerror or e)


def redact_sweep_record(config: Any) -> None:
    """Hydra's basic sweeper writes the sweep's recipe and command line, unredacted, to multirun.yaml in the sweep
    folder (output_dir): rewritten with its secrets redacted, whole or not at all, before any job starts."""
    import yaml

    from training.redaction import redact_record
    from training.safe_write import write_atomic

    path = Path(str(config.hydra.sweep.dir)) / "multirun.yaml"
    try:
        record = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):  # not written by this sweeper (Optuna's)
        return
    clean = redact_record(record)
    if clean != record:
        write_atomic(path, yaml.safe_dump(clean, allow_unicode=True, sort_keys=False))


def stopped_jobs_end_the_sweep(done: list[Any], initial_job_idx: int, status: dict[str, int]) -> None:
    """A job of the submitit launcher stopped by a signal (SIGTERM, SLURM's warning without a requeue) comes back as
    a TrialFailed saying STOPPED_JOB: the sweep ends with it (exit STOPPED_EXIT) rather than launch its next batch."""
    from hydra.core.utils import filter_overrides

    from training.cli import TrialFailed
    from training.redaction import redact_overrides

    stopped = [(number, job, str(error).removeprefix(STOPPED_JOB)) for number, job in enumerate(done, initial_job_idx)
               if isinstance(error := getattr(job, "_return_value", None), TrialFailed)
               and str(error).startswith(STOPPED_JOB)]
    if not stopped:
        return
    for number, job, what in stopped:
        log.error("job #%d of the sweep (%s) was stopped: %s", number,
                  redact_overrides(" ".join(filter_overrides(job.overrides))), what.partition("\nFix: ")[0])
    status["code"] = STOPPED_EXIT
    first, _, what = stopped[0]
    reason, _, fix = what.partition("\nFix: ")  # the job's fix names the sweep's folder (sweep_resume)
    raise TrialFailed(str(KosovError(f"job #{first} of the sweep was stopped by a signal, and the sweep with it: no "
                                     f"later job starts ({reason})", fix=fix or sweep_resume(None))))


def sweep_resume(folder: str | Path | None) -> str:
    """What continues a sweep a signal stopped: the command again with its folder (the one holding 0/, 1/, ...).
    Without output_dir= the sweep picks a new timestamped folder, where resume=true would start every job over."""
    from training.run_dir import folder_override

    named = f"{folder_override(folder)} " if folder is not None else "the sweep's output_dir and "
    return (f"run the same command with {named}resume=true: each job continues from its checkpoint or starts, and "
            "a finished one is left as it is")


def sweep_folder(job_folder: str | Path, job_number: int) -> Path | None:
    """The folder that output_dir= names for a sweep whose job `job_number` ran in `job_folder` (output_dir/<job
    number>, or Hydra's sweep.dir/<job number> without output_dir); None under another hydra.sweep.subdir."""
    job_folder = Path(job_folder)
    return job_folder.parent if job_folder.name == str(job_number) else None


def sweep_stopped(fix: str) -> None:
    """A job run in the sweep's own process (the basic launcher) was stopped by a signal: that process ends now, its
    later jobs unstarted (the user, or SLURM's grace period, wants the command to end). `fix`: sweep_resume's."""
    from hydra.core.hydra_config import HydraConfig

    log.error("job #%d of the sweep was stopped by a signal, and the sweep with it: no later job starts. To continue "
              "the sweep, %s", HydraConfig.get().job.num, fix)
    raise SystemExit(STOPPED_EXIT) from None


@contextmanager
def job_failures_reported(status: dict[str, int]) -> Iterator[None]:
    """Jobs the submitit launcher ran (SLURM jobs) that failed with a kosov error come back to this process as their
    TrialFailed. Hydra's basic sweeper would raise the first and launch no later batch (hydra.sweeper.max_batch_size):
    instead every batch runs, as under the basic launcher, each failed job is logged here with its overrides, and the
    sweep ends with one line naming them all and the first's fix: exit 2 as for any kosov error (Hydra exits 1)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.utils import JobStatus, filter_overrides

    from training.cli import TrialFailed
    from training.redaction import redact_overrides
    sweep = BasicSweeper.sweep

    def watched_sweep(self, arguments: list[str]) -> Any:
        failed, total = [], [0]

        def go_on(done: list[Any], initial_job_idx: int) -> list[Any]:
            total[0] += len(done)
            kept = []
            for number, job in enumerate(done, initial_job_idx):
                error = getattr(job, "_return_value", None)
                if job.status is JobStatus.FAILED and isinstance(error, TrialFailed):
                    if str(error).startswith(STOPPED_JOB):
                        continue  # stopped_jobs_end_the_sweep
                    failed.append((number, str(error).removeprefix(FAILED_JOB)))
                    log.error("job #%d of the sweep (%s) failed: %s", number,
                              redact_overrides(" ".join(filter_overrides(job.overrides))),
                              failed[-1][1].partition("\nFix: ")[0])
                else:
                    kept.append(job)  # a bug's FAILED job: the sweeper raises its exception, with its traceback
            stopped_jobs_end_the_sweep(done, initial_job_idx, status)
            return kept

        with launches_watched(self.launcher, go_on):
            returns = sweep(self, arguments)
        if failed:
            status["code"] = 2
            first, what = failed[0]
            if len(failed) == 1:
                raise TrialFailed(f"{FAILED_JOB}{what}")
            what, _, fix = what.partition("\nFix: ")
            numbers = ", ".join(f"#{n}" for n, _ in failed)
            raise TrialFailed(str(KosovError(
                f"{len(failed)} of {total[0]} jobs of the sweep failed ({numbers}); the first, #{first}: {what}",
                fix=f"{fix or 'fix what failed'}; the others' errors are logged above and in their SLURM logs")))
        return returns

    BasicSweeper.sweep = watched_sweep
    try:
        yield
    finally:
        BasicSweeper.sweep = sweep


@contextmanager
def optuna_failures_reported(status: dict[str, int]) -> Iterator[None]:
    """With hydra.sweeper.max_failure_rate letting failed trials through, Hydra's Optuna sweeper ends a sweep whose
    every trial failed with a traceback from study.best_trial ("No trials are completed yet"). Watch the trials it
    launches: such a sweep ends with one kosov error naming the first failure (a bug: its traceback); a sweep that
    found its best trial despite some failed ones succeeds (exit 0) and says how many failed."""
    try:
        from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper
    except ImportError:  # no cluster extra, no Optuna sweeps
        yield
        return
    from hydra.core.utils import JobStatus

    from training.cli import TrialFailed
    sweep = OptunaSweeper.sweep

    def watched_sweep(self, arguments: list[str]) -> None:
        jobs: list[Any] = []

        def keep(done: list[Any], initial_job_idx: int) -> list[Any]:
            jobs.extend(done)
            stopped_jobs_end_the_sweep(done, initial_job_idx, status)
            return done

        try:
            with launches_watched(self.sweeper.launcher, keep):
                sweep(self, arguments)
        except TrialFailed:  # max_failure_rate ended the sweep at a failed trial, or a job stopped: its error, one line
            if status["code"] != STOPPED_EXIT:
                status["code"] = 2
            raise
        except Exception:
            if not jobs or any(job.status is not JobStatus.FAILED for job in jobs):
                raise  # not the trials' failure
            first = getattr(jobs[0], "_return_value", None)  # its exception (JobReturn.return_value raises it)
            if not isinstance(first, TrialFailed):
                if isinstance(first, BaseException):
                    raise first from None  # a bug: its traceback
                raise
            status["code"] = 2
            what, _, fix = str(first).removeprefix(FAILED_TRIAL).partition("\nFix: ")
            raise TrialFailed(str(KosovError(f"all {len(jobs)} trials of the sweep failed; the first: {what}",
                                             fix=f"{fix or 'fix what failed'}, then run the sweep again"))) from None
        if failed := sum(job.status is JobStatus.FAILED for job in jobs):
            log.warning("%d of %d trials of the sweep failed (hydra.sweeper.max_failure_rate=%s): the best trial is "
                        "the best of the others", failed, len(jobs), self.sweeper.max_failure_rate)
        status["code"] = 0  # within max_failure_rate: the sweep found its best trial

    OptunaSweeper.sweep = watched_sweep
    try:
        yield
    finally:
        OptunaSweeper.sweep = sweep
