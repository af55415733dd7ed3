"""lm-eval plumbing users hit: vLLM started for the adapter's rank, and kosov's local task files after a kill."""

from __future__ import annotations

import json

import pytest

from training.recipes import compose


@pytest.mark.parametrize(("rank", "max_rank"), [(4, 8), (16, 16), (24, 32), (32, 32), (64, 64)])
def test_vllm_is_started_with_a_max_lora_rank_that_takes_the_adapter(tmp_path, rank, max_rank):
    """lm-eval's vLLM defaults to max_lora_rank=16 and refused the recipes' r=32 adapters: "LoRA rank 32 is greater
    than max_lora_rank 16". (The arguments only: vLLM is not installed here.)"""
    from training.evaluation.harness import model_args

    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": rank, "lora_alpha": 2 * rank}))
    suite = compose(["experiment=smoke-eval", "eval.backend=vllm"]).eval
    args = model_args(suite, "Qwen/Qwen3-8B", None, tmp_path, "bfloat16", False, mode="off")
    assert args["max_lora_rank"] == max_rank and args["lora_local_path"] == str(tmp_path) and args["enable_lora"]
    assert "max_lora_rank" not in model_args(suite, "Qwen/Qwen3-8B", None, None, "bfloat16", False)  # no adapter


def test_vllm_reads_the_tokenizer_at_the_pinned_revision_too():
    """lm-eval's vLLM loads its tokenizer (whose chat template renders the prompts) at tokenizer_revision, None by
    default: with only revision= pinned, the prompts came from main's tokenizer while the scores were cached
    under the pinned commit."""
    from training.evaluation.harness import model_args

    suite, sha = compose(["experiment=smoke-eval", "eval.backend=vllm"]).eval, "a" * 40
    args = model_args(suite, "Qwen/Qwen3-8B", sha, None, "bfloat16", False)
    assert args["revision"] == sha and args["tokenizer_revision"] == sha
    saved = model_args(suite, "Qwen/Qwen3-8B", sha, None, "bfloat16", False, tokenizer="/tmp/tok")
    assert saved["tokenizer"] == "/tmp/tok" and "tokenizer_revision" not in saved  # a local folder has no revision


@pytest.mark.parametrize("left", ["an empty folder", "a file cut short"])
def test_kosovs_local_tasks_are_written_again_after_a_job_killed_while_writing_them(tmp_path, monkeypatch, left):
    """The task folder was written only when missing, file by file: a job killed after making it left an empty
    folder (or a cut file), and every later run failed with "unknown lm-eval task"."""
    from training.evaluation.harness import local_task_dir, task_manager

    monkeypatch.setenv("KOSOV_CACHE", str(tmp_path))
    folder = local_task_dir()
    task = folder / "ko_mini_bench.yaml"
    whole = task.read_text(encoding="utf-8")
    if left == "an empty folder":
        task.unlink()
    else:
        task.write_text(whole[: len(whole) // 3], encoding="utf-8")
    assert local_task_dir() == folder and task.read_text(encoding="utf-8") == whole
    assert [p.name for p in folder.iterdir()] == ["ko_mini_bench.yaml"]  # no temporary file left beside it
    assert "ko_mini_bench" in task_manager(["ko_mini_bench"]).all_tasks


def test_a_cached_score_with_a_field_this_version_lacks_still_reads(tmp_path):
    """A newer kosov sharing $KOSOV_CACHE wrote a field an older one did not know: TaskScore(**json) raised."""
    import json

    from training.evaluation.harness import _cached_score

    file = tmp_path / "score.json"
    file.write_text(json.dumps({"task": "kmmlu", "metric": "acc", "value": 0.5, "stderr": 0.01, "n": 10,
                                "items": [1.0, 0.0], "from_the_future": True}))
    score = _cached_score(file)
    assert (score.task, score.value, score.items) == ("kmmlu", 0.5, [1.0, 0.0])
