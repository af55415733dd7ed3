"""Particles agree with how a word is read: Hangul finals, Sino-Korean numbers (with commas, zeros,
decimals and fractions), Latin letters, unit symbols, and (으)로 after ㄹ."""

from __future__ import annotations

import unicodedata

import pytest

from data_tools.josa import PAIRS, final_consonant, josa, particle

CASES = [
    # Hangul
    ("사과", "을/를", "사과를"), ("책", "을/를", "책을"), ("사과", "이/가", "사과가"), ("책", "이/가", "책이"),
    ("민준", "은/는", "민준은"), ("지호", "은/는", "지호는"), ("사과", "과/와", "사과와"), ("책", "과/와", "책과"),
    ("민준", "아/야", "민준아"), ("지호", "아/야", "지호야"), ("사과", "이에요/예요", "사과예요"),
    ("책", "이에요/예요", "책이에요"), ("학생", "이다/다", "학생이다"),
    # (으)로: 로 after a vowel or ㄹ, 으로 after any other final
    ("서울", "(으)로", "서울로"), ("물", "(으)로", "물로"), ("집", "(으)로", "집으로"), ("학교", "(으)로", "학교로"),
    ("부엌", "(으)로", "부엌으로"),
    # digits are read 영 일 이 삼 사 오 육 칠 팔 구
    ("3", "을/를", "3을"), ("2", "을/를", "2를"), ("1", "을/를", "1을"), ("0", "이/가", "0이"), ("4", "이/가", "4가"),
    ("5", "은/는", "5는"), ("6", "이/가", "6이"), ("7", "은/는", "7은"), ("8", "이/가", "8이"), ("9", "를/을", "9를"),
    ("3", "(으)로", "3으로"), ("1", "(으)로", "1로"), ("7", "(으)로", "7로"), ("8", "(으)로", "8로"),
    ("6", "(으)로", "6으로"), ("2", "(으)로", "2로"), ("0", "(으)로", "0으로"),
    # a number ending in zeros is read by its last non-zero place; commas are only for the eye
    ("10", "을/를", "10을"), ("10", "(으)로", "10으로"), ("20", "이/가", "20이"), ("100", "을/를", "100을"),
    ("100", "(으)로", "100으로"), ("1000", "은/는", "1000은"), ("1,000", "은/는", "1,000은"),
    ("10000", "이/가", "10000이"), ("20,000", "을/를", "20,000을"), ("100000000", "은/는", "100000000은"),
    ("1,200", "이/가", "1,200이"), ("1,200원", "이/가", "1,200원이"), ("1,205", "이/가", "1,205가"),
    ("45", "이/가", "45가"), ("12", "이/가", "12가"), ("31", "을/를", "31을"),
    # decimals read digit by digit after the point; fractions "4분의 3"
    ("0.75", "은/는", "0.75는"), ("2.5", "을/를", "2.5를"), ("3.0", "이/가", "3.0이"), ("0.1", "(으)로", "0.1로"),
    ("3/4", "이/가", "3/4이"), ("1/2", "(으)로", "1/2로"), ("2/5", "을/를", "2/5를"),
    # Latin letters by their Korean reading, case-insensitive
    ("API", "을/를", "API를"), ("URL", "을/를", "URL을"), ("url", "을/를", "url을"), ("SNS", "이/가", "SNS가"),
    ("TV", "을/를", "TV를"), ("HTML", "(으)로", "HTML로"), ("CRM", "이/가", "CRM이"), ("PDF", "(으)로", "PDF로"),
    ("MP3", "을/를", "MP3을"), ("3D", "이/가", "3D가"), ("Q", "이/가", "Q가"), ("R", "(으)로", "R로"),
    # words are said as words (구글, 아이폰): their spelling does not give the ending, so both forms are written
    ("Google", "을/를", "Google을(를)"), ("iPhone", "이/가", "iPhone이(가)"), ("LoRA", "(으)로", "LoRA(으)로"),
    ("kakao", "은/는", "kakao은(는)"), ("html", "(으)로", "html로"),
    # unit symbols after a number (or a space, as in "몇 km") are read as units
    ("5km", "을/를", "5km를"), ("3kg", "을/를", "3kg을"), ("500g", "은/는", "500g은"), ("2L", "을/를", "2L를"),
    ("500mL", "이/가", "500mL가"), ("시속 60km", "(으)로", "시속 60km로"), ("몇 m", "이에요/예요", "몇 m예요"),
    ("4,100(g)", "이에요/예요", "4,100(g)이에요"), ("12cm²", "이/가", "12cm²가"), ("20%", "이/가", "20%가"),
    ("30℃", "이/가", "30℃가"), ("L", "이/가", "L이"), ("5t", "을/를", "5t을"), ("5 L", "을/를", "5 L를"),
    ("몇 L", "이/가", "몇 L가"),
    # a one-letter unit after a word, not a number, is the letter: clothing size L is 엘
    ("사이즈 L", "을/를", "사이즈 L을"), ("size M", "이/가", "size M이"), ("옷 m", "(으)로", "옷 m으로"),
    # closing brackets, quotes and spaces are skipped
    ("(사과)", "을/를", "(사과)를"), ('"책"', "을/를", '"책"을'), ("「서울」", "(으)로", "「서울」로"), ("책 ", "을/를", "책 을"),
    # unknown reading: both forms
    ("🍎", "이/가", "🍎이(가)"), ("🍎", "(으)로", "🍎(으)로"), ("", "을/를", "을(를)"), ("!", "은/는", "!은(는)"),
]


@pytest.mark.parametrize(("word", "pair", "expected"), CASES)
def test_josa_on_hand_written_examples(word, pair, expected):
    assert josa(word, pair) == expected


@pytest.mark.parametrize(("word", "final"), [
    ("책", 1), ("사과", 0), ("물", 8), ("집", 17), ("강", 21), ("3", 16), ("1", 8), ("6", 1), ("0", 21),
    ("10", 17), ("100", 1), ("1000", 4), ("10000", 4), ("100000000", 1), ("1,200", 1), ("0.75", 0),
    ("3/4", 16), ("L", 8), ("m", 16), ("N", 4), ("A", 0), ("5km", 0), ("😀", None), ("", None),
])
def test_final_consonant(word, final):
    assert final_consonant(word) == final


def test_every_pair_has_three_forms_and_reversed_pairs_work():
    for pair, forms in PAIRS.items():
        assert len(forms) == 3, pair
    assert josa("책", "를/을") == josa("책", "을/를") == "책을"
    assert particle("집", "으로/로") == "으로"


def test_unknown_pair_names_the_valid_ones():
    with pytest.raises(ValueError, match="은/는"):
        josa("책", "에게/한테")


def test_nfd_input_is_read_as_nfc():
    decomposed = unicodedata.normalize("NFD", "책")
    assert len(decomposed) == 3 and final_consonant(decomposed) == 1
    assert particle(decomposed, "을/를") == "을"
