"""What every quality gate shares: the result it returns, which turns of a row it reads, and the text
normalisation used to match rows against each other.

A gate is a callable `gate(rows) -> GateResult`: the rows it keeps (in order, possibly changed) and, per
reason, how many rows it removed or changed, with a few short snippets for the data card.

    >>> row = {"messages": [{"role": "user", "content": "안녕?"},
    ...                     {"role": "assistant", "content": "<think>인사하자</think>안녕하세요!"}]}
    >>> [answer_and_thinking(t) for t in selected_turns(row, "assistant")]
    [('안녕하세요!', '인사하자')]
    >>> match_key("  Hello,   세계!! ")
    'hello 세계'
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from data_tools.text import nfc, split_thinking

FIELDS = ("assistant", "user", "all")
MAX_EXAMPLES = 3  # snippets per reason: enough to show a reader what was removed, short enough for a card
SNIPPET_CHARS = 80


def snippet(text: str, start: int = 0) -> str:
    """At most SNIPPET_CHARS characters of `text` from `start`, on one line."""
    flat = " ".join(text[max(start, 0) :].split())
    return flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 1] + "…"


@dataclass
class GateResult:
    kept: list[dict] = field(default_factory=list)
    removed: Counter = field(default_factory=Counter)  # reason -> rows removed
    changed: Counter = field(default_factory=Counter)  # what -> rows changed (e.g. "email" scrubbed)
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> a few short snippets

    def remove(self, reason: str, text: str = "") -> None:
        self.removed[reason] += 1
        self._example(reason, text)

    def change(self, what: str, text: str = "") -> None:
        self.changed[what] += 1
        self._example(what, text)

    def _example(self, reason: str, text: str) -> None:
        if text and len(self.examples.setdefault(reason, [])) < MAX_EXAMPLES:
            self.examples[reason].append(snippet(text))


class Gate(Protocol):
    name: str

    def __call__(self, rows: list[dict]) -> GateResult: ...


Verdict = tuple[str, str] | None  # (reason, text to show) for a row to remove, None to keep it


def filter_rows(rows: list[dict], verdict: Callable[[dict], Verdict]) -> GateResult:
    """Keep the rows whose verdict is None; count the others by reason."""
    result = GateResult()
    for row in rows:
        found = verdict(row)
        if found is None:
            result.kept.append(row)
        else:
            result.remove(*found)
    return result


def check_choice(gate: str, key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"gate '{gate}': {key}={value!r} is not allowed; use one of: {', '.join(allowed)}")


def check_range(gate: str, key: str, value: float | None, low: float, high: float = float("inf")) -> None:
    if value is not None and not low <= value <= high:
        raise ValueError(f"gate '{gate}': {key}={value!r} is out of range; use a value in [{low}, {high}]")


# ---- which turns a gate reads -------------------------------------------------------------------------

def row_turns(row: dict) -> list[dict]:
    """The turns of an SFT row (`messages`) or a prompt row (`prompt`; a plain-text prompt is one user turn)."""
    turns = row.get("messages", row.get("prompt"))
    if isinstance(turns, str):
        return [{"role": "user", "content": turns}]
    if not isinstance(turns, list):
        raise ValueError(f"a row needs 'messages' or 'prompt' turns; this one has the keys {sorted(row)}")
    return turns


def selected_roles(turns: list[dict], fields: str) -> set[str]:
    """Roles a gate reads. "assistant" on a prompt row (no answers yet) reads its user turns: a GRPO prompt
    set is all prompt, and a gate that silently checked nothing there would be worse than useless."""
    roles = {turn.get("role") for turn in turns}
    if fields == "all":
        return roles
    if fields == "assistant" and "assistant" not in roles:
        return {"user"}
    return {fields}


def selected_turns(row: dict, fields: str) -> list[dict]:
    turns = row_turns(row)
    roles = selected_roles(turns, fields)
    return [turn for turn in turns if turn.get("role") in roles]


def answer_and_thinking(turn: dict) -> tuple[str, str]:
    """(answer, thinking) of one turn: thinking is `reasoning_content` and any inline <think> block."""
    inline, answer = split_thinking(turn.get("content") or "")
    thinking = "\n".join(t for t in (turn.get("reasoning_content") or "", inline) if t)
    return answer, thinking


def turn_text(turn: dict, include_think: bool = True) -> str:
    """Everything a turn says (thinking first, as the model writes it), or only its answer."""
    answer, thinking = answer_and_thinking(turn)
    return f"{thinking}\n{answer}" if include_think and thinking else answer


def map_turn_texts(row: dict, fields: str, fn: Callable[[str], str]) -> dict:
    """A copy of `row` with `fn` applied to the content and reasoning of the selected turns; `row` is untouched
    (gates run on data the caller may still hold)."""
    key = "messages" if "messages" in row else "prompt"
    turns = row_turns(row)
    roles = selected_roles(turns, fields)

    def mapped(turn: dict) -> dict:
        if turn.get("role") not in roles:
            return turn
        return {k: fn(v) if k in ("content", "reasoning_content") and isinstance(v, str) else v
                for k, v in turn.items()}

    new_turns = [mapped(turn) for turn in turns]
    return {**row, key: new_turns[0]["content"] if isinstance(row[key], str) else new_turns}


# ---- text for matching rows against rows (dedup) and against benchmarks (decontamination) -------------

def _in_number(text: str, i: int) -> bool:
    """Whether the punctuation at text[i] belongs to a number: a minus sign (-3) or a separator between digits
    (3.14, 3,14, 1,500), which tell -3 from 3 and 3.14 from 3,14."""
    before, after = text[i - 1 : i], text[i + 1 : i + 2]
    if text[i] == "-":
        return after.isdigit() and not before.isalnum()
    return text[i] in ".," and before.isdigit() and after.isdigit()


def match_key(text: str) -> str:
    """NFC, case-folded, punctuation turned into spaces (but not a number's sign or separators), whitespace
    collapsed: the form two texts are compared in, so "안녕하세요!" and "안녕하세요" match, but "a,b" and "ab" do
    not, nor "-3도" and "3도"."""
    folded = nfc(text).casefold()
    spaced = "".join(" " if unicodedata.category(ch).startswith("P") and not _in_number(folded, i) else ch
                     for i, ch in enumerate(folded))
    return " ".join(spaced.split())
