"""Checks before a run continues (resume=true, a chained run's finished SFT stage): the same recipe, the same number
of processes, the same data. Otherwise one adapter would come of two recipes or two datasets, with a record naming
only the second."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from training.errors import KosovError
from training.run_dir import RunDir


# What a resumed run may change: how long it trains, how often it saves, logs and evaluates, where it reports, the
# flags that say what to do with the folder, and the sections `kosov train` does not read. Anything else would make
# one adapter of two recipes, with a record naming only the second.
RESUME_MAY_CHANGE = ("resume", "overwrite", "output_dir", "device", "mirror", "objective", "tracking", "eval",
                     "publish", "serve", "synth", "method.max_steps", "method.num_train_epochs", "method.save_steps",
                     "method.save_total_limit", "method.logging_steps", "method.eval_steps",
                     "method.dataloader_num_workers", "method.per_device_eval_batch_size", "data.num_proc")


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(value, dict) or not value:
        return {prefix.rstrip("."): value}
    return {k: v for key, item in value.items() for k, v in _flat(item, f"{prefix}{key}.").items()}


def recipe_changes(saved: dict[str, Any], resolved: dict[str, Any]) -> list[str]:
    """'key: old -> new' for each setting of `resolved` that differs from the `saved` config.yaml, except those a
    resumed run may change (RESUME_MAY_CHANGE). A key one side lacks and the other holds as null is no change: a
    setting kosov added since the run was saved (null: as before) does not stop it resuming after an upgrade."""
    old, new = _flat(saved), _flat(yaml.safe_load(yaml.safe_dump(resolved, allow_unicode=True)))
    missing = object()
    changed = [key for key in old.keys() | new.keys()
               if not any(key == k or key.startswith(k + ".") for k in RESUME_MAY_CHANGE)
               and old.get(key, missing) != new.get(key, missing)
               and not (key not in old and new[key] is None or key not in new and old[key] is None)]
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
                         fix=f"continue it with its own recipe ({saved}; a resume may change only "
                             f"{', '.join(RESUME_MAY_CHANGE)}), or start a new run: overwrite=true or another "
                             "output_dir")


def check_same_processes(folder: Path, processes: int) -> None:
    """Refuse to continue a run from a checkpoint on another number of processes: a step trains processes x
    per-device batch x accumulation rows, so the resumed run would skip other rows as seen than those it trained on
    (training some twice, some never) and change the batch its recipe records."""
    saved = folder / "provenance.json"
    before = json.loads(saved.read_text(encoding="utf-8")).get("processes") if saved.is_file() else None
    if not before or before == processes or not any((folder / "checkpoints").glob("checkpoint-*")):
        return
    raise KosovError(f"resume=true on {processes} process(es), but the run in {folder} trained on {before}: the "
                     "global batch would change and the rows the resumed run skips as seen would not be those it "
                     "trained on", fix=f"resume on {before} process(es) (torchrun --nproc_per_node, accelerate "
                                       "launch --num_processes, the SLURM job's tasks), or start a new run: "
                                       "overwrite=true or another output_dir")


def _source_digests(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each source (a file's path, a dataset's hub id or folder) -> what identifies its content as recorded: a file's
    sha256, a dataset's rows read (rows_sha256), a pinned revision."""
    return {s.get("path") or s.get("hub_id"): {k: s[k] for k in ("sha256", "rows_sha256", "revision") if s.get(k)}
            for s in summary.get("sources", []) if isinstance(s, dict)}


def check_same_data(run: RunDir, summary: dict[str, Any]) -> None:
    """Refuse to resume on data that changed since the run trained on it (the same path, other bytes; the same
    dataset id or folder, other rows): the adapter would be of two datasets, and the rows the resumed run skips as
    seen are not the ones it saw. A summary of sources alone (called as the rows load, before they render) is
    checked on those; the held-out rows once rendering has kept them."""
    saved = run.path / "provenance.json"
    if not saved.is_file():
        return
    record = json.loads(saved.read_text(encoding="utf-8"))
    saved_data = record.get("data") or {}
    before = _source_digests(saved_data)
    now = _source_digests(summary)
    changed = []
    for name, digests in now.items():  # on what both records hold: a run recorded before kosov hashed a dataset's
        # rows is compared on its revision alone
        differ = [f"{key} {str(before[name][key])[:12]} -> {str(value)[:12]}" for key, value in digests.items()
                  if name in before and before[name].get(key) not in (None, value)]
        if differ:
            changed.append(f"{name} ({', '.join(differ)})")
    if not changed and "eval_sha256" in summary and saved_data.get("eval_sha256") not in (None,
                                                                                          summary["eval_sha256"]):
        raise other_rows_held_out(run.path, record)
    if changed:
        raise KosovError(f"resume=true, but the data changed since the run in {run.path} trained on it: "
                         + "; ".join(changed),
                         fix="restore the files it trained on (and the kosov version it started with), or start "
                             "a new run: overwrite=true or another output_dir")


def other_rows_held_out(folder: Path, record: dict[str, Any]) -> KosovError:
    """The same files and recipe, other rows held out for eval: the kosov reading them now reads or splits rows
    otherwise than the one the run started with did, so the checkpoint trained on rows this one would not give it."""
    from training.provenance import kosov_named, this_kosov

    then, now = kosov_named(record), kosov_named(this_kosov())
    if then == now:
        return KosovError(f"resume=true, but the rows held out for eval differ from those the run in {folder} held "
                          f"out, from the same files and recipe, with the same kosov ({now})",
                          fix="restore the files it trained on, or start a new run: overwrite=true or another "
                              "output_dir")
    sha = record.get("git_sha") or ""
    install = (f"git checkout {sha[:12]}" + (", with the uncommitted changes it ran with" if sha.endswith("-dirty")
                                             else "")) if sha else \
        f"pip install 'kosov=={(record.get('packages') or {}).get('kosov')}'"
    return KosovError(
        f"resume=true, but the run in {folder} started with {then}, and this {now} reads its files into other rows "
        "(it held out other rows for eval, from the same files and recipe): kosov reads and splits rows otherwise "
        "since then (e.g. a top-level 'system' column is a system turn in every row format, and an empty system "
        "turn is dropped), and the checkpoint trained on rows read the earlier way",
        fix=f"finish the run with the kosov it started with ({install}, then the same command), or start a new run "
            "with this one on the same files: overwrite=true (replaces the run) or another output_dir")
