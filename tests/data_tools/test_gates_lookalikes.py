"""Korean rows the gates misjudged: Chinese after a sentence-final verb kept as a "gloss", Hanja with its reading
dropped, Chinese thinking kept, TeX counted as English, an English email in a Korean answer's fence counted as
English, polite refusals missed, quoted refusals and sentences about AI models dropped, personal data in full-width
letters missed, and subtractions and order numbers scrubbed as personal data."""

from __future__ import annotations

import pytest

from data_tools.gates import build_gates, find_pii, scrub_pii
from data_tools.gates.pii import luhn_ok
from data_tools.gates.text_gates import _without_hanja_glosses


def sft(answer: str, question: str = "질문이 있어요.", **assistant_extra) -> dict:
    return {"messages": [{"role": "user", "content": question},
                         {"role": "assistant", "content": answer, **assistant_extra}]}


def gate(name: str, **params):
    return build_gates({name: params})[0]


# ---- foreign_script -----------------------------------------------------------------------------------------

def test_foreign_script_drops_chinese_after_a_sentence_final_verb_but_keeps_glosses():
    chinese = [sft("네, 알겠습니다(我知道了). 바로 처리하겠습니다."), sft("정말 좋아요(很好)!"), sft("감사합니다(谢谢)"),
               sft("정말 좋아요(很好呀)!")]  # a Hanja per syllable, but a verb ending: no term
    glosses = [sft("이 서류는 꼭 필요(必要)합니다."), sft("안전이 가장 중요(重要)합니다."),
               sft("경제는(經濟) 나라 살림을 뜻합니다.")]
    result = gate("foreign_script")([*chinese, *glosses])
    assert result.kept == glosses and dict(result.removed) == {"more than 0 han ideographs": 4}


def test_foreign_script_keeps_hanja_followed_by_its_hangul_reading():
    readings = [sft("一石二鳥(일석이조)의 효과를 노렸습니다."), sft("고사성어 '塞翁之馬(새옹지마)'는 인생의 길흉화복을 뜻합니다."),
                sft("새옹지마(塞翁之馬)는 인생의 길흉화복을 뜻합니다.")]
    not_readings = [sft("一石二鳥(일석)의 효과를 노렸습니다."), sft("首尔是韩国的首都(서울)입니다.")]
    result = gate("foreign_script")([*readings, *not_readings])
    assert result.kept == readings and dict(result.removed) == {"more than 0 han ideographs": 2}


def test_a_long_run_of_hangul_keeps_its_gloss_and_nothing_else_changes():
    """The search for glosses took quadratic time on a long run of Hangul (7.6 s for 20,000 syllables)."""
    text = "하" * 20_000 + " 사자성어(四字成語)라고 합니다."
    assert _without_hanja_glosses(text) == "하" * 20_000 + " 사자성어라고 합니다."
    assert _without_hanja_glosses("하하 " * 7_000) == "하하 " * 7_000


def test_foreign_script_reads_the_thinking_by_default():
    """Chinese thinking trains the model to think in Chinese; English thinking has nothing to count."""
    chinese = [sft("<think>用户在问天气。</think>오늘은 맑습니다."),
               sft("오늘은 맑습니다.", reasoning_content="用户在问天气。我应该用韩语回答。")]
    english = sft("오늘은 맑습니다.", reasoning_content="The user asks about the weather. Answer in Korean.")
    result = gate("foreign_script")([*chinese, english])
    assert result.kept == [english] and dict(result.removed) == {"more than 0 han ideographs": 2}
    assert gate("foreign_script", include_think=False)([*chinese, english]).kept == [*chinese, english]


# ---- hangul_share -------------------------------------------------------------------------------------------

def test_hangul_share_does_not_count_tex_or_units_as_english():
    math = [sft(r"$$\int_0^1 x^2\,dx = \left[\frac{x^3}{3}\right]_0^1 = \frac{1}{3}$$ 따라서 답은 1/3입니다."),
            sft(r"넓이는 \(\frac{1}{2} \times 8 \times 5 = 20\)입니다."),
            sft("물 3 kg은 3,000mL이고, 속력은 60km/h입니다.")]
    english = sft(r"The integral $\int_0^1 x^2\,dx$ equals one third, 정답.")
    result = gate("hangul_share")([*math, english])
    assert result.kept == math and dict(result.removed) == {"hangul share < 0.5": 1}
    assert len(gate("hangul_share", ignore_code=False)(math).kept) < len(math)  # counting TeX's letters drops them


def test_hangul_share_keeps_korean_sentences_with_english_terms_as_its_docstring_says():
    sentence = sft("Python에서 list comprehension을 사용하면 코드를 간결하게 쓸 수 있습니다.")
    mostly_terms = sft("Python에서 list comprehension을 쓰면 됩니다.")  # 0.47: mostly English terms, under 0.5
    assert gate("hangul_share")([sentence, mostly_terms]).kept == [sentence]


EMAIL = ("Dear Ms. Park,\n\nThank you for your email. I am writing to confirm our meeting on Tuesday, March 12 at "
         "3 p.m. in the main conference room. Please let me know if the time does not work for you, and I will be "
         "happy to find another slot.\n\nBest regards,\nMinho Kim")


@pytest.mark.parametrize("answer", [
    f"요청하신 이메일을 영어로 옮겼습니다.\n\n```\n{EMAIL}\n```\n\n더 격식 있게 바꿔 드릴까요?",
    f"영어 이메일 초안입니다.\n```text\n{EMAIL}\n```",
    f"이렇게 보내시면 됩니다.\n```markdown\n**Subject:** Meeting on Tuesday\n\n{EMAIL}\n```",
    "원문은 이렇습니다.\n```\n\"The only way to do great work is to love what you do.\" - Steve Jobs\n```\n"
    "'위대한 일을 하는 유일한 방법은 자기가 하는 일을 사랑하는 것이다'라는 뜻입니다.",
])
def test_a_korean_answer_with_an_english_text_in_a_fence_is_kept(answer):
    """Since fences that hold prose are read as text, the English email or quote a Korean answer writes in one
    counted against its Hangul, and the row was dropped (it was kept while fences were skipped)."""
    rows = [sft(answer, "이 이메일을 영어로 써 주세요.")]
    assert gate("hangul_share")(rows).kept == rows
    assert gate("foreign_script")(rows).kept == rows


@pytest.mark.parametrize("answer", [
    "다음 문장을 중국어로 번역하면 이렇게 됩니다. 존댓말의 느낌은 중국어에서 따로 표현하지 않고 그대로 옮겼습니다:\n"
    "```\n我今天很忙。\n```",
    "일본어로는 아래처럼 쓰면 자연스럽습니다. 회사 동료에게 보내는 말이라 정중한 표현을 골랐습니다:\n"
    "```text\n今日はとても忙しいです。\n```",
])
def test_a_korean_explanation_quoting_a_chinese_or_japanese_sentence_in_a_fence_is_kept(answer):
    """A translation exercise: the quoted sentence is weighed with the answer's Korean, as it is unfenced (judged on
    its own it dropped the row)."""
    assert gate("hangul_share")([sft(answer)]).kept == [sft(answer)]


@pytest.mark.parametrize("answer, reason", [
    ("```markdown\n# 首尔\n首尔是韩国的首都，人口约一千万。\n```", "hangul share < 0.5"),  # the whole answer in a fence
    ("답변입니다.\n```markdown\n# 首尔\n首尔是韩国的首都，人口约一千万。\n```", "hangul share < 0.5"),
    ("네, 설명해 드릴게요.\n```\nソウルは韓国の首都で、人口は約一千万人です。\n```", "hangul share < 0.5"),
    ("```text\nSeoul is the capital of South Korea. It has about ten million people.\n```", "hangul share < 0.5"),
    ("Sure! Seoul is the capital of South Korea.\n```\n서울\n```", "hangul share < 0.5"),  # English outside a fence
])
def test_a_chinese_japanese_or_english_answer_in_a_fence_is_still_dropped(answer, reason):
    assert dict(gate("hangul_share")([sft(answer)]).removed) == {reason: 1}


# ---- refusal ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("answer", [
    "해당 요청은 도와드리기 어렵습니다.",
    "죄송하지만 그 부분은 도와드리기 어려워요.",
    "그 요청은 들어드릴 수 없습니다.",
    "죄송하지만 그 내용은 안내해 드리기 곤란합니다.",
])
def test_refusal_drops_polite_refusals(answer):
    assert dict(gate("refusal")([sft(answer)]).removed) == {"refusal": 1}


@pytest.mark.parametrize("answer", [
    "이 문제는 풀기 어렵습니다. 하지만 차근차근 풀어 보겠습니다.",  # explains a difficulty, refuses nothing
    "요정은 나무꾼의 소원을 들어 드릴 수 없었습니다.",  # a story
    "'죄송하지만 도와드릴 수 없습니다'는 영어로 'I'm sorry, but I can't help you'라고 번역합니다.",
    "‘죄송하지만 답변드릴 수 없습니다’는 정중한 거절 표현입니다.",
    "보기 ①은 '죄송하지만 그 요청은 도와드릴 수 없습니다'처럼 거절하는 표현입니다.",
    "그 정도는 도와드리기 어렵지 않아요! 바로 알려 드릴게요.",  # glad to help
    "필요하시면 알려드리기 어렵지 않으니 언제든 물어보세요.",
])
def test_refusal_keeps_answers_that_explain_or_quote_a_refusal(answer):
    assert gate("refusal")([sft(answer)]).kept == [sft(answer)]


@pytest.mark.parametrize("answer", [
    "'피싱 문자'는 작성해 드릴 수 없습니다.",  # the quote closed before the refusal
    "It's late. I'm sorry, but I can't help with that.",  # apostrophes open no quote
    "'90년대 음악 파일은 저작권이 있어 도와드릴 수 없습니다.",  # a quote opened and never closed
])
def test_refusal_after_a_closed_quote_or_an_apostrophe_is_still_a_refusal(answer):
    assert dict(gate("refusal")([sft(answer)]).removed) == {"refusal": 1}


@pytest.mark.parametrize("answer", [
    "죄송하지만 도와드릴 수 없습니다.",
    "도와드릴 수 없지만 다른 질문은 도와드릴게요.",  # refuses this request, offers another
    "죄송하지만 그 요청은 도와드리기 어렵지만, 궁금한 점이 있으면 언제든 물어보세요.",
    "그 내용은 도와드리기 어렵습니다. 다만 다른 질문이 있으면 말씀해 주세요.",
    "그런 글은 작성해 드릴 수 없지만, 대신 안전한 글쓰기 요령을 알려 드릴게요.",
    "I'm sorry, but I can't help with that, but I can help with something else.",
])
def test_refusal_with_an_offer_of_something_else_is_still_a_refusal(answer):
    assert dict(gate("refusal")([sft(answer)]).removed) == {"refusal": 1}


@pytest.mark.parametrize("answer", [
    "AI 모델로서의 ChatGPT는 트랜스포머 구조를 사용합니다.",
    "인공지능 모델이기 때문에 대량의 데이터가 필요합니다.",
    "GPT-4와 같은 AI 모델로서 가장 중요한 것은 데이터입니다.",
    "제가 앞서 소개한 GPT-4는 AI 모델로서 뛰어난 성능을 보입니다.",
    "딥러닝 모델이므로 GPU가 필요합니다. AI 모델이므로 학습 데이터의 품질이 중요합니다.",
    "인공지능 모델이므로 전 세계의 데이터로 학습합니다.",  # 전: "all", not 저는
])
def test_boilerplate_keeps_sentences_about_ai_models(answer):
    assert gate("refusal")([sft(answer)]).kept == [sft(answer)]


@pytest.mark.parametrize("answer", [
    "저는 OpenAI가 만든 AI 언어 모델로서 감정이 없습니다.",
    "AI 모델이기 때문에 감정을 느낄 수는 없지만, 많은 분들이 이 노래를 좋아합니다.",
    "죄송하지만, AI 모델로서 실시간 정보에 접근할 수 없습니다.",
    "AI 언어 모델로서 개인적인 의견은 없지만, 일반적으로는 두 방법 모두 쓰입니다.",
    "AI 모델이라서 전 좋아하는 음식이 없지만, 김치찌개가 인기 있어요.",  # 전: 저는
])
def test_boilerplate_drops_the_model_speaking_of_itself_as_an_ai(answer):
    assert dict(gate("refusal")([sft(answer)]).removed) == {"boilerplate": 1}


# ---- pii ----------------------------------------------------------------------------------------------------

ORDER_NUMBER = "2024011512345674"  # 16 digits that pass the Luhn check, as one order number in ten does


def test_pii_scrubs_an_email_typed_in_full_width_letters():
    assert scrub_pii("메일은 ｈｏｎｇ＠ｎａｖｅｒ．ｃｏｍ으로 보내 주세요.")[0] == "메일은 [EMAIL]으로 보내 주세요."


@pytest.mark.parametrize("text", [
    "계산하면 100101 - 1000000 = -899899입니다.",
    "251231 - 1234567의 값은?",
    "두 수 900101 1234567을 더하세요.",
    f"주문번호 {ORDER_NUMBER} 배송 조회",
    f"운송장 번호: {ORDER_NUMBER}",
    "송장 2024-0115-1234-5674로 조회하세요.",
])
def test_pii_leaves_subtractions_and_order_numbers_alone(text):
    assert luhn_ok(ORDER_NUMBER) and find_pii(text) == []


@pytest.mark.parametrize("text, scrubbed", [
    ("주민등록번호: 900101 - 1234567", "주민등록번호: [RRN]"),  # spaced, but labelled
    ("본인 확인용 900101-1234567", "본인 확인용 [RRN]"),  # the plain form needs no label
    (f"결제 카드 {ORDER_NUMBER}", "결제 카드 [CARD]"),
    (f"주문번호 1234, 결제 카드 {ORDER_NUMBER}", "주문번호 1234, 결제 카드 [CARD]"),  # the card word is closer
])
def test_pii_still_scrubs_labelled_numbers(text, scrubbed):
    assert scrub_pii(text)[0] == scrubbed


def test_card_numbers_after_a_phone_or_business_label_are_still_scrubbed():
    """Only order and waybill labels say a card-shaped number is something else; 연락처 or 사업자 do not."""
    for text in ["연락처 4111-1111-1111-1111 로 결제했어요", "사업자 명의 4111 1111 1111 1111", "전화 주시면 4111-1111-1111-1111"]:
        assert "4111" not in scrub_pii(text)[0], text

