"""The folder `kosov synth` writes a dataset into (DIR): what it may replace, and the lock a job holds on it from
before it is looked at until the dataset is in place. A job killed while it wrote DIR is put right by the next:
a swap cut short is tidied, the teacher cache it had moved into its staging folder (.DIR.staging-*) comes back to
DIR/teacher_cache, and its staging folders go.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from training.errors import KosovError
from training.config import resolve_path
from training.run_dir import RUN_MARKERS, lock_beside, release_beside
from training.safe_write import check_not_holding, tidy_swap
from training.schema import KosovConfig

log = logging.getLogger("training.synth")

DATASET_MARKERS = ("DATACARD.md", "train.jsonl", "test.jsonl")
# What only a training or eval run folder holds (a dataset has its own config.yaml and provenance.json too).
RUN_ONLY_MARKERS = tuple(m for m in RUN_MARKERS if m not in ("config.yaml", "provenance.json")) + ("train.log",)
CACHE = "teacher_cache"


@contextlib.contextmanager
def output_folder(out: Path, cfg: KosovConfig) -> Iterator[None]:
    """Hold DIR's lock while the job runs, having put right what a killed job left and checked DIR may be
    replaced."""
    lock = _lock_output(out)
    try:
        tidy_swap(out)  # a job killed while it swapped: the earlier dataset back, or the aside copy gone
        stagings = _stagings(out)
        _recover_cache(out, stagings)
        check_output_dir(out, cfg)
        _remove_stagings(out, stagings, lock is not None)
        yield
    finally:
        release_beside(lock)


def check_output_dir(out: Path, cfg: KosovConfig) -> None:
    """Refuse a folder that swapping the new dataset in would wrongly replace: a training or eval run, a folder of
    other files, a dataset without overwrite=true, or one holding this job's inputs or the current folder. A folder
    holding only an earlier job's teacher_cache is fine (the cache carries over)."""
    if out.exists() and not out.is_dir():
        raise KosovError(f"output_dir {out} is a file", fix="choose a folder for the dataset")
    names = {p.name for p in out.iterdir() if not p.name.startswith(".")} if out.is_dir() else set()
    if names & set(RUN_ONLY_MARKERS) or ("config.yaml" in names and "DATACARD.md" not in names):
        raise KosovError(f"{out} holds a kosov training or eval run, not a dataset",
                         fix="write the dataset to another output_dir (even overwrite=true does not replace a run)")
    if names & set(DATASET_MARKERS):
        if not cfg.overwrite:
            raise KosovError(f"{out} already holds a dataset", fix="pass overwrite=true or choose another output_dir")
    elif names - {CACHE}:
        shown = ", ".join(sorted(names - {CACHE})[:5])
        raise KosovError(f"{out} holds files that are not a kosov dataset ({shown})",
                         fix="choose a new or empty output_dir: the dataset replaces the whole folder")
    kept = {"the current folder": Path.cwd()}
    kept.update({f"the synth input {p}": resolve_path(p) for p in [*cfg.synth.inputs, *cfg.synth.decontaminate_with]})
    check_not_holding(out, kept)


def _lock_output(out: Path) -> Any:
    """Hold the output folder's lock (run_dir.lock_beside, as `kosov convert` locks its DST) from before the folder
    is looked at until the dataset is in place: a second job writing the same folder is refused while this one runs
    (it would share the teacher cache and swap over this one's dataset), so every .NAME.staging-* found while
    holding it is a killed job's."""
    return lock_beside(out, f"another kosov job is writing {out}",
                       "wait for it to finish, or stop it, and run this again; or choose another output_dir",
                       f"nothing stops a second synth job from writing {out} at the same time")


def _stagings(out: Path) -> list[Path]:
    """The staging folders synth jobs writing `out` made (.NAME.staging-*), the newest first."""
    found = [p for p in out.parent.glob(f"{glob.escape(f'.{out.name}')}.staging-*")
             if p.is_dir() and not p.is_symlink()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _recover_cache(out: Path, stagings: list[Path]) -> None:
    """A job killed after it moved the teacher cache into its staging folder, before that folder got into place,
    left the cache there: it comes back to out/teacher_cache (the newest when several jobs left one; the answers of
    the others that it lacks are moved in too: a cache file is named by its request, so any copy of it is as good),
    and the next job pays for none of those rows again."""
    cache = out / CACHE
    if out.exists() and not out.is_dir():  # check_output_dir refuses it
        return
    for staging in stagings:
        kept = staging / CACHE
        if not kept.is_dir() or kept.is_symlink():
            continue
        if not cache.exists():
            out.mkdir(parents=True, exist_ok=True)
            kept.rename(cache)
            log.warning("put the teacher cache back from %s into %s: a job was killed before its dataset got into "
                        "place", staging, cache)
            continue
        if not cache.is_dir():
            continue
        moved = 0
        for entry in kept.glob("*/*.json"):
            target = cache / entry.parent.name / entry.name
            if entry.name.startswith(".") or target.exists():
                continue
            target.parent.mkdir(exist_ok=True)
            entry.rename(target)
            moved += 1
        if moved:
            log.warning("moved %d teacher answers a killed job left in %s into %s", moved, staging, cache)


def _remove_stagings(out: Path, stagings: list[Path], locked: bool) -> None:
    """Remove what killed jobs left in their staging folders (a whole dataset each, the cache already taken out).
    Only while holding the output folder's lock, which every job writing it holds until its staging folder is in
    place: none of them is a running job's."""
    left = [p for p in stagings if p.exists()]
    if not left:
        return
    if not locked:  # a running job's folder cannot be told from a killed one's
        log.warning("%s: left by earlier jobs writing %s; delete them if none is still running",
                    ", ".join(p.name for p in left), out)
        return
    for staging in left:
        shutil.rmtree(staging, ignore_errors=True)
        log.warning("removed %s: what a synth job killed while it wrote %s left", staging, out)
