"""A file written whole or not at all, for data_tools and training alike: to a temporary name of this writer's own
(two jobs writing one file never write into each other's), flushed to disk, renamed into place, then the folder
synced. Without the fsyncs a power loss can leave the renamed file empty, or the old one back; a failure removes
the temporary file and leaves the old file as it was."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path


def write_atomic(path: Path, text: str | Iterable[str]) -> None:
    """`text`, or its pieces in order (JSON lines, say, without joining them first), as the whole of `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for piece in [text] if isinstance(text, str) else text:
                f.write(piece)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)  # the rename itself is durable once the folder's entry is


def fsync_folder(folder: Path) -> None:
    """A folder's entries on disk (POSIX; a no-op elsewhere)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a folder
        pass
    finally:
        os.close(fd)
