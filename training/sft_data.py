"""SFT data: chat rows from the recipe's files or hub dataset (training/data_rows.py), rendered into token
ids with the model's chat template (see chat_render). Every user error names the file and line.

Under `kosov train` the main process renders them once into the run folder and every process reads them from
there (training/rendered_store.py); a resumed run reuses them."""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import TemplateError
from tqdm.auto import tqdm

from data_tools.chat_io import ChatRow
from training.chat_render import TemplateMismatch, render_conversation
from training.schema import KosovConfig
from training.data_rows import (TrainData, fits, free_of, load_rows, none_left, row_content, rows_summary,
                                special_tokens, split_eval, template_refused)
from training.errors import KosovError
from training.rendered_store import SequenceSink, from_main, read, render_key, reuse, write

log = logging.getLogger(__name__)

Fill = Callable[[SequenceSink, SequenceSink], dict[str, Any]]
COUNTS = ("train_sequences", "eval_sequences", "train_tokens", "train_trained_tokens")


PARALLEL_FROM = 20_000  # rows: fewer render sooner in this process than worker processes start (transformers)
MOST_WORKERS = 32
CHUNK = 500  # rows a worker renders at a time, at most

Sequences = list[tuple[Any, Any]]  # a row's samples: (input_ids, completion_mask)


def render_workers(cfg: KosovConfig, rows: int) -> int:
    """How many processes render `rows` rows: data.num_proc, or by itself one per CPU core this process may use (up
    to 32) from 20,000 rows. Only the main process of a run renders: the cores of the other GPUs' processes are free."""
    wanted = cfg.data.num_proc
    if wanted is None:
        wanted = min(len(os.sched_getaffinity(0)), MOST_WORKERS) if rows >= PARALLEL_FROM else 1
    return max(1, min(wanted, rows))


def _render_row(row: ChatRow, tokenizer: Any, cfg: KosovConfig, end_token_id: int, special: frozenset[str],
                skipped: Counter) -> Sequences | None:
    """The row's samples, or None for a row skipped (counted in `skipped`); a bad row fails, by data.on_bad_row."""
    if not free_of(row, special, cfg.data.on_bad_row, skipped):
        return None
    try:
        samples = render_conversation(row.messages, tokenizer, end_token_id=end_token_id,
                                      thinking=cfg.model.thinking, turns=cfg.method.sft.turns)
    except TemplateMismatch as e:  # a row the template cannot render as inference would: a bad row
        if cfg.data.on_bad_row == "skip":
            skipped["template mismatch"] += 1
            return None
        raise KosovError(str(e), where=row.where,
                         fix="fix or remove the row, or set data.on_bad_row=skip to drop such rows") from None
    except TemplateError as e:  # the template's raise_exception (a system turn it takes none of): a bad row too
        template_refused(row, e, cfg.data.on_bad_row, skipped)  # raises a KosovError, which crosses processes whole
        return None
    longest = max(len(s.input_ids) for s in samples)
    if not fits(row, longest, cfg.method.sft.max_length, "method.sft.max_length", cfg.data.on_overlong, skipped):
        return None
    # as numpy arrays: what a worker process sends back is a fraction of Python lists' size
    return [(np.asarray(s.input_ids, dtype=np.int32), np.asarray(s.completion_mask, dtype=np.int8)) for s in samples]


_worker: dict[str, Any] = {}  # a rendering process's tokenizer and recipe, set once as it starts
IGNORED = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
PR_SET_PDEATHSIG = 1


def _start_worker(tokenizer: Any, cfg: KosovConfig, end_token_id: int, parent: int) -> None:
    """A forked worker has the main process's signal handlers: submitit's requeue on SLURM's warning would run in
    every worker, Ctrl-C print a traceback in each. It leaves signals to the main process and dies with it (killed
    with SIGKILL, its workers would wait on their queue for ever)."""
    for number in IGNORED:
        signal.signal(number, signal.SIG_IGN)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)
    _worker.update(tokenizer=tokenizer, cfg=cfg, end_token_id=end_token_id, special=special_tokens(tokenizer))


def _render_chunk(rows: list[ChatRow]) -> tuple[list[Sequences | None], Counter]:
    skipped: Counter = Counter()
    w = _worker
    return [_render_row(row, w["tokenizer"], w["cfg"], w["end_token_id"], w["special"], skipped) for row in rows], \
        skipped


def _rendered(rows: list[ChatRow], tokenizer: Any, cfg: KosovConfig, end_token_id: int, skipped: Counter,
              workers: int, bar: Any) -> Iterator[Sequences | None]:
    """Each row's samples (None: skipped), in row order: a bad row fails as the first bad row, whatever the workers."""
    if workers == 1:
        special = special_tokens(tokenizer)
        for row in rows:
            yield _render_row(row, tokenizer, cfg, end_token_id, special, skipped)
            bar.update()
        return
    size = min(CHUNK, -(-len(rows) // (workers * 4)))  # a few chunks per worker at least, so all of them work
    # fork, not spawn: a spawned worker imports the caller's main module again, and a script calling kosov without an
    # `if __name__ == "__main__"` guard would start workers of its own. The workers only tokenize: no CUDA, no torch.
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=_start_worker,
                               initargs=(tokenizer, cfg, end_token_id, os.getpid()))
    window: deque[Future] = deque()  # a few chunks ahead of the one written: rendered ids never pile up here

    def oldest() -> Iterator[Sequences | None]:
        try:
            rendered, chunk_skipped = window.popleft().result()
        except BrokenProcessPool:
            raise KosovError(f"a process rendering the rows died (one of {workers}); out of memory, most likely",
                             fix="set data.num_proc lower (each process holds a copy of the tokenizer), or give "
                                 "the job more memory") from None
        skipped.update(chunk_skipped)
        bar.update(len(rendered))
        yield from rendered

    try:
        for start in range(0, len(rows), size):
            window.append(pool.submit(_render_chunk, rows[start : start + size]))
            if len(window) > 2 * workers:
                yield from oldest()
        while window:
            yield from oldest()
    finally:  # a bad row: the chunks after it are not rendered
        pool.shutdown(wait=True, cancel_futures=True)


def render_rows(rows: list[ChatRow], tokenizer: Any, cfg: KosovConfig, end_token_id: int, desc: str,
                sink: SequenceSink, skipped: Counter) -> list[int]:
    """Render the rows' token ids and completion masks into `sink` (in worker processes for a large set, see
    render_workers); bad and overlong rows fail or are skipped by data.on_bad_row / data.on_overlong (counted in
    `skipped`). Returns the indices of the rows kept (what the data summary counts)."""
    kept: list[int] = []
    workers = render_workers(cfg, len(rows))
    if workers > 1:
        log.info("%s: %d rows in %d processes", desc, len(rows), workers)
    with tqdm(total=len(rows), desc=desc, unit="row", disable=len(rows) < 500) as bar:
        for index, samples in enumerate(_rendered(rows, tokenizer, cfg, end_token_id, skipped, workers, bar)):
            if samples is None:
                continue
            kept.append(index)
            for input_ids, completion_mask in samples:
                sink.add(input_ids, completion_mask)
    return kept


def build_sft_data(cfg: KosovConfig, tokenizer: Any, end_token_id: int, folder: Path | None = None,
                   loaded: Callable[[list[dict[str, Any]]], None] | None = None) -> TrainData:
    """The rendered train and eval sets and the data summary. `folder` (the run's rendered/ folder): rendered there
    by the main process, or reused from an earlier start, and read by every process; None: rendered in memory, by
    this process. `loaded`: called with the sources read, before anything renders (load_rows)."""
    if folder is None:
        sinks = SequenceSink(), SequenceSink()
        summary = _summary(cfg, tokenizer, end_token_id, lambda key, fill: fill(*sinks), loaded)
        return TrainData(train=sinks[0].close(), eval=sinks[1].close(), summary=summary)
    summary = from_main(folder, lambda: _summary(cfg, tokenizer, end_token_id,
                                                 lambda key, fill: _reused(folder, key) or write(folder, key, fill),
                                                 loaded))
    train, evals = read(folder)
    return TrainData(train=train, eval=evals, summary=summary)


def _reused(folder: Path, key: str) -> dict[str, Any] | None:
    record = reuse(folder, key)
    if record is not None:
        log.info("data: the same rows, tokenizer and settings were rendered by an earlier start: reusing %s", folder)
    return record


def _summary(cfg: KosovConfig, tokenizer: Any, end_token_id: int, rendered: Callable[[str, Fill], dict[str, Any]],
             loaded: Callable[[list[dict[str, Any]]], None] | None = None) -> dict[str, Any]:
    """Read and split the rows, have them rendered (rendered(key, fill) returns fill's record, or an earlier one's
    under the same key), and summarise what trains."""
    train_report, eval_report = load_rows(cfg, loaded=loaded)
    train_rows, eval_rows = split_eval(train_report, eval_report, cfg.data.eval_ratio, cfg.seed)
    settings = {"end_token_id": end_token_id, "thinking": cfg.model.thinking, "turns": cfg.method.sft.turns,
                "max_length": cfg.method.sft.max_length, "on_bad_row": cfg.data.on_bad_row,
                "on_overlong": cfg.data.on_overlong}
    key = render_key(settings, tokenizer, (map(row_content, train_rows), map(row_content, eval_rows)))

    def fill(train_sink: SequenceSink, eval_sink: SequenceSink) -> dict[str, Any]:
        skipped, eval_skipped = Counter(), Counter()
        train_kept = render_rows(train_rows, tokenizer, cfg, end_token_id, "Rendering train rows", train_sink,
                                 skipped)
        if not train_kept:
            raise none_left(skipped + train_report.skipped, "training row", "method.sft.max_length")
        eval_kept = render_rows(eval_rows, tokenizer, cfg, end_token_id, "Rendering eval rows", eval_sink,
                                eval_skipped)
        return {"train_kept": train_kept, "eval_kept": eval_kept, "skipped": dict(skipped + eval_skipped),
                "eval_skipped": dict(eval_skipped),
                "train_sequences": train_sink.sequences, "eval_sequences": eval_sink.sequences,
                "train_tokens": train_sink.tokens, "train_trained_tokens": train_sink.trained_tokens}

    record = rendered(key, fill)
    # the rows that trained (and were held out) and their licenses: not those rendering then skipped
    summary = rows_summary(cfg, train_report, eval_report, [train_rows[i] for i in record["train_kept"]],
                           [eval_rows[i] for i in record["eval_kept"]], Counter(record["skipped"]),
                           held_out=len(eval_rows), eval_skipped=Counter(record.get("eval_skipped") or {}))
    summary.update({name: record[name] for name in COUNTS})
    return summary
