"""The tracker of `kosov eval` opens before any scoring, as kosov train's opens before training: one that cannot
start (a wandb key set, the network down) failed only after hours of scores. And one that fails once the report is
written no longer throws it away: with overwrite=true the new report was deleted and the old one put back."""

from __future__ import annotations

import json
import logging

import pytest

import training.evaluate as evaluate_module
from training.errors import KosovError
from training.evaluate import evaluate
from training.recipes import compose


def _suite(out, *extra: str):
    return compose(["experiment=smoke-eval", "eval.tasks=[]", "eval.language.enabled=false", f"output_dir={out}",
                    *extra])


def test_a_tracker_that_cannot_start_fails_before_the_model_loads_or_anything_is_scored(tmp_path, monkeypatch):
    loads = []
    monkeypatch.setattr(evaluate_module, "load_for_inference", lambda *args, **kwargs: loads.append(args))

    def no_network(*args, **kwargs):
        raise KosovError("wandb could not start a run (online): network unreachable")

    monkeypatch.setattr(evaluate_module, "open_tracker", no_network)
    with pytest.raises(KosovError, match="wandb could not start"):
        evaluate(_suite(tmp_path / "eval", "eval.math.limit=1", "tracking=wandb"))
    assert loads == []
    monkeypatch.undo()  # the network is back: the same command runs, the failed one left no run in its way
    assert evaluate(_suite(tmp_path / "eval", "eval.math.limit=1")).report["rows"][0]["n"] == 1


def test_a_tracker_failing_after_the_report_is_written_keeps_the_new_report(tmp_path, monkeypatch, caplog):
    out = tmp_path / "eval"
    evaluate(_suite(out, "eval.math.limit=1"))  # the earlier report: one prompt

    def network_down(*args, **kwargs):
        raise ConnectionError("wandb: network is unreachable")

    monkeypatch.setattr(evaluate_module, "log_to_tracker", network_down)
    with caplog.at_level(logging.WARNING, logger="training.evaluate"):
        result = evaluate(_suite(out, "eval.math.limit=2", "overwrite=true", "tracking=wandb"))
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["rows"][0]["n"] == 2 == result.report["rows"][0]["n"]  # the new report, not the one it replaced
    assert "the tracker failed after the report was written" in caplog.text and "network is unreachable" in caplog.text
    [run_file] = (out / "wandb").glob("offline-run-*/run-*.wandb")  # the tracker run opened, and was closed
    assert run_file.stat().st_size > 0
