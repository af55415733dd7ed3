"""The reward library: one home for GRPO rewards. Each reward is a pure function
`fn(completions, **dataset_columns) -> list[float | None]` and a named node in `recipes/rewards/` with its
own parameters and weight; the recipe's `rewards` picks them by name (`rewards=[math_accuracy,language_consistency]`).

    >>> math_accuracy([[{"role": "assistant", "content": "정답: 1,200원"}]], answer=["1200"])
    [1.0]
    >>> language_consistency(["서울의 날씨는 맑습니다."])[0] > language_consistency(["서울의 天氣는 맑습니다."])[0]
    True
"""

from __future__ import annotations

import functools
import math
import re
import typing
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, Callable

from data_tools.math_grader import is_correct
from data_tools.text import THINK_CLOSE, THINK_OPEN, repeated_ngram_share, script_counts, split_thinking
from training.errors import KosovError
from training.reward_fences import answer_prose


def _reasoning(message: Any) -> str | None:
    """The thinking a response parser split off an assistant message (None: not split). TRL 1.16 decodes with
    `parse_response` when the tokenizer has a `response_template`/`response_schema` (trl/trainer/grpo_trainer.py
    `_generate`: "Decode completions. It's important to use `parse_response`..."; the template is set by
    trl.chat_template_utils.add_response_schema when tools are given, or shipped by the model repo); the Qwen3 one
    returns {"reasoning_content": thinking, "content": answer}, LFM2.5's names it "thinking" (trl/trainer/utils.py)."""
    if not isinstance(message, dict) or not ("reasoning_content" in message or "thinking" in message):
        return None
    return str(message.get("reasoning_content") or message.get("thinking") or "")


def completion_text(completion: Any) -> str:
    """Conversational completions arrive as [{"role": "assistant", "content": ...}]; standard ones as text. Thinking
    a response parser split off (see _reasoning) is put back as "<think>...</think>answer", so thinking-aware rewards
    see both. A parser cannot tell a thought cut off from a closed one with no answer: both have no answer."""
    if isinstance(completion, list):
        return "".join(m.get("content") or "" if _reasoning(m) is None
                       else f"{THINK_OPEN}{_reasoning(m)}{THINK_CLOSE}{m.get('content') or ''}"
                       for m in completion if isinstance(m, dict))
    return str(completion)


def question_text(prompt: Any) -> str | None:
    """The question a prompt asks: the text of its last user message (conversational prompts), or the prompt."""
    if isinstance(prompt, str):
        return prompt
    users = [m for m in prompt or [] if isinstance(m, dict) and m.get("role") == "user"]
    return completion_text(users[-1:]) or None


def math_accuracy(completions: list, answer: list[str], prompts: list | None = None, **_: Any) -> list[float | None]:
    """1.0 when the final answer equals `answer` (the same grader as evaluation), else 0.0. The question (TRL passes
    the prompts) tells the grader what form it asks for: "2/8" does not answer a question asking for 기약분수."""
    questions = [question_text(p) for p in prompts] if prompts is not None else [None] * len(completions)
    # no gold answer: None (TRL 1.16 reads None as "not applicable": NaN, left out of the group's mean), not a 0
    return [None if gold is None or not str(gold).strip()
            else float(is_correct(completion_text(c), str(gold), question=q))
            for c, gold, q in zip(completions, answer, questions, strict=True)]


# also in Markdown: "**정답: 7**", "**정답**: 7", "- 정답: 7", "1. 정답: 7", "> **최종 정답**: 7". Possessive (*+):
# each run is followed by a character it cannot hold, so giving some back never helps, and a line of 20,000 "*"
# no longer backtracks quadratically (seconds per completion).
_FINAL_LINE = re.compile(r"^[\s*_#>\-]*+(?:\d++[.)]\s*+)?[*_]*+(?:최종\s*+)?(?:정답|답)[\s*_]*+[:：]\s*+\S")


def answer_format(completions: list, style: str = "final_line", **_: Any) -> list[float]:
    """1.0 when the completion has the asked structure, else 0.0.

    style: "think" = one <think>...</think> block followed by a non-empty answer (Qwen3 thinking);
    "answer_tags" = one non-empty <answer>...</answer>; "final_line" = the last line reads "정답: ...".

    >>> answer_format(["<think>3+4=7</think>\\n7개입니다."], style="think")
    [1.0]
    """
    def ok(text: str) -> bool:
        if style == "think":  # an empty think block is Qwen3's non-thinking output, not the asked structure
            thinking, answer = split_thinking(text)
            return (text.count("<think>") <= 1 and text.count("</think>") == 1 and bool(thinking.strip())
                    and bool(answer))
        if style == "answer_tags":
            found = re.findall(r"<answer>(.*?)</answer>", text, flags=re.S)
            return len(found) == 1 and bool(found[0].strip())
        lines = [line for line in split_thinking(text)[1].splitlines() if line.strip()]
        return bool(lines) and bool(_FINAL_LINE.match(lines[-1]))

    return [float(ok(completion_text(c))) for c in completions]


def language_consistency(completions: list, include_think: bool = False, foreign_penalty: float = 1.0,
                         **_: Any) -> list[float]:
    """Hangul share of the letters, minus `foreign_penalty` times the share of Han ideographs and kana.

    In [-foreign_penalty, 1]; an answer with no letters (only numbers) scores 0. The answer is what follows
    </think>, its letters as training.reward_fences.answer_prose reads them: the Latin letters of code in a fence
    tagged with a code language (```python), of TeX math and of unit symbols are not a language switch; English in
    any other fence (untagged, ```text, ```markdown) is, however code-like its lines (its single-letter variables
    are not). Han and kana are counted everywhere, code and TeX included, where a model could otherwise hide
    Chinese. `include_think` also counts the thinking (Qwen3 tends to think in English or Chinese). A completion cut
    off while thinking has no answer: 0 unless `include_think`.
    """
    scores = []
    for c in completions:
        thinking, answer = split_thinking(completion_text(c))
        text = f"{thinking}\n{answer}" if include_think else answer
        counts = script_counts(answer_prose(text))
        raw = script_counts(text)
        counts["han"], counts["kana"] = raw["han"], raw["kana"]
        letters = sum(counts.values())
        scores.append((counts["hangul"] - foreign_penalty * (counts["han"] + counts["kana"])) / letters
                      if letters else 0.0)
    return scores


@functools.lru_cache(maxsize=1)
def _kiwi():
    from kiwipiepy import Kiwi

    return Kiwi()


def _units(text: str, unit: str) -> list[str]:
    if unit == "morpheme":
        return [token.form for token in _kiwi().tokenize(text)]
    return [ch for ch in text if not ch.isspace()]  # syllables: spacing varies, repetition does not


def repetition_penalty(completions: list, unit: str = "char", n: int = 4, max_penalty: float = 1.0,
                       allowance: float = 0.4, **_: Any) -> list[float]:
    """The share of repeated n-grams (Korean syllables or kiwipiepy morphemes) in the answer, or in the thinking of
    a completion that has none (cut off mid-thought, often in a loop), beyond `allowance`: 0 up to it, then a ramp
    to -max_penalty at 1. A worked solution repeats its numbers and phrases ("1,000원", "이므로": up to about a
    third of kosov's own solutions' 4-grams), a loop nearly everything; without the allowance a bare "정답: 7"
    would outscore the worked solution that reaches it.

    >>> repetition_penalty(["좋아요 좋아요 좋아요 좋아요 좋아요"])[0] < repetition_penalty(["오늘은 날씨가 참 맑네요"])[0]
    True
    """
    scores = []
    for c in completions:
        thinking, answer = split_thinking(completion_text(c))
        units = _units(answer or thinking, unit)  # no answer (cut off while thinking, in a loop?): the thinking
        excess = max(0.0, repeated_ngram_share(units, n) - allowance) / (1.0 - allowance)
        scores.append(-max_penalty * excess)
    return scores


def default_buffer(max_tokens: int) -> int:
    """length_penalty's ramp when the recipe sets none: the last quarter of the completion budget, at most 128."""
    return min(max(max_tokens // 4, 1), 128)


def length_penalty(completions: list, completion_ids: list | None = None, max_tokens: int | None = None,
                   buffer: int | None = 128, max_penalty: float = 1.0, **_: Any) -> list[float]:
    """DAPO's soft overlong penalty: 0 up to max_tokens - buffer, then a linear ramp to -max_penalty at
    max_tokens (default: method.grpo.max_completion_length). Counts tokens when TRL passes completion_ids."""
    if max_tokens is None:
        raise ValueError("length_penalty needs max_tokens")
    buffer = default_buffer(max_tokens) if buffer is None else buffer
    lengths = ([len(ids) for ids in completion_ids] if completion_ids is not None
               else [len(completion_text(c)) for c in completions])
    start = max(max_tokens - buffer, 0)
    return [0.0 if n <= start else -max_penalty * min(1.0, (n - start) / max(buffer, 1)) for n in lengths]


def judge(completions: list, prompts: list | None = None, base_url: str | None = None, model: str | None = None,
          api_key_env: str | None = "OPENAI_API_KEY", timeout_s: float = 60.0, concurrency: int = 8,
          **_: Any) -> list[float | None]:
    """A teacher model's 1-10 rating of each answer, scaled to 0..1, through the teacher interface (any
    OpenAI-compatible endpoint: `kosov serve`, `vllm serve`, a hosted API); None where it gave no score."""
    from data_tools.gates.judge import teacher_score_fn
    from data_tools.teacher_http import HTTPTeacher

    if not base_url or not model:
        raise ValueError("the judge reward needs base_url and model (rewards.judge.base_url / .model)")
    teacher = HTTPTeacher(base_url, model, api_key_env=api_key_env, timeout_s=timeout_s, concurrency=concurrency)
    rows = [{"messages": [*(p if isinstance(p, list) else [{"role": "user", "content": str(p)}]),
                          {"role": "assistant", "content": completion_text(c)}]}
            for p, c in zip(prompts or [""] * len(completions), completions, strict=True)]
    return teacher_score_fn(teacher)(rows)


@dataclass
class MathAccuracyParams:
    pass


@dataclass
class AnswerFormatParams:
    style: str = "final_line"


@dataclass
class LanguageParams:
    include_think: bool = False
    foreign_penalty: float = 1.0


@dataclass
class RepetitionParams:
    unit: str = "char"
    n: int = 4
    max_penalty: float = 1.0
    allowance: float = 0.4  # repeated share without penalty (in [0, 1))


@dataclass
class LengthParams:
    max_tokens: int | None = None
    buffer: int | None = None  # None: a quarter of max_tokens, at most 128
    max_penalty: float = 1.0


@dataclass
class JudgeParams:
    base_url: str | None = None  # e.g. http://127.0.0.1:8000/v1
    model: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"
    timeout_s: float = 60.0
    concurrency: int = 8


@dataclass(frozen=True)
class RewardSpec:
    fn: Callable[..., list]
    params: type
    columns: tuple[str, ...] = ()  # dataset columns the reward reads
    choices: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (param, allowed values)


REWARDS: dict[str, RewardSpec] = {
    "math_accuracy": RewardSpec(math_accuracy, MathAccuracyParams, columns=("answer",)),
    "answer_format": RewardSpec(answer_format, AnswerFormatParams,
                                choices=(("style", ("final_line", "think", "answer_tags")),)),
    "language_consistency": RewardSpec(language_consistency, LanguageParams),
    "repetition_penalty": RewardSpec(repetition_penalty, RepetitionParams,
                                     choices=(("unit", ("char", "morpheme")),)),
    "length_penalty": RewardSpec(length_penalty, LengthParams),
    "judge": RewardSpec(judge, JudgeParams),
}


# parameter: (holds, what it must be), checked after its type for every reward that has it
_RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "n": (lambda v: v >= 1, "at least 1 (the n-gram length)"),
    "max_penalty": (lambda v: v >= 0, "0 or more (a negative penalty is a bonus)"),
    "foreign_penalty": (lambda v: v >= 0, "0 or more (a negative penalty rewards Chinese and kana)"),
    "allowance": (lambda v: 0 <= v < 1, "in [0, 1) (0 penalises every repeated n-gram)"),
    "max_tokens": (lambda v: v >= 1, "at least 1, or null for method.grpo.max_completion_length"),
    "buffer": (lambda v: v >= 0, "0 or more, or null for a quarter of max_tokens"),
    "timeout_s": (lambda v: v > 0, "more than 0 seconds"),
    "concurrency": (lambda v: v >= 1, "at least 1"),
}
_KIND_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "text", type(None): "null"}


def _fits(value: Any, kind: type) -> bool:
    """`value` is a `kind` as a recipe means it: a bool is no number, 'false' (quoted: text) no bool."""
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    return value is None if kind is type(None) else isinstance(value, kind)


def _yaml(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _check_value(name: str, key: str, value: Any, hint: Any, default: Any) -> None:
    where = f"rewards.{name}.{key}"
    kinds = typing.get_args(hint) or (hint,)
    if not any(_fits(value, kind) for kind in kinds):
        expected = " or ".join(_KIND_NAMES[kind] for kind in kinds)
        fix = (f"quote it as text: {where}='{value}'" if str in kinds else
               f"write {expected} without quotes, e.g. {where}={_yaml(default)}")
        raise KosovError(f"{where}={value!r} is not {expected}", fix=fix)
    holds, what = _RANGES.get(key, (None, ""))
    if holds is not None and value is not None and not holds(value):
        raise KosovError(f"{where}={value!r} must be {what}", fix=f"e.g. {where}={_yaml(default)} (the default)")


def reward_params(name: str, node: dict[str, Any], max_completion_length: int | None = None) -> tuple[Any, float]:
    """Check one `rewards.<name>` node: (typed parameters, weight). Raises KosovError naming the bad key: the config
    check calls it (training/config.py _check_grpo), so a bad value stops `compose`, before any model loads.
    `max_completion_length`: the recipe's, which length_penalty's max_tokens defaults to."""
    if name not in REWARDS:
        raise KosovError(f"unknown reward '{name}'", fix=f"use one of: {', '.join(REWARDS)}")
    spec = REWARDS[name]
    allowed = [f.name for f in fields(spec.params)]
    node = dict(node)
    if "weight" not in node:  # parameters set for a reward the recipe did not select
        raise KosovError(f"rewards.{name} has parameters but is not one of the selected rewards",
                         fix=f"select it by name, e.g. rewards=[...,{name}], or drop its parameters")
    weight = node.pop("weight")
    if not _fits(weight, float):
        raise KosovError(f"rewards.{name}.weight={weight!r} is not a number",
                         fix=f"write a number without quotes, e.g. rewards.{name}.weight=0.5")
    unknown = sorted(set(node) - set(allowed))
    if unknown:
        raise KosovError(f"rewards.{name} has unknown parameters {unknown}",
                         fix=f"parameters of {name}: {', '.join(['weight', *allowed])}")
    params = spec.params(**node)
    for key, values in spec.choices:
        if getattr(params, key) not in values:
            raise KosovError(f"rewards.{name}.{key}={getattr(params, key)!r} is not allowed",
                             fix=f"use one of: {', '.join(values)}")
    hints = typing.get_type_hints(spec.params)
    for f in fields(params):
        _check_value(name, f.name, getattr(params, f.name), hints[f.name], None if f.default is MISSING else f.default)
    if name == "length_penalty" and max_completion_length is not None:
        limit = max_completion_length if params.max_tokens is None else params.max_tokens
        if params.buffer is None:
            params.buffer = default_buffer(limit)
        if params.buffer >= limit:
            raise KosovError(f"rewards.length_penalty.buffer={params.buffer} is not below its max_tokens={limit}: "
                             "every token of every completion would be penalised, a plain shorter-is-better reward",
                             fix=f"set rewards.length_penalty.buffer to a part of it, e.g. {max(limit // 4, 1)}")
        if limit - params.buffer >= max_completion_length:  # no completion is that long: a reward of 0, always
            raise KosovError(f"rewards.length_penalty starts at max_tokens - buffer = {limit - params.buffer} tokens, "
                             f"but completions end at method.grpo.max_completion_length={max_completion_length}: it "
                             "never penalises anything",
                             fix="leave rewards.length_penalty.max_tokens null (the completion budget), or set it to "
                                 f"at most {max_completion_length}")
    if name == "judge" and not (params.base_url and params.model):
        raise KosovError("the judge reward needs a teacher endpoint",
                         fix="set rewards.judge.base_url=http://host:port/v1 and rewards.judge.model=<served model>")
    return params, float(weight)


def build_rewards(nodes: dict[str, dict[str, Any]], max_completion_length: int, opens_thinking: bool = False,
                  parsed: bool = False) -> tuple[list[Callable[..., list]], list[float]]:
    """The reward callables (named after their recipe node, so TRL logs rewards/<name>) and their weights.
    `opens_thinking`: the chat template opens the think block in the prompt; `parsed`: TRL splits the thinking off
    with the tokenizer's response parser (parses_responses). See thought_completions."""
    funcs, weights = [], []
    for name, node in nodes.items():
        params, weight = reward_params(name, node, max_completion_length)
        kwargs = asdict(params)
        if name == "length_penalty" and kwargs["max_tokens"] is None:
            kwargs["max_tokens"] = max_completion_length
        funcs.append(_bound(REWARDS[name].fn, name, kwargs, opens_thinking, parsed))
        weights.append(weight)
    return funcs, weights


def parses_responses(tokenizer: Any) -> bool:
    """Whether TRL 1.16 decodes conversational completions with the tokenizer's response parser (grpo_trainer.py
    `_generate`: a `response_template`, or the legacy `response_schema`), which splits the thinking off (_reasoning)."""
    return any(getattr(tokenizer, key, None) is not None for key in ("response_template", "response_schema"))


def thought_completions(completions: list, parsed: bool = False) -> list[str]:
    """The completions with the <think> that the chat template wrote into the prompt put back in front
    (Qwen3-Thinking-2507 ends its generation prompt with "<think>\n"): one cut off mid-thought is then all thinking
    with no answer, not its last number scored as one (data_tools.text.split_thinking). Not where a response parser
    split the thinking off (`parsed`; a message with reasoning): it read the prompt's <think>, so a completion cut
    off mid-thought is reasoning with no content, and a message without reasoning had an empty think block (the
    parser leaves none): its content is the answer. Decided per run, not from the batch: a batch of answers after
    empty think blocks, with no reasoning in any message, was read as all cut off."""
    return [completion_text(c) if parsed or (isinstance(c, list) and any(_reasoning(m) is not None for m in c))
            else THINK_OPEN + completion_text(c) for c in completions]


def _bound(fn: Callable[..., list], name: str, params: dict[str, Any], opens_thinking: bool = False,
           parsed: bool = False) -> Callable[..., list]:
    """`fn` with the recipe's parameters. TRL passes every dataset column as a keyword, and with functools.partial a
    column named like a parameter (unit, n, max_tokens) replaced the recipe's value, or broke the reward."""
    def reward(*args: Any, **columns: Any) -> list:
        if opens_thinking and args:
            args = (thought_completions(args[0], parsed), *args[1:])
        elif opens_thinking and "completions" in columns:  # as TRL calls it
            columns["completions"] = thought_completions(columns["completions"], parsed)
        return fn(*args, **{**columns, **params})

    reward.__name__ = reward.__qualname__ = name  # TRL logs rewards/<name>
    return reward


def required_columns(nodes: dict[str, Any]) -> set[str]:
    return {column for name in nodes if name in REWARDS for column in REWARDS[name].columns}
