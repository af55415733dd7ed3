"""publish.merge=true on a base stored in bf16 (as Qwen3 and KORMo are): merged in the device's dtype (fp32 on CPU),
saved as the base is stored, not at twice its size, and still matching base + adapter."""

from __future__ import annotations

import json

import torch

from tests.helpers import quick
from training.merge import merge_adapter
from training.recipes import compose
from training.train import train


def test_a_bf16_base_is_merged_and_saved_in_bf16(tmp_path, kosov_cache):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.schema import TinyModelConfig
    from training.tiny_ko import tiny_model_dir

    base = tmp_path / "base-bf16"
    AutoModelForCausalLM.from_pretrained(tiny_model_dir(TinyModelConfig()), dtype=torch.bfloat16).save_pretrained(base)
    AutoTokenizer.from_pretrained(tiny_model_dir(TinyModelConfig())).save_pretrained(base)
    run = train(compose(quick(f"output_dir={tmp_path / 'run'}", f"model.name_or_path={base}")))
    check = merge_adapter(compose(quick(f"model.name_or_path={base}")), run.run_dir / "adapter", tmp_path / "merged",
                          "cpu")
    saved = json.loads((tmp_path / "merged" / "config.json").read_text())
    assert (saved.get("dtype") or saved.get("torch_dtype")) == "bfloat16" and check["dtype"] == "torch.bfloat16"
    size = sum(p.stat().st_size for p in (tmp_path / "merged").glob("*.safetensors"))
    assert size < 1.2 * sum(p.stat().st_size for p in base.glob("*.safetensors"))
    assert check["ok"], check
