"""DATACARD.md for a dataset kosov wrote: its files (rows, sha256), sources and licenses, the input files (sha256,
the licenses and sources their rows record), generator settings, rows removed by each quality gate and why, length
and Hangul-share histograms (PNG), and a few examples.

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


NOT_RECORDED = "not recorded"  # an input row whose meta records no license (or source)


def _sources(rows: list[dict]) -> list[str]:
    counts = Counter((str((r.get("meta") or {}).get("source", "unknown")), str((r.get("meta") or {}).get("license")),
                      str((r.get("meta") or {}).get("teacher_model")),
                      str((r.get("meta") or {}).get("input_source") or "–")) for r in rows)
    lines = ["| source | license | rows | teacher model | input source |", "|---|---|---|---|---|"]
    lines += [f"| {s} | {lic} | {n} | {t} | {i} |" for (s, lic, t, i), n in counts.most_common()]
    return lines


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) or "–"


def _files(files: dict[str, dict[str, Any]]) -> list[str]:
    """The files the dataset is, with their rows and sha256 (what a reader checks a download against)."""
    lines = ["| file | rows | sha256 |", "|---|---|---|"]
    return lines + [f"| {name} | {f['rows']} | {f['sha256']} |" for name, f in files.items()]


def _inputs(inputs: list[dict[str, Any]], default_license: str | None) -> list[str]:
    """The input files (synth.inputs) by name and sha256, with the licenses and sources their rows record."""
    lines = ["| file | rows | sha256 | licenses | sources |", "|---|---|---|---|---|"]
    lines += [f"| {f['file']} | {f['rows']} | {f['sha256']} | {_counts(f['licenses'])} | {_counts(f['sources'])} |"
              for f in inputs]
    lines += ["", "A row made from an input row carries that row's license (`meta.license`: a translation or an answer "
                  "of non-commercial data is non-commercial data) and source (`meta.input_source`); a self_instruct "
                  "row, written after seed tasks shown together, carries the seed tasks' license."]
    unrecorded = sum(f["licenses"].get(NOT_RECORDED, 0) for f in inputs)
    if unrecorded:
        lines += ["", f"Input license not recorded: {unrecorded} input rows record no license (`meta.license`), so "
                      f"the rows made from them carry `synth.license` ({default_license}), the license the recipe "
                      "declares for what it writes. kosov did not check it against those inputs' terms: do so before "
                      "you share or train on this dataset."]
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
                      images: dict[str, str], examples: int = 3, *, files: dict[str, dict[str, Any]] | None = None,
                      inputs: list[dict[str, Any]] | None = None) -> str:
    """The card's text. `files`: each written file's rows and sha256; `inputs`: each input file's name, rows, sha256
    and the licenses and sources its rows record (NOT_RECORDED where they record none)."""
    lengths = [len(row_text(r)) for r in rows]
    per_file = [f"{n}: {f['rows']}" for n, f in (files or {}).items() if n.endswith(".jsonl")]
    lines = [
        f"# {name}", "", f"{len(rows)} rows written by kosov" + (f" ({', '.join(per_file)})" if per_file else "")
        + (f", answer/prompt length {min(lengths)}–{max(lengths)} characters (median "
           f"{sorted(lengths)[len(lengths) // 2]})" if lengths else "") + ".", "",
        *(["## Files", "", *_files(files), ""] if files else []),
        "## Sources and licenses", "", *_sources(rows), "",
        *(["## Input files", "", *_inputs(inputs, settings.get("license")), ""] if inputs else []),
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
