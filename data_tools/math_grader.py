"""The Korean math answer checker: one grader for the GRPO reward and for evaluation.

It finds the final answer in a Korean completion — answer tags, `\\boxed{}`, a final "정답: 42" /
"정답은 42입니다" / "답은 42개" line, or else the last number of the answer (after any `<think>` block) —
reads "1,200원", "3/4", "4분의 3", "0.75", "75%", "3만 원", "1억 2천만", full-width "５００" and weekday
names, TeX as Qwen3 writes it (`\\boxed{\\frac{3}{4}}`, "8{,}500"), and "3시간 20분" as 200 minutes (durations are
asked in minutes; a gold answer written so is read the same way), "½", and a mixed number ("3\\frac{1}{2}", "3 1/2",
"3½", "2와 1/2", "3과 4분의 1") as one value; "3\\frac{5}{2}" is none (no answer). Of a final line it takes what
follows the last "=" or "≈" ("정답: 3 + 4 = 7") but not a bracketed note after it ("정답: 12개 (검산: 12 ÷ 3 = 4)"),
what follows a correction ("3개, 아니 4개" is 4, and so is "정답: 3개" with "아니, 4개" on the next line), and the
number that ends the statement, not one in its subject ("정답: 6년 뒤 아버지의 나이는 69살입니다" is 69), nor one
given as a reason ("정답: 12개이므로, 4묶음" is 4) or denied ("3:4이므로 1:2가 아닙니다" is 3:4). It compares with
math-verify, so "0.75" equals "3/4", except that where the question asks for 기약분수 (lowest terms) "2/8" is not
1/4, and a final answer that hedges between several ("정답: 3, 4", "3개 또는 4개", "x = 5 또는 x = -5"), gives a
range ("3~4개", "3-4개", "3에서 4개 사이") or is a sum left to do ("3 × 1/2") is no answer (see data_tools.math_hedges).
A final answer written in hangul words is read too — Sino-Korean "오백 원", "이천오백", native "스물세 개",
"다섯입니다", not a denied one ("다섯 개가 아닙니다") — but only in an answer tag, `\\boxed{}` or "정답:" line with
no digits, and a one-syllable or attributive numeral ("이", "세", "한") only before a counter ("세 개"):
elsewhere "이" is "this", "세" a syllable of "세상", and "네" is "yes". A power is its value ("10^3",
"3 \\times 10^4"), a unit's exponent ("12 cm^2") no answer. A gold answer with a root, π, a variable or a ratio
("2\\sqrt{3}", "25\\pi", "x^2+4", "1:2") is compared whole, never by one of its numbers, and so is a completion's
root or π ("\\boxed{2\\sqrt{3}}" is not 3), and "±5" is both 5 and -5: it answers a gold "±5" only. A unit after a
number ("30 km/h", "25°C", a gold "5 s" or "2 h") is no variable.

    >>> extract_answer("사과는 모두 1,200원어치예요. 정답: 1,200원")
    '1200'
    >>> is_correct("계산하면 4분의 3이 됩니다.", "0.75")
    True
    >>> is_correct("<think>3+4=7</think>\\n답은 8개입니다.", "7")
    False
    >>> extract_answer("정답: 1만 2천 원")
    '12000'
    >>> extract_answer("정답은 스물세 개입니다.")
    '23'
"""

from __future__ import annotations

import logging
import math
import re

from data_tools.korean_numerals import NUMBER, hangul_numbers_in, mixed_number, numbers_in
from data_tools.math_hedges import (ALTERNATIVE_WORD, BECAUSE, HEDGE, JOINS, NoAnswer, after_corrections, comparable,
                                    goes_on, hedged, offered_together, one_variable, with_corrections)
from data_tools.text import nfc, split_thinking

WEEKDAYS = ("월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일")
_TAG = re.compile(r"<answer>((?:(?!<answer>).)*?)</answer>", re.S)  # each <answer> read to the next one only
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
# "정답:", "답은", "최종 답:", "정답이 ...", "[정답] ...", "**정답**\n...", "정답 700원"; not "대답은" (a reply) nor "이 답은"
# (a reference to it); the last one in the answer counts, to the end of its line
_FINAL = re.compile(r"(?<![가-힣])(?:최종\s*)?(?:(?:정답|해답)(?:[\]】*_]*\s*(?:은|는|이|:|：|=|→)|[\]】*_]+|\s+(?=-?\d))"
                    r"|(?<![이그] )답\s*(?:은|는|:|：|=))\s*")
# TeX as Qwen3 writes answers: \frac{3}{4} (or \frac34) is 3/4, 3\frac{1}{2} is 7/2 (a mixed number, see
# mixed_number; 3\frac{5}{2} is written out "3 5/2", which numbers_in reads as no value),
# 8{,}500 is 8,500, \text{원} is 원, \% is %, a unit's cm^2 is cm²
_FRAC = r"\\[dt]?frac\s*(?:\{\s*(-?[\d.,]+)\s*\}|(\d))\s*(?:\{\s*(-?[\d.,]+)\s*\}|(\d)(?!\d))"  # \frac12: \frac{1}{2}
_TEX = ((re.compile(r"(?<![\d.,^_])(\d{1,9})(?:[ \t]|\\[,;! ])*" + _FRAC),
         lambda m: mixed_number(m[1], m[2] or m[3], m[4] or m[5]) or f"{m[1]} {m[2] or m[3]}/{m[4] or m[5]}"),
        (re.compile(_FRAC), lambda m: f"{m[1] or m[2]}/{m[3] or m[4]}"),
        (re.compile(r"\{,\}"), ","),
        (re.compile(r"(?<=\d)\\[,;! ](?=\d{3}(?!\d))"), ""),  # 8\,500: a thin space between thousands
        (re.compile(r"\\(?:text|mathrm|textrm|mathbf|textbf|operatorname)\s*\{([^{}]*)\}"), r"\1"),
        (re.compile(r"\\([%$])"), r"\1"),
        (re.compile(r"\\[,;:! ]|\\(?:left|right)\b"), " "),
        (re.compile(r"(?<=[A-Za-z])\s*\^\s*(?:\{\s*([23])\s*\}|([23])(?!\d))"), lambda m: "²³"[int(m[1] or m[2]) - 2]),
        # a unit after a number is one word: "30 km/h" is "30 kmh", "9.8 m/s²" "9.8 ms²" (its h or s is no variable)
        (re.compile(r"(?<=\d)(\s*(?:[A-Za-z]{2,}|[gLlm])[²³]?)\s*/\s*(?=[A-Za-z])"), r"\1"))
# a power of numbers is its value ("10^3", "3 \times 10^{4}", "5²"); one too large for an answer stays as written
_POWER = re.compile(r"(?<![\d.,^])(?:(\d+(?:\.\d+)?)\s*(?:\\times|\\cdot|[×·*])\s*)?(\d+)\s*"
                    r"(?:\^\s*(?:\{\s*(\d+)\s*\}|(\d+))|([²³]))(?![\d.])")
# An answer that is no number: a root, π or a power left as written ("2\sqrt{3}", "25π"), or two values, "±5"
# (math-verify reads it as the set {-5, 5}: a gold 5 or -5 alone is not it, a gold ±5 is); letter variables
# ("x^2+4", not the units m, g, L, km/h or °C) make a gold answer one too. Its math-verify reading is compared, not
# one of its numbers.
_SYMBOLIC = re.compile(r"\\sqrt|√|\\pi|π|\^|±|∓|\\(?:pm|mp)(?![A-Za-z])")
_LETTER = r"(?<![\\A-Za-z°])(?<!°\s)(?![gLlm](?![A-Za-z]))[A-Za-z](?![A-Za-z])"  # x, not \pi, cm, m or °C
_VARIABLE = re.compile(_LETTER)
# A gold answer that is a number and s or h, "5 s", "0.5 h", is seconds or hours (초, 시간), as m, g and L are units
# in _LETTER: read as a number, "3만 초" and "2분의 1시간" answer it. Only alone: in "2h + 3" h is a variable.
_TIME_GOLD = re.compile(r"\s*-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?\s*[sh]\s*")
_MATH = re.compile(rf"(?:\\[A-Za-z]+|{_LETTER}|[-+*/^()\[\]{{}}.,\d√π²³×÷·±∓]|\s)+")  # an expression in TeX or Unicode
_MATH_TERM = re.compile(rf"[\dπ√]|\\pi|{_LETTER}")
_ROOT = re.compile(r"√\s*(\d+(?:\.\d+)?|[A-Za-z]|\{[^{}]*\}|\([^()]*\))")
# A ratio, "1:2" or "1 대 2": a gold one is compared as a ratio, not as its first number
_RATIO = re.compile(r"(?<![\d,.])-?\d[\d,]*(?:\.\d+)?(?:\s*(?::|대)\s*-?\d[\d,]*(?:\.\d+)?)+")
# a note after the answer, "(검산: 12 ÷ 3 = 4)"; "(정정: 4개)" is a correction, "(또는 4개)" an alternative, no note
_NOTE = re.compile(rf"[(\[（【](?!\s*(?:정정|{ALTERNATIVE_WORD}))[^)\]）】]*[)\]）】]?")
# What may follow the number (or weekday) that a statement ends on: a unit or counter and an ending, attached
# ("69살입니다", "1,200원", "75%", "$69$"), then the end, a punctuation mark or, after a copula, anything ("12개입니다
# 3개씩 4묶음이니까"). "6년 뒤" goes on, so its 6 is not it. A number that opens the answer may end on a connective
# ("정답: 12개이며 4묶음입니다", "12개인데, ..."): what follows is about it. Not a causal one: in "2시간이므로 120분",
# "3개이므로 모두 12개" or "4,000원이므로 거스름돈은 1,000원" the first number is the reason, the answer follows.
_JOINED = re.compile(rf"\s*(?:[^\W\d_]|[%$*°])*?{JOINS}")
# ... and a causal one ends no statement, comma or not: in "정답: 12개이므로, 4묶음" 12 is the reason, 4 the answer.
_CAUSAL = re.compile(rf"\s*(?:[^\W\d_]|[%$*°])*?{BECAUSE}")
# A number denied is no answer: "3:4이므로 1:2가 아닙니다" is 3:4, "12개가 아닌 15개" 15 ("12가 아니라 15" is a
# correction: see data_tools.math_hedges). "3개 아니면 4개" (or else) denies nothing: it is a hedge.
_NEGATED = re.compile(r"\s*(?:[^\W\d_]|[%$*°])*?\s?(?:아니(?!면)|아닙|아닌|아님|아냐)")
# (?=(\s*))\1 takes a run of spaces whole, as a possessive \s*+ would (Python 3.11): trying each split of it
# between two \s* made a 20,000-space run take minutes
_ENDS_STATEMENT = re.compile(r"(?=(\s*))\1(?:[^\W\d_]|[%$*°])*(?:\s?(?:입니다|이에요|예요|이다)(?!\w)|\s*"
                             r"(?:[.,!?;:…~)\]}」』\"'”’·*—–-]|$))")
_SENTENCE, _CHECK = re.compile(r"(?<=[.!?。])\s+"), re.compile(r"\W*(?:검산|확인)")
_CONCLUSION, _APPROX = re.compile(r"따라서|그러므로|그래서|결국|즉"), re.compile(r"≈|≒|\\approx(?![A-Za-z])")
_LOWEST_TERMS = re.compile(r"기약\s*분수|lowest\s+terms|simplest\s+form", re.I)
_PLAIN_GOLD = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|-?\d*\.\d+")
_WEEKDAY = re.compile(r"([월화수목금토일])\s*요일")
_MINUS = re.compile(r"^(\s*(?:\$\s*)?)-\s+(?=\d)")  # "- 5" opening an answer
# full-width digits and signs (a Korean IME's "５００"), the TeX / Unicode minus sign and the fraction slash, as ASCII
_FULL_WIDTH = str.maketrans("０１２３４５６７８９，．／－＝％−﹣：∶⁄", "0123456789,./-=%--::/")  # and U+2212 minus
# Unicode vulgar fractions: "½" is 1/2, "3½" the mixed number "3 1/2" (see numbers_in)
_VULGAR = dict(zip("½⅓⅔¼¾⅕⅖⅗⅘⅙⅚⅐⅛⅜⅝⅞⅑⅒↉",
                   "1/2 1/3 2/3 1/4 3/4 1/5 2/5 3/5 4/5 1/6 5/6 1/7 1/8 3/8 5/8 7/8 1/9 1/10 0/3".split()))
_VULGAR_FRACTION = re.compile(f"(\\d?)([{''.join(_VULGAR)}])(?=([\\d{''.join(_VULGAR)}])?)")


def _ascii(text: str) -> str:
    """NFC, full-width digits and signs as ASCII, "3½" as "3 1/2"."""
    text = nfc(text).translate(_FULL_WIDTH)
    return _VULGAR_FRACTION.sub(lambda m: (m[1] and m[1] + " ") + _VULGAR[m[2]] + (" " if m[3] else ""), text)


def _ends(span: str, end: int) -> bool:
    """Whether what ends at `end` ends a statement (see _ENDS_STATEMENT) other than a reason ("2시간이므로,")."""
    return bool(_ENDS_STATEMENT.match(span, end)) and not _CAUSAL.match(span, end)


def _stated(span: str, candidates: list[tuple[int, int, str | None]], last: bool = False) -> str | None:
    """Of (start, end, value) candidates in a final answer, the first that ends a statement ("나이는 69살입니다"),
    else the last: Korean puts the answer in the predicate, after its subject ("6년 뒤 아버지의 나이는"). With `last`
    (running text) the last. A denied one ("1:2가 아닙니다") is never it; None where no other is left. Raises
    NoAnswer where it is joined to another value by "또는", a range ("3~4개") or an operator, or has no value
    ("3 5/2"): see data_tools.math_hedges."""
    candidates = sorted(c for c in candidates if not _NEGATED.match(span, c[1]))
    if not candidates:
        return None
    first = candidates[0]  # "12개이며 4묶음입니다": the number that opens the span, joined to what follows
    if last:
        chosen = candidates[-1]
    elif not re.search(r"\w", span[: first[0]]) and _JOINED.match(span, first[1]):
        chosen = first
    else:  # "5 또는", "3~4개": the statement goes on
        chosen = next((c for c, following in zip(candidates, [*candidates[1:], None]) if _ends(span, c[1])
                       and not goes_on(span, c, following)), candidates[-1])
    i = candidates.index(chosen)
    nearby = candidates[max(i - 1, 0) : i + 2]
    for before, after in zip(nearby, nearby[1:]):
        if offered_together(span, before, after):
            raise NoAnswer(span[before[0] : after[1]])
    if chosen[2] is None:
        raise NoAnswer(span[chosen[0] : chosen[1]])
    return chosen[2]


def _number_in(span: str, last: bool = False) -> str | None:
    """The answer number of a final-answer span (see _stated), or with `last` the last number of running text."""
    return comparable(_stated(span, numbers_in(span), last))


def _hangul_in(span: str) -> str | None:
    """The answer number of a final-answer span written in hangul words ("다섯 개가 아니라 여섯 개" is 6), as _number_in."""
    return _stated(span, hangul_numbers_in(span))


def _math_in(span: str, last: bool = False) -> str | None:
    """The answer expression of a final-answer span ("넓이는 25π cm²입니다" is 25\\pi), as _number_in, in TeX."""
    found = [(m.start(), m.end(), m.group().strip(" .,")) for m in _MATH.finditer(span) if _MATH_TERM.search(m.group())]
    expr = _stated(span, found, last) if found else None
    if not expr or len(expr) > 200:  # no answer is that long
        return None
    expr = expr.replace("π", "\\pi ").replace("×", "\\times ").replace("±", "\\pm ").replace("∓", "\\mp ")
    expr = _ROOT.sub(lambda m: "\\sqrt{" + m.group(1).strip("{}()") + "}", expr).replace("÷", "\\div ")
    return expr.replace("²", "^{2}").replace("³", "^{3}").replace("·", "\\cdot ").strip()


def _symbolic_in(span: str, last: bool = False) -> str | None:
    """A number answer stated as a root or with π ("\\boxed{2\\sqrt{3}}" is not 3), in TeX, as _math_in; None where it
    is none. A hedge or sum of numbers alone is the number reading's to find: "2와 1/2" is one mixed number."""
    try:
        expr = _math_in(span, last)
    except NoAnswer:
        if _SYMBOLIC.search(span):
            raise
        return None
    return expr if expr and _SYMBOLIC.search(expr) else None


def _ratio_in(span: str, last: bool = False) -> str | None:
    """The answer ratio of a final-answer span, as _number_in, its terms as numbers: "1 대 2" is "1:2"."""
    found = [(m.start(), m.end(), m.group()) for m in _RATIO.finditer(span)]
    if not found:
        return None
    if (ratio := _stated(span, found, last)) is None:
        return None
    terms = (term.replace(",", "") for term in re.split(r"\s*(?::|대)\s*", ratio))
    return ":".join(term.rstrip("0").rstrip(".") if "." in term else term for term in terms)


def _weekday_in(span: str, last: bool = False) -> str | None:
    """The answer weekday of a final-answer span ("월요일에서 3일 뒤인 목요일" is 목요일), as _number_in."""
    found = [(m.start(), m.end(), m.group(1) + "요일") for m in _WEEKDAY.finditer(span)]
    if not found:
        return None
    return _stated(span, found, last)


def _power(match: re.Match) -> str:
    factor, base, exponent = match[1] or "1", match[2], match[3] or match[4] or {"²": "2", "³": "3"}[match[5]]
    if max(len(factor), len(base), 5 * len(exponent)) > 20 or int(exponent) * math.log10(int(base) or 1) > 30:
        return match.group()
    base, exponent = int(base), int(exponent)
    whole, _, decimals = factor.partition(".")
    digits = str(int(whole + decimals) * base**exponent).rjust(len(decimals) + 1, "0")
    return (digits[: -len(decimals)] + "." + digits[-len(decimals) :]).rstrip("0").rstrip(".") if decimals else digits


def _detex(text: str) -> str:
    for pattern, replacement in _TEX:
        text = pattern.sub(replacement, text)
    return _POWER.sub(_power, text)


def _boxed(text: str) -> str | None:
    """The content of the last \\boxed{...}, nested braces included (only the last one is read: reading each to its
    end took seconds on a run of unclosed ones)."""
    match = None
    for match in _BOXED.finditer(text):
        pass
    if match is None:
        return None
    depth, end = 1, match.end()
    while end < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        end += 1
    return text[match.end() : end - 1 if depth == 0 else end]


def _final_line(text: str) -> str | None:
    """What follows the last "정답:" / "답은" of the answer, to the end of its line and of the lines that correct it
    ("정답: 3개\n아니, 4개")."""
    marks = list(_FINAL.finditer(text))
    if not marks:
        return None
    start = marks[-1].end()
    end = text.find("\n", start)
    line = text[start : with_corrections(text, len(text) if end < 0 else end)]
    return _MINUS.sub(r"\1-", line) if "\n" not in marks[-1].group() else line  # "- 5" on a line of its own: a bullet


def _spans(answer: str) -> list[str | None]:
    """Where a final answer is stated, most explicit first: answer tags, \\boxed{}, a "정답:" line. A "- 5" that
    opens one is -5 (TeX spacing, "정답: - 5"), except on a new line after "정답:" (a list bullet)."""
    tags = _TAG.findall(answer)
    return [span and _MINUS.sub(r"\1-", span) for span in (tags[-1] if tags else None, _boxed(answer))] + [
        _final_line(answer)]


def _answer_part(span: str, kind: str = "number") -> str:
    """The stated answer of a span: without a note in brackets (when something is left) or a check in a later
    sentence, after "A가 아니라" or a self-correction ("3개, 아니 4개"), and after the last "=" or "≈" ("3 + 4 = 7";
    "25π ≈ 78.5" is 78.5, though a symbolic answer is the exact 25π), where "x = 5 또는 x = -5" is "x = 5 또는 -5".
    A later sentence's equation is a check when it opens with 검산 / 확인 ("12개입니다. 검산: 12 ÷ 3 = 4"), or when
    a number already ended a statement and it draws no conclusion: "3개씩 4봉지입니다. 3 × 4 = 12, 따라서 12개" is 12,
    "5년 뒤의 나이를 구합니다. 12 + 5 = 17살" 17."""
    without_notes = _NOTE.sub(" ", span)
    if any(ch.isalnum() for ch in without_notes):
        span = without_notes
    sentences, stated = _SENTENCE.split(span), False
    for i, sentence in enumerate(sentences):  # each sentence looked at once: linear in the span
        if i and "=" in sentence and (_CHECK.match(sentence) or stated and not _CONCLUSION.search(sentence)):
            span = " ".join(sentences[:i])
            break
        stated = stated or any(_ends(sentence, m.end()) for m in NUMBER.finditer(sentence))
    span = one_variable(after_corrections(span))
    return re.split(r"=|" + _APPROX.pattern, _APPROX.split(span)[0] if kind == "symbolic" else span)[-1]


def extract_answer(text: str, kind: str = "number") -> str | None:
    """The final answer in a completion, normalised ("1200", "3/4", "수요일"); None when there is none, or when
    the final answer hedges between several ("정답: 3, 4", "5 또는 -5" answer nothing: a reward must not pay for a
    list), is a sum left to do ("3 × 1/2") or no mixed number ("3\\frac{5}{2}").
    kind is answer_kind(gold): a "symbolic" answer is TeX ("2\\sqrt{3}"), a "ratio" one "1:2"; a number answer
    stated as a root or with π ("\\boxed{2\\sqrt{3}}") is read as TeX too, so that it is not taken for its 3."""
    _, answer = split_thinking(_detex(_ascii(text)))
    try:
        return _final_answer(answer, kind)
    except NoAnswer:
        return None


def _final_answer(answer: str, kind: str) -> str | None:
    """extract_answer's reading of the answer (after any thinking), TeX and full-width forms read."""
    find = {"weekday": _weekday_in, "symbolic": _math_in, "ratio": _ratio_in}.get(kind, _number_in)
    for span in _spans(answer):
        if span is None:
            continue
        span = _answer_part(span, kind)
        if hedged(span, find):
            return None
        if kind == "number" and (expr := _symbolic_in(span)):
            return expr
        if (value := find(span)) is not None or (kind == "number" and (value := _hangul_in(span))):
            return value
    if kind == "number" and (expr := _symbolic_in(answer, last=True)):
        return expr
    return find(answer, last=True)


def _gold(gold: str) -> str:
    """A gold answer as the completions are read: NFC, stripped, full-width and U+2212 signs as ASCII, "½" 1/2."""
    return _ascii(str(gold)).strip()


def answer_kind(gold: str) -> str:
    """"weekday", "ratio" ("1:2"), "symbolic" ("2\\sqrt{3}", "25\\pi", "x^2+4": see _SYMBOLIC) or "number"."""
    gold = _gold(gold)
    if gold in WEEKDAYS:
        return "weekday"
    if _RATIO.fullmatch(gold):
        return "ratio"
    text = _detex(gold)
    variable = _VARIABLE.search(text) and not _TIME_GOLD.fullmatch(text)
    return "symbolic" if _SYMBOLIC.search(text) or variable else "number"


def _gold_number(gold: str) -> str:
    """A gold number as completions are read, where math-verify alone would misread it: "3시간 20분" is 200 (it
    reads 20), "1만 2천 원" 12000, "4분의 3" 3/4, "\\frac{3}{4}" 3/4, "오백 원" 500, "10^3" 1000; a symbolic gold
    its expression ("넓이: 25\\pi cm^2" is 25\\pi). Plain numbers are left as they are."""
    if _PLAIN_GOLD.fullmatch(gold) or HEDGE.fullmatch(gold):  # a list ("1, 2") is math-verify's to compare
        return gold
    text = _detex(gold)
    try:
        if answer_kind(gold) == "symbolic":
            return _math_in(text) or gold
        value = _number_in(text) if NUMBER.search(text) else _hangul_in(text)
    except NoAnswer:  # "x = 5 또는 x = -5", "3 × 4": math-verify's to compare as written
        return gold
    return value if value is not None else gold


def same_answer(prediction: str | None, gold: str) -> bool:
    """Compare an extracted answer with the gold one (math-verify for numbers and expressions, exact for weekdays
    and ratios)."""
    if prediction is None:
        return False
    gold, kind = _gold(gold), answer_kind(gold)
    if kind in ("weekday", "ratio"):
        return prediction == (_ratio_in(gold) if kind == "ratio" else gold)
    from math_verify import parse, verify

    # No timeouts: they use signals, which only work in the main thread; these are short number strings,
    # so math-verify's warning about the missing timeout is silenced.
    for name in ("math_verify.parser", "math_verify.grader"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # an expression (a symbolic gold, "2\\sqrt{3}" in a completion) is TeX, which math-verify reads between $ signs
    gold_parsed, predicted = (parse(f"${value}$" if kind == "symbolic" or _SYMBOLIC.search(value) else value,
                                    parsing_timeout=None) for value in (_gold_number(gold), prediction))
    return bool(predicted) and verify(gold_parsed, predicted, timeout_seconds=None)


def _in_lowest_terms(value: str) -> bool:
    """Whether an extracted answer is no fraction or one in lowest terms: "1/4" is, "2/8" and "1.5/6" are not."""
    numerator, slash, denominator = value.lstrip("-").partition("/")
    if not slash:
        return True
    return numerator.isdigit() and denominator.isdigit() and math.gcd(int(numerator), int(denominator)) == 1


def is_correct(completion: str, gold: str, question: str | None = None) -> bool:
    """Whether a completion's final answer equals the gold answer. Given the question, one that asks for 기약분수
    (lowest terms) takes no unreduced fraction: "2/8" equals 1/4 but does not answer it."""
    prediction = extract_answer(completion, answer_kind(gold))
    lowest_terms = bool(question) and _LOWEST_TERMS.search(nfc(question)) is not None
    if lowest_terms and prediction is not None and not _in_lowest_terms(prediction):
        return False
    return same_answer(prediction, gold)
