"""What the GPU tests share: the overrides that put a recipe on the GPU, and checks of 4-bit layers and adapters."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training.models import load_for_inference, load_tokenizer, model_source

LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")  # a Qwen3 decoder layer's
GPU = ("device=cuda", "model.dtype=auto")  # model.dtype=auto: bf16 weights on the GPU, as the real recipes load them
needs = pytest.mark.needs  # skipped where the package is missing (tests/gpu/conftest.py)


def decoder_linears(model) -> dict[str, torch.nn.Module]:
    """The (LoRA-wrapped) projections of every decoder layer, by module name."""
    return {n: m for n, m in model.named_modules() if n.rsplit(".", 1)[-1] in LINEAR}


def four_bit_layers(model) -> list[str]:
    """Names of the projections whose base layer is bitsandbytes 4-bit NF4, double-quantized, computing in bf16."""
    import bitsandbytes as bnb

    found = []
    for name, module in decoder_linears(model).items():
        base = getattr(module, "base_layer", module)  # PEFT's LoRA layer wraps the quantized linear
        if not isinstance(base, bnb.nn.Linear4bit):
            continue
        state = base.weight.quant_state
        assert state.quant_type == "nf4" and state.nested, name  # nested = double quantization of the scales
        assert base.compute_dtype == torch.bfloat16, name
        assert base.weight.dtype == torch.uint8, name  # packed 4-bit values, not a float copy
        found.append(name)
    return found


def adapter_changes_the_model(cfg, adapter: Path) -> None:
    """Reload on the GPU as `kosov eval` / `kosov serve` do: base alone vs base + adapter; the adapter generates."""
    source, _ = model_source(cfg.model)
    tokenizer = load_tokenizer(cfg.model, source)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "서울의 날씨는 어때요?"}], tokenize=False,
                                           add_generation_prompt=True, enable_thinking=False)
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to("cuda")
    base = load_for_inference(cfg, source, "cuda")
    with torch.no_grad():
        before = base(**ids).logits.float()
    del base
    tuned = load_for_inference(cfg, source, "cuda", adapter)
    assert next(tuned.parameters()).device.type == "cuda"
    with torch.no_grad():
        after = tuned(**ids).logits.float()
        out = tuned.generate(**ids, max_new_tokens=8, do_sample=False)
    assert torch.isfinite(after).all()
    assert (after - before).abs().max() > 1e-2  # well above bf16 / 4-bit rounding of the same weights
    assert out.shape[1] > ids["input_ids"].shape[1]
