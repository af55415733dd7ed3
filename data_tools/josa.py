"""Korean particles (josa) that agree with how the word before them is READ.

A particle depends on whether the last syllable you would say has a final consonant (jongseong):
책을 but 사과를. Digits, numbers and Latin letters take the particle of their Korean reading
(3 → 삼 → 3을, 2 → 이 → 2를, 10 → 십 → 10을, 1,200 → 천이백 → 1,200을, URL → 유알엘 → URL을),
and a unit symbol after a number is read as the unit (5km → 오 킬로미터 → 5km를). Generated Korean with a
wrong particle reads as machine text, so every particle after an inserted word should come from here.

    >>> from data_tools.josa import josa
    >>> josa("사과", "을/를"), josa("책", "을/를"), josa("3", "을/를"), josa("2", "을/를")
    ('사과를', '책을', '3을', '2를')
    >>> josa("1,200원", "이/가"), josa("10", "을/를"), josa("100", "을/를"), josa("1,200", "이/가")
    ('1,200원이', '10을', '100을', '1,200이')
    >>> josa("서울", "(으)로"), josa("물", "(으)로"), josa("집", "(으)로"), josa("3", "(으)로"), josa("1", "(으)로")
    ('서울로', '물로', '집으로', '3으로', '1로')
    >>> josa("API", "을/를"), josa("URL", "을/를"), josa("5km", "을/를"), josa("20%", "이/가")
    ('API를', 'URL을', '5km를', '20%가')
    >>> josa("0.75", "은/는"), josa("3/4", "이/가"), josa("사과", "이에요/예요"), josa("🍎", "이/가")
    ('0.75는', '3/4이', '사과예요', '🍎이(가)')
"""

from __future__ import annotations

from data_tools.text import nfc

HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3
RIEUL = 8  # final ㄹ takes 로, like no final at all (서울로, 물로), while other finals take 으로 (집으로)

# Sino-Korean readings: numbers in text are read 일, 이, 삼 ..., and a number ending in zeros is read by
# the place of its last non-zero digit (20 이십, 100 백, 1000 천), or by its group of four (20,000 이만).
DIGITS = "영일이삼사오육칠팔구"
PLACES = "십백천"  # 10, 100, 1000 inside a group of four digits
MYRIADS = "만억조경"  # 10^4, 10^8, 10^12, 10^16

LETTERS = {
    "A": "에이", "B": "비", "C": "씨", "D": "디", "E": "이", "F": "에프", "G": "지", "H": "에이치",
    "I": "아이", "J": "제이", "K": "케이", "L": "엘", "M": "엠", "N": "엔", "O": "오", "P": "피", "Q": "큐",
    "R": "알", "S": "에스", "T": "티", "U": "유", "V": "브이", "W": "더블유", "X": "엑스", "Y": "와이", "Z": "지",
}
# Case-sensitive, so "size M" stays 엠 while "3m" is 미터; only after a number or a space ("몇 km").
UNITS = {
    "km": "킬로미터", "m": "미터", "cm": "센티미터", "mm": "밀리미터",
    "kg": "킬로그램", "g": "그램", "mg": "밀리그램", "t": "톤", "L": "리터", "mL": "밀리리터", "ml": "밀리리터",
}
SYMBOLS = {"%": "퍼센트", "℃": "도", "°": "도"}
POWERS = "²³"  # cm² is read 제곱센티미터: the unit's own last syllable decides
CLOSERS = " \t\n)]}>\"'”’」』》〉】"

# pair -> (after a final consonant, after none, when the reading is unknown)
PAIRS = {
    "은/는": ("은", "는", "은(는)"),
    "이/가": ("이", "가", "이(가)"),
    "을/를": ("을", "를", "을(를)"),
    "과/와": ("과", "와", "과(와)"),
    "아/야": ("아", "야", "아(야)"),
    "이에요/예요": ("이에요", "예요", "(이)에요"),
    "이다/다": ("이다", "다", "(이)다"),
    "이라면/라면": ("이라면", "라면", "(이)라면"),
    "이나/나": ("이나", "나", "(이)나"),
    "(으)로": ("으로", "로", "(으)로"),
}
_ALIASES = {"/".join(reversed(p.split("/"))): p for p in PAIRS if "/" in p} | {"으로/로": "(으)로", "로/으로": "(으)로"}


def syllable_final(ch: str) -> int | None:
    """Jongseong index of one Hangul syllable (0 = none), None for anything else."""
    if len(ch) == 1 and HANGUL_FIRST <= ord(ch) <= HANGUL_LAST:
        return (ord(ch) - HANGUL_FIRST) % 28
    return None


def integer_reading_end(digits: str) -> str:
    """The last syllable said when reading a whole number: "1200" → 이, "20" → 십, "20000" → 만, "0" → 영."""
    digits = digits.lstrip("0")
    if not digits:
        return DIGITS[0]
    zeros = len(digits) - len(digits.rstrip("0"))
    if zeros == 0:
        return DIGITS[int(digits[-1])]
    if zeros >= 4:  # the last non-zero digit sits in a group of four that ends with its 만/억/조/경
        return MYRIADS[min(zeros // 4, len(MYRIADS)) - 1]
    return PLACES[zeros - 1]


def number_reading_end(number: str) -> str | None:
    """Last syllable said for "1,200", "0.75" (영 점 칠오), "3/4" (사분의 삼), or None if it is no number."""
    numerator = number.split("/")[0]  # a fraction is read denominator first: 3/4 → 4분의 3
    whole, _, decimals = numerator.replace(",", "").partition(".")
    if decimals.isdigit():  # digits after the point are read one by one
        return DIGITS[int(decimals[-1])]
    return integer_reading_end(whole) if whole.isdigit() else None


def _trailing(text: str, allowed: str) -> str:
    start = len(text)
    while start > 0 and text[start - 1] in allowed:
        start -= 1
    return text[start:]


def _latin_reading_end(text: str, powered: bool) -> str | None:
    """The last syllable said for Latin letters ending `text`: a unit ("5km"), or letter by letter for an acronym or
    a single letter ("URL", "url", "L"); None for a word ("Google", "iPhone"): how it is said is not in its
    spelling."""
    letters = _trailing(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
    before = text[: len(text) - len(letters)]
    # "5m", "몇 km", "5 L", "4,100(g)", "cm²" and a bare "km" are units; a bare "L" or "m" is more likely the
    # letter, and so is one after a word ("사이즈 L" is 엘): a one-letter unit after a space needs a number before it.
    spaced = before.rstrip()
    after_number = bool(before) and (before[-1].isdigit() or before[-1] == "(" or (before[-1].isspace() and (
        len(letters) > 1 or spaced[-1:].isdigit() or spaced.endswith("몇"))))
    if letters in UNITS and (after_number or (not before and (powered or len(letters) > 1))):
        return UNITS[letters][-1]
    spelled = letters.isupper() or len(letters) <= 3 or not any(v in letters.lower() for v in "aeiouy")
    if not spelled or (not letters.islower() and not letters.isupper()):
        return None  # a word (Google, iPhone, kakao), not an acronym ("url", "html": still spelled out)
    return LETTERS[letters[-1].upper()][-1]


def final_consonant(word: str) -> int | None:
    """Jongseong index of how `word` ends when read aloud (0 = no final), None when that is unknown.

    >>> [final_consonant(w) for w in ("책", "사과", "물", "3", "10", "100", "1,200", "L", "3/4", "😀")]
    [1, 0, 8, 16, 17, 1, 1, 8, 16, None]
    """
    text = nfc(word).rstrip(CLOSERS)
    if not text:
        return None
    last, powered = text[-1], text[-1] in POWERS
    if powered:
        text, last = text[:-1], text[-2:-1]
    if syllable_final(last) is not None:
        return syllable_final(last)
    if last in SYMBOLS:
        return syllable_final(SYMBOLS[last][-1])
    if last.isascii() and last.isalpha():
        end = _latin_reading_end(text, powered)
        return syllable_final(end) if end else None
    if last.isascii() and last.isdigit():
        end = number_reading_end(_trailing(text, "0123456789,./"))
        return syllable_final(end) if end else None
    return None


def _forms(pair: str) -> tuple[str, str, str]:
    key = _ALIASES.get(pair, pair)
    if key not in PAIRS:
        raise ValueError(f"unknown particle pair {pair!r}; use one of: {', '.join(PAIRS)}")
    return PAIRS[key]


def particle(word: str, pair: str) -> str:
    """Only the particle for `word`: particle("책", "을/를") == "을"; both forms ("이(가)") when unknown."""
    with_final, without_final, unknown = _forms(pair)
    final = final_consonant(word)
    if final is None:
        return unknown
    if with_final == "으로":
        return without_final if final in (0, RIEUL) else with_final
    return with_final if final else without_final


def josa(word: str, pair: str) -> str:
    """`word` followed by the particle of `pair` that agrees with it: josa("책", "을/를") == "책을"."""
    return word + particle(word, pair)
