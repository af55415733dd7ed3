"""The generated datasets kosov ships match their generators, keep train and test apart, and the one math
grader accepts every worked solution the generator writes."""

from __future__ import annotations

import json

from data_tools.chat_io import load_chat_files, prompt_row
from data_tools.generators.math_ko import generate
from data_tools.math_grader import is_correct
from data_tools.seed_data import DATASETS, check


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
