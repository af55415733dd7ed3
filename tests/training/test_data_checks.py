"""The training data's checks: a row the chat template raises on, an eval split the skipped rows emptied, the rows
provenance credits, the files an error names, and prompt columns Arrow cannot hold. Each error names the file and
line (or the files) and a fix."""

from __future__ import annotations

import json

import pytest

from tests.helpers import quick
from training.errors import KosovError
from training.recipes import compose

NO_SYSTEM = "{%- if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{%- endif %}"


def write(path, rows: list[dict]):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def chat(i: int, answer: str = "답") -> dict:
    return {"messages": [{"role": "user", "content": f"질문 {i}"}, {"role": "assistant", "content": f"{answer} {i}"}]}


@pytest.fixture
def no_system_tokenizer():
    """tiny-ko with Gemma's rule: a template that raises on a system turn."""
    from training.tiny_ko import load_tiny_tokenizer

    tokenizer = load_tiny_tokenizer()
    tokenizer.chat_template = NO_SYSTEM + tokenizer.chat_template
    return tokenizer


@pytest.mark.parametrize("processes", [1, 2])
def test_a_row_the_chat_template_raises_on_is_named_by_line_or_skipped(tmp_path, no_system_tokenizer, processes):
    """A template's raise_exception (Gemma-2 on a system turn) crashed with a bare jinja2 TemplateError naming no
    row, also with data.on_bad_row=skip; in worker processes (data.num_proc) too."""
    from training.sft_data import build_sft_data

    rows = [chat(i) for i in range(6)]
    rows.insert(3, {"messages": [{"role": "system", "content": "너는 도우미"}, *chat(9)["messages"]]})
    data = write(tmp_path / "sys.jsonl", rows)
    overrides = quick(f"data.train_files=[{data}]", "data.eval_ratio=0", f"data.num_proc={processes}")
    tokenizer = no_system_tokenizer
    with pytest.raises(KosovError, match=rf"{data}:4: .*chat template refused the row.*System role not supported"
                       ) as error:
        build_sft_data(compose(overrides), tokenizer, tokenizer.eos_token_id)
    assert error.value.where == f"{data}:4" and "data.on_bad_row=skip" in error.value.fix
    kept = build_sft_data(compose([*overrides, "data.on_bad_row=skip"]), tokenizer, tokenizer.eos_token_id)
    assert kept.summary["train_rows"] == 6 and kept.summary["skipped"] == {"template error": 1}


def test_a_prompt_the_chat_template_raises_on_is_named_by_line_or_skipped(tmp_path, no_system_tokenizer):
    from training.grpo import build_data

    rows = [{"prompt": [{"role": "user", "content": f"문제 {i}"}], "answer": str(i)} for i in range(8)]
    rows[5]["prompt"].insert(0, {"role": "system", "content": "수학 선생님"})
    data = write(tmp_path / "prompts.jsonl", rows)
    overrides = ["experiment=smoke-grpo", f"data.train_files=[{data}]", "data.eval_ratio=0"]
    tokenizer = no_system_tokenizer
    with pytest.raises(KosovError, match=rf"{data}:6: .*System role not supported"):
        build_data(compose(overrides), tokenizer, tokenizer.eos_token_id)
    kept = build_data(compose([*overrides, "data.on_bad_row=skip"]), tokenizer, tokenizer.eos_token_id)
    assert len(kept.train) == 7 and kept.summary["skipped"] == {"template error": 1}


@pytest.fixture
def no_model(monkeypatch):
    """The model must not load: a check that fires after it loaded fails the test."""
    import training.train

    def load(*args, **kwargs):
        raise AssertionError("the model loaded")

    monkeypatch.setattr(training.train, "load_base_model", load)


@pytest.mark.parametrize("asks", [[], ["method.lr_scheduler_type=reduce_lr_on_plateau"], ["objective=eval_loss"]])
def test_an_eval_split_the_skipped_rows_emptied_is_refused_before_the_model_loads(tmp_path, no_model, asks):
    """Every held-out row too long (on_overlong=skip): the run crashed after loading (a scheduler on the eval loss),
    after all of training (objective=eval_loss, with a fix that said to set eval_ratio) or trained unevaluated."""
    from training.train import train

    data = write(tmp_path / "train.jsonl", [chat(i) for i in range(12)])
    held = write(tmp_path / "eval.jsonl", [chat(i, "아주 긴 답변 " * 400) for i in range(2)])
    cfg = compose(quick(f"output_dir={tmp_path / 'run'}", f"data.train_files=[{data}]", f"data.eval_files=[{held}]",
                        "data.on_overlong=skip", *asks))
    with pytest.raises(KosovError, match=r"all 2 held-out eval row\(s\) \(data.eval_files\) were skipped "
                                         r"\(longer than max_length: 2\)") as error:
        train(cfg)
    assert "raise method.sft.max_length" in error.value.fix and "data.eval_files" in error.value.fix
    assert all(need.split("=")[1] in str(error.value) for need in asks)


def test_a_held_out_share_the_skipped_rows_emptied_trains_without_eval_and_says_so(tmp_path, caplog):
    """data.eval_ratio alone (the default) and its held-out row too long: nothing needs the eval, the run trains,
    and the log says it was not evaluated and why."""
    import logging

    from training.train import train

    long = chat(99, "아주 긴 답변 " * 400)
    data = write(tmp_path / "train.jsonl", [chat(1)] * 6 + [long])  # the one row held out: the long one
    with caplog.at_level(logging.WARNING, logger="training.data_rows"):
        result = train(compose(quick(f"output_dir={tmp_path / 'run'}", f"data.train_files=[{data}]",
                                     "data.on_overlong=skip", "method.max_steps=1")))
    assert ("all 1 held-out eval row(s) (data.eval_ratio=0.05) were skipped (longer than max_length: 1): the run "
            "trains without evaluating") in caplog.text
    assert result.metrics["data"]["eval_rows"] == 0 and result.metrics["data"]["eval_held_out"] == 1


def test_a_grpo_eval_split_the_skipped_prompts_emptied_is_refused_before_the_model_loads(tmp_path, no_model):
    from training.train import train

    prompts = write(tmp_path / "prompts.jsonl", [{"prompt": f"문제 {i}", "answer": str(i)} for i in range(8)])
    held = write(tmp_path / "eval.jsonl", [{"prompt": "아주 긴 문제 " * 200, "answer": "1"}] * 2)
    cfg = compose(["experiment=smoke-grpo", f"output_dir={tmp_path / 'run'}", f"data.train_files=[{prompts}]",
                   f"data.eval_files=[{held}]", "data.on_overlong=skip"])
    with pytest.raises(KosovError, match=r"all 2 held-out eval row\(s\).*longer than max_prompt_length: 2") as error:
        train(cfg)
    assert "raise method.grpo.max_prompt_length" in error.value.fix


def test_grpo_provenance_counts_and_licenses_only_the_prompts_that_train(tmp_path, tiny_tokenizer):
    """Skipped prompts were counted as trained: 4 overlong CC-BY-NC prompts marked a release non-commercial although
    none of them trained."""
    from training.grpo import build_data

    rows = [{"prompt": f"문제 {i}", "answer": str(i), "meta": {"license": "Apache-2.0", "source": "mine"}}
            for i in range(8)]
    rows += [{"prompt": "아주 긴 문제 " * 200, "answer": "1", "meta": {"license": "CC-BY-NC-4.0", "source": "nc"}}] * 4
    data = write(tmp_path / "prompts.jsonl", rows)
    cfg = compose(["experiment=smoke-grpo", f"data.train_files=[{data}]", "data.on_overlong=skip", "data.eval_ratio=0"])
    summary = build_data(cfg, tiny_tokenizer, tiny_tokenizer.eos_token_id).summary
    assert summary["train_rows"] == summary["train_prompts"] == 8
    assert summary["licenses"] == {"Apache-2.0": 8} and summary["license_sources"] == {"Apache-2.0": {"mine": 8}}
    assert summary["skipped"] == {"longer than max_prompt_length": 4}


def test_no_usable_rows_names_the_files_given_not_only_the_recipes_dataset(tmp_path, tiny_tokenizer):
    from training.sft_data import build_sft_data

    bad = write(tmp_path / "bad.jsonl", [{"messages": [{"role": "user", "content": "질문"}]}] * 2)
    with pytest.raises(KosovError, match=rf"no usable training rows in data.train_files=\[{bad}\] .*no final "
                                         "assistant turn: 2") as error:
        build_sft_data(compose(quick(f"data.train_files=[{bad}]", "data.on_bad_row=skip")), tiny_tokenizer,
                       tiny_tokenizer.eos_token_id)
    assert "data.on_bad_row=error" in error.value.fix


def test_a_nested_column_of_mixed_types_is_named_by_column_and_row(tmp_path, tiny_tokenizer):
    """"info": {"unit": 3} in one row and {"unit": "원"} in another failed as a raw pyarrow ArrowInvalid."""
    from training.grpo import build_data

    rows = [{"prompt": f"문제 {i}", "answer": str(i), "info": {"unit": "원" if i == 5 else 3}} for i in range(8)]
    data = write(tmp_path / "prompts.jsonl", rows)
    cfg = compose(["experiment=smoke-grpo", f"data.train_files=[{data}]", "data.eval_ratio=0"])
    with pytest.raises(KosovError, match=rf"{data}:6: column 'info' holds values of different types") as error:
        build_data(cfg, tiny_tokenizer, tiny_tokenizer.eos_token_id)
    assert "'info'" in error.value.fix
    write(data, [{"prompt": f"문제 {i}", "answer": str(i), "info": {"unit": "원"}} for i in range(8)])
    assert build_data(cfg, tiny_tokenizer, tiny_tokenizer.eos_token_id).train["info"] == [{"unit": "원"}] * 8


def test_provenance_names_the_data_the_run_read_when_train_files_are_overridden(tmp_path, tiny_tokenizer):
    """data.train_files=[/data/my_chat.jsonl] on a recipe of ko-chat-seed kept data.name=ko-chat-seed: provenance.json,
    and from it the model card and the data lineage, named a dataset the run never read."""
    from training.sft_data import build_sft_data

    mine = write(tmp_path / "my_chat.jsonl", [chat(i) for i in range(6)])

    def recorded(*overrides: str) -> dict:
        summary = build_sft_data(compose(quick(*overrides)), tiny_tokenizer, tiny_tokenizer.eos_token_id).summary
        return {k: summary[k] for k in ("name", "recipe_name") if k in summary}

    assert recorded() == {"name": "ko-chat-seed"}  # the recipe's own files
    assert recorded(f"data.train_files=[{mine}]") == {"name": "my_chat", "recipe_name": "ko-chat-seed"}
    assert recorded("data.train_files=[pkg://data_tools/datasets/ko_math/sft.jsonl]") == \
        {"name": "ko-math-sft", "recipe_name": "ko-chat-seed"}  # the files of another kosov data recipe
    assert recorded(f"data.train_files=[{mine}]", "data.name=my-chat") == {"name": "my-chat"}  # the user's name
