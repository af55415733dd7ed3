"""publish.merge=true: the merged folder and its logits check. A bf16 base (as Qwen3 and KORMo are) is merged in the
device's dtype (fp32 on CPU) and saved as the base is stored; the check tolerates fp32 rounding at a real model's
logit scale, fails a merge that lost the adapter, says when an adapter is too small to judge, and the merge holds
one copy of the weights at a time. Adapters other than the trained one are built directly (B drawn at a set size).
The merged model stops at the end of turn it was trained with, a run trained with FlashAttention 2 merges on a CPU,
and remote code is checked before any of it loads."""

from __future__ import annotations

import gc
import json
import logging
from pathlib import Path

import pytest
import torch

from tests.helpers import quick
from training.merge import merge_adapter
from training.recipes import compose
from training.train import train


def lora_adapter(base, out, b_std: float, seed: int = 0):
    """A LoRA adapter on `base` (r=8 on every linear layer) built without training: B drawn with std `b_std` (on
    tiny-ko, weight updates of ~0.4 b_std); 0 is a freshly initialised adapter, which changes nothing."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
                           LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "lora_B" in name:
                weight.normal_(0, b_std)
    model.save_pretrained(out)
    return out


def saved_base(folder, shape=None, dtype=torch.float32, logit_gain: float = 1.0):
    """tiny-ko (or another shape) saved in `dtype`; logit_gain scales the final norm, and so every logit."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.schema import TinyModelConfig
    from training.tiny_ko import tiny_model_dir

    source = tiny_model_dir(shape or TinyModelConfig())
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    with torch.no_grad():
        model.model.norm.weight.mul_(logit_gain)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def bf16_base(tmp_path_factory):
    return saved_base(tmp_path_factory.mktemp("merge") / "base-bf16", dtype=torch.bfloat16)


def test_a_bf16_base_is_merged_and_saved_in_bf16(tmp_path, bf16_base):
    run = train(compose(quick(f"output_dir={tmp_path / 'run'}", f"model.name_or_path={bf16_base}")))
    check = merge_adapter(compose(quick(f"model.name_or_path={bf16_base}")), run.run_dir / "adapter",
                          tmp_path / "merged", "cpu")
    saved = json.loads((tmp_path / "merged" / "config.json").read_text())
    assert (saved.get("dtype") or saved.get("torch_dtype")) == "bfloat16" and check["dtype"] == "torch.bfloat16"
    size = sum(p.stat().st_size for p in (tmp_path / "merged").glob("*.safetensors"))
    assert size < 1.2 * sum(p.stat().st_size for p in bf16_base.glob("*.safetensors"))
    assert check["ok"], check


def test_fp32_rounding_of_a_deep_model_at_real_logit_scale_passes(tmp_path):
    """36 layers and logits reaching ~30, as a real base's: base + adapter and the merged weights, both in fp32, differ
    by ~2e-4 from rounding alone (over an absolute 1e-4), a few millionths of the largest logit."""
    from training.schema import TinyModelConfig

    base = saved_base(tmp_path / "base", TinyModelConfig(num_hidden_layers=36, hidden_size=128,
                                                         intermediate_size=256), logit_gain=6.0)
    check = merge_adapter(compose(quick(f"model.name_or_path={base}")), lora_adapter(base, tmp_path / "adapter", 1e-3),
                          tmp_path / "merged", "cpu")
    assert check["dtype"] == "torch.float32" and check["largest_logit"] > 20
    assert check["ok"], check
    assert 0 < check["max_abs_logit_diff"] < 1e-4 * check["largest_logit"] and check["adapter_effect"] > 1
    assert check["adapter_effect_kept"] == pytest.approx(1, abs=1e-3)


def test_a_bf16_merge_that_rounded_the_adapter_away_fails(tmp_path, bf16_base):
    """A small adapter (weight updates ~4e-5, under half a bf16 step of a typical weight, ~2e-4) merged onto a bf16
    base and saved in bf16: rounding keeps most of the base's weights, so the merged model is nearly the base. Its
    logits lie within 5% of the largest logit of base + adapter, but it keeps little of what the adapter changed:
    the check fails and says why."""
    check = merge_adapter(compose(quick(f"model.name_or_path={bf16_base}")),
                          lora_adapter(bf16_base, tmp_path / "adapter", 1e-4), tmp_path / "merged", "cpu")
    assert check["dtype"] == "torch.bfloat16" and check["max_abs_logit_diff"] < 0.05 * check["largest_logit"]
    assert not check["ok"], check
    assert check["adapter_effect_kept"] < 0.5 and "of the adapter's effect" in check["problem"]
    assert "publish the adapter unmerged" in check["problem"]
    assert json.loads((tmp_path / "merged" / "merge_check.json").read_text())["ok"] is False
    # The same update, 30x larger (a trained adapter's size), survives the rounding.
    check = merge_adapter(compose(quick(f"model.name_or_path={bf16_base}")),
                          lora_adapter(bf16_base, tmp_path / "adapter", 3e-3), tmp_path / "merged", "cpu")
    assert check["ok"] and check["adapter_effect_kept"] == pytest.approx(1, abs=0.1), check


def test_a_low_learning_rate_run_published_merged_onto_a_bf16_base_is_refused(tmp_path, bf16_base):
    """The same through `kosov publish`, with an adapter trained at a low learning rate: no release, the check kept."""
    from training.errors import KosovError
    from training.publish import publish

    run = train(compose(quick(f"output_dir={tmp_path / 'run'}", f"model.name_or_path={bf16_base}",
                              "method.learning_rate=5e-5"))).run_dir
    with pytest.raises(KosovError, match="keeps .* of the adapter.s effect.*rounded away.*no release was written"):
        publish(compose([f"run={run}", "publish.merge=true", f"output_dir={tmp_path / 'release'}",
                         "publish.base_model=kosov-test/tiny-bf16", "publish.license=apache-2.0"]))
    kept = json.loads((tmp_path / "release.merge_check.json").read_text())
    assert kept["ok"] is False and kept["adapter_effect_kept"] < 0.5, kept
    assert not (tmp_path / "release").exists()


def test_an_adapter_that_changes_nothing_passes_and_says_it_was_not_judged(tmp_path, caplog):
    """A freshly initialised LoRA (B = 0): merged == base == base + adapter. Not a failure, but not evidence either."""
    from training.models import model_source

    base = model_source(compose(quick()).model)[0]
    with caplog.at_level(logging.WARNING, logger="training.merge"):
        check = merge_adapter(compose(quick()), lora_adapter(base, tmp_path / "adapter", 0.0), tmp_path / "merged",
                              "cpu")
    assert check["ok"] and check["adapter_effect"] == 0 and check["adapter_effect_kept"] is None, check
    assert "cannot tell whether the merge kept it" in caplog.text


def live_model_bytes() -> int:
    """Bytes of every model's weights alive in this process (shared storage, e.g. tied embeddings, counted once),
    garbage not yet collected included: memory it still holds."""
    from transformers import PreTrainedModel

    storages = {}
    for obj in gc.get_objects():
        if isinstance(obj, PreTrainedModel):
            for tensor in [*obj.parameters(), *obj.buffers()]:
                storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
    return sum(storages.values())


def test_the_merge_holds_one_copy_of_the_weights(tmp_path, monkeypatch):
    """At every forward pass of the check (adapter model, base alone, the saved merged model read back), the weights
    alive beyond what was there before add up to one model, not the merged one plus the one read back."""
    from training import merge
    from training.models import model_source

    base = model_source(compose(quick()).model)[0]
    adapter = lora_adapter(base, tmp_path / "adapter", 1e-2)
    one_model = sum(p.stat().st_size for p in Path(base).glob("*.safetensors"))  # fp32, as merged on CPU
    gc.collect()
    before, held = live_model_bytes(), []
    logits = merge._logits
    monkeypatch.setattr(merge, "_logits", lambda model, inputs: held.append(live_model_bytes() - before)
                        or logits(model, inputs))
    check = merge_adapter(compose(quick()), adapter, tmp_path / "merged", "cpu")
    assert 0.9 * one_model < max(held) < 1.3 * one_model, (held, one_model)
    assert check["ok"] and len(held) == 3


def base_checkpoint(folder):
    """tiny-ko shipped as a base checkpoint is (Qwen3-8B-Base): its tokenizer, config and generation config end text
    with <|endoftext|> only, while the recipe (model.end_of_turn_token) closes assistant turns with <|im_end|>."""
    from transformers import AutoTokenizer, GenerationConfig

    saved_base(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.eos_token = "<|endoftext|>"
    tokenizer.save_pretrained(folder)
    end_of_text = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "eos_token_id": end_of_text}))
    GenerationConfig(bos_token_id=end_of_text, eos_token_id=end_of_text, do_sample=False).save_pretrained(folder)
    return folder


def test_a_model_merged_onto_a_base_checkpoint_stops_at_the_end_of_turn_it_was_trained_with(tmp_path):
    """The merged folder's generation config kept only the base's <|endoftext|>: generate() (and vLLM) on it wrote
    past the <|im_end|> that closes the trained turn. Now it stops at either, the base's first (generate's pad)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    base = base_checkpoint(tmp_path / "base")
    cfg = compose(quick(f"model.name_or_path={base}"))
    assert cfg.model.end_of_turn_token == "<|im_end|>"
    check = merge_adapter(cfg, lora_adapter(base, tmp_path / "adapter", 1e-2), tmp_path / "merged", "cpu")
    assert check["ok"], check
    merged = tmp_path / "merged"
    tokenizer = AutoTokenizer.from_pretrained(merged)
    end_of_text, end_of_turn = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_end|>"])
    assert tokenizer.eos_token_id == end_of_text != end_of_turn
    generation = GenerationConfig.from_pretrained(merged)
    assert generation.eos_token_id == [end_of_text, end_of_turn] and generation.do_sample is False

    model = AutoModelForCausalLM.from_pretrained(merged)  # random weights: the end of turn is made the likeliest
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "안녕하세요"}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
    out = model.generate(**prompt, max_new_tokens=8, sequence_bias={(end_of_turn,): 100.0})
    assert out[0, prompt["input_ids"].shape[1]:].tolist() == [end_of_turn]


def test_a_run_trained_with_flash_attention_merges_on_a_cpu(smoke_run, tmp_path, caplog):
    """A run trained with model.attn_implementation=flash_attention_2 (on a GPU) published with publish.merge=true
    on a machine without flash-attn: the merge, forward passes only, loaded with the run's kernel and failed with
    transformers' bare ImportError. It merges with auto's choice (SDPA here)."""
    import shutil

    import yaml

    from training.publish import publish

    run = tmp_path / "run"
    shutil.copytree(smoke_run.run_dir, run)
    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    config["model"]["attn_implementation"] = "flash_attention_2"
    (run / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="training.merge"):
        result = publish(compose([f"run={run}", "publish.merge=true", f"output_dir={tmp_path / 'release'}"]))
    assert result.merge_check["ok"], result.merge_check
    assert "trained with FlashAttention 2, which cannot run here: merging with sdpa" in caplog.text
    assert (result.folder / "merged" / "config.json").is_file()


def test_remote_code_is_checked_before_anything_of_it_loads(tmp_path):
    """trust_remote_code=true on a hub model without a pinned commit: refused as training, eval and serve refuse it,
    before the merge fetches the tokenizer or weights (whose code would run)."""
    from training.errors import KosovError

    cfg = compose(quick("model.name_or_path=kosov-test/remote-model", "model.trust_remote_code=true"))
    with pytest.raises(KosovError, match="trust_remote_code=true .* model.revision=None"):
        merge_adapter(cfg, tmp_path / "adapter", tmp_path / "merged", "cpu")
    assert not (tmp_path / "merged").exists()


def test_the_merged_template_defaults_to_the_thinking_mode_the_adapter_trained(smoke_run, tmp_path):
    """A run trained with model.thinking=off answers after an empty think block. The merged model's template
    thought by default (Qwen3's does), so vLLM or apply_chat_template on it opened a think block the model never
    learned to write; a request's own enable_thinking still wins."""
    import shutil

    import yaml
    from transformers import AutoTokenizer

    run = tmp_path / "run"
    shutil.copytree(smoke_run.run_dir, run)
    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    config["model"]["thinking"] = "off"
    (run / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    merge_adapter(compose(["experiment=smoke-sft"]), run / "adapter", tmp_path / "merged", "cpu")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "merged")
    turn = [{"role": "user", "content": "안녕하세요?"}]

    def prompt(**kwargs):
        return tokenizer.apply_chat_template(turn, tokenize=False, add_generation_prompt=True, **kwargs)

    assert prompt().endswith("<think>\n\n</think>\n\n") and prompt() == prompt(enable_thinking=False)
    assert not prompt(enable_thinking=True).endswith("</think>\n\n")
