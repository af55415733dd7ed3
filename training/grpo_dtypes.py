"""GRPO's dtype guards: TRL 1.16 casts the policy's weights to bf16 in two places, where fp32 must stay."""

from __future__ import annotations

import contextlib
from typing import Any


@contextlib.contextmanager
def kept_dtypes(model: Any):
    """Put every parameter and buffer of model back to the tensor it held on entry. TRL 1.16's continuous-batching
    generation casts the whole policy to bf16 and leaves it so: the fp32 LoRA weights would be rounded at every
    generation (Adam's small steps vanish without an error) and RoPE's fp32 inv_freq with them."""
    params = [(p, p.data) for p in model.parameters()]
    buffers = [(m, name, b) for m in model.modules() for name, b in m._buffers.items() if b is not None]
    try:
        yield
    finally:
        for p, data in params:
            if p.data is not data:
                p.data = data
        for m, name, b in buffers:
            m._buffers[name] = b


def keep_trainable_fp32(model: Any) -> None:
    """Put trainable weights back in fp32. TRL 1.16 casts a quantized policy's LoRA
    weights to bf16 (the QLoRA paper's choice, at its 2e-4): at GRPO's rates (~1e-5) most of Adam's steps on LoRA A
    are below half its bf16 rounding step and vanish. LoRA on a bf16 base keeps fp32 weights already (PEFT)."""
    import torch

    for p in model.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()
