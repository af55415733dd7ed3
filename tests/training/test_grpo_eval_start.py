"""GRPO with an eval split records the starting policy's eval reward at step 0, the first point of the curve (as SFT
records the base's eval loss): metrics.json's eval reward "first" is the start, not the reward after eval_steps of
training. A run resumed from a checkpoint has it in the checkpoint's history and takes no second one."""

from __future__ import annotations

from training.recipes import compose
from training.train import train


def eval_steps(result) -> list[int]:
    return [h["step"] for h in result.trainer.state.log_history if "eval_reward" in h]


def test_grpo_records_the_starting_policys_eval_reward_once(tmp_path):
    common = ["experiment=smoke-grpo", f"output_dir={tmp_path / 'run'}", "data.max_rows=20", "data.eval_ratio=0.2",
              "method.eval_steps=2", "method.save_steps=2", "resume=true"]  # a recipe that always resumes (SLURM)
    first = train(compose([*common, "method.max_steps=2"]))
    assert eval_steps(first) == [0, 2]
    start = next(h["eval_reward"] for h in first.trainer.state.log_history if "eval_reward" in h)
    assert first.metrics["eval_rewards"]["eval_reward"]["first"] == start
    resumed = train(compose([*common, "method.max_steps=4"]))
    assert eval_steps(resumed) == [0, 2, 4]
    assert resumed.metrics["eval_rewards"]["eval_reward"]["first"] == start
