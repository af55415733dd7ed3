"""Chat datasets on disk: read rows from JSONL / JSON / Parquet files or a Hugging Face dataset, check each
row, and say exactly where a bad one is.

SFT rows: `{"messages": [{"role": ..., "content": ...}, ...], "meta": {...}}` (or ShareGPT's
`{"conversations": [{"from": "human" | "gpt" | "system", "value": ...}, ...]}`). Roles are system (first only),
user and assistant, alternating and ending with an assistant turn; an assistant turn may carry
`reasoning_content` (a thinking trace).
Prompt rows (GRPO, evaluation): `{"prompt": [...turns ending with a user turn], <verifiable columns>,
"meta": {...}}`, e.g. `"answer": "1200"` for the math reward. All text is NFC-normalised on the way in.

    >>> from data_tools.chat_io import load_chat_files
    >>> report = load_chat_files(["train.jsonl"], on_bad_row="skip")   # doctest: +SKIP
    >>> report.skipped   # Counter({'malformed JSON': 2})                 # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_tools.atomic import write_atomic
from data_tools.row_files import BadRowError, encodable, file_sha256, read_records
from data_tools.text import THINK_CLOSE, THINK_OPEN, nfc

log = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant")
SUFFIXES = (".jsonl", ".json", ".parquet")


@dataclass
class ChatRow:
    messages: list[dict[str, str]]
    meta: dict[str, Any] | None
    where: str  # "path:line" or "hub-id[split] row N"
    columns: dict[str, Any] = field(default_factory=dict)  # prompt rows: the other columns (answer, ...)


@dataclass
class ChatFileReport:
    rows: list[ChatRow] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)  # reason -> rows skipped
    sources: list[dict[str, Any]] = field(default_factory=list)  # path / hub id, sha256 or revision, rows read


# Invisible characters scraped Korean text carries (zero-width space, word joiner, a BOM inside a line): removed, as
# an answer of them alone is empty and a model trained on them writes them (zero-width joiner stays: emoji need it)
ZERO_WIDTH = str.maketrans("", "", "\u200b\u2060\ufeff")


def _message(where: str, index: int, message: Any) -> dict[str, str]:
    at = f"messages[{index}]"
    if not isinstance(message, dict):
        raise BadRowError(where, "bad message", f"{at} is {type(message).__name__}, not an object",
                          'write messages as {"role": ..., "content": ...}')
    role, content = message.get("role"), message.get("content")
    if role not in ROLES:
        raise BadRowError(where, "unknown role", f"{at} has role {role!r}", f"use one of: {', '.join(ROLES)}")
    if not isinstance(content, str):
        raise BadRowError(where, "bad message", f"{at} ({role}) content is {type(content).__name__}, not text",
                          "content must be a string")
    for name in ("content", "reasoning_content"):  # JSON's "\ud83d" alone: a half emoji no tokenizer can encode
        text = message.get(name)
        if isinstance(text, str) and not encodable(text):
            raise BadRowError(where, "not UTF-8", f"{at} ({role}) {name} holds a lone surrogate (half of an emoji "
                              "or a broken \\u escape)", "re-export the row as UTF-8, or remove the broken character")
    extra = {k for k, v in message.items() if k not in ("role", "content", "reasoning_content") and v is not None}
    if extra:
        raise BadRowError(where, "bad message", f"{at} has unsupported keys {sorted(extra)}",
                          "keep role, content and (assistant only) reasoning_content")
    out = {"role": role, "content": _clean(content)}
    reasoning = message.get("reasoning_content")
    if reasoning == "" and role != "assistant":  # a column every turn has in a Parquet export: empty is none
        reasoning = None
    if reasoning is not None:
        if role != "assistant" or not isinstance(reasoning, str):
            raise BadRowError(where, "bad message", f"{at} has reasoning_content on a {role} turn or not as text",
                              "reasoning_content belongs to assistant turns and is a string")
        reasoning = _without_think_tags(where, at, _clean(reasoning))
        if reasoning.strip():  # whitespace alone is no thinking: the template would render it as a think block
            out["reasoning_content"] = reasoning
    return out


def _clean(text: str) -> str:
    return nfc(text).translate(ZERO_WIDTH)


def _without_think_tags(where: str, at: str, reasoning: str) -> str:
    """reasoning_content is the thinking without its tags (the template adds them): one pair around all of it is
    taken off; tags left inside would train the model to open a second think block."""
    text = reasoning.strip()
    if text.startswith(THINK_OPEN) and text.endswith(THINK_CLOSE):
        text = text[len(THINK_OPEN): -len(THINK_CLOSE)]
    else:
        text = reasoning
    if THINK_OPEN in text or THINK_CLOSE in text:
        raise BadRowError(where, "think tags in reasoning_content", f"{at} reasoning_content holds {THINK_OPEN} or "
                          f"{THINK_CLOSE}", "store the thinking without its tags (the chat template adds them)")
    return text


def _check_turns(where: str, messages: list[dict[str, str]], last: str = "assistant") -> None:
    body = messages[1:] if messages[0]["role"] == "system" else messages
    for index, message in enumerate(body):
        at = index + len(messages) - len(body)
        expected = "user" if index % 2 == 0 else "assistant"
        if message["role"] != expected:
            raise BadRowError(where, "turn order", f"messages[{at}] is {message['role']}, expected {expected}",
                              "an optional system turn first, then user and assistant turns alternating")
        if not message["content"].strip():
            reason = "empty assistant turn" if expected == "assistant" else "empty user turn"
            raise BadRowError(where, reason, f"messages[{at}] ({expected}) has no text",
                              "remove the row or write the missing turn")
        if expected == "assistant" and THINK_CLOSE in message["content"]:
            _check_inline_thinking(where, at, message)
        elif expected == "assistant" and message["content"].lstrip().startswith(THINK_OPEN):  # (an answer that
            # only mentions the tag, explaining a template, is an answer)
            raise BadRowError(where, "unfinished thinking", f"messages[{at}] (assistant) opens {THINK_OPEN} and never "
                              f"closes it: an answer cut off while thinking", "remove the row, or generate it again "
                              "with a larger max_new_tokens")
    if not body or body[-1]["role"] != last:
        raise BadRowError(where, f"no final {last} turn", f"the conversation does not end with a {last} turn",
                          "end every row with the assistant answer to train on" if last == "assistant" else
                          "a prompt ends with the user turn the model answers")


def _check_inline_thinking(where: str, at: int, message: dict[str, str]) -> None:
    """An answer written as "<think>...</think>answer": the answer must be there, and the thinking given once."""
    if message.get("reasoning_content", "").strip():
        raise BadRowError(where, "thinking twice", f"messages[{at}] has reasoning_content and a {THINK_OPEN} block "
                          "in its content", "keep the thinking in one place: reasoning_content, or the block")
    if not message["content"].rsplit(THINK_CLOSE, 1)[1].strip():
        raise BadRowError(where, "empty assistant turn", f"messages[{at}] (assistant) has thinking but no answer "
                          f"after {THINK_CLOSE}", "write the answer after the thinking, or remove the row")


def _turns(where: str, record: Any, column: str) -> list[dict[str, str]]:
    if isinstance(record, BadRowError):
        raise record
    if isinstance(record, dict) and column == "messages" and column not in record and "conversations" in record:
        record = {**record, "messages": record["conversations"]}  # ShareGPT's name for them
    if not isinstance(record, dict) or column not in record:
        keys = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise BadRowError(where, f"missing {column}", f"the row has no '{column}' (it has {keys})",
                          f'write each row as {{"{column}": [{{"role": "user", "content": ...}}, ...]}}')
    raw = record[column]
    if isinstance(raw, str) and column == "prompt":
        raw = [{"role": "user", "content": raw}]  # a plain-text prompt is one user turn
    if not isinstance(raw, list) or not raw:
        raise BadRowError(where, f"missing {column}", f"'{column}' is empty or not a list",
                          f"{column} must be a non-empty list of turns")
    messages = [_message(where, i, _from_sharegpt(where, i, m, trained=column == "messages"))
                for i, m in enumerate(raw)]
    messages = _with_system_column(where, record, messages)
    # an empty system turn (ShareGPT exports carry {"from": "system", "value": ""}) is none: the template would render
    # an empty system block, which inference never shows
    messages = [m for m in messages if m["role"] != "system" or m["content"].strip()]
    if not messages:
        raise BadRowError(where, f"missing {column}", f"'{column}' holds only an empty system turn",
                          f"{column} must hold the conversation's turns")
    return messages


def _with_system_column(where: str, record: dict[str, Any], messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The turns with a row's top-level "system" column (many ShareGPT exports on the Hub keep the system prompt
    there, beside "conversations") as their first turn: left out, the model would train without it."""
    system = record.get("system")
    if system is None:
        return messages
    if not isinstance(system, str):
        raise BadRowError(where, "bad system", f"'system' is {type(system).__name__}, not text",
                          'write the system prompt as text ("system": "...") or as the first turn')
    if messages and messages[0]["role"] == "system":
        if messages[0]["content"].strip() == system.strip() or not system.strip():
            return messages
        raise BadRowError(where, "bad system", "the row has a 'system' column and a different system turn",
                          "keep one system prompt: drop the 'system' column or the system turn")
    return [_message(where, 0, {"role": "system", "content": system}), *messages]


# ShareGPT's speakers (`{"from": "human", "value": ...}`, as many Korean chat datasets on the Hub are stored)
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "model": "assistant"}


def _from_sharegpt(where: str, index: int, turn: Any, trained: bool = True) -> Any:
    """A ShareGPT turn as a message; any other turn as it is. `trained`: an SFT row, whose every assistant turn
    carries loss (a prompt row's assistant turns are context only)."""
    if not isinstance(turn, dict) or "role" in turn or "from" not in turn:
        return turn
    speaker = turn["from"]
    if speaker not in SHAREGPT_ROLES:
        raise BadRowError(where, "unknown role", f"messages[{index}] is from {speaker!r}", "ShareGPT turns are from "
                          f"{', '.join(SHAREGPT_ROLES)}; tool and function turns are not trained on: remove such rows")
    weight = turn.get("weight")  # some exports' loss flag: 0 means "do not train on this answer"
    if trained and SHAREGPT_ROLES[speaker] == "assistant" and weight is not None and weight != 1:
        raise BadRowError(where, "weighted turn", f"messages[{index}] (assistant) has weight {weight!r}, but kosov "
                          "trains on every assistant turn (it has no per-turn loss weights)",
                          "remove that turn (with the user turn before it) or set its weight to 1, or remove the "
                          "row; data.on_bad_row=skip drops such rows")
    rest = {k: v for k, v in turn.items() if k not in ("from", "value", "weight")}
    return {"role": SHAREGPT_ROLES[speaker], "content": turn.get("value"), **rest}


META_FIX = 'meta must be an object (e.g. "meta": {"source": "mine"}), the JSON text of one, or null'


def _meta(where: str, record: dict[str, Any]) -> dict[str, Any] | None:
    """A row's meta: an object, or the JSON text of one (Hub and Parquet exports often store it so). Empty text,
    blanks and "null" are no meta, as such exports store a missing one."""
    meta = record.get("meta")
    if isinstance(meta, str):
        if not meta.strip():
            return None
        try:
            decoded = json.loads(meta)
        except json.JSONDecodeError:
            decoded = meta  # not JSON at all: refused below
        if decoded is None or isinstance(decoded, dict):  # "null": no meta
            return decoded
        raise BadRowError(where, "bad meta", f"'meta' is text that is not a JSON object: {meta[:60]!r}", META_FIX)
    if meta is None or isinstance(meta, dict):
        return meta
    raise BadRowError(where, "bad meta", f"'meta' is {type(meta).__name__}, not an object", META_FIX)


def chat_row(where: str, record: Any) -> ChatRow:
    """Check one SFT record and return it as a ChatRow; raises BadRowError naming `where`."""
    messages = _turns(where, record, "messages")
    _check_turns(where, messages)
    return ChatRow(messages=messages, meta=_meta(where, record), where=where)


def prompt_row(where: str, record: Any, required: tuple[str, ...] = ()) -> ChatRow:
    """Check one prompt record (turns ending with a user turn, plus the `required` columns)."""
    messages = _turns(where, record, "prompt")
    _check_turns(where, messages, last="user")
    missing = [c for c in required if record.get(c) is None]
    if missing:
        raise BadRowError(where, "missing column", f"the row has no {missing}",
                          f"prompt rows for these rewards need the columns {list(required)}")
    # the gold answer is compared with NFC completions: "수요일" saved decomposed (NFD) must still match
    columns = {k: nfc(v) if isinstance(v, str) else v for k, v in record.items() if k not in ("prompt", "meta")}
    return ChatRow(messages=messages, meta=_meta(where, record), where=where, columns=columns)


RowCheck = Callable[[str, Any], ChatRow]


def collect_rows(records: Iterator[tuple[str, Any]], report: ChatFileReport, on_bad_row: str,
                 max_rows: int | None, check: RowCheck = chat_row, digest: Any = None) -> int:
    """Check records into `report`; returns how many records were read. Raises BadRowError when not skipping.
    `digest` (a hashlib object): updated with each record read, bad ones too."""
    read = 0
    for where, record in records:
        if max_rows is not None and len(report.rows) >= max_rows:
            break
        read += 1
        if digest is not None:
            digest.update(json.dumps(record, sort_keys=True, ensure_ascii=False, default=str)
                          .encode("utf-8", "surrogatepass") + b"\n")
        try:
            report.rows.append(check(where, record))
        except BadRowError as e:
            if on_bad_row != "skip":
                raise
            report.skipped[e.reason] += 1
    return read


def load_chat_files(paths: list[Path | str], on_bad_row: str = "error", max_rows: int | None = None,
                    check: RowCheck = chat_row) -> ChatFileReport:
    """Rows of local files; `check` is chat_row (SFT) or a prompt_row partial (GRPO, evaluation). With max_rows, the
    first max_rows rows in file order: a file after them is not read, and is no source of the rows (a warning names
    it)."""
    report, unused = ChatFileReport(), []
    for path in map(Path, paths):
        if path.is_dir():
            raise BadRowError(str(path), "a folder", "data files are JSONL, JSON or Parquet files, not folders",
                              f"list its files (e.g. data.train_files=[{path}/train.jsonl]), or load the folder "
                              f"as a dataset: data.hub_id={path} data.train_files=[]")
        if not path.is_file():
            raise FileNotFoundError(f"data file not found: {path}")
        if path.suffix not in SUFFIXES:
            raise BadRowError(str(path), "unsupported file", f"'{path.suffix}' files cannot be read",
                              f"use one of: {', '.join(SUFFIXES)}")
        if max_rows is not None and len(report.rows) >= max_rows:
            unused.append(str(path))
            continue
        read = collect_rows(read_records(path), report, on_bad_row, max_rows, check)
        report.sources.append({"path": str(path), "sha256": file_sha256(path), "rows_read": read})
    if unused:
        log.warning("data.max_rows=%d takes the first %d rows in file order, all from the files before: not read, "
                    "not used: %s", max_rows, max_rows, ", ".join(unused))
    return report


def load_chat_hub(hub_id: str, *, split: str, config: str | None = None, revision: str | None = None,
                  on_bad_row: str = "error", max_rows: int | None = None, check: RowCheck = chat_row
                  ) -> ChatFileReport:
    """Rows of a Hugging Face dataset (or a local dataset folder, for mirrored data). Offline from a kosov mirror,
    with no config: the repo's default config, as the mirror recorded it (datasets would guess one)."""
    import datasets

    if config is None and not Path(hub_id).expanduser().exists():
        config = _mirrored_default_config(hub_id)
    dataset = datasets.load_dataset(hub_id, config, split=split, revision=revision)
    fingerprint = getattr(dataset, "_fingerprint", None)
    digest = hashlib.sha256()
    records = ((f"{hub_id}[{split}] row {i + 1}", record) for i, record in enumerate(dataset))
    report = ChatFileReport()
    read = collect_rows(records, report, on_bad_row, max_rows, check, digest)
    # rows_sha256: the records read, by content (a Hub dataset without a revision, or a dataset folder, can change
    # under the same name; datasets' fingerprint changes with a file's mtime too): a resume compares it
    report.sources.append({"hub_id": hub_id, "config": config, "split": split, "revision": revision,
                           "fingerprint": fingerprint, "rows_sha256": digest.hexdigest(), "rows_read": read,
                           "local": Path(hub_id).expanduser().exists()})  # a dataset folder, not a Hub id
    return report


def _mirrored_default_config(hub_id: str) -> str | None:
    """Offline from a kosov mirror (MIRROR/hf_home/datasets, MIRROR/kosov-mirror.json): hub_id's default config as
    recorded there (offline, datasets takes any config it has cached, or refuses when it has several), else None."""
    import datasets.config

    manifest = Path(datasets.config.HF_DATASETS_CACHE).parent.parent / "kosov-mirror.json"
    try:
        entry = json.loads(manifest.read_text(encoding="utf-8"))["datasets"][hub_id]
        return entry.get("default_config") if datasets.config.HF_HUB_OFFLINE else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> None:
    """Write rows as UTF-8 JSON lines whole or not at all (data_tools.atomic)."""
    write_atomic(path, (json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
