"""The run folder: one per run, never overwritten unless asked, resumable, free of secrets.

    DIR/config.yaml       the resolved recipe (secrets redacted)
    DIR/provenance.json   git sha, package versions, dataset hashes, seed, host, GPU
    DIR/checkpoints/      trainer checkpoints (resume=true continues from the last one)
    DIR/adapter/          the LoRA adapter and tokenizer (DIR/model/ for a full fine-tune)
    DIR/metrics.json      losses, steps, tokens, runtime
    DIR/train.log         the log of every run in this folder

Files are written atomically (a temporary file, flushed to disk, renamed into place), so a killed run or a power
loss never leaves half a file. What a job killed while it replaced something leaves behind is put right by the next
job to hold the folder (tidy_leftovers).
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import os
import re
import shlex
import shutil
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from training.errors import KosovError
from training.redaction import RedactingFilter
from training.safe_write import exists_or_link, remove_path, tidy_swap

log = logging.getLogger(__name__)

RUN_MARKERS = ("config.yaml", "provenance.json", "checkpoints", "adapter", "model", "metrics.json", "report.json")


def checkpoint_state(checkpoint: Path) -> dict[str, Any] | None:
    """A checkpoint's trainer_state.json, written last when a checkpoint saves; None when it is missing or cut short
    (a kill, or a full disk, while it was written), or names another step than the folder."""
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    step = checkpoint.name.rsplit("-", 1)[-1]
    return state if isinstance(state, dict) and str(state.get("global_step")) == step else None


def last_checkpoint(checkpoints: Path) -> Path | None:
    """The checkpoint with the highest step that finished saving (a whole trainer_state.json)."""
    found = sorted((p for p in checkpoints.glob("checkpoint-*") if p.name.rsplit("-", 1)[-1].isdigit()),
                   key=lambda p: int(p.name.rsplit("-", 1)[-1]), reverse=True)
    for checkpoint in found:
        if checkpoint_state(checkpoint) is not None:
            return checkpoint
        log.warning("skipping %s: it did not finish saving", checkpoint)
    return None


LOCK = ".kosov.lock"


def unusable(folder: Path, error: OSError) -> KosovError:
    """The error for a run folder that cannot be created or written: the path, the operating system's reason."""
    where = f" ({error.filename})" if error.filename and str(error.filename) != str(folder) else ""
    return KosovError(f"cannot write to the folder {folder}: {error.strerror or error}{where}",
                      fix="use a folder on a file system you can write to, with free space (not read-only, not "
                          "under a file): for a run, another output_dir")


def usable_folder(folder: Path) -> None:
    """Create `folder` (with its parents) and check it can be written to, or raise unusable()'s error."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise unusable(folder, e) from None
    if not os.access(folder, os.W_OK | os.X_OK):  # a read-only file system says so even to root
        code = errno.EROFS if os.statvfs(folder).f_flag & os.ST_RDONLY else errno.EACCES
        raise unusable(folder, OSError(code, os.strerror(code)))


def lock_run_folder(folder: Path) -> Any:
    """Hold an exclusive lock on a run folder for the life of the job (flock on DIR/.kosov.lock): a second job on
    the folder, with overwrite=true too, is refused while this one runs. The kernel releases it when the process
    ends, so a killed job leaves no stale lock; holding it, it first puts right what a killed job left in the folder
    (tidy_leftovers). Returns the open lock file (None where the file system has no locks, with a warning)."""
    usable_folder(folder)
    handle = hold_lock(folder / LOCK, lambda holder: KosovError(
        f"{folder} is in use by a running job ({holder})",
        fix="wait for it to finish or stop it, or choose another output_dir (overwrite=true does not replace a run "
            "that is still running)"), f"nothing stops a second job from using {folder}")
    try:
        tidy_leftovers(folder)  # no job runs in it now: what a killed one left can be put right
    except BaseException:
        if handle is not None:
            handle.close()
        raise
    return handle


def lock_beside(folder: Path, busy: str, fix: str, unguarded: str) -> Any:
    """Hold the lock of a folder a job writes whole and swaps into place (flock on .NAME.kosov.lock beside it, one
    file however the folder is spelled), from before the folder is looked at until it is in place: a second job
    writing it is refused with `busy` and `fix` while this one runs. The kernel releases a killed job's lock, and
    release_beside() removes the file. None where the file system has no locks (a warning says what is then
    `unguarded`)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    path = folder.parent.resolve() / f".{folder.name}{LOCK}"
    handle = hold_lock(path, lambda holder: KosovError(f"{busy} ({holder}; it holds {path})", fix=fix), unguarded)
    if handle is None:
        path.unlink(missing_ok=True)
    return handle


def release_beside(handle: Any) -> None:
    """Remove lock_beside()'s file and release the lock (removed while still held: no one locks a removed file)."""
    if handle is not None:
        Path(handle.name).unlink(missing_ok=True)
        handle.close()


def hold_lock(path: Path, in_use: Any, unguarded: str) -> Any:
    """An exclusive flock on `path`, held while the returned file stays open, with this host, pid and time written
    in it; in_use(holder) is the KosovError raised while another process holds it. A lock file its holder removed
    as it let go is no lock: the one at `path` is taken instead. None, with a warning that says what is then
    `unguarded`, where the file system has no locks (an NFS mount without lockd)."""
    import fcntl

    while True:
        try:
            handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open while the job runs
        except OSError as e:  # a read-only or full file system, a folder without write permission
            raise unusable(path.parent, e) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise in_use(holder) from None
        except OSError as e:
            log.warning("cannot lock %s (%s): %s", path, e, unguarded)
            handle.close()
            return None
        try:
            here = os.stat(path)
        except FileNotFoundError:
            here = None
        held = os.fstat(handle.fileno())
        if here is not None and (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino):
            break
        handle.close()
    handle.seek(0)
    handle.truncate()
    handle.write(f"host {socket.gethostname()} pid {os.getpid()} since "
                 f"{dt.datetime.now().isoformat(timespec='seconds')}\n")
    handle.flush()
    return handle


# What overwrite=true replaces (train.log stays: it is the log of every run in the folder).
REPLACED = (*RUN_MARKERS, "report.md", "report.png", "wandb", "tensorboard", "wandb_run.json")
# overwrite=true sets the earlier run aside in a hidden folder whose name says how far it got, so a job killed at any
# point leaves a state the next one can read (tidy_leftovers):
SETTING_ASIDE = ".setting-aside-"  # its files are being moved in: the rest are still in the folder, and nothing new
SET_ASIDE = ".set-aside-"  # all of them are in: the folder holds only what the new run wrote while it loaded
DELETING = ".deleting-"  # the new run got under way: the earlier one is being deleted
SWAPPED = ("adapter", "model")  # what the run swaps into place when it ends (swap_into_place)


def put_back(aside: Path, folder: Path) -> None:
    """Move an earlier run set aside by overwrite=true back into `folder`. Once all of it was set aside, whatever of
    the REPLACED names the folder holds is the new run's, which never got under way: it goes first."""
    if aside.name.startswith(SET_ASIDE):
        for name in REPLACED:
            remove_path(folder / name)
    for item in aside.iterdir():
        item.rename(folder / item.name)
    aside.rmdir()


def tidy_leftovers(folder: Path) -> None:
    """Put right what a job killed while it replaced something left in its run folder (call it holding the folder's
    lock): an earlier run set aside by overwrite=true comes back if the new run never got under way, or goes if it
    did; an adapter/ or model/ set aside by a swap comes back, or goes, as tidy_swap finds."""
    for aside in sorted(folder.glob(f"{DELETING}*")):
        shutil.rmtree(aside, ignore_errors=True)
        log.warning("removed %s: the run a killed overwrite=true job replaced (the new run had got under way)", aside)
    asides = sorted([*folder.glob(f"{SETTING_ASIDE}*"), *folder.glob(f"{SET_ASIDE}*")])
    if len(asides) > 1:  # only without locks (a second job did not tidy first): which came last cannot be told
        log.warning("%s holds %d runs set aside by killed overwrite=true jobs (%s): move back the one to keep",
                    folder, len(asides), ", ".join(p.name for p in asides))
    elif asides:
        put_back(asides[0], folder)
        log.warning("put the earlier run in %s back from %s: the overwrite=true job that set it aside was killed "
                    "before it got under way", folder, asides[0].name)
    for name in SWAPPED:
        tidy_swap(folder / name)
    for legacy in folder.glob(".replaced-*"):  # an older kosov's: how far it got cannot be told
        log.warning("%s was left by a kosov job killed during overwrite=true; it may hold the only copy of files of "
                    "the earlier run. Look at it, then move them back or delete it", legacy)


@dataclass
class RunDir:
    path: Path
    resume_from: Path | None = None  # the checkpoint a resumed run continues from
    lock: Any = None  # the open lock file while this job holds the folder (lock_run_folder)
    replaced: Path | None = None  # overwrite=true: the earlier run, set aside until the new one is under way

    def release(self) -> None:
        if self.lock is not None:
            self.lock.close()  # closing the file releases the flock
            self.lock = None

    def drop_replaced(self) -> None:
        """The new run is under way: the run it replaces goes (renamed first, so a kill while it is deleted leaves
        a folder the next job knows to delete, not one it would put back)."""
        if self.replaced is not None:
            deleting = self.replaced.rename(self.path / self.replaced.name.replace(SET_ASIDE, DELETING))
            shutil.rmtree(deleting, ignore_errors=True)
            self.replaced = None

    def restore_replaced(self) -> None:
        """The new run failed before it got under way: the run it was to replace comes back, whole."""
        if self.replaced is None:
            return
        try:
            put_back(self.replaced, self.path)  # what the failed run wrote goes, whether the earlier run had it or not
            log.warning("the new run failed: the earlier run in %s is back", self.path)
        except OSError as e:  # never hide the failure being handled
            log.error("could not put the earlier run back from %s: %s", self.replaced, e)
        self.replaced = None

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def adapter(self) -> Path:
        return self.path / "adapter"

    def holds_run(self) -> bool:
        return any((self.path / m).exists() for m in RUN_MARKERS)


def refuse_existing_run(run: RunDir) -> None:
    if run.holds_run():
        raise KosovError(
            f"{run.path} already holds a run",
            fix="pass resume=true to continue it from its last checkpoint, overwrite=true to replace it, "
                "or choose another output_dir",
        )


def default_output_dir(name: str) -> Path:
    return Path("outputs") / name / dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


def hydra_value(text: str) -> str:
    """`text` written so that Hydra's override grammar reads it back as it is: bare where it does (a plain path),
    else in double quotes (spaces, Korean letters, = , [ ] ' and the like; null), with the quotes, the backslashes
    before them and ${ escaped, which would otherwise end the value or read as an interpolation."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    if "${" not in text:
        try:
            if OverridesParser.create().parse_override(f"key={text}").value() == text:
                return text
        except HydraException:
            pass
    escaped = re.sub(r'(\\*)("|$)', lambda m: m[1] * 2 + ("\\" + m[2] if m[2] else ""), text)
    return '"' + escaped.replace("${", "\\${") + '"'


def folder_override(folder: Any) -> str:
    """output_dir=FOLDER (its absolute path) as one shell word to paste into a command: quoted for Hydra where its
    grammar needs it (hydra_value), then for the shell (a path with spaces, Korean letters, quotes or $)."""
    return shlex.quote(f"output_dir={hydra_value(str(Path(folder).resolve()))}")


def resume_needs_folder(name: str, sweep: bool = False, shown: int = 3) -> KosovError:
    """resume=true without output_dir: the run (a sweep's jobs) would go to a new timestamped folder and start from
    the first step. The error names the latest folders of the experiment under ./outputs that hold checkpoints."""
    root = Path("outputs") / name
    pattern, up = ("multirun_*/*/checkpoints/checkpoint-*", 3) if sweep else ("*/checkpoints/checkpoint-*", 2)
    found = sorted({p.parents[up - 1] for p in root.glob(pattern)}, key=lambda p: p.name, reverse=True)
    listed = f"; the latest with checkpoints in {root}: " + ", ".join(str(p.resolve()) for p in found[:shown]) \
        if found else ""
    what = ("resume=true continues the sweep's jobs in their folders (output_dir/<job number>)" if sweep else
            "resume=true continues the run in output_dir")
    where = f"{root}/multirun_<now>" if sweep else f"{root}/<now>"
    return KosovError(f"{what}, but no output_dir was given: it would go to a new timestamped folder ({where}) and "
                      "start from the first step",
                      fix=f"pass the stopped {'sweep' if sweep else 'run'}'s folder: output_dir=DIR resume=true"
                          f"{listed}")


def prepare_run_dir(output_dir: Path, *, overwrite: bool, resume: bool, is_main: bool = True,
                    lock: Any = None) -> RunDir:
    """Claim the run folder: refuse an existing run unless overwrite or resume says what to do with it.

    Every process of a distributed run checks (so all fail together, before anything changes); only the main
    process deletes and creates. Callers then wait for it (accelerate's wait_for_everyone). `lock`: the folder's
    lock, when the caller took it earlier (lock_run_folder)."""
    run = RunDir(Path(output_dir))
    if is_main:  # before anything is checked or deleted: a running job's folder is never touched
        run.lock = lock if lock is not None else lock_run_folder(run.path)
    try:
        _claim(run, overwrite=overwrite, resume=resume, is_main=is_main)
    except BaseException:
        if is_main:
            run.restore_replaced()
        run.release()
        raise
    return run


def _claim(run: RunDir, *, overwrite: bool, resume: bool, is_main: bool) -> None:
    if resume:
        run.resume_from = last_checkpoint(run.checkpoints)
        if run.resume_from is None and (run.path / "metrics.json").is_file():
            raise KosovError(f"resume=true, but the finished run in {run.path} kept no checkpoint to continue from",
                             fix="start a new run: overwrite=true or another output_dir")
        if run.resume_from is None and run.holds_run():  # killed before its first checkpoint: it starts again
            log.warning("resume=true, but %s holds no finished checkpoint: starting from the first step",
                        run.checkpoints)
            overwrite = True
        elif run.resume_from is None:  # the first start of a recipe that always resumes (a submitit job's), or a
            # mistyped folder: said where it shows
            log.warning("resume=true, but %s holds no run yet: starting a new one from the first step (a stopped "
                        "run is continued with output_dir=<its folder>)", run.path)
    elif not overwrite:
        refuse_existing_run(run)
    if overwrite and run.holds_run() and is_main:
        suffix = uuid.uuid4().hex[:8]
        run.replaced = run.path / f"{SETTING_ASIDE}{suffix}"
        log.warning("overwrite=true: the run in %s is set aside (%s%s) and deleted once the new one has loaded its "
                    "data and model; if the new one fails before, it is put back", run.path, SET_ASIDE, suffix)
        run.replaced.mkdir()
        for marker in REPLACED:
            if exists_or_link(run.path / marker):
                (run.path / marker).rename(run.replaced / marker)
        run.replaced = run.replaced.rename(run.path / f"{SET_ASIDE}{suffix}")
    if is_main:
        run.path.mkdir(parents=True, exist_ok=True)


def add_file_logging(run: RunDir, earlier: list[logging.LogRecord] | None = None) -> logging.Handler:
    """Append this process's log records to DIR/train.log (secrets redacted: RedactingFilter), after
    `earlier`: records logged before the file could be opened (what putting a killed job's leftovers right did)."""
    handler = logging.FileHandler(run.path / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    for record in earlier or ():
        handler.handle(record)
    logging.getLogger().addHandler(handler)
    return handler
