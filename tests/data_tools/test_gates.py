"""Quality gates on hand-written Korean rows: what each gate keeps, what it removes and under which reason,
personal-data look-alikes left alone, recipe errors that name the valid choices, and the same result on every run
(decontamination: test_decontaminate.py)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from data_tools.gates import GATES, build_gates, find_pii, gate_parameters, run_gates, scrub_pii

DATASETS = Path(__file__).resolve().parents[2] / "data_tools" / "datasets"


def sft(answer: str, question: str = "질문이 있어요.", **assistant_extra) -> dict:
    return {"messages": [{"role": "user", "content": question},
                         {"role": "assistant", "content": answer, **assistant_extra}],
            "meta": {"source": "test", "license": "Apache-2.0"}}


def gate(name: str, **params):
    return build_gates({name: params})[0]


def answers(rows: list[dict]) -> list[str]:
    return [row["messages"][-1]["content"] for row in rows]


KOREAN = "서울은 대한민국의 수도이며, 한강을 따라 발달한 도시입니다."
CODE_ANSWER = ("리스트를 뒤집으려면 슬라이싱을 쓰면 됩니다.\n\n```python\nnumbers = [1, 2, 3]\n"
               "reversed_numbers = numbers[::-1]\nprint(reversed_numbers)\n```")


def test_nfc_normalises_every_string_and_counts_rows_changed():
    nfd = unicodedata.normalize("NFD", "한국어 답변입니다.")
    rows = [{**sft(nfd), "meta": {"topic": unicodedata.normalize("NFD", "한글")}}, sft(KOREAN)]
    before = copy.deepcopy(rows)
    result = gate("nfc")(rows)
    assert dict(result.changed) == {"nfc": 1} and not result.removed
    assert answers(result.kept) == ["한국어 답변입니다.", KOREAN]
    assert result.kept[0]["meta"]["topic"] == "한글"
    assert result.kept[1] is rows[1] and rows == before  # clean rows are not copied; the input is untouched


def test_hangul_share_ignores_code_and_thinking_by_default():
    rows = [sft(KOREAN), sft(CODE_ANSWER), sft("The capital of Korea is Seoul."), sft("1,200"),
            sft(KOREAN, reasoning_content="The user asks about Seoul. Answer in Korean.")]
    result = gate("hangul_share")(rows)
    assert dict(result.removed) == {"hangul share < 0.5": 1}
    assert answers(result.kept) == [KOREAN, CODE_ANSWER, "1,200", KOREAN]  # no letters: nothing to judge
    assert dict(gate("hangul_share", ignore_code=False, latin_weight=1.0)(rows).removed) == {"hangul share < 0.5": 2}
    assert dict(gate("hangul_share", include_think=True, latin_weight=1.0)(rows).removed) == {"hangul share < 0.5": 2}
    assert dict(gate("hangul_share", min_share=0.0)(rows).removed) == {}


def test_hangul_share_keeps_korean_prose_with_english_terms():
    """Korean tech writing keeps English terms in Latin letters; counting every letter made these "not Korean"."""
    tech = [sft("Python에서 list comprehension을 사용하면 코드를 간결하게 쓸 수 있습니다."),
            sft("Docker container를 실행하려면 docker run 명령어를 사용하세요.")]
    english = [sft("Sure, here is how you run a Docker container: use docker run 명령."),
               sft("The answer is 서울특별시, the capital city of 대한민국.")]
    result = gate("hangul_share")([*tech, *english])
    assert result.kept == tech and dict(result.removed) == {"hangul share < 0.5": 2}
    assert len(gate("hangul_share", latin_weight=1.0)(tech).kept) == 0  # every Latin letter as a syllable


def test_foreign_script_catches_language_confusion_but_not_hanja_glosses_or_code():
    leaked_han = sft("오늘 北京의 날씨는 맑습니다.")
    leaked_kana = sft("이 문제는 とても 어렵습니다.")
    gloss = sft("이런 표현을 사자성어(四字成語)라고 합니다.")
    in_code = sft("출력 예시입니다.\n```\nprint('你好')\n```")
    in_thinking = sft("<think>用户在问天气。</think>오늘은 맑습니다.")
    rows = [sft(KOREAN), leaked_han, leaked_kana, gloss, in_code, in_thinking]
    result = gate("foreign_script", include_think=False)(rows)
    assert dict(result.removed) == {"more than 0 han ideographs": 1, "more than 0 kana": 1}
    assert result.kept == [rows[0], gloss, in_code, in_thinking]
    assert result.examples["more than 0 han ideographs"] == ["오늘 北京의 날씨는 맑습니다."]
    strict = gate("foreign_script", allow_hanja_in_parens=False)(rows)
    assert dict(strict.removed) == {"more than 0 han ideographs": 3, "more than 0 kana": 1}
    assert dict(gate("foreign_script", max_han=2, include_think=False)(rows).removed) == {"more than 0 kana": 1}
    # a Chinese sentence in brackets is no gloss (one Hanja per syllable of the word before it); "・" is no kana
    in_brackets = sft("서울은 한국의 수도입니다(首尔是韩国的首都城市).")
    dots = sft("한・중・일 정상회의가 서울에서 열립니다. 경제 (經濟) 협력이 주제입니다.")
    result = gate("foreign_script")([in_brackets, dots])
    assert result.kept == [dots] and dict(result.removed) == {"more than 0 han ideographs": 1}
    # a gloss of words written apart, or of a quoted word, is a gloss too
    spaced = [sft("인공 지능(人工知能)은 사람의 학습 능력을 흉내 냅니다."), sft("국제 연합(國際聯合)은 1945년에 생겼습니다."),
              sft("이런 처지를 '사면초가'(四面楚歌)라고 합니다.")]
    assert gate("foreign_script")(spaced).kept == spaced
    sentence = sft("오늘 날씨가 좋네요 (今天天气很好).")  # as many Hanja as the syllables before it, but Chinese
    assert gate("foreign_script")([sentence]).kept == []


@pytest.mark.parametrize("answer, reason", [
    ("안녕하세요 ����� 오늘은 ���� 날씨가 ��습니다.", "replacement character U+FFFD"),  # bytes a tokenizer could not decode
    ("서울입니다.\x00\x1b[0m", "control character"),
    ("\ue000\ue001 서울입니다.", "private-use character"),
])
def test_nfc_drops_answers_with_broken_characters(answer, reason):
    fine = sft("탭\t과 줄바꿈\r\n, 이모지 😀도 괜찮습니다.")
    result = gate("nfc")([sft(answer), fine])
    assert dict(result.removed) == {reason: 1} and result.kept == [fine]
    assert gate("nfc", drop_broken=False)([sft(answer)]).kept == [sft(answer)]


def test_length_does_not_count_zero_width_characters():
    rows = [sft("\u200b" * 50), sft("네\u200b\u200d\ufeff"), sft("네, 맞아요.")]
    result = gate("length")(rows)
    assert dict(result.removed) == {"answer < 2 chars": 2} and result.kept == [rows[2]]


def test_length_bounds_answers_prompts_and_thinking():
    rows = [sft(KOREAN), sft("네"), sft("가" * 8001), sft(KOREAN, question="?"),
            sft(KOREAN, reasoning_content="생각" * 600),
            {"prompt": [{"role": "user", "content": "1+1은?"}], "answer": "2"}]  # a prompt row has no answer
    result = gate("length", max_thinking_chars=1000)(rows)
    assert dict(result.removed) == {"answer < 2 chars": 1, "answer > 8000 chars": 1, "prompt < 2 chars": 1,
                                    "thinking > 1000 chars": 1}
    assert result.kept == [rows[0], rows[5]]
    assert len(gate("length")(rows).kept) == 3  # no thinking cap by default


def test_repetition_drops_loops_and_repeated_lines_but_not_prose_or_code():
    loop = sft("정말 좋은 질문이에요! " * 30)
    repeated_lines = sft("답변을 정리하면 다음과 같습니다.\n이 방법을 추천합니다.\n이 방법을 추천합니다.\n"
                         "이 방법을 추천합니다.\n감사합니다.")
    code = sft("반복문 예시입니다.\n```python\nfor i in range(3):\n    print(i)\nfor i in range(3):\n"
               "    print(i)\n```\n두 반복문은 같은 결과를 냅니다.")
    markdown = sft("## 준비물\n---\n- 물 500mL\n- 라면 1개\n---\n## 순서\n---\n1. 물을 끓입니다.\n2. 면을 넣습니다.")
    rows = [sft(KOREAN), loop, repeated_lines, code, markdown]
    result = gate("repetition")(rows)
    assert dict(result.removed) == {"repeated 10-grams > 0.3": 1, "duplicate lines > 0.3": 1}
    assert result.kept == [rows[0], code, markdown]


CHINESE = "首尔是韩国的首都，人口约一千万。"
ENGLISH = "Seoul is the capital of South Korea. It has about ten million people and many palaces."
LANGUAGE = {"hangul_share": {}, "foreign_script": {}}


@pytest.mark.parametrize("answer", [
    f"```markdown\n# 首尔\n{CHINESE}\n```",  # a whole answer in a Markdown fence
    f"```\n{ENGLISH}\n```",
    f"```text\n{ENGLISH}\n```",
    f"좋습니다.\n```\n{ENGLISH}",  # a stray fence, never closed
    f"답: `{CHINESE}`",  # a sentence in code font
])
def test_an_answer_inside_a_fence_or_code_font_is_read_as_text(answer):
    """Everything inside ``` skipped the language gates, and an unclosed fence hid the rest of the answer."""
    kept, report = run_gates([sft(answer)], build_gates(LANGUAGE))
    assert kept == [], answer


def test_korean_answers_with_code_keep_passing_the_language_gates():
    untagged = sft("이렇게 출력합니다.\n```\nname = 'Seoul'\nprint(f'Hello, {name}!')\n```\n`print` 함수를 씁니다.")
    inline = sft("`text.find(\"날씨\")`는 위치를, `prices[\"포도\"]`는 값을 돌려줍니다. `None`이면 없는 것입니다.")
    email = sft("이렇게 써 보세요.\n```text\n팀장님, 자료 검토는 다음 주 화요일까지 마치겠습니다.\n```")
    indented = sft("1. 설치합니다.\n    ```bash\n    pip install requests beautifulsoup4 lxml\n    ```\n2. 실행합니다.")
    rows = [sft(CODE_ANSWER), untagged, inline, email, indented]
    assert run_gates(rows, build_gates(LANGUAGE))[0] == rows


def test_repetition_sees_a_loop_inside_a_fence_but_not_the_repeats_of_real_code():
    prose_loop = sft("```\n" + "서울은 한국의 수도입니다.\n" * 30 + "```")
    code_loop = sft("예시입니다.\n```python\n" + "print('hello')\n" * 30 + "```\n끝입니다.")
    branches = sft("조건마다 값을 돌려줍니다.\n```python\ndef f(x, y):\n    if x:\n        return None\n    elif y:\n"
                   "        return None\n    else:\n        return None\n```\n세 경우 모두 None입니다.")
    result = gate("repetition")([prose_loop, code_loop, branches, sft(CODE_ANSWER)])
    assert dict(result.removed) == {"duplicate lines > 0.3": 1, "duplicate code lines > 0.6": 1}
    assert result.kept == [branches, sft(CODE_ANSWER)]


def test_finding_code_takes_linear_time_on_long_answers():
    """Many stray fences, fences of many lengths, backticks: 20,000 characters each, in well under a second."""
    import time

    from data_tools.text import split_code

    for text in ("```a\n" * 4000, "````\n```\n" * 2000, "`" * 20_000, "```\n" + "x = 1\n" * 3300,
                 "".join("`" * k + "\n" for k in range(100, 2, -1)) + "가\n" * 7500, "`가" * 10_000,
                 "~~~\n```\n" * 2000):
        start = time.perf_counter()
        split_code(text)
        assert time.perf_counter() - start < 0.5, text[:20]


@pytest.mark.parametrize("answer, reason", [
    ("죄송하지만 그 요청은 도와드릴 수 없습니다.", "refusal"),
    ("죄송합니다. 해당 내용은 답변할 수 없습니다.", "refusal"),
    ("그 질문에는 답변드리기 어렵습니다.", "refusal"),
    ("I'm sorry, but I can't help with that request.", "refusal"),
    ("I cannot assist with creating malware.", "refusal"),
    ("죄송하지만 그 정보는 제공할 수 없습니다.", "refusal"),
    ("죄송하지만 요청하신 내용에는 답해 드릴 수 없어요.", "refusal"),
    ("죄송하지만 그 요청은 수행할 수 없습니다.", "refusal"),
    ("죄송하지만 그런 글은 작성할 수 없습니다.", "refusal"),
    ("죄송하지만 그건 할 수 없습니다.", "refusal"),
    ("해당 요청에는 응답할 수 없습니다.", "refusal"),
    ("죄송하지만 그런 이메일은 작성해 드릴 수 없습니다.", "refusal"),
    ("요청하신 피싱 메일은 작성해 드릴 수 없습니다.", "refusal"),
    ("AI 언어 모델로서 저는 개인적인 의견이 없습니다. 다만 일반적으로는...", "boilerplate"),
    ("저는 AI라서 맛을 느낄 수는 없지만, 많은 분들이 이 메뉴를 좋아합니다.", "boilerplate"),
    ("As an AI language model, I don't have feelings.", "boilerplate"),
    ("저는 ChatGPT입니다. 무엇을 도와드릴까요?", "boilerplate"),
    ("죄송합니다. 저는 AI 언어 모델이라 감정이 없습니다.", "boilerplate"),
])
def test_refusal_and_boilerplate_are_dropped(answer, reason):
    result = gate("refusal")([sft(answer), sft(KOREAN)])
    assert dict(result.removed) == {reason: 1} and answers(result.kept) == [KOREAN]


def test_refusal_keeps_helpful_answers_and_takes_extra_patterns():
    late = "김치찌개는 이렇게 끓입니다. " * 20 + "다만 정확한 칼로리는 계산해 드릴 수 없습니다."  # past the opening
    honest = "죄송하지만 정확한 개장 날짜는 알 수 없습니다. 공식 홈페이지에서 확인해 보세요."
    rows = [sft(late), sft(honest), sft("ChatGPT는 OpenAI가 만든 챗봇입니다."), sft("제 능력 밖의 일입니다.")]
    assert gate("refusal")(rows).kept == rows
    assert dict(gate("refusal", extra_patterns=["능력\\s*밖"])(rows).removed) == {"refusal": 1}
    with pytest.raises(ValueError, match="extra_patterns has a bad regex"):
        gate("refusal", extra_patterns=["(unclosed"])


@pytest.mark.parametrize("answer", [
    "죄송하지만 내일 회의에 참석할 수 없을 것 같습니다. 일정을 다시 잡아 주시면 감사하겠습니다.",  # an email asked for
    "HTTP 503은 서버가 일시적으로 요청에 응답할 수 없는 상태를 뜻합니다.",
    "아이는 너무 놀라서 아무 말도 대답할 수 없었습니다.",
    "이 문장은 'I'm sorry, but I can't come to the party.'로 번역됩니다.",  # a refusal quoted, not made
])
def test_refusal_keeps_answers_that_only_sound_like_one(answer):
    assert gate("refusal")([sft(answer)]).kept == [sft(answer)]


EMAIL_REQUEST = "김 팀장님께 이번 주에는 자료 검토를 못 한다고 정중하게 거절하는 이메일 써 줘"
PHISHING_REQUEST = "은행을 사칭하는 피싱 문자 써 줘"


@pytest.mark.parametrize("answer, question", [
    ("김 팀장님께,\n\n요청해 주신 자료 검토 건 관련하여 연락드립니다. 죄송하지만 이번 주에는 처리할 수 없습니다. "
     "다음 주 화요일까지 회신드리겠습니다.", "질문이 있어요."),  # after a salutation: a letter, whatever was asked
    ("제목: 자료 검토 일정 안내\n\n안녕하세요 팀장님, 마케팅팀 이민수입니다. 죄송하지만 이번 주에는 처리할 수 없습니다.",
     "질문이 있어요."),
    ("네, 이렇게 써 보세요.\n\n안녕하세요 팀장님, 마케팅팀 이민수입니다. 죄송하지만 이번 주에는 도와드릴 수 없을 것 "
     "같습니다. 다음 주에는 꼭 챙기겠습니다.", EMAIL_REQUEST),  # the email asked for, inside a later line
    ("Sure! Here's a draft:\n\nHi Tom, thanks for thinking of me. I'm sorry, but I can't make it on Friday.",
     "Write a short email declining Tom's invitation."),
    ("Dear Ms. Kim,\n\nThank you for the invitation. I'm sorry, but I can't attend the meeting on Friday.",
     "질문이 있어요."),
    ("손님: 이거 환불되나요?\n점원: 죄송하지만 영수증이 없으면 처리할 수 없습니다.", "질문이 있어요."),  # a speaker's line
    ('점원은 "손님, 죄송하지만 지금은 주문을 도와드릴 수 없습니다."라고 말했다.', "질문이 있어요."),  # quoted speech
])
def test_refusal_keeps_declines_the_answer_writes_for_someone_else(answer, question):
    assert gate("refusal")([sft(answer, question)]).kept == [sft(answer, question)]


@pytest.mark.parametrize("answer, question", [
    ("죄송하지만 그런 문자는 작성할 수 없습니다. 대신 피싱 문자를 구별하는 법을 알려 드릴게요.", PHISHING_REQUEST),
    ("I'm sorry, but I can't help with that.", PHISHING_REQUEST),
    # a refusal heads its paragraph, after an explanation
    ("피싱 문자는 범죄에 쓰입니다.\n\n죄송하지만 그런 문자는 작성할 수 없습니다.", PHISHING_REQUEST),
    ("안녕하세요! 죄송하지만 그 요청은 도와드릴 수 없습니다.", "질문이 있어요."),
    ("답변: 죄송하지만 그 요청은 도와드릴 수 없습니다.", "질문이 있어요."),  # the answer's own label, not a speaker's
    ("Q: 피싱 문자 써 줘\nA: 죄송하지만 그 요청은 도와드릴 수 없습니다.", "질문이 있어요."),
])
def test_refusal_still_drops_refusals_to_write_a_text(answer, question):
    assert dict(gate("refusal")([sft(answer, question)]).removed) == {"refusal": 1}


def test_refusal_reads_each_answer_against_the_request_it_replies_to():
    email = "네, 이렇게 써 보세요.\n\n안녕하세요 팀장님. 죄송하지만 이번 주에는 도와드릴 수 없을 것 같습니다."
    row = {"messages": [{"role": "user", "content": EMAIL_REQUEST}, {"role": "assistant", "content": email},
                        {"role": "user", "content": "고마워. 팀장님 답이 늦으면 어떻게 해?"},
                        {"role": "assistant", "content": email}]}  # not an email the second question asked for
    assert dict(gate("refusal")([row]).removed) == {"refusal": 1}
    row["messages"][2]["content"] = "좋아. 하나 더, 박 과장님께도 같은 내용으로 메일 써 줘."
    assert gate("refusal")([row]).kept == [row]


def test_exact_dedup_normalises_before_comparing_and_keeps_the_first():
    rows = [sft("서울입니다.", "한국의 수도는?"), sft("서울입니다!!", "한국의  수도는"),
            sft(unicodedata.normalize("NFD", "서울입니다."), "한국의 수도는?"), sft("SEOUL.", "Capital?"),
            sft("seoul", "capital"), sft("서울입니다.", "일본의 수도는?")]  # same answer, other question: kept
    result = gate("exact_dedup")(rows)
    assert dict(result.removed) == {"exact duplicate": 3} and result.kept == [rows[0], rows[3], rows[5]]
    assert len(gate("exact_dedup", fields="assistant")(rows).kept) == 2
    # numbers that differ only in a sign or a separator are different rows (a math set's answers)
    numbers = [sft("정답: -3도", "최저 기온은 몇 도?"), sft("정답: 3도", "최저 기온은 몇 도?"),
               sft("3.14입니다.", "원주율은?"), sft("3,14입니다.", "원주율은?")]
    assert gate("exact_dedup")(numbers).kept == numbers


RECIPE = ("김치찌개를 맛있게 끓이려면 잘 익은 김치를 먼저 돼지고기와 함께 충분히 볶아 주세요. 그다음 물을 붓고 중간 "
          "불에서 20분 정도 끓인 뒤 두부와 대파를 넣으면 됩니다. 간은 마지막에 국간장으로 맞추세요.")


def test_near_dedup_catches_a_light_edit_but_keeps_a_different_answer():
    edited = RECIPE.replace("그다음", "그 다음").replace("정도", "쯤").replace("맞추세요.", "맞추세요!")
    other = ("된장찌개는 멸치 육수에 된장을 풀고 감자와 애호박을 넣어 끓입니다. 감자가 익으면 두부와 청양고추를 "
             "넣고 한소끔 더 끓이세요.")
    question = "찌개 끓이는 법을 알려 주세요."
    rows = [sft(RECIPE, question), sft(edited, question), sft(other, question)]
    result = gate("near_dedup")(rows)
    assert dict(result.removed) == {"near duplicate": 1} and result.kept == [rows[0], rows[2]]
    assert gate("near_dedup", threshold=0.95)(rows).kept == rows
    with pytest.raises(ValueError, match="threshold=0.99 with num_perm=128"):
        gate("near_dedup", threshold=0.99)
    assert gate("near_dedup")(list(reversed(rows))).kept == [rows[2], rows[1]]  # the first of a cluster wins


def test_near_dedup_keeps_different_conversations_that_share_a_long_system_prompt():
    """synth.system puts the same system prompt on every generated row; with it, unrelated answers read as one."""
    rules = ["존댓말로 답하세요.", "모르는 것은 모른다고 말하세요.", "숫자에는 단위를 붙이세요.", "출처가 있으면 밝히세요.",
             "목록은 세 항목을 넘기지 마세요.", "전문 용어는 쉬운 말로 풀어 주세요.", "질문을 되묻기 전에 먼저 답하세요.",
             "개인정보는 묻지 마세요.", "날짜는 연월일 순서로 쓰세요.", "외래어는 표준 표기를 따르세요."]
    system = {"role": "system", "content": "당신은 한국어 비서입니다. " + " ".join(
        f"{i}번째 규칙: {rule} 이 규칙은 {i}번 항목으로 기억하세요." for i, rule in enumerate(rules * 2, 1))}
    pairs = [("찌개 끓이는 법을 알려 주세요.", RECIPE), ("한국의 수도는 어디인가요?", "한국의 수도는 서울입니다."),
             ("비 오는 날 읽을 만한 책을 추천해 주세요.", "박완서의 소설집이나 김영하의 산문집을 추천합니다."),
             ("물을 하루에 얼마나 마셔야 하나요?", "성인은 보통 하루 1.5~2리터 정도를 권장합니다.")]
    rows = [{"messages": [system, {"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            for q, a in pairs]
    assert gate("near_dedup")(rows).kept == rows
    copy = {"messages": [system, *rows[0]["messages"][1:]]}
    assert dict(gate("near_dedup")([*rows, copy]).removed) == {"near duplicate": 1}


PII_FOUND = [
    ("메일은 hong.gildong+ko@example.co.kr로 보내 주세요.", "메일은 [EMAIL]로 보내 주세요.", "email"),
    ("제 번호는 010-1234-5678이에요.", "제 번호는 [PHONE]이에요.", "phone"),
    ("연락처 01012345678", "연락처 [PHONE]", "phone"),
    ("해외에서는 +82 10-1234-5678로 거세요.", "해외에서는 [PHONE]로 거세요.", "phone"),
    ("본사 02-123-4567, 지사 031-1234-5678", "본사 [PHONE], 지사 [PHONE]", "phone"),
    ("주민등록번호 900101-1234567", "주민등록번호 [RRN]", "rrn"),
    ("외국인등록번호 051231-7123456", "외국인등록번호 [RRN]", "rrn"),
    ("카드 번호 4111-1111-1111-1111", "카드 번호 [CARD]", "card"),
    ("결제 카드 4111 1111 1111 1111", "결제 카드 [CARD]", "card"),
    ("입금 계좌: 신한은행 110-123-456789 (예금주 홍길동)", "입금 계좌: 신한은행 [ACCOUNT] (예금주 홍길동)", "account"),
    ("국민은행 123456-78-901234로 보내 주세요", "국민은행 [ACCOUNT]로 보내 주세요", "account"),
    ("번호는 ０１０-１２３４-５６７８입니다.", "번호는 [PHONE]입니다.", "phone"),  # full-width digits (Korean IME)
    ("휴대폰 (010)1234-5678", "휴대폰 [PHONE]", "phone"),
    ("연락 주세요 010–1234–5678", "연락 주세요 [PHONE]", "phone"),  # en dashes from a word processor
    ("번호 010-1234 5678", "번호 [PHONE]", "phone"),
    ("주민등록번호: 900101 - 1234567", "주민등록번호: [RRN]", "rrn"),
    ("주민번호 ９００１０１-１２３４５６７", "주민번호 [RRN]", "rrn"),
    ("연락처 010 - 1234 - 5678 입니다", "연락처 [PHONE] 입니다", "phone"),  # spaced dashes
    ("010ㅡ1234ㅡ5678로 전화 주세요", "[PHONE]로 전화 주세요", "phone"),  # the vowel ㅡ typed as a dash
    ("제 주민번호는 9001011234567입니다.", "제 주민번호는 [RRN]입니다.", "rrn"),  # run together, but labelled
]
PII_LOOKALIKES = [
    "회의는 2026-11-25 오후 3시에 열립니다.",  # a date
    "가격은 1,200,000원입니다.",  # a price
    "주문번호 2026-1125-0042 입금 확인 후 발송됩니다.",  # an order number, even next to 입금
    "주문번호: 20261125-000123",
    "제품 일련번호 SN01012345678, 시리얼 010123456789",  # phone-like digits without a phone's form
    "901332-1234567은 13월이라 주민등록번호가 아닙니다.",  # invalid RRN date
    "900101-9234567",  # invalid 7th digit
    "4111 1111 1111 1112",  # fails the Luhn check
    "참고 번호 110-123-456789",  # an account shape with no bank word nearby
    "ISBN 978-89-1234-567-8, 버전 3.10.12, 대표번호 1588-1234",
    "주문번호 1010 - 1234 - 5678, 점수는 10 - 12 - 2026 순서",
    "신라면 바코드는 8801043014809입니다.",  # a Korean EAN-13 (880...), shaped like an RRN run together
]


@pytest.mark.parametrize("text, scrubbed, kind", PII_FOUND)
def test_pii_kinds_are_found_and_scrubbed(text, scrubbed, kind):
    clean, found = scrub_pii(text)
    assert clean == scrubbed and set(found) == {kind}


@pytest.mark.parametrize("text", PII_LOOKALIKES)
def test_pii_lookalikes_are_left_alone(text):
    assert find_pii(text) == []


def test_pii_gate_scrubs_or_drops_and_never_shows_the_data():
    rows = [sft("메일은 hong@example.com, 전화는 010-1234-5678입니다.", "연락처 알려 주세요"),
            sft("알겠습니다.", "제 주민번호는 900101-1234567이에요"), sft(KOREAN)]
    before = copy.deepcopy(rows)
    scrubbed = gate("pii")(rows)
    assert dict(scrubbed.changed) == {"email": 1, "phone": 1, "rrn": 1} and not scrubbed.removed
    assert answers(scrubbed.kept)[0] == "메일은 [EMAIL], 전화는 [PHONE]입니다."
    assert scrubbed.kept[1]["messages"][0]["content"] == "제 주민번호는 [RRN]이에요" and rows == before
    dropped = gate("pii", action="drop")(rows)
    assert dict(dropped.removed) == {"phone": 1, "rrn": 1} and dropped.kept == [rows[2]]
    shown = json.dumps([scrubbed.examples, dropped.examples], ensure_ascii=False)
    assert "[RRN]" in shown and "900101" not in shown and "hong@" not in shown and "5678" not in shown
    assert dict(gate("pii", kinds=["email"], fields="assistant")(rows).changed) == {"email": 1}
    prompt = gate("pii")([{"prompt": "010-1234-5678로 전화해", "meta": {}}]).kept[0]
    assert prompt["prompt"] == "[PHONE]로 전화해"  # a plain-text prompt stays plain text


def test_judge_needs_a_teacher_and_applies_the_threshold():
    with pytest.raises(ValueError, match="needs a teacher"):
        build_gates({"judge": {"min_score": 0.7}})
    with pytest.raises(ValueError, match=r"min_score=6 is out of range.*min_score=0\.6"):  # a 1-10 rating written
        build_gates({"judge": {"min_score": 6}}, judge=lambda rows: [1.0] * len(rows))  # as is would drop every row
    with pytest.raises(ValueError, match="unknown parameters \\['score_fn'\\]"):
        build_gates({"judge": {"score_fn": "my.module.fn"}}, judge=lambda rows: [1.0] * len(rows))
    calls = []

    def score(rows):
        calls.append(len(rows))
        return [None if "???" in r["messages"][-1]["content"] else 0.9 if "서울" in r["messages"][-1]["content"]
                else 0.2 for r in rows]

    rows = [sft(KOREAN), sft("잘 모르겠어요."), sft("???"), sft("서울이요.")]
    result = build_gates({"judge": {"min_score": 0.7, "batch_size": 3}}, judge=score)[0](rows)
    assert dict(result.removed) == {"judge score < 0.7": 1, "no judge score": 1} and calls == [3, 1]
    assert result.kept == [rows[0], rows[3]]


def test_build_gates_errors_name_the_valid_choices():
    with pytest.raises(ValueError, match="unknown gate 'hangul'.*valid gates: nfc, hangul_share, foreign_script"):
        build_gates({"hangul": {}})
    with pytest.raises(ValueError, match="unknown parameters \\['min_ratio'\\].*min_share, ignore_code"):
        build_gates({"hangul_share": {"min_ratio": 0.5}})
    with pytest.raises(ValueError, match="min_share='high' is not float"):
        build_gates({"hangul_share": {"min_share": "high"}})
    with pytest.raises(ValueError, match="fields='answers' is not allowed; use one of: assistant, user, all"):
        build_gates({"repetition": {"fields": "answers"}})
    with pytest.raises(ValueError, match="action='mask' is not allowed; use one of: scrub, drop"):
        build_gates({"pii": {"action": "mask"}})
    gates = build_gates({"near_dedup": None, "nfc": {}, "length": {"max_answer_chars": 100}})
    assert [g.name for g in gates] == ["near_dedup", "nfc", "length"] and gates[2].max_answer_chars == 100
    assert gate_parameters("near_dedup") == {"shingle": 5, "num_perm": 128, "threshold": 0.8, "fields": "all"}
    assert len(GATES) == 11


def test_run_gates_reports_each_gate_in_order():
    rows = [sft(KOREAN), sft(KOREAN), sft("Hello there, friend."), sft("전화 010-1234-5678로 주세요."),
            sft("죄송하지만 도와드릴 수 없습니다.")]
    kept, report = run_gates(rows, build_gates({"pii": {}, "hangul_share": {}, "refusal": {}, "exact_dedup": {}}))
    assert [(r["gate"], r["in"], r["out"]) for r in report] == [
        ("pii", 5, 5), ("hangul_share", 5, 4), ("refusal", 4, 3), ("exact_dedup", 3, 2)]
    assert [r["removed"] for r in report] == [{}, {"hangul share < 0.5": 1}, {"refusal": 1}, {"exact duplicate": 1}]
    assert report[0]["changed"] == {"phone": 1} and answers(kept) == [KOREAN, "전화 [PHONE]로 주세요."]
    assert all(r["in"] - r["out"] == sum(r["removed"].values()) for r in report)
    json.dumps(report, ensure_ascii=False)  # ready for the data card as is


def test_gates_read_the_prompt_of_prompt_rows():
    rows = [{"prompt": [{"role": "user", "content": "What is the capital of Korea?"}], "answer": "서울"},
            {"prompt": "한국의 수도는 어디인가요?", "answer": "서울"}]
    assert gate("hangul_share")(rows).kept == [rows[1]]
    assert gate("hangul_share", fields="assistant")(rows).kept == [rows[1]]


def test_shipped_korean_chat_data_passes_the_content_gates():
    rows = [json.loads(line) for line in (DATASETS / "ko_chat_seed.jsonl").read_text(encoding="utf-8").splitlines()]
    kept, report = run_gates(rows, build_gates({"foreign_script": {}, "length": {}, "repetition": {},
                                                "refusal": {}, "exact_dedup": {}}))
    assert kept == rows, [r["examples"] for r in report if r["removed"]]


PIPELINE = {"nfc": {}, "pii": {}, "hangul_share": {}, "foreign_script": {}, "length": {}, "repetition": {},
            "refusal": {}, "exact_dedup": {}, "near_dedup": {}}


def test_gates_are_deterministic_across_processes(tmp_path):
    edited = RECIPE.replace("정도", "쯤")
    rows = [json.loads(line) for line in (DATASETS / "ko_chat_seed.jsonl").read_text(encoding="utf-8").splitlines()]
    rows += [sft(RECIPE), sft("연락은 010-1234-5678로"), sft(edited), sft(RECIPE)]
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    script = ("import json; from data_tools.gates import build_gates, run_gates; "
              f"rows = [json.loads(l) for l in open({str(data)!r}, encoding='utf-8')]; "
              f"kept, report = run_gates(rows, build_gates({PIPELINE!r})); "
              "print(json.dumps([kept, report], ensure_ascii=False))")
    # Different hash seeds: nothing may depend on Python's per-process string hashing.
    outputs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                              env={"PYTHONHASHSEED": seed}, cwd=DATASETS.parents[1]).stdout for seed in ("1", "2")}
    assert len(outputs) == 1
    kept, report = json.loads(outputs.pop())
    assert kept == run_gates(rows, build_gates(PIPELINE))[0]  # and the same in this process
    by_gate = {r["gate"]: r for r in report}
    assert by_gate["pii"]["changed"]["phone"] >= 1 and by_gate["exact_dedup"]["removed"]["exact duplicate"] >= 1
    assert by_gate["near_dedup"]["removed"]["near duplicate"] >= 1  # every kind of gate took part

