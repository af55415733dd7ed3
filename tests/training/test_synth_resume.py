"""`kosov synth` after a kill and across changes: the teacher cache a killed job left comes back to the next, a
running job's folder is locked, and a request's seed follows its content, so a changed input or gate re-asks (and
re-pays) no other row; inputs reach the teacher NFC, and rows name the teacher, not this machine's paths."""

from __future__ import annotations

import json

import pytest

from data_tools.generators.math_ko import generate
from tests.training.synth_helpers import HTTP, PROMPTS, lenient, write_prompts
from training.errors import KosovError
from training.recipes import compose
from training.synth import synth


def dataset_copy(out, to):
    """A staging folder as a job killed before its swap left it: the dataset's files (not the cache)."""
    import shutil

    shutil.copytree(out, to, ignore=shutil.ignore_patterns("teacher_cache"))
    return to


@lenient
def test_a_job_killed_before_its_swap_leaves_the_teacher_cache_to_the_next(hosted, tmp_path, caplog):
    """The cache was moved into .out.staging-* before the swap fsynced every file: a kill there left it in the
    hidden staging folder, the next job paid for every row again, and staging folders piled up."""
    prompts = write_prompts(tmp_path / "prompts.jsonl", [PROMPTS[0], PROMPTS[1], PROMPTS[3]])
    out = tmp_path / "out"
    overrides = [*HTTP, f"synth.inputs=[{prompts}]", "synth.n=3", f"synth.teacher.base_url={hosted.url}",
                 f"output_dir={out}"]
    synth(compose(overrides))
    sent = len(hosted.bodies)
    # killed in the gap: the cache in the staging folder, the earlier dataset still in place
    killed = dataset_copy(out, tmp_path / ".out.staging-0123abcd")
    (out / "teacher_cache").rename(killed / "teacher_cache")
    dataset_copy(out, tmp_path / ".out.staging-89abcdef")  # one killed while writing, earlier
    with caplog.at_level("WARNING"):
        again = synth(compose([*overrides, "overwrite=true"]))
    assert len(hosted.bodies) == sent and again.files == {"train.jsonl": 3}  # every answer from the cache
    assert (out / "teacher_cache").is_dir() and "put the teacher cache back" in caplog.text
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder, no lock left
    # killed between its two renames: the earlier dataset aside, the new one and the cache in the staging folder
    killed = dataset_copy(out, tmp_path / ".out.staging-feedf00d")
    (out / "teacher_cache").rename(killed / "teacher_cache")
    out.rename(tmp_path / ".out.replaced-00c0ffee")
    with pytest.raises(KosovError, match="already holds a dataset"):  # the earlier dataset is back: not replaced
        synth(compose(overrides))
    assert (out / "train.jsonl").is_file() and (out / "teacher_cache").is_dir()
    synth(compose([*overrides, "overwrite=true"]))
    assert len(hosted.bodies) == sent and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_running_jobs_staging_folder_is_left_alone(tmp_path):
    """A job holds the output folder's lock until its dataset is in place: another job writing the same folder is
    refused, and never removes the staging folder the running one writes."""
    from training.run_dir import hold_lock

    out, staging = tmp_path / "out", tmp_path / ".out.staging-0123abcd"
    (staging / "teacher_cache").mkdir(parents=True)
    running = hold_lock(tmp_path / ".out.kosov.lock", lambda holder: AssertionError(holder), "")
    try:
        with pytest.raises(KosovError, match="another kosov job is writing") as error:
            synth(compose(["experiment=synth-math", "synth.n=10", f"output_dir={out}"]))
        assert "pid" in str(error.value) and (staging / "teacher_cache").is_dir() and not out.exists()
    finally:
        running.close()
    synth(compose(["experiment=synth-math", "synth.n=10", f"output_dir={out}"]))
    assert not staging.exists() and (out / "teacher_cache").is_dir()  # a killed job's: its cache taken back


@lenient
def test_the_cache_joins_the_staging_folder_only_once_every_file_is_on_disk(hosted, tmp_path, monkeypatch):
    """Between moving the cache into the staging folder and the swap, only renames: no file is fsynced then (a
    kill in that gap strands the cache until the next job takes it back)."""
    import os

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to name an fsynced file")
    real, late = os.fsync, []

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        if os.path.isfile(path) and any(tmp_path.glob(".out.staging-*/teacher_cache")):
            late.append(path)
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    prompts = write_prompts(tmp_path / "prompts.jsonl", PROMPTS[:2])
    synth(compose([*HTTP, f"synth.inputs=[{prompts}]", "synth.n=2", f"synth.teacher.base_url={hosted.url}",
                   f"output_dir={tmp_path / 'out'}"]))
    assert (tmp_path / "out" / "teacher_cache").is_dir() and late == []


@lenient
def test_a_prompt_removed_upstream_re_asks_no_other_row(hosted, tmp_path):
    """Seeds were seed + the row's place (distill) and seed + its place in a 32-row batch (judge): one row fewer
    upstream re-paid nearly every request. Now a request's seed follows its content, and a greedy one (the judge)
    is cached without its seed."""
    prompts = [PROMPTS[0], PROMPTS[1], PROMPTS[3], "부산까지 기차로 얼마나 걸리나요?"]
    common = [*HTTP, "synth.n=4", "+synth.gates.judge={min_score: 0.5}", f"synth.teacher.base_url={hosted.url}",
              f"output_dir={tmp_path / 'out'}", "overwrite=true"]
    first = synth(compose([*common, f"synth.inputs=[{write_prompts(tmp_path / 'all.jsonl', prompts)}]"]))
    assert first.files == {"train.jsonl": 4} and len(hosted.bodies) == 8  # 4 answers, 4 ratings
    fewer = synth(compose([*common, f"synth.inputs=[{write_prompts(tmp_path / 'fewer.jsonl', prompts[1:])}]"]))
    assert fewer.files == {"train.jsonl": 3} and len(hosted.bodies) == 8  # nothing asked again


@lenient
def test_decontamination_runs_before_the_judge_pays_for_a_row(hosted, tmp_path):
    leaked = generate(1, seed=42)[0].question
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"question": leaked, "choices": ["1", "2"], "answer": 0}, ensure_ascii=False) + "\n",
                     encoding="utf-8")
    result = synth(compose(["experiment=synth-math", "synth.n=20", f"synth.decontaminate_with=[{bench}]",
                            "+synth.gates.judge={min_score: 0.5}", "synth.teacher.backend=http",
                            f"synth.teacher.base_url={hosted.url}", "synth.teacher.model=gpt-x",
                            "synth.teacher.max_retries=0", f"output_dir={tmp_path / 'out'}"]))
    gates = [r["gate"] for r in result.gate_report]
    assert gates.index("decontaminate") < gates.index("judge") == len(gates) - 1
    judge = result.gate_report[-1]
    decon = next(r for r in result.gate_report if r["gate"] == "decontaminate")
    assert decon["out"] == decon["in"] - 1 and judge["in"] == decon["out"] == len(hosted.bodies)


@lenient
def test_inputs_reach_the_teacher_nfc_and_translate_takes_the_token_limit(hosted, tmp_path):
    """A file saved on macOS holds Korean as decomposed jamo (NFD): only chat rows were normalised before the
    teacher saw them. translate asked 2048 tokens whatever synth.teacher.max_new_tokens said."""
    import unicodedata

    nfd = [unicodedata.normalize("NFD", p) for p in (PROMPTS[0], PROMPTS[1], PROMPTS[3])]
    lines = tmp_path / "prompts.txt"
    lines.write_text(nfd[0] + "\n", encoding="utf-8")
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"prompt": nfd[1]}, ensure_ascii=False) + "\n"
                    + json.dumps({"instruction": nfd[2], "input": "", "output": "답"}, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    synth(compose([*HTTP, f"synth.inputs=[{lines},{rows}]", "synth.n=3", f"synth.teacher.base_url={hosted.url}",
                   f"output_dir={tmp_path / 'out'}"]))
    asked = [b["messages"][-1]["content"] for b in hosted.bodies]
    assert sorted(asked) == sorted([PROMPTS[0], PROMPTS[1], PROMPTS[3]])
    english = tmp_path / "english.txt"
    english.write_text("What is the capital of Korea?\n", encoding="utf-8")
    sent = len(hosted.bodies)
    synth(compose([*HTTP, "synth.generator=translate", f"synth.inputs=[{english}]", "synth.n=1",
                   "synth.teacher.max_new_tokens=300", f"synth.teacher.base_url={hosted.url}",
                   f"output_dir={tmp_path / 'tr'}"]))
    assert {b["max_tokens"] for b in hosted.bodies[sent:]} == {300}  # the translation and then its answer


@lenient
def test_rows_name_the_teacher_and_the_source_not_this_machines_paths(hosted, tmp_path, monkeypatch):
    import data_tools.teachers as teachers
    from training.synth import build_teacher

    prompts = write_prompts(tmp_path / "prompts.jsonl", PROMPTS[:2])
    served = tmp_path / "models" / "gpt-x"  # vllm serve /path/to/model serves it by that path
    result = synth(compose([*HTTP, f"synth.inputs=[{prompts}]", "synth.n=2", f"synth.teacher.model={served}",
                            f"synth.teacher.base_url={hosted.url}", f"output_dir={tmp_path / 'out'}"]))
    text = (result.out_dir / "train.jsonl").read_text(encoding="utf-8")
    assert {json.loads(line)["meta"]["teacher_model"] for line in text.splitlines()} == {"gpt-x"}
    assert str(tmp_path) not in text
    # vLLM loads tiny-ko from the folder it is built in: rows name tiny-ko
    monkeypatch.setattr(teachers, "VLLMTeacher", lambda source, **kw: type("Stub", (), {"name": source})())
    cfg = compose(["experiment=synth-distill", "synth.teacher.backend=vllm", f"output_dir={tmp_path / 'v'}"])
    assert build_teacher(cfg, tmp_path / "v").name == "tiny-ko"
    # the math generator: synth.source and synth.license
    math = synth(compose(["experiment=synth-math", "synth.n=10", "synth.source=org/ko-math",
                          "synth.license=CC-BY-4.0", f"output_dir={tmp_path / 'math'}"]))
    metas = [json.loads(line)["meta"] for name in math.files for line in
             (math.out_dir / name).read_text(encoding="utf-8").splitlines()]
    assert {(m["source"], m["license"]) for m in metas} == {("org/ko-math", "CC-BY-4.0")}
