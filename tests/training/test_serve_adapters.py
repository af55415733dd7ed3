"""`kosov serve` with a LoRA adapter: its answers, another base refused, the chat template its run trained with."""

from __future__ import annotations

import dataclasses
import json
import logging

import httpx
import pytest

from tests.training.serve_helpers import answer
from training.config import KosovConfig
from training.errors import KosovError
from training.models import load_base_model, load_tokenizer, model_source
from training.serve import ServeConfig, start_in_thread
from training.tiny_ko import TEMPLATE_PATH


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    """A LoRA adapter on tiny-ko with random (non-zero) weights: it changes what the model says."""
    from peft import LoraConfig, get_peft_model

    cfg = KosovConfig()
    model = load_base_model(cfg, model_source(cfg.model)[0], "cpu")
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    folder = tmp_path_factory.mktemp("run") / "adapter"
    peft_model.save_pretrained(folder)
    return folder


def test_serving_a_base_with_an_adapter(server, adapter):
    url, stop = start_in_thread(KosovConfig(), ServeConfig(port=0, adapter=str(adapter.parent)))  # the run folder
    try:
        served = f"tiny-ko+{adapter.parent}"
        assert [m["id"] for m in httpx.get(f"{url}/models").json()["data"]] == [served]
        adapted = answer(url, model=served, max_tokens=12, temperature=0)["choices"][0]["message"]["content"]
    finally:
        stop()
    base = answer(server, max_tokens=12, temperature=0)["choices"][0]["message"]["content"]
    assert adapted != base


def test_an_adapter_of_another_base_is_refused_before_loading(adapter, tmp_path):
    import shutil

    other = tmp_path / "adapter"
    shutil.copytree(adapter, other)  # a whole adapter (its weights too), said to be another base's
    config = json.loads((adapter / "adapter_config.json").read_text())
    (other / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "Qwen/Qwen3-8B"}))
    with pytest.raises(KosovError, match="was trained on 'Qwen/Qwen3-8B'"):
        start_in_thread(KosovConfig(), ServeConfig(port=0, adapter=str(other)))


def test_an_adapter_is_served_with_the_chat_template_and_thinking_mode_its_run_trained_with(custom_template_run,
                                                                                             tmp_path):
    """The run's own template, and its thinking mode: model.thinking=auto on data without reasoning trained every
    answer after an empty think block, which the template's default (thinking on) leaves out. A request's
    enable_thinking wins."""
    import shutil

    trained_run, template = custom_template_run
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    provenance = json.loads((run / "provenance.json").read_text())
    provenance["data"]["thinking_rows"] = 0  # as if its rows carried no reasoning
    (run / "provenance.json").write_text(json.dumps(provenance))
    question = [{"role": "user", "content": "경복궁은 언제 지어졌나요?"}]
    tokenizer = load_tokenizer(dataclasses.replace(KosovConfig().model, chat_template=str(template)),
                               model_source(KosovConfig().model)[0])

    def tokens(**kwargs) -> int:
        text = tokenizer.apply_chat_template(question, tokenize=False, add_generation_prompt=True, **kwargs)
        assert "당신은 한국어로만 답하는 도우미입니다." in text  # the run's template adds it
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    assert tokens(enable_thinking=False) != tokens(enable_thinking=True)
    url, stop = start_in_thread(KosovConfig(), ServeConfig(port=0, adapter=str(run)))  # the recipe sets no template
    try:
        served = answer(url, model=f"tiny-ko+{run}", messages=question, max_tokens=1)["usage"]["prompt_tokens"]
        thinking = answer(url, model=f"tiny-ko+{run}", messages=question, max_tokens=1,
                          chat_template_kwargs={"enable_thinking": True})["usage"]["prompt_tokens"]
    finally:
        stop()
    assert served == tokens(enable_thinking=False) and thinking == tokens(enable_thinking=True)


def test_a_recipe_template_other_than_the_runs_wins_with_a_warning(custom_template_run, tmp_path, caplog):
    from training.adapters import adapter_model_config

    run, template = custom_template_run
    mcfg = KosovConfig().model
    with caplog.at_level(logging.WARNING, logger="training.adapters"):
        same = adapter_model_config(dataclasses.replace(mcfg, chat_template=str(template)), run / "adapter")
    assert same.chat_template == str(template) and not caplog.records  # the same template: nothing to say
    other = tmp_path / "other.jinja"
    other.write_text(TEMPLATE_PATH.read_text(encoding="utf-8"), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="training.adapters"):
        chosen = adapter_model_config(dataclasses.replace(mcfg, chat_template=str(other)), run / "adapter")
    assert chosen.chat_template == str(other)
    assert str(template) in caplog.text and str(other) in caplog.text
    # the recipe names no end of turn: the run's own closes an answer
    assert adapter_model_config(dataclasses.replace(mcfg, end_of_turn_token=None), run / "adapter"
                               ).end_of_turn_token == "<|im_end|>"


@pytest.mark.parametrize("mode, thinking_rows, expected", [
    ("on", 5, True), ("off", 5, False), ("auto", 0, False),  # auto on data without reasoning: empty think blocks
    ("auto", 5, None), ("auto", None, None),  # both modes trained, or not recorded: the template's own default
])
def test_the_thinking_mode_an_adapter_is_served_in_follows_its_training(tmp_path, mode, thinking_rows, expected):
    import yaml

    from training.adapters import trained_thinking

    (tmp_path / "adapter").mkdir()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"model": {"thinking": mode}}))
    data = {} if thinking_rows is None else {"thinking_rows": thinking_rows}
    (tmp_path / "provenance.json").write_text(json.dumps({"data": data}))
    assert trained_thinking(tmp_path / "adapter") is expected
