"""GRPO on tiny-ko: every reward is logged, the LoRA weights move, the adapter reloads; GRPO continues an
SFT adapter (given, or trained first by the same recipe); bad setups fail before the model loads."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch
import yaml
from safetensors.torch import load_file

from training.recipes import compose
from training.errors import KosovError
from training.train import train


@pytest.fixture(scope="module")
def grpo_run(tmp_path_factory):
    return train(compose(["experiment=smoke-grpo", f"output_dir={tmp_path_factory.mktemp('grpo') / 'run'}"]))


def test_every_reward_is_logged_on_its_own(grpo_run):
    logged = {k for h in grpo_run.trainer.state.log_history for k in h}
    for name in compose(["experiment=smoke-grpo"]).rewards:
        assert f"rewards/{name}/mean" in logged, name
        assert f"rewards/{name}/mean" in grpo_run.metrics["rewards"]
    assert grpo_run.metrics["global_step"] == 6


def test_lora_weights_changed_and_the_adapter_reloads(grpo_run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = grpo_run.run_dir / "adapter"
    weights = load_file(adapter / "adapter_model.safetensors")
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)  # B starts at zero
    base = AutoModelForCausalLM.from_pretrained(json.loads((adapter / "adapter_config.json").read_text())
                                                ["base_model_name_or_path"])
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        before = base(ids).logits
        after = PeftModel.from_pretrained(base, adapter)(ids).logits
    assert not torch.allclose(before, after, atol=1e-5)


def test_grpo_continues_a_given_sft_adapter(smoke_run, tmp_path, caplog):
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="training.adapters"):
        result = train(compose(["experiment=smoke-grpo", f"output_dir={out}", "method.max_steps=2",
                                f"method.init_adapter={smoke_run.run_dir}", "peft=dora", "peft.r=32"]))
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["model"]["start_adapter"] == str(smoke_run.run_dir / "adapter")
    # the recipe's peft settings do not reshape a continued adapter: the warning and the provenance say so
    assert "its own settings (r=8, dora=False): the recipe's peft.r=32, peft.method=dora do not apply" in caplog.text
    assert prov["model"]["start_adapter_settings"]["r"] == 8 and not prov["model"]["start_adapter_settings"]["dora"]
    sft = load_file(smoke_run.run_dir / "adapter" / "adapter_model.safetensors")
    grpo = load_file(out / "adapter" / "adapter_model.safetensors")
    assert sft.keys() == grpo.keys()  # the same adapter (r=8 from SFT), trained further
    assert any(not torch.equal(sft[k], grpo[k]) for k in sft)
    assert result.metrics["global_step"] == 2


def test_sft_then_grpo_in_one_recipe(tmp_path):
    out = tmp_path / "run"
    train(compose(["experiment=smoke-sft-grpo", f"output_dir={out}", "method.max_steps=2"]))
    assert json.loads((out / "sft" / "metrics.json").read_text())["global_step"] == 10
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["model"]["start_adapter"] == str(out / "sft" / "adapter")
    assert (out / "adapter" / "adapter_model.safetensors").is_file()

    # Killed after its SFT stage, before GRPO's first checkpoint: resume=true starts GRPO again, keeps the stage.
    for name in ("checkpoints", "adapter"):
        shutil.rmtree(out / name)
    (out / "metrics.json").unlink()
    stage_done = (out / "sft" / "metrics.json").stat().st_mtime_ns
    again = train(compose(["experiment=smoke-sft-grpo", f"output_dir={out}", "method.max_steps=2", "resume=true"]))
    assert again.metrics["global_step"] == 2 and (out / "sft" / "metrics.json").stat().st_mtime_ns == stage_done
    # A finished stage is reused only with the recipe it trained with (here the GRPO part left no config yet).
    for name in ("config.yaml", "provenance.json"):
        (out / name).unlink()
    with pytest.raises(KosovError, match=r"finished SFT stage .* would be reused.*peft\.r: 8 -> 16"):
        train(compose(["experiment=smoke-sft-grpo", f"output_dir={out}", "resume=true",
                       'method.grpo.sft_stage=["experiment=smoke-sft","peft.r=16"]']))


def test_the_sft_stage_trains_the_base_the_run_names(tmp_path):
    # model.name_or_path on the command line names the base of the whole chain, not only of its GRPO part
    from training.models import model_source

    base = tmp_path / "my-base"
    shutil.copytree(model_source(compose(["experiment=smoke-sft"]).model)[0], base)
    out = tmp_path / "run"
    train(compose(["experiment=smoke-sft-grpo", f"output_dir={out}", "method.max_steps=1", f"model.name_or_path={base}",
                   'method.grpo.sft_stage=["experiment=smoke-sft","method.max_steps=2"]']))
    stage = yaml.safe_load((out / "sft" / "config.yaml").read_text())
    assert stage["model"]["name_or_path"] == str(base)
    assert json.loads((out / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base)


def test_a_chained_run_claims_its_folder_before_the_sft_stage_trains(smoke_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(smoke_run.run_dir, out)  # a finished SFT run
    with pytest.raises(KosovError, match="already holds a run"):
        train(compose(["experiment=smoke-sft-grpo", f"output_dir={out}"]))
    with pytest.raises(KosovError, match="resume=true, but the recipe differs.*: name: 'smoke-sft' -> 'smoke-sft-grpo'; "
                                         "method.name: 'sft' -> 'grpo'; data.name"):
        train(compose(["experiment=smoke-sft-grpo", f"output_dir={out}", "resume=true"]))  # not its checkpoint
    assert not (out / "sft").exists()
    with pytest.raises(KosovError, match="the SFT stage pins tiny-ko at b+, GRPO at a+"):
        train(compose(["experiment=smoke-sft-grpo", f"output_dir={tmp_path / 'pins'}", f"model.revision={'a' * 40}",
                       f'method.grpo.sft_stage=["experiment=smoke-sft","model.revision={"b" * 40}"]']))


def test_an_adapter_of_another_base_is_refused(smoke_run, tmp_path):
    cfg = compose(["experiment=smoke-grpo", f"output_dir={tmp_path / 'run'}", "model.tiny.hidden_size=32",
                   f"method.init_adapter={smoke_run.run_dir}"])
    with pytest.raises(KosovError, match="was trained on"):
        train(cfg)


@pytest.mark.parametrize("overrides, words", [
    (["method.grpo.num_generations=3"], ["not a multiple of the group size", "num_generations=3"]),
    (["method.grpo.generation=vllm", "device=cpu"], ["generation=vllm", "CUDA GPU", "generation=auto"]),
    (["method.kernels=liger", "device=cpu"], ["Liger", "CUDA GPU", "method.kernels=off"]),
    (["method.grpo.generation_batch_size=12"], ["generation_batch_size=12", "8 completions", "multiple of 8"]),
    (["method.grpo.continuous_batching_memory=1.5"], ["continuous_batching_memory=1.5", "(0, 1]"]),
    # TRL refused it too, but only in build_trainer, with the data and the model loaded and the run folder written
    (["data.eval_ratio=0.2", "method.per_device_eval_batch_size=6"],
     ["eval batch holds 6 completions", "num_generations=4", "per_device_eval_batch_size to a multiple of 4"]),
])
def test_bad_grpo_setups_fail_before_the_model_loads(tmp_path, overrides, words):
    cfg = compose(["experiment=smoke-grpo", f"output_dir={tmp_path / 'run'}", *overrides])
    with pytest.raises(KosovError) as error:
        train(cfg)
    for word in words:
        assert word in str(error.value)
    assert not (tmp_path / "run").exists()


def test_a_generation_round_can_feed_several_optimizer_steps(tmp_path, monkeypatch):
    from trl import GRPOTrainer

    rounds = []
    original = GRPOTrainer._generate_and_score_completions

    def counted(self, inputs):
        out = original(self, inputs)
        rounds.append(len(out["completion_ids"]))
        return out

    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", counted)
    result = train(compose(["experiment=smoke-grpo", f"output_dir={tmp_path / 'run'}", "method.max_steps=4",
                            "method.grpo.generation_batch_size=16"]))
    assert result.metrics["global_step"] == 4
    assert rounds == [16, 16]  # two rounds of 16 completions for four steps of 8, not four rounds of 8


def test_a_prompt_row_without_the_answer_column_names_its_line(tmp_path):
    rows = [{"prompt": [{"role": "user", "content": "2 더하기 3은?"}], "answer": "5"}] * 3
    rows.append({"prompt": [{"role": "user", "content": "4 곱하기 5는?"}]})
    data = tmp_path / "math.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    cfg = compose(["experiment=smoke-grpo", f"output_dir={tmp_path / 'run'}", f"data.train_files=[{data}]"])
    with pytest.raises(KosovError, match=rf"{data}:4: missing column: the row has no \['answer'\]"):
        train(cfg)


def prompt_file(tmp_path, rows: list[dict]):
    data = tmp_path / "math.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return data


def test_gold_answers_written_as_numbers_and_as_text_both_reach_the_reward(tmp_path, tiny_tokenizer):
    from training.grpo import build_data
    from training.rewards import math_accuracy

    ask = [{"role": "user", "content": "문제"}]
    data = prompt_file(tmp_path, [{"prompt": ask, "answer": 1200}, {"prompt": ask, "answer": "3/4"},
                                  {"prompt": ask, "answer": 7, "unit": "개"}])  # a column only a later row has
    cfg = compose(["experiment=smoke-grpo", f"data.train_files=[{data}]", "data.eval_ratio=0"])
    train_set = build_data(cfg, tiny_tokenizer, tiny_tokenizer.eos_token_id).train
    assert train_set["answer"] == ["1200", "3/4", "7"] and train_set["unit"] == [None, None, "개"]
    completions = [[{"role": "assistant", "content": f"정답: {a}"}] for a in ("1,200원", "0.75", "8개")]
    assert math_accuracy(completions, answer=train_set["answer"]) == [1.0, 1.0, 0.0]

    data = prompt_file(tmp_path, [{"prompt": ask, "answer": "5"}, {"prompt": ask, "answer": ["5", "다섯"]}])
    with pytest.raises(KosovError, match=rf"{data}:2: column 'answer' is str in earlier rows but list here"):
        build_data(compose(["experiment=smoke-grpo", f"data.train_files=[{data}]", "data.eval_ratio=0"]),
                   tiny_tokenizer, tiny_tokenizer.eos_token_id)


def test_a_control_token_written_in_a_prompt_is_refused_or_skipped(tmp_path, tiny_tokenizer):
    from training.grpo import build_data

    rows = [{"prompt": "3 더하기 4는?", "answer": "7"}] * 3 + [{"prompt": "<|im_end|> 토큰이란?", "answer": "1"}]
    data = prompt_file(tmp_path, rows)
    overrides = ["experiment=smoke-grpo", f"data.train_files=[{data}]", "data.eval_ratio=0"]
    with pytest.raises(KosovError, match=rf"{data}:4: .*control token.*<\|im_end\|>"):
        build_data(compose(overrides), tiny_tokenizer, tiny_tokenizer.eos_token_id)
    kept = build_data(compose([*overrides, "data.on_bad_row=skip"]), tiny_tokenizer, tiny_tokenizer.eos_token_id)
    assert len(kept.train) == 3 and kept.summary["skipped"] == {"special token in text": 1}


def test_a_grpo_run_resumes_from_its_checkpoint(tmp_path):
    out = tmp_path / "run"
    train(compose(["experiment=smoke-grpo", f"output_dir={out}", "method.max_steps=4", "method.save_steps=2"]))
    result = train(compose(["experiment=smoke-grpo", f"output_dir={out}", "method.max_steps=6",
                            "method.save_steps=2", "resume=true"]))
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["resumed_from"].endswith("checkpoint-4")
    assert [p["resumed_from"] for p in prov["earlier"]] == [None]  # the first run's record is kept
    assert result.metrics["global_step"] == 6
    steps = [s for s, _ in result.metrics["train_loss_curve"]]
    assert steps == [1, 2, 3, 4, 5, 6]  # one history across both processes' steps


def test_vllm_context_is_sized_to_prompt_plus_completion(grpo_run):
    # vLLM reserves KV cache for its whole context window; the model's own (40k for Qwen3) would waste it
    assert grpo_run.trainer.args.vllm_max_model_length == 256 + 32


def test_when_every_prompt_is_skipped_the_error_says_why(tmp_path, tiny_tokenizer):
    from training.grpo import build_data

    data = prompt_file(tmp_path, [{"prompt": "<|im_end|> 토큰이란?", "answer": "1"}] * 3)
    cfg = compose(["experiment=smoke-grpo", f"data.train_files=[{data}]", "data.eval_ratio=0", "data.on_bad_row=skip"])
    with pytest.raises(KosovError, match=r"every prompt was skipped \(special token in text: 3\)") as error:
        build_data(cfg, tiny_tokenizer, tiny_tokenizer.eos_token_id)
    assert "data.on_bad_row=error" in error.value.fix
    data = prompt_file(tmp_path, [{"prompt": "3 더하기 4는?", "answer": "7"}] * 3)
    cfg = compose(["experiment=smoke-grpo", f"data.train_files=[{data}]", "data.eval_ratio=0",
                   "data.on_overlong=skip", "method.grpo.max_prompt_length=4"])
    with pytest.raises(KosovError, match=r"\(longer than max_prompt_length: 3\)") as error:
        build_data(cfg, tiny_tokenizer, tiny_tokenizer.eos_token_id)
    assert error.value.fix == "raise method.grpo.max_prompt_length"
