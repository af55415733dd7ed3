"""train_throughput on CPU (tiny-ko, a few steps): both trainers, variants, failures, OOM, KORMo configs, bad flags."""

from __future__ import annotations

import json
import weakref
from pathlib import Path
from types import SimpleNamespace

import pytest


def lora_of(cfg) -> tuple:
    return cfg.r, cfg.lora_alpha, cfg.lora_dropout, cfg.target_modules


@pytest.fixture
def trainers_built(monkeypatch) -> list:
    """The LoRA of every TRL trainer built (SFTTrainer, GRPOTrainer and kosov's subclass of it), as passed (PEFT
    later resolves "all-linear" in place)."""
    import trl

    seen = []
    for cls in (trl.SFTTrainer, trl.GRPOTrainer):
        def spy(self, *args, _original=cls.__init__, **kwargs):
            seen.append(lora_of(kwargs["peft_config"]))
            _original(self, *args, **kwargs)
        monkeypatch.setattr(cls, "__init__", spy)
    return seen


@pytest.mark.parametrize("extra, recipe", [
    ([], "qwen3-1.7b-ko-sft"), (["--data", "merged"], "qwen3-1.7b-ko-sft"), (["--grpo"], "qwen3-1.7b-ko-grpo")])
def test_the_throughput_benchmark_runs_both_trainers_on_the_recipes_lora(tmp_path, capsys, trainers_built, extra,
                                                                         recipe):
    from benchmarks.train_throughput import main
    from training.recipes import compose

    results, rows = tmp_path / "RESULTS.md", tmp_path / "rows.json"
    assert main(["--cpu-smoke", "--results", str(results), "--json", str(rows), *extra]) == 0
    # the same LoRA on both sides, the recipe's (r, alpha, dropout, targets): only the trainers differ
    peft = compose([f"experiment={recipe}", "tracking=none"]).peft
    assert trainers_built == [(peft.r, peft.alpha, peft.dropout, peft.target_modules)] * 2
    out = capsys.readouterr().out
    assert f"LoRA r {peft.r}, alpha {peft.alpha}, dropout {peft.dropout}, all-linear on both" in out
    assert "| a: TRL defaults |" in out and "| b: kosov recipe |" in out and "| **b / a** |" in out
    assert "| peak allocated GiB | peak reserved GiB |" in out
    assert out[out.index("### "):].strip() in results.read_text()
    measured = json.loads(rows.read_text())["rows"]
    for side in measured.values():
        assert side["freed"] == 1.0  # collected before the next side: its memory is not in that side's peak
        assert 0 < side["tokens_per_s"] < float("inf") and side["tokens_per_step"] > 0
    if extra == ["--grpo"]:  # kosov generates for 2 steps at once: warm-up and timed steps are whole rounds
        assert f"kosov recipe {recipe};" in out
        assert "2 step(s) per generation round" in out and "2 warm-up + 2 timed steps" in out
        assert "| generated tokens/s |" in out and all(side["generated_tokens_per_s"] > 0 for side in measured.values())
    else:  # each conversation trains once, as in TRL: multi-turn rows are not split into a sample per turn
        kosov = measured["b: kosov recipe"]
        assert 0 < kosov["sequences"] <= kosov["rows"]
        assert f"kosov recipe {recipe} (sdpa, 1 block(s) per forward x 1 accumulation, Liger off" in out
        assert ("TRL 2 padded rows per step in one forward, kosov 1 packed block(s) per step" if not extra else
                "batch 1 per step for both (TRL's in one forward)") in out


def test_at_batch_2_the_header_says_kosovs_sdpa_side_ran_one_block_per_forward_with_accumulation(tmp_path, capsys):
    """SFT packing on SDPA takes one block per forward and the blocks per step as accumulation (training/sft.py,
    batch_sizes), while TRL's baseline puts all its padded rows through one forward: the header names the
    micro-batch the Trainer ran, and a note under the table says the row's peak memory comes from accumulation."""
    from benchmarks.train_throughput import main

    results, rows = tmp_path / "RESULTS.md", tmp_path / "rows.json"
    assert main(["--cpu-smoke", "--batch", "2", "--results", str(results), "--json", str(rows)]) == 0
    kosov = json.loads(rows.read_text())["rows"]["b: kosov recipe"]
    assert (kosov["per_forward"], kosov["accumulation"]) == (1, 2)  # the Trainer's own arguments
    assert kosov["tokens_per_step"] > 256  # more than one 256-token block a step: both micro-batches trained
    assert len(kosov["step_seconds"]) == 2  # each timed step, for the recompile warning
    text = results.read_text()
    assert "kosov 2 packed block(s) per step; kosov recipe qwen3-1.7b-ko-sft (sdpa, 1 block(s) per forward x 2 " \
           "accumulation, Liger off" in text
    assert "padded rows per step in one forward" in text
    assert "\nb: 1 block(s) per forward x 2 accumulation steps (2 blocks per optimizer step): its peak memory" in text
    assert "comes from the accumulation" in text and "b: timed step" not in text


@pytest.mark.parametrize("seconds, warned", [
    ([1.0, 1.1, 0.9, 4.0, 1.0, 1.0], "timed step 4 of 6 took 4.00 s, 4.0x the median 1.00 s"),
    ([1.0, 1.0, 1.0, 2.9, 1.0, 1.0], None),  # under 3x: a slow step, not a compile
    ([1.0, 9.0], None),  # two steps: neither is over 2x their median
    ([5.0, 1.0, 1.0], "timed step 1 of 3 took 5.00 s, 5.0x the median 1.00 s"),
    ([], None),
])
def test_a_timed_step_over_3x_the_median_is_warned_about_and_noted_under_the_table(capsys, seconds, warned):
    """A torch.compile or FlexAttention recompile (a new block length) may land in a timed step: the benchmark
    says so, on stderr and under the table, instead of reporting the slower speed as the trainer's."""
    from benchmarks.measure import slow_step_warning
    from benchmarks.report import A, B, table
    from benchmarks.train_throughput import add_notes

    assert slow_step_warning(seconds) == (warned and warned + " (a recompile in the timed steps?): its speed counts it")
    row = {"steps_per_s": 1.0, "tokens_per_s": 100.0, "tokens_per_step": 100.0, "step_seconds": seconds,
           "per_forward": 4, "accumulation": 1}
    add_notes(B, row, 8)
    assert ("warning: b: kosov recipe: " + warned in capsys.readouterr().err) if warned else "notes" not in row
    text = table({A: {"steps_per_s": 1.0, "tokens_per_s": 100.0, "tokens_per_step": 100.0}, B: row}, "### header")
    assert ("\nb: " + warned in text) if warned else "\nb: " not in text


@pytest.fixture
def grpo_histories(monkeypatch) -> list:
    """Each GRPO trainer's log history once it has trained (TRL's and kosov's sides, in order)."""
    import trl

    seen, train = [], trl.GRPOTrainer.train

    def spy(self, *args, **kwargs):
        out = train(self, *args, **kwargs)
        seen.append(list(self.state.log_history))
        return out
    monkeypatch.setattr(trl.GRPOTrainer, "train", spy)
    return seen


def test_kosovs_grpo_side_trains_on_the_random_models_completions(tmp_path, grpo_histories):
    """A random-init model never ends a completion: with the recipe's mask_truncated_completions every completion
    was masked, and kosov's side was timed on updates with zero loss and zero gradient (seen on an H200)."""
    from benchmarks.train_throughput import main

    assert main(["--cpu-smoke", "--grpo"]) == 0
    baseline, kosov = grpo_histories
    for history in (baseline, kosov):
        norms = [h["grad_norm"] for h in history if "grad_norm" in h]
        assert norms and all(n > 0 for n in norms)


def test_variants_are_measured_against_the_same_baseline_in_one_run(tmp_path, capsys, trainers_built):
    """--variant adds kosov rows with Hydra overrides (c, d, ...), each in its own table against the one baseline,
    written as soon as it is measured; the benchmark's own batch settings still hold for every row."""
    from benchmarks.train_throughput import main

    rows, results = tmp_path / "rows.json", tmp_path / "RESULTS.md"
    assert main(["--cpu-smoke", "--json", str(rows), "--results", str(results),
                 "--variant", "ckpt", "method.activation_checkpointing=true",
                 "--variant", "eager", "model.attn_implementation=eager"]) == 0
    out = capsys.readouterr().out
    assert len(trainers_built) == 4  # one baseline, the recipe and two variants
    measured = json.loads(rows.read_text())["rows"]
    assert list(measured) == ["a: TRL defaults", "b: kosov recipe", "c: kosov recipe + ckpt", "d: kosov recipe + eager"]
    one = "1 block(s) per forward x 1 accumulation"
    assert measured["b: kosov recipe"]["setup"] == f"sdpa, {one}, Liger off, activation checkpointing off"
    assert measured["c: kosov recipe + ckpt"]["setup"] == f"sdpa, {one}, Liger off, activation checkpointing on"
    assert measured["d: kosov recipe + eager"]["setup"].startswith("eager,")
    assert len({side["tokens_per_step"] for side in list(measured.values())[1:]}) == 1  # the same packed blocks
    text = results.read_text()
    assert text.count("| a: TRL defaults |") == 3 and "| **b / a** |" in text
    assert ("#### c: kosov recipe + ckpt: the recipe with method.activation_checkpointing=true (sdpa, 1 block(s) per "
            "forward x 1 accumulation, Liger off, activation checkpointing on); against (a) of the table above") in text
    assert "| **c / a** |" in text and "| **d / a** |" in text
    assert text.index("| **b / a** |") < text.index("#### c:") < text.index("#### d:")
    assert "#### c: kosov recipe + ckpt" in out  # printed as well


def test_a_grpo_variant_is_timed_over_its_own_whole_generation_rounds(tmp_path):
    from benchmarks.train_throughput import main

    results = tmp_path / "RESULTS.md"
    assert main(["--cpu-smoke", "--grpo", "--results", str(results),
                 "--variant", "gen4", "method.grpo.optimizer_steps_per_generation=4",
                 "--variant", "cb", "method.grpo.generation=continuous_batching"]) == 0
    text = results.read_text()
    assert "1 warm-up + 2 timed steps; b: transformers, 2 step(s) per generation round" in text  # TRL: 1 a round
    assert "2 warm-up + 2 timed steps" in text
    variant = text[text.index("#### c: kosov recipe + gen4"):]
    assert "the recipe with method.grpo.optimizer_steps_per_generation=4; c: transformers, 4 step(s) per " \
           "generation round" in variant and "4 warm-up + 4 timed steps" in variant and "| **c / a** |" in variant
    # the header says how each side generated: on the CPU, continuous batching without a say on CUDA graphs
    assert "d: continuous_batching (CUDA graphs: transformers decides), 2 step(s) per generation round" in text


def test_a_variant_that_fails_is_recorded_and_the_rows_before_it_are_kept(monkeypatch, tmp_path):
    """A candidate setting may not run on the card (a kernel that does not compile): its row reads failed, the table
    is still written. The recipe's own row (b) failing is an error (exit status 1), but only once the baseline and
    the variants are measured and published: GPU minutes spent on them are not thrown away."""
    from benchmarks.train_throughput import main
    from training import sft

    def failing_at(call: int, error: Exception):
        """sft.build_trainer, raising `error` at its call-th call (b's trainer is the first, c's the second)."""
        build, built = sft.build_trainer, []

        def build_or_fail(*args, **kwargs):
            built.append(1)
            if len(built) == call:
                raise error
            return build(*args, **kwargs)
        return build_or_fail

    results, argv = tmp_path / "RESULTS.md", ["--variant", "ckpt", "method.activation_checkpointing=true"]
    with monkeypatch.context() as patch:
        patch.setattr(sft, "build_trainer", failing_at(2, ValueError("triton kernel did not compile | sm_90")))
        assert main(["--cpu-smoke", "--results", str(results), *argv]) == 0
    table = results.read_text()
    assert "| c: kosov recipe + ckpt | failed | failed |" in table
    assert "| **c / a** | n/a (c failed: ValueError: triton kernel did not compile / sm_90) |" in table
    assert "| **b / a** | " in table and "| **b / a** | n/a" not in table

    results.unlink()
    monkeypatch.setattr(sft, "build_trainer", failing_at(1, ValueError("broken recipe")))
    assert main(["--cpu-smoke", "--results", str(results), *argv]) == 1
    table = results.read_text()
    assert "| **b / a** | n/a (b failed: ValueError: broken recipe) |" in table
    assert "| c: kosov recipe + ckpt |" in table and "| **c / a** | n/a" not in table  # measured all the same


def test_the_recipes_table_is_on_disk_before_a_variant_starts(monkeypatch, tmp_path):
    """run.sh kills a stage at its time limit (the first GRPO stage on a GPU was): every table finished before must
    be in --results, the (a, b) one first of all."""
    from benchmarks.train_throughput import main
    from training import sft

    build, built = sft.build_trainer, []

    def killed_in_the_variant(*args, **kwargs):
        built.append(1)
        if len(built) == 2:
            raise KeyboardInterrupt  # as the SIGTERM of `timeout` ends the process: nothing after this runs
        return build(*args, **kwargs)
    monkeypatch.setattr(sft, "build_trainer", killed_in_the_variant)
    results = tmp_path / "RESULTS.md"
    with pytest.raises(KeyboardInterrupt):
        main(["--cpu-smoke", "--results", str(results), "--variant", "ckpt", "method.activation_checkpointing=true"])
    assert "| b: kosov recipe |" in results.read_text() and "| **b / a** |" in results.read_text()

def kormo_checkpoint(folder: Path) -> tuple[Path, int]:
    """A tiny KORMo checkpoint as kosov's architecture tests write it (KORMo's keys, model_type "kormo", an
    auto_map to remote code that must never run): (its config.json, its parameter count)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from training.architectures import write_kormo_checkpoint
    from training.tiny_ko import load_tiny_tokenizer

    tokenizer = load_tiny_tokenizer()
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=96, intermediate_size=160,
                                         num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                                         head_dim=24))
    write_kormo_checkpoint(model, tokenizer, folder)
    for code in ("_configuration_kormo.py", "_modeling_kormo.py"):
        (folder / code).write_text("raise RuntimeError('remote code ran')\n")
    return folder / "config.json", sum(p.numel() for p in model.parameters())


def test_a_kormo_config_json_is_benchmarked_as_llama_with_kormos_recipe(tmp_path, capsys):
    """KORMo-10B's shape comes from its config.json (the file or its folder): read as the Llama config it is, no
    remote code, compared against kormo-10b-ko-sft with that recipe's attention (sdpa)."""
    from benchmarks.train_throughput import main

    config, params = kormo_checkpoint(tmp_path / "kormo")
    assert main(["--cpu-smoke", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"{config} shape" in out and "kosov recipe kormo-10b-ko-sft (sdpa" in out
    assert f"{params / 1e9:.3g}B parameters" in out and "| **b / a** |" in out


def test_kormo_10b_without_its_config_says_how_to_bring_it():
    from benchmarks.train_throughput import main

    with pytest.raises(SystemExit, match="hf download KORMo-Team/KORMo-10B-sft config.json --local-dir kormo-10b"):
        main(["--model", "kormo-10b", "--cpu-smoke"])


def test_a_config_of_an_unknown_architecture_is_refused_by_name(tmp_path):
    from benchmarks.train_throughput import main

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "not-a-model", "hidden_size": 8}))
    with pytest.raises(SystemExit, match="model_type 'not-a-model' is not an architecture"):
        main(["--cpu-smoke", "--config", str(tmp_path / "config.json")])


class Loaded(Exception):
    """A model started loading: the flags were accepted."""


@pytest.mark.parametrize("argv, message", [
    (["--grpo", "--qlora"], "--qlora needs a CUDA GPU"),
    (["--grpo", "--recipe", "qwen3-8b-ko-sft"], "qwen3-8b-ko-sft is a sft recipe, and this run compares grpo"),
    (["--recipe", "qwen3-1.7b-ko-grpo"], "qwen3-1.7b-ko-grpo is a grpo recipe, and this run compares sft"),
    (["--grpo", "--recipe", "qwen3-8b-ko-qlora-grpo"], "add --qlora"),
    (["--recipe", "qwen3-8b-ko-qlora-sft"], "add --qlora"),
    (["--recipe", "no-such-recipe"], "there is no recipe experiment/no-such-recipe"),
    # a variant compares kosov's trainer settings: it may not change what both sides train, and must compose
    (["--variant", "lowrank", "peft.r=4"], "peft.r=4: the benchmark sets this for both sides"),
    (["--variant", "bigger", "model=qwen3-8b"], "model=qwen3-8b: the benchmark sets this"),
    # settings the benchmark fixes for every row were silently overridden (SFT) or silently dropped (GRPO)
    (["--variant", "accum", "method.gradient_accumulation_steps=8"], "gradient_accumulation_steps=8: the benchmark"),
    (["--grpo", "--variant", "g16", "method.grpo.num_generations=16"], "num_generations=16: the benchmark sets"),
    # reusing each completion 4 times would multiply steps/s without generating more
    (["--grpo", "--variant", "reuse", "method.grpo.num_iterations=4"], "num_iterations=4: the benchmark sets"),
    (["--variant", "evals", "data.eval_ratio=0.05"], "data.eval_ratio=0.05: the benchmark sets"),
    (["--variant", "empty"], "give it at least one Hydra override"),
    (["--variant", "typo", "method.no_such_key=1"], "--variant typo:"),
    (["--variant", "flex", "model.attn_implementation=flex_attention"], "--variant flex: FlexAttention .* GPU path"),
])
def test_flags_the_benchmark_would_not_measure_as_asked_are_refused_before_loading(monkeypatch, argv, message):
    """--grpo used to ignore --qlora and --recipe: an 8B QLoRA GRPO run measured plain LoRA under the 1.7B recipe."""
    import transformers

    import benchmarks.shapes as shapes
    from benchmarks.train_throughput import main

    def loaded(*args, **kwargs):
        raise Loaded
    monkeypatch.setattr(shapes, "build_model", loaded)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", loaded)
    with pytest.raises(SystemExit, match=message):
        main(["--cpu-smoke", *argv])


@pytest.mark.parametrize("grpo, qlora, kormo, recipe, attention", [
    (True, False, False, "qwen3-1.7b-ko-grpo", "flash_attention_2"),
    (True, True, False, "qwen3-8b-ko-qlora-grpo", "flash_attention_2"),
    (True, False, True, "kormo-10b-ko-grpo", "sdpa"),
    (False, False, False, "qwen3-8b-ko-sft", "flash_attention_2"),
    (False, True, False, "qwen3-8b-ko-qlora-sft", "flash_attention_2"),
    (False, False, True, "kormo-10b-ko-sft", "sdpa"),
])
def test_kosovs_side_runs_the_recipe_for_the_method_qlora_and_kormo_with_its_attention(
        monkeypatch, tmp_path, grpo, qlora, kormo, recipe, attention):
    """On a GPU where FlashAttention 2 runs, both methods take the recipe's attention (auto: FlashAttention 2; KORMo's
    recipe: sdpa), not tiny-ko's, and QLoRA's recipe is quantized."""
    import training.models as models
    from benchmarks.train_throughput import resolve_recipe

    monkeypatch.setattr(models, "flash_attention_ready", lambda: None)
    config = None
    if kormo:
        from training.architectures import kormo_config
        from transformers import LlamaConfig

        config = tmp_path / "config.json"
        config.write_text(json.dumps(kormo_config(LlamaConfig(head_dim=128))), encoding="utf-8")
    args = SimpleNamespace(grpo=grpo, qlora=qlora, recipe=None, config=config and str(config), model="qwen3-8b")
    resolve_recipe(args, "cuda")
    assert (args.recipe, args.attn, args.peft.quantization is not None) == (recipe, attention, qlora)


def test_the_baseline_out_of_gpu_memory_is_recorded_and_kosovs_side_still_runs(monkeypatch, tmp_path):
    """The TRL baseline may not fit at --batch 4: its OOM must lose neither kosov's side nor the table, and its model
    is freed before kosov's side trains."""
    import torch
    import trl

    from benchmarks.train_throughput import main

    train, models = trl.SFTTrainer.train, []

    def first_runs_out(self, *args, **kwargs):
        if not models:  # the baseline trains first
            models.append(weakref.ref(self.model))
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.27 GiB")
        assert models[0]() is None, "the baseline's model was not freed before kosov's side ran"
        return train(self, *args, **kwargs)
    monkeypatch.setattr(trl.SFTTrainer, "train", first_runs_out)
    results = tmp_path / "RESULTS.md"
    assert main(["--cpu-smoke", "--results", str(results)]) == 0
    table = results.read_text()
    assert "| a: TRL defaults | OOM | OOM | OOM | OOM | OOM |" in table
    assert "| b: kosov recipe | OOM" not in table and "| **b / a** | n/a (baseline OOM) |" in table


def test_grpo_sides_out_of_gpu_memory_still_write_the_table(monkeypatch, tmp_path):
    """CUDA's out-of-memory RuntimeError (raised outside torch's allocator) counts too, on either side."""
    import trl

    from benchmarks.train_throughput import main

    def runs_out(self, *args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    monkeypatch.setattr(trl.GRPOTrainer, "train", runs_out)
    results = tmp_path / "RESULTS.md"
    assert main(["--cpu-smoke", "--grpo", "--results", str(results)]) == 0
    table = results.read_text()
    assert "| a: TRL defaults | OOM |" in table and "| b: kosov recipe | OOM |" in table
    assert "| **b / a** | n/a (both OOM) |" in table
