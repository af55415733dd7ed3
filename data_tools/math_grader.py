"""The Korean math answer checker: one grader for the GRPO reward and for evaluation.

It finds the final answer in a Korean completion — answer tags, `\\boxed{}`, a final "정답: 42" /
"정답은 42입니다" / "답은 42개" line, or else the last number of the answer (after any `<think>` block) —
reads "1,200원", "3/4", "4분의 3", "0.75", "75%" and weekday names, and compares with math-verify, so
"0.75" equals "3/4".

    >>> extract_answer("사과는 모두 1,200원어치예요. 정답: 1,200원")
    '1200'
    >>> is_correct("계산하면 4분의 3이 됩니다.", "0.75")
    True
    >>> is_correct("<think>3+4=7</think>\\n답은 8개입니다.", "7")
    False
"""

from __future__ import annotations

import logging
import re

from data_tools.text import nfc, split_thinking

WEEKDAYS = ("월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일")
_TAG = re.compile(r"<answer>(.*?)</answer>", re.S)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_FINAL = re.compile(r"(?:최종\s*)?(?:정답|답)\s*(?:은|는|:|：|=)\s*([^\n]+)")
_KO_FRACTION = re.compile(r"(\d[\d,]*)\s*분의\s*(\d[\d,]*)")  # "4분의 3" is 3/4
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?")
_WEEKDAY = re.compile(r"([월화수목금토일])\s*요일")


def _number_in(span: str, last: bool = False) -> str | None:
    fractions = list(_KO_FRACTION.finditer(span))
    numbers = list(_NUMBER.finditer(span))
    candidates = [(m.start(), f"{m.group(2)}/{m.group(1)}") for m in fractions]
    taken = [range(m.start(), m.end()) for m in fractions]
    candidates += [(m.start(), m.group()) for m in numbers if not any(m.start() in r for r in taken)]
    if not candidates:
        return None
    _, value = max(candidates) if last else min(candidates)
    return value.replace(",", "").replace(" ", "")


def _weekday_in(span: str, last: bool = False) -> str | None:
    found = _WEEKDAY.findall(span)
    return (found[-1] if last else found[0]) + "요일" if found else None


def extract_answer(text: str, kind: str = "number") -> str | None:
    """The final answer in a completion, normalised ("1200", "3/4", "수요일"); None when there is none."""
    _, answer = split_thinking(nfc(text))
    find = _weekday_in if kind == "weekday" else _number_in
    for pattern in (_TAG, _BOXED, _FINAL):
        spans = pattern.findall(answer)
        if spans and (value := find(spans[-1])) is not None:
            return value
    return find(answer, last=True)


def answer_kind(gold: str) -> str:
    return "weekday" if gold in WEEKDAYS else "number"


def same_answer(prediction: str | None, gold: str) -> bool:
    """Compare an extracted answer with the gold one (math-verify for numbers, exact for weekdays)."""
    if prediction is None:
        return False
    if answer_kind(gold) == "weekday":
        return prediction == gold
    from math_verify import parse, verify

    # No timeouts: they use signals, which only work in the main thread; these are short number strings,
    # so math-verify's warning about the missing timeout is silenced.
    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).setLevel(logging.ERROR)
    gold_parsed = parse(gold, parsing_timeout=None)
    predicted = parse(prediction, parsing_timeout=None)
    return bool(predicted) and verify(gold_parsed, predicted, timeout_seconds=None)


def is_correct(completion: str, gold: str) -> bool:
    """Whether a completion's final answer equals the gold answer."""
    return same_answer(extract_answer(completion, answer_kind(gold)), gold)
