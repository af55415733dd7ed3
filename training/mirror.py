"""Mirror a base model, datasets and the benchmark data of lm-eval's Korean tasks into one folder that can be
copied (rsync, USB) to a closed network, where the same recipes and lm-eval's own built-in tasks run offline.

    kosov mirror MIRROR --model Qwen/Qwen3-8B --suite kobest --suite kmmlu --dataset org/name   # connected
    kosov mirror MIRROR --verify    # after copying: every file there, with the same size and sha256
    eval "$(kosov mirror MIRROR --env)"    # the closed network: HF_HOME=MIRROR/hf_home, offline
(`python -m training.mirror ...` is the same command.)

How the closed side reads it (HF_HOME=MIRROR/hf_home, HF_HUB_OFFLINE=1, HF_DATASETS_OFFLINE=1):
- models: `from_pretrained("Qwen/Qwen3-8B")` finds refs/main -> snapshots/<commit>/ in the hub cache
  (huggingface_hub file_download.py, _hf_hub_download_to_cache_dir, the "head_call_error" branch).
- datasets: offline, datasets 5.x never asks the hub cache for a hub dataset: dataset_module_factory raises
  OfflineModeIsEnabled before its hf_hub_download and falls back to CachedDatasetModuleFactory (datasets load.py),
  which reads the Arrow cache HF_DATASETS_CACHE/<org>___<name>/<config>/<version>/<hash>/ through the `cache`
  packaged builder. So `mirror()` builds exactly that Arrow cache from the downloaded repo files, and lm-eval's
  unchanged tasks (`dataset_path: skt/kobest_v1`, `dataset_name: boolq`) load it with plain load_dataset(path, name).
  Offline, datasets does not know a repo's default config: the manifest records it (kosov's loaders name it), and a
  task without dataset_name gets that config alone (load_dataset(path) then finds the one config there is).

Layout of MIRROR: hf_home/hub (hub cache: raw repo files, real files, no symlinks), hf_home/datasets (Arrow cache),
kosov-mirror.json (manifest: what, revisions, commits, sizes, sha256, when), .kosov-mirror.lock (held by the one run
writing the folder), .staging/ (downloads not yet moved in: kept when one fails, so running again resumes it; the
fetching is training/mirror_fetch.py). Each repo goes in whole or not at all: downloaded, its configs built and
checked in .staging, then moved in. Tokens are never written.
Using it (the layout's paths, --env, --verify, the checks before a recipe loads anything) is training/mirror_check.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from data_tools.chat_io import file_sha256
from training.errors import KosovError
from training.mirror_check import FORMAT, MANIFEST, hf_home, mirror_env, partial_splits, read_manifest, verify
from training.mirror_fetch import (PARQUET_EXPORT, Download, Staged, clear_staging, disk_full_told, fetch,
                                   hub_download, now, place, prune_snapshots, staging_kept_only_to_resume)
from training.mirror_tasks import SUITE_FAMILIES, by_repo, parse_dataset, suite_datasets, task_datasets
from training.models import HUB_ID
from training.safe_write import swap_into_place, write_atomic

log = logging.getLogger(__name__)

LOCK = ".kosov-mirror.lock"
LIBRARIES = ("datasets", "huggingface_hub", "lm_eval", "transformers")


def __getattr__(name: str) -> Any:
    if name == "SUITE_DATASETS":  # computed on first use: reading lm-eval's YAML files takes about a second
        return suite_datasets()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _export_data_files(snapshot: Path) -> dict[str, dict[str, list[str]]]:
    """{config: {split: parquet files}} of a parquet export: <config>/<split or partial-split>/NNNN.parquet."""
    configs: dict[str, dict[str, list[str]]] = {}
    for path in sorted(snapshot.glob("*/*/*.parquet")):
        split = path.parent.name.removeprefix("partial-")
        configs.setdefault(path.parent.parent.name, {}).setdefault(split, []).append(str(path))
    return configs


def _partial_splits(snapshot: Path) -> dict[str, list[str]]:
    """{config: [split]} of a parquet export's `partial-<split>` folders: the Hub converts only the first ~5 GB of
    a large split, so those rows are not the whole split."""
    partial: dict[str, list[str]] = {}
    for split in sorted(snapshot.glob("*/partial-*")):
        partial.setdefault(split.parent.name, []).append(split.name.removeprefix("partial-"))
    return partial


def prepare_dataset(root: Path, repo_id: str, snapshot: Path, commit: str,
                    configs: Iterable[str | None] | None = None, *, parquet_export: bool = False
                    ) -> tuple[dict[str, dict[str, int]], str | None]:
    """Build, under `root`, the Arrow cache that load_dataset(repo_id, config) reads offline, from the repo's files
    on disk. `root` is a staging folder that mirror() swaps in as dataset_cache_dir() once every config was built:
    a missing config or a failed build leaves the mirror's cache as it was. The configs come from the repo exactly
    as datasets reads a hub repo (README `configs:`, else inferred files); the cache folder and file names are the
    ones datasets writes for that repo. configs: None for all; a None among them is the repo's default config, the
    one load_dataset(repo_id) reads with no config name. Returns ({config: {split: rows}}, the default config or
    None where the repo has several and no default)."""
    from datasets.load import dataset_module_factory, get_dataset_builder_class
    from datasets.naming import camelcase_to_snakecase

    name = camelcase_to_snakecase(repo_id.split("/")[-1])
    exported = _export_data_files(snapshot) if parquet_export else {}
    module = None if parquet_export else dataset_module_factory(str(snapshot))
    available = list(exported) if parquet_export else [c.name for c in module.builder_configs_parameters.builder_configs]
    # as datasets picks it when no config is named (MetadataConfigs.get_default_config_name, then the builder's
    # only config): `default: true` in the card, a config named "default", or the only one
    default = "default" if "default" in available else None
    if module is not None:
        default = module.builder_configs_parameters.default_config_name
    default = default or (available[0] if len(available) == 1 else None)
    if configs is not None and None in configs and default is None:
        raise KosovError(f"{repo_id} at {commit[:12]} has several configs and none is its default, so "
                         f"load_dataset({repo_id!r}) with no config name reads none of them",
                         fix=f"name a config (--dataset {repo_id}:<config>) of: {', '.join(map(str, available))}; "
                             "an lm-eval task without dataset_name cannot read this repo")
    wanted = available if configs is None else list(dict.fromkeys(default if c is None else c for c in configs))
    missing = [c for c in wanted if c not in available]
    if missing:
        raise KosovError(f"{repo_id} at {commit[:12]} has no config {', '.join(missing)}",
                         fix=f"its configs are: {', '.join(map(str, available))}; the mirror is left as it was")
    prepared = {}
    with tempfile.TemporaryDirectory(prefix="kosov-mirror-") as scratch:
        for config in wanted:
            if parquet_export:
                module = dataset_module_factory("parquet", data_files=exported[config])
            builder = get_dataset_builder_class(module, dataset_name=name)(
                cache_dir=scratch, dataset_name=name, config_name=config, hash=commit,
                base_path=module.builder_kwargs.get("base_path"), data_files=module.builder_kwargs.get("data_files"),
                info=(module.dataset_infos or {}).get(config))
            # one commit per config: another commit's Arrow files beside it would be read instead (the newest wins)
            out = root / builder.config.name / str(builder.config.version) / commit
            builder.download_and_prepare(output_dir=str(out))
            for lock in out.parent.glob("*.lock"):
                lock.unlink()
            prepared[builder.config.name] = {s: int(i.num_examples) for s, i in builder.info.splits.items()}
    return prepared, default


def dataset_cache_dir(folder: str | Path, repo_id: str) -> Path:
    """Where datasets keeps the Arrow cache of a hub repo (the folder load_dataset reads offline)."""
    from datasets.naming import camelcase_to_snakecase

    name = camelcase_to_snakecase(repo_id.split("/")[-1])
    return hf_home(folder) / "datasets" / "___".join([*repo_id.split("/")[:-1], name])


def _file_records(root: Path, base: Path) -> dict[str, dict[str, Any]]:
    return {p.relative_to(base).as_posix(): {"size": p.stat().st_size, "sha256": file_sha256(p)}
            for p in sorted(root.rglob("*")) if p.is_file()}


def _parquet_export(folder: Path, download: Download, main: Staged, configs: tuple[str, ...] | None,
                    token: str | None) -> Staged | None:
    """The Hub's parquet export of a dataset that a loading script defines (datasets 5 runs no loading scripts; the
    export holds the same rows), staged; None for any other dataset. The export is of the latest version only, so
    a pinned revision is refused rather than recorded for rows that are not of it."""
    script = f"{main.repo_id.split('/')[-1]}.py"
    if script not in main.files:
        return None
    if main.revision not in (None, "main"):
        spec = main.repo_id + (f":{','.join(configs)}" if configs else "")
        raise KosovError(f"the dataset {main.repo_id} is defined by a loading script ({script}), so its rows come from "
                         f"the Hub's parquet export ({PARQUET_EXPORT}), which holds only its latest version, not "
                         f"{main.revision}", fix=f"mirror it without a revision (--dataset {spec}): the manifest then "
                                                 "records the export's commit as its revision")
    log.warning("%s is defined by a loading script (%s): mirroring its parquet export instead", main.repo_id, script)
    return fetch(folder, download, "dataset", main.repo_id, PARQUET_EXPORT, token, configs)


def _mirror_dataset(folder: Path, download: Download, repo_id: str, revision: str | None,
                    configs: tuple[str | None, ...] | None, token: str | None, before: dict | None,
                    bare_tasks: Iterable[str] = ()) -> dict[str, Any]:
    """Stage the repo (and its parquet export, for a loading script), build the Arrow cache of its configs from the
    staged files, and only then move it all in: a config it lacks, a pin the export cannot give or a failed build
    leaves the mirror exactly as it was (an update that fails never breaks a mirror that was fine). Asked for some
    configs, the download may hold only their files: an earlier run's configs are asked for again, so that the
    Arrow cache, rebuilt from this download, keeps them. A None config is the repo's default (recorded in the
    entry): which one that is is read from the whole repo. `bare_tasks`, lm-eval tasks that read the repo with no
    config name, are refused unless the default is the one config the mirror would hold of it."""
    if configs is not None and before and before.get("configs"):  # keep what an earlier run mirrored
        configs = tuple(dict.fromkeys([*before["configs"], *configs]))
    whole = configs is None or None in configs
    main = fetch(folder, download, "dataset", repo_id, revision, token, None if whole else configs)
    export = _parquet_export(folder, download, main, None if whole else configs, token)
    data = export or main
    cache = data.folder.with_name(f"{data.folder.name}.arrow")
    shutil.rmtree(cache, ignore_errors=True)  # a build a killed run left half-done
    cache.mkdir(parents=True)
    prepared, default = prepare_dataset(cache, repo_id, data.folder, data.commit, configs,
                                        parquet_export=export is not None)
    known = not export or whole  # of an export only the asked configs' folders came: its default is not known
    if not known and before and before.get("parquet_export", {}).get("commit") == export.commit:
        known, default = "default_config" in before, before.get("default_config")
    _check_bare_tasks(repo_id, bare_tasks, prepared, default if known else None)
    partial = {c: splits for c, splits in _partial_splits(data.folder).items() if c in prepared} if export else {}
    for config, splits in partial.items():
        log.warning("%s: the Hub's parquet export holds only the first ~5 GB of %s/%s (partial-...): mirrored as it "
                    "is, marked partial in the manifest", repo_id, config, ",".join(splits))
    entry = place(folder, main, before)
    if export:
        entry["parquet_export"] = place(folder, export, (before or {}).get("parquet_export"))
        entry["revision"] = export.commit  # the version of the rows, not the pin-less "main" of the script
    target = dataset_cache_dir(folder, repo_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    swap_into_place(cache, target)
    entry["configs"] = prepared
    if known:  # what kosov's loaders read offline for this repo with no config name (load_dataset would guess)
        entry["default_config"] = default
    if partial:
        entry["partial"] = partial
    # what load_dataset reads offline: verify() checks these too, not only the snapshot they were built from
    entry["cache_files"] = _file_records(target, hf_home(folder))
    return entry


def _check_bare_tasks(repo_id: str, tasks: Iterable[str], prepared: dict[str, Any], default: str | None) -> None:
    """lm-eval calls load_dataset(repo) for a task without dataset_name; offline, datasets then takes the config it
    finds in the Arrow cache, and refuses when there are several: the default must be the one config held."""
    tasks = sorted(tasks)
    if tasks and (default is None or list(prepared) != [default]):
        what = f"its default config {default}" if default else "a default config (it has none, or it is not known)"
        raise KosovError(f"lm-eval task {', '.join(tasks)} reads {repo_id} with no config name, which datasets "
                         f"resolves offline only when the mirror holds one config of it, {what}; this mirror would "
                         f"hold {', '.join(prepared)}",
                         fix=f"keep the other configs of {repo_id} in another mirror folder, or leave the task out; "
                             "the mirror is left as it was")


def _check_hub_id(kind: str, repo_id: str) -> None:
    """Before anything is created: a local path or a malformed id is refused here, not as huggingface_hub's
    validation traceback after the mirror folder was made."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
        valid = bool(HUB_ID.match(repo_id))
    except HFValidationError:
        valid = False
    if not valid:
        on_disk = " (a model folder on disk needs no mirror: copy it to the closed network as it is)"
        raise KosovError(f"--{kind} {repo_id!r} is not a Hugging Face Hub {kind} id",
                         fix="write org/name as on huggingface.co" + (on_disk if kind == "model" else ""))


def _wanted_datasets(datasets: Iterable[str], task_map: dict[str, tuple[str, str | None]]
                     ) -> dict[str, tuple[str | None, tuple[str | None, ...] | None]]:
    """{repo: (revision, configs or None for all)} of --dataset specs and the datasets behind the tasks (a task
    without dataset_name asks for None: the repo's default config)."""
    wanted: dict[str, tuple[str | None, tuple[str | None, ...] | None]] = {
        repo: (None, configs) for repo, configs in by_repo(task_map.values()).items()}
    for repo, rev, configs in map(parse_dataset, datasets):
        _check_hub_id("dataset", repo)
        old = wanted.get(repo, (None, ()))[1]
        wanted[repo] = (rev, None if configs is None or old is None else tuple(dict.fromkeys([*old, *configs])))
    return wanted


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One `kosov mirror` at a time per folder: two would each rewrite the manifest they read at the start (the
    last one's wins) and could move files the other is still staging. The OS drops the lock of a killed run."""
    from filelock import FileLock, Timeout

    lock = FileLock(folder / LOCK, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise KosovError(f"another `kosov mirror` is writing to {folder} (it holds {folder / LOCK})",
                         fix="wait until it ends and run this again (what it mirrors is kept), or mirror into "
                             "another folder") from None
    try:
        yield
    finally:
        lock.release()


def mirror(folder: str | Path, *, model: str | None = None, revision: str | None = None,
           datasets: Iterable[str] = (), tasks: Iterable[str] = (), token: str | None = None,
           download: Download = hub_download) -> dict[str, Any]:
    """Download a model, datasets ('org/name[@rev][:config,...]') and the datasets behind lm-eval tasks into
    `folder`, adding to what it holds. Every id is checked before anything is created; the run holds the folder's
    lock throughout; each repo goes in whole or not at all, and the manifest is rewritten atomically after it."""
    folder = Path(folder).expanduser().resolve()
    if model:
        _check_hub_id("model", model)
    task_map = task_datasets(tasks) if tasks else {}
    wanted = _wanted_datasets(datasets, task_map)
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):
        manifest = read_manifest(folder) if (folder / MANIFEST).is_file() else {
            "format": FORMAT, "created": now(), "models": {}, "datasets": {}, "tasks": {}}

        def save() -> None:
            manifest.update(updated=now(), kosov=_version("kosov"), libraries={n: _version(n) for n in LIBRARIES})
            write_atomic(folder / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1) + "\n")
            prune_snapshots(folder, manifest)  # commits a moved ref left: only once the manifest no longer names them

        if model:
            with disk_full_told(folder, f"the model {model}"), staging_kept_only_to_resume(folder, "model", model):
                manifest["models"][model] = place(folder, fetch(folder, download, "model", model, revision, token),
                                                  manifest["models"].get(model))
                clear_staging(folder, "model", model)
                save()
        tasks_after = {**manifest["tasks"], **{task: list(pair) for task, pair in task_map.items()}}
        for repo, (rev, configs) in wanted.items():
            before = manifest["datasets"].get(repo)
            bare = [task for task, (r, config) in tasks_after.items() if r == repo and config is None]
            with disk_full_told(folder, f"the dataset {repo}"), staging_kept_only_to_resume(folder, "dataset", repo):
                manifest["datasets"][repo] = _mirror_dataset(folder, download, repo, rev or _held_pin(repo, before),
                                                             configs, token, before, bare)
                clear_staging(folder, "dataset", repo)
                save()
        manifest["tasks"].update({task: list(pair) for task, pair in task_map.items()})
        save()
    return manifest


def _held_pin(repo: str, before: dict[str, Any] | None) -> str | None:
    """The revision a mirrored dataset is pinned at (a commit, or a branch or tag other than main), which a run
    naming no revision for it (a --task, --suite or plain --dataset) keeps: only `--dataset REPO@main` (or another
    @revision) moves it. A loading script's dataset records its parquet export's commit, and is no pin."""
    pin = (before or {}).get("revision")
    if pin in (None, "main") or "parquet_export" in before:
        return None
    log.warning("dataset %s stays at its pinned revision %s, asked for with none (--dataset %s@main moves it to the "
                "Hub's main)", repo, pin, repo)
    return pin


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None

def main(argv: list[str] | None = None) -> int:
    """`kosov mirror FOLDER [--model ID] [--task T] [--suite S] [--dataset D]`, or FOLDER --env / FOLDER --verify."""
    parser = argparse.ArgumentParser(prog="kosov mirror", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--model")
    parser.add_argument("--revision", help="of the model: a branch, tag or commit")
    parser.add_argument("--dataset", action="append", default=[], help="org/name[@revision][:config,...]")
    parser.add_argument("--task", action="append", default=[], help="an lm-eval task, group or tag")
    parser.add_argument("--suite", action="append", default=[], choices=SUITE_FAMILIES)
    parser.add_argument("--token", help="default: HF_TOKEN or `hf auth login`; never written to FOLDER")
    parser.add_argument("--env", action="store_true", help="print the shell exports that use FOLDER offline")
    parser.add_argument("--verify", action="store_true", help="check every file against the manifest")
    args = parser.parse_args(argv)
    downloads = [flag for flag, value in (("--model", args.model), ("--revision", args.revision),
                                          ("--dataset", args.dataset), ("--task", args.task), ("--suite", args.suite))
                 if value]
    try:
        if args.env + args.verify > 1 or (args.env or args.verify) and downloads:
            used = [f for f, on in (("--env", args.env), ("--verify", args.verify)) if on] + downloads
            raise KosovError(f"{' with '.join(used)}: --env and --verify read a mirror already made and download "
                             "nothing", fix=f"mirror first, then run `kosov mirror {args.folder} --verify` and "
                                            f"`kosov mirror {args.folder} --env` each on its own")
        if args.env:
            read_manifest(args.folder)  # the exports of a folder that is no mirror would only fail later, offline
            print("\n".join(f"export {k}={shlex.quote(v)}" for k, v in mirror_env(args.folder).items()))
        elif args.verify:
            problems = verify(args.folder)
            print("\n".join(problems) or "\n".join([f"{args.folder}: every file as mirrored",
                                                    *partial_splits(read_manifest(args.folder))]),
                  file=sys.stderr if problems else sys.stdout)
            return 1 if problems else 0
        elif args.revision and not args.model:
            raise KosovError("--revision is the model's revision, and no --model was given",
                             fix="kosov mirror FOLDER --model org/name --revision <commit>")
        elif not (args.model or args.dataset or args.task or args.suite):
            raise KosovError("nothing to mirror: no --model, --dataset, --task or --suite",
                             fix="kosov mirror FOLDER --model org/name --task kobest_boolq (see README: closed "
                                 "networks), or --verify / --env for a mirror already made")
        else:
            mirror(args.folder, model=args.model, revision=args.revision, datasets=args.dataset,
                   tasks=args.task + args.suite, token=args.token)
    except KosovError as e:
        print(e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
