"""kosov serve's request schema: an OpenAI chat completion request, checked and turned into a GenerationRequest.

Sampling settings a request leaves out (temperature, top_p, top_k, min_p) take the served model's
generation_config.json values, as vLLM's OpenAI server does by default (`--generation-config auto`; do_sample is not
read, as vLLM does not), else OpenAI's neutral ones: temperature 1, top_p 1, top_k and min_p off. top_k (-1 or 0 =
off) and min_p (0 = off) are vLLM's extra sampling parameters.
"""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field

from data_tools.sampling import NEUTRAL_SAMPLING, SAMPLING_RANGES, sampling_ok
from data_tools.teachers import RESERVED_TEMPLATE_KWARGS, GenerationRequest, TransformersTeacher
from data_tools.text import nfc

ROLES = ("system", "developer", "user", "assistant")  # developer: OpenAI's newer name for system


# OpenAI parameters this server does not implement, accepted at the one value that changes nothing.
NEUTRAL: dict[str, Any] = {"logprobs": False, "top_logprobs": 0, "presence_penalty": 0, "frequency_penalty": 0,
                           "logit_bias": {}, "tools": [], "tool_choice": "none", "response_format": {"type": "text"}}


def neutral(key: str, value: Any) -> bool:
    """True for a NEUTRAL value (a bool is not a number here: presence_penalty=false is refused)."""
    want = NEUTRAL.get(key, object())
    return value == want and isinstance(value, bool) == isinstance(want, bool)


@dataclass
class ServedRequest(GenerationRequest):
    """A request kosov serve generates: `cancelled` is set when its client leaves (or a forced shutdown answers it),
    and its row then stops at the next token (data_tools.sampling.RowStop); one not started yet is skipped."""

    cancelled: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None, status: int = 400):
        self.message, self.param, self.status = message, param, status


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: Optional[str | list[dict[str, Any]]] = None  # a string, or OpenAI's [{"type": "text", "text": ...}]
    reasoning_content: Optional[str] = None  # an earlier assistant turn's thinking (Qwen3-style templates)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # unknown parameters are refused by name, never ignored
    model: Optional[str] = None
    messages: list[ChatMessage]
    max_tokens: Optional[int] = Field(None, ge=1)
    max_completion_tokens: Optional[int] = Field(None, ge=1)  # OpenAI's newer name for max_tokens
    temperature: Optional[float] = Field(None, ge=0, le=2)  # null: the model's default, else OpenAI's, 1
    top_p: Optional[float] = Field(None, gt=0, le=1)  # null: the model's default, else 1
    top_k: Optional[int] = None  # vLLM's; -1 or 0: off. null: the model's default, else off
    min_p: Optional[float] = None  # vLLM's; 0: off. null: the model's default, else off
    seed: Optional[int] = Field(None, ge=-(2**63), le=2**63 - 1)  # torch's generator seed range
    n: Optional[int] = None  # null: 1
    stop: Optional[str | list[str]] = None
    stream: Optional[bool] = None
    chat_template_kwargs: Optional[dict[str, Any]] = None
    user: Optional[str] = None  # a label, accepted and unused


def _text(content: Any, param: str) -> str:
    """A message's text, NFC-normalised (the model writes NFC: an NFD turn or stop string would match nothing)."""
    if content is None or isinstance(content, str):
        return nfc(content or "")
    if all(part.get("type") == "text" and isinstance(part.get("text"), str) for part in content):
        return nfc("".join(part["text"] for part in content))
    raise BadRequest("only text content is supported (a string or parts of type 'text')", param)


def context_tokens(teacher: TransformersTeacher) -> int:
    """The served model's context in tokens (its config's window, a multimodal one's text_config's; a model whose
    config names none: no bound)."""
    from training.evaluation.thinking import config_window

    return config_window(teacher.model.config) or 10**9


@functools.lru_cache(maxsize=8)
def max_token_chars(tokenizer: Any) -> int:
    """The most characters one token of `tokenizer` can stand for: its longest vocabulary entry. A byte-level BPE
    entry (Qwen, Llama 3) spells one byte per character, and a decoded character takes at least one byte; a
    SentencePiece piece decodes to at most its own length. (tiny-ko: 31, the bytes of " 인류무형문화유산으로".)"""
    return max(map(len, tokenizer.get_vocab()))


def check_prompt_size(messages: list[dict], teacher: TransformersTeacher) -> None:
    """Refuse, before rendering and tokenizing it (seconds for megabytes of text), a prompt that cannot fit the
    context whatever its tokens: each token stands for at most max_token_chars characters, so the text of the
    system and user turns, which every chat template keeps whole, has at least (its characters) / max_token_chars
    tokens. Spaces are not counted (a normalizer may merge them), nor assistant turns (a template may drop their
    thinking). So no prompt that fits is refused here. The bound is loose (tiny-ko's tokenizer takes about 0.67 tokens
    a character on Korean prose, where this allows 1/31): it only spares the server absurd sizes; the exact count
    follows."""
    context, per_token = context_tokens(teacher), max_token_chars(teacher.tokenizer)
    chars = sum(len("".join(m["content"].split())) for m in messages if m["role"] != "assistant")
    if chars >= context * per_token:
        raise BadRequest(f"the messages have {chars} characters (besides spaces), more than this model's context "
                         f"of {context} tokens can hold (a token stands for at most {per_token} characters); "
                         "shorten them", "messages")


def to_generation_request(body: ChatRequest, teacher: TransformersTeacher) -> ServedRequest:
    """Check an OpenAI chat request and turn it into a ServedRequest; BadRequest (400) names what is wrong. It renders
    and tokenizes the prompt (seconds for a long one): kosov serve calls it off its event loop."""
    if body.stream:
        raise BadRequest("stream=true is not supported: kosov serve answers with whole completions; "
                         "send stream=false", "stream")
    if body.n not in (None, 1):
        raise BadRequest(f"n={body.n} is not supported: send n=1 and one request per sample", "n")
    unknown = sorted(k for k, v in (body.model_extra or {}).items()
                     if v is not None and not neutral(k, v))
    if unknown:
        supported = sorted(set(ChatRequest.model_fields) - {"user"})
        only = "; ".join(f"{k} is accepted only as {json.dumps(NEUTRAL[k])}" for k in unknown if k in NEUTRAL)
        raise BadRequest(f"unsupported parameters {unknown}; this server takes {supported}"
                         + (f" ({only})" if only else ""), unknown[0])
    if not body.messages:
        raise BadRequest("messages must not be empty", "messages")
    messages = []
    for i, m in enumerate(body.messages):
        if m.role not in ROLES:
            raise BadRequest(f"messages[{i}].role={m.role!r} is not allowed; use one of {list(ROLES)}",
                             f"messages.{i}.role")
        turn = {"role": "system" if m.role == "developer" else m.role, "content": _text(m.content, f"messages.{i}")}
        if m.reasoning_content is not None:
            turn["reasoning_content"] = nfc(m.reasoning_content)
        messages.append(turn)
    check_prompt_size(messages, teacher)
    template_kwargs = body.chat_template_kwargs or {}
    reserved = sorted(RESERVED_TEMPLATE_KWARGS & set(template_kwargs))
    if reserved:
        raise BadRequest(f"chat_template_kwargs may not set {reserved}", "chat_template_kwargs")
    stop = [nfc(s) for s in ([body.stop] if isinstance(body.stop, str) else body.stop or [])]
    for key in ("top_k", "min_p"):  # temperature and top_p: their Field ranges
        if getattr(body, key) is not None and not sampling_ok(key, getattr(body, key)):
            raise BadRequest(f"{key}={getattr(body, key)} is not allowed: use {key} {SAMPLING_RANGES[key]}", key)
    sampling = {key: teacher.sampling_defaults[key] if getattr(body, key) is None else getattr(body, key)
                for key in NEUTRAL_SAMPLING}  # what the request leaves out: the model's defaults (see the top)
    request = ServedRequest(messages, 1, seed=body.seed, chat_template_kwargs=template_kwargs, stop=stop,
                                **sampling)
    try:
        prompt = teacher.render(request)
    except Exception as e:  # noqa: BLE001 - a jinja error raised by the template for these messages
        raise BadRequest(f"the chat template cannot render these messages: {e}", "messages") from None
    prompt_tokens = len(teacher.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    context = context_tokens(teacher)
    if prompt_tokens >= context:
        raise BadRequest(f"this model's context is {context} tokens; the prompt alone has {prompt_tokens}",
                         "messages")
    asked = body.max_completion_tokens or body.max_tokens
    request.max_new_tokens = asked or context - prompt_tokens  # like vLLM: the rest of the context by default
    if prompt_tokens + request.max_new_tokens > context:
        raise BadRequest(f"this model's context is {context} tokens; the prompt has {prompt_tokens} and "
                         f"max_tokens asks for {request.max_new_tokens} more", "max_tokens")
    return request


def describe_sampling(teacher: TransformersTeacher) -> str:
    """What a request that leaves out its sampling settings gets, and where from (for the startup log)."""
    defaults = teacher.sampling_defaults
    own = [k for k in NEUTRAL_SAMPLING if defaults[k] != NEUTRAL_SAMPLING[k]]
    where = f"the model's generation_config sets {', '.join(own)}" if own else "OpenAI's neutral defaults"
    return ", ".join(f"{k}={defaults[k]}" for k in NEUTRAL_SAMPLING) + f" ({where})"
