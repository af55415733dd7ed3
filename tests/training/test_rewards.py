"""Rewards as pure functions on hand-written Korean completions, and the recipe's weighted sum ranking them."""

from __future__ import annotations

import re

import pytest

from training.recipes import compose
from training.errors import KosovError
from training.rewards import (answer_format, build_rewards, language_consistency, length_penalty,
                              repetition_penalty, reward_params)

GOOD = "사과 3개가 1,500원이므로 한 개는 500원입니다.\n정답: 500원"
CHINESE = "苹果 3개가 1,500원이므로 한 개는 500원입니다. 所以 答案是 500.\n정답: 500원"
WRONG = "사과 3개가 1,500원이므로 한 개는 400원입니다.\n정답: 400원"


def total(completions: list[str], recipe: str) -> list[float]:
    cfg = compose([f"experiment={recipe}"])
    funcs, weights = build_rewards(cfg.rewards, cfg.method.grpo.max_completion_length)
    conversational = [[{"role": "assistant", "content": c}] for c in completions]
    columns = {"answer": ["500"] * len(completions), "completion_ids": [[0] * 40] * len(completions)}
    per_reward = [f(conversational, **columns) for f in funcs]
    return [sum(w * r[i] for w, r in zip(weights, per_reward)) for i in range(len(completions))]


@pytest.mark.parametrize("recipe", ["smoke-grpo", "qwen3-1.7b-ko-grpo"])
def test_correct_korean_beats_chinese_contaminated_beats_wrong(recipe):
    good, chinese, wrong = total([GOOD, CHINESE, WRONG], recipe)
    assert good > chinese > wrong


# The same correct answer with TeX math or a code block: their Latin letters are not a switch out of Korean.
LATEX = ("삼각형의 넓이는 $\\frac{1}{2} \\times \\text{base} \\times \\text{height}$로 구합니다. "
         "사과 3개가 1,500원이므로 한 개는 $1500 \\div 3 = 500$원입니다.\n정답: 500원")
CODE = "사과 한 개의 값을 코드로 계산하면:\n```python\nprice_per_apple = total_price // apple_count\n```\n정답: 500원"
CUT_OFF = "<think>\n사과 3개가 1,500원이니까 정답: 500원 인지 확인해 보자. 다시 계산하면"  # max length hit mid-thought


@pytest.mark.parametrize("recipe", ["smoke-grpo", "qwen3-1.7b-ko-grpo"])
def test_korean_with_math_or_code_beats_chinese_contamination(recipe):
    latex, code, chinese = total([LATEX, CODE, CHINESE], recipe)
    assert latex > chinese and code > chinese
    assert language_consistency([LATEX, CODE]) == [1.0, 1.0]


@pytest.mark.parametrize("recipe", ["smoke-grpo", "qwen3-1.7b-ko-grpo"])
def test_a_completion_cut_off_while_thinking_has_no_answer_to_reward(recipe):
    from training.rewards import math_accuracy

    assert math_accuracy([CUT_OFF], answer=["500"]) == [0.0]  # the "정답: 500원" it was weighing is not an answer
    assert language_consistency([CUT_OFF]) == [0.0] and language_consistency([CUT_OFF], include_think=True)[0] > 0.9
    cut_off, good = total([CUT_OFF, "<think>\n1500을 3으로 나누면 500.\n</think>\n" + GOOD], recipe)
    assert good > cut_off + 1.0
    looping = "<think>\n" + "다시 계산해 보자. " * 30
    assert repetition_penalty([looping])[0] < -0.5  # a loop in an unclosed thought is still a loop


def test_a_worked_solution_with_units_is_not_ranked_below_its_bare_final_line():
    """With all completions of a group correct, the small rewards are the only signal: they must not teach the
    model to drop its reasoning or its unit symbols (kg, mL: Korean writes them in Latin)."""
    import json

    from training.config import resolve_path

    rows = [json.loads(line) for line in resolve_path("pkg://data_tools/datasets/ko_math/sft.jsonl").open()][:200]
    worked = [r["messages"][-1]["content"] for r in rows]
    bare = [w.strip().splitlines()[-1] for w in worked]
    answers = [w.rsplit("정답:", 1)[1] for w in worked]
    cfg = compose(["experiment=qwen3-1.7b-ko-grpo"])
    funcs, weights = build_rewards(cfg.rewards, cfg.method.grpo.max_completion_length)

    def totals(texts):
        conversational = [[{"role": "assistant", "content": t}] for t in texts]
        per = [f(conversational, answer=answers, completion_ids=[[0] * 80] * len(texts)) for f in funcs]
        return [sum(w * p[i] for w, p in zip(weights, per)) for i in range(len(texts))]

    assert sum(w < b for w, b in zip(totals(worked), totals(bare))) == 0
    with_units = "1L는 1,000mL이므로 3L는 3,000mL입니다. 가방은 2.5 kg, 거리는 120(km)예요.\n정답: 3000"
    assert language_consistency([with_units]) == [1.0]
    assert language_consistency(["1L는 1,000mL이므로 3L는 3,000毫升입니다.\n정답: 3000"])[0] < 0.9
    assert language_consistency(["서울・부산・대구를 차례로 지나 갑니다."]) == [1.0]  # "・" is punctuation, not kana


def test_repetition_allowance_is_checked():
    with pytest.raises(KosovError, match="allowance"):
        reward_params("repetition_penalty", {"weight": 0.5, "allowance": 1.0})


def test_the_final_line_format_may_be_markdown():
    lines = ["계산하면 7입니다.\n**정답: 7**", "계산하면 7입니다.\n### 최종 답: 7", "계산하면 7입니다.\n정답은 7입니다."]
    assert answer_format(lines, style="final_line") == [1.0, 1.0, 0.0]  # the asked "정답: ..." line, in any dress
    dressed = ["**정답**: 700원", "- 정답: 700원", "1. 정답: 700원", "**최종 정답**: 700원", "> **정답**: 700원"]
    assert answer_format([f"계산하면 700원입니다.\n{line}" for line in dressed]) == [1.0] * 5
    assert answer_format(["계산하면 700원입니다.\n답변: 잘 모르겠어요"]) == [0.0]


def test_dataset_columns_never_replace_a_rewards_parameters():
    """TRL passes every dataset column to every reward: a column named like a parameter (the test data's own `unit`,
    an `n`, a `max_tokens`) replaced the recipe's value, or stopped training with a TypeError."""
    cfg = compose(["experiment=smoke-grpo", "rewards=[repetition_penalty,length_penalty]",
                   "rewards.repetition_penalty.unit=morpheme", "rewards.repetition_penalty.n=3"])
    repetition, length = build_rewards(cfg.rewards, 32)[0]
    loop = ["정말 감사합니다. " * 6]
    expected = repetition_penalty(loop, unit="morpheme", n=3)
    assert repetition(loop, unit=["원"], n=[9]) == expected != repetition_penalty(loop, unit="char", n=9)
    assert length(loop, completion_ids=[[0] * 40], max_tokens=["많이"], buffer=[None]) == [-1.0]


def test_a_length_penalty_buffer_as_long_as_the_completions_is_refused():
    with pytest.raises(KosovError, match=r"buffer=32 is not below its max_tokens=32.*shorter-is-better"):
        compose(["experiment=smoke-grpo", "rewards.length_penalty.buffer=32"])


def test_an_empty_think_block_is_not_the_think_format():
    """Qwen3's non-thinking output is an empty think block: rewarding it would teach a thinking model to stop."""
    empty = ["<think></think>\n7", "<think>\n\n</think>\n\n정답: 7", "</think>\n정답: 7"]
    assert answer_format(empty, style="think") == [0.0, 0.0, 0.0]


def test_chinese_hidden_in_code_or_tex_still_costs_language_consistency():
    in_code = "계산은 아래와 같습니다.\n```\n# 苹果的价格是七百韩元\nx = 700\n```\n정답: 700원"
    in_tex = "$1000-300=700\\text{韩元}$ 정답: 700원"
    clean = "계산하면 1000원에서 300원을 빼서 700원입니다.\n정답: 700원"
    hidden_code, hidden_tex, korean = language_consistency([in_code, in_tex, clean])
    assert korean == 1.0 and hidden_code < 0.9 and hidden_tex < 0.9


def test_a_runaway_digit_string_gets_no_reward_and_stops_nothing():
    from training.rewards import math_accuracy

    loops = ["정답: 1" + "0" * 400 + "만 원", "계산하면 1" + "0" * 320 + " 천천히 다시 보자"]
    assert math_accuracy(loops, answer=["700", "700"]) == [0.0, 0.0]


def test_language_consistency_penalises_han_and_kana_and_optionally_thinking():
    clean, han, kana = language_consistency(["오늘 날씨가 맑아요.", "오늘 天氣가 맑아요.", "오늘 날씨가 はれ."])
    assert clean == 1.0 and han < clean and kana < clean
    thinking = "<think>这个问题很简单</think>\n정답은 서울입니다."
    assert language_consistency([thinking])[0] == 1.0
    assert language_consistency([thinking], include_think=True)[0] < 0.5
    assert language_consistency(["정답: 42"])[0] == 1.0 and language_consistency(["42"])[0] == 0.0


@pytest.mark.parametrize("unit", ["char", "morpheme"])
def test_repetition_is_penalised_in_korean(unit):
    loop = "정말 감사합니다. 정말 감사합니다. 정말 감사합니다. 정말 감사합니다. 정말 감사합니다."
    varied = "도와주셔서 정말 감사합니다. 덕분에 문제를 빨리 해결했고 오늘 일정도 여유롭게 끝냈어요."
    repeated, fine = repetition_penalty([loop, varied], unit=unit, n=3 if unit == "morpheme" else 4)
    assert repeated < fine <= 0 and repeated < -0.5


@pytest.mark.parametrize("style, good, bad", [
    ("final_line", "계산하면 7입니다.\n정답: 7", "정답은 7입니다. 그런데 다시 보면"),
    ("think", "<think>3+4=7</think>\n7개입니다.", "<think>3+4=7\n7개입니다."),
    ("answer_tags", "<answer>7</answer>", "<answer></answer>"),
])
def test_format_styles(style, good, bad):
    assert answer_format([good, bad], style=style) == [1.0, 0.0]


def test_length_penalty_is_soft_then_full():
    ids = [[0] * n for n in (100, 448, 480, 512, 600)]
    scores = length_penalty([""] * 5, completion_ids=ids, max_tokens=512, buffer=64)
    assert scores[:2] == [0.0, 0.0] and -1 < scores[2] < 0 and scores[3:] == [-1.0, -1.0]


def test_unknown_reward_and_parameter_are_named():
    with pytest.raises(KosovError, match="use one of: math_accuracy, answer_format"):
        reward_params("math_accuracyy", {"weight": 1.0})
    with pytest.raises(KosovError, match="parameters of repetition_penalty: weight, unit, n, max_penalty"):
        reward_params("repetition_penalty", {"weight": 1.0, "ngram": 3})
    with pytest.raises(KosovError, match="not one of the selected rewards"):
        reward_params("length_penalty", {"buffer": 8})  # parameters left in a recipe body, reward not selected
    with pytest.raises(KosovError, match="rewards.length_penalty"):
        compose(["experiment=smoke-grpo", "rewards=[math_accuracy]", "rewards.length_penalty.buffer=8"])
    with pytest.raises(KosovError, match="rewards.answer_format.style='xml'"):
        compose(["experiment=smoke-grpo", "rewards.answer_format.style=xml"])
    with pytest.raises(KosovError, match="there is no recipe rewards/fluency.yaml"):
        compose(["experiment=smoke-grpo", "rewards=[math_accuracy,fluency]"])


def test_rewards_are_added_and_removed_by_name():
    cfg = compose(["experiment=smoke-grpo", "rewards=[math_accuracy,language_consistency]"])
    assert list(cfg.rewards) == ["math_accuracy", "language_consistency"]
    funcs, weights = build_rewards(cfg.rewards, 32)
    assert [f.__name__ for f in funcs] == ["math_accuracy", "language_consistency"] and weights == [1.0, 0.5]


def test_the_judge_reward_asks_a_real_teacher_endpoint(kosov_cache):
    """kosov serve on tiny-ko as the judge: a random model rarely answers with a score, so most are None, but
    every completion got a request and an answer of the right shape."""
    from training.schema import KosovConfig, ServeConfig
    from training.serve import start_in_thread
    from training.rewards import judge

    import httpx

    url, stop = start_in_thread(KosovConfig(), ServeConfig(port=0, max_batch=4))
    try:
        scores = judge([[{"role": "assistant", "content": "서울입니다."}]] * 3,
                       prompts=[[{"role": "user", "content": "한국의 수도는?"}]] * 3, base_url=url, model="tiny-ko",
                       api_key_env=None)
        stats = httpx.get(url.removesuffix("/v1") + "/stats").json()
    finally:
        stop()
    assert stats["requests"] == 3 and stats["completions"] == 3  # one rating asked and answered per completion
    assert len(scores) == 3 and all(s is None or 0.1 <= s <= 1.0 for s in scores)


def test_the_judge_reward_needs_an_endpoint():
    with pytest.raises(KosovError, match="rewards.judge.base_url"):
        compose(["experiment=smoke-grpo", "rewards=[math_accuracy,judge]"])


def test_math_accuracy_reads_the_question_for_the_form_it_asks():
    """"2/8" equals 1/4 but does not answer a question asking for 기약분수: the grader needs the question, which TRL
    passes to the rewards as `prompts` (the last user turn is the question)."""
    from training.rewards import math_accuracy

    ask = [{"role": "system", "content": "수학 문제를 풉니다."},
           {"role": "user", "content": "피자 8조각 중 2조각을 먹었습니다. 먹은 양을 기약분수로 나타내세요."}]
    plain = [{"role": "user", "content": "피자 8조각 중 2조각을 먹었습니다. 먹은 양은 전체의 얼마인가요?"}]
    completions = [[{"role": "assistant", "content": f"정답: {a}"}] for a in ("2/8", "1/4", "2/8")]
    assert math_accuracy(completions, answer=["1/4"] * 3, prompts=[ask, ask, plain]) == [0.0, 1.0, 1.0]
    funcs, _ = build_rewards({"math_accuracy": {"weight": 1.0}}, 64)
    assert funcs[0](prompts=[ask], completions=completions[:1], answer=["1/4"]) == [0.0]  # as TRL calls it


def test_a_template_that_opens_the_think_block_leaves_a_cut_off_completion_unanswered():
    """Qwen3-Thinking-2507's template writes "<think>\\n" into the prompt: the completion starts mid-thought."""
    cfg = compose(["experiment=smoke-grpo"])
    thought = [[{"role": "assistant", "content": "사과 3개가 1,500원이니까 정답: 500원 인지 확인해 보자"}]]
    finished = [[{"role": "assistant", "content": "1500 / 3 = 500</think>\n\n" + GOOD}]]
    for opens, cut_off_scores in ((False, [1.0, 1.0]), (True, [0.0, 0.0])):
        funcs, _ = build_rewards(cfg.rewards, cfg.method.grpo.max_completion_length, opens_thinking=opens)
        rewards = dict(zip(cfg.rewards, funcs))
        cut_off = [rewards[name](completions=thought, answer=["500"])[0]
                   for name in ("math_accuracy", "language_consistency")]
        assert cut_off == pytest.approx(cut_off_scores)
        assert rewards["math_accuracy"](completions=finished, answer=["500"]) == [1.0]
    assert rewards["answer_format"](finished) == [1.0]  # positional, as the tests call them


JUDGE = ["rewards=[math_accuracy,judge]", "rewards.judge.base_url=http://127.0.0.1:8000/v1", "rewards.judge.model=m"]


@pytest.mark.parametrize("overrides, named", [
    (["rewards.repetition_penalty.n=four"], "rewards.repetition_penalty.n='four' is not a whole number"),
    (["rewards.math_accuracy.weight=high"], "rewards.math_accuracy.weight='high' is not a number"),
    (["rewards.language_consistency.include_think='false'"], "include_think='false' is not true or false"),
    (["rewards.language_consistency.foreign_penalty=nan"], "foreign_penalty=nan is not a number"),
    (["rewards.repetition_penalty.n=0"], "rewards.repetition_penalty.n=0 must be at least 1"),
    (["rewards.repetition_penalty.max_penalty=-1"], "max_penalty=-1 must be 0 or more"),
    (["rewards.language_consistency.foreign_penalty=-0.5"], "foreign_penalty=-0.5 must be 0 or more"),
    (["rewards.length_penalty.buffer=-5"], "rewards.length_penalty.buffer=-5 must be 0 or more"),
    (["rewards.length_penalty.max_tokens=0"], "rewards.length_penalty.max_tokens=0 must be at least 1"),
    ([*JUDGE, "rewards.judge.concurrency=0"], "rewards.judge.concurrency=0 must be at least 1"),
    ([*JUDGE, "rewards.judge.timeout_s=0"], "rewards.judge.timeout_s=0 must be more than 0"),
    (["rewards.length_penalty.max_tokens=100000"], "never penalises anything"),  # beyond max_completion_length
])
def test_a_bad_reward_parameter_is_named_when_the_recipe_is_read(overrides, named):
    """Caught by compose (the config check), before a model loads: not a TypeError at the first reward call, nor a
    reward quietly inverted (n=0 penalising clean Korean, max_penalty=-1 paying a loop, a quoted 'false' true)."""
    with pytest.raises(KosovError, match=re.escape(named)) as caught:
        compose(["experiment=qwen3-1.7b-ko-grpo", *overrides])
    assert "Fix:" in str(caught.value)


def test_reward_parameters_of_the_right_kind_still_compose():
    cfg = compose(["experiment=qwen3-1.7b-ko-grpo", "rewards.math_accuracy.weight=2", "rewards.length_penalty.buffer=0",
                   "rewards.length_penalty.max_tokens=64", "rewards.language_consistency.include_think=true"])
    rewards = dict(zip(cfg.rewards, build_rewards(cfg.rewards, cfg.method.grpo.max_completion_length)[0]))
    assert rewards["length_penalty"]([""] * 2, completion_ids=[[0] * 64, [0] * 65]) == [0.0, -1.0]  # a hard limit
    assert compose(["experiment=smoke-grpo", *JUDGE, "rewards.judge.timeout_s=30"]).rewards["judge"]["timeout_s"] == 30


def test_a_final_line_of_markdown_rules_is_no_answer_and_no_stall():
    """A last line of 20,000 "*" took seconds per completion (overlapping quantifiers backtracking)."""
    assert answer_format(["계산하면 7입니다.\n" + "*" * 20000, "_" * 20000, "-" * 20000 + "x"]) == [0.0, 0.0, 0.0]
    assert answer_format(["계산하면 7입니다.\n" + "*" * 20000 + "정답: 7"]) == [1.0]


def test_thinking_split_off_by_trls_response_parser_is_seen_by_the_rewards():
    """With a response template, TRL returns {"content": answer, "reasoning_content": thinking}: a finished
    thought with its answer, not a completion cut off while thinking (scored 0 when the template opens <think>).
    (tests/training/test_grpo_parsed_thinking.py: the same with TRL's own parser, batch by batch.)"""
    done = [{"role": "assistant", "content": "정답: 5", "reasoning_content": "2+3=5"}]
    chinese = [{"role": "assistant", "content": "정답: 5", "reasoning_content": "二加三等于五"}]
    cut = [{"role": "assistant", "content": "", "reasoning_content": "2+3은 정답: 5 인지 다시"}]  # as parsed: no answer
    empty = [{"role": "assistant", "content": "정답: 5"}]  # an empty think block: the parser leaves no reasoning
    nodes = {"math_accuracy": {"weight": 1.0}, "answer_format": {"weight": 0.2, "style": "think"},
             "language_consistency": {"weight": 0.5, "include_think": True}}
    for opens in (False, True):
        math, form, language = build_rewards(nodes, 512, opens_thinking=opens, parsed=True)[0]
        batch = [done, chinese, cut, empty]
        assert math(completions=batch, answer=["5"] * 4) == [1.0, 1.0, 0.0, 1.0]
        assert form(completions=batch) == [1.0, 1.0, 0.0, 0.0]
        korean, mixed = language(completions=batch[:2])
        assert mixed < 0 < korean  # the thinking is scored too
    assert language_consistency([done]) == [1.0]


def test_a_row_without_a_gold_answer_gets_no_reward_rather_than_zero():
    """None is TRL's "not applicable" (NaN, left out of the group mean); 0.0 would pass for a wrong answer."""
    from training.rewards import math_accuracy

    assert math_accuracy(["정답: 0", "정답: 5", "정답: 5"], answer=["", None, "5"]) == [None, None, 1.0]
    assert math_accuracy(["정답: 0"], answer=["  "]) == [None]
