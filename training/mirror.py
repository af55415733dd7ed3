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

Layout of MIRROR: hf_home/hub (hub cache: raw repo files, real files, no symlinks), hf_home/datasets (Arrow cache),
kosov-mirror.json (manifest: what, revisions, commits, sizes, sha256, when). Tokens are never written.
Using it (the layout's paths, --env, --verify, the checks before a recipe loads anything) is training/mirror_check.py.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import shlex
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

from data_tools.chat_io import file_sha256
from training.errors import KosovError
from training.mirror_check import MANIFEST, hf_home, mirror_env, read_manifest, repo_dir, snapshot_dir, verify
from training.mirror_tasks import SUITE_FAMILIES, by_repo, parse_dataset, suite_datasets, task_datasets
from training.models import COMMIT_SHA
from training.safe_write import write_atomic

log = logging.getLogger(__name__)

FORMAT = 1
PARQUET_EXPORT = "refs/convert/parquet"  # the Hub's own parquet conversion of every dataset repo
# Formats transformers does not load, and PyTorch pickles when the repo has safetensors.
MODEL_SKIP = ["*.gguf", "*.onnx", "onnx/*", "*.h5", "*.msgpack", "*.ot", "original/*"]
PICKLED_WEIGHTS = ["*.bin", "*.pth", "*.pt"]
LIBRARIES = ("datasets", "huggingface_hub", "lm_eval", "transformers")

Download = Callable[..., tuple[str, dict[str, Path]]]


def __getattr__(name: str) -> Any:
    if name == "SUITE_DATASETS":  # computed on first use: reading lm-eval's YAML files takes about a second
        return suite_datasets()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def place_repo_files(folder: str | Path, repo_type: str, repo_id: str, commit: str,
                     files: Mapping[str, bytes | Path], *, ref: str = "main") -> dict[str, dict[str, Any]]:
    """Put a repo's files where huggingface_hub's cache has them: hub/<type>s--org--name/snapshots/<commit>/<path>
    and refs/<ref> = commit. Real files instead of blob symlinks (huggingface_hub's own layout where symlinks are
    unsupported), so the folder survives any copy tool. Paths are moved in (same disk: no second copy of a model)."""
    repo = repo_dir(folder, repo_type, repo_id)
    snapshot = repo / "snapshots" / commit
    ref_file = repo / "refs" / ref
    replaced = ref_file.read_text().strip() if ref != commit and ref_file.is_file() else None
    records = {}
    for rel, source in sorted(files.items()):
        parts = PurePosixPath(rel).parts
        if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
            raise KosovError(f"{repo_id}: refusing the file path {rel!r}, which leaves the repo folder")
        target = snapshot.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, bytes):
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
            tmp.write_bytes(source)
            os.replace(tmp, target)
        else:
            shutil.move(str(source), target)
        records[rel] = {"size": target.stat().st_size, "sha256": file_sha256(target)}
    if ref != commit:
        write_atomic(ref_file, commit)
    still_used = {f.read_text().strip() for f in (repo / "refs").rglob("*") if f.is_file()}
    if replaced and replaced not in still_used:  # one version per ref: the one it points at now
        shutil.rmtree(repo / "snapshots" / replaced, ignore_errors=True)
    return records


def _export_data_files(snapshot: Path) -> dict[str, dict[str, list[str]]]:
    """{config: {split: parquet files}} of a parquet export: <config>/<split or partial-split>/NNNN.parquet."""
    configs: dict[str, dict[str, list[str]]] = {}
    for path in sorted(snapshot.glob("*/*/*.parquet")):
        split = path.parent.name.removeprefix("partial-")
        configs.setdefault(path.parent.parent.name, {}).setdefault(split, []).append(str(path))
    return configs


def prepare_dataset(folder: str | Path, repo_id: str, snapshot: Path, commit: str,
                    configs: Iterable[str] | None = None, *, parquet_export: bool = False) -> dict[str, dict[str, int]]:
    """Build the Arrow cache that load_dataset(repo_id, config) reads offline, from the repo's files on disk.
    The configs come from the repo exactly as datasets reads a hub repo (README `configs:`, else inferred files);
    the cache folder and file names are the ones datasets writes for that repo. Returns {config: {split: rows}}."""
    from datasets.load import dataset_module_factory, get_dataset_builder_class
    from datasets.naming import camelcase_to_snakecase

    name = camelcase_to_snakecase(repo_id.split("/")[-1])
    exported = _export_data_files(snapshot) if parquet_export else {}
    module = None if parquet_export else dataset_module_factory(str(snapshot))
    available = list(exported) if parquet_export else [c.name for c in module.builder_configs_parameters.builder_configs]
    wanted = list(configs) if configs is not None else available
    missing = [c for c in wanted if c not in available]
    if missing:
        raise KosovError(f"{repo_id} at {commit[:12]} has no config {', '.join(missing)}",
                         fix=f"its configs are: {', '.join(map(str, available))}")
    root = dataset_cache_dir(folder, repo_id)
    prepared = {}
    with tempfile.TemporaryDirectory(prefix="kosov-mirror-") as scratch:
        for config in wanted:
            if parquet_export:
                module = dataset_module_factory("parquet", data_files=exported[config])
            builder = get_dataset_builder_class(module, dataset_name=name)(
                cache_dir=scratch, dataset_name=name, config_name=config, hash=commit,
                base_path=module.builder_kwargs.get("base_path"), data_files=module.builder_kwargs.get("data_files"),
                info=(module.dataset_infos or {}).get(config))
            out = root / builder.config.name / str(builder.config.version) / commit
            if out.parent.is_dir():  # another commit's Arrow files would be read instead (the newest wins)
                shutil.rmtree(out.parent)
            builder.download_and_prepare(output_dir=str(out))
            for lock in out.parent.glob("*.lock"):
                lock.unlink()
            prepared[builder.config.name] = {s: int(i.num_examples) for s, i in builder.info.splits.items()}
    return prepared


def dataset_cache_dir(folder: str | Path, repo_id: str) -> Path:
    """Where datasets keeps the Arrow cache of a hub repo (the folder load_dataset reads offline)."""
    from datasets.naming import camelcase_to_snakecase

    name = camelcase_to_snakecase(repo_id.split("/")[-1])
    return hf_home(folder) / "datasets" / "___".join([*repo_id.split("/")[:-1], name])


def _file_records(root: Path, base: Path) -> dict[str, dict[str, Any]]:
    return {p.relative_to(base).as_posix(): {"size": p.stat().st_size, "sha256": file_sha256(p)}
            for p in sorted(root.rglob("*")) if p.is_file()}


def hub_download(repo_id: str, *, repo_type: str, revision: str, token: str | None, staging: Path
                 ) -> tuple[str, dict[str, Path]]:
    """Fetch a repo at a revision into `staging`: (commit, {path in repo: file}). Needs the network."""
    from huggingface_hub import HfApi, snapshot_download

    try:
        info = HfApi().repo_info(repo_id, repo_type=repo_type, revision=revision, token=token)
        names = [s.rfilename for s in info.siblings or []]
        skip = MODEL_SKIP + (PICKLED_WEIGHTS if any(n.endswith(".safetensors") for n in names) else [])
        local = Path(snapshot_download(repo_id, repo_type=repo_type, revision=info.sha, local_dir=staging,
                                       token=token, ignore_patterns=skip if repo_type == "model" else None))
    except _network_errors() as e:
        raise KosovError(f"could not download the {repo_type} {repo_id}@{revision}: {type(e).__name__}: {e}",
                         fix="check the id and revision and the network; for a gated repo accept its terms on the "
                             "Hub page and set HF_TOKEN (or pass --token)") from None
    return info.sha, {p.relative_to(local).as_posix(): p for p in local.rglob("*")
                      if p.is_file() and p.relative_to(local).parts[0] != ".cache"}


def _network_errors() -> tuple[type[Exception], ...]:
    """huggingface_hub's HTTP errors and those of its HTTP client (httpx; httpx2 in huggingface_hub 2.x)."""
    from huggingface_hub.errors import HfHubHTTPError

    errors: list[type[Exception]] = [HfHubHTTPError, OSError]
    for client in ("httpx2", "httpx"):
        with contextlib.suppress(ImportError):
            errors.append(importlib.import_module(client).HTTPError)
    return tuple(errors)


def _fetch(folder: Path, download: Download, repo_type: str, repo_id: str, revision: str | None,
           token: str | None) -> dict[str, Any]:
    staging = folder / ".staging" / uuid.uuid4().hex  # inside the mirror: moving the files in is a rename
    try:
        commit, files = download(repo_id, repo_type=repo_type, revision=revision or "main", token=token,
                                 staging=staging)
        ref = revision if revision and not COMMIT_SHA.match(revision) else "main"  # a pinned sha is the mirror's main
        records = place_repo_files(folder, repo_type, repo_id, commit, files, ref=ref)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"revision": revision or "main", "commit": commit, "mirrored": _now(), "ref": ref,
            "bytes": sum(r["size"] for r in records.values()), "files": records}


def _mirror_dataset(folder: Path, download: Download, repo_id: str, revision: str | None,
                    configs: tuple[str, ...] | None, token: str | None, before: dict | None) -> dict[str, Any]:
    entry = _fetch(folder, download, "dataset", repo_id, revision, token)
    data, commit, export = snapshot_dir(folder, "dataset", repo_id, entry["commit"]), entry["commit"], False
    script = f"{repo_id.split('/')[-1]}.py"
    if script in entry["files"]:  # datasets 5 runs no loading scripts; the Hub's parquet export holds the same rows
        log.warning("%s is defined by a loading script (%s): mirroring its parquet export instead", repo_id, script)
        entry["parquet_export"] = _fetch(folder, download, "dataset", repo_id, PARQUET_EXPORT, token)
        commit, export = entry["parquet_export"]["commit"], True
        data = snapshot_dir(folder, "dataset", repo_id, commit)
    if configs is not None and before and before.get("configs"):  # keep what an earlier run mirrored
        configs = tuple(dict.fromkeys([*before["configs"], *configs]))
    entry["configs"] = prepare_dataset(folder, repo_id, data, commit, configs, parquet_export=export)
    # what load_dataset reads offline: verify() checks these too, not only the snapshot they were built from
    entry["cache_files"] = _file_records(dataset_cache_dir(folder, repo_id), hf_home(folder))
    return entry


def mirror(folder: str | Path, *, model: str | None = None, revision: str | None = None,
           datasets: Iterable[str] = (), tasks: Iterable[str] = (), token: str | None = None,
           download: Download = hub_download) -> dict[str, Any]:
    """Download a model, datasets ('org/name[@rev][:config,...]') and the datasets behind lm-eval tasks into
    `folder`, adding to what it holds. The manifest is rewritten atomically after every repo."""
    folder = Path(folder).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(folder) if (folder / MANIFEST).is_file() else {
        "format": FORMAT, "created": _now(), "models": {}, "datasets": {}, "tasks": {}}
    task_map = task_datasets(tasks) if tasks else {}
    wanted: dict[str, tuple[str | None, tuple[str, ...] | None]] = {
        repo: (None, configs) for repo, configs in by_repo(task_map.values()).items()}
    for repo, rev, configs in map(parse_dataset, datasets):
        old = wanted.get(repo, (None, ()))[1]
        wanted[repo] = (rev, None if configs is None or old is None else tuple(dict.fromkeys([*old, *configs])))

    def save() -> None:
        manifest.update(updated=_now(), kosov=_version("kosov"), libraries={n: _version(n) for n in LIBRARIES})
        write_atomic(folder / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1) + "\n")

    if model:
        manifest["models"][model] = _fetch(folder, download, "model", model, revision, token)
        save()
    for repo, (rev, configs) in wanted.items():
        manifest["datasets"][repo] = _mirror_dataset(folder, download, repo, rev, configs, token,
                                                     manifest["datasets"].get(repo))
        save()
    manifest["tasks"].update({task: list(pair) for task, pair in task_map.items()})
    save()
    shutil.rmtree(folder / ".staging", ignore_errors=True)
    return manifest


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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
    try:
        if args.env:
            print("\n".join(f"export {k}={shlex.quote(v)}" for k, v in mirror_env(args.folder).items()))
        elif args.verify:
            problems = verify(args.folder)
            print("\n".join(problems) or f"{args.folder}: every file as mirrored", file=sys.stderr if problems else sys.stdout)
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
