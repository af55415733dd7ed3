"""A smoke LoRA SFT run on tiny-ko: it learns, it changes the LoRA weights, and it leaves a run folder whose
adapter reloads and generates, with metrics, provenance and a wandb offline run."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from data_tools.chat_io import file_sha256
from tests.helpers import boundary_leak, flat_batch, lora_b_trained, quick, wandb_history
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
                               "generation": None, "batch": {"per_device_train_batch_size": 8,
                                                             "gradient_accumulation_steps": 1,
                                                             "per_device_eval_batch_size": 8}}
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    for key in ("first_train_loss", "last_train_loss", "eval_loss", "global_step", "tokens_seen", "train_runtime_s"):
        assert metrics[key] is not None, key
    assert metrics["tokens_seen"] > 1000
    assert (run / "checkpoints" / "checkpoint-30" / "trainer_state.json").is_file()


def test_a_sweep_objective_may_name_every_metric_a_run_writes(smoke_run):
    from training.schema import METRIC_KEYS

    assert sorted(json.loads((smoke_run.run_dir / "metrics.json").read_text())) == sorted(METRIC_KEYS)


def test_wandb_offline_run_holds_the_metrics(smoke_run):
    [run_file] = (smoke_run.run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    losses = wandb_history(run_file, "train/loss")
    assert len(losses) == len(smoke_run.metrics["train_loss_curve"])
    assert losses[-1] == pytest.approx(smoke_run.metrics["last_train_loss"])
    assert wandb_history(run_file, "eval/loss")
    assert b"provenance" in run_file.read_bytes()  # kosov's recipe and provenance went into the run config


def test_packed_sequences_fill_blocks_and_do_not_attend_across_their_boundaries(tmp_path):
    """bfd packing on CPU (SDPA, fp32), as tests/gpu checks it with FlashAttention: few enough rows that one batch
    holds every sequence, packed (blocks of 512) or padded (one row each), so the first step sees the same tokens
    both ways and its loss may differ only by rounding; then, per token, the packed row's hidden states against
    each sequence run alone."""
    common = ["experiment=smoke-sft", "data.max_rows=12", "data.eval_ratio=0", "method.per_device_train_batch_size=32",
              "method.max_steps=1", "method.logging_steps=1", "method.save_steps=100", "method.sft.max_length=512"]
    padded = train(compose([*common, f"output_dir={tmp_path / 'padded'}"]))
    packed = train(compose([*common, f"output_dir={tmp_path / 'packed'}", "method.sft.packing=true"]))
    blocks, sequences = packed.trainer.train_dataset, packed.metrics["data"]["train_sequences"]
    assert len(blocks) < sequences <= 32 and max(map(len, blocks["input_ids"])) <= 512
    assert packed.metrics["tokens_seen"] == padded.metrics["tokens_seen"]  # the same real tokens, no padding
    assert packed.metrics["first_train_loss"] == pytest.approx(padded.metrics["first_train_loss"], abs=5e-4)
    error, leak = boundary_leak(packed.trainer)
    assert leak > 0.5, "the leaky reference should differ from the sequences run alone"
    assert error < leak / 20, f"packed hidden states differ from the sequences run alone by {error} (leak: {leak})"


def test_padding_free_batches_give_the_same_loss_as_padded_ones(tmp_path):
    padded = train(compose(quick(f"output_dir={tmp_path / 'padded'}")))
    flat = train(compose(quick(f"output_dir={tmp_path / 'flat'}", "method.sft.padding_free=true")))
    assert flat.trainer.data_collator.padding_free and not padded.trainer.data_collator.padding_free
    flat_batch(flat.trainer)  # one flat row, no padding mask, positions restarting per sequence
    assert flat.metrics["first_train_loss"] == pytest.approx(padded.metrics["first_train_loss"], abs=1e-4)
    assert flat.metrics["tokens_seen"] == padded.metrics["tokens_seen"]  # the same real tokens, no padding


@pytest.mark.parametrize("overrides, saved", [
    (["peft=dora"], "adapter"),
    (["peft=none", "method.learning_rate=1e-4"], "model"),
])
def test_dora_and_full_finetune_train_what_they_save(tmp_path, overrides, saved):
    from safetensors.torch import load_file

    from training.models import model_source

    cfg = compose(quick(f"output_dir={tmp_path / 'run'}", *overrides))
    result = train(cfg)
    assert result.metrics["global_step"] == 3
    out = tmp_path / "run" / saved
    if saved == "adapter":
        assert json.loads((out / "adapter_config.json").read_text())["use_dora"] is True
        assert lora_b_trained(out)
        magnitudes = [p for n, p in result.trainer.model.named_parameters() if "lora_magnitude_vector" in n]
        assert magnitudes and all(p.requires_grad for p in magnitudes)
        return
    base = load_file(Path(model_source(cfg.model)[0]) / "model.safetensors")
    trained = load_file(out / "model.safetensors")
    assert (out / "config.json").is_file() and trained.keys() == base.keys()
    moved = [k for k in base if not torch.equal(base[k], trained[k].to(base[k].dtype))]
    assert len(moved) > 0.9 * len(base), f"only {len(moved)} of {len(base)} tensors changed"  # every weight trains
    assert all(t.dtype == torch.float32 for t in trained.values())


def test_named_target_modules_must_exist(tmp_path):
    cfg = compose(quick(f"output_dir={tmp_path / 'run'}", "peft.target_modules=[q_proj,attn_qkv]"))
    with pytest.raises(KosovError) as error:
        train(cfg)
    assert "attn_qkv" in str(error.value) and "v_proj" in str(error.value)


def test_modules_to_save_must_exist_and_tied_embeddings_stay_tied(tmp_path):
    """Training the embeddings for Korean vocabulary: a misspelt module trained nothing, silently; on a tied model
    (tiny-ko, Qwen3 up to 4B) the output layer kept the old embeddings."""
    with pytest.raises(KosovError, match="embed_token'\\]"):
        train(compose(quick(f"output_dir={tmp_path / 'typo'}", "peft.modules_to_save=[embed_token]")))
    result = train(compose(quick(f"output_dir={tmp_path / 'run'}", "peft.modules_to_save=[embed_tokens]")))
    model = result.trainer.model
    embeddings = model.get_input_embeddings().modules_to_save["default"].weight
    assert not torch.equal(embeddings, model.get_input_embeddings().original_module.weight)  # it trained
    assert torch.equal(model.get_output_embeddings().modules_to_save["default"].weight, embeddings)


def test_targeted_lora_touches_only_the_named_modules(tmp_path):
    result = train(compose(quick(f"output_dir={tmp_path / 'run'}", "peft.target_modules=[q_proj,v_proj]")))
    names = {n for n, _ in result.trainer.model.named_parameters() if "lora_A" in n}
    assert names and all(".q_proj." in n or ".v_proj." in n for n in names)


@pytest.fixture
def gpu_of(monkeypatch):
    """Make torch report one CUDA GPU of a given compute capability (7 = V100 / T4, 8 = A100 and newer) to the code
    that picks precisions: torch's own bf16 check runs, nothing runs on the card."""
    def of(major: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda *_: SimpleNamespace(major=major, minor=0))
        monkeypatch.setattr(torch.cuda, "_check_bf16_tensor_supported", lambda *_: True)  # emulated bf16 works
    return of


def test_gpus_without_bf16_train_in_fp16_with_loss_scaling(gpu_of, tmp_path):
    from training.models import compute_dtype, torch_dtype
    from training.run_dir import RunDir
    from training.train import mixed_precision, trainer_args

    cfg = compose(["experiment=qwen3-1.7b-ko-sft"])
    qlora = compose(["experiment=qwen3-8b-ko-qlora-sft"]).peft.quantization
    run = RunDir(tmp_path)
    gpu_of(7)  # a T4: torch answers "bf16 supported" (emulated, slow); kosov must not take that
    assert torch.cuda.is_bf16_supported()
    args = trainer_args(cfg, run, "cuda", [])
    assert (args["fp16"], args["bf16"]) == (True, False)  # fp16 autocast with the Trainer's loss scaling
    assert torch_dtype(cfg.model, "cuda") == torch.float16 and compute_dtype(qlora, "cuda") == torch.float16
    gpu_of(8)
    args = trainer_args(cfg, run, "cuda", [])
    assert (args["fp16"], args["bf16"]) == (False, True)
    assert torch_dtype(cfg.model, "cuda") == torch.bfloat16 and compute_dtype(qlora, "cuda") == torch.bfloat16
    assert mixed_precision(cfg.method, "cpu") == "no"
    cfg.method.bf16 = False
    assert mixed_precision(cfg.method, "cuda") == "no"


def test_a_full_fine_tune_keeps_fp32_master_weights_on_any_gpu(gpu_of, caplog):
    """Autocast computes in bf16 / fp16 from fp32 weights: Adam's ~1e-5 steps survive, and fp16's loss scaling has
    fp32 gradients to unscale. fp16 weights asked for explicitly are refused before anything loads, bf16 ones
    are allowed (half the memory) with a warning."""
    from training.models import torch_dtype
    from training.train import check_precision

    cfg = compose(["experiment=smoke-sft", "peft=none", "model.dtype=auto"])
    for major in (7, 8):
        gpu_of(major)
        assert torch_dtype(cfg.model, "cuda", trains_all=True) == torch.float32
        check_precision(cfg, "cuda", full_model=True)  # dtype auto: fine
    assert torch_dtype(cfg.model, "cpu", trains_all=False) == torch.float32
    gpu_of(7)
    cfg.model.dtype = "float16"
    check_precision(cfg, "cuda", full_model=False)  # LoRA on an fp16 base: fine
    with pytest.raises(KosovError, match="model.dtype=float16 with peft=none") as e:
        check_precision(cfg, "cuda", full_model=True)
    assert "model.dtype=auto or float32" in str(e.value)
    gpu_of(8)
    check_precision(cfg, "cuda", full_model=True)  # bf16 AMP: no loss scaling to break
    cfg.model.dtype = "bfloat16"
    with caplog.at_level("WARNING"):
        check_precision(cfg, "cuda", full_model=True)
    assert "no fp32 master copy" in caplog.text


def test_bf16_weights_lose_the_updates_of_a_full_fine_tune():
    """Why a full fine-tune keeps fp32 weights: one Adam step at 1e-5 on weights of Qwen3's scale (~0.02)."""
    torch.manual_seed(0)
    weights = torch.randn(4096) * 0.02
    kept = {}
    for dtype in (torch.float32, torch.bfloat16):
        w = torch.nn.Parameter(weights.to(dtype, copy=True))
        w.grad = torch.randn(4096).to(dtype)
        torch.optim.AdamW([w], lr=1e-5, weight_decay=0.0).step()
        kept[dtype] = (w.detach().float() != weights.to(dtype).float()).float().mean().item()
    assert kept[torch.float32] == 1.0 and kept[torch.bfloat16] < 0.2


@pytest.mark.parametrize("present", [True, False])
def test_auto_picks_the_fast_paths_on_a_gpu_where_they_are_installed(monkeypatch, present):
    """The real recipes leave attention, kernels and GRPO generation to `auto`: with flash-attn, liger-kernel and vLLM
    usable they are FlashAttention 2, Liger and vLLM on a GPU; without them SDPA, no Liger and continuous batching.
    On CPU always SDPA, no Liger, plain generate. (tests/gpu checks the same against the GPU's real packages.)"""
    from training import grpo, models
    from training.grpo import generation_backend
    from training.models import attention_for, liger_for

    monkeypatch.setattr(models, "flash_attention_ready", lambda: None if present else "not installed")
    monkeypatch.setattr(models, "installed", lambda package: present)
    monkeypatch.setattr(grpo, "installed", lambda package: present)
    monkeypatch.setattr(models, "liger_supports", lambda model_type: model_type in ("qwen3", "llama"))  # its table
    sft_cfg, grpo_cfg = compose(["experiment=qwen3-1.7b-ko-sft"]), compose(["experiment=qwen3-1.7b-ko-grpo"])
    assert (sft_cfg.model.attn_implementation, sft_cfg.method.kernels, grpo_cfg.method.grpo.generation) == \
        ("auto", "auto", "auto")
    assert attention_for(sft_cfg.model, "cuda") == ("flash_attention_2" if present else "sdpa")
    assert liger_for(sft_cfg.method.kernels, "cuda") is present
    assert generation_backend(grpo_cfg, "cuda") == ("vllm" if present else "continuous_batching")
    assert (attention_for(sft_cfg.model, "cpu"), liger_for("auto", "cpu"), generation_backend(grpo_cfg, "cpu")) == \
        ("sdpa", False, "transformers")
    # Liger has no kernels for KORMo's remote-code type: auto leaves it off (and says so in provenance), liger refuses
    assert liger_for("auto", "cuda", "qwen3") is present and liger_for("auto", "cuda", "kormo") is False
    if present:
        with pytest.raises(KosovError, match="no kernels for model type 'kormo'"):
            liger_for("liger", "cuda", "kormo")
    qlora = compose(["experiment=qwen3-8b-ko-qlora-grpo"])
    assert generation_backend(qlora, "cuda") == "continuous_batching"  # never vLLM under a 4-bit base (trl#4973)


def test_an_answer_quoting_the_end_of_turn_token_is_refused_or_skipped_never_cut_short(tmp_path, tiny_tokenizer):
    # the tokenizer reads "<|im_end|>" in text as the end-of-turn token itself: trained as it is, the answer would
    # stop there and the rest of it be lost
    from training.sft_data import build_sft_data

    good = {"messages": [{"role": "user", "content": "안녕?"}, {"role": "assistant", "content": "안녕하세요!"}]}
    quoting = {"messages": [{"role": "user", "content": "ChatML에서 턴은 어떻게 끝나요?"},
                            {"role": "assistant", "content": "각 턴은 <|im_end|> 토큰으로 끝나고, 그 뒤에 줄바꿈이 와요."}]}
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in [good, good, good, quoting]),
                    encoding="utf-8")
    overrides = quick(f"data.train_files=[{data}]", "data.eval_ratio=0")
    with pytest.raises(KosovError, match=rf"{data}:4: .*control token.*<\|im_end\|>"):
        build_sft_data(compose(overrides), tiny_tokenizer, tiny_tokenizer.eos_token_id)
    kept = build_sft_data(compose([*overrides, "data.on_bad_row=skip"]), tiny_tokenizer, tiny_tokenizer.eos_token_id)
    assert kept.summary["train_sequences"] == 3 and kept.summary["skipped"] == {"special token in text": 1}


def test_a_row_the_template_cannot_render_is_skipped_like_any_bad_row_and_a_null_license_is_unknown(tmp_path,
                                                                                                    tiny_tokenizer):
    """With model.thinking=off, a row with reasoning cannot be rendered as inference renders it: it stopped the run
    even with data.on_bad_row=skip. A Parquet meta struct's null license was counted as the license "None"."""
    from training.sft_data import build_sft_data

    good = {"messages": [{"role": "user", "content": "안녕?"}, {"role": "assistant", "content": "안녕하세요!"}],
            "meta": {"source": "seed", "license": None}}
    thinking = {"messages": [{"role": "user", "content": "3+2?"},
                             {"role": "assistant", "content": "5", "reasoning_content": "3 더하기 2는 5"}]}
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in [good, good, good, thinking]),
                    encoding="utf-8")
    overrides = quick(f"data.train_files=[{data}]", "data.eval_ratio=0", "model.thinking=off")
    with pytest.raises(KosovError, match=rf"{data}:4: .*enable_thinking=False") as error:
        build_sft_data(compose(overrides), tiny_tokenizer, tiny_tokenizer.eos_token_id)
    assert "data.on_bad_row=skip" in error.value.fix
    kept = build_sft_data(compose([*overrides, "data.on_bad_row=skip"]), tiny_tokenizer, tiny_tokenizer.eos_token_id)
    assert kept.summary["train_sequences"] == 3 and kept.summary["skipped"] == {"template mismatch": 1}
    assert kept.summary["licenses"] == {"unknown": 3} and kept.summary["license_sources"] == {"unknown": {"seed": 3}}
