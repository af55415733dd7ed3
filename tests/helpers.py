"""Test helpers that are not fixtures."""

from __future__ import annotations

import struct
from pathlib import Path


def wandb_history(run_file: Path, key: str) -> list[float]:
    """Values of one metric from an offline wandb run file (run-*.wandb: a LevelDB-style record log)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block, header = run_file.read_bytes(), 32768, 7
    records, partial, pos = [], b"", 7  # the file opens with a 7-byte ":W&B" header
    while pos + header <= len(data):
        if block - pos % block < header:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + header])
        chunk, pos = data[pos + header : pos + header + length], pos + header + length
        if kind == 0:
            break
        partial = chunk if kind in (1, 2) else partial + chunk
        if kind in (1, 4):
            records.append(partial)
    values = []
    for raw in records:
        record = pb.Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") == "history":
            values += [float(i.value_json) for i in record.history.item
                       if (i.key or "/".join(i.nested_key)) == key]
    return values


def quick(*overrides: str) -> list[str]:
    """Overrides for a few-step tiny-ko run (for tests of one behaviour, not of learning)."""
    return ["experiment=smoke-sft", "method.max_steps=3", "method.save_steps=100", "method.eval_steps=100",
            "method.logging_steps=1", "data.max_rows=24", *overrides]
