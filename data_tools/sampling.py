"""Sampling for the in-process teacher (data_tools.teachers.TransformersTeacher) and kosov serve: each row of a
batch samples with its own settings and seeded RNG (RowSampler) and stops at its own stop strings, or when its
request is cancelled (RowStop); the settings' valid ranges, and the defaults a model's generation_config sets for a
request that leaves them out."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from data_tools.teachers import GenerationRequest

log = logging.getLogger(__name__)


# The largest top_k: RowSampler holds top_k in an int64 tensor (any k over the vocabulary keeps every token).
TOP_K_MAX = 2**63 - 1
# What each sampling setting may be (vLLM's SamplingParams checks the same ranges; top_k's bound is torch's).
SAMPLING_RANGES = {"temperature": ">= 0 (finite)", "top_p": "in (0, 1]",
                   "top_k": f"-1 or 0 (off), or from 1 to {TOP_K_MAX}", "min_p": "in [0, 1]"}
# A sampling setting a request leaves out, where the model sets none: OpenAI's and vLLM's neutral defaults.
NEUTRAL_SAMPLING: dict[str, float | int] = {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0}


def sampling_ok(key: str, value: Any) -> bool:
    """Whether `value` is a valid `key` (one of SAMPLING_RANGES); a bool is no number here."""
    if isinstance(value, bool) or not isinstance(value, int if key == "top_k" else (int, float)):
        return False
    return {"temperature": 0 <= value < math.inf, "top_p": 0 < value <= 1, "top_k": -1 <= value <= TOP_K_MAX,
            "min_p": 0 <= value <= 1}[key]


def model_sampling_defaults(generation_config: Any) -> dict[str, float | int]:
    """The sampling settings a model's generation_config.json sets (temperature, top_p, top_k, min_p): what vLLM's
    OpenAI server (its default `--generation-config auto`) uses for a request that leaves them out. Like vLLM,
    only values set there count (transformers' to_diff_dict) and do_sample is not read. An invalid one is
    skipped with a warning."""
    try:
        diff = generation_config.to_diff_dict() if generation_config is not None else {}
    except Exception:  # noqa: BLE001 - a model without a usable generation config: no defaults of its own
        diff = {}
    found: dict[str, float | int] = {}
    for key in SAMPLING_RANGES:
        value = diff.get(key)
        if value is None:
            continue
        if sampling_ok(key, value):
            found[key] = value
        else:
            log.warning("the model's generation_config sets %s=%r, which is not %s: ignored", key, value,
                        SAMPLING_RANGES[key])
    return found


class RowSampler:
    """A logits processor that samples each row itself (temperature, top_k, min_p, top_p, own RNG) and leaves only
    the chosen token finite, so generate()'s greedy step takes it. Shapes: scores (batch, vocab) -> (batch, vocab).

    The order is vLLM's: temperature, then min_p and top_k (they commute), then top_p on what those two left,
    renormalised. (transformers' own warpers apply min_p after top_p; the two differ only where a request sets
    both min_p and top_p < 1.) A row with neither top_k nor min_p samples exactly as before they existed."""

    def __init__(self, requests: list[GenerationRequest]):
        import torch

        self.temperature = torch.tensor([r.temperature for r in requests])
        self.top_p = torch.tensor([r.top_p for r in requests])
        self.top_k = torch.tensor([r.top_k if r.top_k > 0 else 0 for r in requests])  # 0: off
        self.min_p = torch.tensor([float(r.min_p) for r in requests])
        self.filtering = any(r.top_k > 0 or r.min_p > 0 for r in requests)
        self.seeds = [r.seed if r.seed is not None else int(torch.randint(2**62, ())) for r in requests]
        self.generators: list | None = None

    def __call__(self, input_ids, scores):
        import torch

        device = scores.device
        if self.generators is None:  # the first step: generators, and the per-row settings on the scores' device
            self.generators = [torch.Generator(device=device).manual_seed(s) for s in self.seeds]
            self.temperature, self.top_p = self.temperature.to(device), self.top_p.to(device)
            self.top_k, self.min_p = self.top_k.to(device), self.min_p.to(device)
        temperature, top_p = self.temperature, self.top_p
        probs = torch.softmax(scores.float() / temperature.clamp(min=1e-5)[:, None], dim=-1)
        sorted_p, index = probs.sort(dim=-1, descending=True)
        mass = torch.ones_like(top_p)  # of what top_k and min_p left: the nucleus is top_p of it
        if self.filtering:
            top_k, min_p = self.top_k, self.min_p
            rank = torch.arange(scores.shape[-1], device=device)
            # the top token always stays (rank 0, and p_max >= min_p * p_max)
            allowed = (((top_k[:, None] <= 0) | (rank[None, :] < top_k[:, None]))
                       & (sorted_p >= min_p[:, None] * sorted_p[:, :1]))
            filtered = (top_k > 0) | (min_p > 0)  # other rows keep their exact probabilities
            sorted_p = torch.where(filtered[:, None], sorted_p * allowed, sorted_p)
            mass = torch.where(filtered, sorted_p.sum(dim=-1), mass)
        keep = (sorted_p.cumsum(dim=-1) - sorted_p) < top_p[:, None] * mass[:, None]  # the top token is always in it
        cdf = (sorted_p * keep).cumsum(dim=-1)
        u = torch.stack([torch.rand((), generator=g, device=device) for g in self.generators]) * cdf[:, -1]
        position = torch.searchsorted(cdf, u[:, None]).clamp(max=scores.shape[-1] - 1)
        chosen = index.gather(-1, position).squeeze(-1)
        chosen = torch.where(temperature <= 0, scores.argmax(dim=-1), chosen)
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(scores.shape[0], device=device), chosen] = 0.0
        return out


class RowStop:
    """Stopping criteria per row: its own max_new_tokens, one of its stop strings in the new text, or its request's
    `cancelled` event set (kosov serve's ServedRequest: its client left). The batch ends once every row has ended
    (or reached EOS), so a cancelled row neither runs on to its limit nor holds up the others.
    `ended[i]` is how many tokens row i had generated when it stopped (None: it ran to the batch's end or EOS)."""

    def __init__(self, requests: list[GenerationRequest], prompt_len: int, tokenizer: Any):
        self.requests, self.prompt_len, self.tokenizer = requests, prompt_len, tokenizer
        # A character can take several byte-level (or byte-fallback) tokens, up to one per UTF-8 byte, and every
        # such token carries at least one byte: look back as many tokens as the longest stop string has bytes (+3
        # for a token that straddles its start or end).
        self.window = [max((len(s.encode("utf-8")) for s in r.stop), default=0) + 3 for r in requests]
        self.ended: list[int | None] = [None] * len(requests)
        self.cancelled = [getattr(r, "cancelled", None) for r in requests]  # a threading.Event, or None

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        new = input_ids[:, self.prompt_len :]
        for i, r in enumerate(self.requests):
            if self.ended[i] is not None:
                continue
            cancelled = self.cancelled[i]
            hit = new.shape[1] >= r.max_new_tokens or (cancelled is not None and cancelled.is_set())
            if r.stop and not hit:
                tail = self.tokenizer.decode(new[i, -self.window[i] :], skip_special_tokens=True)
                hit = any(s and s in tail for s in r.stop)
            if hit:
                self.ended[i] = new.shape[1]
        return torch.tensor([e is not None for e in self.ended], device=input_ids.device)


# ---------------------------------------------------------------------------------------------------------
# vLLM offline batch (CUDA GPU)
