"""`kosov synth`: a Korean training dataset from a generator, through the quality gates, with a data card.

    kosov synth experiment=synth-math output_dir=data/ko-math          # rule-based, no LLM
    kosov synth experiment=synth-self-instruct-http synth.teacher.base_url=http://127.0.0.1:8000/v1 synth.teacher.model=M output_dir=data/d

Writes DIR/train.jsonl and DIR/train.parquet (test.* for synth.split=test, and both for the math generator's
held-out split), every row with a `meta` record (source, generator, teacher model, license, seed),
DIR/DATACARD.md with its histograms, DIR/config.yaml and DIR/provenance.json (the card and provenance give each
written file's rows and sha256, and each input file's sha256 and the licenses its rows record; all three go out with
the dataset, so they name local files and folders by name, not by this machine's paths). A row made from an
input row keeps that row's license (a translation or an answer of non-commercial data is non-commercial data) and
names its source (meta.input_source), so `kosov publish` derives the release's license from it; an input under a
license kosov cannot combine (No-Derivatives, copyleft, unknown terms), or one that contradicts an explicit
synth.license, stops the job before the teacher is asked anything. The dataset is written into a staging folder
(.DIR.staging-*) and swapped into place whole, so overwrite=true leaves nothing of the previous dataset behind.
LLM-driven generators use the teacher of `synth.teacher` (built once, and shared with the judge gate); an HTTP
teacher caches every finished row under DIR/teacher_cache, so a crashed or repeated job neither regenerates nor
re-pays for them. A job holds DIR's lock (.DIR.kosov.lock beside it) while it runs, so a second job writing DIR is
refused, and what a killed job left beside DIR is put right by the next one: the teacher cache it had moved into its
staging folder comes back, its staging folders go.
"""

from __future__ import annotations

import logging
import re
import shutil
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from data_tools.chat_io import BadRowError, chat_row, file_sha256, write_jsonl
from data_tools.datacard import datacard_markdown, histograms
from data_tools.text import nfc
from training.config import resolve_path, to_dict
from training.errors import KosovError
from training.provenance import provenance
from training.redaction import names_only, redact
from training.run_dir import default_output_dir
from training.safe_write import fsync_folder, fsync_tree, swap_into_place, write_atomic, write_json
from training.schema import KosovConfig
from training.synth_folder import CACHE, output_folder
from training.synth_inputs import LINEAGE, input_summary, read_inputs, shared_lineage

log = logging.getLogger(__name__)


@dataclass
class SynthResult:
    out_dir: Path
    files: dict[str, int]  # file name -> rows
    gate_report: list[dict]


def teacher_tokenizer(cfg: KosovConfig) -> tuple[Path | None, Any, Any]:
    """(the teacher's adapter, the model settings it is prompted with, its tokenizer). An adapter is prompted as its
    run trained it (chat template, end of turn), as kosov serve and eval do."""
    from training.adapters import adapter_dir, adapter_model_config
    from training.models import load_tokenizer, model_source

    adapter = adapter_dir(cfg.synth.teacher.adapter) if cfg.synth.teacher.adapter else None
    mcfg = adapter_model_config(cfg.model, adapter) if adapter is not None else cfg.model
    return adapter, mcfg, load_tokenizer(mcfg, model_source(cfg.model)[0])


def teacher_name(cfg: KosovConfig) -> str:
    """The in-process or vLLM teacher as rows (meta.teacher_model) and the data card name it: the model and the
    adapter as the recipe names them, a local folder by its name only (not tiny-ko's build folder, nor the machine's
    paths to a model or a run)."""
    adapter = cfg.synth.teacher.adapter
    return names_only(cfg.model.name_or_path) + (f"+{names_only(adapter)}" if adapter else "")


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
        from training.adapters import check_adapter_base
        from training.models import check_remote_code, load_for_inference, model_source, resolve_device, stop_ids

        source, is_local = model_source(cfg.model)
        check_remote_code(cfg.model, source, is_local)
        adapter, mcfg, tokenizer = teacher_tokenizer(cfg)
        stops = stop_ids(mcfg, tokenizer)  # where training taught the model to end its turn
        if t.backend == "vllm":
            if adapter is not None:
                check_adapter_base(adapter, source, cfg.model.name_or_path, cfg.model.revision)
            teacher = VLLMTeacher(source, revision=cfg.model.revision, lora_path=str(adapter) if adapter else None,
                                  stop_token_ids=stops)
            teacher.name = teacher_name(cfg)  # vLLM loads `source`, the resolved folder: rows name the model
            return teacher
        model = load_for_inference(cfg, source, resolve_device(cfg.device), adapter)
        return TransformersTeacher(model, tokenizer, teacher_name(cfg), batch_size=t.batch_size, stop_token_ids=stops)
    except TeacherError as e:
        raise KosovError(e.what, where=e.where, fix=e.fix) from None


def _prompt_text(where: str, item: Any) -> str:
    """An instruction from an input line or row (a plain string, a prompt row, an Alpaca row's instruction and
    input, or a chat row's first user turn), NFC: a file saved on macOS may hold Korean as decomposed jamo."""
    if isinstance(item, str):
        return nfc(item)
    if isinstance(item, dict) and isinstance(item.get("instruction"), str) and item["instruction"].strip():
        extra = item.get("input")
        return nfc(item["instruction"] + (f"\n\n{extra}" if isinstance(extra, str) and extra.strip() else ""))
    turns = item.get("prompt") or item.get("messages") if isinstance(item, dict) else None
    if isinstance(turns, str) and turns.strip():
        return nfc(turns)
    for turn in turns if isinstance(turns, list) else []:
        if isinstance(turn, dict) and turn.get("role") == "user" and isinstance(turn.get("content"), str):
            return nfc(turn["content"])
    raise KosovError("no instruction in this input row", where=where,
                     fix='give a line of text, {"prompt": "..."}, {"instruction": "...", "input": "..."}, or a chat '
                         'row whose messages have a user turn')


def _conversation(where: str, item: Any) -> list[dict]:
    """The turns `translate` rewrites: a chat row's messages; an Alpaca row (instruction, input, output) or a
    prompt row with a completion as a user and an assistant turn; a line of text or an instruction alone as one
    user turn (answered once translated, like the other generators' instructions)."""
    if isinstance(item, dict) and ("messages" in item or "conversations" in item):  # conversations: ShareGPT
        try:
            return chat_row(where, item).messages
        except BadRowError as e:
            raise KosovError(f"{e.reason}: {e.detail}", where=e.where, fix=e.fix) from None
    answer = next((item[k] for k in ("output", "completion", "response") if isinstance(item, dict)
                   and isinstance(item.get(k), str) and item[k].strip()), None)
    try:
        question = _prompt_text(where, item)
    except KosovError:
        raise KosovError("nothing to translate in this input row", where=where,
                         fix='give a line of English text, {"prompt": "..."} (optionally with "completion"), an '
                             'Alpaca row {"instruction": "...", "input": "...", "output": "..."}, or a chat row '
                             '{"messages": [...]}') from None
    return [{"role": "user", "content": question}, *([{"role": "assistant", "content": nfc(answer)}] if answer else [])]


def _dropped_line(step: str, kept: int, dropped: Counter) -> list[dict]:
    """A data-card line for what a generator step dropped before the gates, when it dropped anything."""
    dropped = Counter({why: n for why, n in dropped.items() if why != "teacher refused"})  # on the teacher's line
    if not dropped:
        return []
    log.info("%s: %d kept, dropped %s", step, kept, dict(dropped.most_common()))
    return [{"gate": step, "in": kept + sum(dropped.values()), "out": kept, "removed": dict(dropped.most_common()),
             "changed": {}, "examples": {}}]


def generate_rows(cfg: KosovConfig, teacher: Any = None, report: list[dict] | None = None) -> list[dict]:
    """Rows from the configured generator (before the quality gates); LLM-driven generators ask `teacher`. What a
    generator step dropped (an answer cut off, a translation that came back in English) is added to `report`."""
    s = cfg.synth
    report = [] if report is None else report
    lost, unanswered = Counter(), Counter()  # instructions the generator dropped; prompts left without an answer
    if s.generator == "math":
        from data_tools.generators.math_ko import generate, to_grpo_row, to_sft_row

        problems = generate(s.n, seed=cfg.seed, families=s.families or None, difficulties=s.difficulties,
                            style=s.style, split=s.split)
        to_row = to_grpo_row if s.format == "grpo" else to_sft_row
        return [to_row(p, seed=cfg.seed, source=s.source, license_=s.license) for p in problems]

    from data_tools.generators import instructions as gen

    t = s.teacher
    answer = dict(seed=cfg.seed, keep_thinking=t.keep_thinking, source=s.source, license_=s.license,
                  max_new_tokens=t.max_new_tokens, thinking=t.thinking == "on", system=s.system,
                  temperature=t.temperature)
    if s.generator == "translate":
        items = read_inputs(cfg)[: s.n]
        rows = gen.translate(teacher, [{"messages": _conversation(i.where, i.item)} for i in items], seed=cfg.seed,
                             source=s.source, license_=s.license, temperature=t.temperature,
                             max_new_tokens=t.max_new_tokens, wheres=[i.where for i in items], dropped=lost,
                             lineage=[i.lineage for i in items])
        report += _dropped_line("translate", len(rows), lost)
        asking = [r for r in rows if r["messages"][-1]["role"] == "user"]
        asks = [r["messages"][-1]["content"] for r in asking]
        answered = gen.distill(teacher, asks, generator="translate", dropped=unanswered,
                               lineage=[{k: r["meta"][k] for k in LINEAGE} for r in asking], **answer) if asks else []
        report += _dropped_line("teacher answers", len(answered), unanswered)
        for row in answered:
            row["meta"]["translated_from"] = "en"
        return [r for r in rows if r["messages"][-1]["role"] == "assistant"] + answered
    wheres = lineage = None
    if s.generator == "magpie":
        if t.backend == "http":
            raise KosovError("Magpie gives the model a raw chat-template prefix, which a chat endpoint cannot take",
                             fix="set synth.teacher.backend=transformers or vllm")
        # the teacher's own chat format: the in-process teacher's tokenizer, loaded again only for vLLM
        tokenizer = getattr(teacher, "tokenizer", None) or teacher_tokenizer(cfg)[2]
        prefix = gen.magpie_prefix(tokenizer, s.system)
        prompts = gen.magpie(teacher, s.n, seed=cfg.seed, prefix=prefix, temperature=t.temperature, dropped=lost)
    elif s.generator == "self_instruct":
        items = read_inputs(cfg)
        shared = shared_lineage(cfg, items)  # every row may come from any seed task shown
        prompts = gen.self_instruct(teacher, [_prompt_text(i.where, i.item) for i in items], s.n, seed=cfg.seed,
                                    temperature=t.temperature, dropped=lost)
        lineage = [shared] * len(prompts)
    elif s.generator == "evol_instruct":
        items = read_inputs(cfg)[: s.n]
        origins: list[int] = []
        prompts = gen.evol_instruct(teacher, [_prompt_text(i.where, i.item) for i in items], seed=cfg.seed,
                                    rounds=s.evol_rounds, operations=s.evol_operations, temperature=t.temperature,
                                    dropped=lost, origins=origins)
        lineage = [items[k].lineage for k in origins]
    else:  # distill
        items = read_inputs(cfg)[: s.n]
        prompts = [_prompt_text(i.where, i.item) for i in items]
        wheres = [i.where for i in items]
        lineage = [i.lineage for i in items]
    report += _dropped_line(f"{s.generator} instructions", len(prompts), lost)
    if not prompts:
        dropped = "".join(f" ({', '.join(f'{k}: {v}' for k, v in r['removed'].items())})" for r in report)
        raise KosovError(f"the {s.generator} generator wrote no requests for the teacher to answer (synth.n={s.n})"
                         f"{dropped}", fix="check synth.inputs, and raise synth.teacher.max_new_tokens if they were "
                                           "cut off" if s.generator != "magpie" else
                         "Magpie keeps only distinct Korean requests: use a chat model that writes Korean (tiny-ko "
                         "writes noise), or raise synth.n")
    rows = gen.distill(teacher, prompts, generator=s.generator, wheres=wheres, dropped=unanswered, lineage=lineage,
                       **answer)
    report += _dropped_line("teacher answers", len(rows), unanswered)
    return rows


def _write(rows: list[dict], out: Path, name: str) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    write_jsonl(rows, out / f"{name}.jsonl")
    pq.write_table(pa.Table.from_pylist(rows), out / f"{name}.parquet")
    return len(rows)


def _teacher_report(teacher: Any) -> list[dict]:
    """A data-card line for the requests the teacher refused (HTTP 400/413/422), when there were any."""
    refused = list(getattr(teacher, "refused", []))
    if not refused:
        return []
    examples = [f"{where}: {message}" if where else message for where, message in refused[:3]]
    asked = getattr(teacher, "asked", len(refused))
    return [{"gate": "teacher", "in": asked, "out": asked - len(refused), "removed": {"teacher refused": len(refused)},
             "changed": {}, "examples": {"teacher refused": examples}}]


def synth(cfg: KosovConfig) -> SynthResult:
    """Generate, gate and write one dataset with its card. User errors raise KosovError."""
    out = Path(cfg.output_dir or default_output_dir(cfg.name)).expanduser().absolute()
    with output_folder(out, cfg):  # locked until the dataset is in place
        return _synth(cfg, out)


def _gate_spec(cfg: KosovConfig) -> dict[str, Any]:
    """The recipe's gates, in order, with `decontaminate` fed synth.decontaminate_with (added last when the recipe
    lists it not) and run before `judge`: the judge does not pay for rows decontamination drops."""
    spec = dict(cfg.synth.gates)
    if cfg.synth.decontaminate_with:
        spec["decontaminate"] = {**spec.get("decontaminate", {}),
                                 "eval_files": [str(resolve_path(p)) for p in cfg.synth.decontaminate_with]}
    names = list(spec)
    if "judge" in names and "decontaminate" in names and names.index("decontaminate") > names.index("judge"):
        names.remove("decontaminate")
        names.insert(names.index("judge"), "decontaminate")
        spec = {name: spec[name] for name in names}
    return spec


# A local path in a command line: /... or ~/... after a space, "=", "[", "," or a quote (not the // of a URL)
_COMMAND_PATH = re.compile(r"(?<![^\s=\[,'\"])~?/[^\s,\[\]'\"=]*")


def _public(prov: dict[str, Any]) -> dict[str, Any]:
    """A synth job's provenance as it goes out with the dataset: without the host's name, and with the local paths of
    its command line (the kosov executable, output_dir=, the files it read) as their names; the inputs and gates
    already name files by name."""
    command = prov.get("command")
    public = {k: v for k, v in prov.items() if k != "host"}
    if isinstance(command, str):
        public["command"] = _COMMAND_PATH.sub(lambda m: str(names_only(m.group(0).rstrip("/") or "/")), command)
    return public


def _synth(cfg: KosovConfig, out: Path) -> SynthResult:
    """synth(), holding the output folder's lock."""
    from data_tools.gates import build_gates, run_gates
    from data_tools.teachers import TeacherError

    spec = _gate_spec(cfg)
    if "judge" in spec and cfg.synth.teacher.backend == "none":
        raise KosovError("synth.gates.judge needs a teacher to score rows", fix="set synth.teacher.backend")
    inputs = input_summary(cfg)  # hashed, and their licenses checked, before a teacher is loaded or paid
    # One teacher for generation and the judge: an in-process model is loaded once.
    teacher = build_teacher(cfg, out) if cfg.synth.generator != "math" or "judge" in spec else None
    judge = None
    if "judge" in spec:  # the LLM judge scores rows through the same teacher interface
        from data_tools.gates.judge import teacher_score_fn

        judge = teacher_score_fn(teacher, seed=cfg.seed)
    try:
        gates = build_gates(spec, judge=judge)
    except ValueError as e:
        raise KosovError(f"synth.gates: {e}") from None
    try:
        generator_report: list[dict] = []
        rows = generate_rows(cfg, teacher, generator_report)
        for row in rows:  # an HTTP endpoint may serve a model by its path: rows name it, not this machine's folders
            meta = row.get("meta")
            if isinstance(meta, dict) and isinstance(meta.get("teacher_model"), str):
                meta["teacher_model"] = names_only(meta["teacher_model"])
        teacher_report = _teacher_report(teacher)  # before the judge asks the same teacher
        if not rows:
            refused = "".join(f"; the teacher refused {r['removed']['teacher refused']} requests, the first: "
                              f"{r['examples']['teacher refused'][0]}" for r in teacher_report)
            refused += "".join(f"; {r['gate']} dropped {r['in'] - r['out']} of {r['in']} ("
                               + ", ".join(f"{k}: {v}" for k, v in r["removed"].items()) + ")"
                               for r in generator_report)
            raise KosovError(f"the {cfg.synth.generator} generator wrote no usable rows{refused}",
                             fix="the teacher's outputs were refused, cut at max_new_tokens or not Korean: see the "
                                 "log; raise synth.teacher.max_new_tokens, or use a stronger teacher model")
        log.info("%s wrote %d rows; quality gates: %s", cfg.synth.generator, len(rows), list(spec) or "none")
        kept, report = run_gates(rows, gates)
    except TeacherError as e:  # the endpoint, the key or the model name is wrong for every request
        raise KosovError(e.what, where=e.where, fix=e.fix) from None
    report = teacher_report + generator_report + report
    name = cfg.synth.split or "train"
    splits = {name: kept}
    if cfg.synth.generator == "math" and cfg.synth.split is None:  # keep the held-out split apart
        splits = {name: [r for r in kept if r["meta"]["split"] == name] for name in ("train", "test")}
    if not any(splits.values()):
        raise KosovError("every row was removed by the quality gates", fix=f"see the gate report: {report}")
    staging = out.with_name(f".{out.name}.staging-{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    cache, moved = out / CACHE, staging / CACHE
    try:
        files = {f"{name}.jsonl": _write(part, staging, name) for name, part in splits.items() if part}
        written = {file: {"rows": files[f"{name}.jsonl"], "sha256": file_sha256(staging / file)}  # card, provenance
                   for name in splits if f"{name}.jsonl" in files for file in (f"{name}.jsonl", f"{name}.parquet")}
        # the card goes out with the dataset: input files and folders by name, not this machine's paths
        settings = {"generator": cfg.synth.generator, "seed": cfg.seed, **names_only(redact(asdict(cfg.synth)))}
        card = datacard_markdown(cfg.name, kept, report, settings, histograms(kept, staging), files=written,
                                 inputs=inputs)
        if cache.is_dir():
            card += ("\n## Before you share this folder\n\n`teacher_cache/` holds the teacher's raw answers: rows the "
                     "quality gates removed and personal data the pii gate scrubbed too. Leave it out of what you "
                     "upload: from this folder, `hf upload <org>/<dataset> . --repo-type dataset --exclude "
                     "'teacher_cache/*'`.\n")
        write_atomic(staging / "DATACARD.md", card)
        # config.yaml and provenance.json go out with the dataset too (its lineage: the recipe, kosov's commit, the
        # inputs' hashes): local paths as names, as on the card, and no host name
        write_atomic(staging / "config.yaml",
                     yaml.safe_dump(names_only(redact(to_dict(cfg))), allow_unicode=True, sort_keys=False))
        write_json(staging / "provenance.json", _public(
                   provenance(seed=cfg.seed, data={"written": files, "files": written, "inputs": inputs,
                                                   "licenses": dict(Counter(str((r.get("meta") or {}).get("license"))
                                                                            for r in kept)),
                                                   "gates": report},
                              model={"teacher": cfg.synth.teacher.backend})))
        # Everything on disk first, then renames only: a job killed between moving the cache in and the swap leaves
        # it in the staging folder (the next job takes it back), and that gap is now a few renames long.
        fsync_tree(staging)
        if cache.is_dir():  # the HTTP teacher's cache goes with the dataset: a rerun pays for nothing twice
            fsync_tree(cache)
            cache.rename(moved)
            fsync_folder(staging)
        if out.is_dir() and any(out.iterdir()):
            log.warning("replacing the dataset in %s", out)
        swap_into_place(staging, out, synced=True)
    except BaseException:
        if moved.is_dir() and not cache.exists():
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                moved.rename(cache)  # the teacher cache outlives a failed write
            except OSError as e:  # never hide the failure being handled
                log.error("could not put the teacher cache back from %s: %s", moved, e)
                moved = None
        if moved is not None:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("dataset in %s: %s", out, files)
    return SynthResult(out_dir=out, files=files, gate_report=report)
