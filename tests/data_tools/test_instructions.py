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


def test_self_instruct_gives_every_request_of_a_large_run_its_own_seed():
    """Seeds were seed*1000 + round*100 + place: past 100 requests a round, the next round's requests took seeds the
    last one had used, and a teacher sampling by seed answered them with the same instructions again (paid for,
    dropped as repeated)."""
    class TwoEach(ScriptedTeacher):
        def reply(self, r):
            return Generation("\n".join(super().reply(r).text.splitlines()[:2]), None, "stop")

    teacher, dropped = TwoEach(), Counter()
    tasks = gen.self_instruct(teacher, ["김치찌개 끓이는 법을 알려 주세요."], 600, seed=1, per_request=5,
                              dropped=dropped)
    assert len(tasks) == 600 and len(teacher.requests) > 120  # 120 requests in the first round, more after it
    assert len({r.seed for r in teacher.requests}) == len(teacher.requests)
    assert "repeated" not in dropped


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
                           "teacher_model": "scripted-ko", "license": "Apache-2.0",
                           "seed": teacher.requests[0].seed}  # the seed its answer was sampled with
    stripped = gen.distill(teacher, prompts[:1], seed=0, keep_thinking=False, source="t", license_="x")
    assert "reasoning_content" not in stripped[0]["messages"][-1]


def test_a_requests_seed_follows_its_content_not_its_place():
    """distill asked seed + i, i the prompt's place: a prompt removed upstream gave every later one another seed, so
    another sample, and a new HTTP cache key to pay for again, even at temperature 0."""
    prompts = ["서울의 날씨는 어때요?", "김치찌개는 어떻게 끓여요?", "세종대왕은 무엇을 만들었나요?"]
    seeds = {}
    for asked in (prompts, prompts[1:], prompts[::-1]):
        teacher = ScriptedTeacher()
        gen.distill(teacher, asked, seed=7, keep_thinking=False, source="t", license_="x")
        for r in teacher.requests:
            seeds.setdefault(r.messages[-1]["content"], set()).add(r.seed)
    assert all(len(s) == 1 for s in seeds.values()) and len(set.union(*seeds.values())) == 3
    twice = ScriptedTeacher()  # a prompt given twice is two samples
    gen.distill(twice, prompts[:1] * 2, seed=7, keep_thinking=False, source="t", license_="x")
    assert len({r.seed for r in twice.requests}) == 2 and twice.requests[0].seed in seeds[prompts[0]]
    other = ScriptedTeacher()  # another run seed, other samples
    gen.distill(other, prompts[:1], seed=8, keep_thinking=False, source="t", license_="x")
    assert other.requests[0].seed not in seeds[prompts[0]]

    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "Fine."}]}
            for q in ("Hello!", "Good morning.", "Say hi.")]
    turns = {}
    for asked in (rows, rows[1:]):
        teacher = ScriptedTeacher()
        gen.translate(teacher, asked, seed=7, source="t", license_="x")
        for r in teacher.requests:
            turns.setdefault(r.messages[-1]["content"], set()).add(r.seed)
    assert all(len(s) == 1 for s in turns.values())

    instructions = ["한국의 사계절을 설명해 주세요.", "김치를 담그는 법을 알려 주세요.", "서울 여행 일정을 짜 주세요."]
    evolved = []
    for asked in (instructions, instructions[1:]):
        teacher = ScriptedTeacher()
        gen.evol_instruct(teacher, asked, seed=7)
        evolved.append({r.messages[-1]["content"]: r.seed for r in teacher.requests})
    assert all(evolved[0][k] == v for k, v in evolved[1].items())  # the same operation, the same seed


def test_translate_takes_the_recipes_token_limit():
    rows = [{"messages": [{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Hi."}]}]
    teacher = ScriptedTeacher()
    gen.translate(teacher, rows, seed=0, source="t", license_="x", max_new_tokens=333)
    assert {r.max_new_tokens for r in teacher.requests} == {333}


def test_prompts_reach_the_teacher_nfc():
    import unicodedata

    nfd = unicodedata.normalize("NFD", "김치찌개는 어떻게 끓여요?")
    teacher = ScriptedTeacher()
    [row] = gen.distill(teacher, [nfd], seed=0, keep_thinking=False, source="t", license_="x",
                        system=unicodedata.normalize("NFD", "한국어로 답하세요."))
    sent = [m["content"] for m in teacher.requests[0].messages]
    assert sent == ["한국어로 답하세요.", "김치찌개는 어떻게 끓여요?"] and row["messages"][1]["content"] == sent[1]
    evolving = ScriptedTeacher()
    gen.evol_instruct(evolving, [nfd], seed=0, operations=("deepen",))
    assert "김치찌개는 어떻게 끓여요?" in evolving.requests[0].messages[-1]["content"]


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


def test_translate_drops_a_row_whose_turn_came_back_empty():
    """An empty reply (finish_reason stop) passed as translated: the row got an empty user turn, and distill paid a
    teacher to answer nothing. An empty turn translated as empty is no failure."""

    class Silent(ScriptedTeacher):
        def reply(self, r):
            source = r.messages[-1]["content"].split("\n\n", 1)[1]
            empty = not source or source.startswith("Hello there")
            return Generation("  \n" if empty else "좋은 하루 보내세요.", None, "stop")

    rows = [{"messages": [{"role": "user", "content": "Hello there, how are you today?"}]},
            {"messages": [{"role": "system", "content": ""}, {"role": "user", "content": "Have a nice day."}]}]
    dropped = Counter()
    kept = gen.translate(Silent(), rows, seed=0, source="en-set", license_="Apache-2.0", dropped=dropped)
    assert [r["messages"][-1]["content"] for r in kept] == ["좋은 하루 보내세요."]
    assert dropped == {"not translated into Korean": 1}


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


def test_the_judge_asks_a_rows_request_alike_wherever_the_row_stands(capsys):
    """The judge's seed was seed + the row's place in its 32-row batch: one row removed by an earlier gate changed
    the request of every row after it, and an HTTP teacher asked them all again."""
    from data_tools.gates import build_gates, gate_parameters, run_gates
    from data_tools.gates.judge import teacher_score_fn

    class Judge:
        name = "judge-ko"

        def __init__(self):
            self.calls: list[list[GenerationRequest]] = []

        def generate(self, requests, *, progress=True):
            self.calls.append(requests)
            return [Generation("7", None, "stop") for _ in requests]

    rows = [{"messages": [{"role": "user", "content": f"질문 {i}"}, {"role": "assistant", "content": f"답 {i}"}]}
            for i in range(300)]
    whole, fewer = Judge(), Judge()
    teacher_score_fn(whole, seed=3)(rows[:5])
    teacher_score_fn(fewer, seed=3)(rows[2:5])
    seeds = {r.messages[0]["content"]: r.seed for r in whole.calls[0]}
    assert all(seeds[r.messages[0]["content"]] == r.seed for r in fewer.calls[0])
    # 256 rows a teacher call by default (was 32), and a bar over the rows while they are scored
    judge = Judge()
    kept, _ = run_gates(rows, build_gates({"judge": {}}, judge=teacher_score_fn(judge)))
    assert gate_parameters("judge")["batch_size"] == 256 and [len(c) for c in judge.calls] == [256, 44]
    assert len(kept) == 300 and "judge: 100%" in capsys.readouterr().err


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


def test_rows_keep_the_lineage_of_the_input_they_were_made_from():
    """A translation or an answer of an input row carries that row's license and source (the caller's `lineage`),
    not the generator's `license_`; evol_instruct says which input each kept instruction came from."""
    nc = {"license": "cc-by-nc-4.0", "input_license": "cc-by-nc-4.0", "input_source": "someone/alpaca-nc"}
    own = {"license": "Apache-2.0", "input_license": None, "input_source": "own.txt"}
    rows = [{"messages": [{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Have a day."}]},
            {"messages": [{"role": "user", "content": "Untranslated"}, {"role": "assistant", "content": "x"}]},
            {"messages": [{"role": "user", "content": "Hello again!"}, {"role": "assistant", "content": "Bye."}]}]
    kept = gen.translate(ScriptedTeacher(), rows, seed=0, source="t", license_="Apache-2.0", lineage=[nc, own, own])
    assert [r["meta"]["license"] for r in kept] == ["cc-by-nc-4.0", "Apache-2.0"]  # the dropped row's lineage too
    assert kept[0]["meta"]["input_source"] == "someone/alpaca-nc" and kept[0]["meta"]["source"] == "t"
    answered = gen.distill(ScriptedTeacher(), ["도와주세요.", "아주 길게 써 주세요.", "또 도와주세요."], seed=0,
                           keep_thinking=False, source="t", license_="Apache-2.0", lineage=[own, own, nc])
    assert [r["meta"]["input_source"] for r in answered] == ["own.txt", "someone/alpaca-nc"]
    assert answered[1]["meta"]["license"] == "cc-by-nc-4.0"
    origins: list[int] = []
    instructions = ["한국의 사계절을 설명해 주세요.", "김치찌개 끓이는 법을 알려 주세요.", "서울 여행 일정을 짜 주세요."] * 4
    evolved = gen.evol_instruct(ScriptedTeacher(), instructions, seed=3, rounds=2, origins=origins)
    assert 0 < len(evolved) < len(instructions) and len(origins) == len(evolved)  # "broaden" fails here: dropped
    assert all(e.startswith(instructions[k]) for e, k in zip(evolved, origins, strict=True))


class SamplesBySeed:
    """Like a real teacher: what it samples is a function of the prompt and the seed alone."""

    name = "seeded"

    def generate(self, requests, *, progress=True):
        return [Generation(f"서울에서 가볼 만한 곳 {r.seed}번째 추천을 해 주세요", None, "stop") for r in requests]


def test_magpie_runs_with_neighbouring_seeds_write_different_requests():
    """Request i was sampled with seed + i, and every Magpie request has the same prompt: a run with seed 1 (more
    data, or the job sharded by seed) wrote 49 of the 50 requests a run with seed 0 had written."""
    runs = [gen.magpie(SamplesBySeed(), 50, seed=seed, prefix="<|im_start|>user\n") for seed in (0, 1, 2)]
    assert all(len(run) == 50 for run in runs)
    assert not set(runs[0]) & set(runs[1]) and not set(runs[1]) & set(runs[2]) and not set(runs[0]) & set(runs[2])


class Writes:
    """Writes the given requests, one a request, in order (a Magpie or evolving teacher)."""

    name = "writes"

    def __init__(self, texts):
        self.texts = texts

    def generate(self, requests, *, progress=True):
        return [Generation(self.texts[i], None, "stop") for i in range(len(requests))]


KOREAN_TECH = ["React에서 useEffect cleanup function은 언제 호출되나요?",
               '다음 JSON에서 이름만 뽑아 주세요: {"name": "김철수", "age": 30}',
               "SQL로 orders 테이블에서 customer_id별 total_amount 합계를 구하는 쿼리를 써 주세요",
               "이 코드 왜 이상해요?\n```python\ndef add_item(item, items=[]):\n    items.append(item)\n    return items\n```",
               '다음 문장을 한국어로 번역해 주세요: "The quick brown fox jumps over the lazy dog near the river bank."',
               "Python에서 dict comprehension으로 {k: v for k, v in pairs}를 쓰는 법을 알려 주세요."]
NOT_KOREAN = ["What is the difference between TCP and UDP?",  # English only
              "请解释一下量子计算的基本原理。한국어",  # Chinese with a Korean word: language confusion
              "量子コンピュータの基本原理を説明してください。",
              "다음 한국어 요청을 더 어렵게 바꾸세요.\n\n요청: {instruction}",  # the prompt echoed back
              "예시:\n{examples}\n새 요청을 써 주세요"]


def test_korean_requests_about_code_and_translation_are_kept_and_other_languages_dropped():
    """_usable wanted Hangul to be half of every letter and refused any '{': a Korean question about React, a JSON
    or code request, a request to translate an English sentence were dropped as "not a usable Korean request"."""
    dropped = Counter()
    asks = gen.magpie(Writes(KOREAN_TECH + NOT_KOREAN), len(KOREAN_TECH + NOT_KOREAN), seed=0, prefix="<user>",
                      dropped=dropped)
    assert asks == KOREAN_TECH
    assert dropped == {"not a usable Korean request": len(NOT_KOREAN)}
    harder = [t + "\n단, 이유도 설명해 주세요." for t in KOREAN_TECH]
    assert gen.evol_instruct(Writes(harder), ["코드 질문"] * len(harder), seed=0) == harder
