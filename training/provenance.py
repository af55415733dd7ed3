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

from training.redaction import redact_overrides

if TYPE_CHECKING:
    from training.run_dir import RunDir

PACKAGES = ("kosov", "torch", "transformers", "trl", "peft", "datasets", "accelerate", "hydra-core", "omegaconf",
            "tokenizers", "wandb", "bitsandbytes", "flash-attn", "liger-kernel", "vllm")


def _git_sha() -> str | None:
    """kosov's own commit, when kosov runs from its checkout. Installed into a virtual environment that lives inside
    some other repository (the user's project), the folder above the package is that repository's working tree or
    no repository at all: git answered with the user's HEAD, recorded as kosov's."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5,
                              check=True).stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != root:
            return None
        return git("rev-parse", "HEAD") + ("-dirty" if git("status", "--porcelain") else "")
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


def kosov_named(prov: dict[str, Any]) -> str:
    """The kosov a provenance record names, as a user installs it again: "kosov 0.3.0 (git 1a2b3c4d5e6f)"."""
    sha = prov.get("git_sha")
    return f"kosov {(prov.get('packages') or {}).get('kosov', '?')}" + (f" (git {sha[:12]})" if sha else "")


def this_kosov() -> dict[str, Any]:
    """What provenance() records of the kosov running now, for kosov_named."""
    return {"packages": {"kosov": _versions().get("kosov", "?")}, "git_sha": _git_sha()}


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
        "command": redact_overrides(" ".join(sys.argv)),  # a secret-named override's value too (URLs: write_json)
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
