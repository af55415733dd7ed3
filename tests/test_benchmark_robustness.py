"""The benchmarks under a kill, bad flags, two writers and NaN: what a run leaves behind, refuses and writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmark_helpers import ROOT

TINY_QWEN3 = {"model_type": "qwen3", "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
              "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8, "vocab_size": 64}


def test_a_run_ended_by_sigterm_removes_the_random_model_it_saved(tmp_path):
    """A SLURM time limit, scancel or timeout sends SIGTERM: atexit alone left the saved model (16 GB for the 8B)
    in $TMPDIR."""
    config, tmp = tmp_path / "config.json", tmp_path / "tmp"
    config.write_text(json.dumps(TINY_QWEN3))
    tmp.mkdir()
    code = ("import sys, time; import tests.benchmark_helpers; from benchmarks.shapes import saved_model; "
            "print('saved', saved_model('x', sys.argv[1], 'cpu'), flush=True); time.sleep(300)")
    child = subprocess.Popen([sys.executable, "-c", code, str(config)], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, env={**os.environ, "TMPDIR": str(tmp), "HF_HUB_OFFLINE": "1"})
    try:
        saved = next((line.split(" ", 1)[1].strip() for line in child.stdout if line.startswith("saved ")), None)
        assert saved, "the child ended before saving the model"
        folder = Path(saved)
        assert folder.name.startswith("kosov-bench-model-") and (folder / "config.json").is_file()
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=120)
    finally:
        child.kill() if child.poll() is None else None  # only on a failure above: never left sleeping
    assert not folder.exists() and not list(tmp.glob("kosov-bench-model-*"))
    assert child.returncode == 128 + signal.SIGTERM  # through Python's exit, with a shell's status for SIGTERM


class Loaded(Exception):
    """A model started loading: the flags were accepted."""


@pytest.mark.parametrize("argv, flag", [
    (["--steps", "0"], "argument --steps: must be at least 1"),
    (["--warmup", "-1"], "argument --warmup: must be at least 0"),
    (["--batch", "0"], "argument --batch: must be at least 1"),
    (["--seq-len", "0"], "argument --seq-len: must be at least 1"),
    (["--grpo", "--group", "1"], "argument --group: must be at least 2"),
    (["--grpo", "--completion", "0"], "argument --completion: must be at least 1"),
    (["--grpo", "--steps", "-2"], "argument --steps: must be at least 1"),
    # SFT's flags, which GRPO used to ignore without a word
    (["--grpo", "--data", "merged"], "--data: SFT's flags, which --grpo does not use"),
    (["--grpo", "--seq-len", "1024", "--batch", "4"], "--seq-len, --batch: SFT's flags, which --grpo does not use"),
])
def test_flags_out_of_range_or_unused_by_the_method_are_refused_at_parse_time_by_name(monkeypatch, capsys, argv,
                                                                                        flag):
    """--steps 0 or a negative --warmup used to train the whole baseline, then crash on the timer's missing start."""
    import transformers

    import benchmarks.shapes as shapes
    from benchmarks.train_throughput import main

    def loaded(*args, **kwargs):
        raise Loaded
    monkeypatch.setattr(shapes, "build_model", loaded)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", loaded)
    with pytest.raises(SystemExit) as refused:
        main(["--model", "tiny-ko", *argv])
    assert refused.value.code == 2 and flag in capsys.readouterr().err


def test_two_benchmarks_writing_one_results_file_lose_no_table(tmp_path):
    from benchmarks.report import NEW_TABLES

    results, go = tmp_path / "RESULTS.md", tmp_path / "go"
    results.write_text(f"# results\n\n{NEW_TABLES}\n\nplan\n")
    code = ("import io, os, sys, time, contextlib; import tests.benchmark_helpers; from benchmarks.report import emit\n"
            "print('ready', flush=True)\n"
            "while not os.path.exists(sys.argv[3]): time.sleep(0.001)\n"
            "for i in range(30):\n"
            "    with contextlib.redirect_stdout(io.StringIO()): emit(f'### table {sys.argv[1]}-{i}', sys.argv[2])\n")
    writers = [subprocess.Popen([sys.executable, "-c", code, who, str(results), str(go)], cwd=ROOT, text=True,
                                stdout=subprocess.PIPE) for who in "ab"]
    for writer in writers:  # both imported and waiting: they write at the same time
        assert writer.stdout.readline().strip() == "ready"
    go.touch()
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    text = results.read_text()
    assert sorted(line for line in text.splitlines() if line.startswith("### table")) == sorted(
        f"### table {who}-{i}" for who in "ab" for i in range(30))
    assert text.index("### table") < text.index(NEW_TABLES) < text.index("plan")


def test_json_rows_write_nan_as_null_and_parse_strictly(monkeypatch, tmp_path):
    """On CPU the peak memory is NaN: json.dumps wrote the bare NaN, which strict JSON parsers refuse."""
    import benchmarks.train_throughput as bench

    nan = float("nan")
    row = {"steps_per_s": 1.0, "tokens_per_s": 100.0, "tokens_per_step": 100.0, "peak_allocated_gib": nan,
           "peak_reserved_gib": nan, "step_seconds": [0.5, 0.5]}
    monkeypatch.setattr(bench, "run_side", lambda name, *args, **kwargs: dict(row))
    rows = tmp_path / "rows.json"
    assert bench.main(["--cpu-smoke", "--json", str(rows)]) == 0

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")
    measured = json.loads(rows.read_text(), parse_constant=refuse)["rows"]
    assert measured["a: TRL defaults"]["peak_allocated_gib"] is None
    assert measured["b: kosov recipe"]["peak_reserved_gib"] is None and measured["b: kosov recipe"]["steps_per_s"] == 1.0
