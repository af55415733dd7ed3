"""SFT rows rendered once into the run folder (training/rendered_store.py): the same ids as rendering in memory,
read memory-mapped, reused by a later start only when nothing they depend on changed, never left half-written."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import quick
from training.errors import KosovError
from training.recipes import compose
from training.rendered_store import RECORD
from training.sft_data import build_sft_data


def rows(*answers: str) -> str:
    return "".join(json.dumps({"messages": [{"role": "user", "content": f"질문 {i}"},
                                            {"role": "assistant", "content": answer}]}, ensure_ascii=False) + "\n"
                   for i, answer in enumerate(answers))


@pytest.fixture
def counted(monkeypatch):
    """How many conversations were rendered."""
    import training.sft_data as sft_data

    calls = []
    real = sft_data.render_conversation

    def render(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(sft_data, "render_conversation", render)
    return calls


def test_the_rendered_folder_holds_the_ids_rendering_in_memory_gives_read_from_disk(tmp_path, tiny_tokenizer):
    cfg = compose(quick())  # the seed data, with an eval split
    in_memory = build_sft_data(cfg, tiny_tokenizer, tiny_tokenizer.eos_token_id)
    on_disk = build_sft_data(cfg, tiny_tokenizer, tiny_tokenizer.eos_token_id, tmp_path / "rendered")
    assert on_disk.summary == in_memory.summary and on_disk.summary["eval_sequences"] > 0
    for part in ("train", "eval"):
        memory, disk = getattr(in_memory, part), getattr(on_disk, part)
        assert disk["input_ids"] == memory["input_ids"] and disk["completion_mask"] == memory["completion_mask"]
        # memory-mapped from the folder: a process holds no copy of its own (TRL's label and packing copies are
        # cache files beside it)
        assert [f["filename"] for f in disk.cache_files] == [str(tmp_path / "rendered" / f"{part}.arrow")]


def test_a_later_start_reuses_the_rendered_rows_until_a_row_the_template_or_a_setting_changes(
        tmp_path, tiny_tokenizer, counted, caplog):
    from training.tiny_ko import load_tiny_tokenizer

    data, folder = tmp_path / "chat.jsonl", tmp_path / "run" / "rendered"
    data.write_text(rows("하나", "둘", "셋", "넷"), encoding="utf-8")
    overrides = quick(f"data.train_files=[{data}]", "data.eval_ratio=0")
    first = build_sft_data(compose(overrides), tiny_tokenizer, tiny_tokenizer.eos_token_id, folder)
    assert len(counted) == 4
    (folder / "cache-0123.arrow").write_bytes(b"")  # TRL's, cut short by a crash (datasets does not fsync them)
    with caplog.at_level(logging.INFO, logger="training.sft_data"):
        again = build_sft_data(compose(overrides), tiny_tokenizer, tiny_tokenizer.eos_token_id, folder)
    assert len(counted) == 4 and "reusing" in caplog.text  # a resumed run does not render again
    assert not (folder / "cache-0123.arrow").exists()  # TRL makes its caches again
    assert again.summary == first.summary and again.train["input_ids"] == first.train["input_ids"]

    data.write_text(rows("하나", "둘", "셋", "다섯"), encoding="utf-8")  # an answer changed
    changed = build_sft_data(compose(overrides), tiny_tokenizer, tiny_tokenizer.eos_token_id, folder)
    assert len(counted) == 8 and changed.train["input_ids"][3] != first.train["input_ids"][3]

    templated = load_tiny_tokenizer()
    templated.chat_template = templated.chat_template.replace("<|im_start|>", "<|im_start|> ")
    build_sft_data(compose(overrides), templated, templated.eos_token_id, folder)
    assert len(counted) == 12
    build_sft_data(compose([*overrides, "method.sft.turns=last"]), templated, templated.eos_token_id, folder)
    assert len(counted) == 16
    assert sorted(p.name for p in folder.parent.iterdir()) == ["rendered"]  # nothing left beside it


def test_a_start_that_fails_while_rendering_leaves_the_earlier_set_whole(tmp_path, tiny_tokenizer, counted):
    data, folder = tmp_path / "chat.jsonl", tmp_path / "run" / "rendered"
    data.write_text(rows("하나", "둘", "셋"), encoding="utf-8")
    overrides = quick(f"data.train_files=[{data}]", "data.eval_ratio=0")
    first = build_sft_data(compose(overrides), tiny_tokenizer, tiny_tokenizer.eos_token_id, folder)
    record = (folder / RECORD).read_text(encoding="utf-8")
    data.write_text(rows("하나", "둘", "셋", "넷") + rows("<|im_end|> 다섯"), encoding="utf-8")  # a bad row, last
    with pytest.raises(KosovError, match=rf"{data}:5: .*control token"):
        build_sft_data(compose(overrides), tiny_tokenizer, tiny_tokenizer.eos_token_id, folder)
    assert (folder / RECORD).read_text(encoding="utf-8") == record  # the earlier set, under its own key
    data.write_text(rows("하나", "둘", "셋"), encoding="utf-8")
    rendered = len(counted)
    back = build_sft_data(compose(overrides), tiny_tokenizer, tiny_tokenizer.eos_token_id, folder)
    assert len(counted) == rendered and back.train["input_ids"] == first.train["input_ids"]
    assert sorted(p.name for p in folder.parent.iterdir()) == ["rendered"]  # the failed start's staging is gone


def test_a_finished_run_keeps_no_rendered_set(smoke_run):
    assert not [p.name for p in smoke_run.run_dir.iterdir() if "rendered" in p.name]


def test_rendering_in_worker_processes_gives_the_same_ids_and_the_first_bad_row(tmp_path, tiny_tokenizer,
                                                                               caplog):
    """A large set renders in worker processes (data.num_proc, by itself from 20,000 rows): the same sequences in
    the same order, the same counts, and a bad row is still named by its file and line, the first one first."""
    serial = build_sft_data(compose(quick("data.max_rows=null", "data.num_proc=1")), tiny_tokenizer,
                            tiny_tokenizer.eos_token_id)
    with caplog.at_level(logging.INFO, logger="training.sft_data"):
        parallel = build_sft_data(compose(quick("data.max_rows=null", "data.num_proc=2")), tiny_tokenizer,
                                  tiny_tokenizer.eos_token_id)
    assert "Rendering train rows: 326 rows in 2 processes" in caplog.text
    assert parallel.summary == serial.summary
    for part in ("train", "eval"):
        assert getattr(parallel, part)["input_ids"] == getattr(serial, part)["input_ids"]
        assert getattr(parallel, part)["completion_mask"] == getattr(serial, part)["completion_mask"]

    data = tmp_path / "chat.jsonl"
    data.write_text(rows(*[f"답 {i}" for i in range(30)]) + rows("<|im_end|> 하나") + rows("<|im_end|> 둘"),
                    encoding="utf-8")
    overrides = quick(f"data.train_files=[{data}]", "data.max_rows=null", "data.eval_ratio=0", "data.num_proc=2")
    with pytest.raises(KosovError, match=rf"{data}:31: .*control token") as error:
        build_sft_data(compose(overrides), tiny_tokenizer, tiny_tokenizer.eos_token_id)
    assert error.value.where == f"{data}:31" and "data.on_bad_row=skip" in error.value.fix
    skipped = build_sft_data(compose([*overrides, "data.on_bad_row=skip"]), tiny_tokenizer,
                             tiny_tokenizer.eos_token_id)
    assert skipped.summary["skipped"] == {"special token in text": 2} and skipped.summary["train_rows"] == 30


def test_a_kosov_error_crosses_processes_whole():
    import pickle

    error = pickle.loads(pickle.dumps(KosovError("bad row", where="a.jsonl:3", fix="remove it")))
    assert (error.what, error.where, error.fix, str(error)) == ("bad row", "a.jsonl:3", "remove it",
                                                                 "a.jsonl:3: bad row\nFix: remove it")


def test_the_other_processes_wait_for_the_main_ones_outcome_and_give_up_when_it_goes_silent(tmp_path, monkeypatch):
    import training.rendered_store as store

    marker, beat, folder = tmp_path / ".rendered-x.json", tmp_path / ".rendered-x.beat", tmp_path / "rendered"
    with pytest.raises(KosovError, match="no sign of rendering.*cannot see the run folder") as error:
        store.wait_for(marker, beat, f"rendering the data into {folder}", silent_s=0.3)  # an output_dir this node does not share
    assert "filesystem every node shares" in error.value.fix
    beat.write_text("7")
    with pytest.raises(KosovError, match="stopped rendering.*killed, ran out of memory, or its disk is full"):
        store.wait_for(marker, beat, f"rendering the data into {folder}", silent_s=0.3)  # beats that stopped: the main process died
    monkeypatch.setattr(store, "BEAT_S", 0.05)
    with store._Heartbeat(beat):  # a live main process keeps a slow rendering going past silent_s
        marker.write_text(json.dumps({"result": {"train_rows": 3}}))
        assert store.wait_for(marker, beat, f"rendering the data into {folder}", silent_s=0.3) == {"result": {"train_rows": 3}}
        marker.unlink()
        first = beat.read_text()
        time.sleep(0.3)
        assert beat.read_text() != first
    assert not beat.exists()


def test_a_rendered_set_that_cannot_be_deleted_does_not_fail_a_finished_run(tmp_path, monkeypatch, caplog):
    import training.rendered_store as store

    (tmp_path / "rendered").mkdir()

    def busy(path):
        raise OSError(39, "Directory not empty")  # NFS: files still mapped by a process are kept as .nfs*

    monkeypatch.setattr(store, "remove_path", busy)
    with caplog.at_level(logging.WARNING, logger="training.rendered_store"):
        store.remove(tmp_path)
    assert "could not delete" in caplog.text


def test_the_others_say_when_the_main_process_went_without_an_outcome(tmp_path):
    import training.rendered_store as store

    marker, beat = tmp_path / ".rendered-x.json", tmp_path / ".rendered-x.beat"
    beat.write_text("3")

    def gone():  # the main process's heartbeat goes, and no outcome follows (a full disk)
        time.sleep(0.2)
        beat.unlink()

    threading.Thread(target=gone).start()
    with pytest.raises(KosovError, match="without saying how it ended: its disk is full"):
        store.wait_for(marker, beat, tmp_path / "rendered", silent_s=60, grace_s=0.3)


WORKER = """
import os, signal, sys, time
from training.recipes import compose
from training.sft_data import _start_worker
from training.tiny_ko import load_tiny_tokenizer
tokenizer, parent = load_tiny_tokenizer(), os.getpid()
child = os.fork()
if child == 0:
    _start_worker(tokenizer, compose(["experiment=smoke-sft"]), tokenizer.eos_token_id, parent)
    kept = [signal.getsignal(s) == signal.SIG_IGN for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)]
    open(sys.argv[1], "w").write(f"{os.getpid()} {all(kept)}")
    time.sleep(600)
time.sleep(600)
"""


def test_a_rendering_worker_leaves_signals_to_the_main_process_and_dies_with_it(tmp_path):
    """A forked worker ran the main process's handlers (submitit's requeue on SLURM's warning, in every worker) and
    outlived a main process killed with SIGKILL, waiting on its queue for ever."""
    import os
    import signal
    import subprocess
    import sys

    report = tmp_path / "worker"
    main = subprocess.Popen([sys.executable, "-c", WORKER, str(report)])
    try:
        deadline = time.monotonic() + 120
        while not (report.is_file() and report.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        pid, ignored = report.read_text().split()
        assert ignored == "True"
    finally:
        main.send_signal(signal.SIGKILL)
        main.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists() and \
            "zombie" not in Path(f"/proc/{pid}/status").read_text():
        time.sleep(0.1)
    alive = Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()
    if alive:
        os.kill(int(pid), signal.SIGKILL)
    assert not alive


@pytest.mark.parametrize("value", [0, -2, 1000])
def test_a_number_of_rendering_processes_that_makes_no_sense_is_refused(value):
    with pytest.raises(KosovError, match=rf"data.num_proc={value} must be a number of processes from 1 to 256"):
        compose(["experiment=smoke-sft", f"data.num_proc={value}"])
