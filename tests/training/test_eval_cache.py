"""The score cache: a score from an older stack (transformers, torch, PEFT, vLLM) was served and compared against an
adapter scored under a newer one; and a job killed in lm-eval's part kept none of the tasks it had finished."""

from __future__ import annotations

import importlib.metadata
import json

import pytest

from tests.helpers import generating_task
from training.evaluate import evaluate
from training.evaluation import harness
from training.evaluation.identity import cache_file
from training.recipes import compose

PROBE = "ko_cache_probe"  # a second local lm-eval task, after ko_mini_bench
TASK = generating_task(PROBE, max_gen_toks=4)


@pytest.fixture
def probe(tmp_path, monkeypatch):
    data = tmp_path / "probe.jsonl"
    data.write_text("".join(json.dumps({"question": q, "answer": a}, ensure_ascii=False) + "\n"
                            for q, a in (("2 더하기 3은?", "5"), ("7 빼기 4는?", "3"))), encoding="utf-8")
    monkeypatch.setitem(harness.LOCAL_TASKS, PROBE, {"data": str(data), "task": TASK})


def _suite(tmp_path, out: str, limit: int = 2):
    return compose(["experiment=smoke-eval", f"eval.tasks=[ko_mini_bench,{PROBE}]", f"eval.limit={limit}",
                    "eval.batch_size=2", "eval.math.limit=1", "eval.language.enabled=false",
                    f"output_dir={tmp_path / out}"])


def _upgraded(monkeypatch, package: str) -> None:
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "99.0" if name == package else real(name))


def test_scores_cached_under_another_transformers_are_computed_again(tmp_path, probe, monkeypatch):
    evaluate(_suite(tmp_path, "first"))
    assert len(evaluate(_suite(tmp_path, "again")).report["cached_tasks"]) == 3  # the same stack: all cached
    _upgraded(monkeypatch, "transformers")
    assert evaluate(_suite(tmp_path, "upgraded")).report["cached_tasks"] == []


BASE = {"source": "m", "load": {"quantization": None}}


@pytest.mark.parametrize(("package", "identity", "backend"), [
    ("transformers", BASE, "hf"), ("torch", BASE, "hf"), ("lm_eval", BASE, "hf"),
    ("peft", {**BASE, "adapter": "a1"}, "hf"), ("vllm", BASE, "vllm"),
    ("bitsandbytes", {**BASE, "load": {"quantization": {"quant_type": "nf4"}}}, "hf")])
def test_the_cache_key_holds_the_version_of_what_computes_a_score(monkeypatch, package, identity, backend):
    before, plain = cache_file(identity, "kmmlu", {"backend": backend}), cache_file(BASE, "kmmlu", {"backend": "hf"})
    _upgraded(monkeypatch, package)
    assert cache_file(identity, "kmmlu", {"backend": backend}) != before
    if package in ("peft", "vllm", "bitsandbytes"):  # none computes the base's hf score in bf16: it stays cached
        assert cache_file(BASE, "kmmlu", {"backend": "hf"}) == plain


def test_a_job_killed_in_lm_evals_second_task_keeps_the_first_tasks_score(tmp_path, probe, monkeypatch):
    import lm_eval

    real = lm_eval.simple_evaluate

    def killed_in_the_probe(*args, tasks, **kwargs):
        if PROBE in tasks:
            raise KeyboardInterrupt  # the job killed (Ctrl-C, a scheduler's time limit) while lm-eval ran it
        return real(*args, tasks=tasks, **kwargs)

    monkeypatch.setattr(lm_eval, "simple_evaluate", killed_in_the_probe)
    with pytest.raises(KeyboardInterrupt):
        evaluate(_suite(tmp_path, "killed", limit=3))  # a limit no other test caches scores of
    monkeypatch.setattr(lm_eval, "simple_evaluate", real)
    again = evaluate(_suite(tmp_path, "again", limit=3))
    cached = again.report["cached_tasks"]
    assert "base:ko_mini_bench" in cached and f"base:{PROBE}" not in cached  # the task killed: scored anew
