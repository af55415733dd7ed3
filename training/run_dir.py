"""The run folder: one per run, never overwritten unless asked, resumable, free of secrets.

    DIR/config.yaml       the resolved recipe (secrets redacted)
    DIR/provenance.json   git sha, package versions, dataset hashes, seed, host, GPU
    DIR/checkpoints/      trainer checkpoints (resume=true continues from the last one)
    DIR/adapter/          the LoRA adapter and tokenizer (DIR/model/ for a full fine-tune)
    DIR/metrics.json      losses, steps, tokens, runtime
    DIR/train.log         the log of every run in this folder

Files are written atomically (a temporary file renamed into place), so a killed run never leaves half a file.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from training.errors import KosovError

log = logging.getLogger(__name__)

SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "WANDB_API_KEY", "OPENAI_API_KEY")
# Keys whose values are secrets wherever they appear (not e.g. end_of_turn_token, which names a vocabulary item).
SECRET_KEY = re.compile(r"^(.*_)?(token|hf_token|hub_token|auth_token|access_token|api_key|apikey|secret|password)$",
                        re.IGNORECASE)
TOKEN_NAMES = re.compile(r"(end_of_turn|eos|bos|pad|unk|sep|cls|mask)_token$", re.IGNORECASE)
RUN_MARKERS = ("config.yaml", "provenance.json", "checkpoints", "adapter", "model", "metrics.json", "report.json")
PACKAGES = ("kosov", "torch", "transformers", "trl", "peft", "datasets", "accelerate", "hydra-core", "omegaconf",
            "tokenizers", "wandb", "bitsandbytes", "flash-attn", "liger-kernel", "vllm")


def secret_values() -> list[str]:
    return [v for k in SECRET_ENV if len(v := os.environ.get(k, "")) >= 8]


# Credentials inside URLs: user:password@ before the host, and query values named like keys (?api_key=..., &sig=...).
URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s:]+:[^/@\s]+@", re.IGNORECASE)
URL_SECRET_QUERY = re.compile(r"(?P<name>[?&](?:[a-z0-9_-]*(?:key|token|secret|password|passwd|sig|signature)"
                              r"[a-z0-9_-]*)=)[^&#\s]+", re.IGNORECASE)


def redact_urls(text: str) -> str:
    """'https://user:sk-...@proxy/v1?api_key=sk-...' -> 'https://***@proxy/v1?api_key=***'."""
    return URL_SECRET_QUERY.sub(r"\g<name>***", URL_USERINFO.sub(r"\g<scheme>***@", text))


def redact(value: Any, key: str = "") -> Any:
    """Replace values under secret-looking keys, credentials inside URLs, and any secret from the environment
    inside strings."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str):
        if key and SECRET_KEY.match(key) and not TOKEN_NAMES.search(key) and value:
            return "***"
        for secret in secret_values():
            value = value.replace(secret, "***")
        if "://" in value:
            value = redact_urls(value)
    return value


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(redact(data), ensure_ascii=False, indent=2, default=str) + "\n")


def swap_into_place(staging: Path, target: Path) -> None:
    """Rename a finished folder to `target`. An existing target (a folder, a file or a link) is renamed aside first
    and removed after, so a crash at any point loses neither: the old one is at worst left aside as
    .NAME.replaced-*, never deleted before the new one is in place."""
    old = target.with_name(f".{target.name}.replaced-{uuid.uuid4().hex[:8]}")
    if target.is_symlink() or target.exists():
        target.rename(old)
    staging.rename(target)
    if old.is_symlink() or old.is_file():
        old.unlink()  # a link is removed, never what it points to
    elif old.exists():
        shutil.rmtree(old)


def check_not_holding(target: Path, kept: dict[str, Path]) -> None:
    """Refuse a target folder that is, or holds, something replacing it would delete (named by `kept`)."""
    for what, path in kept.items():
        if target.resolve() == path.resolve() or target.resolve() in path.resolve().parents:
            raise KosovError(f"{target} is {what} or holds it ({path}): replacing it would delete it",
                             fix="write to another folder")


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


def lock_run_folder(folder: Path) -> Any:
    """Hold an exclusive lock on a run folder for the life of the job (flock on DIR/.kosov.lock): a second job on
    the folder, with overwrite=true too, is refused while this one runs. The kernel releases it when the process
    ends, so a killed job leaves no stale lock. Returns the open lock file (None where the file system has no
    locks, with a warning)."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK, "a+", encoding="utf-8")  # noqa: SIM115 - held open while the job runs
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise KosovError(f"{folder} is in use by a running job ({holder})",
                         fix="wait for it to finish or stop it, or choose another output_dir (overwrite=true does "
                             "not replace a run that is still running)") from None
    except OSError as e:  # e.g. an NFS mount without lockd
        log.warning("cannot lock %s (%s): nothing stops a second job from using the same folder", folder, e)
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"host {socket.gethostname()} pid {os.getpid()} since "
                 f"{dt.datetime.now().isoformat(timespec='seconds')}\n")
    handle.flush()
    return handle


# What overwrite=true replaces (train.log stays: it is the log of every run in the folder).
REPLACED = (*RUN_MARKERS, "report.md", "report.png", "wandb", "tensorboard", "wandb_run.json")


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
        """The new run is under way: the run it replaces goes."""
        if self.replaced is not None:
            shutil.rmtree(self.replaced, ignore_errors=True)
            self.replaced = None

    def restore_replaced(self) -> None:
        """The new run failed before it got under way: the run it was to replace comes back, whole."""
        if self.replaced is None:
            return
        try:
            for name in REPLACED:  # what the failed run wrote goes, whether the earlier run had it or not
                target = self.path / name
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                elif target.is_symlink() or target.exists():
                    target.unlink()
            for item in self.replaced.iterdir():
                item.rename(self.path / item.name)
            self.replaced.rmdir()
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


# What a resumed run may change: how long it trains, how often it saves, logs and evaluates, where it reports, the
# flags that say what to do with the folder, and the sections `kosov train` does not read. Anything else would make
# one adapter of two recipes, with a record naming only the second.
RESUME_MAY_CHANGE = ("resume", "overwrite", "output_dir", "device", "mirror", "objective", "tracking", "eval",
                     "publish", "serve", "synth", "method.max_steps", "method.num_train_epochs", "method.save_steps",
                     "method.save_total_limit", "method.logging_steps", "method.eval_steps",
                     "method.dataloader_num_workers", "method.per_device_eval_batch_size")


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(value, dict) or not value:
        return {prefix.rstrip("."): value}
    return {k: v for key, item in value.items() for k, v in _flat(item, f"{prefix}{key}.").items()}


def recipe_changes(saved: dict[str, Any], resolved: dict[str, Any]) -> list[str]:
    """'key: old -> new' for each setting of `resolved` that differs from the `saved` config.yaml, except those a
    resumed run may change (RESUME_MAY_CHANGE)."""
    old, new = _flat(saved), _flat(yaml.safe_load(yaml.safe_dump(resolved, allow_unicode=True)))
    missing = object()
    changed = [key for key in old.keys() | new.keys()
               if not any(key == k or key.startswith(k + ".") for k in RESUME_MAY_CHANGE)
               and old.get(key, missing) != new.get(key, missing)]
    first = ("name", "method.name", "model.name_or_path", "model.revision", "peft.method", "data.name")
    changed.sort(key=lambda k: (first.index(k) if k in first else len(first), k))

    def shown(value: Any) -> str:
        return "(unset)" if value is missing else repr(value)

    return [f"{key}: {shown(old.get(key, missing))} -> {shown(new.get(key, missing))}" for key in changed]


def check_same_recipe(folder: Path, resolved: dict[str, Any], doing: str) -> None:
    """Refuse to continue the run in `folder` (its config.yaml) with a different recipe."""
    saved = folder / "config.yaml"
    if not saved.is_file():
        return
    changes = recipe_changes(yaml.safe_load(saved.read_text(encoding="utf-8")) or {}, resolved)
    if changes:
        more = f"; and {len(changes) - 6} more" if len(changes) > 6 else ""
        raise KosovError(f"{doing}, but the recipe differs from the one the run in {folder} trained with: "
                         + "; ".join(changes[:6]) + more,
                         fix=f"continue it with its own recipe ({saved}; only max_steps, num_train_epochs, save, log "
                             "and eval steps, tracking and device may change), or start a new run: overwrite=true "
                             "or another output_dir")


def refuse_existing_run(run: RunDir) -> None:
    if run.holds_run():
        raise KosovError(
            f"{run.path} already holds a run",
            fix="pass resume=true to continue it from its last checkpoint, overwrite=true to replace it, "
                "or choose another output_dir",
        )


def default_output_dir(name: str) -> Path:
    return Path("outputs") / name / dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


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
        if run.resume_from is None:  # killed before its first checkpoint (a requeued job): it starts again
            log.warning("resume=true, but %s holds no finished checkpoint: starting from the first step",
                        run.checkpoints)
            overwrite = True
    elif not overwrite:
        refuse_existing_run(run)
    if overwrite and run.holds_run() and is_main:
        run.replaced = run.path / f".replaced-{uuid.uuid4().hex[:8]}"
        log.warning("overwrite=true: the run in %s is set aside (%s) and deleted once the new one has loaded its "
                    "data and model; if the new one fails before, it is put back", run.path, run.replaced.name)
        run.replaced.mkdir()
        for marker in REPLACED:
            if (run.path / marker).is_symlink() or (run.path / marker).exists():
                (run.path / marker).rename(run.replaced / marker)
    if is_main:
        run.path.mkdir(parents=True, exist_ok=True)


def _git_sha() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True,
                               timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _gpu() -> dict[str, Any] | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return {"name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count(), "cuda": torch.version.cuda}


def provenance(*, seed: int, data: dict[str, Any], model: dict[str, Any], resumed_from: Path | None = None,
               processes: int = 1, runtime: dict[str, Any] | None = None) -> dict[str, Any]:
    """Where this run (or this resumption of it) came from; a resumed run keeps the earlier ones' under
    "earlier" (resume_provenance)."""
    return {
        "processes": processes,
        "runtime": runtime,
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "resumed_from": str(resumed_from) if resumed_from else None,
        "command": " ".join(sys.argv),
        "git_sha": _git_sha(),
        "seed": seed,
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "gpu": _gpu(),
        "packages": _versions(),
        "model": model,
        "data": data,
    }


def resume_provenance(prov: dict[str, Any], run: RunDir) -> dict[str, Any]:
    """A resumed run's provenance, with the folder's earlier provenance (the first run's, then each resumption's)
    kept under "earlier" instead of replaced."""
    saved = run.path / "provenance.json"
    if run.resume_from is None or not saved.is_file():
        return prov
    before = json.loads(saved.read_text(encoding="utf-8"))
    return {**prov, "earlier": [*before.pop("earlier", []), before]}


def _source_digests(summary: dict[str, Any]) -> dict[str, Any]:
    return {s.get("path") or s.get("hub_id"): s.get("sha256") or s.get("revision")
            for s in summary.get("sources", []) if isinstance(s, dict)}


def check_same_data(run: RunDir, summary: dict[str, Any]) -> None:
    """Refuse to resume on data files that changed since the run trained on them (the same path, other bytes): the
    adapter would be of two datasets, and the rows the resumed run skips as seen are not the ones it saw."""
    saved = run.path / "provenance.json"
    if not saved.is_file():
        return
    before = _source_digests(json.loads(saved.read_text(encoding="utf-8")).get("data") or {})
    now = _source_digests(summary)
    changed = [f"{name} (sha256 {str(before[name])[:12]} -> {str(now[name])[:12]})" for name in now
               if name in before and before[name] and now[name] and before[name] != now[name]]
    if changed:
        raise KosovError(f"resume=true, but the data changed since the run in {run.path} trained on it: "
                         + "; ".join(changed),
                         fix="restore the files it trained on, or start a new run: overwrite=true or another "
                             "output_dir")


def add_file_logging(run: RunDir) -> logging.Handler:
    """Append this process's log records to DIR/train.log (secrets never reach the log: we never log them)."""
    handler = logging.FileHandler(run.path / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler
