"""Thinking modes in evaluation (eval.thinking): lm-eval's chat-template switch, the generation limit thinking "on"
takes (eval.thinking_max_new_tokens) and whether it fits the model's window, and a completion cut off while thinking
counted as unanswered, in lm-eval's generative tasks as in kosov's own evals."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from data_tools.text import THINK_OPEN, cut_off_thinking, ends_in_thinking
from training.errors import KosovError
from training.schema import EvalConfig

log = logging.getLogger(__name__)


def thinking_max_new_tokens(ecfg: EvalConfig, mode: str | None) -> int | None:
    """The generation limit thinking mode `mode` sets (eval.thinking_max_new_tokens, in mode "on" only), for lm-eval's
    generating tasks and kosov's own evals alike; None: each keeps its own (HRM8K's max_gen_toks: 2048)."""
    limit = check_limit(ecfg)
    return None if mode != "on" else limit


def check_limit(ecfg: EvalConfig) -> int | None:
    """eval.thinking_max_new_tokens, checked: a whole number of tokens, 1 or more, or None (each task's own)."""
    limit = ecfg.thinking_max_new_tokens
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise KosovError(f"eval.thinking_max_new_tokens={limit!r} must be a whole number of tokens, 1 or more",
                         fix="e.g. eval.thinking_max_new_tokens=8192, or null for each task's own limit")
    return limit


def gen_kwargs(ecfg: EvalConfig, mode: str | None) -> dict[str, Any] | None:
    """simple_evaluate's gen_kwargs in a thinking mode: lm-eval merges them into the generation_kwargs of the
    generating (generate_until) tasks only, over the task's own max_gen_toks; likelihood tasks never see them."""
    limit = thinking_max_new_tokens(ecfg, mode)
    return None if limit is None else {"max_gen_toks": limit}


PROMPT_ROOM = 1024  # tokens a prompt has, at the least, beside the thinking limit before lm-eval cuts it


def config_window(config: Any) -> int | None:
    """The context window a model's config gives, in tokens (what vLLM starts with when given no max_model_len; a
    multimodal config's text_config first); None where it names none."""
    for part in (getattr(config, "text_config", None), config):
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx"):
            value = getattr(part, key, None) if part is not None else None
            if isinstance(value, int) and value > 0:
                return value
    return None


def check_window(ecfg: EvalConfig, mode: str | None, window: int | None, model: str) -> None:
    """The thinking limit must fit the model's context window (`window`, None: unknown) with room for the prompt:
    lm-eval's hf backend fails on a limit as long as the window, and both backends cut a prompt from the left to
    the window less the limit."""
    limit = thinking_max_new_tokens(ecfg, mode)
    if limit is None or not window:
        return
    if limit >= window:
        raise KosovError(f"eval.thinking_max_new_tokens={limit} does not fit the context window of {model} "
                         f"({window} tokens), prompt included",
                         fix=f"set eval.thinking_max_new_tokens={max(1, window - PROMPT_ROOM)} or lower, or null "
                             "for each task's own limit")
    if window - limit < PROMPT_ROOM:
        log.warning("eval.thinking_max_new_tokens=%d leaves prompts %d of the %d tokens of %s's context window: a "
                    "longer prompt is cut from the left", limit, window - limit, window, model)


def thinking_args(mode: str | None) -> dict[str, Any]:
    """lm-eval's chat-template thinking switch (hf and vLLM models alike); None: no chat template, no switch."""
    if mode is None:
        return {}
    return {"enable_thinking": mode == "on", "think_end_token": "</think>"}


def _probe(tokenizer: Any, mode: str) -> str:
    """A one-question generation prompt, rendered by the tokenizer's chat template in thinking mode `mode`."""
    return tokenizer.apply_chat_template([{"role": "user", "content": "1 + 1은?"}], tokenize=False,
                                         add_generation_prompt=True, enable_thinking=mode == "on")


def _template_text(tokenizer: Any) -> str:
    template = getattr(tokenizer, "chat_template", None) or ""
    return " ".join(template.values()) if isinstance(template, dict) else str(template)


def template_opens_thinking(tokenizer: Any, mode: str | None) -> bool:
    """Whether the chat template, in this thinking mode, opens the think block in the generation prompt itself
    (data_tools.text.ends_in_thinking): lm-eval's completions then start mid-thought, with no <think>."""
    if mode is None:  # no chat template applied
        return False
    return ends_in_thinking(_probe(tokenizer, mode))


def check_thinking_switch(ecfg: EvalConfig, tokenizer: Any, template: str) -> None:
    """Thinking "on" only where the chat template (`template`: its name, for the error) reads enable_thinking
    (Qwen3-style) or always thinks (it opens <think> in the prompt, or names the think blocks its model writes). One
    that has no thinking at all (Llama 3, Gemma, EXAONE 3.5, a custom .jinja without it) renders the same prompts in
    both modes: the "on" rows would be the "off" scores again under another name. Checked on the
    tokenizer kosov's evals and lm-eval render with, before the model loads; nothing to check where no chat is
    rendered (lm-eval's tasks without chat templates run in no mode)."""
    from training.evaluation.generative import jobs_of

    if "on" not in ecfg.thinking or not (jobs_of(ecfg) or (ecfg.apply_chat_template and ecfg.tasks)):
        return
    on = _probe(tokenizer, "on")
    # a template that always thinks reads no switch either: one that opens <think> in the prompt (DeepSeek-R1
    # distills, Qwen3-Thinking-2507) or handles the think blocks a model opens itself (it names them) thinks in "on"
    if on == _probe(tokenizer, "off") and not ends_in_thinking(on) and "think>" not in _template_text(tokenizer):
        asked = ",".join(ecfg.thinking)
        raise KosovError(f"eval.thinking=[{asked}] asks for thinking on, but {template} ignores enable_thinking: it "
                         "renders the same prompt in both modes, so the \"on\" scores would be the \"off\" ones again",
                         fix="use eval.thinking=[off] for this model, or a chat template that reads enable_thinking "
                             "(model.chat_template=FILE.jinja)")


class Unanswered(str):
    """The empty answer lm-eval gets for a completion cut off while thinking (cut_off_thoughts_unanswered): equal to
    "" for every grader, and told apart from a model's own empty answer in the logged samples, to count them."""

    __slots__ = ()


@contextmanager
def cut_off_thoughts_unanswered(mode: str | None, opens_thinking: bool = False) -> Iterator[None]:
    """With thinking on, lm-eval keeps the whole text of a completion cut off while thinking (it has no </think> to
    split at), and a task's parser then takes the last number of the unfinished reasoning as its answer (HRM8K).
    kosov's own math eval counts such a completion as unanswered (data_tools.text.split_thinking): so does lm-eval
    here, its answer empty, for the hf and vLLM backends. `opens_thinking` (template_opens_thinking): the prompt
    opened the think block, so a completion is read as starting inside it, in either mode."""
    if mode != "on" and not opens_thinking:
        yield
        return
    import importlib

    from lm_eval.models import utils

    plain = utils.postprocess_generated_text

    def postprocess(generation: str, stop: Any, think_end_token: Any) -> str:
        whole = THINK_OPEN + generation if opens_thinking else generation
        return Unanswered() if cut_off_thinking(whole) else plain(generation, stop, think_end_token)

    modules = []
    for name in ("lm_eval.models.huggingface", "lm_eval.models.vllm_causallms"):
        try:
            modules.append(importlib.import_module(name))  # imported first: they bind the function at import
        except ImportError:  # vLLM not installed: no vLLM backend to patch
            continue
    for module in modules:
        module.postprocess_generated_text = postprocess
    try:
        yield
    finally:
        for module in modules:
            module.postprocess_generated_text = plain
