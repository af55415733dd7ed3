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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from training.config import resolve_path
from training.models import COMMIT_SHA
from training.schema import EvalConfig
from training.errors import KosovError
from training.run_dir import write_json
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
PRIMARY_METRICS = ("acc", "exact_match", "acc_norm", "f1", "mcc")


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


# What a local model folder's scores depend on: weights (every shard), config, tokenizer and chat template.
MODEL_FILES = ("config.json", "*.safetensors", "*.safetensors.index.json", "*.bin", "tokenizer.json",
               "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "generation_config.json")


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
    return files_digest(adapter, ("adapter_config.json", "adapter_model.safetensors"))


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


def load_settings(mcfg: Any, quantization: Any) -> dict[str, Any]:
    """The model settings a score depends on besides its files (for model_identity)."""
    template = Path(mcfg.chat_template).expanduser() if mcfg.chat_template else None
    return {"dtype": mcfg.dtype, "attn_implementation": mcfg.attn_implementation,
            "quantization": asdict(quantization) if quantization is not None else None,
            "chat_template": hashlib.sha256(template.read_bytes()).hexdigest()[:16]
            if template is not None and template.is_file() else None}


def cache_file(identity: dict, task: str, settings: dict) -> Path:
    import lm_eval

    key = json.dumps({"model": identity, "task": task, "settings": settings, "lm_eval": lm_eval.__version__},
                     sort_keys=True, default=str)
    return cache_root() / "eval_cache" / f"{hashlib.sha256(key.encode()).hexdigest()}.json"


def settings_of(ecfg: EvalConfig, task: str) -> dict[str, Any]:
    """The run settings a task's score depends on; for kosov's local tasks, their data file's digest too."""
    settings = {"num_fewshot": ecfg.num_fewshot, "limit": ecfg.limit, "apply_chat_template": ecfg.apply_chat_template,
                "backend": ecfg.backend, "thinking": ecfg.thinking[0] if ecfg.apply_chat_template else None}
    if task in LOCAL_TASKS:
        data = resolve_path(LOCAL_TASKS[task]["data"])
        settings["data_sha256"] = hashlib.sha256(data.read_bytes()).hexdigest()
    return settings


def thinking_args(ecfg: EvalConfig) -> dict[str, Any]:
    """lm-eval's chat-template thinking switch (hf and vLLM models alike): the suite's first thinking mode."""
    if not ecfg.apply_chat_template:
        return {}
    return {"enable_thinking": ecfg.thinking[0] == "on", "think_end_token": "</think>"}


def tag_members(manager: Any, tasks: list[str]) -> dict[str, list[str]]:
    """lm-eval tags (e.g. kbl) name tasks without an aggregate of their own: their members, to average."""
    members = {}
    for task in tasks:
        entry = manager.task_index.get(task)
        if entry is not None and getattr(entry.kind, "name", "") == "TAG":
            members[task] = sorted(entry.tags)
    return members


def model_args(ecfg: EvalConfig, source: str, revision: str | None, adapter: Path | None, dtype: str,
               trust_remote_code: bool, tokenizer: str | None = None) -> dict[str, Any]:
    args: dict[str, Any] = {"pretrained": source, "dtype": dtype, "trust_remote_code": trust_remote_code}
    if revision:
        args["revision"] = revision
    if tokenizer:  # a saved tokenizer with the recipe's chat template (model.chat_template)
        args["tokenizer"] = tokenizer
    if adapter is not None:
        args["lora_local_path" if ecfg.backend == "vllm" else "peft"] = str(adapter)
    if ecfg.backend == "vllm" and adapter is not None:
        args["enable_lora"] = True
    return {**args, **thinking_args(ecfg)}  # lm-eval tasks run in the suite's first thinking mode


def evaluate_live(ecfg: EvalConfig, model: Any, tokenizer: Any) -> dict[str, TaskScore]:
    """The suite's lm-eval tasks on a model already in memory (eval during training; no cache)."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    if not ecfg.tasks:
        return {}
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=ecfg.batch_size, **thinking_args(ecfg))
    manager = task_manager(ecfg.tasks)
    output = lm_eval.simple_evaluate(model=lm, tasks=ecfg.tasks, num_fewshot=ecfg.num_fewshot, limit=ecfg.limit,
                                     apply_chat_template=ecfg.apply_chat_template, task_manager=manager,
                                     log_samples=False)
    subtasks = {**output.get("group_subtasks", {}), **tag_members(manager, ecfg.tasks)}
    return {t: primary_score(t, output["results"], subtasks) for t in ecfg.tasks}


def run_tasks(ecfg: EvalConfig, *, identity: dict[str, Any], source: str, revision: str | None,
              adapter: Path | None, dtype: str, trust_remote_code: bool, device: str, tokenizer: str | None = None
              ) -> tuple[dict[str, TaskScore], list[str]]:
    """Scores of ecfg.tasks for one model (base or base + adapter, `identity` from model_identity; `tokenizer`: a
    tokenizer folder to use instead of the checkpoint's); returns (scores, tasks read from cache)."""
    if not ecfg.tasks:
        return {}, []
    files = {t: cache_file(identity, t, settings_of(ecfg, t)) for t in ecfg.tasks}
    scores = {t: TaskScore(**json.loads(f.read_text())) for t, f in files.items() if ecfg.cache and f.is_file()}
    cached = list(scores)
    missing = [t for t in ecfg.tasks if t not in scores]
    if missing:
        import lm_eval

        manager = task_manager(missing)
        log.info("lm-eval: %s on %s%s", missing, source, f" + {adapter}" if adapter else "")
        try:
            output = lm_eval.simple_evaluate(
                model=ecfg.backend, model_args=model_args(ecfg, source, revision, adapter, dtype, trust_remote_code,
                                                             tokenizer),
                tasks=missing, num_fewshot=ecfg.num_fewshot, limit=ecfg.limit, batch_size=ecfg.batch_size,
                device=device, apply_chat_template=ecfg.apply_chat_template, task_manager=manager,
                log_samples=False)
        except (ConnectionError, FileNotFoundError) as e:  # datasets' errors for a hub dataset it cannot reach
            raise KosovError(f"could not load the benchmark data of {missing}: {e}",
                             fix="check the network and HF_TOKEN; on a closed network, run `kosov mirror` for this "
                                 "suite on a connected machine and point kosov at the mirror folder") from None
        subtasks = {**output.get("group_subtasks", {}), **tag_members(manager, missing)}
        for task in missing:
            scores[task] = primary_score(task, output["results"], subtasks)
            if math.isnan(scores[task].value):  # no score to keep: the next run computes it again
                log.warning("lm-eval gave %s no %s score", task, "/".join(PRIMARY_METRICS))
                continue
            write_json(files[task], asdict(scores[task]))
    return {t: scores[t] for t in ecfg.tasks}, cached
