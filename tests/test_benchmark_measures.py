"""What the benchmarks measure, no timing asserted: padding efficiency, tokens after the warm-up, peak memory."""

from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace

from tests.benchmark_helpers import ROOT


def bench(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_tokens_are_counted_from_the_end_of_the_warm_up_when_only_generating_steps_log_them():
    from benchmarks.measure import StepTimer

    timer = StepTimer(warmup=2)
    for step, logs in [(1, {"num_tokens": 100.0}), (2, {"loss": 0.1}), (3, {"num_tokens": 250.0}), (4, {})]:
        timer.callback.on_log(None, SimpleNamespace(global_step=step), None, logs=logs)
    assert timer.tokens0 == 100.0  # GRPO with 2-step generation rounds logs num_tokens on steps 1 and 3 only


def test_padding_efficiency_is_measured_on_the_korean_data():
    out = bench("benchmarks/padding_efficiency.py")
    padded = float(out.split("padded to the longest | ")[1].split("%")[0])
    packed = float(out.split("4096-token blocks")[1].split("| ")[1].split("%")[0])
    assert padded < 90 < 99 <= packed  # the point of packing on short Korean rows


def stand_in_row(**extra) -> dict:
    nan = float("nan")
    return {"steps_per_s": 1.0, "tokens_per_s": 100.0, "tokens_per_step": 100.0, "peak_allocated_gib": nan,
            "peak_reserved_gib": nan, **extra}


def test_peak_memory_is_reported_allocated_and_reserved_and_qlora_fits_are_judged_on_reserved(monkeypatch):
    """max_memory_allocated understates what a 16 GB card needs: the caching allocator's reserve is what it must
    have free. 14 GiB allocated under 17 GiB reserved does not fit."""
    import torch

    from benchmarks.measure import result
    from benchmarks.report import table

    for name, value in [("is_available", lambda: True), ("synchronize", lambda *a: None),
                        ("max_memory_allocated", lambda *a: 14 * 2**30),
                        ("max_memory_reserved", lambda *a: 17 * 2**30)]:
        monkeypatch.setattr(torch.cuda, name, value)
    timer = SimpleNamespace(sync=lambda: None, start=time.perf_counter() - 10, tokens0=0, step_seconds=[])
    trainer = SimpleNamespace(state=SimpleNamespace(log_history=[{"num_tokens": 4096.0}]))
    row = result(timer, trainer, 1)
    assert (row.get("peak_allocated_gib"), row.get("peak_reserved_gib")) == (14.0, 17.0)
    baseline = stand_in_row(peak_allocated_gib=16.0, peak_reserved_gib=20.0)
    text = table({"a: TRL defaults": baseline, "b: kosov recipe": row}, "### t", qlora=True)
    assert "| peak allocated GiB | peak reserved GiB |" in text and "| 14.00 | 17.00 |" in text
    assert "17.00 GiB reserved (14.00 allocated), does not fit" in text
    fits = table({"a: TRL defaults": row, "b: kosov recipe": row | {"peak_reserved_gib": 14.5}}, "### t", qlora=True)
    assert "14.50 GiB reserved (14.00 allocated), fits" in fits
    kosov_oom = table({"a: TRL defaults": row, "b: kosov recipe": {"oom": "CUDA out of memory"}}, "### t", qlora=True)
    assert "| **b / a** | n/a (kosov OOM) |" in kosov_oom and "ran out of memory, does not fit" in kosov_oom
    failed = table({"a: TRL defaults": row, "b: kosov recipe": {"failed": "RuntimeError: CUDA error"}}, "### t",
                   qlora=True)
    assert "not measured, the run failed (RuntimeError: CUDA error)" in failed and "no GPU" not in failed


def test_a_new_table_goes_under_the_measurements_not_under_the_planning_notes(tmp_path):
    """RESULTS.md ends with the next GPU session's plan: tables appended at the end landed under it."""
    from benchmarks.report import NEW_TABLES, emit

    results = tmp_path / "RESULTS.md"
    results.write_text(f"## Measurements\n\n### old table\n\n{NEW_TABLES}\n\n### Next GPU session\n\nplan\n")
    emit("### new table\n| a | b |", str(results))
    text = results.read_text()
    assert text.index("### old table") < text.index("### new table") < text.index(NEW_TABLES) < text.index("plan")
    machine = tmp_path / "kosov-results.md"  # the GPU machine's file has no such line: the table goes at its end
    emit("### first", str(machine))
    emit("### second", str(machine))
    assert machine.read_text().split() == ["###", "first", "###", "second"]
    assert "### Next GPU session" in (ROOT / "benchmarks" / "RESULTS.md").read_text().split(NEW_TABLES)[1]


def test_memory_an_earlier_side_left_allocated_is_not_counted_in_the_next_sides_peak(monkeypatch, capsys):
    """run_side resets the peak counters, but what an earlier side left allocated (a model a traceback kept alive)
    used to count silently in the next side's peak allocated memory."""
    from benchmarks import measure
    from benchmarks.report import table

    monkeypatch.setattr(measure, "collect", lambda: 1.5)
    row = measure.run_side("b: kosov recipe", lambda: stand_in_row(peak_allocated_gib=10.0, peak_reserved_gib=12.0))
    assert row["peak_allocated_gib"] == 8.5 and row["peak_reserved_gib"] == 12.0
    assert "1.50 GiB was still allocated when b: kosov recipe started" in capsys.readouterr().err
    text = table({"a: TRL defaults": stand_in_row(), "b: kosov recipe": row}, "### t")
    assert "b: 1.50 GiB an earlier side left allocated is not in its peak allocated" in text
