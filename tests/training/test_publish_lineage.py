"""The lineage on a release's card: the runs its adapter started from, each with its data and licenses, found where
kosov can be sure of them (the path recorded, a chained run's own SFT stage, publish.start_adapter checked against
the LoRA shape recorded), and the license left to the publisher where it cannot."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from training.errors import KosovError
from training.publish import publish
from training.recipes import compose


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        node = data
        for parent in parents:
            node = node[parent]
        node[key] = value
    path.write_text(json.dumps(data), encoding="utf-8")


def recorded_settings(adapter: Path) -> dict:
    """The LoRA settings train.py records of the adapter a run started from."""
    from training.adapters import continued_settings

    return continued_settings(adapter, compose(["experiment=smoke-sft"]).peft)


def chained_runs(smoke_run, root: Path, start_adapter: str | None = None, **settings) -> tuple[Path, Path]:
    """A GRPO-like run (a copy of the smoke run) whose provenance says it started from the adapter of `root/sft`
    (another copy): `start_adapter` as recorded (runs before the fix recorded a path relative to the folder `kosov
    train` ran in), with the LoRA settings train.py records of it (changed by `settings`)."""
    first, second = root / "sft", root / "grpo"
    shutil.copytree(smoke_run.run_dir, first)
    shutil.copytree(smoke_run.run_dir, second)
    _edit_json(second / "provenance.json", model__start_adapter=start_adapter or str(first / "adapter"),
               model__start_adapter_settings={**recorded_settings(first / "adapter"), **settings})
    return first, second


def noncommercial_run(smoke_run, folder: Path) -> Path:
    """Another run, whose rows are CC-BY-NC-4.0."""
    shutil.copytree(smoke_run.run_dir, folder)
    _edit_json(folder / "provenance.json", data__licenses={"CC-BY-NC-4.0": 24}, data__name="someone-elses-nc-rows")
    return folder


def one_folder_chain(smoke_run, run: Path, start_adapter: str | None = None) -> Path:
    """A chained GRPO run as train.py writes it (method.grpo.sft_stage): its SFT stage in run/sft, trained on
    CC-BY-NC-4.0 rows, and its provenance recording `start_adapter` (default: run/sft/adapter, absolute)."""
    shutil.copytree(smoke_run.run_dir, run)
    noncommercial_run(smoke_run, run / "sft")
    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    config["method"].update(name="grpo", grpo={**(config["method"].get("grpo") or {}),
                                               "sft_stage": ["experiment=smoke-sft"]})
    (run / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    _edit_json(run / "provenance.json", model__start_adapter=start_adapter or str(run / "sft" / "adapter"),
               model__start_adapter_settings=recorded_settings(run / "sft" / "adapter"))
    return run


def released(folder: Path) -> tuple[str, list[dict]]:
    """The release's card and the lineage stages its provenance.json holds."""
    return ((folder / "README.md").read_text(encoding="utf-8"),
            json.loads((folder / "provenance.json").read_text(encoding="utf-8"))["stages"])


def test_a_relative_start_adapter_is_never_read_from_the_folder_publish_runs_in(smoke_run, tmp_path, monkeypatch):
    """`kosov train method.init_adapter=sft output_dir=grpo` recorded start_adapter "sft/adapter": publish read it
    from the folder it ran in, where another sft/ run gave the card its rows and cc-by-nc-4.0 license. The publisher
    gives its folder with publish.start_adapter (the error says so), and the card says who located it."""
    first, second = chained_runs(smoke_run, tmp_path / "train", start_adapter="sft/adapter")
    elsewhere = tmp_path / "elsewhere"
    noncommercial_run(smoke_run, elsewhere / "sft")
    monkeypatch.chdir(elsewhere)
    with pytest.raises(KosovError, match="'sft/adapter'") as error:
        publish(compose([f"run={second}", f"output_dir={tmp_path / 'r1'}"]))
    assert str(second / "provenance.json") in str(error.value) and "relative" in error.value.what
    assert "publish.start_adapter=" in error.value.fix and "model.start_adapter" not in error.value.fix
    assert "publish.license" in error.value.fix and not (tmp_path / "r1").exists()
    monkeypatch.chdir(tmp_path / "train")  # where it trained: still not guessed
    with pytest.raises(KosovError, match="'sft/adapter'"):
        publish(compose([f"run={second}", f"output_dir={tmp_path / 'r1'}"]))
    monkeypatch.chdir(elsewhere)
    card, stages = released(publish(compose([f"run={second}", f"output_dir={tmp_path / 'r2'}",
                                             "publish.license=apache-2.0"])).folder)
    assert "license: apache-2.0" in card and "someone-elses-nc-rows" not in card and "cc-by-nc" not in card.lower()
    assert [s["name"] for s in stages] == ["? (the adapter it started from)", "sft (grpo)"]
    for given in (first, first / "adapter"):  # the fix the error gives: the run folder or its adapter
        card, stages = released(publish(compose([f"run={second}", f"output_dir={tmp_path / 'r3'}", "overwrite=true",
                                                 f"publish.start_adapter={given}"])).folder)
        assert [s["name"] for s in stages] == ["sft (sft)", "sft (grpo)"] and all(s["provenance"]["data"]
                                                                                  for s in stages)
        assert "given by the publisher (publish.start_adapter)" in stages[0]["located"]
        assert "sft (sft), the adapter sft (grpo) started from: given by the publisher" in card
        assert str(tmp_path) not in card  # the folder the publisher gave is named by no local path


def test_an_adapter_of_another_shape_where_the_run_started_is_not_taken_for_its_start(smoke_run, tmp_path):
    """Another run trained since into the folder the run started from: its rows are not this adapter's lineage."""
    first, second = chained_runs(smoke_run, tmp_path / "train")
    config = json.loads((first / "adapter" / "adapter_config.json").read_text())
    (first / "adapter" / "adapter_config.json").write_text(json.dumps({**config, "r": 2 * config["r"]}))
    _edit_json(first / "provenance.json", data__licenses={"CC-BY-NC-4.0": 24})
    with pytest.raises(KosovError, match=f"another shape \\(r {config['r']} then, {2 * config['r']} now\\)") as error:
        publish(compose([f"run={second}", f"output_dir={tmp_path / 'r1'}"]))
    assert str(first / "adapter") in error.value.fix and "publish.license" in error.value.fix
    assert "publish.start_adapter=" in error.value.fix
    # given as the start, the same adapter is refused the same way, even with a license: it is not the start
    with pytest.raises(KosovError, match=f"publish.start_adapter=.*another LoRA shape.*r {config['r']} then"):
        publish(compose([f"run={second}", f"output_dir={tmp_path / 'r1'}", f"publish.start_adapter={first}",
                         "publish.license=apache-2.0"]))
    assert not (tmp_path / "r1").exists()


def test_publish_start_adapter_is_refused_where_it_would_replace_a_lineage_kosov_knows(smoke_run, tmp_path):
    """The override stands for a record that cannot be used, never for one that can; nor for a run that started
    from no adapter, a folder without an adapter, or the run's own adapter."""
    first, second = chained_runs(smoke_run, tmp_path / "train")
    other = noncommercial_run(smoke_run, tmp_path / "other")
    out = f"output_dir={tmp_path / 'r'}"
    with pytest.raises(KosovError, match=f"started from the adapter at {first / 'adapter'}, which is still there"):
        publish(compose([f"run={second}", out, f"publish.start_adapter={other}"]))
    with pytest.raises(KosovError, match="started from no adapter"):
        publish(compose([f"run={first}", out, f"publish.start_adapter={other}"]))
    with pytest.raises(KosovError, match="publish.start_adapter=.*no LoRA adapter"):
        publish(compose([f"run={second}", out, f"publish.start_adapter={tmp_path}"]))
    with pytest.raises(KosovError, match="is the adapter grpo trained, not the one it started from"):
        publish(compose([f"run={second}", out, f"publish.start_adapter={second}"]))
    with pytest.raises(KosovError, match="publish.start_adapter would change nothing"):
        publish(compose([f"release={tmp_path / 'r'}", f"publish.start_adapter={first}"]))
    assert not (tmp_path / "r").exists()
    # the folder the run recorded, given again: the lineage as recorded, with no note
    card, stages = released(publish(compose([f"run={second}", out, f"publish.start_adapter={first}"])).folder)
    assert [s["name"] for s in stages] == ["sft (sft)", "sft (grpo)"] and "located" not in stages[0]


def test_a_start_adapter_moved_away_is_given_by_the_publisher_or_left_to_the_license(smoke_run, tmp_path):
    """A run continued (method.init_adapter) from another; that run moved since: publish names the gone folder and
    publish.start_adapter, and takes its new place, or a license the publisher checked."""
    from tests.helpers import quick
    from training.train import train

    first = noncommercial_run(smoke_run, tmp_path / "first")
    second = train(compose(quick(f"output_dir={tmp_path / 'second'}", f"method.init_adapter={first}"))).run_dir
    card = publish(compose([f"run={second}", f"output_dir={tmp_path / 'r1'}"])).folder / "README.md"
    assert "license: cc-by-nc-4.0" in card.read_text()
    shutil.move(first, tmp_path / "moved")  # the first stage's rows (and their licenses) can no longer be read
    with pytest.raises(KosovError, match="which is gone \\(moved or deleted\\)") as error:
        publish(compose([f"run={second}", f"output_dir={tmp_path / 'r2'}"]))
    assert str(first / "adapter") in str(error.value) and not (tmp_path / "r2").exists()
    assert "publish.start_adapter=" in error.value.fix and "publish.license" in error.value.fix
    card, stages = released(publish(compose([f"run={second}", f"output_dir={tmp_path / 'r3'}",
                                             f"publish.start_adapter={tmp_path / 'moved'}"])).folder)
    assert "license: cc-by-nc-4.0" in card and "someone-elses-nc-rows" in card
    assert [s["name"] for s in stages] == ["sft (moved)", "sft (second)"] and "publisher" in stages[0]["located"]
    card, _ = released(publish(compose([f"run={second}", f"output_dir={tmp_path / 'r4'}",
                                        "publish.license=cc-by-nc-4.0"])).folder)
    assert "license: cc-by-nc-4.0" in card


@pytest.mark.parametrize("recorded", ["sft/adapter", "outputs/smoke-sft-grpo/run/sft/adapter",
                                      "/a/machine/it/left/run/sft/adapter"])
def test_a_chained_run_starts_from_its_own_sft_stage_wherever_its_folder_is(smoke_run, tmp_path, monkeypatch,
                                                                            recorded):
    """A chained run's start recorded relative (kosov before 2026-11-27: "sft/adapter" under output_dir=., the
    default output folder's path otherwise) or at the folder's absolute path before it moved: train.py started it
    from its own SFT stage, <run>/sft/adapter, and only from that. Its rows (CC-BY-NC-4.0) were left off the card
    or the release refused; they are read from the run folder published, never from the folder publish runs in."""
    run = one_folder_chain(smoke_run, tmp_path / "train" / "run", start_adapter=recorded)
    decoy = tmp_path / "cwd"
    shutil.copytree(smoke_run.run_dir, decoy / "sft")  # Apache rows where a relative path would be read from here
    monkeypatch.chdir(decoy)
    card, stages = released(publish(compose([f"run={run}", f"output_dir={tmp_path / 'r'}"])).folder)
    assert [s["name"] for s in stages] == ["sft (sft)", "grpo (run)"]
    assert "license: cc-by-nc-4.0" in card and "someone-elses-nc-rows" in card
    assert "sft (sft), the adapter grpo (run) started from: its own SFT stage (run/sft)" in card


def test_a_chained_runs_own_stage_is_checked_and_never_an_adapter_outside_the_run(smoke_run, tmp_path, monkeypatch):
    """The run's own SFT stage is its start only with the shape recorded; a relative path that is not its SFT stage
    (a run that is not chained, or another name) is refused, whatever the folder publish runs in holds."""
    run = one_folder_chain(smoke_run, tmp_path / "run", start_adapter="sft/adapter")
    config = json.loads((run / "sft" / "adapter" / "adapter_config.json").read_text())
    (run / "sft" / "adapter" / "adapter_config.json").write_text(json.dumps({**config, "r": 2 * config["r"]}))
    with pytest.raises(KosovError, match="another shape"):
        publish(compose([f"run={run}", f"output_dir={tmp_path / 'r'}"]))
    run = one_folder_chain(smoke_run, tmp_path / "other", start_adapter="stage/adapter")
    (run / "sft").rename(run / "stage")
    monkeypatch.chdir(run)
    with pytest.raises(KosovError, match="'stage/adapter', recorded as a path relative"):
        publish(compose([f"run={run}", f"output_dir={tmp_path / 'r'}"]))


def test_a_chained_run_whose_sft_stage_lost_its_provenance_does_not_drop_that_stage(smoke_run, tmp_path):
    """<run>/sft/provenance.json gone: the stage's run was looked for further up, found the GRPO run itself, and the
    lineage stopped there without a word: the card credited the GRPO rows alone (apache-2.0, not cc-by-nc-4.0). A
    run recorded as starting from its own adapter stopped the same way."""
    run = one_folder_chain(smoke_run, tmp_path / "run")
    (run / "sft" / "provenance.json").unlink()
    with pytest.raises(KosovError, match="no kosov provenance.json"):
        publish(compose([f"run={run}", f"output_dir={tmp_path / 'r'}"]))
    _, second = chained_runs(smoke_run, tmp_path / "train", start_adapter=str(tmp_path / "train" / "grpo" / "adapter"))
    with pytest.raises(KosovError, match="a run already in its lineage"):
        publish(compose([f"run={second}", f"output_dir={tmp_path / 'r'}"]))
    assert not (tmp_path / "r").exists()


def test_a_chain_of_three_runs_carries_every_stages_rows_and_a_relative_middle_is_named(smoke_run, tmp_path):
    """sft -> grpo -> grpo again: the first stage's CC-BY-NC-4.0 rows reach the card through the middle one; a
    middle run that recorded its start relative names its own provenance where publish.start_adapter already gives
    the (readable) start of the run published (a middle link it gives: test_publish_chain.py)."""
    first, middle = chained_runs(smoke_run, tmp_path / "a")
    _edit_json(first / "provenance.json", data__licenses={"CC-BY-NC-4.0": 24}, data__name="someone-elses-nc-rows")
    last = tmp_path / "last"
    shutil.copytree(smoke_run.run_dir, last)
    _edit_json(last / "provenance.json", model__start_adapter=str(middle / "adapter"),
               model__start_adapter_settings=recorded_settings(middle / "adapter"))
    card, stages = released(publish(compose([f"run={last}", f"output_dir={tmp_path / 'r1'}"])).folder)
    assert [s["name"] for s in stages] == ["sft (sft)", "sft (grpo)", "sft (last)"]
    assert "license: cc-by-nc-4.0" in card and "someone-elses-nc-rows" in card
    _edit_json(middle / "provenance.json", model__start_adapter="sft/adapter")
    with pytest.raises(KosovError, match="grpo started from the adapter 'sft/adapter'") as error:
        publish(compose([f"run={last}", f"output_dir={tmp_path / 'r2'}", f"publish.start_adapter={middle}"]))
    assert f"model.start_adapter in {middle / 'provenance.json'}" in error.value.fix
    assert "publish.start_adapter gives one start adapter of the lineage, here a later stage's" in error.value.fix


def test_a_start_adapter_whose_shape_was_not_recorded_is_taken_with_a_warning(smoke_run, tmp_path, caplog):
    """Runs before 2026-11-27 recorded no LoRA shape of their start: the adapter there cannot be checked, and publish
    says so rather than taking it in silence."""
    first, second = chained_runs(smoke_run, tmp_path / "train")
    prov = json.loads((second / "provenance.json").read_text(encoding="utf-8"))
    del prov["model"]["start_adapter_settings"]
    (second / "provenance.json").write_text(json.dumps(prov), encoding="utf-8")
    _, stages = released(publish(compose([f"run={second}", f"output_dir={tmp_path / 'r'}"])).folder)
    assert [s["name"] for s in stages] == ["sft (sft)", "sft (grpo)"]
    assert f"grpo recorded no LoRA shape to check it against (kosov before 2026-11-27): the adapter at {first}" \
           in caplog.text
