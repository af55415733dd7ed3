"""GRPO's reference model (beta > 0, a full fine-tune, which TRL loads itself) is the base the policy loaded: a hub
base at the commit the run resolved and recorded (provenance.json model.loaded_revision), not at model.revision again,
which names other weights once main has moved. Offline: tiny-ko as a Hugging Face cache entry (test_base_commit)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.training import test_base_commit as hub
from training import grpo, grpo_reference
from training.errors import KosovError
from training.recipes import compose
from training.train import train

REPO, SHA, MOVED = hub.REPO, hub.SHA, hub.MOVED
hub_cache, offline_hub = hub.hub_cache, hub.offline_hub  # tiny-ko at SHA in an offline cache; main reset to SHA


def move_main_to_other_weights(repo) -> None:
    """A new commit on main whose weights differ from SHA's (every tensor shifted), as a download leaves the cache."""
    hub.move_main(repo)
    weights = repo / "snapshots" / MOVED / "model.safetensors"
    save_file({k: v + 1.0 for k, v in load_file(repo / "snapshots" / SHA / "model.safetensors").items()}, weights,
              metadata={"format": "pt"})


def test_a_full_finetune_compares_with_the_commit_the_policy_loaded(offline_hub, tmp_path, monkeypatch):
    """main moves after the policy loaded and before TRL loads the reference: the KL is still against the policy's
    starting weights."""
    build = grpo.build_trainer

    def main_moves_then_build(*args, **kwargs):
        move_main_to_other_weights(offline_hub)
        return build(*args, **kwargs)

    monkeypatch.setattr(grpo, "build_trainer", main_moves_then_build)
    out = tmp_path / "run"
    result = train(compose(["experiment=smoke-grpo", f"model.name_or_path={REPO}", "peft=none", "method.grpo.beta=0.1",
                            "method.learning_rate=1e-5", "method.max_steps=1", "data.eval_ratio=0",
                            f"output_dir={out}"]))
    assert json.loads((out / "provenance.json").read_text(encoding="utf-8"))["model"]["loaded_revision"] == SHA
    reference = result.trainer.ref_model.state_dict()
    loaded = load_file(offline_hub / "snapshots" / SHA / "model.safetensors")
    assert loaded.keys() <= reference.keys()
    for name, weight in loaded.items():
        assert torch.equal(reference[name], weight), name  # SHA's weights, not MOVED's (shifted by 1)


def test_the_reference_revision_needs_the_run_record(tmp_path):
    """Called outside train(), with no provenance.json to read the loaded commit from: refused, not guessed."""
    cfg = compose(["experiment=smoke-grpo", f"model.name_or_path={REPO}", "peft=none", "method.grpo.beta=0.1"])
    with pytest.raises(KosovError) as error:
        grpo_reference.reference_revision(cfg, REPO, tmp_path)
    assert "provenance.json" in error.value.what and "model.loaded_revision" in error.value.what
    # a local folder has no commits: loaded as the policy was, with nothing to read
    assert grpo_reference.reference_revision(cfg, str(tmp_path), tmp_path / "missing") == cfg.model.revision
