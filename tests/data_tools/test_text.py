"""Korean text basics (data_tools/text.py) on hand-written examples: what counts as Korean when Latin letters are
not counted, and prose inside fences told from prose outside them."""

from __future__ import annotations

from data_tools.generators.instructions import _usable
from data_tools.text import hangul_share_of_cjk, prose_outside_and_inside_fences
from tests.data_tools.test_gates_lookalikes import EMAIL, gate, sft


def test_hangul_share_of_cjk_counts_chinese_and_japanese_against_korean_but_not_english():
    assert hangul_share_of_cjk(f"이메일 초안입니다. {EMAIL}") == 1.0
    assert hangul_share_of_cjk("서울은 首尔") == 0.6
    assert hangul_share_of_cjk("ソウルは韓国の首都です") == 0.0
    assert hangul_share_of_cjk(EMAIL) is None and hangul_share_of_cjk("3 + 4 = 7") is None  # nothing to judge


def test_prose_outside_and_inside_fences_leaves_code_out_of_both():
    answer = (f"번역입니다.\n```\n{EMAIL}\n```\n실행 예시:\n```python\nprint('hello')\n```\n"
              "`len()`을 씁니다. 물 3 kg.\n```markdown\n# 제목 $x^2$\n```")
    outside, inside = prose_outside_and_inside_fences(answer)
    assert "번역입니다." in outside and "실행 예시:" in outside and "을 씁니다" in outside
    assert EMAIL in inside and "# 제목" in inside
    assert not any(code in outside + inside for code in ("print", "len(", "kg", "x^2"))


def test_a_request_and_an_answer_holding_an_english_email_in_a_fence_are_read_alike():
    """synth reads a request, and the hangul_share gate reads what an answer sets in a fence, alike: Hangul against
    Han and kana, Latin letters not counted: a Korean request to polish an English email is usable, and so is the
    Korean answer that returns the email in a fence; Chinese in their place is neither."""
    for fenced, korean in ((EMAIL, True), ("首尔是韩国的首都，人口约一千万。我们下周二开会。", False)):
        request = f"다음 이메일을 다듬어 주세요.\n```\n{fenced}\n```"
        answer = f"다듬은 이메일입니다.\n```\n{fenced}\n```"
        assert _usable(request) is korean
        assert bool(gate("hangul_share")([sft(answer)]).kept) is korean
