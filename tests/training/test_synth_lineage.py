"""The lineage of what `kosov synth` writes: a row made from an input row keeps that row's license and names its
source, so `kosov publish` sees a non-commercial input in the release's license; inputs under a license kosov cannot
carry (or one the recipe's synth.license contradicts) stop the job naming the file; the card and provenance list the
files written and read with their rows and sha256."""

from __future__ import annotations

import itertools
import json
from collections import Counter

import pytest

from data_tools.chat_io import file_sha256
from data_tools.teachers import Generation
from training.errors import KosovError
from training.recipes import compose
from training.synth import synth

NC = {"source": "someone/alpaca-nc", "license": "cc-by-nc-4.0"}
BASE = ["experiment=synth-distill", "synth.gates={}", "synth.decontaminate_with=[]"]


class KoreanTeacher:
    """Answers every request with a new Korean sentence; self-instruct's request with a numbered list of new Korean
    requests. Counts what it was asked."""

    name = "ko-teacher"

    def __init__(self):
        self.asked = 0
        self.counter = itertools.count()

    def generate(self, requests, *, progress=True):
        self.asked += len(requests)
        out = []
        for r in requests:
            n = next(self.counter)
            if r.messages and r.messages[-1]["content"].startswith("다음은 한국어 사용자가"):
                text = "\n".join(f"{k + 1}. 서울에서 가 볼 만한 곳을 추천해 주세요 {n}-{k}" for k in range(5))
            else:
                text = f"한국어로 쓴 새 문장입니다 {n}번째"
            out.append(Generation(text, None, "stop"))
        return out


@pytest.fixture
def teacher(monkeypatch):
    fake = KoreanTeacher()
    monkeypatch.setattr("training.synth.build_teacher", lambda cfg, out: fake)
    return fake


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def read_rows(path):
    return [json.loads(line) for line in path.open(encoding="utf-8")]


@pytest.mark.parametrize("generator", ["translate", "distill", "evol_instruct"])
def test_a_row_made_from_a_non_commercial_input_is_non_commercial_and_publish_says_so(tmp_path, teacher, generator):
    from training.data_rows import load_rows, rows_summary
    from training.model_card import derive_license, license_warnings

    nc = write_rows(tmp_path / "nc.jsonl", [{"instruction": "Explain tides.", "output": "Tides come from the moon.",
                                            "meta": NC}])
    own = tmp_path / "own.txt"
    own.write_text("한국의 사계절을 설명해 주세요.\n", encoding="utf-8")
    result = synth(compose([*BASE, f"synth.generator={generator}", f"synth.inputs=[{nc},{own}]",
                            f"output_dir={tmp_path / 'out'}"]))
    rows = {r["meta"]["input_source"]: r["meta"] for r in read_rows(result.out_dir / "train.jsonl")}
    assert rows["someone/alpaca-nc"]["license"] == "cc-by-nc-4.0"  # was Apache-2.0 (synth.license)
    assert rows["someone/alpaca-nc"]["input_license"] == "cc-by-nc-4.0"
    # an input that records no license: the recipe's synth.license, and the card says it was not recorded
    assert rows["own.txt"]["license"] == "Apache-2.0" and rows["own.txt"]["input_license"] is None
    card = (result.out_dir / "DATACARD.md").read_text(encoding="utf-8")
    assert f"| nc.jsonl | 1 | {file_sha256(nc)} | cc-by-nc-4.0: 1 | someone/alpaca-nc: 1 |" in card
    assert f"| own.txt | 1 | {file_sha256(own)} | not recorded: 1 | not recorded: 1 |" in card
    assert "Input license not recorded: 1 input rows" in card and "`synth.license` (Apache-2.0)" in card
    assert "| cc-by-nc-4.0 | 1 | ko-teacher | someone/alpaca-nc |" in card
    # publish reads the training run's rows: the non-commercial license reaches the release
    cfg = compose(["experiment=smoke-sft", f"data.train_files=[{result.out_dir / 'train.jsonl'}]",
                   "data.eval_files=[]"])
    train, _ = load_rows(cfg)
    licenses = rows_summary(cfg, train, None, train.rows, [], Counter())["licenses"]
    assert derive_license("Qwen/Qwen3-8B", licenses, None)[0] == "cc-by-nc-4.0"
    assert any("non-commercial" in w for w in license_warnings("Qwen/Qwen3-8B", licenses, None))


def test_an_explicit_synth_license_over_a_commercial_use_input_is_the_rows_license(tmp_path, teacher):
    """A teacher whose terms make its output non-commercial: the recipe says so over Apache-2.0 inputs."""
    rows = write_rows(tmp_path / "apache.jsonl", [{"prompt": "서울은 어때요?", "meta": {"license": "Apache-2.0",
                                                                                     "source": "kosov/prompts"}}])
    result = synth(compose([*BASE, f"synth.inputs=[{rows}]", "synth.license=cc-by-nc-4.0",
                            f"output_dir={tmp_path / 'out'}"]))
    (meta,) = [r["meta"] for r in read_rows(result.out_dir / "train.jsonl")]
    assert meta["license"] == "cc-by-nc-4.0" and meta["input_license"] == "Apache-2.0"


@pytest.mark.parametrize("license_, overrides, words", [
    ("cc-by-nd-4.0", [], ["No-Derivatives", "cc-by-nd-4.0"]),
    ("gpl-3.0", [], ["copyleft", "gpl-3.0"]),
    ("cc-by-nc-4.0", ["synth.license=cc-by-4.0"], ["synth.license=cc-by-4.0", "contradicts",
                                                   "synth.license=cc-by-nc-4.0"]),
    ("CC-BY-SA-4.0", ["synth.license=mit"], ["synth.license=mit", "contradicts"]),
    ("cc-by-4.0", ["synth.license=mit"], ["synth.license=mit", "contradicts"]),
    ("CC-BY-SA-4.0", [], ["names no source", "credits no one", "meta.source"]),  # was credited as "mixed.jsonl"
])
def test_an_input_license_kosov_cannot_carry_stops_the_job_naming_the_file(tmp_path, teacher, license_, overrides,
                                                                           words):
    rows = write_rows(tmp_path / "mixed.jsonl", [{"prompt": "서울은 어때요?"},  # no license: synth.license's
                                                 {"prompt": "부산은 어때요?", "meta": {"license": license_}}])
    with pytest.raises(KosovError) as error:
        synth(compose([*BASE, f"synth.inputs=[{rows}]", *overrides, f"output_dir={tmp_path / 'out'}"]))
    message = str(error.value)
    assert f"{rows}:2" in message and "input file mixed.jsonl" in message
    assert all(word in message for word in words), message
    assert teacher.asked == 0 and not (tmp_path / "out").exists()  # refused before anything was asked


def test_self_instruct_rows_carry_the_seed_tasks_license_and_refuse_mixed_ones(tmp_path, teacher):
    seeds = write_rows(tmp_path / "seeds.jsonl", [{"prompt": f"한국 요리 {k}가지를 소개해 주세요.", "meta": NC}
                                                  for k in range(4)])
    result = synth(compose([*BASE, "synth.generator=self_instruct", f"synth.inputs=[{seeds}]", "synth.n=5",
                            f"output_dir={tmp_path / 'out'}"]))
    metas = [r["meta"] for r in read_rows(result.out_dir / "train.jsonl")]
    assert metas and {(m["license"], m["input_source"]) for m in metas} == {("cc-by-nc-4.0", "someone/alpaca-nc")}
    other = write_rows(tmp_path / "other.jsonl", [{"prompt": "서울은 어때요?", "meta": {"license": "mit"}}])
    with pytest.raises(KosovError, match="different licenses") as error:
        synth(compose([*BASE, "synth.generator=self_instruct", f"synth.inputs=[{seeds},{other}]",
                       f"output_dir={tmp_path / 'mixed'}"]))
    assert "cc-by-nc-4.0" in str(error.value) and f"{other}:1" in str(error.value)


def test_the_card_and_provenance_give_each_file_its_rows_and_sha256(tmp_path):
    result = synth(compose(["experiment=synth-math", "synth.n=60", f"output_dir={tmp_path / 'out'}"]))
    out = result.out_dir
    card = (out / "DATACARD.md").read_text(encoding="utf-8")
    counts = {name: len(read_rows(out / name)) for name in ("train.jsonl", "test.jsonl")}
    assert f"(train.jsonl: {counts['train.jsonl']}, test.jsonl: {counts['test.jsonl']})" in card
    files = json.loads((out / "provenance.json").read_text(encoding="utf-8"))["data"]["files"]
    assert set(files) == {"train.jsonl", "train.parquet", "test.jsonl", "test.parquet"}
    for name, f in files.items():
        assert f == {"rows": counts[name.replace(".parquet", ".jsonl")], "sha256": file_sha256(out / name)}
        assert f"| {name} | {f['rows']} | {f['sha256']} |" in card


def test_provenance_hashes_the_input_files(tmp_path, teacher):
    prompts = write_rows(tmp_path / "prompts.jsonl", [{"prompt": "서울은 어때요?", "meta": NC}])
    result = synth(compose([*BASE, f"synth.inputs=[{prompts}]", f"output_dir={tmp_path / 'out'}"]))
    data = json.loads((result.out_dir / "provenance.json").read_text(encoding="utf-8"))["data"]
    assert data["inputs"] == [{"file": "prompts.jsonl", "rows": 1, "sha256": file_sha256(prompts),
                               "licenses": {"cc-by-nc-4.0": 1}, "sources": {"someone/alpaca-nc": 1}}]
    assert data["licenses"] == {"cc-by-nc-4.0": 1} and str(tmp_path) not in json.dumps(data)


def test_a_translation_of_cc_by_rows_credits_their_source_not_kosov(tmp_path, teacher):
    from training.data_rows import load_rows, rows_summary

    by = write_rows(tmp_path / "by.jsonl", [{"instruction": "Explain tides.", "output": "The moon.",
                                            "meta": {"source": "someone/tides-by", "license": "cc-by-4.0"}}])
    result = synth(compose([*BASE, "synth.generator=translate", f"synth.inputs=[{by}]",
                            f"output_dir={tmp_path / 'out'}"]))
    cfg = compose(["experiment=smoke-sft", f"data.train_files=[{result.out_dir / 'train.jsonl'}]",
                   "data.eval_files=[]"])
    train, _ = load_rows(cfg)
    credited = rows_summary(cfg, train, None, train.rows, [], Counter())["license_sources"]
    assert credited == {"cc-by-4.0": {"someone/tides-by": 1}}
