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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from data_tools.gates.base import GateResult, check_range, selected_turns, turn_text

ScoreFn = Callable[[list[dict]], list[float]]


@dataclass
class JudgeGate:
    """Drop rows the judge scores below `min_score` (scores on the judge's own scale; 0..1 by convention)."""

    min_score: float = 0.5
    batch_size: int = 32  # rows per score_fn call: a teacher batches its requests
    score_fn: ScoreFn | None = field(default=None, repr=False, metadata={"injected": True})
    name: ClassVar[str] = "judge"

    def __post_init__(self) -> None:
        check_range(self.name, "batch_size", self.batch_size, 1)
        if self.score_fn is None:
            raise ValueError("gate 'judge' needs a teacher to score rows: pass build_gates(spec, judge=score_fn) "
                             "with score_fn(rows) -> list[float], or remove 'judge' from the gates")

    def __call__(self, rows: list[dict]) -> GateResult:
        result = GateResult()
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
        return result
