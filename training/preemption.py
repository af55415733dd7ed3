"""SIGTERM (SLURM preemption, `scancel`, a time limit, Kubernetes eviction) ends a training job with a checkpoint.

The default for SIGTERM is to die at once, losing every step since the last checkpoint. Instead the job finishes the
optimizer step under way, saves a checkpoint, and stops with an error saying `resume=true` continues it (the command
exits with status 75, EX_TEMPFAIL: sweep_jobs.STOPPED_EXIT, which a requeue script tells from a user error's 2). A
second SIGTERM within REPEAT_S of the first is the same request passed on (torchrun / accelerate launch forward the
SIGTERM SLURM sent to the whole job step, so each worker gets it twice) and is ignored; a later one kills the job at
once. SLURM waits KillWait (30 s by default) between SIGTERM and SIGKILL: for long steps, ask for the signal earlier
(`#SBATCH --signal=TERM@120`); under torchrun the agent also kills its workers TORCH_ELASTIC_SHUTDOWN_TIMEOUT
(30 s) after passing SIGTERM on.

Under Hydra's submitit launcher, SLURM warns the job with SIGUSR2 (`SUBMITIT_PREEMPT_SIGNAL`) `signal_delay_s`
before its time limit, and on preemption where the cluster sends the user signal. submitit's own handler would requeue
the job at once (rank 0 exits mid-step, other ranks hang, no checkpoint). kosov takes the signal over: the step under
way ends with a checkpoint, then submitit's handler runs as it would have (rank 0 dumps the submission and
`scontrol requeue`s the job, or says why it is not requeued), and the requeued job continues with `resume: true`.

Every process of a distributed job stops at the same step: the flag is reduced across processes at each step.
SLURM and a terminal send SIGTERM to the whole process group, DataLoader workers included (method.
dataloader_num_workers > 0): they ignore it (workers_ignore_sigterm) and end when the main process stops them.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from transformers import TrainerCallback

from training.errors import KosovError

log = logging.getLogger(__name__)

REPEAT_S = 10.0  # a SIGTERM this soon after the first is the launcher passing the same one on


class LeftToRankZero(KosovError):
    """A rank other than 0 of a submitit job stopped by SLURM's warning, with its checkpoint: rank 0 requeues the job
    or fails with the reason it could not. The CLI ends such a rank quietly, with status 0 and a result for submitit:
    a kosov error saying to resume would fail the task (and where SLURM ends a job step at its first failed task,
    KillOnBadExit, end rank 0 before it requeued)."""


class StoppedBySignal(KosovError):
    """The run stopped because a signal asked it to (SIGTERM, SLURM's warning), with a checkpoint to resume from or
    with the run finished: a sweep ends here too rather than starting its next job (the user, or SLURM's grace
    period, wants the command to end)."""


def resume_fix(folder: Any) -> str:
    """What continues a run a signal stopped: the command again, naming its folder. Without output_dir= the command
    picks a new timestamped folder, and resume=true there would start over."""
    from training.run_dir import folder_override

    return (f"continue it with the same command and {folder_override(folder)} resume=true (a requeued "
            "job: always pass resume=true)")


class SuiteStopped(BaseException):
    """A stop asked for while an eval suite ran: the suite is given up for the checkpoint. A BaseException, like
    KeyboardInterrupt, so that lm-eval's and the tokenizers' `except Exception` do not swallow it."""


class StopOnSigterm(TrainerCallback):
    def __init__(self) -> None:
        self.in_suite = False  # an eval suite runs (stoppable): a stop asked now gives it up
        self.asked = False
        self.asked_at = 0.0  # time.monotonic() of the first SIGTERM
        self.trained = False  # training is over: what is left is the final evaluation and save
        self.stopped_at: int | None = None  # the step whose checkpoint was saved on the way out
        self.previous: Any = None
        self.installed = False
        self.requeue: Any = None  # submitit's handler of its preempt signal, run after the checkpoint
        self.requeue_signal: int | None = None  # that signal
        self.requeue_asked = False  # the stop came from that signal: hand the job to submitit's requeue
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            previous = signal.signal(signal.SIGTERM, self._on_sigterm)
            self.previous = signal.SIG_DFL if previous is None else previous  # None: set outside Python
            self.installed = True
            usr = submitit_preempt_signal()
            if usr is not None:
                previous = signal.signal(usr, self._on_preempt_warning)
                self.requeue = previous.handler if isinstance(previous, CarryOnUnlessRequeued) else previous
                self.requeue_signal = usr

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if not self.asked:
            log.warning("SIGTERM: %s (another SIGTERM %.0f s or more from now stops at once)", self._what_happens_now(),
                        REPEAT_S)
            self.asked, self.asked_at = True, now
            self._give_up_suite()
        elif now - self.asked_at < REPEAT_S:
            log.info("SIGTERM again, %.1f s after the first (a launcher passing it on): still saving",
                     now - self.asked_at)
        else:  # the user means it: what SIGTERM did before
            log.warning("second SIGTERM: stopping at once, without the checkpoint")
            previous = self.previous
            self.restore()
            if callable(previous):
                previous(signum, frame)
            else:
                os.kill(os.getpid(), signal.SIGTERM)  # SIG_DFL restored: the process ends as SIGTERM ends it

    def _what_happens_now(self) -> str:
        """What a first SIGTERM does at this point of the run, for its log line."""
        if self.in_suite:  # _give_up_suite, next: the checkpoint of the suite's step is the run's
            return "giving up the eval suite under way, then stopping with the checkpoint of its step"
        if self.trained:  # after the last step's end: its checkpoint is saved (or being saved) as planned
            return ("the run has no step left: it finishes (final evaluation, adapter, metrics.json), then stops; an "
                    "end-of-training eval suite not yet begun is skipped instead, and the run stops with the last "
                    "checkpoint for a resumed run to finish")
        return "saving a checkpoint at the end of this step, then stopping"

    def stops_run(self, resume: bool) -> bool:
        """Whether the run stops with the checkpoint of the step a stop was asked in (and is resumed or requeued to
        finish), rather than finishing here: at any step, except for a SLURM warning that submitit cannot requeue
        without resume=true (that run finishes in this job while the time limit allows)."""
        return self.stopped_at is not None and (not self.requeue_asked or resume)

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.requeue_signal).name if self.requeue_asked and self.requeue_signal else "SIGTERM"

    def _on_preempt_warning(self, signum: int, frame: Any) -> None:
        if not self.requeue_asked:
            log.warning("%s from SLURM through submitit (time limit or preemption ahead): saving a checkpoint at "
                        "the end of this step, then handing the job to submitit to requeue", signal.Signals(signum).name)
        self.requeue_asked = True
        if not self.asked:
            self.asked, self.asked_at = True, time.monotonic()
            self._give_up_suite()

    @contextmanager
    def stoppable(self) -> Iterator[None]:
        """Run an eval suite so that a stop gives it up (SuiteStopped) instead of waiting for it: a suite's
        generation takes minutes, SLURM's grace period 30 s. A stop asked before the suite began skips it."""
        if self.asked:
            raise SuiteStopped()
        self.in_suite = True
        try:
            yield
        finally:
            self.in_suite = False

    def stop_after_the_finish(self, folder: Any) -> None:
        """A SIGTERM that came once no step was left (the last checkpoint's save, the final evaluation, the adapter's
        save): the run finished first, under this handler, and the command stops now (a sweep starts no further job).
        A SIGTERM during a suite gives the suite up instead (stoppable)."""
        if self.asked and not self.requeue_asked:  # SLURM's warning without resume=true: the run was to finish here
            from training.run_dir import folder_override

            raise StoppedBySignal(f"SIGTERM came as the run finished; it finished first, and the run in {folder} is "
                                  "complete (adapter and metrics.json): stopping here",
                                  fix=f"nothing to resume for this run; the same command with "
                                      f"{folder_override(folder)} resume=true goes on from here (the rest "
                                      "of a sweep, the GRPO stage after an SFT stage)")

    def _give_up_suite(self) -> None:
        if self.in_suite:
            self.in_suite = False
            log.warning("giving up the eval suite under way for the checkpoint")
            raise SuiteStopped()

    def restore(self) -> None:
        if self.installed and threading.current_thread() is threading.main_thread():
            self._give_back_requeue_signal()
            signal.signal(signal.SIGTERM, self.previous)
            self.installed = False

    def hand_over(self, resume: bool, checkpoint: Any) -> None:
        """After the checkpoint of a stop that submitit's signal asked for: run submitit's handler as the signal
        would have. Rank 0 requeues the job and exits (SystemExit); on the other ranks submitit's handler returns
        (they cannot tell whether rank 0 can requeue) and they end with LeftToRankZero. A job submitit will not
        requeue (out of requeues, `max_num_timeout`) gets a kosov error on rank 0."""
        if not (self.requeue_asked and callable(self.requeue)):
            return
        if not resume:  # requeued without it, the job would stop at once on its own folder
            raise KosovError(f"SLURM's time-limit/preemption warning stopped the run with a checkpoint ({checkpoint})"
                             ", but the job was not requeued: a requeued job starts again with the same recipe, "
                             "and without resume=true it would refuse its own run folder",
                             fix="resubmit with resume=true, and set `resume: true` in recipes you run under the "
                                 "submitit launcher (as experiment=qwen3-8b-ko-sft-slurm does)")
        log.warning("%s saved: submitit requeues the job, which continues from it", checkpoint)
        try:
            self.requeue(self.requeue_signal, None)
        except Exception as e:  # submitit's UncompletedJobError: e.g. "timed-out too many times"
            raise KosovError(f"stopped with a checkpoint ({checkpoint}); submitit did not requeue the job: {e}",
                             fix="resubmit the same command (resume=true continues it), or allow more requeues "
                                 "with hydra.launcher.max_num_timeout") from None
        raise LeftToRankZero(f"stopped with a checkpoint ({checkpoint}): the job's first process requeues the job, "
                             f"or says why it could not; this one (rank {os.environ.get('RANK', '?')}) ends here")

    def _anyone_asked(self, args: Any) -> bool:
        """Whether any process was asked to stop; every process learns whether it was submitit's warning (one
        process's is enough: rank 0 is the one that requeues)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            import torch

            flag = torch.tensor([2 if self.requeue_asked else 1 if self.asked else 0], device=args.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            self.requeue_asked = self.requeue_asked or flag.item() == 2
            return flag.item() > 0
        return self.asked

    def no_step_left(self) -> None:
        """A run finishing from its last checkpoint without a step (resume_state.finish_at_checkpoint): there is no
        step to end with a checkpoint, so SLURM's warning in its end suite is submitit's again, which requeues the
        job at once; one that came while the job loaded is handed to submitit now."""
        self._give_back_requeue_signal()
        if self.requeue_asked and callable(self.requeue):
            log.warning("%s came before the run's end suite: submitit requeues the job, which finishes from its last "
                        "checkpoint", signal.Signals(self.requeue_signal).name)
            CarryOnUnlessRequeued(self.requeue)(self.requeue_signal, None)

    def on_step_end(self, args, state, control, **kwargs):
        if self._anyone_asked(args):
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step
        elif state.max_steps and state.global_step >= state.max_steps:
            self.trained = True  # no step left: a SIGTERM from here gets no "end of this step" checkpoint
            self._give_back_requeue_signal()  # no step left to end with a checkpoint: submitit's own handling
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self.trained = True  # the handler stays until metrics.json is written (train.py)
        self.agree(args)

    def agree(self, args: Any) -> None:
        """Every process takes the stop decision of the one that stopped: the end-of-training suite runs on the main
        process alone, and a SIGTERM during it gives it up there only (SuiteCallback sets `stopped_at`). The other
        processes went on to the final evaluation and the save's wait_for_everyone, and waited there for the main
        process, which had stopped, until the DDP timeout (30 min). Runs after SuiteCallback.on_train_end (it is
        added first), on every process, so that each one stops with the same checkpoint or none does."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        import torch

        flags = torch.tensor([-1 if self.stopped_at is None else self.stopped_at, int(self.requeue_asked)],
                             dtype=torch.long, device=getattr(args, "device", None) or "cpu")
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        step, requeue = (int(v) for v in flags.tolist())
        if step >= 0 and self.stopped_at is None:
            log.warning("another process stopped the run at step %d (%s during its eval suite): stopping with it",
                        step, self.signal_name)
        self.stopped_at = None if step < 0 else step
        self.requeue_asked = self.requeue_asked or bool(requeue)

    def _give_back_requeue_signal(self) -> None:
        """submitit's handler back, for a warning that comes when no step is left to end with a checkpoint (the end
        suite, the final save): it requeues the job at once, or out of requeues lets the run finish in this one."""
        if self.requeue_signal is not None and self.installed and \
                threading.current_thread() is threading.main_thread():
            signal.signal(self.requeue_signal, CarryOnUnlessRequeued(self.requeue))


class WorkerIgnoresSigterm:
    """A DataLoader worker's worker_init_fn: SIGTERM ignored, then the loader's own (transformers' seed_worker). SLURM's
    SIGTERM reaches the whole process group: PyTorch's worker handler ended the worker, and the main process failed
    with "DataLoader worker (pid ...) is killed by signal: Terminated" instead of saving its checkpoint. The main
    process stops its workers when it is done; a worker whose main process died ends by itself (PyTorch's watchdog)."""

    def __init__(self, init_fn: Any = None):
        self.init_fn = init_fn

    def __call__(self, worker_id: int) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if self.init_fn is not None:
            self.init_fn(worker_id)


def workers_ignore_sigterm(trainer: Any) -> None:
    """Every train and eval DataLoader this trainer makes (SFT's, GRPO's) gets WorkerIgnoresSigterm, wrapped around its
    own worker_init_fn; this trainer only, transformers is left as it is."""
    for name in ("get_train_dataloader", "get_eval_dataloader"):
        make = getattr(trainer, name)

        def made(*args: Any, _make: Any = make, **kwargs: Any) -> Any:
            loader = _make(*args, **kwargs)
            inner = getattr(loader, "base_dataloader", loader)  # accelerate's DataLoaderShard iterates this one
            if not isinstance(inner.worker_init_fn, WorkerIgnoresSigterm):  # an eval loader kept for reuse
                inner.worker_init_fn = WorkerIgnoresSigterm(inner.worker_init_fn)
            return loader

        setattr(trainer, name, made)


class CarryOnUnlessRequeued:
    """submitit's handler of SLURM's warning, where the run has no step left to end with a checkpoint. It requeues
    the job and exits; out of requeues (`hydra.launcher.max_num_timeout`) it raised in the middle of the end suite
    or the final save, ending the job with its traceback: the run now finishes in this job while the time limit
    allows (the warning comes `signal_delay_s` before it), and is resumable if it does not."""

    def __init__(self, handler: Any):
        self.handler = handler

    def __call__(self, signum: int, frame: Any) -> None:
        try:
            self.handler(signum, frame)
        except Exception as e:  # submitit's UncompletedJobError ("timed-out too many times")
            log.warning("%s: submitit did not requeue the job (%s): finishing the run in this one",
                        signal.Signals(signum).name, e)


def submitit_preempt_signal() -> int | None:
    """The signal submitit's job handler requeues on (SIGUSR2 unless SUBMITIT_PREEMPT_SIGNAL says), when this process
    is a submitit job that installed that handler; else None."""
    import sys

    if "submitit" not in sys.modules:  # only a submitit job runs with submitit imported and its handler set
        return None
    from submitit.core.job_environment import JobEnvironment, SignalHandler

    try:
        usr = JobEnvironment._usr_sig()
    except RuntimeError:  # an unknown signal name in SUBMITIT_PREEMPT_SIGNAL: submitit itself fails on it
        return None
    handler = signal.getsignal(usr)
    if isinstance(handler, CarryOnUnlessRequeued):  # an earlier run in this job (a chained SFT stage) gave it back
        handler = handler.handler
    return usr if isinstance(getattr(handler, "__self__", None), SignalHandler) else None
