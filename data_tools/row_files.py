"""Row files on disk: JSON lines, a JSON array (whatever its suffix) or Parquet, read as (where, record) pairs, and
the errors that say where a row or a whole file cannot be used (file and line, byte column, or item number)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO


class BadRowError(ValueError):
    """A row that cannot be used. `reason` is a short label used to count skipped rows."""

    def __init__(self, where: str, reason: str, detail: str, fix: str):
        self.where, self.reason, self.detail, self.fix = where, reason, detail, fix
        super().__init__(f"{where}: {reason}: {detail}\nFix: {fix}")


class BadFileError(BadRowError):
    """A whole file that cannot be read as rows: an error even with on_bad_row=skip, which skips rows, not files."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


NOT_UTF8_FIX = "re-save the file as UTF-8 (e.g. iconv -f cp949 -t utf-8)"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")  # Windows PowerShell 5.1's `>` writes UTF-16
BOM = b"\xef\xbb\xbf"
JSON_FILE_FIX = 'write the rows as a JSON array ([{"messages": ...}, ...]) or as JSON lines (one row per line)'


def _jsonl_records(path: Path) -> Iterator[tuple[str, Any]]:
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            where = f"{path}:{number}"
            if number == 1 and raw.startswith(UTF16_BOMS):
                raise BadFileError(str(path), "not UTF-8", "the file is UTF-16 (as Windows PowerShell 5.1 writes "
                                   "with >)", "re-save it as UTF-8: iconv -f utf-16 -t utf-8 IN > OUT, or "
                                   "Out-File -Encoding utf8")
            if number == 1 and raw.removeprefix(BOM).strip() == b"{":  # no JSON line is a lone brace: one object
                raise BadFileError(str(path), "not rows", "the file is one JSON object spread over many lines, not "
                                   "rows", JSON_FILE_FIX)
            try:  # a BOM (Notepad, Excel) is not data: on any line, as `cat a.jsonl b.jsonl` puts b's mid-file
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError as e:
                column = len(raw[: e.start].decode("utf-8", errors="replace")) + 1  # in characters, not bytes
                yield where, BadRowError(where, "not UTF-8", f"byte 0x{raw[e.start]:02x} at column {column}",
                                         NOT_UTF8_FIX)
                continue
            if not text.strip():
                continue
            try:
                yield where, json.loads(text)
            except json.JSONDecodeError as e:
                yield where, BadRowError(where, "malformed JSON", f"{e.msg} at column {e.colno}",
                                         "each line must be one complete JSON object")


def _json_array_records(path: Path) -> Iterator[tuple[str, Any]]:
    # one array is parsed whole: a flaw anywhere loses every row, so it stops the run even with on_bad_row=skip
    try:
        items = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise BadFileError(str(path), "not UTF-8", f"byte at offset {e.start} of the JSON array", NOT_UTF8_FIX) from None
    except json.JSONDecodeError as e:
        raise BadFileError(str(path), "malformed JSON", f"{e.msg} at line {e.lineno} column {e.colno}; the whole "
                           "array is unreadable", "fix the JSON there, or write the rows as JSON lines (.jsonl), "
                           "where one bad line loses one row") from None
    if not isinstance(items, list):
        raise BadFileError(str(path), "not rows", f"the file is a JSON {type(items).__name__}, not an array of rows",
                           JSON_FILE_FIX)
    for number, item in enumerate(items, start=1):
        yield f"{path} item {number}", item


def _parquet_records(path: Path) -> Iterator[tuple[str, Any]]:
    import pyarrow.parquet as pq

    number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for record in batch.to_pylist():
            number += 1
            yield f"{path} row {number}", record


def read_records(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, record) pairs; a record that could not be read is a BadRowError in place of the record."""
    if path.suffix == ".parquet":
        return _parquet_records(path)
    with path.open("rb") as f:  # the first bytes tell an array from JSON lines (.json, or a .jsonl holding an array:
        # read line by line, only its last item would parse); a large file of lines stays on disk
        if f.read(1024).removeprefix(BOM).lstrip().startswith(b"[") and not (
                path.suffix == ".jsonl" and _first_line_is_a_record(f)):
            return _json_array_records(path)
    return _jsonl_records(path)


def _first_line_is_a_record(f: BinaryIO) -> bool:
    """A .jsonl whose first line is a whole JSON value ([...] too) with more lines after it is JSON lines: one bad
    first row, not an array that stops the run. An array on its one line is an array."""
    f.seek(0)
    try:
        json.loads(f.readline().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return any(line.strip() for line in f)


def encodable(text: str) -> bool:
    """Whether text can be written as UTF-8 (no lone surrogates, which a JSON \\ud800 escape can give)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
