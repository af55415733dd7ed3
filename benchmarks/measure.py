"""How the throughput benchmarks measure one side (a trainer): optimizer steps timed after the warm-up with the
tokens TRL counted in them, peak GPU memory allocated and reserved, and a side that runs out of GPU memory recorded
as OOM (its memory freed) so the other side still runs."""

from __future__ import annotations

import gc
import json
import sys
import time
import traceback
import weakref
from typing import Any


class StepTimer:
    """A TrainerCallback timing optimizer steps after the warm-up, and the tokens TRL counted in them. Each timed
    step's wall time (from the previous one's end, synchronized: the step's GPU work is in it) goes to
    step_seconds: a kernel compiled again inside the timed steps (torch.compile, FlexAttention on a new block
    length) shows as one slow step (slow_step_warning)."""

    def __init__(self, warmup: int):
        from transformers import TrainerCallback

        self.warmup, self.start, self.tokens0 = warmup, None, 0.0
        self.step_seconds: list[float] = []
        self._last: float | None = None
        outer = self

        class _Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                if state.global_step == outer.warmup and outer.start is None:
                    outer.sync()
                    outer.start = outer._last = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                if outer._last is not None and state.global_step > outer.warmup:  # global_step counts this step
                    outer.sync()
                    now = time.perf_counter()
                    outer.step_seconds.append(now - outer._last)
                    outer._last = now

            def on_log(self, args, state, control, logs=None, **kwargs):
                # the count at the end of the warm-up: GRPO logs it only on steps that generate
                if logs and "num_tokens" in logs and state.global_step <= outer.warmup:
                    outer.tokens0 = logs["num_tokens"]

        self.callback = _Callback()

    @staticmethod
    def sync() -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()


SLOW_STEP = 3.0  # a timed step this many times the median's: most likely a compile, not the step's own work


def slow_step_warning(seconds: list[float], factor: float = SLOW_STEP) -> str | None:
    """A warning when the slowest timed step took over `factor` x the median step (None otherwise): a recompile
    (torch.compile, FlexAttention on a new block length) landed in the timed steps, and the row's speed counts it.
    Two timed steps never warn (neither is over 2x their median): the GPU stages time 6 or 10."""
    if not seconds:
        return None
    ordered = sorted(seconds)
    middle = len(ordered) // 2
    median = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    slowest = ordered[-1]
    if median <= 0 or slowest <= factor * median:
        return None
    return (f"timed step {seconds.index(slowest) + 1} of {len(seconds)} took {slowest:.2f} s, "
            f"{slowest / median:.1f}x the median {median:.2f} s (a recompile in the timed steps?): its speed counts it")

def result(timer: StepTimer, trainer: Any, steps: int) -> dict[str, float]:
    """Speed of the timed steps, and the side's peak GPU memory two ways: allocated (what tensors held) and reserved
    (what PyTorch's caching allocator took from the card, >= allocated: what a smaller card must have free)."""
    import torch

    timer.sync()
    seconds = time.perf_counter() - timer.start
    counted = [h["num_tokens"] for h in trainer.state.log_history if "num_tokens" in h]
    tokens = counted[-1] - timer.tokens0 if counted else float("nan")
    cuda = torch.cuda.is_available()
    return {"steps_per_s": steps / seconds, "tokens_per_s": tokens / seconds, "tokens_per_step": tokens / steps,
            "peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"),
            "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30 if cuda else float("nan"),
            "step_seconds": [round(s, 4) for s in timer.step_seconds]}

def collect() -> float:
    """gc and hand cached GPU memory back; returns the GPU memory still allocated (GiB)."""
    import torch

    gc.collect()
    if not torch.cuda.is_available():
        return 0.0
    torch.cuda.empty_cache()
    return torch.cuda.memory_allocated() / 2**30

def release(model: weakref.ref) -> dict[str, float]:
    """Collect a finished side's trainer and model before the next side starts; else their GPU memory counts in
    the next side's peak. `del` alone does not free them: transformers' wrapped forward makes a reference cycle.
    Returns {"freed": 1.0 when the model is gone, "left_gib": GPU memory still allocated}."""
    left = collect()
    if model() is not None:
        print("warning: the finished run's model is still referenced after gc.collect(); its memory counts in the "
              "next run's peak", file=sys.stderr)
    return {"freed": float(model() is None), "left_gib": left}

def out_of_memory(error: BaseException) -> bool:
    import torch

    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()

def run_side(name: str, side: Any, *args: Any, tolerate: bool = False) -> dict[str, Any]:
    """One side's row, printed as soon as it finishes. A side that runs out of GPU memory (the TRL baseline may, at
    --batch 4) is recorded as OOM and its memory freed, so the other side still runs and the table is written. With
    tolerate (kosov's sides: a candidate setting, e.g. a kernel that may not compile on this card), any error is
    recorded as the row's failure, its traceback printed, and the rows measured before and after it are kept (GPU
    time is scarce: the baseline already measured is not thrown away; the benchmark still exits 1 when (b)
    failed)."""
    import torch

    held = collect()  # what an earlier side left allocated (a model its traceback kept, a CUDA graph pool)
    torch.cuda.reset_peak_memory_stats() if torch.cuda.is_available() else None
    try:
        row = side(*args)
    except Exception as e:  # torch.OutOfMemoryError is a RuntimeError; so is CUDA's "out of memory" from elsewhere
        if out_of_memory(e):
            row = {"oom": str(e).strip().splitlines()[0][:200]}
        elif tolerate:
            traceback.print_exc()
            row = {"failed": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"}
        else:
            raise
    if "oom" in row or "failed" in row:  # out of the except block: the traceback, and the model its frames held, are gone
        row["left_gib"] = collect()
    elif held > 0.05 and "peak_allocated_gib" in row:  # not this side's: left out of its peak, and said so
        print(f"warning: {held:.2f} GiB was still allocated when {name} started; left out of its peak allocated "
              "memory (its peak reserved includes it)", file=sys.stderr)
        row["peak_allocated_gib"] -= held
        row["held_before_gib"] = held
    print(f"{name}: {json.dumps(row)}", flush=True)
    return row
