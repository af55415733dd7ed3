"""Merged export: base + adapter folded into one full model folder (`merge_and_unload`), checked by comparing
the saved merged model's logits with base + adapter, and with the base alone, on Korean sample prompts.

One copy of the weights is held at a time (a 32B model is ~64 GB in bf16): the reference logits come from the
adapter model and from the same weights with the adapter switched off, the adapter is merged into those weights in
place, and they are freed before the saved folder is read back to be checked.

A QLoRA adapter is merged onto the base in bf16, not onto the 4-bit base it was trained against: merging into
NF4 weights would round the update away. The merged model gets the chat template the adapter was trained with
and the base's generation config, whose ends gain the end of turn the adapter was trained to close turns with; its
thinking default is the mode the adapter trained its answers in (models.thinking: off, or auto on data without
reasoning, answers after an empty think block unless a request sets enable_thinking), else the template's.

Merging runs forward passes only: the base loads with the attention kernel the run trained with where that
runs here, else with model.attn_implementation=auto's choice (a run trained with FlashAttention 2 merges on a CPU).
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import logging
import shutil
from pathlib import Path
from typing import Any

from training.adapters import trained_thinking
from training.schema import KosovConfig, ModelConfig
from training.models import (attention_for, check_attention, check_remote_code, flash_attention_ready,
                             load_for_inference, load_tokenizer, model_source, stop_ids)
from training.safe_write import swap_into_place, write_json

log = logging.getLogger(__name__)

# How far two computations of the same logits may drift apart, as a share of the largest logit, by dtype. fp32
# agrees to rounding: ~5e-6 of the largest logit on a 36-layer model, so 1e-3 leaves room for wider and deeper ones.
# bf16/fp16 round every merged weight and every activation, an error that grows with the logits (a real model's
# reach 20-40, where one bf16 step is 0.125). The merged model may drift this far from base + adapter (by the saved
# dtype); an adapter that moves the logits no further than this (by the dtype they were computed in) cannot be
# told from rounding, so whether the merge kept it is not judged (a freshly initialised LoRA, B = 0, moves nothing).
ROUNDING = {"torch.float32": 1e-3, "torch.bfloat16": 5e-2, "torch.float16": 5e-2}
# The share of the adapter's effect on the logits the merged model must keep: a merge that dropped the adapter keeps
# 0, one that doubled it 2. Drift in the logits compared (the base-alone logits' own counts on both sides) pulls
# either towards 0.5, where drift swamps the effect: half, the midpoint, is what drift cannot cross. A bf16 merge
# rounds away weight updates under half the weights' rounding step (a low learning rate, few steps).
KEPT = (0.5, 1.5)
SAMPLE_PROMPTS = ["한국의 수도는 어디인가요?", "사과 3개가 1,500원이면 한 개는 얼마예요?",
                  "오늘 날씨가 좋아서 공원에 산책하러 갈 거예요. 무엇을 챙기면 좋을까요?"]


def _sample_inputs(tokenizer: Any):
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                           add_generation_prompt=True) for p in SAMPLE_PROMPTS]
    padding = copy.deepcopy(tokenizer)  # the saved tokenizer keeps the base's padding side and settings
    padding.padding_side = "right"
    return padding(texts, return_tensors="pt", padding=True, add_special_tokens=False)


def _logits(model: Any, inputs: Any):
    import torch

    with torch.no_grad():
        out = model(**inputs.to(model.device)).logits.float()
    return out * inputs["attention_mask"].unsqueeze(-1).to(out.device)  # padding positions do not count


def _stored_dtype(cfg: KosovConfig, source: str) -> Any:
    """The floating dtype the base's weights are stored in (its config.json), or None when it does not say."""
    import torch
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(source, revision=cfg.model.revision,
                                        trust_remote_code=cfg.model.trust_remote_code)
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    return dtype if dtype in (torch.float32, torch.bfloat16, torch.float16) else None


def _adapter_kept(expected: Any, base: Any, got: Any, dtype: Any) -> tuple[float, float | None]:
    """(the adapter's effect: max |adapter model - base| logit, the share of it the merged model keeps, None when
    the effect is within rounding). The share is the projection of (merged - base) on (adapter - base) over every
    logit: 1 = all of it, 0 = merged is the base; rounding noise, uncorrelated with the effect, averages out."""
    import torch

    effect = expected - base
    size = float(effect.abs().max())
    if size <= ROUNDING[str(dtype)] * max(float(expected.abs().max()), 1.0):
        return size, None
    return size, float(((got - base) * effect).sum(dtype=torch.float64) / effect.pow(2).sum(dtype=torch.float64))


def _verdict(check: dict[str, Any]) -> str | None:
    """Why the merged model is not base + adapter, or None."""
    if not check["max_abs_logit_diff"] <= check["tolerance"]:  # NaN too
        return (f"its logits differ from base + adapter by {check['max_abs_logit_diff']:.2e}, over the "
                f"{check['tolerance']:.0e} that {check['dtype']} rounding allows")
    kept = check["adapter_effect_kept"]
    if kept is None or KEPT[0] <= kept <= KEPT[1]:
        return None
    rounded = kept < KEPT[0] and check["dtype"] != "torch.float32"
    return (f"it keeps {kept:.0%} of the adapter's effect on the logits (up to {check['adapter_effect']:.2e}), not "
            f"{KEPT[0]:.0%}-{KEPT[1]:.0%}" + (f"; merged into {check['dtype']} weights, the adapter's updates smaller "
                                             "than their rounding step (a low learning rate, few steps) were rounded "
                                             "away: publish the adapter unmerged" if rounded else ""))


def _merge_attention(mcfg: ModelConfig, device: str) -> str:
    """model.attn_implementation to merge with: the run's, unless it is FlashAttention 2 and that cannot run here
    (a CPU, no flash-attn): then auto's choice. The kernel changes no weight, and the check compares logits computed
    with the same one on both sides."""
    if mcfg.attn_implementation == "flash_attention_2" and (device != "cuda" or flash_attention_ready() is not None):
        log.info("the run trained with FlashAttention 2, which cannot run here: merging with %s",
                 attention_for(dataclasses.replace(mcfg, attn_implementation="auto"), device))
        return "auto"
    return mcfg.attn_implementation


def _merged_generation_config(generation: Any, stops: list[int]) -> Any:
    """The base's generation config, its ends extended by where the adapter was trained to stop (models.stop_ids):
    a base checkpoint (Qwen3-8B-Base) ends text with <|endoftext|>, while the recipes close turns with <|im_end|>,
    and generate() and vLLM stop only at the generation config's eos_token_id (and the tokenizer's eos). The base's
    own ends stay first: without a pad_token_id, generate() pads with the first."""
    own = generation.eos_token_id
    own = [own] if isinstance(own, int) else list(own or [])
    ids = list(dict.fromkeys([*own, *stops]))
    generation.eos_token_id = ids[0] if len(ids) == 1 else ids
    return generation


def _default_thinking(tokenizer: Any, thinking: bool | None) -> None:
    """Make the thinking mode the adapter trained its answers in the merged template's default (a request's own
    enable_thinking still wins): Qwen3's template thinks unless told not to, so a model trained without thinking,
    served by vLLM or run with apply_chat_template, would open a think block it never learned to write."""
    template = tokenizer.chat_template
    if thinking is None or not isinstance(template, str) or "enable_thinking" not in template:
        return
    value = "true" if thinking else "false"
    tokenizer.chat_template = f"{{%- if enable_thinking is not defined %}}{{%- set enable_thinking = {value} %}}" \
                              f"{{%- endif %}}\n{template}"
    log.info("the merged model's chat template defaults to enable_thinking=%s, as the adapter trained", value)


def merge_adapter(run_cfg: KosovConfig, adapter: Path, out: Path, device: str) -> dict[str, Any]:
    """Write base + adapter merged into `out` (safetensors shards, tokenizer, generation config); returns the
    logits check, also written to out/merge_check.json (ok false: `problem` says why)."""
    from transformers import AutoModelForCausalLM, GenerationConfig

    qlora = run_cfg.peft.quantization is not None
    # The chat template the adapter was trained with, as saved beside it: the recipe's model.chat_template file
    # may have been edited or moved since.
    saved = adapter / "chat_template.jinja"
    model_cfg = dataclasses.replace(run_cfg.model, dtype="bfloat16" if qlora else run_cfg.model.dtype,
                                    attn_implementation=_merge_attention(run_cfg.model, device),
                                    **({"chat_template": str(saved)} if saved.is_file() else {}))
    cfg = dataclasses.replace(run_cfg, model=model_cfg, peft=dataclasses.replace(run_cfg.peft, quantization=None,
                                                                                 method="lora"))
    source, is_local = model_source(cfg.model)
    check_remote_code(cfg.model, source, is_local)
    check_attention(cfg.model, device, training=False)
    attention = attention_for(cfg.model, device)  # the saved model is read back with the same kernel
    tokenizer = load_tokenizer(cfg.model, source)
    stops = stop_ids(cfg.model, tokenizer)  # an end-of-turn token the vocabulary lacks fails here, before the weights load
    model = load_for_inference(cfg, source, device, adapter)
    inputs = _sample_inputs(tokenizer)
    expected = _logits(model, inputs)
    with model.disable_adapter():  # the same weights, adapter off: what a merge that dropped it would give
        base = _logits(model, inputs)
    computed_in = model.dtype
    model = model.merge_and_unload()  # in place: the adapter folded into the base's weights, no second copy
    stored = _stored_dtype(cfg, source)
    # Merged in fp32 (CPU) onto a bf16 base: saved as the base is, not at twice its size. Never widened: a bf16 merge
    # of an fp32 base (model.dtype=bfloat16) gains nothing from fp32.
    if stored is not None and stored.itemsize < model.dtype.itemsize:
        log.info("merged in %s; saved in the base's %s", model.dtype, stored)
        model = model.to(stored)

    staging = out.with_name(f".{out.name}.building")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging, max_shard_size="4GB")
    _default_thinking(tokenizer, trained_thinking(adapter))
    tokenizer.save_pretrained(staging)
    try:  # the base's own generation config (eos ids, sampling defaults); tiny-ko's is built locally
        generation = GenerationConfig.from_pretrained(source, revision=cfg.model.revision)
    except OSError:
        log.info("the base has no generation_config.json; the merged model's is the one transformers derived")
        generation = copy.deepcopy(model.generation_config)
    generation = _merged_generation_config(generation, stops)
    generation.save_pretrained(staging)
    log.info("the merged model stops generating at token ids %s", generation.eos_token_id)
    dtype, on = model.dtype, model.device
    del model
    gc.collect()  # PEFT's wrappers hold reference cycles: free the merged weights before the saved ones load
    # Read back in the dtype the reference logits were computed in (bf16 weights widen to fp32 exactly): the check
    # then measures what saving did to the weights, not bf16 arithmetic against fp32.
    reloaded = AutoModelForCausalLM.from_pretrained(staging, dtype=computed_in, attn_implementation=attention,
                                                    trust_remote_code=cfg.model.trust_remote_code).to(on)
    got = _logits(reloaded, inputs)
    del reloaded
    scale = float(expected.abs().max())
    effect, kept = _adapter_kept(expected, base, got, computed_in)
    check = {"max_abs_logit_diff": float((got - expected).abs().max()),
             "tolerance": ROUNDING[str(dtype)] * max(scale, 1.0), "dtype": str(dtype), "largest_logit": scale,
             "adapter_effect": effect, "adapter_effect_kept": kept, "prompts": SAMPLE_PROMPTS,
             "merged_from": str(adapter), "qlora_merged_onto_bf16": qlora}
    problem = _verdict(check)
    check.update(ok=problem is None, problem=problem)
    write_json(staging / "merge_check.json", check)
    swap_into_place(staging, out)
    if kept is None:
        log.warning("the adapter changes the logits by at most %.1e, within %s rounding at this scale: the merge "
                    "check cannot tell whether the merge kept it (a freshly initialised adapter changes nothing)",
                    effect, computed_in)
    if problem:
        log.warning("the merged model in %s is not base + adapter: %s", out, problem)
    else:
        log.info("merged model in %s: max |logit difference| %.2e vs base + adapter (tolerance %.0e)%s", out,
                 check["max_abs_logit_diff"], check["tolerance"],
                 "" if kept is None else f"; keeps {kept:.1%} of the adapter's effect")
    return check
