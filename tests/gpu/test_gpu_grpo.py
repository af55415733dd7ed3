"""GRPO on the GPU, run the way `kosov train` runs it on the embedded tiny-ko model: generating with transformers
continuous batching, with vLLM (colocated, sleep mode; a 4-bit base is refused there: huggingface/trl#4973) and on a
4-bit base, keeping the LoRA weights in fp32.

    pytest tests/gpu -rs     # on a GPU machine, after: pip install -e ".[gpu,vllm]" --no-build-isolation
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.gpu.helpers import GPU, decoder_linears, four_bit_layers, needs
from tests.helpers import lora_b_trained
from training.errors import KosovError
from training.recipes import compose
from training.train import train

REPO = Path(__file__).resolve().parents[2]


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


def test_grpo_continuous_batching_replays_cuda_graphs_by_default(tmp_path, generation_calls, restore_qwen3_modeling,
                                                              monkeypatch):
    # method.grpo.continuous_batching_cuda_graphs (null: on a GPU unless the base is 4-bit; transformers alone
    # leaves them off with SDPA): 3.72x TRL's steps/s against 1.28x without on an H100 (benchmarks/RESULTS.md).
    # Here: transformers takes them up, and the run trains.
    from transformers.generation.continuous_batching import initialization

    decided, decide = [], initialization.decide_use_cuda_graphs

    def recording(cb_config, **kwargs):  # what transformers settles on for each generation round's engine
        decide(cb_config, **kwargs)
        decided.append(cb_config.use_cuda_graph)

    monkeypatch.setattr(initialization, "decide_use_cuda_graphs", recording)
    out = tmp_path / "run"
    result = train(compose(["experiment=smoke-grpo", *GPU, "method.grpo.generation=continuous_batching",
                            f"method.max_steps={GRPO_STEPS}", f"output_dir={out}"]))  # the setting left null
    assert generation_calls["generate_batch"] >= GRPO_STEPS and generation_calls["generate"] == 0
    assert result.trainer.args.transformers_continuous_batching_config["use_cuda_graph"] is True
    assert decided and all(d == (True, True) for d in decided)  # graphs for prefill and decode, every round
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
    # TRL casts a quantized policy's LoRA to bf16; kosov puts it back (training.grpo.keep_trainable_fp32)
    dtypes = Counter(str(p.dtype) for p in model.parameters() if p.requires_grad)
    assert dtypes and set(dtypes) == {"torch.float32"}, f"trainable LoRA weights after QLoRA GRPO: {dtypes}"


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
