"""`mirror=FOLDER` on the train and eval paths: before anything loads, the mirror must hold what the recipe reads
from the Hub (its model at its revision, its hub dataset, its suite's lm-eval tasks), each missing thing named with
the `kosov mirror` flag that adds it; and those files must be there at their mirrored sizes (a copy cut short)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.training.test_mirror import MODEL, REPO_ROOT, fake_download, fake_hub
from training.errors import KosovError
from training.mirror import dataset_cache_dir, mirror
from training.mirror_check import check_mirror, hf_home, mirror_needs, model_path, repo_dir
from training.recipes import compose

OTHER = "kosov-test/other-model"


@pytest.fixture(scope="module")
def small_mirror(tmp_path_factory, kosov_cache):
    """tiny-ko as MODEL and the dataset of kobest_boolq, mirrored through the fake Hub."""
    from training.schema import TinyModelConfig
    from training.tiny_ko import tiny_model_dir

    folder = tmp_path_factory.mktemp("needs") / "mirror"
    mirror(folder, model=MODEL, tasks=["kobest_boolq"],
           download=fake_download(fake_hub(tiny_model_dir(TinyModelConfig())), []))
    return folder


@pytest.fixture
def in_process(monkeypatch):
    """check_mirror() in this process, where huggingface_hub was imported long ago: the "too late" guard is passed,
    and the variables a successful check sets are put back afterwards."""
    monkeypatch.setattr("training.mirror_check._redirected", lambda env: True)
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def recipe(folder, *overrides: str, experiment: str = "smoke-eval"):
    return compose([f"experiment={experiment}", f"mirror={folder}", *overrides])


def test_what_a_recipe_needs_from_the_mirror(tmp_path):
    assert mirror_needs(compose(["experiment=smoke-eval"]), "eval") == {  # tiny-ko and kosov's own local task
        "model": None, "revision": None, "datasets": [], "tasks": []}
    cfg = compose(["experiment=smoke-eval", f"model.name_or_path={OTHER}", "model.revision=v2",
                   "eval.tasks=[kobest_boolq,ko_mini_bench]"])
    assert mirror_needs(cfg, "eval") == {"model": OTHER, "revision": "v2", "datasets": [], "tasks": ["kobest_boolq"]}
    assert mirror_needs(cfg, "serve")["tasks"] == []
    (tmp_path / "model").mkdir()
    assert mirror_needs(compose(["experiment=smoke-eval", f"model.name_or_path={tmp_path / 'model'}"]),
                        "eval")["model"] is None  # a local folder is read where it is
    hub_data = ["experiment=smoke-sft", "data.hub_id=org/ko-chat", "data.hub_config=v1", "data.hub_revision=r1",
                "data.train_files=[]", "eval.tasks=[kobest_copa]"]
    assert mirror_needs(compose(hub_data), "train") == {"model": None, "revision": None,
                                                        "datasets": ["org/ko-chat@r1:v1"], "tasks": []}
    assert mirror_needs(compose([*hub_data, "eval.every_n_steps=5"]), "train")["tasks"] == ["kobest_copa"]
    # GRPO with an SFT stage trained first: the stage's hub data is read in the same run
    grpo = compose(["experiment=smoke-sft-grpo"])
    grpo.method.grpo.sft_stage = ["experiment=smoke-sft", "data.hub_id=org/sft-rows", "data.train_files=[]"]
    assert mirror_needs(grpo, "train")["datasets"] == ["org/sft-rows"]


def test_a_model_or_commit_the_mirror_lacks_is_named_with_its_flag(small_mirror, in_process):
    with pytest.raises(KosovError) as error:
        check_mirror(recipe(small_mirror, f"model.name_or_path={OTHER}"), "eval")
    assert f"not in the mirror at {small_mirror}: model {OTHER}" in str(error.value)
    assert f"kosov mirror {small_mirror} --model {OTHER}`" in str(error.value)
    commit = "a" * 40
    with pytest.raises(KosovError) as error:
        check_mirror(recipe(small_mirror, f"model.name_or_path={MODEL}", f"model.revision={commit}"), "eval")
    assert f"model {MODEL}@{commit} (it holds 111111111111)" in str(error.value)
    assert f"--model {MODEL} --revision {commit}" in str(error.value)
    with pytest.raises(KosovError, match=f"--model {MODEL} --revision v2"):  # refs/v2 was never mirrored
        check_mirror(recipe(small_mirror, f"model.name_or_path={MODEL}", "model.revision=v2"), "eval")
    # everything missing in one error: the model and a task of the suite
    with pytest.raises(KosovError) as error:
        check_mirror(recipe(small_mirror, f"model.name_or_path={OTHER}", "eval.tasks=[kobest_wic,ko_mini_bench]"),
                     "eval")
    assert "task kobest_wic (dataset skt/kobest_v1, config wic)" in str(error.value)
    assert f"--model {OTHER} --task kobest_wic" in str(error.value)
    # what the mirror holds passes, at its branch or its commit; kosov's own task needs nothing mirrored
    for revision in ("null", "main", "1" * 40):
        env = check_mirror(recipe(small_mirror, f"model.name_or_path={MODEL}", f"model.revision={revision}",
                                  "eval.tasks=[kobest_boolq,ko_mini_bench]"), "eval")
        assert env["HF_HOME"] == str(hf_home(small_mirror)) and os.environ["HF_HUB_OFFLINE"] == "1"


def test_training_names_a_dataset_or_an_evals_task_the_mirror_lacks(small_mirror, in_process):
    hub_data = ["data.hub_id=org/ko-chat", "data.train_files=[]", "eval.tasks=[kobest_copa]"]
    with pytest.raises(KosovError) as error:
        check_mirror(recipe(small_mirror, *hub_data, experiment="smoke-sft"), "train")
    assert "dataset org/ko-chat" in str(error.value) and "--dataset org/ko-chat`" in str(error.value)
    assert "kobest_copa" not in str(error.value)  # no evals during training: the suite is not read
    from training.train import train

    with pytest.raises(KosovError, match="not in the mirror at .*: dataset org/ko-chat"):  # train() checks first
        train(recipe(small_mirror, *hub_data, f"output_dir={small_mirror.parent / 'run'}", experiment="smoke-sft"))
    assert not (small_mirror.parent / "run").exists()
    with pytest.raises(KosovError) as error:
        check_mirror(recipe(small_mirror, *hub_data, "eval.every_n_steps=5", experiment="smoke-sft"), "train")
    assert "--dataset org/ko-chat --task kobest_copa" in str(error.value)
    # a mirrored dataset at another commit than the recipe pins
    with pytest.raises(KosovError, match=f"dataset skt/kobest_v1@{'b' * 40}:boolq"):
        check_mirror(recipe(small_mirror, "data.hub_id=skt/kobest_v1", "data.hub_config=boolq",
                            f"data.hub_revision={'b' * 40}", "data.train_files=[]", experiment="smoke-sft"), "train")
    check_mirror(recipe(small_mirror, "data.hub_id=skt/kobest_v1", "data.hub_config=boolq", "data.train_files=[]",
                        experiment="smoke-sft"), "train")


def test_a_damaged_copy_is_named_before_anything_loads(small_mirror, in_process, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(small_mirror, copy)
    eval_hub_model = [f"model.name_or_path={MODEL}", "eval.tasks=[kobest_boolq]"]
    # damage to a repo the recipe does not read is not its concern (--verify finds it)
    arrow = next(dataset_cache_dir(copy, "skt/kobest_v1").rglob("*.arrow"))
    arrow.unlink()
    check_mirror(recipe(copy, f"model.name_or_path={MODEL}"), "eval")
    with pytest.raises(KosovError) as error:
        check_mirror(recipe(copy, *eval_hub_model), "eval")
    assert f"the mirror at {copy} is damaged: dataset skt/kobest_v1: " \
           f"{arrow.relative_to(hf_home(copy)).as_posix()} is missing" in str(error.value)
    assert f"kosov mirror {copy} --verify" in str(error.value)
    shutil.copy2(hf_home(small_mirror) / arrow.relative_to(hf_home(copy)), arrow)
    weights = model_path(copy, MODEL) / "model.safetensors"
    size = weights.stat().st_size
    with weights.open("r+b") as f:  # a copy cut short
        f.truncate(size // 2)
    with pytest.raises(KosovError, match=f"model {MODEL}: model.safetensors has {size // 2} bytes, {size} when "
                                         "mirrored"):
        check_mirror(recipe(copy, *eval_hub_model), "eval")
    shutil.copy2(model_path(small_mirror, MODEL) / "model.safetensors", weights)
    (repo_dir(copy, "model", MODEL) / "refs" / "main").unlink()  # from_pretrained(MODEL) finds the commit through it
    with pytest.raises(KosovError, match="refs/main is missing"):
        check_mirror(recipe(copy, *eval_hub_model), "eval")
    check_mirror(recipe(copy, *eval_hub_model, f"model.revision={'1' * 40}"), "eval")  # a pinned commit needs no ref
    manifest = copy / "kosov-mirror.json"
    manifest.write_bytes(manifest.read_bytes()[:100])
    with pytest.raises(KosovError, match="kosov-mirror.json is damaged"):
        check_mirror(recipe(copy, *eval_hub_model), "eval")


def test_kosov_mirror_in_the_environment_is_the_recipes_mirror(small_mirror, in_process, monkeypatch):
    """KOSOV_MIRROR alone (no mirror= on the command line) sets cfg.mirror, so the check before loading runs and
    the run's config.yaml records the folder; mirror=null still turns it off."""
    from training.config import to_dict

    monkeypatch.setenv("KOSOV_MIRROR", str(small_mirror))
    cfg = compose(["experiment=smoke-eval", f"model.name_or_path={OTHER}"])
    assert cfg.mirror == str(small_mirror) and to_dict(cfg)["mirror"] == str(small_mirror)
    with pytest.raises(KosovError, match=f"not in the mirror at {small_mirror}: model {OTHER}"):
        check_mirror(cfg, "eval")
    assert compose(["experiment=smoke-eval", "mirror=null"]).mirror is None
    assert compose(["experiment=smoke-eval", "mirror=none"]).mirror is None  # as the CLI reads it: off
    monkeypatch.delenv("KOSOV_MIRROR")
    assert compose(["experiment=smoke-eval"]).mirror is None


def test_kosov_eval_names_what_the_mirror_lacks_without_a_traceback(small_mirror, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(tmp_path / "empty-hf-home"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    run = subprocess.run([sys.executable, "-m", "training.cli", "eval", "experiment=smoke-eval",
                          f"mirror={small_mirror}", f"model.name_or_path={OTHER}", "eval.tasks=[kobest_copa]",
                          f"output_dir={tmp_path / 'eval'}"],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-4000:]
    assert f"model {OTHER}" in run.stderr and "task kobest_copa (dataset skt/kobest_v1, config copa)" in run.stderr
    assert f"kosov mirror {small_mirror} --model {OTHER} --task kobest_copa`" in run.stderr
    assert not (tmp_path / "eval" / "report.json").exists()


@pytest.mark.parametrize("off", ["null", "none", "None", ""])
def test_kosov_mirror_set_to_null_is_no_mirror_for_the_recipe_as_for_the_cli(off, monkeypatch):
    """KOSOV_MIRROR=null reached the recipe as the text 'null' (the CLI read it as off): no kosov mirror at null."""
    from training.cli import apply_mirror

    monkeypatch.setenv("KOSOV_MIRROR", off)
    apply_mirror(["experiment=smoke-eval"])  # taken as a folder, it would fail: "not a kosov mirror"
    assert compose(["experiment=smoke-eval"]).mirror is None


PYTHON_TRAIN = """
import json, sys
from training.recipes import compose
from training.train import train  # imports none of Hugging Face's libraries: the mirror's settings come first
before = [m for m in ("huggingface_hub", "transformers", "datasets") if m in sys.modules]
folder, model, out = sys.argv[1:4]
result = train(compose(["experiment=smoke-sft", f"mirror={folder}", f"model.name_or_path={model}", f"output_dir={out}",
                        "method.max_steps=1", "data.max_rows=8", "eval=none"]))
print(json.dumps({"before": before, "steps": result.metrics["global_step"]}))
"""


def test_train_called_from_python_takes_its_mirror(small_mirror, tmp_path):
    """`from training.train import train` imported transformers and huggingface_hub, so train(cfg) with mirror=
    always stopped: "use_mirror() ran after huggingface_hub was imported, too late to redirect it"."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HOME=str(tmp_path / "empty-hf-home"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    run = subprocess.run([sys.executable, "-c", PYTHON_TRAIN, str(small_mirror), MODEL, str(tmp_path / "run")],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert '{"before": [], "steps": 1}' in run.stdout
