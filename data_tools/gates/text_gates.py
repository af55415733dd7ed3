"""Gates that judge each row on its own text: NFC, Hangul share, foreign scripts, length and repetition.

They read the answers by default (`fields="assistant"`; a prompt row, which has none, is judged by its prompt),
without code blocks (`ignore_code=True`), and without the thinking (`include_think=False`: Qwen3 thinks in English
by design, the answer is what must be Korean), except `foreign_script`: Chinese in the thinking trains the model
to think in Chinese, and English thinking has no Chinese characters or kana to count.

    >>> rows = [{"messages": [{"role": "user", "content": "수도는?"}, {"role": "assistant", "content": "서울입니다."}]},
    ...         {"messages": [{"role": "user", "content": "수도는?"}, {"role": "assistant", "content": "首都是首尔。"}]}]
    >>> result = ForeignScriptGate()(rows)
    >>> len(result.kept), dict(result.removed)
    (1, {'more than 0 han ideographs': 1})
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, ClassVar

from data_tools.gates.base import (FIELDS, GateResult, Verdict, answer_and_thinking, check_choice, check_range,
                                   filter_rows, selected_turns, turn_text)
from data_tools.text import (nfc, prose_outside_and_inside_fences, repeated_ngram_share,
                             script_counts, script_of, split_code, strip_code)


def _nfc_everywhere(value: Any) -> Any:
    if isinstance(value, str):
        return nfc(value)
    if isinstance(value, dict):
        return {k: _nfc_everywhere(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nfc_everywhere(v) for v in value]
    return value


# Characters no Korean text holds: U+FFFD is what a byte-level tokenizer decodes from invalid UTF-8 (a Korean
# syllable is three bytes, and a model that emits two of them, or a cut stream, leaves "��"); control characters
# other than tab, \n and \r (C1 ones are the mojibake of UTF-8 read as Latin-1); private-use characters (a font's
# own glyphs, nothing a reader can see).
_BROKEN = (("replacement character U+FFFD", re.compile("\ufffd")),
           ("control character", re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")),
           ("private-use character", re.compile("[\ue000-\uf8ff\U000f0000-\U0010ffff]")))


def broken_characters(text: str) -> tuple[str, int] | None:
    """(what, where) for the first kind of broken character in `text`, else None."""
    for what, pattern in _BROKEN:
        found = pattern.search(text)
        if found:
            return what, found.start()
    return None


@dataclass
class NfcGate:
    """NFC-normalise every string in the row (turns, columns, meta), counting rows changed, and drop rows whose
    turns hold broken characters (`drop_broken`: U+FFFD, control or private-use characters), which no later gate
    would see: they are not letters. Run it first: every later gate compares and counts text that must be in one
    normal form."""

    drop_broken: bool = True
    name: ClassVar[str] = "nfc"

    def __call__(self, rows: list[dict]) -> GateResult:
        result = GateResult()
        for row in rows:
            fixed = _nfc_everywhere(row)
            broken = self._broken(fixed) if self.drop_broken else None
            if broken:
                result.remove(*broken)
            elif fixed != row:
                result.change("nfc")
                result.kept.append(fixed)
            else:
                result.kept.append(row)  # unchanged rows stay the same objects: no copy of a clean dataset
        return result

    @staticmethod
    def _broken(row: dict) -> Verdict:
        for turn in selected_turns(row, "all"):
            text = turn_text(turn)
            found = broken_characters(text)
            if found:
                return found[0], text[max(found[1] - 30, 0) :]
        return None


def _letters_text(turn: dict, include_think: bool, ignore_code: bool) -> str:
    text = turn_text(turn, include_think)
    return strip_code(text) if ignore_code else text


@dataclass
class HangulShareGate:
    """Drop rows where a turn's Hangul share of letters is below `min_share`. A turn with no letters at all
    (a number, a code-only answer) has no share to judge and passes. With `ignore_code`, the letters of code, TeX
    math and unit symbols after numbers ("3 kg") are not counted either. A Latin letter counts `latin_weight` of a
    Hangul syllable (0.4: a syllable block spells what takes two or three Latin letters): "Python에서 list
    comprehension을 사용하면 코드를 간결하게 쓸 수 있습니다." is Korean prose with English terms, which counting every
    Latin letter as a syllable (1.0) would drop. A short line that is mostly English terms ("Python에서 list
    comprehension을 쓰면 됩니다.", 0.47) still falls under 0.5.

    With `ignore_code`, prose inside an untagged, text or Markdown fence is a text the answer quotes or writes (an
    English email it translates) when the answer has words of its own outside the fences: its Hangul, Han and kana
    count with the answer's own letters, its Latin letters do not. So an English text set in a fence keeps a Korean
    answer, a Chinese or Japanese sentence quoted inside a Korean explanation (a translation exercise) is weighed with
    it as it would be unfenced, and a Chinese answer behind a one-line Korean intro is still dropped. An answer that
    is nothing but fences is judged as any answer: one wrapped whole in a fence, in Korean, English or Chinese, is
    read as if it had none."""

    min_share: float = 0.5
    ignore_code: bool = True
    include_think: bool = False
    latin_weight: float = 0.4
    fields: str = "assistant"
    name: ClassVar[str] = "hangul_share"

    def __post_init__(self) -> None:
        check_range(self.name, "min_share", self.min_share, 0.0, 1.0)
        check_range(self.name, "latin_weight", self.latin_weight, 0.0, 1.0)
        check_choice(self.name, "fields", self.fields, FIELDS)

    def verdict(self, row: dict) -> Verdict:
        for turn in selected_turns(row, self.fields):
            text = turn_text(turn, self.include_think)
            outside, fenced = prose_outside_and_inside_fences(text) if self.ignore_code else (text, "")
            counts = script_counts(outside)
            if not counts:  # the answer is all fences: what they hold is the answer
                counts, fenced = script_counts(fenced), ""
            for script, n in script_counts(fenced).items():  # a fenced text's Latin letters are not counted
                if script != "latin":
                    counts[script] += n
            letters = sum(counts.values()) - (1.0 - self.latin_weight) * counts["latin"]
            if letters and counts["hangul"] / letters < self.min_share:
                return f"hangul share < {self.min_share}", text
        return None

    def __call__(self, rows: list[dict]) -> GateResult:
        return filter_rows(rows, self.verdict)


# A Hanja gloss right after the Korean word it spells: 사자성어(四字成語), 경제 (經濟), 인공 지능(人工知能), '사면초가'
# (四面楚歌). One Hanja is one syllable, so a gloss has no more Hanja than the word before it has syllables, or exactly
# as many as the last few words: "수도입니다(首尔是韩国的首都城市)" is Chinese. The match starts at a word's start
# (not inside one): tried at every syllable of a long run of Hangul, the search took quadratic time.
_PARENS_AFTER_HANGUL = re.compile(r"(?<![가-힣])((?:[가-힣]+ ){0,3}[가-힣]+)(['\"‘’“”」』]?)( ?)\(([^()\n]{1,30})\)")
_SENTENCE_END = ("다", "요", "죠", "까", "네")  # "날씨가 좋네요 (今天天气很好)" is a sentence, not a term
# endings of a verb, never of a noun: "좋아요(很好呀)" is Chinese even with a Hanja per syllable ("필요(必要)" is a term)
_VERB_END = ("니다", "어요", "아요", "해요", "세요", "네요", "예요", "에요", "까요")
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
# Hanja with its Hangul reading after it: 一石二鳥(일석이조), '塞翁之馬(새옹지마)'
_HANJA_THEN_READING = re.compile(rf"(?<![{_HAN}])([{_HAN}]+) ?\(([가-힣]+)\)")


def _spelled_by(last: str, han: int) -> bool:
    """Whether `han` Hanja can spell the word `last`: no more Hanja than it has syllables (경제는(經濟)), but not a
    verb ending a sentence, which a Chinese sentence in brackets follows ("알겠습니다(我知道了)", "좋아요(很好)")."""
    if han == len(last):
        return not last.endswith(_VERB_END)
    return han < len(last) and not last.endswith(_SENTENCE_END)


def _without_hanja_glosses(text: str) -> str:
    def gloss(match: re.Match) -> str:
        words, quote, space, inside = match.groups()
        words_list = words.split()
        scripts = {script_of(ch) for ch in inside} - {None}
        han = sum(script_of(ch) == "han" for ch in inside)
        # a term of several words ("인공 지능") glossed right after its last word, with as many Hanja as syllables
        term = not space and not words_list[-1].endswith(_SENTENCE_END) and any(
            sum(map(len, words_list[-k:])) == han for k in range(2, len(words_list) + 1))
        spelled = _spelled_by(words_list[-1], han) or term
        return words + quote + space if scripts == {"han"} and spelled else match.group(0)

    def reading(match: re.Match) -> str:
        hanja, hangul = match.groups()
        return hangul if len(hanja) == len(hangul) else match.group(0)

    return _PARENS_AFTER_HANGUL.sub(gloss, _HANJA_THEN_READING.sub(reading, text))


@dataclass
class ForeignScriptGate:
    """Drop rows with more than `max_han` Han ideographs or `max_kana` kana in their Korean text: the
    "language confusion" of Qwen-family models adapted to Korean (KOREAN.md)."""

    max_han: int = 0
    max_kana: int = 0
    ignore_code: bool = True
    include_think: bool = True  # Chinese thinking trains the model to think in Chinese
    allow_hanja_in_parens: bool = True
    fields: str = "assistant"
    name: ClassVar[str] = "foreign_script"

    def __post_init__(self) -> None:
        check_range(self.name, "max_han", self.max_han, 0)
        check_range(self.name, "max_kana", self.max_kana, 0)
        check_choice(self.name, "fields", self.fields, FIELDS)

    def verdict(self, row: dict) -> Verdict:
        texts = [_letters_text(turn, self.include_think, self.ignore_code)
                 for turn in selected_turns(row, self.fields)]
        if self.allow_hanja_in_parens:
            texts = [_without_hanja_glosses(text) for text in texts]
        text = "\n".join(texts)
        counts = script_counts(text)
        for script, limit, label in (("han", self.max_han, "han ideographs"), ("kana", self.max_kana, "kana")):
            if counts[script] > limit:
                first = next(i for i, ch in enumerate(text) if script_of(ch) == script)
                return f"more than {limit} {label}", text[max(first - 30, 0) :]
        return None

    def __call__(self, rows: list[dict]) -> GateResult:
        return filter_rows(rows, self.verdict)


def _visible(text: str) -> str:
    """`text` stripped, without format characters (zero-width spaces and joiners, soft hyphens, a BOM): an answer
    of only U+200B is empty, however many of them it holds."""
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf").strip()


@dataclass
class LengthGate:
    """Drop rows with an answer or a prompt (each turn, stripped, in visible characters: format characters such
    as U+200B do not count) outside the bounds. Answers are measured without their thinking, which has its own
    optional cap."""

    min_answer_chars: int = 2
    max_answer_chars: int = 8000
    min_prompt_chars: int = 2
    max_prompt_chars: int = 16000  # prompts may carry a document to read
    max_thinking_chars: int | None = None
    name: ClassVar[str] = "length"

    def __post_init__(self) -> None:
        for key in ("min_answer_chars", "max_answer_chars", "min_prompt_chars", "max_prompt_chars",
                    "max_thinking_chars"):
            check_range(self.name, key, getattr(self, key), 0)

    def verdict(self, row: dict) -> Verdict:
        for turn in selected_turns(row, "all"):
            answer, thinking = map(_visible, answer_and_thinking(turn))
            if turn.get("role") == "assistant":
                bounds = [("answer", answer, self.min_answer_chars, self.max_answer_chars),
                          ("thinking", thinking, 0, self.max_thinking_chars)]
            elif turn.get("role") == "user":
                bounds = [("prompt", answer, self.min_prompt_chars, self.max_prompt_chars)]
            else:
                continue  # a system turn is configuration, not data to bound
            for what, text, low, high in bounds:
                if len(text) < low:
                    return f"{what} < {low} chars", text
                if high is not None and len(text) > high:
                    return f"{what} > {high} chars", text
        return None

    def __call__(self, rows: list[dict]) -> GateResult:
        return filter_rows(rows, self.verdict)


def duplicate_line_share(text: str) -> float:
    """Share of a text's lines that repeat an earlier line. Lines without a letter or digit ("---", "|---|")
    are markup and do not count."""
    lines = [line.strip() for line in text.splitlines() if any(ch.isalnum() for ch in line)]
    return 1 - len(set(lines)) / len(lines) if lines else 0.0


@dataclass
class RepetitionGate:
    """Drop degenerate loops: a high share of repeated `n`-syllable n-grams (spaces ignored: Korean spacing
    varies, a loop does not) or of duplicated lines. Ordinary Korean prose repeats endings like "습니다",
    so n is long enough (10 syllables, about three words) that only repeated phrases count. Code repeats lines
    ("}", "return x") by nature, so with `ignore_code` it is measured on its own, against the looser
    `max_code_repeated_share`: a loop inside a code block repeats nearly every line, real code does not."""

    n: int = 10
    max_repeated_share: float = 0.3
    max_duplicate_line_share: float = 0.3
    max_code_repeated_share: float = 0.6
    ignore_code: bool = True
    include_think: bool = False
    fields: str = "assistant"
    name: ClassVar[str] = "repetition"

    def __post_init__(self) -> None:
        check_range(self.name, "n", self.n, 1)
        for key in ("max_repeated_share", "max_duplicate_line_share", "max_code_repeated_share"):
            check_range(self.name, key, getattr(self, key), 0.0, 1.0)
        check_choice(self.name, "fields", self.fields, FIELDS)

    def _loop(self, text: str, max_lines: float, max_grams: float, what: str = "") -> str | None:
        """Why `text` is a loop (duplicated lines first: the plainer reason when both hold), else None."""
        if duplicate_line_share(text) > max_lines:
            return f"duplicate {what}lines > {max_lines}"
        if repeated_ngram_share([ch for ch in text if not ch.isspace()], self.n) > max_grams:
            return f"repeated {what}{self.n}-grams > {max_grams}"
        return None

    def verdict(self, row: dict) -> Verdict:
        for turn in selected_turns(row, self.fields):
            text = turn_text(turn, self.include_think)
            text, code = split_code(text) if self.ignore_code else (text, "")
            for part, limits, label in ((text, (self.max_duplicate_line_share, self.max_repeated_share), ""),
                                        (code, (self.max_code_repeated_share,) * 2, "code ")):
                why = self._loop(part, *limits, label)
                if why:
                    return why, part
        return None

    def __call__(self, rows: list[dict]) -> GateResult:
        return filter_rows(rows, self.verdict)
