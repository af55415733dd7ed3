"""publish.merge=true: the merged folder and its logits check. A bf16 base (as Qwen3 and KORMo are) is merged in the
device's dtype (fp32 on CPU) and saved as the base is stored; the check tolerates fp32 rounding at a real model's
logit scale, fails a merge that lost the adapter, says when an adapter is too small to judge, and the merge holds
one copy of the weights at a time. Adapters other than the trained one are built directly (B drawn at a set size)."""

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
