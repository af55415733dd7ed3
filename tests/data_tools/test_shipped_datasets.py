"""Every dataset kosov ships records where its rows come from and under which license, as generated rows do: a
benchmark file too (the decontamination gate and lm-eval read it; a release's lineage may name it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DATASETS = Path(__file__).resolve().parents[2] / "data_tools" / "datasets"


@pytest.mark.parametrize("path", sorted(DATASETS.rglob("*.jsonl")), ids=lambda p: p.relative_to(DATASETS).as_posix())
def test_every_shipped_row_records_its_source_and_license(path):
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert rows
    for n, row in enumerate(rows, 1):
        meta = row.get("meta") or {}
        assert meta.get("license") and meta.get("source"), f"{path.name}:{n} records no license or source"


@pytest.mark.parametrize("unit", ["word", "char"])
def test_decontamination_against_the_mini_bench_matches_its_items_not_its_meta(unit):
    """ko_mini_bench's meta (the same source and license on every row) is read with its items: a row quoting a
    question is removed, a row naming the benchmark's source and license is not."""
    from tests.data_tools.test_gates import gate, sft

    bench = DATASETS / "ko_mini_bench.jsonl"
    item = json.loads(bench.read_text(encoding="utf-8").splitlines()[0])
    copied = sft("정답은 '로'입니다.", item["question"])
    named = sft("이 벤치마크는 handwritten 문항으로 Apache-2.0 라이선스입니다.", "kosov/ko_mini_bench 는 어디서 왔나요?")
    result = gate("decontaminate", eval_files=[str(bench)], unit=unit)([copied, named])
    assert result.kept == [named] and sum(result.removed.values()) == 1
