"""`kosov publish`: a release folder for an adapter, and (only when asked) its upload to the Hugging Face Hub.

    kosov publish run=outputs/qwen3-8b-ko-qlora-sft/<run> publish.eval_report=outputs/<eval run> output_dir=release
    kosov publish run=... output_dir=release push=true repo_id=my-org/qwen3-8b-ko-lora publish.tag=v1
    kosov publish release=release push=true publish.tag=v1   # a release folder built (and reviewed) earlier

The folder holds the adapter, tokenizer and chat template, the model card (README.md), the redacted recipe,
provenance and lineage, the eval report and the training curve; `publish.merge=true` adds a merged full model
in merged/. Without push=true nothing leaves the machine and the command lists what would be uploaded.
Checkpoints, optimizer states, pickled training arguments and anything holding a secret are never uploaded.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from data_tools.teachers import vllm_max_lora_rank
from training.config import validate
from training.schema import KosovConfig
from training.errors import KosovError
from training.hub_push import KOSOV_MARKER, hub_target, push_release
from training.lineage import lineage_stages, public_provenance
from training.model_card import (LICENSE_FILE, derive_license, front_matter_error, license_file, license_warnings,
                                 model_card)
from training.adapters import adapter_dir, check_adapter_files
from training.base_commit import recorded_commit
from training.models import HUB_ID, resolve_device
from training.publish_eval_report import checked_eval_report
from training.evaluation.report import to_markdown
from training.redaction import names_only, redact, redact_urls, secret_values
from training.safe_write import check_not_holding, read_json, swap_into_place, tidy_swap, write_atomic, write_json

log = logging.getLogger(__name__)

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "chat_template.jinja", "special_tokens_map.json", "vocab.json", "merges.txt", "added_tokens.json",
                 "tokenizer.model")
NEVER_UPLOAD = ("merged/*", "checkpoints/*", "*/checkpoint-*", "optimizer.pt", "scheduler.pt", "rng_state*.pth",
                "training_args.bin", "*.pkl", ".env", "*.tmp", "upload_plan.json")


@dataclass
class PublishResult:
    folder: Path
    upload: list[str]  # paths (relative to folder) that push=true uploads
    pushed: bool
    merge_check: dict[str, Any] | None


def _read_json(path: Path) -> dict[str, Any]:
    """A file the run (or kosov eval) wrote, {} where it wrote none; a damaged one is a KosovError naming it."""
    return read_json(path, fix="put back the file kosov wrote there (a copy of the run folder), or run it again") \
        if path.is_file() else {}


def training_curve(metrics: dict[str, Any], path: Path) -> bool:
    """Loss (and eval loss) for SFT, mean reward for GRPO; False when there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {"mean reward": metrics.get("reward_curve")} if metrics.get("reward_curve") else {
        "train loss": metrics.get("train_loss_curve"), "eval loss": metrics.get("eval_loss_curve")}
    series = {k: v for k, v in series.items() if v}
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(5, 3))
    for label, points in series.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=label)
    ax.set_xlabel("step")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def upload_list(folder: Path) -> list[str]:
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    return [f for f in files if not any(fnmatch.fnmatch(f, pat) or fnmatch.fnmatch(Path(f).name, pat)
                                        for pat in NEVER_UPLOAD)]


TEXT_SUFFIXES = (".md", ".json", ".yaml", ".yml", ".txt", ".jinja", ".log")


def scan_for_secrets(folder: Path, files: list[str] | None = None) -> list[str]:
    """Files (all under `folder`, or the `files` named) that contain a secret: one from the environment (HF_TOKEN,
    WANDB_API_KEY, ...), the Hub token `hf auth login` stored (the one a push uses), or credentials inside a URL
    (user:password@, ?api_key=)."""
    from huggingface_hub import get_token

    login = get_token()
    secrets = [s.encode() for s in {*secret_values(), *([login] if login and len(login) >= 8 else [])}]
    leaked = []
    for p in sorted(folder.rglob("*")) if files is None else [folder / f for f in files]:
        if not p.is_file():
            continue
        data = p.read_bytes()
        text = data.decode("utf-8", errors="ignore") if p.suffix in TEXT_SUFFIXES else ""
        if any(s in data for s in secrets) or (text and redact_urls(text) != text):
            leaked.append(str(p.relative_to(folder)))
    return leaked


def _loaded_from_folder(name_or_path: str, recorded: dict[str, Any]) -> bool:
    """Whether the run loaded its base from a local folder: as its provenance records it, or (runs before 2026-11-26)
    a folder that is still here or a name that is no hub id (a folder since moved or deleted)."""
    if recorded.get("local") is not None:
        return bool(recorded["local"])
    return Path(name_or_path).expanduser().exists() or not HUB_ID.match(name_or_path)


def _published_base(cfg: KosovConfig, name_or_path: str, recorded: dict[str, Any]) -> str:
    """The base as the card and the adapter's config name it: publish.base_model, else the run's hub id. A base the
    run loaded from a folder (a converted KORMo, a local copy) means nothing to anyone else."""
    if cfg.publish.base_model:
        return cfg.publish.base_model
    if name_or_path != "tiny-ko" and _loaded_from_folder(name_or_path, recorded):
        raise KosovError(f"the run's base is the local folder {name_or_path}: the card cannot tell others where to "
                         "get it", fix="set publish.base_model=<org>/<name>, the Hub repo of that base (upload a "
                                       "converted base first), and check its license (publish.license)")
    return name_or_path


def _assemble(cfg: KosovConfig, run: Path, adapter: Path, staging: Path) -> None:
    run_cfg = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    metrics, (stages, unknown) = _read_json(run / "metrics.json"), lineage_stages(run, cfg.publish.start_adapter)
    recorded = _read_json(run / "provenance.json").get("model") or {}
    report, report_dir = checked_eval_report(cfg, adapter, {**run_cfg["model"],
                                                            "loaded_revision": recorded.get("loaded_revision")})
    licenses: dict[str, int] = {}
    for stage in stages:
        for name, count in stage["provenance"].get("data", {}).get("licenses", {}).items():
            licenses[name] = licenses.get(name, 0) + count
    base = _published_base(cfg, run_cfg["model"]["name_or_path"], recorded)
    if unknown and not cfg.publish.license:  # a stage's rows and their licenses are unknown
        raise unknown[0]
    for problem in unknown:  # the card's lineage shows that stage as "?"
        log.warning("publish.license=%s stands for a stage kosov cannot read: %s", cfg.publish.license, problem.what)
    license_, why = derive_license(base, licenses, cfg.publish.license)
    for warning in license_warnings(base, licenses, cfg.publish.license):
        log.warning("license: %s", warning)
    staging.mkdir(parents=True)
    for name in ADAPTER_FILES:
        if (adapter / name).is_file():
            shutil.copy2(adapter / name, staging / name)
    adapter_config = _read_json(staging / "adapter_config.json")
    # vLLM's default max_lora_rank (16) refuses the recipes' r=32 adapters: the card's snippet starts it with the rank
    max_lora_rank = vllm_max_lora_rank(staging) if adapter_config else None
    if license_ == "other":  # the Hub's model card spec: a license_link with `other`
        write_atomic(staging / LICENSE_FILE, license_file(base, licenses, by_publisher=bool(cfg.publish.license)))
    if cfg.publish.base_model and adapter_config:  # PEFT's AutoPeftModel loads the base this names
        write_json(staging / "adapter_config.json", {**adapter_config, "base_model_name_or_path": base})
    images: dict[str, str] = {}
    if training_curve(metrics, staging / "training_curve.png"):
        images["curve"] = "training_curve.png"
    report_md = None
    if report_dir is not None:
        # the adapter evaluated is this release's, named so, and local paths (/home/alice/models/base) by their
        # last part: the card's table is rendered from the report as published, not copied from report.md
        report = names_only({**report, "adapter": (cfg.repo_id or run.name) if report.get("adapter") else None})
        report_md = to_markdown(report)
        write_json(staging / "eval_report.json", report)
        if (report_dir / "report.png").is_file():
            shutil.copy2(report_dir / "report.png", staging / "eval_report.png")
            images["report"] = "eval_report.png"
    recipe = names_only(redact(run_cfg))  # data files, the base's folder, the run folder: by name
    write_atomic(staging / "kosov_recipe.yaml", yaml.safe_dump(recipe, allow_unicode=True, sort_keys=False))
    # its data summary too
    write_json(staging / "provenance.json", {"stages": stages, "metrics": public_provenance(metrics)})
    write_atomic(staging / "README.md", model_card(
        repo=cfg.repo_id or run.name, base=base, method=run_cfg["method"]["name"], config=recipe,
        stages=stages, metrics=metrics, report=report, report_md=report_md, license_=license_, license_why=why,
        images=images, max_lora_rank=max_lora_rank, adapter_config=adapter_config))


def check_release_folder(out: Path, overwrite: bool) -> None:
    """overwrite=true replaces a previous release (it has the upload plan every release writes) and nothing else:
    a mistyped output_dir must not delete other runs or files."""
    if out.exists() and not out.is_dir():
        raise KosovError(f"output_dir {out} is a file", fix="choose a folder for the release")
    names = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not names:
        return
    if "upload_plan.json" not in names:
        raise KosovError(f"{out} holds files that are not a kosov release ({', '.join(names[:5])}"
                         f"{', ...' if len(names) > 5 else ''})",
                         fix="choose a new or empty output_dir: a release replaces the whole folder, so even "
                             "overwrite=true only replaces an earlier release")
    if not overwrite:
        raise KosovError(f"{out} already holds a release", fix="pass overwrite=true or choose another output_dir")


SHAPES_THE_FOLDER = ("output_dir", "overwrite", "publish.merge", "publish.eval_report", "publish.license",
                     "publish.base_model", "publish.start_adapter")


def push_release_folder(cfg: KosovConfig) -> PublishResult:
    """release=DIR: push a folder an earlier `kosov publish` built, as it is now (its card edited by hand, say, or
    built on a closed network and carried here), after the checks a push from run= gets: the Hub's (hub_target),
    the files (an adapter, a card whose metadata parses, the kosov marker) and secrets, scanned again."""
    folder = Path(cfg.release)
    if cfg.run:
        raise KosovError("kosov publish takes run= (build a release from a run) or release= (push a release built "
                         "earlier), not both", fix="drop one of them")
    given = [key for key in SHAPES_THE_FOLDER if _value(cfg, key) not in (None, False)]
    if given:
        raise KosovError(f"release= pushes the folder as it is: {', '.join(given)} would change nothing",
                         fix=f"drop {', '.join(given)}, or build the release again from its run "
                             "(run=<run folder> output_dir=<folder> overwrite=true ...)")
    tidy_swap(Path(os.path.abspath(folder)))  # a publish killed while it swapped this folder in: the earlier one back
    plan = folder / "upload_plan.json"
    try:
        planned = json.loads(plan.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise KosovError(f"{folder} is not a kosov release folder (no readable upload_plan.json)", where=str(folder),
                         fix="give release= the output_dir of an earlier `kosov publish run=...`") from None
    built_for = planned.get("repo_id")
    if not built_for:  # the card's snippets and eval table name the run, where users would load the adapter from
        raise KosovError(f"{folder} was built without repo_id: its model card tells users to load the adapter from "
                         "the run's name, not from a Hub repo", where=str(folder / "README.md"),
                         fix="build it again with repo_id=<org>/<name> (kosov publish run=<run folder> "
                             f"output_dir={folder} repo_id=<org>/<name> overwrite=true), then push it with release=")
    if cfg.repo_id and cfg.repo_id != built_for:
        raise KosovError(f"{folder} was built for repo_id={built_for}, whose name its model card gives, not "
                         f"{cfg.repo_id}", fix=f"push it to {built_for} (leave repo_id unset), or build it again "
                                               f"with repo_id={cfg.repo_id}")
    check_adapter_files(folder)
    for name, why in ((KOSOV_MARKER, "later releases to the repo need it to replace this one's files"),
                      ("README.md", "the model card")):
        if not (folder / name).is_file():
            raise KosovError(f"{folder} has no {name} ({why})", where=str(folder),
                             fix="build the release again from its run")
    problem = front_matter_error(folder / "README.md")
    if problem:
        raise KosovError(f"the model card's metadata would be refused by the Hub: {problem}",
                         where=str(folder / "README.md"), fix="fix the YAML block at the top of README.md")
    files = upload_list(folder)
    leaked = scan_for_secrets(folder, files)  # what goes up: merged/ never does (nor is it read, shard by shard)
    if leaked:
        raise KosovError(f"a secret (from the environment, the Hub login, or credentials inside a URL) is in "
                         f"{leaked}; nothing was uploaded", where=str(folder), fix="remove it and push again")
    added = sorted(set(files) - set(planned.get("files", [])))
    gone = sorted(set(planned.get("files", [])) - set(files))
    if added or gone:
        log.warning("%s changed since it was built:%s%s", folder, f" added {', '.join(added)};" if added else "",
                    f" removed {', '.join(gone)} (deleted from the repo too, where an earlier release left it)"
                    if gone else "")
    cfg = replace(cfg, repo_id=built_for)
    log.info("release folder %s; %s:\n  %s", folder, "uploading" if cfg.push else
             "push=true would upload", "\n  ".join(files))
    if cfg.push:
        push_release(cfg, hub_target(cfg, ADAPTER_FILES), folder, files)
    return PublishResult(folder=folder, upload=files, pushed=cfg.push, merge_check=None)


def _value(cfg: KosovConfig, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def publish(cfg: KosovConfig) -> PublishResult:
    """Assemble the release folder of cfg.run; push it when asked. User errors raise KosovError."""
    if cfg.release:
        return push_release_folder(cfg)
    if not cfg.run:
        raise KosovError("kosov publish needs run=<a kosov run folder> (or release=<a release folder> to push one "
                         "built earlier)")
    run = Path(cfg.run)
    if (run / "model").is_dir() and not (run / "adapter").is_dir():
        raise KosovError(f"{run} holds a full fine-tune (model/), not an adapter",
                         fix="kosov publish releases adapters; upload model/ with `hf upload` after checking it")
    adapter = adapter_dir(run)
    if not (run / "config.yaml").is_file():
        raise KosovError(f"{run} is not a kosov run folder (no config.yaml)",
                         fix="give run= the folder kosov train wrote (the one holding adapter/), not the adapter")
    out = Path(os.path.abspath(cfg.output_dir or run / "release"))  # output_dir=x/..: named as the folder it is
    if out.resolve() in (here := Path.cwd().resolve(), *here.parents):  # output_dir=. or ..: "" has no name
        raise KosovError(f"output_dir={cfg.output_dir} is the folder kosov publish runs in, or holds it: a release "
                         "replaces its whole folder", fix="choose a new folder for the release: output_dir=release")
    kept = {"the run folder": run, **({"the eval report": Path(cfg.publish.eval_report)}
                                      if cfg.publish.eval_report else {})}
    check_not_holding(out, kept)  # overwrite=true replaces the folder: never with the run it releases inside
    tidy_swap(out)  # a publish killed while it swapped: the earlier release back (so overwrite=false refuses it)
    check_release_folder(out, cfg.overwrite)
    target = hub_target(cfg, ADAPTER_FILES) if cfg.push else None
    # Built whole in a staging folder (card, files, merged model, upload plan), then renamed into place: a failed
    # or killed publish leaves the previous release, or none, never half of one.
    staging = out.with_name(f".{out.name}.building")
    shutil.rmtree(staging, ignore_errors=True)
    check = None
    try:
        _assemble(cfg, run, adapter, staging)
        leaked = scan_for_secrets(staging)  # before the merge: merged weights hold no text of the run's
        if leaked:
            raise KosovError(f"a secret (from the environment, the Hub login, or credentials inside a URL) is in "
                             f"{leaked}; nothing was written or uploaded",
                             fix="remove it from the run's files (config.yaml: put keys in environment variables, "
                                 "not in URLs) and publish again")
        if cfg.publish.merge:
            from training.merge import merge_adapter

            # the finished run's own settings, as it trained: not judged again by this version's recipe checks
            run_cfg = validate(yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")), semantics=False)
            loaded = recorded_commit(run)
            if loaded is not None:  # merged onto the weights it trained on, wherever model.revision's main is now
                log.info("merging onto %s at commit %s, the one the run loaded (model.revision=%s)",
                         run_cfg.model.name_or_path, loaded, run_cfg.model.revision)
                run_cfg = replace(run_cfg, model=replace(run_cfg.model, revision=loaded))
            check = merge_adapter(run_cfg, adapter, staging / "merged", resolve_device(cfg.device))
            if not check["ok"]:
                kept = out.with_name(f"{out.name}.merge_check.json")
                shutil.copyfile(staging / "merged" / "merge_check.json", kept)
                raise KosovError(f"the merged model is not base + adapter: {check['problem']}; no release was "
                                 "written",
                                 where=str(kept), fix="publish without publish.merge=true, and report this with "
                                                      f"{kept.name}")
        files = upload_list(staging)
        write_json(staging / "upload_plan.json", {"repo_id": cfg.repo_id, "files": files})
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    swap_into_place(staging, out)
    log.info("release folder %s; %s:\n  %s", out, "uploading" if cfg.push else
             "push=true repo_id=<org>/<name> would upload", "\n  ".join(files))
    if target is not None:
        push_release(cfg, target, out, files)
    return PublishResult(folder=out, upload=files, pushed=cfg.push, merge_check=check)
