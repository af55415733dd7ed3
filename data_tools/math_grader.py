"""The Korean math answer checker: one grader for the GRPO reward and for evaluation.

It finds the final answer in a Korean completion — answer tags, `\\boxed{}`, a final "정답: 42" /
"정답은 42입니다" / "답은 42개" line, or else the last number of the answer (after any `<think>` block) —
reads "1,200원", "3/4", "4분의 3", "0.75", "75%", "3만 원", "1억 2천만", full-width "５００" and weekday
names, takes what follows the last "=" of a final line ("정답: 3 + 4 = 7"), and compares with math-verify, so
"0.75" equals "3/4". Numbers written in hangul words ("오백 원") are not read.

    >>> extract_answer("사과는 모두 1,200원어치예요. 정답: 1,200원")
    '1200'
    >>> is_correct("계산하면 4분의 3이 됩니다.", "0.75")
    True
    >>> is_correct("<think>3+4=7</think>\\n답은 8개입니다.", "7")
    False
    >>> extract_answer("정답: 1만 2천 원")
    '12000'
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
# Korean myriad units: "3만", "1억 2천만", "2.5만" (not "3만큼": as much as 3). 조 is left out: in word problems
# "4조" is four groups ("3조각": three pieces) far more often than four trillion.
_KO_UNIT = {"십": 10, "백": 100, "천": 1000, "만": 10**4, "억": 10**8}
_KO_UNIT_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?\s*(?:[십백천]|[만억](?!큼))(?:\s*(?:\d[\d,]*(?:\.\d+)?)?\s*"
                             r"(?:[십백천]|[만억](?!큼)))*(?:\s*\d[\d,]*(?![\d.]))?")
_KO_UNIT_PART = re.compile(r"(\d[\d,]*(?:\.\d+)?)?\s*([십백천만억])?")
# full-width digits and signs (a Korean IME's "５００"), read as ASCII
_FULL_WIDTH = str.maketrans("０１２３４５６７８９，．／－＝％", "0123456789,./-=%")


def _ko_unit_value(text: str) -> str:
    """The value of "1억 2천만 5" as digits: small units (십 백 천) add up within a myriad, 만 and 억 scale it."""
    total, section = 0.0, 0.0
    for number, unit in _KO_UNIT_PART.findall(text):
        value = float(number.replace(",", "")) if number else 0.0
        if unit in ("만", "억"):
            total += (section + value) * _KO_UNIT[unit]
            section = 0.0
        elif unit:
            section += (value or 1.0) * _KO_UNIT[unit]
        else:
            section += value
    result = total + section
    return str(int(result)) if result == int(result) else repr(result)


def _number_in(span: str, last: bool = False) -> str | None:
    fractions = list(_KO_FRACTION.finditer(span))
    units = [m for m in _KO_UNIT_NUMBER.finditer(span) if not any(f.start() <= m.start() < f.end() for f in fractions)]
    numbers = list(_NUMBER.finditer(span))
    candidates = [(m.start(), f"{m.group(2)}/{m.group(1)}") for m in fractions]
    candidates += [(m.start(), _ko_unit_value(m.group())) for m in units]
    taken = [range(m.start(), m.end()) for m in fractions + units]
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
    _, answer = split_thinking(nfc(text).translate(_FULL_WIDTH))
    find = _weekday_in if kind == "weekday" else _number_in
    for pattern in (_TAG, _BOXED, _FINAL):
        spans = pattern.findall(answer)
        if spans and (value := find(spans[-1].rsplit("=", 1)[-1])) is not None:  # "3 + 4 = 7": the result
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
