"""The eval suite's settings refused when the recipe is read, before any model loads or anything is generated:
settings that silently dropped tasks, ran a mode twice, or scored another subset than the report says."""

from __future__ import annotations

import pytest

from training.errors import KosovError
from training.recipes import compose


def _refused(*overrides: str) -> str:
    with pytest.raises(KosovError) as error:
        compose(["experiment=smoke-eval", *overrides])
    return str(error.value)


def test_no_thinking_mode_is_refused_where_it_would_drop_kosovs_evals_or_chat_templated_tasks():
    """eval.thinking=[] removed kosov's evals and every chat-templated task: the run "succeeded" with no rows."""
    assert "eval.thinking=[] runs no thinking mode, which drops eval.math and eval.language" in _refused(
        "eval.thinking=[]")
    templated = _refused("eval.thinking=[]", "eval.apply_chat_template=true", "eval.math.enabled=false",
                         "eval.language.enabled=false")
    assert "drops eval.tasks (chat-templated)" in templated and "eval.thinking=[off]" in templated
    # lm-eval's tasks without chat templates run once, with no thinking mode: nothing is dropped
    plain = compose(["experiment=smoke-eval", "eval.thinking=[]", "eval.math.enabled=false",
                     "eval.language.enabled=false"])
    assert plain.eval.thinking == [] and plain.eval.tasks == ["ko_mini_bench"]


def test_a_thinking_mode_or_a_task_listed_twice_is_refused():
    """A mode twice generated twice, then failed with a bare ValueError; a task twice became "ko_mini_bench[None]"."""
    assert "eval.thinking lists off more than once" in _refused("eval.thinking=[off,on,off]")
    assert "eval.tasks lists ko_mini_bench more than once" in _refused("eval.tasks=[ko_mini_bench,ko_mini_bench]")


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_an_eval_limit_below_one_example_is_refused(limit):
    """eval.limit=0 scored everything under a "Subset: eval.limit=0" line; a negative one gave kosov's evals 1
    prompt."""
    assert f"eval.limit={limit} must be a number of examples per task" in _refused(f"eval.limit={limit}")
    assert f"eval.math.limit={limit} must be a number of prompts, 1 or more" in _refused(f"eval.math.limit={limit}")


def test_a_number_of_examples_a_share_or_null_is_an_eval_limit():
    for limit, expected in (("3", 3), ("0.25", 0.25), ("null", None)):
        assert compose(["experiment=smoke-eval", f"eval.limit={limit}"]).eval.limit == expected
