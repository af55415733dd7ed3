"""The command a stopped run says continues it does continue it. A run or sweep without output_dir goes to a folder
named by its start time; "the same command with resume=true" made a new one and started over from step 0, saying
only (INFO) that the folder held no run yet. The stop now names the folder (output_dir=... resume=true), resume=true
without one is refused with the experiment's latest resumable folders, and an output_dir holding no run yet starts
one with a warning. A run started from an adapter given by a relative path records it absolute."""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import quick
from training.errors import KosovError

# The CLI, with a SIGTERM at the first step of the first run when STOP_AT_FIRST_STEP is set (as scancel or SLURM's
# time limit sends it): that step ends with checkpoint-1 and the command stops.
STOPPED_AT_FIRST_STEP = """
import os, signal, sys
from transformers import TrainerCallback
import training.sft as sft
build, sent = sft.build_trainer, []
class Term(TrainerCallback):
    def on_step_begin(self, args, state, control, **kwargs):
        if not sent:
            sent.append(state.global_step)
            os.kill(os.getpid(), signal.SIGTERM)
def build_and_stop(*a, **k):
    trainer = build(*a, **k)
    trainer.add_callback(Term())
    return trainer
if os.environ.get("STOP_AT_FIRST_STEP"):
    sft.build_trainer = build_and_stop
from training.cli import main
sys.exit(main())
"""


def cli(tmp_path: Path, *args: str, stop: bool = False) -> subprocess.CompletedProcess:
    script = tmp_path / "stopped_cli.py"
    script.write_text(STOPPED_AT_FIRST_STEP)
    env = {k: v for k, v in os.environ.items() if k != "STOP_AT_FIRST_STEP"}
    if stop:
        env["STOP_AT_FIRST_STEP"] = "1"
    return subprocess.run([sys.executable, str(script), "train", *args], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=400)


def named_words(stderr: str) -> str:
    """The output_dir=... resume=true the stop says continues it, as it is written (quoted for the shell)."""
    found = re.findall(r"(?:and|with) (\S*output_dir=.*?) resume=true", stderr)
    assert found, stderr[-3000:]
    return f"{found[-1]} resume=true"


def named_command(stderr: str) -> list[str]:
    """The output_dir=... resume=true the stop says continues it, as the shell passes it on."""
    return shlex.split(named_words(stderr))


def test_a_stopped_run_without_output_dir_names_the_command_that_continues_it(tmp_path):
    args = quick("method.max_steps=2")
    stopped = cli(tmp_path, *args, stop=True)
    assert stopped.returncode == 75 and "Traceback" not in stopped.stderr, stopped.stderr[-3000:]
    [folder] = (tmp_path / "outputs" / "smoke-sft").iterdir()
    assert named_command(stopped.stderr) == [f"output_dir={folder}", "resume=true"]
    assert (folder / "checkpoints" / "checkpoint-1").is_dir()
    # resume=true alone: a new timestamped folder, where the run started over. Refused, naming the stopped run.
    refused = cli(tmp_path, *args, "resume=true")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-3000:]
    assert "resume=true continues the run in output_dir, but no output_dir was given" in refused.stderr
    assert f"output_dir=DIR resume=true; the latest with checkpoints in outputs/smoke-sft: {folder}" in refused.stderr
    assert [p.name for p in (tmp_path / "outputs" / "smoke-sft").iterdir()] == [folder.name]  # no new folder
    resumed = cli(tmp_path, *args, *named_command(stopped.stderr))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {folder / 'checkpoints' / 'checkpoint-1'}" in resumed.stderr
    assert json.loads((folder / "metrics.json").read_text())["global_step"] == 2


def test_a_stopped_sweep_without_output_dir_names_the_command_that_continues_it(tmp_path):
    args = ["-m", *quick("method.max_steps=2", "peft.r=4,8")]
    stopped = cli(tmp_path, *args, stop=True)
    assert stopped.returncode == 75 and "Traceback" not in stopped.stderr, stopped.stderr[-3000:]
    [sweep] = (tmp_path / "outputs" / "smoke-sft").iterdir()
    assert sweep.name.startswith("multirun_") and not (sweep / "1").exists()
    assert named_command(stopped.stderr) == [f"output_dir={sweep}", "resume=true"]
    assert f"To continue the sweep, run the same command with output_dir={sweep} resume=true" in stopped.stderr
    refused = cli(tmp_path, *args, "resume=true")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-3000:]
    assert "resume=true continues the sweep's jobs in their folders" in refused.stderr
    assert f"in outputs/smoke-sft: {sweep}" in refused.stderr and len(list(sweep.parent.iterdir())) == 1
    resumed = cli(tmp_path, *args, *named_command(stopped.stderr))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {sweep / '0' / 'checkpoints' / 'checkpoint-1'}" in resumed.stderr
    assert re.search(rf"WARNING \S+: resume=true, but {re.escape(str(sweep / '1'))} holds no run yet: starting",
                     resumed.stderr), resumed.stderr[-3000:]
    assert [json.loads((sweep / job / "metrics.json").read_text())["global_step"] for job in "01"] == [2, 2]


def test_resume_without_output_dir_is_refused_from_python_too(tmp_path, monkeypatch):
    from training.recipes import compose
    from training.train import train

    monkeypatch.chdir(tmp_path)
    with pytest.raises(KosovError, match="no output_dir was given") as error:
        train(compose(quick("resume=true")))
    assert "output_dir=DIR resume=true" in error.value.fix and not (tmp_path / "outputs").exists()


def test_resume_on_an_output_dir_holding_no_run_starts_one_with_a_warning(tmp_path, caplog):
    from training.recipes import compose
    from training.train import train

    out = tmp_path / "typo"
    caplog.set_level(logging.INFO)
    result = train(compose(quick(f"output_dir={out}", "resume=true", "method.max_steps=1")))
    assert result.metrics["global_step"] == 1
    [said] = [r for r in caplog.records if "holds no run yet" in r.getMessage()]
    assert said.levelno == logging.WARNING and str(out) in said.getMessage()


def test_a_run_from_a_relative_start_adapter_records_it_absolute(tmp_path, monkeypatch):
    """`kosov train method.init_adapter=sft output_dir=grpo` recorded start_adapter "sft/adapter": kosov publish,
    run from another folder, read another run's lineage there."""
    from training.recipes import compose
    from training.train import train

    monkeypatch.chdir(tmp_path)
    train(compose(quick("output_dir=sft", "method.max_steps=1")))
    train(compose(["experiment=smoke-grpo", "output_dir=grpo", "method.init_adapter=sft", "method.max_steps=1"]))
    recorded = json.loads((tmp_path / "grpo" / "provenance.json").read_text())["model"]["start_adapter"]
    assert recorded == str(tmp_path / "sft" / "adapter")


def test_the_named_command_pasted_into_a_shell_continues_a_run_in_a_folder_of_korean_words_spaces_and_quotes(
        tmp_path):
    """The stop named output_dir=/home/me/실험 폴더/... unquoted: pasted, the shell split it at the space, and Hydra
    refused the Korean letters outside quotes."""
    here = tmp_path / "실험 폴더" / "it's $HOME"
    here.mkdir(parents=True)
    args = quick("method.max_steps=2")
    stopped = cli(here, *args, stop=True)
    assert stopped.returncode == 75 and "Traceback" not in stopped.stderr, stopped.stderr[-3000:]
    [folder] = (here / "outputs" / "smoke-sft").iterdir()
    assert named_command(stopped.stderr) == [f'output_dir="{folder}"', "resume=true"]
    pasted = f"{shlex.quote(sys.executable)} stopped_cli.py train {' '.join(args)} {named_words(stopped.stderr)}"
    resumed = subprocess.run(["bash", "-c", pasted], cwd=here, capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {folder / 'checkpoints' / 'checkpoint-1'}" in resumed.stderr
    assert json.loads((folder / "metrics.json").read_text())["global_step"] == 2


@pytest.mark.parametrize("folder", ["/data/결과 1", "/data/it's (a&b)", '/data/say "hi" to $USER', "/data/a,b=c [1]",
                                    "/data/null", "/data/back\\"])
def test_every_named_folder_reads_back_through_the_shell_and_kosovs_overrides_as_it_is(folder):
    from training.cli import output_dirs
    from training.preemption import resume_fix
    from training.recipes import compose
    from training.sweep_jobs import sweep_resume

    words = named_command(resume_fix(folder))
    assert named_command(sweep_resume(folder)) == words and words[-1] == "resume=true"
    assert output_dirs(words) == [folder] and compose(["experiment=smoke-sft", *words]).output_dir == folder
