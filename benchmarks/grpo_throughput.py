"""GRPO half of train_throughput.py: (a) TRL's GRPOTrainer with its defaults (transformers generate) against
(b) kosov's GRPO recipe (qwen3-1.7b-ko-grpo; qwen3-8b-ko-qlora-grpo with --qlora; kormo-10b-ko-grpo for KORMo's
--config): vLLM in the training process when installed, else transformers continuous batching. Same random-init
model (in NF4 for both with --qlora), same Korean math prompts, group size, completion length and LoRA."""

from __future__ import annotations

import tempfile
import weakref
from pathlib import Path
from typing import Any, Callable


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


def _timed(trainer: Any, timer: Any, warmup: int, steps: int) -> dict[str, float]:
    from benchmarks.measure import result

    trainer.train()
    row = result(timer, trainer, steps)
    row["generated_tokens_per_s"] = _generated(trainer, warmup, steps) / (steps / row["steps_per_s"])
    return row


def run_trl_grpo(args: Any, cfg: Any, folder: str, device: str, data: Any, tokenizer: Any,
                 warmup: int, steps: int) -> dict[str, float]:
    """(a) TRL's GRPOTrainer with its defaults (generate(), activation checkpointing, SDPA), the recipe's LoRA."""
    from trl import GRPOConfig, GRPOTrainer

    from benchmarks.shapes import load_saved
    from benchmarks.measure import StepTimer, release
    from training.adapters import lora_config
    from training.rewards import language_consistency

    model = load_saved(folder, device, args.qlora, "sdpa")
    timer = StepTimer(warmup)
    config = GRPOConfig(output_dir=tempfile.mkdtemp(), max_steps=warmup + steps, logging_steps=1,
                        num_generations=args.group, max_completion_length=args.completion,
                        per_device_train_batch_size=args.group,
                        gradient_accumulation_steps=cfg.method.gradient_accumulation_steps,
                        report_to=[], save_strategy="no", use_cpu=device == "cpu", bf16=device == "cuda")
    trainer = GRPOTrainer(model=model, reward_funcs=[language_consistency], args=config, train_dataset=data.train,
                          processing_class=tokenizer, peft_config=lora_config(args.peft, model),
                          callbacks=[timer.callback])
    row = _timed(trainer, timer, warmup, steps)
    ref = weakref.ref(model)
    del trainer, model
    return row | release(ref)


def run_kosov_grpo(args: Any, cfg: Any, folder: str, device: str, data: Any, tokenizer: Any, attn: str,
                   warmup: int, steps: int) -> dict[str, float]:
    """(b) kosov's recipe: its generation engine, rewards, attention, kernels, checkpointing, trainer arguments
    (c, d, ...: with a --variant's overrides)."""
    from benchmarks.shapes import load_saved
    from benchmarks.measure import StepTimer, release
    from training import grpo
    from training.adapters import lora_config
    from training.run_dir import RunDir
    from training.train import trainer_args

    model = load_saved(folder, device, args.qlora, attn)
    timer = StepTimer(warmup)
    common = trainer_args(cfg, RunDir(Path(tempfile.mkdtemp())), device, [], model.config.model_type)
    common.update(save_strategy="no")
    trainer = grpo.build_trainer(cfg, model, tokenizer, data, lora_config(args.peft, model), common)
    trainer.add_callback(timer.callback)
    row = _timed(trainer, timer, warmup, steps)
    ref = weakref.ref(model)
    del trainer, model
    return row | release(ref)


def _whole_rounds(n: int, rounds: int) -> int:
    return -(-n // rounds) * rounds


def run_grpo(args: Any, tokenizer: Any, device: str, rows: dict[str, dict[str, Any]],
             publish: Callable[[list[str], str], None]) -> None:
    """Measure the baseline and each kosov side into rows, publishing (a, b) as soon as b is measured and each
    variant against (a) after it, with what the side did in words. args.recipe, args.peft, args.attn and
    args.sides come from train_throughput.resolve_recipe."""
    from benchmarks.measure import run_side
    from benchmarks.report import A, B, row_letter
    from training import grpo
    from training.recipes import compose

    folder = _model_folder(args, tokenizer, device)
    accumulation = compose([f"experiment={args.recipe}", "tracking=none"]).method.gradient_accumulation_steps
    plans = []  # (row, its cfg, attention, optimizer steps per generation round)
    for name, overrides, attn in args.sides:  # a variant cannot change the batch: resolve_recipe refuses it
        composed = compose([f"experiment={args.recipe}", "tracking=none", *overrides])
        recipe = composed.method
        # The recipe's optimizer step (one prompt's group per micro-step, its gradient accumulation) and its
        # generation rounds in optimizer steps; every trainer trains the same completions per optimizer step, each
        # completion once (num_iterations=1, TRL's default: reusing them would raise steps/s without generating).
        per_step = recipe.per_device_train_batch_size * accumulation  # on one GPU, as the benchmark runs
        rounds = steps_per_generation = (grpo.generation_batch(composed, 1) or per_step) // per_step
        # A random-init model never ends a completion: the recipe's mask_truncated_completions would mask every one
        # (zero loss, zero gradient: an update that did nothing). TRL's default, False, trains them all on both sides.
        cfg = compose([f"experiment={args.recipe}", "model=tiny-ko", "tracking=none", *overrides,
                       f"method.grpo.num_generations={args.group}", f"method.grpo.max_completion_length={args.completion}",
                       f"method.per_device_train_batch_size={args.group}",
                       f"method.gradient_accumulation_steps={accumulation}",
                       f"method.grpo.optimizer_steps_per_generation={steps_per_generation}",
                       "method.grpo.generation_batch_size=null", "method.grpo.num_iterations=1",
                       "method.grpo.mask_truncated_completions=false", "data.max_rows=256"])
        plans.append((name, overrides, cfg, attn, rounds))
    # TRL generates every step; kosov's sides are timed over whole generation rounds (a round's first step
    # generates, the others reuse it): their warm-up and timed steps are rounded up to whole rounds each.
    base = plans[0][2]
    base.method.max_steps, base.method.logging_steps = args.warmup + args.steps, 1
    data = grpo.build_data(base, tokenizer, tokenizer.eos_token_id)
    rows[A] = run_side(A, run_trl_grpo, args, base, folder, device, data, tokenizer, args.warmup, args.steps)
    common = (f"{args.group * accumulation} completions per optimizer step on every side ({accumulation} prompts), "
              f"each trained once (num_iterations 1), truncated completions trained (a random model never stops); "
              f"a: TRL generates them each step with generate(), activation checkpointing on, {args.warmup} warm-up + "
              f"{args.steps} timed steps")
    for name, overrides, cfg, attn, rounds in plans:
        warmup, steps = _whole_rounds(args.warmup, rounds), _whole_rounds(args.steps, rounds)
        cfg.method.max_steps, cfg.method.logging_steps = warmup + steps, 1
        rows[name] = run_side(name, run_kosov_grpo, args, cfg, folder, device, data, tokenizer, attn, warmup, steps,
                              tolerate=True)
        backend = grpo.generation_backend(cfg, device)
        if backend == "continuous_batching":
            graphs = (grpo.continuous_batching_config(cfg, device) or {}).get("use_cuda_graph")
            backend += {True: " with CUDA graphs", False: " without CUDA graphs",
                        None: " (CUDA graphs: transformers decides)"}[graphs]
        side = (f"{row_letter(name)}: {backend}, {rounds} step(s) per generation round, {attn}, activation "
                f"checkpointing {'on' if cfg.method.activation_checkpointing else 'off'}, {warmup} warm-up + "
                f"{steps} timed steps")
        if backend.startswith(("continuous_batching", "vllm")):
            side += (" (its peak memory includes the generation engine's KV cache, reserved as a share of the GPU's "
                     "memory: method.grpo.continuous_batching_memory / vllm_gpu_memory_utilization; not comparable)")
        publish([A, name], f"{common}; {side}" if name == B else f"the recipe with {' '.join(overrides)}; {side}")
