"""`kosov eval`: a base and, when given, base + adapter on a Korean suite, with a report.

    kosov eval experiment=smoke-eval output_dir=DIR
    kosov eval experiment=qwen3-8b-ko-eval eval.adapter=outputs/qwen3-8b-ko-qlora-sft/<run>

Phases: mirror check (mirror=FOLDER holds, undamaged, the model and tasks) -> run folder -> model and adapter
checks (an adapter cut short, of another base or of another revision than its run pinned, or of another vocabulary
size, fails before anything loads or is scored; so does thinking "on" with a chat template that ignores
enable_thinking) -> record and tracker (config, provenance; the tracker run opens before any scoring) -> per side,
base then base + adapter: lm-eval tasks and kosov's generative evals (cached), both on the one model kosov loads
(with eval.backend=vllm, lm-eval's vLLM runs both sides first) -> report (json, md, png) -> the report into the
tracker (a tracker failing there is a warning: the report stands).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from collections.abc import Callable
from typing import Any

import yaml

from data_tools.chat_io import file_sha256
from training.config import resolve_path, to_dict
from training.schema import KosovConfig
from training.errors import KosovError
from training.evaluation.generative import (JOBS, check_prompts, code_digest, jobs_of, max_new_tokens_of, prompt_limit,
                                           run_generative)
from training.evaluation.harness import hf_lm, lm_eval_jobs, model_args, needs_task_types, run_tasks
from training.evaluation.thinking import check_thinking_switch, check_window, config_window, thinking_max_new_tokens
from training.evaluation.identity import adapter_digest, cache_file, load_settings, model_identity
from training.evaluation.report import build_report, log_to_tracker, write_report
from training.adapters import adapter_dir, adapter_model_config, check_adapter_base
from training.models import (check_attention, check_remote_code, cuda_available, installed, load_for_inference,
                             load_tokenizer, model_source, resolve_device, stop_ids, torch_dtype)
from training.provenance import provenance
from training.redaction import redact
from training.run_dir import RunDir, add_file_logging, default_output_dir, prepare_run_dir
from training.safe_write import write_atomic, write_json
from training.tracking import Tracker, open_tracker

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
    settings = {"eval": asdict(own), "limit": prompt_limit(own, cfg.eval.limit), "thinking": mode,
                "data_sha256": file_sha256(resolve_path(own.data)), "code": code_digest()}
    if thinking_max_new_tokens(cfg.eval, mode) is not None:  # thinking on: the suite's limit, not the eval's own
        settings["max_new_tokens"] = max_new_tokens_of(own, cfg.eval, mode)
    return settings


def report_settings(cfg: KosovConfig, dtype: str, device: str) -> dict[str, Any]:
    """What the report's scores were computed with, kept in it (and in the card): a score on a subset (eval.limit)
    or with other shots is not one on the full benchmark; one in 4-bit is not one in bf16."""
    ecfg = cfg.eval
    quant = cfg.peft.quantization
    # what thinking "on" set the generation limit of: lm-eval's generating tasks with chat templates only (without,
    # each runs once, with no mode and its own limit), kosov's evals when they run
    scope = ([*(["lm-eval"] if ecfg.apply_chat_template and ecfg.tasks else []), *(["kosov"] if jobs_of(ecfg) else [])]
             if "on" in ecfg.thinking else [])
    return {"limit": ecfg.limit, "num_fewshot": ecfg.num_fewshot, "thinking": list(ecfg.thinking),
            # the generation limit with thinking on, of what `thinking_limit_scope` names; None: their own
            "thinking_max_new_tokens": thinking_max_new_tokens(ecfg, "on") if scope else None,
            "thinking_limit_scope": scope,
            "apply_chat_template": ecfg.apply_chat_template, "backend": ecfg.backend, "dtype": dtype, "device": device,
            "quantization": f"4-bit {quant.quant_type}" if quant is not None else None,
            "loaded_by": "kosov" if ecfg.backend == "hf" else "vllm",  # lm-eval's model: the one kosov loaded
            "kosov_evals": {name: _eval_settings(ecfg, name) for name in dict.fromkeys(n for n, _ in jobs_of(ecfg))}}


def _eval_settings(ecfg: Any, name: str) -> dict[str, Any]:
    """One of kosov's evals in the report's settings: its prompts and its generation limit (with thinking on too)."""
    own = getattr(ecfg, JOBS[name])
    limits = {"max_new_tokens_thinking": max_new_tokens_of(own, ecfg, "on")} if "on" in ecfg.thinking else {}
    return {"limit": prompt_limit(own, ecfg.limit), "max_new_tokens": own.max_new_tokens, **limits}


def _vllm_tokenizer(cfg: KosovConfig, source: str, folder: Path) -> str | None:
    """vLLM loads the tokenizer of the checkpoint, with the checkpoint's own chat template. Where the recipe
    replaces that template (model.chat_template) and the suite applies chat templates, vLLM gets a copy of the
    tokenizer with the recipe's template instead (saved in `folder`), the one training and kosov's own evals use;
    otherwise None: vLLM loads the checkpoint's. (The hf backend gets kosov's tokenizer itself.)"""
    if not (cfg.model.chat_template and cfg.eval.apply_chat_template and cfg.eval.tasks):
        return None
    load_tokenizer(cfg.model, source).save_pretrained(folder)
    return str(folder)


class _Model:
    """The model both engines score, loaded once by kosov's loader (load_for_inference: the recipe's dtype,
    quantization and attention), and only when a score is not cached: the base, then the same weights with the
    adapter put on, never resized. Sides come in order: the base is not scored after the adapter is on."""

    def __init__(self, cfg: KosovConfig, source: str, adapter: Path | None, device: str):
        self.cfg, self.source, self.adapter, self.device = cfg, source, adapter, device
        self._model: Any = None
        self._tokenizer: Any = None
        self.side = "base"

    def tokenizer(self) -> Any:
        if self._tokenizer is None:  # a template only where something renders chats: lm-eval tasks alone, scored
            # without one (eval=en-retention on a base checkpoint), need none
            ecfg = self.cfg.eval
            templated = bool(jobs_of(ecfg)) or ecfg.apply_chat_template
            self._tokenizer = load_tokenizer(self.cfg.model, self.source, require_template=templated)
        return self._tokenizer

    def on(self, side: str) -> Any:
        if self._model is None:
            self._model = load_for_inference(self.cfg, self.source, self.device)
        if side != self.side:
            if side != "adapted":
                raise RuntimeError("the base side is scored before the adapter is put on")
            from peft import PeftModel

            self._model, self.side = PeftModel.from_pretrained(self._model, str(self.adapter)).eval(), side
        return self._model


def _engine(cfg: KosovConfig, models: _Model, side: str, dtype: str, device: str, tokenizer: str | None
            ) -> Callable[[str | None], dict[str, Any]]:
    """simple_evaluate's model arguments for one side and thinking mode: the hf backend scores the model kosov
    loaded (hf_lm), vLLM loads its own from the checkpoint (and the adapter, at its rank)."""
    ecfg = cfg.eval
    if ecfg.backend == "hf":
        return lambda mode: {"model": hf_lm(ecfg, models.on(side), models.tokenizer(), mode)}
    adapter = models.adapter if side == "adapted" else None

    def vllm(mode: str | None) -> dict[str, Any]:
        # vLLM starts with the model's whole context window (no max_model_len): the thinking limit must fit it
        if thinking_max_new_tokens(ecfg, mode) is not None:
            check_window(ecfg, mode, _context_window(cfg, models.source), models.source)
        return {"model": "vllm", "batch_size": ecfg.batch_size, "device": device,
                "model_args": model_args(ecfg, models.source, cfg.model.revision, adapter, dtype,
                                         cfg.model.trust_remote_code, tokenizer, mode)}

    return vllm


def _context_window(cfg: KosovConfig, source: str) -> int | None:
    """The context window the model's config gives (what vLLM starts with when given no max_model_len); None where
    the config cannot be read here or names none (vLLM then says what is wrong)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source, revision=cfg.model.revision,
                                            trust_remote_code=cfg.model.trust_remote_code)
    except (OSError, ValueError):
        return None
    return config_window(config)


def _harness(cfg: KosovConfig, models: _Model, side: str, identity: dict, dtype: str, device: str,
             tokenizer: str | None) -> tuple[dict[str, dict], list[str]]:
    """lm-eval scores of one side, computing only what the cache lacks."""
    label = models.source + (f" + {models.adapter}" if side == "adapted" else "")
    scores, hits = run_tasks(cfg.eval, identity=identity, label=label, tokenizer=models.tokenizer,
                             engine=_engine(cfg, models, side, dtype, device, tokenizer))
    return {t: {**asdict(s), "higher_is_better": True} for t, s in scores.items()}, [f"{side}:{t}" for t in hits]


def _generative(cfg: KosovConfig, models: _Model, side: str, identity: dict) -> tuple[dict[str, dict], list[str]]:
    """kosov's generative scores of one side, computing only what the cache lacks."""
    results: dict[str, dict] = {}
    todo = []
    for name, mode in jobs_of(cfg.eval):
        file = cache_file(identity, name, _generative_settings(cfg, name, mode))
        if cfg.eval.cache and file.is_file():
            results[f"{name}[{mode}]"] = json.loads(file.read_text())
        else:
            todo.append((name, mode, file))
    cached = [f"{side}:{k}" for k in results]
    if todo:
        stops = stop_ids(cfg.model, models.tokenizer())  # answers end with their turn, as training taught them
        new = run_generative(models.on(side), models.tokenizer(), cfg.eval, [(n, m) for n, m, _ in todo], side,
                             stop_ids=stops)
        for (name, mode, file), key in zip(todo, new, strict=True):
            if math.isnan(new[key]["value"]):  # no score to keep (as lm-eval's): the next run computes it again
                log.warning("%s gave no score on %s: the report shows it as –", key, side)
                continue
            write_json(file, new[key])
        results.update(new)
    return results, cached


def _check_adapter_vocab(cfg: KosovConfig, source: str, adapter: Path) -> None:
    """An adapter that saved whole embeddings (peft.modules_to_save) of another vocabulary size than the base's
    config (trained on a resized base) cannot load on it: refused here, before the base side runs, not with a size
    mismatch after it."""
    from safetensors import safe_open
    from transformers import AutoConfig

    embeddings = (".embed_tokens.weight", ".lm_head.weight")
    weights = adapter / "adapter_model.safetensors"
    if weights.is_file():
        with safe_open(str(weights), framework="pt") as f:
            rows = {k: f.get_slice(k).get_shape()[0] for k in f.keys() if k.endswith(embeddings)}
    elif (adapter / "adapter_model.bin").is_file():  # PEFT's older format (safe_serialization=False)
        import torch

        state = torch.load(adapter / "adapter_model.bin", map_location="meta", weights_only=True)
        rows = {k: v.shape[0] for k, v in state.items() if k.endswith(embeddings)}
    else:
        return
    if not rows:  # LoRA alone: it loads on any vocabulary
        return
    try:
        config = AutoConfig.from_pretrained(source, revision=cfg.model.revision,
                                            trust_remote_code=cfg.model.trust_remote_code)
    except (OSError, ValueError):  # loading the model says what is wrong, in kosov's words
        return
    vocab = getattr(getattr(config, "text_config", config), "vocab_size", None)
    wrong = {k: n for k, n in rows.items() if vocab is not None and n != vocab}
    if wrong:
        raise KosovError(f"the adapter {adapter} holds embeddings of another vocabulary size than the base's "
                         f"{vocab} ({', '.join(f'{k}: {n}' for k, n in wrong.items())}): it was trained on a base "
                         "with resized embeddings", fix="evaluate it on the base it was trained on (the same "
                                                        "vocab_size in config.json)")


def _check_suite(ecfg: Any) -> None:
    """A suite that runs something (validate refuses eval.thinking=[] where it drops tasks; a caller may not have
    validated), with every prompt file of kosov's evals readable, before any run folder or model."""
    # with thinking on, every lm-eval task runs in a mode ("off" at least); else lm_eval_jobs needs no task index
    lm_eval = bool(ecfg.tasks) and (needs_task_types(ecfg) or bool(lm_eval_jobs(ecfg)))
    if not lm_eval and not jobs_of(ecfg):
        if not ecfg.thinking and (ecfg.tasks or ecfg.math.enabled or ecfg.language.enabled):
            raise KosovError("eval.thinking=[] runs no thinking mode: the suite has nothing left to run",
                             fix="list the modes to run, e.g. eval.thinking=[off]")
        raise KosovError("the eval suite has no tasks", fix="choose a suite, e.g. eval=ko-core or eval=smoke")
    check_prompts(ecfg)


def _finish_tracker(tracker: Tracker, run: RunDir, report: dict[str, Any], png: Path) -> None:
    """The report's table and chart into the tracker run, which then closes. The report is written by now: a tracker
    that fails here (the network gone at the end of a long run) is a warning, not a failed eval."""
    try:
        log_to_tracker(tracker.run, report, png)
        tracker.finish(run)
    except Exception as e:  # noqa: BLE001 - wandb raises its own error types for auth and network
        log.warning("the tracker failed after the report was written (%s: %s): the report in %s stands, the tracker "
                    "run lacks it", type(e).__name__, e, run.path)
        try:
            tracker.finish(run, failed=True)
        except Exception as closing:  # noqa: BLE001 - as above
            log.warning("the tracker run could not be closed either: %s", closing)
            tracker.run = None


def evaluate(cfg: KosovConfig) -> EvalResult:
    """Evaluate the recipe's model (and eval.adapter) on its suite. User errors raise KosovError."""
    if cfg.mirror:  # the CLI applied it already; a Python caller gets it here, or a clear "too late"
        from training.mirror_check import check_mirror  # first: what the mirror lacks, named before any load

        check_mirror(cfg, "eval")
    ecfg = cfg.eval
    _check_suite(ecfg)
    device = resolve_device(cfg.device)
    _check_backend(cfg, device)
    run = prepare_run_dir(Path(cfg.output_dir or default_output_dir(cfg.name)), overwrite=cfg.overwrite,
                          resume=False)
    handler = add_file_logging(run)
    scratch = Path(tempfile.mkdtemp(prefix="kosov-eval-"))
    tracker: Tracker | None = None
    try:
        source, is_local = model_source(cfg.model)
        check_remote_code(cfg.model, source, is_local)
        check_attention(cfg.model, device, training=False)
        adapter = adapter_dir(ecfg.adapter) if ecfg.adapter else None
        if adapter is not None:  # both sides are prompted in the format the adapter was trained with
            check_adapter_base(adapter, source, cfg.model.name_or_path, cfg.model.revision)
            cfg = replace(cfg, model=adapter_model_config(cfg.model, adapter))
        # model.dtype=auto as it resolves here, for lm-eval as for kosov's own evals (lm-eval's own auto would take
        # the checkpoint's dtype, bf16 even on a V100 or a CPU) and for the cache key
        dtype = str(torch_dtype(cfg.model, device)).removeprefix("torch.")
        base = model_identity(source, cfg.model.revision,
                              load_settings(cfg.model, cfg.peft.quantization, dtype=dtype, device=device))
        sides = {"base": base}  # the base's files are hashed (or its commit asked) once for both sides
        if adapter is not None:
            _check_adapter_vocab(cfg, source, adapter)
            sides["adapted"] = {**base, "adapter": adapter_digest(adapter)}
        if "on" in ecfg.thinking and jobs_of(ecfg):  # kosov's evals generate up to the thinking limit in the window
            check_window(ecfg, "on", _context_window(cfg, source), source)
        models = _Model(cfg, source, adapter, device)
        if "on" in ecfg.thinking:  # the template both engines render with, before the model loads
            template = cfg.model.chat_template or f"the chat template of {source}"
            check_thinking_switch(ecfg, models.tokenizer(), template)
        # the commit the base's files were identified at (a hub id; None for a folder): publish matches it with the
        # commit the run trained on, as train records it (loaded_revision)
        model_info = {"name_or_path": cfg.model.name_or_path, "source": source, "revision": cfg.model.revision,
                      "loaded_revision": base.get("commit")}
        # the record and the tracker before any scoring, as kosov train opens them before training: a tracker that
        # cannot start (a wandb key without a network) fails now, not after hours of scores
        resolved = redact(to_dict(cfg))
        prov = provenance(seed=cfg.seed, data={"suite": ecfg.suite}, model=model_info)
        write_atomic(run.path / "config.yaml", yaml.safe_dump(resolved, allow_unicode=True, sort_keys=False))
        write_json(run.path / "provenance.json", prov)
        tracker = open_tracker(cfg.tracking, run, cfg.name, {"config": resolved, "provenance": prov})
        tokenizer = _vllm_tokenizer(cfg, source, scratch / "tokenizer") if ecfg.backend == "vllm" else None
        # vLLM holds most of the GPU while it runs: it scores both sides before kosov's evals load the model
        order = ([("lm-eval", s) for s in sides] + [("kosov", s) for s in sides] if ecfg.backend == "vllm" else
                 [(engine, s) for s in sides for engine in ("lm-eval", "kosov")])
        harness: dict[str, dict] = {side: {} for side in sides}
        generative: dict[str, dict] = {side: {} for side in sides}
        cached: list[str] = []
        for engine, side in order:
            if engine == "lm-eval":
                harness[side], hits = _harness(cfg, models, side, sides[side], dtype, device, tokenizer)
            else:
                generative[side], hits = _generative(cfg, models, side, sides[side])
            cached += hits

        report = build_report(suite=ecfg.suite, model=model_info, adapter=str(adapter) if adapter else None,
                              harness=harness, generative=generative, cached=cached,
                              adapter_digest=sides.get("adapted", {}).get("adapter"),
                              settings=report_settings(cfg, dtype, device))
        files = write_report(report, run.path)
        run.drop_replaced()  # the new report stands (overwrite=true), whatever the tracker does next
        log.info("report: %s (%d of the scores came from the cache)", files["md"], len(cached))
        _finish_tracker(tracker, run, report, files["png"])
        return EvalResult(run_dir=run.path, report=report, files=files)
    except BaseException:
        fresh = run.replaced is None  # no earlier run in the folder: the record this failed one wrote goes with it
        try:
            if tracker is not None:
                tracker.finish(run, failed=True)
        finally:
            run.restore_replaced()  # overwrite=true: the earlier report comes back, unless the new one was written
            if fresh:  # a rerun into the same output_dir is not refused as "already holds a run" (scores are cached)
                for name in ("config.yaml", "provenance.json"):
                    (run.path / name).unlink(missing_ok=True)
        raise
    finally:
        run.release()
        shutil.rmtree(scratch, ignore_errors=True)
        logging.getLogger().removeHandler(handler)
        handler.close()
