"""Merged export: base + adapter folded into one full model folder (`merge_and_unload`), checked by comparing
the merged model's logits with base + adapter on Korean sample prompts.

A QLoRA adapter is merged onto the base in bf16, not onto the 4-bit base it was trained against: merging into
NF4 weights would round the update away. The merged model keeps the base's chat template and generation
config, so its thinking default is the base's (Qwen3: thinking on unless enable_thinking=False).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import shutil
from pathlib import Path
from typing import Any

from training.schema import KosovConfig
from training.models import load_for_inference, load_tokenizer, model_source
from training.safe_write import swap_into_place, write_json

log = logging.getLogger(__name__)

RELATIVE_TOLERANCE = 0.05  # of the largest logit, for merges in bf16/fp16
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


def merge_adapter(run_cfg: KosovConfig, adapter: Path, out: Path, device: str) -> dict[str, Any]:
    """Write base + adapter merged into `out` (safetensors shards, tokenizer, generation config); returns the
    logits check, also written to out/merge_check.json."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    qlora = run_cfg.peft.quantization is not None
    model_cfg = dataclasses.replace(run_cfg.model, dtype="bfloat16" if qlora else run_cfg.model.dtype)
    cfg = dataclasses.replace(run_cfg, model=model_cfg, peft=dataclasses.replace(run_cfg.peft, quantization=None,
                                                                                 method="lora"))
    source, _ = model_source(cfg.model)
    tokenizer = load_tokenizer(cfg.model, source)
    combined = load_for_inference(cfg, source, device, adapter)
    inputs = _sample_inputs(tokenizer)
    expected = _logits(combined, inputs)
    merged = combined.merge_and_unload()
    stored = _stored_dtype(cfg, source)
    # Merged in fp32 (CPU) onto a bf16 base: saved as the base is, not at twice its size. Never widened: a bf16 merge
    # of an fp32 base (model.dtype=bfloat16) gains nothing from fp32.
    if stored is not None and stored.itemsize < merged.dtype.itemsize:
        log.info("merged in %s; saved in the base's %s", merged.dtype, stored)
        merged = merged.to(stored)

    staging = out.with_name(f".{out.name}.building")
    shutil.rmtree(staging, ignore_errors=True)
    merged.save_pretrained(staging, max_shard_size="4GB")
    tokenizer.save_pretrained(staging)
    try:  # the base's own generation config (eos ids, sampling defaults); tiny-ko's is built locally
        GenerationConfig.from_pretrained(source, revision=cfg.model.revision).save_pretrained(staging)
    except OSError:
        log.info("the base has no generation_config.json; the merged model keeps the one transformers wrote")
    reloaded = AutoModelForCausalLM.from_pretrained(staging, dtype=merged.dtype,
                                                    trust_remote_code=cfg.model.trust_remote_code).to(merged.device)
    diff = float((_logits(reloaded, inputs) - expected).abs().max())
    scale = float(expected.abs().max())
    # fp32 merges agree to rounding; bf16/fp16 round the merged weights, an error that grows with the logits (a
    # real model's reach 20-40, where one bf16 step is 0.125): allowed up to 5% of the largest logit. A merge that
    # dropped or doubled the adapter moves logits by its whole effect.
    tolerance = 1e-4 if merged.dtype == torch.float32 else max(5e-2, RELATIVE_TOLERANCE * scale)
    check = {"max_abs_logit_diff": diff, "tolerance": tolerance, "ok": diff <= tolerance, "dtype": str(merged.dtype),
             "largest_logit": scale, "prompts": SAMPLE_PROMPTS, "merged_from": str(adapter),
             "qlora_merged_onto_bf16": qlora}
    write_json(staging / "merge_check.json", check)
    swap_into_place(staging, out)
    log.info("merged model in %s: max |logit difference| %.2e vs base + adapter (tolerance %.0e)", out, diff,
             tolerance)
    return check
