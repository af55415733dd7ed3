"""The eval report a release shows (publish.eval_report): checked to be this release's before its scores reach the
card, that is, `kosov eval` scored this adapter on the base the run trained on (the same name and the same commit,
where both are known), so the card never shows another adapter's or another model's scores.

    kosov publish run=outputs/<run> publish.eval_report=outputs/<eval run> output_dir=release
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from training.base_commit import COMMIT, same_revision
from training.errors import KosovError
from training.evaluation.identity import adapter_digest
from training.safe_write import read_json
from training.schema import KosovConfig

log = logging.getLogger(__name__)


def checked_eval_report(cfg: KosovConfig, adapter: Path, run_model: dict[str, Any]) -> tuple[dict[str, Any] | None,
                                                                                             Path | None]:
    """(report.json, its folder) of publish.eval_report, or (None, None) where none is set. `run_model`: the run's
    config.yaml model section with the commit it loaded (provenance.json model.loaded_revision)."""
    if not cfg.publish.eval_report:
        return None, None
    path = Path(cfg.publish.eval_report)
    folder = path if path.is_dir() else path.parent
    saved = folder / "report.json"
    report = read_json(saved, fix="give the folder `kosov eval` wrote, whole, or run kosov eval again") \
        if saved.is_file() else {}
    if not report:
        raise KosovError(f"no kosov eval report at {path}", fix="give the folder `kosov eval` wrote (report.json)")
    if report.get("adapter_digest") != adapter_digest(adapter):
        raise KosovError(f"the eval report at {folder} evaluated another adapter ({report.get('adapter')})",
                         fix=f"run kosov eval with eval.adapter={adapter.parent}, or leave publish.eval_report unset")
    evaluated = report.get("model") or {}
    if "name_or_path" in evaluated and evaluated["name_or_path"] != run_model.get("name_or_path"):
        raise KosovError(f"the eval report at {folder} evaluated the adapter on model.name_or_path="
                         f"{evaluated['name_or_path']!r}, and the run trained on {run_model.get('name_or_path')!r}: "
                         "the card would show another model's scores",
                         fix=f"run kosov eval with model.name_or_path={run_model.get('name_or_path')} (the run's "
                             "config.yaml), or leave publish.eval_report unset")
    _check_evaluated_commit(folder, evaluated, run_model)
    return report, folder


def _commit_of(model: dict[str, Any]) -> str | None:
    """The base commit a run or an eval loaded: the one it recorded (model.loaded_revision), else model.revision where
    that pins a commit; None where it names a branch or tag (null: main) and recorded no commit (kosov before
    2026-11-28, or a local base)."""
    for key in ("loaded_revision", "revision"):
        value = model.get(key)
        if isinstance(value, str) and COMMIT.match(value):
            return value
    return None


def _check_evaluated_commit(folder: Path, evaluated: dict[str, Any], run_model: dict[str, Any]) -> None:
    """The eval report scored the adapter on the weights the run trained on: compared by the commits both loaded
    where both are known (a branch name such as main says nothing once it moved), else by model.revision as named."""
    trained, scored = _commit_of(run_model), _commit_of(evaluated)
    base = run_model.get("name_or_path")
    if trained is not None and scored is not None:
        if trained != scored:
            raise KosovError(f"the eval report at {folder} evaluated the adapter on {base} at commit {scored}, and the "
                             f"run trained on commit {trained} (its provenance.json model.loaded_revision): the card "
                             "would show the scores of other weights",
                             fix=f"run kosov eval with model.revision={trained}, or leave publish.eval_report unset")
        return
    if "revision" not in evaluated:
        return
    if not same_revision(evaluated["revision"], run_model.get("revision")):
        unknown = "the run" if trained is None else "the eval report"
        raise KosovError(f"the eval report at {folder} evaluated the adapter on model.revision="
                         f"{evaluated['revision']!r}, and the run trained on {run_model.get('revision')!r}: the card "
                         f"would show another model's scores (compared by model.revision as named: {unknown} records "
                         "no commit it loaded)",
                         fix=f"run kosov eval with model.revision={trained or run_model.get('revision') or 'null'} "
                             "(the run's config.yaml), or leave publish.eval_report unset")
    if trained is not None:
        log.warning("the eval report at %s records no commit of %s it loaded (model.revision=%s): taken as the run's "
                    "commit %s, which kosov eval checks the adapter against where it can tell", folder, base,
                    evaluated["revision"], trained)
