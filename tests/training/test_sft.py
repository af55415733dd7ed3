"""A smoke LoRA SFT run on tiny-ko: it learns, it changes the LoRA weights, and it leaves a run folder whose
adapter reloads and generates, with metrics, provenance and a wandb offline run."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import yaml

from data_tools.chat_io import file_sha256
from tests.helpers import quick, wandb_history
from training.config import resolve_path
from training.recipes import compose
from training.errors import KosovError
from training.train import train


def test_loss_goes_down(smoke_run):
    m = smoke_run.metrics
    assert m["global_step"] == 30
    assert m["last_train_loss"] < m["first_train_loss"] - 0.1
    assert m["eval_loss"] < m["first_eval_loss"] - 0.1  # the same held-out rows before and after


def test_adapter_weights_changed_and_reload_and_generate(smoke_run, tiny_tokenizer):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = smoke_run.run_dir / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    base = AutoModelForCausalLM.from_pretrained(config["base_model_name_or_path"])
    tokenizer = AutoTokenizer.from_pretrained(adapter)  # the tokenizer travels with the adapter
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "서울의 날씨는 어때요?"}], tokenize=False,
                                           add_generation_prompt=True, enable_thinking=False)
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        base_logits = base(**ids).logits
    model = PeftModel.from_pretrained(base, adapter)
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)  # LoRA B starts at zero: these were trained
    with torch.no_grad():
        assert not torch.allclose(model(**ids).logits, base_logits, atol=1e-4)
        out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]
    assert isinstance(tokenizer.decode(out[0, ids["input_ids"].shape[1]:]), str)


def test_run_folder_records_config_provenance_and_metrics(smoke_run):
    run = smoke_run.run_dir
    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    assert config["name"] == "smoke-sft" and config["peft"]["r"] == 8 and config["tracking"]["backend"] == "wandb"
    prov = json.loads((run / "provenance.json").read_text(encoding="utf-8"))
    assert {"git_sha", "seed", "host", "packages", "gpu", "data", "model"} <= prov.keys()
    assert prov["packages"]["trl"] and prov["packages"]["transformers"] and prov["seed"] == 42
    seed_file = resolve_path("pkg://data_tools/datasets/ko_chat_seed.jsonl")
    assert prov["data"]["sources"][0]["sha256"] == file_sha256(seed_file)
    assert prov["data"]["licenses"] == {"Apache-2.0": prov["data"]["train_rows"]}
    # what the recipe's auto choices became on this machine
    assert prov["runtime"] == {"device": "cpu", "dtype": "float32", "attention": "sdpa", "mixed_precision": "no",
                               "liger_kernels": False, "activation_checkpointing": False, "quantization": None,
                               "generation": None}
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    for key in ("first_train_loss", "last_train_loss", "eval_loss", "global_step", "tokens_seen", "train_runtime_s"):
        assert metrics[key] is not None, key
    assert metrics["tokens_seen"] > 1000
    assert (run / "checkpoints" / "checkpoint-30" / "trainer_state.json").is_file()


def test_wandb_offline_run_holds_the_metrics(smoke_run):
    [run_file] = (smoke_run.run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    losses = wandb_history(run_file, "train/loss")
    assert len(losses) == len(smoke_run.metrics["train_loss_curve"])
    assert losses[-1] == pytest.approx(smoke_run.metrics["last_train_loss"])
    assert wandb_history(run_file, "eval/loss")
    assert b"provenance" in run_file.read_bytes()  # kosov's recipe and provenance went into the run config


def test_packing_fills_blocks_without_padding(tmp_path):
    result = train(compose(quick(f"output_dir={tmp_path / 'run'}", "method.sft.packing=true",
                                 "method.sft.max_length=512")))
    packed = result.trainer.train_dataset
    assert len(packed) < result.metrics["data"]["train_sequences"]  # several conversations per block
    assert max(map(len, packed["input_ids"])) <= 512
    assert result.metrics["global_step"] == 3


def test_padding_free_batches_give_the_same_loss_as_padded_ones(tmp_path):
    padded = train(compose(quick(f"output_dir={tmp_path / 'padded'}")))
    flat = train(compose(quick(f"output_dir={tmp_path / 'flat'}", "method.sft.padding_free=true")))
    assert flat.metrics["first_train_loss"] == pytest.approx(padded.metrics["first_train_loss"], abs=1e-4)
    assert flat.metrics["tokens_seen"] == padded.metrics["tokens_seen"]  # the same real tokens, no padding


@pytest.mark.parametrize("overrides, saved", [
    (["peft=dora"], "adapter"),
    (["peft=none", "method.learning_rate=1e-4"], "model"),
])
def test_dora_and_full_finetune_run(tmp_path, overrides, saved):
    result = train(compose(quick(f"output_dir={tmp_path / 'run'}", *overrides)))
    assert result.metrics["global_step"] == 3
    assert (tmp_path / "run" / saved / "config.json" if saved == "model" else
            tmp_path / "run" / saved / "adapter_config.json").is_file()
    if saved == "adapter" and "peft=dora" in overrides:
        config = json.loads((tmp_path / "run" / "adapter" / "adapter_config.json").read_text())
        assert config["use_dora"] is True


def test_named_target_modules_must_exist(tmp_path):
    cfg = compose(quick(f"output_dir={tmp_path / 'run'}", "peft.target_modules=[q_proj,attn_qkv]"))
    with pytest.raises(KosovError) as error:
        train(cfg)
    assert "attn_qkv" in str(error.value) and "v_proj" in str(error.value)


def test_targeted_lora_touches_only_the_named_modules(tmp_path):
    result = train(compose(quick(f"output_dir={tmp_path / 'run'}", "peft.target_modules=[q_proj,v_proj]")))
    names = {n for n, _ in result.trainer.model.named_parameters() if "lora_A" in n}
    assert names and all(".q_proj." in n or ".v_proj." in n for n in names)


def test_gpus_without_bf16_train_in_fp16_with_loss_scaling(monkeypatch):
    import torch

    from training.train import mixed_precision

    method = compose(["experiment=qwen3-1.7b-ko-sft"]).method
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # a V100 or T4
    assert mixed_precision(method, "cuda") == "fp16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert mixed_precision(method, "cuda") == "bf16"
    assert mixed_precision(method, "cpu") == "no"
    method.bf16 = False
    assert mixed_precision(method, "cuda") == "no"


def test_a_full_fine_tune_on_a_gpu_without_bf16_keeps_fp32_weights(monkeypatch):
    """fp16 AMP keeps fp32 master copies only of what trains: LoRA's frozen base may be fp16, a full fine-tune's
    weights must be fp32, and fp16 weights asked for explicitly are refused before anything loads."""
    import torch

    from training.models import torch_dtype
    from training.train import check_precision

    cfg = compose(["experiment=smoke-sft", "peft=none", "model.dtype=auto"])
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # a V100 or T4
    assert torch_dtype(cfg.model, "cuda", trains_all=False) == torch.float16
    assert torch_dtype(cfg.model, "cuda", trains_all=True) == torch.float32
    check_precision(cfg, "cuda", full_model=True)  # dtype auto: fine
    cfg.model.dtype = "float16"
    check_precision(cfg, "cuda", full_model=False)  # LoRA on an fp16 base: fine
    with pytest.raises(KosovError, match="model.dtype=float16 with peft=none") as e:
        check_precision(cfg, "cuda", full_model=True)
    assert "model.dtype=auto or float32" in str(e.value)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert torch_dtype(dataclasses.replace(cfg.model, dtype="auto"), "cuda", trains_all=True) == torch.bfloat16
    assert torch_dtype(dataclasses.replace(cfg.model, dtype="auto"), "cpu", trains_all=False) == torch.float32
    check_precision(cfg, "cuda", full_model=True)  # bf16 AMP: no loss scaling to break
