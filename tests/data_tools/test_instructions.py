"""The LLM-driven generators' own logic — prompts, parsing, dedup, filtering, provenance — with a scripted
teacher standing in for the LLM (the end-to-end path runs on tiny-ko in tests/training/test_synth.py)."""

from __future__ import annotations

import re
from collections import Counter

from data_tools.generators import instructions as gen
from data_tools.teachers import Generation, GenerationRequest


class ScriptedTeacher:
    """Answers by rule: lists of new Korean tasks for self-instruct prompts, an evolved task, a translation."""

    name = "scripted-ko"

    def __init__(self):
        self.requests: list[GenerationRequest] = []

    def reply(self, r: GenerationRequest) -> Generation:
        if r.prompt_text is not None:
            return Generation(f"부산에서 하루 동안 갈 만한 곳을 {r.seed}곳 추천해 주세요.", None, "stop")
        text = r.messages[-1]["content"]
        if "요청을 " in text and "개 작성하세요" in text:
            k = int(re.search(r"요청을 (\d+)개", text).group(1))
            items = [f"{r.seed}-{i}번 주제에 대해 초등학생에게 설명하는 글을 써 주세요." for i in range(k)]
            return Generation("\n".join(f"{i + 1}. {t}" for i, t in enumerate(items)) + "\n끝.", None, "stop")
        if text.startswith("다음 한국어 요청을 더 어렵게"):
            return Generation(text.split("요청: ")[1] + " 단, 세 문장 이내로 답하세요.", None, "stop")
        if text.startswith("다음 한국어 요청과 같은 분야"):
            return Generation("not Korean at all", None, "stop")  # a failed evolution: dropped
        if text.startswith("다음 영어 텍스트를"):
            source = text.split("\n\n", 1)[1]
            if source.startswith(("def ", "42", "Untranslated", "Echoed")):  # code, numbers, English returned
                return Generation("Left in English." if source.startswith("Untranslated") else source, None, "stop")
            return Generation("안녕하세요, 반갑습니다." if "Hello" in text else "좋은 하루 보내세요.", None, "stop")
        if "길게" in text:
            return Generation("끝나지 않은 답", None, "length")
        return Generation("네, 도와드릴게요.", "사용자가 도움을 청한다.", "stop")

    def generate(self, requests, *, progress=True):
        self.requests += requests
        return [self.reply(r) for r in requests]


def test_self_instruct_writes_new_distinct_tasks():
    seeds = ["김치찌개 끓이는 법을 알려 주세요.", "공문서 쓰는 요령을 알려 주세요.", "서울 여행 일정을 짜 주세요."]
    teacher = ScriptedTeacher()
    tasks = gen.self_instruct(teacher, seeds, 12, seed=1, per_request=5)
    assert len(tasks) == 12 and len(set(tasks)) == 12 and not set(tasks) & set(seeds)
    shown = teacher.requests[0].messages[0]["content"]
    assert sum(s in shown for s in seeds) == 3 and "5개 작성하세요" in shown


def test_self_instruct_counts_what_it_leaves_out_and_drops_the_last_item_of_a_cut_off_list():
    class CutOff(ScriptedTeacher):
        def reply(self, r):
            listed = super().reply(r).text.replace("\n끝.", "") + "\n6. 반복되는 요청입니다. 반복되는 요청입니다.\n7. 잘린 요"
            return Generation(listed, None, "length")

    dropped = Counter()
    tasks = gen.self_instruct(CutOff(), ["김치찌개 끓이는 법을 알려 주세요."], 3, seed=1, per_request=5,
                              dropped=dropped)
    assert len(tasks) == 3 and not any(t.startswith("잘린") for t in tasks)
    assert dropped == {"cut off at max_new_tokens": 1, "beyond synth.n=3": 3}


def test_evol_instruct_keeps_only_real_korean_evolutions():
    teacher = ScriptedTeacher()
    dropped = Counter()
    evolved = gen.evol_instruct(teacher, ["한국의 사계절을 설명해 주세요."] * 20, seed=3, rounds=1, dropped=dropped)
    assert 0 < len(evolved) < 20  # "broaden" answers in English here and is dropped
    assert dropped == {"not a usable Korean request": 20 - len(evolved)}  # counted for the data card
    assert all(e.endswith("세 문장 이내로 답하세요.") for e in evolved)


def test_distill_keeps_or_strips_thinking_and_drops_cut_answers():
    teacher = ScriptedTeacher()
    prompts = ["도와주실 수 있나요?", "아주 길게 써 주세요."]
    kept = gen.distill(teacher, prompts, seed=0, keep_thinking=True, source="t", license_="Apache-2.0")
    assert len(kept) == 1  # the answer cut at max_new_tokens is not a training row
    row = kept[0]
    assert row["messages"][-1] == {"role": "assistant", "content": "네, 도와드릴게요.",
                                   "reasoning_content": "사용자가 도움을 청한다."}
    assert row["meta"] == {"source": "t", "generator": "data_tools.generators.instructions.distill",
                           "teacher_model": "scripted-ko", "license": "Apache-2.0", "seed": 0}
    stripped = gen.distill(teacher, prompts[:1], seed=0, keep_thinking=False, source="t", license_="x")
    assert "reasoning_content" not in stripped[0]["messages"][-1]


def test_translate_rewrites_every_turn():
    rows = [{"messages": [{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Have a nice day."}]}]
    [row] = gen.translate(ScriptedTeacher(), rows, seed=0, source="en-set", license_="Apache-2.0")
    assert [m["content"] for m in row["messages"]] == ["안녕하세요, 반갑습니다.", "좋은 하루 보내세요."]
    assert row["meta"]["translated_from"] == "en"


def test_translate_keeps_code_and_number_answers_and_drops_untranslated_prose():
    row = lambda q, a: {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
    rows = [row("Hello! Square a number in Python.", "def square(x):\n    return x * x"),
            row("Hello! What is six times seven?", "42"), row("Hello!", "Untranslated prose stays English."),
            row("Hello!", "Echoed back as it was, in English.")]
    kept = gen.translate(ScriptedTeacher(), rows, seed=0, source="en-set", license_="Apache-2.0")
    assert [r["messages"][1]["content"] for r in kept] == ["def square(x):\n    return x * x", "42"]


def test_magpie_starts_the_user_turn_and_keeps_distinct_requests(tiny_tokenizer):
    prefix = gen.magpie_prefix(tiny_tokenizer, "한국어로만 대화합니다.")
    assert prefix.endswith("<|im_start|>user\n") and "한국어로만 대화합니다." in prefix
    teacher = ScriptedTeacher()
    asks = gen.magpie(teacher, 5, seed=2, prefix=prefix)
    assert len(asks) == 5 and all(r.prompt_text == prefix for r in teacher.requests)


def test_the_judge_gate_scores_rows_through_a_teacher():
    from data_tools.gates import build_gates, run_gates
    from data_tools.gates.judge import parse_score, teacher_score_fn

    class Judge:
        name = "judge-ko"

        def generate(self, requests, *, progress=True):
            return [Generation("9점" if "서울입니다" in r.messages[0]["content"] else "점수: 2", None, "stop")
                    for r in requests]

    rows = [{"messages": [{"role": "user", "content": "한국의 수도는?"}, {"role": "assistant", "content": a}]}
            for a in ("서울입니다.", "몰라요.")]
    kept, report = run_gates(rows, build_gates({"judge": {"min_score": 0.5}}, judge=teacher_score_fn(Judge())))
    assert [r["messages"][1]["content"] for r in kept] == ["서울입니다."]
    assert report[0]["removed"] == {"judge score < 0.5": 1}
    assert parse_score("10점입니다") == 1.0 and parse_score("점수 없음") is None and parse_score("123") is None
    # the scale a Korean reply names is not its score
    assert [parse_score(t) for t in ("10점 만점에 3점", "1~10점 중 8점", "8/10", "점수: 7")] == [0.3, 0.8, 0.8, 0.7]


def test_the_recipes_temperature_reaches_every_generators_requests():
    """synth.teacher.temperature, when set, is what every generator samples at; null keeps each one's own."""
    rows = [{"messages": [{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Hi."}]}]
    runs = {
        "distill": lambda t, temp: gen.distill(t, ["도와주실 수 있나요?"], seed=0, keep_thinking=False, source="t",
                                               license_="x", temperature=temp),
        "self_instruct": lambda t, temp: gen.self_instruct(t, ["김치찌개 끓이는 법을 알려 주세요."], 3, seed=0,
                                                           temperature=temp),
        "evol_instruct": lambda t, temp: gen.evol_instruct(t, ["한국의 사계절을 설명해 주세요."], seed=0,
                                                           temperature=temp),
        "magpie": lambda t, temp: gen.magpie(t, 2, seed=0, prefix="<|im_start|>user\n", temperature=temp),
        "translate": lambda t, temp: gen.translate(t, rows, seed=0, source="t", license_="x", temperature=temp),
    }
    for name, run in runs.items():
        chosen, default = ScriptedTeacher(), ScriptedTeacher()
        run(chosen, 0.0)
        run(default, None)
        assert {r.temperature for r in chosen.requests} == {0.0}, name
        assert {r.temperature for r in default.requests} == {gen.DEFAULT_TEMPERATURE[name]}, name
    assert gen.DEFAULT_TEMPERATURE["translate"] == 0.2 and gen.DEFAULT_TEMPERATURE["self_instruct"] == 1.0
