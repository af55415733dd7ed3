"""SFT data: chat rows from the recipe's files or hub dataset (training/data_rows.py), rendered into token
ids with the model's chat template (see chat_render). Every user error names the file and line."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from data_tools.chat_io import ChatRow
from training.chat_render import TemplateMismatch, render_conversation
from training.schema import KosovConfig
from training.data_rows import TrainData, fits, free_of, load_rows, rows_summary, special_tokens, split_eval
from training.errors import KosovError

def render_rows(rows: list[ChatRow], tokenizer: Any, cfg: KosovConfig, end_token_id: int, desc: str
                ) -> tuple[dict[str, list], Counter, list[ChatRow]]:
    """Token ids and completion masks for the rows; overlong rows fail or are skipped by data.on_overlong.
    Returns the columns, the skipped rows by reason, and the rows kept (what the data summary counts)."""
    sft, max_length = cfg.method.sft, cfg.method.sft.max_length
    columns: dict[str, list] = {"input_ids": [], "completion_mask": []}
    skipped: Counter = Counter()
    kept: list[ChatRow] = []
    special = special_tokens(tokenizer)
    for row in tqdm(rows, desc=desc, unit="row", disable=len(rows) < 500):
        if not free_of(row, special, cfg.data.on_bad_row, skipped):
            continue
        try:
            samples = render_conversation(row.messages, tokenizer, end_token_id=end_token_id,
                                          thinking=cfg.model.thinking, turns=sft.turns)
        except TemplateMismatch as e:  # a row the template cannot render as inference would: a bad row
            if cfg.data.on_bad_row == "skip":
                skipped["template mismatch"] += 1
                continue
            raise KosovError(str(e), where=row.where,
                             fix="fix or remove the row, or set data.on_bad_row=skip to drop such rows") from None
        longest = max(len(s.input_ids) for s in samples)
        if not fits(row, longest, max_length, "method.sft.max_length", cfg.data.on_overlong, skipped):
            continue
        kept.append(row)
        for s in samples:  # as numpy arrays: a Python list costs ~50 bytes a token (ids and mask), these 9
            columns["input_ids"].append(np.asarray(s.input_ids, dtype=np.int64))
            columns["completion_mask"].append(np.asarray(s.completion_mask, dtype=np.int8))
    return columns, skipped, kept


def build_sft_data(cfg: KosovConfig, tokenizer: Any, end_token_id: int) -> TrainData:
    import datasets

    train_report, eval_report = load_rows(cfg)
    train_rows, eval_rows = split_eval(train_report, eval_report, cfg.data.eval_ratio, cfg.seed)
    train_cols, skipped, train_kept = render_rows(train_rows, tokenizer, cfg, end_token_id, "Rendering train rows")
    eval_cols, eval_skipped, eval_kept = render_rows(eval_rows, tokenizer, cfg, end_token_id, "Rendering eval rows")
    if not train_cols["input_ids"]:
        reasons = skipped + train_report.skipped
        if not reasons:
            raise KosovError("no training rows to train on", fix="check data.train_files (or data.hub_id)")
        counts = ", ".join(f"{reason}: {n}" for reason, n in reasons.most_common())
        raise KosovError(f"every training row was skipped ({counts})",
                         fix="raise method.sft.max_length" if set(reasons) == {"longer than max_length"} else
                         "fix the rows (data.on_bad_row=error names each one) or raise method.sft.max_length")
    # the rows that trained (and were held out) and their licenses: not those rendering then skipped
    summary = rows_summary(cfg, train_report, eval_report, train_kept, eval_kept, skipped + eval_skipped)
    summary.update({
        "train_sequences": len(train_cols["input_ids"]),
        "eval_sequences": len(eval_cols["input_ids"]),
        "train_tokens": sum(map(len, train_cols["input_ids"])),
        "train_trained_tokens": sum(int(mask.sum()) for mask in train_cols["completion_mask"]),
    })
    train = datasets.Dataset.from_dict(train_cols)
    evals = datasets.Dataset.from_dict(eval_cols) if eval_cols["input_ids"] else None
    return TrainData(train=train, eval=evals, summary=summary)
