"""Quality gates for Korean training data. Each gate is configured from a recipe node, runs over a list of
rows (SFT `messages` rows or `prompt` rows), and reports how many rows it removed or changed and why.

A recipe lists the gates in the order they run, each with only the parameters that differ from the defaults:

    gates:
      nfc: {}
      pii: {action: scrub}
      hangul_share: {min_share: 0.6}
      foreign_script: {}
      length: {max_answer_chars: 4000}
      repetition: {}
      refusal: {extra_patterns: ["제가 도울 수 있는 범위를 벗어"]}
      exact_dedup: {}
      near_dedup: {threshold: 0.85}
      decontaminate: {eval_files: [mirror/kmmlu_test.jsonl]}

    >>> rows = [{"messages": [{"role": "user", "content": "수도는?"}, {"role": "assistant", "content": "서울입니다."}]}] * 2
    >>> kept, report = run_gates(rows, build_gates({"hangul_share": {}, "exact_dedup": {}}))
    >>> len(kept), [(r["gate"], r["in"], r["out"], r["removed"]) for r in report]
    (1, [('hangul_share', 2, 2, {}), ('exact_dedup', 2, 1, {'exact duplicate': 1})])

Gates: nfc, hangul_share, foreign_script, length, repetition, refusal (text_gates.py, refusal.py);
exact_dedup, near_dedup (dedup.py); pii (pii.py); decontaminate (decontaminate.py); judge (judge.py,
needs a scoring callable from the teacher backend).
"""

from __future__ import annotations

import logging
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from data_tools.gates.base import Gate, GateResult
from data_tools.gates.decontaminate import DecontaminateGate
from data_tools.gates.dedup import ExactDedupGate, NearDedupGate
from data_tools.gates.judge import JudgeGate, ScoreFn
from data_tools.gates.pii import KINDS as PII_KINDS
from data_tools.gates.pii import PiiGate, PiiMatch, find_pii, scrub_pii
from data_tools.gates.refusal import RefusalGate
from data_tools.gates.text_gates import (ForeignScriptGate, HangulShareGate, LengthGate, NfcGate,
                                         RepetitionGate)

__all__ = ["GATES", "Gate", "GateResult", "PII_KINDS", "PiiMatch", "build_gates", "find_pii", "gate_parameters",
           "run_gates", "scrub_pii"]

log = logging.getLogger(__name__)

GATES: dict[str, type] = {gate.name: gate for gate in (
    NfcGate, HangulShareGate, ForeignScriptGate, LengthGate, RepetitionGate, RefusalGate,
    ExactDedupGate, NearDedupGate, PiiGate, DecontaminateGate, JudgeGate)}


def gate_parameters(name: str) -> dict[str, Any]:
    """The parameters a recipe may set for a gate, with their defaults (injected callables excluded)."""
    cls = GATES[name]
    return {f.name: f.default_factory() if callable(f.default_factory) else f.default
            for f in fields(cls) if not f.metadata.get("injected")}


def _fits(value: Any, hint: Any) -> bool:
    """Whether a recipe value fits a parameter's annotation (the few kinds gates use: bool, int, float, str,
    list[...], and X | None)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if origin is list:
        return (isinstance(value, Sequence) and not isinstance(value, str)
                and all(_fits(item, args[0]) for item in value))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def build_gates(spec: Mapping[str, Mapping[str, Any] | None] | None, judge: ScoreFn | None = None) -> list[Gate]:
    """Gates from a recipe node {gate_name: {params}}, in its order. An unknown gate or parameter, or a value of
    the wrong type, is a ValueError that names what is valid. `judge` is the teacher's scoring callable, needed
    only by the `judge` gate."""
    gates = []
    for name, node in (spec or {}).items():
        if name not in GATES:
            raise ValueError(f"unknown gate '{name}'; valid gates: {', '.join(GATES)}")
        cls, params = GATES[name], dict(node or {})
        allowed = gate_parameters(name)
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ValueError(f"gate '{name}' has unknown parameters {unknown}; "
                             f"valid parameters: {', '.join(allowed) or '(none)'}")
        hints = typing.get_type_hints(cls)
        for key, value in params.items():
            if not _fits(value, hints[key]):
                raise ValueError(f"gate '{name}': {key}={value!r} is not {_type_name(hints[key])} "
                                 f"(default: {allowed[key]!r})")
            if isinstance(value, Sequence) and not isinstance(value, str):
                params[key] = list(value)  # a YAML list may arrive as a tuple or a ListConfig
        if name == "judge":
            params["score_fn"] = judge
        gates.append(cls(**params))
    return gates


def run_gates(rows: list[dict], gates: Sequence[Gate]) -> tuple[list[dict], list[dict]]:
    """Run the gates in order, each on the rows the previous one kept. Returns the rows kept and one report per
    gate: {"gate", "in", "out", "removed", "changed", "examples"} (plain dicts, ready for a data card)."""
    report = []
    for gate in gates:
        result = gate(rows)
        entry = {"gate": gate.name, "in": len(rows), "out": len(result.kept), "removed": dict(result.removed),
                 "changed": dict(result.changed), "examples": {k: list(v) for k, v in result.examples.items()}}
        log.info("gate %s: %d -> %d rows; removed %s; changed %s", entry["gate"], entry["in"], entry["out"],
                 entry["removed"] or "none", entry["changed"] or "none")
        report.append(entry)
        rows = result.kept
    return rows, report
