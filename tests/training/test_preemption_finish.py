"""SIGTERM around the end of a run and outside the main process: DataLoader workers leave a group SIGTERM to the run,
a SIGTERM after the last step lets the run finish and then stops it, every DDP process takes the same decision when
the end suite is given up, and the log says what happens once no step is left."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.training.test_preemption import trainers_warned_by
from tests.training.test_scale_out import kosov_bin
from training.preemption import StopOnSigterm, StoppedBySignal


def test_a_sigterm_to_the_whole_process_group_spares_the_dataloader_workers(tmp_path):
    """SLURM (and a terminal) send SIGTERM to the whole process group: with method.dataloader_num_workers > 0 it
    ended the DataLoader workers too, and the run died with "DataLoader worker (pid ...) is killed by signal:
    Terminated", status 1 and no checkpoint. The workers ignore it now; the run stops with its checkpoint."""
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [kosov_bin(), "train", "experiment=smoke-sft", f"output_dir={out}", "method.max_steps=60",
         "method.save_steps=3", "method.eval_steps=1000", "method.dataloader_num_workers=2"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 240
    while not (out / "checkpoints" / "checkpoint-3" / "trainer_state.json").exists():
        assert proc.poll() is None and time.time() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)  # the job step's processes: the run and its two workers
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 75 and "DataLoader worker" not in stderr and "Traceback" not in stderr, stderr[-3000:]
    step = int(re.search(r"stopped by SIGTERM at step (\d+), with a checkpoint", stderr).group(1))
    assert (out / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json").is_file()


@pytest.mark.parametrize("during", ["the final evaluation", "the final save"])
def test_a_sigterm_after_the_last_step_lets_the_run_finish_then_stops(tmp_path, monkeypatch, before, during):
    """kosov's handler used to be taken down before the final evaluation and the adapter's save: a SIGTERM there
    killed the job at once (status 143, no word). It is held until metrics.json is written: the run finishes, then
    the command stops with status 75 saying the run is complete (a sweep starts no further job)."""
    from transformers import TrainerCallback

    from tests.helpers import quick
    from training import train as train_module
    from training.recipes import compose

    class TermInTheFinalEvaluation(TrainerCallback):
        sent = False

        def on_prediction_step(self, args, state, control, **kwargs):
            if state.global_step == state.max_steps and not self.sent:
                self.sent = True
                os.kill(os.getpid(), signal.SIGTERM)

    real_save = train_module._save_final

    def term_in_the_final_save(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real_save(*args, **kwargs)

    if during == "the final evaluation":
        trainers_warned_by(monkeypatch, TermInTheFinalEvaluation())
    else:
        monkeypatch.setattr(train_module, "_save_final", term_in_the_final_save)
    out = tmp_path / "run"
    with pytest.raises(StoppedBySignal, match="SIGTERM came as the run finished; it finished first"):
        train_module.train(compose(quick(f"output_dir={out}", "method.max_steps=3")))
    assert before == []  # kosov's handler had it, not what SIGTERM did before (the default: die at once)
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 3
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert json.loads((out / "metrics.json").read_text())["eval_loss"] is not None


def _end_suite_under_ddp(rank: int, folder: Path) -> None:
    """One process of a 2-process gloo group at the end of training: SLURM's SIGTERM reaches both while the main
    process runs the end-of-training suite (the other one has no suite to run)."""
    from types import SimpleNamespace

    import torch.distributed as dist

    from training.evaluation.callback import SuiteCallback

    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2)
    stop = StopOnSigterm()
    try:
        suite = SuiteCallback.__new__(SuiteCallback)  # on_train_end's decision only
        suite.stop, suite.resume, suite.trainer, suite.last_step = stop, False, object(), -1
        suite._run = lambda state, model: os.kill(os.getpid(), signal.SIGTERM)  # rank 0: while it scores
        state = SimpleNamespace(global_step=4, max_steps=4, is_world_process_zero=rank == 0)
        args = SimpleNamespace(output_dir=str(folder), device="cpu")
        for callback in (suite, stop):  # the order train.py adds them in
            callback.on_train_end(args, state, None)
        (folder / f"rank{rank}.json").write_text(json.dumps([stop.stopped_at, stop.stops_run(False)]))
    finally:
        stop.restore()
        dist.destroy_process_group()


def test_a_sigterm_during_the_end_suite_stops_every_process_of_a_ddp_run(tmp_path):
    """The end suite runs on the main process alone: a SIGTERM during it gave it up there, and only the main process
    stopped with the last checkpoint (status 75). The others went on to the final evaluation and the save's
    wait_for_everyone, and waited for it until the DDP timeout (30 min). Every process takes the same decision now."""
    import multiprocessing

    (tmp_path / "checkpoint-4").mkdir()
    context = multiprocessing.get_context("fork")
    procs = [context.Process(target=_end_suite_under_ddp, args=(rank, tmp_path)) for rank in (0, 1)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
    for proc in procs:
        if proc.is_alive():
            proc.kill()
    assert [proc.exitcode for proc in procs] == [0, 0]
    assert [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)] == [[4, True], [4, True]]


@pytest.mark.parametrize("where, says", [
    ("after the last step", "the run has no step left"),
    ("in the end suite", "giving up the eval suite under way"),
])
def test_a_sigterm_once_no_step_is_left_says_what_happens(before, caplog, where, says):
    """The last checkpoint's save and the end suite come after the last step's end but before on_train_end: a
    SIGTERM there said "saving a checkpoint at the end of this step", a step that will not come."""
    from types import SimpleNamespace

    from transformers import TrainerControl

    from training.preemption import SuiteStopped

    stop = StopOnSigterm()
    try:
        stop.on_step_end(SimpleNamespace(device="cpu"), SimpleNamespace(global_step=4, max_steps=4),
                         TrainerControl())
        if where == "in the end suite":
            with pytest.raises(SuiteStopped), stop.stoppable():
                os.kill(os.getpid(), signal.SIGTERM)
        else:
            os.kill(os.getpid(), signal.SIGTERM)
        assert stop.asked and says in caplog.text and "at the end of this step" not in caplog.text
    finally:
        stop.restore()
