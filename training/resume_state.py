"""What the Trainer restarts from 0 on every trainer.train call and a resumed run must carry on: the tokens trained
on and the training time. Each callback saves its value with every checkpoint (trainer_state.json's
stateful_callbacks, exactly at the checkpoint's step) and reads it back when a run resumes from one. And whether a
checkpoint resumed from is at the run's last step, with the metrics of a run that finished from it."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from training.run_dir import RunDir, checkpoint_state
from training.schema import KosovConfig

log = logging.getLogger(__name__)


class CarriedAcrossResume(TrainerCallback, ExportableState):
    """A value saved with each checkpoint under this class's name; `saved(state, key)` reads it on resume."""

    def saved(self, state: Any, key: str) -> Any:
        """The value the checkpoint resumed from holds, or None (a new run, or a checkpoint saved before kosov
        recorded it)."""
        name = type(self).__name__
        entry = state.stateful_callbacks.get(name)
        if entry is None:  # an older checkpoint: Trainer._save_checkpoint expects every stateful callback's entry
            state.stateful_callbacks[name] = self.state()
        return entry.get("attributes", {}).get(key) if isinstance(entry, dict) else None


class ResumedTokenCount(CarriedAcrossResume):
    """TRL's SFT trainer counts the tokens it trained on from 0 in every process: a resumed run goes on from the
    count its checkpoint holds, so the logged num_tokens and metrics.json's tokens_seen cover the whole run.

    TRL gathers the count across processes, so every process holds the same total. A checkpoint saved before kosov
    recorded it falls back to the last logged num_tokens, which may be a few steps older."""

    def __init__(self, trainer: Any = None):
        self.trainer = trainer

    def state(self) -> dict:
        return {"args": {}, "attributes": {"total_train_tokens": getattr(self.trainer, "_total_train_tokens", None)}}

    def on_train_begin(self, args, state, control, **kwargs):
        recorded = self.saved(state, "total_train_tokens")
        if getattr(self.trainer, "_total_train_tokens", None) != 0:
            return
        if recorded is not None:
            self.trainer._total_train_tokens = recorded
        else:
            logged = [h["num_tokens"] for h in state.log_history if "num_tokens" in h]
            if logged:
                self.trainer._total_train_tokens = logged[-1]


class ResumedTrainTime(CarriedAcrossResume):
    """The Trainer times each trainer.train call from 0: a resumed run adds the training seconds its checkpoint
    holds, so metrics.json's train_runtime_s covers every segment of the run. What a killed segment trained after
    its last checkpoint is not counted: those steps were trained again. A checkpoint saved before kosov recorded the
    time adds nothing."""

    def __init__(self):
        self.earlier = 0.0  # the seconds the segments before this one trained, up to the checkpoint it resumed from
        self.started: float | None = None

    def state(self) -> dict:
        now = self.earlier + (time.time() - self.started if self.started is not None else 0.0)
        return {"args": {}, "attributes": {"train_seconds": round(now, 3)}}

    def on_train_begin(self, args, state, control, **kwargs):
        recorded = self.saved(state, "train_seconds")
        self.earlier, self.started = float(recorded or 0.0), time.time()


class TrainedForEpochs(CarriedAcrossResume):
    """The recipe's num_train_epochs, saved with each checkpoint: whether an epoch-based run's checkpoint is at its
    end is judged against the length it trained toward (config.yaml is rewritten as soon as a resumed run starts)."""

    def __init__(self, epochs: float):
        self.epochs = epochs

    def state(self) -> dict:
        return {"args": {}, "attributes": {"num_train_epochs": self.epochs}}


def saved_epochs(checkpoint_state: dict[str, Any]) -> Any:
    """TrainedForEpochs' record in a checkpoint's trainer_state.json, or None (saved before kosov recorded it)."""
    entry = (checkpoint_state.get("stateful_callbacks") or {}).get(TrainedForEpochs.__name__)
    return entry.get("attributes", {}).get("num_train_epochs") if isinstance(entry, dict) else None


def finish_at_checkpoint(trainer: Any, checkpoint: Path, no_step_left: Callable[[], None] | None = None) -> Any:
    """A run killed after its last checkpoint but before its adapter and metrics.json were saved (in the end-of-
    training eval suite, say): trainer.train would take one step past the end. Load the checkpoint's weights and
    state instead and run the callbacks of a train call that takes no step (the end-of-training suite among them).
    `no_step_left` is called before those callbacks. Returns the train output, or None where the weights load only
    inside trainer.train (FSDP, DeepSpeed)."""
    from transformers.trainer_callback import TrainerState
    from transformers.trainer_utils import TrainOutput

    if trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled:
        log.warning("%s is at the run's last step, but under FSDP/DeepSpeed its weights load only as training "
                    "resumes: the Trainer takes one step more", checkpoint)
        return None
    log.info("%s is at the run's last step: finishing the run from it (no further step)", checkpoint)
    trainer._load_from_checkpoint(str(checkpoint))
    trainer.state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
    trainer.state.is_local_process_zero = trainer.is_local_process_zero()  # the JSON holds the saving process's
    trainer.state.is_world_process_zero = trainer.is_world_process_zero()
    if trainer.args.max_steps > 0:  # the recipe's last step, where the checkpoint is: not the run's longer plan
        trainer.state.max_steps = trainer.args.max_steps
    if no_step_left is not None:
        no_step_left()
    handler, args = trainer.callback_handler, trainer.args
    trainer.control = handler.on_train_begin(args, trainer.state, trainer.control)
    trainer.control = handler.on_train_end(args, trainer.state, trainer.control)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return TrainOutput(trainer.state.global_step, sum(losses) / len(losses) if losses else 0.0,
                       {"train_runtime": 0.0})


def checkpoint_at_end(cfg: KosovConfig, run: RunDir) -> bool:
    """Whether the checkpoint resume=true continues from is at the run's last step: the Trainer, resumed there,
    would take one step more and change what the run trained. The last step is the recipe's max_steps; for an
    epoch-based run, the checkpoint's own step count when the recipe's epochs are the ones it trained toward."""
    if run.resume_from is None:
        return False
    state = checkpoint_state(run.resume_from) or {}
    if cfg.method.max_steps > 0:
        last = cfg.method.max_steps
    else:
        epochs = saved_epochs(state)
        if epochs is None and (run.path / "config.yaml").is_file():  # a checkpoint from before kosov recorded it
            saved = yaml.safe_load((run.path / "config.yaml").read_text(encoding="utf-8")) or {}
            epochs = saved.get("method", {}).get("num_train_epochs")
        last = state.get("max_steps") if epochs == cfg.method.num_train_epochs else None  # changed: train on
    return bool(last) and state.get("global_step", 0) >= last


def finished_metrics(run: RunDir) -> dict[str, Any] | None:
    """metrics.json of a run whose checkpoint is at its last step (checkpoint_at_end), when written after that
    checkpoint: the run finished (one from before names an earlier step: the job was killed while it finished)."""
    if not (run.path / "metrics.json").is_file():
        return None
    metrics = json.loads((run.path / "metrics.json").read_text(encoding="utf-8"))
    return metrics if metrics.get("global_step") == (checkpoint_state(run.resume_from) or {}).get("global_step") \
        else None
