"""Every recipe composes and validates; bad values fail before any model loads, naming key, value, choices."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from training.recipes import compose, recipes_dir
from training.errors import KosovError
from training.models import cuda_available
from training.train import train

RECIPES = recipes_dir()
# recipes/accelerate/ holds accelerate launch configs, not Hydra recipes (tests/training/test_scale_out.py).
YAMLS = sorted(p.relative_to(RECIPES) for p in RECIPES.rglob("*.yaml") if p.parts[len(RECIPES.parts)] != "accelerate")


def overrides_for(relative: Path) -> list[str]:
    """The override that selects a recipe file: experiment=x, model=y, ... (the root config needs none)."""
    if relative == Path("config.yaml"):
        return []
    group, option = relative.parts[0], str(relative.with_suffix("").relative_to(relative.parts[0]))
    if group == "rewards":  # a reward is used by GRPO; the judge needs an endpoint to name
        endpoint = ["rewards.judge.base_url=http://127.0.0.1:8000/v1", "rewards.judge.model=m"]
        return ["method=grpo", f"rewards=[{option}]", *(endpoint if option == "judge" else [])]
    return [f"{group}={option}"]


def test_the_recipe_tree_has_what_the_product_promises():
    names = {str(p.with_suffix("")) for p in YAMLS}
    for expected in ["model/tiny-ko", "model/qwen3-0.6b", "model/qwen3-1.7b", "model/qwen3-4b", "model/qwen3-8b",
                     "model/qwen3-14b", "model/qwen3-32b", "model/qwen3-30b-a3b", "model/kormo-10b",
                     "peft/lora", "peft/dora", "peft/qlora", "peft/none", "method/sft", "tracking/wandb",
                     "tracking/tensorboard", "tracking/none", "experiment/smoke-sft", "experiment/qwen3-1.7b-ko-sft",
                     "experiment/qwen3-8b-ko-qlora-sft", "experiment/qwen3-30b-a3b-ko-sft", "experiment/kormo-10b-ko-sft", "method/grpo",
                     "experiment/smoke-grpo", "experiment/qwen3-1.7b-ko-grpo", "experiment/qwen3-8b-ko-qlora-grpo",
                     "experiment/kormo-10b-ko-grpo", "experiment/smoke-sft-grpo", "experiment/qwen3-1.7b-ko-sft-grpo",
                     "rewards/math_accuracy", "rewards/answer_format", "rewards/language_consistency",
                     "rewards/repetition_penalty", "rewards/length_penalty"]:
        assert expected in names


@pytest.mark.parametrize("relative", YAMLS, ids=str)
def test_every_recipe_composes_and_validates(relative):
    cfg = compose(overrides_for(relative))
    assert cfg.method.name in ("sft", "grpo")
    if relative.parts[0] == "experiment":
        assert cfg.name == relative.stem  # run folders and tracker runs are named after the experiment


@pytest.mark.parametrize("relative", [p for p in YAMLS if p.parts[0] == "experiment"], ids=str)
def test_a_recipe_that_continues_its_sft_stage_says_the_lora_settings_it_trains_with(relative):
    """GRPO continues the SFT stage's adapter with that adapter's shape: a chained recipe whose own peft settings
    differ (qwen3-1.7b-ko-sft-grpo said r=32 over an r=16 stage) recorded settings its run never trained with."""
    cfg = compose(overrides_for(relative))
    if cfg.method.name != "grpo" or not cfg.method.grpo.sft_stage:
        return
    stage = compose(list(cfg.method.grpo.sft_stage)).peft
    own = (cfg.peft.r, cfg.peft.alpha, cfg.peft.method, cfg.peft.target_modules, cfg.peft.modules_to_save)
    assert own == (stage.r, stage.alpha, stage.method, stage.target_modules, stage.modules_to_save)


@pytest.mark.parametrize("relative", [p for p in YAMLS if p.parts[0] == "experiment"], ids=str)
def test_experiments_open_with_the_command_that_runs_them(relative):
    lines = (RECIPES / relative).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "# @package _global_"
    assert re.match(rf"# kosov (train|eval|synth)( -m)? experiment={re.escape(relative.stem)}\b", lines[1]), lines[1]


def test_real_recipes_name_hub_models_and_qlora_quantizes():
    cfg = compose(["experiment=qwen3-8b-ko-qlora-sft"])
    assert cfg.model.name_or_path == "Qwen/Qwen3-8B"
    assert cfg.peft.quantization.quant_type == "nf4" and cfg.peft.quantization.double_quant
    assert cfg.peft.quantization.compute_dtype == "auto"  # bf16, or fp16 on GPUs without bf16
    assert compose(["experiment=kormo-10b-ko-sft"]).model.trust_remote_code


@pytest.mark.parametrize(
    "override, words",
    [
        ("peft.rank=3", ["peft.rank", "keys allowed in peft", "alpha"]),
        ("lr=3", ["'lr'", "keys allowed in the top level", "method"]),
        ("model.tiny.width=3", ["model.tiny.width", "hidden_size"]),
        ("peft.method=lorax", ["peft.method", "lorax", "lora, dora, qlora, none"]),
        ("tracking.backend=mlflow", ["tracking.backend", "mlflow", "wandb, tensorboard, none"]),
        ("model.attn_implementation=flash", ["model.attn_implementation", "flash", "sdpa"]),
        ("model.thinking=maybe", ["model.thinking", "maybe", "auto, on, off"]),
        ("method.sft.turns=first", ["method.sft.turns", "first", "all, last"]),
        ("peft.r=0", ["peft.r", "greater than 0"]),
        ("peft.r=abc", ["peft.r", "abc", "Integer"]),
        ("peft.target_modules=attention", ["peft.target_modules", "attention", "all-linear"]),
        # with '+' (as Hydra's own error suggests) a misspelt key composes: it must still be refused, not ignored
        ("+methd.learning_rate=1", ["'methd'", "keys allowed in the top level"]),
        ("+method.learning_rat=1", ["method.learning_rat", "learning_rate"]),
        ("+method.sft.max_lenght=8", ["method.sft.max_lenght", "max_length"]),
        ("+peft.rr=32", ["peft.rr", "alpha"]),
    ],
)
def test_a_bad_value_names_key_value_and_choices(override, words):
    with pytest.raises(KosovError) as error:
        compose(["experiment=smoke-sft", override])
    for word in words:
        assert word in str(error.value)


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["experiment=smoke-sft", "peft.quantization.compute_dtype=float16"],
         ["peft.quantization.compute_dtype", "`peft.quantization` is null", "peft=qlora"]),
        (["experiment=smoke-sft", "method.grpo.num_generations=4"],
         ["method.grpo.num_generations", "`method.grpo` is null", "GRPO recipe", "method=grpo"]),
        (["experiment=smoke-grpo", "method.sft.max_length=64"],
         ["method.sft.max_length", "`method.sft` is null", "SFT recipe", "method=sft"]),
        # the whole section at once: OmegaConf's AttributeError ('NoneType' object has no attribute 'get')
        (["experiment=smoke-sft", "peft.quantization={load_in_4bit:true}"],
         ["'peft.quantization' as a whole", "`peft.quantization` is null", "peft=qlora", "compute_dtype"]),
        (["experiment=smoke-sft", "+peft.quantization={quant_type:nf4}"],
         ["'peft.quantization' as a whole", "`peft.quantization` is null", "peft=qlora"]),
        (["experiment=smoke-sft", "method.grpo={num_generations:4}"],
         ["'method.grpo' as a whole", "`method.grpo` is null", "method=grpo"]),
    ],
)
def test_a_key_inside_a_section_the_recipe_leaves_null_names_the_section_and_the_fix(overrides, words):
    """Hydra's own failure here is an AssertionError ('Unexpected type for root: NoneType') with a traceback."""
    with pytest.raises(KosovError) as error:
        compose(overrides)
    for word in words:
        assert word in str(error.value)
    assert "Fix:" in str(error.value)


@pytest.mark.parametrize(
    "override, quoted",
    [
        ("data.train_files=[데이터/학습.jsonl]", 'data.train_files=["데이터/학습.jsonl"]'),
        ("data.train_files=데이터/학습.jsonl", 'data.train_files=["데이터/학습.jsonl"]'),
        ("output_dir=결과/실행1", 'output_dir="결과/실행1"'),
    ],
)
def test_a_korean_path_without_quotes_says_to_quote_it_and_the_quoted_form_works(override, quoted):
    """Hydra's grammar takes ASCII letters only outside quotes; the hint used to be 'a list goes in brackets'."""
    with pytest.raises(KosovError) as error:
        compose(["experiment=smoke-sft", override])
    assert "must be quoted" in str(error.value) and "in brackets" not in str(error.value)
    assert f"'{quoted}'" in error.value.fix  # single quotes keep the double quotes from the shell
    cfg = compose(["experiment=smoke-sft", quoted])
    assert cfg.data.train_files == ["데이터/학습.jsonl"] or cfg.output_dir == "결과/실행1"


def kosov(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "training.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize(
    "sweep, words",
    [
        (["peft.r=4,abc"], ["the sweep's run peft.r=abc", "Integer"]),
        (["peft.r=4,8", "data.eval_ratio=0.1,2"], ["data.eval_ratio=2", "must be in [0, 1)"]),
        (["peft.r=4,8", "output_dir=결과/실행1"], ["must be quoted", '\'output_dir="결과/실행1"\'']),
    ],
)
def test_a_mistake_in_any_value_of_a_sweep_is_a_kosov_error_before_the_first_job(tmp_path, sweep, words):
    """Under -m these were Hydra's own errors (exit 1), or an error per job after the sweep had started."""
    done = kosov("train", "-m", "experiment=smoke-sft", "method.max_steps=1", *sweep, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert all(word in done.stderr for word in words), done.stderr[-2000:]
    assert "Launching" not in done.stderr and not any(tmp_path.iterdir())


def test_a_sweep_composes_each_run_and_leaves_hydras_settings_and_search_spaces_to_the_sweeper():
    from training.recipes import compose_sweep, sweep_runs

    runs = sweep_runs(["experiment=smoke-sft", "peft.r=4,8", "peft=lora,dora", "hydra/launcher=submitit_local",
                       "hydra.sweeper.n_trials=2", "method.learning_rate=tag(log, interval(1e-4, 1e-3))"])
    assert runs == [["experiment=smoke-sft", f"peft.r={r}", f"peft={p}"] for r in (4, 8) for p in ("lora", "dora")]
    assert sweep_runs(["experiment=glob(smoke-s*)", "peft.r=4,8"]) == []  # a group swept by a function: Hydra's
    big = sweep_runs(["peft.r=1,2,3,4,5,6", "peft.alpha=1,2,3,4,5,6", "method.learning_rate=0.1,0.2"])
    assert len(big) == 1 + 5 + 5 + 1  # too many combinations: the first values, then each other value once
    compose_sweep(["experiment=sweep-smoke-sft-optuna", "hydra.sweeper.n_trials=2", "peft.r=choice(4,8)",
                   "method.learning_rate=interval(1e-4,1e-3)", "data.max_rows=range(8,32,8)"])


def test_a_long_sweep_composes_at_most_32_runs_here_each_swept_key_among_them():
    """Above 32 combinations each value was still composed once: a 150-value seed sweep composed 150 times."""
    from training.recipes import sweep_runs

    seeds = ",".join(map(str, range(150)))
    assert len(sweep_runs([f"seed={seeds}"])) == 32
    runs = sweep_runs(["experiment=smoke-sft", f"seed={seeds}", "peft.r=4,8"])
    assert len(runs) == 32 and ["experiment=smoke-sft", "seed=0", "peft.r=8"] in runs  # the keys take turns
    assert len({tuple(run) for run in runs}) == 32  # no run twice


def test_a_sweep_may_read_an_environment_variable_its_jobs_have_and_this_machine_lacks(monkeypatch):
    """A SLURM job resolves ${oc.env:...} on its compute node: the sweep was refused on the submitting machine."""
    from training.recipes import compose_sweep

    monkeypatch.delenv("KOSOV_TEST_SUBMIT_DIR", raising=False)
    sweep = ["experiment=smoke-sft", "peft.r=4,8", "output_dir=${oc.env:KOSOV_TEST_SUBMIT_DIR}/runs"]
    compose_sweep(sweep)
    with pytest.raises(KosovError, match="the sweep's run peft.r=4 peft.alpha=abc"):  # any other mistake is one
        compose_sweep([*sweep, "peft.alpha=16,abc"])
    with pytest.raises(KosovError, match="could not be resolved"):  # a single run composed here reads it here
        compose(sweep[::2])
    monkeypatch.setenv("KOSOV_TEST_SUBMIT_DIR", "/scratch/me")
    assert compose(sweep[::2]).output_dir == "/scratch/me/runs"


def test_a_quoted_value_with_escaped_quotes_and_korean_is_hydras_not_a_missing_quote():
    """Hydra parses name="say \\"안녕\\"": kosov's quoting hint refused it; a bare Korean path still gets it."""
    cfg = compose(["experiment=smoke-sft", 'name="say \\"안녕\\""'])
    assert cfg.name == 'say "안녕"'
    with pytest.raises(KosovError, match="must be quoted") as error:
        compose(["experiment=smoke-sft", "output_dir=결과/실행1"])
    assert "'output_dir=\"결과/실행1\"'" in error.value.fix


def test_a_bad_qlora_compute_dtype_names_the_choices():
    with pytest.raises(KosovError) as error:
        compose(["experiment=smoke-sft", "peft=qlora", "peft.quantization.compute_dtype=bf16"])
    assert "peft.quantization.compute_dtype" in str(error.value) and "auto, bfloat16, float16" in str(error.value)


def test_quantization_without_qlora_is_refused():
    with pytest.raises(KosovError, match="peft=qlora"):
        compose(["peft=qlora", "peft.method=lora"])  # 4-bit settings left on a plain LoRA recipe


@pytest.mark.skipif(cuda_available(), reason="checks the CPU refusal")
@pytest.mark.parametrize(
    "overrides, words",
    [
        (["peft=qlora"], ["QLoRA", "CUDA GPU", "peft=lora"]),
        (["model.attn_implementation=flash_attention_2"], ["FlashAttention 2", "sdpa"]),
        # FlexAttention has a forward on CPU but no backward: it used to fail at the first step, after loading.
        (["model.attn_implementation=flex_attention"], ["FlexAttention", "no FlexAttention backward on CPU", "sdpa"]),
        (["device=cuda"], ["device=cuda", "no CUDA GPU"]),
    ],
)
def test_gpu_only_features_fail_clearly_on_cpu_before_training(tmp_path, overrides, words):
    cfg = compose(["experiment=smoke-sft", f"output_dir={tmp_path / 'run'}", *overrides])
    with pytest.raises(KosovError) as error:
        train(cfg)
    for word in words:
        assert word in str(error.value)
    assert not (tmp_path / "run" / "checkpoints").exists()
    if overrides == ["peft=qlora"]:  # refused before the run folder exists and the data is read
        assert not (tmp_path / "run").exists()


def test_flex_attention_is_refused_on_cpu_for_training_only():
    """PyTorch's FlexAttention has a forward on CPU (eval and serve run it) but no backward."""
    from training.models import check_attention

    model = compose(["experiment=smoke-sft", "model.attn_implementation=flex_attention"]).model
    check_attention(model, "cpu", training=False)
    check_attention(model, "cuda")
    with pytest.raises(KosovError, match="no FlexAttention backward on CPU"):
        check_attention(model, "cpu")


def test_remote_code_needs_a_pinned_commit_before_any_download(tmp_path):
    cfg = compose(["experiment=kormo-10b-ko-sft", f"output_dir={tmp_path / 'run'}", "device=cpu"])
    with pytest.raises(KosovError) as error:
        train(cfg)  # HF_HUB_OFFLINE=1: a download attempt would fail differently
    assert "trust_remote_code" in str(error.value) and "commit sha" in str(error.value)


def test_remote_code_is_refused_for_a_branch_name(tmp_path):
    cfg = compose(["experiment=kormo-10b-ko-sft", "model.revision=main", f"output_dir={tmp_path / 'run'}",
                   "device=cpu"])
    with pytest.raises(KosovError, match="40-character commit sha"):
        train(cfg)


def test_the_hub_dataset_command_of_the_readme_composes():
    cfg = compose(["experiment=smoke-sft", "data.hub_id=org/name", "data.hub_split=train", "data.train_files=[]"])
    assert cfg.data.hub_id == "org/name" and cfg.data.train_files == []
    with pytest.raises(KosovError, match=r"add data.train_files=\[\]"):
        compose(["experiment=smoke-sft", "data.hub_id=org/name"])


def test_a_misspelt_objective_is_refused_before_training():
    with pytest.raises(KosovError, match="objective='eval_los' names no key") as error:
        compose(["experiment=sweep-smoke-sft-optuna", "objective=eval_los"])
    assert "eval_loss" in str(error.value)
    assert compose(["experiment=smoke-grpo", "objective=rewards.reward.last"]).objective == "rewards.reward.last"


def test_remote_code_from_another_repo_is_refused_even_with_a_pinned_revision(tmp_path, monkeypatch):
    """auto_map "other/repo--module.Class" makes transformers run the other repo's latest code: the pinned
    revision pins nothing there. Shown on an offline hub cache and on a local folder."""
    import json

    sha = "a" * 40
    config = {"model_type": "kormo", "auto_map": {"AutoConfig": "someone-else/kormo-code--configuration_kormo.C"}}
    snapshot = tmp_path / "hub" / "models--KORMo-Team--KORMo-10B-sft" / "snapshots" / sha
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps(config))
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text(sha)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    for i, overrides in enumerate(([f"model.revision={sha}"], [f"model.name_or_path={snapshot}"])):
        cfg = compose(["experiment=kormo-10b-ko-sft", f"output_dir={tmp_path / f'run{i}'}", "device=cpu", *overrides])
        with pytest.raises(KosovError, match="someone-else/kormo-code--configuration_kormo.C") as error:
            train(cfg)
        assert "another repo" in str(error.value)
        assert not (tmp_path / f"run{i}" / "checkpoints").exists()


def test_an_objective_without_a_value_is_a_clear_error_not_a_traceback():
    """objective=eval_loss on a run without an eval split ended a sweep trial in float(None)'s TypeError."""
    from training.cli import objective_value

    assert objective_value({"eval_loss": 1.5, "rewards": {"reward": {"last": 0.7}}}, "rewards.reward.last") == 0.7
    with pytest.raises(KosovError, match="objective='eval_loss' has no value") as error:
        objective_value({"eval_loss": None}, "eval_loss")
    assert "data.eval_ratio" in error.value.fix


@pytest.mark.parametrize("override, said, fix", [
    ("peft.r=abc", "recipe key 'peft.r'", "peft.r takes a whole number"),
    ("method.learning_rate=[1]", "recipe key 'method.learning_rate'", "takes a number"),
    ("data.train_files=a.jsonl", "recipe key 'data.train_files'", "data.train_files takes a list, in brackets"),
    ("peft.quantization={load_in_4bit:true}", "unknown recipe key 'peft.quantization.load_in_4bit'",
     "quant_type, double_quant, compute_dtype"),
])
def test_a_value_of_the_wrong_type_names_its_key_and_what_the_key_takes(override, said, fix):
    """Not the generic "a list goes in brackets" for a number, nor for a key inside a dict value."""
    with pytest.raises(KosovError) as error:
        compose(["experiment=smoke-sft", "peft=qlora", override])
    assert said in str(error.value) and fix in str(error.value)
    if "list" not in fix:
        assert "brackets" not in str(error.value)


@pytest.mark.parametrize("override, named", [
    ("method.learning_rate=1e-4 peft.r=8", "'method.learning_rate=1e-4 peft.r=8'"),  # two overrides in one argument
    ("synth.teacher.base_url=https://bob:pw_SECRET_url77@proxy.example/v1?x=[", "'synth.teacher.base_url=https://"
                                                                                "***@proxy.example/v1?x=['"),
    ('name="my run', "'name=\"my run'"),
])
def test_an_override_that_does_not_parse_is_named_with_its_secrets_hidden(override, named):
    """Hydra's message ("mismatched input '=' expecting <EOF>") named no override: in a long command line, which?"""
    with pytest.raises(KosovError) as error:
        compose(["experiment=smoke-sft", "peft.r=8", override])
    assert f"the override {named} does not parse" in str(error.value), str(error.value)
    assert "SECRET" not in str(error.value) and "override grammar" in error.value.fix


def test_the_command_line_names_the_override_that_does_not_parse(tmp_path):
    done = kosov("train", "experiment=smoke-sft", "peft.r=8=9", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "the override 'peft.r=8=9' does not parse: mismatched input '='" in done.stderr, done.stderr[-2000:]
