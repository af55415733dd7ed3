"""The evaluation report: what an adaptation gained in Korean and what it cost elsewhere.

    DIR/report.json   every score: base, adapted, delta, stderr, per task and suite average (one per thinking mode:
                      suite_average: thinking off or none, or on where the suite ran with thinking on alone;
                      suite_average_thinking_on beside it where it ran both); the delta's standard error
                      paired over the items both sides answered, where each item's outcome is known
    DIR/report.md     the same as a Markdown table (kosov publish puts it into the model card)
    DIR/report.png    a bar chart, base vs adapted
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from training.safe_write import write_atomic, write_json


def _number(value: Any) -> float | None:
    """A score, or None for none (lm-eval's NaN: strict JSON has no NaN, and a card must not publish one)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def paired_stderr(base: list[float], adapted: list[float]) -> float | None:
    """The standard error of the mean per-item difference (adapted - base) over the same items. Base and adapted
    answer the same items, so their errors are correlated: sqrt(se_base² + se_adapted²) treats them as independent
    samples and gives a model scored against itself ± 0.05 on 100 items, where this gives 0."""
    if len(base) != len(adapted) or len(base) < 2:
        return None
    diffs = [a - b for b, a in zip(base, adapted)]
    mean = sum(diffs) / len(diffs)
    return math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1) / len(diffs))


def _row(name: str, base: dict | None, adapted: dict | None, kind: str) -> dict[str, Any]:
    ref = base or adapted or {}
    row = {"task": name, "kind": kind, "metric": ref.get("metric"), "higher_is_better": ref.get("higher_is_better", True),
           "n": ref.get("n"), "base": None, "base_stderr": None, "adapted": None, "adapted_stderr": None,
           "delta": None, "delta_stderr": None, "delta_stderr_kind": None,
           "base_unfinished_thinking": None, "adapted_unfinished_thinking": None,
           "thinking": ref.get("thinking")}  # lm-eval's thinking mode (None: no chat template), for the averages
    for side, score in (("base", base), ("adapted", adapted)):
        if score is not None:
            row[side], row[f"{side}_stderr"] = _number(score.get("value")), _number(score.get("stderr"))
            # answers cut off while thinking (the token limit reached before </think>), graded unanswered; None:
            # not counted (likelihood tasks, thinking off in lm-eval, a score cached before kosov counted them)
            row[f"{side}_unfinished_thinking"] = score.get("unfinished_thinking")
    if row["base"] is not None and row["adapted"] is not None:
        row["delta"] = row["adapted"] - row["base"]
        paired = paired_stderr(base.get("items") or [], adapted.get("items") or [])  # type: ignore[union-attr]
        if paired is not None:
            row["delta_stderr"], row["delta_stderr_kind"] = paired, "paired"
        elif row["base_stderr"] is not None and row["adapted_stderr"] is not None:  # no per-item outcomes
            row["delta_stderr"] = math.sqrt(row["base_stderr"] ** 2 + row["adapted_stderr"] ** 2)
            row["delta_stderr_kind"] = "unpaired"
    return row


def build_report(*, suite: str, model: dict[str, Any], adapter: str | None, harness: dict[str, dict],
                 generative: dict[str, dict], cached: list[str], adapter_digest: str | None = None,
                 settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """harness / generative: {"base": {task: score dict}, "adapted": {...}} (adapted empty without an adapter).
    settings: what the scores were computed with (limit, few-shot, thinking, dtype ...), kept with them."""
    rows = []
    for kind, scores in (("lm-eval", harness), ("kosov", generative)):
        names = list(dict.fromkeys([*scores.get("base", {}), *scores.get("adapted", {})]))
        rows += [_row(n, scores.get("base", {}).get(n), scores.get("adapted", {}).get(n), kind) for n in names]
    lm_eval = [r for r in rows if r["kind"] == "lm-eval"]
    if adapter is not None:  # both averages over the same tasks: those scored on both sides
        lm_eval = [r for r in lm_eval if r["base"] is not None and r["adapted"] is not None]
    # one average per thinking mode, each task once: hrm8k[off] and hrm8k[on] are not two tasks of the suite. Tasks
    # run in no mode (no chat template) or in "off" (likelihood tasks in a thinking suite too) make the headline
    # one; those run with thinking on their own, where there are any. A suite run with thinking on alone has that
    # one as its headline (suite_average, labelled "on"), not an empty "off" average beside it
    modes = {r.get("thinking") for r in lm_eval}
    thinking_on = [r for r in lm_eval if r.get("thinking") == "on"]
    if thinking_on and len(thinking_on) == len(lm_eval):
        averages = {"suite_average": _average(thinking_on, "on")}
    else:
        averages = {"suite_average": _average([r for r in lm_eval if r.get("thinking") != "on"],
                                              "off" if modes - {None} else None)}
        if thinking_on:
            averages["suite_average_thinking_on"] = _average(thinking_on, "on")
    return {"suite": suite, "model": model, "adapter": adapter, "adapter_digest": adapter_digest,
            "settings": settings or {}, "rows": rows, **averages, "cached_tasks": cached}


def _average(rows: list[dict[str, Any]], thinking: str | None) -> dict[str, Any]:
    """Base and adapted averaged over `rows` (lm-eval tasks scored in thinking mode `thinking`; None: no mode)."""
    average: dict[str, Any] = {}
    for side in ("base", "adapted"):
        values = [r[side] for r in rows if r[side] is not None and not math.isnan(r[side])]
        average[side] = sum(values) / len(values) if values else None
    average["delta"] = (average["adapted"] - average["base"]
                        if average["base"] is not None and average["adapted"] is not None else None)
    return {**average, "thinking": thinking}


def _engines(settings: dict[str, Any]) -> list[str]:
    """Which engine applies what: kosov's own evals always prompt through the chat template and score the model
    kosov loads; lm-eval's tasks use the template only with eval.apply_chat_template, and with the vLLM backend
    load their own model (vLLM has no 4-bit bitsandbytes: the recipe's dtype)."""
    template = "applied" if settings.get("apply_chat_template") else "not applied"
    weights = f"{settings.get('dtype')}" + (f", {settings['quantization']}" if settings.get("quantization") else "")
    if settings.get("backend") == "vllm":
        loaded = f"lm-eval: vLLM, {settings.get('dtype')}; kosov's evals: transformers, {weights}"
    elif settings.get("loaded_by") != "kosov":  # a report from before lm-eval scored kosov's model (publish reads it)
        loaded = (f"lm-eval (hf) loaded the checkpoint itself, {settings.get('dtype')}; kosov's evals: transformers, "
                  f"{weights}")
    else:
        loaded = f"lm-eval (hf) and kosov's evals: one model loaded by kosov, {weights}"
    return [f"chat template: lm-eval tasks {template}, kosov's evals applied", f"model: {loaded}"]


def _limits(settings: dict[str, Any]) -> list[str]:
    """The generation limit with thinking on (eval.thinking_max_new_tokens): a thought cut off at it has no answer."""
    if "on" not in (settings.get("thinking") or []):
        return []
    # what it applied to (evaluate.report_settings): lm-eval's tasks without chat templates run with no thinking
    # mode, on their own limit; a report from before the scope was kept: both
    scope = settings.get("thinking_limit_scope", ["lm-eval", "kosov"])
    if not scope:
        return []
    limit = settings.get("thinking_max_new_tokens")
    if limit is None:  # the setting null, or a report from before it: each task's and eval's own
        own = {"lm-eval": "each lm-eval task's own max_gen_toks", "kosov": "each kosov eval's own max_new_tokens"}
        return ["generation limit with thinking on: " + ", ".join(own[s] for s in scope)]
    names = {"lm-eval": "lm-eval's generating tasks", "kosov": "kosov's evals"}
    only = " only" if len(scope) == 1 else ""
    return [f"generation limit with thinking on: {limit} new tokens ({' and '.join(names[s] for s in scope)}{only}; "
            "off: each one's own)"]


def cut_off_line(rows: list[dict[str, Any]]) -> list[str]:
    """How many answers were cut off while thinking, per task and side, where they were counted."""
    parts = []
    for r in rows:
        counts = {side: r.get(f"{side}_unfinished_thinking") for side in ("base", "adapted")}
        if all(c is None for c in counts.values()):
            continue
        if r["kind"] == "kosov" and not r["task"].endswith("[on]") and not any(counts.values()):
            continue  # thinking off, nothing cut off: nothing to say
        n = f" of {r['n']}" if r.get("n") else ""
        parts.append(f"{r['task']} " + ", ".join(f"{side} {c}{n}" for side, c in counts.items() if c is not None))
    if not parts:
        return []
    return ["", "Cut off while thinking (the token limit reached before `</think>`; graded as unanswered): "
            + "; ".join(parts) + "."]


def settings_line(settings: dict[str, Any]) -> list[str]:
    """The report's settings in words, and a warning when the scores are of a subset (eval.limit)."""
    if not settings:
        return []
    shots = settings.get("num_fewshot")
    words = [f"few-shot: {'each task default' if shots is None else shots}",
             f"thinking: {', '.join(settings.get('thinking') or []) or '-'}", *_limits(settings),
             *_engines(settings), f"device: {settings.get('device')}"]
    lines = ["Settings: " + "; ".join(words) + ".", ""]
    if settings.get("limit") is not None:
        lines += [f"**Subset:** `eval.limit={settings['limit']}` per task: not comparable with scores on the full "
                  "benchmarks.", ""]
    limited = {name: own["limit"] for name, own in settings.get("kosov_evals", {}).items() if own.get("limit")}
    if limited:
        lines += ["kosov's own evals on part of their prompts: "
                  + ", ".join(f"{name} {limit}" for name, limit in limited.items()) + " (`limit`).", ""]
    return lines


UNPAIRED = "†"  # marks a delta's standard error computed as if the two sides were independent samples
UNPAIRED_NOTE = (f"{UNPAIRED} unpaired standard error, sqrt(se_base² + se_adapted²): per-item outcomes were not "
                 "available (a corpus metric, a group weighting its tasks equally, a score cached before), so it "
                 "ignores that both sides answered the same items; usually an upper bound. The others are paired "
                 "over the items.")


def _fmt(value: float | None, stderr: float | None = None, signed: bool = False, mark: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = f"{value:+.4f}" if signed else f"{value:.4f}"
    return f"{text} ± {stderr:.4f}{mark}" if stderr is not None else text


def to_markdown(report: dict[str, Any]) -> str:
    adapter = report["adapter"]
    lines = [f"### Evaluation: {report['suite']}", "",
             f"Base: `{report['model']['name_or_path']}`" + (f"; adapter: `{adapter}`" if adapter else ""), "",
             *settings_line(report.get("settings", {})),
             "| task | metric | n | base | adapted | delta |", "|---|---|---|---|---|---|"]
    for r in report["rows"]:
        better = "" if r["higher_is_better"] else " (lower is better)"
        lines.append(f"| {r['task']} | {r['metric']}{better} | {r.get('n') or '–'} | "
                     f"{_fmt(r['base'], r['base_stderr'])} | {_fmt(r['adapted'], r['adapted_stderr'])} | "
                     f"{_fmt(r['delta'], r.get('delta_stderr'), signed=True, mark=_mark(r))} |")
    for key in ("suite_average", "suite_average_thinking_on"):
        avg = report.get(key)
        if avg is None:
            continue
        over = ("lm-eval tasks" + (" scored on both sides" if adapter else "")
                + (f", thinking {avg['thinking']}" if avg.get("thinking") else ""))
        lines.append(f"| **{report['suite']} average** ({over}) | | | "
                     f"{_fmt(avg['base'])} | {_fmt(avg['adapted'])} | {_fmt(avg['delta'], signed=True)} |")
    lines += cut_off_line(report["rows"])
    if any(_mark(r) for r in report["rows"]):
        lines += ["", UNPAIRED_NOTE]
    return "\n".join(lines) + "\n"


def _mark(row: dict[str, Any]) -> str:
    """† for an unpaired delta standard error; a report written before kosov paired them has no kind: unpaired."""
    return UNPAIRED if row.get("delta_stderr_kind") != "paired" and row.get("delta_stderr") is not None else ""


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["rows"] if r["base"] is not None or r["adapted"] is not None]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(rows) + 1), 3.6))
    xs = range(len(rows))
    for offset, side, color in ((-0.2, "base", "#9aa5b1"), (0.2, "adapted", "#2f6fdf")):
        # a score lm-eval did not give is no bar (NaN) and says n/a: a bar at 0 reads as a score of 0
        values = [r[side] if r[side] is not None else math.nan for r in rows]
        errors = [(r[f"{side}_stderr"] or 0.0) if r[side] is not None else 0.0 for r in rows]
        ax.bar([x + offset for x in xs], values, width=0.4, yerr=errors, color=color, label=side, capsize=2)
        for x, r in zip(xs, rows):
            if r[side] is None:
                ax.annotate("n/a", (x + offset, 0), ha="center", va="bottom", fontsize=7, color=color)
    ax.set_xticks(list(xs), [r["task"] for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("score")
    ax.set_title(f"{report['suite']}: base vs adapted")
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def write_report(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md", "png": out_dir / "report.png"}
    write_json(paths["json"], report)
    write_atomic(paths["md"], to_markdown(report))
    plot(report, paths["png"])
    return paths


def log_to_tracker(run: Any, report: dict[str, Any], png: Path) -> None:
    """A wandb table of the report and the chart, when a wandb run is open."""
    if run is None:
        return
    import wandb

    columns = ["task", "metric", "base", "adapted", "delta", "base_stderr", "adapted_stderr"]
    table = wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in report["rows"]])
    run.log({f"eval/{report['suite']}/report": table, f"eval/{report['suite']}/chart": wandb.Image(str(png))})
    run.summary.update({f"eval/{r['task']}/{side}": r[side] for r in report["rows"] for side in ("base", "adapted")
                        if r[side] is not None})
