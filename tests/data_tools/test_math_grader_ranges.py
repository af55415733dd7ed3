"""The math grader on a range given as the answer ("3~4개", "3-4개", "3에서 4개 사이"), which names two values and so
answers nothing, and on a self-correction written on the line after the answer line ("정답: 3개\\n아니, 4개")."""

from __future__ import annotations

import time

import pytest

from data_tools.math_grader import extract_answer, is_correct


@pytest.mark.parametrize("completion", [
    "정답: 3개\n아니, 4개", "정답: 3개\n아니 4개", "정답: 3개\n\n아니요, 4개입니다.", "답은 3개입니다.\n아니, 다시 세면 4개입니다.",
    "정답: 3개\n정정: 4개", "정답: 3개\n  아냐, 4개야", "정답: 세 개\n아니, 네 개", "**정답**\n3개\n아니, 4개",
    "정답: 2개\n아니, 3개\n아니, 4개",  # each correction line corrects the one above
])
def test_a_correction_on_the_line_after_the_answer_line_makes_its_value_the_answer(completion):
    # "정답: 3개\n아니, 4개" paid 3, while "3개, 아니 4개" on one line paid 4
    assert extract_answer(completion) == "4" and is_correct(completion, "4") and not is_correct(completion, "3")


@pytest.mark.parametrize("completion, gold", [
    ("정답: 3개\n아니다.", "3"),  # a denial on its own line is no correction
    ("정답: 3개\n아니면 문제를 다시 읽어 보세요.", "3"),  # "아니면" opening a line with no value offers none
    ("정답: 3개\n왜냐하면 1개를 먹어서 아니면 4개가 남기 때문", "3"),  # a reason line is not joined
    ("정답: 3개\n또 다른 풀이: 4개", "3"), ("정답: 3개\n또는 3개", "3"),  # 또 is no 또는; the same value twice
    ("정답: 3개\n검산: 아니, 3 × 1 = 3", "3"),  # a line that does not open with the correction
    ("정답: 12개\n\n풀이: 3개씩 4묶음, 아니 2개씩 6묶음", "12"),
])
def test_a_line_that_does_not_open_with_a_correction_leaves_the_answer_line_alone(completion, gold):
    assert extract_answer(completion) == gold


@pytest.mark.parametrize("completion", [
    "정답: 3개\n아니면 4개", "정답: 3개\n또는 4개", "정답: 3개\n혹은 4개", "정답: 3개\n\n또는 4개입니다.", "정답: 3개.\n아니면 4개",
    "정답: 3개\n아니면 4개일 수도 있습니다", "정답: 세 개\n아니면 네 개", "정답: 3개\n(또는 4개)", "**정답**\n3개\n또는 4개",
    "정답: 3개 아니면 4개일 수도 있습니다", "정답: 3개입니다. 또는 4개입니다.", "정답: 3개 (또는 4개)",  # on one line
    "정답: 3개\n아니, 4개\n또는 5개",  # a correction, then an alternative to it
])
def test_an_alternative_offered_after_the_answer_is_a_hedge_and_answers_nothing(completion):
    # "정답: 3개\n아니면 4개" paid 3 ("3개 아니면 4개일 수도" paid 4, as if 3 were denied): a GRPO policy must not be
    # paid for naming a second value on the next line
    assert extract_answer(completion) is None
    assert not any(is_correct(completion, gold) for gold in ("3", "4", "5"))


def test_a_correction_after_an_alternative_line_still_makes_the_answer():
    assert extract_answer("정답: 3개\n아니면 4개\n아니, 5개") == "5"


@pytest.mark.parametrize("completion", [
    "정답: 3~4개", "정답: 3 ~ 4개", "정답: 3개~4개", "정답: 약 3~4개", "정답: 3∼4개", "정답: 3〜4개", "정답: 3～4개", "정답: 3–4개",
    "정답: 3-4개", "정답: 3-4", "정답: 3개-4개", "\\boxed{3-4}", "<answer>3~4</answer>", "정답: 3에서 4개 사이",
    "정답은 3개에서 4개 사이입니다.", "정답: 3과 4 사이", "정답: 3 내지 4개", "정답: 3~4개 정도입니다.", "정답: 세 개~네 개",
    "정답: 3%~4%", "정답: $3$~$4$개", "정답: **3**~**4**개", "정답: 3%에서 4% 사이", "정답: 3~4%",
    "정답: 3~4개\n아니, 3~4개 정도", "계산하면 3~4개가 됩니다.",  # running text with no answer line
])
def test_a_range_is_two_values_and_answers_nothing(completion):
    # "3~4개" paid a gold 3 (or 4, as written): a GRPO policy must not be paid for naming two values
    assert extract_answer(completion) is None
    assert not is_correct(completion, "3") and not is_correct(completion, "4")


@pytest.mark.parametrize("completion, gold, kind", [
    ("정답: -4", "-4", "number"), ("정답: -4개", "-4", "number"), ("정답: 영하 -3도", "-3", "number"),
    ("정답: 3:40", "3:40", "ratio"), ("정답: 12 - 3 = 9", "9", "number"), ("정답: -3 - 4 = -7", "-7", "number"),
    ("정답: 2024-03-04", "2024", "number"),  # a date is no range (its year read as before)
    ("정답: 12개 - 3개씩 4묶음", "12", "number"), ("정답: 12개~ 3개씩 4묶음", "12", "number"),  # a dash, a tilde
    ("정답: 3~3개", "3", "number"),  # the same value twice
    ("정답: 월요일에서 3일 뒤인 목요일", "목요일", "weekday"), ("정답: 3에서 4를 빼면 -1", "-1", "number"),
    ("정답: 1~2일 걸리고 모두 5일", "5", "number"),  # a range in the answer's subject
    ("정답: 3개\n- 4개는 틀린 답", "3", "number"),  # a bullet on the next line is no range
])
def test_a_minus_sign_a_date_a_ratio_or_a_range_elsewhere_are_read_as_before(completion, gold, kind):
    assert extract_answer(completion, kind) == gold


@pytest.mark.parametrize("completion", ["정답: 월요일~수요일", "정답: 월요일에서 수요일 사이", "정답: 1:2~1:3"])
def test_a_range_of_weekdays_or_ratios_answers_nothing(completion):
    kind = "ratio" if ":" in completion else "weekday"
    assert extract_answer(completion, kind) is None


@pytest.mark.parametrize("text", [
    "정답: " + "3~" * 10000, "정답: " + "3-" * 10000, "정답: " + "3-4개 " * 3500, "정답: " + "3에서 " * 5000 + "4 사이",
    "정답: 3" + "\n아니, 4" * 3000, "정답: 3" + "\n아니" * 7000, "정답: 3" + "\n" * 20000 + "아니, 4",
    "정답: 3" + "\n" + " " * 20000 + "아니, 4", "정답: 3" + "~" * 20000 + "4", "정답: 3" + " " * 20000 + "~4",
    "정답: 3" + "-" * 20000 + "4", "정답: 3개" + "개" * 20000 + "~4개",
    "정답: 3" + "\n아니면 4" * 3000, "정답: 3" + "\n또는" * 5000, "정답: 3" + ". (또는 " * 3000 + "4",
    "정답: " + "세 개에서 " * 2500 + "네 개 사이", "정답: " + "세 " * 7000 + "개에서",
])
def test_a_generation_loop_of_ranges_or_correction_lines_is_read_in_linear_time(text):
    start = time.perf_counter()
    for kind in ("number", "ratio", "symbolic", "weekday"):
        extract_answer(text, kind)
    assert time.perf_counter() - start < 3, "each reading takes well under 0.2 s (linear)"
