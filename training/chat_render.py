"""Render chat rows into training token ids the way inference renders them.

For each assistant turn we render the conversation up to that turn twice with the model's own chat
template: the prompt (history + generation prompt, in the turn's thinking mode) and the prompt plus
the answer. The tokens between them, up to and including the end-of-turn token, are what the model writes
at inference: only those carry loss.

Templates like Qwen3's render earlier assistant turns differently once a new user turn follows (their
`<think>` block is dropped). Turns whose rendering survives into the next turn's prompt share one training
sequence; where it does not, the later turn gets its own sequence with the history exactly as inference
shows it. So a sequence never trains the model on a context it will not see.

    >>> samples = render_conversation(messages, tokenizer, end_token_id=tokenizer.eos_token_id)  # doctest: +SKIP
    >>> samples[0].completion_mask   # 1 on answer tokens and the end token, 0 elsewhere            # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class TemplateMismatch(ValueError):
    """The chat template renders a prompt that is not a prefix of prompt + answer."""


@dataclass
class RenderedSample:
    input_ids: list[int]
    completion_mask: list[int]  # 1 where the model is trained (assistant tokens and the end-of-turn token)


@dataclass
class _Turn:
    ids: list[int]  # the conversation rendered up to and including this assistant turn
    start: int  # first token the model writes
    end: int  # one past the end-of-turn token


def _render_text(tokenizer: Any, messages: list[dict], add_generation_prompt: bool, kwargs: dict) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                                         **kwargs)


def _ids(tokenizer: Any, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _render_ids(tokenizer: Any, messages: list[dict], add_generation_prompt: bool, kwargs: dict) -> list[int]:
    return _ids(tokenizer, _render_text(tokenizer, messages, add_generation_prompt, kwargs))


def thinking_kwargs(thinking: str, turn: dict) -> dict:
    """enable_thinking for one assistant turn: auto follows the data (reasoning_content means thinking on)."""
    if thinking == "auto":
        return {"enable_thinking": bool(turn.get("reasoning_content", "").strip() or "</think>" in turn["content"])}
    return {"enable_thinking": thinking == "on"}


def _closed_by_next_turn(tokenizer: Any, full: list[int], end_token_id: int, kwargs: dict) -> list[int]:
    """Templates like GLM's never close an assistant turn: the model stops by writing the token that opens the next
    user turn. When the end-of-turn token is that opener, it is what the model writes after its answer: train on it."""
    user_turn = _render_ids(tokenizer, [{"role": "user", "content": "."}], False, kwargs)
    return [*full, end_token_id] if end_token_id in user_turn else full


def _turn(tokenizer: Any, messages: list[dict], index: int, end_token_id: int, kwargs: dict) -> _Turn:
    prompt_text = _render_text(tokenizer, messages[:index], True, kwargs)
    full_text = _render_text(tokenizer, messages[: index + 1], False, kwargs)
    prompt, full = _ids(tokenizer, prompt_text), _ids(tokenizer, full_text)
    if full[: len(prompt)] != prompt and full_text.startswith(prompt_text):
        # The answer's first characters merged with the prompt's last token (an answer starting with a newline after
        # the template's "assistant\n": one "\n\n" token). Inference writes the answer after the prompt's own tokens:
        # so does training, the answer tokenized on its own.
        full = prompt + _ids(tokenizer, full_text[len(prompt_text):])
    if full[: len(prompt)] != prompt:
        tail = tokenizer.decode(prompt[-8:])
        raise TemplateMismatch(
            f"the chat template renders the prompt of assistant turn {index} (ending {tail!r}) differently from "
            f"the same prompt followed by the answer (enable_thinking={kwargs.get('enable_thinking')!r}). A turn "
            "with thinking (reasoning_content, or a <think> block in its content) cannot be rendered with thinking "
            "off: use model.thinking=auto or on"
        )
    if end_token_id not in full[len(prompt):]:
        full = _closed_by_next_turn(tokenizer, full, end_token_id, kwargs)
    try:
        end = full.index(end_token_id, len(prompt)) + 1
    except ValueError:
        raise TemplateMismatch(
            f"assistant turn {index} is not closed by the end-of-turn token "
            f"{tokenizer.convert_ids_to_tokens(end_token_id)!r}; set model.end_of_turn_token to the token the chat "
            "template puts after each assistant answer (e.g. '<|im_end|>' for ChatML templates)"
        ) from None
    return _Turn(ids=full, start=len(prompt), end=end)


def _sample(group: list[_Turn]) -> RenderedSample:
    last = group[-1]
    mask = [0] * last.end
    for turn in group:
        mask[turn.start : turn.end] = [1] * (turn.end - turn.start)
    return RenderedSample(input_ids=last.ids[: last.end], completion_mask=mask)


def render_conversation(
    messages: list[dict],
    tokenizer: Any,
    *,
    end_token_id: int,
    thinking: str = "auto",
    turns: str = "all",
    chat_template_kwargs: dict | None = None,
) -> list[RenderedSample]:
    """Training samples for one conversation. `thinking` is auto / on / off (see `thinking_kwargs`);
    `turns="last"` trains only on the final assistant turn."""
    indices = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if turns == "last":
        indices = indices[-1:]
    samples: list[RenderedSample] = []
    group: list[_Turn] = []
    for index in indices:
        kwargs = {**(chat_template_kwargs or {}), **thinking_kwargs(thinking, messages[index])}
        turn = _turn(tokenizer, messages, index, end_token_id, kwargs)
        if group and turn.ids[: group[-1].end] != group[-1].ids[: group[-1].end]:
            samples.append(_sample(group))  # the history is rendered differently from here on
            group = []
        group.append(turn)
    if group:
        samples.append(_sample(group))
    return samples
