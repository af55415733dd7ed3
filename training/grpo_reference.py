"""GRPO's reference model (method.grpo.beta > 0), which the KL term compares the policy with, is the policy as it
started: for a full fine-tune, the base at the commit the policy loaded (TRL loads it a second time); for a new adapter,
the base with the adapter off; for a starting adapter (method.init_adapter, an SFT stage), a frozen copy of it, which
TRL adds to the model as the adapter "ref".

TRL's checkpoints save every adapter the model holds, so each held that copy (checkpoint-N/ref/, as large as the
trained adapter) though a resume makes it again from the starting adapter. kosov saves the starting adapter's sha256
in its place (checkpoint-N/reference.json) and refuses a resume on a starting adapter whose weights changed since:
the KL would be against other weights than the run's first steps.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from data_tools.row_files import file_sha256
from training.base_commit import recorded_commit
from training.errors import KosovError
from training.safe_write import write_json
from training.schema import KosovConfig

log = logging.getLogger(__name__)

REFERENCE = "ref"  # the adapter TRL adds as a starting adapter's frozen copy, saved in checkpoint-N/ref/
RECORD = "reference.json"  # in each checkpoint: the starting adapter's weights, by sha256
WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")  # what PEFT saves an adapter's weights in


def run_provenance(run: Path, needed_for: str) -> dict[str, Any]:
    """The run folder's provenance.json, which the main process wrote before it built its trainer (train.train):
    read once every process is there."""
    from accelerate import PartialState

    PartialState().wait_for_everyone()
    saved = run / "provenance.json"
    if not saved.is_file():
        raise KosovError(f"no provenance.json in the run folder {run}: {needed_for} is read from it",
                         fix="build the trainer through training.train.train, which records the run first")
    return json.loads(saved.read_text(encoding="utf-8"))


def reference_init_kwargs(cfg: KosovConfig, model: Any, peft_config: Any, run: Path) -> dict[str, Any] | None:
    """How TRL loads its reference model (beta > 0, a full fine-tune): from the policy's name_or_path with its
    remote-code setting (TRL adds the policy's dtype and attention), and from a hub id at the commit the policy
    loaded (reference_revision), not at model.revision again: main may have moved since. None where TRL builds none:
    it would warn that it ignores them."""
    from peft import PeftModel

    if not cfg.method.grpo.beta or peft_config is not None or isinstance(model, PeftModel):
        return None
    kwargs = {"revision": reference_revision(cfg, model.config._name_or_path, run),
              "trust_remote_code": cfg.model.trust_remote_code}
    return {k: v for k, v in kwargs.items() if v is not None}


def reference_revision(cfg: KosovConfig, source: str, run: Path) -> str | None:
    """The revision TRL loads the reference of a hub base at: the commit the policy loaded, as the run folder's
    provenance.json records it (model.loaded_revision: base_commit, resolved once before the policy loaded); the
    recipe's model.revision where the run could tell no commit, and for a local folder (tiny-ko included), which has
    no commits: the policy loaded at it too. (TRL still reads the config at the repo's default branch, for the
    architecture class only.)"""
    if Path(source).is_dir():
        return cfg.model.revision
    run_provenance(run, f"the commit of {source} the policy loaded (model.loaded_revision), the GRPO reference's")
    commit = recorded_commit(run)
    if commit is not None and commit != cfg.model.revision:
        log.info("the GRPO reference model loads %s at commit %s, the one the policy loaded (model.revision=%s)",
                 source, commit, cfg.model.revision)
    return commit or cfg.model.revision


def adapter_sha256(adapter: Path) -> str:
    """The sha256 of an adapter folder's weights file."""
    for name in WEIGHTS:
        if (adapter / name).is_file():
            return file_sha256(adapter / name)
    raise KosovError(f"the starting adapter {adapter} holds no weights file ({' or '.join(WEIGHTS)})",
                     fix="point method.init_adapter at the adapter the run started from, as it was")


def reference_record(adapter: Path, sha256: str) -> Any:
    """A callback by which each checkpoint records the starting adapter's sha256 (reference.json) and drops TRL's
    copy of it (ref/). (transformers is imported here, not as training.train is imported: a mirror goes first.)"""
    from transformers import TrainerCallback

    class ReferenceRecord(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if not args.should_save:
                return
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            # the record first: a checkpoint killed between the two keeps ref/, which a resume then loads as before
            write_json(checkpoint / RECORD, {"start_adapter": str(adapter), "sha256": sha256})
            if (checkpoint / REFERENCE).is_dir():
                shutil.rmtree(checkpoint / REFERENCE)

    return ReferenceRecord()


def _same_weights(saved: Path, adapter: Path) -> bool:
    """Whether an older checkpoint's ref/ holds the starting adapter's weights, tensor by tensor (the files differ:
    PEFT saved them again)."""
    from safetensors.torch import load_file

    ours = next((saved / name for name in WEIGHTS if (saved / name).is_file()), None)
    theirs = next((adapter / name for name in WEIGHTS if (adapter / name).is_file()), None)
    if ours is None or theirs is None or ours.suffix != ".safetensors" or theirs.suffix != ".safetensors":
        return True  # nothing to compare here: TRL loads the checkpoint's own copy, as before
    a, b = load_file(ours), load_file(theirs)
    return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)


def _equal(x: Any, y: Any) -> bool:
    """Two tensors equal in the coarser of their dtypes (TRL's frozen copy may be held in bf16, the adapter fp32)."""
    import torch

    if x.shape != y.shape:
        return False
    dtype = x.dtype if x.element_size() <= y.element_size() else y.dtype
    return torch.equal(x.to(dtype), y.to(dtype))


def check_resumed_reference(checkpoint: Path, adapter: Path) -> None:
    """A resume compares the policy with the starting adapter again: refused, before anything loads, where its
    weights are not the ones the checkpoint's run started from: by the checkpoint's record (reference.json), or for
    a checkpoint from before the record, by its own copy (ref/), which this run's checkpoints no longer keep."""
    checkpoint, adapter = Path(checkpoint), Path(adapter)
    if (checkpoint / RECORD).is_file():
        then = json.loads((checkpoint / RECORD).read_text(encoding="utf-8"))["sha256"]
        now = adapter_sha256(adapter)
        if then == now:
            return
        said = f"weights sha256 {then[:12]}... in {checkpoint / RECORD}, {now[:12]}... now"
    elif (checkpoint / REFERENCE).is_dir():
        if _same_weights(checkpoint / REFERENCE, adapter):
            return
        said = f"its weights differ from the copy in {checkpoint / REFERENCE}"
    else:
        return
    raise KosovError(
        f"the starting adapter {adapter} has changed since the run in {checkpoint.parent.parent} started from it "
        f"({said}): GRPO's reference model (method.grpo.beta > 0) is that adapter as the run started, and its "
        "checkpoints keep only its hash", fix=f"put the adapter the run started from back at {adapter}, or start a "
                                              "new run (overwrite=true, or another output_dir)")


def record_reference(trainer: Any, run: Path) -> None:
    """For a starting adapter's reference copy (TRL's "ref" adapter): the checkpoints record the adapter's hash
    instead of holding the copy (a resume was checked against it before anything loaded: check_resumed_reference)."""
    held = getattr(trainer.model, "peft_config", None) or {}
    if REFERENCE not in held:
        return
    adapter = run_provenance(run, "the starting adapter (model.start_adapter), GRPO's reference")["model"][
        "start_adapter"]
    if adapter is None:  # a PeftModel built outside train.train: TRL keeps its copy in each checkpoint
        return
    trainer.add_callback(reference_record(Path(adapter), adapter_sha256(Path(adapter))))
