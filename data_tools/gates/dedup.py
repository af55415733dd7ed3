"""Duplicate rows: exact (after normalising) and near (MinHash LSH over character shingles). Both keep the
first row of each group, so the order of the input decides which copy survives, and read the user turns too
(`fields="all"`): the same answer to two different questions is not a duplicate.

    >>> row = lambda q, a: {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
    >>> rows = [row("수도는?", "서울입니다."), row("수도는?", "서울입니다!!"), row("수도는?", "부산입니다.")]
    >>> dict(ExactDedupGate()(rows).removed)
    {'exact duplicate': 1}
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import ClassVar

from tqdm.auto import tqdm

from data_tools.gates.base import (FIELDS, GateResult, check_choice, check_range, match_key, selected_turns,
                                   turn_text)

SEED = 1  # MinHash permutations: fixed, so the same rows are kept on every run and every machine
PROGRESS_FROM = 5000  # rows; smaller runs finish before a bar would help


def row_texts(row: dict, fields: str, system: bool = True) -> list[str]:
    return [turn_text(turn) for turn in selected_turns(row, fields) if system or turn.get("role") != "system"]


@dataclass
class ExactDedupGate:
    """Drop rows whose text equals an earlier row's after NFC, case folding, punctuation and whitespace."""

    fields: str = "all"
    name: ClassVar[str] = "exact_dedup"

    def __post_init__(self) -> None:
        check_choice(self.name, "fields", self.fields, FIELDS)

    def __call__(self, rows: list[dict]) -> GateResult:
        result, seen = GateResult(), set()
        for row in rows:
            texts = row_texts(row, self.fields)
            key = "\x1f".join(map(match_key, texts))  # one segment per turn: "ab"+"c" is not "a"+"bc"
            digest = hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest()  # 16 bytes, not the text
            if digest in seen:
                result.remove("exact duplicate", "\n".join(texts))
            else:
                seen.add(digest)
                result.kept.append(row)
        return result


def shingles(text: str, size: int) -> set[bytes]:
    """Character shingles of the text in match form without spaces (Korean spacing varies between copies of the
    same sentence); a text shorter than one shingle is its own shingle."""
    flat = "".join(match_key(text).split())
    if len(flat) <= size:
        return {flat.encode("utf-8")} if flat else set()
    return {flat[i : i + size].encode("utf-8") for i in range(len(flat) - size + 1)}


@dataclass
class NearDedupGate:
    """Drop rows whose estimated Jaccard similarity of character shingles (system turns left out) to an earlier
    kept row reaches `threshold`. Only kept rows are indexed, so each survivor represents its cluster (a chain
    A~B~C where C is not near A keeps A and C)."""

    shingle: int = 5
    num_perm: int = 128
    threshold: float = 0.8
    fields: str = "all"
    name: ClassVar[str] = "near_dedup"

    def __post_init__(self) -> None:
        check_range(self.name, "shingle", self.shingle, 1)
        check_range(self.name, "num_perm", self.num_perm, 16)
        check_range(self.name, "threshold", self.threshold, 0.01, 1.0)
        check_choice(self.name, "fields", self.fields, FIELDS)
        self._lsh()  # fail at build time, not after a long generation run

    def _lsh(self):
        from datasketch import MinHashLSH

        try:
            return MinHashLSH(threshold=self.threshold, num_perm=self.num_perm)
        except ValueError as e:  # too few bands: a threshold near 1 needs more permutations
            raise ValueError(f"gate 'near_dedup': threshold={self.threshold} with num_perm={self.num_perm} "
                             f"does not work ({e}); lower the threshold or raise num_perm") from None

    def __call__(self, rows: list[dict]) -> GateResult:
        from datasketch import MinHash

        # Random permutations are drawn once and shared: each MinHash would otherwise redraw them from the seed.
        template = MinHash(num_perm=self.num_perm, seed=SEED)
        lsh = self._lsh()
        kept_signatures: dict[str, MinHash] = {}
        result = GateResult()
        for index, row in enumerate(tqdm(rows, desc="near_dedup", disable=len(rows) < PROGRESS_FROM)):
            # Without the system turn: one long system prompt on every row (synth.system) would make unrelated
            # conversations near duplicates. Exact dedup keeps it: there the rest must match too.
            text = "\n".join(row_texts(row, self.fields, system=False))
            signature = MinHash(num_perm=self.num_perm, seed=SEED, permutations=template.permutations,
                                scheme=template.scheme)
            signature.update_batch(sorted(shingles(text, self.shingle)))
            # LSH returns candidates, some below the threshold: confirm each with the signature estimate.
            if any(kept_signatures[key].jaccard(signature) >= self.threshold for key in lsh.query(signature)):
                result.remove("near duplicate", text)
                continue
            lsh.insert(str(index), signature)
            kept_signatures[str(index)] = signature
            result.kept.append(row)
        return result
