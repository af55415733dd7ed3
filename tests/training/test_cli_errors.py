"""What the command line does with a bad or interrupted job: a sweep keeps no secret in its folder or its log, an
output_dir that cannot be written is a kosov error (exit 2) naming the path and the reason, a sweep over output_dir
is refused, and Ctrl-C is one line and exit 130 that puts an earlier run back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import quick
from tests.training.test_run_folder import kosov
from training.errors import KosovError


def test_a_sweep_writes_no_secret_to_its_folder_or_its_log(tmp_path):
    """Hydra's basic sweeper wrote the command line, unredacted, to multirun.yaml in the sweep folder, and its
    launcher logged each job's overrides with ':' escaped (https\\://user\\:key@host), which the URL pattern missed."""
    hf, out = "hf_kosovSweepSecret1234567890abcdef", tmp_path / "sweep"
    done = kosov("train", "-m", *quick("method.max_steps=1", f"output_dir={out}", "peft.r=4,8",
                                       "synth.teacher.base_url=https://alice:sk-LEAKME123456@llm.example.com/v1",
                                       f"synth.teacher.model={hf}"), cwd=tmp_path, env={"HF_TOKEN": hf}, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "#1 : " in done.stderr and "llm.example.com" in done.stderr  # the launcher's line, redacted
    assert (out / "multirun.yaml").is_file() and (out / "1" / "metrics.json").is_file()
    for secret in ("LEAKME", hf):
        assert secret not in done.stderr and secret not in done.stdout, secret
        for path in (p for p in out.rglob("*") if p.is_file()):
            assert secret.encode() not in path.read_bytes(), path
    assert "base_url: https://***@llm.example.com/v1" in (out / "multirun.yaml").read_text()


def test_secret_overrides_are_redacted_in_hydras_record_of_a_sweep():
    from training.redaction import redact_overrides, redact_record

    logged = r"#0 : synth.teacher.base_url=https\://alice\:sk-LEAKME123456@h/v1 +x.api_key=sk-1 model.eos_token=<e>"
    assert redact_overrides(redact_record(logged)) == \
        r"#0 : synth.teacher.base_url=https\://***@h/v1 +x.api_key=*** model.eos_token=<e>"
    record = redact_record({"hydra": {"overrides": {"task": ["peft.r=4,8", "judge.hub_token=hf_abc"]},
                                      "job": {"override_dirname": "judge.password=pw,peft.r=4"}}})
    assert record["hydra"]["overrides"]["task"] == ["peft.r=4,8", "judge.hub_token=***"]
    assert record["hydra"]["job"]["override_dirname"] == "judge.password=***,peft.r=4"


@pytest.mark.parametrize("where, reason", [("a-file/run", "Not a directory"), ("/proc/1/kosov-run", "")])
def test_an_output_dir_that_cannot_be_created_is_a_kosov_error(tmp_path, where, reason):
    """Hydra creates its run folder (output_dir) before kosov runs: under a file, or where nothing may be created,
    the command ended with a traceback and status 1."""
    (tmp_path / "a-file").write_text("not a folder")
    folder = tmp_path / where if not where.startswith("/") else Path(where)
    done = kosov("train", *quick(f"output_dir={folder}"), cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert f"cannot write to the folder {folder}: {reason}" in done.stderr and "another output_dir" in done.stderr


@pytest.mark.parametrize("errno_name", ["EROFS", "ENOSPC"])
def test_a_run_folder_on_a_read_only_or_full_file_system_is_a_kosov_error(tmp_path, monkeypatch, errno_name):
    """The lock file is the first thing a run writes in its folder (read-only and full file systems are hard to make
    in a test, as root): an OSError there was a traceback."""
    import errno

    from training import run_dir

    code = getattr(errno, errno_name)

    def refused(path, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(run_dir, "open", refused, raising=False)  # the module's open: hold_lock's
    with pytest.raises(KosovError, match=f"cannot write to the folder {tmp_path}: {os.strerror(code)}") as error:
        run_dir.lock_run_folder(tmp_path)
    assert "free space" in str(error.value) and "not read-only" in str(error.value)


def test_a_sweep_over_output_dir_is_refused_with_the_folders_a_sweep_gets(tmp_path):
    """output_dir=a,b became hydra.run.dir=a,b: Hydra refused it as "Sweeping over Hydra's configuration"."""
    done = kosov("train", "-m", "experiment=smoke-sft", f"output_dir={tmp_path / 'a'},{tmp_path / 'b'}",
                 cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "sweeps over run folders" in done.stderr and "output_dir/0, output_dir/1" in done.stderr
    assert "Hydra's configuration" not in done.stderr and not (tmp_path / "a").exists()


CTRL_C_IN_DATA = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # a terminal's: a job started with & ignores SIGINT
import training.sft as sft
def ctrl_c(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGINT)  # the terminal's Ctrl-C, while the data loads
    time.sleep(5)
sft.build_data = ctrl_c
from training.cli import main
sys.exit(main())
"""


def test_ctrl_c_while_the_data_loads_ends_with_one_line_and_puts_an_earlier_run_back(tmp_path):
    """Ctrl-C printed a KeyboardInterrupt traceback and exited 1. It is one line now, and status 130; an overwrite
    under way still puts the run it was replacing back."""
    script, out = tmp_path / "ctrl_c.py", tmp_path / "run"
    script.write_text(CTRL_C_IN_DATA)
    out.mkdir()
    (out / "metrics.json").write_text('{"global_step": 7}')  # an earlier run, which overwrite=true would replace
    done = subprocess.run([sys.executable, str(script), "train", *quick(f"output_dir={out}", "overwrite=true")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 130 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "kosov train was interrupted (Ctrl-C) and stopped" in done.stderr
    assert json.loads((out / "metrics.json").read_text()) == {"global_step": 7}


@pytest.mark.parametrize("launcher", [["hydra/launcher=submitit_local"], []])
def test_a_secret_on_the_command_line_of_a_submitit_sweep_is_refused_before_anything_is_submitted(tmp_path, launcher):
    """submitit pickles each job's overrides and composed recipe, in clear, into output_dir/.submitit (0644 files):
    a proxy's password in a teacher's base_url was in them. The basic launcher pickles nothing: its sweep runs."""
    out, secret = tmp_path / "sweep", "pw_SECRET_url77"
    done = kosov("train", "-m", *quick("method.max_steps=1", f"output_dir={out}", *launcher,
                                       f'synth.teacher.base_url="https://bob:{secret}@proxy.example/v1"'),
                 cwd=tmp_path, timeout=400)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not any(secret.encode() in p.read_bytes() for p in files) and secret not in done.stderr
    if not launcher:
        assert done.returncode == 0, done.stderr[-3000:]
        return
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "the submitit launcher would store synth.teacher.base_url=" in done.stderr
    assert "https://***@proxy.example/v1" in done.stderr and "api_key_env" in done.stderr
    assert not files and not out.exists()  # nothing submitted, no folder made


def test_a_secret_in_a_slurm_recipes_sweep_is_refused_too(tmp_path):
    """experiment=qwen3-8b-ko-sft-slurm picks the submitit launcher itself, without hydra/launcher= on the line."""
    done = kosov("train", "-m", "experiment=qwen3-8b-ko-sft-slurm", f"output_dir={tmp_path / 'sweep'}",
                 "synth.teacher.base_url='http://h/v1?api_key=sk-LEAKME123456'",
                 cwd=tmp_path, timeout=120)
    assert done.returncode == 2 and "LEAKME" not in done.stderr, done.stderr[-3000:]
    assert "the submitit launcher would store" in done.stderr and not any(tmp_path.iterdir())


def test_the_submitit_folder_is_made_readable_by_its_user_alone(tmp_path):
    from types import SimpleNamespace

    from training.sweep_jobs import private_submitit_folder

    private_submitit_folder(SimpleNamespace(params={"submitit_folder": f"{tmp_path}/sweep/.submitit/%j"}))
    assert (tmp_path / "sweep" / ".submitit").stat().st_mode & 0o777 == 0o700
    private_submitit_folder(SimpleNamespace(params={}))  # the basic launcher: nothing to do
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep"]
