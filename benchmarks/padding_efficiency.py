"""Padding efficiency on a realistic Korean length distribution: the share of the tokens a training batch holds
that are real text, for a plain TRL SFTTrainer (random batches padded to their longest row) against kosov's SFT
recipe (best-fit-decreasing packing into max_length blocks, flattened without padding). A CPU figure.

    python benchmarks/padding_efficiency.py                      # prints the table
    python benchmarks/padding_efficiency.py --results benchmarks/RESULTS.md   # and appends it there

The rows are kosov's own Korean SFT data (hand-written chat rows and worked math solutions), rendered by the
same code as training (training/chat_render.py) with the tiny-ko tokenizer, or a given tokenizer folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ["pkg://data_tools/datasets/ko_chat_seed.jsonl", "pkg://data_tools/datasets/ko_math/sft.jsonl"]


def sequence_lengths(tokenizer_dir: str | None) -> list[int]:
    from data_tools.chat_io import load_chat_files
    from training.chat_render import render_conversation
    from training.config import resolve_path
    from training.tiny_ko import load_tiny_tokenizer

    if tokenizer_dir:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    else:
        tokenizer = load_tiny_tokenizer()
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    rows = load_chat_files([resolve_path(p) for p in DATA]).rows
    return [len(s.input_ids) for row in rows for s in render_conversation(row.messages, tokenizer, end_token_id=end)]


def padded_batches(lengths: list[int], batch_size: int, seed: int = 0) -> float:
    """Real tokens / tokens in the batch, TRL's default: a random sampler, each batch padded to its longest row."""
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)
    real = total = 0
    for start in range(0, len(order), batch_size):
        batch = [lengths[i] for i in order[start : start + batch_size]]
        real += sum(batch)
        total += max(batch) * len(batch)
    return real / total


def packed_blocks(lengths: list[int], max_length: int) -> tuple[float, int]:
    """(fill of the max_length blocks, blocks) after TRL's best-fit-decreasing packing (what kosov uses)."""
    import datasets
    from trl.data_utils import pack_dataset

    data = datasets.Dataset.from_dict({"input_ids": [[1] * n for n in lengths]})
    packed = pack_dataset(data, max_length, "bfd")
    filled = sum(len(ids) for ids in packed["input_ids"])
    return filled / (len(packed) * max_length), len(packed)


def report(lengths: list[int], batch_size: int, max_lengths: list[int], tokenizer: str) -> str:
    lengths_sorted = sorted(lengths)
    lines = [
        f"### Padding efficiency ({dt.date.today().isoformat()}, CPU figure)", "",
        f"{len(lengths)} Korean SFT sequences (kosov's chat rows + worked math), tokenizer {tokenizer}; lengths "
        f"{lengths_sorted[0]}–{lengths_sorted[-1]} tokens, median {lengths_sorted[len(lengths) // 2]}.", "",
        "| batching | real tokens / tokens processed |", "|---|---|",
        f"| TRL default: random batches of {batch_size}, padded to the longest | "
        f"{padded_batches(lengths, batch_size):.1%} |",
    ]
    for max_length in max_lengths:
        fill, blocks = packed_blocks(lengths, max_length)
        lines.append(f"| kosov: bfd packing into {max_length}-token blocks ({blocks} blocks), padding-free | "
                     f"{fill:.1%} of each block filled; 100% of the flattened batch is real |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from benchmarks.train_throughput import at_least, emit

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokenizer", help="a tokenizer folder (default: tiny-ko)")
    parser.add_argument("--batch-size", type=at_least(1), default=8)
    parser.add_argument("--max-length", type=at_least(1), action="append", default=None)
    parser.add_argument("--results", help="append the table to this Markdown file")
    args = parser.parse_args(argv)

    emit(report(sequence_lengths(args.tokenizer), args.batch_size, args.max_length or [2048, 4096],
                args.tokenizer or "tiny-ko"), args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
