"""The input rows of kosov synth's LLM-driven generators (distill, translate, self_instruct, evol_instruct) and their
lineage: a row made from an input row carries that row's license (a translation or an answer of non-commercial data
is non-commercial data) and names its source (meta.input_source), so `kosov publish` derives the release's license
from it. An input under a license kosov cannot combine (No-Derivatives, copyleft, unknown terms), or a
non-commercial, ShareAlike or CC BY one that an explicit synth.license contradicts, stops the job before the teacher
is asked anything; an explicit synth.license over a permissive input (Apache-2.0, MIT, BSD, CC0; a teacher's terms)
is the rows' license."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

from data_tools.chat_io import SUFFIXES, BadRowError, file_sha256, read_records
from data_tools.datacard import NOT_RECORDED
from data_tools.text import nfc
from training.config import resolve_path
from training.errors import KosovError
from training.model_card import combinable, is_noncommercial, is_sharealike
from training.redaction import names_only
from training.schema import KosovConfig, SynthConfig

# The generators that read synth.inputs (math and magpie write rows from nothing but the recipe).
INPUT_GENERATORS = ("distill", "translate", "self_instruct", "evol_instruct")
LINEAGE = ("license", "input_license", "input_source")  # the meta a row made from an input row carries


class Input(NamedTuple):
    where: str  # "path:line" (or "path item N", "path row N")
    item: Any  # the line of text or the row
    lineage: dict  # what a row made from it carries in its meta (LINEAGE)


def input_files(cfg: KosovConfig) -> list[tuple[Path, list[Input]]]:
    """Each input file with its rows or lines, each with where it came from and its lineage: JSONL, JSON (an array or
    JSON lines) and Parquet rows as dicts, other files as non-empty lines. A line that cannot be read fails naming
    its file and line, a row under a license kosov cannot carry over (_lineage) naming its file, line and license."""
    files = []
    for path in map(resolve_path, cfg.synth.inputs):
        if not path.is_file():
            raise KosovError(f"synth input file not found: {path}", fix="check synth.inputs")
        items: list[tuple[str, Any]] = []
        if path.suffix in SUFFIXES:  # rows, as training reads them (an Alpaca .json array is not text lines)
            try:
                for where, record in read_records(path):
                    if isinstance(record, BadRowError):
                        raise record
                    items.append((where, record))
            except BadRowError as e:  # a bad line, or a file that is not JSON lines at all
                raise KosovError(f"{e.reason}: {e.detail}", where=e.where, fix=e.fix) from None
        else:
            raw = path.read_bytes()
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError as e:
                line = raw[: e.start].count(b"\n") + 1
                raise KosovError(f"not UTF-8: byte 0x{raw[e.start]:02x}", where=f"{path}:{line}",
                                 fix="re-save the file as UTF-8 (e.g. iconv -f cp949 -t utf-8)") from None
            items = [(f"{path}:{n}", nfc(line.strip())) for n, line in enumerate(text.splitlines(), 1)
                     if line.strip()]
        files.append((path, [Input(where, item, _lineage(cfg, path, where, item)) for where, item in items]))
    return files


def read_inputs(cfg: KosovConfig) -> list[Input]:
    """The generator's input rows or lines (input_files), all files in order."""
    items = [item for _, inputs in input_files(cfg) for item in inputs]
    if not items:
        raise KosovError(f"synth.generator={cfg.synth.generator} needs inputs", fix="set synth.inputs=[file, ...]")
    return items


def _recorded(meta: Any, key: str) -> str | None:
    """meta[key] of an input row when it records one: null, "", "unknown" and "none" record nothing (publish reads
    them as a row without a license)."""
    value = meta.get(key) if isinstance(meta, dict) else None
    return value.strip() if isinstance(value, str) and value.strip().lower() not in ("", "unknown", "none") else None


def _declared(cfg: KosovConfig) -> bool:
    """Whether the recipe sets synth.license to something other than its default (Apache-2.0, which the shipped
    recipes name too): a declaration an input's own license must not contradict."""
    return cfg.synth.license.lower() != SynthConfig.license.lower()


def _binds(license_: str) -> bool:
    """Whether a license's terms follow what is made of the row, so that no synth.license may replace it:
    non-commercial, ShareAlike, or Creative Commons Attribution (its credit: publish's attribution section reads the
    rows' license)."""
    return is_noncommercial(license_) or is_sharealike(license_) or license_.lower().startswith("cc-by")


def _lineage(cfg: KosovConfig, path: Path, where: str, item: Any) -> dict:
    """The meta a row made from this input row carries: the input's license when it records one (a translation or an
    answer of non-commercial data is non-commercial data), else synth.license; and its source (the file's name when
    the row names none, which a Creative Commons Attribution row must: its source is the release's credit). Refuses
    a license publish could not carry on, or one that contradicts synth.license."""
    meta = item.get("meta") if isinstance(item, dict) else None
    license_, source = _recorded(meta, "license"), names_only(_recorded(meta, "source"))  # a path: its name only
    if license_ is not None and not combinable(license_):
        nd = "nd" in license_.lower().split("-")
        raise KosovError(
            f"input file {path.name} holds a row licensed {license_}, which kosov cannot carry into the data it makes"
            + (": No-Derivatives terms forbid sharing a translation, an answer or any other adaptation of it" if nd
               else ": kosov does not combine copyleft, proprietary or unknown terms with others"), where=where,
            fix=f"leave the rows licensed {license_} out of {path.name} (synth.inputs); kosov publish would refuse "
                "them too")
    if license_ is not None and _declared(cfg) and license_.lower() != cfg.synth.license.lower() \
            and _binds(license_):  # NC, SA or attribution terms bind what is made of the row
        raise KosovError(
            f"input file {path.name} holds a row licensed {license_}, but synth.license={cfg.synth.license}: a row "
            f"made from it keeps its license ({license_}), which the recipe's license contradicts", where=where,
            fix=f"set synth.license={license_} (or leave it at its default, {SynthConfig.license}: rows made from an "
                "input row then carry that row's license), or leave those rows out of synth.inputs")
    if license_ is not None and license_.lower().startswith("cc-by") and not source:
        raise KosovError(
            f"input file {path.name} holds a row licensed {license_} that names no source: a release trained on what "
            "is made of it must credit the data's creators, and the file's name credits no one", where=where,
            fix="add meta.source to the row, naming the data's creators or origin (a hub dataset id, a URL, an "
                "author), as the card's Attribution section will show it")
    # An explicit synth.license over a permissive input (Apache-2.0, MIT, BSD, CC0; a teacher's terms, say) is the
    # rows' license; the input's stays in input_license and on the card.
    chosen = cfg.synth.license if license_ is None or _declared(cfg) else license_
    return {"license": chosen, "input_license": license_, "input_source": source or path.name}


def shared_lineage(cfg: KosovConfig, inputs: list[Input]) -> dict:
    """self_instruct's lineage: each request shows several seed tasks, so every row it writes may come from any of
    them. It carries the license the seed tasks record (synth.license when none does), and refuses seed tasks under
    different licenses, which no one row's license covers."""
    by_license: dict[str, Input] = {}
    for i in inputs:
        if i.lineage["input_license"]:
            by_license.setdefault(i.lineage["input_license"].lower(), i)
    if len(by_license) > 1:
        named = ", ".join(f"{i.lineage['input_license']} ({i.where})" for i in by_license.values())
        raise KosovError(f"self_instruct shows several seed tasks in each request, and synth.inputs hold seed tasks "
                         f"under different licenses: {named}; no one license covers the rows it would write",
                         fix="give seed tasks under one license (a job for each license), or leave out the seed "
                             "tasks whose license does not fit")
    if not by_license:
        return {"license": cfg.synth.license, "input_license": None,
                "input_source": ", ".join(sorted({i.lineage["input_source"] for i in inputs}))}
    license_ = next(iter(by_license.values())).lineage["input_license"]
    return {"license": license_, "input_license": license_,
            "input_source": ", ".join(sorted({i.lineage["input_source"] for i in inputs
                                              if i.lineage["input_license"]}))}


def input_summary(cfg: KosovConfig) -> list[dict[str, Any]]:
    """The input files for the card and provenance: name (not this machine's path), rows, sha256, and the licenses
    and sources their rows record. Checks every row's license (_lineage) before the teacher is asked anything."""
    if cfg.synth.generator not in INPUT_GENERATORS:
        return []
    files = input_files(cfg)
    if cfg.synth.generator == "self_instruct":
        shared_lineage(cfg, [i for _, inputs in files for i in inputs])
    return [{"file": path.name, "rows": len(inputs), "sha256": file_sha256(path),
             "licenses": dict(Counter(i.lineage["input_license"] or NOT_RECORDED for i in inputs)),
             "sources": dict(Counter(names_only(_recorded(i.item.get("meta") if isinstance(i.item, dict) else None,
                                                          "source")) or NOT_RECORDED for i in inputs))}
            for path, inputs in files]
