"""lm-evaluation-harness as the engine: kosov's own local tasks, task-name checks, and a result cache.

Built-in tasks (kmmlu, kobest, haerae, click, hrm8k, ...) run unchanged; kosov's local tasks (the Korean mini
benchmark) are lm-eval task YAMLs written at run time next to the data they read. The hf backend scores the model
kosov loaded (hf_lm), the one kosov's own evals score; vLLM loads its own. Results are cached per (model, adapter
hash, task, settings) with each item's outcome (for a paired delta), so a re-run only computes what changed.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from data_tools.teachers import vllm_max_lora_rank
from training.config import resolve_path
from training.schema import EvalConfig
from training.errors import KosovError
from training.evaluation.identity import cache_file
from training.evaluation.thinking import (Unanswered, check_window, cut_off_thoughts_unanswered, gen_kwargs,
                                          template_opens_thinking, thinking_args, thinking_max_new_tokens)
from training.safe_write import write_atomic, write_json
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
    items: list[float] | None = None  # each item's outcome, ordered by task and doc (item_outcomes)
    unfinished_thinking: int | None = None  # completions cut off while thinking, graded unanswered; None: not counted
    thinking: str | None = None  # the thinking mode it ran in (lm_eval_jobs); None: no chat template


def _cached_score(file: Path) -> TaskScore:
    """A cached score, its fields as this version has them: a file with a field it lacks still reads."""
    known = {f.name for f in fields(TaskScore)}
    return TaskScore(**{k: v for k, v in json.loads(file.read_text()).items() if k in known})


def local_task_dir() -> Path:
    """Write kosov's local task YAMLs (with absolute data paths) into the cache; returns the folder. Each file is
    checked and written whole (write_atomic): a job killed while writing them left an empty folder, or a cut file,
    that every later run read as "unknown lm-eval task"."""
    tasks = {}
    for name, spec in LOCAL_TASKS.items():
        data = resolve_path(spec["data"])
        tasks[name] = {**spec["task"], "dataset_kwargs": {"data_files": {"test": str(data)}}}
    digest = hashlib.sha256(json.dumps(tasks, sort_keys=True).encode()).hexdigest()[:16]
    folder = cache_root() / "lm_eval_tasks" / digest
    for name, task in tasks.items():
        path, text = folder / f"{name}.yaml", yaml.safe_dump(task, allow_unicode=True)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            write_atomic(path, text)
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


def primary_score(task: str, results: dict[str, Any], group_subtasks: dict[str, list[str]],
                  samples: dict[str, list[dict]] | None = None, count_cut_off: bool = False) -> TaskScore:
    """The task's headline metric; for a group without its own aggregate, the mean of its subtasks. With lm-eval's
    logged `samples`, each item's outcome too (item_outcomes), and with `count_cut_off` (the run was graded under
    cut_off_thoughts_unanswered) how many of its completions were cut off while thinking."""
    entry = results.get(task, {})
    for metric in PRIMARY_METRICS:
        for key, value in entry.items():
            if key.split(",")[0] == metric and isinstance(value, (int, float)):
                stderr = entry.get(key.replace(metric, f"{metric}_stderr", 1))
                stderr = stderr if isinstance(stderr, (int, float)) and not math.isnan(stderr) else None
                found = [s for leaf in sorted(_leaves(task, group_subtasks)) for s in sorted(
                    (s for s in (samples or {}).get(leaf, []) if s.get("filter") == key.partition(",")[2]),
                    key=lambda s: s["doc_id"])]
                cut = sum(any(isinstance(r, Unanswered) for r in _flat(s.get("resps"))) for s in found)
                return TaskScore(task, metric, float(value), stderr, entry.get("sample_len"),
                                 item_outcomes([s.get(metric) for s in found], float(value)),
                                 cut if count_cut_off and found else None)
    subs = [primary_score(s, results, group_subtasks, samples, count_cut_off) for s in group_subtasks.get(task, [])]
    subs = [s for s in subs if not math.isnan(s.value)]
    if not subs:
        return TaskScore(task, "none", float("nan"), None, None)
    mean = sum(s.value for s in subs) / len(subs)
    items = None if any(s.items is None for s in subs) else [i for s in subs for i in s.items]
    cut = None if any(s.unfinished_thinking is None for s in subs) else sum(s.unfinished_thinking for s in subs)
    return TaskScore(task, subs[0].metric, mean, None, sum(s.n or 0 for s in subs) or None,
                     item_outcomes(items, mean) if items is not None else None, cut)


def _flat(value: Any) -> Iterator[Any]:
    """The responses of a logged sample (lm-eval nests them: one list per request, one entry per repeat)."""
    if isinstance(value, (list, tuple)):
        for v in value:
            yield from _flat(v)
    else:
        yield value


def _leaves(task: str, group_subtasks: dict[str, list[str]]) -> list[str]:
    """The tasks that hold the items of a task or group (lm-eval logs samples per task, not per group)."""
    subs = group_subtasks.get(task)
    return [leaf for sub in subs for leaf in _leaves(sub, group_subtasks)] if subs else [task]


def item_outcomes(values: list[Any], score: float) -> list[float] | None:
    """Per-item outcomes (lm-eval's logged samples) for a paired standard error of base vs adapted, who answer the
    same items; kept only where they average to the score itself. None where they do not: a corpus-level metric
    (f1, bleu: no number per item), or a group that weights its tasks equally, not its items."""
    if not values or not all(isinstance(v, (int, float)) for v in values):
        return None
    items = [float(v) for v in values]
    return items if math.isclose(sum(items) / len(items), score, rel_tol=1e-9, abs_tol=1e-9) else None


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
                "backend": ecfg.backend, "thinking": mode,
                "format": 2}  # the cached file's: 2 holds each item's outcome, which versions before it cannot read
    if ecfg.backend == "hf":  # on the model kosov loads (hf_lm): lm-eval's own loading differed (no 4-bit, resizes)
        settings["loaded_by"] = "kosov"
    if mode is not None:  # graded as kosov grades it since (cut_off_thoughts_unanswered, a think block the template
        settings["cut_off_thinking"] = "unanswered, template-opened too"  # opened too): not a score cached before
    limit = thinking_max_new_tokens(ecfg, mode)
    if limit is not None:  # thinking on: the limit kosov set over the task's own (off, None: the task's own, as before)
        settings["max_gen_toks"] = limit
    if task in LOCAL_TASKS:
        data = resolve_path(LOCAL_TASKS[task]["data"])
        settings["data_sha256"] = hashlib.sha256(data.read_bytes()).hexdigest()
    return settings


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
    """lm-eval's model_args for the vLLM backend, which loads the model itself (the hf backend scores the model kosov
    loaded: hf_lm). An adapter's rank sets max_lora_rank: vLLM's default of 16 refuses the recipes' r=32. No
    max_model_len: vLLM takes the model's whole context window, which the thinking limit (gen_kwargs) must fit
    (check_window; Qwen3: 40960 tokens)."""
    args: dict[str, Any] = {"pretrained": source, "dtype": dtype, "trust_remote_code": trust_remote_code}
    if revision:
        args["revision"] = revision
    if tokenizer:  # a saved tokenizer with the recipe's chat template (model.chat_template)
        args["tokenizer"] = tokenizer
    elif revision:  # else lm-eval loads the tokenizer (and renders the prompts with its template) from main
        args["tokenizer_revision"] = revision
    if adapter is not None:
        args.update(lora_local_path=str(adapter), enable_lora=True, max_lora_rank=vllm_max_lora_rank(adapter))
    return {**args, **thinking_args(mode)}


def hf_lm(ecfg: EvalConfig, model: Any, tokenizer: Any, mode: str | None) -> Any:
    """lm-eval's hf backend on a model already loaded, by kosov's loader (load_for_inference): the dtype,
    quantization and attention kosov's own evals score, the adapter on the base as it trained. lm-eval's own loading
    (pretrained=DIR,peft=ADAPTER) loads no 4-bit and resizes the embeddings of the adapted side alone where the
    config's vocab_size is not the tokenizer's length (every Qwen3): the two sides then differed in vocabulary."""
    from lm_eval.models.huggingface import HFLM

    # HFLM ties the weights of a model it is given again. The loader tied them, and transformers cannot tie them
    # again through PEFT's trained copy of tied embeddings (modules_to_save=[embed_tokens], ensure_weight_tying, as
    # kosov trains a tied Qwen3): KeyError "attribute 'weight' already exists". So it is not asked to.
    model.tie_weights = lambda *args, **kwargs: None
    try:
        return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=ecfg.batch_size, **thinking_args(mode))
    finally:
        del model.tie_weights


def evaluate_live(ecfg: EvalConfig, model: Any, tokenizer: Any) -> dict[str, TaskScore]:
    """The suite's lm-eval tasks on a model already in memory (eval during training; no cache)."""
    import lm_eval

    if not ecfg.tasks:
        return {}
    manager = task_manager(ecfg.tasks)
    jobs = lm_eval_jobs(ecfg, manager)
    scores = {}
    for mode in dict.fromkeys(m for _, m in jobs):
        tasks = [t for t, m in jobs if m == mode]
        lm = hf_lm(ecfg, model, tokenizer, mode)
        check_window(ecfg, mode, lm.max_length, "the model")
        with cut_off_thoughts_unanswered(mode, template_opens_thinking(tokenizer, mode)):
            output = lm_eval.simple_evaluate(model=lm, tasks=tasks, num_fewshot=ecfg.num_fewshot, limit=ecfg.limit,
                                             apply_chat_template=ecfg.apply_chat_template, task_manager=manager,
                                             gen_kwargs=gen_kwargs(ecfg, mode), log_samples=False)
        subtasks = {**output.get("group_subtasks", {}), **tag_members(manager, tasks)}
        scores.update({task_label(t, mode, jobs): replace(primary_score(t, output["results"], subtasks), thinking=mode)
                       for t in tasks})
    return scores


def run_tasks(ecfg: EvalConfig, *, identity: dict[str, Any], label: str,
              engine: Callable[[str | None], dict[str, Any]], tokenizer: Callable[[], Any]
              ) -> tuple[dict[str, TaskScore], list[str]]:
    """Scores of ecfg.tasks for one model (base or base + adapter: `identity` from model_identity, `label` its name
    in the log); returns (scores, tasks read from cache). `engine(mode)`: simple_evaluate's model arguments (an
    hf_lm, or vLLM's model_args), asked for only when a score is not cached; `tokenizer()`: the tokenizer whose
    chat template renders the prompts (template_opens_thinking)."""
    if not ecfg.tasks:
        return {}, []
    manager = task_manager(ecfg.tasks) if needs_task_types(ecfg) else None
    jobs = lm_eval_jobs(ecfg, manager)
    files = {(t, mode): cache_file(identity, t, settings_of(ecfg, t, mode)) for t, mode in jobs}
    scores = {job: _cached_score(f) for job, f in files.items() if ecfg.cache and f.is_file()}
    cached = [task_label(t, mode, jobs) for t, mode in scores]
    for mode in dict.fromkeys(m for _, m in jobs):
        missing = [t for t, m in jobs if m == mode and (t, m) not in scores]
        if not missing:
            continue
        manager = manager or task_manager(ecfg.tasks)
        log.info("lm-eval: %s on %s%s", missing, label, f", thinking {mode}" if mode is not None else "")
        opens = mode is not None and template_opens_thinking(tokenizer(), mode)
        # on the hf backend each task runs in a call of its own and is cached as it finishes: a job killed in the
        # fourth task of ko-core keeps the first three. The model is kosov's, loaded once; each call wraps it anew
        # (hf_lm: cheap), so eval.batch_size=auto sizes its batches on that task's own prompts. vLLM's engine starts
        # vLLM itself on every call (minutes, and its memory is not freed in between): one call per mode there, and
        # a job killed in it keeps nothing of that call
        for i, batch in enumerate([[t] for t in missing] if ecfg.backend == "hf" else [missing]):
            model = engine(mode)
            if i == 0 and not isinstance(model["model"], str):  # an hf_lm: its window, once a mode (vLLM's: engine)
                check_window(ecfg, mode, getattr(model["model"], "max_length", None), label)
            output = _simple_evaluate(ecfg, model, batch, mode, opens, manager)
            subtasks = {**output.get("group_subtasks", {}), **tag_members(manager, batch)}
            for task in batch:
                score = scores[(task, mode)] = primary_score(task, output["results"], subtasks, output.get("samples"),
                                                             count_cut_off=mode == "on" or opens)
                if math.isnan(score.value):  # no score to keep: the next run computes it again
                    given = sorted({k.split(",")[0] for k, v in output["results"].get(task, {}).items()
                                    if isinstance(v, (int, float)) and "_stderr" not in k})
                    log.warning("lm-eval gave %s no %s score (it gave %s): the report shows it as –, outside the "
                                "suite average", task, "/".join(PRIMARY_METRICS), ", ".join(given) or "nothing")
                    continue
                write_json(files[(task, mode)], asdict(score))
    return {task_label(t, mode, jobs): replace(scores[(t, mode)], thinking=mode) for t, mode in jobs}, cached


def _simple_evaluate(ecfg: EvalConfig, model: dict[str, Any], tasks: list[str], mode: str | None, opens: bool,
                     manager: Any) -> dict[str, Any]:
    """lm-eval's simple_evaluate of `tasks` in thinking mode `mode` (`opens`: template_opens_thinking), with each
    item's outcome logged; a benchmark whose data cannot be read is a KosovError that says what to do."""
    import lm_eval

    try:
        with cut_off_thoughts_unanswered(mode, opens):
            return lm_eval.simple_evaluate(
                **model, tasks=tasks, num_fewshot=ecfg.num_fewshot, limit=ecfg.limit,
                apply_chat_template=ecfg.apply_chat_template, task_manager=manager,
                gen_kwargs=gen_kwargs(ecfg, mode), log_samples=True)
    except (ConnectionError, FileNotFoundError) as e:  # datasets' errors for a hub dataset it cannot reach
        raise KosovError(f"could not load the benchmark data of {tasks}: {e}",
                         fix="check the network and HF_TOKEN; on a closed network, run `kosov mirror` for this "
                             "suite on a connected machine and point kosov at the mirror folder") from None
