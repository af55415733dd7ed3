"""The Korean math answer checker: one grader for the GRPO reward and for evaluation.

It finds the final answer in a Korean completion — answer tags, `\\boxed{}`, a final "정답: 42" /
"정답은 42입니다" / "답은 42개" line, or else the last number of the answer (after any `<think>` block) —
reads "1,200원", "3/4", "4분의 3", "0.75", "75%", "3만 원", "1억 2천만", full-width "５００" and weekday
names, TeX as Qwen3 writes it (`\\boxed{\\frac{3}{4}}`, "8{,}500"), and "3시간 20분" as 200 minutes (durations are
asked in minutes; a gold answer written so is read the same way). Of a final line it takes what follows the last "=" or "≈" ("정답: 3 + 4 = 7") but not a bracketed note
after it ("정답: 12개 (검산: 12 ÷ 3 = 4)"), and the number that ends the statement, not one in its subject
("정답: 6년 뒤 아버지의 나이는 69살입니다" is 69). It compares with math-verify, so "0.75" equals "3/4", except that
where the question asks for 기약분수 (lowest terms) "2/8" is not 1/4, and a final answer that hedges between
several ("정답: 3, 4", "3개 또는 4개") is no answer. A final answer written in hangul words is
read too — Sino-Korean "오백 원", "이천오백", native "스물세 개", "다섯입니다" — but only in an answer tag,
`\\boxed{}` or "정답:" line with no digits, and a one-syllable or attributive numeral ("이", "세", "한") only
before a counter ("세 개"): elsewhere "이" is "this", "세" a syllable of "세상", and "네" is "yes". A power is its
value ("10^3", "3 \\times 10^4"), a unit's exponent ("12 cm^2") no answer. A gold answer with a root, π, a variable
or a ratio ("2\\sqrt{3}", "25\\pi", "x^2+4", "1:2") is compared whole, never by one of its numbers, and so is a
completion's root or π ("\\boxed{2\\sqrt{3}}" is not 3); a unit after a number ("30 km/h", "25°C") is no variable.

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

from data_tools.text import nfc, split_thinking

WEEKDAYS = ("월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일")
_TAG = re.compile(r"<answer>(.*?)</answer>", re.S)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
# "정답:", "답은", "최종 답:", "정답이 ...", "[정답] ...", "**정답**\n...", "정답 700원"; not "대답은" (a reply) nor "이 답은"
# (a reference to it); the last one in the answer counts, to the end of its line
_FINAL = re.compile(r"(?<![가-힣])(?:최종\s*)?(?:(?:정답|해답)(?:[\]】*_]*\s*(?:은|는|이|:|：|=|→)|[\]】*_]+|\s+(?=-?\d))"
                    r"|(?<![이그] )답\s*(?:은|는|:|：|=))\s*")
# TeX as Qwen3 writes answers: \frac{3}{4} is 3/4, 8{,}500 is 8,500, \text{원} is 원, \% is %, a unit's cm^2 is cm²
_TEX = ((re.compile(r"\\[dt]?frac\s*\{\s*(-?[\d.,]+)\s*\}\s*\{\s*(-?[\d.,]+)\s*\}"), r"\1/\2"),
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
# An answer that is no number: a root, π or a power left as written ("2\sqrt{3}", "25π"); letter variables
# ("x^2+4", not the units m, g, L, km/h or °C) make a gold answer one too. Its math-verify reading is compared, not one of its numbers.
_SYMBOLIC = re.compile(r"\\sqrt|√|\\pi|π|\^")
_LETTER = r"(?<![\\A-Za-z°])(?<!°\s)(?![gLlm](?![A-Za-z]))[A-Za-z](?![A-Za-z])"  # x, not \pi, cm, m or °C
_VARIABLE = re.compile(_LETTER)
_MATH = re.compile(rf"(?:\\[A-Za-z]+|{_LETTER}|[-+*/^()\[\]{{}}.,\d√π²³×÷·]|\s)+")  # an expression in TeX or Unicode
_MATH_TERM = re.compile(rf"[\dπ√]|\\pi|{_LETTER}")
_ROOT = re.compile(r"√\s*(\d+(?:\.\d+)?|[A-Za-z]|\{[^{}]*\}|\([^()]*\))")
# A ratio, "1:2" or "1 대 2": a gold one is compared as a ratio, not as its first number
_RATIO = re.compile(r"(?<![\d,.])-?\d[\d,]*(?:\.\d+)?(?:\s*(?::|대)\s*-?\d[\d,]*(?:\.\d+)?)+")
# a note after the answer, "(검산: 12 ÷ 3 = 4)", and a corrected answer, "12가 아니라 15"
_NOTE = re.compile(r"[(\[（【][^)\]）】]*[)\]）】]?")
_NOT_BUT = re.compile(r"(?:이|가)?\s*아니(?:라|고)")
_KO_FRACTION = re.compile(r"(?<![\d,])(\d[\d,]*)\s*분의\s*(\d[\d,]*)")  # "4분의 3" is 3/4
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?")
_DURATION = re.compile(r"(?<![\d,])(\d{1,9})\s*시간\s*(\d{1,9})\s*분(?!의)")  # "3시간 20분" is 200 minutes; "4분의 3" is a fraction
# What may follow the number (or weekday) that a statement ends on: a unit or counter and an ending, attached
# ("69살입니다", "1,200원", "75%", "$69$"), then the end, a punctuation mark or, after a copula, anything ("12개입니다
# 3개씩 4묶음이니까"). "6년 뒤" goes on, so its 6 is not it. A number that opens the answer may end on a connective
# ("정답: 12개이며 4묶음입니다", "12개인데, ..."): what follows is about it. Not a causal one: in "2시간이므로 120분",
# "3개이므로 모두 12개" or "4,000원이므로 거스름돈은 1,000원" the first number is the reason, the answer follows.
_JOINS = r"(?:이며|이고|인데|이지만)(?!\w)"
_JOINED = re.compile(rf"\s*(?:[^\W\d_]|[%$*°])*?{_JOINS}")
_ENDS_STATEMENT = re.compile(r"\s*(?:[^\W\d_]|[%$*°])*(?:\s?(?:입니다|이에요|예요|이다)(?!\w)|\s*(?:[.,!?;:…~)\]}」』\"'”’·*—–-]|$))")
# A hedge: two or more answers offered as alternatives ("정답: 3, 4", "3개 또는 4개", "수요일이나 목요일"); the whole
# final statement is the list. Not "1,200" (a thousands comma), nor a list the answer gives a reason with, nor
# "12개이며, 4묶음" (a connective). A check after the answer's sentence is no answer (see _answer_part).
_SENTENCE, _CHECK = re.compile(r"(?<=[.!?。])\s+"), re.compile(r"\W*(?:검산|확인)")
_CONCLUSION, _APPROX = re.compile(r"따라서|그러므로|그래서|결국|즉"), re.compile(r"≈|≒|\\approx(?![A-Za-z])")
_ITEM = r"(?:-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|[월화수목금토일]요일)[^\W\d_]{0,4}"
_HEDGE = re.compile(rf"\s*\**({_ITEM})\**((?:\s*(?:,\s|、|또는|혹은|아니면|(?<=[^\W\d_])이나|(?<=[^\W\d_])나|\bor\b)\s*"
                    rf"\**{_ITEM}\**)+)\s*(?:입니다|이에요|예요|이다|중\s*하나(?:입니다)?)?\s*[.!]?\s*")
_LOWEST_TERMS = re.compile(r"기약\s*분수|lowest\s+terms|simplest\s+form", re.I)
_PLAIN_GOLD = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|-?\d*\.\d+")
_WEEKDAY = re.compile(r"([월화수목금토일])\s*요일")
# Korean myriad units: "3만", "1억 2천만", "2.5만" (not "3만큼": as much as 3). 조 is left out: in word problems
# "4조" is four groups ("3조각": three pieces) far more often than four trillion.
_KO_UNIT = {"십": 10, "백": 100, "천": 1000, "만": 10**4, "억": 10**8}
_KO_UNIT_NUMBER = re.compile(r"(?<![\d,])\d[\d,]*(?:\.\d+)?\s*(?:[십백천]|[만억](?!큼))(?:\s*(?:\d[\d,]*(?:\.\d+)?)?\s*"
                             r"(?:[십백천]|[만억](?!큼)))*(?:\s*\d[\d,]*(?![\d.]))?")
_KO_UNIT_PART = re.compile(r"(\d[\d,]*(?:\.\d+)?)?\s*([십백천만억])?")
_MINUS = re.compile(r"^(\s*\$?\s*)-\s+(?=\d)")  # "- 5" opening an answer
# full-width digits and signs (a Korean IME's "５００") and the TeX / Unicode minus sign, read as ASCII
_FULL_WIDTH = str.maketrans("０１２３４５６７８９，．／－＝％−﹣：∶", "0123456789,./-=%--::")  # and U+2212 minus


def _ko_unit_value(text: str) -> str:
    """The value of "1억 2천만 5" as digits: small units (십 백 천) add up within a myriad, 만 and 억 scale it."""
    total, section = 0.0, 0.0
    for number, unit in _KO_UNIT_PART.findall(text):
        value = float(number.replace(",", "")) if number else 0.0
        if unit in ("만", "억"):
            total += (section + value or 1.0) * _KO_UNIT[unit]  # "만 원" is 10000
            section = 0.0
        elif unit:
            section += (value or 1.0) * _KO_UNIT[unit]
        else:
            section += value
    result = total + section
    if not math.isfinite(result):  # hundreds of digits (a generation loop): no answer equals it
        return "inf"
    return str(int(result)) if result == int(result) else repr(result)


def _stated(span: str, candidates: list[tuple[int, int, str]]) -> str:
    """Of (start, end, value) candidates in a final answer, the first that ends a statement ("나이는 69살입니다"),
    else the last: Korean puts the answer in the predicate, after its subject ("6년 뒤 아버지의 나이는")."""
    ending = [c for c in candidates if _ENDS_STATEMENT.match(span, c[1])]
    first = min(candidates)  # "12개이며 4묶음입니다": the number that opens the span, joined to what follows
    if not re.search(r"\w", span[: first[0]]) and _JOINED.match(span, first[1]):
        ending.append(first)
    return min(ending)[2] if ending else max(candidates)[2]


def _number_in(span: str, last: bool = False) -> str | None:
    """The answer number of a final-answer span (see _stated), or with `last` the last number of running text."""
    fractions = list(_KO_FRACTION.finditer(span))
    durations = list(_DURATION.finditer(span))
    units = [m for m in _KO_UNIT_NUMBER.finditer(span) if not any(f.start() <= m.start() < f.end() for f in fractions)]
    numbers = list(_NUMBER.finditer(span))
    candidates = [(m.start(), m.end(), f"{m.group(2)}/{m.group(1)}") for m in fractions]
    candidates += [(m.start(), m.end(), str(int(m.group(1)) * 60 + int(m.group(2)))) for m in durations]
    candidates += [(m.start(), m.end(), _ko_unit_value(m.group())) for m in units]
    taken = [range(m.start(), m.end()) for m in fractions + durations + units]
    candidates += [(m.start(), m.end(), m.group()) for m in numbers if not any(m.start() in r for r in taken)]
    if not candidates:
        return None
    value = max(candidates)[2] if last else _stated(span, candidates)
    return value.replace(",", "").replace(" ", "")


# Numbers in hangul words. Sino-Korean: digits 일..구 before 십 백 천 within a myriad, 만 and 억 scale it.
_SINO_DIGITS = dict(zip("일이삼사오육륙칠팔구", "1234566789"))
_SINO_SMALL = "(?:[일이삼사오육륙칠팔구]?천)?(?:[일이삼사오육륙칠팔구]?백)?(?:[일이삼사오육륙칠팔구]?십)?[일이삼사오육륙칠팔구]?"
_SINO = re.compile(f"(?:{_SINO_SMALL}억)?(?:{_SINO_SMALL}만)?{_SINO_SMALL}")
# Native Korean: the tens, then a unit; the attributive forms ("한 개", "스무 살") stand only before a counter.
_NATIVE_TENS = {"열": 10, "스물": 20, "스무": 20, "서른": 30, "마흔": 40, "쉰": 50, "예순": 60, "일흔": 70, "여든": 80,
                "아흔": 90}
_NATIVE_UNITS = {"하나": 1, "둘": 2, "셋": 3, "넷": 4, "다섯": 5, "여섯": 6, "일곱": 7, "여덟": 8, "아홉": 9}
_NATIVE_ATTRIBUTIVE = {"한": 1, "두": 2, "세": 3, "석": 3, "서": 3, "네": 4, "넉": 4, "너": 4, "닷": 5, "엿": 6}
# Counters and units of word problems, and the endings a bare number takes ("다섯입니다").
_COUNTERS = ("원", "개", "명", "마리", "권", "살", "장", "대", "번", "자루", "송이", "그루", "켤레", "벌", "잔", "병",
             "봉지", "상자", "쪽", "층", "점", "시간", "분", "초", "일", "주", "달", "개월", "년", "배", "칸", "줄", "곳",
             "가지", "채", "알", "통", "판", "회", "차", "사람", "쌍", "묶음", "바구니", "팀", "모둠", "반", "학년",
             "킬로그램", "그램", "킬로미터", "센티미터", "미터", "리터", "밀리리터", "도", "퍼센트", "%")
_ENDINGS = ("입니다", "이에요", "예요", "이다", "이요", "이며", "이고", "임", "이야", "야", "다", "요", "")
_PUNCTUATION = ".,!?)]}\"'”’」』·…:;"


def _native_value(word: str) -> tuple[int, bool] | None:
    """(value, whether it stands alone) of a native Korean numeral, e.g. "스물세" is (23, False)."""
    for tens, ten in (*_NATIVE_TENS.items(), ("", 0)):
        if not word.startswith(tens):
            continue
        rest = word[len(tens):]
        if rest in _NATIVE_UNITS:
            return ten + _NATIVE_UNITS[rest], True
        if rest in _NATIVE_ATTRIBUTIVE:
            return ten + _NATIVE_ATTRIBUTIVE[rest], False
        if tens and not rest:
            return ten, tens not in ("스무",)
    return None


def _hangul_value(word: str) -> tuple[str, bool] | None:
    """(digits, whether it stands alone) of a whole hangul numeral word; a one-syllable Sino-Korean numeral
    ("이", "만") does not stand alone."""
    native = _native_value(word)
    if native is not None:
        return str(native[0]), native[1]
    if _SINO.fullmatch(word):
        return _ko_unit_value("".join(_SINO_DIGITS.get(c, c) for c in word)), len(word) > 1
    return None


def _counted(text: str) -> bool:
    """Whether text is a counter with at most an ending: "개", "원입니다", "마리예요"."""
    return any(text.startswith(c) and text[len(c):] in _ENDINGS for c in _COUNTERS)


def _hangul_number_in(span: str) -> str | None:
    """The first number written in hangul words in a final-answer span, read only where it is a number: a word
    before a counter ("세 개", "오백원"), or a numeral that stands alone ("다섯입니다", "정답: 이천오백")."""
    words = [word.strip(_PUNCTUATION) for word in span.split()]
    for i, word in enumerate(words):
        following = words[i + 1] if i + 1 < len(words) else ""
        for cut in range(len(word), 0, -1):  # the longest numeral the word starts with: "이십일 개" is 21
            value, rest = _hangul_value(word[:cut]), word[cut:]
            if value is None or (rest and word[cut - 1] == "이" and "이" + rest in _ENDINGS):
                continue  # not a numeral, or "오백이다": 500 and the copula, not 502
            digits, alone = value
            if _counted(rest) or (not rest and _counted(following)) or (alone and rest in _ENDINGS):
                return digits
    return None


def _math_in(span: str, last: bool = False) -> str | None:
    """The answer expression of a final-answer span ("넓이는 25π cm²입니다" is 25\\pi), as _number_in, in TeX."""
    found = [(m.start(), m.end(), m.group().strip(" .,")) for m in _MATH.finditer(span) if _MATH_TERM.search(m.group())]
    if not found or len(expr := max(found)[2] if last else _stated(span, found)) > 200:  # no answer is that long
        return None
    expr = expr.replace("π", "\\pi ").replace("×", "\\times ")
    expr = _ROOT.sub(lambda m: "\\sqrt{" + m.group(1).strip("{}()") + "}", expr).replace("÷", "\\div ")
    return expr.replace("²", "^{2}").replace("³", "^{3}").replace("·", "\\cdot ").strip()


def _ratio_in(span: str, last: bool = False) -> str | None:
    """The answer ratio of a final-answer span, as _number_in, its terms as numbers: "1 대 2" is "1:2"."""
    found = [(m.start(), m.end(), m.group()) for m in _RATIO.finditer(span)]
    if not found:
        return None
    ratio = max(found)[2] if last else _stated(span, found)
    terms = (term.replace(",", "") for term in re.split(r"\s*(?::|대)\s*", ratio))
    return ":".join(term.rstrip("0").rstrip(".") if "." in term else term for term in terms)


def _weekday_in(span: str, last: bool = False) -> str | None:
    """The answer weekday of a final-answer span ("월요일에서 3일 뒤인 목요일" is 목요일), as _number_in."""
    found = [(m.start(), m.end(), m.group(1) + "요일") for m in _WEEKDAY.finditer(span)]
    if not found:
        return None
    return max(found)[2] if last else _stated(span, found)


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
    """The content of the last \\boxed{...}, nested braces included."""
    found = None
    for match in _BOXED.finditer(text):
        depth, end = 1, match.end()
        while end < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[end], 0)
            end += 1
        found = text[match.end() : end - 1 if depth == 0 else end]
    return found


def _final_line(text: str) -> str | None:
    """What follows the last "정답:" / "답은" of the answer, to the end of its line."""
    marks = list(_FINAL.finditer(text))
    if not marks:
        return None
    line = text[marks[-1].end() :].split("\n", 1)[0]
    return _MINUS.sub(r"\1-", line) if "\n" not in marks[-1].group() else line  # "- 5" on a line of its own: a bullet


def _spans(answer: str) -> list[str | None]:
    """Where a final answer is stated, most explicit first: answer tags, \\boxed{}, a "정답:" line. A "- 5" that
    opens one is -5 (TeX spacing, "정답: - 5"), except on a new line after "정답:" (a list bullet)."""
    tags = _TAG.findall(answer)
    return [span and _MINUS.sub(r"\1-", span) for span in (tags[-1] if tags else None, _boxed(answer))] + [
        _final_line(answer)]


def _answer_part(span: str, kind: str = "number") -> str:
    """The stated answer of a span: without a note in brackets (when something is left) or a check in a later
    sentence, after "A가 아니라", and after the last "=" or "≈" ("3 + 4 = 7"; "25π ≈ 78.5" is 78.5, though a
    symbolic answer is the exact 25π). A later sentence's equation is a check when it opens with 검산 / 확인
    ("12개입니다. 검산: 12 ÷ 3 = 4"), or when a number already ended a statement and it draws no conclusion:
    "3개씩 4봉지입니다. 3 × 4 = 12, 따라서 12개" is 12, "5년 뒤의 나이를 구합니다. 12 + 5 = 17살" 17."""
    without_notes = _NOTE.sub(" ", span)
    if any(ch.isalnum() for ch in without_notes):
        span = without_notes
    sentences, stated = _SENTENCE.split(span), False
    for i, sentence in enumerate(sentences):  # each sentence looked at once: linear in the span
        if i and "=" in sentence and (_CHECK.match(sentence) or stated and not _CONCLUSION.search(sentence)):
            span = " ".join(sentences[:i])
            break
        stated = stated or any(_ENDS_STATEMENT.match(sentence, m.end()) for m in _NUMBER.finditer(sentence))
    span = _NOT_BUT.split(span)[-1]
    return re.split(r"=|" + _APPROX.pattern, _APPROX.split(span)[0] if kind == "symbolic" else span)[-1]


def _hedged(span: str, find) -> bool:
    """Whether a final-answer span offers different answers as alternatives ("3, 4", "3개 또는 4개")."""
    if not (match := _HEDGE.fullmatch(span)):
        return False
    items = [match.group(1), *re.findall(_ITEM, match.group(2))]
    return not any(re.search(_JOINS + "$", item) for item in items) and len({find(item) for item in items}) > 1


def extract_answer(text: str, kind: str = "number") -> str | None:
    """The final answer in a completion, normalised ("1200", "3/4", "수요일"); None when there is none, or when
    the final answer hedges between several ("정답: 3, 4" answers nothing: a reward must not pay for a list).
    kind is answer_kind(gold): a "symbolic" answer is TeX ("2\\sqrt{3}"), a "ratio" one "1:2"; a number answer
    stated as a root or with π ("\\boxed{2\\sqrt{3}}") is read as TeX too, so that it is not taken for its 3."""
    _, answer = split_thinking(_detex(nfc(text).translate(_FULL_WIDTH)))
    find = {"weekday": _weekday_in, "symbolic": _math_in, "ratio": _ratio_in}.get(kind, _number_in)
    for span in _spans(answer):
        if span is None:
            continue
        span = _answer_part(span, kind)
        if _hedged(span, find):
            return None
        if kind == "number" and _SYMBOLIC.search(expr := _math_in(span) or ""):
            return expr
        if (value := find(span)) is not None or (kind == "number" and (value := _hangul_number_in(span))):
            return value
    if kind == "number" and _SYMBOLIC.search(expr := _math_in(answer, last=True) or ""):
        return expr
    return find(answer, last=True)


def _gold(gold: str) -> str:
    """A gold answer as the completions are read: NFC, stripped, full-width and U+2212 signs as ASCII."""
    return nfc(str(gold)).strip().translate(_FULL_WIDTH)


def answer_kind(gold: str) -> str:
    """"weekday", "ratio" ("1:2"), "symbolic" ("2\\sqrt{3}", "25\\pi", "x^2+4": see _SYMBOLIC) or "number"."""
    gold = _gold(gold)
    if gold in WEEKDAYS:
        return "weekday"
    if _RATIO.fullmatch(gold):
        return "ratio"
    text = _detex(gold)
    return "symbolic" if _SYMBOLIC.search(text) or _VARIABLE.search(text) else "number"


def _gold_number(gold: str) -> str:
    """A gold number as completions are read, where math-verify alone would misread it: "3시간 20분" is 200 (it
    reads 20), "1만 2천 원" 12000, "4분의 3" 3/4, "\\frac{3}{4}" 3/4, "오백 원" 500, "10^3" 1000; a symbolic gold
    its expression ("넓이: 25\\pi cm^2" is 25\\pi). Plain numbers are left as they are."""
    if _PLAIN_GOLD.fullmatch(gold) or _HEDGE.fullmatch(gold):  # a list ("1, 2") is math-verify's to compare
        return gold
    text = _detex(gold)
    if answer_kind(gold) == "symbolic":
        return _math_in(text) or gold
    value = _number_in(text) if _NUMBER.search(text) else _hangul_number_in(text)
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
