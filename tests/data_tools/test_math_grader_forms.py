"""The math grader on answer forms that state no single value, or state it in a form it misread: mixed numbers in
plain text and Unicode, "또는" between values, self-corrections, denied hangul numerals, sums left to do."""

from __future__ import annotations

import time

import pytest

from data_tools.math_grader import extract_answer, is_correct


@pytest.mark.parametrize("completion", [
    "정답: 3\\frac{5}{2}", "\\boxed{3\\frac{5}{2}}", "정답: $3\\dfrac{5}{2}$컵", "정답: 3 5/2", "정답: 3과 2분의 5",
    "정답: -3\\frac{5}{2}",
])
def test_a_whole_number_before_an_improper_fraction_answers_nothing(completion):
    # "3\frac{5}{2}" read 35/2. As a mixed number it would be 11/2, as TeX's product 15/2: no teacher accepts the form
    # for either, and a reward that paid one reading would teach it
    assert extract_answer(completion) is None
    assert not any(is_correct(completion, gold) for gold in ("35/2", "11/2", "15/2", "5/2", "3", "-11/2"))


@pytest.mark.parametrize("completion, gold", [
    ("정답: 3 1/2", "7/2"), ("정답: 3 1/2컵", "3.5"), ("정답은 2 3/4시간입니다.", "11/4"), ("정답: -1 3/4", "-1.75"),
    ("정답: ½", "1/2"), ("정답: ¾", "0.75"), ("정답: 3½", "7/2"), ("정답: 3 ½컵", "3.5"), ("\\boxed{2⅓}", "7/3"),
    ("정답: 1⁄2", "0.5"),  # U+2044, the fraction slash
    ("정답: 3.5", "3 1/2"), ("정답: 0.5", "½"), ("정답: 1/4", "¼"),  # a gold answer written so
])
def test_plain_and_unicode_mixed_numbers_and_fractions_are_read(completion, gold):
    assert is_correct(completion, gold)


@pytest.mark.parametrize("completion, gold", [
    ("정답: 3 1/2", "1/2"), ("정답: 3 1/2", "31/2"), ("정답: 3½", "3"), ("정답: 3½", "1/2"), ("정답: 1/2 1/3", "7/3"),
    ("정답: 1/2와 1/3", "7/3"),  # 2와 1/3 of "1/2와 1/3" is no mixed number
])
def test_a_mixed_number_is_not_its_fraction_nor_its_whole_part(completion, gold):
    assert not is_correct(completion, gold)


@pytest.mark.parametrize("completion", [
    "정답: 5 또는 -5", "정답: x = 5 또는 x = -5", "정답: x=5 or x=-5", "정답: $5$ 또는 $-5$", "정답: 5 이거나 -5",
    "정답: x의 값은 5 또는 -5입니다", "정답: x = 5, x = -5", "정답: 5와 -5", "\\boxed{5 \\text{ 또는 } -5}",
    "x² = 25이므로 x는 5 또는 -5입니다.",  # running text with no answer line
])
def test_two_values_joined_by_or_are_a_hedge_as_plus_minus_is(completion):
    # a GRPO policy must not be paid for a gold 5 (or -5) by naming both, wherever the pair stands in the answer
    assert extract_answer(completion) is None
    assert not is_correct(completion, "5") and not is_correct(completion, "-5")


@pytest.mark.parametrize("completion, gold", [
    ("정답: 5 또는 -5 중 양수인 5", "5"), ("정답: 12와 18의 최대공약수는 6", "6"), ("정답: 1,200원 또는 1200원", "1200"),
    ("정답: 2와 1/2", "5/2"), ("정답: x = 3, y = 4", "4"),  # another variable's value is no alternative
])
def test_or_and_and_elsewhere_in_the_answer_do_not_hedge_it(completion, gold):
    assert extract_answer(completion) == gold


@pytest.mark.parametrize("completion, gold", [
    ("정답: 다섯 개가 아닌 여섯 개입니다", "6"), ("정답: 다섯 개에서 두 개를 빼면 세 개", "3"), ("정답: 다섯 개가 아니라 여섯 개", "6"),
])
def test_a_hangul_answer_is_the_numeral_the_statement_ends_on(completion, gold):
    assert extract_answer(completion) == gold and not is_correct(completion, "5")


@pytest.mark.parametrize("completion", ["정답: 다섯 개가 아닙니다", "정답은 다섯이 아니에요.", "정답: 다섯 개 또는 여섯 개"])
def test_a_denied_or_hedged_hangul_numeral_is_no_answer(completion):
    assert extract_answer(completion) is None and not is_correct(completion, "5")


@pytest.mark.parametrize("completion", [
    "정답: 3개, 아니 4개", "정답: 3개 아니 4개", "정답: 3개, 아니요, 4개입니다", "정답: 3개 (정정: 4개)", "정답: 3개, 정정하면 4개",
    "정답: 세 개, 아니 네 개",
])
def test_an_explicit_self_correction_makes_the_corrected_value_the_answer(completion):
    assert extract_answer(completion) == "4" and is_correct(completion, "4") and not is_correct(completion, "3")


def test_a_value_offered_with_or_else_is_a_hedge_not_a_correction():
    assert extract_answer("정답: 3개 아니면 4개") is None and not is_correct("정답: 3개 아니면 4개", "4")
    assert extract_answer("정답: 3개가 아니다.") is None  # a denial, not a correction
    assert extract_answer("정답: 12개 (3개가 아니라 4묶음이므로)") == "12"  # a correction inside a note stays a note


@pytest.mark.parametrize("completion", [
    "정답: $3 \\times \\frac{1}{2}$", "정답: 3 × 1/2", "\\boxed{3 \\cdot \\frac12}", "정답: 3 × 4", "정답: 3 + 4",
    "정답: 12 ÷ 3", "정답: 7 - 3", "정답: 3개 + 4개", "정답: $3$ × $4$",
])
def test_a_sum_left_to_do_is_no_answer(completion):
    # "3 × 1/2" read as its last number, 1/2: a policy was paid for an operand. Evaluating it would pay one that
    # leaves the arithmetic, the skill being trained, undone; a teacher asks for the value too.
    assert extract_answer(completion) is None
    assert not any(is_correct(completion, gold) for gold in ("1/2", "3", "3/2", "4", "7", "12"))


@pytest.mark.parametrize("completion, gold", [
    ("정답: 3 × 4 = 12", "12"), ("정답: 12개 - 3개씩 4묶음", "12"), ("정답: **12**개", "12"), ("정답: 3개씩 4묶음이니까 **12개**", "12"),
    ("정답: $3 \\times 10^{4}$원", "30000"), ("정답: 12개 (3 × 4)", "12"), ("정답: -5", "-5"),
])
def test_an_equation_a_dash_or_a_power_is_no_sum_left_to_do(completion, gold):
    assert extract_answer(completion) == gold


@pytest.mark.parametrize("text, answer", [
    ("정답: " + "가" * 20000, None), ("정답: " + "이" * 20000, None), ("정답: " + "이 " * 10000, None),
    ("정답: " + "다섯" * 10000, None), ("정답: " + "3 × " * 5000, None), ("정답: " + "3 1/2 " * 3000, "7/2"),
    ("정답: " + "5 또는 " * 3000, "5"), ("정답: " + "3개, 아니 " * 2000, "3"), ("정답: " + "½" * 20000, "1/2"),
])
def test_a_generation_loop_of_the_new_forms_is_read(text, answer):
    assert extract_answer(text) == answer


@pytest.mark.parametrize("text", [
    "정답: 3" + " " * 20000 + "1/2", "정답: 3, 4" + " " * 20000 + "x", "정답: 3" + " " * 20000 + "4",
    "정답: 3만" + " " * 20000 + "x", "정답: 3" + " " * 20000 + "가", "정답: $" + " " * 20000 + "$x", "\\boxed{" * 2800,
])
def test_a_long_run_of_spaces_or_unclosed_boxes_is_read_in_linear_time(text):
    # a looping completion must not stall the GRPO reward: "\s*X?\s*" patterns tried every split of a space run
    # (over 20 s each, "3, 4" then spaces minutes), and each unclosed \boxed{ was read to the end (12 s); now < 0.1 s
    start = time.perf_counter()
    for kind in ("number", "ratio", "symbolic"):
        extract_answer(text, kind)
    assert time.perf_counter() - start < 3, "linear reading takes well under a second; the old one took minutes"
