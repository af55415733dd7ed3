"""Chat templates that open the think block themselves (Qwen3-Thinking-2507, DeepSeek-R1 distills): the completion
starts mid-thought, with no <think>; one cut off while thinking must not be graded as an answer."""

from __future__ import annotations

from pathlib import Path

import pytest

THINKING = "사과가 5개이고 100원씩이니까 정답: 500"  # cut off (token limit) while still weighing its answer
FINISHED = "5 x 100 = 500</think>\n\n정답: 500"


@pytest.fixture
def opening_tokenizer():
    """tiny-ko's tokenizer with TRL's copy of the Qwen3.5 thinking template: enable_thinking on ends the generation
    prompt with "<think>\\n", off with an empty think block."""
    import trl

    from training.tiny_ko import load_tiny_tokenizer

    tokenizer = load_tiny_tokenizer()
    tokenizer.chat_template = (Path(trl.__file__).parent / "chat_templates" / "qwen3_5_think.jinja").read_text()
    return tokenizer


def _answers(tokenizer, completion: str, thinking: str) -> list[str]:
    """kosov's generate() on a model that writes `completion` after any prompt."""
    import torch

    from data_tools.chat_io import ChatRow
    from training.evaluation.generative import generate

    written = tokenizer(completion, add_special_tokens=False, return_tensors="pt").input_ids

    class Model:
        device = "cpu"

        def generate(self, input_ids, **kwargs):
            return torch.cat([input_ids, written.expand(input_ids.shape[0], -1)], dim=1)

    rows = [ChatRow([{"role": "user", "content": "사과 5개에 100원씩이면?"}], None, "math.jsonl:1", {"answer": 500})]
    return generate(Model(), tokenizer, rows, thinking=thinking, max_new_tokens=32)


def test_kosovs_math_eval_reads_a_completion_cut_off_in_a_think_block_the_template_opened_as_unanswered(
        opening_tokenizer):
    from data_tools.chat_io import ChatRow
    from training.evaluation.generative import foreign_script_rate, math_accuracy

    rows = [ChatRow([{"role": "user", "content": "사과 5개에 100원씩이면?"}], None, "math.jsonl:1", {"answer": 500})]
    cut = _answers(opening_tokenizer, THINKING, "on")
    assert cut == ["<think>" + THINKING] and math_accuracy(cut, rows)["value"] == 0  # not its last number
    assert foreign_script_rate(cut)["unfinished_thinking_rate"] == 1
    done = _answers(opening_tokenizer, FINISHED, "on")
    assert math_accuracy(done, rows)["value"] == 1
    assert _answers(opening_tokenizer, "정답: 500", "off") == ["정답: 500"]  # the template closed the block itself


def test_lm_eval_reads_a_completion_cut_off_in_a_think_block_the_template_opened_as_unanswered(opening_tokenizer,
                                                                                               tiny_tokenizer):
    import lm_eval.models.huggingface as hf

    from training.evaluation.thinking import cut_off_thoughts_unanswered, template_opens_thinking

    assert template_opens_thinking(opening_tokenizer, "on") and not template_opens_thinking(opening_tokenizer, "off")
    assert not template_opens_thinking(tiny_tokenizer, "on")  # Qwen3's own: the model writes <think> itself
    with cut_off_thoughts_unanswered("on", template_opens_thinking(opening_tokenizer, "on")):
        assert hf.postprocess_generated_text(THINKING, None, "</think>") == ""
        assert hf.postprocess_generated_text(FINISHED, None, "</think>") == "정답: 500"
    assert hf.postprocess_generated_text(THINKING, None, "</think>") == THINKING  # put back
