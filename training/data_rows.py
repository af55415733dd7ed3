"""Rows for any training method: read the recipe's files or hub dataset with a row check (chat rows for SFT,
prompt rows for GRPO), hold out an eval split, and summarise counts and licenses for provenance."""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import TemplateError, TemplateSyntaxError

from data_tools.chat_io import (BadRowError, ChatFileReport, ChatRow, RowCheck, chat_row, load_chat_files,
                                load_chat_hub)
from training.chat_render import thinking_kwargs
from training.config import resolve_path
from training.schema import KosovConfig
from training.errors import KosovError

log = logging.getLogger(__name__)


@dataclass
class TrainData:
    train: Any  # datasets.Dataset as the method's TRL trainer takes it
    eval: Any | None
    summary: dict[str, Any] = field(default_factory=dict)  # counts for provenance and metrics


def fits(row: ChatRow, length: int, limit: int, key: str, on_overlong: str, skipped: Counter) -> bool:
    """Whether a rendered row fits `limit` tokens; a longer one is counted (on_overlong=skip) or an error."""
    if length <= limit:
        return True
    if on_overlong == "skip":
        skipped[f"longer than {key.rsplit('.', 1)[-1]}"] += 1
        return False
    raise KosovError(f"the row renders to {length} tokens, more than {key}={limit}", where=row.where,
                     fix=f"raise {key}, shorten the row, or set data.on_overlong=skip to drop such rows")


def special_tokens(tokenizer: Any) -> frozenset[str]:
    """The tokenizer's control tokens (<|im_end|>, <|endoftext|>, <s>...): written as text in a row, they are read
    as the control tokens themselves. Plain added tokens (Qwen3's <think>) are text a row may hold."""
    marked = {t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values() if t.special}
    return frozenset(t for t in marked | set(tokenizer.all_special_tokens) if t)


def free_of(row: ChatRow, special: frozenset[str], on_bad_row: str, skipped: Counter) -> bool:
    """Whether a row's text holds none of the control tokens; one that does is counted (on_bad_row=skip) or an
    error: an answer quoting "<|im_end|>" would be cut short there and the model taught to stop mid-sentence."""
    texts = [m.get(k, "") for m in row.messages for k in ("content", "reasoning_content")]
    found = sorted(t for t in special if any(t in text for text in texts))
    if not found:
        return True
    if on_bad_row == "skip":
        skipped["special token in text"] += 1
        return False
    raise KosovError(f"the row's text holds the tokenizer's control token(s) {found}, which the tokenizer reads as "
                     "the tokens themselves (an answer would end or break at them)", where=row.where,
                     fix="write them differently in the data (e.g. with a space: '<| im_end |>'), remove the row, "
                         "or set data.on_bad_row=skip to drop such rows")


def template_refused(row: ChatRow, error: TemplateError, on_bad_row: str, skipped: Counter) -> None:
    """A row the chat template raised on (Gemma's "System role not supported", roles out of the order a template
    accepts): counted (on_bad_row=skip) or an error naming the row and the template's message. A template that does
    not parse fails every row: never skipped."""
    if on_bad_row == "skip" and not isinstance(error, TemplateSyntaxError):
        skipped["template error"] += 1
        return
    raise KosovError(f"the model's chat template refused the row: {type(error).__name__}: {error.message or error}",
                     where=row.where,
                     fix="rewrite the row in a form the template takes (e.g. fold a system turn into the first user "
                         "turn for a template without a system role), use another chat template "
                         "(model.chat_template), or set data.on_bad_row=skip to drop such rows") from None


def none_left(reasons: Counter, row: str, key: str) -> KosovError:
    """The error when no `row` (training row, prompt) is left to train on: the skip reasons counted, and a fix that
    raises the length limit `key` only when length is all that skipped them."""
    if not reasons:
        return KosovError(f"no {row}s to train on", fix="check data.train_files (or data.hub_id)")
    counts = ", ".join(f"{reason}: {n}" for reason, n in reasons.most_common())
    return KosovError(f"every {row} was skipped ({counts})",
                      fix=f"raise {key}" if set(reasons) == {f"longer than {key.rsplit('.', 1)[-1]}"} else
                      f"fix the rows (data.on_bad_row=error names each one) or raise {key}")


def bad_row_error(e: BadRowError) -> KosovError:
    return KosovError(f"{e.reason}: {e.detail}", where=e.where, fix=e.fix)


def _load_hub(cfg: KosovConfig, check: RowCheck) -> ChatFileReport:
    data = cfg.data
    try:
        return load_chat_hub(data.hub_id, split=data.hub_split, config=data.hub_config, revision=data.hub_revision,
                             on_bad_row=data.on_bad_row, max_rows=data.max_rows, check=check)
    except BadRowError:
        raise
    except Exception as e:  # network, auth, unknown id: datasets raises many types
        raise KosovError(
            f"could not load the dataset '{data.hub_id}' (split {data.hub_split!r}): {type(e).__name__}: {e}",
            fix="check the id and split, your network and HF_TOKEN, or download it to local files and use "
                "data.train_files",
        ) from None


def data_named(data: Any) -> str:
    """The data the rows come from, as the user gave it: the files or the dataset, with the recipe's data.name."""
    given = f"data.hub_id={data.hub_id}" if data.hub_id else f"data.train_files=[{', '.join(data.train_files)}]"
    return f"{given} (data.name={data.name})"


def recorded_name(data: Any) -> dict[str, Any]:
    """The data's name for provenance (and from it the model card and the data lineage): data.name while the files
    or dataset are those of kosov's data recipe of that name. `data.train_files=[/data/ko_chat.jsonl]` on a recipe
    of ko-chat-seed left data.name at ko-chat-seed, and the card named a dataset the run never read: the name is then
    that of the kosov data recipe the files are (ko-math-sft), or made of the files (ko_chat) or the dataset id, with
    the recipe's name under recipe_name."""
    import yaml

    from training.recipes import recipes_dir

    recipes = {}
    for path in sorted((recipes_dir() / "data").glob("*.yaml")):
        recipe = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        recipes[recipe.get("name")] = (list(recipe.get("train_files") or []), recipe.get("hub_id"))
    given = (list(data.train_files), data.hub_id)
    if recipes.get(data.name, given) == given:  # that recipe's data, or a name of the user's own
        return {"name": data.name}
    name = next((other for other, sources in recipes.items() if sources == given), None)
    if name is None and data.hub_id:
        name = data.hub_id + (f":{data.hub_config}" if data.hub_config else "")
    elif name is None:
        stems = [Path(str(f)).name.split(".")[0] for f in data.train_files]
        name = "+".join(stems[:3]) + (f"+{len(stems) - 3} more" if len(stems) > 3 else "")
    return {"name": name, "recipe_name": data.name}


def load_rows(cfg: KosovConfig, check: RowCheck = chat_row,
              loaded: Callable[[list[dict[str, Any]]], None] | None = None
              ) -> tuple[ChatFileReport, ChatFileReport | None]:
    """The train rows and, when the recipe names eval files, the eval rows. `loaded`: called with the sources read
    (their hashes) before anything is rendered (a resume's check that the data is the same)."""
    data = cfg.data
    try:
        if data.hub_id:
            train = _load_hub(cfg, check)
        else:
            train = load_chat_files([resolve_path(p) for p in data.train_files], data.on_bad_row, data.max_rows,
                                    check)
        evals = (load_chat_files([resolve_path(p) for p in data.eval_files], data.on_bad_row, check=check)
                 if data.eval_files else None)
    except BadRowError as e:
        raise bad_row_error(e) from None
    except FileNotFoundError as e:
        raise KosovError(str(e), fix="check data.train_files / data.eval_files (paths are relative to the "
                                     "directory you run kosov from)") from None
    if loaded is not None:
        loaded(train.sources + (evals.sources if evals else []))
    if not train.rows:
        counts = ", ".join(f"{reason}: {n}" for reason, n in train.skipped.most_common()) or "they hold no rows"
        raise KosovError(f"no usable training rows in {data_named(data)} (skipped: {counts})",
                         fix="fix the rows (data.on_bad_row=error names each bad one by file and line), or point "
                             "data.train_files / data.hub_id at the data to train on")
    return train, evals


def row_content(row: ChatRow) -> str:
    """What makes two rows the same example: the conversation and, for prompt rows, the other columns (answer)."""
    return json.dumps([row.messages, row.columns], sort_keys=True, ensure_ascii=False, default=str)


def split_eval(train: ChatFileReport, evals: ChatFileReport | None, ratio: float, seed: int
               ) -> tuple[list[ChatRow], list[ChatRow]]:
    """The recipe's eval rows, or whole conversations held out of train (never turns of one on both sides). Copies
    of one row stay on one side: a held-out copy of a row that trains measures memory, not generalisation."""
    if evals is not None:
        trained = {row_content(r) for r in train.rows}
        shared = sum(row_content(r) in trained for r in evals.rows)
        if shared:
            log.warning("%d of the %d eval rows (data.eval_files) are also in the training data: their eval loss "
                        "measures memory, not generalisation", shared, len(evals.rows))
        return train.rows, evals.rows
    rows = train.rows
    if ratio <= 0 or len(rows) < 2:
        return rows, []
    copies: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        copies.setdefault(row_content(row), []).append(i)
    groups = list(copies.values())
    if len(groups) < 2:
        log.warning("all %d training rows are the same conversation: nothing is held out for eval", len(rows))
        return rows, []
    if len(groups) < len(rows):
        log.info("%d training rows are copies of others; each row's copies are kept on one side of the eval split",
                 len(rows) - len(groups))
    random.Random(seed).shuffle(groups)  # without copies, the same split as holding out shuffled rows
    want = max(1, round(len(rows) * ratio))
    held: set[int] = set()
    for group in groups:  # whole groups, never past the share asked for (a row copied many times waits)
        if len(held) + len(group) <= want:
            held.update(group)
    if not held:  # every row has more copies than the share: the smallest group, never all rows
        held.update(min(groups, key=len))
    return [r for i, r in enumerate(rows) if i not in held], [rows[i] for i in sorted(held)]


def rows_summary(cfg: KosovConfig, train: ChatFileReport, evals: ChatFileReport | None, train_rows: list[ChatRow],
                 eval_rows: list[ChatRow], skipped: Counter, held_out: int | None = None,
                 eval_skipped: Counter | None = None) -> dict[str, Any]:
    """Counts, sources (hashes), skipped rows by reason, licenses and teacher models: the data part of provenance.
    train_rows / eval_rows: the rows kept (rendering skipped none of them); held_out: the eval rows before rendering,
    eval_skipped: why rendering skipped some of them. A resume compares only the sources and the held-out rows
    (resume_checks.check_same_data): a key added here is no reason for an older run's summary, which lacks it, to differ."""
    skipped = skipped + train.skipped + (evals.skipped if evals else Counter())
    return {
        **recorded_name(cfg.data),
        "sources": train.sources + (evals.sources if evals else []),
        "train_rows": len(train_rows),
        "eval_rows": len(eval_rows),
        "eval_held_out": len(eval_rows) if held_out is None else held_out,
        "eval_skipped": dict((eval_skipped or Counter()) + (evals.skipped if evals else Counter())),
        "skipped": dict(skipped),
        "licenses": dict(Counter(str((row.meta or {}).get("license") or "unknown") for row in train_rows)),
        "license_sources": _license_sources(train_rows),
        # the models that wrote the synthetic rows (meta.teacher_model; None for rows no model wrote), for the card
        "teacher_models": dict(Counter(str(teacher) for row in train_rows
                                       if (teacher := (row.meta or {}).get("teacher_model")))),
        "thinking_rows": sum(_thinks(row) for row in train_rows),  # what model.thinking=auto trained thinking on
        # which rows were held out: a resumed run must hold out the same ones (resume_checks.check_same_data)
        "eval_sha256": hashlib.sha256("\n".join(map(row_content, eval_rows)).encode("utf-8")).hexdigest(),
    }


def _thinks(row: ChatRow) -> bool:
    """Whether an answer of the row carries thinking (model.thinking=auto renders that turn with thinking on)."""
    return any(m.get("role") == "assistant" and thinking_kwargs("auto", m)["enable_thinking"] for m in row.messages)


def _license_sources(rows: list[ChatRow]) -> dict[str, dict[str, int]]:
    """license -> the rows' source (meta.input_source for a row kosov synth made from an input row, else meta.source)
    -> rows: whom a release must credit (CC BY) and for which rows."""
    found: dict[str, Counter] = {}
    for row in rows:
        meta = row.meta or {}
        # a synth row made from a licensed input row credits that input's creators (meta.input_source), not
        # kosov/synth; a Parquet meta struct holds null where a row has no license: unknown, as a missing key is
        source = (meta.get("input_license") and meta.get("input_source")) or meta.get("source") or "unknown"
        found.setdefault(str(meta.get("license") or "unknown"), Counter())[str(source)] += 1
    return {license_: dict(sources) for license_, sources in found.items()}


def check_eval_left(cfg: KosovConfig, summary: dict[str, Any], length_key: str) -> None:
    """After rendering, before the model loads: no eval row left, as every held-out row was skipped (or none was
    held out). Refused where the recipe needs one (a scheduler or an objective on the eval loss: a crash after the
    model loaded or after all of training) or named eval files; with eval_ratio alone, the run trains without eval
    and says so (the default eval_ratio on a small set of long rows)."""
    from training.config_checks import SCHEDULERS_ON_EVAL

    if summary.get("eval_rows"):
        return
    data, held = cfg.data, summary.get("eval_held_out", 0)
    asked = "data.eval_files" if data.eval_files else f"data.eval_ratio={data.eval_ratio}"
    needs = ["data.eval_files names rows to evaluate on"] if data.eval_files else []
    if cfg.method.lr_scheduler_type in SCHEDULERS_ON_EVAL:
        needs.append(f"method.lr_scheduler_type={cfg.method.lr_scheduler_type} steps on the eval loss")
    if cfg.objective and cfg.objective.partition(".")[0] in ("eval_loss", "first_eval_loss", "eval_rewards"):
        needs.append(f"objective={cfg.objective} is read from the eval split")
    counts = ", ".join(f"{reason}: {n}" for reason, n in Counter(summary.get("eval_skipped") or {}).most_common())
    if held:
        what = f"all {held} held-out eval row(s) ({asked}) were skipped ({counts or 'no reason recorded'})"
    elif data.eval_files:
        what = f"data.eval_files gave no usable eval rows (skipped: {counts or 'they hold no rows'})"
    else:
        what = f"no eval rows: {asked} held out none of the {summary.get('train_rows')} training rows"
    fix = (f"raise {length_key} or fix the skipped rows (data.on_overlong=error / data.on_bad_row=error name each "
           "one), " if held or data.eval_files else "give more rows, ") + \
        "hold out more rows (data.eval_ratio) or name eval rows that fit (data.eval_files)"
    if needs:
        raise KosovError(f"{what}, but {' and '.join(needs)}",
                         fix=f"{fix}; or train without eval: data.eval_ratio=0 and no data.eval_files, with a "
                             "scheduler and objective that need none")
    if held:  # (none held out of a tiny set: split_eval said so)
        log.warning("%s: the run trains without evaluating (no eval loss). Fix: %s", what, fix)
