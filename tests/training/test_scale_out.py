"""Scale-out on existing engines: a real 2-process DDP run on CPU (accelerate launch, gloo), the shipped
accelerate configs, Hydra's Optuna sweeper optimising a metric, and the submitit launcher's job path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import quick
from training.errors import KosovError
from training.recipes import compose, recipes_dir
from training.train import train

ACCELERATE = recipes_dir() / "accelerate"


def kosov_bin() -> str:
    return shutil.which("kosov") or str(Path(sys.executable).parent / "kosov")


def run(args: list[str], cwd: Path, timeout: int = 400) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


def launch(program: str, tmp_path: Path, *overrides: str, timeout: int = 400) -> subprocess.CompletedProcess:
    """`program train experiment=smoke-sft <overrides>` on 2 CPU processes (accelerate launch with the shipped
    cpu-ddp config, gloo), run in tmp_path. program: the kosov command, or a script that patches kosov first."""
    return run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE / "cpu-ddp.yaml"),
                program, "train", "experiment=smoke-sft", *overrides], tmp_path, timeout)


def launch_patched(script: str, tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    """launch() of kosov under `script`, Python that patches kosov (a slow save, a slow suite) and then runs its CLI."""
    path = tmp_path / "patched_kosov.py"
    path.write_text(script)
    return launch(str(path), tmp_path, *overrides)


def test_two_process_ddp_on_cpu_writes_one_run_folder(tmp_path):
    out = tmp_path / "run"
    done = launch(kosov_bin(), tmp_path, f"output_dir={out}", "method.max_steps=20")
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["global_step"] == 20 and metrics["eval_loss"] < metrics["first_eval_loss"]
    assert json.loads((out / "provenance.json").read_text())["processes"] == 2
    adapters = [p for p in tmp_path.rglob("adapter_config.json") if "checkpoint-" not in str(p)]
    assert adapters == [out / "adapter" / "adapter_config.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no second, timestamped folder anywhere
    assert (out / "train.log").read_text().count("done:") == 1  # one process logged the run
    # the main process rendered the rows, the other read them (and the finished run keeps none of it)
    assert done.stderr.count("waiting for the main process: rendering the data") == 1
    assert not [p for p in out.iterdir() if "rendered" in p.name]
    # resumed on one process, each step would train half the rows and skip others than it trained as seen
    from training.errors import KosovError
    from training.recipes import compose
    from training.train import train

    with pytest.raises(KosovError, match=r"resume=true on 1 process\(es\), but the run .* trained on 2"):
        train(compose(["experiment=smoke-sft", f"output_dir={out}", "method.max_steps=24", "resume=true"]))
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 20


# A launch in which the main process writes the final adapter slowly (as an 8B adapter's fsync takes seconds) and
# the other process reaches the final save a second late: neither may clear the folder the other is writing.
SLOW_SAVE = """
import os, shutil, sys, time
import transformers
rank, rmtree, save_model = os.environ["RANK"], shutil.rmtree, transformers.Trainer.save_model
def late_rmtree(path, *args, **kwargs):
    if rank == "1" and str(path).endswith(".adapter.saving"):
        time.sleep(1)
    return rmtree(path, *args, **kwargs)
def slow_save(self, *args, **kwargs):
    save_model(self, *args, **kwargs)
    if rank == "0":
        time.sleep(3)
shutil.rmtree, transformers.Trainer.save_model = late_rmtree, slow_save
from training.cli import main
sys.exit(main())
"""


def test_the_final_adapter_survives_a_process_that_reaches_the_save_late(tmp_path):
    out = tmp_path / "run"
    done = launch_patched(SLOW_SAVE, tmp_path, f"output_dir={out}", "method.max_steps=2", "method.save_steps=100",
                          "method.eval_steps=100", "data.max_rows=32")
    assert done.returncode == 0, done.stderr[-3000:]
    from safetensors import safe_open

    with safe_open(out / "adapter" / "adapter_model.safetensors", "pt") as weights:
        assert any("lora_B" in key for key in weights.keys())
    assert not (out / ".adapter.saving").exists()


def test_a_bad_row_stops_every_process_with_its_file_and_line(tmp_path):
    """Only the main process reads and renders the rows: the other learns of the bad row from it and fails with the
    same error, rather than waiting for it at a barrier until the launcher's timeout."""
    data = tmp_path / "chat.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "안녕"}, {"role": "assistant", "content": "네"}]}\n'
                    '{"messages": [{"role": "user"}]}\n', encoding="utf-8")
    done = launch(kosov_bin(), tmp_path, f"output_dir={tmp_path / 'run'}", f"data.train_files=[{data}]", timeout=200)
    assert done.returncode != 0
    assert f"kosov: {data}:2: bad message" in done.stderr  # kosov's error, not a traceback of ours


def test_processes_must_share_an_output_dir(tmp_path):
    done = launch(kosov_bin(), tmp_path, "method.max_steps=2")
    assert done.returncode != 0 and "pass output_dir=DIR" in done.stderr


@pytest.mark.parametrize("name, kind", [("ddp", "MULTI_GPU"), ("fsdp2", "FSDP"), ("zero2", "DEEPSPEED"),
                                        ("zero3-offload", "DEEPSPEED"), ("cpu-ddp", "MULTI_GPU")])
def test_accelerate_configs_load(name, kind):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(ACCELERATE / f"{name}.yaml"))
    assert config.distributed_type.value == kind
    text = (ACCELERATE / f"{name}.yaml").read_text()
    assert f"--config_file recipes/accelerate/{name}.yaml" in text  # each file says how to launch with it
    if name == "fsdp2":
        assert config.fsdp_config["fsdp_version"] == 2
    if name == "zero3-offload":
        ds = config.deepspeed_config
        assert ds["zero_stage"] == 3 and ds["offload_param_device"] == "cpu" and ds["offload_optimizer_device"] == "cpu"


def zero3_on_cpu(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    """kosov train experiment=smoke-sft under the shipped ZeRO-3 config, on 2 CPU processes with offload off
    (DeepSpeed's CPU Adam would compile for minutes)."""
    config = yaml.safe_load((ACCELERATE / "zero3-offload.yaml").read_text())
    config["deepspeed_config"].update(offload_optimizer_device="none", offload_param_device="none")
    config.update(num_processes=2, use_cpu=True, mixed_precision="no")
    (tmp_path / "zero3-cpu.yaml").write_text(yaml.safe_dump(config))
    return run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(tmp_path / "zero3-cpu.yaml"),
                kosov_bin(), "train", "experiment=smoke-sft", *overrides], tmp_path, timeout=900)


def test_zero3_loads_each_process_a_shard_and_saves_the_whole_adapter(tmp_path):
    """The shipped ZeRO-3 config on 2 CPU processes (offload off: DeepSpeed's CPU Adam would compile for minutes).
    zero3_init_flag must reach from_pretrained, which kosov calls before the training arguments exist: else every
    process loads the whole model into host memory (8 copies of a 32B on an 8-GPU node)."""
    out = tmp_path / "run"
    done = zero3_on_cpu(tmp_path, f"output_dir={out}", "method.max_steps=5")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("partitioned across processes as it loaded (ZeRO-3)") == 2  # each process, its shard
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["last_train_loss"] < metrics["first_train_loss"]
    from safetensors.torch import load_file

    adapter = load_file(out / "adapter" / "adapter_model.safetensors")  # gathered from the shards, not empty ones
    rank = yaml.safe_load((out / "config.yaml").read_text())["peft"]["r"]
    assert adapter and all(t.numel() > 0 and rank in t.shape for t in adapter.values())
    assert any(k.endswith("lora_B.weight") and t.abs().sum() > 0 for k, t in adapter.items())  # B starts at 0


def test_zero3_continues_a_dora_adapter(tmp_path):
    """Loading an adapter to continue happens between the model's load and the trainer's arguments: DoRA reads the
    base weights there, which ZeRO-3 holds as shards, and needs ZeRO-3's setting still in force to gather them."""
    dora = train(compose(quick(f"output_dir={tmp_path / 'dora'}", "peft=dora"))).run_dir
    done = zero3_on_cpu(tmp_path, f"output_dir={tmp_path / 'run'}", f"method.init_adapter={dora}", "method.max_steps=2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()


def test_zero3_partitions_in_the_trainers_precision_and_its_shards_still_show_fused_experts(monkeypatch):
    """zero.Init partitions in the precision of the DeepSpeed config it reads: the Trainer's (bf16), not the load
    dtype (a full fine-tune loads fp32 and would train in fp32). A partitioned parameter is 1-D: the MoE guard reads
    the shape ZeRO-3 records (ds_shape), or Qwen3-30B-A3B's fused experts pass `all-linear` unrefused."""
    import torch
    from transformers.integrations.deepspeed import deepspeed_config, is_deepspeed_zero3_enabled

    from training.adapters import fused_experts
    from training.models import zero3_init

    for key, value in dict(ACCELERATE_USE_DEEPSPEED="true", ACCELERATE_DEEPSPEED_ZERO_STAGE="3",
                           ACCELERATE_DEEPSPEED_ZERO3_INIT="true").items():
        monkeypatch.setenv(key, value)
    held = zero3_init("bf16")
    assert is_deepspeed_zero3_enabled() and deepspeed_config()["bf16"]["enabled"] is True
    del held
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO3_INIT", "false")
    assert zero3_init("bf16") is None

    model = torch.nn.Module()
    model.model = torch.nn.Module()
    model.model.layers = torch.nn.ModuleList([torch.nn.Module()])
    model.model.layers[0].experts = torch.nn.Module()
    shard = torch.nn.Parameter(torch.zeros(0))
    shard.ds_shape = torch.Size([8, 64, 32])  # what ZeRO-3 leaves on a partitioned 3-D parameter
    model.model.layers[0].experts.register_parameter("gate_up_proj", shard)
    assert fused_experts(model) == ["experts.gate_up_proj"]


def test_optuna_sweeps_the_recipe_for_the_objective(tmp_path):
    done = run([kosov_bin(), "train", "-m", "experiment=sweep-smoke-sft-optuna", "hydra.sweeper.n_trials=2",
                "method.max_steps=4", "method.eval_steps=4"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    [results] = tmp_path.rglob("optimization_results.yaml")
    best = yaml.safe_load(results.read_text())
    trials = [json.loads(p.read_text())["eval_loss"] for p in tmp_path.rglob("metrics.json")]
    assert len(trials) == 2 and best["best_value"] == pytest.approx(min(trials))
    assert {"method.learning_rate", "peft.r"} == set(best["best_params"])


def test_an_optuna_sweep_whose_trial_fails_ends_with_the_kosov_error_not_a_traceback(tmp_path):
    done = run([kosov_bin(), "train", "-m", "experiment=sweep-smoke-sft-optuna", "hydra.sweeper.n_trials=2",
                f"model.name_or_path={tmp_path / 'no-such-model'}"], tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "no-such-model" in done.stderr and "no such folder" in done.stderr
    assert "Traceback" not in done.stderr and "No trials are completed" not in done.stderr


def test_a_failed_trial_survives_the_standard_pickle_a_launcher_sends_job_results_with():
    """TrialFailed was a class made inside a function: pickle.dumps failed ("Can't pickle local object")."""
    import pickle

    import training.cli as cli
    from hydra.errors import CompactHydraException

    failed = cli.TrialFailed("a trial of the sweep failed: no such folder")
    back = pickle.loads(pickle.dumps(failed))
    assert type(back) is cli.TrialFailed and isinstance(back, CompactHydraException)
    assert str(back) == str(failed) and cli.TrialFailed is cli.TrialFailed  # made once
    imported = subprocess.run([sys.executable, "-c", "import sys, training.cli; print('hydra' in sys.modules)"],
                              capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "False"  # the CLI still imports Hydra only when it runs a command


def test_the_submitit_launcher_runs_each_job_in_its_own_run_folder(tmp_path):
    done = run([kosov_bin(), "train", "-m", "experiment=smoke-sft", "hydra/launcher=submitit_local",
                "method.max_steps=2", "peft.r=4,8"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    configs = sorted(tmp_path.rglob("multirun_*/*/config.yaml"))
    assert len(configs) == 2
    assert sorted(yaml.safe_load(c.read_text())["peft"]["r"] for c in configs) == [4, 8]
    [pickles] = tmp_path.rglob("multirun_*/.submitit")  # each job's overrides and recipe: the user's alone
    assert pickles.stat().st_mode & 0o777 == 0o700 and list(pickles.rglob("*_submitted.pkl"))


def test_hydra_flags_may_follow_an_output_dir(tmp_path):
    # kosov adds Hydra's run folder next to output_dir=; a flag such as --cfg job after it must still parse
    done = run([kosov_bin(), "train", "experiment=smoke-sft", f"output_dir={tmp_path / 'x'}", "--cfg", "job"],
               tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert yaml.safe_load(done.stdout)["output_dir"] == str(tmp_path / "x")
    # printing the recipe with a mistake in it: the same kosov error as a run gets, not Hydra's (exit 1)
    done = run([kosov_bin(), "train", "experiment=smoke-sft", "peft.r=abc", "--cfg", "job"], tmp_path, timeout=120)
    assert done.returncode == 2 and "peft.r takes a whole number" in done.stderr, done.stderr[-2000:]


@pytest.mark.parametrize("words", [["experiment=smoke-sft", "--cfg", "job"], ["--cfg", "job", "experiment=smoke-sft"]])
def test_publish_prints_its_recipe_with_hydras_flags_anywhere(tmp_path, words):
    # kosov publish gives Hydra no run folder of its own (hydra.run.dir=.): it was added after --cfg job, which
    # argparse refused ("unrecognized arguments: hydra.run.dir=.")
    done = run([kosov_bin(), "publish", *words], tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "publish" in yaml.safe_load(done.stdout) and not list(tmp_path.iterdir())  # no folder made



def test_a_sweep_with_an_output_dir_gives_each_job_its_own_run_folder(tmp_path):
    out = tmp_path / "sweep"
    done = run([kosov_bin(), "train", "-m", "experiment=smoke-sft", "method.max_steps=1", "peft.r=4,8",
                f"output_dir={out}"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [yaml.safe_load((out / job / "config.yaml").read_text())["peft"]["r"] for job in ("0", "1")]
    assert ranks == [4, 8] and all((out / job / "adapter" / "adapter_config.json").is_file() for job in ("0", "1"))


def test_a_users_own_recipe_folder_and_sweep_functions_reach_hydra(tmp_path):
    mine = tmp_path / "recipes" / "experiment"
    mine.mkdir(parents=True)
    (mine / "mine.yaml").write_text("# @package _global_\ndefaults:\n  - smoke-sft\n  - _self_\nname: mine\n")
    done = run([kosov_bin(), "train", "--config-dir", str(tmp_path / "recipes"), "experiment=mine", "--cfg", "job"],
               tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert yaml.safe_load(done.stdout)["name"] == "mine"
    from training.recipes import check_override_keys

    check_override_keys(["peft=choice(lora,dora)", "model=glob(tiny*)"])  # expanded by Hydra, not a file name


@pytest.mark.parametrize("override, words", [("peft.r=abc", ["peft.r", "abc"]),
                                             ("data.train_files=x.jsonl", ["data.train_files", "in brackets"]),
                                             ("rewards=null", ["does not compose"])])
def test_a_recipe_mistake_on_the_command_line_is_a_kosov_error(tmp_path, override, words):
    done = run([kosov_bin(), "train", "experiment=smoke-sft", override, f"output_dir={tmp_path / 'x'}"], tmp_path,
               timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert all(word in done.stderr for word in words) and not (tmp_path / "x").exists()


def test_eval_during_training_is_refused_where_the_main_process_holds_only_a_shard(tmp_path, monkeypatch):
    from training.evaluation.callback import check_unsharded

    check_unsharded({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2"})  # ZeRO-2: whole
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # what accelerate launch --config_file fsdp2.yaml sets
    with pytest.raises(KosovError, match="under FSDP") as error:
        train(compose(quick(f"output_dir={tmp_path / 'run'}", "eval=smoke", "eval.every_n_steps=2")))
    assert "eval.every_n_steps=0" in str(error.value) and not (tmp_path / "run").exists()
