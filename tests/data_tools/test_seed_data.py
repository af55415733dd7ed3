"""The generated datasets kosov ships match their generators, keep train and test apart, and the one math
grader accepts every worked solution the generator writes."""

from __future__ import annotations

import json
import re
from collections import Counter

from data_tools.chat_io import load_chat_files, prompt_row
from data_tools.generators.math_ko import META, TEMPLATES, generate
from data_tools.math_grader import is_correct
from data_tools.seed_data import DATASETS, SEED, SIZES, check

WORKING = re.compile(r"\d{4}(?=년)|(\d[\d,]*(?:\.\d+)?(?:/\d+)?)|([월화수목금토일]요일)")


def test_committed_datasets_are_what_the_generators_write():
    assert check() == []


def test_train_and_test_prompts_are_disjoint_and_complete():
    rows = {name: [json.loads(line) for line in (DATASETS / "ko_math" / f"{name}.jsonl").open(encoding="utf-8")]
            for name in ("train", "test")}
    prompts = {name: {r["prompt"][0]["content"] for r in rs} for name, rs in rows.items()}
    assert not prompts["train"] & prompts["test"]
    assert {r["meta"]["split"] for r in rows["test"]} == {"test"}
    assert {r["meta"]["split"] for r in rows["train"]} == {"train"}
    report = load_chat_files([DATASETS / "ko_math" / "train.jsonl"],
                             check=lambda where, record: prompt_row(where, record, ("answer",)))
    assert len(report.rows) == 1000 and not report.skipped


def test_the_grader_accepts_every_generated_solution():
    problems = generate(1200, seed=7)
    assert all(is_correct(p.solution, p.answer) for p in problems)
    wrong = [p for p in problems[:200] if p.answer.lstrip("-").isdigit()]
    assert not any(is_correct(p.solution.replace("정답: ", "정답: 1"), p.answer) for p in wrong)


def test_the_shipped_files_hold_every_cell_full_meta_and_answers_their_solutions_reach():
    rows = {name: [json.loads(line) for line in (DATASETS / "ko_math" / f"{name}.jsonl").open(encoding="utf-8")]
            for name in SIZES}
    cells = {(t.family, t.difficulty) for t in TEMPLATES.values()}
    for name, rs in rows.items():
        assert len(rs) == SIZES[name], name
        assert Counter((r["meta"]["family"], r["meta"]["difficulty"]) for r in rs).keys() == cells, name
        for r in rs:
            assert {**META, "seed": r["meta"]["seed"]}.items() <= r["meta"].items(), r["meta"]
            assert {"family", "difficulty", "template_id", "split"} <= r["meta"].keys(), r["meta"]
    # each shipped row's own worked solution (the same problems, generated again) reaches its answer
    problems = {"train": generate(SIZES["train"], seed=SEED, split="train"),
                "test": generate(SIZES["test"], seed=SEED, split="test"),
                "sft": generate(SIZES["sft"], seed=SEED + 1, split="train")}
    for name, ps in problems.items():
        for p, row in zip(ps, rows[name], strict=True):
            if name == "sft":
                question, solution, answer = row["messages"][0]["content"], row["messages"][1]["content"], p.answer
            else:
                question, solution, answer = row["prompt"][0]["content"], p.solution, row["answer"]
            assert question.startswith(p.question) and solution == p.solution, name
            assert is_correct(solution, answer, question=question), (name, question)
    # and no exercise of the test file is in the train file or the SFT file: not by the generator's key, nor by
    # the numbers and weekdays the working uses (a year only names a date)
    def exercises(ps):
        return {p.split_key for p in ps} | {(p.template_id, *(n.replace(",", "") or w for n, w in WORKING.findall(
            p.solution) if n or w)) for p in ps}

    assert not exercises(problems["test"]) & exercises(problems["train"] + problems["sft"])


def test_a_teacher_writing_the_shipped_korean_seed_requests_would_have_every_one_kept():
    """The requests of kosov's own seed conversations (ko_chat_seed.jsonl, self_instruct's examples) are what a
    Korean request looks like: code questions, JSON, a text to translate. Ten of them were refused as "not a usable
    Korean request" when a teacher wrote one (self_instruct, evol_instruct, magpie). Only the English-only ones,
    asking in English for Korean, are not Korean requests."""
    from data_tools.generators import instructions as gen
    from data_tools.teachers import Generation
    from data_tools.text import hangul_share, prose

    rows = [json.loads(line) for line in (DATASETS / "ko_chat_seed.jsonl").open(encoding="utf-8")]
    asks = list(dict.fromkeys(m["content"] for r in rows for m in r["messages"] if m["role"] == "user"))
    korean = [a for a in asks if hangul_share(prose(a)) > 0]

    class Writes:
        name = "writes"

        def generate(self, requests, *, progress=True):
            return [Generation(asks[i], None, "stop") for i in range(len(requests))]

    dropped = Counter()
    assert gen.magpie(Writes(), len(asks), seed=0, prefix="<user>", dropped=dropped) == korean
    assert len(korean) > 300 and dropped == {"not a usable Korean request": len(asks) - len(korean)}
    assert len(asks) - len(korean) == 3  # "Translate to Korean, casual tone between friends: ...", and two more
