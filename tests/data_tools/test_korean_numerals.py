"""Numbers written in hangul words (data_tools.korean_numerals.hangul_numbers_in) and the math grader's reading of
them: a native numeral before a counter with a particle ("세 개에서", "다섯 명이") is a number, so that "세 개에서 네
개 사이" is a range (no answer), not 4."""

from __future__ import annotations

import pytest

from data_tools.korean_numerals import hangul_numbers_in
from data_tools.math_grader import extract_answer, is_correct


@pytest.mark.parametrize("span, values", [
    ("세 개에서 네 개 사이", ["3", "4"]), ("네 개와 다섯 개", ["4", "5"]), ("세 명이 왔어요", ["3"]),
    ("두 개씩이에요", ["2"]), ("스물세 마리를 샀어요", ["23"]), ("한 사람에게", ["1"]), ("세 개", ["3"]),
])
def test_a_native_numeral_before_a_counter_and_a_particle_is_read(span, values):
    # "세 개에서" was not read, so "세 개에서 네 개 사이" read as 4 alone
    assert [value for _, _, value in hangul_numbers_in(span)] == values


@pytest.mark.parametrize("span", [
    "이 점에서 보면", "이 분이 말했어요",  # a one-syllable Sino-Korean numeral before a counter and a particle: "this"
    "네, 반이에요", "네. 일이 많아요",  # 네 ("yes") with a punctuation mark before the next word
    "세상에서", "세 번째",  # no counter: a word, an ordinal
])
def test_words_that_are_no_numbers_are_not_read(span):
    assert hangul_numbers_in(span) == []


@pytest.mark.parametrize("completion", [
    "정답: 세 개에서 네 개 사이", "정답은 세 개에서 네 개 사이입니다.", "정답: 세 개와 네 개 사이", "정답: 세 개와 네 개",
    "정답: 세 명이나 네 명", "정답: 다섯 명 또는 여섯 명",
])
def test_two_hangul_values_with_a_particle_between_answer_nothing(completion):
    # "정답: 세 개에서 네 개 사이" paid a gold 4
    assert extract_answer(completion) is None
    assert not any(is_correct(completion, gold) for gold in ("3", "4", "5", "6"))


@pytest.mark.parametrize("completion, gold", [
    ("정답: 다섯 개에서 두 개를 빼면 세 개", "3"), ("정답: 세 명이 먹으면 한 사람에게 두 개씩", "2"),
    ("정답: 세 개", "3"), ("정답은 스물세 개입니다.", "23"), ("정답: 두 명이에요", "2"),
])
def test_a_hangul_answer_with_particles_is_the_numeral_the_statement_ends_on(completion, gold):
    assert extract_answer(completion) == gold


def test_yes_before_a_counter_word_is_not_four():
    # "정답은 네, 반이에요" (yes, it is half / a class) paid a gold 4
    assert extract_answer("정답은 네, 반이에요.") is None
