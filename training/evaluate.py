"""`kosov eval`: a base and, when given, base + adapter on a Korean suite, with a report.

    kosov eval experiment=smoke-eval output_dir=DIR
    kosov eval experiment=qwen3-8b-ko-eval eval.adapter=outputs/qwen3-8b-ko-qlora-sft/<run>

Phases: mirror check (mirror=FOLDER holds, undamaged, the model and tasks) -> run folder -> model and adapter
checks (an adapter of another base fails before anything loads) -> lm-eval tasks (cached) -> kosov's generative
evals (cached) -> report (json, md, png) -> tracker.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from data_tools.chat_io import file_sha256
from training.config import resolve_path, to_dict
from training.schema import KosovConfig
from training.errors import KosovError
from training.evaluation.generative import JOBS, code_digest, jobs_of, prompt_limit, run_generative
from training.evaluation.harness import adapter_digest, cache_file, load_settings, model_identity, run_tasks
from training.evaluation.report import build_report, log_to_tracker, write_report
from training.adapters import adapter_dir, adapter_model_config, check_adapter_base
from training.models import (check_attention, check_remote_code, cuda_available, installed, load_for_inference,
                             load_tokenizer, model_source, resolve_device, stop_ids, torch_dtype)
from training.provenance import provenance
from training.redaction import redact
from training.run_dir import add_file_logging, default_output_dir, prepare_run_dir
from training.safe_write import write_atomic, write_json
from training.tracking import open_tracker

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    run_dir: Path
    report: dict[str, Any]
    files: dict[str, Path]


def _check_backend(cfg: KosovConfig, device: str) -> None:
    if cfg.eval.backend != "vllm":
        return
    if device != "cuda" or not cuda_available():
        raise KosovError("the vLLM eval backend (eval.backend=vllm) needs a CUDA GPU", fix="use eval.backend=hf")
    if not installed("vllm"):
        raise KosovError("eval.backend=vllm, but vLLM is not installed", fix="pip install 'kosov[vllm]'")


def _generative_settings(cfg: KosovConfig, name: str, mode: str) -> dict[str, Any]:
    own = getattr(cfg.eval, JOBS[name])
    return {"eval": asdict(own), "limit": prompt_limit(own, cfg.eval.limit), "thinking": mode,
            "data_sha256": file_sha256(resolve_path(own.data)), "code": code_digest()}


def report_settings(cfg: KosovConfig, dtype: str, device: str) -> dict[str, Any]:
    """What the report's scores were computed with, kept in it (and in the card): a score on a subset (eval.limit)
    or with other shots is not one on the full benchmark."""
    ecfg = cfg.eval
    return {"limit": ecfg.limit, "num_fewshot": ecfg.num_fewshot, "thinking": list(ecfg.thinking),
            "apply_chat_template": ecfg.apply_chat_template, "backend": ecfg.backend, "dtype": dtype, "device": device,
            "kosov_evals": {name: {"limit": prompt_limit(getattr(ecfg, JOBS[name]), ecfg.limit),
                                   "max_new_tokens": getattr(ecfg, JOBS[name]).max_new_tokens}
                            for name in dict.fromkeys(n for n, _ in jobs_of(ecfg))}}


def _lm_eval_tokenizer(cfg: KosovConfig, source: str, folder: Path) -> str | None:
    """lm-eval loads the tokenizer of the checkpoint, with the checkpoint's own chat template. Where the recipe
    replaces that template (model.chat_template) and the suite applies chat templates, lm-eval gets a copy of
    the tokenizer with the recipe's template instead (saved in `folder`), the one training and kosov's own
    evals use; otherwise None: lm-eval loads the checkpoint's."""
    if not (cfg.model.chat_template and cfg.eval.apply_chat_template and cfg.eval.tasks):
        return None
    load_tokenizer(cfg.model, source).save_pretrained(folder)
    return str(folder)


def _generative(cfg: KosovConfig, source: str, adapter: Path | None, device: str, sides: dict[str, dict]
                ) -> tuple[dict[str, dict], list[str]]:
    """Generative scores per side ("base", "adapted"), computing only what the cache lacks."""
    jobs = jobs_of(cfg.eval)
    results: dict[str, dict] = {side: {} for side in sides}
    todo: dict[str, list] = {side: [] for side in sides}
    for side, identity in sides.items():
        for name, mode in jobs:
            file = cache_file(identity, name, _generative_settings(cfg, name, mode))
            if cfg.eval.cache and file.is_file():
                results[side][f"{name}[{mode}]"] = json.loads(file.read_text())
            else:
                todo[side].append((name, mode, file))
    cached = [f"{side}:{k}" for side, scores in results.items() for k in scores]
    if any(todo.values()):
        tokenizer = load_tokenizer(cfg.model, source)
        stops = stop_ids(cfg.model, tokenizer)  # answers end with their turn, as training taught them
        model = load_for_inference(cfg, source, device)
        for side in sides:
            if side == "adapted":
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(adapter))
            new = run_generative(model, tokenizer, cfg.eval, [(n, m) for n, m, _ in todo[side]], side,
                                 stop_ids=stops)
            for (name, mode, file), key in zip(todo[side], new, strict=True):
                write_json(file, new[key])
            results[side].update(new)
    return results, cached


def evaluate(cfg: KosovConfig) -> EvalResult:
    """Evaluate the recipe's model (and eval.adapter) on its suite. User errors raise KosovError."""
    if cfg.mirror:  # the CLI applied it already; a Python caller gets it here, or a clear "too late"
        from training.mirror_check import check_mirror  # first: what the mirror lacks, named before any load

        check_mirror(cfg, "eval")
    ecfg = cfg.eval
    if not ecfg.tasks and not jobs_of(ecfg):
        raise KosovError("the eval suite has no tasks", fix="choose a suite, e.g. eval=ko-core or eval=smoke")
    device = resolve_device(cfg.device)
    _check_backend(cfg, device)
    run = prepare_run_dir(Path(cfg.output_dir or default_output_dir(cfg.name)), overwrite=cfg.overwrite,
                          resume=False)
    handler = add_file_logging(run)
    scratch = Path(tempfile.mkdtemp(prefix="kosov-eval-"))
    try:
        source, is_local = model_source(cfg.model)
        check_remote_code(cfg.model, source, is_local)
        check_attention(cfg.model, device, training=False)
        adapter = adapter_dir(ecfg.adapter) if ecfg.adapter else None
        if adapter is not None:  # both sides are prompted in the format the adapter was trained with
            check_adapter_base(adapter, source, cfg.model.name_or_path)
            cfg = replace(cfg, model=adapter_model_config(cfg.model, adapter))
        # model.dtype=auto as it resolves here, for lm-eval as for kosov's own evals (lm-eval's own auto would take
        # the checkpoint's dtype, bf16 even on a V100 or a CPU) and for the cache key
        dtype = str(torch_dtype(cfg.model, device)).removeprefix("torch.")
        base = model_identity(source, cfg.model.revision,
                              load_settings(cfg.model, cfg.peft.quantization, dtype=dtype, device=device))
        sides = {"base": base}  # the base's files are hashed (or its commit asked) once for both sides
        if adapter is not None:
            sides["adapted"] = {**base, "adapter": adapter_digest(adapter)}
        harness: dict[str, dict] = {}
        cached: list[str] = []
        tokenizer = _lm_eval_tokenizer(cfg, source, scratch / "tokenizer")
        for side in sides:
            scores, hits = run_tasks(ecfg, identity=sides[side], source=source, revision=cfg.model.revision,
                                     adapter=adapter if side == "adapted" else None, dtype=dtype,
                                     trust_remote_code=cfg.model.trust_remote_code, device=device,
                                     tokenizer=tokenizer)
            harness[side] = {t: {**asdict(s), "higher_is_better": True} for t, s in scores.items()}
            cached += [f"{side}:{t}" for t in hits]
        generative, hits = _generative(cfg, source, adapter, device, sides)
        cached += hits

        report = build_report(suite=ecfg.suite, model={"name_or_path": cfg.model.name_or_path, "source": source,
                                                      "revision": cfg.model.revision},
                              adapter=str(adapter) if adapter else None, harness=harness, generative=generative,
                              cached=cached, adapter_digest=sides.get("adapted", {}).get("adapter"),
                              settings=report_settings(cfg, dtype, device))
        files = write_report(report, run.path)
        resolved = redact(to_dict(cfg))
        prov = provenance(seed=cfg.seed, data={"suite": ecfg.suite}, model=report["model"])
        write_atomic(run.path / "config.yaml", yaml.safe_dump(resolved, allow_unicode=True, sort_keys=False))
        write_json(run.path / "provenance.json", prov)
        tracker = open_tracker(cfg.tracking, run, cfg.name, {"config": resolved, "provenance": prov})
        try:
            log_to_tracker(tracker.run, report, files["png"])
        except BaseException:
            tracker.finish(run, failed=True)
            raise
        tracker.finish(run)
        log.info("report: %s (%d of the scores came from the cache)", files["md"], len(cached))
        run.drop_replaced()
        return EvalResult(run_dir=run.path, report=report, files=files)
    except BaseException:
        run.restore_replaced()  # overwrite=true: the earlier report comes back
        raise
    finally:
        run.release()
        shutil.rmtree(scratch, ignore_errors=True)
        logging.getLogger().removeHandler(handler)
        handler.close()
