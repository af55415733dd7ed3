"""`kosov mirror --dataset org/name:config` downloads only the files those configs read, where the dataset card's
YAML `configs:` says which (a 45-config benchmark, a big multilingual corpus), and the whole repo where it cannot be
known for sure. The selection is tested on realistic cards; the runs replace huggingface_hub's HfApi, hf_hub_download
and snapshot_download (which honours allow_patterns with huggingface_hub's own filter), nothing of kosov's."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from fnmatch import fnmatchcase
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.training.test_mirror import BOOLQ, COPA, HAERAE, KMMLU, REPO_ROOT, card, csv, parquet
from training.errors import KosovError
from training.mirror import PARQUET_EXPORT, mirror
from training.mirror_check import read_manifest, require, snapshot_dir, verify

KMMLU_ID = "kosov-test/KMMLU"
KOBEST_ID = "kosov-test/kobest"
HAE_ID = "kosov-test/HAE_RAE_BENCH"
SUBJECTS = sorted([  # KMMLU's 45 configs, in its card's order
    "Accounting", "Agricultural-Sciences", "Aviation-Engineering-and-Maintenance", "Biology", "Chemical-Engineering",
    "Chemistry", "Civil-Engineering", "Computer-Science", "Construction", "Criminal-Law", "Ecology", "Economics",
    "Education", "Electrical-Engineering", "Electronics-Engineering", "Energy-Management", "Environmental-Science",
    "Fashion", "Food-Processing", "Gas-Technology-and-Engineering", "Geomatics", "Health", "Industrial-Engineer",
    "Information-Technology", "Interior-Architecture-and-Design", "Korean-History", "Law",
    "Machine-Design-and-Manufacturing", "Management", "Maritime-Engineering", "Marketing", "Materials-Engineering",
    "Math", "Mechanical-Engineering", "Nondestructive-Testing", "Patent", "Political-Science-and-Sociology",
    "Psychology", "Public-Safety", "Railway-and-Automotive-Engineering", "Real-Estate", "Refrigerating-Machinery",
    "Social-Welfare", "Taxation", "Telecommunications-and-Wireless-Technology"])
SPLITS = ("train", "dev", "test")
META = {"README.md", ".gitattributes"}
KOBEST_CARD = """---
language:
- ko
license: cc-by-sa-4.0
configs:
- config_name: boolq
  data_files:
  - split: train
    path: boolq/train-*
  - split: test
    path: boolq/test-*
- config_name: copa
  data_files:
  - split: train
    path: copa/train-*
  - split: test
    path: copa/test-*
- config_name: copa_hard
  data_files: copa_hard/*.parquet
- config_name: wic
  data_files:
  - split: train
    path:
    - wic/**/train-*.parquet
---
# KoBEST
"""


def kmmlu_files() -> dict[str, bytes]:
    files = {f"data/{subject}-{split}.csv": csv(KMMLU) for subject in SUBJECTS for split in SPLITS}
    files["README.md"] = card({subject: {s: f"data/{subject}-{s}.csv" for s in SPLITS} for subject in SUBJECTS})
    files[".gitattributes"] = b"*.csv filter=lfs diff=lfs merge=lfs -text\n"
    return files


def kobest_files() -> dict[str, bytes]:
    files = {"README.md": KOBEST_CARD.encode(), ".gitattributes": b"*.parquet filter=lfs\n",
             "raw/original-release.zip": b"PK\x05\x06" + b"\0" * 18}  # read by no config
    for name, rows in (("boolq", BOOLQ), ("copa", COPA)):
        files |= {f"{name}/{split}-00000-of-00001.parquet": parquet(rows) for split in ("train", "test")}
    files["copa_hard/test.parquet"] = parquet(COPA)
    files["wic/v1/train-00000-of-00001.parquet"] = parquet(BOOLQ)
    files["wic/v1/notes.md"] = b"# not data\n"
    return files


def subject_files(*subjects: str) -> set[str]:
    return {f"data/{subject}-{split}.csv" for subject in subjects for split in SPLITS}


def selected(names, configs, card_text: str | bytes | None, tmp_path: Path, *, repo_id: str = KMMLU_ID,
             revision: str = "main", repo_yaml: str | None = None) -> list[str] | None:
    """dataset_files() on a repo of `names` whose README.md (and .huggingface.yaml) hold these texts."""
    from training.mirror_fetch import dataset_files

    texts = {"README.md": card_text, ".huggingface.yaml": repo_yaml}
    read_ones = []

    def read(name):
        read_ones.append(name)
        path = tmp_path / name
        text = texts[name]
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path

    names = [*names, *(n for n, t in texts.items() if t is not None and n not in names)]
    found = dataset_files(repo_id, revision, names, configs, read)
    assert set(read_ones) <= {n for n, t in texts.items() if t is not None}
    return found


def test_a_kmmlu_like_card_selects_the_asked_configs_files_and_its_first_configs(tmp_path):
    """datasets resolves the card's first config's files whichever config is read (to pick the csv builder): a
    folder without them does not load, so they come too."""
    files = kmmlu_files()
    found = selected([n for n in files if n != "README.md"], ["Law", "Taxation"], files["README.md"], tmp_path)
    assert set(found) == META | subject_files("Accounting", "Law", "Taxation")
    assert len(files) == 2 + 45 * 3


def test_glob_patterns_are_read_as_datasets_reads_them(tmp_path):
    """`*` stays within a folder (copa/* is not copa_hard/), `**` crosses folders, a config's splits and path lists
    all count."""
    files = kobest_files()
    names = [n for n in files if n != "README.md"]
    boolq = {"boolq/train-00000-of-00001.parquet", "boolq/test-00000-of-00001.parquet"}
    assert set(selected(names, ["copa"], KOBEST_CARD, tmp_path)) == META | boolq | {
        "copa/train-00000-of-00001.parquet", "copa/test-00000-of-00001.parquet"}
    assert set(selected(names, ["copa_hard"], KOBEST_CARD, tmp_path)) == META | boolq | {"copa_hard/test.parquet"}
    assert set(selected(names, ["wic"], KOBEST_CARD, tmp_path)) == META | boolq | {
        "wic/v1/train-00000-of-00001.parquet"}


def test_data_dir_and_the_repo_yaml_are_read_as_datasets_reads_them(tmp_path):
    data_dir_card = ("---\nconfigs:\n- config_name: ko\n  data_dir: ko/\n  data_files:\n  - split: train\n"
                     "    path: train.jsonl\n- config_name: en\n  data_dir: en\n  data_files: train.jsonl\n---\n")
    names = ["ko/train.jsonl", "en/train.jsonl", "train.jsonl", "ja/train.jsonl"]
    # the first config's patterns are resolved from the root too, as datasets reads them to pick the builder
    assert set(selected(names, ["en"], data_dir_card, tmp_path)) == {
        "README.md", "train.jsonl", "ko/train.jsonl", "en/train.jsonl"}
    repo_yaml = "configs:\n- config_name: ja\n  data_files: ja/*.jsonl\n"  # its keys win over the card's
    assert set(selected(names, ["ja"], data_dir_card, tmp_path, repo_yaml=repo_yaml)) == {
        "README.md", ".huggingface.yaml", "ja/train.jsonl"}


@pytest.mark.parametrize("names, configs, card_text, why", [
    (["data/train.parquet"], ["default"], "---\nlicense: mit\n---\n# no configs\n", "declares no config default"),
    (["data/train.parquet"], ["default"], None, "it has no README.md"),
    (["a/x.csv"], ["b"], "---\nconfigs:\n- config_name: a\n  data_files: a/*.csv\n---\n", "declares no config b"),
    (["a/x.csv", "b/y.csv"], ["a"], "---\nconfigs:\n- config_name: a\n  data_files: a/*.csv\n"
     "- config_name: b\n  data_dir: b\n---\n", "the config(s) b of its card have no data_files"),
    (["a/x.csv"], ["a"], "---\nconfigs:\n- config_name: a\n  data_files: hf://datasets/org/other/a.csv\n---\n",
     "is not a path in the repo"),
    (["a/x.csv"], ["a"], "---\nconfigs:\n- config_name: a\n  data_files: ../a/x.csv\n---\n", "not a path in the repo"),
    (["a/x.csv"], ["a"], "---\nconfigs:\n- config_name: a\n  data_files: {train: [1, 2]}\n---\n", "cannot be read"),
    (["a/x.csv"], ["a"], "---\nconfigs: [unclosed\n---\n", "cannot be read"),
    (["HAE_RAE_BENCH.py", "data/x.csv"], ["a"], "---\nconfigs:\n- config_name: a\n  data_files: data/*.csv\n---\n",
     "a loading script defines its configs"),
])
def test_what_cannot_be_known_for_sure_is_the_whole_repo_and_says_why(tmp_path, caplog, names, configs, card_text,
                                                                      why):
    repo = HAE_ID if "HAE_RAE_BENCH.py" in names else KMMLU_ID
    with caplog.at_level("INFO", logger="training.mirror_fetch"):
        assert selected(names, configs, card_text, tmp_path, repo_id=repo) is None
    assert "downloading the whole dataset repo" in caplog.text and why in caplog.text


def test_a_parquet_export_gives_the_asked_configs_folders(tmp_path):
    names = [f"{c}/{s}/0000.parquet" for c in ("history", "loan_words") for s in ("test", "partial-train")]
    assert selected(names + [".gitattributes"], ["history"], None, tmp_path, revision=PARQUET_EXPORT) == [
        "history/test/0000.parquet", "history/partial-train/0000.parquet"]
    assert selected(names, ["history", "rare_words"], None, tmp_path, revision=PARQUET_EXPORT) is None


def test_a_file_name_with_glob_characters_is_allowed_alone():
    from training.mirror_fetch import _literal

    name = "data/[draft] Law*-test?.csv"
    assert fnmatchcase(name, _literal(name))
    assert not fnmatchcase("data/d Law-test1.csv", _literal(name))


class FakeHubClient:
    """huggingface_hub's HfApi().repo_info, hf_hub_download and snapshot_download over repos held in memory:
    snapshot_download filters with huggingface_hub's own filter_repo_objects and, as it resumes, writes only the
    files local_dir lacks; `fail_on` makes it raise after writing a file whose path holds that text."""

    def __init__(self, repos: dict, sizes: dict | None = None):
        self.repos, self.sizes = repos, sizes or {}
        self.snapshots: list[tuple[str, str, list | None, list[str]]] = []  # repo, revision, allow_patterns, written
        self.fail_on: str | None = None
        self.failure: Exception | None = None

    def repo(self, repo_type, repo_id, revision):
        for (kind, repo, ref), (commit, files) in self.repos.items():
            if (kind, repo) == (repo_type, repo_id) and revision in (ref, commit):
                return commit, files
        raise KeyError((repo_type, repo_id, revision))

    def repo_info(self, repo_id, *, repo_type=None, revision=None, token=None, files_metadata=False, **_):
        commit, files = self.repo(repo_type, repo_id, revision)
        return SimpleNamespace(sha=commit, siblings=[SimpleNamespace(rfilename=n, size=self.sizes.get(n, len(data)))
                                                     for n, data in files.items()])

    def hf_hub_download(self, repo_id, filename, *, repo_type=None, revision=None, local_dir=None, token=None, **_):
        path = Path(local_dir) / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.repo(repo_type, repo_id, revision)[1][filename])
        return str(path)

    def snapshot_download(self, repo_id, *, repo_type=None, revision=None, local_dir=None, token=None,
                          allow_patterns=None, ignore_patterns=None, **_):
        from huggingface_hub.utils import filter_repo_objects

        files, written = self.repo(repo_type, repo_id, revision)[1], []
        self.snapshots.append((repo_id, revision, allow_patterns, written))
        for name in filter_repo_objects(sorted(files), allow_patterns=allow_patterns, ignore_patterns=ignore_patterns):
            path = Path(local_dir) / name
            if path.exists():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(files[name])
            written.append(name)
            if self.failure or (self.fail_on and self.fail_on in name):
                raise self.failure or OSError(errno.ECONNRESET, "Connection reset by peer")
        return str(local_dir)


@pytest.fixture
def client(monkeypatch):
    """The fake client over a KMMLU-like (45 configs), a kobest-like and a script dataset with its parquet export;
    mirror() runs its real hub_download over it."""
    fake = FakeHubClient({
        ("dataset", KMMLU_ID, "main"): ("3" * 40, kmmlu_files()),
        ("dataset", KOBEST_ID, "main"): ("2" * 40, kobest_files()),
        ("dataset", HAE_ID, "main"): ("4" * 40, {"HAE_RAE_BENCH.py": b"raise SystemExit\n", "README.md": card({})}),
        ("dataset", HAE_ID, PARQUET_EXPORT): ("5" * 40, {f"{c}/test/0000.parquet": parquet(HAERAE)
                                                         for c in ("history", "loan_words", "rare_words")}),
    })
    monkeypatch.setattr("huggingface_hub.HfApi", lambda *a, **k: fake)
    monkeypatch.setattr("huggingface_hub.hf_hub_download", fake.hf_hub_download)
    monkeypatch.setattr("huggingface_hub.snapshot_download", fake.snapshot_download)
    return fake


def snapshot_files(folder: Path, repo_id: str, commit: str) -> set[str]:
    snapshot = snapshot_dir(folder, "dataset", repo_id, commit)
    return {p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()}


OFFLINE_LOAD = """
import json, sys
from training.mirror_check import use_mirror
folder, repo, config, out = sys.argv[1:]
use_mirror(folder, datasets=[f"{repo}:{config}"])  # before datasets is imported
from datasets import load_dataset
rows = load_dataset(repo, config)
json.dump({split: rows[split].to_list() for split in rows}, open(out, "w"), ensure_ascii=False)
"""


def test_one_config_of_a_45_config_benchmark_is_downloaded_alone_and_loads_offline(client, tmp_path):
    folder = tmp_path / "m"
    manifest = mirror(folder, datasets=[f"{KMMLU_ID}:Law"])
    entry = manifest["datasets"][KMMLU_ID]
    want = META | subject_files("Accounting", "Law")  # Accounting: the card's first config, which datasets reads
    assert set(entry["files"]) == want == snapshot_files(folder, KMMLU_ID, "3" * 40)
    assert set(client.snapshots[0][3]) == want - {"README.md"}  # the card came first, alone, to pick the files
    assert entry["bytes"] == sum(len(kmmlu_files()[n]) for n in want)
    assert entry["configs"] == {"Law": {"train": 4, "dev": 4, "test": 4}}
    assert verify(folder) == [] and not (folder / ".staging").exists()
    require(folder, datasets=[f"{KMMLU_ID}:Law"])

    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(tmp_path / "empty-hf-home"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    out = tmp_path / "rows.json"
    run = subprocess.run([sys.executable, "-c", OFFLINE_LOAD, str(folder), KMMLU_ID, "Law", str(out)],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-4000:]
    rows = json.loads(out.read_text(encoding="utf-8"))
    assert set(rows) == set(SPLITS) and [r["question"] for r in rows["test"]] == [r["question"] for r in KMMLU]


def test_asking_again_for_more_configs_adds_their_files_and_keeps_the_first_ones(client, tmp_path):
    folder = tmp_path / "m"
    mirror(folder, datasets=[f"{KMMLU_ID}:Law"])
    manifest = mirror(folder, datasets=[f"{KMMLU_ID}:Biology"])  # the same commit
    entry = manifest["datasets"][KMMLU_ID]
    want = META | subject_files("Accounting", "Law", "Biology")
    assert set(entry["files"]) == want == snapshot_files(folder, KMMLU_ID, "3" * 40)
    assert list(entry["configs"]) == ["Law", "Biology"]
    assert verify(folder) == []
    require(folder, datasets=[f"{KMMLU_ID}:Law", f"{KMMLU_ID}:Biology"])


def test_a_mirror_of_the_whole_repo_asked_later_for_one_config_still_records_every_file(client, tmp_path):
    """The second download holds only the configs' files: those the first brought stay in the snapshot, recorded."""
    folder = tmp_path / "m"
    first = mirror(folder, datasets=[KOBEST_ID])["datasets"][KOBEST_ID]
    assert set(first["files"]) == set(kobest_files()) and client.snapshots[-1][2] is None
    second = mirror(folder, datasets=[f"{KOBEST_ID}:copa"])["datasets"][KOBEST_ID]
    assert client.snapshots[-1][2] is not None  # a partial download: every config the first run built, by name
    assert "raw/original-release.zip" not in client.snapshots[-1][3]
    assert second["files"] == first["files"] and second["bytes"] == first["bytes"]
    assert list(second["configs"]) == ["boolq", "copa", "copa_hard", "wic"] and verify(folder) == []


def test_a_download_resumed_for_other_configs_takes_only_their_files(client, tmp_path):
    """The staging folder is named by repo and commit: what a run cut short brought for other configs is left out."""
    folder = tmp_path / "m"
    client.fail_on = "Law-test"
    with pytest.raises(KosovError, match="running the same command again resumes the download"):
        mirror(folder, datasets=[f"{KMMLU_ID}:Law"])
    client.fail_on = None
    entry = mirror(folder, datasets=[f"{KMMLU_ID}:Biology"])["datasets"][KMMLU_ID]
    want = META | subject_files("Accounting", "Biology")
    assert set(entry["files"]) == want == snapshot_files(folder, KMMLU_ID, "3" * 40)
    assert "data/Accounting-dev.csv" not in client.snapshots[-1][3]  # resumed: the first run had brought it
    assert list(entry["configs"]) == ["Biology"] and verify(folder) == [] and not (folder / ".staging").exists()


def test_the_space_a_full_disk_is_told_to_need_is_that_of_the_configs_files(client, tmp_path):
    client.sizes = {n: 1_000_000_000 for n in kmmlu_files() if n.startswith("data/")}  # 135 GB in all
    client.failure = OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(KosovError) as error:
        mirror(tmp_path / "m", datasets=[f"{KMMLU_ID}:Law"])
    assert "no space left on the disk" in str(error.value) and "it needs 6.0 GB in all" in str(error.value)


def test_a_script_datasets_parquet_export_is_downloaded_for_the_asked_configs_only(client, tmp_path):
    folder = tmp_path / "m"
    entry = mirror(folder, datasets=[f"{HAE_ID}:history"])["datasets"][HAE_ID]
    assert set(entry["files"]) == {"HAE_RAE_BENCH.py", "README.md"}  # no card configs: the whole (small) repo
    assert set(entry["parquet_export"]["files"]) == {"history/test/0000.parquet"}
    assert entry["configs"] == {"history": {"test": 4}} and verify(folder) == []
    entry = mirror(folder, datasets=[f"{HAE_ID}:loan_words"])["datasets"][HAE_ID]
    assert set(entry["parquet_export"]["files"]) == {"history/test/0000.parquet", "loan_words/test/0000.parquet"}
    assert list(entry["configs"]) == ["history", "loan_words"] and verify(folder) == []
    assert read_manifest(folder)["datasets"][HAE_ID] == entry
