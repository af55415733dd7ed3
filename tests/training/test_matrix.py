"""The base-model matrix on CPU: every family (training/architectures.py) runs kosov's real SFT and GRPO paths
(`train(compose(...))`) with its real chat template and special tokens, trains the LoRA targets kosov names for
it, saves an adapter that reloads to the same model, and renders SFT labels on exactly the assistant's tokens."""

from __future__ import annotations

import json
import math

import pytest
import torch

import training.train
from tests.helpers import quick
from training.architectures import FAMILIES, SPECS, lora_targets, tiny_model_dir
from training.chat_render import render_conversation
from training.adapters import linear_module_names
from training.models import end_of_turn_id, load_tokenizer, model_source
from training.recipes import compose
from training.train import train

ANSWER_PREFIX = {"glm4": "\n"}  # GLM's model writes a newline after its pre-filled <think></think>


def model_overrides(family: str) -> list[str]:
    """The recipe overrides that point kosov at a family's tiny model, as a user would for the real one."""
    targets = lora_targets(family)
    overrides = [f"model.name_or_path={tiny_model_dir(family)}",
                 f"model.end_of_turn_token='{SPECS[family].end_of_turn}'",
                 f"peft.target_modules=[{','.join(targets['target_modules'])}]"]
    if targets["target_parameters"]:
        overrides += [f"peft.target_parameters=[{','.join(targets['target_parameters'])}]", "peft.dropout=0"]
    return overrides


def run(family: str, method: str, out) -> training.train.TrainResult:
    if method == "sft":
        overrides = quick(f"output_dir={out}", *model_overrides(family))
    else:
        overrides = ["experiment=smoke-grpo", f"output_dir={out}", "method.max_steps=2",
                     "method.grpo.max_completion_length=16", *model_overrides(family)]
    return train(compose(overrides))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each (family, method) trained once, on first use."""
    done: dict[tuple[str, str], training.train.TrainResult] = {}

    def get(family: str, method: str):
        if (family, method) not in done:
            done[family, method] = run(family, method, tmp_path_factory.mktemp(f"{family}-{method}") / "run")
        return done[family, method]

    return get


def masked_spans(ids: list[int], mask: list[int]) -> list[list[int]]:
    """The runs of consecutive tokens that carry loss."""
    spans: list[list[int]] = []
    for i, (token, masked) in enumerate(zip(ids, mask)):
        if masked:
            if i == 0 or not mask[i - 1]:
                spans.append([])
            spans[-1].append(token)
    return spans


def lora_b(model) -> dict[str, torch.Tensor]:
    return {n: p for n, p in model.named_parameters() if "lora_B" in n}


@pytest.mark.parametrize("family", FAMILIES)
def test_sft_trains_the_named_targets_and_the_adapter_reloads(family, runs):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    result = runs(family, "sft")
    metrics = result.metrics
    assert metrics["global_step"] == 3
    assert all(math.isfinite(loss) for _, loss in metrics["train_loss_curve"])
    trained = result.trainer.model.eval()
    assert lora_b(trained) and all(p.abs().sum() > 0 for p in lora_b(trained).values())  # B starts at zero

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir(family), dtype=torch.float32)
    adapted = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in trained.named_parameters()
               if ".lora_A" in n and ".experts" not in n}
    assert adapted == set(lora_targets(family)["target_modules"])  # every linear layer of attention and MLP ...
    assert set(lora_targets(family)["target_modules"]) == linear_module_names(base) - {"lm_head"}  # ... and no other

    ids = torch.tensor([[5, 17, 300, 1000, 42, 7]])
    with torch.no_grad():
        base_logits = base(ids).logits
        trained_logits = trained(ids).logits
        reloaded = PeftModel.from_pretrained(base, result.run_dir / "adapter").eval()
        assert torch.allclose(reloaded(ids).logits, trained_logits, atol=1e-5)
    assert not torch.allclose(trained_logits, base_logits, atol=1e-5)


def test_qwen3_moe_lora_covers_attention_and_every_expert_not_the_router(runs):
    from peft.tuners.lora.layer import ParamWrapper

    result = runs("qwen3_moe", "sft")
    model, layers = result.trainer.model, range(result.trainer.model.config.num_hidden_layers)

    def layer(name: str) -> str:  # "base_model.model.model.layers.1.mlp.experts" -> "1"
        return name.split(".layers.")[1].split(".")[0]

    attention = {(layer(n), n.split(".self_attn.")[1].split(".")[0])
                 for n, _ in model.named_parameters() if ".self_attn." in n and "lora_A" in n}
    assert attention == {(str(i), p) for i in layers for p in ("q_proj", "k_proj", "v_proj", "o_proj")}
    experts = {(layer(n), m.parameter_name): m for n, m in model.named_modules() if isinstance(m, ParamWrapper)}
    assert set(experts) == {(str(i), p) for i in layers for p in ("gate_up_proj", "down_proj")}
    for wrapper in experts.values():  # lora_B is [out, rank x experts]: each expert's slice was trained
        b = wrapper.lora_B["default"].weight
        per_expert = b.reshape(b.shape[0], -1, wrapper.num_experts).abs().sum(dim=(0, 1))
        assert wrapper.num_experts == 4 and bool((per_expert > 0).all())
    assert not any(".mlp.gate." in n for n, _ in model.named_parameters() if "lora_" in n)  # the router stays frozen
    saved = json.loads((result.run_dir / "adapter" / "adapter_config.json").read_text())
    assert set(saved["target_parameters"]) == {"mlp.experts.gate_up_proj", "mlp.experts.down_proj"}


@pytest.mark.parametrize("family", FAMILIES)
def test_grpo_logs_every_reward_and_moves_the_adapter(family, runs):
    result = runs(family, "grpo")
    assert result.metrics["global_step"] == 2
    for name in compose(["experiment=smoke-grpo"]).rewards:
        assert f"rewards/{name}/mean" in result.metrics["rewards"], name
    assert all(math.isfinite(r) for _, r in result.metrics["reward_curve"])
    trained = lora_b(result.trainer.model)
    assert trained and any(p.abs().sum() > 0 for p in trained.values())
    assert (result.run_dir / "adapter" / "adapter_config.json").is_file()


@pytest.mark.parametrize("family", FAMILIES)
def test_the_label_mask_is_exactly_the_answers_and_their_end_of_turn_token(family):
    cfg = compose(quick(*model_overrides(family)))
    source, _ = model_source(cfg.model)
    tokenizer = load_tokenizer(cfg.model, source)  # with model.chat_template applied, as training loads it
    end = end_of_turn_id(cfg.model, tokenizer)
    answers = ["안녕하세요! 무엇을 도와드릴까요?", "서울은 대한민국의 수도예요."]
    messages = [{"role": "system", "content": "한국어로 짧게 답하세요."}, {"role": "user", "content": "안녕?"},
                {"role": "assistant", "content": answers[0]}, {"role": "user", "content": "서울은 어떤 곳이에요?"},
                {"role": "assistant", "content": answers[1]}]
    spans = []
    for sample in render_conversation(messages, tokenizer, end_token_id=end, thinking=cfg.model.thinking):
        assert sample.completion_mask[-1] == 1 and sample.input_ids[-1] == end
        spans += masked_spans(sample.input_ids, sample.completion_mask)
    eot, prefix = SPECS[family].end_of_turn, ANSWER_PREFIX.get(family, "")
    assert [tokenizer.decode(span) for span in spans] == [prefix + answer + eot for answer in answers]


def test_the_readme_table_is_the_one_the_matrix_prints():
    from pathlib import Path

    from training.architectures import markdown_table

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme, "regenerate the Base models table: python -m training.architectures"
