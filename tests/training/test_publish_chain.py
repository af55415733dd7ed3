"""The lineage of a longer chain: publish.start_adapter gives the missing link wherever it is in the chain (the latest
start kosov cannot read), and a run continued from a release folder inherits that release's lineage (its stages'
data and licenses), not whatever folder holds the release."""

from __future__ import annotations

import shutil

import pytest

from tests.training.test_publish_lineage import _edit_json, chained_runs, noncommercial_run, recorded_settings, released
from training.errors import KosovError
from training.publish import publish
from training.recipes import compose


def test_publish_start_adapter_gives_a_middle_runs_start(smoke_run, tmp_path):
    """sft -> grpo -> last, where grpo recorded its start relatively (older kosov): publish.start_adapter gave only
    last's start, so the first stage's CC-BY-NC-4.0 rows needed a provenance edit or a license the publisher vouched
    for. The folder given now stands for the start that cannot be read, checked against the shape grpo recorded."""
    first, middle = chained_runs(smoke_run, tmp_path / "a", start_adapter="sft/adapter")
    _edit_json(first / "provenance.json", data__licenses={"CC-BY-NC-4.0": 24}, data__name="someone-elses-nc-rows")
    last = tmp_path / "last"
    shutil.copytree(smoke_run.run_dir, last)
    _edit_json(last / "provenance.json", model__start_adapter=str(middle / "adapter"),
               model__start_adapter_settings=recorded_settings(middle / "adapter"))
    with pytest.raises(KosovError, match="grpo started from the adapter 'sft/adapter'") as error:
        publish(compose([f"run={last}", f"output_dir={tmp_path / 'r1'}"]))
    assert "publish.start_adapter=<the folder of that adapter>" in error.value.fix
    card, stages = released(publish(compose([f"run={last}", f"output_dir={tmp_path / 'r2'}",
                                             f"publish.start_adapter={first}"])).folder)
    assert [s["name"] for s in stages] == ["sft (sft)", "sft (grpo)", "sft (last)"]
    assert "license: cc-by-nc-4.0" in card and "someone-elses-nc-rows" in card
    assert "sft (sft), the adapter sft (grpo) started from: given by the publisher" in card
    other = noncommercial_run(smoke_run, tmp_path / "other")  # another shape than the one grpo started from
    config = other / "adapter" / "adapter_config.json"
    _edit_json(config, r=2 * recorded_settings(first / "adapter")["r"])
    with pytest.raises(KosovError, match=f"publish.start_adapter={other}: the adapter there has another LoRA shape "
                                         "than the one grpo started from"):
        publish(compose([f"run={last}", f"output_dir={tmp_path / 'r3'}", f"publish.start_adapter={other}",
                         "publish.license=cc-by-nc-4.0"]))
    # a chain whose every start is readable needs none
    _edit_json(middle / "provenance.json", model__start_adapter=str(first / "adapter"))
    with pytest.raises(KosovError, match=f"every run in the lineage of last started from the adapter its provenance "
                                         f"records \\(last started from the adapter at {middle / 'adapter'}, which is "
                                         "still there"):
        publish(compose([f"run={last}", f"output_dir={tmp_path / 'r3'}", f"publish.start_adapter={other}"]))
    assert not (tmp_path / "r3").exists()


def test_a_run_continued_from_a_release_folder_inherits_its_lineage(smoke_run, tmp_path):
    """`kosov train method.init_adapter=<release folder>`: the release's adapter sits in the folder itself, and
    publish looked for its run in the folder above (no provenance there: refused without publish.license; or
    another run's). The release's provenance.json holds the stages it was built from: their rows and licenses."""
    from tests.helpers import quick
    from training.train import train

    first = noncommercial_run(smoke_run, tmp_path / "first")
    release = publish(compose([f"run={first}", f"output_dir={tmp_path / 'releases' / 'v1'}"])).folder
    second = train(compose(quick(f"output_dir={tmp_path / 'second'}", f"method.init_adapter={release}"))).run_dir
    card, stages = released(publish(compose([f"run={second}", f"output_dir={tmp_path / 'r1'}"])).folder)
    assert [s["name"] for s in stages] == ["sft (first)", "sft (second)"]
    assert "license: cc-by-nc-4.0" in card and "someone-elses-nc-rows" in card
    assert "sft (first), the adapter sft (second) started from: the release v1" in card
    # the release as downloaded from the Hub: publish never uploads upload_plan.json
    plan = (release / "upload_plan.json").read_bytes()
    (release / "upload_plan.json").unlink()
    _, downloaded = released(publish(compose([f"run={second}", f"output_dir={tmp_path / 'r0'}"])).folder)
    assert [s["name"] for s in downloaded] == ["sft (first)", "sft (second)"]
    (release / "upload_plan.json").write_bytes(plan)
    # a stage the release could not read (licensed by its publisher) is unknown here too
    _edit_json(release / "provenance.json", stages=[{"name": "? (the adapter it started from)", "provenance": {},
                                                     "missing": "start_adapter"}, *stages[:1]])
    with pytest.raises(KosovError, match="second started from the release v1, whose lineage holds a stage kosov "
                                         "could not read"):
        publish(compose([f"run={second}", f"output_dir={tmp_path / 'r2'}"]))
    (release / "provenance.json").unlink()
    with pytest.raises(KosovError, match="holds no lineage"):
        publish(compose([f"run={second}", f"output_dir={tmp_path / 'r2'}"]))
    card, _ = released(publish(compose([f"run={second}", f"output_dir={tmp_path / 'r2'}",
                                        "publish.license=cc-by-nc-4.0"])).folder)
    assert "license: cc-by-nc-4.0" in card
