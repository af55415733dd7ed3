"""The one math grader (GRPO reward and evaluation) reads the ways Korean answers write numbers."""

from __future__ import annotations

import json

import pytest

from data_tools.generators.math_ko import generate
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


@pytest.mark.parametrize("completion, gold", [
    ("따라서 답은 \\boxed{\\frac{3}{4}}입니다.", "3/4"),  # Qwen3 writes fractions and thousands in TeX
    ("따라서 \\(\\boxed{\\dfrac{1}{2}}\\)", "0.5"),
    ("최종 답: \\boxed{8{,}500}", "8500"),
    ("따라서 \\boxed{8\\,500}", "8500"),  # a thin space between thousands
    ("$$\\boxed{8500\\text{원}}$$", "8500"),
    ("정답: $\\frac{3}{4}$", "0.75"),
    ("정답: $-\\frac{1}{2}$", "-0.5"),
    ("정답: 50\\%", "50"),
])
def test_tex_answers_are_read(completion, gold):
    assert is_correct(completion, gold)


@pytest.mark.parametrize("completion, gold", [
    ("정답: 8,500원 (거스름돈 = 10,000 - 1,500)", "8500"),  # a note after the answer is not the answer
    ("정답: 25% (3,000 ÷ 12,000 = 0.25)", "25"),
    ("정답: 12개 (검산: 12 ÷ 3 = 4)", "12"),
    ("처음 답은 7이었지만 다시 계산하면 정답: 8", "8"),  # the last "정답:" of a line, not an earlier "답은"
    ("정답: 12가 아니라 15입니다", "15"),  # a corrected answer
    ("정답: (3/4)", "0.75"),  # brackets holding the answer itself stay
    ("정답: −5", "-5"),  # U+2212, the minus sign of TeX and word processors
])
def test_the_stated_answer_of_a_final_line_is_read(completion, gold):
    assert is_correct(completion, gold)


CHECK = "\n(검산: 700 + 300 = 1000)"  # a check line after the answer: its last number is not the answer


@pytest.mark.parametrize("completion", [
    "정답이 700원입니다" + CHECK, "[정답] 700원" + CHECK, "【정답】 700원" + CHECK, "**정답**\n700원" + CHECK,
    "### 정답\n700원" + CHECK, "정답 700원" + CHECK, "정답 → 700원" + CHECK,
    "정답: 700원\n이 답은 1000원에서 300원을 빼서 구했습니다.",  # "이 답은" refers to the answer, it states none
])
def test_common_wordings_of_the_answer_line_are_read(completion):
    assert is_correct(completion, "700")


def test_a_negative_answer_is_not_its_absolute_value_and_gold_answers_are_normalised():
    assert not is_correct("정답: −5", "5")
    assert is_correct("정답: -5", "−5") and is_correct("정답: 수요일", " 수요일\n") and is_correct("정답: 12", "１２")


@pytest.mark.parametrize("completion, gold", [
    ("정답은 오백 원입니다.", "500"),  # Sino-Korean numerals before a counter
    ("정답: 이천오백", "2500"),  # or standing alone, when more than one syllable
    ("정답은 이백만 원", "2000000"),
    ("정답: 만 원", "10000"),
    ("정답: 이십일 개", "21"),  # the longest numeral, not 20 and a day
    ("정답은 오백이에요.", "500"),  # the copula's 이, not 502
    ("정답은 오백이다.", "500"),
    ("답은 스물세 개입니다.", "23"),  # native numerals, attributive before a counter
    ("정답은 다섯입니다.", "5"),
    ("정답: 서른다섯개", "35"),
    ("<answer>일곱</answer>", "7"),
    ("\\boxed{아홉}", "9"),
    ("정답은 사과 세 개입니다.", "3"),  # 사 of 사과 (apple) is not four
    ("3개씩 4묶음에서 1개를 먹었어요. 정답: 열한 개", "11"),  # the answer line wins over the digits before it
])
def test_hangul_number_words_in_the_final_answer_are_read(completion, gold):
    assert is_correct(completion, gold)


@pytest.mark.parametrize("completion", [
    "정답은 이 책입니다.",  # 이: "this"
    "정답은 세상에 없어요.",  # 세 of 세상 (world)
    "정답은 네, 맞아요.",  # 네: "yes"
    "정답은 한국입니다.",
    "정답: 스무",  # attributive, with no counter
    "정답은 다음과 같습니다.",
])
def test_hangul_syllables_that_are_not_numbers_are_not_read(completion):
    assert extract_answer(completion) is None


def test_hangul_words_are_read_only_in_the_final_answer():
    # a hangul numeral in running text is not the answer: the last digits are, as before
    assert extract_answer("사과가 다섯 개 있었는데 2개를 먹어서 3개가 남았어요.") == "3"
    assert extract_answer("오백 원짜리 동전이 있어요.") is None
    assert extract_answer("정답: 오백 원 (500원)") == "500"


def test_the_answer_after_thinking_counts():
    completion = "<think>3개씩 4묶음이면 12개, 아니 13개인가?</think>\n정답: 12개"
    assert extract_answer(completion) == "12" and is_correct(completion, "12")
    assert not is_correct("<think>정답: 12</think>\n잘 모르겠어요.", "12")


@pytest.mark.parametrize("completion, gold", [
    ("정답: 6년 뒤 아버지의 나이는 69살입니다", "69"),  # the number the statement ends on, not the 6 of its subject
    ("정답: 6년 뒤 아버지의 나이는 69살이 됩니다", "69"),  # no number ends it: the last one, the predicate's
    ("정답: 거스름돈은 10,000원에서 8,800원을 뺀 1,200원입니다.", "1200"),
    ("정답은 3개씩 4묶음이니까 12개입니다", "12"),
    ("<answer>5일 뒤 남은 쪽수는 120쪽</answer>", "120"),
    ("정답: 12개 — 3개씩 4묶음이므로", "12"),  # a reason after the answer is not the answer
    ("정답: 12개, 3개씩 4묶음", "12"),
    ("정답: 12개입니다 3개씩 4묶음이니까요", "12"),  # a copula ends the statement, punctuation or not
    ("정답: 20% 할인된 8,000원", "8000"),
    ("정답: **69살**", "69"),
    ("정답: 3시간 20분", "200"),  # a duration is one quantity, in minutes as the questions ask
    ("정답: 1시간 5분 걸립니다", "65"),
    ("정답: 월요일에서 3일 뒤인 목요일입니다", "목요일"),  # a weekday answer likewise
])
def test_the_answer_is_the_number_the_final_statement_ends_on(completion, gold):
    assert is_correct(completion, gold)


@pytest.mark.parametrize("completion, gold", [
    ("정답: 6년 뒤 아버지의 나이는 69살입니다", "6"),
    ("정답: 3시간 20분", "3"),
    ("정답: 3시간 20분", "20"),
    ("정답: 월요일에서 3일 뒤인 목요일입니다", "월요일"),
])
def test_a_number_in_the_subject_of_the_final_statement_is_not_the_answer(completion, gold):
    assert not is_correct(completion, gold)


LOWEST_TERMS = "피자 2판을 8명이 똑같이 나누어 먹으면 한 명이 먹는 피자는 몇 판이에요? 기약분수로 답하세요."


@pytest.mark.parametrize("completion", ["정답: 2/8판", "정답: 8분의 2", "따라서 \\boxed{\\frac{2}{8}}", "정답: 0.5/2"])
def test_an_unreduced_fraction_is_wrong_where_lowest_terms_are_asked(completion):
    assert not is_correct(completion, "1/4", question=LOWEST_TERMS)
    assert is_correct(completion, "1/4")  # where the question is not given or does not ask, the value counts
    assert is_correct(completion, "1/4", question=LOWEST_TERMS.replace(" 기약분수로 답하세요.", ""))


def test_a_reduced_answer_stays_right_where_lowest_terms_are_asked():
    for completion in ("정답: 1/4판", "정답: 4분의 1", "\\boxed{\\frac{1}{4}}", "정답: 2/8 = 1/4"):
        assert is_correct(completion, "1/4", question=LOWEST_TERMS)
    assert is_correct("정답: 3판", "3", question=LOWEST_TERMS)  # a whole number is no unreduced fraction
    assert is_correct("Answer: 2/8", "1/4", question="How much? Give it as a fraction.")
    assert not is_correct("Answer: 2/8", "1/4", question="Write it in lowest terms.")


def test_generated_fraction_problems_take_the_reduced_answer_only():
    problems = [p for p in generate(90, seed=7, families="sharing", difficulties=(2,)) if p.template_id == "sharing/4"]
    assert problems and all(is_correct(p.solution, p.answer, question=p.question) for p in problems)
    unreduced = [(p, "{a}/{k}".format(**json.loads(p.instance_key.split(":", 1)[1]))) for p in problems]
    unreduced = [(p, fraction) for p, fraction in unreduced if fraction != p.answer]
    assert unreduced and not any(is_correct(f"정답: {fraction}{p.answer_unit}", p.answer, question=p.question)
                                 for p, fraction in unreduced)


@pytest.mark.parametrize("completion, gold", [
    ("정답: 3, 4", "3"), ("정답: 3, 4", "4"), ("정답: 4, 5, 6", "5"),
    ("정답: 3개 또는 4개", "3"), ("정답은 3이나 4입니다.", "4"), ("정답: 3 or 4", "3"),
    ("<answer>12 또는 15</answer>", "12"), ("\\boxed{3, 4}", "3"),
    ("정답: 수요일이나 목요일", "수요일"),
])
def test_a_final_answer_that_hedges_between_several_is_wrong(completion, gold):
    # A GRPO policy that lists candidates must not be paid for the one that happens to be right.
    assert not is_correct(completion, gold)


@pytest.mark.parametrize("completion, gold", [
    ("정답: 1,200원", "1200"),  # a thousands comma is no list
    ("정답: 1,200원, 즉 1200원", "1200"),  # the same answer twice is no hedge
    ("정답: 12개, 3개씩 4묶음", "12"),  # a reason after a comma
    ("정답: 수요일", "수요일"),
])
def test_one_answer_with_commas_is_no_hedge(completion, gold):
    assert is_correct(completion, gold)


@pytest.mark.parametrize("completion, gold", [
    ("정답: 200분", "3시간 20분"),  # math-verify alone reads this gold as 20
    ("정답: 3시간 20분", "3시간 20분"),
    ("정답: 12000원", "1만 2천 원"),
    ("정답: 0.75", "4분의 3"),
    ("정답: 3/4", "\\frac{3}{4}"),
    ("정답: 500원", "오백 원"),
    ("정답: 1200", "1,200원"),
])
def test_gold_answers_are_read_as_completions_are(completion, gold):
    assert is_correct(completion, gold)


def test_a_gold_duration_is_not_its_minutes_part():
    assert not is_correct("정답: 20", "3시간 20분") and not is_correct("정답: 2", "1만 2천 원")


@pytest.mark.parametrize("completion, gold", [
    ("정답: 12 cm^2", "12"),  # the exponent of a unit is not the answer
    ("\\boxed{12\\,\\text{cm}^2}", "12"),
    ("정답: $12\\,\\mathrm{cm}^{2}$", "12"),
    ("정답: 8 m^3", "8"),
    ("\\boxed{1000}", "10^3"),  # a power of numbers is its value, in a gold answer or a completion
    ("\\boxed{10^3}", "1000"),
    ("정답: $3 \\times 10^{4}$원", "30000"),
    ("\\boxed{2^{100}}", str(2**100)),
])
def test_a_power_or_a_unit_exponent_is_not_read_as_its_exponent(completion, gold):
    assert is_correct(completion, gold)
    assert not is_correct(completion, "3" if gold != "3" else "2")


def test_a_gold_answer_with_a_unit_exponent_is_its_number():
    assert is_correct("정답: 12", "12 cm^2") and not is_correct("정답: 2", "12 cm^2")
    assert not is_correct("\\boxed{3}", "10^3")


@pytest.mark.parametrize("completion, gold", [
    ("\\boxed{3}", "2\\sqrt{3}"), ("\\boxed{25}", "25\\pi"), ("정답: 3", "\\frac{\\sqrt{3}}{2}"),
    ("정답: 2", "\\sqrt{2}"), ("정답: 4", "x^2+4"), ("정답: 1:3", "1:2"), ("정답: 1", "1:2"), ("정답: 2:1", "1:2"),
    ("\\boxed{2\\sqrt{3}}", "3"), ("정답: 25π", "25"),  # nor is a symbolic completion one of its numbers
])
def test_a_symbolic_or_ratio_answer_is_not_one_of_its_numbers(completion, gold):
    # A GRPO policy must not be paid for the 3 of 2√3 or the 1 of 1:2.
    assert not is_correct(completion, gold)


@pytest.mark.parametrize("completion, gold", [
    ("정답: 2\\sqrt{3}", "2\\sqrt{3}"), ("\\boxed{2\\sqrt{3}}", "2\\sqrt{3}"), ("정답: 2√3입니다.", "2\\sqrt{3}"),
    ("정답: \\sqrt{12}", "2\\sqrt{3}"), ("정답: 25π", "25\\pi"), ("따라서 넓이는 25π cm²입니다.", "25\\pi"),
    ("정답: $\\frac{\\sqrt{3}}{2}$", "\\frac{\\sqrt{3}}{2}"), ("정답: √2", "\\sqrt{2}"), ("정답: x^2 + 4", "x^2+4"),
    ("정답: 1:2", "1:2"), ("정답은 1 : 2입니다.", "1:2"), ("정답: 1 대 2", "1:2"),
])
def test_a_symbolic_or_ratio_answer_is_compared_as_a_whole(completion, gold):
    assert is_correct(completion, gold)


@pytest.mark.parametrize("completion", [
    "정답: 12개이며 4묶음입니다.", "정답: 12개인데, 4묶음이에요.", "정답: 12개이며, 4묶음입니다.",
    "정답은 12개이고 3개씩 4묶음입니다.", "정답: 12개 입니다. 3개씩 4묶음", "정답: 12개이지만 3개는 남습니다.",
    "정답: 12개입니다. 검산: 12 ÷ 3 = 4", "정답: 12개. 12 ÷ 3 = 4이므로 맞습니다.",  # a check after the answer's sentence
])
def test_a_connective_or_a_check_after_the_answer_does_not_move_it(completion):
    assert extract_answer(completion) == "12" and is_correct(completion, "12") and not is_correct(completion, "4")


def test_a_reason_before_the_answer_is_still_not_the_answer():
    assert is_correct("정답: 한 명당 3개이므로 모두 12개입니다", "12") and is_correct("정답: 3 + 4 = 7. 검산: 7 - 4 = 3", "7")
    assert extract_answer("정답: 3개 또는 4개") is None and extract_answer("정답: 3, 4") is None  # hedges stay hedges


def test_a_minus_sign_with_a_space_opening_the_answer_is_a_minus_sign():
    assert is_correct("정답: - 5", "-5") and not is_correct("정답: - 5", "5")
    assert is_correct("\\boxed{- 5}", "-5") and is_correct("정답: $- 5$도", "-5")
    assert is_correct("정답:\n- 5", "5")  # on a line of its own, a list bullet


def test_a_long_run_of_digits_is_read_whole():
    # A generation loop of digits. Only a result check: the grader read these right before it was made linear,
    # slowly (its number patterns backtracked from every position), and tests time nothing.
    digits = "3" * 16000
    assert extract_answer("정답: 0." + digits) == "0." + digits
    assert extract_answer("정답: " + digits + "분의 1") == "1/" + digits
    assert extract_answer("정답: 1:" + digits, "ratio") == "1:" + digits


def test_hours_too_long_for_a_number_are_no_error():
    # int() refuses strings over 4,300 digits: a looping "333...시간 20분" raised ValueError in the reward
    assert not is_correct("정답: " + "3" * 5000 + "시간 20분", "200")
    assert not is_correct("정답: 1시간 " + "3" * 5000 + "분", "60")


@pytest.mark.parametrize("completion, gold", [
    ("정답: 2시간이므로 120분입니다.", "120"), ("정답: 3 km이므로 3000 m입니다.", "3000"), ("답은 3배이므로 36살입니다.", "36"),
    ("정답: 4,000원이므로 거스름돈은 1,000원입니다.", "1000"), ("정답: 5명이므로 한 명당 4개씩 받습니다.", "4"),
    ("정답: 3개이므로 모두 12개입니다", "12"),
])
def test_a_number_given_as_a_reason_is_not_the_answer(completion, gold):
    # "A이므로 B": A is why, B is the answer; only an additive connective ("12개이며 4묶음") keeps the first number
    assert is_correct(completion, gold) and extract_answer(completion) == gold
    assert not is_correct(completion, extract_answer(completion.split("므로")[0]))  # not the reason


@pytest.mark.parametrize("completion, gold", [
    ("정답: 5년 뒤의 나이를 구합니다. 12 + 5 = 17살", "17"),  # the first sentence states no number
    ("<answer>풀이: 3개씩 4봉지입니다. 3 × 4 = 12, 따라서 12개</answer>", "12"),  # the equation concludes
    ("정답: 3개씩 4봉지입니다. 따라서 3 × 4 = 12개", "12"), ("정답: 12개입니다. 검산: 12 ÷ 3 = 4", "12"),
    ("정답: 모두 12개입니다. 확인: 12 ÷ 3 = 4", "12"), ("정답: 17살. 12 + 5 = 17", "17"),
])
def test_an_equation_after_the_first_sentence_is_a_check_only_after_a_stated_answer(completion, gold):
    assert extract_answer(completion) == gold and is_correct(completion, gold)


@pytest.mark.parametrize("completion, gold, right", [
    ("정답: 45 km/h", "30 km/h", False), ("정답: 7 m/s", "5 m/s", False), ("정답: 시속 30 km", "30 km/h", True),
    ("정답: 30 km/h", "30 km/h", True), ("정답: 9.7 m/s²", "9.8 m/s^2", False), ("정답: 9.8", "9.8 m/s^2", True),
    ("정답: 12 m/s²", "12", True), ("정답: 25도", "25°C", True), ("정답: 26°C", "25 °C", False),
    ("정답: 3x/y", "3x/z", False), ("정답: 3x/y", "3x/y", True),  # a variable after a number is still one
])
def test_a_unit_after_a_number_is_no_variable(completion, gold, right):
    # "km/h": its h made the gold symbolic, compared whole, so 45 km/h matched 30 km/h (both read "/h")
    assert is_correct(completion, gold) == right


@pytest.mark.parametrize("completion, gold", [
    ("\\boxed{25\\pi \\approx 78.5}", "78.5"), ("정답: 25π ≈ 78.5", "78.5"), ("\\boxed{5\\sqrt{2} \\approx 7.07}", "7.07"),
    ("정답: 25π ≒ 78.5", "78.5"), ("\\boxed{25\\pi \\approx 78.5}", "25\\pi"), ("정답: 25π ≈ 78.5", "25\\pi"),
])
def test_an_approximation_is_read_as_an_equation(completion, gold):
    # a number answer is the approximate value after ≈, a symbolic one the exact value before it
    assert is_correct(completion, gold) and not is_correct(completion, "25" if gold != "25" else "7")


@pytest.mark.parametrize("completion, gold", [
    ("정답: 3\\frac{1}{2}", "7/2"), ("\\boxed{3\\tfrac{1}{2}}", "3.5"), ("정답: $3 \\frac12$", "7/2"),
    ("\\boxed{-1\\dfrac{3}{4}}", "-1.75"), ("정답: 1\\,\\frac{1}{2}컵", "1.5"),
    ("정답: 2와 1/2", "5/2"), ("정답: 3과 4분의 1", "13/4"),  # as Korean reads a mixed number aloud
    ("정답: 3.5", "3\\frac{1}{2}"), ("정답: 2.5", "2와 1/2"),  # a gold answer written so
])
def test_a_mixed_number_is_one_value(completion, gold):
    assert is_correct(completion, gold)


@pytest.mark.parametrize("completion, gold", [
    ("정답: 3\\frac{1}{2}", "31/2"), ("정답: 3\\frac{1}{2}", "1/2"), ("정답: 2와 1/2", "1/2"), ("정답: 3과 4분의 1", "1/4"),
    ("정답: 1/2", "2와 1/2"),
])
def test_a_mixed_number_is_not_its_digits_side_by_side_nor_its_fraction(completion, gold):
    # "31/2" paid a model for 15.5, "1/2" for dropping the whole part
    assert not is_correct(completion, gold)


def test_a_mixed_number_leaves_products_and_lowest_terms_as_they_were():
    assert is_correct("\\boxed{2\\sqrt{3}}", "2\\sqrt{3}") and is_correct("정답: 3\\pi", "3\\pi")
    assert is_correct("\\boxed{2\\frac{\\sqrt{3}}{2}}", "\\sqrt{3}") and not is_correct("\\boxed{3\\pi}", "3")
    assert is_correct("\\boxed{2\\frac{1}{2}}", "5/2", question=LOWEST_TERMS)
    assert not is_correct("\\boxed{2\\frac{2}{4}}", "5/2", question=LOWEST_TERMS)  # 2 2/4 is not in lowest terms


@pytest.mark.parametrize("completion", ["정답: ±5", "정답: $\\pm 5$", "\\boxed{\\pm 5}", "정답: x = ±5", "정답: ±5개"])
def test_a_plus_minus_answer_is_two_values_not_one(completion):
    # a policy must not be paid for "±5" where the answer is 5 (or -5): it names both
    assert not is_correct(completion, "5") and not is_correct(completion, "-5")
    assert is_correct(completion, "±5") and is_correct(completion, "\\pm 5")


def test_a_plus_minus_gold_answer_takes_both_values_only():
    assert is_correct("정답: ±√2", "\\pm\\sqrt{2}") and is_correct("정답: $\\pm \\sqrt{2}$", "±√2")
    assert not any(is_correct(completion, "±5") for completion in ("정답: 5", "정답: -5", "정답: ±6"))


@pytest.mark.parametrize("completion, gold", [
    ("정답: 2분의 1시간", "0.5 h"), ("정답: 다섯 시간", "5 h"), ("정답: 3만 초", "30000 s"), ("정답: 5초", "5 s"),
    ("정답: 5", "5 s"), ("정답: 2시간", "2 h"), ("정답: 7", "7 g"), ("정답: 4리터", "4 L"), ("정답: 3", "3 m"),
])
def test_a_unit_letter_after_a_gold_number_is_a_unit(completion, gold):
    # "5 s" read as 5 times a variable s compared whole: Korean forms of 5 (3만 초, 다섯 시간) were not read
    assert is_correct(completion, gold) and not is_correct("정답: 6", gold)


@pytest.mark.parametrize("completion, gold, right", [
    ("정답: 2x", "2x", True), ("정답: 2", "2x", False), ("정답: 2", "2n", False), ("정답: 3", "2h + 3", False),
    ("정답: 2", "2h + 3", False), ("정답: 2h + 3", "2h + 3", True),
])
def test_a_letter_in_an_algebra_answer_stays_a_variable(completion, gold, right):
    assert is_correct(completion, gold) == right


@pytest.mark.parametrize("completion, gold", [
    ("정답: 12개이므로, 4묶음", "4"), ("정답: 12개이니까, 4묶음이에요.", "4"), ("정답: 12개라서 4묶음", "4"),
])
def test_a_number_given_as_a_reason_before_a_comma_is_not_the_answer_nor_a_hedge(completion, gold):
    # as "정답: 2시간이므로 120분입니다." is 120: the clause before 이므로 is why, the one after it the answer
    assert extract_answer(completion) == gold and not is_correct(completion, "12")


@pytest.mark.parametrize("completion, gold, kind", [
    ("3:4이므로 1:2가 아닙니다", "3:4", "ratio"), ("정답: 3:4이므로 1:2가 아닙니다", "3:4", "ratio"),
    ("정답: 1:2가 아닌 3:4입니다", "3:4", "ratio"), ("따라서 5개입니다. 6개가 아닙니다.", "5", "number"),
    ("정답: 12개가 아닌 15개", "15", "number"), ("목요일입니다. 수요일이 아닙니다.", "목요일", "weekday"),
])
def test_a_denied_number_is_not_the_answer(completion, gold, kind):
    assert extract_answer(completion, kind) == gold and is_correct(completion, gold)


def test_an_answer_that_only_denies_answers_nothing():
    assert extract_answer("정답: 5가 아닙니다") is None and not is_correct("정답: 5가 아닙니다", "5")
