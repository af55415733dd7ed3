"""The eval report as users read it: the delta's standard error, the chart, and the settings line."""

from __future__ import annotations

import math

import pytest

from training.evaluation.report import build_report, plot, to_markdown
from training.recipes import compose


def _score(value, stderr=None, items=None, metric="accuracy"):
    return {"metric": metric, "value": value, "stderr": stderr, "n": len(items) if items else 100, "items": items}


def test_a_model_scored_against_itself_has_a_paired_delta_standard_error_of_zero():
    """Base and adapted answer the same items: as independent samples an identical model showed ± 0.0485."""
    answers = [1] * 60 + [0] * 40  # 100 items, 60% right
    own = {"base": {"ko_math_heldout[off]": _score(0.6, 0.049, answers)},
           "adapted": {"ko_math_heldout[off]": _score(0.6, 0.049, answers)}}
    report = build_report(suite="s", model={"name_or_path": "m"}, adapter="/a", harness={}, generative=own, cached=[])
    [row] = report["rows"]
    assert (row["delta"], row["delta_stderr"], row.get("delta_stderr_kind")) == (0, 0, "paired")
    assert "| +0.0000 ± 0.0000 |" in to_markdown(report) and "unpaired" not in to_markdown(report)

    better = [1] * 70 + [0] * 30  # ten more right and none lost
    own["adapted"]["ko_math_heldout[off]"] = _score(0.7, 0.046, better)
    [row] = build_report(suite="s", model={"name_or_path": "m"}, adapter="/a", harness={}, generative=own,
                         cached=[])["rows"]
    assert row["delta_stderr"] == pytest.approx(math.sqrt(0.1 * 0.9 * 100 / 99 / 100))  # the sd of the differences
    assert row["delta_stderr"] < math.sqrt(0.049**2 + 0.046**2)


def test_a_delta_without_per_item_outcomes_is_labelled_as_an_unpaired_upper_bound():
    harness = {"base": {"kmmlu": _score(0.5, 0.03, metric="acc")}, "adapted": {"kmmlu": _score(0.6, 0.04, metric="acc")}}
    report = build_report(suite="s", model={"name_or_path": "m"}, adapter="/a", harness=harness, generative={},
                          cached=[])
    markdown = to_markdown(report)
    assert "| +0.1000 ± 0.0500† |" in markdown and "† unpaired standard error" in markdown
    assert "upper bound" in markdown
    [row] = report["rows"]
    assert row["delta_stderr"] == pytest.approx(0.05) and row["delta_stderr_kind"] == "unpaired"


def test_a_missing_score_is_no_bar_in_the_chart_but_says_n_a(tmp_path, monkeypatch):
    """lm-eval gave one side no score: the chart drew it as a bar at 0, read as a score of 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    close = plt.close
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    harness = {"base": {"a": _score(0.5, 0.03, metric="acc"), "b": _score(float("nan"), metric="none")},
               "adapted": {"a": _score(0.6, 0.04, metric="acc"), "b": _score(0.9, metric="acc")}}
    report = build_report(suite="s", model={"name_or_path": "m"}, adapter="/a", harness=harness, generative={},
                          cached=[])
    plot(report, tmp_path / "report.png")
    [figure] = figures
    try:
        ax = figure.axes[0]
        heights = [bar.get_height() for bar in ax.patches]  # base a, base b, adapted a, adapted b
        assert heights[0] == 0.5 and math.isnan(heights[1]) and heights[2:] == [0.6, 0.9]
        assert [t.get_text() for t in ax.texts] == ["n/a"]
    finally:
        close(figure)
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_the_settings_line_says_which_engine_applies_the_chat_template_and_loads_the_weights():
    """The line said "chat template: not applied" while kosov's own evals always apply it, and named only the dtype
    where QLoRA loads the model in 4-bit."""
    from training.evaluate import report_settings

    def line(*overrides, device="cpu", dtype="float32"):
        cfg = compose(["experiment=smoke-eval", *overrides])
        report = build_report(suite="s", model={"name_or_path": "m"}, adapter=None, harness={}, generative={},
                              cached=[], settings=report_settings(cfg, dtype, device))
        return next(t for t in to_markdown(report).splitlines() if t.startswith("Settings:"))

    plain = line()
    assert "chat template: lm-eval tasks not applied, kosov's evals applied" in plain
    assert "chat template: not applied" not in plain
    assert "model: lm-eval (hf) and kosov's evals: one model loaded by kosov, float32;" in plain
    qlora = line("peft=qlora", device="cuda", dtype="bfloat16")
    assert "one model loaded by kosov, bfloat16, 4-bit nf4;" in qlora
    vllm = line("peft=qlora", "eval.backend=vllm", "eval.apply_chat_template=true", device="cuda", dtype="bfloat16")
    assert "chat template: lm-eval tasks applied, kosov's evals applied" in vllm
    assert "model: lm-eval: vLLM, bfloat16; kosov's evals: transformers, bfloat16, 4-bit nf4;" in vllm


def test_a_report_from_before_lm_eval_scored_kosovs_model_is_not_described_as_if_it_had():
    """publish renders the card's table from the eval report it is given, which may be older: its settings line
    claimed one model loaded by kosov, and its unpaired delta errors went unmarked."""
    old_settings = {"limit": None, "num_fewshot": None, "thinking": ["off"], "apply_chat_template": False,
                    "backend": "hf", "dtype": "bfloat16", "device": "cuda", "quantization": "4-bit nf4"}
    report = build_report(suite="s", model={"name_or_path": "m"}, adapter="a", harness={}, generative={}, cached=[],
                          settings=old_settings)
    report["rows"] = [{"task": "kmmlu", "metric": "acc", "kind": "lm-eval", "n": 100, "higher_is_better": True,
                       "base": 0.4, "base_stderr": 0.01, "adapted": 0.45, "adapted_stderr": 0.01, "delta": 0.05,
                       "delta_stderr": 0.0141}]  # as rows were written before delta_stderr_kind
    text = to_markdown(report)
    assert "one model loaded by kosov" not in text
    assert "lm-eval (hf) loaded the checkpoint itself, bfloat16; kosov's evals: transformers, bfloat16, 4-bit" in text
    assert "+0.0500 ± 0.0141†" in text


def test_the_thinking_limit_is_said_of_what_it_applied_to():
    """Without chat templates lm-eval's tasks (HRM8K) run once, with their own limit (2048): the line said 8192 for
    "lm-eval's generating tasks and kosov's evals"."""
    from training.evaluate import report_settings

    def line(*overrides):
        cfg = compose(["experiment=smoke-eval", "eval=ko-math", *overrides])
        report = build_report(suite="s", model={"name_or_path": "m"}, adapter=None, harness={}, generative={},
                              cached=[], settings=report_settings(cfg, "float32", "cpu"))
        return next(t for t in to_markdown(report).splitlines() if t.startswith("Settings:"))

    assert ("generation limit with thinking on: 8192 new tokens (lm-eval's generating tasks and kosov's evals; "
            "off: each one's own)") in line()
    plain = line("eval.apply_chat_template=false")
    assert "8192 new tokens (kosov's evals only; off: each one's own)" in plain and "generating tasks" not in plain
    assert "8192 new tokens (lm-eval's generating tasks only;" in line("eval.math.enabled=false")
    nothing = line("eval.apply_chat_template=false", "eval.math.enabled=false")
    assert "generation limit" not in nothing and "thinking: off, on" in nothing


def test_the_suite_average_counts_each_task_once_per_thinking_mode():
    """hrm8k[off] and hrm8k[on] were two tasks of one average, beside a likelihood task run once: the average mixed
    the modes and weighed HRM8K twice. One average per mode now, each labelled."""
    def scored(value, mode):
        return {**_score(value, metric="exact_match"), "thinking": mode}

    harness = {"base": {"kobest": scored(0.8, "off"), "hrm8k[off]": scored(0.2, "off"), "hrm8k[on]": scored(0.5, "on")},
               "adapted": {"kobest": scored(0.8, "off"), "hrm8k[off]": scored(0.4, "off"),
                           "hrm8k[on]": scored(0.6, "on")}}
    report = build_report(suite="ko-math", model={"name_or_path": "m"}, adapter="/a", harness=harness, generative={},
                          cached=[])
    assert report["suite_average"] == pytest.approx({"base": 0.5, "adapted": 0.6, "delta": 0.1, "thinking": "off"})
    assert report["suite_average_thinking_on"] == pytest.approx(
        {"base": 0.5, "adapted": 0.6, "delta": 0.1, "thinking": "on"})
    markdown = to_markdown(report)
    assert "| **ko-math average** (lm-eval tasks scored on both sides, thinking off) | | | 0.5000 |" in markdown
    assert "| **ko-math average** (lm-eval tasks scored on both sides, thinking on) | | | 0.5000 |" in markdown
    # a suite without chat templates runs its tasks in no mode: one average, as before
    plain = build_report(suite="s", model={"name_or_path": "m"}, adapter=None, harness={"base": {
        "kobest": scored(0.8, None)}}, generative={}, cached=[])
    assert plain["suite_average"]["thinking"] is None and "suite_average_thinking_on" not in plain
    assert "| **s average** (lm-eval tasks) |" in to_markdown(plain)
    # a suite run with thinking on alone: its average is the headline, with no empty "off" one beside it
    on_only = build_report(suite="s", model={"name_or_path": "m"}, adapter=None, harness={"base": {
        "hrm8k[on]": scored(0.5, "on")}}, generative={}, cached=[])
    assert on_only["suite_average"] == {"base": 0.5, "adapted": None, "delta": None, "thinking": "on"}
    assert "suite_average_thinking_on" not in on_only and "thinking off" not in to_markdown(on_only)
