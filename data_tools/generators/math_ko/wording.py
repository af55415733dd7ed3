"""How the math problems are written: a tiny template language that takes every particle from `josa`,
switches between 합쇼체 and 해요체, and prints numbers, money, clock times and exact answers.

In a template, `{x}` is a slot value, `{x|을/를}` the value with its particle, `{x|?}` and `{x|.}` end a
question or a statement with the copula (입니까? / 이에요? 예요?), and `<formal|plain>` picks by style.

    >>> from fractions import Fraction
    >>> from data_tools.generators.math_ko.wording import say, answer_text, display_answer
    >>> say("plain", "{name|은/는} {item|을/를} {n}{c} <샀습니다|샀어요>. 모두 몇 {c|?}", name="지호",
    ...     item="책", n=3, c="권")
    '지호는 책을 3권 샀어요. 모두 몇 권이에요?'
    >>> answer_text(Fraction(3, 4)), answer_text(Fraction(1, 3)), answer_text(Fraction(1200)), display_answer("1200")
    ('0.75', '1/3', '1200', '1,200')
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from data_tools.josa import josa

STYLES = ("formal", "plain")
_FIELD = re.compile(r"\{(\w+)(?:\|([^{}]+))?\}|<([^<>|]*)\|([^<>]*)>")


def say(style: str, text: str, **values: object) -> str:
    """Fill a template (see the module docstring) for style "formal" (합쇼체) or "plain" (해요체)."""

    def field(match: re.Match) -> str:
        name, pair, formal, plain = match.groups()
        if name is None:
            return formal if style == "formal" else plain
        value = str(values[name])
        if pair is None:
            return value
        if pair in ("?", "."):  # the copula: 3개입니까? / 3개예요?, 책입니다. / 책이에요.
            if style == "formal":
                return value + ("입니까?" if pair == "?" else "입니다.")
            return josa(value, "이에요/예요") + pair
        return josa(value, pair)

    return _FIELD.sub(field, text)


def writer(style: str, **values: object) -> Callable[..., str]:
    """`say` with the style and the slots bound: w = writer(style, **slots); w("{name|은/는} ...", extra=1)."""
    return lambda text, **more: say(style, text, **{**values, **more})


def num(x: int | Fraction) -> str:
    """A number as printed in a problem: 1,200 / 2.5 / 3/4."""
    return display_answer(answer_text(x))


def won(amount: int) -> str:
    return f"{amount:,}원"


def answer_text(x: int | Fraction) -> str:
    """The exact answer with no separators: an integer, a decimal of at most 2 places when exact, else a
    reduced fraction ("3/4"; Fraction reduces itself)."""
    x = Fraction(x)
    if x.denominator == 1:
        return str(x.numerator)
    if (x * 100).denominator == 1:
        whole, hundredths = divmod(x.numerator * 100 // x.denominator, 100)
        return f"{whole}.{hundredths:02d}".rstrip("0")
    return f"{x.numerator}/{x.denominator}"


def display_answer(answer: str) -> str:
    """`answer` with thousands separators in its whole part ("1200" → "1,200", "1234.5" → "1,234.5"); weekday
    names and fractions are left as they are."""
    whole, dot, rest = answer.partition(".")
    if whole.isdigit() and "/" not in rest:
        return f"{int(whole):,}{dot}{rest}"
    return answer


def clock_text(minute_of_day: int) -> str:
    """A clock time as Koreans say it: 570 → "오전 9시 30분", 780 → "오후 1시", 735 → "낮 12시 15분"."""
    hour, minute = divmod(minute_of_day, 60)
    if not 0 < hour < 24:
        raise ValueError(f"clock times are kept between 1:00 and 23:59, got {minute_of_day} minutes")
    if hour == 12:
        text = "낮 12시"
    else:
        text = f"{'오전' if hour < 12 else '오후'} {hour if hour < 12 else hour - 12}시"
    return f"{text} {minute}분" if minute else text


def hours_minutes(minutes: int) -> str:
    """A duration: 155 → "2시간 35분", 120 → "2시간", 45 → "45분"."""
    hours, rest = divmod(minutes, 60)
    parts = ([f"{hours}시간"] if hours else []) + ([f"{rest}분"] if rest or not hours else [])
    return " ".join(parts)


def pick(rng: random.Random, options):
    """One of `options`, a sequence (never a set, whose order could change the draw between runs)."""
    return options[rng.randrange(len(options))]


@dataclass(frozen=True)
class Worked:
    question: str
    steps: list[str]  # the solution's sentences, before the final "정답: ..." line
    answer: int | Fraction | str  # str only for a weekday name
    unit: str


def numbers(slots: dict) -> dict:
    """The slots that are numbers (ints and lists of ints): what an exercise is made of, by default."""
    return {key: value for key, value in slots.items() if not isinstance(value, str)}


@dataclass(frozen=True)
class Template:
    """One way of asking: `sample` draws the slots (JSON-able ints and strs only, so the instance key is
    canonical) and `build` writes the question and the worked solution for a style.

    `exercise` gives the values an instance's answer and working are computed from, and nothing else: by default
    the slots that are numbers (`numbers`), so a name, an item or a place (strs) never makes another exercise.
    A template says more or less where that is not so: a weekday or an operation (strs) it computes with, or a
    number that only dresses the problem up (the year of a date, the hour of a clock time whose minutes alone
    are subtracted)."""

    id: str  # "family/number"
    difficulty: int
    sample: Callable[[random.Random], dict]
    build: Callable[[dict, str], Worked]
    exercise: Callable[[dict], dict] = numbers

    @property
    def family(self) -> str:
        return self.id.split("/")[0]
