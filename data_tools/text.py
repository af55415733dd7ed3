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


def hangul_share_of_cjk(text: str) -> float | None:
    """Hangul letters as a share of the Hangul, Han and kana letters, Latin not counted; None for text with none
    of them (nothing to judge). Chinese or Japanese written instead of Korean lowers it; English does not: a Korean
    request naming useEffect, or an English email a Korean answer translates, is still Korean.

        >>> hangul_share_of_cjk("Dear Ms. Kim, 회의는 3시입니다."), hangul_share_of_cjk("首都是首尔"), hangul_share_of_cjk("Hi")
        (1.0, 0.0, None)
    """
    counts = script_counts(text)
    cjk = counts["hangul"] + counts["han"] + counts["kana"]
    return counts["hangul"] / cjk if cjk else None


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


# A fence line: ``` or ~~~ (three or more), then an info string whose first word is the language. Any indent: a
# model indents the fences of a code block inside a list item. Matched against one line at a time: linear.
_FENCE = re.compile(r"[ \t]*(`{3,}|~{3,})[ \t]*([^`\n]*)")
# What a fence tagged so (or untagged) holds is read as prose unless its lines look like code: models wrap a
# whole answer, a Markdown document or an email draft in such fences, and Chinese or a loop must not hide there.
_PROSE_TAGS = frozenset({"", "markdown", "md", "text", "txt", "plain", "plaintext"})
# A line of code: a statement or call (x = 1, print(x), a;, {, }), a tag (<div>), a prompt ($ ls, >>> x), a comment
# opener, a JSON key, or a keyword that opens a line of code. Korean and Chinese prose has none of these; English
# prose has the weak ones (an "=" in arithmetic, "price(500 won)", a line opening with "if"), so a line that only
# has those and reads as a sentence (reads_as_prose) is prose.
_SURE_CODE_ANYWHERE = r"[{}]|;\s*$|</?[A-Za-z][^>\n]{0,80}>"
_SURE_CODE_AT_START = (r"\s*(?:\$ |>>> |#!|//|/\*|--\s|\"[^\"\n]*\"\s*:|"  # a JSON key
                       r"[A-Za-z_][\w.\[\]'\"]*\s*[-+*/%|&]?=(?!=)|"  # an assignment or config line: x = 1, key = value
                       r"(?:def|elif|const|var|SELECT|INSERT|UPDATE|CREATE|pip|npm|git|cd|sudo|echo)\b)")
_SURE_CODE = re.compile(_SURE_CODE_ANYWHERE), re.compile(_SURE_CODE_AT_START)
# keywords that open a line of code, and an English sentence too ("if so, ...")
_KEYWORDS = "class|import|from|return|for|while|if|else|try|except|with|function|let|public|private|package"
_CODE_LINE = re.compile(rf"{_SURE_CODE_ANYWHERE}|[;=]|[A-Za-z0-9_]\(|^{_SURE_CODE_AT_START}|^\s*(?:{_KEYWORDS})\b")
_OPENING_KEYWORD = re.compile(rf"\s*(?:{_KEYWORDS}|assert|raise|yield|await|del)\b")
# what reads_as_prose leaves out of a line: string literals (the words of print("...")), a trailing comment, and
# brackets but a call's, so that "연필(800원)까지" is a word, a number and a word
_NOT_READ = re.compile(r"\"[^\"\n]*\"|'(?<![^\W\d_]')[^'\n]*'(?![^\W\d_])|\s(?:#|//)\s.*|\((?<![A-Za-z0-9_]\()|\)")
_AROUND_A_WORD = "()[]\"'“”‘’,.:;!?%$₩€£¥+-−–—"  # brackets, quotes and punctuation a word or number is set in
_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")  # "apples", "don't", "개가"
_NUMBER = re.compile(r"\d[\d,.:/]*%?[^\W\d_]*")  # "1,500", "1/3", "50%", "500원입니다", "3kg"
_OPERATORS = frozenset("=+-−×÷*/")  # of arithmetic, which prose writes too
_CODE_SHARE = 1 / 3  # a block is code when at least this share of its lines look like code
_INLINE_CODE = re.compile(r"`[^`\n]+`")
# characters of code in an `inline span`: a span of Hangul, Han or kana without them is a phrase set in code font
_CODE_CHARS = re.compile(r"[(){}\[\]=<>;\"'\\/_*%$#@|+^&~]")
# display math, \( \) math, $...$ holding a TeX command, sub/superscript or equation, and bare TeX commands
_MATH = re.compile(r"\$\$.*?\$\$|\\\[.*?\\\]|\\\(.*?\\\)|\$(?=[^$\n]*[\\^_{}=])[^$\n]+\$|\\[A-Za-z]+", re.S)
# unit symbols after a number: "1,000mL", "3 kg", "120(km)", "5m²", "60km/h" (Korean writes them in Latin)
_UNIT = re.compile(r"(?<=\d)\s*\(?\s*(?:km/h|m/s|kWh|kcal|cal|mm|cm|km|m|mg|kg|g|mL|ml|dL|L|l|t|ha|kW|W|V|A|Hz|"
                   r"GB|MB|KB|TB|min|h|s)(?:[²³]|\^?[23])?\s*\)?(?![A-Za-z])")


def reads_as_prose(line: str) -> bool:
    """Whether a line is a sentence: at least three words, twice as many as the tokens that are neither words,
    numbers nor arithmetic ("x[0]", "==", "f(a,"), outside string literals and a trailing comment. A line opening
    with a keyword must also end as a sentence does (".", "!", "?"): "for item in items:" and "import numpy as np"
    are code.

        >>> reads_as_prose("Three apples cost 1,500 won, so one apple costs 1,500 / 3 = 500 won.")
        True
        >>> reads_as_prose('print("Three apples cost 1,500 won.")'), reads_as_prose("for item in the_cart.items:")
        (False, False)
    """
    words = others = 0
    for token in _NOT_READ.sub(" ", line).split():
        core = token.strip(_AROUND_A_WORD)
        if _WORD.fullmatch(core):
            words += 1
        elif core and token not in _OPERATORS and not _NUMBER.fullmatch(core):
            others += 1
    sentence = words >= 3 and words >= 2 * others
    return sentence and (not _OPENING_KEYWORD.match(line) or line.rstrip().endswith((".", "!", "?")))


def _is_code_line(line: str) -> bool:
    """Whether a line looks like code: it has a mark of code, and one that no sentence has (_SURE_CODE), or it
    neither reads as a sentence nor is bare arithmetic without a letter ("1,500 / 3 = 500")."""
    if not _CODE_LINE.search(line):
        return False
    sure = _SURE_CODE[0].search(line) or _SURE_CODE[1].match(line)
    arithmetic = not any(map(str.isalpha, line))
    return bool(sure) or not (arithmetic or reads_as_prose(line))


def _looks_like_code(lines: list[str]) -> bool:
    """Whether a fenced block's lines are code: at least a third of its non-blank lines look like code."""
    lines = [line for line in lines if line.strip()]
    return bool(lines) and sum(map(_is_code_line, lines)) >= _CODE_SHARE * len(lines)


def _longest_fences_after(lines: list[str]) -> dict[str, list[int]]:
    """For each fence character, the length of the longest bare fence line (``` alone) at each line or after it:
    an opening fence with none as long after it is unclosed, known without a search to the end (linear time
    however many stray fences an answer holds)."""
    longest = {c: [0] * (len(lines) + 1) for c in "`~"}
    for i in range(len(lines) - 1, -1, -1):
        bare = lines[i].strip()
        for c, after in longest.items():
            after[i] = max(len(bare) if len(bare) >= 3 and not bare.strip(c) else 0, after[i + 1])
    return longest


def _closes(line: str, fence: str) -> bool:
    """Whether `line` closes a block opened by `fence`: the same character, at least as many, nothing else."""
    bare = line.strip()
    return bare.startswith(fence) and not bare.strip(fence[0])


_TEXT, _FENCED_PROSE, _CODE = "text", "fenced prose", "code"  # the kinds of piece _fenced_blocks cuts text into


def fence_pieces(text: str) -> list[tuple[str, str | None]]:
    """The text in pieces, in order: (text outside fences, None) and, for each closed fenced block, (its body without
    the fence lines, its tag: the info string's first word, lower-cased; "" untagged). An unclosed fence is no block:
    a finished answer closes its fences, and what follows a stray one is the answer's text."""
    lines = text.splitlines(keepends=True)
    longest = _longest_fences_after(lines)
    pieces: list[tuple[str, str | None]] = []
    plain: list[str] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.fullmatch(lines[i].rstrip("\r\n"))
        fence = opening.group(1) if opening else ""
        if not opening or longest[fence[0]][i + 1] < len(fence):  # no fence, or one never closed
            plain.append(lines[i])
            i += 1
            continue
        close = next(j for j in range(i + 1, len(lines)) if _closes(lines[j], fence))
        words = opening.group(2).split()
        pieces += [("".join(plain), None), ("".join(lines[i + 1 : close]), words[0].lower() if words else "")]
        plain, i = [], close + 1
    return pieces + [("".join(plain), None)]


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """fence_pieces with each piece's kind: text outside fences is _TEXT; a fenced block is _CODE unless it is
    untagged or tagged as text or Markdown and does not look like code (_FENCED_PROSE)."""
    def kind(piece: str, tag: str | None) -> str:
        if tag is None:
            return _TEXT
        prose_like = tag in _PROSE_TAGS and not _looks_like_code(piece.splitlines(keepends=True))
        return _FENCED_PROSE if prose_like else _CODE

    return [(piece, kind(piece, tag)) for piece, tag in fence_pieces(text)]


def _inline(span: re.Match) -> str:
    """An `inline span` as code (a space) or, when it is a phrase in Hangul, Han or kana, as its text."""
    inside = span.group(0)[1:-1]
    phrase = any(script_of(ch) not in (None, "latin") for ch in inside) and not _CODE_CHARS.search(inside)
    return inside if phrase else " "


def split_code(text: str) -> tuple[str, str]:
    """(the text without code, the code): fenced code blocks and `inline code` out of the text, the blocks into the
    code. A Korean answer with a Python snippet is Korean; a Chinese answer in a ```markdown fence is Chinese."""
    pieces = _fenced_blocks(text)
    without = "\n".join(piece for piece, kind in pieces if kind != _CODE)
    return _INLINE_CODE.sub(_inline, without), "\n".join(piece for piece, kind in pieces if kind == _CODE)


def strip_code(text: str) -> str:
    """Text without fenced code blocks and `inline code` (split_code)."""
    return split_code(text)[0]


def prose(text: str) -> str:
    """The prose of an answer: without code, TeX math and unit symbols after numbers, whose Latin letters say
    nothing about its language.

        >>> prose("넓이는 $\\frac{1}{2} \\times 6 \\times 4 = 12$ 입니다. `area = 12`")
        '넓이는   입니다.  '
        >>> prose("1L는 1,000mL이므로 3 kg")
        '1 는 1,000 이므로 3 '
    """
    return _without_math_and_units(strip_code(text))


def _without_math_and_units(text: str) -> str:
    return _UNIT.sub(" ", _MATH.sub(" ", text))


def prose_outside_and_inside_fences(text: str) -> tuple[str, str]:
    """(the prose outside fenced blocks, the prose read out of untagged, text or Markdown fences), each as prose()
    reads it: a language gate judges the answer's own words and a text it sets in a fence (an English email it
    translates, a quote) each by its own measure.

        >>> outside, inside = prose_outside_and_inside_fences("번역:\\n```\\nDear Ms. Kim,\\n```\\n```py\\nx = 1\\n```")
        >>> outside.strip(), inside.strip()
        ('번역:', 'Dear Ms. Kim,')
    """
    pieces = _fenced_blocks(text)
    parts = ("\n".join(piece for piece, k in pieces if k == kind) for kind in (_TEXT, _FENCED_PROSE))
    outside, inside = (_without_math_and_units(_INLINE_CODE.sub(_inline, part)) for part in parts)
    return outside, inside


def repeated_ngram_share(units: list, n: int) -> float:
    """Share of the n-grams of `units` (syllables, morphemes, words) that repeat an earlier one; 0.0 when there
    are fewer than n units. A degenerate loop scores near 1, ordinary prose near 0."""
    grams = [tuple(units[i : i + n]) for i in range(len(units) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0
