"""A run's provenance (provenance.json): where it came from (command, git commit, host, packages, GPU) and what it
trained on; a resumed run keeps the earlier starts' under "earlier"."""

from __future__ import annotations

import datetime as dt
import json
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from training.run_dir import RunDir

PACKAGES = ("kosov", "torch", "transformers", "trl", "peft", "datasets", "accelerate", "hydra-core", "omegaconf",
            "tokenizers", "wandb", "bitsandbytes", "flash-attn", "liger-kernel", "vllm")


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
