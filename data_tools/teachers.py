"""Teachers: the LLMs that write synthetic Korean training data, behind one small interface.

A generator builds `GenerationRequest`s (chat messages + sampling settings + a seed) and hands them to a
`Teacher`, which returns one `Generation` per request, in order. Three teachers:

- `TransformersTeacher`: a model and tokenizer already loaded in this process (a base, or a base with a PEFT
  adapter), batched with left padding. Each request samples from its own seeded generator, so what shares its
  batch changes none of its random draws (only, on a GPU in bf16, the rounding of padded batches can).
- `VLLMTeacher`: vLLM offline batch generation on a CUDA GPU (`pip install 'kosov[vllm]'`).
- `HTTPTeacher`: any OpenAI-compatible endpoint (`kosov serve`, `vllm serve`, a hosted API), with a concurrency
  limit, retries with backoff, and an on-disk cache: a repeated or crashed job never pays twice for a row.

    >>> teacher = HTTPTeacher("http://127.0.0.1:8000/v1", "tiny-ko", cache_dir="cache/teacher")  # doctest: +SKIP
    >>> [g] = teacher.generate([GenerationRequest([{"role": "user", "content": "안녕?"}], seed=0)])  # doctest: +SKIP
    >>> g.text, g.finish_reason, g.cached                                      # doctest: +SKIP
    ('안녕하세요! ...', 'stop', False)

The teacher's `name` goes into each row's meta as `teacher_model`.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from tqdm.auto import tqdm

from data_tools.sampling import (NEUTRAL_SAMPLING, SAMPLING_RANGES, RowSampler, RowStop, model_sampling_defaults,
                                 sampling_ok)
from data_tools.text import THINK_CLOSE, THINK_OPEN, ends_in_thinking

log = logging.getLogger(__name__)

# Arguments of `apply_chat_template` itself: a chat_template_kwargs key may not replace them.
RESERVED_TEMPLATE_KWARGS = frozenset({"conversation", "messages", "tokenize", "add_generation_prompt", "tools",
                                      "documents", "chat_template", "continue_final_message", "return_tensors",
                                      "return_dict", "padding", "truncation", "max_length", "tokenizer_kwargs",
                                      "return_assistant_tokens_mask"})


class TeacherError(Exception):
    """A teacher failure the user can fix (the same what / where / fix shape as training's KosovError)."""

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None):
        self.what, self.where, self.fix = what, where, fix
        super().__init__("\n".join([f"{where}: {what}" if where else what, *([f"Fix: {fix}"] if fix else [])]))


@dataclass
class GenerationRequest:
    messages: list[dict]  # chat turns ending with the user turn to answer
    max_new_tokens: int = 512
    temperature: float = 0.7  # 0 = greedy
    top_p: float = 0.95
    top_k: int = 0  # sample from the k likeliest tokens only; 0 or -1 = off
    min_p: float = 0.0  # drop tokens less likely than min_p times the likeliest one; 0 = off
    seed: int | None = None  # makes sampling reproducible (and an HTTPTeacher's cache usable)
    chat_template_kwargs: dict = field(default_factory=dict)  # e.g. {"enable_thinking": False} for Qwen3
    stop: list[str] = field(default_factory=list)  # the answer ends before the first of these strings
    # A raw prompt instead of rendered messages (Magpie: the chat template up to where a user's words begin).
    # In-process teachers only: an OpenAI chat endpoint takes messages.
    prompt_text: str | None = None
    where: str | None = None  # the input it came from ("file:line"), named when the teacher refuses it


@dataclass
class Generation:
    text: str  # the answer, without the <think> block
    reasoning: str | None  # the <think> block's content, None when the answer has none
    # "stop" (end of turn or a stop string), "length" (max_new_tokens reached) or "error" (the endpoint refused
    # this one request, e.g. a prompt longer than its context: no answer, and generators skip it)
    finish_reason: str
    cached: bool = False  # True when an HTTPTeacher read it from its cache instead of asking the endpoint
    usage: dict = field(default_factory=dict)  # prompt_tokens, completion_tokens, total_tokens
    error: str | None = None  # with finish_reason "error": the endpoint's message


class Teacher(Protocol):
    name: str  # the model id, recorded as teacher_model in each row's meta

    def generate(self, requests: list[GenerationRequest], *, progress: bool = True) -> list[Generation]: ...


def split_reasoning(text: str) -> tuple[str | None, str]:
    """(reasoning, answer) of a raw completion. A <think> block cut off by max_new_tokens is all reasoning.

    >>> split_reasoning("<think>\\n3 더하기 4\\n</think>\\n\\n7입니다.")
    ('3 더하기 4', '7입니다.')
    >>> split_reasoning("7입니다.")
    (None, '7입니다.')
    """
    if THINK_CLOSE in text:
        head, _, answer = text.partition(THINK_CLOSE)
        return head.split(THINK_OPEN, 1)[-1].strip(), answer.strip()
    if text.lstrip().startswith(THINK_OPEN):
        return text.lstrip()[len(THINK_OPEN):].strip(), ""
    return None, text


def split_completion(prompt: str | None, text: str) -> tuple[str | None, str]:
    """(reasoning, answer) of the completion `text` of `prompt`. A chat template that opens the think block itself
    (Qwen3-Thinking-2507 and DeepSeek-R1 distills end the generation prompt with "<think>\\n") gets a completion
    with no <think> of its own: cut off by max_new_tokens or a stop string before its </think>, it is all reasoning,
    not an answer. Without such a prompt (None: unknown), it is split_reasoning's.

    >>> split_completion("<|im_start|>assistant\\n<think>\\n", "3 더하기 4는")
    ('3 더하기 4는', '')
    >>> split_completion("<|im_start|>assistant\\n<think>\\n", "3 더하기 4\\n</think>\\n\\n7입니다.")
    ('3 더하기 4', '7입니다.')
    """
    if prompt is not None and ends_in_thinking(prompt) and not text.lstrip().startswith(THINK_OPEN):
        text = THINK_OPEN + text
    return split_reasoning(text)


def check_requests(requests: list[GenerationRequest]) -> None:
    """Fail before any work on a request no backend could answer."""
    for i, r in enumerate(requests):
        where = f"request {i}"
        if r.prompt_text is None and (not r.messages or not all(isinstance(m, dict) and "role" in m
                                                                 for m in r.messages)):
            raise TeacherError("messages must be a non-empty list of {'role': ..., 'content': ...}", where=where)
        if r.max_new_tokens < 1 or r.temperature < 0 or not 0 < r.top_p <= 1:
            raise TeacherError(f"max_new_tokens={r.max_new_tokens}, temperature={r.temperature}, top_p={r.top_p}",
                               where=where, fix="use max_new_tokens >= 1, temperature >= 0 and 0 < top_p <= 1")
        for key in ("top_k", "min_p"):
            if not sampling_ok(key, getattr(r, key)):
                raise TeacherError(f"{key}={getattr(r, key)!r}", where=where, fix=f"use {key} {SAMPLING_RANGES[key]}")
        reserved = RESERVED_TEMPLATE_KWARGS & set(r.chat_template_kwargs)
        if reserved:
            raise TeacherError(f"chat_template_kwargs may not set {sorted(reserved)}", where=where,
                               fix="pass only template variables, e.g. {'enable_thinking': False}")


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def cut_at_stop(text: str, stop: list[str]) -> str | None:
    """`text` up to the earliest stop string, or None when none occurs."""
    hits = [text.index(s) for s in stop if s and s in text]
    return text[: min(hits)] if hits else None


def template_end_of_turn(tokenizer: Any) -> int | None:
    """The special token the chat template puts right after an assistant's answer (<|im_end|>, <|eot_id|>,
    <end_of_turn>), or None when the template closes a turn otherwise or cannot render one."""
    marker = "\u2063KOSOV\u2063"
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "."},
                                              {"role": "assistant", "content": marker}], tokenize=False)
    except Exception:  # noqa: BLE001 - a template with rules of its own: no extra stop token
        return None
    if not isinstance(text, str) or marker not in text:
        return None
    after = tokenizer(text.split(marker, 1)[1], add_special_tokens=False)["input_ids"]
    special = {*tokenizer.all_special_ids,
               *(i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if getattr(t, "special", False))}
    return after[0] if after and after[0] in special else None


# ---------------------------------------------------------------------------------------------------------
# A model loaded in this process


class TransformersTeacher:
    """Batched generation from a loaded transformers model (optionally a PeftModel) and its tokenizer.

    Sampling happens in `RowSampler`: each row draws from its own torch.Generator seeded with its request's
    seed (or from torch's global RNG when it has none), with its own temperature, top_k, min_p and top_p;
    generate() then picks that token greedily. So batch composition and order change no random draw; only float
    rounding of a padded batch (bf16 on a GPU) can still move a near-tie.

    generate() encodes and decodes with its own copy of the tokenizer: a fast tokenizer keeps its padding setting
    on the shared Rust object, so another thread's `teacher.tokenizer(text)` (kosov serve counts a prompt's tokens
    while a batch is set up) could unpad the batch between setup and encode ("Unable to create tensor").
    `sampling_defaults` are what kosov serve uses for a sampling setting a request leaves out: the model's
    generation_config values (model_sampling_defaults), else NEUTRAL_SAMPLING.
    """

    def __init__(self, model: Any, tokenizer: Any, name: str, batch_size: int = 8,
                 stop_token_ids: Sequence[int] = (), template_defaults: dict[str, Any] | None = None):
        self.model, self.tokenizer, self.name, self.batch_size = model, tokenizer, name, batch_size
        self._codec = copy.deepcopy(tokenizer)  # generate()'s own: see the class docstring
        self.sampling_defaults = {**NEUTRAL_SAMPLING, **model_sampling_defaults(model.generation_config)}
        self.template_defaults = dict(template_defaults or {})  # chat template kwargs a request may override
        ids = model.generation_config.eos_token_id
        ids = ids if isinstance(ids, list) else [ids]
        # A base checkpoint (eos <|endoftext|>) fine-tuned to close its turns with <|im_end|> must stop there too:
        # the recipe's end of turn (stop_token_ids) and the token the chat template closes a turn with.
        extra = [*stop_token_ids, template_end_of_turn(tokenizer)]
        self.eos_ids = {i for i in [*ids, tokenizer.eos_token_id, *extra] if i is not None}
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)

    def render(self, request: GenerationRequest) -> str:
        """The prompt text: the chat template with a generation prompt and the request's template kwargs."""
        if request.prompt_text is not None:
            return request.prompt_text
        return self.tokenizer.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True,
                                                  **{**self.template_defaults, **request.chat_template_kwargs})

    def generate(self, requests: list[GenerationRequest], *, progress: bool = True,
                 on_row: Callable[[int, Generation], None] | None = None) -> list[Generation]:
        """One Generation per request, in order. `on_row(i, generation)` (kosov serve answers a request with it) is
        called once for each request i, as soon as its row ends: at its end of turn, limit or stop string, while
        the rest of its batch generates on; the same Generation comes back in the list."""
        check_requests(requests)
        if not requests:
            return []
        texts = [self.render(r) for r in requests]
        lengths = [len(ids) for ids in self._codec(texts, add_special_tokens=False)["input_ids"]]
        order = sorted(range(len(requests)), key=lambda i: lengths[i])  # similar lengths share a batch: less padding
        results: list[Generation | None] = [None] * len(requests)
        with tqdm(total=len(requests), desc=self.name, unit="row", disable=not progress) as bar:
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                report = None if on_row is None else (lambda j, out, batch=batch: on_row(batch[j], out))
                outs = self._generate_batch([requests[i] for i in batch], [texts[i] for i in batch], report)
                for i, out in zip(batch, outs, strict=True):
                    results[i] = out
                bar.update(len(batch))
        return results  # type: ignore[return-value]

    def _generate_batch(self, requests: list[GenerationRequest], texts: list[str],
                        on_row: Callable[[int, Generation], None] | None = None) -> list[Generation]:
        from transformers import LogitsProcessorList, StoppingCriteriaList

        enc = self._codec(texts, return_tensors="pt", padding=True, padding_side="left",
                          add_special_tokens=False).to(self.model.device)
        prompt_len = enc["input_ids"].shape[1]
        prompt_tokens = enc["attention_mask"].sum(dim=1).tolist()
        stop = RowStop(requests, prompt_len, self._codec)
        rows = RowsDone(stop, self.eos_ids, lambda i, tokens: self._finish(requests[i], tokens, prompt_tokens[i],
                                                                           texts[i]), on_row)
        out = self.model.generate(
            **enc, do_sample=False, max_new_tokens=max(r.max_new_tokens for r in requests),
            eos_token_id=sorted(self.eos_ids), pad_token_id=self.pad_id,
            logits_processor=LogitsProcessorList([RowSampler(requests)]),
            # a lone row ends with generate(): handed over after it, without RowsDone's sync per step
            stopping_criteria=StoppingCriteriaList([rows if on_row is not None and len(requests) > 1 else stop]),
        )
        return rows.rest(out[:, prompt_len:])

    def _finish(self, request: GenerationRequest, tokens: list[int], prompt_tokens: int, prompt: str) -> Generation:
        end = next((i for i, t in enumerate(tokens) if t in self.eos_ids), None)
        body = tokens if end is None else tokens[:end]
        completion_tokens = len(body) + (end is not None)
        text = self._codec.decode(body, skip_special_tokens=True)
        reason = "length" if end is None else "stop"
        cut = cut_at_stop(text, request.stop)
        if cut is not None:
            text, reason = cut, "stop"
        reasoning, answer = split_completion(prompt, text)
        return Generation(answer, reasoning, reason, False, usage(prompt_tokens, completion_tokens))


class RowsDone:
    """RowStop's stopping criterion, which also hands each row's Generation to `on_row(i, generation)` at the step
    the row ends (its stop, or an end-of-turn token), so its answer need not wait for the rest of its batch.
    `finish(i, tokens)` makes row i's Generation from the tokens it generated; `rest(new_tokens)` makes those of the
    rows not ended yet once generate() returns (reporting them too) and gives every row's, in order.

    Looking for an end-of-turn token reads the last tokens back to the host each step (one sync on a GPU): without
    `on_row`, or for a batch of one row, the teacher passes the bare RowStop to generate() and calls `rest` after."""

    def __init__(self, stop: RowStop, eos_ids: set[int], finish: Callable[[int, list[int]], Generation],
                 on_row: Callable[[int, Generation], None] | None):
        self.stop, self.eos_ids, self.finish, self.on_row = stop, eos_ids, finish, on_row
        self.done: list[Generation | None] = [None] * len(stop.requests)
        self.eos_tensor = None

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        stopped = self.stop(input_ids, scores, **kwargs)
        new = input_ids[:, self.stop.prompt_len :]
        if self.eos_tensor is None:
            self.eos_tensor = torch.tensor(sorted(self.eos_ids), device=input_ids.device)
        ended = (stopped | torch.isin(new[:, -1], self.eos_tensor)).tolist()
        for i, now in enumerate(ended):
            if now and self.done[i] is None:
                self._report(i, new[i])
        return stopped

    def rest(self, new_tokens) -> list[Generation]:
        for i, generation in enumerate(self.done):
            if generation is None:
                self._report(i, new_tokens[i])
        return self.done  # type: ignore[return-value]

    def _report(self, i: int, new_tokens) -> None:
        # A row that ended at its own limit or stop string is padded after that: keep what it generated.
        self.done[i] = generation = self.finish(i, new_tokens[: self.stop.ended[i]].tolist())
        if self.on_row is not None:
            self.on_row(i, generation)


def vllm_max_lora_rank(adapter: str | Path) -> int:
    """The max_lora_rank vLLM must be started with for `adapter`: its rank (adapter_config.json's r), rounded up to
    a rank vLLM accepts (8, 16, 32, ... 512). vLLM's default is 16, and it refuses an adapter of a larger rank (the
    recipes train r=32): "LoRA rank 32 is greater than max_lora_rank 16"."""
    rank = json.loads((Path(adapter) / "adapter_config.json").read_text()).get("r", 16)
    return max(8, 1 << (int(rank) - 1).bit_length())


class VLLMTeacher:
    """vLLM's offline engine (`vllm.LLM(...).chat(...)`), with a LoRA adapter when `lora_path` is given.

    `engine_kwargs` go to `vllm.LLM` (e.g. gpu_memory_utilization=0.8, max_model_len=8192, tensor_parallel_size=2).
    """

    def __init__(self, model_id: str, revision: str | None = None, lora_path: str | None = None,
                 stop_token_ids: Sequence[int] = (), **engine_kwargs):
        import importlib.util

        import torch

        if not torch.cuda.is_available():
            raise TeacherError("the vLLM teacher needs a CUDA GPU, and PyTorch sees none on this machine",
                               fix="run it on a GPU machine, or use the transformers teacher or an HTTPTeacher "
                                   "pointed at an OpenAI-compatible server (e.g. `vllm serve` on a GPU machine)")
        if importlib.util.find_spec("vllm") is None:
            raise TeacherError("the vLLM teacher needs the vllm package, which is not installed",
                               fix="pip install 'kosov[vllm]' on the GPU machine, or use the transformers teacher")
        from vllm import LLM

        self.lora = None
        if lora_path:
            from vllm.lora.request import LoRARequest

            engine_kwargs.setdefault("enable_lora", True)
            engine_kwargs.setdefault("max_lora_rank", vllm_max_lora_rank(lora_path))
            self.lora = LoRARequest("kosov-adapter", 1, str(lora_path))
        self.name = model_id if not lora_path else f"{model_id}+{lora_path}"
        self.stop_token_ids = list(stop_token_ids)  # the recipe's end of turn, besides the model's own eos
        self.llm = LLM(model=model_id, revision=revision, **engine_kwargs)

    def generate(self, requests: list[GenerationRequest], *, progress: bool = True) -> list[Generation]:
        from vllm import SamplingParams

        check_requests(requests)
        results: list[Generation | None] = [None] * len(requests)
        tokenizer = self.llm.get_tokenizer()
        groups: dict[str, list[int]] = {}  # LLM.chat takes one chat_template_kwargs for all its conversations
        for i, r in enumerate(requests):
            key = "raw" if r.prompt_text is not None else json.dumps(r.chat_template_kwargs, sort_keys=True)
            groups.setdefault(key, []).append(i)
        for kwargs, indices in groups.items():
            params = [SamplingParams(n=1, max_tokens=requests[i].max_new_tokens, temperature=requests[i].temperature,
                                     top_p=requests[i].top_p, top_k=requests[i].top_k if requests[i].top_k > 0 else -1,
                                     min_p=requests[i].min_p, seed=requests[i].seed, stop=requests[i].stop or None,
                                     stop_token_ids=self.stop_token_ids or None)
                      for i in indices]
            if kwargs == "raw":  # raw prompts (Magpie) go to generate(), which applies no template
                from vllm.inputs import TokensPrompt

                # as token ids encoded without special tokens: given text, generate() adds a BOS before the one
                # a Llama or Gemma template's text already starts with (TransformersTeacher encodes it so too)
                prompts = [TokensPrompt(prompt_token_ids=tokenizer.encode(requests[i].prompt_text,
                                                                          add_special_tokens=False))
                           for i in indices]
                outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=progress,
                                            lora_request=self.lora)
            else:
                outputs = self.llm.chat([requests[i].messages for i in indices], sampling_params=params,
                                        use_tqdm=progress, lora_request=self.lora,
                                        chat_template_kwargs=json.loads(kwargs))
            for i, out in zip(indices, outputs, strict=True):
                done = out.outputs[0]
                # the rendered prompt: does its template open the think block itself? (chat() renders it to token
                # ids, so a RequestOutput may carry no prompt text)
                prompt = requests[i].prompt_text if kwargs == "raw" else getattr(out, "prompt", None)
                if prompt is None:
                    prompt = tokenizer.decode(out.prompt_token_ids or [], skip_special_tokens=False)
                reasoning, answer = split_completion(prompt, done.text)
                results[i] = Generation(answer, reasoning, done.finish_reason or "stop", False,
                                        usage(len(out.prompt_token_ids or []), len(done.token_ids)))
        return results  # type: ignore[return-value]
