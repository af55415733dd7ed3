"""language_consistency reads prose in an untagged, text or Markdown fence as the answer's own words, Latin letters
included. Unlike the data gate (which keeps a Korean answer that sets a translated English email in such a fence), a
reward is what the policy optimises: exempting fenced English would pay an answer that moves its English reasoning
into a fence behind a Korean label as fully Korean."""

from __future__ import annotations

import pytest

from tests.training.test_rewards import CHINESE, GOOD, total
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
