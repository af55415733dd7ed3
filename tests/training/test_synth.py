"""`kosov synth`: datasets written through the quality gates with a data card, loadable with `datasets`, every
row carrying its provenance; the LLM-driven path runs on a real teacher (tiny-ko in this process)."""

from __future__ import annotations

import json

import pytest

from data_tools.generators.math_ko import generate
from training.errors import KosovError
from training.recipes import compose
from training.synth import synth


@pytest.fixture(scope="module")
def math_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    leaked = generate(1, seed=42)[0].question  # the first problem the recipe writes, planted in an eval file
    bench = root / "bench.jsonl"
    bench.write_text(json.dumps({"question": leaked, "choices": ["1", "2"], "answer": 0}, ensure_ascii=False) + "\n",
                     encoding="utf-8")
    result = synth(compose(["experiment=synth-math", "synth.n=300", f"synth.decontaminate_with=[{bench}]",
                            f"output_dir={root / 'out'}"]))
    return result, leaked


def test_math_rows_are_split_gated_and_loadable(math_set):
    import datasets

    result, _ = math_set
    train = datasets.load_dataset("json", data_files=str(result.out_dir / "train.jsonl"), split="train")
    test = datasets.load_dataset("parquet", data_files=str(result.out_dir / "test.parquet"), split="train")
    assert len(train) + len(test) == 299 and len(test) > 0  # one row removed by decontamination
    assert {m["split"] for m in train["meta"]} == {"train"} and {m["split"] for m in test["meta"]} == {"test"}
    meta = train[0]["meta"]
    assert {"source", "generator", "teacher_model", "license", "seed"} <= meta.keys()
    assert meta["license"] == "Apache-2.0" and meta["generator"] == "data_tools.generators.math_ko"


def test_decontamination_removes_the_planted_benchmark_question(math_set):
    result, leaked = math_set
    questions = [json.loads(line)["messages"][0]["content"] for name in ("train", "test")
                 for line in (result.out_dir / f"{name}.jsonl").open(encoding="utf-8")]
    assert leaked not in questions
    decon = next(r for r in result.gate_report if r["gate"] == "decontaminate")
    assert sum(decon["removed"].values()) == 1 and "bench.jsonl" in next(iter(decon["removed"]))


def test_the_data_card_has_sources_settings_gates_and_histograms(math_set):
    result, _ = math_set
    card = (result.out_dir / "DATACARD.md").read_text(encoding="utf-8")
    assert "| kosov/math_ko | Apache-2.0 |" in card and "generator: math" in card
    assert "| decontaminate | 300 | 299 |" in card and "| exact_dedup |" in card
    for image in ("length.png", "hangul_share.png"):
        assert f"]({image})" in card and (result.out_dir / image).read_bytes()[:4] == b"\x89PNG"


def test_an_existing_dataset_is_not_overwritten(math_set):
    result, _ = math_set
    with pytest.raises(KosovError, match="already holds a dataset"):
        synth(compose(["experiment=synth-math", "synth.n=10", f"output_dir={result.out_dir}"]))


def test_distillation_runs_on_a_teacher_in_this_process(tmp_path):
    result = synth(compose(["experiment=synth-distill", "synth.n=12", "synth.gates={}",
                            "synth.decontaminate_with=[]", "synth.teacher.max_new_tokens=256",
                            f"output_dir={tmp_path / 'out'}"]))
    rows = [json.loads(line) for line in (result.out_dir / "train.jsonl").open(encoding="utf-8")]
    assert rows, "tiny-ko ends some answers within 256 tokens"
    assert all(r["meta"]["teacher_model"] == "tiny-ko" and r["meta"]["generator"].endswith("distill") for r in rows)
    assert all(r["messages"][0]["role"] == "user" and r["messages"][-1]["role"] == "assistant" for r in rows)


@pytest.mark.parametrize("overrides, words", [
    (["synth.generator=distill"], ["synth.teacher.backend=none", "transformers | vllm | http"]),
    (["synth.generator=self_instruct", "synth.teacher.backend=http"], ["needs synth.inputs"]),
    (["synth.generator=rewrite"], ["synth.generator", "math, self_instruct"]),
    (["+synth.gates.spellcheck={}"], ["synth.gates", "spellcheck", "near_dedup"]),
    (["synth.families=[shoping]"], ["synth.families", "shoping", "shopping, ages"]),
    (["synth.difficulties=[4]"], ["synth.difficulties", "4", "1, 2, 3"]),
])
def test_bad_synth_recipes_say_what_to_fix(tmp_path, overrides, words):
    with pytest.raises(KosovError) as error:
        synth(compose(["experiment=synth-math", f"output_dir={tmp_path / 'out'}", *overrides]))
    for word in words:
        assert word in str(error.value)


@pytest.mark.parametrize("name, content, line, words", [
    ("bad.jsonl", '{"prompt": "서울은?"}\n{"prompt": "부산은?"\n'.encode(), 2, ["malformed JSON"]),
    ("prompts.txt", "서울은 어때요?\n부산은 어때요?\n".encode("cp949"), 1, ["not UTF-8", "iconv"]),
    ("system.jsonl", '{"messages": [{"role": "system", "content": "친절하게"}]}\n'.encode(), 1,
     ["no instruction", "user turn"]),
    ("list.jsonl", '{"prompt": "서울은?"}\n["서울은?"]\n'.encode(), 2, ["no instruction"]),
])
def test_a_bad_synth_input_names_its_file_and_line(tmp_path, name, content, line, words):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(KosovError) as error:
        synth(compose(["experiment=synth-distill", f"synth.inputs=[{path}]", f"output_dir={tmp_path / 'out'}"]))
    assert f"{path}:{line}" in str(error.value) and all(word in str(error.value) for word in words)
    assert not (tmp_path / "out" / "train.jsonl").exists()


def test_the_judge_gate_runs_on_the_recipes_teacher(tmp_path, monkeypatch):
    """tiny-ko is a poor judge: it rarely answers with a 1-10 score, so its rows fall to 'no judge score'. Every row
    reaching the gate is rated by the recipe's teacher, and what the gate removes follows those ratings."""
    from data_tools.gates import judge as judge_gate

    real, scored = judge_gate.teacher_score_fn, []

    def recorded(teacher, **kwargs):  # the real teacher's ratings, kept for the checks below
        score = real(teacher, **kwargs)
        return lambda rows: scored.extend(score(rows)) or scored[-len(rows):]

    monkeypatch.setattr(judge_gate, "teacher_score_fn", recorded)
    cfg = compose(["experiment=synth-math", "synth.n=6", "synth.teacher.backend=transformers",
                   "+synth.gates.judge={min_score: 0.1}", f"output_dir={tmp_path / 'out'}"])
    try:
        report = synth(cfg).gate_report
    except KosovError as error:  # every row removed: the report is in the message
        assert "'gate': 'judge'" in str(error)
        report = None
    unscored = sum(s is None for s in scored)
    assert len(scored) == 6 and all(s is None or 0.1 <= s <= 1.0 for s in scored)
    if report is None:
        assert unscored == 6
        return
    judge = next(r for r in report if r["gate"] == "judge")
    assert judge["in"] == 6 and judge["out"] == 6 - unscored  # min_score 0.1: only unscored rows go
    assert judge["removed"].get("no judge score", 0) == unscored
