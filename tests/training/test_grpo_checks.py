"""GRPO's edges: a reward that scored nothing in a logging window, too few prompts for one generation round, the
reference adapter TRL adds, the eval reward in metrics.json, data columns named like TRL's reward arguments, and
generation rounds sized apart from the optimizer step."""

from __future__ import annotations

import json
import logging
import types
from pathlib import Path

import pytest

from tests.helpers import quick
from training.errors import KosovError
from training.recipes import compose
from training.train import train

DATA = Path(__file__).resolve().parents[2] / "data_tools" / "datasets"


def prompt_file(tmp_path, rows: list[dict], name: str = "math.jsonl"):
    data = tmp_path / name
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return data


def summary_of(history: list[dict]) -> dict:
    from training.run_metrics import summarize

    trainer = types.SimpleNamespace(state=types.SimpleNamespace(log_history=history, global_step=2, epoch=1.0),
                                    model=types.SimpleNamespace(parameters=lambda: []))
    return summarize(trainer, types.SimpleNamespace(metrics={"train_runtime": 1.0}), {}, 0.0)


def test_a_reward_that_scored_nothing_in_a_window_is_summarized_over_the_windows_that_scored():
    # TRL logs a reward's mean as None for a window where it scored no completion (math_accuracy on an empty answer)
    metrics = summary_of([
        {"loss": 0.1, "reward": 0.5, "rewards/math_accuracy/mean": None, "rewards/answer_format/mean": 0.5,
         "rewards/judge/mean": None, "step": 1},
        {"loss": 0.1, "reward": 0.7, "rewards/math_accuracy/mean": 1.0, "rewards/answer_format/mean": 0.7,
         "rewards/judge/mean": float("nan"), "step": 2},
    ])
    assert metrics["rewards"]["rewards/math_accuracy/mean"] == {"first": 1.0, "last": 1.0, "mean": 1.0}
    assert metrics["rewards"]["rewards/answer_format/mean"]["mean"] == pytest.approx(0.6)
    assert "rewards/judge/mean" not in metrics["rewards"]  # never scored: left out
    assert metrics["reward_curve"] == [(1, 0.5), (2, 0.7)]


def test_the_eval_reward_is_in_metrics_json():
    from training.schema import METRIC_KEYS

    metrics = summary_of([
        {"loss": 0.1, "reward": 0.5, "step": 1},
        {"eval_loss": 0.2, "eval_reward": 0.25, "eval_rewards/math_accuracy/mean": None, "step": 1},
        {"eval_loss": 0.2, "eval_reward": 0.75, "eval_rewards/math_accuracy/mean": 0.5, "step": 2},
    ])
    assert metrics["eval_rewards"] == {"eval_reward": {"first": 0.25, "last": 0.75, "mean": 0.5},
                                       "eval_rewards/math_accuracy/mean": {"first": 0.5, "last": 0.5, "mean": 0.5}}
    assert "eval_rewards" in METRIC_KEYS  # a sweep's objective may name it: eval_rewards.eval_reward.last
    assert sorted(metrics) == sorted(METRIC_KEYS)


@pytest.mark.parametrize("name", ["prompts", "completions", "completion_ids", "trainer_state", "log_extra",
                                  "log_metric", "environments"])
def test_a_column_named_like_an_argument_trl_gives_the_rewards_is_refused_naming_file_and_line(tmp_path,
                                                                                                 tiny_tokenizer, name):
    """TRL calls each reward with these itself: such a column could never reach one (it was dropped unsaid; kept,
    "prompts" and "completions" fail the first reward call after the model loaded, the others are replaced)."""
    from training.grpo import build_data

    rows = [{"prompt": "3 더하기 4는?", "answer": "7"}, {"prompt": "5 더하기 4는?", "answer": "9", name: "x"}]
    data = prompt_file(tmp_path, rows)
    cfg = compose(["experiment=smoke-grpo", f"data.train_files=[{data}]", "data.eval_ratio=0"])
    with pytest.raises(KosovError, match=rf"{data}:2: the prompt rows have a column '{name}'") as caught:
        build_data(cfg, tiny_tokenizer, tiny_tokenizer.eos_token_id)
    assert f"rename the column in the data (e.g. to 'ref_{name}')" in caught.value.fix


def test_columns_the_rewards_may_read_reach_them_and_a_reference_completion_is_left_out_saying_so(
        tmp_path, tiny_tokenizer, caplog):
    """TRL's prompt-completion rows carry a reference "completion", which TRL keeps from the rewards: the file is
    still GRPO's prompts, and the log says the column goes unused. A column named like a reward's parameter (unit)
    is data: the recipe's parameter still wins in the reward (rewards._bound)."""
    from training.grpo import build_data

    rows = [{"prompt": f"{n} 더하기 4는?", "answer": str(n + 4), "unit": "개", "completion": f"정답: {n + 4}"}
            for n in range(3)]
    cfg = compose(["experiment=smoke-grpo", f"data.train_files=[{prompt_file(tmp_path, rows)}]", "data.eval_ratio=0"])
    with caplog.at_level(logging.INFO, logger="training.prompt_columns"):
        columns = build_data(cfg, tiny_tokenizer, tiny_tokenizer.eos_token_id).train.column_names
    assert sorted(columns) == ["answer", "prompt", "unit"]
    assert "'completion' column is not given to the rewards" in caplog.text


def test_a_run_on_answers_no_reward_can_score_finishes_with_its_eval_reward(tmp_path):
    # every answer empty: math_accuracy scores nothing in any window
    rows = [{"prompt": f"{n} 더하기 {n}은?", "answer": ""} for n in range(10)]
    out = tmp_path / "run"
    result = train(compose(["experiment=smoke-grpo", f"output_dir={out}", "method.max_steps=1",
                            f"data.train_files=[{prompt_file(tmp_path, rows)}]", "data.eval_ratio=0.4"]))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["global_step"] == 1 and "rewards/math_accuracy/mean" not in metrics["rewards"]
    assert "rewards/answer_format/mean" in metrics["rewards"]
    assert set(metrics["eval_rewards"]) >= {"eval_reward", "eval_rewards/answer_format/mean"}
    assert result.metrics["eval_rewards"] == metrics["eval_rewards"]


def test_fewer_prompts_than_one_generation_round_are_refused_before_training(tmp_path):
    out = tmp_path / "run"
    # a step of 8 completions in groups of 4 takes 2 prompts; TRL's sampler drops an incomplete round
    one = tmp_path / "one.jsonl"
    one.write_text(next(open(DATA / "ko_math" / "train.jsonl", encoding="utf-8")), encoding="utf-8")
    with pytest.raises(KosovError, match=r"1 training prompt\(s\) left, but one generation round takes 2 distinct") \
            as error:
        train(compose(["experiment=smoke-grpo", f"output_dir={out}", "method.max_steps=1", f"data.train_files=[{one}]",
                       "data.eval_ratio=0"]))
    assert "at least 2 training prompts" in error.value.fix
    assert not (out / "adapter").exists() and not (out / "metrics.json").exists()
    # data.max_rows says so before anything loads: before a chained run's SFT stage trains, too
    chained = tmp_path / "chained"
    with pytest.raises(KosovError, match=r"1 training prompt\(s\) at most \(data.max_rows=1\)"):
        train(compose(["experiment=smoke-sft-grpo", f"output_dir={chained}", "data.max_rows=1"]))
    assert not (chained / "sft").exists()
    with pytest.raises(KosovError, match="one generation round takes 4 distinct prompts"):  # a round of two steps
        train(compose(["experiment=smoke-grpo", f"output_dir={tmp_path / 'two'}", "data.max_rows=3",
                       "method.grpo.optimizer_steps_per_generation=2"]))


@pytest.mark.parametrize("rows, refused", [
    ([{"prompt": "3 더하기 4는?", "answer": "7"}], r"1 training prompt\(s\) left, but one generation round takes 2"),
    ([{"prompt": "3 더하기 4는?", "answer": "7"}, {"question": "5 더하기 4는?", "answer": "9"}],
     r"math.jsonl:2: missing prompt"),
    ([{"prompt": f"{n} 더하기 4는?", "answer": "7", "completions": "x"} for n in range(2)],
     r"math.jsonl:1: the prompt rows have a column 'completions'"),
])
def test_a_chained_runs_unusable_grpo_prompts_are_refused_before_its_sft_stage_trains(tmp_path, rows, refused):
    """The GRPO prompts were first read once the SFT stage had trained: minutes to hours of SFT, then the error."""
    out = tmp_path / "run"
    with pytest.raises(KosovError, match=refused):
        train(compose(["experiment=smoke-sft-grpo", f"output_dir={out}", "data.eval_ratio=0",
                       f"data.train_files=[{prompt_file(tmp_path, rows)}]"]))
    assert not (out / "sft").exists()  # the SFT stage never started


def test_the_reference_copy_of_a_starting_adapter_is_not_saved(tmp_path):
    sft = tmp_path / "sft"
    train(compose(quick(f"output_dir={sft}", "method.max_steps=1")))
    out = tmp_path / "run"
    result = train(compose(["experiment=smoke-grpo", f"output_dir={out}", "method.max_steps=1",
                            f"method.init_adapter={sft}", "method.grpo.beta=0.1"]))
    assert "ref" in result.trainer.model.peft_config  # TRL's reference: a frozen copy of the starting adapter
    saved = sorted(str(p.relative_to(out / "adapter")) for p in (out / "adapter").rglob("*"))
    assert "adapter_model.safetensors" in saved and not [p for p in saved if p.startswith("ref")]


@pytest.mark.parametrize("overrides, refused", [
    (["method.grpo.generation_batch_size=4"], None),  # 2 completions a step, rounds of 2 whole groups
    (["method.grpo.optimizer_steps_per_generation=2"], None),
    (["method.grpo.optimizer_steps_per_generation=1"], "is not a multiple of the group size"),
    (["method.grpo.generation_batch_size=6"], "generation_batch_size=6 is not a multiple of the group size"),
])
def test_a_sized_generation_round_needs_whole_groups_not_a_step(overrides, refused):
    from training import grpo

    cfg = compose(["experiment=smoke-grpo", "method.per_device_train_batch_size=2", *overrides])
    if refused:
        with pytest.raises(KosovError, match=refused):
            grpo.preflight(cfg, "cpu", 1)
    else:
        grpo.preflight(cfg, "cpu", 1)


def test_trl_trains_a_round_of_whole_groups_split_across_steps(tmp_path):
    result = train(compose(["experiment=smoke-grpo", f"output_dir={tmp_path / 'run'}", "method.max_steps=2",
                            "method.per_device_train_batch_size=2", "method.grpo.generation_batch_size=4"]))
    assert result.metrics["global_step"] == 2
