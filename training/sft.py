"""Supervised fine-tuning through TRL's SFTTrainer: the SFT data step and the trainer, nothing else.

    kosov train experiment=smoke-sft

kosov renders the chat rows itself (training/chat_render.py) so the loss covers exactly what the model
writes at inference; TRL gets token ids with a completion mask and does labels, packing and training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.schema import KosovConfig
from training.data_rows import TrainData
from training.sft_data import build_sft_data


def preflight(cfg: KosovConfig, device: str, processes: int) -> None:
    """Nothing SFT-specific to check before the model loads (GPU-only options are checked in models.py)."""


def build_data(cfg: KosovConfig, tokenizer: Any, end_token_id: int, folder: Path | None = None) -> TrainData:
    """folder: where the main process renders the rows for every process (training/rendered_store.py)."""
    return build_sft_data(cfg, tokenizer, end_token_id, folder)


def build_trainer(cfg: KosovConfig, model: Any, tokenizer: Any, data: TrainData, peft_config: Any,
                  common: dict[str, Any]):
    from trl import SFTConfig, SFTTrainer

    options = cfg.method.sft
    has_eval = data.eval is not None
    args = SFTConfig(
        **common,
        # Packing cuts blocks of max_length; otherwise rows are already checked against it (sft_data), and
        # TRL wants max_length unset for padding-free batches it would not truncate.
        max_length=None if options.padding_free and not options.packing else options.max_length,
        packing=options.packing,
        padding_free=options.padding_free,
        completion_only_loss=True,  # our rows carry a completion_mask: loss on the model's own tokens only
        eval_strategy="steps" if has_eval else "no",
        eval_steps=cfg.method.eval_steps if has_eval else None,
        eval_on_start=has_eval and not cfg.resume,
    )
    return SFTTrainer(model=model, args=args, train_dataset=data.train, eval_dataset=data.eval,
                      processing_class=tokenizer, peft_config=peft_config)
