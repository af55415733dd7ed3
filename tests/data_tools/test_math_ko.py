"""The Korean math generator: deterministic, distinct, spread over 12 families and 3 difficulties, answers that
check out when recomputed here from the slots or the question text, particles and counters a Korean reader
expects, a held-out split by exercise, and rows the chat loader accepts."""

from __future__ import annotations

import datetime
import json
import random
import re
import time
import unicodedata
from collections import Counter
from fractions import Fraction
from math import gcd

import pytest

import data_tools.generators.math_ko as math_ko
from data_tools.chat_io import chat_row
from data_tools.generators.math_ko import (FAMILIES, TEMPLATES, display_answer, generate, make_problem, split_of,
                                           to_grpo_row, to_sft_row)
from data_tools.generators.math_ko.lexicon import (ACTIVITIES, COUNTER, NAMES, SCHOOL_EVENTS, WEEKDAYS,
                                                   native_number)
from data_tools.generators.math_ko.wording import Template, Worked
from data_tools.josa import particle

REQUIRED_FAMILIES = {"shopping", "ages", "clock", "speed", "percent", "units", "sharing", "multistep", "calendar",
                     "geometry", "average", "equation"}


@pytest.fixture(scope="module")
def big():
    # The one large run: 100,000 problems must come out distinct and in well under a minute on one core.
    start = time.perf_counter()
    problems = generate(100_000, seed=0)
    return problems, time.perf_counter() - start


@pytest.fixture(scope="module")
def sample():
    return generate(3_000, seed=11)


def slots(p) -> dict:
    return json.loads(p.instance_key.split(":", 1)[1])


# What an exercise is, read from the worked solution alone: its template and the numbers and weekdays the working
# uses, in order (the year of a date only names it; its month lengths are in the working). Two problems alike in
# these differ at most in a name, an item, a place, the style or a number the working never uses.
_WORKING = re.compile(r"\d{4}(?=년)|(\d[\d,]*(?:\.\d+)?(?:/\d+)?)|([월화수목금토일]요일)")


def solution_exercise(p) -> tuple:
    return p.template_id, tuple(number.replace(",", "") or weekday
                                for number, weekday in _WORKING.findall(p.solution) if number or weekday)


def test_a_hundred_thousand_problems_each_a_different_exercise_in_under_a_minute(big):
    problems, seconds = big
    assert len(problems) == 100_000
    assert len({p.question for p in problems}) == 100_000
    assert len({p.instance_key for p in problems}) == 100_000
    # not one exercise twice, by the generator's key or read from the working
    assert len({p.split_key for p in problems}) == 100_000
    assert len({solution_exercise(p) for p in problems}) == 100_000
    assert seconds < 60, f"generate(100_000) took {seconds:.1f}s"


def test_a_cell_closes_when_its_exercises_run_out():
    # sharing/1 has 8 group sizes × 11 shares = 88 exercises; asked for more, generate says how many it made
    assert len({p.split_key for p in generate(88, seed=0, families="sharing", difficulties=[1])}) == 88
    with pytest.raises(ValueError, match=r"only 88 distinct exercises"):
        generate(89, seed=0, families="sharing", difficulties=[1])
    # with other cells beside it, the used-up cell drops out and the others take its turns
    problems = generate(400, seed=0, families="sharing", difficulties=[1, 2])
    assert Counter(p.difficulty for p in problems)[1] == 88
    assert len({solution_exercise(p) for p in problems}) == 400
    # speed/3 (a bicycle's distance in some minutes, how far in an hour) was down to 23 exercises
    assert len({solution_exercise(p) for p in _drawn("speed/3", 3_000)}) >= 80


def test_the_same_seed_gives_the_same_problems_and_another_seed_others():
    first = generate(300, seed=1)
    assert first == generate(300, seed=1)
    assert generate(100, seed=1) == first[:100]  # a shorter run is a prefix of a longer one
    other = generate(300, seed=2)
    assert len({p.question for p in first} & {p.question for p in other}) < 10
    assert generate(50, seed=1, families=["ages", "shopping"]) == generate(50, seed=1, families=["shopping", "ages"])


def test_every_family_and_difficulty_is_present_and_evenly_spread():
    assert REQUIRED_FAMILIES <= set(FAMILIES)
    problems = generate(36 * 10, seed=0)
    assert Counter(p.family for p in problems) == {f: 30 for f in FAMILIES}
    assert Counter(p.difficulty for p in problems) == {1: 120, 2: 120, 3: 120}
    assert {p.family for p in problems[:12]} == set(FAMILIES)  # even a short prefix covers every family
    for family in FAMILIES:
        templates = [t for t in TEMPLATES.values() if t.family == family]
        assert len(templates) >= 3 and {t.difficulty for t in templates} == {1, 2, 3}, family


def test_filters_by_family_difficulty_and_style():
    problems = generate(60, seed=4, families=["calendar", "equation"], difficulties=[3], style="plain")
    assert {p.family for p in problems} == {"calendar", "equation"}
    assert {p.difficulty for p in problems} == {3}
    assert {p.style for p in problems} == {"plain"}
    assert {p.style for p in generate(200, seed=4)} == {"formal", "plain"}


def test_every_solution_ends_with_the_answer_line(sample):
    for p in sample:
        lines = p.solution.splitlines()
        assert lines[-1] == f"정답: {display_answer(p.answer)}{p.answer_unit}", p.solution
        assert 3 <= len(lines) <= 8, p.solution
        worked = "=→" if p.answer in WEEKDAYS else "="  # a weekday may be found by counting days on: 월요일 → 화요일
        assert any(re.search(f"[{worked}]", line) for line in lines[:-1]), p.solution


def test_answers_are_exact_and_in_canonical_form(sample):
    for p in sample:
        if p.answer in WEEKDAYS:
            assert p.family == "calendar" and p.answer_unit == "", p
        elif "/" in p.answer:
            numerator, denominator = map(int, p.answer.split("/"))
            assert denominator > 1 and gcd(numerator, denominator) == 1, p.answer
        else:
            assert re.fullmatch(r"\d+|\d+\.\d?[1-9]", p.answer), p.answer  # no separators, at most 2 places
    assert any(p.answer in WEEKDAYS for p in sample)
    assert any("." in p.answer for p in sample) and any("/" in p.answer for p in sample)


def _weekday_after(weekday: str, days: int) -> str:
    return WEEKDAYS[(WEEKDAYS.index(weekday) + days) % 7]


# Each answer computed again here, from the sampled slots, without the generator's own arithmetic.
EXPECTED = {
    "shopping/1": lambda s: s["price"] * s["n"],
    "shopping/2": lambda s: s["money"] - s["price"],
    "shopping/3": lambda s: s["paid"] - s["price"] * s["n"],
    "shopping/4": lambda s: s["price"] * s["n"] + s["price2"] * s["n2"],
    "shopping/5": lambda s: s["money"] - s["price"] * s["n"] - s["price2"] * s["n2"],
    "shopping/6": lambda s: Fraction(s["money"] - s["price"] * s["n"], 2),
    "percent/2": lambda s: Fraction(s["money"] * s["p"], 100),
    "percent/3": lambda s: s["price"] - Fraction(s["price"] * s["p"], 100),
    "percent/4": lambda s: Fraction(100 * s["k"], s["n"]),
    "percent/5": lambda s: Fraction(s["price"] * (100 - s["p"]) * (100 - s["q"]), 10000),
    "ages/4": lambda s: s["age"],
    "ages/5": lambda s: next(k for k in range(1, 100) if s["parent"] + k == s["times"] * (s["child"] + k)),
    "speed/1": lambda s: s["v"] * s["t"],
    "speed/3": lambda s: Fraction(s["tenths"], 10) * Fraction(60, s["m"]),
    "speed/6": lambda s: Fraction(s["d"], s["a"] + s["b"]),
    "units/2": lambda s: s["hundredths"] * 10,
    "units/4": lambda s: Fraction(s["g"], 1000),
    "sharing/2": lambda s: s["n"] % s["k"],
    "sharing/4": lambda s: Fraction(s["a"], s["k"]),
    "sharing/5": lambda s: -(-s["n"] // s["k"]),
    "geometry/3": lambda s: Fraction(s["base"] * s["height"], 2),
    "geometry/6": lambda s: (s["a"] * 100 // s["tile"]) * (s["b"] * 100 // s["tile"]),
    "average/3": lambda s: Fraction(sum(s["values"]), len(s["values"])),
    "average/5": lambda s: Fraction(s["n1"] * s["m1"] + s["n2"] * s["m2"], s["n1"] + s["n2"]),
    "equation/5": lambda s: Fraction(s["b"] * s["m"] + s["a"], s["k"]),
    "equation/6": lambda s: s["x"],
    "clock/5": lambda s: s["minutes"] - s["rest"],
    "calendar/2": lambda s: 7 * s["weeks"] + s["days"],
    "calendar/3": lambda s: _weekday_after(s["weekday"], s["day2"] - s["day"]),
    "calendar/5": lambda s: WEEKDAYS[datetime.date(s["year"], s["month2"], s["day2"]).weekday()],
    "calendar/6": lambda s: _weekday_after(s["weekday"], s["k"] * (s["n"] - 1)),
}


def _as_number(answer: str) -> Fraction | str:
    return answer if answer in WEEKDAYS else Fraction(answer)  # Fraction reads "1200", "0.75" and "3/4"


def test_answers_recomputed_from_the_slots():
    problems = generate(2_000, seed=21)
    checked = Counter()
    for p in problems:
        if p.template_id in EXPECTED:
            assert _as_number(p.answer) == EXPECTED[p.template_id](slots(p)), (p.question, p.answer)
            checked[p.family] += 1
    assert len(checked) >= 10 and min(checked.values()) >= 10, checked


def _numbers(text: str) -> list[int]:
    return [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", text)]


def test_answers_recomputed_from_the_question_text():
    problems = generate(1_200, seed=5, families=["shopping", "equation", "speed", "geometry", "calendar"])
    seen = Counter()
    for p in problems:
        q, got = p.question, _as_number(p.answer)
        if p.template_id == "shopping/3":  # 한 개에 P원인 X를 N개 사고 M원을 냈습니다
            price, n, paid = _numbers(q)
            assert got == paid - price * n, q
        elif p.template_id == "equation/3":  # 어떤 수에 a를 더하고 k를 곱했더니 b가 ...
            a, k, b = _numbers(q)
            assert got == (b // k - a if "더하고" in q else b // k + a), q
        elif p.template_id == "speed/2":  # 시속 v km로 ... d km 떨어진 ...
            v, d = _numbers(q)
            assert got == Fraction(d, v), q
        elif p.template_id == "geometry/5":  # 가로 a, 세로 b인 직사각형과 둘레가 같은 정사각형의 넓이
            a, b = _numbers(q)
            assert got == Fraction(2 * (a + b), 4) ** 2, q
        elif p.template_id == "calendar/5":  # the weekday stated in the question is the real one, and so is the answer
            y, m, d, m2, d2 = _numbers(q)
            stated = re.search(r"일은 (.요일)", q).group(1)
            assert stated == WEEKDAYS[datetime.date(y, m, d).weekday()], q
            assert got == WEEKDAYS[datetime.date(y, m2, d2).weekday()], q
        else:
            continue
        seen[p.template_id] += 1
    assert len(seen) == 5 and min(seen.values()) >= 5, seen


def test_split_is_by_exercise_and_near_the_share(big):
    problems, _ = big
    keys = [p.split_key for p in problems]
    share = sum(split_of(k) == "test" for k in keys) / len(keys)
    assert 0.09 < share < 0.11
    assert 0.45 < sum(split_of(k, 0.5) == "test" for k in keys) / len(keys) < 0.55
    assert all(split_of(k, 0.0) == "train" for k in keys[:1000])
    test = generate(1_000, seed=3, split="test")
    train = generate(5_000, seed=4, split="train")
    assert {split_of(p.split_key) for p in test} == {"test"}
    assert {split_of(p.split_key) for p in train} == {"train"}
    assert not {p.instance_key for p in test} & {p.instance_key for p in train}
    # no test exercise in train with only another name, item, place, style or unused number
    assert not {solution_exercise(p) for p in test} & {solution_exercise(p) for p in train}
    assert not {p.question for p in test} & {p.question for p in train}


def test_every_template_puts_an_exercise_on_one_side_only():
    # Many instances of every template, drawn straight from its sampler (no dedup): instances that share an
    # exercise (the working's numbers and weekdays) but differ in a school grade, a year, the hour of a start
    # time, a name, an item or the style must all land in the same split.
    rng = random.Random(5)
    for template in TEMPLATES.values():
        sides: dict[tuple, set] = {}
        for _ in range(400):
            p = make_problem(template, template.sample(rng), ("formal", "plain")[rng.randrange(2)])
            sides.setdefault(solution_exercise(p), set()).add(split_of(p.split_key))
        test = {e for e, split in sides.items() if "test" in split}
        train = {e for e, split in sides.items() if "train" in split}
        assert test and train, template.id
        assert not test & train, (template.id, sorted(test & train)[:3])


# A particle after a slot value must agree with it: the expected form is computed with `josa.particle` on the
# whole text before the particle (so "몇 m" + 예요 is read 미터), for every word the templates insert.
FORMS = {"으로": "(으)로", "로": "(으)로", "이에요": "이에요/예요", "예요": "이에요/예요", "은": "은/는", "는": "은/는",
         "이": "이/가", "가": "이/가", "을": "을/를", "를": "을/를", "과": "과/와", "와": "과/와"}
PARTICLE = re.compile(r"(\S+?)(" + "|".join(sorted(FORMS, key=len, reverse=True)) + r")(?=[\s.,?!:]|$)")
INSERTED_WORDS = {*NAMES, *COUNTER, *WEEKDAYS, *(w.split()[-1] for w in (*ACTIVITIES, *SCHOOL_EVENTS))}
NUMBER_WITH_UNIT = re.compile(r"(?:시속 )?\d[\d,./]*\(?(?:[가-힣]{1,2}|[A-Za-z]{1,2}²?|%)?\)?|[A-Za-z]{1,2}²?")


def particle_mistakes(text: str) -> tuple[list[str], int]:
    mistakes, checked = [], 0
    for match in PARTICLE.finditer(text):
        stem, form = match.groups()
        if stem not in INSERTED_WORDS and not NUMBER_WITH_UNIT.fullmatch(stem):
            continue
        checked += 1
        expected = particle(text[: match.start(2)], FORMS[form])
        if expected != form:
            mistakes.append(f"{stem}{form} (expected {stem}{expected}) in: {text}")
    return mistakes, checked


def test_particles_after_inserted_words_agree_with_them(big, sample):
    problems = big[0][::50] + sample
    checked = 0
    for p in problems:
        for text in (p.question, p.solution):
            mistakes, n = particle_mistakes(text)
            assert not mistakes, mistakes
            assert not re.search(r"[은이을과]\([는가를와]\)|\(으\)로|\(이\)", text), text  # no unread fallback
            checked += n
    assert checked > 3 * len(problems)


def test_the_particle_check_catches_a_wrong_particle():
    assert particle_mistakes("민준는 사과을 3개를 샀습니다.")[0]
    assert particle_mistakes("시속 60km으로 달렸어요. 몇 m이에요?")[0]
    assert not particle_mistakes("민준은 사과를 3개 샀습니다. 시속 60km로 달렸어요. 몇 m예요?")[0]


NATIVE = "|".join(native_number(n) for n in range(99, 0, -1))


def test_every_thing_is_counted_with_its_own_counter(sample):
    assert (COUNTER["사과"], COUNTER["연필"], COUNTER["책"], COUNTER["사람"], COUNTER["강아지"], COUNTER["고양이"],
            COUNTER["자동차"], COUNTER["자전거"], COUNTER["종이"], COUNTER["커피"], COUNTER["물"], COUNTER["옷"],
            COUNTER["꽃"], COUNTER["집"], COUNTER["신발"]) == (
        "개", "자루", "권", "명", "마리", "마리", "대", "대", "장", "잔", "잔", "벌", "송이", "채", "켤레")
    assert [native_number(n) for n in (1, 2, 3, 4, 10, 11, 20, 21, 35)] == [
        "한", "두", "세", "네", "열", "열한", "스무", "스물한", "서른다섯"]
    counted = 0
    for p in sample:
        for text in (p.question, p.solution):
            for noun, counter in COUNTER.items():
                pattern = rf"(?<![가-힣]){noun} (?:\d[\d,]*|(?:{NATIVE}) )([가-힣]+)"
                for found in re.finditer(pattern, text):
                    assert found.group(1).startswith(counter), f"{noun} with {found.group(1)!r} in: {text}"
                    counted += 1
                for found in re.finditer(rf"(?<![가-힣]){noun}(?:은|는)? 한 ([가-힣]+)에|한 ([가-힣]+)에 [\d,]+원인 "
                                         rf"{noun}(?:을|를|과|와)? ", text):
                    assert counter in found.groups(), f"{noun} with {found.group(0)!r} in: {text}"
                    counted += 1
    assert counted > len(sample) / 3


def test_numbers_stay_plausible(big):
    for p in big[0][::20]:
        q = p.question
        for amount in re.findall(r"(\d[\d,]*)원", q):
            assert int(amount.replace(",", "")) % 10 == 0, q
        for age in re.findall(r"(\d+)살", q):
            assert 1 <= int(age) < 100, q
        for percent in re.findall(r"(\d+)% 할인", q):
            assert 0 < int(percent) <= 90, q
        for _, hour, minute in re.findall(r"(오전|오후|낮) (\d+)시(?: (\d+)분)?", q):
            assert 1 <= int(hour) <= 12 and int(minute or 0) < 60, q


def _drawn(template_id: str, n: int, seed: int = 9) -> list:
    """`n` instances straight from a template's sampler, no dedup: what the sampler does draw."""
    rng, template = random.Random(seed), TEMPLATES[template_id]
    return [make_problem(template, template.sample(rng), "formal") for _ in range(n)]


def _amount(text: str) -> Fraction:
    return Fraction(text.replace(",", ""))


def test_no_degenerate_problems():
    for template_id in ("geometry/1", "geometry/5", "geometry/6", "geometry/7"):  # a 직사각형 has unequal sides
        for p in _drawn(template_id, 3_000):
            wide, tall = re.search(r"가로가 (\d+)c?m, 세로가 (\d+)c?m", p.question).groups()
            assert wide != tall, p.question
    for p in _drawn("geometry/4", 3_000):  # nor a width that makes the area a square's
        area, wide = re.search(r"넓이가 ([\d,]+)c?m², 가로가 (\d+)", p.question).groups()
        assert _amount(area) != int(wide) ** 2, p.question
    for p in _drawn("speed/5", 3_000):  # two legs at two speeds
        first, second = re.findall(r"시속 (\d+)km", p.question)
        assert first != second, p.question
    for p in _drawn("multistep/6", 3_000):  # two stretches at two paces
        first, second = re.findall(r"하루에 (\d+)쪽씩", p.question)
        assert first != second, p.question
    # no conversion the working already answers ("1km는 1,000m" before "1km는 몇 m입니까?")
    for p in _drawn("units/1", 3_000):
        assert _amount(re.search(r"매일 ([\d.]+)km씩", p.question).group(1)).denominator > 1, p.question
    for p in _drawn("units/2", 3_000):
        assert _amount(re.search(r"무게는 ([\d.]+)kg", p.question).group(1)).denominator > 1, p.question
    for p in _drawn("units/4", 3_000):
        assert _amount(re.search(r"([\d,]+)g을", p.question).group(1)) % 1000, p.question


def test_harder_problems_take_more_steps(big):
    steps = {1: [], 2: [], 3: []}
    for p in big[0][::10]:
        steps[p.difficulty].append(sum(line.count("=") for line in p.solution.splitlines()))
    mean = {d: sum(v) / len(v) for d, v in steps.items()}
    assert mean[1] < mean[2] < mean[3], mean


def test_styles_do_not_mix(sample):
    for p in sample:
        text = f"{p.question}\n{p.solution}"
        if p.style == "formal":
            assert not re.search(r"(에요|어요|아요|해요|돼요|세요)[.?]", text), text
        else:
            assert not re.search(r"(니다|니까)[.?]", text), text


def test_text_is_nfc(sample):
    for p in sample:
        for value in (p.question, p.solution, p.answer, p.answer_unit, p.instance_key):
            assert unicodedata.is_normalized("NFC", value)


def test_sft_and_grpo_rows_carry_provenance(sample):
    p = sample[0]
    sft, grpo = to_sft_row(p, seed=11), to_grpo_row(p, seed=11)
    meta = {"source": "kosov/math_ko", "generator": "data_tools.generators.math_ko", "teacher_model": None,
            "license": "Apache-2.0", "seed": 11, "family": p.family, "difficulty": p.difficulty,
            "template_id": p.template_id, "split": split_of(p.split_key)}
    assert sft == {"messages": [{"role": "user", "content": p.question},
                                {"role": "assistant", "content": p.solution}], "meta": meta}
    assert chat_row("math_ko", json.loads(json.dumps(sft, ensure_ascii=False))).messages == sft["messages"]
    assert grpo["meta"] == meta and grpo["answer"] == p.answer and grpo["answer_unit"] == p.answer_unit
    assert (grpo["family"], grpo["difficulty"]) == (p.family, p.difficulty)
    [turn] = grpo["prompt"]
    assert turn["role"] == "user" and turn["content"].startswith(p.question) and '"정답: ' in turn["content"]
    # kosov synth's synth.source and synth.license, when given, are what the rows say
    named = {**meta, "source": "org/ko-math", "license": "CC-BY-4.0"}
    assert to_sft_row(p, seed=11, source="org/ko-math", license_="CC-BY-4.0")["meta"] == named
    assert to_grpo_row(p, seed=11, source="org/ko-math", license_="CC-BY-4.0")["meta"] == named


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"families": ["shoping"]}, "use some of: shopping"),
    ({"difficulties": [4]}, "difficulty must be 1, 2 or 3"),
    ({"style": "casual"}, "formal"),
    ({"split": "validation"}, "train, test"),
])
def test_bad_options_say_what_is_allowed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate(5, seed=0, **kwargs)


def test_asking_for_more_than_exists_says_how_many_were_possible(monkeypatch):
    tiny = Template("shopping/99", 1, lambda rng: {"n": rng.randint(1, 3)},
                    lambda s, style: Worked(f"{s['n']} 더하기 1은?", [f"{s['n']} + 1 = {s['n'] + 1}", "끝"],
                                            s["n"] + 1, ""))
    monkeypatch.setattr(math_ko, "TEMPLATES", {tiny.id: tiny})
    assert len(generate(3, seed=0, families=["shopping"], difficulties=[1])) == 3
    with pytest.raises(ValueError, match=r"only 3 distinct exercises"):
        generate(4, seed=0, families=["shopping"], difficulties=[1])
