"""`kosov publish` on a tiny-ko run: the card parses and carries the eval report's numbers, the merged model
matches base + adapter, the upload list keeps checkpoints and secrets out, and no secret reaches the folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
import torch

from training.errors import KosovError
from training.evaluate import evaluate
from training.model_card import derive_license
from training.publish import publish, upload_list
from training.recipes import compose

HF_SECRET, WANDB_SECRET = "hf_kosovPublishSecret0123456789abcd", "kosovwandbsecret0123456789abcdef0123456"


@pytest.fixture(scope="module")
def release(smoke_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("publish")
    report = evaluate(compose(["experiment=smoke-eval", f"eval.adapter={smoke_run.run_dir}",
                               f"output_dir={root / 'eval'}"]))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HF_TOKEN", HF_SECRET)
        env.setenv("WANDB_API_KEY", WANDB_SECRET)
        result = publish(compose([f"run={smoke_run.run_dir}", f"publish.eval_report={root / 'eval'}",
                                  "publish.merge=true", f"output_dir={root / 'release'}", "repo_id=kosov-test/tiny-ko-lora"]))
    return result, report


def test_the_card_parses_and_carries_the_eval_numbers(release):
    from huggingface_hub import ModelCard

    result, report = release
    card = ModelCard.load(result.folder / "README.md")
    assert card.data.base_model == "tiny-ko" and card.data.library_name == "peft" and card.data.language == ["ko"]
    assert card.data.license == "apache-2.0" and "kosov" in card.data.tags
    published = {r.dataset_name: r.metric_value for r in card.data.eval_results}
    # the smoke suite's own evals take 16 prompts each (a subset): shown in the table, not in the metadata
    expected = {r["task"]: r["adapted"] for r in report.report["rows"] if r["kind"] == "lm-eval"}
    assert published == expected and "ko_mini_bench" in published
    assert "kosov's own evals on part of their prompts: ko_math_heldout 16, ko_language 16" in card.text
    text = card.text
    assert "| ko_mini_bench | acc |" in text and "## Data lineage" in text and "ko-chat-seed" in text
    assert "한국어" in text and "PeftModel.from_pretrained" in text and "LoRARequest" in text
    assert (result.folder / "training_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_no_local_path_of_the_training_machine_reaches_the_release(release, smoke_run):
    """The eval table named the adapter by its local path (/home/alice/...), and provenance.json kept the data
    files', the model folder's and the run folder's: a public release names them by their last part only."""
    import training

    result, report = release
    local = [str(smoke_run.run_dir.parent), str(Path(training.__file__).parents[1])]  # tmp folders, the checkout
    for name in ("README.md", "provenance.json", "eval_report.json", "kosov_recipe.yaml"):
        text = (result.folder / name).read_text(encoding="utf-8")
        assert not [p for p in local if p in text], (name, local)
    assert "adapter: `kosov-test/tiny-ko-lora`" in (result.folder / "README.md").read_text(encoding="utf-8")
    published = json.loads((result.folder / "provenance.json").read_text())["stages"][-1]["provenance"]
    source = published["data"]["sources"][0]
    assert source["path"] == "ko_chat_seed.jsonl" and len(source["sha256"]) == 64  # named, and pinned as before


def test_a_local_base_is_named_by_its_folder_in_the_eval_table_and_report(release, smoke_run, tmp_path):
    """The eval table's "Base:" line and eval_report.json kept the evaluated base's local path
    (/home/alice/models/...), though the recipe section already named it by its folder."""
    import shutil

    result, report = release
    alice = "/home/alice/models/tiny-base"
    run, evaluated = tmp_path / "run", tmp_path / "eval"
    shutil.copytree(smoke_run.run_dir, run)
    shutil.copytree(report.run_dir, evaluated)
    for path in (run / "config.yaml", evaluated / "report.json"):
        data = yaml.safe_load(path.read_text()) if path.suffix == ".yaml" else json.loads(path.read_text())
        data["model"]["name_or_path"] = alice  # as if both had loaded the base from Alice's folder
        path.write_text(yaml.safe_dump(data) if path.suffix == ".yaml" else json.dumps(data))
    published = publish(compose([f"run={run}", f"publish.eval_report={evaluated}", f"output_dir={tmp_path / 'rel'}",
                                 "publish.base_model=kosov-test/tiny-base", "publish.license=apache-2.0"]))
    card = (published.folder / "README.md").read_text(encoding="utf-8")
    shown = json.loads((published.folder / "eval_report.json").read_text(encoding="utf-8"))
    assert alice not in card and "Base: `tiny-base`" in card and "| ko_mini_bench | acc |" in card
    assert shown["model"]["name_or_path"] == "tiny-base" and alice not in json.dumps(shown)


def test_the_merged_model_matches_base_plus_adapter(release, smoke_run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result, _ = release
    merged_dir = result.folder / "merged"
    assert result.merge_check["ok"] and result.merge_check["max_abs_logit_diff"] < 1e-4
    config = json.loads((result.folder / "adapter_config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    ids = tokenizer(["김치찌개 끓이는 법을 알려 주세요."], return_tensors="pt")
    base = AutoModelForCausalLM.from_pretrained(config["base_model_name_or_path"])
    with torch.no_grad():
        expected = PeftModel.from_pretrained(base, result.folder).model(**ids).logits
        merged = AutoModelForCausalLM.from_pretrained(merged_dir)(**ids).logits
    assert torch.allclose(merged, expected, atol=1e-4)
    assert "max_new_tokens" not in (merged_dir / "generation_config.json").read_text()


def test_the_upload_list_keeps_checkpoints_merged_models_and_pickles_out(release, smoke_run):
    result, _ = release
    files = result.upload
    assert {"README.md", "adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= set(files)
    assert not [f for f in files if f.startswith(("merged/", "checkpoints/")) or f.endswith((".bin", ".pt", ".pth"))]
    assert json.loads((result.folder / "upload_plan.json").read_text())["files"] == files
    (result.folder / "checkpoints" / "checkpoint-5").mkdir(parents=True)
    (result.folder / "checkpoints" / "checkpoint-5" / "optimizer.pt").write_bytes(b"x")
    (result.folder / "training_args.bin").write_bytes(b"x")
    assert upload_list(result.folder) == files
    assert not result.pushed


def test_no_secret_from_the_environment_reaches_the_release(release):
    result, _ = release
    for path in result.folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert HF_SECRET.encode() not in data and WANDB_SECRET.encode() not in data, path
    stages = json.loads((result.folder / "provenance.json").read_text())["stages"]
    assert stages and all("host" not in s["provenance"] and "command" not in s["provenance"] for s in stages)
    assert all(s["provenance"]["data"]["sources"] and s["provenance"]["packages"] for s in stages)  # the lineage


def test_push_without_a_token_is_a_clear_error(smoke_run, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    # No stored `hf auth login` token either, even on a developer's machine.
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-login" / "token"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # a machine that reaches the Hub
    cfg = compose([f"run={smoke_run.run_dir}", f"output_dir={tmp_path / 'release'}", "push=true",
                   "repo_id=kosov-test/tiny-ko-lora"])
    with pytest.raises(KosovError, match="no Hugging Face token"):
        publish(cfg)
    assert not (tmp_path / "release").exists()  # checked before the folder is built, not after


def test_an_eval_report_of_another_adapter_is_refused(release, tmp_path):
    from training.train import train
    from tests.helpers import quick

    result, report = release
    other = train(compose(quick(f"output_dir={tmp_path / 'other'}")))
    with pytest.raises(KosovError, match="evaluated another adapter"):
        publish(compose([f"run={other.run_dir}", f"publish.eval_report={report.run_dir}",
                         f"output_dir={tmp_path / 'release'}"]))


def test_credentials_inside_a_url_reach_no_file_of_the_release(smoke_run, tmp_path):
    """A hand-edited (or older) config.yaml with a key inside a URL: the recipe and card are written redacted, and a
    file copied as it is that still holds one stops the release before anything is written."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(smoke_run.run_dir, run)
    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    config["synth"]["teacher"]["base_url"] = "https://kosov:sk-proj-ABCDEF1234567890@llm-proxy.example/v1"
    (run / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    result = publish(compose([f"run={run}", f"output_dir={tmp_path / 'release'}"]))
    assert "https://***@llm-proxy.example/v1" in (result.folder / "kosov_recipe.yaml").read_text(encoding="utf-8")
    for path in result.folder.rglob("*"):
        assert not path.is_file() or b"sk-proj-ABCDEF1234567890" not in path.read_bytes(), path
    template = run / "adapter" / "chat_template.jinja"  # copied into the release as it is
    template.write_text(template.read_text(encoding="utf-8") + "{# https://kosov:sk-proj-ABCDEF1234567890@proxy #}",
                        encoding="utf-8")
    with pytest.raises(KosovError, match="credentials inside a URL") as error:
        publish(compose([f"run={run}", f"output_dir={tmp_path / 'release2'}"]))
    assert "chat_template.jinja" in str(error.value) and not (tmp_path / "release2").exists()


def test_an_eval_report_of_the_adapter_on_another_base_commit_is_refused(release, smoke_run, tmp_path):
    """Only the adapter was compared: its scores on another revision of the base went into the card."""
    import shutil

    _, report = release
    other = tmp_path / "eval"
    shutil.copytree(report.run_dir, other)
    data = json.loads((other / "report.json").read_text(encoding="utf-8"))
    data["model"]["revision"] = "0123456789abcdef0123456789abcdef01234567"
    (other / "report.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(KosovError, match="model.revision='0123456789abcdef") as error:
        publish(compose([f"run={smoke_run.run_dir}", f"publish.eval_report={other}",
                         f"output_dir={tmp_path / 'release'}"]))
    assert "the run trained on None" in str(error.value) and not (tmp_path / "release").exists()


def test_an_existing_release_folder_is_not_overwritten(release, smoke_run):
    result, _ = release
    with pytest.raises(KosovError, match="already holds a release"):
        publish(compose([f"run={smoke_run.run_dir}", f"output_dir={result.folder}"]))


def test_overwrite_replaces_an_earlier_release_and_nothing_else(smoke_run, tmp_path):
    """A mistyped output_dir with overwrite=true deleted whatever folder it named (other runs, notes)."""
    import shutil

    work = tmp_path / "mywork"
    shutil.copytree(smoke_run.run_dir, work / "another_run")
    (work / "notes.txt").write_text("실험 메모", encoding="utf-8")
    with pytest.raises(KosovError, match=r"not a kosov release \(another_run, notes.txt\)"):
        publish(compose([f"run={smoke_run.run_dir}", f"output_dir={work}", "overwrite=true"]))
    assert (work / "notes.txt").read_text(encoding="utf-8") == "실험 메모" and (work / "another_run" / "adapter").is_dir()
    out = tmp_path / "release"
    publish(compose([f"run={smoke_run.run_dir}", f"output_dir={out}"]))
    publish(compose([f"run={smoke_run.run_dir}", f"output_dir={out}", "overwrite=true"]))  # a release: replaced
    assert (out / "upload_plan.json").is_file()


def test_a_failed_merge_check_leaves_the_previous_release_whole(release, smoke_run, monkeypatch):
    """The logits check fails (a merge that changed the model, forced here by scaling the merged logits): the
    overwrite is refused as a whole, the release already there stays as it was, and the check is kept to report."""
    from training import merge

    result, _ = release
    before = sorted(str(p.relative_to(result.folder)) for p in result.folder.rglob("*"))
    logits = merge._logits
    monkeypatch.setattr(merge, "_logits", lambda model, inputs: logits(model, inputs) * (1 + 0.5 * ("Peft" not in
                                                                                          type(model).__name__)))
    with pytest.raises(KosovError, match="no release was written") as error:
        publish(compose([f"run={smoke_run.run_dir}", "publish.merge=true", f"output_dir={result.folder}",
                         "overwrite=true"]))
    assert sorted(str(p.relative_to(result.folder)) for p in result.folder.rglob("*")) == before
    kept = result.folder.with_name(f"{result.folder.name}.merge_check.json")
    assert str(kept) in str(error.value) and json.loads(kept.read_text())["ok"] is False
    assert not result.folder.with_name(f".{result.folder.name}.building").exists()


@pytest.mark.parametrize("licenses, expected", [
    ({"Apache-2.0": 300, "MIT": 20}, "apache-2.0"),
    ({"Apache-2.0": 300, "CC-BY-NC-4.0": 20}, "cc-by-nc-4.0"),  # a Hub license id: no "other"
])
def test_the_license_is_derived_from_base_and_data(licenses, expected):
    assert derive_license("Qwen/Qwen3-8B", licenses, None)[0] == expected


def test_unknown_licenses_stop_the_release():
    with pytest.raises(KosovError, match="carry no license"):
        derive_license("Qwen/Qwen3-8B", {"unknown": 3}, None)
    for base in ("someone/new-base", "Qwen/Qwen2.5-72B-Instruct", "Qwen/Qwen1.5-7B-Chat"):  # not all Apache-2.0
        with pytest.raises(KosovError, match="publish.license"):
            derive_license(base, {"Apache-2.0": 1}, None)
    assert derive_license("someone/new-base", {"unknown": 3}, "cc-by-nc-4.0")[0] == "cc-by-nc-4.0"


def test_publish_never_replaces_the_run_it_releases(smoke_run, tmp_path):
    import shutil

    run = tmp_path / "runs" / "sft"
    shutil.copytree(smoke_run.run_dir, run)
    before = sorted(p.name for p in run.iterdir())
    for out in (run, run.parent):  # the run folder itself, or a folder holding it (and other runs)
        with pytest.raises(KosovError, match="replacing it would delete it"):
            publish(compose([f"run={run}", f"output_dir={out}", "overwrite=true"]))
    assert sorted(p.name for p in run.iterdir()) == before
    with pytest.raises(KosovError, match="not a kosov run folder"):  # the adapter folder instead of its run
        publish(compose([f"run={run / 'adapter'}", f"output_dir={tmp_path / 'release'}"]))


def test_a_bf16_merge_passes_its_check_and_keeps_the_base_tokenizer(tmp_path):
    from tests.helpers import quick
    from training.train import train

    run = train(compose(quick(f"output_dir={tmp_path / 'run'}", "model.dtype=bfloat16"))).run_dir
    result = publish(compose([f"run={run}", "publish.merge=true", f"output_dir={tmp_path / 'release'}"]))
    check = result.merge_check
    assert check["ok"] and check["dtype"] == "torch.bfloat16" and 0 < check["max_abs_logit_diff"] <= check["tolerance"]
    saved = json.loads((result.folder / "merged" / "tokenizer.json").read_text())
    assert saved["padding"] is None  # the logits check's padding is not saved into the released tokenizer


def remote_code_base(folder):
    """tiny-ko as a model whose class lives in its own folder (model_type unknown to transformers), like KORMo."""
    import shutil

    from tests.helpers import quick
    from training.models import model_source

    shutil.copytree(model_source(compose(quick()).model)[0], folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="kosovtiny", architectures=["KosovTinyForCausalLM"],
                  auto_map={"AutoConfig": "configuration_kosovtiny.KosovTinyConfig",
                            "AutoModelForCausalLM": "modeling_kosovtiny.KosovTinyForCausalLM"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "configuration_kosovtiny.py").write_text(
        "from transformers import Qwen3Config\n\n\nclass KosovTinyConfig(Qwen3Config):\n    model_type = 'kosovtiny'\n")
    (folder / "modeling_kosovtiny.py").write_text(
        "from transformers import Qwen3ForCausalLM\n\nfrom .configuration_kosovtiny import KosovTinyConfig\n\n\n"
        "class KosovTinyForCausalLM(Qwen3ForCausalLM):\n    config_class = KosovTinyConfig\n")
    return folder


def test_a_remote_code_base_merges_and_its_card_loads_it_with_remote_code(tmp_path):
    from tests.helpers import quick
    from training.train import train

    base = remote_code_base(tmp_path / "base")
    run = train(compose(quick(f"output_dir={tmp_path / 'run'}", f"model.name_or_path={base}",
                              "model.trust_remote_code=true"))).run_dir
    with pytest.raises(KosovError, match="base is the local folder") as error:  # nobody else can load that path
        publish(compose([f"run={run}", f"output_dir={tmp_path / 'release'}", "publish.license=apache-2.0"]))
    assert "publish.base_model=" in str(error.value)
    result = publish(compose([f"run={run}", "publish.merge=true", f"output_dir={tmp_path / 'release'}",
                              "publish.license=apache-2.0", "publish.base_model=kosov-test/tiny-remote"]))
    assert result.merge_check["ok"]
    card = (result.folder / "README.md").read_text()
    assert 'from_pretrained("kosov-test/tiny-remote", trust_remote_code=True' in card
    assert "trust_remote_code=True, enable_lora" in card and "base_model: kosov-test/tiny-remote" in card
    adapter_config = json.loads((result.folder / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "kosov-test/tiny-remote"
    assert str(base) not in card  # metadata, usage, and the recipe (by the folder's name)


def test_the_command_line_publishes_into_the_run_by_default_and_leaves_no_empty_folders(smoke_run, tmp_path):
    import shutil
    import subprocess

    from tests.training.test_scale_out import kosov_bin

    run = tmp_path / "run"
    shutil.copytree(smoke_run.run_dir, run)
    done = subprocess.run([kosov_bin(), "publish", f"run={run}"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (run / "release" / "README.md").is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    failed = subprocess.run([kosov_bin(), "publish", f"run={tmp_path / 'no-run'}", f"output_dir={tmp_path / 'rel'}"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert failed.returncode == 2 and not (tmp_path / "rel").exists()  # a failed publish leaves nothing behind


def test_the_card_links_hub_datasets_only_and_pins_each_source():
    """data.hub_id=data/ko-math (a local dataset folder) was linked as someone's Hub dataset, and a Hub source's
    revision and fingerprint were dropped from the lineage."""
    from training.model_card import _lineage, hub_datasets

    sources = [{"hub_id": "data/ko-math", "local": True, "fingerprint": "abcdef0123456789", "revision": None},
               {"hub_id": "kosov/ko-chat", "local": False, "revision": "v1.2", "fingerprint": "0123456789abcdef"},
               {"path": "/data/rows.jsonl", "sha256": "f" * 64}]
    stages = [{"name": "sft", "provenance": {"data": {"name": "mix", "sources": sources, "train_rows": 10,
                                                      "licenses": {"Apache-2.0": 10}}}}]
    assert hub_datasets(stages) == ["kosov/ko-chat"]
    row = _lineage(stages)[2]
    assert "ko-math, local dataset folder (fingerprint abcdef012345…)" in row
    assert "kosov/ko-chat (revision v1.2; fingerprint 0123456789ab…)" in row and "rows.jsonl (sha256 ffffffffffff…)" in row


def test_a_release_a_killed_publish_set_aside_comes_back_and_is_not_replaced_unasked(smoke_run, tmp_path):
    """Killed between setting the earlier release aside and renaming the new one into place, a publish left no
    release folder: the next publish puts the earlier one back and, without overwrite=true, keeps it."""
    out = tmp_path / "release"
    publish(compose([f"run={smoke_run.run_dir}", f"output_dir={out}"]))
    card = (out / "README.md").read_text(encoding="utf-8")
    out.rename(tmp_path / ".release.replaced-0badc0de")
    with pytest.raises(KosovError, match="already holds a release"):
        publish(compose([f"run={smoke_run.run_dir}", f"output_dir={out}"]))
    assert (out / "README.md").read_text(encoding="utf-8") == card
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release"]


def test_a_run_on_local_files_is_released_by_names_with_the_template_it_trained_with(tmp_path):
    """Trained from a local base folder, with a data file and a chat template given by absolute paths: the release
    names them by their last part only and credits the CC BY rows' source; the merged model gets the template saved
    with the adapter though the recipe's file was edited since; and once the base folder is gone, its path is still
    not published as a Hub id."""
    import shutil

    from tests.helpers import quick
    from training.models import model_source
    from training.train import train

    base = tmp_path / "models" / "tiny-base"
    shutil.copytree(model_source(compose(quick()).model)[0], base)
    template = tmp_path / "templates" / "chat.jinja"
    template.parent.mkdir()
    shutil.copyfile(Path(training_root(), "training/assets/chat_templates/tiny_ko.jinja"), template)
    seed = Path(training_root(), "data_tools/datasets/ko_chat_seed.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in seed[:24]]
    for i, row in enumerate(rows):
        row["meta"] = ({"source": "ko-wiki-qa", "license": "CC-BY-SA-4.0"} if i % 2 else
                       {"source": "kosov-seed", "license": "Apache-2.0"})
    data = tmp_path / "data" / "rows.jsonl"
    data.parent.mkdir()
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    run = train(compose(quick(f"output_dir={tmp_path / 'run'}", f"model.name_or_path={base}",
                              f"model.chat_template={template}", f"data.train_files=[{data}]"))).run_dir
    trained = (run / "adapter" / "chat_template.jinja").read_text(encoding="utf-8")
    template.write_text("{{ 'edited after training' }}", encoding="utf-8")

    result = publish(compose([f"run={run}", "publish.merge=true", f"output_dir={tmp_path / 'release'}",
                              "publish.base_model=kosov-test/tiny-local", "publish.license=apache-2.0"]))
    assert result.merge_check["ok"]
    assert (result.folder / "merged" / "chat_template.jinja").read_text(encoding="utf-8") == trained
    for name in ("README.md", "kosov_recipe.yaml", "provenance.json"):
        assert str(tmp_path) not in (result.folder / name).read_text(encoding="utf-8"), name
    recipe = yaml.safe_load((result.folder / "kosov_recipe.yaml").read_text(encoding="utf-8"))
    assert recipe["data"]["train_files"] == ["rows.jsonl"] and recipe["model"]["chat_template"] == "chat.jinja"
    card = (result.folder / "README.md").read_text(encoding="utf-8")
    credited = json.loads((run / "provenance.json").read_text())["data"]["license_sources"]["CC-BY-SA-4.0"]
    assert "## Attribution" in card and f"| CC-BY-SA-4.0 | ko-wiki-qa | {credited['ko-wiki-qa']} |" in card
    assert "ShareAlike" in card and "kosov-seed" not in card.split("## Attribution")[1].split("## ")[0]

    shutil.rmtree(base)
    with pytest.raises(KosovError, match="base is the local folder"):
        publish(compose([f"run={run}", f"output_dir={tmp_path / 'r2'}", "publish.license=apache-2.0"]))
    saved = json.loads((run / "provenance.json").read_text())
    del saved["model"]["local"]  # a run from before provenance recorded it: the gone folder's path is no hub id
    (run / "provenance.json").write_text(json.dumps(saved))
    with pytest.raises(KosovError, match="base is the local folder"):
        publish(compose([f"run={run}", f"output_dir={tmp_path / 'r2'}", "publish.license=apache-2.0"]))


def test_the_smoke_release_under_apache_credits_nobody(release):
    assert "## Attribution" not in (release[0].folder / "README.md").read_text(encoding="utf-8")


def training_root() -> Path:
    import training

    return Path(training.__file__).parents[1]


def test_output_dir_dot_or_a_folder_above_is_refused_and_a_dotted_path_is_the_folder_it_names(smoke_run, tmp_path,
                                                                                            monkeypatch):
    """output_dir=. crashed with "PosixPath('.') has an empty name" (the staging folder is named after it)."""
    here = tmp_path / "work" / "here"
    here.mkdir(parents=True)
    monkeypatch.chdir(here)
    for out in (".", "..", str(here), "sub/.."):
        with pytest.raises(KosovError, match="is the folder kosov publish runs in, or holds it") as error:
            publish(compose([f"run={smoke_run.run_dir}", f"output_dir={out}"]))
        assert "output_dir=release" in error.value.fix
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["here"] and not list(here.iterdir())
    result = publish(compose([f"run={smoke_run.run_dir}", "output_dir=sub/../release"]))
    assert result.folder == here / "release" and (here / "release" / "README.md").is_file()
    assert sorted(p.name for p in here.iterdir()) == ["release"]  # no staging folder left beside it


def test_a_secret_the_run_recorded_at_training_time_is_redacted_or_stops_the_release(smoke_run, tmp_path,
                                                                                    monkeypatch):
    """The environment's secrets are in the run's files (a training-time leak, planted here): each is redacted in
    what publish rewrites (the recipe, provenance.json) or stops the release, naming the file, before anything is
    written. The Hub login's token (no HF_TOKEN) is not known to redaction: it stops the release."""
    import shutil

    import huggingface_hub.constants

    monkeypatch.setenv("HF_TOKEN", HF_SECRET)
    monkeypatch.setenv("WANDB_API_KEY", WANDB_SECRET)
    run = tmp_path / "run"
    shutil.copytree(smoke_run.run_dir, run)
    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    config["synth"]["teacher"]["model"] = f"org/teacher-{HF_SECRET}"  # under keys no secret is expected at
    config["name"] = f"smoke-{WANDB_SECRET}"
    (run / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    prov = json.loads((run / "provenance.json").read_text(encoding="utf-8"))
    prov["runtime"]["note"] = f"token {HF_SECRET}"  # shown in provenance.json only, not in the card
    (run / "provenance.json").write_text(json.dumps(prov), encoding="utf-8")
    result = publish(compose([f"run={run}", f"output_dir={tmp_path / 'release'}"]))
    for path in (p for p in result.folder.rglob("*") if p.is_file()):
        assert HF_SECRET.encode() not in path.read_bytes() and WANDB_SECRET.encode() not in path.read_bytes(), path
    recipe = yaml.safe_load((result.folder / "kosov_recipe.yaml").read_text(encoding="utf-8"))
    assert recipe["synth"]["teacher"]["model"] == "org/teacher-***" and recipe["name"] == "smoke-***"
    published = json.loads((result.folder / "provenance.json").read_text())["stages"][-1]["provenance"]
    assert published["runtime"]["note"] == "token ***"

    prov["data"]["name"] = f"rows-{HF_SECRET}"  # the card's lineage table shows it
    (run / "provenance.json").write_text(json.dumps(prov), encoding="utf-8")
    with pytest.raises(KosovError, match=r"a secret .* is in \['README.md'\]; nothing was written"):
        publish(compose([f"run={run}", f"output_dir={tmp_path / 'r2'}"]))
    shutil.copyfile(smoke_run.run_dir / "provenance.json", run / "provenance.json")
    template = run / "adapter" / "chat_template.jinja"  # copied into the release as it is
    template.write_text(template.read_text(encoding="utf-8") + f"{{# {WANDB_SECRET} #}}", encoding="utf-8")
    with pytest.raises(KosovError, match=r"is in \['chat_template.jinja'\]"):
        publish(compose([f"run={run}", f"output_dir={tmp_path / 'r2'}"]))
    shutil.copyfile(smoke_run.run_dir / "adapter" / "chat_template.jinja", template)

    login = tmp_path / "hf-home" / "token"  # `hf auth login`'s token, in config.yaml; no HF_TOKEN to redact it by
    login.parent.mkdir()
    login.write_text("hf_kosovStoredLogin0123456789abcdefgh")
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(login))
    monkeypatch.delenv("HF_TOKEN")
    config["synth"]["teacher"]["model"] = "org/teacher-hf_kosovStoredLogin0123456789abcdefgh"
    (run / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    with pytest.raises(KosovError, match=r"is in \['README.md', 'kosov_recipe.yaml'\]"):
        publish(compose([f"run={run}", f"output_dir={tmp_path / 'r2'}"]))
    assert not (tmp_path / "r2").exists()
