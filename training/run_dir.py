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


def redact(value: Any, key: str = "") -> Any:
    """Replace values under secret-looking keys, and any secret from the environment inside strings."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str):
        if key and SECRET_KEY.match(key) and not TOKEN_NAMES.search(key) and value:
            return "***"
        for secret in secret_values():
            value = value.replace(secret, "***")
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


def last_checkpoint(checkpoints: Path) -> Path | None:
    """The checkpoint with the highest step that finished saving (has trainer_state.json)."""
    done = [p for p in checkpoints.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.rsplit("-", 1)[-1]), default=None)


@dataclass
class RunDir:
    path: Path
    resume_from: Path | None = None  # the checkpoint a resumed run continues from

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


def prepare_run_dir(output_dir: Path, *, overwrite: bool, resume: bool, is_main: bool = True) -> RunDir:
    """Claim the run folder: refuse an existing run unless overwrite or resume says what to do with it.

    Every process of a distributed run checks (so all fail together, before anything changes); only the main
    process deletes and creates. Callers then wait for it (accelerate's wait_for_everyone)."""
    run = RunDir(Path(output_dir))
    if resume:
        found = last_checkpoint(run.checkpoints)
        if found is None:
            raise KosovError(f"resume=true, but {run.checkpoints} holds no finished checkpoint",
                             fix="check output_dir, or start a new run without resume=true")
        run.resume_from = found
    elif not overwrite:
        refuse_existing_run(run)
    elif run.holds_run() and is_main:
        log.warning("overwrite=true: deleting the run in %s", run.path)
        for marker in (*RUN_MARKERS, "report.md", "report.png", "wandb", "tensorboard", "train.log"):
            target = run.path / marker
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    if is_main:
        run.path.mkdir(parents=True, exist_ok=True)
    return run


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


def add_file_logging(run: RunDir) -> logging.Handler:
    """Append this process's log records to DIR/train.log (secrets never reach the log: we never log them)."""
    handler = logging.FileHandler(run.path / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler
