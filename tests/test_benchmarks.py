"""The benchmarks run on CPU (tiny-ko, a few steps): CI proves they work; their numbers are not asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def bench(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize("extra, columns", [([], "useful tokens/s"), (["--grpo"], "generated tokens/s")])
def test_the_throughput_benchmark_runs_both_trainers(tmp_path, extra, columns):
    results = tmp_path / "RESULTS.md"
    out = bench("benchmarks/train_throughput.py", "--cpu-smoke", "--results", str(results), *extra)
    assert "| a: TRL defaults |" in out and "| b: kosov recipe |" in out and "| **b / a** |" in out
    assert columns in out and out[out.index("### "):].strip() in results.read_text()


def test_padding_efficiency_is_measured_on_the_korean_data():
    out = bench("benchmarks/padding_efficiency.py")
    padded = float(out.split("padded to the longest | ")[1].split("%")[0])
    packed = float(out.split("4096-token blocks")[1].split("| ")[1].split("%")[0])
    assert padded < 90 < 99 <= packed  # the point of packing on short Korean rows
