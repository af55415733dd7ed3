"""Numbers as Korean math answers write them: digits with myriad units ("3만", "1억 2천만"), fractions read aloud
("4분의 3"), mixed numbers ("2와 1/2", "2 1/2"), durations ("3시간 20분"), Sino-Korean words ("이천오백") and native
words before a counter ("스물세 개", "다섯입니다"). numbers_in and hangul_numbers_in give each number with its place
and value; data_tools.math_grader picks the answer among them."""

from __future__ import annotations

import functools
import math
import re

# Korean myriad units: "3만", "1억 2천만", "2.5만" (not "3만큼": as much as 3). 조 is left out: in word problems
# "4조" is four groups ("3조각": three pieces) far more often than four trillion.
_KO_UNIT = {"십": 10, "백": 100, "천": 1000, "만": 10**4, "억": 10**8}
KO_UNIT_NUMBER = re.compile(r"(?<![\d,])\d[\d,]*(?:\.\d+)?\s*(?:[십백천]|[만억](?!큼))(?:\s*(?:\d[\d,]*(?:\.\d+)?\s*)?"
                             r"(?:[십백천]|[만억](?!큼)))*(?:\s*\d[\d,]*(?![\d.]))?")
_KO_UNIT_PART = re.compile(r"(\d[\d,]*(?:\.\d+)?)?\s*([십백천만억])?")
_KO_FRACTION = re.compile(r"(?<![\d,])(\d[\d,]*)\s*분의\s*(\d[\d,]*)")  # "4분의 3" is 3/4
# "2와 1/2", "3과 4분의 1": a mixed number as Korean reads it aloud (이와 이분의 일), 5/2 and 13/4, and "3 1/2" as
# written in plain text (the grader reads "3½" so); "3 5/2" or "3과 2분의 5" is no mixed number (see mixed_number)
_MIXED = re.compile(r"(?<![\d,./])(-?)(\d{1,9})(?:\s*[와과]\s*|[ \t]+)(?:(\d{1,9})\s*/\s*(\d{1,9})|(\d{1,9})\s*분의\s*"
                    r"(\d{1,9}))(?![\d,/]|\.\d)")
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?")
# "3시간 20분" is 200 minutes (durations are asked in minutes); "4분의 3" is a fraction
_DURATION = re.compile(r"(?<![\d,])(\d{1,9})\s*시간\s*(\d{1,9})\s*분(?!의)")


def ko_unit_value(text: str) -> str:
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
# Particles after a counter ("세 개에서 네 개 사이", "다섯 명이", "두 개씩"): read after a native numeral only. A
# one-syllable Sino-Korean one is more often a word there: "이 점에서" is "in this respect", "이 분이" "this person".
_PARTICLES = ("에서", "에게", "부터", "까지", "으로", "하고", "이랑", "이나", "보다", "마다", "이", "가", "은", "는", "을",
              "를", "의", "에", "와", "과", "도", "만", "씩", "로", "랑", "나")
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


@functools.lru_cache(maxsize=4096)  # a looping answer repeats its words ("이 이 이 ..."): each is read once
def _hangul_value(word: str) -> tuple[str, bool, bool] | None:
    """(digits, whether it stands alone, whether it is native Korean) of a whole hangul numeral word; a one-syllable
    Sino-Korean numeral ("이", "만") does not stand alone."""
    native = _native_value(word)
    if native is not None:
        return str(native[0]), native[1], True
    if _SINO.fullmatch(word):
        return ko_unit_value("".join(_SINO_DIGITS.get(c, c) for c in word)), len(word) > 1, False
    return None


def _alternation(words) -> str:
    return "|".join(sorted(map(re.escape, words), key=len, reverse=True))  # longest first: "개월" before "개"


# a counter with at most an ending ("개", "원입니다", "마리예요"), and after a native numeral with a particle too
# ("개에서", "명이", "개씩이에요")
_COUNTED = re.compile(f"(?:{_alternation(_COUNTERS)})(?:{_alternation(_ENDINGS)})")
_COUNTED_NATIVE = re.compile(f"(?:{_alternation(_COUNTERS)})(?:{_alternation(_PARTICLES)}){{0,2}}"
                             f"(?:{_alternation(_ENDINGS)})")
_LONGEST_NUMERAL = 24  # "구천구백구십구억구천구백구십구만구천구백구십구": no longer word starts with a numeral
_NUMERAL_START = frozenset("일이삼사오육륙칠팔구십백천만억").union(w[0] for w in (*_NATIVE_TENS, *_NATIVE_UNITS,
                                                                            *_NATIVE_ATTRIBUTIVE))
_WORD = re.compile(r"\S+")


def hangul_numbers_in(span: str) -> list[tuple[int, int, str]]:
    """(start, end, digits) of each number written in hangul words in a final-answer span, read only where it is a
    number: a word before a counter ("세 개", "오백원"), or a numeral that stands alone ("다섯입니다", "정답: 이천오백").
    The grader picks the answer among them as among digits: the one the statement ends on, never a denied one
    ("다섯 개가 아닙니다")."""
    words = [(m.start() + len(m.group()) - len(m.group().lstrip(_PUNCTUATION)), m.group().strip(_PUNCTUATION))
             for m in _WORD.finditer(span)]
    found = []
    for i, (start, word) in enumerate(words):
        if word[:1] not in _NUMERAL_START:
            continue
        # the next word, where nothing stands between: in "네, 반이에요" 네 is "yes", no number of 반 (a class)
        following = words[i + 1][1] if i + 1 < len(words) and span[start + len(word)].isspace() else ""
        for cut in range(min(len(word), _LONGEST_NUMERAL), 0, -1):  # the longest numeral: "이십일 개" is 21
            value, rest = _hangul_value(word[:cut]), word[cut:]
            if value is None or (rest and word[cut - 1] == "이" and "이" + rest in _ENDINGS):
                continue  # not a numeral, or "오백이다": 500 and the copula, not 502
            digits, alone, native = value
            counted = (_COUNTED_NATIVE if native else _COUNTED).fullmatch
            if counted(rest) or (not rest and counted(following)) or (alone and rest in _ENDINGS):
                found.append((start, start + cut, digits))
                break
    return found


def mixed_number(whole: str, numerator: str | None, denominator: str | None) -> str | None:
    """A whole number and a proper fraction as one improper fraction: 3 and 1/2 is "7/2" (reading them side by side,
    31/2, paid a wrong answer). None where the fraction is not proper or its terms are no short whole numbers.
    "3\\frac{5}{2}" is no mixed number: read as one it is 11/2, as a product (TeX's reading) 15/2; a teacher asks for
    5\\frac{1}{2} or 11/2, and a reward that paid either reading would teach the form, so it answers nothing."""
    if not all(term and term.isdigit() and len(term) < 10 for term in (numerator, denominator)):
        return None
    numerator_value, denominator_value = int(numerator), int(denominator)
    if not 0 < numerator_value < denominator_value:
        return None
    return f"{int(whole) * denominator_value + numerator_value}/{denominator_value}"


def _outside(matches, taken: list[re.Match]) -> list[re.Match]:
    """The matches (in order) that start in none of the taken ones: one sweep over both, so that a long run of
    "2분의 1" stays linear (testing each number against every fraction took seconds on 20,000 characters)."""
    spans, kept, i, reach = sorted((m.start(), m.end()) for m in taken), [], 0, -1
    for match in matches:
        while i < len(spans) and spans[i][0] <= match.start():
            reach, i = max(reach, spans[i][1]), i + 1
        if match.start() >= reach:
            kept.append(match)
    return kept


def numbers_in(span: str) -> list[tuple[int, int, str | None]]:
    """(start, end, value) of each number written in digits in a span, each read once, as a whole: "3만 원" is 30000,
    "4분의 3" 3/4, "2와 1/2" and "2 1/2" 5/2, "3시간 20분" 200 (minutes), "1,200" 1,200. A whole number before an
    improper fraction ("3 5/2", "3과 2분의 5") has the value None: it is no number (see mixed_number)."""
    mixed = {m: (value := mixed_number(m[2], m[3] or m[6], m[4] or m[5])) and m[1] + value
             for m in _MIXED.finditer(span)}
    fractions = _outside(_KO_FRACTION.finditer(span), [*mixed])
    durations = list(_DURATION.finditer(span))
    units = _outside(KO_UNIT_NUMBER.finditer(span), [*mixed, *fractions])
    numbers = _outside(NUMBER.finditer(span), [*mixed, *fractions, *durations, *units])  # each read once
    candidates = [(m.start(), m.end(), value) for m, value in mixed.items()]
    candidates += [(m.start(), m.end(), f"{m.group(2)}/{m.group(1)}") for m in fractions]
    candidates += [(m.start(), m.end(), str(int(m.group(1)) * 60 + int(m.group(2)))) for m in durations]
    candidates += [(m.start(), m.end(), ko_unit_value(m.group())) for m in units]
    candidates += [(m.start(), m.end(), m.group()) for m in numbers]
    return candidates
