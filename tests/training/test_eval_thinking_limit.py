"""The generation limit in thinking mode: HRM8K's own max_gen_toks (2048) cut off many Qwen3 thoughts, graded wrong,
so "on" was understated against "off". With thinking on, eval.thinking_max_new_tokens is the limit of lm-eval's
generating tasks (simple_evaluate's gen_kwargs) and of kosov's own evals, it is in their cache keys, and the report
says it and how many answers it cut off. Thinking off keeps each one's own limit, and its cache key."""

from __future__ import annotations

import json

import pytest

from tests.helpers import generating_task
from training.errors import KosovError
from training.evaluate import evaluate
from training.recipes import compose

PROBE = "ko_think_probe"
TASK = generating_task(PROBE, max_gen_toks=8)


@pytest.fixture
def probe(tmp_path, monkeypatch):
    """A local generating lm-eval task (max_gen_toks 8 of its own), next to kosov's ko_mini_bench."""
    from training.evaluation import harness

    data = tmp_path / "probe.jsonl"
    data.write_text("".join(json.dumps({"question": q, "answer": a}, ensure_ascii=False) + "\n"
                            for q, a in (("2 더하기 3은?", "5"), ("7 빼기 4는?", "3"), ("6 곱하기 2는?", "12"))),
                    encoding="utf-8")
    monkeypatch.setitem(harness.LOCAL_TASKS, PROBE, {"data": str(data), "task": TASK})


@pytest.fixture
def calls(monkeypatch):
    """What lm-eval's simple_evaluate and kosov's generate() are asked, around the real ones."""
    import lm_eval

    import training.evaluation.generative as generative

    seen: dict[str, list] = {"lm_eval": [], "kosov": []}
    real_evaluate, real_generate = lm_eval.simple_evaluate, generative.generate

    def simple_evaluate(*args, **kwargs):
        output = real_evaluate(*args, **kwargs)
        seen["lm_eval"].append((kwargs, output))
        return output

    def generate(model, tokenizer, rows, **kwargs):
        seen["kosov"].append(kwargs)
        return real_generate(model, tokenizer, rows, **kwargs)

    monkeypatch.setattr(lm_eval, "simple_evaluate", simple_evaluate)
    monkeypatch.setattr(generative, "generate", generate)
    return seen


@pytest.fixture(autouse=True)
def own_score_cache(tmp_path, monkeypatch):
    """Scores cached by this file's tests only: another file's eval of tiny-ko (the same math rows, limit and
    settings) would otherwise answer the calls these tests count."""
    from training.evaluation import identity

    monkeypatch.setattr(identity, "cache_root", lambda: tmp_path / "cache")


def _suite(tmp_path, out: str, *extra: str):
    return compose(["experiment=smoke-eval", f"eval.tasks=[{PROBE},ko_mini_bench]", "eval.apply_chat_template=true",
                    "eval.thinking=[off,on]", "eval.limit=2", "eval.math.limit=1", "eval.language.enabled=false",
                    "eval.batch_size=2",  # not auto: its search runs a 2048-token batch on CPU
                    f"output_dir={tmp_path / out}", *extra])


def _limits(output) -> set[int]:
    """The max_gen_toks each logged request of the probe task was generated with."""
    return {sample["arguments"][0][1]["max_gen_toks"] for sample in output["samples"][PROBE]}


def test_thinking_on_raises_the_limit_of_generating_tasks_and_kosovs_evals_and_keys_the_cache_by_it(
        tmp_path, probe, calls):
    result = evaluate(_suite(tmp_path, "first", "eval.thinking_max_new_tokens=64"))
    (off, off_output), (choices, _), (on, on_output) = calls["lm_eval"]  # each task in a call of its own
    assert [off["tasks"], choices["tasks"], on["tasks"]] == [[PROBE], ["ko_mini_bench"], [PROBE]]  # choices: off only
    assert off.get("gen_kwargs") is None and _limits(off_output) == {8}  # the task's own limit
    assert on["gen_kwargs"] == {"max_gen_toks": 64} and _limits(on_output) == {64}  # what the model generated with
    assert [(c["thinking"], c["max_new_tokens"]) for c in calls["kosov"]] == [("off", 48), ("on", 64)]
    rows = {r["task"]: r for r in result.report["rows"]}
    assert rows["ko_mini_bench"]["n"] == 2 and rows[f"{PROBE}[on]"]["n"] == 2  # a likelihood task still scores
    assert rows[f"{PROBE}[on]"]["base_unfinished_thinking"] == 0  # counted, in lm-eval's tasks too
    assert rows[f"{PROBE}[off]"]["base_unfinished_thinking"] is None  # thinking off: lm-eval's own handling
    assert result.report["settings"]["thinking_max_new_tokens"] == 64
    assert result.report["settings"]["kosov_evals"]["ko_math_heldout"] == {
        "limit": 1, "max_new_tokens": 48, "max_new_tokens_thinking": 64}
    markdown = result.files["md"].read_text(encoding="utf-8")
    assert "generation limit with thinking on: 64 new tokens" in markdown
    assert "Cut off while thinking" in markdown and f"{PROBE}[on] base 0 of 2" in markdown
    # one suite average per thinking mode: the probe's [on] row is not a third task of the thinking-off average
    average, thinking_on = result.report["suite_average"], result.report["suite_average_thinking_on"]
    assert average["thinking"] == "off" and average["base"] == pytest.approx(
        (rows["ko_mini_bench"]["base"] + rows[f"{PROBE}[off]"]["base"]) / 2)
    assert thinking_on["thinking"] == "on" and thinking_on["base"] == rows[f"{PROBE}[on]"]["base"]
    assert "**smoke average** (lm-eval tasks, thinking off)" in markdown
    assert "**smoke average** (lm-eval tasks, thinking on)" in markdown

    # another limit: the scores with thinking on are computed again, those with thinking off come from the cache
    calls["lm_eval"].clear()
    calls["kosov"].clear()
    again = evaluate(_suite(tmp_path, "again", "eval.thinking_max_new_tokens=96"))
    assert sorted(again.report["cached_tasks"]) == sorted(
        ["base:ko_mini_bench", f"base:{PROBE}[off]", "base:ko_math_heldout[off]"])
    ((on, on_output),) = calls["lm_eval"]
    assert on["gen_kwargs"] == {"max_gen_toks": 96} and _limits(on_output) == {96}
    assert [(c["thinking"], c["max_new_tokens"]) for c in calls["kosov"]] == [("on", 96)]


def test_the_cache_key_holds_the_limit_with_thinking_on_only(probe):
    from training.evaluation.harness import settings_of
    from training.evaluation.thinking import gen_kwargs

    def suite(limit):
        return compose(["experiment=smoke-eval", f"eval.tasks=[{PROBE}]", "eval.apply_chat_template=true",
                        "eval.thinking=[off,on]", f"eval.thinking_max_new_tokens={limit}"]).eval

    small, large, own = suite(64), suite(8192), suite("null")
    assert settings_of(small, PROBE, "on") != settings_of(large, PROBE, "on")
    assert settings_of(small, PROBE, "on")["max_gen_toks"] == 64
    for mode in ("off", None):  # thinking off, or no chat template: the task's own limit, the key of before
        assert settings_of(small, PROBE, mode) == settings_of(large, PROBE, mode) == settings_of(own, PROBE, mode)
        assert "max_gen_toks" not in settings_of(small, PROBE, mode) and gen_kwargs(small, mode) is None
    assert "max_gen_toks" not in settings_of(own, PROBE, "on") and gen_kwargs(own, "on") is None  # null: its own
    assert compose(["experiment=smoke-eval", "eval=ko-math"]).eval.thinking_max_new_tokens == 8192


def test_a_thinking_limit_the_models_window_cannot_hold_is_refused_on_both_backends(tmp_path, probe):
    """tiny-ko's window is 2048 tokens: lm-eval's hf backend would fail an assert deep inside, vLLM cut the prompt."""
    from training.evaluate import _engine, _Model
    from training.models import model_source

    with pytest.raises(KosovError, match="thinking_max_new_tokens=4096 does not fit the context window"):
        evaluate(_suite(tmp_path, "hf", "eval.thinking_max_new_tokens=4096", "eval.math.enabled=false"))
    for limit, fits in ((4096, False), (1024, True)):
        cfg = _suite(tmp_path, "vllm", "eval.backend=vllm", f"eval.thinking_max_new_tokens={limit}")
        source, _ = model_source(cfg.model)
        engine = _engine(cfg, _Model(cfg, source, None, "cuda"), "base", "bfloat16", "cuda", None)
        if fits:  # vLLM gets no max_model_len: it starts with the model's whole window
            assert "max_model_len" not in engine("on")["model_args"]
        else:
            with pytest.raises(KosovError, match="set eval.thinking_max_new_tokens=1024 or lower"):
                engine("on")
        assert engine("off")["model_args"]["enable_thinking"] is False  # thinking off: no limit of kosov's


def test_the_report_counts_the_answers_cut_off_while_thinking_in_lm_evals_tasks_as_in_kosovs(tmp_path, probe):
    """A template that opens the think block itself (TRL's Qwen3.5 thinking one): tiny-ko never closes it, so every
    completion with thinking on is cut off at the limit, graded unanswered, and counted, per side and task."""
    from pathlib import Path

    import trl

    template = Path(trl.__file__).parent / "chat_templates" / "qwen3_5_think.jinja"
    result = evaluate(_suite(tmp_path, "opened", "eval.thinking_max_new_tokens=16", f"model.chat_template={template}",
                             "eval.thinking=[on]", f"eval.tasks=[{PROBE}]"))
    rows = {r["task"]: r for r in result.report["rows"]}
    assert (rows[PROBE]["base"], rows[PROBE]["base_unfinished_thinking"]) == (0, 2)
    assert rows["ko_math_heldout[on]"]["base_unfinished_thinking"] == 1
    markdown = result.files["md"].read_text(encoding="utf-8")
    assert f"{PROBE} base 2 of 2; ko_math_heldout[on] base 1 of 1." in markdown


def test_a_thinking_limit_below_one_token_is_refused_when_the_recipe_is_read():
    with pytest.raises(KosovError, match="eval.thinking_max_new_tokens=0 must be a whole number of tokens, 1 or more"):
        compose(["experiment=smoke-eval", "eval.thinking_max_new_tokens=0"])


def test_kosovs_own_evals_refuse_a_thinking_limit_the_window_cannot_hold_before_generating(tmp_path, monkeypatch):
    """Only lm-eval's paths checked the window: kosov's math eval generated past tiny-ko's 2048 tokens and cached it."""
    import training.evaluation.generative as generative
    from training.tiny_ko import cache_root

    def generate(*args, **kwargs):
        raise AssertionError("generated with a limit the window cannot hold")

    monkeypatch.setattr(generative, "generate", generate)
    before = set((cache_root() / "eval_cache").glob("*.json"))
    with pytest.raises(KosovError, match="eval.thinking_max_new_tokens=2048 does not fit the context window"):
        evaluate(compose(["experiment=smoke-eval", "eval.tasks=[]", "eval.thinking=[on]",
                          "eval.thinking_max_new_tokens=2048", "eval.math.limit=1", "eval.language.enabled=false",
                          f"output_dir={tmp_path / 'e'}"]))
    assert set((cache_root() / "eval_cache").glob("*.json")) == before
    assert not (tmp_path / "e" / "report.json").exists()


def test_a_thinking_limit_that_leaves_little_prompt_room_is_warned_once_per_side_not_once_per_task(
        tmp_path, probe, monkeypatch, caplog):
    """The hf backend runs each task in a call of its own: the window warning is the model's, said once a mode."""
    from training.evaluation import thinking

    from training.evaluation import harness

    twin = f"{PROBE}_twin"  # a second generating task: both run with thinking on, each in a call of its own
    monkeypatch.setitem(harness.LOCAL_TASKS, twin, {**harness.LOCAL_TASKS[PROBE], "task": {**TASK, "task": twin}})
    monkeypatch.setattr(thinking, "PROMPT_ROOM", 2040)  # tiny-ko's 2048-token window less a 16-token limit warns
    with caplog.at_level("WARNING", logger="kosov"):
        result = evaluate(_suite(tmp_path, "room", "eval.thinking_max_new_tokens=16", "eval.thinking=[on]",
                                 "eval.math.enabled=false", f"eval.tasks=[{PROBE},{twin}]"))
    warned = [r for r in caplog.records if "leaves prompts" in r.getMessage()]
    sides = {k for r in result.report["rows"] for k in ("base", "adapted") if r.get(k) is not None}
    assert {r["task"] for r in result.report["rows"]} == {PROBE, twin} and warned
    assert len(warned) == len(sides)  # each side's model once (no kosov eval here: no check before loading)
