"""language_consistency reads every fence not tagged with a code language (untagged, text, Markdown, a made-up tag) as
the answer's own words, Latin letters included, however code-like its lines. Unlike the data gate (which keeps a Korean
answer that sets a translated English email in such a fence), a reward is what the policy optimises: exempting fenced
English would pay an answer that moves its English reasoning into a fence behind a Korean label as fully Korean."""

from __future__ import annotations

import pytest

from tests.training.test_rewards import CHINESE, GOOD, total
from training.reward_fences import answer_prose
from training.rewards import language_consistency

REASONING = ("Three apples cost 1,500 won, so one apple costs 1,500 / 3 = 500 won. "
             "Therefore the price of one apple is 500 won.")
TRANSLATION = "사과 세 개가 1,500원이므로 사과 한 개는 1,500 / 3 = 500원입니다. 따라서 사과 한 개의 가격은 500원입니다."


def answer_with(fence: str, tag: str = "") -> str:
    return f"풀이는 다음과 같습니다.\n```{tag}\n{fence}\n```\n정답: 500원"


@pytest.mark.parametrize("tag", ["", "text", "markdown"])
def test_english_reasoning_moved_into_a_prose_fence_still_costs(tag):
    english, korean = language_consistency([answer_with(REASONING, tag), answer_with(TRANSLATION, tag)])
    assert korean == 1.0 and english < 0.5


def test_chinese_or_japanese_in_a_markdown_fence_still_costs():
    korean, chinese, japanese = language_consistency([
        answer_with("서울은 한국의 수도이며 가장 큰 도시입니다.", "markdown"),
        answer_with("首尔是韩国的首都，也是最大的城市。", "markdown"),
        answer_with("ソウルは韓国の首都で、いちばん大きな都市です。", "markdown")])
    assert korean == 1.0 and chinese < 0.8 and japanese < 0.8


def test_an_answer_that_is_all_fences_is_read_whole():
    english, korean = language_consistency([f"```\n{REASONING}\n```", f"```markdown\n{TRANSLATION}\n```"])
    assert english < 0.5 and korean == 1.0


@pytest.mark.parametrize("recipe", ["smoke-grpo", "qwen3-1.7b-ko-grpo"])
def test_a_good_answer_ranks_above_one_reasoning_in_english_in_a_fence_and_a_chinese_contaminated_one(recipe):
    fenced = GOOD.replace("\n정답", f"\n```text\n{REASONING}\n```\n정답")
    good, fenced, chinese = total([GOOD, fenced, CHINESE], recipe)
    assert good > fenced and good > chinese


# Short equations with English sentences between them: line by line, a third of the lines look like code, and the
# whole untagged fence was set aside as code, its English unpaid for (scored 1.0).
EQUATIONS = ("x = 3\ny = x + 2\nSo y equals five because we add two to three.\nz = y * 2\nw = z - 1\n"
             "Then w is nine, which is the final answer we need.\nv = w + 0")
EQUATIONS_KO = ("x = 3\ny = x + 2\n따라서 y는 3에 2를 더한 5입니다.\nz = y * 2\nw = z - 1\n"
                "그러면 w는 9이고, 이것이 우리가 구하는 답입니다.\nv = w + 0")


@pytest.mark.parametrize("tag", ["", "text", "markdown", "english", "{.reasoning}"])
def test_english_reasoning_between_short_equations_in_a_fence_costs(tag):
    english, korean = language_consistency([answer_with(EQUATIONS, tag), answer_with(EQUATIONS_KO, tag)])
    assert korean == 1.0 and english < 0.5


def test_short_math_in_an_untagged_fence_and_tagged_code_stay_korean():
    math = "x = 3\ny = x + 2\n2y = 10\nf(x) = x^2 + 1\nsqrt(16) = 4\nθ = 30°\n넓이 = 6 × 4 = 24 cm²"
    python = "# total price of the apples, divided by how many there are\nprice_per_apple = total_price // apple_count"
    shell = "pip install numpy && python solve.py --apples 3"
    scores = language_consistency([answer_with(math), answer_with(python, "python"), answer_with(shell, "bash"),
                                   answer_with('{"apples": 3, "price": 1500}', "json"),
                                   answer_with(python, "Python title=solve.py"), answer_with(math, "{.latex}")])
    assert scores == [1.0] * 6


def test_code_tagged_inside_a_prose_fence_stays_code_and_the_prose_around_it_counts():
    inner = "```python\nprice_per_apple = total_price // apple_count\n```"
    korean, english = language_consistency([f"문서:\n````markdown\n{said}\n{inner}\n````\n정답: 500원"
                                            for said in ("코드는 이렇습니다.", REASONING)])
    assert korean == 1.0 and english < 0.5


def test_fences_are_found_with_their_tags_whatever_the_line_ends_and_fence_marks():
    text = "번역:\r\n~~~ text\r\nDear Ms. Kim,\r\n~~~\r\n```py\r\nx = 1\r\n```\r\n```\r\nunclosed words"
    assert answer_prose(text).split() == ["번역:", "Dear", "Ms.", "Kim,", "```", "unclosed", "words"]


@pytest.mark.parametrize("recipe", ["smoke-grpo", "qwen3-1.7b-ko-grpo"])
def test_a_good_answer_ranks_above_english_reasoning_between_equations_in_a_fence(recipe):
    fenced = GOOD.replace("\n정답", f"\n```\n{EQUATIONS}\n```\n정답")
    good, fenced = total([GOOD, fenced], recipe)
    assert good > fenced


@pytest.mark.parametrize("tag", ["python", "math", "console", "latex", "python:solve.py"])
def test_english_sentences_set_between_code_lines_behind_a_code_tag_cost(tag):
    """A code tag made the whole fence code: a policy only had to add ```python to hide its English reasoning."""
    english, korean = language_consistency([answer_with(EQUATIONS, tag), answer_with(EQUATIONS_KO, tag)])
    assert korean == 1.0 and english < 0.5


def test_code_with_english_comments_and_a_file_name_in_its_tag_stays_code():
    code = ("# Compute the total price of all the apples in the cart.\n"
            "// Every apple costs the same amount of money here.\n"
            "-- select the rows of the users table and count them\n"
            '    """Return the price of one apple, the total divided by the count."""\n'
            "price_per_apple = total_price // apple_count")
    assert language_consistency([answer_with(code, tag) for tag in ("python:main.py", "python", "sql")]) == [1.0] * 3
