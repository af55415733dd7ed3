"""The one math grader (GRPO reward and evaluation) reads the ways Korean answers write numbers."""

from __future__ import annotations

import pytest

from data_tools.math_grader import extract_answer, is_correct


@pytest.mark.parametrize("completion, gold", [
    ("정답은 42입니다.", "42"),
    ("모두 42개예요.", "42"),
    ("거스름돈은 1,200원입니다.\n정답: 1,200원", "1200"),
    ("답: 3/4", "0.75"),
    ("정답은 0.75입니다.", "3/4"),
    ("전체의 4분의 3을 먹었어요. 정답: 4분의 3", "3/4"),
    ("할인율은 75%입니다.", "75"),
    ("<answer>7</answer>", "7"),
    ("따라서 \\boxed{12}", "12"),
    ("기온은 -3도가 됩니다.", "-3"),
    ("그날은 수요일이에요.\n정답: 수요일", "수요일"),
    ("정답: 3만 원", "30000"),  # myriad units, as shopping answers are written
    ("모두 합하면 정답은 12만 원입니다.", "120000"),
    ("정답: 1만 2천 원", "12000"),
    ("정답: 1억 2천만 원", "120000000"),
    ("정답: 2.5만", "25000"),
    ("정답: 3만 원 (30,000원)", "30000"),
    ("정답: ５００원", "500"),  # full-width digits from a Korean IME
    ("정답: 3 + 4 = 7", "7"),  # the result of a final equation
    ("피자 8조각을 4명이 나누면 정답: 2조각", "2"),  # 조각 is a piece, not 조 (a trillion)
])
def test_korean_answer_formats_are_read(completion, gold):
    assert is_correct(completion, gold)


@pytest.mark.parametrize("completion, gold", [
    ("정답: 1,201원", "1200"),
    ("정답은 목요일입니다.", "수요일"),
    ("모르겠어요.", "42"),
    ("42를 구하는 문제예요. 하지만 정답: 24", "42"),  # the final answer line wins over earlier numbers
    ("정답: 3만 원", "3"),
    ("3만큼 더 큰 수를 구하면 정답: 5", "30000"),  # 만큼 is "as much as", not a myriad
])
def test_wrong_or_missing_answers_are_wrong(completion, gold):
    assert not is_correct(completion, gold)


def test_the_answer_after_thinking_counts():
    completion = "<think>3개씩 4묶음이면 12개, 아니 13개인가?</think>\n정답: 12개"
    assert extract_answer(completion) == "12" and is_correct(completion, "12")
    assert not is_correct("<think>정답: 12</think>\n잘 모르겠어요.", "12")
