"""A job killed (SIGKILL: nothing of it runs after) while it replaced something: overwrite=true setting the earlier
run aside, or a swap putting a new adapter in place. The next job to hold the folder puts back the earlier content
when the new one never got into place, else deletes what was left aside; never the only copy of anything."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.helpers import quick
from training.recipes import compose
from training.run_dir import lock_run_folder
from training.safe_write import swap_into_place
from training.train import train

KILL = """
import os, shutil, signal
from pathlib import Path

def kill():
    os.kill(os.getpid(), signal.SIGKILL)

def kill_after_rename(to):  # SIGKILL right after the rename whose new name holds `to`
    rename = Path.rename
    def renamed(self, target):
        done = rename(self, target)
        if to in Path(target).name:
            kill()
        return done
    Path.rename = renamed

def kill_on_delete():  # SIGKILL as a folder starts being deleted
    shutil.rmtree = lambda *a, **k: kill()

def kill_part_way_through_delete():  # SIGKILL once a folder being deleted has lost its first file
    def rmtree(path, *args, **kwargs):
        next(p for p in sorted(Path(path).rglob("*")) if p.is_file()).unlink()
        kill()
    shutil.rmtree = rmtree
"""


def killed(code: str) -> None:
    """Run `code` in a Python process that kills itself where the code says."""
    done = subprocess.run([sys.executable, "-c", KILL + textwrap.dedent(code)], capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name != ".kosov.lock")


def earlier_run(out: Path) -> dict[str, str]:
    """A finished run's folder, by hand: name -> content of each file."""
    files = {"config.yaml": "name: earlier\n", "metrics.json": "{}\n", "adapter/adapter_model.safetensors": "earlier",
             "checkpoints/checkpoint-3/trainer_state.json": '{"global_step": 3}'}
    for name, text in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    return files


def files_of(out: Path) -> dict[str, str]:
    """name -> content of each file outside hidden folders."""
    return {str(p.relative_to(out)): p.read_text() for p in out.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(out).parts)}


def test_an_overwrite_killed_before_it_got_under_way_gives_the_earlier_run_back(tmp_path):
    """Killed while it loaded its data and model (after it recorded its config): the earlier run comes back whole, and
    a requeued resume=true continues it, from its checkpoint, with its own recipe."""
    out = tmp_path / "run"
    common = ["method.save_steps=3", "data.eval_ratio=0"]
    train(compose(quick(f"output_dir={out}", *common)))
    adapter = (out / "adapter" / "adapter_model.safetensors").read_bytes()
    killed(f"""
        from training.run_dir import prepare_run_dir
        run = prepare_run_dir(Path({str(out)!r}), overwrite=True, resume=False)
        (run.path / "config.yaml").write_text("name: the new run\\n")
        kill()
    """)
    resumed = train(compose(quick(f"output_dir={out}", *common, "method.max_steps=6", "resume=true")))
    assert hidden(out) == []
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["resumed_from"] == str(out / "checkpoints" / "checkpoint-3") and len(prov["earlier"]) == 1
    assert resumed.metrics["global_step"] == 6 and resumed.metrics["train_loss_curve"][0][0] == 1
    assert "put the earlier run in" in (out / "train.log").read_text()  # the run's own log says what was put right
    assert (out / "adapter" / "adapter_model.safetensors").read_bytes() != adapter  # trained on to step 6


def test_an_overwrite_killed_while_it_set_the_earlier_run_aside_leaves_that_run_whole(tmp_path):
    out = tmp_path / "run"
    before = earlier_run(out)
    killed(f"""
        kill_after_rename("checkpoints")  # some of the earlier run set aside, the rest not yet
        from training.run_dir import prepare_run_dir
        prepare_run_dir(Path({str(out)!r}), overwrite=True, resume=False)
    """)
    assert files_of(out) != before
    lock_run_folder(out).close()  # the next job on the folder
    assert files_of(out) == before and hidden(out) == []


def test_an_overwrite_killed_while_it_deleted_the_earlier_run_leaves_nothing_behind(tmp_path, caplog):
    out = tmp_path / "run"
    earlier_run(out)
    killed(f"""
        from training.run_dir import prepare_run_dir
        run = prepare_run_dir(Path({str(out)!r}), overwrite=True, resume=False)
        (run.path / "config.yaml").write_text("name: the new run\\n")
        kill_on_delete()
        run.drop_replaced()  # the new run got under way
    """)
    assert hidden(out)  # the earlier run, whole, in a hidden folder
    with caplog.at_level(logging.WARNING, logger="training.run_dir"):
        lock_run_folder(out).close()
    assert hidden(out) == [] and files_of(out) == {"config.yaml": "name: the new run\n"}
    assert "removed" in caplog.text


def test_a_swap_killed_before_the_new_adapter_got_into_place_puts_the_earlier_one_back(tmp_path, caplog):
    """A run that trains on (a longer max_steps) swaps its new adapter in at the end: killed between setting the
    earlier adapter aside and renaming the new one into place, the run folder had no adapter/ at all."""
    out = tmp_path / "run"
    before = earlier_run(out)
    (out / ".adapter.saving").mkdir()
    (out / ".adapter.saving" / "adapter_model.safetensors").write_text("new")
    killed(f"""
        kill_after_rename(".replaced-")
        from training.safe_write import swap_into_place
        swap_into_place(Path({str(out)!r}) / ".adapter.saving", Path({str(out)!r}) / "adapter")
    """)
    assert not (out / "adapter").exists()
    with caplog.at_level(logging.WARNING, logger="training.run_dir"):
        lock_run_folder(out).close()
    assert files_of(out) == before and hidden(out) == [".adapter.saving"]  # staging: the next save clears it
    assert "back" in caplog.text


def test_a_swap_killed_after_the_new_one_got_into_place_leaves_only_the_new_one(tmp_path):
    """The earlier content goes once the new one is in place, wherever the next swap or job finds it: a release
    folder (kosov publish) as well as a run's adapter."""
    out = tmp_path / "run"
    earlier_run(out)
    for name in ("adapter", "release"):
        (out / name).mkdir(exist_ok=True)
        (out / name / "weights").write_text("earlier")
        staging = out / f".{name}.building"
        staging.mkdir()
        (staging / "weights").write_text("new")
        killed(f"""
            kill_on_delete()
            from training.safe_write import swap_into_place
            swap_into_place(Path({str(staging)!r}), Path({str(out / name)!r}))
        """)
    assert [h.rsplit(".", 1)[0] for h in hidden(out)] == [".adapter", ".release"]
    lock_run_folder(out).close()  # the next training job: its own adapter
    assert [h.rsplit(".", 1)[0] for h in hidden(out)] == [".release"]
    staging.mkdir()
    (staging / "weights").write_text("newer")
    swap_into_place(staging, out / "release")  # the next publish
    assert hidden(out) == [] and (out / "release" / "weights").read_text() == "newer"
    assert (out / "adapter" / "weights").read_text() == "new"


def test_an_adapter_a_killed_swap_was_deleting_is_never_put_back(tmp_path, caplog):
    """Deleting the earlier adapter (a merged model: seconds) is killed part-way; later a second swap is killed
    before its new adapter got into place. The part left of the first is removed, not put back as the adapter (it
    kept the name that tidy_swap restores): the whole adapter the second swap set aside comes back."""
    out = tmp_path / "run"
    earlier_run(out)
    (out / "adapter" / "adapter_config.json").write_text("earlier")
    for name, text, kill in (("saving", "new", "kill_part_way_through_delete()"),
                             ("saving-again", "newer", 'kill_after_rename(".replaced-")')):
        staging = out / f".adapter.{name}"
        staging.mkdir()
        for file in ("adapter_model.safetensors", "adapter_config.json"):
            (staging / file).write_text(text)
        killed(f"""
            {kill}
            from training.safe_write import swap_into_place
            swap_into_place(Path({str(staging)!r}), Path({str(out / "adapter")!r}))
        """)
    assert not (out / "adapter").exists()
    with caplog.at_level(logging.WARNING, logger="training.run_dir"):
        lock_run_folder(out).close()
    assert {p.name: p.read_text() for p in (out / "adapter").iterdir()} == {
        "adapter_model.safetensors": "new", "adapter_config.json": "new"}
    assert hidden(out) == [".adapter.saving-again"] and "back" in caplog.text


def adapter_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "adapter_model.safetensors")


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)


def test_a_run_killed_after_its_last_checkpoint_finishes_from_it_without_another_step(tmp_path):
    """Killed after the checkpoint at its last step (in the end-of-training eval suite, say), before the adapter and
    metrics.json: resume=true must finish from that checkpoint. The Trainer resumed there takes one step more."""
    out = tmp_path / "run"
    args = quick(f"output_dir={out}", "method.save_steps=3", "data.eval_ratio=0")
    train(compose(args))
    shutil.rmtree(out / "adapter")
    (out / "metrics.json").unlink()
    resumed = train(compose([*args, "resume=true"]))
    assert resumed.metrics["global_step"] == 3 and not (out / "checkpoints" / "checkpoint-4").exists()
    assert same_weights(adapter_weights(out / "adapter"), adapter_weights(out / "checkpoints" / "checkpoint-3"))
    assert json.loads((out / "metrics.json").read_text())["train_loss_curve"][-1][0] == 3


def test_a_run_ended_early_at_its_checkpoint_finishes_there_with_its_end_suite(tmp_path, caplog):
    """A 6-step run killed after checkpoint-3 and resumed with max_steps=3 (ending it there) finishes from that
    checkpoint, whose saved state still plans 6 steps: the end-of-training suite runs (it was skipped, the run being
    taken as stopped at step 3 of 6)."""
    out = tmp_path / "run"
    common = [f"output_dir={out}", "method.save_steps=3", "data.eval_ratio=0", "eval=smoke", "eval.every_n_steps=100"]
    train(compose(quick(*common, "method.max_steps=6")))
    for leftover in (out / "checkpoints" / "checkpoint-6", out / "adapter"):
        shutil.rmtree(leftover)
    (out / "metrics.json").unlink()
    caplog.set_level(logging.INFO, logger="training.evaluation.callback")
    resumed = train(compose(quick(*common, "method.max_steps=3", "resume=true")))
    assert resumed.metrics["global_step"] == 3 and not (out / "checkpoints" / "checkpoint-4").exists()
    assert "suite smoke at step 3" in caplog.text and "no suite run at the end" not in caplog.text


def test_a_longer_run_killed_while_it_swapped_its_adapter_in_is_not_taken_as_finished(tmp_path):
    """A run trained on to step 6 is killed after its last checkpoint, while it swapped the new adapter in: the next
    job puts step 3's adapter back, and metrics.json is still step 3's. That run has not finished at step 6."""
    out = tmp_path / "run"
    common = ["method.save_steps=3", "data.eval_ratio=0"]
    train(compose(quick(f"output_dir={out}", *common)))
    longer = quick(f"output_dir={out}", *common, "method.max_steps=6", "resume=true")
    killed(f"""
        kill_after_rename(".replaced-")  # step 3's adapter set aside, step 6's not yet in place
        from training.recipes import compose
        from training.train import train
        train(compose({longer!r}))
    """)
    resumed = train(compose(longer))
    assert resumed.metrics["global_step"] == 6 and not (out / "checkpoints" / "checkpoint-7").exists()
    assert same_weights(adapter_weights(out / "adapter"), adapter_weights(out / "checkpoints" / "checkpoint-6"))
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 6


def test_a_longer_run_killed_before_its_first_new_checkpoint_trains_on(tmp_path):
    """A finished 3-step run resumed for 6 steps is killed once it has rewritten config.yaml, before checkpoint-6:
    the next resume must train on to step 6, not take the run as finished at step 3 on every requeue."""
    out = tmp_path / "run"
    common = ["method.save_steps=3", "data.eval_ratio=0"]
    train(compose(quick(f"output_dir={out}", *common)))
    longer = quick(f"output_dir={out}", *common, "method.max_steps=6", "resume=true")
    killed(f"""
        replace = Path.replace
        def replaced(self, target):  # written atomically: killed once the longer recipe is recorded
            done = replace(self, target)
            if Path(target).name == "config.yaml":
                kill()
            return done
        Path.replace = replaced
        from training.recipes import compose
        from training.train import train
        train(compose({longer!r}))
    """)
    resumed = train(compose(longer))
    assert resumed.trainer is not None and resumed.metrics["global_step"] == 6
