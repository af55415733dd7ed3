"""lm-evaluation-harness as the engine: kosov's own local tasks, task-name checks, and a result cache.

Built-in tasks (kmmlu, kobest, haerae, click, hrm8k, ...) run unchanged; kosov's local tasks (the Korean mini
benchmark) are lm-eval task YAMLs written at run time next to the data they read. Results are cached per
(model, adapter hash, task, settings), so a re-run only computes what changed.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from data_tools.text import cut_off_thinking
from training.config import resolve_path
from training.models import COMMIT_SHA
from training.schema import EvalConfig
from training.errors import KosovError
from training.safe_write import write_json
from training.tiny_ko import cache_root

log = logging.getLogger(__name__)

# kosov's own lm-eval tasks: the task YAML, with the data file the task reads.
LOCAL_TASKS: dict[str, dict[str, Any]] = {
    "ko_mini_bench": {
        "data": "pkg://data_tools/datasets/ko_mini_bench.jsonl",
        "task": {
            "task": "ko_mini_bench",
            "dataset_path": "json",
            "output_type": "multiple_choice",
            "test_split": "test",
            "doc_to_text": "질문: {{question}}\n답:",
            "doc_to_choice": "{{choices}}",
            "doc_to_target": "answer",
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}],
            "metadata": {"version": 1.0},
        },
    },
}
# The headline metric of a task: the first of these it reports (all higher-is-better).
PRIMARY_METRICS = ("acc", "exact_match", "acc_norm", "f1", "mcc", "prompt_level_strict_acc", "pass@1", "pass_at_1",
                   "bleu", "chrf")


@dataclass
class TaskScore:
    task: str
    metric: str
    value: float
    stderr: float | None
    n: int | None


def local_task_dir() -> Path:
    """Write kosov's local task YAMLs (with absolute data paths) into the cache; returns the folder."""
    tasks = {}
    for name, spec in LOCAL_TASKS.items():
        data = resolve_path(spec["data"])
        tasks[name] = {**spec["task"], "dataset_kwargs": {"data_files": {"test": str(data)}}}
    digest = hashlib.sha256(json.dumps(tasks, sort_keys=True).encode()).hexdigest()[:16]
    folder = cache_root() / "lm_eval_tasks" / digest
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        for name, task in tasks.items():
            (folder / f"{name}.yaml").write_text(yaml.safe_dump(task, allow_unicode=True), encoding="utf-8")
    return folder


def task_manager(tasks: list[str]):
    """A TaskManager that knows kosov's local tasks; lm-eval's ~15k built-ins are indexed only when needed."""
    from lm_eval.tasks import TaskManager

    builtin = any(t not in LOCAL_TASKS for t in tasks)
    manager = TaskManager(include_path=str(local_task_dir()), include_defaults=builtin)
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        hints = {t: difflib.get_close_matches(t, manager.all_tasks, n=3) for t in unknown}
        raise KosovError(f"unknown lm-eval task(s) {unknown}",
                         fix="; ".join(f"{t}: did you mean {', '.join(h)}?" if h else f"{t}: no similar task"
                                       for t, h in hints.items()) + " (list them with `lm_eval ls tasks`)")
    return manager


def primary_score(task: str, results: dict[str, Any], group_subtasks: dict[str, list[str]]) -> TaskScore:
    """The task's headline metric; for a group without its own aggregate, the mean of its subtasks."""
    entry = results.get(task, {})
    for metric in PRIMARY_METRICS:
        for key, value in entry.items():
            if key.split(",")[0] == metric and isinstance(value, (int, float)):
                stderr = entry.get(key.replace(metric, f"{metric}_stderr", 1))
                stderr = stderr if isinstance(stderr, (int, float)) and not math.isnan(stderr) else None
                return TaskScore(task, metric, float(value), stderr, entry.get("sample_len"))
    subs = [primary_score(s, results, group_subtasks) for s in group_subtasks.get(task, [])]
    subs = [s for s in subs if not math.isnan(s.value)]
    if not subs:
        return TaskScore(task, "none", float("nan"), None, None)
    return TaskScore(task, subs[0].metric, sum(s.value for s in subs) / len(subs), None,
                     sum(s.n or 0 for s in subs) or None)


def files_digest(folder: Path, names: tuple[str, ...]) -> str:
    """A digest of the named files (glob patterns) in `folder`: their contents, or for files of 1 GiB and more
    their size and modification time."""
    digest = hashlib.sha256()
    for path in sorted({p for name in names for p in folder.glob(name) if p.is_file()}):
        stat = path.stat()
        digest.update(path.name.encode())
        digest.update(path.read_bytes() if stat.st_size < 2**30 else f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


# What a local model folder's scores depend on: weights (every shard), config, tokenizer (in each of its
# formats), chat template, and the model code a trust_remote_code checkpoint runs (*.py).
MODEL_FILES = ("config.json", "*.safetensors", "*.safetensors.index.json", "*.bin", "tokenizer.json",
               "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "generation_config.json",
               "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json", "*.py")


def hub_commit(repo_id: str, revision: str | None, cache_dir: str | Path | None = None) -> str | None:
    """The commit a hub id at a revision (a branch such as main moves) stands for now: asked of the Hub when online,
    else read from the local hub cache (or a kosov mirror); None when neither knows."""
    if revision and COMMIT_SHA.match(revision):
        return revision
    from huggingface_hub import HfApi, try_to_load_from_cache
    from huggingface_hub.constants import HF_HUB_OFFLINE

    if not HF_HUB_OFFLINE:
        try:
            return HfApi().model_info(repo_id, revision=revision).sha
        except Exception:  # noqa: BLE001 - no network, or no access: the local cache may still know
            pass
    found = try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir, revision=revision)
    return Path(found).parent.name if isinstance(found, str) else None


def adapter_digest(adapter: Path) -> str:
    """An adapter's identity: its config and weights (what an eval report and a release are matched by)."""
    return files_digest(adapter, ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"))


def model_identity(source: str, revision: str | None, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the cache key knows of the base model: a local folder's file digest, or the hub id at the commit its
    revision names now (so a moved main is evaluated again); and how the model is loaded (`settings`: dtype,
    attention, quantization, chat template). Base + adapter: this with "adapter": adapter_digest(adapter)."""
    local = Path(source)
    ident = {"source": source, "revision": revision, "load": settings}
    if local.is_dir():
        ident["digest"] = files_digest(local, MODEL_FILES)
    else:
        ident["commit"] = hub_commit(source, revision)
    return ident


def load_settings(mcfg: Any, quantization: Any, dtype: str | None = None, device: str | None = None
                  ) -> dict[str, Any]:
    """The model settings a score depends on besides its files (for model_identity). `dtype`: what model.dtype=auto
    resolved to on `device` (bf16 on a recent GPU, fp16 on a V100, fp32 on CPU): a score computed in one is not
    served to a run in another through the shared cache."""
    template = Path(mcfg.chat_template).expanduser() if mcfg.chat_template else None
    return {"dtype": dtype or mcfg.dtype, "device": device, "attn_implementation": mcfg.attn_implementation,
            "end_of_turn_token": mcfg.end_of_turn_token,
            "quantization": asdict(quantization) if quantization is not None else None,
            "chat_template": hashlib.sha256(template.read_bytes()).hexdigest()[:16]
            if template is not None and template.is_file() else None}


def cache_file(identity: dict, task: str, settings: dict) -> Path:
    import lm_eval

    key = json.dumps({"model": identity, "task": task, "settings": settings, "lm_eval": lm_eval.__version__},
                     sort_keys=True, default=str)
    return cache_root() / "eval_cache" / f"{hashlib.sha256(key.encode()).hexdigest()}.json"


def generates(manager: Any, task: str) -> bool:
    """Whether an lm-eval task generates its answers (output_type generate_until), or every task of a group or
    tag does: only those can think first; a likelihood task (multiple choice) scores its choices directly."""
    entry = manager.task_index.get(task)
    kind = getattr(getattr(entry, "kind", None), "name", "")
    if kind == "TASK":
        return entry.cfg.get("output_type") == "generate_until"
    members = (sorted(entry.tags) if kind == "TAG" else
               [m for m in entry.cfg.get("task", []) if isinstance(m, str)] if kind == "GROUP" else [])
    return bool(members) and all(generates(manager, m) for m in members)


def needs_task_types(ecfg: EvalConfig) -> bool:
    return ecfg.apply_chat_template and "on" in ecfg.thinking


def lm_eval_jobs(ecfg: EvalConfig, manager: Any = None) -> list[tuple[str, str | None]]:
    """(task, thinking mode) pairs. Without chat templates a task runs once, with no mode. With them a generative
    task (HRM8K) runs in each of the suite's thinking modes, a likelihood task in "off" only (lm-eval refuses
    thinking there: there is no room to think before a choice's likelihood); `manager` (task_manager) tells
    which is which when the suite thinks."""
    if not ecfg.apply_chat_template:
        return [(t, None) for t in ecfg.tasks]
    return [(t, mode) for t in ecfg.tasks
            for mode in (ecfg.thinking if not needs_task_types(ecfg) or generates(manager, t) else ["off"])]


def task_label(task: str, mode: str | None, jobs: list[tuple[str, str | None]]) -> str:
    """A task's name in reports: "hrm8k", or "hrm8k[on]" when the suite runs it in several thinking modes."""
    return f"{task}[{mode}]" if sum(t == task for t, _ in jobs) > 1 else task


def settings_of(ecfg: EvalConfig, task: str, mode: str | None) -> dict[str, Any]:
    """The run settings a task's score depends on (`mode`: its thinking mode, see lm_eval_jobs); for kosov's
    local tasks, their data file's digest too."""
    settings = {"num_fewshot": ecfg.num_fewshot, "limit": ecfg.limit, "apply_chat_template": ecfg.apply_chat_template,
                "backend": ecfg.backend, "thinking": mode}
    if mode == "on":  # graded as kosov grades it since (cut_off_thoughts_unanswered): not a score cached before
        settings["cut_off_thinking"] = "unanswered"
    if task in LOCAL_TASKS:
        data = resolve_path(LOCAL_TASKS[task]["data"])
        settings["data_sha256"] = hashlib.sha256(data.read_bytes()).hexdigest()
    return settings


def thinking_args(mode: str | None) -> dict[str, Any]:
    """lm-eval's chat-template thinking switch (hf and vLLM models alike); None: no chat template, no switch."""
    if mode is None:
        return {}
    return {"enable_thinking": mode == "on", "think_end_token": "</think>"}


@contextmanager
def cut_off_thoughts_unanswered(mode: str | None) -> Iterator[None]:
    """With thinking on, lm-eval keeps the whole text of a completion cut off while thinking (it has no </think> to
    split at), and a task's parser then takes the last number of the unfinished reasoning as its answer (HRM8K).
    kosov's own math eval counts such a completion as unanswered (data_tools.text.split_thinking): so does lm-eval
    here, its answer empty, for the hf and vLLM backends."""
    if mode != "on":
        yield
        return
    import importlib

    from lm_eval.models import utils

    plain = utils.postprocess_generated_text

    def postprocess(generation: str, stop: Any, think_end_token: Any) -> str:
        return "" if cut_off_thinking(generation) else plain(generation, stop, think_end_token)

    modules = []
    for name in ("lm_eval.models.huggingface", "lm_eval.models.vllm_causallms"):
        try:
            modules.append(importlib.import_module(name))  # imported first: they bind the function at import
        except ImportError:  # vLLM not installed: no vLLM backend to patch
            continue
    for module in modules:
        module.postprocess_generated_text = postprocess
    try:
        yield
    finally:
        for module in modules:
            module.postprocess_generated_text = plain


def tag_members(manager: Any, tasks: list[str]) -> dict[str, list[str]]:
    """lm-eval tags (e.g. kbl) name tasks without an aggregate of their own: their members, to average."""
    members = {}
    for task in tasks:
        entry = manager.task_index.get(task)
        if entry is not None and getattr(entry.kind, "name", "") == "TAG":
            members[task] = sorted(entry.tags)
    return members


def model_args(ecfg: EvalConfig, source: str, revision: str | None, adapter: Path | None, dtype: str,
               trust_remote_code: bool, tokenizer: str | None = None, mode: str | None = None) -> dict[str, Any]:
    args: dict[str, Any] = {"pretrained": source, "dtype": dtype, "trust_remote_code": trust_remote_code}
    if revision:
        args["revision"] = revision
    if tokenizer:  # a saved tokenizer with the recipe's chat template (model.chat_template)
        args["tokenizer"] = tokenizer
    if adapter is not None:
        args["lora_local_path" if ecfg.backend == "vllm" else "peft"] = str(adapter)
    if ecfg.backend == "vllm" and adapter is not None:
        args["enable_lora"] = True
    return {**args, **thinking_args(mode)}


def evaluate_live(ecfg: EvalConfig, model: Any, tokenizer: Any) -> dict[str, TaskScore]:
    """The suite's lm-eval tasks on a model already in memory (eval during training; no cache)."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    if not ecfg.tasks:
        return {}
    manager = task_manager(ecfg.tasks)
    jobs = lm_eval_jobs(ecfg, manager)
    scores = {}
    for mode in dict.fromkeys(m for _, m in jobs):
        tasks = [t for t, m in jobs if m == mode]
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=ecfg.batch_size, **thinking_args(mode))
        with cut_off_thoughts_unanswered(mode):
            output = lm_eval.simple_evaluate(model=lm, tasks=tasks, num_fewshot=ecfg.num_fewshot, limit=ecfg.limit,
                                             apply_chat_template=ecfg.apply_chat_template, task_manager=manager,
                                             log_samples=False)
        subtasks = {**output.get("group_subtasks", {}), **tag_members(manager, tasks)}
        scores.update({task_label(t, mode, jobs): primary_score(t, output["results"], subtasks) for t in tasks})
    return scores


def run_tasks(ecfg: EvalConfig, *, identity: dict[str, Any], source: str, revision: str | None,
              adapter: Path | None, dtype: str, trust_remote_code: bool, device: str, tokenizer: str | None = None
              ) -> tuple[dict[str, TaskScore], list[str]]:
    """Scores of ecfg.tasks for one model (base or base + adapter, `identity` from model_identity; `tokenizer`: a
    tokenizer folder to use instead of the checkpoint's); returns (scores, tasks read from cache)."""
    if not ecfg.tasks:
        return {}, []
    manager = task_manager(ecfg.tasks) if needs_task_types(ecfg) else None
    jobs = lm_eval_jobs(ecfg, manager)
    files = {(t, mode): cache_file(identity, t, settings_of(ecfg, t, mode)) for t, mode in jobs}
    scores = {job: TaskScore(**json.loads(f.read_text())) for job, f in files.items() if ecfg.cache and f.is_file()}
    cached = [task_label(t, mode, jobs) for t, mode in scores]
    for mode in dict.fromkeys(m for _, m in jobs):
        missing = [t for t, m in jobs if m == mode and (t, m) not in scores]
        if not missing:
            continue
        import lm_eval

        manager = manager or task_manager(ecfg.tasks)
        log.info("lm-eval: %s on %s%s%s", missing, source, f" + {adapter}" if adapter else "",
                 f", thinking {mode}" if mode is not None else "")
        try:
            with cut_off_thoughts_unanswered(mode):
                output = lm_eval.simple_evaluate(
                    model=ecfg.backend, model_args=model_args(ecfg, source, revision, adapter, dtype,
                                                              trust_remote_code, tokenizer, mode),
                    tasks=missing, num_fewshot=ecfg.num_fewshot, limit=ecfg.limit, batch_size=ecfg.batch_size,
                    device=device, apply_chat_template=ecfg.apply_chat_template, task_manager=manager,
                    log_samples=False)
        except (ConnectionError, FileNotFoundError) as e:  # datasets' errors for a hub dataset it cannot reach
            raise KosovError(f"could not load the benchmark data of {missing}: {e}",
                             fix="check the network and HF_TOKEN; on a closed network, run `kosov mirror` for this "
                                 "suite on a connected machine and point kosov at the mirror folder") from None
        subtasks = {**output.get("group_subtasks", {}), **tag_members(manager, missing)}
        for task in missing:
            score = scores[(task, mode)] = primary_score(task, output["results"], subtasks)
            if math.isnan(score.value):  # no score to keep: the next run computes it again
                given = sorted({k.split(",")[0] for k, v in output["results"].get(task, {}).items()
                                if isinstance(v, (int, float)) and "_stderr" not in k})
                log.warning("lm-eval gave %s no %s score (it gave %s): the report shows it as –, outside the "
                            "suite average", task, "/".join(PRIMARY_METRICS), ", ".join(given) or "nothing")
                continue
            write_json(files[(task, mode)], asdict(score))
    return {task_label(t, mode, jobs): scores[(t, mode)] for t, mode in jobs}, cached
