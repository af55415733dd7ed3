"""Rewards on completions TRL's response parser split into thinking and answer (a tokenizer with a
response_template, as recent model repos ship), where the chat template opens the think block in the prompt: an
answer after an empty think block is scored on its answer, a think block never closed has no answer, whatever the
other completions of the batch are."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from training.recipes import compose
from training.rewards import build_rewards, parses_responses
from training.train import train

EMPTY_THINK = "\n\n</think>\n\n정답: 500<|im_end|>"  # the prompt ends with "<think>\n": an empty think block
CUT_OFF = "사과가 5개이고 100원씩이니까 정답: 500 인지 다시 계산하면"  # max_completion_length hit mid-thought
ASK = [{"role": "user", "content": "사과 5개에 100원씩이면 모두 얼마인가요?"}]


def opening_tokenizer(parser: bool = True):
    """tiny-ko's tokenizer with Qwen3.5's thinking template (it opens <think> in the generation prompt), and TRL's
    response template for it (what TRL's add_response_schema sets)."""
    import trl
    from trl.chat_template_utils import add_response_schema

    from training.tiny_ko import load_tiny_tokenizer

    tokenizer = load_tiny_tokenizer()
    tokenizer.chat_template = (Path(trl.__file__).parent / "chat_templates" / "qwen3_5_think.jinja").read_text()
    return add_response_schema(tokenizer) if parser else tokenizer


def parsed(tokenizer, texts: list[str]) -> list[list[dict]]:
    """The completions as TRL 1.16's _generate hands them to the rewards: parse_response with the prompt as prefix."""
    from trl.chat_template_utils import parse_response

    prompt = tokenizer.apply_chat_template(ASK, tokenize=False, add_generation_prompt=True, enable_thinking=True)
    prefix = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return [[parse_response(tokenizer, tokenizer(t, add_special_tokens=False)["input_ids"], prefix=prefix)]
            for t in texts]


def scores(rewards: dict, completions: list) -> dict[str, list[float]]:
    n = len(completions)
    return {"math_accuracy": rewards["math_accuracy"](prompts=[ASK] * n, completions=completions, answer=["500"] * n),
            "language_consistency": rewards["language_consistency"](prompts=[ASK] * n, completions=completions)}


def test_an_answer_after_an_empty_think_block_is_scored_on_its_answer_in_any_batch():
    """The parser leaves no reasoning for an empty think block: a batch of such answers (a model that closes its
    thinking at once) was read as all cut off mid-thought, and scored 0, while the same answer next to one
    thought-through completion scored 1."""
    tokenizer = opening_tokenizer()
    empty, cut = parsed(tokenizer, [EMPTY_THINK, CUT_OFF])
    assert empty == [{"role": "assistant", "content": "정답: 500"}]  # what TRL hands over: no reasoning key
    assert cut[0]["content"] == "" and cut[0]["reasoning_content"]
    cfg = compose(["experiment=smoke-grpo"])
    funcs, _ = build_rewards(cfg.rewards, 32, opens_thinking=True, parsed=parses_responses(tokenizer))
    rewards = dict(zip(cfg.rewards, funcs))
    assert scores(rewards, [empty, empty])["math_accuracy"] == [1.0, 1.0]
    assert scores(rewards, [empty, cut]) == {"math_accuracy": [1.0, 0.0], "language_consistency": [1.0, 0.0]}
    assert scores(rewards, [cut, cut]) == {"math_accuracy": [0.0, 0.0], "language_consistency": [0.0, 0.0]}


def test_without_a_parser_a_think_block_never_closed_is_still_no_answer():
    tokenizer = opening_tokenizer(parser=False)
    assert not parses_responses(tokenizer)
    cfg = compose(["experiment=smoke-grpo"])
    rewards = dict(zip(cfg.rewards, build_rewards(cfg.rewards, 32, opens_thinking=True, parsed=False)[0]))
    cut = [{"role": "assistant", "content": CUT_OFF}]  # batch_decode: the prompt's <think> is not in it
    done = [{"role": "assistant", "content": EMPTY_THINK.removesuffix("<|im_end|>")}]
    assert scores(rewards, [cut, cut]) == {"math_accuracy": [0.0, 0.0], "language_consistency": [0.0, 0.0]}
    assert scores(rewards, [done, cut])["math_accuracy"] == [1.0, 0.0]


@pytest.mark.parametrize("parser", [True, False])
def test_the_trainers_rewards_know_whether_trl_parses_the_completions(tmp_path, parser):
    """A model folder whose tokenizer carries a response template (saved in tokenizer_config.json): the run's
    rewards read its completions as parsed."""
    from training.models import model_source

    base = tmp_path / "base"
    shutil.copytree(model_source(compose(["experiment=smoke-grpo"]).model)[0], base)
    opening_tokenizer(parser).save_pretrained(base)
    result = train(compose(["experiment=smoke-grpo", f"output_dir={tmp_path / 'run'}", "method.max_steps=1",
                            f"model.name_or_path={base}", "model.thinking=on"]))
    rewards = dict(zip(result.trainer.reward_func_names, result.trainer.reward_funcs))
    empty = [{"role": "assistant", "content": "정답: 500"}]  # parsed: an empty think block; else cut off mid-thought
    assert scores(rewards, [empty, empty])["math_accuracy"] == ([1.0, 1.0] if parser else [0.0, 0.0])
