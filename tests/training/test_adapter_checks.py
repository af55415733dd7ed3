"""An adapter is checked before anything loads: a folder cut short (no weights, an empty adapter_config.json, a
truncated safetensors) is named with its fix, not found after the base side was scored with a bare hub or
safetensors error; and an adapter whose run pinned its base to a revision is loaded on that revision only."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import yaml

from training.adapters import adapter_dir, check_adapter_base, load_adapter
from training.errors import KosovError
from training.recipes import compose
from training.run_dir import last_checkpoint

HUB_BASE = "Qwen/Qwen3-0.6B"  # never loaded: every check here runs before the model would
SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER_SHA = "fedcba9876543210fedcba9876543210fedcba98"


def _truncate(file):
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


# damage -> (what it does to the adapter folder, the file the error names (relative to the run), words it says)
DAMAGES = {
    "missing weights": (lambda a: (a / "adapter_model.safetensors").unlink(), "adapter", "has no weights"),
    "empty config": (lambda a: (a / "adapter_config.json").write_text(""), "adapter/adapter_config.json",
                     "not readable JSON"),
    "truncated weights": (lambda a: _truncate(a / "adapter_model.safetensors"), "adapter/adapter_model.safetensors",
                          "damaged or cut short"),
}


def damaged_run(smoke_run, tmp_path, kind):
    run = tmp_path / "run"
    shutil.copytree(smoke_run.run_dir, run, ignore=shutil.ignore_patterns(".kosov.lock", "wandb"))
    DAMAGES[kind][0](run / "adapter")
    return run


def assert_named(error, run, kind):
    _, file, words = DAMAGES[kind]
    assert error.where == str(run / file) and words in error.what, str(error)
    # the whole adapter the run also kept: its last checkpoint, named
    assert "copy the adapter folder again" in error.fix and str(last_checkpoint(run / "checkpoints")) in error.fix


@pytest.mark.parametrize("kind", DAMAGES)
def test_a_damaged_adapter_is_named_with_its_fix(smoke_run, tmp_path, kind):
    run = damaged_run(smoke_run, tmp_path, kind)
    with pytest.raises(KosovError) as error:
        adapter_dir(run)
    assert_named(error.value, run, kind)
    checkpoint = last_checkpoint(run / "checkpoints")
    assert adapter_dir(checkpoint) == checkpoint  # the fix holds


@pytest.mark.parametrize("kind", DAMAGES)
def test_kosov_eval_refuses_a_damaged_adapter_before_it_scores_the_base(smoke_run, tmp_path, monkeypatch, kind):
    """The base side took minutes on a GPU, then the adapter failed with HFValidationError: 'Repo id must be ...'."""
    import training.evaluate as evaluate_module

    def scored(*args, **kwargs):
        raise AssertionError("the base side was scored (or a model loaded) before the adapter was checked")

    for name in ("_harness", "_generative", "load_for_inference"):
        monkeypatch.setattr(evaluate_module, name, scored)
    run = damaged_run(smoke_run, tmp_path, kind)
    with pytest.raises(KosovError) as error:
        evaluate_module.evaluate(compose(["experiment=smoke-eval", f"eval.adapter={run}",
                                          f"output_dir={tmp_path / 'eval'}"]))
    assert_named(error.value, run, kind)
    assert not (tmp_path / "eval" / "report.json").exists()


def test_serving_a_damaged_adapter_is_refused_before_loading(smoke_run, tmp_path):
    from training.config import KosovConfig
    from training.serve import ServeConfig, start_in_thread

    run = damaged_run(smoke_run, tmp_path, "truncated weights")
    with pytest.raises(KosovError) as error:
        start_in_thread(KosovConfig(), ServeConfig(port=0, adapter=str(run)))
    assert_named(error.value, run, "truncated weights")


def test_continuing_a_damaged_adapter_is_refused_before_loading(smoke_run, tmp_path):
    from training.train import train

    run = damaged_run(smoke_run, tmp_path, "missing weights")
    with pytest.raises(KosovError) as error:
        train(compose(["experiment=smoke-grpo", f"output_dir={tmp_path / 'grpo'}", f"method.init_adapter={run}"]))
    assert_named(error.value, run, "missing weights")
    assert not (tmp_path / "grpo" / "config.yaml").exists()  # refused before the run was recorded, or trained


def test_a_damaged_sft_stage_adapter_is_refused_before_peft_loads_it(smoke_run, tmp_path):
    """A chained GRPO run's SFT stage hands its adapter to load_adapter without adapter_dir."""
    from training.config import KosovConfig
    from training.models import model_source

    run = damaged_run(smoke_run, tmp_path, "truncated weights")
    with pytest.raises(KosovError) as error:
        load_adapter(None, run / "adapter", model_source(KosovConfig().model)[0], "tiny-ko", None)  # no model needed
    assert_named(error.value, run, "truncated weights")


def hub_run(smoke_run, tmp_path, revision):
    """A run folder of an adapter said to be trained on a hub model at `revision` (config.yaml as kosov writes it)."""
    run = tmp_path / "hub-run"
    shutil.copytree(smoke_run.run_dir / "adapter", run / "adapter")
    config = json.loads((run / "adapter" / "adapter_config.json").read_text())
    (run / "adapter" / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": HUB_BASE}))
    trained = yaml.safe_load((smoke_run.run_dir / "config.yaml").read_text(encoding="utf-8"))
    trained["model"].update(name_or_path=HUB_BASE, revision=revision)
    (run / "config.yaml").write_text(yaml.safe_dump(trained, sort_keys=False), encoding="utf-8")
    return run


@pytest.mark.parametrize("trained, loaded", [
    (SHA, None),  # pinned at training, main now: main may have moved since
    (SHA, "main"),
    (SHA, OTHER_SHA),
    ("v1.0", "v2.0"),  # tags (or branches) are compared as recorded: nothing is asked of the Hub
    ("v1.0", SHA),
])
def test_an_adapter_is_refused_on_another_revision_than_its_run_pinned(smoke_run, tmp_path, trained, loaded):
    adapter = hub_run(smoke_run, tmp_path, trained) / "adapter"
    with pytest.raises(KosovError) as error:
        check_adapter_base(adapter, HUB_BASE, HUB_BASE, loaded)
    assert f"at model.revision={trained!r}" in error.value.what and str(adapter.parent / "config.yaml") in str(
        error.value)
    assert error.value.fix.startswith(f"set model.revision={trained} (as its run did)")


@pytest.mark.parametrize("trained, loaded, warned", [
    (SHA, SHA, False),
    (SHA, SHA[:7], False),  # a commit and its abbreviation
    (None, None, False),
    (None, "main", False),  # null is the default branch
    ("main", None, False),
    (None, SHA, True),  # trained on main, no commit recorded: it may have been this one
])
def test_an_adapter_is_accepted_on_the_revision_its_run_trained_on(smoke_run, tmp_path, caplog, trained, loaded,
                                                                     warned):
    adapter = hub_run(smoke_run, tmp_path, trained) / "adapter"
    with caplog.at_level(logging.WARNING, logger="training.adapters"):
        check_adapter_base(adapter, HUB_BASE, HUB_BASE, loaded)
    assert ("default branch" in caplog.text) is warned


def test_a_local_base_has_no_revision_to_compare(smoke_run, tmp_path):
    """tiny-ko and local folders are their own revision: model.revision does not change what loads."""
    from training.config import KosovConfig
    from training.models import model_source

    run = tmp_path / "run"
    shutil.copytree(smoke_run.run_dir, run, ignore=shutil.ignore_patterns(".kosov.lock", "wandb", "checkpoints"))
    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    config["model"]["revision"] = SHA
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    check_adapter_base(run / "adapter", model_source(KosovConfig().model)[0], "tiny-ko", None)


def test_kosov_eval_refuses_another_revision_before_scoring_and_takes_the_pinned_one(smoke_run, tmp_path,
                                                                                     monkeypatch):
    """An adapter trained at model.revision=<sha> was evaluated on main, silently; publish only caught it when the
    eval report was given."""
    import training.evaluate as evaluate_module

    class Scored(Exception):
        pass

    def scored(*args, **kwargs):
        raise Scored

    monkeypatch.setattr(evaluate_module, "_harness", scored)
    monkeypatch.setattr(evaluate_module, "_generative", scored)
    run = hub_run(smoke_run, tmp_path, SHA)
    recipe = ["experiment=smoke-eval", f"model.name_or_path={HUB_BASE}", f"eval.adapter={run}", "overwrite=true",
              f"output_dir={tmp_path / 'eval'}"]
    for loaded in ([], ["model.revision=main"]):
        with pytest.raises(KosovError, match=f"model.revision='{SHA}'") as error:
            evaluate_module.evaluate(compose([*recipe, *loaded]))
        assert error.value.fix.startswith(f"set model.revision={SHA}")
    with pytest.raises(Scored):  # every check passed: the base side would be scored now
        evaluate_module.evaluate(compose([*recipe, f"model.revision={SHA}"]))


def local_adapter(given, out):
    """An adapter trained as kosov trains it on model.name_or_path=`given` (a local folder): PEFT records what
    from_pretrained got, model_source's answer."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from training.adapters import lora_config
    from training.models import model_source
    from training.schema import ModelConfig, PeftConfig

    model = AutoModelForCausalLM.from_pretrained(model_source(ModelConfig(name_or_path=given))[0])
    get_peft_model(model, lora_config(PeftConfig(r=4), model)).save_pretrained(out)
    return out


def checked_on(adapter, given):
    """check_adapter_base as eval, serve and train call it, for model.name_or_path=`given`."""
    from training.models import model_source
    from training.schema import ModelConfig

    check_adapter_base(adapter, model_source(ModelConfig(name_or_path=given))[0], given, None)


@pytest.fixture
def tiny_folder():
    from training.models import model_source
    from training.schema import ModelConfig

    return model_source(ModelConfig())[0]


def test_an_adapter_of_a_local_base_is_taken_however_the_folder_is_named(tmp_path, monkeypatch, tiny_folder):
    """Trained with model.name_or_path=base, the adapter was refused on the same folder given as /work/base."""
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    shutil.copytree(tiny_folder, "base")
    adapter = local_adapter("base", tmp_path / "adapter")
    for given in ("base", "./base", str(tmp_path / "work" / "base"), "../work/base"):
        checked_on(adapter, given)


def test_an_adapter_is_refused_on_another_folder_of_that_name_from_another_working_folder(tmp_path, monkeypatch,
                                                                                         tiny_folder):
    """Trained from one folder with model.name_or_path=base, the adapter loaded without a word on the other model
    called base in another job's working folder."""
    from training.models import load_for_inference, model_source

    for job in ("first", "second"):
        shutil.copytree(tiny_folder, tmp_path / job / "base")  # two folders named base: two models, as far as known
    monkeypatch.chdir(tmp_path / "first")
    adapter = local_adapter("base", tmp_path / "adapter")
    monkeypatch.chdir(tmp_path / "second")
    cfg = compose(["experiment=smoke-eval", "model.name_or_path=base"])
    with pytest.raises(KosovError) as error:
        load_for_inference(cfg, model_source(cfg.model)[0], "cpu", adapter)
    assert str(tmp_path / "first" / "base") in error.value.what and str(tmp_path / "second" / "base") in error.value.what
    assert error.value.fix.startswith(f"set model.name_or_path={tmp_path / 'first' / 'base'}")


def test_an_old_adapter_naming_its_base_by_a_relative_path_is_refused_until_it_names_the_folder(tmp_path, monkeypatch,
                                                                                                tiny_folder):
    """kosov saved `base` as given: relative to a working folder nothing recorded. Where it is, and so which model
    it is, cannot be told here, even when ./base exists: the fix names the folder once, by its full path."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_folder, "base")
    adapter = local_adapter("base", tmp_path / "adapter")
    config = adapter / "adapter_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "base_model_name_or_path": "base"}))
    with pytest.raises(KosovError) as error:
        checked_on(adapter, "base")
    here = str(tmp_path / "base")
    assert "relative path 'base'" in error.value.what and error.value.where == str(config)
    assert f'"base_model_name_or_path": "{here}"' in error.value.fix
    config.write_text(json.dumps({**json.loads(config.read_text()), "base_model_name_or_path": here}))  # the fix
    checked_on(adapter, "base")


def test_an_adapter_whose_base_folder_moved_is_refused_with_the_edit_that_fixes_it(tmp_path, monkeypatch,
                                                                                  tiny_folder):
    """A project moved (or carried into a closed network): the recorded folder is gone, and "set
    model.name_or_path=<that folder>" pointed at nothing."""
    shutil.copytree(tiny_folder, tmp_path / "old" / "base")
    adapter = local_adapter(str(tmp_path / "old" / "base"), tmp_path / "adapter")
    (tmp_path / "old").rename(tmp_path / "new")
    monkeypatch.chdir(tmp_path / "new")
    with pytest.raises(KosovError) as error:
        checked_on(adapter, "base")
    here, config = str(tmp_path / "new" / "base"), adapter / "adapter_config.json"
    assert "not on this machine" in error.value.what and error.value.where == str(config)
    assert f'"base_model_name_or_path": "{here}"' in error.value.fix
    config.write_text(json.dumps({**json.loads(config.read_text()), "base_model_name_or_path": here}))  # the fix
    checked_on(adapter, "base")


def test_an_adapter_of_a_tiny_ko_build_that_is_gone_is_told_to_train_again(smoke_run, tmp_path):
    """tiny-ko is built anew when kosov's code or libraries change (a cleared cache too): an adapter of a build that
    is gone was told to write the new build's path into its config, loading it on other random weights."""
    run = shutil.copytree(smoke_run.run_dir, tmp_path / "run", ignore=shutil.ignore_patterns("checkpoint*", "wandb"))
    config = run / "adapter" / "adapter_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()),
                                  "base_model_name_or_path": str(tmp_path / "tiny-ko" / "gone")}))
    with pytest.raises(KosovError) as error:
        checked_on(run / "adapter", "tiny-ko")
    assert "train the adapter again" in error.value.fix and "base_model_name_or_path" not in error.value.fix
