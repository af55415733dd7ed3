"""Personal data in Korean text: e-mail addresses, phone numbers, resident registration numbers (주민등록번호),
card numbers and bank account numbers. Each finder is conservative, because a false hit destroys a good
row: numbers must stand alone (not inside a longer run of digits or a code like SN0101...), RRNs must
carry a real birth date and a valid 7th digit (and a 주민번호 label nearby unless written YYMMDD-SNNNNNN:
"100101 - 1000000" is a subtraction), card numbers must pass the Luhn check and not follow an order or
waybill label (주문번호, 운송장), and account numbers count only next to a bank word (계좌, 은행, 입금...).
Full-width letters and digits are read as ASCII.

    >>> scrub_pii("문의: hong@example.com, 010-1234-5678 (2026-11-25, 1,200,000원)")[0]
    '문의: [EMAIL], [PHONE] (2026-11-25, 1,200,000원)'
"""

from __future__ import annotations

import datetime
import re
import string
from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar

from data_tools.gates.base import FIELDS, GateResult, check_choice, map_turn_texts, selected_turns, turn_text

KINDS = ("rrn", "card", "account", "phone", "email")  # most specific first: it wins where two finds overlap
PLACEHOLDERS = {kind: f"[{kind.upper()}]" for kind in KINDS}

# A number stands alone: no letter or digit right before it (SN0101...), and not the tail or head of a longer
# chain of digit groups (2026-0101-2345-6789 is not a phone number).
_ALONE_BEFORE = r"(?<![A-Za-z0-9])(?<![0-9][-.])"
_ALONE_AFTER = r"(?![0-9])(?![-.][0-9])"

_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
                    r"\.[A-Za-z]{2,}(?![A-Za-z0-9-])")
# Mobile: 010-1234-5678, 010 1234 5678, 01012345678, +82 10-1234-5678, (010)1234-5678; 01x is distinctive
# enough to accept mixed separators (010-1234 5678) and spaced dashes (010 - 1234 - 5678).
_MOBILE = re.compile(_ALONE_BEFORE + r"(?:\+82[-. ]?(?:\(0\) ?)?1[016789]|01[016789]|\(01[016789]\) ?)(?: ?[-.] ?| )?"
                     r"\d{3,4}(?: ?[-.] ?| )?\d{4}" + _ALONE_AFTER)
# Landline: 02-123-4567, 031-1234-5678, (02) 123-4567, 070-..., +82 2-...; separators required, since a bare
# run of 9-10 digits starting with 0 is as likely a code as a phone number.
_LANDLINE = re.compile(_ALONE_BEFORE + r"(?:\+82[-. ]?(?:\(0\) ?)?|\(?0)(?:2|[3-6][1-5]|70)(?:\) ?|[-. ])"
                       r"\d{3,4}[-. ]\d{4}" + _ALONE_AFTER)
# RRN: YYMMDD-SNNNNNN; S is 1-4 for citizens (born 1900s/2000s), 5-8 for registered foreigners.
_RRN = re.compile(_ALONE_BEFORE + r"(\d{2})(\d{2})(\d{2})(?P<sep> *- *| ?)([1-8])\d{6}" + _ALONE_AFTER)
# Cards: 4-4-4-4 (16 digits) or 4-6-5 / 4-6-4 (Amex, Diners), one separator style or none.
_CARD = re.compile(_ALONE_BEFORE + r"(?:\d{4}(?P<s4>[- ]?)\d{4}(?P=s4)\d{4}(?P=s4)\d{4}"
                   r"|\d{4}(?P<s6>[- ]?)\d{6}(?P=s6)\d{4,5})" + _ALONE_AFTER)
# Accounts: Korean banks write 3-6 digit groups joined by hyphens, e.g. 110-123-456789, 123456-78-901234.
_ACCOUNT = re.compile(_ALONE_BEFORE + r"\d{3,6}(?:-\d{2,7}){1,3}" + _ALONE_AFTER)
BANK_WORDS = ("계좌", "은행", "입금", "송금", "이체", "예금주", "뱅크", "농협", "신협", "수협", "새마을금고",
              "우체국", "증권", "bank", "account")
NOT_ACCOUNT_WORDS = ("주문", "송장", "운송장", "사업자", "등록번호", "전화", "연락처", "휴대폰", "팩스", "order")
CARD_WORDS = ("카드", "결제", "card")
NOT_CARD_WORDS = ("주문", "송장", "운송장", "order")  # numbers of that length which are not cards
RRN_WORDS = ("주민", "등록번호", "외국인등록", "생년월일", "rrn")
WORD_WINDOW = 20  # characters either side of a number where a label counts as "nearby"


@dataclass(frozen=True)
class PiiMatch:
    kind: str
    start: int
    end: int


def valid_rrn(match: re.Match) -> bool:
    """A real date of birth for the century the 7th digit names. The last digit is not checked: RRNs issued
    since October 2020 have no check digit."""
    yy, mm, dd, _, gender = match.groups()
    yy, mm, dd, gender = int(yy), int(mm), int(dd), int(gender)
    century = 1900 if gender in (1, 2, 5, 6) else 2000
    try:
        datetime.date(century + yy, mm, dd)
    except ValueError:
        return False
    return True


def luhn_ok(number: str) -> bool:
    digits = [int(ch) for ch in number if ch.isdigit()]
    if len(set(digits)) == 1:  # 0000 0000 0000 0000 passes Luhn but is a placeholder, not a card
        return False
    total = 0
    for i, digit in enumerate(reversed(digits)):
        if i % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _last_label(text: str, words: tuple[str, ...]) -> int:
    lowered = text.lower()
    return max(lowered.rfind(word) for word in words)


def near_bank_word(text: str, start: int, end: int) -> bool:
    """A bank word within WORD_WINDOW characters, unless a closer label before the number says it is something
    else (주문번호 ... 입금 확인: an order number, not an account)."""
    before = text[max(start - WORD_WINDOW, 0) : start]
    bank, other = _last_label(before, BANK_WORDS), _last_label(before, NOT_ACCOUNT_WORDS)
    if other > bank:
        return False
    if bank >= 0:
        return True
    after = text[end : end + WORD_WINDOW].lower()
    return any(word in after for word in BANK_WORDS)


def labelled_otherwise(text: str, start: int) -> bool:
    """A label before a card-shaped number that says it is something else (주문번호, 운송장 번호: one 16-digit order
    number in ten passes the Luhn check), with no card word closer to it."""
    before = text[max(start - WORD_WINDOW, 0) : start]
    return _last_label(before, NOT_CARD_WORDS) > _last_label(before, CARD_WORDS)


def _candidates(text: str, kind: str) -> list[tuple[int, int]]:
    if kind == "email":
        return [m.span() for m in _EMAIL.finditer(text)]
    if kind == "phone":
        return [m.span() for pattern in (_MOBILE, _LANDLINE) for m in pattern.finditer(text)]
    if kind == "rrn":  # only YYMMDD-SNNNNNN stands alone: 13 digits run together are as likely a barcode (880...),
        # and "100101 - 1000000" a subtraction; those need a label nearby
        return [m.span() for m in _RRN.finditer(text) if valid_rrn(m) and (m.group("sep") == "-" or any(
            word in text[max(m.start() - WORD_WINDOW, 0) : m.end() + WORD_WINDOW].lower() for word in RRN_WORDS))]
    if kind == "card":
        return [m.span() for m in _CARD.finditer(text) if luhn_ok(m.group(0)) and not labelled_otherwise(text, m.start())]
    spans = [m.span() for m in _ACCOUNT.finditer(text)]
    return [(s, e) for s, e in spans if 10 <= sum(ch.isdigit() for ch in text[s:e]) <= 14 and
            near_bank_word(text, s, e)]


# Read full-width digits, letters and signs (a Korean IME's "０１０", "ｈｏｎｇ＠ｎａｖｅｒ．ｃｏｍ"), dashes (and "ㅡ", the
# vowel Korean typists use as one) and the ideographic space as ASCII: one character for one, so the finds' offsets
# hold in the original text.
_FULL_WIDTH_LETTERS = "".join(map(chr, [*range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B)]))
_FOLD = str.maketrans("０１２３４５６７８９－＋（）．＠＿％\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u3161\u3000"
                      + _FULL_WIDTH_LETTERS, "0123456789-+().@_%-------- " + string.ascii_uppercase
                      + string.ascii_lowercase)


def find_pii(text: str, kinds: tuple[str, ...] | list[str] = KINDS) -> list[PiiMatch]:
    """Non-overlapping finds in text order; where two overlap, the kind earlier in KINDS wins."""
    text = text.translate(_FOLD)
    taken: list[PiiMatch] = []
    for kind in KINDS:
        if kind not in kinds:
            continue
        for start, end in _candidates(text, kind):
            if all(end <= m.start or start >= m.end for m in taken):
                taken.append(PiiMatch(kind, start, end))
    return sorted(taken, key=lambda m: m.start)


def scrub_pii(text: str, kinds: tuple[str, ...] | list[str] = KINDS) -> tuple[str, Counter]:
    """(text with each find replaced by its placeholder, finds per kind)."""
    found = find_pii(text, kinds)
    for match in reversed(found):  # from the end, so earlier offsets stay valid
        text = text[: match.start] + PLACEHOLDERS[match.kind] + text[match.end :]
    return text, Counter(match.kind for match in found)


@dataclass
class PiiGate:
    """Scrub personal data (replace it with [EMAIL], [PHONE], [RRN], [CARD], [ACCOUNT]; rows counted as changed
    per kind) or drop rows that contain any (counted under the most specific kind found). The snippets in the
    report are always scrubbed: a data card must not republish what the gate removed."""

    action: str = "scrub"
    kinds: list[str] = field(default_factory=lambda: list(KINDS))
    fields: str = "all"
    name: ClassVar[str] = "pii"

    def __post_init__(self) -> None:
        check_choice(self.name, "action", self.action, ("scrub", "drop"))
        check_choice(self.name, "fields", self.fields, FIELDS)
        for kind in self.kinds:
            check_choice(self.name, "kinds", kind, KINDS)

    def __call__(self, rows: list[dict]) -> GateResult:
        result = GateResult()
        for row in rows:
            kinds: Counter = Counter()

            def scrub(text: str) -> str:
                clean, found = scrub_pii(text, self.kinds)
                kinds.update(found)
                return clean

            clean_row = map_turn_texts(row, self.fields, scrub)
            if not kinds:
                result.kept.append(row)
                continue
            shown = "\n".join(turn_text(turn) for turn in selected_turns(clean_row, self.fields))
            at = min(shown.find(PLACEHOLDERS[kind]) for kind in kinds)
            if self.action == "drop":
                result.remove(next(kind for kind in KINDS if kind in kinds), shown[max(at - 30, 0) :])
                continue
            for kind in KINDS:
                if kind in kinds:
                    result.change(kind, shown[max(shown.find(PLACEHOLDERS[kind]) - 30, 0) :])
            result.kept.append(clean_row)
        return result
