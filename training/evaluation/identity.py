"""What an eval score depends on, as the result cache's key: the base model (a local folder's files, or a hub id at
the commit its revision names now), the adapter's files, how the model is loaded, the task and its settings, and
the versions of lm-eval and of the libraries that load and run the model (stack_versions). A score is computed
again when any of them changes, and served from the cache otherwise."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from training.base_commit import hub_commit
from training.tiny_ko import cache_root


def files_digest(folder: Path, names: tuple[str, ...]) -> str:
    """A digest of the named files (glob patterns) in `folder`: their contents, or for files of 1 GiB and more
    their size and modification time."""
    digest = hashlib.sha256()
    for path in sorted({p for name in names for p in folder.glob(name) if p.is_file()}):
        stat = path.stat()
        digest.update(path.name.encode())
        digest.update(path.read_bytes() if stat.st_size < 2**30 else f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


# What a local model folder's scores depend on: weights (every shard), config, tokenizer (in each of its
# formats), chat template, and the model code a trust_remote_code checkpoint runs (*.py).
MODEL_FILES = ("config.json", "*.safetensors", "*.safetensors.index.json", "*.bin", "tokenizer.json",
               "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "generation_config.json",
               "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json", "*.py")


def adapter_digest(adapter: Path) -> str:
    """An adapter's identity: its config and weights (what an eval report and a release are matched by)."""
    return files_digest(adapter, ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"))


def model_identity(source: str, revision: str | None, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the cache key knows of the base model: a local folder's file digest, or the hub id at the commit its
    revision names now (so a moved main is evaluated again); and how the model is loaded (`settings`: dtype,
    attention, quantization, chat template). Base + adapter: this with "adapter": adapter_digest(adapter)."""
    local = Path(source)
    ident = {"source": source, "revision": revision, "load": settings}
    if local.is_dir():
        ident["digest"] = files_digest(local, MODEL_FILES)
    else:
        ident["commit"] = hub_commit(source, revision)
    return ident


def load_settings(mcfg: Any, quantization: Any, dtype: str | None = None, device: str | None = None
                  ) -> dict[str, Any]:
    """The model settings a score depends on besides its files (for model_identity). `dtype`: what model.dtype=auto
    resolved to on `device` (bf16 on a recent GPU, fp16 on a V100, fp32 on CPU): a score computed in one is not
    served to a run in another through the shared cache."""
    template = Path(mcfg.chat_template).expanduser() if mcfg.chat_template else None
    return {"dtype": dtype or mcfg.dtype, "device": device, "attn_implementation": mcfg.attn_implementation,
            "end_of_turn_token": mcfg.end_of_turn_token,
            "quantization": asdict(quantization) if quantization is not None else None,
            "chat_template": hashlib.sha256(template.read_bytes()).hexdigest()[:16]
            if template is not None and template.is_file() else None}


def package_version(name: str) -> str | None:
    """An installed distribution's version; None where it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def stack_versions(identity: dict, settings: dict) -> dict[str, str | None]:
    """The versions of what computes a score (for its cache key): lm-eval, transformers and torch always; PEFT where
    an adapter is on, bitsandbytes where the model loads in 4-bit, vLLM where it scores (eval.backend=vllm). A score
    from an older stack is not compared against one computed under a newer one: an upgrade scores again, once."""
    names = ["lm_eval", "transformers", "torch"]
    if identity.get("adapter"):
        names.append("peft")
    if (identity.get("load") or {}).get("quantization"):
        names.append("bitsandbytes")
    if settings.get("backend") == "vllm":
        names.append("vllm")
    return {name: package_version(name) for name in names}


def cache_file(identity: dict, task: str, settings: dict) -> Path:
    key = json.dumps({"model": identity, "task": task, "settings": settings,
                      "versions": stack_versions(identity, settings)}, sort_keys=True, default=str)
    return cache_root() / "eval_cache" / f"{hashlib.sha256(key.encode()).hexdigest()}.json"
