"""`kosov publish` ties the release to the base commit the run loaded (provenance model.loaded_revision), not to the
name model.revision gave it (null: main, which moves): the eval report is matched by commit, and publish.merge merges
onto the weights the adapter was trained on. Offline, on tiny-ko laid out as a Hugging Face cache entry
(tests/training/test_base_commit.py)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from tests.training import test_base_commit as on_hub
from tests.training.test_base_commit import MOVED, SHA, move_main
from training.errors import KosovError
from training.publish import publish
from training.recipes import compose


hub_cache, offline_hub, hub_run = on_hub.hub_cache, on_hub.offline_hub, on_hub.hub_run  # its fixtures, used here


def _edit_model(path: Path, **model) -> None:
    """Set keys of the "model" entry of a provenance.json or report.json."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data["model"].update(model)
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture(scope="module")
def evaluated(smoke_run, tmp_path_factory):
    """An eval report of the smoke run's adapter on its base (model.revision null), as kosov eval writes it; no
    scores: what publish matches is the adapter and the model."""
    from training.evaluation.identity import adapter_digest
    from training.evaluation.report import build_report, write_report

    out = tmp_path_factory.mktemp("eval") / "eval"
    out.mkdir()
    adapter = smoke_run.run_dir / "adapter"
    write_report(build_report(suite="smoke", model={"name_or_path": "tiny-ko", "source": "tiny-ko", "revision": None},
                              adapter=str(adapter), harness={}, generative={}, cached=[],
                              adapter_digest=adapter_digest(adapter)), out)
    return out


@pytest.fixture
def loaded_at_sha(smoke_run, evaluated, tmp_path):
    """A copy of the smoke run whose provenance records it loaded its base at commit SHA (model.revision null), and
    a copy of its eval report."""
    run, report = tmp_path / "run", tmp_path / "eval"
    shutil.copytree(smoke_run.run_dir, run)
    shutil.copytree(evaluated, report)
    _edit_model(run / "provenance.json", loaded_revision=SHA)
    return run, report


def test_an_eval_pinned_at_the_commit_the_run_loaded_is_the_runs_base(loaded_at_sha, tmp_path):
    """kosov eval refuses the adapter on main once main moved and says to set model.revision=<the commit it trained
    on>; publish then refused that report, comparing model.revision by name (the commit against the run's null)."""
    run, report = loaded_at_sha
    _edit_model(report / "report.json", revision=SHA)
    result = publish(compose([f"run={run}", f"publish.eval_report={report}", f"output_dir={tmp_path / 'release'}"]))
    assert (result.folder / "eval_report.json").is_file()


def test_an_eval_report_on_another_commit_of_main_is_refused(loaded_at_sha, tmp_path):
    """Both on model.revision null (main), at different commits: they looked the same base, and the card showed the
    scores of other weights."""
    run, report = loaded_at_sha
    _edit_model(report / "report.json", revision=None, loaded_revision=MOVED)
    with pytest.raises(KosovError, match=f"at commit {MOVED}, and the run trained on commit {SHA}") as error:
        publish(compose([f"run={run}", f"publish.eval_report={report}", f"output_dir={tmp_path / 'release'}"]))
    assert error.value.fix.startswith(f"run kosov eval with model.revision={SHA}")
    assert not (tmp_path / "release").exists()


def test_an_eval_report_without_a_commit_is_compared_by_name_and_says_so(loaded_at_sha, tmp_path, caplog):
    run, report = loaded_at_sha
    with caplog.at_level(logging.WARNING):
        publish(compose([f"run={run}", f"publish.eval_report={report}", f"output_dir={tmp_path / 'r1'}"]))
    assert f"records no commit of tiny-ko it loaded (model.revision=None): taken as the run's commit {SHA}" \
        in caplog.text
    _edit_model(report / "report.json", revision="v2")
    with pytest.raises(KosovError, match="compared by model.revision as named: the eval report records no commit"):
        publish(compose([f"run={run}", f"publish.eval_report={report}", f"output_dir={tmp_path / 'r2'}"]))
    _edit_model(run / "provenance.json", loaded_revision=None)  # a run from before kosov recorded its commit
    with pytest.raises(KosovError, match=r"with model.revision=null \(the run's config.yaml\)"):  # not None
        publish(compose([f"run={run}", f"publish.eval_report={report}", f"output_dir={tmp_path / 'r3'}"]))


def test_a_merge_after_main_moved_is_onto_the_commit_the_run_trained_on(hub_run, offline_hub, tmp_path):
    """publish.merge loaded the base at the run's model.revision (null: main): once main moved, the release was
    refused with a fix (set model.revision) that a publisher cannot apply to a finished run."""
    move_main(offline_hub)
    result = publish(compose([f"run={hub_run}", "publish.merge=true", "publish.license=apache-2.0",
                              f"output_dir={tmp_path / 'release'}"]))
    assert result.merge_check["ok"] and (result.folder / "merged" / "config.json").is_file()


def test_kosov_eval_records_the_commit_it_scored_and_publish_matches_it_by_commit(hub_run, offline_hub, tmp_path,
                                                                                 caplog):
    """An eval on main records the commit main named (model.loaded_revision), as train does: publish compares the
    two commits, not two model.revision=null that may name other weights."""
    from training.evaluate import evaluate

    out = tmp_path / "eval"
    result = evaluate(compose(["experiment=smoke-eval", f"model.name_or_path={on_hub.REPO}", f"eval.adapter={hub_run}",
                               "eval.limit=4", "eval.math.enabled=false", "eval.language.enabled=false",
                               f"output_dir={out}"]))
    assert result.report["model"]["loaded_revision"] == SHA
    with caplog.at_level(logging.WARNING, logger="kosov"):
        publish(compose([f"run={hub_run}", f"publish.eval_report={out}", "publish.license=apache-2.0",
                         f"output_dir={tmp_path / 'release'}"]))
    assert not [r for r in caplog.records if "records no commit" in r.getMessage()]


@pytest.mark.parametrize("damaged", ["eval/report.json", "run/metrics.json", "run/provenance.json"])
def test_a_damaged_json_file_of_the_run_or_its_eval_is_named(loaded_at_sha, tmp_path, damaged):
    """A report.json cut short (a copy interrupted) was a bare JSONDecodeError traceback."""
    run, report = loaded_at_sha
    (tmp_path / damaged).write_text('{"model": {"name_or_path": "tiny', encoding="utf-8")
    with pytest.raises(KosovError, match="cannot be read as JSON") as error:
        publish(compose([f"run={run}", f"publish.eval_report={report}", f"output_dir={tmp_path / 'release'}"]))
    assert error.value.where == str(tmp_path / damaged)
