"""The refusal gate on a labelled set of realistic answers: real refusals (with a polite tail, an offer of something
else, a referral, sympathy, or a general statement of why not) and caveats that limit what the answer gives and then
help ("정확한 진단은 도와드릴 수 없지만, 일반적으로 두통은 ...").

Every real refusal here is dropped, and must stay dropped: a refusal kept teaches a model to refuse. The caveats are
dropped too, the price of that: no rule on the answer's surface told them apart. An exemption asking for a limited
object (진단, 법률 자문, specific legal advice), a contrast right after the decline (지만, 습니다만, ", but") and help after
it (enough letters, no apology, wish, offer, referral, warning or talk of itself, general information or a number)
kept 15 of 17 caveats and dropped all 38 refusals it was tuned on, then kept 2 of 12 new refusals, and after a fix
8 of 12 more: an explanation of why not, in general terms ("일반적으로 수면제는 의존성이 생길 수 있는 약이라서 ..."), has
the form of help. Telling them apart takes reading the meaning (the judge gate). The caveat test is a strict xfail:
an exemption that makes it pass must keep every refusal here dropped."""

from __future__ import annotations

import pytest

from data_tools.gates import build_gates

REFUSALS = [
    # the exemption reverted in b05f1a7 kept these: a polite tail after the contrast
    "도와드릴 수 없습니다. 하지만 이해해 주시길 바랍니다.",
    "I'm sorry, but I can't help with that, but please stay safe.",
    "죄송하지만 그 요청은 도와드릴 수 없습니다. 대신 다른 질문이 있으면 말씀해 주세요.",
    # a limited object and a contrast, then a referral, a wish, an apology or an offer: no help
    "정확한 진단은 도와드릴 수 없지만, 증상이 계속되면 가까운 병원에서 전문의와 상담해 보시길 권해 드립니다.",
    "죄송하지만 법률 자문은 도와드릴 수 없습니다. 하지만 궁금한 점이 있으시면 언제든지 다른 질문을 해 주세요.",
    "개별 상담은 도와드리기 어렵지만, 양해 부탁드리며 좋은 결과가 있기를 진심으로 바랍니다.",
    "투자 조언은 도와드리기 어렵습니다. 다만 투자는 본인의 판단과 책임하에 신중하게 결정하시길 바랍니다.",
    "죄송하지만 처방은 도와드릴 수 없지만, 건강하시길 바라고 빨리 쾌유하시길 응원하겠습니다.",
    "정확한 진단은 도와드릴 수 없지만, 이런 증상은 사람마다 원인이 달라서 제가 판단하기는 어렵습니다. 의사와 상담해 보세요.",
    "법률 자문은 도와드릴 수 없습니다만, 대한법률구조공단이나 변호사에게 문의하시면 정확한 답변을 받으실 수 있습니다.",
    "죄송하지만 정확한 진단은 도와드릴 수 없어요. 그래도 걱정되시는 마음은 충분히 이해해요. 꼭 병원에 가 보시고 건강 잘 챙기세요.",
    "정확한 진단은 도와드릴 수 없지만, 말씀해 주신 내용만으로는 원인을 알기가 힘들어요.",
    "정확한 진단은 도와드릴 수 없지만, 증상이 며칠째 계속된다면 그냥 넘기지 마시고 꼭 진료를 받아 보세요.",
    "법률 자문은 도와드릴 수 없지만, 법은 상황마다 다르게 적용되기 때문에 제가 말씀드리기는 어렵습니다.",
    # no limited object: the request itself is declined, whatever follows
    "그 요청은 도와드리기 어렵지만, 다른 주제라면 기꺼이 도와드릴게요.",
    "죄송하지만 해킹 방법은 알려 드릴 수 없습니다. 하지만 해킹은 정보통신망법에 따라 처벌받을 수 있는 범죄이며 타인의 계정에 "
    "무단으로 접근하면 피해자에게 심각한 금전적, 정신적 피해가 생깁니다.",
    "죄송하지만 의약품을 처방전 없이 구하는 방법은 도와드릴 수 없습니다. 하지만 건강이 걱정되신다면 가까운 약국이나 병원에 "
    "방문해 보세요.",
    "I'm sorry, but I can't help with making weapons. However, if you have any other questions, feel free to ask.",
    "I'm sorry, I can't assist with that. But I hope you find the help you need.",
    # English: a limited object and a contrast, then no help
    "I can't provide specific legal advice, but I hope you understand and I wish you the best of luck with your case.",
    "I'm not able to provide a diagnosis, but please consult a doctor or visit an emergency room if it gets worse.",
    "I'm sorry, I can't provide personalized financial advice, but I'd be happy to help with something else.",
    "I can't provide medical advice, but I understand this must be worrying for you. Please take care of yourself.",
    "I can't provide legal advice, but laws vary a lot from state to state and every situation is different, so it's "
    "impossible for me to say how this would apply to you.",
    # tried against a first exemption: a limited object and a contrast, then sympathy, a warning or a disclaimer
    "법률 자문은 도와드릴 수 없지만, 이 문제는 여러 법 조항이 얽혀 있는 복잡한 사안이라 섣불리 판단하면 오히려 불리해질 수 있습니다.",
    "정확한 진단은 도와드릴 수 없지만, 말씀하신 증상이 심각할 수 있으니 지체하지 말고 가까운 응급실로 가시길 강력히 권합니다.",
    "투자 조언은 도와드릴 수 없지만, 투자에는 항상 원금 손실의 위험이 따른다는 점을 꼭 기억해 두세요.",
    "개별 상담은 도와드리기 어렵지만, 혼자 고민하지 마시고 주변의 믿을 만한 사람들과 이야기를 나눠 보시면 좋겠습니다.",
    "I can't provide medical advice, but your symptoms sound like they could be something serious, so don't wait to "
    "get them checked out.",
    "I'm unable to provide legal advice, but every jurisdiction handles these matters differently and the details "
    "of your case matter a great deal.",
    "죄송하지만 정확한 진단은 도와드릴 수 없습니다. 다만 제가 드릴 수 있는 말씀은, 몸의 신호를 가볍게 여기지 마시라는 것입니다.",
    "의학적 조언은 도와드리기 어렵지만, 이런 고민을 털어놓으신 것만으로도 큰 용기를 내신 거예요. 충분히 잘하고 계십니다.",
    "처방은 도와드릴 수 없지만, 약은 반드시 의사나 약사의 지시에 따라 복용하셔야 합니다.",
    "정확한 진단은 도와드릴 수 없지만, 증상을 기록해 두셨다가 진료 시 보여 주시면 도움이 될 거예요.",
    "I can't provide specific legal advice. However, this is a complex area of law and the outcome depends heavily "
    "on the facts of your situation.",
    "세무 자문은 도와드릴 수 없지만, 세법은 매년 바뀌고 개인마다 적용되는 규정이 달라 일반화하기 어렵습니다.",
    "죄송하지만 처방은 도와드릴 수 없어요. 하지만 몸이 많이 힘드신 것 같아 마음이 쓰이네요. 푹 쉬시면서 따뜻한 차라도 한잔 드세요.",
    "법률 자문은 도와드릴 수 없지만, 이런 일을 겪으셨다니 정말 속상하시겠어요. 부디 원만하게 해결되기를 진심으로 빌겠습니다.",
    # ... a second: reassurance, or a general statement of why the assistant will not answer
    "정확한 진단은 도와드릴 수 없지만, 일반적으로 이런 증상은 원인이 워낙 다양해서 글만으로는 판단이 불가능합니다.",
    "법률 자문은 도와드릴 수 없지만, 대부분의 경우 계약서 내용을 직접 보지 않고서는 정확한 답을 드리기가 쉽지 않습니다.",
    "투자 조언은 도와드리기 어렵습니다. 다만 보통 투자 결정은 본인의 재정 상황과 목표를 고려해 스스로 내리셔야 합니다.",
    "개별 상담은 도와드릴 수 없지만, 흔히 이런 고민을 하시는 분들이 많으니 너무 혼자 짊어지지 마시고 천천히 생각해 보세요.",
    "I can't provide medical advice, but in general I'd always recommend erring on the side of caution when it "
    "comes to your health.",
    "I'm sorry, but I can't provide specific legal advice, but generally speaking, every case is unique, so I "
    "wouldn't want to guess at the outcome of yours.",
    "의학적 진단은 도와드릴 수 없지만, 보통 증상만으로 질병을 단정하는 것은 오진의 가능성이 있어 권장되지 않습니다.",
    "처방은 도와드리기 어렵지만, 일반적으로 약은 개인의 체질과 병력에 맞춰 처방되어야 하므로 임의로 복용하시면 안 됩니다.",
    "I'm not able to provide a diagnosis, but it's common to feel anxious about symptoms like these, and that's "
    "completely normal.",
    "세무 자문은 도와드릴 수 없지만, 세금 문제는 대부분 개별 사정이 중요하게 작용하므로 제가 일반적인 답을 드리는 것은 적절하지 않습니다.",
    "죄송하지만 실시간 시세는 제공할 수 없지만, 2023년 이전 데이터만 학습했기 때문에 최신 정보는 알지 못합니다.",
    "정확한 진단은 도와드릴 수 없습니다만, 많은 분들이 비슷한 증상을 겪고 있으니 너무 불안해하지 않으셔도 됩니다. 대부분은 시간이 지나면 좋아지니까요.",
    # ... a third: why not, in general terms (일반적으로, generally): the form of help, without the help
    "정확한 진단은 도와드릴 수 없지만, 일반적으로 인터넷 정보만 믿고 자가 진단을 하는 것은 바람직하지 않습니다. 증상이 있다면 가까운 곳에서 확인받아 보세요.",
    "I'm unable to provide legal advice, but generally, online information about law is often outdated or "
    "incomplete, so it shouldn't be relied on for decisions like this.",
    "법률 자문은 도와드릴 수 없지만, 보통 이런 질문은 구체적인 사실관계가 확인되어야 답할 수 있는 성격의 것이라 양측 입장을 모두 들어 봐야 합니다.",
    "I can't provide a diagnosis, but most people who search for their symptoms online end up more worried than "
    "before, so try not to read too much into what you find.",
    "처방은 도와드릴 수 없지만, 일반적으로 수면제는 의존성이 생길 수 있는 약이라서 처방 없이 구하는 것은 법적으로도 허용되지 않습니다.",
    "투자 조언은 도와드리기 어렵지만, 일반적으로 특정 종목의 매수나 매도를 권하는 것은 자본시장법상 자격이 있는 사람만 할 수 있도록 되어 있습니다.",
    "정확한 진단은 도와드릴 수 없어요. 하지만 보통 이런 증상은 며칠 지켜보면서 변화가 있는지 살펴보는 게 일반적인 순서예요. 조금 더 지켜보시는 걸 추천드려요.",
    "세무 자문은 도와드릴 수 없지만, 일반적으로 세무 관련 판단은 최신 세법과 개인의 소득 구조를 모두 검토한 뒤에 내려져야 하는 것입니다.",
    "I'm sorry, but I can't provide specific legal advice. However, typically questions like this are decided by "
    "courts on a case-by-case basis, looking at all the facts.",
    "의학적 진단은 도와드리기 어렵습니다. 다만 대부분 이런 질문은 직접 보지 않고는 알 수 없는 경우가 많아서 글로는 한계가 있습니다.",
    "I can't provide medical advice, but typically the safest and most reliable answers come from someone who can "
    "look at your full medical history.",
    "개별 상담은 도와드리기 어렵지만, 흔히 말하듯 시간이 약이라는 말도 있잖아요. 조금만 더 버텨 보시면 분명 나아질 거예요.",
]

CAVEATS = [
    "정확한 진단은 도와드릴 수 없지만, 일반적으로 두통은 긴장성 두통이 가장 흔하며 수면 부족, 스트레스, 카페인 금단이 주된 "
    "원인입니다. 물을 충분히 마시고 규칙적으로 자면 대부분 나아집니다.",
    "의학적 진단은 도와드리기 어렵습니다. 다만 일반적인 두통은 충분한 휴식과 수분 섭취로 나아지며, 진통제를 정해진 용량대로 "
    "복용하면 통증이 줄어듭니다.",
    "개인 상황에 맞는 법률 자문은 도와드리기 어렵지만, 일반적인 절차는 이렇습니다. 먼저 내용증명으로 보증금 반환을 요구하고, "
    "그래도 돌려받지 못하면 임차권등기명령을 신청한 뒤 지급명령이나 소송을 진행합니다.",
    "죄송하지만 정확한 진단은 도와드릴 수 없지만, 말씀하신 증상은 보통 위산 역류와 관련이 많습니다. 식사 후 바로 눕지 말고, "
    "기름진 음식과 커피를 줄이면 증상이 가벼워지는 경우가 많습니다.",
    "개별 상담은 도와드리기 어렵지만, 연말정산에서 월세 세액공제를 받으려면 무주택 세대주여야 하고 총급여가 8천만 원 "
    "이하여야 합니다. 임대차계약서와 월세 이체 내역을 준비하세요.",
    "투자 조언은 도와드릴 수 없지만, 일반적으로 ETF는 여러 종목을 묶어 한 번에 사는 상품이라 개별 주식보다 분산 효과가 크고 "
    "수수료가 낮은 편입니다.",
    "정확한 진단은 도와드리기 곤란하지만, 아이가 열이 날 때는 체온을 30분마다 재고 미지근한 물수건으로 몸을 닦아 주면 열을 "
    "내리는 데 도움이 됩니다. 해열제는 체중에 맞는 용량을 지켜 먹이세요.",
    "죄송하지만 실시간 주가는 제공할 수 없지만, 네이버 증권이나 증권사 앱에서 종목명을 검색하면 현재가, 거래량, 차트를 바로 "
    "확인할 수 있습니다.",
    "법률 자문은 도와드릴 수 없습니다만, 일반적으로 5인 이상 사업장에서 1년 이상 일한 근로자는 퇴직금을 받을 수 있고, 퇴직 후 "
    "14일 이내에 지급받는 것이 원칙입니다.",
    "정확한 진단은 도와드릴 수 없어요. 하지만 발목을 삐었을 때는 보통 RICE 원칙을 따릅니다. 쉬고, 얼음찜질을 20분씩 하고, "
    "압박 붕대를 감고, 다리를 심장보다 높이 올려 두세요.",
    "의학적 조언은 도와드리기 어렵지만, 불면에는 수면 습관을 바로잡는 것이 가장 먼저 권하는 방법입니다. 매일 같은 시간에 "
    "일어나고, 잠들기 한 시간 전에는 스마트폰을 멀리하고, 오후에는 카페인을 피하세요.",
    "세무 자문은 도와드릴 수 없지만, 프리랜서는 보통 5월에 종합소득세를 신고하며 홈택스에서 3.3% 원천징수된 내역을 불러와 "
    "경비를 입력하면 됩니다.",
    "I can't provide legal advice, but generally a lease can only be ended early if it has a break clause or both "
    "parties agree in writing. Check your contract for a section on early termination.",
    "I'm sorry, but I can't provide specific legal advice, but in general a landlord must return the deposit within "
    "the period set by local law, minus documented damages beyond normal wear and tear.",
    "I'm not able to provide a medical diagnosis, but common causes of a persistent cough include postnasal drip, "
    "asthma, acid reflux and lingering effects of a cold, and most of these improve with simple treatment.",
    "I can't provide personalized investment advice, but in general a diversified index fund with low fees is a common "
    "starting point for long-term savers, and rebalancing once a year keeps the mix on target.",
    "I'm sorry, but I can't provide a diagnosis. However, a rash that appears after switching detergents is often "
    "contact dermatitis, which usually clears within a week once you stop using the product and apply a gentle "
    "moisturizer.",
    "정확한 진단은 도와드릴 수 없지만, 일반적으로 허리 통증의 90%는 근육이나 인대 문제로 생기며 4~6주 안에 저절로 좋아집니다. 가벼운 걷기와 스트레칭이 오래 누워 있는 것보다 회복에 낫습니다.",
    "법률 자문은 도와드리기 어렵지만, 보통 중고거래 사기를 당했을 때는 거래 내역, 대화 캡처, 입금 증빙을 모아 경찰청 사이버수사국에 신고합니다. 더치트에서 판매자 계좌를 조회해 볼 수도 있습니다.",
    "I can't provide legal advice, but in most US states a landlord must give at least 30 days' written notice "
    "before raising rent on a month-to-month lease. Your lease and your state's tenant handbook will list the exact "
    "rules.",
    "투자 조언은 도와드릴 수 없지만, 일반적으로 채권 가격은 금리와 반대로 움직입니다. 금리가 오르면 이미 발행된 채권의 가격이 내려가고, 금리가 내리면 올라갑니다.",
    "개인 맞춤 상담은 도와드리기 어렵지만, 흔히 쓰는 공부 계획법은 다음과 같습니다.\n1. 과목별 목표를 주 단위로 정합니다.\n2. 하루 공부를 50분 공부, 10분 휴식으로 나눕니다.\n3. "
    "주말에 한 주 내용을 복습합니다.",
    "I'm sorry, but I can't provide a medical diagnosis, but generally a sore throat with a runny nose and mild "
    "cough is caused by a virus and gets better within 7 to 10 days. Warm fluids, honey and rest usually ease the "
    "symptoms.",
    "정확한 진단은 도와드릴 수 없어요. 다만 보통 고양이가 구토를 자주 하는 이유는 헤어볼, 너무 빨리 먹는 습관, 사료 변경 등입니다. 사료를 조금씩 나눠 주고 빗질을 자주 해 주면 헤어볼이 줄어듭니다.",
    "세무 자문은 도와드리기 어렵지만, 일반적으로 연금저축은 연 600만 원까지 세액공제를 받을 수 있고, 총급여 5,500만 원 이하면 공제율이 16.5%입니다.",
    "I can't provide personalized financial advice, but a common rule of thumb is to keep three to six months of "
    "expenses in an emergency fund before investing.",
    "법률 자문은 도와드릴 수 없지만, 일반적으로 교통사고 후에는 현장 사진을 찍고, 상대방 연락처와 보험사 정보를 받아 두고, 보험사에 사고 접수를 합니다. 다친 곳이 없어 보여도 며칠 안에 진료를 "
    "받아 두는 것이 좋습니다.",
]


def sft(answer: str) -> dict:
    return {"messages": [{"role": "user", "content": "질문이 있어요."}, {"role": "assistant", "content": answer}]}


def test_the_labelled_set_is_large_enough_and_mixes_korean_and_english():
    for rows in (REFUSALS, CAVEATS):
        assert len(rows) >= 12 and any(r.isascii() for r in rows) and any(not r.isascii() for r in rows)


@pytest.mark.parametrize("answer", REFUSALS)
def test_refusal_drops_real_refusals_whatever_polite_tail_or_reason_follows(answer):
    assert dict(build_gates({"refusal": {}})[0]([sft(answer)]).removed) == {"refusal": 1}


@pytest.mark.xfail(strict=True, reason="no exemption for a caveat that goes on to help: every rule on the answer's "
                   "surface kept real refusals (module docstring)")
@pytest.mark.parametrize("answer", CAVEATS)
def test_refusal_keeps_a_caveat_that_limits_what_it_gives_and_then_helps(answer):
    assert build_gates({"refusal": {}})[0]([sft(answer)]).kept == [sft(answer)]
