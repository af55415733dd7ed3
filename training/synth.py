"""`kosov synth`: a Korean training dataset from a generator, through the quality gates, with a data card.

    kosov synth experiment=synth-math output_dir=data/ko-math          # rule-based, no LLM
    kosov synth experiment=synth-distill-http synth.teacher.base_url=http://127.0.0.1:8000/v1 output_dir=data/d

Writes DIR/train.jsonl and DIR/train.parquet (and test.* for the math generator's held-out split), every row
with a `meta` record (source, generator, teacher model, license, seed), DIR/DATACARD.md with its histograms,
DIR/config.yaml and DIR/provenance.json. LLM-driven generators use the teacher of `synth.teacher`; an HTTP
teacher caches every finished row under DIR/teacher_cache, so a crashed or repeated job neither regenerates nor
re-pays for them.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from data_tools.chat_io import BadRowError, read_records, write_jsonl
from data_tools.datacard import datacard_markdown, histograms
from training.config import resolve_path, to_dict
from training.errors import KosovError
from training.run_dir import default_output_dir, provenance, redact, write_atomic, write_json
from training.schema import KosovConfig

log = logging.getLogger(__name__)
OUTPUT_MARKERS = ("train.jsonl", "DATACARD.md")


@dataclass
class SynthResult:
    out_dir: Path
    files: dict[str, int]  # file name -> rows
    gate_report: list[dict]


def build_teacher(cfg: KosovConfig, out: Path):
    """The teacher of `synth.teacher`: the recipe's model (+ adapter) in this process, vLLM, or an HTTP endpoint."""
    from data_tools.teacher_http import HTTPTeacher
    from data_tools.teachers import TeacherError, TransformersTeacher, VLLMTeacher

    t = cfg.synth.teacher
    try:
        if t.backend == "http":
            if not t.base_url:
                raise KosovError("synth.teacher.backend=http needs synth.teacher.base_url (e.g. http://host:8000/v1)")
            return HTTPTeacher(t.base_url, t.model or cfg.model.name_or_path, api_key_env=t.api_key_env,
                               concurrency=t.concurrency, timeout_s=t.timeout_s, max_retries=t.max_retries,
                               cache_dir=out / "teacher_cache")
        from training.models import (adapter_dir, check_adapter_base, check_remote_code, load_for_inference,
                                     load_tokenizer, model_source, resolve_device)

        source, is_local = model_source(cfg.model)
        check_remote_code(cfg.model, source, is_local)
        adapter = adapter_dir(t.adapter) if t.adapter else None
        if t.backend == "vllm":
            if adapter is not None:
                check_adapter_base(adapter, source, cfg.model.name_or_path)
            return VLLMTeacher(source, revision=cfg.model.revision, lora_path=str(adapter) if adapter else None)
        model = load_for_inference(cfg, source, resolve_device(cfg.device), adapter)
        name = cfg.model.name_or_path + (f"+{adapter}" if adapter else "")
        return TransformersTeacher(model, load_tokenizer(cfg.model, source), name, batch_size=t.batch_size)
    except TeacherError as e:
        raise KosovError(e.what, where=e.where, fix=e.fix) from None


def _read_inputs(cfg: KosovConfig) -> list[tuple[str, Any]]:
    """The generator's input rows or lines, each with where it came from ("path:line"): JSONL rows as dicts, other
    files as non-empty lines. A line that cannot be read fails naming its file and line."""
    items: list[tuple[str, Any]] = []
    for path in map(resolve_path, cfg.synth.inputs):
        if not path.is_file():
            raise KosovError(f"synth input file not found: {path}", fix="check synth.inputs")
        if path.suffix == ".jsonl":
            try:
                for where, record in read_records(path):
                    if isinstance(record, BadRowError):
                        raise record
                    items.append((where, record))
            except BadRowError as e:  # a bad line, or a file that is not JSON lines at all
                raise KosovError(f"{e.reason}: {e.detail}", where=e.where, fix=e.fix) from None
            continue
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            raise KosovError(f"not UTF-8: byte 0x{raw[e.start]:02x}", where=f"{path}:{line}",
                             fix="re-save the file as UTF-8 (e.g. iconv -f cp949 -t utf-8)") from None
        items += [(f"{path}:{n}", line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not items:
        raise KosovError(f"synth.generator={cfg.synth.generator} needs inputs", fix="set synth.inputs=[file, ...]")
    return items


def _prompt_text(where: str, item: Any) -> str:
    """An instruction from an input line or row (a plain string, a prompt row or a chat row's first user turn)."""
    if isinstance(item, str):
        return item
    turns = item.get("prompt") or item.get("messages") if isinstance(item, dict) else None
    if isinstance(turns, str) and turns.strip():
        return turns
    for turn in turns if isinstance(turns, list) else []:
        if isinstance(turn, dict) and turn.get("role") == "user" and isinstance(turn.get("content"), str):
            return turn["content"]
    raise KosovError("no instruction in this input row", where=where,
                     fix='give a line of text, {"prompt": "..."}, or a chat row whose messages have a user turn')


def generate_rows(cfg: KosovConfig, out: Path) -> list[dict]:
    """Rows from the configured generator (before the quality gates)."""
    s = cfg.synth
    if s.generator == "math":
        from data_tools.generators.math_ko import generate, to_grpo_row, to_sft_row

        problems = generate(s.n, seed=cfg.seed, families=s.families or None, difficulties=s.difficulties,
                            style=s.style, split=s.split)
        to_row = to_grpo_row if s.format == "grpo" else to_sft_row
        return [to_row(p, seed=cfg.seed) for p in problems]

    from data_tools.generators import instructions as gen

    teacher = build_teacher(cfg, out)
    t = s.teacher
    answer = dict(seed=cfg.seed, keep_thinking=t.keep_thinking, source=s.source, license_=s.license,
                  max_new_tokens=t.max_new_tokens, thinking=t.thinking == "on", system=s.system)
    if s.generator == "translate":
        rows = [item for _, item in _read_inputs(cfg)[: s.n]]
        return gen.translate(teacher, rows, seed=cfg.seed, source=s.source, license_=s.license)
    if s.generator == "magpie":
        if t.backend == "http":
            raise KosovError("Magpie gives the model a raw chat-template prefix, which a chat endpoint cannot take",
                             fix="set synth.teacher.backend=transformers or vllm")
        from training.models import load_tokenizer, model_source

        prefix = gen.magpie_prefix(load_tokenizer(cfg.model, model_source(cfg.model)[0]), s.system)
        prompts = gen.magpie(teacher, s.n, seed=cfg.seed, prefix=prefix)
    elif s.generator == "self_instruct":
        prompts = gen.self_instruct(teacher, [_prompt_text(*i) for i in _read_inputs(cfg)], s.n, seed=cfg.seed)
    elif s.generator == "evol_instruct":
        prompts = gen.evol_instruct(teacher, [_prompt_text(*i) for i in _read_inputs(cfg)][: s.n], seed=cfg.seed,
                                    rounds=s.evol_rounds, operations=s.evol_operations)
    else:  # distill
        prompts = [_prompt_text(*i) for i in _read_inputs(cfg)][: s.n]
    return gen.distill(teacher, prompts, generator=s.generator, **answer)


def _write(rows: list[dict], out: Path, name: str) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    write_jsonl(rows, out / f"{name}.jsonl")
    tmp = out / f".{name}.parquet.tmp"
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    tmp.replace(out / f"{name}.parquet")
    return len(rows)


def synth(cfg: KosovConfig) -> SynthResult:
    """Generate, gate and write one dataset with its card. User errors raise KosovError."""
    from data_tools.gates import build_gates, run_gates

    out = Path(cfg.output_dir or default_output_dir(cfg.name))
    if any((out / m).exists() for m in OUTPUT_MARKERS) and not cfg.overwrite:
        raise KosovError(f"{out} already holds a dataset", fix="pass overwrite=true or choose another output_dir")
    out.mkdir(parents=True, exist_ok=True)
    spec = dict(cfg.synth.gates)
    if cfg.synth.decontaminate_with:
        spec["decontaminate"] = {**spec.get("decontaminate", {}),
                                 "eval_files": [str(resolve_path(p)) for p in cfg.synth.decontaminate_with]}
    judge = None
    if "judge" in spec:  # the LLM judge scores rows through the same teacher interface
        from data_tools.gates.judge import teacher_score_fn

        if cfg.synth.teacher.backend == "none":
            raise KosovError("synth.gates.judge needs a teacher to score rows", fix="set synth.teacher.backend")
        judge = teacher_score_fn(build_teacher(cfg, out), seed=cfg.seed)
    try:
        gates = build_gates(spec, judge=judge)
    except ValueError as e:
        raise KosovError(f"synth.gates: {e}") from None
    rows = generate_rows(cfg, out)
    if not rows:
        raise KosovError(f"the {cfg.synth.generator} generator wrote no usable rows",
                         fix="the teacher's outputs were cut at max_new_tokens or were not Korean: raise "
                             "synth.teacher.max_new_tokens, or use a stronger teacher model")
    log.info("%s wrote %d rows; quality gates: %s", cfg.synth.generator, len(rows), list(spec) or "none")
    kept, report = run_gates(rows, gates)
    splits = {"train": kept}
    if cfg.synth.generator == "math" and cfg.synth.split is None:  # keep the held-out split apart
        splits = {name: [r for r in kept if r["meta"]["split"] == name] for name in ("train", "test")}
    files = {f"{name}.jsonl": _write(part, out, name) for name, part in splits.items() if part}
    if not files:
        raise KosovError("every row was removed by the quality gates", fix=f"see the gate report: {report}")
    settings = {"generator": cfg.synth.generator, "seed": cfg.seed, **redact(asdict(cfg.synth))}
    card = datacard_markdown(cfg.name, kept, report, settings, histograms(kept, out))
    write_atomic(out / "DATACARD.md", card)
    write_atomic(out / "config.yaml", yaml.safe_dump(redact(to_dict(cfg)), allow_unicode=True, sort_keys=False))
    write_json(out / "provenance.json", provenance(seed=cfg.seed, data={"written": files, "gates": report},
                                                   model={"teacher": cfg.synth.teacher.backend}))
    log.info("dataset in %s: %s", out, files)
    return SynthResult(out_dir=out, files=files, gate_report=report)
