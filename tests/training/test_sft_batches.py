"""How SFT batches reach the Trainer: packing for SDPA takes one block per forward (a flattened micro-batch makes
SDPA attend over all its blocks), and a run of few optimizer steps says so before it trains."""

from __future__ import annotations

import json
import logging

import pytest

from tests.helpers import quick
from training import sft
from training.recipes import compose
from training.train import train

# 24 rows (1 held out) packed into 5 blocks of 1024: a step of 2 blocks per device x 2 accumulation
PACKED = ["method.sft.packing=true", "method.sft.max_length=1024", "method.per_device_train_batch_size=2",
          "method.gradient_accumulation_steps=2", "method.max_steps=1", "data.max_rows=24"]
SPLIT = {"per_device_train_batch_size": 1, "gradient_accumulation_steps": 4, "per_device_eval_batch_size": 1}


def first_step(result) -> tuple[float, float]:
    step = next(h for h in result.trainer.state.log_history if "grad_norm" in h)
    return step["loss"], step["grad_norm"]


def test_packing_with_sdpa_takes_one_block_per_forward_for_the_same_step(tmp_path, monkeypatch, caplog):
    """2 blocks x 2 accumulation become 1 x 4: the same 4 blocks in the step, the same loss and gradient as the
    flattened micro-batches (what a kernel that keeps blocks apart still gets), without SDPA's dense mask over a
    row of 2 blocks."""
    with caplog.at_level(logging.INFO, logger="training.sft"):
        split = train(compose(quick(f"output_dir={tmp_path / 'split'}", *PACKED)))
    args = split.trainer.args
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps, args.per_device_eval_batch_size) \
        == (1, 4, 1)
    assert "packing with sdpa: 1 block per forward x 4 accumulation steps (the recipe's 2 blocks per device x 2)" \
        in caplog.text
    assert "this run will take only" not in caplog.text  # max_steps set: the user chose the count
    prov = json.loads((split.run_dir / "provenance.json").read_text(encoding="utf-8"))
    assert prov["runtime"]["attention"] == "sdpa" and prov["runtime"]["batch"] == SPLIT
    ids = next(iter(split.trainer.get_train_dataloader()))["input_ids"]  # the collated batch a forward gets
    assert ids.shape[0] == 1 and ids.shape[1] in map(len, split.trainer.train_dataset["input_ids"])  # one block

    monkeypatch.setattr(sft, "keeps_blocks_apart", lambda attention: True)  # the flattened way, as before
    flat = train(compose(quick(f"output_dir={tmp_path / 'flat'}", *PACKED)))
    assert (flat.trainer.args.per_device_train_batch_size, flat.trainer.args.gradient_accumulation_steps) == (2, 2)
    assert flat.metrics["tokens_seen"] == split.metrics["tokens_seen"]
    assert first_step(split) == pytest.approx(first_step(flat), rel=1e-5)


def test_a_run_split_into_blocks_resumes(tmp_path):
    """The resume check compares the recipe, not the Trainer's batches: stopped after step 1 and resumed, the run
    takes the same step 2 (the epoch's last block) as one that never stopped."""
    straight = train(compose(quick(f"output_dir={tmp_path / 'straight'}", *PACKED, "method.max_steps=2")))
    out = tmp_path / "resumed"
    train(compose(quick(f"output_dir={out}", *PACKED, "method.save_steps=1")))
    resumed = train(compose(quick(f"output_dir={out}", *PACKED, "method.save_steps=1", "method.max_steps=2",
                                  "resume=true")))
    assert resumed.trainer.args.per_device_train_batch_size == 1 and resumed.metrics["global_step"] == 2
    assert json.loads((out / "checkpoints" / "checkpoint-2" / "trainer_state.json").read_text())[
        "train_batch_size"] == 1
    assert resumed.metrics["train_loss_curve"][-1] == pytest.approx(straight.metrics["train_loss_curve"][-1], rel=1e-5)


@pytest.mark.parametrize("attention, split", [
    ("sdpa", True), ("eager", True), ("flash_attention_2", False), ("flash_attention_3", False),
    ("kernels-community/flash-attn2", False), ("flex_attention", False)])
def test_only_kernels_that_attend_over_the_whole_row_split_it(attention, split):
    cfg = compose(["experiment=qwen3-1.7b-ko-sft", "tracking=none"])  # 2 blocks of 4096 x 8 accumulation
    recipe = {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 8, "per_device_eval_batch_size": 4}
    assert sft.batch_sizes(cfg, attention) == ({**recipe, "per_device_train_batch_size": 1,
                                                "gradient_accumulation_steps": 16, "per_device_eval_batch_size": 1}
                                               if split else recipe)
    cfg.method.sft.packing = False  # unpacked: TRL pads, one sequence per row
    assert sft.batch_sizes(cfg, attention) == recipe
    grpo = compose(["experiment=qwen3-1.7b-ko-grpo", "tracking=none"])  # recorded in provenance as they are
    assert sft.batch_sizes(grpo, attention) == {"per_device_train_batch_size": grpo.method.per_device_train_batch_size,
                                                "gradient_accumulation_steps": grpo.method.gradient_accumulation_steps,
                                                "per_device_eval_batch_size": grpo.method.per_device_eval_batch_size}


def built(overrides: list[str], attention: str = "sdpa"):
    """The SFT trainer a recipe gets on this machine (data rendered, packed), built but not trained."""
    from pathlib import Path
    import tempfile

    from training.adapters import lora_config
    from training.models import end_of_turn_id, load_base_model, load_tokenizer, model_source
    from training.run_dir import RunDir
    from training.train import trainer_args

    cfg = compose([*overrides, "tracking=none", "device=cpu"])
    cfg.model.attn_implementation = attention
    source, _ = model_source(cfg.model)
    tokenizer = load_tokenizer(cfg.model, source)
    data = sft.build_data(cfg, tokenizer, end_of_turn_id(cfg.model, tokenizer))
    model = load_base_model(cfg, source, "cpu")
    common = trainer_args(cfg, RunDir(Path(tempfile.mkdtemp())), "cpu", [], model.config.model_type)
    return sft.build_trainer(cfg, model, tokenizer, data, lora_config(cfg.peft, model), common)


def test_only_packing_for_sdpa_changes_the_trainers_batches(caplog):
    """Built only (FlexAttention has no backward on CPU): flex_attention keeps the recipe's 2 blocks per forward, and
    so does SDPA without packing (TRL pads; no row holds several sequences)."""
    for attention, packing, sizes in [("sdpa", "true", (1, 4, 1)), ("flex_attention", "true", (2, 2, 8)),
                                      ("sdpa", "false", (2, 2, 8))]:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="training.sft"):
            trainer = built(quick(*PACKED, f"method.sft.packing={packing}"), attention=attention)
        args = trainer.args
        assert trainer.model.config._attn_implementation == attention
        assert (args.per_device_train_batch_size, args.gradient_accumulation_steps,
                args.per_device_eval_batch_size) == sizes, (attention, packing)
        assert ("packing with" in caplog.text) == (sizes[0] == 1)


def test_padding_free_without_packing_on_sdpa_is_warned_about(caplog):
    """padding_free without packing: TRL flattens the whole batch into one row, which SDPA attends over whole (no
    block to split off); the warning names the cost and the fixes. FlashAttention-like kernels are not warned."""
    for attention, warned in [("sdpa", True), ("flex_attention", False)]:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="training.sft"):
            built(quick(*PACKED, "method.sft.packing=false", "method.sft.padding_free=true"), attention=attention)
        assert ("padding_free=true with sdpa" in caplog.text and "2x the attention" in caplog.text) == warned


def test_a_real_recipe_on_its_seed_data_warns_that_it_takes_few_steps(caplog):
    """ko-chat-seed under a GPU recipe's batches: ~2 optimizer steps, the first at learning rate 0, eval and save
    steps never reached. The warning names the numbers and the fix."""
    with caplog.at_level(logging.WARNING, logger="training.sft"):
        trainer = built(["experiment=qwen3-1.7b-ko-sft", "model=tiny-ko", "method.kernels=off"])
    [warning] = [r.getMessage() for r in caplog.records if "this run will take only" in r.getMessage()]
    blocks = len(trainer.train_dataset)
    steps = 2 * -(-blocks // 16)
    assert f"only {steps} optimizer steps: {blocks} blocks of up to 4096 tokens" in warning
    assert ("16 blocks a step (per_device_train_batch_size 2 x 1 process x gradient_accumulation_steps 8), "
            f"{steps // 2} step") in warning and "x 2 epochs; warmup takes 1, the first at learning rate 0" in warning
    assert "eval_steps 25 and save_steps 50 never reached" in warning and "data.train_files=[...]" in warning


def test_the_warning_counts_the_steps_the_trainer_takes(tmp_path, caplog):
    """16 rows (1 held out) packed into 7 blocks of 512, one block per forward, 2 x 2 per step, over 2 epochs: the
    number the warning says is the number of steps the Trainer takes."""
    overrides = ["method.sft.packing=true", "method.sft.max_length=512", "method.per_device_train_batch_size=2",
                 "method.gradient_accumulation_steps=2", "method.num_train_epochs=2", "method.max_steps=-1",
                 "data.max_rows=16"]
    with caplog.at_level(logging.WARNING, logger="training.sft"):
        result = train(compose(quick(f"output_dir={tmp_path / 'run'}", *overrides)))
    said = [r.getMessage() for r in caplog.records if "this run will take only" in r.getMessage()]
    steps, blocks = result.metrics["global_step"], len(result.trainer.train_dataset)
    assert blocks % 4 and steps == 2 * -(-blocks // 4)  # a last, shorter step each epoch
    assert len(said) == 1 and f"only {steps} optimizer steps: {blocks} blocks" in said[0], said


def test_no_warning_for_a_run_of_enough_steps_or_a_chosen_count(caplog):
    enough = quick("method.max_steps=-1", "method.per_device_train_batch_size=1", "method.eval_steps=10")
    with caplog.at_level(logging.WARNING, logger="training.sft"):
        built(enough)  # one sequence a step: more than 20 steps, an eval every 10
        built([*enough, "method.max_steps=3"])  # the user chose 3 steps
    assert "this run will take only" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="training.sft"):
        built([*enough, "method.eval_steps=100"])  # enough steps, but no eval between the first and the last
    assert "eval_steps 100 and save_steps 100 never reached (eval runs only before and after training)" in caplog.text


def test_a_full_fine_tune_at_a_lora_learning_rate_is_warned_about(caplog):
    """peft=none under a LoRA recipe's 1e-4 moves every weight ten times too far; at 1e-5 nothing is said."""
    for rate, warned in [("1e-4", True), ("1e-5", False)]:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="training.sft"):
            built(quick("peft=none", f"method.learning_rate={rate}"))
        assert ("a full fine-tune (peft=none) at method.learning_rate=0.0001" in caplog.text) == warned, rate
