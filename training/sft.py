"""Supervised fine-tuning through TRL's SFTTrainer: the SFT data step and the trainer, nothing else.

    kosov train experiment=smoke-sft

kosov renders the chat rows itself (training/chat_render.py) so the loss covers exactly what the model
writes at inference; TRL gets token ids with a completion mask and does labels, packing and training.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.schema import KosovConfig
from training.data_rows import TrainData
from training.sft_data import build_sft_data

log = logging.getLogger(__name__)

FEW_STEPS = 20  # an epoch-based run with fewer optimizer steps than this is warned about (few_steps)


def preflight(cfg: KosovConfig, device: str, processes: int) -> None:
    """Nothing SFT-specific to check before the model loads (GPU-only options are checked in models.py)."""


def build_data(cfg: KosovConfig, tokenizer: Any, end_token_id: int, folder: Path | None = None,
               loaded: Callable[[list[dict[str, Any]]], None] | None = None) -> TrainData:
    """folder: where the main process renders the rows for every process (training/rendered_store.py); loaded:
    called with the sources read, before they render (a resume's check of the data)."""
    return build_sft_data(cfg, tokenizer, end_token_id, folder, loaded)


def keeps_blocks_apart(attention: str | None) -> bool:
    """Whether this attention kernel attends within each sequence of a padding-free row by itself: every
    FlashAttention transformers knows (flash_attention_2 / 3 / 4 and the kernels-hub flash kernels, all fed the
    sequence boundaries as cu_seq_lens) and flex_attention (a block mask: blocks with nothing to attend are
    skipped). SDPA and eager get a dense block-diagonal mask over the whole row and compute every score in it."""
    from transformers.utils.generic import is_flash_attention_requested

    return bool(attention) and (attention == "flex_attention"
                                or is_flash_attention_requested(requested_attention_implementation=attention))


def batch_sizes(cfg: KosovConfig, attention: str | None) -> dict[str, int]:
    """The per-device batches and accumulation the Trainer gets: the recipe's, unless SFT packs for an attention
    kernel that cannot keep blocks apart. TRL packs padding-free: a micro-batch of 8 blocks of 4096 becomes one
    row of 32k tokens, and SDPA then computes 8x the attention scores of the 8 blocks alone, behind a 1 GiB mask.
    There the Trainer takes one block per forward and the recipe's blocks per device as accumulation steps: the
    same blocks in each optimizer step, and the same loss (the Trainer divides by the step's trained tokens,
    num_items_in_batch, whatever the micro-batches). The eval batch too: eval packs when training does."""
    m = cfg.method
    sizes = {"per_device_train_batch_size": m.per_device_train_batch_size,
             "gradient_accumulation_steps": m.gradient_accumulation_steps,
             "per_device_eval_batch_size": m.per_device_eval_batch_size}
    if m.name != "sft" or m.sft is None or not m.sft.packing or keeps_blocks_apart(attention):
        return sizes
    return {"per_device_train_batch_size": 1,
            "gradient_accumulation_steps": m.gradient_accumulation_steps * m.per_device_train_batch_size,
            "per_device_eval_batch_size": 1}


def _say_batch_sizes(cfg: KosovConfig, attention: str | None, sizes: dict[str, int]) -> None:
    m = cfg.method
    train, evals = m.per_device_train_batch_size, m.per_device_eval_batch_size
    if (sizes["per_device_train_batch_size"], sizes["per_device_eval_batch_size"]) == (train, evals):
        return
    said = (f"1 block per forward x {sizes['gradient_accumulation_steps']} accumulation steps (the recipe's "
            f"{train} blocks per device x {m.gradient_accumulation_steps}), since {attention} would attend over all "
            f"{train} blocks flattened into one row; FlashAttention 2 or flex_attention keep {train}" if train > 1
            else "")
    if evals > 1:
        said += ("; " if said else "") + f"evaluation 1 block per forward (the recipe's {evals})"
    log.info("packing with %s: %s", attention, said)


def few_steps(cfg: KosovConfig, trainer: Any, data: TrainData) -> str | None:
    """What to tell the user when an epoch-based run will take few optimizer steps (fewer than FEW_STEPS, or than
    eval_steps), counted as the Trainer will (transformers' set_initial_training_values): per process
    ceil(ceil(items / per_device) / processes) micro-batches (accelerate shards whole batches, evenly),
    ceil(that / accumulation) optimizer steps per epoch, at least 1, times the epochs, rounded up; from the
    dataset's length, without building the dataloader early. None: nothing to say, and always when method.max_steps
    is set: the user chose the count (the smoke runs and tests)."""
    m, args = cfg.method, trainer.args
    if m.max_steps > 0 or not hasattr(trainer.train_dataset, "__len__"):
        return None
    items, processes = len(trainer.train_dataset), args.world_size
    batches = math.ceil(math.ceil(items / args.per_device_train_batch_size) / processes)
    per_epoch = max(math.ceil(batches / args.gradient_accumulation_steps), 1)
    steps = math.ceil(m.num_train_epochs * per_epoch)
    no_eval = data.eval is not None and steps < m.eval_steps
    if steps >= FEW_STEPS and not no_eval:
        return None
    summary, unit = data.summary, "blocks" if m.sft.packing else "sequences"
    what = (f"{items} blocks of up to {m.sft.max_length} tokens (from {summary.get('train_sequences')} sequences, "
            if m.sft.packing else f"{items} sequences (") + f"{summary.get('train_rows')} rows)"
    per_step = args.per_device_train_batch_size * processes * args.gradient_accumulation_steps
    epochs = f"{m.num_train_epochs:g} epoch" + ("" if m.num_train_epochs == 1 else "s")
    said = [f"this run will take only {_count(steps, 'optimizer step')}: {what}, {per_step} {unit} a step "
            f"(per_device_train_batch_size {m.per_device_train_batch_size} x {_count(processes, 'process')} x "
            f"gradient_accumulation_steps {m.gradient_accumulation_steps}), {_count(per_epoch, 'step')} an epoch x "
            f"{epochs}"]
    warmup = min(math.ceil(m.warmup_steps * steps) if m.warmup_steps < 1 else int(m.warmup_steps), steps)
    if warmup:
        said.append(f"warmup takes {warmup}, the first at learning rate 0")
    never = [f"eval_steps {m.eval_steps}"] if no_eval else []
    never += [f"save_steps {m.save_steps}"] if steps < m.save_steps else []
    if never:
        said.append(" and ".join(never) + " never reached" + (" (eval runs only before and after training)"
                                                               if no_eval else ""))
    return ("; ".join(said) + ". Fine for a smoke test; for a real run give it more data (data.train_files=[...]) "
            "or more steps (method.num_train_epochs, or a smaller method.per_device_train_batch_size or "
            "method.gradient_accumulation_steps)")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "es" if noun.endswith("s") else "s")


def build_trainer(cfg: KosovConfig, model: Any, tokenizer: Any, data: TrainData, peft_config: Any,
                  common: dict[str, Any]):
    from trl import SFTConfig, SFTTrainer

    options = cfg.method.sft
    has_eval = data.eval is not None
    attention = getattr(model.config, "_attn_implementation", None)
    sizes = batch_sizes(cfg, attention)
    _say_batch_sizes(cfg, attention, sizes)
    if options.padding_free and not options.packing and not keeps_blocks_apart(attention) \
            and sizes["per_device_train_batch_size"] > 1:
        log.warning("method.sft.padding_free=true with %s: TRL flattens each batch of %d sequences into one row, "
                    "over which %s computes every attention score (%dx the attention of the sequences alone); use "
                    "model.attn_implementation=flash_attention_2 or flex_attention, or method.sft.packing=true "
                    "(kosov then feeds SDPA one block at a time)", attention, sizes["per_device_train_batch_size"],
                    attention, sizes["per_device_train_batch_size"])
    args = SFTConfig(
        **{**common, **sizes},
        # Packing cuts blocks of max_length; otherwise rows are already checked against it (sft_data), and
        # TRL wants max_length unset for padding-free batches it would not truncate.
        max_length=None if options.padding_free and not options.packing else options.max_length,
        packing=options.packing,
        padding_free=options.padding_free,
        completion_only_loss=True,  # our rows carry a completion_mask: loss on the model's own tokens only
        eval_strategy="steps" if has_eval else "no",
        eval_steps=cfg.method.eval_steps if has_eval else None,
        # the base model's eval loss, the first point of the curve: in every run that starts from step 0 (resume=true
        # on a folder with no checkpoint yet too); one resumed from a checkpoint has it in the checkpoint's history
        eval_on_start=has_eval and not resumes_from_checkpoint(common),
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=data.train, eval_dataset=data.eval,
                         processing_class=tokenizer, peft_config=peft_config)
    warnings = [few_steps(cfg, trainer, data), full_finetune_rate(cfg)]  # the set as it trains: packed by now
    for warning in filter(None, warnings if trainer.is_world_process_zero() else []):
        log.warning(warning)
    return trainer


def resumes_from_checkpoint(common: dict[str, Any]) -> bool:
    """Whether trainer.train will continue from a checkpoint: the one prepare_run_dir picked as run.resume_from, which
    train.trainer_args passes on as resume_from_checkpoint (a caller that builds its own arguments starts a new run).
    resume=true alone is not: a recipe that always resumes (SLURM requeues) sets it on its first start too, and a run
    killed before its first checkpoint starts again from step 0."""
    return common.get("resume_from_checkpoint") is not None


FULL_FINETUNE_MAX_LR = 5e-5  # LoRA recipes train at 1e-4 to 2e-4; every weight at that rate forgets or diverges


def full_finetune_rate(cfg: KosovConfig) -> str | None:
    """A full fine-tune (peft=none) at a LoRA learning rate: the LoRA recipes' 1e-4 moves every weight of the base
    ten times further than the ~1e-5 full fine-tunes take."""
    rate = cfg.method.learning_rate
    if cfg.peft.method != "none" or rate <= FULL_FINETUNE_MAX_LR:
        return None
    return (f"a full fine-tune (peft=none) at method.learning_rate={rate:g}, a LoRA rate: every weight of the base "
            "moves at it, which tends to make the model forget what it knew or diverge; full fine-tunes take about "
            "1e-5 (method.learning_rate=1e-5)")
