"""The run folder through the real `kosov` command: overwrite refused, a killed run resumed, bad input
reported by file and line without a traceback, secrets kept out, trackers and sweeps."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.helpers import quick
from training.recipes import compose
from training.errors import KosovError
from training.tracking import wandb_mode
from training.train import train


def kosov(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 300):
    return subprocess.run([sys.executable, "-m", "training.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **(env or {})}, timeout=timeout)


def test_an_existing_run_is_not_overwritten_unless_asked(tmp_path):
    out = tmp_path / "run"
    train(compose(quick(f"output_dir={out}")))
    before = (out / "adapter" / "adapter_model.safetensors").read_bytes()
    done = kosov("train", *quick(f"output_dir={out}", "method.learning_rate=0.05"))
    assert done.returncode == 2
    assert "already holds a run" in done.stderr and "overwrite=true" in done.stderr
    assert "Traceback" not in done.stderr
    assert (out / "adapter" / "adapter_model.safetensors").read_bytes() == before
    # overwrite=true with a mistake the new run finds while loading (a missing data file): the old run stays whole
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != "train.log")
    done = kosov("train", *quick(f"output_dir={out}", "overwrite=true", f"data.train_files=[{tmp_path / 'no.jsonl'}]"))
    assert done.returncode == 2 and "no.jsonl" in done.stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != "train.log") == files
    assert (out / "adapter" / "adapter_model.safetensors").read_bytes() == before
    done = kosov("train", *quick(f"output_dir={out}", "method.learning_rate=0.05", "overwrite=true"))
    assert done.returncode == 0, done.stderr
    assert (out / "adapter" / "adapter_model.safetensors").read_bytes() != before
    # the replaced run is gone once the new one got under way
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [".kosov.lock"]


def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    args = ["train", "experiment=smoke-sft", f"output_dir={out}", "method.max_steps=40", "method.save_steps=5",
            "method.eval_steps=100", "method.logging_steps=1", "tracking=wandb"]
    # Each job its own wandb service, as two jobs of a requeue have (not the one this pytest process started:
    # there the killed job's run would stay registered, "in use").
    own_wandb = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    proc = subprocess.Popen([sys.executable, "-m", "training.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=own_wandb)
    deadline = time.time() + 240
    while not (out / "checkpoints" / "checkpoint-10" / "trainer_state.json").exists():
        assert proc.poll() is None and time.time() < deadline, "the run ended before its second checkpoint"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "metrics.json").exists()

    done = subprocess.run([sys.executable, "-m", "training.cli", *args, "resume=true"], capture_output=True,
                          text=True, env=own_wandb, timeout=300)
    assert done.returncode == 0, done.stderr
    resumed_from = [line for line in (out / "train.log").read_text().splitlines() if "resuming from" in line]
    assert resumed_from and "checkpoint-" in resumed_from[0]
    step = int(resumed_from[0].rsplit("checkpoint-", 1)[1])
    assert step >= 10
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["global_step"] == 40  # the step count continued to the end, not 40 more
    steps = [s for s, _ in metrics["train_loss_curve"]]
    assert steps == sorted(set(steps)) and steps[0] == 1  # one history: logged steps from before the kill kept
    # one wandb run (offline: no key here): wandb writes a folder per segment, under the run's one id, and the
    # command the log gives uploads them all into it
    segments = sorted((out / "wandb").glob("offline-run-*"))
    run_id = json.loads((out / "wandb_run.json").read_text())["id"]
    assert len(segments) == 2 and {p.name.rsplit("-", 1)[1] for p in segments} == {run_id}
    [sync] = [line for line in (out / "train.log").read_text().splitlines() if "wandb sync" in line]
    assert sync.endswith("wandb sync " + " ".join(map(str, segments)))


def test_sigterm_saves_a_checkpoint_and_the_run_resumes_from_it(tmp_path):
    """SLURM preemption, scancel and time limits send SIGTERM: the step under way ends with a checkpoint, the job
    stops with exit status 75 (EX_TEMPFAIL) naming the command that continues it, and resume=true finishes."""
    import re

    out = tmp_path / "run"
    args = ["train", "experiment=smoke-sft", f"output_dir={out}", "method.max_steps=60", "method.save_steps=7",
            "method.eval_steps=1000", "method.logging_steps=1", "method.save_total_limit=100"]
    proc = subprocess.Popen([sys.executable, "-m", "training.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (out / "checkpoints" / "checkpoint-7" / "trainer_state.json").exists():
        assert proc.poll() is None and time.time() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 75 and f"output_dir={out.resolve()} resume=true" in stderr, stderr
    step = int(re.search(r"stopped by SIGTERM at step (\d+)", stderr).group(1))
    assert 7 <= step < 60 and (out / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json").is_file()
    assert not (out / "adapter").exists()
    done = kosov(*args, "resume=true")
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 60


def test_resume_with_another_recipe_is_refused_and_changes_nothing(tmp_path):
    out = tmp_path / "run"
    train(compose(quick(f"output_dir={out}")))
    before = {name: (out / name).read_bytes() for name in ("config.yaml", "provenance.json")}
    done = kosov("train", *quick(f"output_dir={out}", "resume=true", "method.learning_rate=0.5", "data=ko-math-sft"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "the recipe differs" in done.stderr and "method.learning_rate: 0.003 -> 0.5" in done.stderr
    assert "data.name: 'ko-chat-seed' -> 'ko-math-sft'" in done.stderr and "overwrite=true" in done.stderr
    assert before == {name: (out / name).read_bytes() for name in before}


def test_a_setting_added_since_the_run_was_saved_does_not_stop_it_resuming():
    """A run saved by an older kosov has no key for a setting added since (null: as before): resuming it after an
    upgrade was refused as "method.grpo.optimizer_steps_per_generation: (unset) -> None"."""
    from training.config import to_dict
    from training.resume_checks import recipe_changes

    recipe = to_dict(compose(["experiment=smoke-grpo"]))
    saved = yaml.safe_load(yaml.safe_dump(recipe))
    del saved["method"]["grpo"]["optimizer_steps_per_generation"]
    assert recipe_changes(saved, recipe) == []
    recipe["method"]["grpo"]["optimizer_steps_per_generation"] = 2  # set: a change all the same
    assert recipe_changes(saved, recipe) == ["method.grpo.optimizer_steps_per_generation: (unset) -> 2"]


def test_a_job_killed_before_its_first_checkpoint_starts_again_under_resume(tmp_path):
    """A requeued SLURM job always passes resume=true: killed while it read its data or before its first save, it
    must start again, not fail on every requeue."""
    out = tmp_path / "run"
    train(compose(quick(f"output_dir={out}")))
    for name in ("checkpoints", "adapter", "metrics.json"):  # as a kill before the first checkpoint leaves it
        shutil.rmtree(out / name) if (out / name).is_dir() else (out / name).unlink()
    done = kosov("train", *quick(f"output_dir={out}", "resume=true"))
    assert done.returncode == 0, done.stderr
    assert "no finished checkpoint: starting from the first step" in done.stderr
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 3
    shutil.rmtree(out / "checkpoints")  # a finished run that kept no checkpoint is not trained again from scratch
    done = kosov("train", *quick(f"output_dir={out}", "resume=true"))
    assert done.returncode == 2 and "kept no checkpoint" in done.stderr and "Traceback" not in done.stderr


def test_resuming_a_finished_run_changes_nothing(tmp_path):
    out = tmp_path / "run"
    first = train(compose(quick(f"output_dir={out}", "method.save_steps=3")))
    adapter = (out / "adapter" / "adapter_model.safetensors").read_bytes()
    again = train(compose(quick(f"output_dir={out}", "method.save_steps=3", "resume=true")))
    assert again.metrics == json.loads(json.dumps(first.metrics)) and again.trainer is None
    assert (out / "adapter" / "adapter_model.safetensors").read_bytes() == adapter
    assert sorted(p.name for p in (out / "checkpoints").glob("checkpoint-*")) == ["checkpoint-3"]
    longer = train(compose(quick(f"output_dir={out}", "method.save_steps=3", "resume=true", "method.max_steps=5")))
    assert longer.metrics["global_step"] == 5  # a longer max_steps still continues it


def test_a_resumed_run_counts_every_token_and_refuses_changed_data(tmp_path):
    data = write_rows(tmp_path / "rows.jsonl", [GOOD] * 24)
    common = [f"data.train_files=[{data}]", "method.save_steps=3", "data.eval_ratio=0"]
    whole = train(compose(quick(f"output_dir={tmp_path / 'whole'}", *common, "method.max_steps=6")))
    train(compose(quick(f"output_dir={tmp_path / 'parts'}", *common)))
    resumed = train(compose(quick(f"output_dir={tmp_path / 'parts'}", *common, "method.max_steps=6", "resume=true")))
    assert resumed.metrics["tokens_seen"] == whole.metrics["tokens_seen"]
    write_rows(data, [GOOD] * 23 + [{"messages": [GOOD["messages"][0], {"role": "assistant", "content": "부산"}]}])
    with pytest.raises(KosovError, match="the data changed") as error:
        train(compose(quick(f"output_dir={tmp_path / 'parts'}", *common, "method.max_steps=9", "resume=true")))
    assert str(data) in str(error.value) and "overwrite=true" in str(error.value)


def test_a_run_whose_eval_split_would_hold_out_other_rows_is_not_resumed(tmp_path):
    """The same files and recipe, split otherwise (another kosov version: copies of a row now stay on one side):
    the resumed run would train on other rows than the ones it skips as seen."""
    out = tmp_path / "run"
    train(compose(quick(f"output_dir={out}", "method.save_steps=3")))
    saved = json.loads((out / "provenance.json").read_text())
    assert len(saved["data"]["eval_sha256"]) == 64
    saved["data"]["eval_sha256"] = "0" * 64  # as a version that held out other rows recorded it
    (out / "provenance.json").write_text(json.dumps(saved))
    with pytest.raises(KosovError, match="the rows held out for eval"):
        train(compose(quick(f"output_dir={out}", "method.save_steps=3", "method.max_steps=5", "resume=true")))
    # started with an earlier kosov, which read the same files into other rows (before a top-level 'system' column
    # was a system turn in every row format): the error says so, and how to go on
    saved.update(git_sha="1a2b3c4d5e6f" * 3 + "abcd", packages={**saved["packages"], "kosov": "0.0.1"})
    (out / "provenance.json").write_text(json.dumps(saved))
    with pytest.raises(KosovError) as error:
        train(compose(quick(f"output_dir={out}", "method.save_steps=3", "method.max_steps=5", "resume=true")))
    assert f"the run in {out} started with kosov 0.0.1 (git 1a2b3c4d5e6f), and this kosov " in error.value.what
    assert "a top-level 'system' column is a system turn in every row format" in error.value.what
    assert error.value.fix.startswith("finish the run with the kosov it started with (git checkout 1a2b3c4d5e6f, "
                                      "then the same command), or start a new run")


def test_a_run_resumed_from_a_checkpoint_between_logs_counts_the_tokens_since_its_last_log(tmp_path):
    """checkpoint-3 is saved a step after the last log (step 2): the resumed run counts on from step 3's total."""
    common = ["method.save_steps=3", "method.logging_steps=2", "data.eval_ratio=0"]
    whole = train(compose(quick(f"output_dir={tmp_path / 'whole'}", *common, "method.max_steps=6")))
    train(compose(quick(f"output_dir={tmp_path / 'parts'}", *common)))  # stops at max_steps=3: checkpoint-3
    state = json.loads((tmp_path / "parts" / "checkpoints" / "checkpoint-3" / "trainer_state.json").read_text())
    assert [h["step"] for h in state["log_history"] if "num_tokens" in h][-1] == 2
    resumed = train(compose(quick(f"output_dir={tmp_path / 'parts'}", *common, "method.max_steps=6", "resume=true")))
    assert resumed.metrics["tokens_seen"] == whole.metrics["tokens_seen"]
    # a checkpoint saved before the count was recorded still resumes, from its last logged count
    old = tmp_path / "old"
    train(compose(quick(f"output_dir={old}", *common)))
    path = old / "checkpoints" / "checkpoint-3" / "trainer_state.json"
    state = json.loads(path.read_text())
    state["stateful_callbacks"].pop("ResumedTokenCount", None)
    path.write_text(json.dumps(state))
    again = train(compose(quick(f"output_dir={old}", *common, "method.max_steps=6", "resume=true")))
    assert 0 < again.metrics["tokens_seen"] < whole.metrics["tokens_seen"]


def test_a_resumed_run_reports_the_training_time_of_every_segment(tmp_path):
    """metrics.json's train_runtime_s covers the steps trained before the resume too: 8 steps, then 1 more."""
    common = ["method.save_steps=8", "data.eval_ratio=0"]
    first = train(compose(quick(f"output_dir={tmp_path / 'run'}", *common, "method.max_steps=8")))
    resumed = train(compose(quick(f"output_dir={tmp_path / 'run'}", *common, "method.max_steps=9", "resume=true")))
    assert resumed.metrics["global_step"] == 9
    assert resumed.metrics["train_runtime_s"] > first.metrics["train_runtime_s"]


def test_files_reach_the_disk_before_they_are_renamed_into_place(tmp_path, monkeypatch):
    """A power loss after the rename must not leave an empty metrics.json: the file is fsynced before the rename,
    and the folder (the rename itself) after."""
    from training.safe_write import write_json

    events = []
    fsync, replace = os.fsync, Path.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
                        or fsync(fd))
    monkeypatch.setattr(Path, "replace", lambda self, to: events.append(("rename", str(to))) or replace(self, to))
    write_json(tmp_path / "metrics.json", {"global_step": 3})
    (kind, written), *rest = events
    assert kind == "fsync" and re.fullmatch(r"\.metrics\.json\.\d+-[0-9a-f]{8}\.tmp", Path(written).name)
    assert rest == [("rename", str(tmp_path / "metrics.json")), ("fsync", str(tmp_path))]
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"global_step": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_a_folder_swapped_into_place_is_on_disk_before_the_earlier_one_goes(tmp_path, monkeypatch):
    """An adapter (or a converted model) renamed into place with its files still in the page cache: a crash after
    the earlier copy was deleted could leave empty weights and nothing to go back to."""
    from training.safe_write import swap_into_place

    target, staging = tmp_path / "adapter", tmp_path / ".adapter.building"
    (target / "old.bin").parent.mkdir()
    (target / "old.bin").write_bytes(b"old")
    (staging / "sub").mkdir(parents=True)
    (staging / "adapter_model.safetensors").write_bytes(b"new")
    (staging / "sub" / "config.json").write_text("{}")
    events = []
    fsync, rmtree = os.fsync, shutil.rmtree
    monkeypatch.setattr(os, "fsync", lambda fd: events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
                        or fsync(fd))
    monkeypatch.setattr(shutil, "rmtree",
                        lambda path, *a, **k: events.append(("delete", "old")) or rmtree(path, *a, **k))
    swap_into_place(staging, target)
    synced = {Path(p).name for kind, p in events[: events.index(("delete", "old"))] if kind == "fsync"}
    assert {"adapter_model.safetensors", "config.json", "sub", str(tmp_path.name)} <= synced
    assert sorted(p.name for p in target.iterdir()) == ["adapter_model.safetensors", "sub"]


def test_a_checkpoint_cut_short_is_skipped(tmp_path):
    from training.run_dir import last_checkpoint

    out = tmp_path / "run"
    train(compose(quick(f"output_dir={out}", "method.save_steps=1", "method.save_total_limit=5")))
    (out / "checkpoints" / "checkpoint-3" / "trainer_state.json").write_text("")  # the disk filled up
    assert last_checkpoint(out / "checkpoints").name == "checkpoint-2"


def test_a_folder_in_use_by_a_running_job_is_never_touched(tmp_path):
    from training.run_dir import lock_run_folder

    out = tmp_path / "run"
    train(compose(quick(f"output_dir={out}")))
    before = sorted(p.name for p in out.iterdir())
    holder = lock_run_folder(out)  # as the running job holds it
    try:
        for flag in ("overwrite=true", "resume=true"):
            with pytest.raises(KosovError, match="in use by a running job") as error:
                train(compose(quick(f"output_dir={out}", flag)))
            assert f"pid {os.getpid()}" in str(error.value)
        assert sorted(p.name for p in out.iterdir()) == before
    finally:
        holder.close()
    train(compose(quick(f"output_dir={out}", "overwrite=true")))  # free again once the job ends


def write_rows(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


GOOD = {"messages": [{"role": "user", "content": "한국의 수도는?"}, {"role": "assistant", "content": "서울입니다."}]}


def test_a_malformed_row_stops_the_cli_with_file_and_line(tmp_path):
    data = write_rows(tmp_path / "train.jsonl", [GOOD] * 5)
    with data.open("a", encoding="utf-8") as f:
        f.write('{"messages": [{"role": "user", "content": "끝나지 않은 줄"}\n')
    done = kosov("train", *quick(f"output_dir={tmp_path / 'run'}", f"data.train_files=[{data}]"))
    assert done.returncode == 2
    assert f"{data}:6" in done.stderr and "malformed JSON" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run" / "adapter").exists()


@pytest.mark.parametrize("level, shown", [("verbose", "KOSOV_LOG_LEVEL=verbose is not a log level"),
                                          ("10", "ERROR kosov")])
def test_a_mistyped_log_level_is_named_and_does_not_stop_the_command(tmp_path, level, shown):
    """KOSOV_LOG_LEVEL=verbose (or a number) used to make every kosov command fail with "Unknown level"."""
    done = kosov("train", "experiment=no-such-recipe", cwd=tmp_path, env={"KOSOV_LOG_LEVEL": level})
    assert done.returncode == 2 and "no-such-recipe" in done.stderr and "Unknown level" not in done.stderr
    assert shown in done.stderr


def test_overlong_rows_fail_by_line_or_are_skipped_and_counted(tmp_path):
    long_answer = "가나다라마바사 " * 300
    data = write_rows(tmp_path / "train.jsonl", [GOOD] * 6 + [
        {"messages": [{"role": "user", "content": "길게 써 줘"}, {"role": "assistant", "content": long_answer}]}])
    cfg = compose(quick(f"output_dir={tmp_path / 'a'}", f"data.train_files=[{data}]", "method.sft.max_length=256"))
    with pytest.raises(KosovError, match=rf"{data}:7: the row renders to \d+ tokens, more than"):
        train(cfg)
    result = train(compose(quick(f"output_dir={tmp_path / 'b'}", f"data.train_files=[{data}]",
                                 "method.sft.max_length=256", "data.on_overlong=skip", "data.on_bad_row=skip")))
    data_summary = result.metrics["data"]
    assert data_summary["skipped"] == {"longer than max_length": 1}
    # the counts are of the rows that trained or were held out: the skipped one was counted among them too
    assert data_summary["train_rows"] + data_summary["eval_rows"] == 6
    assert sum(data_summary["licenses"].values()) == data_summary["train_rows"]


def test_secrets_reach_no_file_of_the_run_folder(tmp_path, monkeypatch):
    hf, wb = "hf_kosovTestSecret1234567890abcdef", "0123456789abcdef0123456789abcdefkosovwb"
    monkeypatch.setenv("HF_TOKEN", hf)
    monkeypatch.setenv("WANDB_API_KEY", wb)
    out = tmp_path / "run"
    train(compose(quick(f"output_dir={out}", "tracking=wandb", "tracking.mode=offline")))
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) > 20 and any("wandb" in p.parts for p in files)
    for path in files:
        data = path.read_bytes()
        assert hf.encode() not in data and wb.encode() not in data, path


def test_credentials_inside_urls_are_redacted_in_saved_configs():
    """A judge or teacher behind a proxy is often given as https://user:key@host or ...?api_key=...: not a key the
    environment holds, so it reached config.yaml, the card and the upload."""
    from training.redaction import redact

    saved = redact({"judge": {"base_url": "https://kosov:sk-proj-ABCDEF1234567890@llm-proxy.example/v1"},
                    "teacher": {"base_url": "http://10.0.0.5:8000/v1?api_key=sk-live-XYZ123&model=qwen"},
                    "model": {"name_or_path": "Qwen/Qwen3-8B"}, "data": {"hub_id": "hf://datasets/kosov/ko@main"}})
    assert saved["judge"]["base_url"] == "https://***@llm-proxy.example/v1"
    assert saved["teacher"]["base_url"] == "http://10.0.0.5:8000/v1?api_key=***&model=qwen"
    assert saved["model"]["name_or_path"] == "Qwen/Qwen3-8B" and saved["data"]["hub_id"] == "hf://datasets/kosov/ko@main"
    # a token alone, a password holding / or @: they went through (or left half the password)
    for url in ("https://sk-live-0123456789abcdef@llm-proxy/v1", "https://kosov:Zm9v/YmFy+c2VjcmV0@judge/v1",
                "https://bob:p@ssw0rd-secret@host:8000/v1"):
        host = url.rsplit("@", 1)[1]
        assert redact({"base_url": url})["base_url"] == f"https://***@{host}", url


def test_a_log_line_naming_a_url_with_credentials_is_redacted_in_train_log(tmp_path):
    """A teacher or judge error names its base_url: train.log (and the terminal wandb captures) got the key."""
    import logging

    from training.run_dir import RunDir, add_file_logging

    run = RunDir(tmp_path)
    handler = add_file_logging(run)
    try:
        logging.getLogger("kosov.test").warning("the judge at %s did not answer", "https://me:sk-judge-0123456789@j/v1")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    text = (tmp_path / "train.log").read_text()
    assert "the judge at https://***@j/v1 did not answer" in text and "sk-judge" not in text


def test_a_failed_job_closes_its_wandb_run_and_the_next_job_in_the_process_gets_its_own(tmp_path, monkeypatch):
    """A sweep (kosov train -m) runs its jobs in one process: a job that fails must not leave its wandb run open
    for the next job to log into."""
    import wandb
    from transformers import TrainerCallback

    from tests.training.test_preemption import trainers_warned_by

    def job(name, *extra):
        return compose(quick(f"output_dir={tmp_path / name}", "tracking=wandb", "tracking.mode=offline", *extra))

    class FailsAtStepOne(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            raise RuntimeError("out of memory (as a test)")

    trainers_warned_by(monkeypatch, FailsAtStepOne())
    with pytest.raises(RuntimeError, match="as a test"):  # fails at the first step, after wandb started
        train(job("failed"))
    assert wandb.run is None
    trainers_warned_by(monkeypatch, None)
    train(job("next"))
    ids = [json.loads((tmp_path / name / "wandb_run.json").read_text())["id"] for name in ("failed", "next")]
    assert ids[0] != ids[1]


def test_wandb_goes_offline_by_itself_without_a_key(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = compose(["tracking=wandb"])
    assert wandb_mode(cfg.tracking) == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode(cfg.tracking) == "online"
    assert wandb_mode(compose(["tracking=wandb", "tracking.mode=offline"]).tracking) == "offline"


def test_tensorboard_gets_metrics_and_the_recipe(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    train(compose(quick(f"output_dir={out}", "tracking=tensorboard")))
    tags = {"scalars": set(), "tensors": set()}
    for events in (out / "tensorboard").rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events.parent))
        acc.Reload()
        tags["scalars"] |= set(acc.Tags()["scalars"])
        tags["tensors"] |= set(acc.Tags()["tensors"])
    assert "train/loss" in tags["scalars"]
    assert any(t.startswith("kosov/config") for t in tags["tensors"])


def test_a_sweep_writes_one_run_folder_per_job(tmp_path):
    done = kosov("train", "-m", *quick("peft.r=4,8"), cwd=tmp_path, timeout=400)
    assert done.returncode == 0, done.stderr
    configs = sorted((tmp_path / "outputs" / "smoke-sft").glob("multirun_*/*/config.yaml"))
    assert len(configs) == 2
    ranks = sorted(int(line.split(":")[1]) for c in configs for line in c.read_text().splitlines()
                   if line.strip().startswith("r:"))
    assert ranks == [4, 8]
    assert all((c.parent / "adapter" / "adapter_model.safetensors").is_file() for c in configs)


def test_every_row_skipped_names_the_reasons_it_was(tmp_path):
    quoting = {"messages": [GOOD["messages"][0], {"role": "assistant", "content": "서울<|im_end|>입니다."}]}
    data = write_rows(tmp_path / "rows.jsonl", [quoting] * 6)
    with pytest.raises(KosovError, match=r"every training row was skipped \(special token in text: \d+") as error:
        train(compose(quick(f"output_dir={tmp_path / 'run'}", f"data.train_files=[{data}]", "data.on_bad_row=skip")))
    assert "max_length" not in str(error.value).split("Fix")[0]


def test_a_failed_overwrite_puts_the_earlier_run_back_without_what_the_failed_one_wrote(tmp_path):
    from training.run_dir import prepare_run_dir

    out = tmp_path / "run"
    (out / "adapter").mkdir(parents=True)
    (out / "adapter" / "adapter_model.safetensors").write_bytes(b"the earlier adapter")
    run = prepare_run_dir(out, overwrite=True, resume=False)
    (out / "wandb").mkdir()  # the failed run's tracker folder, which the earlier run did not have
    run.restore_replaced()
    run.release()
    assert sorted(p.name for p in out.iterdir() if p.name != ".kosov.lock") == ["adapter"]
    assert (out / "adapter" / "adapter_model.safetensors").read_bytes() == b"the earlier adapter"


def test_a_chained_run_holds_its_folder_before_its_sft_stage_trains(tmp_path):
    from training.run_dir import lock_run_folder

    out = tmp_path / "run"
    holder = lock_run_folder(out)  # a running chained job (in its GRPO part: its sft/ folder is free)
    try:
        with pytest.raises(KosovError, match="in use by a running job"):
            train(compose(["experiment=smoke-sft-grpo", f"output_dir={out}", "overwrite=true"]))
        assert not (out / "sft").exists()  # the stage was never (re)trained
    finally:
        holder.close()
