"""How GRPO generates: the backend kosov picks (vLLM, continuous batching, plain generate) and what it refuses before
anything loads, CUDA graphs, where completions stop, the revision and remote code the generator and the reference
model load with, and how rewards read completions a template opened thinking for."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from training.recipes import compose
from training.errors import KosovError
from training.train import train


def test_continuous_batching_keeps_the_lora_weights_and_rope_in_fp32(tmp_path):
    # TRL 1.16 casts the whole policy to bf16 for continuous-batching generation and leaves it so; kosov puts the
    # fp32 tensors back, or Adam's small steps on the LoRA weights would be rounded away after every generation
    result = train(compose(["experiment=smoke-grpo", f"output_dir={tmp_path / 'run'}", "method.max_steps=2",
                            "method.grpo.generation=continuous_batching", "method.bf16=true",
                            "method.grpo.continuous_batching_memory=0.4"]))
    model = result.trainer.model
    assert result.trainer.use_transformers_continuous_batching and result.trainer.args.bf16
    assert result.trainer.continuous_batching_config.max_memory_percent == 0.4  # the KV cache's share
    # CUDA graphs (null: on with a GPU) are not asked for on the CPU
    assert result.trainer.args.transformers_continuous_batching_config == {"max_memory_percent": 0.4}
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}
    assert {b.dtype for n, b in model.named_buffers() if n.endswith("inv_freq")} == {torch.float32}
    assert result.metrics["global_step"] == 2


def test_cuda_graphs_on_the_cpu_are_refused_before_anything_loads(tmp_path):
    with pytest.raises(KosovError, match="continuous_batching_cuda_graphs=true on the CPU") as err:
        train(compose(["experiment=smoke-grpo", "device=cpu", f"output_dir={tmp_path / 'run'}",
                       "method.grpo.generation=continuous_batching",
                       "method.grpo.continuous_batching_cuda_graphs=true"]))
    assert "device=cuda" in err.value.fix
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("recipe, setting, graphs", [
    ("qwen3-1.7b-ko-grpo", "null", True),         # measured: 3.72x TRL's steps/s with graphs, 1.28x without
    ("qwen3-1.7b-ko-grpo", "false", False),       # switchable
    ("qwen3-8b-ko-qlora-grpo", "null", False),    # a 4-bit base: off (graphs over bitsandbytes not measured), not
                                                  # left to transformers, which turns them on with flash-attn
    ("qwen3-8b-ko-qlora-grpo", "true", True),
])
def test_continuous_batching_replays_cuda_graphs_by_default_on_a_gpu(recipe, setting, graphs):
    from training.grpo import continuous_batching_config

    cfg = compose([f"experiment={recipe}", "tracking=none", f"method.grpo.continuous_batching_cuda_graphs={setting}"])
    assert (continuous_batching_config(cfg, "cuda") or {}).get("use_cuda_graph") == graphs
    if setting == "null":  # nothing asked of transformers on the CPU (it has no graph backend there)
        assert "use_cuda_graph" not in (continuous_batching_config(cfg, "cpu") or {})


def test_generation_auto_does_not_send_a_qlora_base_to_vllm(monkeypatch):
    from training import grpo

    monkeypatch.setattr(grpo, "installed", lambda package: True)  # as on a GPU server with vLLM installed
    assert grpo.generation_backend(compose(["experiment=qwen3-1.7b-ko-grpo"]), "cuda") == "vllm"
    qlora = compose(["experiment=qwen3-8b-ko-qlora-grpo"])
    assert grpo.generation_backend(qlora, "cuda") == "continuous_batching"
    qlora.method.grpo.generation = "vllm"
    with pytest.raises(KosovError, match=r"huggingface/trl#4973"):
        grpo.generation_backend(qlora, "cuda")


@pytest.mark.parametrize("gpus", [1, 2, 4, 8])
def test_the_17b_recipe_generates_two_steps_per_round_on_any_number_of_gpus(gpus):
    """Its round was 64 completions (2 steps on one GPU): from 4 GPUs on, where a step takes 128, preflight refused
    the shipped recipe. In optimizer steps it holds on every count, and each GPU generates the same share."""
    from training import grpo

    cfg = compose(["experiment=qwen3-1.7b-ko-grpo"])
    grpo.preflight(cfg, "cuda", gpus)
    assert grpo.generation_batch(cfg, gpus) == 2 * 32 * gpus


def test_a_round_sized_twice_is_refused():
    from training import grpo

    cfg = compose(["experiment=qwen3-1.7b-ko-grpo", "method.grpo.generation_batch_size=128"])
    with pytest.raises(KosovError, match="both size a generation round"):
        grpo.preflight(cfg, "cuda", 1)
    cfg.method.grpo.optimizer_steps_per_generation = None  # as the error's fix says
    grpo.preflight(cfg, "cuda", 1)
    assert grpo.generation_batch(cfg, 1) == 128


def test_under_fsdp_grpo_generates_in_step_across_gpus_not_by_continuous_batching(monkeypatch):
    """Continuous batching decodes each GPU's prompts for as many steps as they need, while under FSDP every forward
    pass gathers the sharded weights from all GPUs: auto chose it there. Plain generate keeps the GPUs in step."""
    from training import grpo

    monkeypatch.setattr(grpo, "installed", lambda package: False)  # no vLLM
    cfg = compose(["experiment=qwen3-1.7b-ko-grpo"])
    assert grpo.generation_backend(cfg, "cuda") == "continuous_batching"  # one GPU, DDP
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")  # TRL gathers the whole model to generate
    assert grpo.generation_backend(cfg, "cuda") == "continuous_batching"
    monkeypatch.delenv("ACCELERATE_DEEPSPEED_ZERO_STAGE")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # what accelerate launch --config_file fsdp2.yaml sets
    assert grpo.generation_backend(cfg, "cuda") == "transformers"
    cfg.method.grpo.generation = "continuous_batching"
    with pytest.raises(KosovError, match="continuous_batching under FSDP") as error:
        grpo.preflight(cfg, "cuda", 2)
    assert "generation=auto" in error.value.fix


def test_a_vllm_server_is_not_replaced_by_in_process_generation(monkeypatch):
    """generation=auto with vllm_mode=server and no vLLM installed here chose continuous batching in the training
    process, without a word, leaving the user's `trl vllm-serve` unused. TRL's client needs vLLM installed too."""
    from training import grpo

    cfg = compose(["experiment=qwen3-1.7b-ko-grpo", "method.grpo.vllm_mode=server"])
    monkeypatch.setattr(grpo, "installed", lambda package: False)
    with pytest.raises(KosovError, match=r"vllm_mode=server \(TRL's client .* needs vLLM here too\), but vLLM is not"):
        grpo.generation_backend(cfg, "cuda")
    monkeypatch.setattr(grpo, "installed", lambda package: True)
    assert grpo.generation_backend(cfg, "cuda") == "vllm"


def test_flex_attention_is_refused_before_loading_where_continuous_batching_would_generate():
    """transformers' continuous batching takes eager, SDPA or FlashAttention: a QLoRA GRPO run (which generates that
    way) with FlexAttention failed at its first generation round, after loading the model."""
    from training import grpo

    cfg = compose(["experiment=qwen3-8b-ko-qlora-grpo", "model.attn_implementation=flex_attention"])
    with pytest.raises(KosovError, match="continuous batching, which does not support FlexAttention"):
        grpo.preflight(cfg, "cuda", 1)
    cfg.method.grpo.generation = "transformers"  # plain generate() takes FlexAttention
    grpo.preflight(cfg, "cuda", 1)


def test_thinking_auto_generates_in_non_thinking_mode_as_sft_trains_rows_without_reasoning(tiny_tokenizer):
    """model.thinking=auto (the model recipes' default): an SFT turn without reasoning_content is rendered in
    non-thinking mode; GRPO's prompts carry no reasoning either, so they must not be left to the template's
    default (thinking, for Qwen3), which a short completion budget cuts off mid-thought."""
    from training.grpo import thinking_kwargs

    messages = [{"role": "user", "content": "사과 3개가 1,500원이면 한 개는 얼마예요?"}]
    prompts = {mode: tiny_tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True,
        **thinking_kwargs(compose(["experiment=smoke-grpo", f"model.thinking={mode}"]))) for mode in ("auto", "on")}
    assert prompts["auto"].endswith("<think>\n\n</think>\n\n") and not prompts["on"].endswith("</think>\n\n")


def base_like(tmp_path):
    """tiny-ko as a base checkpoint ships (Qwen3-8B-Base): its tokenizer and generation config end text with
    <|endoftext|>, while the chat template (and the recipe's model.end_of_turn_token) ends turns with <|im_end|>."""
    from training.models import model_source

    base = tmp_path / "base"
    shutil.copytree(model_source(compose(["experiment=smoke-grpo"]).model)[0], base)
    tok = json.loads((base / "tokenizer_config.json").read_text())
    gen = json.loads((base / "generation_config.json").read_text())
    (base / "tokenizer_config.json").write_text(json.dumps({**tok, "eos_token": "<|endoftext|>"}))
    (base / "generation_config.json").write_text(json.dumps({**gen, "eos_token_id": gen["pad_token_id"]}))
    return base


def test_grpo_completions_end_with_the_turn_where_the_base_ends_text_with_another_token(tmp_path, tiny_tokenizer):
    """TRL stops generating (and counts a completion as finished) only at the model's generation-config ends and the
    tokenizer's eos: on a base checkpoint it generated past <|im_end|> to max_completion_length."""
    turn, text_end = (tiny_tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>"))
    result = train(compose(["experiment=smoke-grpo", f"output_dir={tmp_path / 'run'}", "method.max_steps=1",
                            f"model.name_or_path={base_like(tmp_path)}", 'model.end_of_turn_token="<|im_end|>"']))
    trainer = result.trainer
    assert set(trainer.eos_token_ids) == {turn, text_end}  # the base's own end is kept
    assert turn in trainer.generation_config.eos_token_id

    # A real generation by TRL's own path, with a model that always writes <|im_end|>: one token, not 32.
    def writes_end_of_turn(module, args, output):
        if getattr(output, "logits", None) is not None:
            output.logits[..., turn] += 1e4

    hook = trainer.model.get_base_model().register_forward_hook(writes_end_of_turn)
    try:
        prompt = tiny_tokenizer("3 더하기 4는?", add_special_tokens=False)["input_ids"]
        completions, _ = trainer._generate_single_turn([prompt], None, {}, 1)
    finally:
        hook.remove()
    assert completions == [[turn]]

    # vLLM reads its ends from the checkpoint's files: kosov passes the turn's end as stop_token_ids
    from transformers import GenerationConfig

    from training.grpo import generation_stops

    cfg = compose(["experiment=smoke-grpo", 'model.end_of_turn_token="<|im_end|>"'])
    model = type("Model", (), {"generation_config": GenerationConfig(eos_token_id=text_end)})()
    assert generation_stops(cfg, model, tiny_tokenizer, "vllm") == {"stop_token_ids": [turn, text_end]}
    assert model.generation_config.eos_token_id == [turn, text_end]
    assert generation_stops(cfg, model, tiny_tokenizer, "continuous_batching") is None  # TRL reads the model's


def test_the_reference_model_loads_at_the_recipes_revision_with_its_remote_code_setting(tmp_path, monkeypatch):
    """A full fine-tune with beta > 0: TRL loads the reference model itself, from model_init_kwargs and
    trust_remote_code, which kosov did not pass (it loaded another revision, or failed on remote code)."""
    from transformers import Qwen3ForCausalLM

    from training import grpo

    loads = []
    original = Qwen3ForCausalLM.from_pretrained.__func__

    def recorded(cls, *args, **kwargs):
        loads.append(kwargs)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(Qwen3ForCausalLM, "from_pretrained", classmethod(recorded))
    sha = "a" * 40
    result = train(compose(["experiment=smoke-grpo", f"output_dir={tmp_path / 'run'}", "method.max_steps=1",
                            "peft=none", "method.grpo.beta=0.04", f"model.revision={sha}",
                            "model.trust_remote_code=true"]))
    assert result.trainer.ref_model is not None and result.trainer.args.trust_remote_code is True
    assert loads[-1]["revision"] == sha and loads[-1]["trust_remote_code"] is True  # the reference model's load

    # TRL reads a hub model's config, remote code included, at its latest commit before it loads the reference
    kormo = compose(["experiment=kormo-10b-ko-grpo", f"model.revision={sha}", "peft=none", "method.grpo.beta=0.04"])
    with pytest.raises(KosovError, match="reference model itself .* latest commit") as error:
        grpo.preflight(kormo, "cuda", 1)
    assert "peft=lora" in error.value.fix and "--revision" in error.value.fix
    grpo.preflight(compose(["experiment=kormo-10b-ko-grpo", f"model.revision={sha}", "method.grpo.beta=0.04"]),
                   "cuda", 1)  # with LoRA the reference is the base with the adapter off: TRL loads nothing


def test_remote_code_models_generate_with_plain_transformers(monkeypatch):
    """KORMo's architecture is remote code, which neither vLLM nor transformers continuous batching runs: auto picked
    them on a GPU and the run failed at its first generation round, after loading."""
    from training import grpo

    monkeypatch.setattr(grpo, "installed", lambda package: True)  # as on a GPU server with vLLM installed
    cfg = compose(["experiment=kormo-10b-ko-grpo", f"model.revision={'a' * 40}", "method.grpo.generation=auto"])
    assert grpo.generation_backend(cfg, "cuda") == "transformers"
    for choice in ("vllm", "continuous_batching"):
        cfg.method.grpo.generation = choice
        with pytest.raises(KosovError, match=f"generation={choice} with model.trust_remote_code=true") as error:
            grpo.preflight(cfg, "cuda", 1)
        assert "method.grpo.generation=transformers" in error.value.fix
    cfg.method.grpo.generation, cfg.method.grpo.vllm_mode = "auto", "server"  # a vLLM server cannot run it either
    with pytest.raises(KosovError, match=r"vllm_mode=server .* with model.trust_remote_code=true"):
        grpo.generation_backend(cfg, "cuda")


def test_vllm_is_not_started_at_another_revision_than_the_recipe_pins(monkeypatch, tmp_path):
    """TRL 1.16 starts vLLM from the hub id alone (LLM(model=name_or_path)): the revision is not passed."""
    from training import grpo

    monkeypatch.setattr(grpo, "installed", lambda package: True)
    sha = "b" * 40
    cfg = compose(["experiment=qwen3-1.7b-ko-grpo", f"model.revision={sha}"])
    assert grpo.generation_backend(cfg, "cuda") == "continuous_batching"  # auto: the pinned revision, generated
    cfg.method.grpo.generation = "vllm"
    with pytest.raises(KosovError, match=rf"Qwen/Qwen3-1.7B at model.revision={sha}: .* \(no revision\)") as error:
        grpo.preflight(cfg, "cuda", 1)
    assert f"--revision {sha} --local-dir" in error.value.fix and "generation=continuous_batching" in error.value.fix
    cfg.method.grpo.vllm_mode = "server"  # the user's `trl vllm-serve --revision` loads it
    assert grpo.generation_backend(cfg, "cuda") == "vllm"
    (tmp_path / "config.json").write_text("{}")
    local = compose(["experiment=qwen3-1.7b-ko-grpo", f"model.name_or_path={tmp_path}", f"model.revision={sha}"])
    assert grpo.generation_backend(local, "cuda") == "vllm"  # a folder is what vLLM loads


def test_qlora_with_a_vllm_server_is_told_how_to_generate_instead(monkeypatch):
    """generation=auto with vllm_mode=server and QLoRA was refused as "generation=vllm", with generation=auto (what
    the user had set) as its fix."""
    from training import grpo

    monkeypatch.setattr(grpo, "installed", lambda package: True)
    cfg = compose(["experiment=qwen3-8b-ko-qlora-grpo", "method.grpo.vllm_mode=server"])
    with pytest.raises(KosovError, match=r"vllm_mode=server .* with a 4-bit QLoRA base") as error:
        grpo.preflight(cfg, "cuda", 1)
    assert "method.grpo.generation=continuous_batching" in error.value.fix
    cfg.method.grpo.generation = "continuous_batching"  # as the fix says
    grpo.preflight(cfg, "cuda", 1)
    assert grpo.generation_backend(cfg, "cuda") == "continuous_batching"


def test_cispo_is_refused_with_dapos_clip_higher():
    """TRL's CISPO caps the importance weight itself at epsilon_high: at 0.28 every on-policy token counts 0.28."""
    from training import grpo

    cfg = compose(["experiment=smoke-grpo", "method.grpo.loss_type=cispo"])
    with pytest.raises(KosovError, match="loss_type=cispo with method.grpo.epsilon_high=0.28") as error:
        grpo.preflight(cfg, "cpu", 1)
    assert "epsilon_high=5.0" in error.value.fix
    cfg.method.grpo.epsilon_high = 5.0
    grpo.preflight(cfg, "cpu", 1)


def test_rewards_read_a_completion_cut_off_in_a_think_block_the_template_opened_as_unanswered(tmp_path):
    """Qwen3-Thinking-2507's template ends the generation prompt with "<think>\\n": the completion has no <think>,
    and one cut off mid-thought was scored as an answer (its last number)."""
    import trl

    template = Path(trl.__file__).parent / "chat_templates" / "qwen3_5_think.jinja"
    result = train(compose(["experiment=smoke-grpo", f"output_dir={tmp_path / 'run'}", "method.max_steps=1",
                            f"model.chat_template={template}", "model.thinking=on"]))
    rewards = dict(zip(result.trainer.reward_func_names, result.trainer.reward_funcs))
    ask = [[{"role": "user", "content": "사과 5개에 100원씩이면?"}]]
    cut = [[{"role": "assistant", "content": "사과가 5개이고 100원씩이니까 정답: 500"}]]
    done = [[{"role": "assistant", "content": "5 x 100 = 500</think>\n\n정답: 500"}]]
    assert rewards["math_accuracy"](prompts=ask, completions=cut, answer=["500"]) == [0.0]
    assert rewards["math_accuracy"](prompts=ask, completions=done, answer=["500"]) == [1.0]
    assert rewards["language_consistency"](prompts=ask, completions=cut) == [0.0]  # no answer to judge
