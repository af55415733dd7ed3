"""Thinking "on" needs a chat template that reads enable_thinking. One that ignores it (Llama 3, Gemma, EXAONE 3.5, a
custom .jinja) rendered the same prompts in both modes, and the report showed "[on]" rows, "thinking: off, on", that
were the "off" scores again: such a suite is refused before the model loads, in kosov eval and in training."""

from __future__ import annotations

from pathlib import Path

import pytest

import training.evaluate as evaluate_module
from training.errors import KosovError
from training.evaluate import evaluate
from training.evaluation.callback import SuiteCallback
from training.evaluation.thinking import check_thinking_switch
from training.recipes import compose

# a ChatML template without enable_thinking (as a custom .jinja, or Llama 3's / Gemma's own, read it)
PLAIN = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
         "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture
def plain(tmp_path):
    template = tmp_path / "plain.jinja"
    template.write_text(PLAIN, encoding="utf-8")
    return template


@pytest.fixture
def loads(monkeypatch):
    """Each model kosov's eval loads, around the real loader."""
    seen = []
    real = evaluate_module.load_for_inference

    def load(*args, **kwargs):
        seen.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "load_for_inference", load)
    return seen


def _suite(tmp_path, template, *extra: str):
    return compose(["experiment=smoke-eval", f"model.chat_template={template}", "eval.tasks=[]", "eval.math.limit=1",
                    "eval.language.enabled=false", "eval.thinking_max_new_tokens=64", f"output_dir={tmp_path / 'eval'}",
                    *extra])


def test_thinking_on_with_a_template_that_ignores_enable_thinking_is_refused_before_the_model_loads(tmp_path, plain,
                                                                                                   loads):
    with pytest.raises(KosovError) as error:
        evaluate(_suite(tmp_path, plain, "eval.thinking=[off,on]"))
    message = str(error.value)
    assert f"{plain} ignores enable_thinking" in message and "eval.thinking=[off]" in message
    assert loads == [] and not (tmp_path / "eval" / "report.json").exists()


def test_the_same_template_with_thinking_off_is_evaluated(tmp_path, plain, loads):
    result = evaluate(_suite(tmp_path, plain, "eval.thinking=[off]"))
    assert [r["task"] for r in result.report["rows"]] == ["ko_math_heldout[off]"] and len(loads) == 1


def test_tiny_kos_qwen3_template_reads_the_switch_and_a_suite_that_renders_no_chat_needs_none(tiny_tokenizer, plain):
    thinking = compose(["experiment=smoke-eval", "eval=ko-math"]).eval  # [off, on], chat templates applied
    check_thinking_switch(thinking, tiny_tokenizer, "tiny-ko's template")  # the demo's and CI's model: no error
    no_chat = compose(["experiment=smoke-eval", "eval.thinking=[off,on]", "eval.math.enabled=false",
                       "eval.language.enabled=false"]).eval  # lm-eval's tasks without chat templates: no mode
    check_thinking_switch(no_chat, _with_template(tiny_tokenizer, plain), "plain.jinja")


def test_eval_during_training_refuses_it_before_training_starts(tiny_tokenizer, plain):
    suite = compose(["experiment=smoke-eval", "eval.thinking=[off,on]", "eval.every_n_steps=2"]).eval
    with pytest.raises(KosovError, match="the run's chat template ignores enable_thinking"):
        SuiteCallback(suite, _with_template(tiny_tokenizer, plain))
    SuiteCallback(suite, tiny_tokenizer)  # Qwen3's own template: the suite runs


def _with_template(tokenizer, template):
    import copy

    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.chat_template = template.read_text(encoding="utf-8")
    return tokenizer


@pytest.mark.parametrize("name", ["deepseek_r1_distill.jinja", "deepseekv3.jinja", "qwen3.jinja"])
def test_a_template_that_always_thinks_or_reads_the_switch_may_score_thinking_on(name):
    """DeepSeek-R1 distills open <think> in every prompt: they read no switch because they always think, and their
    "on" rows need the thinking limit ("off" would cut most answers off mid-thought)."""
    import trl

    from training.tiny_ko import load_tiny_tokenizer

    tokenizer = load_tiny_tokenizer()
    tokenizer.chat_template = (Path(trl.__file__).parent / "chat_templates" / name).read_text(encoding="utf-8")
    check_thinking_switch(compose(["experiment=smoke-eval", "eval=ko-math"]).eval, tokenizer, name)
