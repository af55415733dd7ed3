"""Verifiable Korean math word problems written by rules, not by a model: every answer is computed exactly
(ints and Fractions), every particle comes from `data_tools.josa`, every thing has its own counter.

Twelve families (FAMILIES) at three difficulties, 합쇼체 or 해요체; a worked solution ends with the line
"정답: <answer><unit>". An exercise is the template and the values its answer and working are computed from
(`Template.exercise`: the numbers, a weekday or an operation; never a name, an item, a place, the style, nor a
number that only dresses the problem up, such as a school grade or the year of a date). The held-out split is a
pure function of the exercise (`MathProblem.split_key`), so a test exercise never appears in train, whatever the
seed, not even with another name, item or style; and one `generate` call never writes an exercise twice.

    >>> from data_tools.generators.math_ko import display_answer, generate, to_grpo_row
    >>> problems = generate(24, seed=0)
    >>> sorted({p.family for p in problems}) == sorted(FAMILIES), {p.difficulty for p in problems}
    (True, {1, 2, 3})
    >>> p = problems[0]
    >>> p.solution.splitlines()[-1] == f"정답: {display_answer(p.answer)}{p.answer_unit}"
    True
    >>> row = to_grpo_row(p, seed=0); row["answer"] == p.answer and row["meta"]["split"] in ("train", "test")
    True
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass

from data_tools.generators.math_ko import (families_ages, families_algebra, families_count, families_measure,
                                           families_money, families_shapes, families_time)
from data_tools.generators.math_ko.wording import STYLES, Template, answer_text, display_answer
from data_tools.text import nfc

__all__ = ["FAMILIES", "MathProblem", "TEMPLATES", "display_answer", "generate", "split_of", "to_grpo_row",
           "to_sft_row"]

FAMILIES = ("shopping", "ages", "clock", "speed", "percent", "units", "sharing", "multistep", "calendar", "geometry",
            "average", "equation")
TEMPLATES: dict[str, Template] = {
    t.id: t for module in (families_money, families_ages, families_time, families_measure, families_count,
                           families_shapes, families_algebra) for t in module.TEMPLATES}
SPLITS = ("train", "test")
TEST_SHARE = 0.1
# A (family, difficulty) cell counts as used up after this many draws in a row gave no new exercise (in the
# split asked for): its turns go to the other cells. With the test split only 1 draw in 10 is kept, and
# 0.9^500 ≈ 1e-23, so a fresh cell is never closed by chance; one whose every exercise but a rare few has been
# written may be.
MAX_MISSES = 500
META = {"source": "kosov/math_ko", "generator": "data_tools.generators.math_ko", "teacher_model": None,
        "license": "Apache-2.0"}
ANSWER_INSTRUCTION = {"formal": '풀이 과정을 쓰고, 마지막 줄에 "정답: (답)" 형식으로 답을 쓰십시오.',
                      "plain": '풀이 과정을 쓰고, 마지막 줄에 "정답: (답)" 형식으로 답을 쓰세요.'}


@dataclass(frozen=True)
class MathProblem:
    question: str  # the Korean word problem, NFC
    answer: str  # "1200", "0.75", "3/4", or a weekday name ("수요일") for weekday questions; no separators
    answer_unit: str  # the unit asked for: "원", "살", "분", "km", "cm²", "%"; "" for plain numbers and weekdays
    solution: str  # worked steps, one sentence a line, then "정답: <display answer><unit>"
    family: str  # one of FAMILIES
    difficulty: int  # 1 one operation, 2 two steps or larger numbers, 3 three or more steps
    template_id: str  # "shopping/2"
    instance_key: str  # template id and every slot value, canonical JSON
    style: str  # "formal" (합쇼체) or "plain" (해요체)
    exercise_key: str  # template id and the exercise's values (Template.exercise), canonical JSON

    @property
    def split_key(self) -> str:
        """The unit of the split (and of dedup in `generate`): the exercise. Instances that differ only in a name,
        an item, a place, the style or a number the working does not use are one exercise, on one side."""
        return self.exercise_key


def split_of(split_key: str, test_share: float = TEST_SHARE) -> str:
    """"train" or "test" from the key's sha256 alone (MathProblem.split_key), so an exercise lands on one side for
    every seed."""
    draw = int.from_bytes(hashlib.sha256(split_key.encode("utf-8")).digest()[:8], "big") / 2**64
    return "test" if draw < test_share else "train"


def _canonical(values: dict) -> str:
    return json.dumps(values, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def instance_key(template: Template, slots: dict) -> str:
    return f"{template.id}:{_canonical(slots)}"


def exercise_key(template: Template, slots: dict) -> str:
    return nfc(f"{template.id}:{_canonical(template.exercise(slots))}")


def make_problem(template: Template, slots: dict, style: str) -> MathProblem:
    """Write one template instance in one style (the slots come from `template.sample`)."""
    worked = template.build(slots, style)
    answer = worked.answer if isinstance(worked.answer, str) else answer_text(worked.answer)
    final = f"정답: {display_answer(answer)}{worked.unit}"
    return MathProblem(question=nfc(worked.question), answer=answer, answer_unit=worked.unit,
                       solution=nfc("\n".join([*worked.steps, final])), family=template.family,
                       difficulty=template.difficulty, template_id=template.id,
                       instance_key=nfc(instance_key(template, slots)), style=style,
                       exercise_key=exercise_key(template, slots))


def _checked(families: Sequence[str] | None, difficulties: Sequence[int], style: str, split: str | None
             ) -> tuple[list[str], list[int]]:
    families = list(FAMILIES) if families is None else [families] if isinstance(families, str) else list(families)
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        raise ValueError(f"unknown math family {unknown or families!r}; use some of: {', '.join(FAMILIES)}")
    bad = [d for d in difficulties if d not in (1, 2, 3)]
    if bad or not difficulties:
        raise ValueError(f"difficulty must be 1, 2 or 3, got {bad or list(difficulties)!r}")
    if style not in (*STYLES, "mixed"):
        raise ValueError(f"unknown style {style!r}; use one of: formal (합쇼체), plain (해요체), mixed")
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use train, test or None for both")
    # Canonical order, so ["ages", "shopping"] and ["shopping", "ages"] give the same problems.
    return [f for f in FAMILIES if f in families], sorted(set(difficulties))


def _draw_new(rng: random.Random, cell: list[Template], style: str, split: str | None, keys: set, questions: set
              ) -> MathProblem | None:
    """A problem of this cell whose exercise was not written before (and in `split`), or None when MAX_MISSES
    draws in a row failed."""
    for _ in range(MAX_MISSES):
        template = cell[rng.randrange(len(cell))]
        slots = template.sample(rng)
        key = exercise_key(template, slots)
        if key in keys or (split is not None and split_of(key) != split):
            continue
        chosen = style if style != "mixed" else STYLES[rng.randrange(2)]
        problem = make_problem(template, slots, chosen)
        if problem.question in questions:
            continue
        keys.add(key)
        questions.add(problem.question)
        return problem
    return None


def generate(n: int, *, seed: int, families: Sequence[str] | None = None, difficulties: Sequence[int] = (1, 2, 3),
             style: str = "mixed", split: str | None = None) -> list[MathProblem]:
    """`n` problems, each a different exercise (`MathProblem.split_key`), taking turns over every (family,
    difficulty) so they spread evenly; a cell whose exercises are used up drops out and the others take its
    turns (a ValueError when all of them together hold fewer than `n`). The same arguments always give the same
    list, and a shorter run is a prefix of a longer one."""
    families, difficulties = _checked(families, difficulties, style, split)
    if n < 0:
        raise ValueError(f"n must be 0 or more, got {n}")
    # Turn order: every family once per round, the difficulty rotating, so any stretch of the list is spread
    # over both (the first 12 problems already hold every family and every difficulty).
    turns = [(f, difficulties[(i + r) % len(difficulties)]) for r in range(len(difficulties))
             for i, f in enumerate(families)]
    cells = [[t for t in TEMPLATES.values() if (t.family, t.difficulty) == pair] for pair in turns]
    cells = [cell for cell in cells if cell]
    rng = random.Random(f"kosov/math_ko/{seed}")  # a str seed is hashed with SHA-512: the same on every run
    problems: list[MathProblem] = []
    keys: set[str] = set()
    questions: set[str] = set()
    live, turn = list(range(len(cells))), 0
    while len(problems) < n and live:
        at = turn % len(live)
        problem = _draw_new(rng, cells[live[at]], style, split, keys, questions)
        if problem is None:
            live.pop(at)  # this cell is used up; the others keep taking turns
            continue
        problems.append(problem)
        turn += 1
    if len(problems) < n:
        raise ValueError(f"only {len(problems):,} distinct exercises could be made for families={families}, "
                         f"difficulties={difficulties}, split={split!r} (asked for {n:,}); ask for fewer or "
                         "allow more families or difficulties")
    return problems


def _meta(p: MathProblem, seed: int, source: str | None, license_: str | None) -> dict:
    return {**META, **({"source": source} if source else {}), **({"license": license_} if license_ else {}),
            "seed": seed, "family": p.family, "difficulty": p.difficulty, "template_id": p.template_id,
            "split": split_of(p.split_key)}


def to_sft_row(p: MathProblem, *, seed: int, source: str | None = None, license_: str | None = None) -> dict:
    """A chat row for SFT: the question, then the worked solution ending in "정답: ...". `source` and `license_`
    (kosov synth: synth.source, synth.license) replace META's in the row's meta."""
    return {"messages": [{"role": "user", "content": p.question}, {"role": "assistant", "content": p.solution}],
            "meta": _meta(p, seed, source, license_)}


def to_grpo_row(p: MathProblem, *, seed: int, source: str | None = None, license_: str | None = None) -> dict:
    """A prompt row for GRPO: the question asks for a final "정답: ..." line that a reward can check (meta as
    to_sft_row's)."""
    prompt = f"{p.question}\n\n{ANSWER_INSTRUCTION[p.style]}"
    return {"prompt": [{"role": "user", "content": prompt}], "answer": p.answer, "answer_unit": p.answer_unit,
            "family": p.family, "difficulty": p.difficulty, "meta": _meta(p, seed, source, license_)}
