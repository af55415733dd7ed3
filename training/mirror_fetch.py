"""Fetching repos into a `kosov mirror` folder (training/mirror.py runs it): each repo is downloaded into a staging
folder of its own inside the mirror, named by repo and commit (FOLDER/.staging/<type>s--org--name--<commit>), so a
download cut short is kept and the next run resumes it where it stopped (snapshot_download(local_dir=) skips the
files it has). Nothing is moved into huggingface_hub's cache layout until every check of the repo has passed; then
the files are renamed in (same disk: no second copy of a model) and the staging folder goes.
A dataset asked for some of its configs is downloaded in part where its card says which files those configs read
(dataset_files()); else, and for a model, the whole repo.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import logging
import os
import posixpath
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from data_tools.chat_io import file_sha256
from training.errors import KosovError
from training.mirror_check import hf_home, repo_dir, snapshot_dir
from training.models import COMMIT_SHA
from training.safe_write import write_atomic

log = logging.getLogger(__name__)

STAGING = ".staging"
# Formats transformers does not load, and PyTorch pickles when the repo has safetensors.
MODEL_SKIP = ["*.gguf", "*.onnx", "onnx/*", "*.h5", "*.msgpack", "*.ot", "original/*"]
PICKLED_WEIGHTS = ["*.bin", "*.pth", "*.pt"]
PARQUET_EXPORT = "refs/convert/parquet"  # the Hub's own parquet conversion of every dataset repo
# What datasets reads of a dataset folder besides the data files (datasets.config: REPOCARD_FILENAME,
# REPOYAML_FILENAME, DATASETDICT_INFOS_FILENAME), and git's attributes: always downloaded with some configs' files.
CARD = "README.md"
REPO_YAML = ".huggingface.yaml"
DATASET_META = (CARD, REPO_YAML, "dataset_infos.json", ".gitattributes")

# download(repo_id, repo_type=, revision=, token=, staging=, configs=) -> (commit, {path in repo: file});
# staging(commit) is the folder to download that commit into; configs: of a dataset, the ones needed (None: all),
# so that the download may leave out files no other config reads.
Download = Callable[..., tuple[str, dict[str, Path]]]


@dataclass
class Staged:
    """A repo downloaded into its staging folder, not yet in the mirror."""
    repo_type: str
    repo_id: str
    revision: str | None  # as asked for; None: main
    commit: str
    files: dict[str, Path]  # path in the repo -> the file in `folder`
    folder: Path

    @property
    def ref(self) -> str:
        """The ref the mirror writes: the branch or tag asked for; a pinned commit is the mirror's main."""
        return self.revision if self.revision and not COMMIT_SHA.match(self.revision) else "main"


def staging_dir(folder: str | Path, repo_type: str, repo_id: str, commit: str) -> Path:
    """The same folder for the same repo and commit in every run: a second run resumes what the first left."""
    return Path(folder) / STAGING / f"{repo_dir(folder, repo_type, repo_id).name}--{commit}"


def fetch(folder: Path, download: Download, repo_type: str, repo_id: str, revision: str | None,
          token: str | None, configs: Sequence[str] | None = None) -> Staged:
    staging = partial(staging_dir, folder, repo_type, repo_id)  # staging(commit)
    commit, files = download(repo_id, repo_type=repo_type, revision=revision or "main", token=token, staging=staging,
                             configs=configs)
    return Staged(repo_type, repo_id, revision, commit, files, staging(commit))


def place(folder: Path, staged: Staged, before: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Move a staged repo into the mirror: its manifest entry. The files `before` (the entry of an earlier run)
    recorded at the same commit stay recorded while they are there: a dataset asked for some configs is downloaded
    in part, and what an earlier run brought of it is still in the snapshot."""
    held, asked = (before or {}).get("revision"), staged.revision or "main"
    moved_by = (held, asked) if held and held != asked and before.get("ref", "main") == staged.ref else None
    records = place_repo_files(folder, staged.repo_type, staged.repo_id, staged.commit, staged.files, ref=staged.ref,
                               moved_by=moved_by)
    if before and before.get("commit") == staged.commit:
        snapshot = snapshot_dir(folder, staged.repo_type, staged.repo_id, staged.commit)
        kept = {rel: r for rel, r in before["files"].items() if rel not in records and _has_size(snapshot / rel, r)}
        records = dict(sorted({**kept, **records}.items()))
    return {"revision": staged.revision or "main", "commit": staged.commit, "mirrored": now(), "ref": staged.ref,
            "bytes": sum(r["size"] for r in records.values()), "files": records}


def clear_staging(folder: Path, repo_type: str, repo_id: str) -> None:
    """After a repo is in place: its staging folders go, this run's and those older runs left at other commits
    (under the mirror's lock no other run is using them). .staging itself goes once empty."""
    for left in (Path(folder) / STAGING).glob(f"{repo_dir(folder, repo_type, repo_id).name}--*"):
        shutil.rmtree(left, ignore_errors=True)
    with contextlib.suppress(OSError):
        (Path(folder) / STAGING).rmdir()


def place_repo_files(folder: str | Path, repo_type: str, repo_id: str, commit: str,
                     files: Mapping[str, bytes | Path], *, ref: str = "main",
                     moved_by: tuple[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Put a repo's files where huggingface_hub's cache has them: hub/<type>s--org--name/snapshots/<commit>/<path>
    and refs/<ref> = commit. Real files instead of blob symlinks (huggingface_hub's own layout where symlinks are
    unsupported), so the folder survives any copy tool. Paths are moved in (same disk: no second copy of a model).
    One version per ref: when the ref moves, the snapshot it named goes (a warning names both commits, and says why:
    the ref moved upstream, or moved_by=(the revision it was mirrored at, the other one this run asked for))."""
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
    if replaced and replaced != commit and replaced not in still_used:  # dropped by prune_snapshots, once the
        # manifest names the new commit: a run killed before that leaves the old snapshot, not a manifest naming
        # a deleted one
        back = f"; `--model {repo_id} --revision {replaced}` mirrors it again" if repo_type == "model" else ""
        why = (f"it was mirrored at {_named(moved_by[0], replaced)} and this run asked for "
               f"{_named(moved_by[1], commit)}" if moved_by else
               f"{ref} moved upstream from {replaced[:12]} to {commit[:12]}")
        log.warning("%s %s: %s; the mirror now holds %s and drops %s (a mirror keeps one commit per ref%s)",
                    repo_type, repo_id, why, commit[:12], replaced[:12], back)
    return records


def _named(revision: str, commit: str) -> str:
    return commit[:12] if COMMIT_SHA.match(revision) else f"{revision} ({commit[:12]})"


def _has_size(path: Path, record: Mapping[str, Any]) -> bool:
    return path.is_file() and path.stat().st_size == record["size"]


def prune_snapshots(folder: Path, manifest: dict[str, Any]) -> None:
    """After the manifest is saved: the snapshots no ref and no manifest entry names any more (a ref moved
    upstream) go, one commit per ref kept."""
    named = {e.get("commit") for kind in ("models", "datasets") for e in manifest[kind].values()}
    named |= {e["parquet_export"].get("commit") for e in manifest["datasets"].values() if "parquet_export" in e}
    for snapshots in (hf_home(folder) / "hub").glob("*/snapshots"):
        refs = {f.read_text().strip() for f in (snapshots.parent / "refs").rglob("*") if f.is_file()}
        for snapshot in snapshots.iterdir():
            if snapshot.name not in refs | named:
                shutil.rmtree(snapshot, ignore_errors=True)


def hub_download(repo_id: str, *, repo_type: str, revision: str, token: str | None,
                 staging: Callable[[str], Path], configs: Sequence[str] | None = None) -> tuple[str, dict[str, Path]]:
    """Fetch a repo at a revision into staging(commit): (commit, {path in repo: file}). Of a dataset asked for some
    configs, only the files they need where its card says so (dataset_files()); else the whole repo (a model's
    without the formats transformers does not load). Needs the network."""
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download
    from huggingface_hub.utils import filter_repo_objects

    local, needed, wanted = None, None, None
    try:
        info = HfApi().repo_info(repo_id, repo_type=repo_type, revision=revision, token=token, files_metadata=True)
        names = [s.rfilename for s in info.siblings or []]
        skip = MODEL_SKIP + (PICKLED_WEIGHTS if any(n.endswith(".safetensors") for n in names) else [])
        skip = skip if repo_type == "model" else None
        local = staging(info.sha)

        def read(name: str) -> Path:  # one file of the commit, ahead of the rest (the card, to pick the files)
            return Path(hf_hub_download(repo_id, name, repo_type=repo_type, revision=info.sha, local_dir=local,
                                        token=token))

        if repo_type == "dataset" and configs:
            wanted = dataset_files(repo_id, revision, names, configs, read)
        allow = None if wanted is None else [_literal(n) for n in wanted]
        kept = filter_repo_objects(info.siblings or [], allow_patterns=allow, ignore_patterns=skip,
                                   key=lambda s: s.rfilename)
        sizes = [s.size for s in kept]
        needed = sum(sizes) if None not in sizes else None  # of the files downloaded, not of the whole repo
        snapshot_download(repo_id, repo_type=repo_type, revision=info.sha, local_dir=local, token=token,
                          allow_patterns=allow, ignore_patterns=skip)
    except _network_errors() as e:
        if local and getattr(e, "errno", None) == errno.ENOSPC:  # local: FOLDER/.staging/<repo>--<commit>
            raise no_space(local.parents[1], f"the {repo_type} {repo_id}", needed) from None
        resume = (f"; running the same command again resumes the download (what came so far is kept in {local})"
                if local and local.is_dir() else "")
        raise resumable(KosovError(f"could not download the {repo_type} {repo_id}@{revision}: {type(e).__name__}: "
                                   f"{e}", fix="check the id and revision and the network; for a gated repo accept "
                                               "its terms on the Hub page and set HF_TOKEN (or pass --token)"
                                               + resume)) from None
    files = {p.relative_to(local).as_posix(): p for p in local.rglob("*")
             if p.is_file() and p.relative_to(local).parts[0] != ".cache"}
    if wanted is not None:  # a run cut short that wanted other configs left their files in the same staging folder
        wanted_set = set(wanted)
        files = {rel: p for rel, p in files.items() if rel in wanted_set}
    return info.sha, files


def _literal(name: str) -> str:
    """An fnmatch pattern (snapshot_download's allow_patterns) that matches this one path alone."""
    return re.sub(r"([*?[])", r"[\1]", name)


def dataset_files(repo_id: str, revision: str, names: Sequence[str], configs: Sequence[str],
                  read: Callable[[str], Path]) -> list[str] | None:
    """Of a dataset repo's files (`names`), those that reading `configs` from a download of it needs: the card and
    the configs' data files (of a parquet export, the configs' folders). None, the whole repo, where that is not
    known for sure (why is logged). read(name) downloads one file of the repo and gives its path."""
    if revision == PARQUET_EXPORT:  # <config>/<split>/NNNN.parquet
        lacking = [c for c in configs if not any(n.startswith(f"{c}/") for n in names)]
        if not lacking:
            return [n for n in names if n.split("/")[0] in configs]
        why = f"its parquet export has no folder {', '.join(lacking)}"
    elif f"{repo_id.split('/')[-1]}.py" in names:
        why = "a loading script defines its configs"
    elif CARD not in names and REPO_YAML not in names:
        why = f"it has no {CARD}: datasets infers its configs from its files"
    else:
        from fsspec.utils import glob_translate  # the regex of fsspec's glob, which datasets resolves patterns with

        card, repo_yaml = (read(n) if n in names else None for n in (CARD, REPO_YAML))
        try:
            patterns, why = config_patterns(card_configs(card, repo_yaml), configs)
        except Exception as e:  # a card datasets would refuse too: the whole repo, as before, and datasets says why
            patterns, why = None, f"its card's YAML cannot be read ({type(e).__name__}: {e})"
        if patterns is not None:  # `*` within a folder, `**` across folders
            matches = [re.compile(glob_translate(p)).match for p in patterns]
            return [n for n in names if n in DATASET_META or any(match(n) for match in matches)]
    log.info("%s: downloading the whole dataset repo for the configs %s: %s", repo_id, ",".join(configs), why)
    return None


def card_configs(card: Path | None, repo_yaml: Path | None = None) -> dict[str, dict[str, Any]]:
    """{config: its YAML params} of a dataset card (README.md) and .huggingface.yaml, whose keys win, parsed as
    datasets parses them when it reads a dataset folder (datasets load.py, LocalDatasetModuleFactory)."""
    import yaml
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard, DatasetCardData

    data = DatasetCard.load(card).data if card else DatasetCardData()
    extra = yaml.safe_load(repo_yaml.read_text(encoding="utf-8")) if repo_yaml else None
    if extra:
        data = DatasetCardData(**{**data.to_dict(), **extra})
    return MetadataConfigs.from_dataset_card_data(data)


def config_patterns(card: Mapping[str, Mapping[str, Any]], configs: Sequence[str]) -> tuple[list[str] | None, str]:
    """(the data_files patterns of `configs` as the card declares them, relative to the repo's root, with those of
    the card's first config: datasets resolves its files to pick the builder (csv, json, parquet...) whichever config
    is read; "") or (None, why not): a config the card does not declare, a config of it without data_files (datasets
    infers those from the files, every config's, as it reads the folder), a pattern that is no path in the repo."""
    from datasets.data_files import sanitize_patterns

    lacking = [c for c in configs if c not in card]
    if not card or lacking:
        return None, f"its card's YAML declares no config {', '.join(lacking or configs)}"
    inferred = [name for name, params in card.items() if params.get("data_files") is None]
    if inferred:
        return None, f"the config(s) {', '.join(inferred)} of its card have no data_files (datasets infers them)"
    first = next(iter(card))
    patterns = [p for split in sanitize_patterns(card[first]["data_files"]).values() for p in split]
    for name in dict.fromkeys([first, *configs]):
        base = str(card[name].get("data_dir") or "").rstrip("/")  # the config's patterns are relative to data_dir
        patterns += [posixpath.join(base, p) if base else p
                     for split in sanitize_patterns(card[name]["data_files"]).values() for p in split]
    outside = [p for p in patterns if not _repo_pattern(p)]
    if outside:
        return None, f"its data_files pattern {outside[0]!r} is not a path in the repo"
    return list(dict.fromkeys(patterns)), ""


def _repo_pattern(pattern: Any) -> bool:
    """A glob relative to the repo's root, as glob_translate() reads it: no URL, no archive hop (::), no ./ or ../"""
    return (isinstance(pattern, str) and "://" not in pattern and "::" not in pattern
            and not {"", ".", ".."} & set(pattern.split("/")))


def _network_errors() -> tuple[type[Exception], ...]:
    """huggingface_hub's HTTP errors and those of its HTTP client (httpx; httpx2 in huggingface_hub 2.x)."""
    from huggingface_hub.errors import HfHubHTTPError

    errors: list[type[Exception]] = [HfHubHTTPError, OSError]
    for client in ("httpx2", "httpx"):
        with contextlib.suppress(ImportError):
            errors.append(importlib.import_module(client).HTTPError)
    return tuple(errors)


def no_space(where: Path, what: str, needed: int | None = None) -> KosovError:
    """A full disk, told as such (not as a network or id problem), with the space the repo needs when known."""
    free = shutil.disk_usage(where).free
    need = f"; it needs {_gb(needed)} in all, {_gb(free)} is free now" if needed else f"; {_gb(free)} is free now"
    return resumable(KosovError(f"no space left on the disk of {where} for {what}{need}",
                                fix="free space there, or mirror into a folder on a larger disk; running the same "
                                    "command again resumes the download (what came so far is kept)"))


def resumable(error: KosovError) -> KosovError:
    """An error after which the repo's staging folder is kept: running the command again resumes from it."""
    error.resumable = True
    return error


@contextlib.contextmanager
def staging_kept_only_to_resume(folder: Path, repo_type: str, repo_id: str) -> Iterator[None]:
    """A repo refused after its download (a config it lacks, a pin its parquet export cannot give) leaves no staging
    folder behind, which nothing would resume and which a copy of the mirror would carry to the closed network."""
    try:
        yield
    except KosovError as e:
        if not getattr(e, "resumable", False):
            clear_staging(folder, repo_type, repo_id)
        raise


@contextlib.contextmanager
def disk_full_told(where: Path, what: str) -> Iterator[None]:
    """A full disk while the mirror's files are written (the Arrow cache, the manifest) as no_space()."""
    try:
        yield
    except Exception as e:  # datasets wraps the OSError in its DatasetGenerationError: its causes are looked at too
        if isinstance(e, KosovError) or not _disk_full(e):  # a KosovError says it already (no_space from a download)
            raise
        raise no_space(where, what) from None


def _disk_full(error: BaseException | None) -> bool:
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        seen.add(id(error))
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    return False


def _gb(size: int) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e8 else f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size} bytes"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
