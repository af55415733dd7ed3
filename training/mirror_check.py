"""Using a `kosov mirror` folder on the closed network: where its files are (the Hugging Face cache layout that
training/mirror.py builds), the environment that points the Hugging Face libraries at it, offline, and the checks
that run before anything loads.

    kosov eval experiment=... mirror=MIRROR    # check_mirror(cfg, "eval"), then use_mirror(): offline
    eval "$(kosov mirror MIRROR --env)"        # mirror_env(), for a shell
    kosov mirror MIRROR --verify               # verify(): after a copy, every file's size and sha256

Recipes run with `mirror=FOLDER` (or KOSOV_MIRROR): check_mirror() first names what the recipe reads from the Hub
that the mirror lacks (with the `kosov mirror` flags that add it), and files of it a copy cut short (sizes only;
--verify hashes). Nothing here imports huggingface_hub, datasets or transformers at module level: use_mirror() must
run before they are imported.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from data_tools.chat_io import file_sha256
from training.errors import KosovError
from training.mirror_tasks import parse_dataset, task_datasets, task_index
from training.models import HUB_ID
from training.schema import KosovConfig

MANIFEST = "kosov-mirror.json"
FORMAT = 1  # of the manifest


def hf_home(folder: str | Path) -> Path:
    return Path(folder).expanduser().resolve() / "hf_home"


def mirror_env(folder: str | Path) -> dict[str, str]:
    """The environment that makes huggingface_hub, transformers, datasets and lm-eval read only the mirror.
    All three cache variables are set, so a user's own HF_HUB_CACHE / HF_DATASETS_CACHE cannot win over HF_HOME."""
    home = hf_home(folder)
    return {"HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"), "HF_DATASETS_CACHE": str(home / "datasets"),
            "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def repo_dir(folder: str | Path, repo_type: str, repo_id: str) -> Path:
    """hub/<type>s--org--name, as huggingface_hub's repo_folder_name() names it (not imported: use_mirror() must
    run before huggingface_hub is imported)."""
    return hf_home(folder) / "hub" / "--".join([f"{repo_type}s", *repo_id.split("/")])


def snapshot_dir(folder: str | Path, repo_type: str, repo_id: str, commit: str) -> Path:
    return repo_dir(folder, repo_type, repo_id) / "snapshots" / commit


def read_manifest(folder: str | Path) -> dict[str, Any]:
    path = Path(folder).expanduser() / MANIFEST
    if not path.is_file():
        raise KosovError(f"no kosov mirror at {folder} ({MANIFEST} is missing)",
                         fix=f"create one on a connected machine with `kosov mirror {folder} --model ... --task ...` "
                             "and copy the whole folder here")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:  # a copy cut short
        raise KosovError(f"the mirror's manifest {path} is damaged ({e})",
                         fix="copy the folder from the connected machine again") from None
    problems = _manifest_problems(manifest)
    if problems:
        raise KosovError(f"the mirror's manifest {path} is not one kosov can read: {'; '.join(problems)}",
                         fix="copy the folder from the connected machine again (or mirror again there); a manifest "
                             "of a newer format needs the kosov that wrote it")
    return manifest


def _manifest_problems(manifest: Any) -> list[str]:
    """The keys every reader relies on, checked once here: a hand-edited or foreign file is named, not a KeyError."""
    if not isinstance(manifest, dict):
        return ["it is not a JSON object"]
    problems = [] if manifest.get("format") == FORMAT else [f"format {manifest.get('format')!r}, not {FORMAT}"]
    problems += [f"{key!r} is missing" for key in ("models", "datasets", "tasks")
                 if not isinstance(manifest.get(key), dict)]
    for kind, keys in (("models", ("commit", "files")), ("datasets", ("commit", "files", "configs"))):
        for repo, entry in (manifest.get(kind) if isinstance(manifest.get(kind), dict) else {}).items():
            lacking = [k for k in keys if not isinstance(entry, dict) or k not in entry]
            if lacking:
                problems.append(f"{kind} {repo!r} lacks {', '.join(map(repr, lacking))}")
    return problems


def partial_splits(manifest: dict[str, Any]) -> list[str]:
    """Mirrored splits that hold only part of their rows: the Hub converts only the first ~5 GB of a large split
    (its `partial-<split>` folders), and a dataset defined by a loading script is mirrored from that conversion."""
    return [f"dataset {repo}: {config}/{split} is partial (the Hub's parquet export holds only its first ~5 GB)"
            for repo, entry in manifest["datasets"].items()
            for config, splits in entry.get("partial", {}).items() for split in splits]


def model_path(folder: str | Path, repo_id: str, revision: str | None = None) -> Path:
    """The mirrored snapshot folder of a model (for tools that want a path; from_pretrained(repo_id) also works)."""
    entry = read_manifest(folder)["models"].get(repo_id)
    if entry is None or (revision and not _serves(entry, revision)):
        raise _not_mirrored(folder, *_model_gap(repo_id, revision, entry))
    return snapshot_dir(folder, "model", repo_id, entry["commit"])


def _serves(entry: dict[str, Any] | None, revision: str | None) -> bool:
    """Whether a mirrored model answers from_pretrained(repo, revision=revision) offline: its commit's snapshot is
    found by the commit, or through the ref the mirror wrote (the branch or tag it was mirrored at; else main)."""
    return entry is not None and (revision or "main") in (entry["commit"], entry.get("ref", "main"))


def _model_gap(repo_id: str, revision: str | None, entry: dict[str, Any] | None) -> tuple[str, str]:
    """(what is missing, the flags that mirror it) for a model the mirror lacks at `revision`."""
    held = ""
    if entry:
        ref = entry.get("ref", "main")
        held = f" (it holds {entry['commit'][:12]}" + (f" as {ref})" if ref != "main" else ")")
    return (f"model {repo_id}" + (f"@{revision}" if revision else "") + held,
            f"--model {repo_id}" + (f" --revision {revision}" if revision else ""))


def require(folder: str | Path, *, model: str | None = None, revision: str | None = None,
            datasets: Iterable[str] = (), tasks: Iterable[str] = ()) -> None:
    """Raise a KosovError naming everything asked for that the mirror at `folder` does not hold, or else naming
    the files of it that a copy damaged (missing, or not of their mirrored size: stat only, fast for a 16 GB
    model; `kosov mirror FOLDER --verify` also compares sha256)."""
    manifest = read_manifest(folder)
    held = manifest["datasets"]
    missing: dict[str, str] = {}  # what is missing -> the flag that mirrors it
    unreadable: list[str] = []  # held, but what offline datasets would read with no config name is not one config
    needed: dict[tuple[str, str], bool] = {}  # (type, repo) held and read -> whether it is found through its ref
    if model:
        entry = manifest["models"].get(model)
        if _serves(entry, revision):
            needed["model", model] = revision != entry["commit"]
        else:
            what, flags = _model_gap(model, revision, entry)
            missing[what] = flags
    for spec in datasets:
        repo, rev, configs = parse_dataset(spec)
        entry = held.get(repo, {})
        if not entry or any(c not in entry["configs"] for c in configs or ()) or (
                rev and rev not in (entry["commit"], entry["revision"], entry.get("ref"))):
            missing[f"dataset {spec}"] = f"--dataset {spec}"
        elif configs is not None or not _no_config_gap(repo, entry, spec.partition(":")[0], missing, unreadable):
            needed["dataset", repo] = False
    tasks = list(tasks)
    leaves = {t: tuple(manifest["tasks"][t]) for t in tasks if t in manifest["tasks"]}  # no lm-eval needed
    unknown = [t for t in tasks if t not in manifest["tasks"]]
    index = task_index(unknown) if unknown else {}
    for task in tasks:
        for leaf, (repo, config) in ({task: leaves[task]} if task in leaves else task_datasets([task], index)).items():
            if repo not in held or (config is not None and config not in held[repo]["configs"]):
                missing[f"task {leaf} (dataset {repo}" + (f", config {config})" if config else ")")] = f"--task {task}"
            elif config is not None or not _no_config_gap(repo, held[repo], f"--task {task}", missing, unreadable,
                                                          leaf, recorded=leaf in manifest["tasks"]):
                needed["dataset", repo] = False
    if missing:
        raise _not_mirrored(folder, "; ".join(missing), " ".join(dict.fromkeys(missing.values())))
    if unreadable:
        raise KosovError(f"the mirror at {folder} cannot serve " + "; ".join(unreadable),
                         fix="for a recipe's data.hub_id, name the config (data.hub_config=<config>); for an lm-eval "
                             "task without dataset_name, use a mirror that holds its dataset's default config alone")
    damaged = _damaged(folder, manifest, needed)
    if damaged:
        more = f" (and {len(damaged) - 5} more)" if len(damaged) > 5 else ""
        raise KosovError(f"the mirror at {folder} is damaged: " + "; ".join(damaged[:5]) + more,
                         fix=f"run `kosov mirror {folder} --verify` to list every damaged file, then copy the folder "
                             "from the connected machine again (or mirror again there)")


def _no_config_gap(repo: str, entry: dict[str, Any], flag: str, missing: dict[str, str], unreadable: list[str],
                   task: str | None = None, recorded: bool = False) -> bool:
    """Whether a dataset read with no config name (a recipe's data.hub_id without hub_config: kosov names the
    recorded default; an lm-eval task without dataset_name: load_dataset(repo), which datasets resolves offline
    only when the mirror holds one config of it) cannot be read; what is missing or unreadable is added. `recorded`:
    the task is in the manifest, so it was mirrored, and an older kosov built every config of its dataset then."""
    default, configs = entry.get("default_config"), list(entry["configs"])
    if "default_config" not in entry and (recorded and len(configs) == 1 or configs == ["default"]):
        return False  # that one config is the repo's only one (datasets names a repo's one unnamed config "default")
    who = f"task {task} (dataset {repo}, no config name)" if task else f"dataset {repo} (no config name)"
    if "default_config" not in entry:  # an older kosov's mirror, or named configs of a parquet export only
        missing[f"{who}: which config is its default (the mirror does not record it"
                + ("" if task else "; or name one: data.hub_config=<config>") + ")"] = (
            flag if task else f"--dataset {flag}")
    elif default is None:
        unreadable.append(f"{who}: it has several configs ({', '.join(configs)}) and none is its default")
    elif default not in configs:
        missing[f"{who}: its default config {default}"] = flag if task else f"--dataset {flag}:{default}"
    elif task and configs != [default]:
        unreadable.append(f"{who}: offline, datasets reads {repo} with no config name only where the mirror "
                          f"holds one config of it, and this one holds {', '.join(configs)}")
    else:
        return False
    return True


def _damaged(folder: str | Path, manifest: dict[str, Any], needed: Mapping[tuple[str, str], bool]) -> list[str]:
    """The files of the needed repos that offline loads read and that are missing or not of their mirrored size:
    a model's snapshot (and its ref, where it is found through one), a dataset's prepared Arrow cache (datasets
    reads nothing else offline). Stat only: a truncated or missing file, the usual damage of a copy."""
    home, found = hf_home(folder), []
    for (repo_type, repo), through_ref in needed.items():
        entry = manifest[f"{repo_type}s"][repo]
        if repo_type == "model":
            base, records = snapshot_dir(folder, "model", repo, entry["commit"]), entry["files"]
            ref = entry.get("ref", "main")
            if through_ref and _ref_broken(folder, "model", repo, ref, entry["commit"]):
                found.append(f"model {repo}: refs/{ref} is missing or no longer {entry['commit'][:12]}")
        else:
            base, records = home, entry.get("cache_files", {})
        for rel, want in records.items():
            try:
                size = (base / rel).stat().st_size
            except OSError:
                found.append(f"{repo_type} {repo}: {rel} is missing")
                continue
            if size != want["size"]:
                found.append(f"{repo_type} {repo}: {rel} has {size} bytes, {want['size']} when mirrored")
    return found


def _not_mirrored(folder: str | Path, what: str, flags: str) -> KosovError:
    return KosovError(f"not in the mirror at {folder}: {what}",
                      fix=f"run `kosov mirror {folder} {flags}` on a connected machine, then copy the folder here again")


def use_mirror(folder: str | Path, *, model: str | None = None, revision: str | None = None,
               datasets: Iterable[str] = (), tasks: Iterable[str] = ()) -> dict[str, str]:
    """Check the mirror holds what is asked for, then point this process at it, offline. Call it before
    huggingface_hub / datasets / transformers / lm_eval are imported: they read these variables once."""
    env = mirror_env(folder)
    if not _redirected(env):
        early = [m for m in ("huggingface_hub", "datasets", "transformers", "lm_eval") if m in sys.modules]
        raise KosovError(f"use_mirror() ran after {', '.join(early)} was imported, too late to redirect it",
                         fix=f"call it first, or set the variables before starting Python: "
                             f"eval \"$(kosov mirror {folder} --env)\"")
    before = dict(os.environ)
    os.environ.update(env)  # first: checking task names imports lm-eval, which imports datasets
    try:
        require(folder, model=model, revision=revision, datasets=datasets, tasks=tasks)
    except KosovError:
        os.environ.clear()
        os.environ.update(before)
        raise
    return env


def mirror_needs(cfg: KosovConfig, command: str = "train") -> dict[str, Any]:
    """What a recipe reads from the Hub, as use_mirror() and require() take it: the base model (not tiny-ko or a
    local folder); for `train`, the hub dataset of data.hub_id (an SFT stage's too, for GRPO with sft_stage); and
    the lm-eval tasks of the suite, for `eval` and for training that evaluates every N steps, less kosov's own
    local tasks (they read files in the package). Any other command: the model alone.

        >>> mirror_needs(compose(["experiment=qwen3-8b-ko-eval"]), "eval")   # doctest: +SKIP
        {'model': 'Qwen/Qwen3-8B', 'revision': None, 'datasets': [], 'tasks': ['kmmlu', 'kobest', 'haerae', 'click']}
    """
    from training.evaluation.harness import LOCAL_TASKS

    name = cfg.model.name_or_path
    hub_model = name != "tiny-ko" and not Path(name).expanduser().is_dir() and bool(HUB_ID.match(name))
    stages = [cfg]
    if command == "train" and cfg.method.grpo is not None and cfg.method.grpo.sft_stage:
        from training.recipes import compose

        stages.append(compose(list(cfg.method.grpo.sft_stage)))  # its data and evals; its model is this run's
    datasets: list[str] = []
    tasks: list[str] = []
    for stage in stages:
        data = stage.data
        if (command == "train" and data.hub_id and HUB_ID.match(data.hub_id)
                and not Path(data.hub_id).expanduser().exists()):  # a local dataset folder needs no mirror
            datasets.append(data.hub_id + (f"@{data.hub_revision}" if data.hub_revision else "")
                            + (f":{data.hub_config}" if data.hub_config else ""))
        if command == "eval" or (command == "train" and stage.eval.every_n_steps > 0):
            tasks += [t for t in stage.eval.tasks if t not in LOCAL_TASKS]
    return {"model": name if hub_model else None, "revision": cfg.model.revision if hub_model else None,
            "datasets": list(dict.fromkeys(datasets)), "tasks": list(dict.fromkeys(tasks))}


def check_mirror(cfg: KosovConfig, command: str = "train") -> dict[str, str]:
    """`mirror=FOLDER` (or KOSOV_MIRROR) on the train / eval paths, before anything loads: check that the mirror
    holds, undamaged, what the recipe reads from the Hub (mirror_needs), naming each missing thing and the
    `kosov mirror` flags that add it, then point this process at the mirror, offline (use_mirror)."""
    return use_mirror(cfg.mirror, **mirror_needs(cfg, command))


def _redirected(env: dict[str, str]) -> bool:
    """Whether libraries imported already read the mirror's settings (nothing imported yet counts as yes)."""
    same = lambda a, b: Path(str(a)).resolve() == Path(b)  # noqa: E731
    if "huggingface_hub" in sys.modules:
        import huggingface_hub.constants as hub

        if not (same(hub.HF_HUB_CACHE, env["HF_HUB_CACHE"]) and hub.HF_HUB_OFFLINE):
            return False
    if "datasets" in sys.modules:
        import datasets.config as ds

        return same(ds.HF_DATASETS_CACHE, env["HF_DATASETS_CACHE"]) and bool(ds.HF_HUB_OFFLINE)
    return True


def _ref_broken(folder: str | Path, repo_type: str, repo: str, ref: str, commit: str) -> bool:
    """Whether refs/<ref>, which offline loads of a branch or tag go through, is missing or names another commit."""
    ref_file = repo_dir(folder, repo_type, repo) / "refs" / ref
    return not ref_file.is_file() or ref_file.read_text().strip() != commit


def _differs(path: Path, want: dict[str, Any]) -> bool:
    return not path.is_file() or path.stat().st_size != want["size"] or file_sha256(path) != want["sha256"]


def verify(folder: str | Path) -> list[str]:
    """Problems after a copy: files missing, or with another size or sha256 than when they were mirrored (the
    snapshots, the datasets' Arrow caches that offline loads read), and refs no longer naming their commit."""
    manifest, problems = read_manifest(folder), []
    for repo_type, entries in (("model", manifest["models"]), ("dataset", manifest["datasets"])):
        for repo, entry in entries.items():
            for part in filter(None, (entry, entry.get("parquet_export"))):
                for rel, want in part["files"].items():
                    if _differs(snapshot_dir(folder, repo_type, repo, part["commit"]) / rel, want):
                        problems.append(f"{repo_type} {repo}: {rel} is missing or differs")
                ref = part.get("ref")
                if ref and ref != part["commit"] and _ref_broken(folder, repo_type, repo, ref, part["commit"]):
                    problems.append(f"{repo_type} {repo}: refs/{ref} is missing or no longer {part['commit'][:12]}")
            for rel, want in entry.get("cache_files", {}).items():
                if _differs(hf_home(folder) / rel, want):
                    problems.append(f"{repo_type} {repo}: the prepared cache file {rel} is missing or differs")
    return problems

