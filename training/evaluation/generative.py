"""kosov's own generative evaluations, for what lm-eval lacks:

- math accuracy on the held-out Korean math split, graded by the same code as the GRPO reward
  (data_tools.math_grader);
- the language-consistency rate: the share of answers to Korean prompts with foreign-script contamination
  (Chinese characters or kana), the "language confusion" of Qwen3 adapted to Korean;

each in the thinking modes the suite asks for (Qwen3-style templates: enable_thinking off / on); with thinking on,
each generates up to eval.thinking_max_new_tokens tokens (max_new_tokens_of), as lm-eval's generating tasks do.
"""

from __future__ import annotations

import functools
import hashlib
import math
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

import data_tools.korean_numerals
import data_tools.math_grader
import data_tools.math_hedges
import data_tools.text
from data_tools.chat_io import BadRowError, ChatRow, load_chat_files, prompt_row
from data_tools.math_grader import is_correct
from data_tools.text import THINK_OPEN, cut_off_thinking, ends_in_thinking, hangul_share, script_counts, split_thinking
from training.config import resolve_path
from training.errors import KosovError
from training.schema import GenerativeEvalConfig
from training.data_rows import bad_row_error
from training.rewards import question_text


def max_new_tokens_of(own: GenerativeEvalConfig, ecfg: Any, mode: str) -> int:
    """An eval's generation limit in a thinking mode: with thinking on, the suite's eval.thinking_max_new_tokens
    (thinking.thinking_max_new_tokens), else its own max_new_tokens."""
    from training.evaluation.thinking import thinking_max_new_tokens

    limit = thinking_max_new_tokens(ecfg, mode)
    return own.max_new_tokens if limit is None else limit


def prompt_limit(own: GenerativeEvalConfig, suite_limit: float | None) -> float | None:
    """How many prompts an eval takes: its own `limit`, else the suite's `eval.limit` (N, or a share when < 1)."""
    return own.limit if own.limit is not None else suite_limit


def load_prompts(ecfg: GenerativeEvalConfig, required: tuple[str, ...] = (), suite_limit: float | None = None,
                 key: str = "data") -> list[ChatRow]:
    """An eval's prompt rows (`key`: its data setting, e.g. eval.math.data, for errors); a file without rows is
    refused: its score would be NaN, with no warning."""
    check = functools.partial(prompt_row, required=required)
    limit = prompt_limit(ecfg, suite_limit)
    path = resolve_path(ecfg.data)
    try:
        rows = load_chat_files([path], max_rows=int(limit) if limit and limit >= 1 else None, check=check).rows
    except BadRowError as e:
        raise bad_row_error(e) from None
    except FileNotFoundError:
        raise KosovError(f"{key}: the prompt file {path} does not exist", fix=f"point {key} at a JSONL file of "
                                                                               "prompt rows") from None
    if not rows:
        raise KosovError(f"{key}: the prompt file {path} has no rows", fix=f"point {key} at a JSONL file of prompt "
                                                                           "rows, or disable that eval")
    return rows[: max(1, math.ceil(limit * len(rows)))] if limit and limit < 1 else rows


def eval_prompts(ecfg: Any, name: str) -> list[ChatRow]:
    """The prompts kosov's eval `name` (a JOBS key) takes in the suite `ecfg`."""
    own: GenerativeEvalConfig = getattr(ecfg, JOBS[name])
    return load_prompts(own, required=("answer",) if name == "ko_math_heldout" else (), suite_limit=ecfg.limit,
                        key=f"eval.{JOBS[name]}.data")


def check_prompts(ecfg: Any) -> None:
    """Every prompt file the suite's own evals read, loaded and checked before anything is generated."""
    for name in dict.fromkeys(n for n, _ in jobs_of(ecfg)):
        eval_prompts(ecfg, name)


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """A digest of the code that renders, reads and grades these evals (the grader, the Korean text rules, this
    module), for the score cache: a kosov upgrade that grades differently does not reuse scores graded before."""
    files = (data_tools.math_grader.__file__, data_tools.math_hedges.__file__, data_tools.korean_numerals.__file__,
             data_tools.text.__file__, __file__)
    return hashlib.sha256(b"".join(Path(f).read_bytes() for f in files)).hexdigest()[:16]


def generate(model: Any, tokenizer: Any, rows: list[ChatRow], *, thinking: str, max_new_tokens: int,
             batch_size: int = 8, desc: str = "Generating", stop_ids: list[int] | None = None) -> list[str]:
    """Greedy answers to prompt rows, rendered with the chat template in the given thinking mode; each ends at the
    first of `stop_ids` (models.stop_ids: the end of the turn) or of the model's generation config's ends. Where the
    template itself opens the think block (data_tools.text.ends_in_thinking), the answer gets that <think> back:
    the graders then see a completion cut off mid-thought as one, not its last number as the answer."""
    import torch

    texts = [tokenizer.apply_chat_template(r.messages, tokenize=False, add_generation_prompt=True,
                                           enable_thinking=thinking == "on") for r in rows]
    if stop_ids:  # with the model's own ends (eos_token_id replaces them): Gemma's <end_of_turn>, Llama's <|eom_id|>
        own = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        own = [own] if isinstance(own, int) else list(own or [])
        stop_ids = list(dict.fromkeys([*stop_ids, *own]))
    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # generation continues on the right
    answers: list[str] = []
    try:
        for start in tqdm(range(0, len(texts), batch_size), desc=desc, unit="batch"):
            batch = tokenizer(texts[start : start + batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(model.device)
            with torch.no_grad():
                out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id,
                                     **({"eos_token_id": stop_ids} if stop_ids else {}))
            answers += tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return [THINK_OPEN + a if ends_in_thinking(t) else a for t, a in zip(texts, answers, strict=True)]


def _rate(hits: int, n: int) -> tuple[float, float | None]:
    p = hits / n if n else float("nan")
    return p, math.sqrt(p * (1 - p) / n) if n else None


def math_accuracy(answers: list[str], rows: list[ChatRow]) -> dict[str, Any]:
    """Share of answers whose final answer equals the row's `answer` (binomial standard error); `items`: each
    prompt's outcome (1 correct), for the paired standard error of base vs adapted on the same prompts. The grader
    reads the question (the last user turn) too: "2/8" does not answer one asking for 기약분수."""
    items = [int(is_correct(a, str(r.columns["answer"]), question=question_text(r.messages)))
             for a, r in zip(answers, rows, strict=True)]
    value, stderr = _rate(sum(items), len(rows))
    return {"metric": "accuracy", "value": value, "stderr": stderr, "n": len(rows), "higher_is_better": True,
            "items": items, "unfinished_thinking": sum(cut_off_thinking(a) for a in answers)}


def contaminated(text: str) -> bool:
    counts = script_counts(text)
    return counts["han"] + counts["kana"] > 0


def foreign_script_rate(answers: list[str]) -> dict[str, Any]:
    """Share of answers with Chinese characters or kana after the thinking block (lower is better). An answer cut
    off while thinking has none to judge and counts as a failure, so thinking to the token limit cannot lower the
    rate; how many were cut off is reported as well. `items`: each answer's outcome (1 failed), as in math_accuracy."""
    parts = [split_thinking(a) for a in answers]
    unfinished = [cut_off_thinking(a) for a in answers]
    items = [int(cut or contaminated(answer)) for cut, (_, answer) in zip(unfinished, parts)]
    value, stderr = _rate(sum(items), len(answers))
    think_rate, _ = _rate(sum(contaminated(thought) for thought, _ in parts), len(answers))
    cut_rate, _ = _rate(sum(unfinished), len(answers))
    return {"metric": "foreign_script_rate", "value": value, "stderr": stderr, "n": len(answers),
            "higher_is_better": False, "thinking_foreign_script_rate": think_rate,
            "unfinished_thinking_rate": cut_rate, "unfinished_thinking": sum(unfinished), "items": items,
            "mean_hangul_share": sum(hangul_share(a) for _, a in parts) / len(parts) if parts else float("nan")}


JOBS = {"ko_math_heldout": "math", "ko_language": "language"}  # report name -> EvalConfig field


def jobs_of(ecfg: Any) -> list[tuple[str, str]]:
    """The (report name, thinking mode) pairs a suite asks for, e.g. ("ko_math_heldout", "off")."""
    return [(name, mode) for mode in ecfg.thinking for name, field in JOBS.items() if getattr(ecfg, field).enabled]


def run_generative(model: Any, tokenizer: Any, ecfg: Any, jobs: list[tuple[str, str]], label: str,
                   stop_ids: list[int] | None = None) -> dict[str, dict[str, Any]]:
    """{"ko_math_heldout[off]": score, "ko_language[off]": score, ...} for one model; answers end at stop_ids."""
    results: dict[str, dict[str, Any]] = {}
    for name, mode in jobs:
        own: GenerativeEvalConfig = getattr(ecfg, JOBS[name])
        rows = eval_prompts(ecfg, name)
        answers = generate(model, tokenizer, rows, thinking=mode, max_new_tokens=max_new_tokens_of(own, ecfg, mode),
                           desc=f"{label}: {name} (thinking {mode})", stop_ids=stop_ids)
        results[f"{name}[{mode}]"] = (math_accuracy(answers, rows) if name == "ko_math_heldout"
                                      else foreign_script_rate(answers))
    return results
