"""GRPO half of train_throughput.py: (a) TRL's GRPOTrainer with its defaults (transformers generate) against
(b) kosov's GRPO recipe (qwen3-1.7b-ko-grpo; qwen3-8b-ko-qlora-grpo with --qlora; kormo-10b-ko-grpo for KORMo's
--config): vLLM in the training process when installed, else transformers continuous batching. Same random-init
model (in NF4 for both with --qlora), same Korean math prompts, group size, completion length and LoRA."""

from __future__ import annotations

import tempfile
import weakref
from pathlib import Path
from typing import Any


def _model_folder(args: Any, tokenizer: Any, device: str) -> str:
    """GRPO's generation engines load the model by path (vLLM its tokenizer too): save both once."""
    from benchmarks.shapes import saved_model
    from training.schema import TinyModelConfig
    from training.tiny_ko import tiny_model_dir

    if args.model == "tiny-ko" and not args.config:
        return str(tiny_model_dir(TinyModelConfig()))
    folder = saved_model(args.model, args.config, device)
    tokenizer.save_pretrained(folder)
    return folder


def _generated(trainer: Any, warmup: int, steps: int) -> float:
    """Completion tokens the timed steps trained on: completions per step x their mean length x steps (TRL logs
    the length only on steps that generated, so average over those)."""
    per_step = trainer.args.per_device_train_batch_size * trainer.args.gradient_accumulation_steps
    lengths = [h["completions/mean_length"] for h in trainer.state.log_history
               if "completions/mean_length" in h and h.get("step", 0) > warmup]
    return sum(lengths) / len(lengths) * per_step * steps if lengths else float("nan")


def _timed(trainer: Any, timer: Any, args: Any) -> dict[str, float]:
    from benchmarks.measure import result

    trainer.train()
    row = result(timer, trainer, args.steps)
    row["generated_tokens_per_s"] = _generated(trainer, args.warmup, args.steps) / (args.steps / row["steps_per_s"])
    return row


def run_trl_grpo(args: Any, cfg: Any, folder: str, device: str, data: Any, tokenizer: Any) -> dict[str, float]:
    """(a) TRL's GRPOTrainer with its defaults (generate(), activation checkpointing, SDPA), the recipe's LoRA."""
    from trl import GRPOConfig, GRPOTrainer

    from benchmarks.shapes import load_saved
    from benchmarks.measure import StepTimer, release
    from training.adapters import lora_config
    from training.rewards import language_consistency

    model = load_saved(folder, device, args.qlora, "sdpa")
    timer = StepTimer(args.warmup)
    config = GRPOConfig(output_dir=tempfile.mkdtemp(), max_steps=args.warmup + args.steps, logging_steps=1,
                        num_generations=args.group, max_completion_length=args.completion,
                        per_device_train_batch_size=args.group,
                        gradient_accumulation_steps=cfg.method.gradient_accumulation_steps,
                        report_to=[], save_strategy="no", use_cpu=device == "cpu", bf16=device == "cuda")
    trainer = GRPOTrainer(model=model, reward_funcs=[language_consistency], args=config, train_dataset=data.train,
                          processing_class=tokenizer, peft_config=lora_config(args.peft, model),
                          callbacks=[timer.callback])
    row = _timed(trainer, timer, args)
    ref = weakref.ref(model)
    del trainer, model
    return row | release(ref)


def run_kosov_grpo(args: Any, cfg: Any, folder: str, device: str, data: Any, tokenizer: Any) -> dict[str, float]:
    """(b) kosov's recipe: its generation engine, rewards, attention, kernels, checkpointing, trainer arguments."""
    from benchmarks.shapes import load_saved
    from benchmarks.measure import StepTimer, release
    from training import grpo
    from training.adapters import lora_config
    from training.run_dir import RunDir
    from training.train import trainer_args

    model = load_saved(folder, device, args.qlora, args.attn)
    timer = StepTimer(args.warmup)
    common = trainer_args(cfg, RunDir(Path(tempfile.mkdtemp())), device, [], model.config.model_type)
    common.update(save_strategy="no")
    trainer = grpo.build_trainer(cfg, model, tokenizer, data, lora_config(args.peft, model), common)
    trainer.add_callback(timer.callback)
    row = _timed(trainer, timer, args)
    ref = weakref.ref(model)
    del trainer, model
    return row | release(ref)


def run_grpo(args: Any, tokenizer: Any, device: str) -> tuple[dict[str, dict[str, Any]], str]:
    """(the two rows of the table, what kosov's side did differently in words). args.recipe, args.peft and
    args.attn come from train_throughput.resolve_recipe."""
    from benchmarks.measure import run_side
    from benchmarks.report import A, B
    from training import grpo
    from training.recipes import compose

    folder = _model_folder(args, tokenizer, device)
    recipe = compose([f"experiment={args.recipe}", "tracking=none"]).method
    # The recipe's optimizer step (one prompt's group per micro-step, its gradient accumulation) and its
    # generation rounds in optimizer steps; both trainers train the same completions per step.
    accumulation = recipe.gradient_accumulation_steps
    rounds = (recipe.grpo.generation_batch_size or 0) // (recipe.per_device_train_batch_size * accumulation) or 1
    # time whole generation rounds only: a round's first step generates, the others reuse it
    args.warmup, args.steps = (-(-n // rounds) * rounds for n in (args.warmup, args.steps))
    cfg = compose([f"experiment={args.recipe}", "model=tiny-ko", "tracking=none",
                   f"method.grpo.num_generations={args.group}", f"method.grpo.max_completion_length={args.completion}",
                   f"method.per_device_train_batch_size={args.group}",
                   f"method.gradient_accumulation_steps={accumulation}",
                   f"method.grpo.generation_batch_size={rounds * args.group * accumulation}", "data.max_rows=256"])
    cfg.method.max_steps, cfg.method.logging_steps = args.warmup + args.steps, 1
    data = grpo.build_data(cfg, tokenizer, tokenizer.eos_token_id)
    rows = {A: run_side(A, run_trl_grpo, args, cfg, folder, device, data, tokenizer)}
    rows[B] = run_side(B, run_kosov_grpo, args, cfg, folder, device, data, tokenizer)
    backend = grpo.generation_backend(cfg, device)
    note = (f"{args.group * accumulation} completions per optimizer step for both ({accumulation} prompts); TRL "
            f"generates them each step with generate(), kosov with {backend}, "
            f"{rounds} step(s) per generation round, {args.attn}, activation checkpointing "
            f"{'on' if cfg.method.activation_checkpointing else 'off'} (TRL's default: on); "
            f"{args.warmup} warm-up + {args.steps} timed steps")
    if backend in ("continuous_batching", "vllm"):
        note += ("; kosov's peak memory includes the generation engine's KV cache, reserved as a share of the GPU's "
                 "memory (method.grpo.continuous_batching_memory / vllm_gpu_memory_utilization): not comparable")
    return rows, note
