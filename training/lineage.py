"""A release's data lineage: the run and the runs its adapter started from (an SFT stage before GRPO), each with its
public provenance, and why kosov cannot know a stage's data (and so their licenses) where it cannot.

Where a run started from is read from its provenance (model.start_adapter) and checked: the adapter there must still
have the LoRA shape the run recorded (model.start_adapter_settings), else another run was trained there since. A path
kosov before 2026-11-27 recorded relative to the folder `kosov train` ran in is never read from the folder publish
runs in; it is used only where it can only be the run's own SFT stage (a chained run: <run>/sft/adapter), and
elsewhere the publisher gives its folder (publish.start_adapter), checked the same way."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml

from training.adapters import adapter_dir, run_of
from training.errors import KosovError
from training.redaction import names_only

log = logging.getLogger(__name__)

PRIVATE = ("host", "command")  # the training machine's name and the command line (local paths): not published
LICENSED = "check that adapter's data licenses and set publish.license=<SPDX id>"


def public_provenance(prov: dict[str, Any]) -> dict[str, Any]:
    """A run's provenance for a public release: without PRIVATE keys and with local paths as names (data files, the
    model's folder, the adapter it started from, the checkpoint it resumed from), in its earlier starts too."""
    return names_only({key: [public_provenance(p) for p in value] if key == "earlier" else value
                       for key, value in prov.items() if key not in PRIVATE})


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _lora_settings(adapter: Path) -> dict[str, Any]:
    """The adapter's LoRA shape as provenance records a started-from adapter's (start_adapter_settings); {} when
    its adapter_config.json is gone."""
    saved, modules = _read_json(adapter / "adapter_config.json"), None
    if saved:
        modules = saved.get("target_modules")
        modules = sorted(modules) if isinstance(modules, list) else modules
    return {"r": saved.get("r"), "alpha": saved.get("lora_alpha"), "dora": bool(saved.get("use_dora")),
            "target_modules": modules} if saved else {}


def _other_shape(adapter: Path, recorded: dict[str, Any]) -> str:
    """How the adapter's LoRA shape differs from the one recorded ("r 8 then, 16 now"); "" when it does not."""
    now = _lora_settings(adapter)
    return "; ".join(f"{key} {recorded[key]!r} then, {now[key]!r} now" for key in now
                     if key in recorded and now[key] != recorded[key])


def _chained(config: dict[str, Any]) -> bool:
    """Whether the run trained its own SFT stage first (method.grpo.sft_stage), into <run>/sft."""
    method = (config or {}).get("method") or {}
    return bool(isinstance(method, dict) and (method.get("grpo") or {}).get("sft_stage"))


def _recorded_start(run: Path, model: dict[str, Any], config: dict[str, Any], can_give: bool
                    ) -> tuple[Path | None, str | None]:
    """The adapter `run` started from (model.start_adapter), and how it was found when not at the path recorded;
    raises KosovError when its data cannot be known for sure: the path is relative (to the folder `kosov train` ran
    in, which is not recorded: never read from the folder publish runs in, where that name may be another run), the
    adapter there is gone, or it now has another LoRA shape than the one the run started from (another run was
    trained there since). `can_give`: publish.start_adapter can still give this start (it gives one in the lineage).

    A chained run (method.grpo.sft_stage) started from its own SFT stage, trained into <run>/sft
    (training/sft_stage.py): from <run>/sft/adapter, no other adapter. So its start is read from the run folder
    published, wherever that folder is now: kosov before 2026-11-27 recorded the path as output_dir was given ("sft/adapter" under
    output_dir=., "outputs/<name>/<time>/sft/adapter" by default), and an absolute path is another machine's or the
    folder's before it moved. Never from the folder publish runs in."""
    start, recorded = model.get("start_adapter"), model.get("start_adapter_settings") or {}
    if not start:
        return None, None
    where = str(run / "provenance.json")
    give = (f"give its folder with publish.start_adapter=<the folder of that adapter> (checked against the LoRA "
            f"shape {where} records)" if can_give else
            f"set model.start_adapter in {where} to the absolute path of that adapter folder (publish.start_adapter "
            "gives one start adapter of the lineage, here a later stage's)")
    own_stage = _chained(config) and Path(start).parts[-2:] == ("sft", "adapter")
    if not (own_stage or Path(start).is_absolute()):
        raise KosovError(
            f"{run.name} started from the adapter {start!r}, recorded as a path relative to the folder `kosov train` "
            "ran in, which kosov cannot tell: the data that adapter was trained on, and their licenses, are unknown",
            where=where, fix=f"{give}, or {LICENSED}")
    adapter = run / "sft" / "adapter" if own_stage else Path(start)
    if not (adapter / "adapter_config.json").is_file():
        raise KosovError(f"{run.name} started from the adapter at {adapter}, which is gone (moved or deleted): the "
                         "data it was trained on, and their licenses, cannot be checked", where=where,
                         fix=f"{give}, or put it back at {adapter}, or {LICENSED}")
    shown = _other_shape(adapter, recorded)
    if shown:
        raise KosovError(
            f"{run.name} started from the adapter at {adapter}, and the adapter there now has another shape ({shown}): "
            "another run was trained there since, so the data the started-from adapter was trained on, and their "
            "licenses, are unknown", where=where, fix=f"put the run it started from back at {adapter}, or {give}, "
                                                      f"or {LICENSED}")
    if not recorded:
        log.warning("%s: the adapter at %s is taken as its start unchecked", _checked(run, {}), adapter)
    if Path(start).is_absolute() and adapter.resolve() == Path(start).resolve():
        return adapter, None
    how = "as a path relative to the folder `kosov train` ran in" if not Path(start).is_absolute() else \
        "at the folder's path before it moved"
    return adapter, f"its own SFT stage ({run.name}/sft), which {run.name} recorded {how}; {_checked(run, recorded)}"


def _checked(run: Path, recorded: dict[str, Any]) -> str:
    return (f"its LoRA shape is the one {run.name} recorded" if recorded else
            f"{run.name} recorded no LoRA shape to check it against (kosov before 2026-11-27)")


def _given_start(run: Path, model: dict[str, Any], given: str) -> tuple[Path, str]:
    """publish.start_adapter: the folder of the adapter `run` started from, where its provenance's record cannot be
    used (_recorded_start: relative, moved or deleted); checked against the LoRA shape the run recorded."""
    where, recorded = str(run / "provenance.json"), model.get("start_adapter_settings") or {}
    adapter = _given_adapter(given)
    if run_of(adapter).resolve() == run.resolve():
        raise KosovError(f"publish.start_adapter={given} is the adapter {run.name} trained, not the one it started "
                         "from", where=where, fix=f"give the folder of the adapter {run.name} started from")
    shown = _other_shape(adapter, recorded)
    if shown:
        raise KosovError(f"publish.start_adapter={given}: the adapter there has another LoRA shape than the one "
                         f"{run.name} started from ({shown}): it is not that adapter", where=where,
                         fix=f"give the folder of the adapter {run.name} started from, or leave "
                             f"publish.start_adapter unset and {LICENSED}")
    if not recorded:
        log.warning("publish.start_adapter=%s: %s", given, _checked(run, {}))
    return adapter, (f"given by the publisher (publish.start_adapter), as the folder {run.name} recorded could not "
                     f"be used; {_checked(run, recorded)}")


def _given_adapter(given: str) -> Path:
    try:
        return adapter_dir(given)
    except KosovError as e:
        raise KosovError(f"publish.start_adapter={given}: {e.what}", where=e.where, fix=e.fix) from None


def _check_given(run: Path, model: dict[str, Any], given: str) -> None:
    """publish.start_adapter for the run published: refused where it started from no adapter, or `given` is its own."""
    where = str(run / "provenance.json")
    if not model.get("start_adapter"):
        raise KosovError(f"publish.start_adapter={given}: {run.name} started from no adapter (its provenance records "
                         "none)", where=where, fix="leave publish.start_adapter unset")
    if run_of(_given_adapter(given)).resolve() == run.resolve():
        raise KosovError(f"publish.start_adapter={given} is the adapter {run.name} trained, not the one it started "
                         "from", where=where, fix=f"give the folder of the adapter {run.name} started from")


def _release_stages(adapter: Path, later: str) -> tuple[list[dict[str, Any]], list[KosovError]] | None:
    """The lineage of a release folder (the output_dir of `kosov publish`: its adapter beside provenance.json with
    the stages it was built from, and upload_plan.json, which is not uploaded: a release downloaded from the Hub has
    the stages alone) that `later` started from; None for any other adapter folder. A stage the release could not
    read (its publisher set publish.license for it) is unknown here too."""
    where = str(adapter / "provenance.json")
    stages = _read_json(adapter / "provenance.json").get("stages")
    if not (adapter / "upload_plan.json").is_file() and stages is None:
        return None
    if not isinstance(stages, list) or not stages or not all(isinstance(st, dict) and isinstance(
            st.get("provenance"), dict) for st in stages):
        return ([{"name": f"? (the release {adapter.name})", "provenance": {}, "missing": adapter.name}],
                [KosovError(f"{later} started from the release {adapter.name}, whose provenance.json holds no lineage "
                            "(stages) kosov can read: the data its adapter was trained on, and their licenses, are "
                            "unknown", where=where, fix=f"put back the provenance.json `kosov publish` wrote there, "
                                                        f"or {LICENSED}")])
    stages = [dict(stage) for stage in stages]
    stages[-1]["located"] = f"the release {adapter.name}, whose provenance.json gives the stages before it"
    return stages, [KosovError(f"{later} started from the release {adapter.name}, whose lineage holds a stage kosov "
                               f"could not read ({stage.get('name')}): its publisher licensed it with publish.license",
                               where=where, fix=f"{LICENSED} (the license of that release's card is its publisher's)")
                    for stage in stages if stage.get("missing")]


def lineage_stages(run: Path, start_adapter: str | None = None) -> tuple[list[dict[str, Any]], list[KosovError]]:
    """This run and the runs its adapter started from (an SFT stage before GRPO), oldest first, with their public
    provenance; and why, for each stage whose data (and their licenses) kosov cannot know for sure. `start_adapter`
    (publish.start_adapter) gives the folder of the adapter a run in the chain started from: the latest start whose
    record cannot be used (relative, moved or deleted), checked against the LoRA shape that run recorded; a mistake
    in it raises KosovError. An adapter started from a release folder brings that release's lineage. A stage found
    otherwise than by its path as recorded says how ("located")."""
    stages: list[dict[str, Any]] = []
    unknown: list[KosovError] = []
    seen: set[Path] = set()
    later, located = None, None  # the stage that started from this one, and how its adapter was found
    given_for, published, first_start = None, run, None  # the run whose start publish.start_adapter gave
    while run is not None:
        if run.resolve() in seen:  # a run started from its own adapter (or a later stage's): not its lineage
            stages.insert(0, {"name": "? (the adapter it started from)", "provenance": {}, "missing": "start_adapter"})
            unknown.append(KosovError(f"{later} started from an adapter in {run}, a run already in its lineage: the "
                                      "adapter it started from was replaced since, so its data are unknown",
                                      fix=f"check the data licenses of the adapter {later} started from and set "
                                          "publish.license=<SPDX id>"))
            break
        seen.add(run.resolve())
        prov = _read_json(run / "provenance.json")
        config = (yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) if (run / "config.yaml").is_file()
                  else None) or {}
        stages.insert(0, {"name": f"{config.get('method', {}).get('name', '?')} ({run.name})",
                          "provenance": public_provenance(prov), **({} if prov else {"missing": run.name}),
                          **({"located": located} if located else {})})
        if not prov:
            unknown.append(KosovError(
                f"the adapter was trained from {run.name}, which has no kosov provenance.json (moved, deleted or not "
                "a kosov run): the licenses of the data it was trained on are unknown",
                fix="put that run folder back where it was, or check its data's licenses and set "
                    "publish.license=<SPDX id>"))
        model, later = prov.get("model") or {}, run.name
        if start_adapter and run == published:
            _check_given(run, model, start_adapter)
        try:  # publish.start_adapter can still give this start unless it gave a later one
            adapter, located = _recorded_start(run, model, config, given_for is None)
        except KosovError as problem:
            if start_adapter and given_for is None:  # the link it stands for; a mistake in it is the publisher's
                adapter, located, given_for = *_given_start(run, model, start_adapter), run.name
            else:
                stages.insert(0, {"name": "? (the adapter it started from)", "provenance": {},
                                  "missing": "start_adapter"})
                unknown.append(problem)
                adapter = None
        else:  # the folder the run recorded, given again: the lineage as recorded
            if start_adapter and given_for is None and adapter is not None and \
                    adapter.resolve() == _given_adapter(start_adapter).resolve():
                given_for = run.name
        first_start = adapter if run == published else first_start
        release = _release_stages(adapter, later) if adapter is not None else None
        if release is not None:  # the release holds the lineage of the adapter it published
            stages[:0], unknown[:0] = release
            break
        run = run_of(adapter) if adapter is not None else None
    if start_adapter and given_for is None:
        raise KosovError(f"publish.start_adapter={start_adapter}: every run in the lineage of {published.name} started "
                         f"from the adapter its provenance records ({published.name} started from the adapter at "
                         f"{first_start}, which is still there with the LoRA shape it started from)",
                         where=str(published / "provenance.json"),
                         fix="leave publish.start_adapter unset (it stands for a start adapter recorded as a relative "
                             "path, moved or deleted)")
    return stages, unknown
