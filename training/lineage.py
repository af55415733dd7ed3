"""A release's data lineage: the run and the runs its adapter started from (an SFT stage before GRPO), each with its
public provenance, and why kosov cannot know a stage's data (and so their licenses) where it cannot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from training.errors import KosovError
from training.redaction import names_only


PRIVATE = ("host", "command")  # the training machine's name and the command line (local paths): not published


def public_provenance(prov: dict[str, Any]) -> dict[str, Any]:
    """A run's provenance for a public release: without PRIVATE keys and with local paths as names (data files, the
    model's folder, the adapter it started from, the checkpoint it resumed from), in its earlier starts too."""
    return names_only({key: [public_provenance(p) for p in value] if key == "earlier" else value
                       for key, value in prov.items() if key not in PRIVATE})


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _run_of(adapter: Path) -> Path:
    """The run folder an adapter came from: the nearest folder above it with a provenance.json (run/adapter,
    run/checkpoints/checkpoint-N); else the folder holding it."""
    return next((f for f in list(adapter.parents)[:3] if (f / "provenance.json").is_file()), adapter.parent)


def _lora_settings(adapter: Path) -> dict[str, Any]:
    """The adapter's LoRA shape as provenance records a started-from adapter's (start_adapter_settings); {} when
    its adapter_config.json is gone."""
    saved, modules = _read_json(adapter / "adapter_config.json"), None
    if saved:
        modules = saved.get("target_modules")
        modules = sorted(modules) if isinstance(modules, list) else modules
    return {"r": saved.get("r"), "alpha": saved.get("lora_alpha"), "dora": bool(saved.get("use_dora")),
            "target_modules": modules} if saved else {}


def _started_from(run: Path, model: dict[str, Any]) -> tuple[Path | None, KosovError | None]:
    """The run folder of the adapter `run` started from (model.start_adapter), or why its data cannot be known for
    sure: the path is relative (to the folder `kosov train` ran in, which is not recorded: never read from the folder
    publish runs in, where that name may be another run), or the adapter there now has another LoRA shape than the
    one the run started from (another run was trained there since)."""
    start, recorded = model.get("start_adapter"), model.get("start_adapter_settings") or {}
    if not start:
        return None, None
    where = str(run / "provenance.json")
    licensed = "check that adapter's data licenses and set publish.license=<SPDX id>"
    if not Path(start).is_absolute():
        return None, KosovError(
            f"{run.name} started from the adapter {start!r}, recorded as a path relative to the folder `kosov train` "
            "ran in, which kosov cannot tell: the data that adapter was trained on, and their licenses, are unknown",
            where=where, fix=f"set model.start_adapter in {where} to the absolute path of that adapter folder, or "
                             f"{licensed}")
    now = _lora_settings(Path(start))
    differ = [key for key in now if key in recorded and now[key] != recorded[key]]
    if differ:
        shown = "; ".join(f"{key} {recorded[key]!r} then, {now[key]!r} now" for key in differ)
        return None, KosovError(
            f"{run.name} started from the adapter at {start}, and the adapter there now has another shape ({shown}): "
            "another run was trained there since, so the data the started-from adapter was trained on, and their "
            "licenses, are unknown", where=where, fix=f"put the run it started from back at {start}, or {licensed}")
    return _run_of(Path(start)), None


def lineage_stages(run: Path) -> tuple[list[dict[str, Any]], list[KosovError]]:
    """This run and the runs its adapter started from (an SFT stage before GRPO), oldest first, with their public
    provenance; and why, for each stage whose data (and their licenses) kosov cannot know for sure."""
    stages: list[dict[str, Any]] = []
    unknown: list[KosovError] = []
    seen: set[Path] = set()
    while run is not None and run.resolve() not in seen:
        seen.add(run.resolve())
        prov = _read_json(run / "provenance.json")
        config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) if (run / "config.yaml").is_file() \
            else {}
        stages.insert(0, {"name": f"{(config or {}).get('method', {}).get('name', '?')} ({run.name})",
                          "provenance": public_provenance(prov), **({} if prov else {"missing": run.name})})
        if not prov:
            unknown.append(KosovError(
                f"the adapter was trained from {run.name}, which has no kosov provenance.json (moved, deleted or not "
                "a kosov run): the licenses of the data it was trained on are unknown",
                fix="put that run folder back where it was, or check its data's licenses and set "
                    "publish.license=<SPDX id>"))
        run, problem = _started_from(run, prov.get("model") or {})
        if problem is not None:
            stages.insert(0, {"name": "? (the adapter it started from)", "provenance": {}, "missing": "start_adapter"})
            unknown.append(problem)
    return stages, unknown
