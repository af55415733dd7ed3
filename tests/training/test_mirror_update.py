"""`kosov mirror` run again on a folder, or run badly: one run at a time per folder, a failed update leaves the
mirror as it was, an interrupted download resumes, a full disk is told as one, and what the Hub cannot give as
asked (a pinned script dataset, a partial parquet export) is said, never hidden. The Hub is the fake of
test_mirror.py; the download tests replace huggingface_hub's own HfApi and snapshot_download instead."""

from __future__ import annotations

import errno
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.training.test_mirror import HAERAE, MODEL, fake_download, fake_hub, parquet
from training.errors import KosovError
from training.mirror import PARQUET_EXPORT, main, mirror
from training.mirror_check import read_manifest, repo_dir, require, verify

KOBEST = "skt/kobest_v1"
HAE = "HAERAE-HUB/HAE_RAE_BENCH"
LOCK = ".kosov-mirror.lock"


@pytest.fixture
def hub(tmp_path):
    """The fake Hub of test_mirror.py with a two-file model (no model is loaded here)."""
    model = tmp_path / "model-files"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')
    (model / "model.safetensors").write_bytes(b"\0" * 64)
    return fake_hub(model)


class FakeApi:
    """HfApi().repo_info as the Hub answers it with files_metadata: the commit and each file's size."""
    sizes = {"config.json": 2, "model.safetensors": 16_100_000_000}

    def repo_info(self, repo_id, *, repo_type=None, revision=None, token=None, files_metadata=False, **_):
        return SimpleNamespace(sha="1" * 40, siblings=[SimpleNamespace(rfilename=n, size=s) for n, s in
                                                        self.sizes.items()])


def fake_snapshot_download(failures: list, seen: list):
    """snapshot_download(local_dir=) as it resumes: writes only the files local_dir lacks, and raises the next of
    `failures` after each file it writes. `seen` gets what local_dir held when each call began."""

    def snapshot_download(repo_id, *, local_dir, **_):
        local = Path(local_dir)
        seen.append(sorted(p.name for p in local.iterdir()) if local.is_dir() else [])
        for name in FakeApi.sizes:
            if not (local / name).exists():
                local.mkdir(parents=True, exist_ok=True)
                (local / name).write_bytes(b"{}")
                if failures:
                    raise failures.pop(0)
        return str(local)

    return snapshot_download


@pytest.fixture
def hub_client(monkeypatch):
    """Replace huggingface_hub's client; returns set(failures) -> the `seen` list of the fake snapshot_download."""
    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)

    def set_failures(*failures):
        seen: list = []
        monkeypatch.setattr("huggingface_hub.snapshot_download", fake_snapshot_download(list(failures), seen))
        return seen

    return set_failures


def test_a_second_run_into_the_same_folder_is_refused_while_the_first_runs(hub, tmp_path):
    """Two runs at once lost each other's manifest entries, and the first to end deleted the other's staging."""
    folder, refused, inner = tmp_path / "m", [], fake_download(hub, [])

    def download(repo_id, **kwargs):
        commit, files = inner(repo_id, **kwargs)  # staged by the first run, not yet moved in
        if not refused:
            with pytest.raises(KosovError) as error:
                mirror(folder, datasets=[f"{KOBEST}:copa"], download=fake_download(hub, []))
            refused.append(str(error.value))
        return commit, files

    manifest = mirror(folder, model=MODEL, datasets=[f"{KOBEST}:boolq"], download=download)
    assert f"another `kosov mirror` is writing to {folder}" in refused[0] and LOCK in refused[0]
    assert "wait until it ends" in refused[0] and "another folder" in refused[0]
    assert set(manifest["models"]) == {MODEL} and list(manifest["datasets"][KOBEST]["configs"]) == ["boolq"]
    assert verify(folder) == [] and not (folder / ".staging").exists()


def test_a_pinned_revision_of_a_script_dataset_is_refused_not_recorded(hub, tmp_path):
    """Its rows come from the parquet export of the latest version: the pin was ignored, and yet recorded."""
    pin = "4" * 40
    hub["dataset", HAE, pin] = hub["dataset", HAE, "main"]
    folder = tmp_path / "m"
    with pytest.raises(KosovError) as error:
        mirror(folder, datasets=[f"{HAE}@{pin}:history"], download=fake_download(hub, []))
    assert "loading script" in str(error.value) and PARQUET_EXPORT in str(error.value)
    assert f"mirror it without a revision (--dataset {HAE}:history)" in str(error.value)
    assert not (folder / "kosov-mirror.json").exists()
    assert not (folder / ".staging").exists()  # refused after the download: nothing to resume, nothing to carry
    entry = mirror(folder, datasets=[f"{HAE}:history"], download=fake_download(hub, []))["datasets"][HAE]
    assert entry["revision"] == "5" * 40 == entry["parquet_export"]["commit"]  # the export's own commit
    require(folder, datasets=[f"{HAE}@{'5' * 40}:history"])


def test_a_failed_update_leaves_the_mirror_as_it_was(hub, tmp_path):
    """A config typo after upstream moved on swapped in the new snapshot and deleted the old one first."""
    folder = tmp_path / "m"
    mirror(folder, datasets=[f"{KOBEST}:boolq"], download=fake_download(hub, []))
    manifest = (folder / "kosov-mirror.json").read_text()
    hub["dataset", KOBEST, "main"] = ("6" * 40, hub["dataset", KOBEST, "main"][1])  # upstream moved on
    with pytest.raises(KosovError, match=f"{KOBEST} at 666666666666 has no config typo"):
        mirror(folder, datasets=[f"{KOBEST}:typo"], download=fake_download(hub, []))
    assert (folder / "kosov-mirror.json").read_text() == manifest
    assert verify(folder) == []
    assert (repo_dir(folder, "dataset", KOBEST) / "refs" / "main").read_text().strip() == "2" * 40
    require(folder, datasets=[f"{KOBEST}:boolq"])


def test_an_interrupted_download_resumes_where_it_stopped(tmp_path, hub_client):
    import httpx

    seen = hub_client(httpx.ReadTimeout("The read operation timed out"))
    folder = tmp_path / "m"
    with pytest.raises(KosovError, match="running the same command again resumes the download"):
        mirror(folder, model=MODEL)
    manifest = mirror(folder, model=MODEL)
    assert seen == [[], ["config.json"]]  # the second run found what the first one had downloaded
    assert set(manifest["models"][MODEL]["files"]) == {"config.json", "model.safetensors"}
    assert verify(folder) == [] and not (folder / ".staging").exists()


def test_a_full_disk_is_told_as_one(tmp_path, hub_client):
    """ENOSPC was told as a wrong id, the network or a gated repo."""
    hub_client(OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(KosovError) as error:
        mirror(tmp_path / "m", model=MODEL)
    message = str(error.value)
    assert f"no space left on the disk of {(tmp_path / 'm').resolve()} for the model {MODEL}" in message
    assert "it needs 16.1 GB in all" in message and "larger disk" in message
    assert "gated" not in message and "network" not in message


def test_mirroring_a_model_again_names_the_commit_it_leaves(hub, tmp_path, caplog):
    folder = tmp_path / "m"
    mirror(folder, model=MODEL, download=fake_download(hub, []))
    hub["model", MODEL, "main"] = ("7" * 40, hub["model", MODEL, "main"][1])  # upstream moved on
    with caplog.at_level(logging.WARNING):
        manifest = mirror(folder, model=MODEL, download=fake_download(hub, []))
    assert "main moved upstream from 111111111111 to 777777777777" in caplog.text
    assert f"--model {MODEL} --revision {'1' * 40}" in caplog.text
    assert manifest["models"][MODEL]["commit"] == "7" * 40 and verify(folder) == []
    assert [p.name for p in (repo_dir(folder, "model", MODEL) / "snapshots").iterdir()] == ["7" * 40]


def test_the_snapshot_a_moved_ref_leaves_goes_only_once_the_manifest_names_the_new_one(hub, tmp_path, monkeypatch):
    """It was deleted as the new files moved in: a run killed before the manifest was saved left a manifest naming
    a deleted commit, and the mirror read as damaged."""
    from training import mirror as mirror_module

    folder = tmp_path / "m"
    mirror(folder, model=MODEL, download=fake_download(hub, []))
    hub["model", MODEL, "main"] = ("7" * 40, hub["model", MODEL, "main"][1])
    monkeypatch.setattr(mirror_module, "write_atomic", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):  # killed between moving the files in and saving the manifest
        mirror(folder, model=MODEL, download=fake_download(hub, []))
    snapshots = repo_dir(folder, "model", MODEL) / "snapshots"
    assert read_manifest(folder)["models"][MODEL]["commit"] == "1" * 40 and (snapshots / ("1" * 40)).is_dir()
    monkeypatch.undo()
    mirror(folder, model=MODEL, download=fake_download(hub, []))  # the same command again sets it right
    assert verify(folder) == [] and [p.name for p in snapshots.iterdir()] == ["7" * 40]


def test_a_full_disk_while_the_arrow_cache_is_built_is_told_as_one(hub, tmp_path, monkeypatch):
    """datasets wraps the OSError in its DatasetGenerationError: it went out as a traceback, exit status 1."""
    from datasets.exceptions import DatasetGenerationError

    from training import mirror as mirror_module

    def full(*args, **kwargs):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as e:
            raise DatasetGenerationError("An error occurred while generating the dataset") from e

    monkeypatch.setattr(mirror_module, "prepare_dataset", full)
    with pytest.raises(KosovError, match=r"no space left on the disk of .* for the dataset skt/kobest_v1"):
        mirror(tmp_path / "m", datasets=[f"{KOBEST}:boolq"], download=fake_download(hub, []))


def test_env_and_verify_read_a_mirror_and_mix_with_no_download(tmp_path, capsys):
    """--env printed exports for a folder that was no mirror, with exit 0."""
    assert main([str(tmp_path / "no" / "such"), "--env"]) == 2
    out = capsys.readouterr()
    assert "no kosov mirror" in out.err and out.out == ""
    assert main([str(tmp_path), "--verify", "--model", MODEL]) == 2
    assert "--verify with --model: --env and --verify read a mirror already made" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--model", "./my-model"], "'./my-model' is not a Hugging Face Hub model id"),
    (["--dataset", "./rows"], "'./rows' is not a hub dataset id"),
])
def test_a_path_instead_of_a_hub_id_is_refused_before_anything_is_made(tmp_path, capsys, argv, message):
    folder = tmp_path / "m"
    assert main([str(folder), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not folder.exists()


def test_a_manifest_without_its_keys_is_named_not_a_key_error(tmp_path, capsys):
    (tmp_path / "kosov-mirror.json").write_text('{"format": 1}')
    with pytest.raises(KosovError, match="kosov-mirror.json is not one kosov can read: 'models' is missing"):
        verify(tmp_path)
    assert main([str(tmp_path), "--verify"]) == 2 and "kosov-mirror.json" in capsys.readouterr().err


def test_a_partial_parquet_export_is_marked_partial(hub, tmp_path, caplog, capsys):
    """The Hub converts only the first ~5 GB of a large split, as partial-<split>: it was mirrored as the split."""
    hub["dataset", HAE, PARQUET_EXPORT] = ("5" * 40, {"history/partial-test/0000.parquet": parquet(HAERAE),
                                                      "loan_words/test/0000.parquet": parquet(HAERAE)})
    folder = tmp_path / "m"
    with caplog.at_level(logging.WARNING):
        manifest = mirror(folder, datasets=[f"{HAE}:history,loan_words"], download=fake_download(hub, []))
    entry = manifest["datasets"][HAE]
    assert entry["configs"] == {"history": {"test": 4}, "loan_words": {"test": 4}}
    assert entry["partial"] == {"history": ["test"]} == read_manifest(folder)["datasets"][HAE]["partial"]
    assert "holds only the first ~5 GB of history/test" in caplog.text
    assert main([str(folder), "--verify"]) == 0
    assert f"dataset {HAE}: history/test is partial" in capsys.readouterr().out


def test_a_pinned_dataset_stays_pinned_when_a_task_asks_for_it_again(hub, tmp_path, caplog):
    """A --task names no revision: it moved the pinned dataset to main, with a false "moved upstream" warning,
    and a recipe pinned at that commit no longer found it."""
    old = "a" * 40
    hub["dataset", KOBEST, old] = (old, hub["dataset", KOBEST, "main"][1])
    folder = tmp_path / "m"
    mirror(folder, datasets=[f"{KOBEST}@{old}:boolq"], download=fake_download(hub, []))
    with caplog.at_level(logging.WARNING):
        entry = mirror(folder, tasks=["kobest_copa"], download=fake_download(hub, []))["datasets"][KOBEST]
    assert (entry["revision"], entry["commit"], list(entry["configs"])) == (old, old, ["boolq", "copa"])
    assert "moved upstream" not in caplog.text
    require(folder, datasets=[f"{KOBEST}@{old}:boolq"], tasks=["kobest_copa"])
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # asked for by name, main replaces the pin, and the warning says so
        entry = mirror(folder, datasets=[f"{KOBEST}@main:boolq"], download=fake_download(hub, []))["datasets"][KOBEST]
    assert (entry["revision"], entry["commit"]) == ("main", "2" * 40) and "moved upstream" not in caplog.text
    assert f"{KOBEST}: it was mirrored at aaaaaaaaaaaa and this run asked for main (222222222222)" in caplog.text
