"""The GPU paths, each run the way `kosov train` runs it (compose a recipe, then train()) on the embedded tiny-ko
model with device=cuda: bf16 LoRA SFT, QLoRA (bitsandbytes NF4), padding-free packing with SDPA and FlashAttention 2,
Liger kernels, the `auto` choices, and GRPO generating with transformers continuous batching, vLLM (colocated,
sleep mode; a 4-bit base is refused there: huggingface/trl#4973) and on a 4-bit base. Small runs: the file takes a
few minutes on one GPU.

    pytest tests/gpu -rs     # on a GPU machine, after: pip install -e ".[gpu,vllm]" --no-build-isolation
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.helpers import quick
from training.errors import KosovError
from training.grpo import generation_backend
from training.models import (attention_for, flash_attention_ready, installed, liger_for, load_for_inference,
                             load_tokenizer, model_source)
from training.recipes import compose
from training.train import train

REPO = Path(__file__).resolve().parents[2]
LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")  # a Qwen3 decoder layer's
GPU = ("device=cuda", "model.dtype=auto")  # model.dtype=auto: bf16 weights on the GPU, as the real recipes load them
needs = pytest.mark.needs  # skipped where the package is missing (tests/gpu/conftest.py)


@pytest.fixture(autouse=True)
def bf16_gpu():
    if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        pytest.skip("these checks expect a bf16 GPU (Ampere or newer), as kosov's GPU recipes do")


def lora_b_trained(adapter: Path) -> bool:
    """LoRA B starts at zero: every B in the saved adapter is non-zero only if training moved it."""
    weights = load_file(adapter / "adapter_model.safetensors")
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    return bool(lora_b) and all(v.abs().sum() > 0 for v in lora_b)


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


def boundary_leak(trainer) -> tuple[float, float]:
    """Hidden states of one real padding-free batch (the trainer's own collator: rows flattened, position_ids
    restarting at each sequence) against each sequence run alone; and, for scale, the same flat row with the
    boundaries hidden from the attention kernel. Returns (max |packed - alone|, max |leaky - alone|)."""
    model = trainer.model
    decoder = model.get_base_model().model  # the decoder stack with its LoRA layers, before the (fused) LM head
    device = next(decoder.parameters()).device
    batch = next(iter(trainer.get_train_dataloader()))
    batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items() if k != "labels"}
    ids, pos = batch["input_ids"], batch["position_ids"]
    assert ids.shape[0] == 1 and "attention_mask" not in batch  # padding-free: one flat row, no padding mask
    starts = (pos[0] == 0).nonzero().flatten().tolist() + [ids.shape[1]]
    assert len(starts) > 3  # several sequences share the row
    length = ids.shape[1]
    if model.config._attn_implementation.startswith("flash"):  # one varlen segment spanning the whole row
        whole = torch.tensor([0, length], dtype=torch.int32, device=device)
        leaky = dict(cu_seq_lens_q=whole, cu_seq_lens_k=whole, max_length_q=length, max_length_k=length)
    else:  # an explicit all-ones mask turns off transformers' packed-sequence detection: plain causal
        leaky = dict(attention_mask=torch.ones_like(ids))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=bool(trainer.args.bf16)):
            def hidden(**kwargs):
                return decoder(use_cache=False, **kwargs).last_hidden_state[0].float()

            packed = hidden(**batch)
            alone = torch.cat([hidden(input_ids=ids[:, s:e]) for s, e in zip(starts, starts[1:])])
            leaked = hidden(input_ids=ids, position_ids=pos, **leaky)
    finally:
        model.train(was_training)
    return (packed - alone).abs().max().item(), (leaked - alone).abs().max().item()


@pytest.mark.parametrize("attn, precision, tolerance", [
    pytest.param("sdpa", ["method.bf16=false"], 5e-4, id="sdpa-fp32"),
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
    assert packed.trainer.args.bf16 == (attn != "sdpa")
    assert packed.metrics["tokens_seen"] == padded.metrics["tokens_seen"]  # the same real tokens, no padding
    # A packed batch attending across boundaries moves this loss by ~3e-3 on tiny-ko (measured on CPU, fp32).
    assert packed.metrics["first_train_loss"] == pytest.approx(padded.metrics["first_train_loss"], abs=tolerance)

    # Per token, where a leak cannot hide in an average: ~5.8 with the boundaries hidden, ~0.04 from bf16 rounding.
    error, leak = boundary_leak(packed.trainer)
    assert leak > 0.5, "the leaky reference should differ from the sequences run alone"
    assert error < leak / 20, f"packed hidden states differ from the sequences run alone by {error} (leak: {leak})"


# --- Liger kernels and the auto choices -----------------------------------------------------------------------------

@pytest.fixture
def restore_qwen3_modeling():
    """Liger patches transformers' Qwen3 module for every model built later in the process (its RMSNorm, MLP and
    rotary classes / functions): put them back so later tests run the model they ask for."""
    from transformers.models.qwen3 import modeling_qwen3

    saved = dict(vars(modeling_qwen3))
    forward = modeling_qwen3.Qwen3ForCausalLM.forward
    yield modeling_qwen3
    for name, value in saved.items():
        if getattr(modeling_qwen3, name, None) is not value:
            setattr(modeling_qwen3, name, value)
    modeling_qwen3.Qwen3ForCausalLM.forward = forward


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


# --- GRPO ------------------------------------------------------------------------------------------------------------

GRPO_STEPS = 2  # each step generates (2 prompts x a group of 4, 32 tokens) and trains once


@pytest.fixture
def generation_calls(monkeypatch):
    """Counts generation calls by backend: transformers generate() vs continuous batching generate_batch()."""
    from transformers import GenerationMixin
    from transformers.generation.continuous_batching.continuous_api import ContinuousMixin

    calls: Counter = Counter()

    def spy(owner, name):
        original = getattr(owner, name)

        def counted(*args, **kwargs):
            calls[name] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)

    spy(GenerationMixin, "generate")
    spy(ContinuousMixin, "generate_batch")
    return calls


def check_grpo_run(out: Path, logged: set[str], completion_lengths: list[float]) -> None:
    """Every reward logged with a finite value, completions within max_completion_length, the adapter trained."""
    recipe = compose(["experiment=smoke-grpo"])
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["global_step"] == GRPO_STEPS
    for name in ["reward", *(f"rewards/{n}/mean" for n in recipe.rewards)]:
        assert name in logged and name in metrics["rewards"], name
        assert all(math.isfinite(v) for v in metrics["rewards"][name].values()), name
    limit = recipe.method.grpo.max_completion_length
    assert completion_lengths and all(0 < n <= limit for n in completion_lengths)
    assert lora_b_trained(out / "adapter")


def grpo_logs(result) -> tuple[set[str], list[float]]:
    history = result.trainer.state.log_history
    return {k for h in history for k in h}, [h["completions/mean_length"] for h in history
                                             if "completions/mean_length" in h]


@pytest.mark.parametrize("kernels", ["off", pytest.param("liger", marks=needs("liger_kernel"))])
def test_grpo_generates_with_continuous_batching(tmp_path, generation_calls, restore_qwen3_modeling, kernels):
    # kernels=liger: what recipes/experiment/qwen3-1.7b-ko-grpo.yaml runs on a GPU without vLLM (kernels: auto).
    out = tmp_path / "run"
    result = train(compose(["experiment=smoke-grpo", *GPU, "method.grpo.generation=continuous_batching",
                            f"method.kernels={kernels}", f"method.max_steps={GRPO_STEPS}", f"output_dir={out}"]))
    assert result.trainer.use_transformers_continuous_batching and not result.trainer.use_vllm
    assert generation_calls["generate_batch"] >= GRPO_STEPS  # one generation round per step (+ the final eval)
    assert generation_calls["generate"] == 0  # no silent fallback to plain generate()
    check_grpo_run(out, *grpo_logs(result))


@pytest.mark.parametrize("generation", ["transformers", "continuous_batching"])
def test_grpo_keeps_the_lora_weights_in_fp32(tmp_path, generation):
    """bf16 autocast trains fp32 master weights. Were a generation backend to cast the policy to bf16 for good, Adam's
    steps (~lr = 1e-5 in recipes/method/grpo.yaml) would fall below half of bf16's spacing at LoRA A's scale (entries
    ~1e-2, spacing ~6e-5) and round away: A would stop training without any error."""
    result = train(compose(["experiment=smoke-grpo", *GPU, f"method.grpo.generation={generation}",
                            "method.max_steps=1", f"output_dir={tmp_path / 'run'}"]))
    dtypes = Counter(str(p.dtype) for p in result.trainer.model.parameters() if p.requires_grad)
    assert dtypes and set(dtypes) == {"torch.float32"}, f"trainable LoRA weights after {generation} GRPO: {dtypes}"


@needs("bitsandbytes")
@pytest.mark.parametrize("generation", ["transformers", "continuous_batching"])
def test_qlora_grpo_runs_on_a_4bit_base(tmp_path, generation_calls, generation):
    out = tmp_path / "run"
    result = train(compose(["experiment=smoke-grpo", *GPU, "peft=qlora", f"method.grpo.generation={generation}",
                            f"method.max_steps={GRPO_STEPS}", f"output_dir={out}"]))
    model = result.trainer.model
    assert four_bit_layers(model) and len(four_bit_layers(model)) == len(decoder_linears(model))
    used, unused = ("generate", "generate_batch") if generation == "transformers" else ("generate_batch", "generate")
    assert generation_calls[used] >= GRPO_STEPS and generation_calls[unused] == 0
    check_grpo_run(out, *grpo_logs(result))


# vLLM runs in a child process: colocated vLLM initialises torch.distributed, sets RANK / WORLD_SIZE / MASTER_* in
# the environment and holds GPU memory for the life of the process, none of which later tests should inherit.
CHILD = r"""
import json, sys
from training.recipes import compose
from training.train import train

facts_file, *overrides = sys.argv[1:]
result = train(compose(overrides))
t = result.trainer
history = t.state.log_history
four_bit = sum(type(getattr(m, "base_layer", m)).__name__ == "Linear4bit" for n, m in t.model.named_modules()
               if n.rsplit(".", 1)[-1] in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"))
facts = {
    "use_vllm": t.use_vllm,
    "vllm_mode": t.vllm_mode,
    "sleep_mode": t.args.vllm_enable_sleep_mode,
    "gpu_memory_utilization": t.args.vllm_gpu_memory_utilization,
    "llm": type(t.vllm_generation.llm).__name__ if t.use_vllm else None,
    "importance_sampling_correction": t.vllm_importance_sampling_correction,
    "four_bit_layers": four_bit,
    "logged": sorted({k for h in history for k in h}),
    "completion_lengths": [h["completions/mean_length"] for h in history if "completions/mean_length" in h],
}
with open(facts_file, "w") as f:
    json.dump(facts, f)
"""

VLLM = ["method.grpo.generation=vllm", "method.grpo.vllm_mode=colocate", "method.grpo.vllm_enable_sleep_mode=true",
        "method.grpo.vllm_gpu_memory_utilization=0.2",
        # vLLM's attention kernels take head sizes from 32 up; tiny-ko's heads are 16 wide (64 / 4). Same tiny
        # model otherwise, with 64-wide heads.
        "model.tiny.hidden_size=128", "model.tiny.num_attention_heads=2", "model.tiny.num_key_value_heads=1"]


def train_in_child(tmp_path: Path, overrides: list[str]) -> dict:
    facts_file = tmp_path / "facts.json"
    proc = subprocess.run([sys.executable, "-c", CHILD, str(facts_file), *overrides], cwd=REPO, env=os.environ.copy(),
                          capture_output=True, text=True, timeout=1200)
    if proc.returncode != 0:
        pytest.fail(f"the training process failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-8000:]}")
    return json.loads(facts_file.read_text())


@needs("vllm")
def test_grpo_generates_with_colocated_vllm_in_sleep_mode(tmp_path):
    out = tmp_path / "run"
    facts = train_in_child(tmp_path, ["experiment=smoke-grpo", *GPU, *VLLM, f"method.max_steps={GRPO_STEPS}",
                                      f"output_dir={out}"])
    assert facts["use_vllm"] and facts["llm"] == "LLM"
    assert facts["vllm_mode"] == "colocate" and facts["sleep_mode"] is True
    assert facts["gpu_memory_utilization"] == 0.2
    if facts["importance_sampling_correction"]:  # computed from the log-probs vLLM returned with its samples
        assert "sampling/sampling_logp_difference/mean" in facts["logged"]
    assert facts["four_bit_layers"] == 0
    check_grpo_run(out, set(facts["logged"]), facts["completion_lengths"])


@needs("vllm")
@needs("bitsandbytes")
def test_qlora_with_vllm_is_refused_before_anything_loads(tmp_path):
    # TRL 1.16 pushes packed 4-bit weights to vLLM without their quant state (huggingface/trl#4973)
    with pytest.raises(KosovError, match="trl#4973"):
        train(compose(["experiment=smoke-grpo", *GPU, "peft=qlora", *VLLM, f"output_dir={tmp_path / 'run'}"]))
    assert not (tmp_path / "run").exists()
