"""lm-eval tasks a mirror cannot serve offline: load_dataset(path, name, **dataset_kwargs) with data_files /
data_dir / revision looks the Arrow cache up under a config id hashed from them, and a `json` task whose
data_files are hf://datasets/... reads the Hub without any dataset_path to mirror. Such a task is refused when
mirroring, naming it and why, and require() on the closed side refuses it too (it passed, and the run failed)."""

from __future__ import annotations

import json

import pytest

from training.errors import KosovError
from training.mirror import mirror
from training.mirror_check import require
from training.mirror_tasks import task_datasets

HF_FILES = "arithmetic_1dc"  # dataset_path: json, data_files: hf://datasets/EleutherAI/arithmetic/...
KWARGS = "indicxnli_gu"  # dataset_path: Divyanshu/indicxnli, dataset_kwargs: revision, data_files


@pytest.fixture(scope="module")
def index():
    from training.mirror_tasks import task_index

    return task_index([HF_FILES, KWARGS])


def test_tasks_whose_data_a_mirror_cannot_serve_are_refused_before_anything_is_made(tmp_path, index, monkeypatch):
    monkeypatch.setattr("training.mirror_tasks.task_index", lambda names: index)
    folder = tmp_path / "m"
    with pytest.raises(KosovError) as error:
        mirror(folder, tasks=[HF_FILES, KWARGS], download=lambda *a, **k: pytest.fail("nothing is downloaded"))
    message = str(error.value)
    assert f"{HF_FILES} (it reads hf://datasets/EleutherAI/arithmetic/" in message
    assert f"{KWARGS} (it loads Divyanshu/indicxnli with dataset_kwargs data_files, revision" in message
    assert "leave it out of --task/--suite" in message and not folder.exists()


def test_require_on_the_closed_side_refuses_such_a_task(tmp_path, index, monkeypatch):
    monkeypatch.setattr("training.mirror_check.task_index", lambda names: index)
    (tmp_path / "kosov-mirror.json").write_text(json.dumps({"format": 1, "models": {}, "datasets": {}, "tasks": {}}))
    for task in (HF_FILES, KWARGS):
        with pytest.raises(KosovError, match=f"cannot mirror the lm-eval task {task} "):
            require(tmp_path, tasks=[task])


def test_dataset_kwargs_that_change_nothing_read_are_mirrored_as_before():
    """trust_remote_code (which lm-eval drops under datasets 4+) and the like leave the cache lookup as it is."""
    from types import SimpleNamespace

    def task(**cfg):
        return SimpleNamespace(kind=SimpleNamespace(name="TASK"), cfg={"dataset_path": "org/bench", **cfg}, tags=[])

    index = {"plain": task(dataset_kwargs={"trust_remote_code": True, "num_proc": 2}), "none": task(dataset_kwargs=None),
             "dir": task(dataset_kwargs={"data_dir": "ko"})}
    assert task_datasets(["plain", "none"], index) == {"plain": ("org/bench", None), "none": ("org/bench", None)}
    with pytest.raises(KosovError, match="dir \\(it loads org/bench with dataset_kwargs data_dir"):
        task_datasets(["dir"], index)
