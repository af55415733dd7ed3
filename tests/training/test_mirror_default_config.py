"""A dataset read with no config name, from a mirror: online, load_dataset(repo) reads the repo's default config
(the card's `default: true`, or its only config); offline, datasets 5 ignores the card and takes whatever config
its Arrow cache holds (or refuses when it holds several). So the mirror records the default, a task without
dataset_name gets that config alone, kosov's own loader names it, and require() checks it before a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.training.test_mirror import REPO_ROOT, fake_download, jsonl
from training.errors import KosovError
from training.mirror import mirror
from training.mirror_check import read_manifest, require

TWO = "org/two"
CLICK = "EunsuKim/CLIcK"  # lm-eval's click tasks name no dataset_name: load_dataset("EunsuKim/CLIcK")
CLICK_TASK = "click_lang_text"
EN, KO = [{"text": "hello"}], [{"text": "안녕"}]


def two_configs(default: bool = True) -> dict[str, bytes]:
    """A repo of two configs, `en` the default (declared after `ko`, so that neither order nor age picks it)."""
    card = ("---\nconfigs:\n- config_name: ko\n  data_files: ko/*.jsonl\n- config_name: en\n  data_files: en/*.jsonl\n"
            + ("  default: true\n" if default else "") + "---\n")
    return {"ko/train.jsonl": jsonl(KO), "en/train.jsonl": jsonl(EN), "README.md": card.encode()}


@pytest.fixture
def hub():
    return {("dataset", TWO, "main"): ("b" * 40, two_configs()),
            ("dataset", CLICK, "main"): ("c" * 40, two_configs()),
            ("dataset", "org/nodefault", "main"): ("d" * 40, two_configs(default=False))}


OFFLINE_READ = """
import json, sys
from training.mirror_check import use_mirror
folder, kind, repo, out = sys.argv[1:5]
use_mirror(folder)
if kind == "kosov":  # a recipe's data.hub_id without data.hub_config
    from data_tools.chat_io import load_chat_hub
    rows = [r["text"] for r in load_chat_hub(repo, split="train", check=lambda where, record: record).rows]
else:  # lm-eval's own call for a task without dataset_name (lm_eval/api/task.py, ConfigurableTask.download)
    import datasets
    rows = [r["text"] for r in datasets.load_dataset(path=repo, name=None)["train"]]
json.dump(rows, open(out, "w"), ensure_ascii=False)
"""


def read_offline(folder: Path, kind: str, repo: str, tmp_path: Path) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(tmp_path / "empty-hf-home"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    out = tmp_path / f"{kind}.json"
    run = subprocess.run([sys.executable, "-c", OFFLINE_READ, str(folder), kind, repo, str(out)], cwd=REPO_ROOT,
                         env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(out.read_text(encoding="utf-8"))


def test_a_dataset_mirrored_whole_is_read_offline_at_its_default_config(hub, tmp_path):
    """Every config built: offline load_chat_hub(repo) raised 'multiple configurations in the cache: en, ko'."""
    folder = tmp_path / "m"
    manifest = mirror(folder, datasets=[TWO], download=fake_download(hub, []))
    require(folder, datasets=[TWO])
    assert read_offline(folder, "kosov", TWO, tmp_path) == ["hello"]
    assert sorted(manifest["datasets"][TWO]["configs"]) == ["en", "ko"]
    assert manifest["datasets"][TWO]["default_config"] == "en"


def test_a_mirror_lacking_the_default_config_is_named_not_read_silently(hub, tmp_path):
    """Only `ko` mirrored: require() passed a recipe without data.hub_config, which then trained on ko offline
    (online it reads en)."""
    folder = tmp_path / "m"
    mirror(folder, datasets=[f"{TWO}:ko"], download=fake_download(hub, []))
    with pytest.raises(KosovError, match=f"dataset {TWO} \\(no config name\\): its default config en") as error:
        require(folder, datasets=[TWO])
    assert f"--dataset {TWO}:en" in str(error.value)
    require(folder, datasets=[f"{TWO}:ko"])  # named, it is there
    mirror(folder, datasets=["org/nodefault"], download=fake_download(hub, []))
    with pytest.raises(KosovError, match="org/nodefault .*several configs \\(ko, en\\) and none is its default"):
        require(folder, datasets=["org/nodefault"])


def test_a_task_without_dataset_name_gets_the_default_config_alone_and_loads_offline(hub, tmp_path):
    """lm-eval calls load_dataset(repo, name=None): offline that works only when the cache holds one config."""
    folder = tmp_path / "m"
    manifest = mirror(folder, tasks=[CLICK_TASK], download=fake_download(hub, []))
    require(folder, tasks=[CLICK_TASK])
    assert read_offline(folder, "lm-eval", CLICK, tmp_path) == ["hello"]
    assert list(manifest["datasets"][CLICK]["configs"]) == ["en"]
    assert manifest["tasks"][CLICK_TASK] == [CLICK, None]
    forget_defaults(folder)  # a mirror of an older kosov: it built every config of a task's dataset, so one is all
    require(folder, tasks=[CLICK_TASK])
    with pytest.raises(KosovError, match=f"dataset {CLICK} \\(no config name\\): which config is its default"):
        require(folder, datasets=[CLICK])  # a recipe's data.hub_id: that one config may not be its default


def forget_defaults(folder: Path) -> None:
    manifest = json.loads((folder / "kosov-mirror.json").read_text())
    for entry in manifest["datasets"].values():
        del entry["default_config"]
    (folder / "kosov-mirror.json").write_text(json.dumps(manifest))


def test_another_config_beside_a_tasks_default_is_refused_and_leaves_the_mirror_as_it_was(hub, tmp_path):
    """With `ko` beside `en`, lm-eval's load_dataset(repo) fails offline: said when mirroring, and by require()."""
    folder = tmp_path / "m"
    mirror(folder, tasks=[CLICK_TASK], download=fake_download(hub, []))
    before = read_manifest(folder)
    with pytest.raises(KosovError, match=f"lm-eval task {CLICK_TASK} reads {CLICK} with no config name"):
        mirror(folder, datasets=[f"{CLICK}:ko"], download=fake_download(hub, []))
    after = read_manifest(folder)
    assert after["datasets"] == before["datasets"] and not (folder / ".staging").exists()
    other = tmp_path / "other"  # a mirror holding both, made for a recipe, then asked to run the task
    mirror(other, datasets=[CLICK], download=fake_download(hub, []))
    manifest = json.loads((other / "kosov-mirror.json").read_text())
    manifest["tasks"][CLICK_TASK] = [CLICK, None]
    (other / "kosov-mirror.json").write_text(json.dumps(manifest))
    with pytest.raises(KosovError, match=f"task {CLICK_TASK} .*only where the mirror holds one config of it, and this one holds ko, en"):
        require(other, tasks=[CLICK_TASK])


def test_an_older_mirror_of_a_one_config_dataset_still_serves_a_recipe_without_hub_config(tmp_path):
    """A mirror from before default configs were recorded, holding a repo's one unnamed config ("default"): which
    config a recipe without data.hub_config reads is not in doubt, and re-mirroring on the connected side was asked."""
    hub = {("dataset", "org/one", "main"): ("e" * 40, {"train.jsonl": jsonl(EN)})}
    folder = tmp_path / "m"
    mirror(folder, datasets=["org/one"], download=fake_download(hub, []))
    manifest = json.loads((folder / "kosov-mirror.json").read_text(encoding="utf-8"))
    assert list(manifest["datasets"]["org/one"]["configs"]) == ["default"]
    del manifest["datasets"]["org/one"]["default_config"]  # as an older kosov wrote it
    (folder / "kosov-mirror.json").write_text(json.dumps(manifest), encoding="utf-8")
    require(folder, datasets=["org/one"])
    assert read_offline(folder, "kosov", "org/one", tmp_path) == ["hello"]
