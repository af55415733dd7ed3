"""`kosov synth`: datasets written through the quality gates with a data card, loadable with `datasets`, every
row carrying its provenance; the LLM-driven path runs on a real teacher (tiny-ko in this process)."""

from __future__ import annotations

import json
import sys

import pytest

from data_tools.generators.math_ko import generate
from data_tools.seed_data import DATASETS
from training.errors import KosovError
from training.recipes import compose, recipes_dir
from training.synth import synth
from tests.training.synth_helpers import HTTP, PROMPTS, lenient, without_gates, write_prompts


@pytest.fixture(scope="module")
def math_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    leaked = generate(1, seed=42)[0].question  # the first problem the recipe writes, planted in an eval file
    bench = root / "bench.jsonl"
    bench.write_text(json.dumps({"question": leaked, "choices": ["1", "2"], "answer": 0}, ensure_ascii=False) + "\n",
                     encoding="utf-8")
    overrides = ["experiment=synth-math", "synth.n=300", f"synth.decontaminate_with=[{bench}]",
                 f"output_dir={root / 'out'}"]
    with pytest.MonkeyPatch.context() as mp:  # the command line provenance.json records, as `kosov synth` gets it
        mp.setattr(sys, "argv", ["/home/alice/.venv/bin/kosov", "synth", *overrides])
        result = synth(compose(overrides))
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


def test_the_data_card_names_the_benchmark_a_row_overlapped_without_this_machines_path(math_set):
    """The decontaminate gate's reason was "overlaps /home/alice/.../bench.jsonl", printed in the card's gate table
    and in provenance.json, which go out with the dataset."""
    result, _ = math_set
    root = str(result.out_dir.parent)
    for name in ("DATACARD.md", "provenance.json"):
        text = (result.out_dir / name).read_text(encoding="utf-8")
        assert "overlaps bench.jsonl" in text and root not in text, name


def test_the_recipe_and_provenance_go_out_with_the_dataset_without_this_machines_paths(math_set):
    """config.yaml held output_dir and the benchmark files' full paths, provenance.json the command line's paths and
    the host's name; the card's `hf upload ... --exclude 'teacher_cache/*'` uploads both. They still say what made
    the dataset: the recipe, the benchmark by name, the command's overrides, kosov's commit and the inputs."""
    import yaml

    result, _ = math_set
    root = str(result.out_dir.parent)
    for name in ("config.yaml", "provenance.json"):
        text = (result.out_dir / name).read_text(encoding="utf-8")
        assert root not in text and "/home/alice" not in text, name
    config = yaml.safe_load((result.out_dir / "config.yaml").read_text(encoding="utf-8"))
    assert config["output_dir"] == "out" and config["synth"]["decontaminate_with"] == ["bench.jsonl"]
    assert config["synth"]["generator"] == "math" and config["synth"]["n"] == 300
    prov = json.loads((result.out_dir / "provenance.json").read_text(encoding="utf-8"))
    assert "host" not in prov and "git_sha" in prov and prov["seed"] == 42
    assert prov["command"] == ("kosov synth experiment=synth-math synth.n=300 synth.decontaminate_with=[bench.jsonl] "
                               "output_dir=out")


@pytest.mark.parametrize("recipe", sorted(p.stem for p in (recipes_dir() / "experiment").glob("synth-*.yaml")))
def test_every_synth_recipe_drops_answers_that_are_not_korean(recipe):
    """synth-distill, meant for a teacher such as qwen3-8b, had no language gate: Qwen's Chinese and English answers
    to Korean prompts went into the training set."""
    from data_tools.gates import build_gates, run_gates
    from training.synth import _gate_spec

    cfg = compose([f"experiment={recipe}", "model=qwen3-8b"])
    answers = ["泡菜汤的做法：先把泡菜和猪肉炒一下，然后加水煮二十分钟。",
               "Fry the kimchi and pork, add water, and simmer it for twenty minutes.",
               "김치와 돼지고기를 볶은 뒤 물을 붓고 20분 동안 끓이면 됩니다."]
    rows = [{"messages": [{"role": "user", "content": "김치찌개는 어떻게 끓여요?"}, {"role": "assistant", "content": a}],
             "meta": {"source": "test", "license": "Apache-2.0"}} for a in answers]
    kept, _ = run_gates(rows, build_gates(_gate_spec(cfg)))
    assert [row["messages"][1]["content"] for row in kept] == answers[2:]


TEACHER_RECIPES = sorted(p.stem for p in (recipes_dir() / "experiment").glob("synth-*.yaml") if p.stem != "synth-math")


@pytest.mark.parametrize("recipe", TEACHER_RECIPES)
def test_every_teacher_recipe_drops_loops_refusals_and_benchmark_questions_and_scrubs_personal_data(recipe):
    """synth-magpie, whose teacher writes the requests and answers them freely, ran only nfc, hangul_share,
    foreign_script and exact_dedup: an answer stuck in a loop, a refusal, a phone number and a benchmark question the
    model had seen went into the training set."""
    from data_tools.gates import build_gates, run_gates
    from training.synth import _gate_spec

    cfg = compose([f"experiment={recipe}", "model=qwen3-8b"])
    bench = json.loads((DATASETS / "ko_mini_bench.jsonl").open(encoding="utf-8").readline())
    benchmark = next(v for k, v in bench.items() if k in ("question", "prompt", "instruction"))
    good = "김치와 돼지고기를 볶은 뒤 물을 붓고 20분 동안 끓이면 됩니다."
    answers = {"loop": "김치찌개는 맛있어요 정말 맛있어요. " * 30,
               "refusal": "죄송하지만 그 요청은 도와드릴 수 없습니다.",
               "pii": f"{good} 궁금하면 010-1234-5678로 연락 주세요.", "good": good}
    rows = [{"messages": [{"role": "user", "content": f"김치찌개는 어떻게 끓여요? ({why})"},
                          {"role": "assistant", "content": a}], "meta": {"source": "test", "license": "Apache-2.0"}}
            for why, a in answers.items()]
    rows.append({"messages": [{"role": "user", "content": benchmark}, {"role": "assistant", "content": good}],
                 "meta": {"source": "test", "license": "Apache-2.0"}})
    kept, _ = run_gates(rows, build_gates(_gate_spec(cfg)))
    assert [r["messages"][0]["content"][-5:] for r in kept] == ["(pii)", "good)"]
    assert "010-1234-5678" not in kept[0]["messages"][1]["content"]


def test_an_existing_dataset_is_not_overwritten(math_set):
    result, _ = math_set
    with pytest.raises(KosovError, match="already holds a dataset"):
        synth(compose(["experiment=synth-math", "synth.n=10", f"output_dir={result.out_dir}"]))


def test_distillation_runs_on_a_teacher_in_this_process(tmp_path):
    # no gates: tiny-ko writes noise (U+FFFD, no Korean) that the recipe's gates rightly drop
    result = synth(compose(["experiment=synth-distill", "synth.n=12", *without_gates("synth-distill"),
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


def test_an_in_process_teacher_stops_where_the_recipe_ends_a_turn(tmp_path):
    """A base checkpoint (eos <|endoftext|>) fine-tuned with model.end_of_turn_token=<|im_end|>: the teacher stops
    at <|im_end|>, as training taught it, instead of writing past its turn to max_new_tokens."""
    from data_tools.teachers import GenerationRequest
    from tests.data_tools.test_teachers import base_like
    from training.models import end_of_turn_id, load_base_model, load_tokenizer, model_source
    from training.schema import KosovConfig
    from training.synth import build_teacher

    plain = KosovConfig()
    source, _ = model_source(plain.model)
    model, tokenizer, im_end = base_like(load_base_model(plain, source, "cpu"), load_tokenizer(plain.model, source))
    model.save_pretrained(tmp_path / "base-like")
    tokenizer.save_pretrained(tmp_path / "base-like")
    cfg = compose(["experiment=synth-distill", f"model.name_or_path={tmp_path / 'base-like'}",
                   "model.end_of_turn_token='<|im_end|>'", f"output_dir={tmp_path / 'out'}"])
    teacher = build_teacher(cfg, tmp_path / "out")
    assert end_of_turn_id(cfg.model, teacher.tokenizer) == im_end and im_end in teacher.eos_ids
    assert teacher.name == "base-like"  # rows name the model, not this machine's path to it
    [g] = teacher.generate([GenerationRequest([{"role": "user", "content": "안녕?"}], max_new_tokens=40,
                                              temperature=0.0)], progress=False)
    assert g.finish_reason == "stop" and g.usage["completion_tokens"] < 40


# --- an HTTP teacher: a local stand-in for a hosted OpenAI API ------------------------------------------------

def test_an_http_job_on_a_hosted_api_skips_and_counts_a_refused_request(hosted, tmp_path, caplog):
    prompts = write_prompts(tmp_path / "prompts.jsonl")
    overrides = [*HTTP, f"synth.inputs=[{prompts}]", "synth.n=4", f"synth.teacher.base_url={hosted.url}",
                 f"output_dir={tmp_path / 'out'}"]
    with caplog.at_level("WARNING"):
        result = synth(compose(overrides))
    assert result.files == {"train.jsonl": 3}
    # chat_template_kwargs was refused once, then never sent again
    assert sum("chat_template_kwargs" in body for body in hosted.bodies) == 1
    assert caplog.text.count("does not take chat_template_kwargs") == 1
    # the refused prompt is named with its file and line, once, and counted in the data card
    assert f"{prompts}:3" in caplog.text and caplog.text.count("maximum context length") == 1
    card = (result.out_dir / "DATACARD.md").read_text(encoding="utf-8")
    assert "| teacher | 4 | 3 | teacher refused: 1 |" in card
    assert "--repo-type dataset --exclude 'teacher_cache/*'" in card  # the raw answers (PII before scrubbing)
    assert str(tmp_path) not in card  # the card is for sharing: no path of this machine
    # a rerun (overwrite=true) keeps the teacher cache: only the refused prompt is asked again
    sent = len(hosted.bodies)
    again = synth(compose([*overrides, "overwrite=true"]))
    assert again.files == {"train.jsonl": 3}
    assert {b["messages"][-1]["content"] for b in hosted.bodies[sent:]} == {PROMPTS[2]}
    assert len(list((result.out_dir / "teacher_cache").rglob("*.json"))) == 3


def test_a_wrong_api_key_stops_an_http_job_with_a_fix(hosted, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key")
    prompts = write_prompts(tmp_path / "prompts.jsonl")
    with pytest.raises(KosovError) as error:
        synth(compose([*HTTP, f"synth.inputs=[{prompts}]", "synth.n=4", f"synth.teacher.base_url={hosted.url}",
                       f"output_dir={tmp_path / 'out'}"]))
    assert "answered 401: Incorrect API key" in str(error.value) and "API key" in error.value.fix
    assert not (tmp_path / "out" / "train.jsonl").exists()


@lenient
def test_the_recipes_temperature_reaches_the_teacher(hosted, tmp_path):
    prompts = write_prompts(tmp_path / "prompts.jsonl", PROMPTS[:2])
    synth(compose([*HTTP, f"synth.inputs=[{prompts}]", "synth.n=2", "synth.teacher.temperature=0.0",
                   f"synth.teacher.base_url={hosted.url}", f"output_dir={tmp_path / 'out'}"]))
    assert {body["temperature"] for body in hosted.bodies} == {0.0}


@lenient
@pytest.mark.parametrize("name", ["alpaca.jsonl", "alpaca_data.json"])  # .json: Alpaca's own one array, indented
def test_translate_takes_alpaca_rows_and_lines_of_text(hosted, tmp_path, name):
    """An Alpaca .json array used to be read as lines of text: '[', '{', '"instruction": ...' went to the teacher."""
    alpaca = tmp_path / name
    rows = [{"instruction": "Say hello.", "input": "", "output": "Hello!"},
            {"instruction": "Add.", "input": "2 + 3", "output": "5"}]
    alpaca.write_text("".join(json.dumps(r) + "\n" for r in rows) if name.endswith(".jsonl")
                      else json.dumps(rows, indent=4), encoding="utf-8")
    lines = tmp_path / "english.txt"
    lines.write_text("What is the capital of Korea?\nName a Korean dish.\n", encoding="utf-8")
    sharegpt = tmp_path / "sharegpt.jsonl"  # ShareGPT rows too, as chat rows
    sharegpt.write_text(json.dumps({"conversations": [{"from": "human", "value": "Hi!"},
                                                      {"from": "gpt", "value": "Hello there."}]}) + "\n")
    result = synth(compose([*HTTP, "synth.generator=translate", f"synth.inputs=[{alpaca},{lines},{sharegpt}]",
                            "synth.n=5",
                            f"synth.teacher.base_url={hosted.url}", f"output_dir={tmp_path / 'out'}"]))
    rows = [json.loads(line) for line in (result.out_dir / "train.jsonl").open(encoding="utf-8")]
    assert len(rows) == 5 and all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in rows)
    assert all(r["meta"]["generator"].endswith("translate") and r["meta"]["translated_from"] == "en" for r in rows)
    translated = [b["messages"][-1]["content"] for b in hosted.bodies]
    assert any("2 + 3" in t and "Add." in t for t in translated)  # the Alpaca input went with its instruction
    assert not any(t.strip() in ("[", "{", "}", "]") or '"instruction"' in t for t in translated)


@lenient
def test_the_data_card_counts_what_the_generator_dropped_before_the_gates(hosted, tmp_path):
    """A translation that came back in English, a translation or an answer cut off at max_new_tokens: rows lost
    before the quality gates are counted in the card too, not only what the gates removed."""
    english = tmp_path / "english.txt"
    english.write_text("What is the capital of Korea?\nName a Korean dish. CUT\nSay it in ENGLISH.\n"
                       "Name a river.\n", encoding="utf-8")
    translated = synth(compose([*HTTP, "synth.generator=translate", f"synth.inputs=[{english}]", "synth.n=4",
                                f"synth.teacher.base_url={hosted.url}", f"output_dir={tmp_path / 'tr'}"]))
    card = (translated.out_dir / "DATACARD.md").read_text(encoding="utf-8")
    assert translated.files == {"train.jsonl": 2}
    assert "| translate | 4 | 2 | cut off at max_new_tokens: 1, not translated into Korean: 1 |" in card
    prompts = write_prompts(tmp_path / "prompts.jsonl", [PROMPTS[0], "김치찌개 CUT", PROMPTS[3]])
    distilled = synth(compose([*HTTP, f"synth.inputs=[{prompts}]", "synth.n=3",
                               f"synth.teacher.base_url={hosted.url}", f"output_dir={tmp_path / 'di'}"]))
    card = (distilled.out_dir / "DATACARD.md").read_text(encoding="utf-8")
    assert distilled.files == {"train.jsonl": 2} and "| teacher answers | 3 | 2 | cut off at max_new_tokens: 1 |" in card
    cut_only = write_prompts(tmp_path / "cut.jsonl", ["김치찌개 CUT"])
    with pytest.raises(KosovError, match=r"teacher answers dropped 1 of 1 \(cut off at max_new_tokens: 1\)"):
        synth(compose([*HTTP, f"synth.inputs=[{cut_only}]", "synth.n=1", f"synth.teacher.base_url={hosted.url}",
                       f"output_dir={tmp_path / 'none'}"]))


def test_translate_names_a_row_it_cannot_read(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"instruction": "Say hello.", "output": "Hello!"}) + "\n"
                    + json.dumps({"text": "Hello there"}) + "\n", encoding="utf-8")
    with pytest.raises(KosovError) as error:
        synth(compose([*HTTP, "synth.generator=translate", f"synth.inputs=[{rows}]",
                       "synth.teacher.base_url=http://127.0.0.1:9/v1", f"output_dir={tmp_path / 'out'}"]))
    assert f"{rows}:2" in str(error.value) and '"instruction"' in error.value.fix and '"messages"' in error.value.fix


# --- the output folder ---------------------------------------------------------------------------------------


def test_overwrite_replaces_the_whole_dataset_and_the_split_names_the_file(tmp_path):
    import datasets

    out = tmp_path / "out"
    first = synth(compose(["experiment=synth-math", "synth.n=60", f"output_dir={out}"]))
    assert set(first.files) == {"train.jsonl", "test.jsonl"}
    again = synth(compose(["experiment=synth-math", "synth.n=40", "synth.split=train", "overwrite=true",
                           f"output_dir={out}"]))
    assert again.files == {"train.jsonl": 40}
    assert not (out / "test.jsonl").exists() and not (out / "test.parquet").exists()
    assert {k: v.num_rows for k, v in datasets.load_dataset(str(out)).items()} == {"train": 40}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging or replaced folder left
    held_out = synth(compose(["experiment=synth-math", "synth.n=20", "synth.split=test", "overwrite=true",
                              f"output_dir={out}"]))
    assert held_out.files == {"test.jsonl": 20} and not (out / "train.jsonl").exists()
    assert {m["split"] for m in datasets.load_dataset(str(out), split="test")["meta"]} == {"test"}


@pytest.mark.parametrize("kind", ["training run", "eval run", "other files"])
def test_a_folder_that_is_not_a_dataset_is_never_replaced(tmp_path, kind):
    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)
    files = {"training run": ["config.yaml", "provenance.json", "metrics.json"],
             "eval run": ["config.yaml", "provenance.json", "report.json"], "other files": ["notes.md"]}[kind]
    if kind != "training run":
        (run / "adapter").rmdir()
    for name in files:
        (run / name).write_text("kept\n", encoding="utf-8")
    for overwrite in ("false", "true"):
        with pytest.raises(KosovError) as error:
            synth(compose(["experiment=synth-math", "synth.n=10", f"overwrite={overwrite}", f"output_dir={run}"]))
        assert ("kosov training or eval run" if kind != "other files" else "not a kosov dataset") in str(error.value)
    assert sorted(p.name for p in run.iterdir()) == sorted([*files, *(["adapter"] if kind == "training run" else [])])
    assert all((run / name).read_text(encoding="utf-8") == "kept\n" for name in files)


def test_the_judge_shares_the_generators_teacher(tmp_path, monkeypatch):
    """distill + judge with the in-process teacher: the model is loaded once, not once for each."""
    import training.models as models

    real, loads = models.load_for_inference, []

    def counting(*args, **kwargs):
        loads.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(models, "load_for_inference", counting)
    cfg = compose(["experiment=synth-distill", "synth.n=2", "synth.gates={}", "synth.decontaminate_with=[]",
                   "+synth.gates.judge={min_score: 0.0}", "synth.teacher.max_new_tokens=16",
                   f"output_dir={tmp_path / 'out'}"])
    try:
        synth(cfg)
    except KosovError as error:  # tiny-ko may write no usable row: the teacher was still built
        assert "no usable rows" in str(error) or "removed by the quality gates" in str(error)
    assert len(loads) == 1


def test_an_in_process_teacher_with_an_adapter_is_prompted_as_its_run_trained_it(custom_template_run, tmp_path):
    from data_tools.teachers import GenerationRequest
    from tests.conftest import CUSTOM_SYSTEM
    from training.synth import build_teacher

    run, _ = custom_template_run
    cfg = compose(["experiment=synth-distill", f"synth.teacher.adapter={run}", f"output_dir={tmp_path / 'd'}"])
    teacher = build_teacher(cfg, tmp_path / "d")
    prompt = teacher.render(GenerationRequest([{"role": "user", "content": "안녕하세요?"}], max_new_tokens=4))
    assert CUSTOM_SYSTEM in prompt
    assert teacher.name == f"tiny-ko+{run.name}"  # the adapter by its run's name, not this machine's path



def test_magpie_starts_an_adapters_user_turn_in_the_chat_format_its_run_trained(custom_template_run, tmp_path,
                                                                                 monkeypatch):
    from data_tools.generators import instructions
    from tests.conftest import CUSTOM_SYSTEM
    from training.synth import synth

    prefixes = []
    monkeypatch.setattr(instructions, "magpie", lambda teacher, n, **kw: prefixes.append(kw["prefix"]) or [])
    run, _ = custom_template_run
    with pytest.raises(KosovError, match="magpie generator wrote no requests"):  # none written here
        synth(compose(["experiment=synth-magpie", f"synth.teacher.adapter={run}", "synth.system=null",
                       f"output_dir={tmp_path / 'd'}"]))
    assert len(prefixes) == 1 and CUSTOM_SYSTEM in prefixes[0]


def test_a_generator_that_keeps_no_instruction_says_why_it_dropped_them(tmp_path):
    """The error said only "check synth.inputs": the drop counts the data card would show were not in it."""
    from data_tools.teachers import Generation
    from training.synth import generate_rows

    class EnglishLists:
        name = "english-lists"

        def generate(self, requests, *, progress=True):
            return [Generation("1. Write a poem.\n2. Explain tides.", None, "stop") for _ in requests]

    seeds = write_prompts(tmp_path / "seeds.jsonl", PROMPTS[:2])
    cfg = compose([*HTTP, "synth.generator=self_instruct", f"synth.inputs=[{seeds}]", "synth.n=2"])
    with pytest.raises(KosovError, match=r"wrote no requests .*\(not a usable Korean request: \d+\)"):
        generate_rows(cfg, EnglishLists())


# --- what a killed job leaves, positional cache keys, inputs, provenance ---------------------------------------
