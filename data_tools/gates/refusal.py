"""Refusals and assistant boilerplate: rows that teach a model to decline or to talk about being an AI.

Refusal patterns are searched in the opening of each answer (`head_chars`): a refusal opens the answer,
while a helpful answer may well say "...할 수 없습니다" further down. Boilerplate (identity talk that leaks
from a teacher model, knowledge-cutoff disclaimers) is searched in the whole answer. Matching ignores case.

A decline the answer writes for someone else is not the model refusing the user (`quoted`, `written_decline`):
one in quotation marks, one after a letter's salutation or heading ("김 팀장님께,", "제목: ..."), one in a line
that a speaker's label opens ("점원: 죄송하지만 ..."), and, when the user asked for such a text (an email, a letter,
a message, a reply, a role-play), one inside a later line of the answer. A model that will not write says so
first: in its first line, or at the head of a paragraph after an explanation.

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
from data_tools.gates.base import filter_rows, row_turns, selected_roles

REFUSAL_PATTERNS = (
    # 죄송하지만 ... 도와드릴/답변할/제공할 수 없습니다: the assistant declining to help. Not "...알 수 없습니다" (honest
    # uncertainty), not "참석할 수 없을 것 같습니다" (an apology the user asked to have written), not "없었다" (a story)
    r"죄송(?:하지만|합니다|해요|하나|스럽지만)[^\n]{0,80}?(?:도와|도움을|답변(?:을|해)?|답해|응해|제공해|안내해|알려|"
    r"말씀(?:해)?|처리해|작성해|써|만들어)\s*드릴\s*수\s*(?:가\s*)?없(?!었)",
    # 그런 이메일은 작성해 드릴 수 없습니다; not "작성해 드릴 수 없을 것 같습니다" (an apology asked for)
    r"(?:작성해|써|만들어)\s*드릴\s*수\s*(?:가\s*)?없(?!었|을\s*것\s*같)",
    r"죄송(?:하지만|합니다|해요|하나|스럽지만)[^\n]{0,80}?(?:답변|제공|수행|처리|작성|안내|공유|생성|응답)할\s*수\s*"
    r"(?:가\s*)?없(?!었|을\s*것\s*같)",
    r"죄송(?:하지만|합니다|해요|하나|스럽지만)[^\n]{0,20}?(?:그건|그것은|그런\s*(?:요청|일)은|이\s*요청은)\s*(?:제가\s*)?"
    r"할\s*수\s*(?:가\s*)?없(?!었)",
    r"도와\s*드릴\s*수\s*(?:가\s*)?없(?!었)|도움을\s*드릴\s*수\s*(?:가\s*)?없(?!었)",
    # 해당 요청은 도와드리기 어렵습니다, 어려워요 (polite, and as common as "할 수 없습니다"); not "이 문제는 풀기 어렵습니다"
    # ...; and not "도와드리기 어렵지 않아요" (glad to)
    r"(?:답변(?:을|해)?|도와|도움을|안내해|제공해|알려)\s*드리기\s*(?:가\s*)?(?:어렵(?!지\s*않)|어려[워울]|곤란(?!하지\s*않))",
    r"들어\s*드릴\s*수\s*(?:가\s*)?없(?!었)",  # 그 요청은 들어드릴 수 없습니다; not a story's "들어 드릴 수 없었다"
    # 답변할 수 없습니다 / 응답해 드릴 수 없습니다; not "서버가 요청에 응답할 수 없는 상태" or "대답할 수 없었다"
    r"(?:답변(?:해\s*)?(?:드릴|할)|(?:응답|대답)(?:해\s*)?드릴)\s*수\s*(?:가\s*)?없(?!었)",
    # 요청에는 응답할 수 없습니다; not "서버가 요청에 응답할 수 없는 상태"
    r"(?:요청|질문)(?:에는|에|은|는)\s*(?:응할|응해\s*드릴|(?:응답|대답|답)(?:할|해\s*드릴))\s*수\s*(?:가\s*)?없(?![는었던])",
    r"\bI(?:'m|’m| am) (?:sorry|afraid)\b[^\n]{0,60}?\b(?:can(?:no|'|’)t|unable|won(?:'|’)t|not able)\b",
    r"\bI can(?:no|'|’)t (?:help|assist|comply|provide|fulfill)\b",
    r"\bI(?:'m|’m| am) (?:unable|not able) to (?:help|assist|comply|provide|fulfill)\b",
)

# a whole line that opens a letter: "김 팀장님께,", "안녕하세요, 김 팀장님.", "Dear Ms. Kim,", "제목: 일정 안내"
LETTER_OPENING = re.compile(r"(?:[^\n]{0,20}(?:님|귀하)(?:께|에게)?|[^\n]{1,20}에게|(?:dear|to whom)\b[^\n]{0,40})\s*[,，.!:]?|"
                            r"(?:제목|수신|받는\s*사람|subject|to)\s*[:：][^\n]*", re.IGNORECASE)
# a speaker's label opening a line: "점원:", "B:"; not the answer's own ("답변:", "Assistant:", "A:")
SPEAKER = re.compile(r"\W*(?!(?:a|ai|assistant|answer|response|model|bot|답변|응답|답|어시스턴트|챗봇|모델)\W*[:：])"
                     r"[^\W\d_][^\n:：]{0,11}[:：]", re.IGNORECASE)
# the user asks for a text in someone's voice: these nouns alone, or these nouns with a verb of writing
WRITING_REQUEST = re.compile(
    r"답장|회신|답신|역할극|롤플레이|상황극|역할을\s*맡|대본|"
    r"(?:이메일|메일|편지|문자(?!열)|메시지|메세지|카톡|사과문|거절|안내문|공지문?|초대장|연설문?|축사|대화문|초안)"
    r"[^\n]{0,30}?(?:써|쓰|작성|만들|다듬|고쳐|보내|보낼)|"
    r"\b(?:write|draft|compose|reply|respond)\b[^\n]{0,40}?\b(?:e-?mails?|letters?|messages?|text messages?|"
    r"replies|reply|notes?|memos?|dialogues?|scripts?)\b|\brole-?play", re.IGNORECASE)

_AS_AN_AI = r"(?:AI|인공지능)\s*(?:언어\s*)?모델(?:로서(?!의)|로써(?!의)|이기\s*때문에|이라서|이므로)"
# what the model says of itself after "AI 언어 모델로서": first person, or what an AI is said to lack
# 전 for 저는, not the prefix "all" (전 세계, 전 국민)
_ALL_OF = r"(?!\s*(?:세계|국민|국토|지구|인류|과정|분야|영역|지역|생애|세대|구간|범위|재산|직원|학년))"
_SELF_TALK = (r"(?<![가-힣])(?:저는|제가|저의|저에게|저도|제|전" + _ALL_OF + r")(?![가-힣])"
              r"|개인적|감정|느끼|느낄|취향|접근할\s*수\s*없")

BOILERPLATE_PATTERNS = (
    r"\bas an ai(?: language)? model\b",
    r"\bas a (?:large )?language model\b",
    # the model speaking of itself as an AI: first person before it (저는 OpenAI가 만든 AI 모델로서), or a sentence
    # it opens that is about itself (AI 언어 모델로서 저는 ..., AI 모델이기 때문에 감정이 없습니다); not a sentence about AI
    # models ("AI 모델로서의 ChatGPT는", "인공지능 모델이기 때문에 대량의 데이터가 필요합니다")
    r"(?:저는|제가)(?:\s+[^\s.!?\n]*[^\s.!?\n는은]){0,4}?\s*" + _AS_AN_AI,  # no other topic between: "제가 말한 GPT-4는"
    r"(?:\A|(?<=[.!?\n,]))\s*" + _AS_AN_AI + r"(?=[^.!?\n]{0,200}?(?:" + _SELF_TALK + r"))",  # bounded: linear
    r"(?<![가-힣])(?:저는|전)\s*(?:(?:AI|인공지능)\s*(?:언어\s*)?(?:모델|챗봇|어시스턴트)?|언어\s*모델|챗봇)\s*"
    r"(?:이?라(?:서|(?=[\s,]))|이기\s*때문에|이므로|로서|로써)",  # 저는 AI라서, 저는 AI 언어 모델이라
    r"(?:저는|나는)\s*(?:ChatGPT|GPT-?\d\w*|Claude|Gemini|Bard)(?:입니다|이에요|예요|라고|이며|로서)",  # a teacher's name
    r"\bI(?:'m|’m| am) (?:ChatGPT|Claude|Gemini|an AI (?:assistant|model) (?:developed|created|trained) by)\b",
    r"(?:제|저의)\s*(?:지식|학습\s*데이터|훈련\s*데이터)[^\n]{0,20}\d{4}년[^\n]{0,20}까지",  # knowledge cutoff
    r"\bmy (?:knowledge|training data) (?:cutoff|cut-off|only goes|is current|extends)\b",
)


_CLOSING = {"'": "'’", "‘": "’'"}  # a single quote opened with ' or ‘, closed with either form


def _apostrophe(line: str, i: int) -> bool:
    """Whether the ' or ’ at line[i] is an English apostrophe (I'm, can’t): between two Latin letters. A closing
    quote sits between a Hangul letter and a particle ('도와드릴 수 없습니다'는): that one is a quote."""
    return 0 < i < len(line) - 1 and line[i - 1].isascii() and line[i - 1].isalpha() and line[i + 1].isascii() \
        and line[i + 1].isalpha()


def _in_single_quotes(before: str) -> bool:
    """Whether the end of `before` (a line up to a match) lies inside '...' or ‘...’: a quote opened at the line's
    start, after a space or an opening bracket or colon, and not closed since; an apostrophe neither opens nor
    closes one."""
    opened = ""
    for i, ch in enumerate(before):
        if opened and ch in _CLOSING[opened] and not _apostrophe(before, i):
            opened = ""
        elif not opened and ch in _CLOSING and (i == 0 or before[i - 1].isspace() or before[i - 1] in "([{:：「『“\""):
            opened = ch
    return bool(opened)


def quoted(text: str, start: int) -> bool:
    """Whether text[start] lies in a quotation opened earlier on its line ("'I'm sorry, but I can't come'로
    번역됩니다", 점원은 "손님, 죄송하지만 ..."이라고 말했다, "‘죄송하지만 답변드릴 수 없습니다’는 정중한 거절 표현입니다"): a
    refusal quoted, not made."""
    before = text[text.rfind("\n", 0, start) + 1 : start]
    end = text.find("\n", start)
    after = text[start : end if end >= 0 else len(text)]
    # a single quote counts when it closes later on the line: "'90년대 음악 파일은 ..." opens one that never closes
    single = _in_single_quotes(before) and any(q in after for q in "'’")
    return (before.endswith(("'", "‘")) or single or before.count('"') % 2 == 1
            or any(before.count(a) > before.count(b) for a, b in ("“”", "「」", "『』")))


def written_decline(answer: str, start: int, request: str) -> bool:
    """Whether a decline at answer[start] is a line of a text the answer writes (the email declining a request
    that the user asked for) rather than the model declining the user: it follows a letter's opening line, a
    speaker's label opens its line, or the user asked for such a text and the decline sits inside a later line
    (a model that will not write says so first: in its first line or at the head of a paragraph)."""
    earlier, _, line = answer[:start].rpartition("\n")
    if any(LETTER_OPENING.fullmatch(text.strip()) for text in earlier.split("\n")) or SPEAKER.match(line):
        return True
    return bool(earlier.strip() and line.strip() and WRITING_REQUEST.search(request))


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
        turns = row_turns(row)
        roles, request = selected_roles(turns, self.fields), ""
        for turn in turns:
            text = answer_and_thinking(turn)[0]
            if turn.get("role") in roles:
                found = self._found(text, request if turn.get("role") == "assistant" else "")
                if found:
                    return found
            if turn.get("role") == "user":
                request = text  # what the next answer replies to
        return None

    def _found(self, answer: str, request: str) -> Verdict:
        for reason, patterns, text in (("refusal", self._refusals, answer[: self.head_chars]),
                                       ("boilerplate", self._boilerplate, answer)):
            for pattern in patterns:
                for m in pattern.finditer(text):
                    if not quoted(text, m.start()) and not (reason == "refusal"
                                                            and written_decline(answer, m.start(), request)):
                        return reason, answer[max(m.start() - 20, 0) :]
        return None

    def __call__(self, rows: list[dict]) -> GateResult:
        return filter_rows(rows, self.verdict)
