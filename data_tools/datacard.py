"""DATACARD.md for a dataset kosov wrote: sources and licenses, generator settings, rows removed by each quality
gate and why, length and Hangul-share histograms (PNG), and a few examples.

    >>> rows = [{"messages": [{"role": "user", "content": "수도는?"}, {"role": "assistant", "content": "서울"}],
    ...          "meta": {"source": "demo", "license": "Apache-2.0"}}]
    >>> "| demo | Apache-2.0 | 1 |" in datacard_markdown("demo", rows, [], {"generator": "math"}, {})
    True
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from data_tools.text import hangul_share


def row_text(row: dict[str, Any]) -> str:
    """What a reader of the dataset reads: the answers of an SFT row, the prompt of a prompt row."""
    if "messages" in row:
        return "\n".join(m["content"] for m in row["messages"] if m["role"] == "assistant")
    return "\n".join(m["content"] for m in row.get("prompt", []))


def _sources(rows: list[dict]) -> list[str]:
    counts = Counter((str((r.get("meta") or {}).get("source", "unknown")), str((r.get("meta") or {}).get("license")),
                      str((r.get("meta") or {}).get("teacher_model"))) for r in rows)
    lines = ["| source | license | rows | teacher model |", "|---|---|---|---|"]
    lines += [f"| {s} | {lic} | {n} | {t} |" for (s, lic, t), n in counts.most_common()]
    return lines


def _gates(report: list[dict]) -> list[str]:
    if not report:
        return ["No quality gates ran."]
    lines = ["| gate | rows in | rows out | removed (why) | changed |", "|---|---|---|---|---|"]
    for r in report:
        removed = ", ".join(f"{k}: {v}" for k, v in r["removed"].items()) or "–"
        changed = ", ".join(f"{k}: {v}" for k, v in r.get("changed", {}).items()) or "–"
        lines.append(f"| {r['gate']} | {r['in']} | {r['out']} | {removed} | {changed} |")
    return lines


def datacard_markdown(name: str, rows: list[dict], gate_report: list[dict], settings: dict[str, Any],
                      images: dict[str, str], examples: int = 3) -> str:
    lengths = [len(row_text(r)) for r in rows]
    lines = [
        f"# {name}", "", f"{len(rows)} rows written by kosov"
        + (f", answer/prompt length {min(lengths)}–{max(lengths)} characters (median "
           f"{sorted(lengths)[len(lengths) // 2]})" if lengths else "") + ".", "",
        "## Sources and licenses", "", *_sources(rows), "",
        "## Generator settings", "", "```yaml", yaml.safe_dump(settings, allow_unicode=True, sort_keys=False).rstrip(),
        "```", "", "## Quality gates", "", *_gates(gate_report), "",
        "## Distributions", "", *[f"![{k}]({v})" for k, v in images.items()], "",
        "## Examples", "",
    ]
    for row in rows[:examples]:
        shown = {k: v for k, v in row.items() if k != "meta"}
        lines += ["```json", json.dumps(shown, ensure_ascii=False, indent=1)[:1500], "```", ""]
    return "\n".join(lines)


def histograms(rows: list[dict], out_dir: Path) -> dict[str, str]:
    """length.png and hangul_share.png in out_dir; returns {title: file name}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    texts = [row_text(r) for r in rows]
    plots = {"length (characters)": ("length.png", [len(t) for t in texts]),
             "Hangul share of letters": ("hangul_share.png", [hangul_share(t) for t in texts])}
    images = {}
    for title, (file, values) in plots.items():
        fig, ax = plt.subplots(figsize=(4.5, 2.8))
        ax.hist(values, bins=30, color="#2f6fdf")
        ax.set_title(title)
        ax.set_ylabel("rows")
        fig.tight_layout()
        fig.savefig(out_dir / file, dpi=110)
        plt.close(fig)
        images[title] = file
    return images
