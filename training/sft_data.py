"""SFT data: chat rows from the recipe's files or hub dataset, checked, split, and rendered into token ids
with the model's chat template (see chat_render). Every user error names the file and line."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from data_tools.chat_io import BadRowError, ChatFileReport, ChatRow, load_chat_files, load_chat_hub
from training.chat_render import TemplateMismatch, render_conversation
from training.config import KosovConfig, resolve_path
from training.errors import KosovError


@dataclass
class SFTData:
    train: Any  # datasets.Dataset with input_ids and completion_mask
    eval: Any | None
    summary: dict[str, Any] = field(default_factory=dict)  # counts for provenance and metrics


def _bad_row(e: BadRowError) -> KosovError:
    return KosovError(f"{e.reason}: {e.detail}", where=e.where, fix=e.fix)


def load_rows(cfg: KosovConfig) -> tuple[ChatFileReport, ChatFileReport | None]:
    """The train rows and, when the recipe names eval files, the eval rows."""
    data = cfg.data
    try:
        if data.hub_id:
            train = _load_hub(cfg)
        else:
            train = load_chat_files([resolve_path(p) for p in data.train_files], data.on_bad_row, data.max_rows)
        evals = (load_chat_files([resolve_path(p) for p in data.eval_files], data.on_bad_row)
                 if data.eval_files else None)
    except BadRowError as e:
        raise _bad_row(e) from None
    except FileNotFoundError as e:
        raise KosovError(str(e), fix="check data.train_files / data.eval_files (paths are relative to the "
                                     "directory you run kosov from)") from None
    if not train.rows:
        raise KosovError(f"no usable training rows in data '{data.name}' (skipped: {dict(train.skipped)})")
    return train, evals


def _load_hub(cfg: KosovConfig) -> ChatFileReport:
    data = cfg.data
    try:
        return load_chat_hub(data.hub_id, split=data.hub_split, config=data.hub_config, revision=data.hub_revision,
                             on_bad_row=data.on_bad_row, max_rows=data.max_rows)
    except BadRowError:
        raise
    except Exception as e:  # network, auth, unknown id: datasets raises many types
        raise KosovError(
            f"could not load the dataset '{data.hub_id}' (split {data.hub_split!r}): {type(e).__name__}: {e}",
            fix="check the id and split, your network and HF_TOKEN, or download it to local files and use "
                "data.train_files",
        ) from None


def split_eval(rows: list[ChatRow], ratio: float, seed: int) -> tuple[list[ChatRow], list[ChatRow]]:
    """Hold out whole conversations (never turns of one conversation on both sides)."""
    if ratio <= 0 or len(rows) < 2:
        return rows, []
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_eval = max(1, round(len(rows) * ratio))
    held = set(order[:n_eval])
    return [r for i, r in enumerate(rows) if i not in held], [rows[i] for i in sorted(held)]


def render_rows(rows: list[ChatRow], tokenizer: Any, cfg: KosovConfig, end_token_id: int, desc: str
                ) -> tuple[dict[str, list], Counter]:
    """Token ids and completion masks for the rows; overlong rows fail or are skipped by data.on_overlong."""
    sft, max_length = cfg.method.sft, cfg.method.sft.max_length
    columns: dict[str, list] = {"input_ids": [], "completion_mask": []}
    skipped: Counter = Counter()
    for row in tqdm(rows, desc=desc, unit="row", disable=len(rows) < 500):
        try:
            samples = render_conversation(row.messages, tokenizer, end_token_id=end_token_id,
                                          thinking=cfg.model.thinking, turns=sft.turns)
        except TemplateMismatch as e:
            raise KosovError(str(e), where=row.where) from None
        longest = max(len(s.input_ids) for s in samples)
        if longest > max_length:
            if cfg.data.on_overlong == "skip":
                skipped["longer than max_length"] += 1
                continue
            raise KosovError(
                f"the row renders to {longest} tokens, more than method.sft.max_length={max_length}",
                where=row.where,
                fix="raise method.sft.max_length, shorten the row, or set data.on_overlong=skip to drop such rows",
            )
        for s in samples:
            columns["input_ids"].append(s.input_ids)
            columns["completion_mask"].append(s.completion_mask)
    return columns, skipped


def build_sft_data(cfg: KosovConfig, tokenizer: Any, end_token_id: int) -> SFTData:
    import datasets

    train_report, eval_report = load_rows(cfg)
    if eval_report is not None:
        train_rows, eval_rows = train_report.rows, eval_report.rows
    else:
        train_rows, eval_rows = split_eval(train_report.rows, cfg.data.eval_ratio, cfg.seed)
    train_cols, skipped = render_rows(train_rows, tokenizer, cfg, end_token_id, "Rendering train rows")
    eval_cols, eval_skipped = render_rows(eval_rows, tokenizer, cfg, end_token_id, "Rendering eval rows")
    if not train_cols["input_ids"]:
        raise KosovError("every training row was skipped as longer than method.sft.max_length",
                         fix="raise method.sft.max_length")
    skipped.update(train_report.skipped)
    skipped.update(eval_skipped)
    if eval_report is not None:
        skipped.update(eval_report.skipped)
    licenses = Counter(str((row.meta or {}).get("license", "unknown")) for row in train_rows)
    summary = {
        "name": cfg.data.name,
        "sources": train_report.sources + (eval_report.sources if eval_report else []),
        "train_rows": len(train_rows),
        "eval_rows": len(eval_rows),
        "train_sequences": len(train_cols["input_ids"]),
        "eval_sequences": len(eval_cols["input_ids"]),
        "train_tokens": sum(map(len, train_cols["input_ids"])),
        "train_trained_tokens": sum(map(sum, train_cols["completion_mask"])),
        "skipped": dict(skipped),
        "licenses": dict(licenses),
    }
    train = datasets.Dataset.from_dict(train_cols)
    evals = datasets.Dataset.from_dict(eval_cols) if eval_cols["input_ids"] else None
    return SFTData(train=train, eval=evals, summary=summary)
