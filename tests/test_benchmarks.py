"""The benchmarks run on CPU (tiny-ko, a few steps): CI proves they work and measure fairly; no timing is asserted.
The GPU-only paths (out of memory, peak memory, the device script's budget) are driven with injected stand-ins."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def bench(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


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
        assert f"kosov recipe {recipe} (sdpa, Liger off" in out


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
    assert measured["b: kosov recipe"]["setup"] == "sdpa, Liger off, activation checkpointing off"
    assert measured["c: kosov recipe + ckpt"]["setup"] == "sdpa, Liger off, activation checkpointing on"
    assert measured["d: kosov recipe + eager"]["setup"].startswith("eager,")
    assert len({side["tokens_per_step"] for side in list(measured.values())[1:]}) == 1  # the same packed blocks
    text = results.read_text()
    assert text.count("| a: TRL defaults |") == 3 and "| **b / a** |" in text
    assert ("#### c: kosov recipe + ckpt: the recipe with method.activation_checkpointing=true (sdpa, Liger off, "
            "activation checkpointing on); against (a) of the table above") in text
    assert "| **c / a** |" in text and "| **d / a** |" in text
    assert text.index("| **b / a** |") < text.index("#### c:") < text.index("#### d:")
    assert "#### c: kosov recipe + ckpt" in out  # printed as well


def test_a_grpo_variant_is_timed_over_its_own_whole_generation_rounds(tmp_path):
    from benchmarks.train_throughput import main

    results = tmp_path / "RESULTS.md"
    assert main(["--cpu-smoke", "--grpo", "--results", str(results),
                 "--variant", "gen4", "method.grpo.generation_batch_size=128"]) == 0
    text = results.read_text()
    assert "1 warm-up + 2 timed steps; b: transformers, 2 step(s) per generation round" in text  # TRL: 1 a round
    assert "2 warm-up + 2 timed steps" in text
    variant = text[text.index("#### c: kosov recipe + gen4"):]
    assert "the recipe with method.grpo.generation_batch_size=128; c: transformers, 4 step(s) per generation " \
           "round" in variant and "4 warm-up + 4 timed steps" in variant and "| **c / a** |" in variant


def test_a_variant_that_fails_is_recorded_and_the_rows_before_it_are_kept(monkeypatch, tmp_path):
    """A candidate setting may not run on the card (a kernel that does not compile): its row reads failed, the table
    is still written. The recipe's own row (b) failing stays an error."""
    from benchmarks.train_throughput import main
    from training import sft

    build, built = sft.build_trainer, []

    def second_fails(*args, **kwargs):
        built.append(1)
        if len(built) == 2:
            raise ValueError("triton kernel did not compile | sm_90")
        return build(*args, **kwargs)
    monkeypatch.setattr(sft, "build_trainer", second_fails)
    results = tmp_path / "RESULTS.md"
    assert main(["--cpu-smoke", "--results", str(results), "--variant", "ckpt",
                 "method.activation_checkpointing=true"]) == 0
    table = results.read_text()
    assert "| c: kosov recipe + ckpt | failed | failed |" in table
    assert "| **c / a** | n/a (c failed: ValueError: triton kernel did not compile / sm_90) |" in table
    assert "| **b / a** | " in table and "| **b / a** | n/a" not in table

    def broken(*args, **kwargs):
        raise ValueError("broken recipe")
    monkeypatch.setattr(sft, "build_trainer", broken)
    with pytest.raises(ValueError, match="broken recipe"):
        main(["--cpu-smoke"])


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


def test_tokens_are_counted_from_the_end_of_the_warm_up_when_only_generating_steps_log_them():
    from benchmarks.measure import StepTimer

    timer = StepTimer(warmup=2)
    for step, logs in [(1, {"num_tokens": 100.0}), (2, {"loss": 0.1}), (3, {"num_tokens": 250.0}), (4, {})]:
        timer.callback.on_log(None, SimpleNamespace(global_step=step), None, logs=logs)
    assert timer.tokens0 == 100.0  # GRPO with 2-step generation rounds logs num_tokens on steps 1 and 3 only


def test_padding_efficiency_is_measured_on_the_korean_data():
    out = bench("benchmarks/padding_efficiency.py")
    padded = float(out.split("padded to the longest | ")[1].split("%")[0])
    packed = float(out.split("4096-token blocks")[1].split("| ")[1].split("%")[0])
    assert padded < 90 < 99 <= packed  # the point of packing on short Korean rows


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


def stand_in_row(**extra) -> dict:
    nan = float("nan")
    return {"steps_per_s": 1.0, "tokens_per_s": 100.0, "tokens_per_step": 100.0, "peak_allocated_gib": nan,
            "peak_reserved_gib": nan, **extra}


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


def test_peak_memory_is_reported_allocated_and_reserved_and_qlora_fits_are_judged_on_reserved(monkeypatch):
    """max_memory_allocated understates what a 16 GB card needs: the caching allocator's reserve is what it must
    have free. 14 GiB allocated under 17 GiB reserved does not fit."""
    import torch

    from benchmarks.measure import result
    from benchmarks.report import table

    for name, value in [("is_available", lambda: True), ("synchronize", lambda *a: None),
                        ("max_memory_allocated", lambda *a: 14 * 2**30),
                        ("max_memory_reserved", lambda *a: 17 * 2**30)]:
        monkeypatch.setattr(torch.cuda, name, value)
    timer = SimpleNamespace(sync=lambda: None, start=time.perf_counter() - 10, tokens0=0)
    trainer = SimpleNamespace(state=SimpleNamespace(log_history=[{"num_tokens": 4096.0}]))
    row = result(timer, trainer, 1)
    assert (row.get("peak_allocated_gib"), row.get("peak_reserved_gib")) == (14.0, 17.0)
    baseline = stand_in_row(peak_allocated_gib=16.0, peak_reserved_gib=20.0)
    text = table({"a: TRL defaults": baseline, "b: kosov recipe": row}, "### t", qlora=True)
    assert "| peak allocated GiB | peak reserved GiB |" in text and "| 14.00 | 17.00 |" in text
    assert "17.00 GiB reserved (14.00 allocated), does not fit" in text
    fits = table({"a: TRL defaults": row, "b: kosov recipe": row | {"peak_reserved_gib": 14.5}}, "### t", qlora=True)
    assert "14.50 GiB reserved (14.00 allocated), fits" in fits
    kosov_oom = table({"a: TRL defaults": row, "b: kosov recipe": {"oom": "CUDA out of memory"}}, "### t", qlora=True)
    assert "| **b / a** | n/a (kosov OOM) |" in kosov_oom and "ran out of memory, does not fit" in kosov_oom


FAKE_PYTHON = r"""#!/usr/bin/env bash
# python3 for a dry run of run.sh: a benchmark appends a table to --results (or hangs, as a stage killed at the
# call's limit does), check exits with FAKE_CHECK_RC, pytest prints a summary.
case "$1" in
  -) cat >/dev/null; echo "python (fake)"; exit 0 ;;
  -c) echo "check (fake)"; exit "${FAKE_CHECK_RC:-0}" ;;
  -m) echo "1 passed (fake)"; exit 0 ;;
esac
what=sft; results=
while [ $# -gt 0 ]; do
  case $1 in --grpo) what=grpo ;; --qlora) what=qlora ;; --results) results=$2; shift ;; esac; shift
done
if [ "$what" = "${FAKE_HANG:-}" ]; then echo $$ > "$FAKE_DIR/hanging"; exec sleep 300; fi
printf '\n### %s table\n' "$what" >> "$results"
"""


def dry_run(tmp_path: Path, *stages: str, **env: str) -> tuple[subprocess.Popen, Path]:
    """run.sh on this machine with a fake python3 and no kit: its own process group, its $OUT returned."""
    fake, out, site = tmp_path / "bin", tmp_path / "out", tmp_path / "site"
    for folder in (fake, out, site, tmp_path / "kit"):
        folder.mkdir(exist_ok=True)
    (fake / "python3").write_text(FAKE_PYTHON)
    (fake / "python3").chmod(0o755)
    (site / ".kit-stamp").write_text("dry\n")
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "OUT": str(out), "KOSOV_SITE": str(site),
           "KIT_DIR": str(tmp_path / "kit"), "KOSOV_LOGS": str(tmp_path / "logs"),
           "KOSOV_RESULTS": str(tmp_path / "results.md"), "KOSOV_TMP": str(tmp_path / "tmp"),
           "FAKE_DIR": str(tmp_path), **env}
    process = subprocess.Popen(["bash", "benchmarks/device/run.sh", *stages], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    return process, out


def test_the_device_script_runs_the_targets_first_within_the_budget_and_tests_last(tmp_path):
    """15 minutes of device time in all: sft, grpo and qlora come before the GPU tests, a stage that cannot finish
    in what is left of RUN_BUDGET_S is skipped (not killed half-way), and no stage's limit passes the budget."""
    process, out = dry_run(tmp_path, "all", RUN_BUDGET_S="195")
    log = process.communicate(timeout=120)[0]
    assert process.returncode == 0, log
    env = (out / "env.log").read_text()
    assert "stages: check grpo sft sft-b4 tests qlora" in env
    order = [line.split()[1].rstrip(":") for line in env.splitlines() if line.startswith("=== ") and "rc=" in line]
    assert order == ["check", "sft", "sft-b4", "tests", "qlora"]  # grpo needs 330 s: more than the call had
    assert "=== grpo: skipped" in env
    limits = [int(line.split("limit ")[1].split("s)")[0]) for line in log.splitlines() if "(limit " in line]
    assert limits and max(limits) <= 195 - 20
    assert "### sft table" in (out / "RESULTS.gpu.md").read_text()


def test_a_failed_check_skips_the_stages_that_would_fail_the_same_way(tmp_path):
    process, out = dry_run(tmp_path, "check", "sft", FAKE_CHECK_RC="1", RUN_BUDGET_S="900")
    assert "RUN_BUDGET_S=900: the device runs a command 600 s at most; keeping to 570" in process.communicate(
        timeout=120)[0]
    env = (out / "env.log").read_text()
    assert "=== check: rc=1" in env and "=== sft: skipped, check failed" in env
    assert not (out / "sft.log").exists()


def test_tables_finished_before_a_call_is_killed_come_back(tmp_path):
    """The device kills a command at its limit with SIGKILL (rc 137): no exit trap runs, so each finished stage's
    table and log must already be in $OUT."""
    process, out = dry_run(tmp_path, "sft", "grpo", FAKE_HANG="grpo")
    deadline = time.time() + 60
    while not (tmp_path / "hanging").exists() and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # bash and tee; `timeout` keeps its own process group:
    os.kill(int((tmp_path / "hanging").read_text()), signal.SIGKILL)  # the hanging stage
    process.communicate(timeout=30)
    assert "### sft table" in (out / "RESULTS.gpu.md").read_text()
    assert "=== sft: rc=0" in (out / "sft.log").read_text() and "=== sft: rc=0" in (out / "env.log").read_text()
    assert "=== grpo (limit" in (out / "grpo.log").read_text()  # the killed stage's log so far
