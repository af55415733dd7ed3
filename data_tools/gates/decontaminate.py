"""Decontamination: drop training rows that share an n-gram with evaluation data (KMMLU, HAE-RAE, KoBEST...),
naming the benchmark file each hit came from (by its name: "overlaps kmmlu_test.jsonl", not the path on this
machine, which a data card would publish). Benchmarks are evaluation-only data (KOREAN.md).

Evaluation files are JSONL, JSON or Parquet (every string value in a record counts, however nested:
question, choices, prompt turns, messages, query, paragraph...) or plain text (each line counts). Units are
whitespace words (`unit="word"`, n=13 as in GPT-3's decontamination) or characters without spaces
(`unit="char"`, n=50): a Korean word carries its particles, so Korean has fewer, longer words and a 13-word
window is a long stretch of Korean text. A benchmark string shorter than n units but at least `min_units`
long (a short KMMLU question) counts whole: a row that contains it verbatim is contaminated. A shorter one of at
least 3 words (8 characters), such as "'밥'의 높임말로 알맞은 것은?", counts when a whole line of a turn is that
string (not in an answer, where a line equal to a benchmark choice is no copy): contained in a longer text it
would be too generic to say anything. What `boilerplate` or more distinct
benchmark records, and at least `format_share` of a file's records, share (the instruction every prompt of a
benchmark ends with, "풀이 과정을 쓰고, 마지막 줄에 ...") is the benchmark's format, not an item, and is not
matched: a training row written in the same format is not a copy of an item. A reading passage that a few of a
benchmark's questions share is an item's text, and is matched.

    >>> gate = DecontaminateGate(eval_files=["kmmlu_test.jsonl"])   # doctest: +SKIP
    >>> dict(gate(rows).removed)   # {'overlaps kmmlu_test.jsonl': 2}  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from tqdm.auto import tqdm

from data_tools.chat_io import BadRowError, read_records
from data_tools.gates.base import FIELDS, GateResult, check_choice, check_range, filter_rows, match_key
from data_tools.gates.base import selected_turns, turn_text

STRUCTURED = (".jsonl", ".json", ".parquet")  # anything else is read as plain text, one string per line
DEFAULT_N = {"word": 13, "char": 50}
DEFAULT_MIN_UNITS = {"word": 8, "char": 25}  # shorter strings ("다음 중 옳은 것은?", a choice) are too generic
WHOLE_LINE_UNITS = {"word": 3, "char": 8}  # ... to find inside a text, but not as a whole line of a turn
PROGRESS_FROM = 5000
log = logging.getLogger(__name__)


def strings_in(value: Any) -> Iterator[str]:
    """Every string value in a record, however nested (keys are field names, not benchmark text)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from strings_in(item)


def eval_records(path: Path) -> Iterator[list[str]]:
    """The string values of each record of an evaluation file (a line of a text file is a record)."""
    if not path.is_file():
        # a ValueError like every other recipe mistake, so one `except ValueError` reports them all
        raise ValueError(f"gate 'decontaminate': evaluation file not found: {path}")
    if path.suffix not in STRUCTURED:
        yield from ([line] for line in path.read_text(encoding="utf-8").splitlines())
        return
    if path.suffix == ".json" and not path.read_bytes()[:1024].lstrip().startswith(b"["):
        try:  # a JSON object (e.g. {"data": [...]}): its longest list holds the records
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:  # anything else in .json is taken as JSON lines below
            pass
        else:
            lists = [v for v in data.values() if isinstance(v, list)] if isinstance(data, dict) else []
            yield from ([list(strings_in(item)) for item in max(lists, key=len)] if lists
                        else [list(strings_in(data))])
            return
    for _where, record in read_records(path):
        if isinstance(record, BadRowError):
            raise ValueError(f"gate 'decontaminate': cannot read evaluation data: {record}") from None
        yield list(strings_in(record))


def units(text: str, unit: str) -> tuple[str, ...] | str:
    """Words (a tuple) or characters without spaces (a string); n-grams are slices of either."""
    key = match_key(text)
    return tuple(key.split()) if unit == "word" else "".join(key.split())


def file_names(paths: list[str]) -> dict[str, str]:
    """Each path by its file name, with as many of its folders as tell it from the other files (ko_math/test.jsonl
    beside other/test.jsonl): the removal reasons go into a data card that is shared, and the rest of a path names
    this machine's users and disks (/home/alice/...)."""
    parts = {path: Path(path).parts[bool(Path(path).anchor) :] for path in paths}  # never the root, "/"
    names = {}
    for path, own in parts.items():
        for k in range(1, len(own) + 1):
            if all(other[-k:] != own[-k:] for other_path, other in parts.items() if other_path != path):
                break
        names[path] = "/".join(own[-k:])
    return names


@dataclass
class DecontaminateGate:
    """Drop rows sharing an n-gram (or a whole short benchmark string) with any evaluation file."""

    eval_files: list[str] = field(default_factory=list)
    unit: str = "word"
    n: int | None = None  # None: 13 words or 50 characters
    min_units: int | None = None  # None: 8 words or 25 characters
    boilerplate: int = 3  # text shared by this many distinct benchmark strings ...
    format_share: float = 0.5  # ... and by this share of a file's records is format, not an item
    fields: str = "all"
    name: ClassVar[str] = "decontaminate"

    def __post_init__(self) -> None:
        check_choice(self.name, "unit", self.unit, ("word", "char"))
        check_choice(self.name, "fields", self.fields, FIELDS)
        self.n = DEFAULT_N[self.unit] if self.n is None else self.n
        self.min_units = DEFAULT_MIN_UNITS[self.unit] if self.min_units is None else self.min_units
        check_range(self.name, "n", self.n, 1)
        check_range(self.name, "min_units", self.min_units, 1, self.n)
        check_range(self.name, "boilerplate", self.boilerplate, 2)
        check_range(self.name, "format_share", self.format_share, 0.0, 1.0)
        if not self.eval_files:
            raise ValueError("gate 'decontaminate' needs eval_files: the benchmark files to check against")
        self._names = file_names(list(map(str, self.eval_files)))
        self._build_index()

    def _build_index(self) -> None:
        # n-gram -> file, and for short strings: their first min_units units -> [(whole string, file)], so a
        # row is scanned once for each and a prefix hit is confirmed by comparing the whole string; strings too
        # short for that: the whole string -> file, looked up by each line of a turn.
        # An n-gram counts once per record of a file (its question, explanation and rationale fields are one item); a
        # short string by how often one file repeats it (an instruction field every record has; the same item in
        # test, dev and val files stays an item). What is format is dropped afterwards.
        self._grams: dict[Any, str] = {}
        self._short: dict[Any, list[tuple[Any, str]]] = {}
        self._lines: dict[Any, str] = {}
        shared: Counter = Counter()
        in_file: Counter = Counter()  # (short string, file) -> times the file holds it
        in_records: Counter = Counter()  # (n-gram, file) -> records of the file holding it
        long_records: Counter = Counter()  # file -> its records holding a string of n units or more
        whole_line = WHOLE_LINE_UNITS[self.unit]
        for path in map(str, self.eval_files):
            for record in eval_records(Path(path)):
                grams: set = set()
                for seq in (units(text, self.unit) for text in record):
                    if whole_line <= len(seq) < self.min_units:
                        self._lines.setdefault(seq, path)
                        in_file[(seq, path)] += 1
                        shared[seq] = max(shared[seq], in_file[(seq, path)])
                    elif self.min_units <= len(seq) < self.n:
                        if not shared[seq]:
                            self._short.setdefault(seq[: self.min_units], []).append((seq, path))
                        in_file[(seq, path)] += 1
                        shared[seq] = max(shared[seq], in_file[(seq, path)])
                    elif len(seq) >= self.n:
                        grams.update(seq[i : i + self.n] for i in range(len(seq) - self.n + 1))
                if grams:
                    long_records[path] += 1
                for gram in grams:
                    in_records[(gram, path)] += 1
                    self._grams.setdefault(gram, path)
        format_grams = {gram for (gram, path), count in in_records.items()
                        if count >= max(self.boilerplate, self.format_share * long_records[path])}
        for gram in format_grams:
            del self._grams[gram]
        for key in list(self._short):
            self._short[key] = [(whole, path) for whole, path in self._short[key] if shared[whole] < self.boilerplate]
        self._lines = {seq: path for seq, path in self._lines.items() if shared[seq] < self.boilerplate}
        if format_grams:
            log.info("decontaminate: %d n-grams shared by %d or more benchmark records (and %.0f%% of a file's) are "
                     "the benchmark's format, not an item's text, and are not matched", len(format_grams),
                     self.boilerplate, 100 * self.format_share)

    def overlap(self, text: str, whole_lines: bool = True) -> tuple[str, str] | None:
        """(file, the shared text) for the first benchmark overlap in `text`, else None. `whole_lines`: also a line
        that is a short benchmark string (in a prompt; an answer line equal to a benchmark choice is no copy)."""
        seq = units(text, self.unit)
        joiner = " " if self.unit == "word" else ""
        for i in range(len(seq) - self.min_units + 1):
            gram = seq[i : i + self.n]
            if len(gram) == self.n and gram in self._grams:
                return self._grams[gram], joiner.join(gram)
            for whole, path in self._short.get(seq[i : i + self.min_units], ()):
                if seq[i : i + len(whole)] == whole:
                    return path, joiner.join(whole)
        for line in text.splitlines() if whole_lines else ():
            path = self._lines.get(units(line, self.unit))
            if path is not None:
                return path, line.strip()
        return None

    def __call__(self, rows: list[dict]) -> GateResult:
        def verdict(row: dict) -> tuple[str, str] | None:
            for turn in selected_turns(row, self.fields):
                hit = self.overlap(turn_text(turn), whole_lines=turn.get("role") != "assistant")
                if hit:
                    return f"overlaps {self._names[hit[0]]}", hit[1]
            return None

        return filter_rows(tqdm(rows, desc="decontaminate", disable=len(rows) < PROGRESS_FROM), verdict)
