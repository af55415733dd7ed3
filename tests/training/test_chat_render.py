"""The loss mask covers exactly what the model writes at inference: the assistant answer (and its thinking
block in thinking mode) plus the end-of-turn token. Checked on the tiny-ko template and on Qwen3's own."""

from __future__ import annotations

from pathlib import Path

import pytest
import trl

from training.chat_render import TemplateMismatch, render_conversation

QWEN3_TEMPLATE = (Path(trl.__file__).parent / "chat_templates" / "qwen3.jinja").read_text(encoding="utf-8")
TEMPLATES = {"tiny-ko": None, "qwen3": QWEN3_TEMPLATE}

SINGLE = [
    {"role": "system", "content": "당신은 친절한 한국어 비서입니다."},
    {"role": "user", "content": "사과 세 개가 1,500원이면 한 개는 얼마예요?"},
    {"role": "assistant", "content": "한 개에 500원입니다."},
]
MULTI = [
    {"role": "user", "content": "안녕하세요?"},
    {"role": "assistant", "content": "네, 안녕하세요!"},
    {"role": "user", "content": "오늘 뭐 먹을까요?"},
    {"role": "assistant", "content": "된장찌개 어떠세요?", "reasoning_content": "점심 메뉴를 묻는다. 따뜻한 국물을 권하자."},
]


def trained_text(tokenizer, sample) -> str:
    return tokenizer.decode([t for t, m in zip(sample.input_ids, sample.completion_mask) if m])


def render(tokenizer, messages, template, **kwargs):
    extra = {"chat_template": template} if template else {}
    return render_conversation(messages, tokenizer, end_token_id=tokenizer.eos_token_id, chat_template_kwargs=extra,
                               **kwargs)


@pytest.mark.parametrize("template", TEMPLATES.values(), ids=TEMPLATES.keys())
def test_mask_is_the_answer_and_end_token_only(tiny_tokenizer, template):
    [sample] = render(tiny_tokenizer, SINGLE, template)  # no reasoning: non-thinking mode in auto
    assert trained_text(tiny_tokenizer, sample) == "한 개에 500원입니다.<|im_end|>"
    full = tiny_tokenizer.decode(sample.input_ids)
    # The empty think block is part of the prompt, as inference with enable_thinking=False renders it.
    assert full.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n한 개에 500원입니다.<|im_end|>")
    assert sample.input_ids[-1] == tiny_tokenizer.eos_token_id and sample.completion_mask[-1] == 1
    assert sum(sample.completion_mask) == len(tiny_tokenizer("한 개에 500원입니다.<|im_end|>")["input_ids"])


@pytest.mark.parametrize("template", TEMPLATES.values(), ids=TEMPLATES.keys())
def test_multi_turn_history_is_rendered_as_inference_renders_it(tiny_tokenizer, template):
    first, second = render(tiny_tokenizer, MULTI, template)
    assert trained_text(tiny_tokenizer, first) == "네, 안녕하세요!<|im_end|>"
    assert trained_text(tiny_tokenizer, second) == (
        "<think>\n점심 메뉴를 묻는다. 따뜻한 국물을 권하자.\n</think>\n\n된장찌개 어떠세요?<|im_end|>")
    # In the second sequence the first answer is history: no think block, no loss, as Qwen3 shows it.
    assert "<|im_start|>assistant\n네, 안녕하세요!<|im_end|>" in tiny_tokenizer.decode(second.input_ids)


def test_prefix_preserving_turns_share_one_sequence(tiny_tokenizer):
    plain = [m for m in MULTI]
    plain[-1] = {"role": "assistant", "content": "된장찌개 어떠세요?"}
    samples = render(tiny_tokenizer, plain, None, thinking="on")
    # Thinking on everywhere: the first answer is rendered differently once history, so two sequences.
    assert len(samples) == 2
    both = render(tiny_tokenizer, plain, None, turns="last")
    assert len(both) == 1 and trained_text(tiny_tokenizer, both[0]) == "된장찌개 어떠세요?<|im_end|>"


def test_a_template_that_keeps_history_trains_all_turns_in_one_sequence(tiny_tokenizer):
    chatml = ("{% for m in messages %}{{ '<|im_start|>' + m.role + '\n' + m.content + '<|im_end|>\n' }}"
              "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    messages = [{k: v for k, v in m.items() if k != "reasoning_content"} for m in MULTI]
    [sample] = render(tiny_tokenizer, messages, chatml)
    assert trained_text(tiny_tokenizer, sample) == "네, 안녕하세요!<|im_end|>된장찌개 어떠세요?<|im_end|>"


def test_mask_matches_the_generation_markers_of_the_tiny_template(tiny_tokenizer):
    """Our prompt/answer split and the template's {% generation %} markers agree on a thinking turn."""
    single = [MULTI[2], MULTI[3]]
    [sample] = render(tiny_tokenizer, single, None)
    marked = tiny_tokenizer.apply_chat_template(single, tokenize=True, return_dict=True,
                                                return_assistant_tokens_mask=True)
    ids = [t for t, m in zip(marked["input_ids"], marked["assistant_masks"]) if m]
    assert ids == [t for t, m in zip(sample.input_ids, sample.completion_mask) if m]


def test_reasoning_with_thinking_off_is_a_clear_error(tiny_tokenizer):
    with pytest.raises(TemplateMismatch, match="model.thinking=auto or on"):
        render(tiny_tokenizer, MULTI, None, thinking="off")


def test_a_template_without_the_end_token_is_a_clear_error(tiny_tokenizer):
    no_end = "{% for m in messages %}{{ m.role + ': ' + m.content + '\n' }}{% endfor %}"
    with pytest.raises(TemplateMismatch, match="end_of_turn_token"):
        render(tiny_tokenizer, SINGLE, no_end)


def test_an_answer_starting_with_a_newline_trains_as_inference_writes_it(tiny_tokenizer):
    """Templates that keep an answer as written (Qwen2.5, Qwen3-2507-Instruct) put a leading newline right after
    "assistant\\n", and BPE tokenizers with a "\\n\\n" token merge the two: the prompt was no longer a token prefix,
    and the whole run stopped on a message about thinking. The answer is now tokenized after the prompt's own
    tokens, as inference writes it."""
    import copy

    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.add_tokens(["\n\n"])  # as Qwen's BPE merges two newlines into one token
    plain = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
             "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    messages = [{"role": "user", "content": "안녕하세요?"}, {"role": "assistant", "content": "\n네, 안녕하세요!"}]
    [sample] = render(tokenizer, messages, plain)
    prompt = tokenizer(tokenizer.apply_chat_template(messages[:1], chat_template=plain, tokenize=False,
                                                     add_generation_prompt=True), add_special_tokens=False)
    assert sample.input_ids[: len(prompt["input_ids"])] == prompt["input_ids"]  # the context inference gives
    assert trained_text(tokenizer, sample) == "\n네, 안녕하세요!<|im_end|>"
