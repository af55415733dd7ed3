"""Files and folders written whole or not at all: a file goes to a temporary name, is flushed to disk and renamed
into place; a folder is built under a staging name and swapped in, the earlier one set aside until the new one is
in place. What a job killed half-way through a swap left is put right by the next one (tidy_swap)."""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from data_tools.atomic import fsync_folder, write_atomic
from training.errors import KosovError
from training.redaction import redact

log = logging.getLogger(__name__)


def fsync_tree(folder: Path) -> None:
    """Every file under `folder` and the folders themselves on disk: what a rename then puts in place survives a
    crash whole (an adapter's weights, a converted model's shards), not as empty files."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path):
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_folder(Path(root))


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(redact(data), ensure_ascii=False, indent=2, default=str) + "\n")


def read_json(path: Path, fix: str) -> dict[str, Any]:
    """A JSON file kosov (or a checkpoint) wrote, as a dict, or a KosovError that names the file and says `fix`."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise KosovError(f"cannot be read as JSON ({e})", where=str(path), fix=fix) from None
    if not isinstance(data, dict):
        raise KosovError(f"holds a JSON {type(data).__name__}, not an object", where=str(path), fix=fix)
    return data


def exists_or_link(path: Path) -> bool:
    return path.is_symlink() or path.exists()


def remove_path(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()  # a link is removed, never what it points to
    elif path.exists():
        shutil.rmtree(path)


def swap_into_place(staging: Path, target: Path, *, synced: bool = False) -> None:
    """Rename a finished folder to `target`. An existing target (a folder, a file or a link) is renamed aside first
    and removed after, so a crash at any point loses neither: the old one is at worst left aside, whole, as
    .NAME.replaced-*, never deleted before the new one is in place; it is renamed to .NAME.deleting-* before it is
    deleted, so a kill while it is deleted leaves a part that is never put back (tidy_swap puts both right later).
    synced=True: the caller has put staging's files on disk itself (fsync_tree), so the swap is renames only."""
    old = target.with_name(f".{target.name}.replaced-{uuid.uuid4().hex[:8]}")
    if staging.is_dir() and not synced:
        fsync_tree(staging)
    if exists_or_link(target):
        target.rename(old)
    staging.rename(target)
    fsync_folder(target.parent)  # the new one in place on disk before the old one goes
    if exists_or_link(old):
        _delete_aside(old, target)
    tidy_swap(target)  # what an earlier swap, killed half-way, left beside it


def _delete_aside(old: Path, target: Path) -> None:
    """Delete a .NAME.replaced-* copy, renamed to .NAME.deleting-* first: only a whole copy keeps the name that
    tidy_swap may put back."""
    suffix = old.name.removeprefix(f".{target.name}.replaced-")
    remove_path(old.rename(target.with_name(f".{target.name}.deleting-{suffix}")))


def tidy_swap(target: Path) -> None:
    """Put right what swap_into_place left beside `target` when it was killed. A .NAME.deleting-* (the earlier
    content, partly deleted) always goes. A .NAME.replaced-* (the earlier content, whole) goes back when the kill came
    between its two renames (`target` is missing), else the new one is in place and it goes."""
    pattern = glob.escape(f".{target.name}.")
    for part in sorted(target.parent.glob(f"{pattern}deleting-*")):
        remove_path(part)
        log.warning("removed %s: an earlier %s a killed job was deleting", part, target.name)
    left = sorted(target.parent.glob(f"{pattern}replaced-*"))
    if not left:
        return
    if exists_or_link(target):
        for old in left:
            _delete_aside(old, target)
            log.warning("removed %s: an earlier %s a killed job had set aside; the new one is in place", old,
                        target.name)
    elif len(left) == 1:
        left[0].rename(target)
        log.warning("put %s back as %s: a job was killed before its new %s got into place", left[0], target,
                    target.name)
    else:  # which of them was set aside last cannot be told: each may be the only copy of what the user wants
        log.warning("%s is missing and %d earlier copies of it are left aside (%s): move the one to keep to %s "
                    "(the next job removes the others)", target, len(left), ", ".join(p.name for p in left), target)


def check_not_holding(target: Path, kept: dict[str, Path]) -> None:
    """Refuse a target folder that is, or holds, something replacing it would delete (named by `kept`)."""
    for what, path in kept.items():
        if target.resolve() == path.resolve() or target.resolve() in path.resolve().parents:
            raise KosovError(f"{target} is {what} or holds it ({path}): replacing it would delete it",
                             fix="write to another folder")
