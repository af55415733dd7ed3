"""Korean numerals in math answers: digits with myriad units ("3만", "1억 2천만"), Sino-Korean words ("이천오백")
and native words before a counter ("스물세 개", "다섯입니다"). Read by data_tools.math_grader."""

from __future__ import annotations

import math
import re

# Korean myriad units: "3만", "1억 2천만", "2.5만" (not "3만큼": as much as 3). 조 is left out: in word problems
# "4조" is four groups ("3조각": three pieces) far more often than four trillion.
_KO_UNIT = {"십": 10, "백": 100, "천": 1000, "만": 10**4, "억": 10**8}
KO_UNIT_NUMBER = re.compile(r"(?<![\d,])\d[\d,]*(?:\.\d+)?\s*(?:[십백천]|[만억](?!큼))(?:\s*(?:\d[\d,]*(?:\.\d+)?)?\s*"
                             r"(?:[십백천]|[만억](?!큼)))*(?:\s*\d[\d,]*(?![\d.]))?")
_KO_UNIT_PART = re.compile(r"(\d[\d,]*(?:\.\d+)?)?\s*([십백천만억])?")


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
        return ko_unit_value("".join(_SINO_DIGITS.get(c, c) for c in word)), len(word) > 1
    return None


def _counted(text: str) -> bool:
    """Whether text is a counter with at most an ending: "개", "원입니다", "마리예요"."""
    return any(text.startswith(c) and text[len(c):] in _ENDINGS for c in _COUNTERS)


def hangul_number_in(span: str) -> str | None:
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
