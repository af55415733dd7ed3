"""The base-model matrix: one tiny random-init model per architecture kosov adapts to Korean, each with the
family's real chat template and special tokens on kosov's Korean tokenizer, so the tests run the real SFT and
GRPO paths on every architecture, on CPU, offline.

    python -m training.architectures        # the README table (markdown)

`tiny_model_dir(family)` builds the folder once into the kosov cache (`$KOSOV_CACHE/tiny-arch/`), seeded and
written atomically, like tiny-ko: `model.name_or_path=<that folder>` then loads it as a hub checkpoint would.
Chat templates are the originals TRL ships offline (`trl/chat_templates/`). KORMo's folder is built in KORMo's
own key layout and converted by `training.convert`, the path a KORMo user takes without remote code.

LoRA targets: every linear layer of attention and MLP. Qwen3-MoE under transformers 5 stores its experts as two
fused 3-D parameters (`mlp.experts.gate_up_proj` [experts, 2 x moe_intermediate, hidden] and `down_proj`),
not nn.Linear, so PEFT reaches them only through `target_parameters` (its ParamWrapper: one low-rank pair per
expert, applied as a parametrization). PEFT 0.21 does that by itself for `all-linear`, but then also adapts the
router (`mlp.gate.weight`) and doubles the rank of gate_up_proj (its v4-adapter compatibility path); kosov names
the targets instead: attention + experts, router left frozen. ParamWrapper refuses lora_dropout > 0 and DoRA.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from training.errors import choice_error

FAMILIES = ("qwen3", "qwen3_moe", "llama", "gemma3", "glm4", "kormo")
SEED = 0
SHAPE = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
             intermediate_size=128, max_position_embeddings=2048)
DENSE = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
QWEN3_TOKENS = ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>")  # think tags: tiny-ko has them
QWEN3_TURNS = ("`enable_thinking` (default on); off pre-fills an empty `<think></think>`; earlier turns lose "
               "their `<think>`; system = a ChatML turn")


@dataclass(frozen=True)
class Family:
    architecture: str  # transformers class
    config_class: str
    config: dict[str, Any]  # family-specific config beyond SHAPE
    template: str  # file in trl/chat_templates
    template_source: str
    bos: str | None
    eos: str
    pad: str
    end_of_turn: str  # closes an assistant turn: model.end_of_turn_token
    stops: tuple[str, ...]  # generation_config eos_token_id, as the real checkpoints ship it
    turns: str  # how the template handles thinking and system turns
    special: tuple[str, ...] = ()  # added as special tokens (skipped when decoding)
    plain: tuple[str, ...] = ()  # added as ordinary tokens (decoded)
    lora_modules: tuple[str, ...] = DENSE
    lora_parameters: tuple[str, ...] = ()  # PEFT target_parameters
    verified: str = "SFT + GRPO through kosov train, label mask, adapter reload"


QWEN3 = Family(
    architecture="Qwen3ForCausalLM", config_class="Qwen3Config", config={"tie_word_embeddings": True},
    template="qwen3.jinja", template_source="Qwen3 (trl qwen3.jinja)", bos=None, eos="<|im_end|>",
    pad="<|endoftext|>", end_of_turn="<|im_end|>", stops=("<|im_end|>", "<|endoftext|>"), turns=QWEN3_TURNS,
    plain=QWEN3_TOKENS)
SPECS: dict[str, Family] = {
    "qwen3": QWEN3,
    "qwen3_moe": replace(
        QWEN3, architecture="Qwen3MoeForCausalLM", config_class="Qwen3MoeConfig",
        config={"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32, "tie_word_embeddings": False},
        lora_modules=ATTENTION, lora_parameters=("mlp.experts.gate_up_proj", "mlp.experts.down_proj"),
        verified="SFT + GRPO through kosov train, label mask, adapter reload, LoRA on attention and every expert"),
    "llama": Family(
        architecture="LlamaForCausalLM", config_class="LlamaConfig",
        config={"tie_word_embeddings": False, "rope_theta": 500000.0}, template="llama3_1.jinja",
        template_source="Llama 3.1 (trl llama3_1.jinja)", bos="<|begin_of_text|>", eos="<|eot_id|>",
        pad="<|finetune_right_pad_id|>", end_of_turn="<|eot_id|>",
        stops=("<|end_of_text|>", "<|eom_id|>", "<|eot_id|>"),
        turns="no thinking mode; a system header is always rendered (knowledge cut-off and date lines); content "
              "trimmed",
        special=("<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|python_tag|>")),
    "gemma3": Family(
        architecture="Gemma3ForCausalLM", config_class="Gemma3TextConfig",
        config={"tie_word_embeddings": True, "query_pre_attn_scalar": 16, "sliding_window": 64,
                "layer_types": ["sliding_attention", "full_attention"]},
        template="gemma3.jinja", template_source="Gemma 3 (trl gemma3.jinja)", bos="<bos>", eos="<eos>", pad="<pad>",
        end_of_turn="<end_of_turn>", stops=("<eos>", "<end_of_turn>"),
        turns="no thinking mode; no system role: the system text opens the first user turn; roles must alternate",
        special=("<start_of_turn>", "<end_of_turn>")),
    "glm4": Family(
        architecture="Glm4ForCausalLM", config_class="Glm4Config", config={"tie_word_embeddings": False},
        template="glm4moe.jinja", template_source="GLM-4.5 (trl glm4moe.jinja; GLM-4-0414's own is not shipped "
        "offline)", bos=None, eos="<|endoftext|>", pad="<|endoftext|>", end_of_turn="<|user|>",
        stops=("<|endoftext|>", "<|user|>", "<|observation|>"),
        turns="`enable_thinking=false` appends `/nothink` to user turns and pre-fills `<think></think>`; earlier "
              "turns lose their thinking; system = a `<|system|>` turn; no end-of-turn token: the next `<|user|>` "
              "closes a turn",
        special=("[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"),
        plain=("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<arg_key>", "</arg_key>",
               "<arg_value>", "</arg_value>"),
        lora_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_up_proj", "down_proj"),
        verified="SFT (training renders closed by `<|user|>`) + GRPO through kosov train, label mask, adapter reload"),
    "kormo": replace(
        QWEN3, architecture="LlamaForCausalLM", config_class="LlamaConfig",
        config={"tie_word_embeddings": False, "rope_theta": 500000.0},
        template_source="Qwen3-style stand-in for the test (trl qwen3.jinja); a KORMo checkpoint renders with its "
                        "own template and ends turns at its tokenizer's eos (the recipe's end_of_turn_token: null)",
        verified="built in KORMo's key layout, converted by kosov convert; SFT + GRPO, label mask, adapter reload"),
}


def family_spec(family: str) -> Family:
    if family not in SPECS:
        raise choice_error("family", family, FAMILIES)
    return SPECS[family]


def lora_targets(family: str) -> dict[str, list[str]]:
    """What kosov passes to PEFT's LoraConfig for this family: target_modules and target_parameters."""
    spec = family_spec(family)
    return {"target_modules": list(spec.lora_modules), "target_parameters": list(spec.lora_parameters)}


def chat_template_path(family: str) -> Path:
    import trl

    return Path(trl.__file__).parent / "chat_templates" / family_spec(family).template


def family_tokenizer(family: str):
    """kosov's Korean tokenizer with the family's special tokens, bos / eos / pad and real chat template."""
    from tokenizers import AddedToken

    from training.tiny_ko import load_tiny_tokenizer

    spec = family_spec(family)
    tokenizer = load_tiny_tokenizer()
    named = {"eos_token": spec.eos, "pad_token": spec.pad, **({"bos_token": spec.bos} if spec.bos else {})}
    tokenizer.add_special_tokens(named)
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in spec.special], special_tokens=True)
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in spec.plain])
    tokenizer.chat_template = chat_template_path(family).read_text(encoding="utf-8")
    return tokenizer


def build_model(family: str, tokenizer: Any):
    """The random-init model (seeded), embeddings sized to the tokenizer, generation config as the family's."""
    import torch
    import transformers
    from transformers import GenerationConfig

    spec = family_spec(family)
    ids = tokenizer.convert_tokens_to_ids
    config = getattr(transformers, spec.config_class)(
        vocab_size=len(tokenizer), **SHAPE, **spec.config, bos_token_id=ids(spec.bos) if spec.bos else None,
        eos_token_id=ids(spec.eos), pad_token_id=ids(spec.pad))
    torch.manual_seed(SEED)
    model = getattr(transformers, spec.architecture)(config)
    with torch.no_grad():  # RMSNorm weights start at 1 (0 for Gemma's 1 + w): random ones make swapped norms show
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(torch.randn_like(param) * 0.1)
    # No max_new_tokens: it would override lm-eval's max_gen_toks (STACK.md).
    model.generation_config = GenerationConfig(
        eos_token_id=[ids(t) for t in spec.stops], pad_token_id=ids(spec.pad),
        bos_token_id=ids(spec.bos) if spec.bos else None)
    return model


def kormo_config(c: Any) -> dict[str, Any]:
    """A Llama config as KORMo's config.json states it: the keys of KORMo's own (transformers 4.57) config class,
    with this config's values, model_type "kormo" and an auto_map to remote code."""
    return {
        "architectures": ["KORMoForCausalLM"], "model_type": "kormo",
        "auto_map": {"AutoConfig": "_configuration_kormo.KORMoConfig",
                     "AutoModelForCausalLM": "_modeling_kormo.KORMoForCausalLM"},
        **{k: getattr(c, k) for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                      "num_attention_heads", "num_key_value_heads", "hidden_act",
                                      "max_position_embeddings", "initializer_range", "rms_norm_eps", "use_cache",
                                      "pad_token_id", "bos_token_id", "eos_token_id", "pretraining_tp",
                                      "tie_word_embeddings", "attention_bias", "attention_dropout", "mlp_bias",
                                      "head_dim")},
        "rope_theta": c.rope_parameters["rope_theta"], "rope_scaling": None, "mask_type": None,
        "torch_dtype": "float32", "transformers_version": "4.57.1",
    }


def write_kormo_checkpoint(model: Any, tokenizer: Any, out: Path, shards: int = 2) -> Path:
    """A Llama model saved the way KORMo ships: pre_attention_layernorm / pre_mlp_layernorm keys, model_type
    "kormo" with an auto_map to remote code, safetensors shards with an index."""
    from safetensors.torch import save_file

    to_kormo = {"input_layernorm": "pre_attention_layernorm", "post_attention_layernorm": "pre_mlp_layernorm"}
    state = {".".join(to_kormo.get(p, p) for p in k.split(".")): v.contiguous()
             for k, v in model.state_dict().items()}
    names = sorted(state)
    out.mkdir(parents=True, exist_ok=True)
    weight_map = {}
    for i in range(shards):
        shard = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = names[i * len(names) // shards:(i + 1) * len(names) // shards]
        save_file({k: state[k] for k in part}, str(out / shard), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, shard))
    total = sum(v.numel() * v.element_size() for v in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    (out / "config.json").write_text(json.dumps(kormo_config(model.config), indent=2) + "\n", encoding="utf-8")
    (out / "_configuration_kormo.py").write_text("# KORMo's remote code would be here; kosov never runs it\n")
    model.generation_config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _digest(*paths: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in paths)).hexdigest()


def tiny_model_dir(family: str) -> Path:
    """The family's tiny model folder (built once per family, code and library versions; seeded; atomic)."""
    import torch
    import transformers

    from training.tiny_ko import TOKENIZER_DIR, cache_root

    spec, here = family_spec(family), Path(__file__).parent
    key = json.dumps({"family": family, "spec": asdict(spec), "shape": SHAPE, "seed": SEED,
                      "tokenizer": _digest(*sorted(TOKENIZER_DIR.iterdir())),
                      "template": _digest(chat_template_path(family)),
                      "code": _digest(here / "architectures.py", here / "convert.py"),
                      "transformers": transformers.__version__, "torch": torch.__version__}, sort_keys=True)
    target = cache_root() / "tiny-arch" / f"{family}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = family_tokenizer(family)
    model = build_model(family, tokenizer)
    staging = Path(tempfile.mkdtemp(prefix=f".building-{family}-", dir=target.parent))
    built = staging / "model"
    try:
        if family == "kormo":  # as KORMo ships, then through the converter, as a KORMo user does
            from training.convert import convert_kormo

            write_kormo_checkpoint(model, tokenizer, staging / "kormo")
            (staging / "kormo" / "kosov_tiny.json").write_text(key + "\n", encoding="utf-8")
            convert_kormo(staging / "kormo", built)
        else:
            model.save_pretrained(built)
            tokenizer.save_pretrained(built)
            (built / "kosov_tiny.json").write_text(key + "\n", encoding="utf-8")
        built.rename(target)
    except OSError:
        if not (target / "config.json").exists():  # not just another process finishing the same build first
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def matrix_rows() -> list[dict[str, str]]:
    """One row per family for the README table."""
    rows = []
    for family in FAMILIES:
        spec, targets = SPECS[family], lora_targets(family)
        lora = ", ".join(targets["target_modules"])
        if targets["target_parameters"]:
            lora += " + target_parameters " + ", ".join(targets["target_parameters"])
        rows.append({"family": family, "architecture": spec.architecture, "lora_targets": lora,
                     "chat_template": spec.template_source, "end_of_turn": spec.end_of_turn,
                     "turns": spec.turns, "verified": spec.verified})
    return rows


def markdown_table() -> str:
    header = ["family", "architecture", "LoRA targets", "chat template", "end of turn", "thinking / system",
              "the test verifies"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in matrix_rows():
        cells = [f"`{row['family']}`", f"`{row['architecture']}`", row["lora_targets"], row["chat_template"],
                 f"`{row['end_of_turn']}`", row["turns"], row["verified"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
