"""LLM-judge gate: keep rows a teacher model scores at least `min_score`.

The gate does not talk to a model itself. It takes `score_fn(rows) -> list[float]` (one score per row, higher
is better, None or NaN when the judge could not score a row), wired in by `build_gates(spec, judge=score_fn)`
from the teacher backend, so the recipe sets only the threshold and the batch size.

    >>> gate = JudgeGate(min_score=0.5, score_fn=lambda rows: [0.9 if "서울" in str(r) else 0.1 for r in rows])
    >>> dict(gate([{"prompt": "수도는 서울"}, {"prompt": "수도는 부산"}]).removed)
    {'judge score < 0.5': 1}
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from tqdm.auto import tqdm

from data_tools.gates.base import GateResult, check_range, selected_turns, turn_text

ScoreFn = Callable[[list[dict]], list[float]]


@dataclass
class JudgeGate:
    """Drop rows the judge scores below `min_score`, on 0..1 (the teacher's 1-10 rating over 10: 0.6 keeps 6 and
    up; min_score=6 would drop every row, so it is refused)."""

    min_score: float = 0.5
    batch_size: int = 256  # rows per score_fn call: the teacher gets them as one batch of requests
    score_fn: ScoreFn | None = field(default=None, repr=False, metadata={"injected": True})
    name: ClassVar[str] = "judge"

    def __post_init__(self) -> None:
        check_range(self.name, "batch_size", self.batch_size, 1)
        if not 0 <= self.min_score <= 1:
            raise ValueError(f"gate 'judge': min_score={self.min_score!r} is out of range; scores are 0..1 (the "
                             f"teacher's 1-10 rating over 10), so a rating of 6 and up is min_score=0.6")
        if self.score_fn is None:
            raise ValueError("gate 'judge' needs a teacher to score rows: pass build_gates(spec, judge=score_fn) "
                             "with score_fn(rows) -> list[float], or remove 'judge' from the gates")

    def __call__(self, rows: list[dict]) -> GateResult:
        result = GateResult()
        # every row is a model call: a bar over the rows, not one per batch (score_fn's own stay off)
        with tqdm(total=len(rows), desc=self.name, unit="row", disable=not rows) as bar:
            for start in range(0, len(rows), self.batch_size):
                batch = rows[start : start + self.batch_size]
                scores = list(self.score_fn(batch))
                if len(scores) != len(batch):
                    raise ValueError(f"gate 'judge': score_fn returned {len(scores)} scores for {len(batch)} rows")
                for row, score in zip(batch, scores):
                    answer = "\n".join(turn_text(t, include_think=False) for t in selected_turns(row, "assistant"))
                    if score is None or math.isnan(score):
                        result.remove("no judge score", answer)
                    elif score < self.min_score:
                        result.remove(f"judge score < {self.min_score}", answer)
                    else:
                        result.kept.append(row)
                bar.update(len(batch))
        return result


JUDGE_PROMPT = ("다음은 한국어 사용자의 요청과 AI의 답변입니다. 답변이 요청에 맞고, 사실에 맞으며, 자연스러운 한국어인지 "
                "평가해 1점부터 10점 사이의 정수 하나로만 답하세요.\n\n[요청]\n{request}\n\n[답변]\n{answer}\n\n점수:")
_SCORE = re.compile(r"(?<!\d)(10|[1-9])(?!\d)")
# the scale a reply may name before or after its score: "10점 만점에 3점", "1~10점 중 8점", "8/10"
_SCALE = re.compile(r"(?:(?<!\d)1\s*[~\-–]\s*)?10\s*점\s*(?:만점|중|사이)\S*|/\s*10(?!\d)|(?<!\d)1\s*[~\-–]\s*10(?!\d)")


def parse_score(text: str) -> float | None:
    """The first 1-10 integer of the judge's reply that is not its scale ("10점 만점에 3점" is 3, "8/10" is 8),
    scaled to 0..1 (10 -> 1.0, 1 -> 0.1); None without one.

        >>> parse_score("10점 만점에 3점")
        0.3
    """
    found = _SCORE.search(_SCALE.sub(" ", text))
    return int(found.group(1)) / 10 if found else None


def teacher_score_fn(teacher, *, max_new_tokens: int = 8, seed: int = 0) -> ScoreFn:
    """A score_fn that asks a teacher (data_tools.teachers) to rate each row's last answer from 1 to 10, greedily:
    every request takes the run's `seed`, not one by the row's place in its batch, so a row removed by an earlier
    gate changes no other row's request (nor its HTTP cache entry, which leaves a greedy request's seed out)."""
    from data_tools.teachers import GenerationRequest

    def score(rows: list[dict]) -> list[float]:
        requests = []
        for row in rows:
            request = "\n".join(turn_text(t, include_think=False) for t in selected_turns(row, "user"))
            answer = "\n".join(turn_text(t, include_think=False) for t in selected_turns(row, "assistant"))
            messages = [{"role": "user", "content": JUDGE_PROMPT.format(request=request, answer=answer)}]
            requests.append(GenerationRequest(messages, max_new_tokens=max_new_tokens, temperature=0.0,
                                              seed=seed,
                                              chat_template_kwargs={"enable_thinking": False}))
        return [parse_score(out.text) for out in teacher.generate(requests, progress=False)]

    return score
