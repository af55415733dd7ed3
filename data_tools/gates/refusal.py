"""Refusals and assistant boilerplate: rows that teach a model to decline or to talk about being an AI.

Refusal patterns are searched in the opening of each answer (`head_chars`): a refusal opens the answer,
while a helpful answer may well say "...할 수 없습니다" further down. Boilerplate (identity talk that leaks
from a teacher model, knowledge-cutoff disclaimers) is searched in the whole answer. Matching ignores case.

    >>> gate = RefusalGate()
    >>> gate.verdict({"messages": [{"role": "assistant", "content": "죄송하지만 그 요청은 도와드릴 수 없습니다."}]})[0]
    'refusal'
    >>> gate.verdict({"messages": [{"role": "assistant", "content": "물론이죠! 김치찌개는 이렇게 끓입니다."}]}) is None
    True
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import ClassVar

from data_tools.gates.base import FIELDS, GateResult, Verdict, answer_and_thinking, check_choice, check_range
from data_tools.gates.base import filter_rows, selected_turns

REFUSAL_PATTERNS = (
    # 죄송하지만 ... 도와드릴/답변할/제공할 수 없습니다: the assistant declining to help. Not "...알 수 없습니다" (honest
    # uncertainty), not "참석할 수 없을 것 같습니다" (an apology the user asked to have written), not "없었다" (a story)
    r"죄송(?:하지만|합니다|해요|하나|스럽지만)[^\n]{0,80}?(?:도와|도움을|답변(?:을|해)?|답해|응해|제공해|안내해|알려|"
    r"말씀(?:해)?|처리해)\s*드릴\s*수\s*(?:가\s*)?없(?!었)",
    r"죄송(?:하지만|합니다|해요|하나|스럽지만)[^\n]{0,80}?(?:답변|제공|수행|처리|작성|안내|공유|생성|응답)할\s*수\s*"
    r"(?:가\s*)?없(?!었|을\s*것\s*같)",
    r"죄송(?:하지만|합니다|해요|하나|스럽지만)[^\n]{0,20}?(?:그건|그것은|그런\s*(?:요청|일)은|이\s*요청은)\s*(?:제가\s*)?"
    r"할\s*수\s*(?:가\s*)?없(?!었)",
    r"도와\s*드릴\s*수\s*(?:가\s*)?없(?!었)|도움을\s*드릴\s*수\s*(?:가\s*)?없(?!었)",
    r"답변(?:을|해)?\s*드리기\s*(?:가\s*)?(?:어렵|곤란)",
    # 답변할 수 없습니다 / 응답해 드릴 수 없습니다; not "서버가 요청에 응답할 수 없는 상태" or "대답할 수 없었다"
    r"(?:답변(?:해\s*)?(?:드릴|할)|(?:응답|대답)(?:해\s*)?드릴)\s*수\s*(?:가\s*)?없(?!었)",
    r"(?:요청|질문)(?:에는|에|은|는)\s*(?:응할|응해\s*드릴|답할|답해\s*드릴)\s*수\s*(?:가\s*)?없",
    r"\bI(?:'m|’m| am) (?:sorry|afraid)\b[^\n]{0,60}?\b(?:can(?:no|'|’)t|unable|won(?:'|’)t|not able)\b",
    r"\bI can(?:no|'|’)t (?:help|assist|comply|provide|fulfill)\b",
    r"\bI(?:'m|’m| am) (?:unable|not able) to (?:help|assist|comply|provide|fulfill)\b",
)

QUOTES = "'\"‘“「『"

BOILERPLATE_PATTERNS = (
    r"\bas an ai(?: language)? model\b",
    r"\bas a (?:large )?language model\b",
    r"(?:AI|인공지능)\s*(?:언어\s*)?모델(?:로서|로써|이기\s*때문에|이라서|이므로)",  # AI 언어 모델로서
    r"(?:저는|전)\s*(?:AI|인공지능|언어\s*모델|챗봇)(?:이라서|라서|이기\s*때문에|이므로|로서|로써)",  # 저는 AI라서
    r"(?:저는|나는)\s*(?:ChatGPT|GPT-?\d\w*|Claude|Gemini|Bard)(?:입니다|이에요|예요|라고|이며|로서)",  # a teacher's name
    r"\bI(?:'m|’m| am) (?:ChatGPT|Claude|Gemini|an AI (?:assistant|model) (?:developed|created|trained) by)\b",
    r"(?:제|저의)\s*(?:지식|학습\s*데이터|훈련\s*데이터)[^\n]{0,20}\d{4}년[^\n]{0,20}까지",  # knowledge cutoff
    r"\bmy (?:knowledge|training data) (?:cutoff|cut-off|only goes|is current|extends)\b",
)


def _compile(patterns: list[str] | tuple[str, ...], key: str) -> list[re.Pattern]:
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern, re.IGNORECASE))
        except re.error as e:
            raise ValueError(f"gate 'refusal': {key} has a bad regex {pattern!r}: {e}") from None
    return compiled


@dataclass
class RefusalGate:
    """Drop rows with a refusal in an answer's opening or boilerplate anywhere in an answer (the thinking is
    not read: a model may weigh refusing and then answer)."""

    extra_patterns: list[str] = field(default_factory=list)  # more refusals, searched in the opening
    extra_boilerplate: list[str] = field(default_factory=list)  # more boilerplate, searched everywhere
    head_chars: int = 200
    fields: str = "assistant"
    name: ClassVar[str] = "refusal"

    def __post_init__(self) -> None:
        check_range(self.name, "head_chars", self.head_chars, 1)
        check_choice(self.name, "fields", self.fields, FIELDS)
        self._refusals = _compile([*REFUSAL_PATTERNS, *self.extra_patterns], "extra_patterns")
        self._boilerplate = _compile([*BOILERPLATE_PATTERNS, *self.extra_boilerplate], "extra_boilerplate")

    def verdict(self, row: dict) -> Verdict:
        for turn in selected_turns(row, self.fields):
            answer = answer_and_thinking(turn)[0]
            for reason, patterns, text in (("refusal", self._refusals, answer[: self.head_chars]),
                                           ("boilerplate", self._boilerplate, answer)):
                for pattern in patterns:
                    # a refusal quoted in the answer ("'I'm sorry, but I can't come'로 번역됩니다") is not one
                    found = next((m for m in pattern.finditer(text)
                                  if not m.start() or text[m.start() - 1] not in QUOTES), None)
                    if found:
                        return reason, answer[max(found.start() - 20, 0) :]
        return None

    def __call__(self, rows: list[dict]) -> GateResult:
        return filter_rows(rows, self.verdict)
