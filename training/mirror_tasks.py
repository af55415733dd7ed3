"""Which hub datasets lm-eval's tasks read, from the installed task YAML files (dataset_path / dataset_name,
groups, tags and includes resolved), so `kosov mirror --task/--suite` follows the lm-eval version in use.

    >>> task_datasets(["kobest_boolq"])   # doctest: +SKIP
    {'kobest_boolq': ('skt/kobest_v1', 'boolq')}
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from data_tools.gates.decontaminate import strings_in
from training.errors import KosovError
from training.models import HUB_ID

log = logging.getLogger(__name__)

# dataset_kwargs that leave what load_dataset(dataset_path, dataset_name) reads, and where, as it is: lm-eval drops
# trust_remote_code under datasets 4+; the others only change how it is read. Any other key (data_files, data_dir,
# revision, column_names...) makes datasets look the cache up under another config id, or read other files.
HARMLESS_DATASET_KWARGS = frozenset({"trust_remote_code", "verification_mode", "keep_in_memory", "num_proc"})

SUITE_FAMILIES = ("kobest", "kmmlu", "haerae", "click", "hrm8k", "kormedmcqa")  # lm-eval groups kosov's suites use
KOREAN_TASK_FOLDERS = SUITE_FAMILIES + ("csatqa", "kbl")  # indexed first: 1 s instead of 6 s for all of lm-eval


def task_index(names: Iterable[str]) -> dict[str, Any]:
    import lm_eval.tasks
    from lm_eval.tasks import TaskManager

    root = Path(lm_eval.tasks.__file__).parent
    folders = [str(root / f) for f in KOREAN_TASK_FOLDERS if (root / f).is_dir()]
    index = TaskManager(include_path=folders, include_defaults=False).task_index
    if all(n in index for n in names):
        return index
    return TaskManager(include_defaults=True).task_index


def task_datasets(names: Iterable[str], index: Mapping[str, Any] | None = None) -> dict[str, tuple[str, str | None]]:
    """Leaf task -> (hub dataset id, config) for lm-eval task, group or tag names, read from the installed task
    YAML files (`dataset_path` / `dataset_name`, includes resolved), so a new lm-eval version stays right. A task
    that reads the Hub otherwise (dataset_kwargs, hf:// data files) is refused: a mirror cannot serve it offline."""
    names = list(names)
    index = index if index is not None else task_index(names)
    found: dict[str, tuple[str, str | None]] = {}
    refused: dict[str, str] = {}
    seen: set[str] = set()

    def leaf(task: str, cfg: Mapping[str, Any]) -> None:
        path, name = cfg.get("dataset_path"), cfg.get("dataset_name")
        why = _not_mirrorable(path, cfg.get("dataset_kwargs"))
        if why:
            refused[task] = why
        elif path and HUB_ID.match(str(path)):
            found[task] = (path, name)
        else:  # local files or a Python-defined task: nothing on the Hub to mirror
            log.warning("lm-eval task %s reads no hub dataset (dataset_path=%r); not mirrored", task, path)

    def visit(item: Any) -> None:
        if isinstance(item, dict):  # an inline task or group inside a group's task list
            if item.get("dataset_path"):
                leaf(item.get("task", item["dataset_path"]), item)
            for sub in [] if item.get("dataset_path") else _as_list(item.get("task")):
                visit(sub)
            return
        if item in seen:
            return
        seen.add(item)
        entry = index.get(item)
        if entry is None:
            raise KosovError(f"lm-eval {metadata.version('lm_eval')} has no task, group or tag named {item!r}",
                             fix="list them with `lm_eval ls tasks`")
        kind = entry.kind.name
        if kind in ("GROUP", "TAG"):
            for sub in (_as_list((entry.cfg or {}).get("task")) if kind == "GROUP" else sorted(entry.tags)):
                visit(sub)
            return
        leaf(item, entry.cfg or {})

    for name in names:
        visit(name)
    if refused:
        raise KosovError(
            f"kosov mirror cannot mirror the lm-eval task{'s' if len(refused) > 1 else ''} "
            + "; ".join(f"{task} ({why})" for task, why in refused.items())
            + ": offline, datasets would not find what it reads in a mirror, so it cannot run from one",
            fix="leave it out of --task/--suite and of eval.tasks of a recipe run with mirror= (name the other tasks "
                "of its group one by one); kosov mirror mirrors the tasks that read a hub dataset by dataset_path and "
                "dataset_name alone")
    return found


def _not_mirrorable(path: Any, kwargs: Any) -> str | None:
    """Why a task's dataset cannot be read from a mirror, or None: load_dataset(path, name, **dataset_kwargs) with
    data_files / data_dir / revision... (datasets looks its cache up under a config id hashed from them, and reads
    those files), or files at a URL (`json` with data_files hf://datasets/..., which reads the Hub)."""
    urls = [v for v in strings_in([path, kwargs]) if "://" in v]
    if urls:
        return f"it reads {urls[0]}, files at a URL that are not mirrored yet"
    extra = sorted(set(kwargs) - HARMLESS_DATASET_KWARGS) if isinstance(kwargs, Mapping) else []
    if extra and path and HUB_ID.match(str(path)):
        return f"it loads {path} with dataset_kwargs {', '.join(extra)}, which are not mirrored yet"
    return None


def _as_list(value: Any) -> list:
    return [] if value is None else value if isinstance(value, list) else [value]


def by_repo(pairs: Iterable[tuple[str, str | None]]) -> dict[str, tuple[str | None, ...]]:
    """{repo: configs in first-seen order}; a None config is the repo's default config (a task without
    dataset_name: lm-eval calls load_dataset(repo), which reads that one)."""
    out: dict[str, list[str | None]] = {}
    for repo, config in pairs:
        if config not in out.setdefault(repo, []):
            out[repo].append(config)
    return {repo: tuple(configs) for repo, configs in out.items()}


@cache
def suite_datasets() -> dict[str, dict[str, tuple[str | None, ...]]]:
    """Task family (lm-eval group) -> {hub dataset: configs}, derived from the installed lm-eval."""
    index = task_index(SUITE_FAMILIES)
    return {family: by_repo(task_datasets([family], index).values()) for family in SUITE_FAMILIES}


def parse_dataset(spec: str) -> tuple[str, str | None, tuple[str, ...] | None]:
    """'org/name[@revision][:config,config]' -> (repo, revision, configs or None for all)."""
    repo, _, configs = spec.partition(":")
    repo, _, revision = repo.partition("@")
    if not HUB_ID.match(repo):
        raise KosovError(f"dataset {spec!r} is not a hub dataset id", fix="write org/name[@revision][:config,...]")
    return repo, revision or None, tuple(c for c in configs.split(",") if c) or None
