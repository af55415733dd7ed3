"""Which run wrote an adapter (adapters.run_of), one rule for the model settings an adapter is served, evaluated and
checked with (trained_model) and for its lineage: never a folder further up, which is another run."""

from __future__ import annotations

import yaml

from training.adapters import trained_model


def _run(folder, template: str):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"model": {"chat_template": template}}), encoding="utf-8")


def test_an_sft_stage_whose_config_is_gone_is_not_read_as_the_grpo_run_holding_it(tmp_path):
    grpo = tmp_path / "grpo"
    _run(grpo, "grpo.jinja")
    (grpo / "sft" / "adapter").mkdir(parents=True)
    assert trained_model(grpo / "sft" / "adapter") == (None, None)  # a bare adapter: not the GRPO run's settings
    _run(grpo / "sft", "sft.jinja")
    assert trained_model(grpo / "sft" / "adapter") == (grpo / "sft", {"chat_template": "sft.jinja"})


def test_a_checkpoints_adapter_belongs_to_its_run(tmp_path):
    _run(tmp_path / "run", "run.jinja")
    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint-4"
    checkpoint.mkdir(parents=True)
    assert trained_model(checkpoint) == (tmp_path / "run", {"chat_template": "run.jinja"})
    assert trained_model(tmp_path / "run" / "adapter") == (tmp_path / "run", {"chat_template": "run.jinja"})


def test_a_commit_the_caller_resolved_is_not_asked_of_the_hub_again(tmp_path, monkeypatch):
    """train resolves the base commit once (None: the Hub unreachable and nothing cached) and checks the start
    adapter early and again as it loads it: an unreachable Hub was tried three times, each to its timeout."""
    import json

    import training.base_commit as base_commit
    from training.adapters import check_adapter_base

    sha = "0123456789abcdef0123456789abcdef01234567"
    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {"name_or_path": "org/x", "revision": None}}))
    (run / "provenance.json").write_text(json.dumps({"model": {"loaded_revision": sha}}))
    (run / "adapter" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "org/x"}))
    asked = []
    monkeypatch.setattr(base_commit, "hub_commit", lambda source, revision: asked.append(source))
    commit = base_commit.base_commit("org/x", None)
    for _ in range(2):  # train's early check, then load_adapter's
        check_adapter_base(run / "adapter", "org/x", "org/x", None, commit)
    assert asked == ["org/x"]
    check_adapter_base(run / "adapter", "org/x", "org/x", None)  # a caller that resolved nothing: asked here
    assert asked == ["org/x", "org/x"]
