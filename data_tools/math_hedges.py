"""Final answers that state no single value, and answers corrected after they were stated: the math grader's rules
for what a completion offers besides its answer. A hedge lists alternatives ("정답: 3, 4", "3개 또는 4개",
"x = 5 또는 x = -5", "정답: 3개" with "아니면 4개" on the next line), a range gives two ends ("3~4개", "3-4개",
"3에서 4개 사이", "3 내지 4개") and a sum is left to do ("3 × 1/2"): each answers nothing (NoAnswer), so that a
reward never pays for naming several. A self-correction ("3개, 아니 4개", or "아니, 4개" on the line after "정답: 3개")
makes what follows it the answer. data_tools.math_grader finds the answer; these rules say when what it found is no
answer."""

from __future__ import annotations

import re


class NoAnswer(Exception):
    """The stated answer is no single value: a hedge ("5 또는 -5"), a range ("3~4개"), a sum left to do ("3 × 1/2")
    or no mixed number ("3\\frac{5}{2}"). It answers nothing, and no other number of the completion is read in its
    place."""


# A corrected answer, "12가 아니라 15", or a self-correction, "3개, 아니 4개", "3개 (정정: 4개)": what follows the last
# one is the answer. Only these explicit words: "아니면" (or else) offers an alternative, "아니다" denies.
_CORRECTION_WORD = r"(?:아니(?:요|오)?|아냐|정정(?:하면|합니다)?)(?=[\s,.!?…:])"
_CORRECTED = re.compile(rf"(?:이|가)?(?<!\s)\s*아니(?:라|고)|(?<![^\s,.!?…:(])(?:{_CORRECTION_WORD})")
# ... and a line that opens with one corrects the answer line above it ("정답: 3개\n아니, 4개"), blank lines between;
# a line that opens with "아니면" / "또는" / "혹은" offers an alternative to it ("정답: 3개\n아니면 4개": a hedge)
ALTERNATIVE_WORD = r"(?:아니면|또는|혹은)(?=[\s,.!?…:])"
_CORRECTION_LINE = re.compile(rf"(?:\n[ \t]*)+(?=[(\[（【*]*[ \t]*(?:{_CORRECTION_WORD}|{ALTERNATIVE_WORD}))[^\n]*")

# Connectives: a number joined to what follows ("12개이며 4묶음") or given as a reason ("12개이므로, 4묶음") is about
# the answer, not an alternative to it (the grader's statement rules use them too)
JOINS = r"(?:이며|이고|인데|이지만)(?!\w)"
BECAUSE = r"(?:므로|니까|라서|여서|기\s*때문에)(?!\w)"
_JOINED_ITEM = re.compile(f"(?:{JOINS}|{BECAUSE})$")  # a list item so joined, "12개이므로, 4묶음", offers no choice

# A hedge: two or more answers offered as alternatives ("정답: 3, 4", "3개 또는 4개", "수요일이나 목요일"); the whole
# final statement is the list. Not "1,200" (a thousands comma), nor a list the answer gives a reason with, nor
# "12개이며, 4묶음" (a connective). A check after the answer's sentence is no answer (see math_grader._answer_part).
# The stated answer joined to another value by "또는" (or "와", "and") is one wherever it stands ("x의 값은 5 또는
# -5입니다", "$5$ 또는 $-5$", "x = 5 또는 x = -5", "5와 -5"), and so is one joined by an operator: "3 \times
# \frac{1}{2}" is no value but a sum left to do (see offered_together).
_OR = r"또는|혹은|아니면|이거나|(?<=[^\W\d_])이나|(?<=[^\W\d_])나|\bor\b"
_OR_GAP = re.compile(rf"[\s*$]*(?:(?:[^\W\d_]|[%°²³])+?[\s*$]*)?(?:[.!(\[（【][\s*$]*){{0,2}}(?:{_OR}|와|과|\band\b)"
                     r"[\s*$]*(?:[A-Za-z]\s*=[\s*$]*)?")  # "3개입니다. 또는 4개", "3개 (또는 4개)": an alternative too
_OPERATOR_GAP = re.compile(r"[\s$]*(?:(?:(?:[^\W\d_]|[%°²³])+[\s$]*)?(?:[×÷+·]|(?<!\*)\*(?!\*)|\\(?:times|cdot|div)"
                           r"(?![A-Za-z]))|(?<=[\d\s$])-(?=\s))[\s$]*")  # "12 - 3", not "12개 - 3개씩 4묶음" (a dash)
_VARIABLE_SET = re.compile(r"(?<![A-Za-z\\])([A-Za-z])\s*=")  # "x = 5 또는 x = -5", "x = 5, x = -5"
_ALTERNATIVE_VARIABLE = re.compile(rf"((?:{_OR}|,)\s*(?:\$\s*)?)([A-Za-z])\s*=")
ITEM = r"(?:-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|[월화수목금토일]요일)[^\W\d_]{0,4}"
HEDGE = re.compile(rf"\s*[*$]*({ITEM})[*$]*((?:\s*(?:,\s|、|{_OR})\s*[*$]*{ITEM}[*$]*)+)\s*"
                   rf"(?:(?:입니다|이에요|예요|이다|중\s*하나(?:입니다)?)\s*)?(?:[.!]\s*)?")
# A range: two values and what joins them ("3~4개", "3-4개", "3–4", "3 내지 4개", "3에서 4개 사이", "3과 4 사이"), the
# first with its unit or none ("3개~4개", "65%~66%", "$3$~$4$"). A dash touches both numbers ("12개 - 3개씩 4묶음" is
# a dash in prose; "3 - 4" a sum left to do) and stands alone: "2024-03-04" is a date. 에서 / 와 / 과 / 하고 make a
# range only before 사이 (between): "월요일에서 3일 뒤인 목요일" is the answer 목요일. Whatever a range was meant as, a policy that names two values is not
# paid for either: "3-4" may as well be a subtraction left to do, which answers nothing too.
_RANGE_GAP = re.compile(r"[ \t]?((?:[^\W\d_]|[%°]){0,4})[*$]*(?:(?<!\s)[-–]|[ \t]*[~∼〜～][ \t]*|[ \t]+내지[ \t]+"
                        r"|(?P<between>[ \t]*(?:에서|와|과|하고)[ \t]*))[*$]*")
_RANGE_END = re.compile(r"[*$]*[ \t]?((?:[^\W\d_]|[%°])*)")  # the unit after the second value: "개" of "3개~4개"
_BETWEEN = re.compile(r"[*$]*[ \t]?(?:[^\W\d_]|[%°]){0,4}[ \t]*사이")
_DASH_CHAIN = re.compile(r"[-–]\d")  # a third number of a date or a phone number


def comparable(value: str | None) -> str | None:
    """A value as two alternatives are compared: "1,200" is "1200" (the same answer twice is no hedge)."""
    return value and value.replace(",", "").replace(" ", "")


def after_corrections(span: str) -> str:
    """What follows the last correction of a final-answer span: "3개, 아니 4개" is " 4개", "12가 아니라 15" " 15"."""
    return _CORRECTED.split(span)[-1]


def with_corrections(text: str, end: int) -> int:
    """Where the final-answer line ending at `end` ends with the lines that correct it or offer an alternative to it:
    "정답: 3개\\n아니, 4개" reads on to 4개, as "3개, 아니 4개" on one line does, and "정답: 3개\\n아니면 4개" to 4개, a
    hedge as "3개 아니면 4개" is. Each line is looked at once: linear in the text."""
    while match := _CORRECTION_LINE.match(text, end):
        end = match.end()
    return end


def one_variable(span: str) -> str:
    """"x = 5 또는 x = -5" as "x = 5 또는 -5": the values one variable is given, as alternatives; another variable's
    value ("x = 3, y = 4") is left as it is."""
    if variable := _VARIABLE_SET.search(span):
        span = _ALTERNATIVE_VARIABLE.sub(lambda m: m[1] if m[2] == variable[1] else m.group(), span)
    return span


Candidate = tuple[int, int, str | None]  # (start, end, value) of a value in a final-answer span


def _range(span: str, before: Candidate, after: Candidate) -> bool:
    """Whether two neighbouring values of a span are the ends of a range (see _RANGE_GAP)."""
    end = after[0]
    if not (gap := _RANGE_GAP.fullmatch(span, before[1], end)) and span.startswith("-", end):
        end += 1  # "3-4": the minus read with 4 is the dash ("3~-4" keeps it)
        gap = _RANGE_GAP.fullmatch(span, before[1], end)
    if not gap:
        return False
    if span[end - 1] in "-–":  # "2024-03-04" is a date: a dash before the first value or after the second
        first = before[0] + span.startswith("-", before[0])  # where the digits of the first value start
        if first > 1 and span[first - 1] in "-–" and span[first - 2].isdigit() or _DASH_CHAIN.match(span, after[1]):
            return False
    elif gap["between"] is not None and not _BETWEEN.match(span, after[1]):
        return False
    if not (unit := gap[1]):
        return True
    second_unit = _RANGE_END.match(span, after[1])[1]
    return second_unit.startswith(unit) and not second_unit.startswith("씩", len(unit))


def goes_on(span: str, value: Candidate, following: Candidate | None) -> bool:
    """Whether a value is joined to the next as an alternative or a range's end ("5 또는", "3~"): it ends no statement."""
    if following is None:
        return False
    return bool(_OR_GAP.fullmatch(span, value[1], following[0]) or _range(span, value, following))


def offered_together(span: str, before: Candidate, after: Candidate) -> bool:
    """Whether two neighbouring values of a span are offered together, so that neither is the answer: as different
    alternatives ("5 또는 -5", not "1,200원 또는 1200원"), a range ("3~4개") or a sum left to do ("3 × 1/2")."""
    different = comparable(before[2]) != comparable(after[2])
    alternatives = different and (_OR_GAP.fullmatch(span, before[1], after[0]) or _range(span, before, after))
    return bool(alternatives or _OPERATOR_GAP.fullmatch(span, before[1], after[0]))


def hedged(span: str, find) -> bool:
    """Whether a final-answer span is a list of different answers offered as alternatives ("3, 4", "3개 또는 4개");
    `find` reads each item's value."""
    if not (match := HEDGE.fullmatch(span)):
        return False
    items = [match.group(1), *re.findall(ITEM, match.group(2))]
    return not any(_JOINED_ITEM.search(item) for item in items) and len({find(item) for item in items}) > 1
