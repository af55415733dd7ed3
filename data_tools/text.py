"""Korean text basics shared by every data step, reward and evaluation (KOREAN.md).

Normalise to NFC before anything else; count scripts to spot language confusion (Chinese characters or
Japanese kana leaking into Korean text, a known failure of Qwen3 adapted to Korean).

    >>> script_counts("서울은 맑음, 北京은 흐림")["han"]
    2
    >>> round(hangul_share("안녕 hello"), 2)
    0.29
    >>> round(repeated_ngram_share(list("좋아요좋아요좋아요"), 3), 2)
    0.57
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def nfc(text: str) -> str:
    """NFC-normalise: "한" as one code point, never three conjoining jamo (macOS and some scrapes send NFD)."""
    return unicodedata.normalize("NFC", text)


def script_of(ch: str) -> str | None:
    """The script of one letter: hangul, han, kana, latin, other; None for digits, spaces and punctuation."""
    code = ord(ch)
    if 0xAC00 <= code <= 0xD7A3 or 0x1100 <= code <= 0x11FF or 0x3130 <= code <= 0x318F:
        return "hangul"
    if 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF or 0x20000 <= code <= 0x2FA1F:
        return "han"  # CJK unified ideographs, extension A, compatibility, and the supplementary planes
    if (0x3040 <= code <= 0x30FF and code not in (0x30FB, 0x30FC)) or 0x31F0 <= code <= 0x31FF or 0xFF66 <= code <= 0xFF9D:
        return "kana"  # not the middle dot "・" nor the long-vowel mark "ー": Korean text uses them as punctuation
    if ch.isalpha():
        return "latin" if ch.isascii() or unicodedata.name(ch, "").startswith("LATIN") else "other"
    return None


def script_counts(text: str) -> Counter:
    """Letters per script in NFC text (digits, spaces and punctuation are not letters)."""
    return Counter(s for s in map(script_of, nfc(text)) if s is not None)


def hangul_share(text: str) -> float:
    """Hangul letters as a share of all letters; 0.0 for text without letters."""
    counts = script_counts(text)
    total = sum(counts.values())
    return counts["hangul"] / total if total else 0.0


def cut_off_thinking(text: str) -> bool:
    """A think block opened and never closed: the completion ended (its token limit) while thinking."""
    return THINK_OPEN in text and THINK_CLOSE not in text


def ends_in_thinking(prompt: str) -> bool:
    """The rendered prompt ends inside a think block: the chat template opened it itself (Qwen3-Thinking-2507 and
    DeepSeek-R1 distills end the generation prompt with "<think>\\n"), so the completion starts mid-thought with no
    <think> of its own, and a completion cut off while thinking would read as an answer.

    Only the prompt's end counts: a user or system message that mentions "<think>" opens nothing.

        >>> ends_in_thinking("<|im_start|>assistant\\n<think>\\n"), ends_in_thinking("<think>\\n\\n</think>\\n\\n")
        (True, False)
        >>> ends_in_thinking("<|im_start|>user\\n<think> 태그가 뭐예요?<|im_end|>\\n<|im_start|>assistant\\n")
        False
    """
    return prompt.rstrip().endswith(THINK_OPEN)


def split_thinking(text: str) -> tuple[str, str]:
    """(thinking, answer): the text inside <think>...</think> and what follows it. No think block: ("", text).
    A think block never closed (a completion cut off while thinking) is all thinking and has no answer: a
    "정답: 12" it was weighing is not the answer.

        >>> split_thinking("<think>정답: 12 인지 확인해 보자. 다시")
        ('정답: 12 인지 확인해 보자. 다시', '')
    """
    if cut_off_thinking(text):
        return text.split(THINK_OPEN, 1)[1].strip(), ""
    if THINK_CLOSE not in text:
        return "", text
    head, _, answer = text.partition(THINK_CLOSE)
    return head.split(THINK_OPEN, 1)[-1].strip(), answer.strip()


_FENCED_CODE = re.compile(r"(```|~~~).*?(?:\1|\Z)", re.S)  # an unclosed fence (cut-off answer) runs to the end
_INLINE_CODE = re.compile(r"`[^`\n]+`")
# display math, \( \) math, $...$ holding a TeX command, sub/superscript or equation, and bare TeX commands
_MATH = re.compile(r"\$\$.*?\$\$|\\\[.*?\\\]|\\\(.*?\\\)|\$(?=[^$\n]*[\\^_{}=])[^$\n]+\$|\\[A-Za-z]+", re.S)
# unit symbols after a number: "1,000mL", "3 kg", "120(km)", "5m²", "60km/h" (Korean writes them in Latin)
_UNIT = re.compile(r"(?<=\d)\s*\(?\s*(?:km/h|m/s|kWh|kcal|cal|mm|cm|km|m|mg|kg|g|mL|ml|dL|L|l|t|ha|kW|W|V|A|Hz|"
                   r"GB|MB|KB|TB|min|h|s)(?:[²³]|\^?[23])?\s*\)?(?![A-Za-z])")


def strip_code(text: str) -> str:
    """Text without fenced code blocks and `inline code`: a Korean answer with a Python snippet is Korean."""
    return _INLINE_CODE.sub(" ", _FENCED_CODE.sub("\n", text))


def prose(text: str) -> str:
    """The prose of an answer: without code, TeX math and unit symbols after numbers, whose Latin letters say
    nothing about its language.

        >>> prose("넓이는 $\\frac{1}{2} \\times 6 \\times 4 = 12$ 입니다. `area = 12`")
        '넓이는   입니다.  '
        >>> prose("1L는 1,000mL이므로 3 kg")
        '1 는 1,000 이므로 3 '
    """
    return _UNIT.sub(" ", _MATH.sub(" ", strip_code(text)))


def repeated_ngram_share(units: list, n: int) -> float:
    """Share of the n-grams of `units` (syllables, morphemes, words) that repeat an earlier one; 0.0 when there
    are fewer than n units. A degenerate loop scores near 1, ordinary prose near 0."""
    grams = [tuple(units[i : i + n]) for i in range(len(units) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0
