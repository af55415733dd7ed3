"""Base and adapted scored on one model, loaded by kosov, by lm-eval and by kosov's own evals alike: a base whose
config.vocab_size exceeds its tokenizer (every Qwen3: 151936 rows for 151669 tokens) is never resized."""

from __future__ import annotations

import json
import shutil

import pytest

from training.errors import KosovError
from training.evaluate import evaluate
from training.recipes import compose


@pytest.fixture(scope="module")
def padded(tmp_path_factory):
    """tiny-ko with 64 embedding rows more than its tokenizer has tokens, and a zero LoRA adapter on it (B = 0, as
    PEFT starts it) that also saves the whole embeddings (peft.modules_to_save=[embed_tokens])."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.models import model_source

    source, _ = model_source(compose(["experiment=smoke-eval"]).model)
    folder = tmp_path_factory.mktemp("padded")
    base, adapter = folder / "base", folder / "adapter"
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source)
    model.resize_token_embeddings(len(tokenizer) + 64, mean_resizing=False)
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                          LoraConfig(r=4, target_modules=["q_proj", "v_proj"], modules_to_save=["embed_tokens"],
                                     ensure_weight_tying=True))  # tiny-ko ties its head to its embeddings
    lora.save_pretrained(adapter)
    assert model.config.vocab_size == len(tokenizer) + 64
    return base, adapter


def test_a_base_with_more_embedding_rows_than_tokens_is_scored_with_its_adapter_unresized(padded, tmp_path,
                                                                                          monkeypatch):
    """lm-eval's own peft loading resized the adapted side's embeddings to the tokenizer (the two sides then scored
    over different vocabularies), and with modules_to_save failed with a size mismatch after the base side ran."""
    import transformers

    def resize(*args, **kwargs):
        raise AssertionError("the embeddings were resized")

    monkeypatch.setattr(transformers.PreTrainedModel, "resize_token_embeddings", resize)
    base, adapter = padded
    result = evaluate(compose(["experiment=smoke-eval", f"model.name_or_path={base}", f"eval.adapter={adapter}",
                               "eval.limit=40", "eval.math.limit=6", "eval.language.limit=6",
                               f"output_dir={tmp_path / 'eval'}"]))
    rows = {r["task"]: r for r in result.report["rows"]}
    assert set(rows) == {"ko_mini_bench", "ko_math_heldout[off]", "ko_language[off]"}
    assert rows["ko_mini_bench"]["n"] == 40
    for row in rows.values():  # a zero LoRA on the same loaded weights: the base's scores, item for item
        assert row["adapted"] == row["base"] and row["delta"] == 0
        assert (row["delta_stderr"], row["delta_stderr_kind"]) == (0, "paired")


@pytest.mark.parametrize("saved_as", ["safetensors", "bin"])  # bin: PEFT's older format
def test_an_adapter_with_embeddings_of_another_vocabulary_size_is_refused_before_the_base_is_scored(
        padded, tmp_path, monkeypatch, saved_as):
    from training.models import model_source

    monkeypatch.setenv("KOSOV_CACHE", str(tmp_path / "cache"))  # an empty score cache: nothing may be scored
    source, _ = model_source(compose(["experiment=smoke-eval"]).model)
    adapter = tmp_path / "adapter"
    shutil.copytree(padded[1], adapter)  # saved from the padded base, now said to be tiny-ko's own
    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": source}))
    if saved_as == "bin":
        import torch
        from safetensors.torch import load_file

        torch.save(load_file(adapter / "adapter_model.safetensors"), adapter / "adapter_model.bin")
        (adapter / "adapter_model.safetensors").unlink()
    vocab = json.loads((padded[0] / "config.json").read_text())["vocab_size"] - 64
    with pytest.raises(KosovError, match=f"another vocabulary size than the base's {vocab}") as error:
        evaluate(compose(["experiment=smoke-eval", f"eval.adapter={adapter}", f"output_dir={tmp_path / 'eval'}"]))
    assert f"embed_tokens.weight: {vocab + 64}" in str(error.value)
    assert not (tmp_path / "cache" / "eval_cache").exists()


def test_a_base_without_a_chat_template_is_scored_on_lm_eval_tasks_that_render_no_chat(tmp_path):
    """lm-eval's tasks without chat templates (eval=en-retention on a base checkpoint) need no template; kosov's own
    evals, which render chats, still say it is missing."""
    from training.models import model_source

    source, _ = model_source(compose(["experiment=smoke-eval"]).model)
    base = tmp_path / "no-template"
    shutil.copytree(source, base)
    (base / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((base / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (base / "tokenizer_config.json").write_text(json.dumps(config))
    plain = ["experiment=smoke-eval", f"model.name_or_path={base}", "eval.limit=8", "eval.apply_chat_template=false"]
    result = evaluate(compose([*plain, "eval.math.enabled=false", "eval.language.enabled=false",
                               f"output_dir={tmp_path / 'eval'}"]))
    assert [r["task"] for r in result.report["rows"]] == ["ko_mini_bench"]
    with pytest.raises(KosovError, match="has no chat template"):
        evaluate(compose([*plain, "eval.math.limit=2", "eval.language.enabled=false",
                          f"output_dir={tmp_path / 'eval2'}"]))
