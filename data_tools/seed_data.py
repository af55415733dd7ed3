"""The generated datasets kosov ships in data_tools/datasets/, rebuilt byte-identically from their generators:

    python -m data_tools.seed_data build      # (re)write them
    python -m data_tools.seed_data check      # exit 1 when a committed file differs from a rebuild

    ko_math/train.jsonl   GRPO prompt rows, train split of the Korean math generator
    ko_math/test.jsonl    GRPO prompt rows, the held-out split (disjoint by exercise): evaluation only
    ko_math/sft.jsonl     chat rows with worked solutions ending "정답: ...", train split

The hand-written sets next to them (ko_chat_seed.jsonl, ko_mini_bench.jsonl) are not generated.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from data_tools.chat_io import write_jsonl
from data_tools.generators.math_ko import generate, to_grpo_row, to_sft_row

DATASETS = Path(__file__).parent / "datasets"
SEED = 0
SIZES = {"train": 1000, "test": 300, "sft": 600}


def build(root: Path = DATASETS) -> list[Path]:
    """Write every generated dataset under `root`; returns the files written."""
    out = root / "ko_math"
    files = {
        "train.jsonl": [to_grpo_row(p, seed=SEED) for p in generate(SIZES["train"], seed=SEED, split="train")],
        "test.jsonl": [to_grpo_row(p, seed=SEED) for p in generate(SIZES["test"], seed=SEED, split="test")],
        "sft.jsonl": [to_sft_row(p, seed=SEED + 1) for p in generate(SIZES["sft"], seed=SEED + 1, split="train")],
    }
    for name, rows in files.items():
        write_jsonl(rows, out / name)
    return [out / name for name in files]


def check() -> list[str]:
    """Names of committed files that differ from a fresh build (empty when all match)."""
    with tempfile.TemporaryDirectory() as tmp:
        rebuilt = build(Path(tmp))
        return [str(p.relative_to(tmp)) for p in rebuilt
                if not (DATASETS / p.relative_to(tmp)).is_file()
                or (DATASETS / p.relative_to(tmp)).read_bytes() != p.read_bytes()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_tools.seed_data", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["build", "check"])
    if parser.parse_args(argv).action == "build":
        for path in build():
            print(f"wrote {path}")
        return 0
    stale = check()
    print("generated datasets match their generators" if not stale else f"stale: {stale} (run build)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
