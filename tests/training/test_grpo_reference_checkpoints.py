"""GRPO from a starting adapter with beta > 0: TRL's frozen copy of it (the reference, adapter "ref") is not saved in
every checkpoint; the checkpoint records the adapter's sha256, a resume makes the copy again from the adapter, and a
resume on an adapter whose weights changed since is refused."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from training.errors import KosovError
from training.grpo_reference import RECORD, adapter_sha256, check_resumed_reference
from training.recipes import compose
from training.train import train


def killed_after_checkpoint_1(out) -> None:
    """As a run killed after its first checkpoint leaves its folder."""
    shutil.rmtree(out / "checkpoints" / "checkpoint-2")
    shutil.rmtree(out / "adapter")
    (out / "metrics.json").unlink()


def test_checkpoints_record_the_starting_adapter_and_a_resume_checks_it(smoke_run, tmp_path, monkeypatch):
    start = tmp_path / "sft"
    shutil.copytree(smoke_run.run_dir, start, ignore=shutil.ignore_patterns("checkpoints"))
    adapter = start / "adapter" / "adapter_model.safetensors"
    out = tmp_path / "run"
    overrides = ["experiment=smoke-grpo", f"output_dir={out}", f"method.init_adapter={start}", "method.grpo.beta=0.1",
                 "method.max_steps=2", "method.save_steps=1", "data.eval_ratio=0", "resume=true"]
    train(compose(overrides))
    checkpoint = out / "checkpoints" / "checkpoint-1"
    assert not (checkpoint / "ref").exists()  # TRL saved the reference copy here, as large as the adapter
    assert (checkpoint / "adapter_model.safetensors").stat().st_size == adapter.stat().st_size
    assert json.loads((checkpoint / RECORD).read_text(encoding="utf-8")) == {
        "start_adapter": str(start / "adapter"), "sha256": adapter_sha256(start / "adapter")}

    killed_after_checkpoint_1(out)
    resumed = train(compose(overrides))
    assert resumed.metrics["global_step"] == 2
    model, started = resumed.trainer.model, load_file(adapter)
    reference = {k: v for k, v in model.state_dict().items() if ".ref." in k}
    assert len(reference) == len(started)
    for name, weight in started.items():  # the copy, made again from the starting adapter as it was
        assert torch.equal(reference[name.replace(".weight", ".ref.weight")], weight), name

    save_file({k: v + 0.01 for k, v in started.items()}, adapter, metadata={"format": "pt"})  # retrained in place
    killed_after_checkpoint_1(out)

    def loads(*args, **kwargs):
        raise AssertionError("the base loaded before the changed adapter was refused")

    monkeypatch.setattr("training.train.load_base_model", loads)
    with pytest.raises(KosovError) as error:
        train(compose(overrides))
    assert f"the starting adapter {start / 'adapter'} has changed since the run" in error.value.what
    assert "put the adapter the run started from back" in error.value.fix

    # a checkpoint from before the record holds TRL's copy (ref/) instead: compared tensor by tensor
    (checkpoint / RECORD).unlink()
    (checkpoint / "ref").mkdir()
    save_file(started, checkpoint / "ref" / "adapter_model.safetensors", metadata={"format": "pt"})
    with pytest.raises(KosovError, match="its weights differ from the copy in"):
        train(compose(overrides))
    save_file(started, adapter, metadata={"format": "pt"})  # the adapter as it was: the check passes
    check_resumed_reference(checkpoint, start / "adapter")
