"""What PEFT is asked to train and how the base loads for it: a MoE's router never gets LoRA, weights trained in
full (peft.modules_to_save) are fp32 under mixed precision and stay tied when named by their full path, auto
attention fits the dtype attention computes in, a continued adapter keeps its prompt format, and QLoRA's quant_type
is one bitsandbytes has."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from tests.helpers import quick
from training.adapters import lora_config
from training.errors import KosovError
from training.recipes import compose
from training.schema import ModelConfig, PeftConfig

EXPERTS = ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]


def tiny_ko(dtype=torch.float32):
    """tiny-ko as kosov loads it: from_pretrained(model_source), the path PEFT records as the adapter's base."""
    from transformers import AutoModelForCausalLM

    from training.models import model_source

    return AutoModelForCausalLM.from_pretrained(model_source(ModelConfig())[0], dtype=dtype)


def test_all_linear_on_fused_experts_is_refused_with_target_parameters_too():
    """peft.target_parameters=[experts] with all-linear passed the guard: PEFT put LoRA on the router (mlp.gate) and
    a second LoRA on the gate/up experts (twice the rank)."""
    from transformers import AutoModelForCausalLM

    from training.architectures import tiny_model_dir

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir("qwen3_moe"))
    with pytest.raises(KosovError) as error:
        lora_config(PeftConfig(target_parameters=EXPERTS, dropout=0.0), model)
    assert "router" in error.value.what and "peft.target_modules=[q_proj,k_proj,v_proj,o_proj]" in error.value.fix
    named = lora_config(PeftConfig(target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], target_parameters=EXPERTS,
                                   dropout=0.0), model)  # the fix holds
    assert set(named.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj"}


def test_an_embedding_named_by_its_full_path_stays_tied_to_lm_head():
    """modules_to_save=[model.embed_tokens] passed the existence check, but the tying check matched bare names only:
    lm_head kept the frozen embedding while the copy trained."""
    from peft import get_peft_model

    model = tiny_ko()
    config = lora_config(PeftConfig(target_modules=["q_proj"], modules_to_save=["model.embed_tokens"]), model)
    assert config.ensure_weight_tying
    peft_model = get_peft_model(model, config)
    trained = next(p for n, p in peft_model.named_parameters() if "modules_to_save" in n)
    with torch.no_grad():
        trained.add_(1.0)
    ids = torch.tensor([[5, 6, 7]])
    inner = peft_model.base_model.model
    with torch.no_grad():
        hidden = inner.model(input_ids=ids).last_hidden_state
        assert torch.allclose(inner(input_ids=ids).logits, hidden @ trained.T, atol=1e-5)


def test_fp16_copies_of_modules_to_save_are_upcast_before_loss_scaling():
    """On a V100 / T4 (fp16 weights, fp16 mixed precision) the first optimizer step failed: "Attempting to unscale
    FP16 gradients" (the GradScaler here on CPU, as there on CUDA)."""
    from peft import get_peft_model

    from training.adapters import upcast_trainable

    model = tiny_ko(torch.float16)
    peft_model = get_peft_model(model, lora_config(PeftConfig(modules_to_save=["embed_tokens", "lm_head"]), model))
    upcast = upcast_trainable(SimpleNamespace(model=peft_model), "fp16")
    assert any("embed_tokens" in name for name in upcast)
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    assert all(p.dtype == torch.float32 for p in trainable)
    optimizer, scaler = torch.optim.AdamW(trainable), torch.amp.GradScaler("cpu")
    ids = torch.randint(0, 100, (1, 8))
    with torch.autocast("cpu", dtype=torch.float16):
        loss = peft_model(input_ids=ids, labels=ids).loss
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)  # raised ValueError before
    scaler.step(optimizer)
    # no autocast (method.bf16=false): an fp32 copy beside fp16 weights would not compute, so none is made
    again = get_peft_model(tiny_ko(torch.float16), lora_config(PeftConfig(modules_to_save=["embed_tokens"]), model))
    assert upcast_trainable(SimpleNamespace(model=again), "no") == []


def test_modules_to_save_train_in_fp32_under_bf16_autocast(tmp_path):
    """model.dtype=auto on a bf16 GPU loads the base in bf16: the embedding and lm_head copies trained in pure bf16,
    where Adam's small steps are rounded away (here bf16 weights and bf16 autocast on CPU)."""
    from training.train import train

    result = train(compose(quick("model.dtype=bfloat16", "method.bf16=true", "method.max_steps=2",
                                 "peft.modules_to_save=[embed_tokens,lm_head]", f"output_dir={tmp_path / 'run'}")))
    trainable = {n: p for n, p in result.trainer.model.named_parameters() if p.requires_grad}
    assert any("embed_tokens.modules_to_save" in n for n in trainable)
    assert {n: p.dtype for n, p in trainable.items() if p.dtype != torch.float32} == {}
    assert result.metrics["global_step"] == 2


@pytest.fixture
def flash_here(monkeypatch):
    from training import models

    monkeypatch.setattr(models, "flash_attention_ready", lambda: None)  # as on an Ampere GPU with flash-attn


def test_auto_attention_takes_sdpa_for_fp32_weights_nothing_autocasts(flash_here):
    """kosov eval model.dtype=float32 on a GPU with flash-attn: auto chose FlashAttention 2, which refused fp32 at the
    first forward."""
    from training.models import attention_for

    fp32, auto, bf16 = (ModelConfig(dtype=dtype, attn_implementation="auto") for dtype in ("float32", "auto", "bfloat16"))
    assert attention_for(fp32, "cuda") == "sdpa"
    assert attention_for(auto, "cuda") == "flash_attention_2" == attention_for(bf16, "cuda")
    # training: fp32 weights (a full fine-tune, or model.dtype=float32) under bf16 / fp16 autocast compute in 16 bits
    assert attention_for(auto, "cuda", trains_all=True, autocast=True) == "flash_attention_2"
    assert attention_for(fp32, "cuda", autocast=True) == "flash_attention_2"
    assert attention_for(auto, "cuda", trains_all=True) == "sdpa"  # method.bf16=false
    assert attention_for(auto, "cpu") == "sdpa"


def test_flash_attention_asked_for_with_fp32_weights_is_refused_before_loading(flash_here):
    from training.models import check_attention

    asked = ModelConfig(dtype="float32", attn_implementation="flash_attention_2")
    with pytest.raises(KosovError) as error:
        check_attention(asked, "cuda", training=False)  # eval, serve, merge: nothing autocasts
    assert "fp16 or bf16" in error.value.what and "model.dtype=bfloat16" in error.value.fix
    check_attention(asked, "cuda", autocast=True)  # training under mixed precision: transformers casts to bf16
    with pytest.raises(KosovError, match="method.bf16=false"):
        check_attention(ModelConfig(attn_implementation="flash_attention_2"), "cuda", trains_all=True)
    check_attention(ModelConfig(dtype="bfloat16", attn_implementation="flash_attention_2"), "cuda", training=False)


def trained_with_template(tmp_path, template_text):
    """A kosov run folder whose adapter (tiny-ko LoRA) was trained with model.chat_template=<its own file>."""
    from peft import get_peft_model

    run = tmp_path / "first"
    template = tmp_path / "templates" / "mine.jinja"
    template.parent.mkdir(parents=True)
    template.write_text(template_text, encoding="utf-8")
    cfg = compose(quick(f"model.chat_template={template}"))
    model = tiny_ko()
    get_peft_model(model, lora_config(cfg.peft, model)).save_pretrained(run / "adapter")
    shutil.copyfile(template, run / "adapter" / "chat_template.jinja")  # the tokenizer saved beside it
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {"name_or_path": "tiny-ko",
                                                               "chat_template": str(template),
                                                               "end_of_turn_token": "<|im_end|>"}}))
    return run


def test_a_continued_adapter_trains_in_the_prompt_format_it_was_trained_with(tmp_path):
    """eval, serve and synth prompt an adapter with its run's chat template; method.init_adapter trained it on with
    the tokenizer's own, a prompt format it had never seen (and eval then prompted it with the other)."""
    from training.tiny_ko import TEMPLATE_PATH
    from training.train import train

    own = "{#- the format this adapter learned -#}\n" + TEMPLATE_PATH.read_text(encoding="utf-8")
    start = trained_with_template(tmp_path, own)
    result = train(compose(quick(f"method.init_adapter={start}", "method.max_steps=1", f"output_dir={tmp_path / 'run'}")))
    assert result.trainer.processing_class.chat_template == own
    recorded = yaml.safe_load((result.run_dir / "config.yaml").read_text(encoding="utf-8"))["model"]
    assert recorded["chat_template"] == str(start / "adapter" / "chat_template.jinja")  # what its own eval follows
    assert (result.run_dir / "adapter" / "chat_template.jinja").read_text(encoding="utf-8") == own


def test_a_quant_type_bitsandbytes_lacks_is_refused_when_the_recipe_is_read():
    """peft.quantization.quant_type=int4 passed and failed only in bitsandbytes, on the GPU, after loading."""
    with pytest.raises(KosovError) as error:
        compose(["experiment=smoke-sft", "peft=qlora", "peft.quantization.quant_type=int4"])
    assert "peft.quantization.quant_type" in str(error.value) and "nf4" in str(error.value)
    assert compose(["experiment=smoke-sft", "peft=qlora", "peft.quantization.quant_type=fp4"]).peft.quantization


def test_a_local_base_is_recorded_by_its_full_path(tmp_path, monkeypatch):
    """PEFT records what from_pretrained got: a relative `base`, which named another folder from another working
    folder (tests/training/test_adapter_checks.py: the adapter is refused there)."""
    from training.models import model_source

    monkeypatch.chdir(tmp_path)
    shutil.copytree(model_source(ModelConfig())[0], "base")
    for given in ("base", "./base", str(tmp_path / "base")):
        source, local = model_source(ModelConfig(name_or_path=given))
        assert local and source == str((tmp_path / "base").resolve())
    assert json.loads(Path(source, "config.json").read_text())["model_type"] == "qwen3"


def test_liger_on_an_architecture_it_lacks_is_refused_from_the_config_before_the_weights_load(tmp_path, monkeypatch):
    """method.kernels=liger on KORMo (remote-code model type `kormo`) failed only when the Trainer was built, after
    the data and the weights had loaded. The model type comes from config.json alone: a folder with no weights."""
    from training import models
    from training.models import check_kernels, installed, model_source

    if not installed("liger_kernel"):  # a CPU machine: its table of supported types, as liger-kernel 0.6 has it
        monkeypatch.setattr(models, "installed", lambda package: True)
        monkeypatch.setattr(models, "liger_supports", lambda model_type: model_type in ("qwen3", "llama"))
    kormo = tmp_path / "KORMo-10B-sft"
    kormo.mkdir()
    (kormo / "config.json").write_text(json.dumps({"model_type": "kormo", "auto_map": {
        "AutoModelForCausalLM": "modeling_kormo.KORMoForCausalLM"}}))
    with pytest.raises(KosovError) as error:
        check_kernels(ModelConfig(name_or_path=str(kormo)), str(kormo), "cuda", "liger")
    assert "no kernels for model type 'kormo'" in error.value.what
    assert "method.kernels=auto or off" in error.value.fix and "kosov convert kormo" in error.value.fix
    check_kernels(ModelConfig(name_or_path=str(kormo)), str(kormo), "cuda", "auto")  # auto leaves Liger off there
    check_kernels(ModelConfig(), model_source(ModelConfig())[0], "cuda", "liger")  # tiny-ko is a Qwen3: supported
