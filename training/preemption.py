"""SIGTERM (SLURM preemption, `scancel`, a time limit, Kubernetes eviction) ends a training job with a checkpoint.

The default for SIGTERM is to die at once, losing every step since the last checkpoint. Instead the job finishes the
optimizer step under way, saves a checkpoint, and stops with an error saying `resume=true` continues it. A second
SIGTERM within REPEAT_S of the first is the same request passed on (torchrun / accelerate launch forward the
SIGTERM SLURM sent to the whole job step, so each worker gets it twice) and is ignored; a later one kills the job at
once. SLURM waits KillWait (30 s by default) between SIGTERM and SIGKILL: for long steps, ask for the signal earlier
(`#SBATCH --signal=TERM@120`); under torchrun the agent also kills its workers TORCH_ELASTIC_SHUTDOWN_TIMEOUT
(30 s) after passing SIGTERM on.

Every process of a distributed job stops at the same step: the flag is reduced across processes at each step.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

from transformers import TrainerCallback

log = logging.getLogger(__name__)

REPEAT_S = 10.0  # a SIGTERM this soon after the first is the launcher passing the same one on


class StopOnSigterm(TrainerCallback):
    def __init__(self) -> None:
        self.asked = False
        self.asked_at = 0.0  # time.monotonic() of the first SIGTERM
        self.stopped_at: int | None = None  # the step whose checkpoint was saved on the way out
        self.previous: Any = None
        self.installed = False
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            previous = signal.signal(signal.SIGTERM, self._on_sigterm)
            self.previous = signal.SIG_DFL if previous is None else previous  # None: set outside Python
            self.installed = True

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if not self.asked:
            log.warning("SIGTERM: saving a checkpoint at the end of this step, then stopping (another SIGTERM "
                        "%.0f s or more from now stops at once)", REPEAT_S)
            self.asked, self.asked_at = True, now
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

    def restore(self) -> None:
        if self.installed and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.previous)
            self.installed = False

    def _anyone_asked(self, args: Any) -> bool:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self.asked
        import torch

        flag = torch.tensor([1 if self.asked else 0], device=args.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def on_step_end(self, args, state, control, **kwargs):
        if self._anyone_asked(args):
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self.restore()
