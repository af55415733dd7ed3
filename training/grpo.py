"""GRPO through TRL's GRPOTrainer: the prompt-data step and the trainer, nothing else.

    kosov train experiment=smoke-grpo                 # tiny-ko on CPU
    kosov train experiment=qwen3-1.7b-ko-grpo          # one GPU, vLLM colocate when installed

Rewards come from the reward library (training/rewards.py) by name; the run folder, tracking, resume and
starting from an SFT adapter are shared with SFT (training/train.py).
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import TemplateError

from data_tools.chat_io import prompt_row
from training.schema import KosovConfig
from training.data_rows import (TrainData, fits, free_of, load_rows, none_left, rows_summary, special_tokens,
                                split_eval, template_refused)
from training.errors import KosovError
from training.grpo_dtypes import keep_trainable_fp32, kept_dtypes
from training.models import installed, sharded_by, stop_ids
from training.prompt_columns import prompt_dataset
from training.rewards import build_rewards, parses_responses, required_columns
from training.sft import resumes_from_checkpoint


def thinking_kwargs(cfg: KosovConfig) -> dict[str, bool]:
    """enable_thinking for generation prompts: on, or off for off and auto. auto means what it means in SFT, where
    a turn without reasoning_content is rendered in non-thinking mode: a prompt row carries no thinking to give.
    (Qwen3's template would otherwise default to thinking, which GRPO's short completion budgets cut off.)"""
    return {"enable_thinking": cfg.model.thinking == "on"}


def _kept_prompts(rows: list, tokenizer: Any, cfg: KosovConfig, skipped: Counter) -> list:
    """The prompt rows that fit max_prompt_length and that the template renders; the others fail or are counted in
    `skipped` (data.on_overlong, data.on_bad_row)."""
    limit, kwargs, kept = cfg.method.grpo.max_prompt_length, thinking_kwargs(cfg), []
    special = special_tokens(tokenizer)
    for row in rows:
        if not free_of(row, special, cfg.data.on_bad_row, skipped):
            continue
        try:
            text = tokenizer.apply_chat_template(row.messages, tokenize=False, add_generation_prompt=True, **kwargs)
        except TemplateError as e:  # the template's raise_exception: a bad row, named (or skipped and counted)
            template_refused(row, e, cfg.data.on_bad_row, skipped)
            continue
        length = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        if fits(row, length, limit, "method.grpo.max_prompt_length", cfg.data.on_overlong, skipped):
            kept.append(row)
    return kept


def build_data(cfg: KosovConfig, tokenizer: Any, end_token_id: int, folder: Path | None = None,
               loaded: Callable[[list[dict[str, Any]]], None] | None = None) -> TrainData:
    """Prompt rows, held in memory by every process (folder unused: prompts are short, and only their length is
    rendered). loaded: called with the sources read, before the prompts render (a resume's check of the data)."""
    check = functools.partial(prompt_row, required=tuple(sorted(required_columns(cfg.rewards))))
    train_report, eval_report = load_rows(cfg, check, loaded)
    train_rows, eval_rows = split_eval(train_report, eval_report, cfg.data.eval_ratio, cfg.seed)
    skipped, eval_skipped = Counter(), Counter()
    train_kept = _kept_prompts(train_rows, tokenizer, cfg, skipped)
    if not train_kept:  # too long, a control token, a malformed row (on_bad_row=skip)
        raise none_left(skipped + train_report.skipped, "prompt", "method.grpo.max_prompt_length")
    eval_kept = _kept_prompts(eval_rows, tokenizer, cfg, eval_skipped)
    # the prompts that train (and were held out) and their licenses: not those skipped here
    summary = rows_summary(cfg, train_report, eval_report, train_kept, eval_kept, skipped + eval_skipped,
                           held_out=len(eval_rows), eval_skipped=eval_skipped)
    summary["train_prompts"] = len(train_kept)
    _check_one_round(cfg, len(train_kept))
    return TrainData(train=prompt_dataset(train_kept), eval=prompt_dataset(eval_kept) if eval_kept else None,
                     summary=summary)


def _check_one_round(cfg: KosovConfig, prompts: int, processes: int | None = None, left: str = "left") -> None:
    """TRL's sampler drops a generation round it cannot fill with distinct prompts: with fewer prompts than one
    takes, nothing trains (a run "finished" at step 0 with max_steps, a raw error without)."""
    if processes is None:
        from accelerate import PartialState

        processes = PartialState().num_processes
    m, groups = cfg.method, cfg.method.grpo.num_generations
    step = m.per_device_train_batch_size * m.gradient_accumulation_steps * processes
    completions = generation_batch(cfg, processes) or step
    if prompts < completions // groups:
        raise KosovError(
            f"{prompts} training prompt(s) {left}, but one generation round takes {completions // groups} distinct "
            f"prompts ({completions} completions in groups of method.grpo.num_generations={groups}): none would train",
            fix=f"give at least {completions // groups} training prompts (data.max_rows, data.eval_ratio, skipped "
                "rows), or make a round smaller (method.per_device_train_batch_size, gradient_accumulation_steps, "
                "method.grpo.generation_batch_size / optimizer_steps_per_generation)")


def preflight(cfg: KosovConfig, device: str, processes: int) -> None:
    """Fail before any model loads: the group must divide a step's completions (a sized round's); vLLM needs a GPU."""
    grpo, m = cfg.method.grpo, cfg.method
    completions = m.per_device_train_batch_size * m.gradient_accumulation_steps * processes
    round_size = generation_batch(cfg, processes)  # optimizer_steps_per_generation: 1 or more, not with batch size
    if round_size is None and completions % grpo.num_generations:
        raise KosovError(
            f"a step generates {completions} completions (per_device_train_batch_size x "
            f"gradient_accumulation_steps x {processes} processes), not a multiple of the group size "
            f"method.grpo.num_generations={grpo.num_generations}",
            fix="make method.per_device_train_batch_size x method.gradient_accumulation_steps a multiple of "
                "method.grpo.num_generations",
        )
    if grpo.generation_batch_size is not None and (grpo.generation_batch_size <= 0
                                                   or grpo.generation_batch_size % completions):
        raise KosovError(
            f"method.grpo.generation_batch_size={grpo.generation_batch_size} is not a whole number of optimizer "
            f"steps: a step trains on {completions} completions",
            fix=f"use null (one step per generation round) or a multiple of {completions}",
        )
    if round_size is not None and round_size % grpo.num_generations:
        # TRL's rule once a round is sized: whole groups per round (its advantages); a step may split a group
        asked = (f"method.grpo.generation_batch_size={round_size}" if grpo.generation_batch_size is not None else
                 f"method.grpo.optimizer_steps_per_generation={grpo.optimizer_steps_per_generation} ({round_size} "
                 "completions)")
        raise KosovError(f"a generation round of {asked} is not a multiple of the group size "
                         f"method.grpo.num_generations={grpo.num_generations}",
                         fix=f"size the round in whole groups: a multiple of {grpo.num_generations} completions")
    if cfg.data.max_rows is not None:  # known now: before an SFT stage trains, not after it (build_data's check)
        _check_one_round(cfg, cfg.data.max_rows, processes, left=f"at most (data.max_rows={cfg.data.max_rows})")
    evaluating = bool(cfg.data.eval_files) or cfg.data.eval_ratio > 0
    if evaluating and (m.per_device_eval_batch_size * processes) % grpo.num_generations:
        # TRL's GRPOConfig refuses it, but only once the data and the model are loaded: whole groups are evaluated
        raise KosovError(
            f"an eval batch holds {m.per_device_eval_batch_size * processes} completions "
            f"(method.per_device_eval_batch_size={m.per_device_eval_batch_size} x {processes} processes), not a "
            f"multiple of the group size method.grpo.num_generations={grpo.num_generations}",
            fix=f"set method.per_device_eval_batch_size to a multiple of "
                f"{grpo.num_generations // math.gcd(grpo.num_generations, processes)}, or evaluate without "
                "generating during training: data.eval_ratio=0 and no data.eval_files",
        )
    epsilon_high = grpo.epsilon if grpo.epsilon_high is None else grpo.epsilon_high
    if grpo.loss_type == "cispo" and epsilon_high < 1:
        # TRL's CISPO clamps the importance weight itself at epsilon_high (ScaleRL's eps_max), not at 1 + epsilon_high
        raise KosovError(
            f"method.grpo.loss_type=cispo with method.grpo.epsilon_high={grpo.epsilon_high}: CISPO caps each token's "
            f"importance weight at epsilon_high, so below 1 it shrinks even on-policy tokens (weight 1) to "
            f"{epsilon_high}; 0.28 is DAPO's clip-higher, the default of the other losses",
            fix="set method.grpo.epsilon_high=5.0 with loss_type=cispo (ScaleRL's eps_max, TRL's recommendation)")
    if cfg.model.trust_remote_code and grpo.beta and builds_reference(cfg) and pinned_hub_revision(cfg.model):
        raise KosovError(
            f"method.grpo.beta={grpo.beta} with a full fine-tune of the remote-code model {cfg.model.name_or_path}: "
            "TRL 1.16 loads the reference model itself and reads its config, remote code included, from the repo's "
            "latest commit, not model.revision",
            fix=f"point model.name_or_path at a local copy of that commit (hf download {cfg.model.name_or_path} "
                f"--revision {cfg.model.revision} --local-dir DIR), train an adapter (peft=lora: the reference is the "
                "base with the adapter off), or set method.grpo.beta=0")
    share = grpo.continuous_batching_memory
    if share is not None and not 0 < share <= 1:
        raise KosovError(f"method.grpo.continuous_batching_memory={share} is not a share of the free GPU memory",
                         fix="use a number in (0, 1], e.g. 0.4, or null for TRL's 0.5")
    backend = generation_backend(cfg, device)
    if grpo.continuous_batching_cuda_graphs and device != "cuda" and backend == "continuous_batching":
        # transformers would turn them off with a warning (no graph backend): kosov says so before anything loads
        raise KosovError("method.grpo.continuous_batching_cuda_graphs=true on the CPU: CUDA graphs need a GPU",
                         fix="leave it null (on by itself with a GPU) or run with device=cuda")
    if backend == "continuous_batching" and cfg.model.attn_implementation == "flex_attention":
        # transformers' continuous batching takes eager, SDPA or FlashAttention ("Implementation flex_attention is
        # not supported for continuous batching"): it would fail at the first generation round, after loading.
        raise KosovError("model.attn_implementation=flex_attention with GRPO generating by transformers continuous "
                         "batching, which does not support FlexAttention",
                         fix="use model.attn_implementation=auto (or sdpa) for GRPO, or method.grpo.generation=vllm "
                             "or transformers")


def generation_batch(cfg: KosovConfig, processes: int) -> int | None:
    """Completions per generation round, over all processes (TRL's generation_batch_size): the recipe's
    generation_batch_size, or optimizer_steps_per_generation steps' worth on this many processes; None: one step's."""
    m, grpo = cfg.method, cfg.method.grpo
    steps = grpo.optimizer_steps_per_generation
    if steps is None:
        return grpo.generation_batch_size
    if steps <= 0:
        raise KosovError(f"method.grpo.optimizer_steps_per_generation={steps} is not a number of optimizer steps",
                         fix="use 1 or more, or null")
    if grpo.generation_batch_size is not None:
        raise KosovError(f"method.grpo.generation_batch_size={grpo.generation_batch_size} and "
                         f"method.grpo.optimizer_steps_per_generation={steps} both size a generation round",
                         fix="set one of them and the other to null, e.g. "
                             "method.grpo.optimizer_steps_per_generation=null with generation_batch_size")
    return steps * m.per_device_train_batch_size * m.gradient_accumulation_steps * processes


def continuous_batching_config(cfg: KosovConfig, device: str) -> dict[str, Any] | None:
    """The recipe's settings for transformers continuous batching (TRL fills in the rest: a 0.5 KV-cache share)."""
    grpo = cfg.method.grpo
    config = {"max_memory_percent": grpo.continuous_batching_memory,
              "use_cuda_graph": cuda_graphs(grpo.continuous_batching_cuda_graphs, device,
                                            quantized=cfg.peft.quantization is not None)}
    return {k: v for k, v in config.items() if v is not None} or None


def cuda_graphs(setting: bool | None, device: str, *, quantized: bool) -> bool | None:
    """Whether continuous batching replays its forward passes as CUDA graphs. null: on a GPU, unless the base is 4-bit
    (3.72x TRL's steps/s against 1.28x without, Qwen3-1.7B shape on an H100, benchmarks/RESULTS.md: decoding is
    bound by kernel launches, which a graph replays at once); off with a 4-bit base, as graphs over bitsandbytes'
    kernels are not measured yet (left to transformers, they would be on wherever flash-attn is installed: it
    switches to FlashAttention first). On the CPU, transformers decides (no graphs there). true / false: as asked."""
    if setting is not None:
        return setting
    if device != "cuda":
        return None
    return not quantized


def builds_reference(cfg: KosovConfig) -> bool:
    """Whether TRL loads a reference model of its own (beta > 0): only for a full fine-tune. A new adapter's reference
    is the base with the adapter off; a starting adapter's (method.init_adapter, sft_stage) a frozen copy of it,
    which TRL adds as the adapter "ref" (not saved in the run's adapter/: train._save_final; a checkpoint holds
    its hash instead: grpo_reference)."""
    return cfg.peft.method == "none" and not cfg.method.init_adapter and not cfg.method.grpo.sft_stage


def pinned_hub_revision(mcfg: Any) -> bool:
    """Whether the model loads from the hub at a revision other than main (a local folder is its own pin)."""
    if mcfg.revision in (None, "main") or mcfg.name_or_path == "tiny-ko":
        return False
    return not Path(mcfg.name_or_path).expanduser().is_dir()


def generation_backend(cfg: KosovConfig, device: str) -> str:
    """How GRPO generates: vLLM (GPU), transformers continuous batching, or plain transformers generate."""
    choice, quantized, grpo = cfg.method.grpo.generation, cfg.peft.quantization is not None, cfg.method.grpo
    sharded = sharded_by()
    remote, pinned = cfg.model.trust_remote_code, pinned_hub_revision(cfg.model)
    if choice == "auto":
        if device != "cuda":
            return "transformers"
        if grpo.vllm_mode == "server":  # the user's `trl vllm-serve`: vLLM (installed here too, TRL's client needs it)
            choice = "vllm"
        elif remote:  # KORMo: neither vLLM nor continuous batching knows a remote-code architecture
            return "transformers"
        elif installed("vllm") and not quantized and not pinned:  # vLLM would load another revision (see below)
            return "vllm"
        else:  # under FSDP, plain generate keeps the GPUs in step (synced_gpus): continuous batching does not
            return "transformers" if sharded == "FSDP" else "continuous_batching"
    asked = ("method.grpo.vllm_mode=server (generation=auto then generates with vLLM)"
             if choice != grpo.generation else f"method.grpo.generation={choice}")
    if remote and choice in ("vllm", "continuous_batching"):
        raise KosovError(
            f"{asked} with model.trust_remote_code=true: neither vLLM nor transformers continuous batching runs a "
            "remote-code architecture (KORMo's); it would fail at the first generation round, after loading",
            fix="set method.grpo.generation=transformers (auto picks it for remote-code models with vllm_mode="
                "colocate), or make KORMo a plain Llama with `kosov convert kormo SRC DST` and train that with "
                "model.trust_remote_code=false")
    if choice == "continuous_batching" and sharded == "FSDP":
        raise KosovError(
            "method.grpo.generation=continuous_batching under FSDP: each GPU decodes its own prompts for as many steps "
            "as they need, while every forward pass gathers the sharded weights from all GPUs, so they wait on each "
            "other (transformers: \"FSDP is not compatible with continuous batching\")",
            fix="use method.grpo.generation=auto (plain generate, kept in step across GPUs, or vLLM when installed), "
                "or train with DDP / DeepSpeed (recipes/accelerate/ddp.yaml, zero2.yaml)")
    if choice == "vllm":
        if device != "cuda":
            raise KosovError("method.grpo.generation=vllm needs a CUDA GPU",
                             fix="use method.grpo.generation=auto or transformers on CPU")
        if not installed("vllm"):
            needs = (asked if grpo.generation == "vllm" else
                     "method.grpo.vllm_mode=server (TRL's client to `trl vllm-serve` needs vLLM here too)")
            raise KosovError(f"{needs}, but vLLM is not installed",
                             fix="pip install 'kosov[vllm]', or generate in this process: method.grpo.vllm_mode="
                                 "colocate with method.grpo.generation=auto or continuous_batching")
        in_process = "transformers" if sharded == "FSDP" else "continuous_batching"  # what auto picks for QLoRA
        if quantized:
            raise KosovError(
                f"{asked} with a 4-bit QLoRA base (peft=qlora): TRL 1.16 pushes the packed 4-bit weights to vLLM "
                "without their quantization state and vLLM fails on their shapes (huggingface/trl#4973, fix not "
                "released)",
                fix=f"generate in the training process: method.grpo.generation={in_process} (or generation=auto with "
                    "method.grpo.vllm_mode=colocate, which picks it for QLoRA); or peft=lora to generate with vLLM")
        if pinned and grpo.vllm_mode == "colocate":
            raise KosovError(
                f"{asked} with {cfg.model.name_or_path} at model.revision={cfg.model.revision}: TRL 1.16 starts vLLM "
                "from the hub id alone (no revision), so vLLM would load the repo's latest commit, not the pinned one",
                fix=f"point model.name_or_path at a local copy of that revision (hf download {cfg.model.name_or_path} "
                    f"--revision {cfg.model.revision} --local-dir DIR, or a `kosov mirror` folder's snapshot of it) "
                    f"and set model.revision=null, or use method.grpo.generation={in_process}")
    return choice


def generation_stops(cfg: KosovConfig, model: Any, tokenizer: Any, backend: str) -> dict[str, Any] | None:
    """Make completions end where training taught turns to end (models.stop_ids), with the model's own ends kept.
    TRL stops generate and continuous batching, and counts a completion as finished rather than cut off (masked by
    mask_truncated_completions), only at model.generation_config.eos_token_id and the tokenizer's eos: on a base
    checkpoint (Qwen3-8B-Base ends text with <|endoftext|>, the recipes end turns with <|im_end|>) it generated past
    the turn to max_completion_length. vLLM reads its ends from the checkpoint's files instead: it gets them as
    stop_token_ids, which TRL puts into vLLM's sampling parameters (colocate and server alike). Returns GRPOConfig's
    generation_kwargs."""
    own = model.generation_config.eos_token_id
    own = [own] if isinstance(own, int) else list(own or [])
    ids = list(dict.fromkeys([*stop_ids(cfg.model, tokenizer), *own]))
    model.generation_config.eos_token_id = ids
    return {"stop_token_ids": ids} if backend == "vllm" else None


def opens_thinking(cfg: KosovConfig, tokenizer: Any) -> bool:
    """Whether the chat template opens the think block in the generation prompt (Qwen3-Thinking-2507), so that
    completions start mid-thought without a <think> of their own (the rewards put it back)."""
    from training.evaluation.thinking import template_opens_thinking

    return template_opens_thinking(tokenizer, "on" if thinking_kwargs(cfg)["enable_thinking"] else "off")


@functools.cache
def trainer_class():
    from trl import GRPOTrainer

    class KosovGRPOTrainer(GRPOTrainer):
        """TRL's GRPOTrainer; its continuous-batching generation keeps the policy's dtypes (kept_dtypes)."""

        def _generate_single_turn(self, *args, **kwargs):
            if not self.use_transformers_continuous_batching:
                return super()._generate_single_turn(*args, **kwargs)
            with kept_dtypes(self.model):
                return super()._generate_single_turn(*args, **kwargs)

    return KosovGRPOTrainer


def build_trainer(cfg: KosovConfig, model: Any, tokenizer: Any, data: TrainData, peft_config: Any,
                  common: dict[str, Any]):
    from accelerate import PartialState
    from trl import GRPOConfig

    grpo = cfg.method.grpo
    device = "cpu" if common["use_cpu"] else "cuda"
    backend = generation_backend(cfg, device)
    generation_kwargs = generation_stops(cfg, model, tokenizer, backend)  # before TRL reads the model's ends
    reward_funcs, weights = build_rewards(cfg.rewards, grpo.max_completion_length, opens_thinking(cfg, tokenizer),
                                          parsed=parses_responses(tokenizer))
    from training.grpo_reference import record_reference, reference_init_kwargs  # transformers: not at import

    has_eval = data.eval is not None
    run = Path(common["output_dir"]).parent  # the run folder: checkpoints/ (common's output_dir), provenance.json
    args = GRPOConfig(
        **common,
        num_generations=grpo.num_generations,
        max_completion_length=grpo.max_completion_length,
        temperature=grpo.temperature,
        top_p=grpo.top_p,
        beta=grpo.beta,
        loss_type=grpo.loss_type,
        scale_rewards=grpo.scale_rewards,
        epsilon=grpo.epsilon,
        epsilon_high=grpo.epsilon_high,
        num_iterations=grpo.num_iterations,
        mask_truncated_completions=grpo.mask_truncated_completions,
        reward_weights=weights,
        chat_template_kwargs=thinking_kwargs(cfg),
        generation_kwargs=generation_kwargs,
        trust_remote_code=cfg.model.trust_remote_code,
        model_init_kwargs=reference_init_kwargs(cfg, model, peft_config, run),
        use_vllm=backend == "vllm",
        use_transformers_continuous_batching=backend == "continuous_batching",
        transformers_continuous_batching_config=continuous_batching_config(cfg, device),
        generation_batch_size=generation_batch(cfg, PartialState().num_processes),
        vllm_mode=grpo.vllm_mode,
        # vLLM reserves KV cache for its context window: the model's (40k for Qwen3) would waste most of it
        vllm_max_model_length=grpo.vllm_max_model_length or grpo.max_prompt_length + grpo.max_completion_length,
        vllm_gpu_memory_utilization=grpo.vllm_gpu_memory_utilization,
        vllm_enable_sleep_mode=grpo.vllm_enable_sleep_mode,
        vllm_server_host=grpo.vllm_server_host,
        vllm_server_port=grpo.vllm_server_port,
        log_completions=grpo.log_completions,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=cfg.method.eval_steps if has_eval else None,
        # the starting policy's eval reward, the first point of the curve (as SFT's base eval loss): in every run
        # that starts from step 0; one resumed from a checkpoint has it in the checkpoint's history
        eval_on_start=has_eval and not resumes_from_checkpoint(common),
    )
    trainer = trainer_class()(model=model, reward_funcs=reward_funcs, args=args, train_dataset=data.train,
                              eval_dataset=data.eval, processing_class=tokenizer, peft_config=peft_config)
    if cfg.peft.quantization is not None:
        keep_trainable_fp32(trainer.model)  # before train() builds the optimizer
    record_reference(trainer, run)
    return trainer
