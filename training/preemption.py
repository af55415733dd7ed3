"""SIGTERM (SLURM preemption, `scancel`, a time limit, Kubernetes eviction) ends a training job with a checkpoint.

The default for SIGTERM is to die at once, losing every step since the last checkpoint. Instead the job finishes the
optimizer step under way, saves a checkpoint, and stops with an error saying `resume=true` continues it; a second
SIGTERM kills it at once. SLURM waits KillWait (30 s by default) between SIGTERM and SIGKILL: for long steps, ask
for the signal earlier (`#SBATCH --signal=TERM@120`).

Every process of a distributed job stops at the same step: the flag is reduced across processes at each step.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from transformers import TrainerCallback

log = logging.getLogger(__name__)


class StopOnSigterm(TrainerCallback):
    def __init__(self) -> None:
        self.asked = False
        self.stopped_at: int | None = None  # the step whose checkpoint was saved on the way out
        self.previous: Any = None
        self.installed = False
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            previous = signal.signal(signal.SIGTERM, self._on_sigterm)
            self.previous = signal.SIG_DFL if previous is None else previous  # None: set outside Python
            self.installed = True

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        log.warning("SIGTERM: saving a checkpoint at the end of this step, then stopping (another SIGTERM stops "
                    "at once)")
        self.asked = True
        self.restore()  # a second SIGTERM does what it did before

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
