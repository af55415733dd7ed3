"""LLM-driven Korean instruction data behind the teacher interface (data_tools.teachers):

- `self_instruct`: a few seed tasks shown as examples, the teacher writes new Korean instructions;
- `evol_instruct`: an instruction made deeper (constraints, reasoning, concreteness) or broader (a new, rarer
  task of the same domain);
- `magpie`: a chat model given only the start of a user turn writes the user's request itself;
- `translate`: English instruction rows rewritten in natural Korean (code and numbers kept);
- `distill`: the teacher answers prompts; its thinking is kept as reasoning_content or stripped.

Each step that writes instructions is followed by `distill`, so every generator returns SFT chat rows whose
`meta` names source, generator, teacher model, license and seed. A row made from an input row (a translation, an
answer to its prompt, an evolution of its instruction) carries that row's lineage too: `distill` and `translate`
take each one's extra `meta` (`lineage`: its input's license and source, which the caller decides), and
`evol_instruct` says which instruction each one it returns came from (`origins`).

    >>> parse_numbered("1. 첫째 지시문\\n2) 둘째 지시문\\n잡담")
    ['첫째 지시문', '둘째 지시문']
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Any

from data_tools.teachers import GenerationRequest, Teacher
from data_tools.text import hangul_share, hangul_share_of_cjk, nfc, prose, script_counts

_NUMBERED = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•])\s+(.+?)\s*$")

SELF_INSTRUCT = ("다음은 한국어 사용자가 AI 비서에게 할 법한 요청의 예시입니다.\n\n{examples}\n\n"
                 "이 예시들과 겹치지 않는 새롭고 다양한 한국어 요청을 {k}개 작성하세요. 주제와 형식(질문, 글쓰기, 요약, "
                 "분류, 계산, 조언 등)을 골고루 섞고, 한 줄에 하나씩 번호를 붙여 요청 문장만 쓰세요.")
EVOLVE = {
    "deepen": ("다음 한국어 요청을 더 어렵게 바꾸세요. 조건이나 제약을 하나 더하거나, 여러 단계의 추론이 필요하게 하거나, "
               "더 구체적인 상황을 주세요. 원래 요청의 주제는 유지하고, 바뀐 요청 문장만 쓰세요.\n\n요청: {instruction}"),
    "broaden": ("다음 한국어 요청과 같은 분야이지만 더 드물고 새로운 요청을 하나 만드세요. 길이와 난이도는 비슷하게 하고, "
                "새 요청 문장만 쓰세요.\n\n요청: {instruction}"),
}
# Each generator's sampling temperature when the recipe leaves synth.teacher.temperature null: new tasks want
# variety, a translation wants fidelity.
DEFAULT_TEMPERATURE = {"distill": 0.7, "self_instruct": 1.0, "evol_instruct": 0.7, "magpie": 1.0, "translate": 0.2}

TRANSLATE = ("다음 영어 텍스트를 자연스러운 한국어로 옮기세요. 코드, 수식, 숫자, 고유명사 표기는 그대로 두고, "
             "설명 없이 번역문만 쓰세요.\n\n{text}")


def parse_numbered(text: str) -> list[str]:
    """The items of a numbered or bulleted list, one per line; other lines are ignored."""
    return [nfc(m.group(1)) for line in text.splitlines() if (m := _NUMBERED.match(line))]


def content_seed(seed: int, *parts: Any) -> int:
    """A request's seed from the run's seed and what the request holds (its messages, its round, ...), not from its
    place in a batch: a row removed or added upstream leaves every other request, and so its answer and an
    HTTPTeacher's cache key, as it was. Reproducible (sha256, not Python's per-process hash); under 2**31, which
    every backend takes."""
    text = json.dumps([seed, *parts], ensure_ascii=False, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") >> 1


def _occurrence_seeds(seed: int, items: Sequence[Any], *extra: Any) -> list[int]:
    """content_seed of each item, with how many times the same item came before it: an instruction given twice is
    two samples (two seeds), and still none depends on where the item stands."""
    seen: Counter = Counter()
    seeds = []
    for item in items:
        key = json.dumps(item, ensure_ascii=False, sort_keys=True, default=str)
        seeds.append(content_seed(seed, *extra, item, *([seen[key]] if seen[key] else [])))
        seen[key] += 1
    return seeds


def _meta(source: str, generator: str, teacher: Teacher, license_: str, seed: int, **extra: Any) -> dict:
    return {"source": source, "generator": f"data_tools.generators.instructions.{generator}",
            "teacher_model": teacher.name, "license": license_, "seed": seed, **extra}


def _temperature(generator: str, temperature: float | None) -> float:
    return DEFAULT_TEMPERATURE[generator] if temperature is None else temperature


def _unfinished(finish_reason: str) -> str:
    """Why a generation that did not stop on its own is dropped, as the data card says it."""
    return {"length": "cut off at max_new_tokens", "error": "teacher refused"}.get(finish_reason,
                                                                                   f"ended by {finish_reason}")


# The fields of the prompts above ({examples}, {instruction}, ...): a request holding one is the teacher echoing the
# prompt's template, not a request. Other braces are a request's own (JSON, code, a set).
_FIELDS = frozenset(f for template in (SELF_INSTRUCT, TRANSLATE, *EVOLVE.values())
                    for _, f, _, _ in string.Formatter().parse(template) if f)
_LEFTOVER = re.compile(r"\{(?:" + "|".join(map(re.escape, sorted(_FIELDS))) + r")\}|요청:")
_MIN_HANGUL = 2  # letters: a request written in Korean, not an English one with a Korean word in it


def _usable(text: str, min_share: float = 0.5) -> bool:
    """A Korean instruction worth answering: some length, written in Korean, no template leftovers (a field of the
    prompt, the "요청:" label it put before the instruction).

    Written in Korean: its prose (data_tools.text.prose: without code, math and units) holds Hangul, and Hangul is at
    least `min_share` of its Hangul, Han and kana letters (data_tools.text.hangul_share_of_cjk; the hangul_share
    gate counts what an answer sets in fences the same way, its Latin letters left out): Chinese or Japanese written instead of Korean is language confusion. Latin letters do
    not count against it: a Korean request names React, useEffect or a SQL table in Latin letters, and one asking
    for a translation quotes the English it is about.

        >>> _usable("React에서 useEffect cleanup function은 언제 호출되나요?"), _usable("What is React?")
        (True, False)
        >>> _usable("请解释一下这个概念。한국어로"), _usable('다음 JSON에서 이름만 뽑아 주세요: {"name": "김철수"}')
        (False, True)
    """
    if not 5 <= len(text) <= 1000 or _LEFTOVER.search(text):
        return False
    letters = prose(text)
    return script_counts(letters)["hangul"] >= _MIN_HANGUL and hangul_share_of_cjk(letters) >= min_share


def distill(teacher: Teacher, prompts: Sequence[str], *, seed: int, keep_thinking: bool, source: str,
            license_: str, generator: str = "distill", max_new_tokens: int = 1024, thinking: bool = False,
            system: str | None = None, temperature: float | None = None,
            wheres: Sequence[str] | None = None, dropped: Counter | None = None,
            lineage: Sequence[dict] | None = None) -> list[dict]:
    """Answer each prompt: SFT rows (question, the teacher's answer; its thinking kept or stripped). `wheres`
    (file:line of each prompt) names the input of a request the teacher refuses; `dropped` counts the prompts left
    without a row, by reason; `lineage` is each prompt's extra meta (its input row's license and source), which
    overrides `source`/`license_` where it names the same key."""
    dropped = Counter() if dropped is None else dropped
    head = [{"role": "system", "content": nfc(system)}] if system else []
    prompts = [nfc(p) for p in prompts]
    conversations = [head + [{"role": "user", "content": p}] for p in prompts]
    seeds = _occurrence_seeds(seed, conversations)  # by content: a prompt added upstream re-asks no other one
    requests = [GenerationRequest(messages, max_new_tokens=max_new_tokens,
                                  temperature=_temperature("distill", temperature), seed=seeds[i],
                                  chat_template_kwargs={"enable_thinking": thinking},
                                  where=wheres[i] if wheres else None)
                for i, messages in enumerate(conversations)]
    rows = []
    for i, (prompt, out) in enumerate(zip(prompts, teacher.generate(requests), strict=True)):
        if out.finish_reason != "stop" or not out.text.strip():  # refused, cut off or empty: a wrong lesson
            dropped[_unfinished(out.finish_reason) if out.finish_reason != "stop" else "empty answer"] += 1
            continue
        answer = {"role": "assistant", "content": nfc(out.text.strip())}
        if keep_thinking and out.reasoning:
            answer["reasoning_content"] = nfc(out.reasoning)
        rows.append({"messages": head + [{"role": "user", "content": prompt}, answer],
                     "meta": _meta(source, generator, teacher, license_, seeds[i],
                                   **(lineage[i] if lineage else {}))})
    return rows


def self_instruct(teacher: Teacher, seed_tasks: Sequence[str], n: int, *, seed: int, per_request: int = 5,
                  examples: int = 4, max_rounds: int = 20, temperature: float | None = None,
                  dropped: Counter | None = None) -> list[str]:
    """Up to `n` new Korean instructions, none repeating a seed task or each other; `dropped` counts the listed
    instructions not kept, by reason."""
    seed_tasks = [nfc(t) for t in seed_tasks]
    rng, seen = random.Random(seed), set(seed_tasks)
    dropped = Counter() if dropped is None else dropped
    found: list[str] = []
    for round_ in range(max_rounds):
        if len(found) >= n:
            break
        asks = (n - len(found) + per_request - 1) // per_request
        requests = []
        for i in range(asks):
            shown = rng.sample(list(seed_tasks), min(examples, len(seed_tasks)))
            listed = "\n".join(f"{j + 1}. {t}" for j, t in enumerate(shown))
            requests.append(GenerationRequest([{"role": "user", "content": SELF_INSTRUCT.format(
                examples=listed, k=per_request)}], temperature=_temperature("self_instruct", temperature),
                seed=content_seed(seed, "self_instruct", round_, i),  # not seed*1000 + round*100 + i: past 100 a
                # round those met the next round's (and the next run seed's)
                chat_template_kwargs={"enable_thinking": False}))
        for out in teacher.generate(requests):
            items = parse_numbered(out.text)
            if out.finish_reason != "stop" and (items or out.finish_reason != "length"):
                dropped[_unfinished(out.finish_reason)] += 1
                items = items[:-1]  # cut off: its last line may be half an instruction
            for item in items:
                if item in seen:
                    dropped["repeated"] += 1
                elif _usable(item):
                    seen.add(item)
                    found.append(item)
                else:
                    dropped["not a usable Korean request"] += 1
    if len(found) > n:
        dropped[f"beyond synth.n={n}"] += len(found) - n
    return found[:n]


def evol_instruct(teacher: Teacher, instructions: Sequence[str], *, seed: int, rounds: int = 1,
                  operations: Sequence[str] = ("deepen", "broaden"), temperature: float | None = None,
                  dropped: Counter | None = None, origins: list[int] | None = None) -> list[str]:
    """Each instruction evolved `rounds` times by a randomly chosen operation; failed evolutions are dropped (and
    counted in `dropped`, by reason). `origins`, when given, is filled with the index in `instructions` of each
    instruction returned (whose license its rows keep)."""
    current = [nfc(t) for t in instructions]
    where_from = list(range(len(current)))
    dropped = Counter() if dropped is None else dropped
    for round_ in range(rounds):
        # operation and seed by the instruction (and the round), not its place: an input added upstream changes
        # no other instruction's evolution
        seeds = _occurrence_seeds(seed, current, "evol_instruct", round_)
        ops = [random.Random(s).choice(list(operations)) for s in seeds]
        requests = [GenerationRequest([{"role": "user", "content": EVOLVE[op].format(instruction=text)}],
                                      seed=s, temperature=_temperature("evol_instruct", temperature),
                                      chat_template_kwargs={"enable_thinking": False})
                    for op, text, s in zip(ops, current, seeds, strict=True)]
        kept, kept_from = [], []
        for out, old, origin in zip(teacher.generate(requests), current, where_from, strict=True):
            new = nfc(out.text.strip())
            why = (_unfinished(out.finish_reason) if out.finish_reason != "stop" else "returned unchanged"
                   if new == old else None if _usable(new) else "not a usable Korean request")
            if why:
                dropped[why] += 1
            else:
                kept.append(new)
                kept_from.append(origin)
        current, where_from = kept, kept_from
    if origins is not None:
        origins[:] = where_from
    return current


def magpie_prefix(tokenizer: Any, system: str | None = None) -> str:
    """The chat template rendered up to where a user's words begin (Magpie: the model writes the request)."""
    head = [{"role": "system", "content": system}] if system else []
    marker = "\u2063KOSOV\u2063"
    text = tokenizer.apply_chat_template(head + [{"role": "user", "content": marker}], tokenize=False)
    return text.split(marker)[0]


def magpie(teacher: Teacher, n: int, *, seed: int, prefix: str, max_new_tokens: int = 256,
           temperature: float | None = None, dropped: Counter | None = None) -> list[str]:
    """Up to `n` distinct Korean user requests a chat model writes when given only the start of a user turn
    (`prefix`, from magpie_prefix): the model's own idea of what users ask, in its own chat format. `dropped`
    counts the rest, by reason."""
    dropped = Counter() if dropped is None else dropped
    # Every request holds the same prompt (the prefix), so its seed alone makes it a different sample: not seed + i,
    # which gave a run with seed 43 all but one of the seeds of a run with seed 42 (the same requests, written again
    # by a run meant to add data or to shard the job)
    requests = [GenerationRequest([], prompt_text=prefix, temperature=_temperature("magpie", temperature), top_p=1.0,
                                  seed=content_seed(seed, "magpie", i), max_new_tokens=max_new_tokens)
                for i in range(n)]
    seen: set[str] = set()
    found = []
    for out in teacher.generate(requests):
        text = nfc(out.text.strip())
        why = (_unfinished(out.finish_reason) if out.finish_reason != "stop" else "repeated" if text in seen
               else None if _usable(text) else "not a usable Korean request")
        if why:
            dropped[why] += 1
        else:
            seen.add(text)
            found.append(text)
    return found


_CODE_LINE = re.compile(r"^\s*(?:def |class |import |from \S+ import |return\b|print\(|#include|function |const |let |"
                        r"var |public |SELECT |[A-Za-z_]\w*\s*=\s*\S)|[;{}]\s*$", re.M)


def _translated(text: str, source: str) -> bool:
    """Whether a turn came back in Korean: Korean prose, or a turn with nothing to translate (a number, a formula,
    code) returned as it was. English prose returned as it was is a translation that failed, and so is an empty
    reply to a turn that had something in it: it would become an empty turn, and distill would pay a teacher to
    answer nothing."""
    if not text.strip():
        return not source.strip()
    letters = prose(text)
    if not any(map(str.isalpha, letters)) or hangul_share(letters) >= 0.3:
        return True
    return text == nfc(source.strip()) and bool(_CODE_LINE.search(source))


def translate(teacher: Teacher, rows: Sequence[dict], *, seed: int, source: str, license_: str,
              temperature: float | None = None, max_new_tokens: int = 2048, wheres: Sequence[str] | None = None,
              dropped: Counter | None = None, lineage: Sequence[dict] | None = None) -> list[dict]:
    """English chat rows rewritten in Korean, turn by turn; a row with any failed turn is dropped (counted in
    `dropped` by the reason of its first failed turn). `wheres` (file:line of each row) names the input of a request
    the teacher refuses. Each turn's seed comes from its text (content_seed), and each row's meta carries the run's
    `seed`, and `lineage[i]` (row i's extra meta: its license and source, a translation being an adaptation of the
    row) over `source`/`license_`."""
    dropped = Counter() if dropped is None else dropped
    turns = [(i, j, m) for i, row in enumerate(rows) for j, m in enumerate(row["messages"])]
    requests = []
    for i, _, m in turns:
        messages = [{"role": "user", "content": TRANSLATE.format(text=nfc(m["content"]))}]
        requests.append(GenerationRequest(messages, temperature=_temperature("translate", temperature),
                                          seed=content_seed(seed, messages), max_new_tokens=max_new_tokens,
                                          chat_template_kwargs={"enable_thinking": False},
                                          where=wheres[i] if wheres else None))
    outs = teacher.generate(requests)
    translated: dict[int, list[dict]] = {i: [dict(m) for m in row["messages"]] for i, row in enumerate(rows)}
    failed: dict[int, str] = {}  # row -> why its first failed turn failed
    for (i, j, m), out in zip(turns, outs, strict=True):
        text = nfc(out.text.strip())
        if out.finish_reason != "stop":
            failed.setdefault(i, _unfinished(out.finish_reason))
        elif not _translated(text, m["content"]):
            failed.setdefault(i, "not translated into Korean")
        translated[i][j] = {**translated[i][j], "content": text}
    dropped.update(failed.values())
    return [{"messages": translated[i], "meta": _meta(source, "translate", teacher, license_, seed,
                                                     translated_from="en", **(lineage[i] if lineage else {}))}
            for i in range(len(rows)) if i not in failed]
