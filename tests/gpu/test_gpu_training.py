"""The GPU training paths, each run the way `kosov train` runs it (compose a recipe, then train()) on the embedded
tiny-ko model with device=cuda: bf16 LoRA SFT, QLoRA (bitsandbytes NF4), padding-free packing with SDPA,
FlexAttention and FlashAttention 2, Liger kernels and the `auto` choices. GRPO's generation engines: test_gpu_grpo.py.

    pytest tests/gpu -rs     # on a GPU machine, after: pip install -e ".[gpu,vllm]" --no-build-isolation
"""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch
import yaml

from tests.gpu.helpers import GPU, LINEAR, adapter_changes_the_model, decoder_linears, four_bit_layers, needs
from tests.helpers import boundary_leak, lora_b_trained, quick
from training.grpo import generation_backend
from training.models import attention_for, flash_attention_ready, installed, liger_for
from training.recipes import compose
from training.train import train


# --- SFT -----------------------------------------------------------------------------------------------------------

def test_bf16_lora_sft_on_cuda_learns_and_saves_a_working_adapter(tmp_path, caplog):
    caplog.set_level(logging.INFO)  # what `kosov train` logs into DIR/train.log
    out = tmp_path / "run"
    overrides = ["experiment=smoke-sft", *GPU, f"output_dir={out}"]
    result = train(compose(overrides))
    m = result.metrics
    assert m["global_step"] == 30
    assert m["last_train_loss"] < m["first_train_loss"] - 0.1
    assert m["eval_loss"] < m["first_eval_loss"] - 0.1  # the same held-out rows before and after

    trainer = result.trainer
    assert trainer.args.bf16 and not trainer.args.use_cpu  # method.bf16=null means bf16 on a bf16 GPU
    params = dict(trainer.model.named_parameters())
    assert all(p.device.type == "cuda" for p in params.values())
    frozen = [p for p in params.values() if not p.requires_grad and p.dim() == 2]
    trainable = [p for p in params.values() if p.requires_grad]
    assert frozen and all(p.dtype == torch.bfloat16 for p in frozen)  # model.dtype=auto on a GPU
    assert trainable and all(p.dtype == torch.float32 for p in trainable)  # Adam updates LoRA in fp32

    prov = json.loads((out / "provenance.json").read_text(encoding="utf-8"))
    assert prov["gpu"] == {"name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count(),
                           "cuda": torch.version.cuda}
    assert yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))["device"] == "cuda"
    assert "loaded tiny-ko (torch.bfloat16," in (out / "train.log").read_text(encoding="utf-8")
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["tokens_seen"] > 1000 and metrics["train_runtime_s"] > 0

    assert lora_b_trained(out / "adapter")
    adapter_changes_the_model(compose(overrides), out / "adapter")


@needs("bitsandbytes")
def test_qlora_sft_trains_lora_on_a_4bit_nf4_base(tmp_path):
    out = tmp_path / "run"
    # As recipes/experiment/qwen3-8b-ko-qlora-sft.yaml: 4-bit base, activation checkpointing.
    overrides = ["experiment=smoke-sft", *GPU, "peft=qlora", "method.activation_checkpointing=true",
                 f"output_dir={out}"]
    result = train(compose(overrides))
    model = result.trainer.model
    layers = result.trainer.model.config.num_hidden_layers
    assert len(four_bit_layers(model)) == len(LINEAR) * layers == len(decoder_linears(model))
    assert getattr(model.get_base_model(), "is_loaded_in_4bit", False)
    assert result.trainer.args.activation_checkpointing
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)  # only the adapter trains, never the 4-bit base

    m = result.metrics
    assert m["global_step"] == 30
    assert m["last_train_loss"] < m["first_train_loss"] - 0.1
    assert m["eval_loss"] < m["first_eval_loss"] - 0.1
    targets = json.loads((out / "adapter" / "adapter_config.json").read_text())["target_modules"]
    assert len(targets) == len(LINEAR) * layers and {t.rsplit(".", 1)[-1] for t in targets} == set(LINEAR)
    assert lora_b_trained(out / "adapter")
    adapter_changes_the_model(compose(overrides), out / "adapter")  # reloads onto a fresh 4-bit base


@pytest.mark.parametrize("attn, precision, tolerance", [
    pytest.param("sdpa", ["method.bf16=false"], 5e-4, id="sdpa-fp32"),
    # FlexAttention: block-sparse masks skip the blocks between packed sequences that SDPA's dense mask computes.
    pytest.param("flex_attention", ["method.bf16=false"], 5e-4, id="flex-attention-fp32"),
    # FlashAttention needs 16-bit inputs: fp32 weights under bf16 autocast.
    pytest.param("flash_attention_2", [], 2e-3, id="flash-attention-2-bf16", marks=needs("flash_attn")),
])
def test_packed_sequences_do_not_attend_across_their_boundaries(tmp_path, attn, precision, tolerance):
    # Few enough rows that one batch holds every sequence, packed (3 blocks of 1024) or padded (one row each):
    # the first step then sees the same tokens both ways, and its loss may differ only by rounding.
    common = ["experiment=smoke-sft", "device=cuda", f"model.attn_implementation={attn}", *precision,
              "data.max_rows=12", "data.eval_ratio=0", "method.per_device_train_batch_size=32", "method.max_steps=1",
              "method.logging_steps=1", "method.save_steps=100"]
    padded = train(compose([*common, f"output_dir={tmp_path / 'padded'}"]))
    packed = train(compose([*common, f"output_dir={tmp_path / 'packed'}", "method.sft.packing=true"]))
    assert packed.trainer.model.config._attn_implementation == attn
    sequences = packed.metrics["data"]["train_sequences"]
    assert len(packed.trainer.train_dataset) < sequences <= 32  # several sequences per block; one batch for all
    assert packed.trainer.args.bf16 == (attn == "flash_attention_2")
    assert packed.metrics["tokens_seen"] == padded.metrics["tokens_seen"]  # the same real tokens, no padding
    # A packed batch attending across boundaries moves this loss by ~3e-3 on tiny-ko (measured on CPU, fp32).
    assert packed.metrics["first_train_loss"] == pytest.approx(padded.metrics["first_train_loss"], abs=tolerance)

    # Per token, where a leak cannot hide in an average: ~5.8 with the boundaries hidden, ~0.04 from bf16 rounding.
    error, leak = boundary_leak(packed.trainer)
    assert leak > 0.5, "the leaky reference should differ from the sequences run alone"
    assert error < leak / 20, f"packed hidden states differ from the sequences run alone by {error} (leak: {leak})"


def test_flex_attention_sft_evaluates_and_its_adapter_generates(tmp_path):
    # FlexAttention is the candidate SFT default: 2.31x TRL's useful tokens/s against SDPA's 1.61x (8B shape, one
    # 4096-token block, H100, benchmarks/RESULTS.md). Before it becomes one, the rest of a run must work with it too:
    # the Trainer's evaluation (no grad), and reloading and generating (short and one-token queries, which inductor
    # gives its flex-decoding kernel), in bf16 as the GPU recipes run. tiny-ko's own heads are 16 wide, on which
    # inductor found no flex-decoding kernel (the fp32 reference above): this model has the real models' head shape,
    # 128 wide with grouped KV heads as Qwen3's (2 query heads on 1 KV head), so a failure here is not that toy width.
    # The same recipe with SDPA on the CPU: train loss 9.56 -> 8.06, eval loss 9.67 -> 8.16 (2026-11-27).
    out = tmp_path / "run"
    shape = ["model.tiny.hidden_size=256", "model.tiny.num_attention_heads=2", "model.tiny.num_key_value_heads=1"]
    overrides = ["experiment=smoke-sft", *GPU, *shape, "model.attn_implementation=flex_attention",
                 "method.sft.packing=true", f"output_dir={out}"]
    result = train(compose(overrides))
    config = result.trainer.model.config
    assert (config.head_dim, config.num_attention_heads, config.num_key_value_heads) == (128, 2, 1)
    assert config._attn_implementation == "flex_attention" and result.trainer.args.bf16
    m = result.metrics
    assert m["last_train_loss"] < m["first_train_loss"] - 0.1
    assert m["eval_loss"] < m["first_eval_loss"] - 0.1
    adapter_changes_the_model(compose(overrides), out / "adapter")


# --- Liger kernels and the auto choices -----------------------------------------------------------------------------

@needs("liger_kernel")
def test_liger_kernels_replace_norms_and_mlps_and_keep_the_loss(tmp_path, restore_qwen3_modeling):
    from liger_kernel.transformers.rms_norm import LigerRMSNorm
    from liger_kernel.transformers.rope import liger_rotary_pos_emb
    from liger_kernel.transformers.swiglu import LigerSwiGLUMLP

    common = ["experiment=smoke-sft", *GPU]
    plain = train(compose([*common, "method.kernels=off", "method.max_steps=1", f"output_dir={tmp_path / 'off'}"]))
    liger = train(compose([*common, "method.kernels=liger", f"output_dir={tmp_path / 'liger'}"]))
    assert liger.trainer.args.use_liger_kernel and not plain.trainer.args.use_liger_kernel

    def norms(result):
        model = result.trainer.model.get_base_model()
        return {n: m for n, m in model.named_modules() if n.endswith(("norm", "layernorm"))}

    def mlps(result):
        return [layer.mlp for layer in result.trainer.model.get_base_model().model.layers]

    layers = liger.trainer.model.config.num_hidden_layers
    patched = norms(liger)
    assert len(patched) == 1 + 4 * layers  # final norm; per layer input, post-attention, q and k norms
    for name, module in patched.items():
        assert module.forward.__func__ is LigerRMSNorm.forward, name
        assert module._get_name() == "LigerRMSNorm", name
    assert all(mlp.forward.__func__ is LigerSwiGLUMLP.forward for mlp in mlps(liger))
    assert restore_qwen3_modeling.apply_rotary_pos_emb is liger_rotary_pos_emb
    assert not any(getattr(m.forward, "__func__", None) is LigerRMSNorm.forward for m in norms(plain).values())

    m = liger.metrics
    assert m["global_step"] == 30
    assert m["last_train_loss"] < m["first_train_loss"] - 0.1
    assert m["eval_loss"] < m["first_eval_loss"] - 0.1
    # Same seed, same first batch, same weights: fused kernels change speed, not the numbers (beyond bf16 rounding).
    assert m["first_train_loss"] == pytest.approx(plain.metrics["first_train_loss"], abs=0.02)
    assert lora_b_trained(tmp_path / "liger" / "adapter")


def test_auto_choices_pick_the_fast_paths_on_cuda():
    flash = flash_attention_ready() is None
    real = compose(["experiment=qwen3-1.7b-ko-sft"])  # the real recipes leave these to `auto`
    assert real.model.attn_implementation == "auto" and real.method.kernels == "auto"
    assert attention_for(real.model, "cuda") == ("flash_attention_2" if flash else "sdpa")
    assert attention_for(real.model, "cpu") == "sdpa"
    assert liger_for(real.method.kernels, "cuda") is installed("liger_kernel")
    if installed("liger_kernel"):  # liger-kernel's own table of architectures
        assert liger_for("auto", "cuda", "qwen3") and not liger_for("auto", "cuda", "kormo")
    assert liger_for(real.method.kernels, "cpu") is False
    grpo = compose(["experiment=qwen3-1.7b-ko-grpo"])
    assert grpo.method.grpo.generation == "auto"
    assert generation_backend(grpo, "cuda") == ("vllm" if installed("vllm") else "continuous_batching")
    assert generation_backend(grpo, "cpu") == "transformers"


def test_attention_auto_loads_and_trains_with_the_chosen_kernel(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    expected = "flash_attention_2" if flash_attention_ready() is None else "sdpa"
    result = train(compose(quick("device=cuda", "model.attn_implementation=auto", f"output_dir={tmp_path / 'run'}")))
    assert result.trainer.model.config._attn_implementation == expected
    loaded = [line for line in (tmp_path / "run" / "train.log").read_text().splitlines() if "loaded tiny-ko" in line]
    assert loaded and loaded[0].endswith(f", {expected})")  # the run's log says which kernel it trained with
    assert result.metrics["global_step"] == 3
    assert all(math.isfinite(loss) for _, loss in result.metrics["train_loss_curve"])
    assert math.isfinite(result.metrics["eval_loss"])
