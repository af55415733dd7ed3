"""`kosov eval` on tiny-ko: the real lm-eval harness on kosov's local Korean benchmark with and without an
adapter, the generative evals, the three report files, the cache, the tracker, and the errors users hit."""

from __future__ import annotations

import json

import pytest

from tests.helpers import quick
from training.errors import KosovError
from training.evaluate import evaluate
from training.recipes import compose
from training.train import train


@pytest.fixture(scope="module")
def report(smoke_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    return evaluate(compose(["experiment=smoke-eval", f"eval.adapter={smoke_run.run_dir}", f"output_dir={out}",
                             "tracking=wandb"]))


def rows(result) -> dict[str, dict]:
    return {r["task"]: r for r in result.report["rows"]}


def test_the_local_benchmark_runs_through_lm_eval_with_and_without_the_adapter(report):
    bench = rows(report)["ko_mini_bench"]
    assert bench["metric"] == "acc" and bench["n"] == 182
    assert 0 <= bench["base"] <= 1 and 0 <= bench["adapted"] <= 1 and bench["base_stderr"] > 0
    assert bench["adapted"] != bench["base"]  # the adapter changes the logits, and so the choices
    assert bench["delta"] == pytest.approx(bench["adapted"] - bench["base"])


def test_kosovs_own_generative_evals_are_in_the_report(report):
    math_row, language = rows(report)["ko_math_heldout[off]"], rows(report)["ko_language[off]"]
    assert math_row["metric"] == "accuracy" and math_row["n"] == 16
    assert language["metric"] == "foreign_script_rate" and language["higher_is_better"] is False
    assert all(0 <= r[side] <= 1 for r in (math_row, language) for side in ("base", "adapted"))


def test_three_report_files_and_the_tracker(report):
    files = report.files
    assert json.loads(files["json"].read_text())["suite"] == "smoke"
    markdown = files["md"].read_text()
    assert "| task | metric | n | base | adapted | delta |" in markdown and "| ko_mini_bench | acc | 182 |" in markdown
    settings = report.report["settings"]  # what the scores were computed with, kept with them
    assert settings["dtype"] == "float32" and settings["device"] == "cpu" and settings["limit"] is None
    assert settings["kosov_evals"]["ko_math_heldout"] == {"limit": 16, "max_new_tokens": 48}
    assert "Settings: few-shot: each task default; thinking: off;" in markdown and "Subset" not in markdown
    assert files["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    [run_file] = (report.run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    assert b"eval/smoke/report" in run_file.read_bytes() and b"eval/smoke/chart" in run_file.read_bytes()


def test_a_second_run_reads_every_score_from_the_cache(report, smoke_run, tmp_path):
    again = evaluate(compose(["experiment=smoke-eval", f"eval.adapter={smoke_run.run_dir}",
                              f"output_dir={tmp_path / 'again'}"]))
    expected = {f"{side}:{task}" for side in ("base", "adapted")
                for task in ("ko_mini_bench", "ko_math_heldout[off]", "ko_language[off]")}
    assert set(again.report["cached_tasks"]) == expected
    assert again.report["rows"] == report.report["rows"]


def test_an_adapter_of_another_base_is_refused_before_loading(tmp_path):
    other = train(compose(quick(f"output_dir={tmp_path / 'other'}", "model.tiny.hidden_size=32")))
    with pytest.raises(KosovError) as error:
        evaluate(compose(["experiment=smoke-eval", f"eval.adapter={other.run_dir}",
                          f"output_dir={tmp_path / 'eval'}"]))
    assert "was trained on" in str(error.value) and "model settings of its run" in str(error.value)
    assert str(other.run_dir / "config.yaml") in str(error.value)  # both are tiny-ko: the shape differs
    assert not (tmp_path / "eval" / "report.json").exists()


def test_an_unknown_task_suggests_the_right_name(tmp_path):
    with pytest.raises(KosovError, match="did you mean kobest_boolq"):
        evaluate(compose(["experiment=smoke-eval", "eval.tasks=[kobest_boolk]", f"output_dir={tmp_path / 'e'}"]))


def test_an_unreachable_benchmark_dataset_says_what_to_do(tmp_path):
    cfg = compose(["experiment=smoke-eval", "eval.tasks=[kobest_copa]", "eval.math.enabled=false",
                   "eval.language.enabled=false", f"output_dir={tmp_path / 'e'}"])
    with pytest.raises(KosovError) as error:
        evaluate(cfg)  # HF_HUB_OFFLINE=1: the hub dataset cannot be reached
    assert "skt/kobest_v1" in str(error.value) and "kosov mirror" in str(error.value)


def test_eval_during_training_logs_the_suite(tmp_path):
    result = train(compose(quick(f"output_dir={tmp_path / 'run'}", "eval=smoke", "eval.every_n_steps=2",
                                 "eval.math.limit=4", "eval.language.limit=4")))
    logged = [(h["step"], h) for h in result.trainer.state.log_history if "suite/ko_mini_bench" in h]
    assert [step for step, _ in logged] == [2, 3]  # every 2 steps and at the end
    assert all("suite/ko_math_heldout[off]" in h and "suite/ko_language[off]" in h for _, h in logged)


def test_the_generative_metrics_score_known_answers():
    """The numbers in the report's generative rows, on answers whose right scores are known by hand."""
    from data_tools.chat_io import ChatRow
    from training.evaluation.generative import foreign_script_rate, math_accuracy

    answers = ["서울은 한국의 수도입니다.", "수도는 首尔입니다.", "<think>北京? 아니다</think>서울입니다.", "東京です"]
    rate = foreign_script_rate(answers)
    assert rate["value"] == 0.5 and rate["n"] == 4  # Chinese characters in one answer, kana in another
    assert rate["thinking_foreign_script_rate"] == 0.25  # the third thinks in Chinese but answers in Korean
    assert rate["stderr"] == pytest.approx((0.5 * 0.5 / 4) ** 0.5) and 0 < rate["mean_hangul_share"] < 1
    cut_off = foreign_script_rate(["서울입니다.", "<think>北京是中国的首都... 한국의 수도는"])  # token limit mid-thought
    assert cut_off["value"] == 0.5 and cut_off["unfinished_thinking_rate"] == 0.5  # no answer is no clean answer

    rows = [ChatRow([{"role": "user", "content": "사과 5개에 100원씩이면?"}], None, f"math.jsonl:{i}", {"answer": 500})
            for i in range(3)]
    accuracy = math_accuracy(["계산하면 정답: 500원", "정답: 50", "500"], rows)
    assert accuracy["value"] == pytest.approx(2 / 3) and accuracy["n"] == 3


def test_kosovs_math_eval_gives_the_grader_the_question_for_the_form_it_asks():
    """"2/8" equals 1/4 but does not answer a question asking for 기약분수 (lowest terms)."""
    from data_tools.chat_io import ChatRow
    from training.evaluation.generative import math_accuracy

    def row(question: str) -> ChatRow:
        return ChatRow([{"role": "user", "content": question}], None, "math.jsonl:1", {"answer": "1/4"})

    lowest = row("피자 8조각 중 2조각을 먹었습니다. 먹은 양을 기약분수로 나타내세요.")
    plain = row("피자 8조각 중 2조각을 먹었습니다. 먹은 양은 전체의 얼마인가요?")
    assert math_accuracy(["정답: 2/8", "정답: 1/4", "정답: 2/8"], [lowest, lowest, plain])["items"] == [0, 1, 1]


def test_the_cache_key_changes_with_every_shard_the_tokenizer_and_how_the_model_loads(tmp_path):
    from training.evaluation.harness import settings_of
    from training.evaluation.identity import load_settings, model_identity
    from training.schema import ModelConfig, QuantizationConfig

    for name in ("config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                 "model.safetensors.index.json", "tokenizer.json"):
        (tmp_path / name).write_text(name)
    plain = load_settings(ModelConfig(), None)
    before = model_identity(str(tmp_path), None, plain)
    (tmp_path / "model-00002-of-00002.safetensors").write_text("retrained into the same folder")
    after_shard = model_identity(str(tmp_path), None, plain)
    (tmp_path / "tokenizer.json").write_text("another tokenizer")
    after_tokenizer = model_identity(str(tmp_path), None, plain)
    (tmp_path / "modeling_kormo.py").write_text("# the remote code a trust_remote_code checkpoint runs")
    after_code = model_identity(str(tmp_path), None, plain)
    (tmp_path / "merges.txt").write_text("a BPE tokenizer's merges")
    after_merges = model_identity(str(tmp_path), None, plain)
    digests = {i["digest"] for i in (before, after_shard, after_tokenizer, after_code, after_merges)}
    assert len(digests) == 5
    template = tmp_path / "ko.jinja"
    template.write_text("{{ messages }}")
    loads = [plain, load_settings(ModelConfig(dtype="bfloat16"), None),
             load_settings(ModelConfig(chat_template=str(template)), None),
             load_settings(ModelConfig(), QuantizationConfig()),
             # model.dtype=auto as it resolved: fp32 on a CPU is not bf16 on a GPU (the cache is shared)
             load_settings(ModelConfig(), None, dtype="float32", device="cpu"),
             load_settings(ModelConfig(), None, dtype="bfloat16", device="cuda"),
             load_settings(ModelConfig(end_of_turn_token="<|eot_id|>"), None)]
    assert len({json.dumps(s, sort_keys=True) for s in loads}) == 7
    suite = compose(["experiment=smoke-eval"]).eval
    assert len(settings_of(suite, "ko_mini_bench", None)["data_sha256"]) == 64  # kosov's own task data is in the key


def test_an_adapter_saved_as_bin_is_told_apart_by_its_weights(tmp_path):
    from training.evaluation.identity import adapter_digest

    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.bin").write_bytes(b"one")
    first = adapter_digest(tmp_path)
    (tmp_path / "adapter_model.bin").write_bytes(b"another")
    assert adapter_digest(tmp_path) != first


def test_kosovs_own_answers_end_with_their_turn_where_the_base_ends_text_with_another_token(tiny_tokenizer):
    """A base checkpoint's generation config may end text with <|endoftext|> where turns end with <|im_end|>:
    kosov's own evals generated past the turn, inventing further turns that the graders read as the answer."""
    from data_tools.chat_io import ChatRow
    from training.evaluation.generative import generate
    from training.models import stop_ids
    from training.schema import ModelConfig

    turn = tiny_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert stop_ids(ModelConfig(end_of_turn_token="<|im_end|>"), tiny_tokenizer)[0] == turn

    class Model:  # records what generation is asked to stop at
        device, asked = "cpu", {}

        def generate(self, input_ids, **kwargs):
            self.asked.update(kwargs)
            return input_ids

    rows = [ChatRow([{"role": "user", "content": "안녕하세요"}], None, "x.jsonl:1", {})]
    generate(Model(), tiny_tokenizer, rows, thinking="off", max_new_tokens=4, stop_ids=[turn])
    assert Model.asked["eos_token_id"] == [turn]

    class Gemma(Model):  # ends of its own, which eos_token_id would replace: kept with the turn's
        generation_config = type("Config", (), {"eos_token_id": [1, 107]})()

    generate(Gemma(), tiny_tokenizer, rows, thinking="off", max_new_tokens=4, stop_ids=[turn])
    assert Gemma.asked["eos_token_id"] == [turn, 1, 107]


def test_a_tag_is_scored_as_the_mean_of_its_tasks_and_vllm_gets_the_thinking_mode():
    from training.evaluation.harness import model_args, primary_score, tag_members, task_manager

    members = tag_members(task_manager(["kbl"]), ["kbl", "ko_mini_bench"])
    assert list(members) == ["kbl"] and len(members["kbl"]) > 10  # lm-eval's KBL tag has no aggregate of its own
    first, second = members["kbl"][:2]
    results = {first: {"exact_match,none": 0.5}, second: {"exact_match,none": 0.25}}
    score = primary_score("kbl", results, {"kbl": [first, second]})
    assert (score.metric, score.value) == ("exact_match", 0.375)
    suite = compose(["experiment=smoke-eval", "eval.apply_chat_template=true", "eval.backend=vllm",
                     "eval.thinking=[off]"]).eval
    args = model_args(suite, "tiny-ko", None, None, "auto", False, mode="off")
    assert args["enable_thinking"] is False and args["think_end_token"] == "</think>"


def test_lm_eval_renders_chat_prompts_with_the_recipes_chat_template(tmp_path, monkeypatch):
    # model.chat_template replaces the checkpoint's template for training and kosov's own evals; lm-eval's
    # chat-templated tasks must get it too, not the template saved with the checkpoint
    import tempfile

    from training.tiny_ko import TEMPLATE_PATH

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    failing, working = tmp_path / "failing.jinja", tmp_path / "working.jinja"
    failing.write_text("{{ raise_exception('the recipe template rendered this prompt') }}", encoding="utf-8")
    working.write_text(TEMPLATE_PATH.read_text(encoding="utf-8"), encoding="utf-8")

    def suite(template, out):
        return compose(["experiment=smoke-eval", "eval.apply_chat_template=true", "eval.limit=2", "eval.cache=false",
                        "eval.math.enabled=false", "eval.language.enabled=false", f"model.chat_template={template}",
                        f"output_dir={tmp_path / out}"])

    with pytest.raises(Exception, match="the recipe template rendered this prompt"):
        evaluate(suite(failing, "failing"))
    assert rows(evaluate(suite(working, "working")))["ko_mini_bench"]["n"] == 2
    assert not list(scratch.glob("kosov-eval-*"))  # the tokenizer copy lent to lm-eval is gone, after a failure too


def test_eval_limit_also_limits_kosovs_own_evals_and_a_grader_change_is_not_served_from_the_cache(tmp_path,
                                                                                                  monkeypatch):
    import training.evaluate

    def run(out, *extra):
        return evaluate(compose(["experiment=smoke-eval", "eval.tasks=[]", "eval.math.limit=null",
                                 "eval.language.limit=null", f"output_dir={tmp_path / out}", *extra]))

    first = run("n3", "eval.limit=3")
    assert [rows(first)[t]["n"] for t in ("ko_math_heldout[off]", "ko_language[off]")] == [3, 3]
    share = run("share", "eval.limit=0.01")  # a share, as lm-eval reads it: 1% of 300 and of 134 prompts
    assert [rows(share)[t]["n"] for t in ("ko_math_heldout[off]", "ko_language[off]")] == [3, 2]
    assert run("again", "eval.limit=3").report["cached_tasks"] == ["base:ko_math_heldout[off]", "base:ko_language[off]"]
    monkeypatch.setattr(training.evaluate, "code_digest", lambda: "a kosov release that grades differently")
    assert run("upgraded", "eval.limit=3").report["cached_tasks"] == []


def test_generative_lm_eval_tasks_run_in_every_thinking_mode_of_the_suite_and_multiple_choice_in_off(tmp_path):
    from training.evaluation.harness import lm_eval_jobs, model_args, task_label, task_manager

    suite = compose(["experiment=smoke-eval", "eval=ko-math", "eval.tasks=[hrm8k,kbl,kmmlu,ko_mini_bench]"]).eval
    jobs = lm_eval_jobs(suite, task_manager(suite.tasks))  # the task index only: no benchmark data is read
    assert jobs == [("hrm8k", "off"), ("hrm8k", "on"), ("kbl", "off"), ("kbl", "on"), ("kmmlu", "off"),
                    ("ko_mini_bench", "off")]
    assert [task_label(t, m, jobs) for t, m in jobs[:2] + jobs[-1:]] == ["hrm8k[off]", "hrm8k[on]", "ko_mini_bench"]
    assert [model_args(suite, "tiny-ko", None, None, "auto", False, mode=m)["enable_thinking"]
            for m in ("off", "on")] == [False, True]
    # lm-eval refuses thinking for likelihood tasks: a thinking suite scores them once, in "off"
    result = evaluate(compose(["experiment=smoke-eval", "eval.apply_chat_template=true", "eval.limit=2",
                               "eval.thinking=[off,on]", "eval.math.enabled=false", "eval.language.enabled=false",
                               f"output_dir={tmp_path / 'modes'}"]))
    assert {task: row["n"] for task, row in rows(result).items()} == {"ko_mini_bench": 2}


def test_an_adapter_and_its_base_are_evaluated_in_the_prompt_format_the_run_trained_with(custom_template_run, tmp_path):
    from pathlib import Path

    import yaml

    run, template = custom_template_run
    result = evaluate(compose(["experiment=smoke-eval", f"eval.adapter={run}", "eval.tasks=[]", "eval.math.limit=2",
                               "eval.language.limit=2", f"output_dir={tmp_path / 'eval'}"]))
    used = yaml.safe_load((result.run_dir / "config.yaml").read_text(encoding="utf-8"))["model"]["chat_template"]
    assert Path(used).read_text(encoding="utf-8") == template.read_text(encoding="utf-8")


def test_a_task_without_a_score_is_null_and_both_averages_cover_the_same_tasks():
    """lm-eval can give a task none of the headline metrics kosov knows: its NaN went into report.json (not strict
    JSON) and the card, and when one side had it, the two averages covered different tasks."""
    from training.evaluation.report import build_report, to_markdown

    nan = float("nan")
    harness = {"base": {"a": {"metric": "acc", "value": 0.5, "stderr": 0.03, "n": 100},
                        "b": {"metric": "none", "value": nan, "stderr": None, "n": None}},
               "adapted": {"a": {"metric": "acc", "value": 0.6, "stderr": 0.04, "n": 100},
                           "b": {"metric": "acc", "value": 0.9, "stderr": None, "n": 100}}}
    report = build_report(suite="s", model={"name_or_path": "m"}, adapter="/a", harness=harness, generative={},
                          cached=[])
    json.dumps(report, allow_nan=False)  # strict JSON
    b = {r["task"]: r for r in report["rows"]}["b"]
    assert b["base"] is None and b["delta"] is None and b["adapted"] == 0.9
    average = {k: report["suite_average"][k] for k in ("base", "adapted", "delta")}
    assert average == pytest.approx({"base": 0.5, "adapted": 0.6, "delta": 0.1})  # "a" alone
    a = {r["task"]: r for r in report["rows"]}["a"]
    assert a["delta_stderr"] == pytest.approx(0.05)  # sqrt(0.03² + 0.04²) without per-item outcomes: unpaired
    assert "| +0.1000 ± 0.0500† |" in to_markdown(report)


def test_scores_on_a_subset_say_so_and_stay_out_of_the_cards_metadata():
    """A run with eval.limit=50 went into the card's model-index as plain "kmmlu acc", read as the benchmark's."""
    from huggingface_hub import ModelCard

    from training.evaluation.report import build_report, to_markdown
    from training.model_card import model_card

    harness = {"base": {"kmmlu": {"metric": "acc", "value": 0.4, "stderr": 0.07, "n": 50}},
               "adapted": {"kmmlu": {"metric": "acc", "value": 0.5, "stderr": 0.07, "n": 50}}}

    def card(limit):
        report = build_report(suite="ko-core", model={"name_or_path": "m"}, adapter="/a", harness=harness,
                              generative={}, cached=[], settings={"limit": limit, "num_fewshot": 5})
        text = model_card(repo="me/m-ko", base="m", method="sft", config={}, metrics={}, report=report,
                          report_md=to_markdown(report), license_="apache-2.0", license_why="the base's", images={},
                          stages=[{"name": "sft", "provenance": {"packages": {}}}])
        return ModelCard(text)

    full, subset = card(None), card(50)
    assert [r.metric_value for r in full.data.eval_results] == [0.5] and "few-shot: 5" in full.text
    assert not subset.data.eval_results and "**Subset:** `eval.limit=50` per task" in subset.text


def test_a_completion_cut_off_while_thinking_has_no_answer_in_lm_eval_either():
    """lm-eval kept the whole text of a completion cut off while thinking, and HRM8K's parser took the last number
    of the unfinished reasoning as its answer; kosov's own math eval counts it as unanswered."""
    import lm_eval.models.huggingface as hf

    from training.evaluation.thinking import cut_off_thoughts_unanswered

    cut, done = "<think>사과가 5개, 100원씩이면 500", "<think>5 x 100</think>\n\n정답: 500"
    assert hf.postprocess_generated_text(cut, None, "</think>") == cut  # lm-eval alone
    with cut_off_thoughts_unanswered("on"):
        assert hf.postprocess_generated_text(cut, None, "</think>") == ""
        assert hf.postprocess_generated_text(done, None, "</think>") == "정답: 500"
    with cut_off_thoughts_unanswered("off"):  # thinking off: lm-eval's own handling
        assert hf.postprocess_generated_text(cut, None, "</think>") == cut
    assert hf.postprocess_generated_text(cut, None, "</think>") == cut  # put back


def _cached_scores() -> set:
    from training.tiny_ko import cache_root

    return set((cache_root() / "eval_cache").glob("*.json"))


def test_a_suite_left_with_nothing_to_run_is_refused_before_its_run_folder(tmp_path):
    """eval.thinking=[] dropped kosov's evals and every chat-templated task: a report with no rows "succeeded"."""
    cfg = compose(["experiment=smoke-eval", "eval.apply_chat_template=true", f"output_dir={tmp_path / 'e'}"])
    cfg.eval.thinking = []  # set by a Python caller after the recipe was checked
    with pytest.raises(KosovError, match=r"eval.thinking=\[\] runs no thinking mode"):
        evaluate(cfg)
    assert not (tmp_path / "e").exists()


def test_an_empty_prompt_file_is_refused_before_its_run_folder(tmp_path):
    """A 0-byte eval.math.data gave a NaN score, cached and served to later runs, under "16 prompts"."""
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    before = _cached_scores()
    with pytest.raises(KosovError, match=f"eval.math.data: the prompt file {empty} has no rows"):
        evaluate(compose(["experiment=smoke-eval", "eval.tasks=[]", f"eval.math.data={empty}",
                          f"output_dir={tmp_path / 'empty'}"]))
    assert not (tmp_path / "empty").exists() and _cached_scores() == before


def test_a_score_without_a_value_is_not_cached(tmp_path, monkeypatch):
    """A NaN score of kosov's evals was cached and served to later runs; lm-eval's are computed again (run_tasks)."""
    import training.evaluate

    def no_value(model, tokenizer, ecfg, jobs, label, stop_ids=None):
        return {f"{n}[{m}]": {"metric": "accuracy", "value": float("nan"), "stderr": None, "n": 0,
                              "higher_is_better": True, "items": []} for n, m in jobs}

    monkeypatch.setattr(training.evaluate, "run_generative", no_value)
    cache = tmp_path / "cache"  # a score of the same suite cached by an earlier test would be served instead
    monkeypatch.setattr("training.evaluation.identity.cache_root", lambda: cache)
    suite = ["experiment=smoke-eval", "eval.tasks=[]", "eval.math.limit=1", "eval.language.enabled=false"]
    result = evaluate(compose([*suite, f"output_dir={tmp_path / 'nan'}"]))
    assert rows(result)["ko_math_heldout[off]"]["base"] is None and not list(cache.rglob("*.json"))
    assert evaluate(compose([*suite, f"output_dir={tmp_path / 'again'}"])).report["cached_tasks"] == []
