"""metrics.json of a finished run, from the Trainer's log history (train.summarize), and the run's wall time across
its resumes (RunWallTime). Imports transformers: train.py imports it inside train(), after the mirror's settings."""

from __future__ import annotations

import math
import time
from typing import Any

from training.resume_state import CarriedAcrossResume, ResumedTrainTime


class RunWallTime(CarriedAcrossResume):
    """The run's wall time, saved with each checkpoint: the seconds of the segments before the one that saved it (up
    to the checkpoint it resumed from) plus this segment's since `started`, its loading included. A resumed run reads
    it back, so metrics.json's wall_time_s covers every segment up to the checkpoint each one resumed from (what a
    killed segment spent after its last checkpoint is not counted: nothing records it). A checkpoint saved before
    kosov recorded it gives the training seconds it holds (ResumedTrainTime's), the part of that time it knows."""

    def __init__(self, started: float):
        self.started = started  # when this segment started (time.time()), as summarize's `started`
        self.earlier = 0.0  # the wall seconds of the segments before this one

    def state(self) -> dict:
        return {"args": {}, "attributes": {"wall_seconds": round(self.earlier + time.time() - self.started, 3)}}

    def on_train_begin(self, args, state, control, **kwargs):
        recorded = self.saved(state, "wall_seconds")
        if recorded is None:  # a new run (0), or a checkpoint from before kosov recorded it
            trained = (state.stateful_callbacks.get(ResumedTrainTime.__name__) or {}).get("attributes", {})
            recorded = trained.get("train_seconds") if state.global_step else 0.0
        self.earlier = float(recorded or 0.0)


def _value(v: Any) -> bool:
    """A logged number: TRL logs a reward's mean as None (NaN on some paths) for a logging window in which that
    reward scored no completion (math_accuracy on rows without an answer, a judge that could not parse)."""
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _summaries(history: list[dict], wanted: Any) -> dict[str, dict[str, Any]]:
    """first / last / mean of each logged key wanted(key) accepts, over the windows where it has a value; a key
    without any is left out."""
    keys = [k for k in dict.fromkeys(k for h in history for k in h) if wanted(k)]
    values = {k: [h[k] for h in history if _value(h.get(k))] for k in keys}
    return {k: {"first": v[0], "last": v[-1], "mean": sum(v) / len(v)} for k, v in values.items() if v}


def summarize(trainer: Any, train_output: Any, data_summary: dict[str, Any], started: float,
              earlier_train_s: float = 0.0, earlier_wall_s: float = 0.0) -> dict[str, Any]:
    """metrics.json; started: when this segment of the run started (time.time()); earlier_train_s and earlier_wall_s:
    the training and wall seconds of the segments before a resume (ResumedTrainTime, RunWallTime), up to the
    checkpoint this one resumed from. train_runtime_s and wall_time_s both cover the whole run: wall_time_s is this
    segment's wall time (loading and saving included) plus the earlier segments' (their loading included).
    rewards / eval_rewards: GRPO's total reward (reward, eval_reward) and each reward's mean (rewards/<name>/mean,
    eval_rewards/<name>/mean) as first / last / mean over the logging windows that scored."""
    history = trainer.state.log_history
    train_losses = [(h["step"], h["loss"]) for h in history if "loss" in h]  # a NaN loss stays: it diverged
    eval_losses = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    tokens = [h["num_tokens"] for h in history if "num_tokens" in h]
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    runtime = train_output.metrics.get("train_runtime")
    return {
        "global_step": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "first_train_loss": train_losses[0][1] if train_losses else None,
        "last_train_loss": train_losses[-1][1] if train_losses else None,
        "train_loss_curve": train_losses,
        "first_eval_loss": eval_losses[0][1] if eval_losses else None,
        "eval_loss": eval_losses[-1][1] if eval_losses else None,
        "eval_loss_curve": eval_losses,
        "tokens_seen": tokens[-1] if tokens else None,
        "train_runtime_s": round(earlier_train_s + runtime, 4) if runtime is not None else None,
        "wall_time_s": round(earlier_wall_s + time.time() - started, 2),
        "trainable_parameters": trainable,
        "rewards": _summaries(history, lambda k: k == "reward" or (k.startswith("rewards/") and k.endswith("/mean"))),
        "reward_curve": [(h["step"], h["reward"]) for h in history if _value(h.get("reward"))],
        "eval_rewards": _summaries(history, lambda k: k == "eval_reward"
                                   or (k.startswith("eval_rewards/") and k.endswith("/mean"))),
        "data": data_summary,
        "suite_failures": sum(1 for h in history if h.get("suite/failed")),  # eval suites that failed (logged)
    }
