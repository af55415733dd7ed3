"""The benchmarks run on CPU (tiny-ko, a few steps): CI proves they work and measure fairly; no timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def bench(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize("extra, columns", [
    ([], "useful tokens/s"), (["--data", "merged"], "useful tokens/s"), (["--grpo"], "generated tokens/s")])
def test_the_throughput_benchmark_runs_both_trainers(tmp_path, extra, columns):
    results, rows = tmp_path / "RESULTS.md", tmp_path / "rows.json"
    out = bench("benchmarks/train_throughput.py", "--cpu-smoke", "--results", str(results), "--json", str(rows), *extra)
    assert "| a: TRL defaults |" in out and "| b: kosov recipe |" in out and "| **b / a** |" in out
    assert columns in out and out[out.index("### "):].strip() in results.read_text()
    measured = json.loads(rows.read_text())["rows"]
    for side in measured.values():
        assert side["freed"] == 1.0  # collected before the next side: its memory is not in that side's peak
        assert 0 < side["tokens_per_s"] < float("inf") and side["tokens_per_step"] > 0
    if extra == ["--grpo"]:  # kosov generates for 2 steps at once: warm-up and timed steps are whole rounds
        assert "2 step(s) per generation round" in out and "2 warm-up + 2 timed steps" in out
        assert all(side["generated_tokens_per_s"] > 0 for side in measured.values())
    else:  # each conversation trains once, as in TRL: multi-turn rows are not split into a sample per turn
        kosov = measured["b: kosov recipe"]
        assert 0 < kosov["sequences"] <= kosov["rows"]
        assert "kosov recipe qwen3-1.7b-ko-sft (sdpa, Liger off" in out


def test_tokens_are_counted_from_the_end_of_the_warm_up_when_only_generating_steps_log_them():
    from types import SimpleNamespace

    from benchmarks.train_throughput import StepTimer

    timer = StepTimer(warmup=2)
    for step, logs in [(1, {"num_tokens": 100.0}), (2, {"loss": 0.1}), (3, {"num_tokens": 250.0}), (4, {})]:
        timer.callback.on_log(None, SimpleNamespace(global_step=step), None, logs=logs)
    assert timer.tokens0 == 100.0  # GRPO with 2-step generation rounds logs num_tokens on steps 1 and 3 only


def test_padding_efficiency_is_measured_on_the_korean_data():
    out = bench("benchmarks/padding_efficiency.py")
    padded = float(out.split("padded to the longest | ")[1].split("%")[0])
    packed = float(out.split("4096-token blocks")[1].split("| ")[1].split("%")[0])
    assert padded < 90 < 99 <= packed  # the point of packing on short Korean rows


def test_a_kormo_config_is_benchmarked_as_llama_without_its_remote_code(tmp_path):
    """KORMo-10B's shape comes from its config.json (model_type "kormo", an auto_map to remote code): the benchmark
    reads it as the Llama config it is, runs KORMo's recipe, and never imports the remote code beside it."""
    from transformers import LlamaConfig

    from training.architectures import kormo_config
    from training.tiny_ko import load_tiny_tokenizer

    shape = LlamaConfig(vocab_size=len(load_tiny_tokenizer()), hidden_size=96, intermediate_size=160,
                        num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=24)
    (tmp_path / "config.json").write_text(json.dumps(kormo_config(shape)), encoding="utf-8")
    (tmp_path / "_configuration_kormo.py").write_text("raise RuntimeError('remote code ran')\n")
    (tmp_path / "_modeling_kormo.py").write_text("raise RuntimeError('remote code ran')\n")
    out = bench("benchmarks/train_throughput.py", "--config", str(tmp_path), "--seq-len", "256", "--steps", "2",
                "--warmup", "1")
    params = sum(p.numel() for p in __import__("transformers").LlamaForCausalLM(shape).parameters())
    assert f"{tmp_path} shape" in out and "kosov recipe kormo-10b-ko-sft" in out
    assert f"{params / 1e9:.3g}B parameters" in out and "| **b / a** |" in out


def test_a_config_of_an_unknown_architecture_is_refused_by_name(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "not-a-model", "hidden_size": 8}))
    done = subprocess.run([sys.executable, "benchmarks/train_throughput.py", "--config", str(tmp_path / "config.json"),
                           "--steps", "1"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and "model_type 'not-a-model' is not an architecture" in done.stderr
