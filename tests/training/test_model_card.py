"""The release's license and model card: licenses kosov cannot combine are refused whatever else the data holds,
non-commercial data gets a Hub license id or a LICENSE.md, ShareAlike data and publish.license overrides are the
publisher's explicit choice and said so; the card's vLLM snippet fits the adapter, its lineage names the teacher
models, and it says what the adapter is for."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from training.errors import KosovError
from training.model_card import derive_license
from training.publish import publish
from training.recipes import compose


def run_with(smoke_run, folder: Path, licenses: dict[str, int] | None = None, **adapter_config) -> Path:
    """A copy of the smoke run whose provenance records `licenses` for its rows and whose adapter_config.json has
    `adapter_config` (publish reads both from the run folder; no training needed)."""
    run = folder / "run"
    shutil.copytree(smoke_run.run_dir, run)
    if licenses is not None:
        prov = json.loads((run / "provenance.json").read_text(encoding="utf-8"))
        prov["data"]["licenses"] = licenses
        prov["data"].pop("license_sources", None)
        (run / "provenance.json").write_text(json.dumps(prov), encoding="utf-8")
    if adapter_config:
        path = run / "adapter" / "adapter_config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **adapter_config}), encoding="utf-8")
    return run


def card_of(folder: Path):
    from huggingface_hub import ModelCard

    return ModelCard.load(folder / "README.md")


@pytest.mark.parametrize("licenses, refused", [
    ({"cc-by-nc-4.0": 5, "gpl-3.0": 5}, "gpl-3.0: 5"),
    ({"CC-BY-NC-4.0": 1, "cc-by-nd-4.0": 1}, "cc-by-nd-4.0: 1"),
    ({"cc-by-nc-nd-4.0": 2, "apache-2.0": 3}, "cc-by-nc-nd-4.0: 2"),  # NC, and no adaptation may be shared
    ({"cc-by-nc-4.0": 1, "proprietary": 4}, "proprietary: 4"),
])
def test_a_license_kosov_cannot_combine_is_refused_even_beside_noncommercial_rows(licenses, refused):
    """One non-commercial row made the license "other" before the check that refuses what kosov cannot combine:
    GPL, No-Derivatives and proprietary rows passed silently beside it, and were refused alone."""
    with pytest.raises(KosovError, match="cannot combine the data licenses") as error:
        derive_license("Qwen/Qwen3-8B", licenses, None)
    assert refused in str(error.value) and "publish.license" in error.value.fix


@pytest.mark.parametrize("licenses, expected", [
    ({"Apache-2.0": 300, "CC-BY-NC-4.0": 20}, "cc-by-nc-4.0"),
    ({"mit": 1, "cc-by-nc-sa-4.0": 3}, "cc-by-nc-sa-4.0"),  # ShareAlike too: the adapter is under that very license
])  # several NC licenses (no one Hub id): "other" and LICENSE.md, below
def test_noncommercial_data_under_one_hub_license_gets_that_id(licenses, expected):
    license_, why = derive_license("Qwen/Qwen3-8B", licenses, None)
    assert license_ == expected and why.startswith("non-commercial")


@pytest.mark.parametrize("licenses", [{"apache-2.0": 10, "cc-by-sa-4.0": 3}, {"cc-by-nc-4.0": 2, "cc-by-sa-4.0": 1},
                                      {"cc-by-nc-4.0": 2, "cc-by-nc-sa-4.0": 1}])
def test_sharealike_data_needs_the_publishers_choice_of_license(licenses):
    """cc-by-sa rows gave the base's apache-2.0 with nothing but a paragraph in the card: their terms ask that adapted
    material keep their license, and whether that reaches weights is the publisher's call, made explicitly."""
    with pytest.raises(KosovError, match="ShareAlike") as error:
        derive_license("Qwen/Qwen3-8B", licenses, None)
    shared = next(k for k in licenses if "-sa-" in k)
    assert f"{shared}: {licenses[shared]}" in str(error.value) and f"publish.license={shared}" in error.value.fix
    assert derive_license("Qwen/Qwen3-8B", licenses, shared)[0] == shared


def test_noncommercial_rows_of_several_licenses_get_a_license_file_the_card_links(smoke_run, tmp_path, caplog):
    """`license: other` with `license_name: kosov-noncommercial` and no license_link nor any LICENSE file: the Hub's
    model card spec asks for a link with `other`. The file lists the data's licenses with their rows and the base's,
    is uploaded, and holds no local path."""
    run = run_with(smoke_run, tmp_path, {"Apache-2.0": 20, "CC-BY-NC-4.0": 3, "CC-BY-NC-3.0": 2})
    with caplog.at_level(logging.WARNING, logger="training.publish"):
        result = publish(compose([f"run={run}", f"output_dir={tmp_path / 'release'}"]))
    card = card_of(result.folder)
    assert card.data.license == "other" and card.data.license_name == "kosov-noncommercial"
    assert card.data.license_link == "LICENSE.md" and "LICENSE.md" in result.upload
    text = (result.folder / "LICENSE.md").read_text(encoding="utf-8")
    assert "| cc-by-nc-4.0 | 3 |" in text and "| cc-by-nc-3.0 | 2 |" in text and "| apache-2.0 | 20 |" in text
    assert "`tiny-ko`: apache-2.0." in text and "5 of 25 rows are under a non-commercial license" in text
    assert str(tmp_path) not in text
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("5 training rows are under a non-commercial license (cc-by-nc-3.0: 2, cc-by-nc-4.0: 3)" in m
               for m in warned), warned


def test_a_publish_license_overriding_the_derived_one_is_warned_about_and_said_in_the_card(smoke_run, tmp_path,
                                                                                             caplog):
    """publish.license=apache-2.0 on non-commercial rows was taken silently, and the card then listed cc-by-nc rows
    under an Apache license without saying who chose it."""
    run = run_with(smoke_run, tmp_path, {"Apache-2.0": 20, "CC-BY-NC-4.0": 5})
    with caplog.at_level(logging.WARNING, logger="training.publish"):
        result = publish(compose([f"run={run}", f"output_dir={tmp_path / 'release'}", "publish.license=apache-2.0"]))
    warned = " | ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "publish.license=apache-2.0 overrides cc-by-nc-4.0" in warned and "cc-by-nc-4.0: 5" in warned
    assert "releases it under apache-2.0, which does not say so" in warned
    card = card_of(result.folder)
    assert card.data.license == "apache-2.0" and not (result.folder / "LICENSE.md").exists()
    assert "set by the publisher (publish.license), overriding `cc-by-nc-4.0`" in card.text


def test_sharealike_rows_are_warned_about_when_the_publisher_chose_the_license(smoke_run, tmp_path, caplog):
    run = run_with(smoke_run, tmp_path, {"Apache-2.0": 20, "CC-BY-SA-4.0": 4})
    with pytest.raises(KosovError, match="ShareAlike"):
        publish(compose([f"run={run}", f"output_dir={tmp_path / 'refused'}"]))
    assert not (tmp_path / "refused").exists()
    with caplog.at_level(logging.WARNING, logger="training.publish"):
        publish(compose([f"run={run}", f"output_dir={tmp_path / 'release'}", "publish.license=cc-by-sa-4.0"]))
    warned = " | ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "4 training rows are under a ShareAlike license (cc-by-sa-4.0: 4)" in warned


@pytest.mark.parametrize("rank, expected", [(8, 8), (32, 32), (24, 32)])
def test_the_vllm_snippet_starts_vllm_with_the_adapters_rank(smoke_run, tmp_path, rank, expected):
    """LLM(model=base, enable_lora=True) refuses an r=32 adapter (the 8B QLoRA and 1.7B GRPO recipes): vLLM's
    max_lora_rank defaults to 16."""
    run = run_with(smoke_run, tmp_path, r=rank)
    card = (publish(compose([f"run={run}", f"output_dir={tmp_path / 'release'}"])).folder / "README.md").read_text()
    assert f'llm = LLM(model="tiny-ko", enable_lora=True, max_lora_rank={expected})' in card


def test_a_dora_adapter_gets_no_vllm_snippet(smoke_run, tmp_path):
    """vLLM refuses DoRA adapters at load ("vLLM does not yet support DoRA"): the card said to serve it with vLLM."""
    run = run_with(smoke_run, tmp_path, use_dora=True)
    card = (publish(compose([f"run={run}", f"output_dir={tmp_path / 'release'}"])).folder / "README.md").read_text()
    assert "enable_lora" not in card and "LoRARequest" not in card and "PeftModel.from_pretrained" in card
    assert "vLLM does not serve DoRA adapters" in card and "publish.merge=true" in card


def test_the_lineage_names_the_teacher_models_behind_the_rows(tmp_path, tiny_tokenizer):
    """Rows carry meta.teacher_model (the synth generators), and the data summary dropped it: the card never showed
    which model wrote the synthetic data. A summary of an older run, without the count, says so."""
    from tests.helpers import quick
    from training.model_card import _lineage
    from training.sft_data import build_sft_data

    def row(teacher):
        return {"messages": [{"role": "user", "content": "안녕?"}, {"role": "assistant", "content": "안녕하세요!"}],
                "meta": {"source": "synth", "license": "Apache-2.0", **({"teacher_model": teacher}
                                                                        if teacher != "absent" else {})}}

    data = tmp_path / "chat.jsonl"
    rows = [row("Qwen/Qwen3-32B")] * 3 + [row("tiny-ko"), row(None), row("absent")]
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    summary = build_sft_data(compose(quick(f"data.train_files=[{data}]", "data.eval_ratio=0")), tiny_tokenizer,
                             tiny_tokenizer.eos_token_id).summary
    assert summary["teacher_models"] == {"Qwen/Qwen3-32B": 3, "tiny-ko": 1}
    older = {k: v for k, v in summary.items() if k != "teacher_models"}
    lines = _lineage([{"name": "sft (new)", "provenance": {"data": summary}},
                      {"name": "sft (old)", "provenance": {"data": older}}])
    assert "teacher models" in lines[0]
    assert lines[2].endswith("| Qwen/Qwen3-32B: 3, tiny-ko: 1 |") and lines[3].endswith("| not recorded |")


def test_the_card_says_what_the_adapter_is_for_and_what_was_measured():
    from huggingface_hub import ModelCard

    from training.evaluation.report import build_report, to_markdown
    from training.model_card import model_card

    harness = {side: {"kmmlu": {"metric": "acc", "value": 0.4, "stderr": 0.07, "n": 500}} for side in ("base",
                                                                                                      "adapted")}
    report = build_report(suite="ko-core", model={"name_or_path": "Qwen/Qwen3-8B"}, adapter="/a", harness=harness,
                          generative={}, cached=[], settings={"limit": None, "num_fewshot": 5})

    def card(report):
        return ModelCard(model_card(
            repo="me/qwen3-ko", base="Qwen/Qwen3-8B", method="sft", config={}, metrics={}, report=report,
            report_md=to_markdown(report) if report else None, license_="apache-2.0", license_why="the base's",
            images={}, stages=[{"name": "sft", "provenance": {"packages": {}}}])).text

    section = card(report).split("## Intended use and limitations")[1].split("\n## ")[0]
    assert "Korean" in section and "Evaluated only on kmmlu" in section and "`Qwen/Qwen3-8B`" in section
    assert "inherits the base model's limitations" in section and "licenses of its training data" in section
    assert "No evaluation was published" in card(None).split("## Intended use and limitations")[1]


@pytest.mark.parametrize("model, base, expected", [
    ({"name_or_path": "Qwen/Qwen3-1.7B", "revision": None, "loaded_revision": "a" * 40}, "Qwen/Qwen3-1.7B",
     f', revision="{"a" * 40}"'),  # the commit the run loaded: main may have moved since
    ({"name_or_path": "Qwen/Qwen3-1.7B", "revision": "b" * 40, "loaded_revision": "b" * 40}, "Qwen/Qwen3-1.7B",
     f', revision="{"b" * 40}"'),
    ({"name_or_path": "/models/kormo-llama", "revision": None, "loaded_revision": None}, "my-org/kormo-llama", ""),
    ({"name_or_path": "KORMo/KORMo-10B", "revision": None, "loaded_revision": "c" * 40}, "my-org/kormo-llama", ""),
])
def test_the_usage_snippet_loads_the_base_at_the_commit_the_adapter_trained_on(model, base, expected):
    """An unpinned recipe's card loaded the base at main: once main moved, users got other weights than the adapter
    was trained on. A base the card names otherwise (publish.base_model) gets no commit of another repo."""
    from training.model_card import _load_args

    assert _load_args(model, base) == expected
