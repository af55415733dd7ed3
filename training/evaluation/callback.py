"""Eval during training: a quick suite on the live model every `eval.every_n_steps` steps and at the end.

    kosov train experiment=smoke-sft eval=smoke eval.every_n_steps=10

Scores go to the log history as `suite/<task>` and, through the trainer's callbacks, to wandb / tensorboard, which
put every training-time value under `train/` (`train/suite/<task>`). A suite that fails (out of memory, a benchmark
that cannot be read) logs its traceback and `suite/failed` = 1 and training goes on; task names are checked before
training starts (and eval.thinking_max_new_tokens against the model's window, and thinking "on" against the chat
template, once they load); a configuration error found at a suite step (KosovError) stops the run. It runs on the
main process only; under DDP the other processes wait for it by watching for a file in the run's checkpoints folder
(training/rendered_store.py's from_main), not in a collective: a suite longer than the process group's timeout
(train.DDP_TIMEOUT_S, 30 min) ended the run with a bare gloo/NCCL timeout. The main process's KosovError stops them
too, and a main process that dies mid-suite stops them once its heartbeat file goes quiet.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from transformers import Trainer, TrainerCallback

from training.errors import KosovError
from training.models import sharded_by
from training.preemption import SuiteStopped
from training.schema import EvalConfig
from training.evaluation.generative import check_prompts, jobs_of, run_generative
from training.evaluation.harness import evaluate_live, lm_eval_jobs, task_manager
from training.evaluation.thinking import check_thinking_switch

log = logging.getLogger(__name__)

SUITE_MARKER = "eval-suite"  # the name of the other processes' marker files (.eval-suite-*.json) in checkpoints/


def check_unsharded(environ: Mapping[str, str] | None = None) -> None:
    """The suite runs on the main process alone, on its copy of the model: under FSDP or ZeRO-3 that copy is a
    shard, and its forward pass would wait forever for the other processes (accelerate launch says which)."""
    if sharded := sharded_by(environ):
        raise KosovError(f"eval.every_n_steps runs the suite on the main process alone, which under {sharded} holds "
                         "only a shard of the model",
                         fix="set eval.every_n_steps=0 and evaluate the saved adapter with kosov eval, or train with "
                             "DDP / ZeRO-2 (recipes/accelerate/ddp.yaml, zero2.yaml)")


def check_tasks(ecfg: EvalConfig, window: int | None = None, model: str = "the model") -> list[str | None]:
    """The suite's lm-eval task names resolved before training starts: a misspelt one fails now, with the names it
    may have meant, not at the first suite step (where a failing suite no longer stops training). With the model's
    context window (`window`), eval.thinking_max_new_tokens is checked against it too (check_suite_window). Returns
    the thinking modes the suite's lm-eval tasks run in. kosov's own evals' prompt files are read now too: an empty
    or missing one is a KosovError, which at a suite step would stop the run (under DDP, its main process only)."""
    check_prompts(ecfg)
    if not ecfg.tasks:
        return []
    modes = list(dict.fromkeys(m for _, m in lm_eval_jobs(ecfg, task_manager(list(ecfg.tasks)))))
    check_suite_window(ecfg, modes, window, model)
    return modes


def context_window(model: Any) -> int | None:
    """The context window lm-eval's hf backend gives the suite's model (HFLM.max_length, from the model's config);
    None where the config names none."""
    config = getattr(model, "config", None)
    for key in ("n_positions", "max_position_embeddings", "n_ctx"):  # HFLM's order
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_suite_window(ecfg: EvalConfig, modes: list[str | None], window: int | None, model: str = "the model"
                       ) -> None:
    """eval.thinking_max_new_tokens against the model's window before training, not at the first suite step: for the
    lm-eval tasks' thinking `modes`, and for kosov's own evals, which generate in every mode of eval.thinking."""
    from training.evaluation.thinking import check_window

    own = [mode for _, mode in jobs_of(ecfg)]
    for mode in dict.fromkeys([*modes, *own]):
        check_window(ecfg, mode, window, model)


class SuiteCallback(TrainerCallback):
    stop: Any = None  # train.py's StopOnSigterm: a run it stops at its last step skips the end suite
    resume: bool = False  # the recipe's resume flag, which decides whether a SLURM warning stops the run

    def __init__(self, ecfg: EvalConfig, tokenizer: Any, stop_ids: list[int] | None = None):
        check_thinking_switch(ecfg, tokenizer, "the run's chat template")  # before training, not at its first suite
        self.ecfg, self.tokenizer, self.stop_ids = ecfg, tokenizer, stop_ids  # stop_ids: where an answer ends
        self.trainer: Any = None  # set by train.py once the trainer exists: scores are logged through it
        self.last_step = -1

    def _runs(self, state: Any) -> bool:
        """Whether this process runs the suite at this step: the main process, once per step."""
        return state.is_world_process_zero and state.global_step != self.last_step and self.trainer is not None

    def _run(self, state: Any, model: Any) -> None:
        if not self._runs(state):
            return
        import torch

        was_training = model.training
        model.eval()
        scores: dict[str, float] | None = None
        try:
            with torch.no_grad():
                scores = {f"suite/{t}": s.value for t, s in evaluate_live(self.ecfg, model, self.tokenizer).items()}
                own = run_generative(model, self.tokenizer, self.ecfg, jobs_of(self.ecfg),
                                     f"step {state.global_step}", stop_ids=self.stop_ids)
            scores.update({f"suite/{name}": score["value"] for name, score in own.items()})
        except KosovError:  # a configuration error (a limit that does not fit the window): every suite would fail
            raise
        except Exception:  # not SuiteStopped or Ctrl-C (BaseExceptions): a suite is not worth the run
            log.exception("suite %s at step %d failed; training goes on without its scores", self.ecfg.suite,
                          state.global_step)
            scores = None
        finally:
            model.train(was_training)
        if scores is None:  # the traceback (and the tensors its frames held) is gone: give the memory back
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self._log({"suite/failed": 1.0})
        else:
            log.info("suite %s at step %d: %s", self.ecfg.suite, state.global_step, scores)
            self._log(scores)
        self.last_step = state.global_step  # a suite that ran (or failed): one given up runs again at the end

    def _log(self, scores: dict[str, float]) -> None:
        """Into the log history and the trackers, leaving the step's own log alone. Trainer.log's on_log clears
        control.should_log: called from on_step_end it skipped the Trainer's loss log at this step (and under DDP the
        loss all-gather inside it, which the other processes still did: a collective mismatch). And the base
        Trainer's log, not TRL's: TRL's averages and clears its train metrics (token accuracy, rewards) into
        whatever row it logs, which belong to the step's own log."""
        control = self.trainer.control
        should_log = control.should_log
        try:
            Trainer.log(self.trainer, dict(scores))
        finally:
            control.should_log = should_log
            self.trainer.control = control

    def _awaited(self, args: Any, state: Any, suite: Callable[[], bool | None]) -> bool:
        """suite() on the main process, the other processes waiting for it (from_main's marker file, beside the
        checkpoints) rather than going on to the next collective, which would time out under a suite longer than the
        process group's timeout. Returns whether the main process gave the suite up (SuiteStopped), on every
        process; its KosovError is every process's."""
        from training.rendered_store import from_main

        if args is None or getattr(args, "world_size", 1) <= 1:
            return bool(suite())
        if state.global_step == self.last_step:  # ran at this step (the last one's suite, before the end): every
            return False  # process knows it, so none waits for a suite the main process skips
        work = f"running the eval suite {self.ecfg.suite} at step {state.global_step} (it runs there alone)"
        gave_up = from_main(Path(args.output_dir) / SUITE_MARKER, lambda: {"gave_up": bool(suite())}, work)["gave_up"]
        if not gave_up:
            self.last_step = state.global_step  # as _run keeps it on the main process: a given-up suite runs again
        return gave_up

    def _run_stoppable(self, state: Any, model: Any) -> bool:
        """The suite, given up if a stop (SIGTERM, SLURM's warning) is asked before or while it runs: SLURM's grace
        period is for the checkpoint, not for a suite's generation. Returns whether it was given up."""
        if self.stop is None or not self._runs(state):  # no suite here: nothing to give up, and no reason to stop
            self._run(state, model)
            return False
        try:
            with self.stop.stoppable():
                self._run(state, model)
        except SuiteStopped:
            log.warning("%s: no suite at step %d", self.stop.signal_name, state.global_step)
            return True
        return False

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.ecfg.every_n_steps and state.global_step % self.ecfg.every_n_steps == 0:
            self._awaited(args, state, lambda: self._run_stoppable(state, model))  # given up: StopOnSigterm,
            # after this callback, saves and stops (its all-reduce tells the other processes)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if state.max_steps and state.global_step < state.max_steps:  # stopped early (SIGTERM): SLURM's KillWait
            log.info("training stopped at step %d of %d: no suite run at the end", state.global_step, state.max_steps)
            return  # is for the checkpoint and the exit, not for a whole suite's generation
        if self.stop is not None and self.stop.stops_run(self.resume):  # asked during the last step: it stops
            log.info("%s came at the last step: the resumed (or requeued) job runs the end-of-training suite",
                     self.stop.signal_name)
            return
        finishes_here = self.stop is not None and self.stop.requeue_asked and not self.resume  # the time limit
        # allows it: SLURM's warning that submitit cannot requeue lets the run finish in this job, suite included
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}" if args is not None else None
        if finishes_here or checkpoint is None or not checkpoint.is_dir():
            self._awaited(args, state, lambda: self._run(state, model))
        elif self._awaited(args, state, lambda: self._run_stoppable(state, model)):  # stopped after the last step's
            # end, before or during the suite:
            self.stop.stopped_at = state.global_step  # the run stops with that step's checkpoint (train.py), and
            # the resumed run finishes from it, suite included
