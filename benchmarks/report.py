"""The benchmarks' result table: each side's row, the ratios b/a, the QLoRA 16 GB verdict, and where it ran
(GPU, versions, date), printed and appended to a Markdown file."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
from pathlib import Path
from typing import Any

A, B = "a: TRL defaults", "b: kosov recipe"
GIB_16GB = 16e9 / 2**30  # the QLoRA target, "fits in 16 GB", in the tables' unit: 14.90 GiB


def variant_name(index: int, name: str) -> str:
    """The row of the index-th --variant: c, d, ... after the baseline (a) and the recipe (b)."""
    return f"{chr(ord('c') + index)}: kosov recipe + {name}"

def row_letter(row: str) -> str:
    return row.split(":", 1)[0]

def _cell(row: dict[str, Any]) -> str:
    """What a side that did not finish shows instead of numbers: OOM, or failed (a --variant's error)."""
    return "OOM" if "oom" in row else "failed" if "failed" in row else ""

def _num(value: float, digits: int = 0) -> str:
    return "–" if value != value else f"{value:.{digits}f}"  # NaN (no GPU memory on CPU) reads as a dash

def table(rows: dict[str, dict[str, Any]], header: str, generated: bool = False, qlora: bool = False) -> str:
    """The Markdown table: a row per side (OOM for a side that ran out of GPU memory, failed for a --variant that
    did not run), the ratio of each kosov row to the baseline (b / a; c / a in a variant's table), each row's notes
    under the table and, for QLoRA, whether kosov's row fits the 16 GB target, judged on reserved memory (what the
    card must have)."""
    a, nan = rows[A], float("nan")
    columns = [("steps/s", "steps_per_s", 3), ("useful tokens/s", "tokens_per_s", 0),
               ("useful tokens/step", "tokens_per_step", 0), ("peak allocated GiB", "peak_allocated_gib", 2),
               ("peak reserved GiB", "peak_reserved_gib", 2)]
    if generated:
        columns.insert(2, ("generated tokens/s", "generated_tokens_per_s", 0))
    lines = [header, "", "| run | " + " | ".join(c[0] for c in columns) + " |", "|---|" + "---|" * len(columns)]
    lines += [f"| {name} | " + " | ".join(_cell(r) or _num(r.get(key, nan), d) for _, key, d in columns)
              + " |" for name, r in rows.items()]
    for name, row in rows.items():
        if name == A:
            continue
        if "failed" in row:
            why = row["failed"][:120].replace("|", "/")
            ratios = [f"n/a ({row_letter(name)} failed: {why})"] + ["n/a"] * (len(columns) - 1)
        elif "oom" in a or "oom" in row:
            ratios = ["n/a (" + ("both OOM" if "oom" in a and "oom" in row else "baseline OOM" if "oom" in a
                                 else "kosov OOM") + ")"] * len(columns)
        else:
            ratios = [row.get(key, nan) / a.get(key, nan) for _, key, _ in columns]
            ratios = ["–" if r != r else f"{r:.2f}x" for r in ratios]
        lines.append(f"| **{row_letter(name)} / a** | " + " | ".join(ratios) + " |")
    lines += [f"\n{row_letter(name)}: {row['held_before_gib']:.2f} GiB an earlier side left allocated is not in its "
              "peak allocated (it is in its peak reserved)" for name, row in rows.items() if "held_before_gib" in row]
    # what a row's numbers mean beyond its cells (benchmarks/train_throughput.py: add_notes): a step split into
    # micro-batches, a timed step that was a recompile
    lines += [f"\n{row_letter(name)}: {note}" for name, row in rows.items() for note in row.get("notes", [])]
    if qlora:  # the verdict on the table's first kosov row: the recipe's, or a variant's in its own table
        lines += ["", fits_16gb(next(r for n, r in rows.items() if n != A))]
    return "\n".join(lines) + "\n"

def fits_16gb(row: dict[str, Any]) -> str:
    """The QLoRA target's verdict, on peak reserved memory: allocated understates what the card needs."""
    target = f"QLoRA target, kosov's peak reserved GPU memory <= 16 GB ({GIB_16GB:.2f} GiB)"
    if "oom" in row:
        return f"{target}: ran out of memory, does not fit"
    if "failed" in row:
        return f"{target}: not measured, the run failed ({row['failed'][:120]})"
    reserved, allocated = row.get("peak_reserved_gib", float("nan")), row.get("peak_allocated_gib", float("nan"))
    if reserved != reserved:
        return f"{target}: not measured (no GPU)"
    verdict = "fits" if reserved <= GIB_16GB else "does not fit"
    return (f"{target}: {reserved:.2f} GiB reserved ({allocated:.2f} allocated), {verdict}; the CUDA context "
            "(~0.5 GiB) comes on top")

# In benchmarks/RESULTS.md: where new tables go, at the end of its measurements (the planning notes follow them)
NEW_TABLES = "<!-- new tables go above this line (benchmarks/report.py) -->"


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock on `path`'s sibling lock file (.NAME.lock, left in place: removing it would let two
    writers lock two different files), held while inside: two benchmarks adding to one results file take turns."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def emit(text: str, results: str | None) -> None:
    """Print a result table and, when asked, add it to the results file: above its NEW_TABLES line, or at its end
    (a file without one, as the GPU machine's). Written whole and renamed into place: a kill never halves it; read
    and written under a lock (locked): two benchmarks writing one file at once lose neither's table."""
    from training.safe_write import write_atomic

    print(text)
    if results:
        path = Path(results)
        with locked(path):
            old = path.read_text(encoding="utf-8") if path.is_file() else ""
            head, marker, tail = old.partition(NEW_TABLES)
            write_atomic(path, f"{head.rstrip()}\n\n{text.rstrip()}\n\n{marker}{tail}" if marker
                         else f"{old}\n{text}")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def json_text(data: Any, **kwargs: Any) -> str:
    """JSON that any parser reads: a NaN or infinity (no GPU memory on CPU, no token count) is written as null."""
    return json.dumps(_finite(data), allow_nan=False, **kwargs)

def environment(device: str) -> str:
    import torch
    import transformers
    import trl

    card = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    return (f"{card}; torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}; "
            f"{dt.date.today().isoformat()}")
