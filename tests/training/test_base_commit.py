"""A run on a hub base records the commit it loaded, whatever model.revision named (null: main), and an adapter is
then tied to those weights: loaded on another commit (main has moved) it is refused, even under the same name.
Offline: tiny-ko laid out as a Hugging Face cache entry (models--org--name/snapshots/<sha>/, refs/main), as a
download leaves it, loaded with HF_HUB_OFFLINE=1."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from tests.helpers import quick
from training.adapters import check_adapter_base
from training.base_commit import base_commit, hub_commit
from training.errors import KosovError
from training.recipes import compose

REPO = "kosov-test/tiny-ko"
SHA = "0123456789abcdef0123456789abcdef01234567"
MOVED = "fedcba9876543210fedcba9876543210fedcba98"


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory, kosov_cache):
    """A Hugging Face cache holding REPO at commit SHA, which refs/main names (as a download leaves it)."""
    from training.models import model_source
    from training.schema import ModelConfig

    cache = tmp_path_factory.mktemp("hf") / "hub"
    repo = cache / f"models--{REPO.replace('/', '--')}"
    shutil.copytree(model_source(ModelConfig())[0], repo / "snapshots" / SHA)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(SHA)
    return repo


@pytest.fixture(autouse=True)
def offline_hub(hub_cache, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache.parent))
    (hub_cache / "refs" / "main").write_text(SHA)  # main as the run found it; a test may move it
    return hub_cache


def move_main(repo) -> None:
    """A new commit on main, with other weights, as a download after the push leaves the cache."""
    if not (repo / "snapshots" / MOVED).exists():
        shutil.copytree(repo / "snapshots" / SHA, repo / "snapshots" / MOVED)
    (repo / "refs" / "main").write_text(MOVED)


@pytest.fixture(scope="module")
def hub_run(hub_cache, tmp_path_factory):
    from huggingface_hub import constants

    from training.train import train

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(constants, "HF_HUB_OFFLINE", True)
        patch.setattr(constants, "HF_HUB_CACHE", str(hub_cache.parent))
        out = tmp_path_factory.mktemp("hub-run") / "run"
        return train(compose(quick(f"model.name_or_path={REPO}", f"output_dir={out}"))).run_dir


def test_the_commit_a_revision_names_is_resolved_from_the_cache_offline(tmp_path):
    assert hub_commit(REPO, None) == hub_commit(REPO, "main") == SHA
    assert hub_commit(REPO, "v1.0") is None  # a tag the cache does not hold: not guessed
    assert hub_commit(REPO, MOVED) == MOVED  # a commit is its own
    assert hub_commit(str(tmp_path), None) is None and base_commit(str(tmp_path), None) is None  # a folder: none


def test_a_run_on_main_records_the_commit_it_loaded(hub_run):
    model = json.loads((hub_run / "provenance.json").read_text(encoding="utf-8"))["model"]
    assert model["revision"] is None and model["loaded_revision"] == SHA
    # PEFT loads the base at the adapter's revision (AutoPeftModelForCausalLM): the commit, not main wherever it is
    assert json.loads((hub_run / "adapter" / "adapter_config.json").read_text(encoding="utf-8"))["revision"] == SHA


def test_an_adapter_trained_on_main_is_refused_once_main_has_moved(hub_run, offline_hub, caplog):
    adapter = hub_run / "adapter"
    with caplog.at_level(logging.WARNING):
        check_adapter_base(adapter, REPO, REPO, None)  # main is still the commit it trained on: no doubt to warn of
    assert not caplog.records
    move_main(offline_hub)
    with pytest.raises(KosovError) as error:
        check_adapter_base(adapter, REPO, REPO, None)
    assert f"at commit {SHA}" in error.value.what and f"is commit {MOVED}" in error.value.what
    assert error.value.fix.startswith(f"set model.revision={SHA}")
    check_adapter_base(adapter, REPO, REPO, SHA)  # the fix holds


def test_a_bare_adapter_folder_carries_its_commit(hub_run, offline_hub, tmp_path):
    """Published or copied without its run folder: adapter_config.json's revision is the commit."""
    bare = tmp_path / "adapter"
    shutil.copytree(hub_run / "adapter", bare)
    check_adapter_base(bare, REPO, REPO, None)
    move_main(offline_hub)
    with pytest.raises(KosovError) as error:
        check_adapter_base(bare, REPO, REPO, "main")
    assert SHA in error.value.what and error.value.fix.startswith(f"set model.revision={SHA}")


def test_a_resumed_or_chained_run_loads_the_commit_its_run_started_on(hub_run, offline_hub):
    move_main(offline_hub)
    assert base_commit(REPO, None) == MOVED  # a new run takes main as it is now
    assert base_commit(REPO, None, continues=hub_run) == SHA  # one that continues this run: its own weights
