"""SFT data rendered once, on disk: the main process renders the rows into Arrow files in the run folder
(DIR/rendered/), and every process reads them memory-mapped.

Rendered in memory, every GPU process rendered the whole set itself, single-threaded, on every start, and held its
ids (about 14 bytes a token, 7 GB a process for 500M tokens) and TRL's label and packing copies of them. On disk the
set is rendered once, TRL's copies are cache files beside it (TRL's main process makes them, the others read them),
and a resumed run reuses all of it: the folder is keyed by everything the ids depend on (the rows, the tokenizer and
its template, the render settings, the code that renders). It is deleted when the run finishes.

The other processes wait for the main one by watching for a file, not at a barrier: rendering a large set can take
longer than a collective's timeout (NCCL's is 10 minutes)."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from training.errors import KosovError
from training.safe_write import remove_path, swap_into_place, tidy_swap, write_atomic, write_json

log = logging.getLogger(__name__)

RENDERED = "rendered"  # the folder in the run folder
RECORD = "rendered.json"  # its key and what rendering found (skipped rows, counts), written last
BATCH = 1000  # sequences per Arrow record batch: what the main process holds at once while it renders
SCHEMA = pa.schema([("input_ids", pa.list_(pa.int32())), ("completion_mask", pa.list_(pa.int8()))])
CODE = ("chat_render.py", "data_rows.py", "sft_data.py", "rendered_store.py")  # what decides the ids
POLL_S = 1.0
BEAT_S = 20.0  # how often the main process says it is still rendering
SILENT_S = 300.0  # how long the others wait for a sign of it (NFS may show a file a minute late)
GRACE_S = 120.0  # how long they wait for the outcome once the heartbeat went


def _lists(arrays: list[np.ndarray], kind: pa.DataType) -> pa.Array:
    offsets = np.zeros(len(arrays) + 1, dtype=np.int32)
    np.cumsum([len(a) for a in arrays], out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.concatenate(arrays), type=kind))


class SequenceSink:
    """Rendered sequences in Arrow record batches (int32 ids, int8 masks): streamed to a file as they come, so the
    main process never holds the whole set's ids, or kept in memory (path None)."""

    def __init__(self, path: Path | None = None):
        self._writer = pa.ipc.new_stream(str(path), SCHEMA) if path is not None else None
        self._batches: list[pa.RecordBatch] = []
        self._ids: list[np.ndarray] = []
        self._masks: list[np.ndarray] = []
        self.sequences = self.tokens = self.trained_tokens = 0

    def add(self, input_ids: list[int], completion_mask: list[int]) -> None:
        self._ids.append(np.asarray(input_ids, dtype=np.int32))
        self._masks.append(np.asarray(completion_mask, dtype=np.int8))
        self.sequences += 1
        self.tokens += len(input_ids)
        self.trained_tokens += int(self._masks[-1].sum())
        if len(self._ids) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        if not self._ids:
            return
        batch = pa.record_batch([_lists(self._ids, pa.int32()), _lists(self._masks, pa.int8())], schema=SCHEMA)
        self._ids, self._masks = [], []
        if self._writer is not None:
            self._writer.write_batch(batch)
        else:
            self._batches.append(batch)

    def close(self) -> Any:
        """The sequences as a datasets.Dataset when kept in memory; None once written to the file."""
        self._flush()
        if self._writer is not None:
            self._writer.close()
            return None
        if not self.sequences:
            return None
        import datasets
        from datasets.table import InMemoryTable

        return datasets.Dataset(InMemoryTable(pa.Table.from_batches(self._batches, schema=SCHEMA)))


def render_key(settings: dict[str, Any], tokenizer: Any, parts: Iterable[Iterable[str]]) -> str:
    """What the rendered ids depend on, hashed: the render settings, the tokenizer (vocabulary, merges, added tokens,
    chat template, which token fills each role a template may name), the libraries and kosov code that render, and
    each part's rows (train, then eval) in order."""
    import jinja2
    import tokenizers
    import transformers

    digest = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    vocabulary = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    here = Path(__file__).parent
    digest.update(json.dumps({
        "settings": settings,
        "tokenizer": [type(tokenizer).__name__, hashlib.sha256(vocabulary.encode("utf-8")).hexdigest(),
                      tokenizer.chat_template, {k: str(v) for k, v in tokenizer.special_tokens_map.items()}],
        "code": [hashlib.sha256((here / name).read_bytes()).hexdigest() for name in CODE],
        "versions": [transformers.__version__, tokenizers.__version__, jinja2.__version__],
    }, sort_keys=True, default=str).encode("utf-8"))
    for part in parts:
        digest.update(b"\x1e")
        for row in part:
            digest.update(row.encode("utf-8"))
            digest.update(b"\x1f")
    return digest.hexdigest()


def reuse(folder: Path, key: str) -> dict[str, Any] | None:
    """What an earlier rendering of the same rows, tokenizer and settings found, when its files are all there. TRL's
    cache files beside them go: datasets does not fsync them, and one a crash left short would fail every start."""
    try:
        record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != key:
        return None
    if not all((folder / f"{part}.arrow").is_file() for part in record.get("parts", [])):
        return None
    try:
        for cache in [*folder.glob("cache-*"), *folder.glob("tmp*")]:
            remove_path(cache)
    except OSError as e:  # render again rather than fail: the new folder is swapped in whole
        log.warning("could not delete TRL's caches in %s (%s): rendering again", folder, e)
        return None
    return record


def write(folder: Path, key: str, fill: Callable[[SequenceSink, SequenceSink], dict[str, Any]]) -> dict[str, Any]:
    """Render into a staging folder (fill writes the train and eval sequences and returns what it found) and swap it
    in whole: a killed job leaves the earlier folder or none, never half a set under the key. An earlier folder goes
    with TRL's cache files in it (they were made from its ids)."""
    tidy_swap(folder)  # what a job killed while it swapped left beside it
    staging = folder.with_name(f".{folder.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    sinks = {part: SequenceSink(staging / f"{part}.arrow") for part in ("train", "eval")}
    try:
        try:
            found = fill(sinks["train"], sinks["eval"])
        finally:
            for sink in sinks.values():
                sink.close()
    except BaseException:  # a bad row: nothing of this start stays (a killed one's staging goes next start)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    parts = [part for part, sink in sinks.items() if sink.sequences]
    for part, sink in sinks.items():
        if not sink.sequences:
            (staging / f"{part}.arrow").unlink()
    record = {"key": key, "parts": parts, **found}
    write_json(staging / RECORD, record)
    swap_into_place(staging, folder)
    return record


def read(folder: Path) -> tuple[Any, Any | None]:
    """The train and eval sets, memory-mapped from the folder (the eval set None when nothing was held out)."""
    import datasets

    sets = {part: datasets.Dataset.from_file(str(folder / f"{part}.arrow"))
            for part in ("train", "eval") if (folder / f"{part}.arrow").is_file()}
    return sets["train"], sets.get("eval")


def remove(run_path: Path) -> None:
    """The finished run's rendered set, its TRL caches and what starts and swaps left beside it (markers, staging):
    nothing resumes from them, and they can be tens of GB."""
    for path in [run_path / RENDERED, *run_path.glob(f".{RENDERED}[-.]*"), *run_path.glob(f"..{RENDERED}-*")]:
        try:
            remove_path(path)
        except OSError as e:  # NFS keeps files still mapped by a process as .nfs*: the run is done all the same
            log.warning("could not delete %s (%s): delete it once the run's processes have exited", path, e)


def remove_markers(folder: Path) -> None:
    """from_main's marker and heartbeat files for `folder` (.<name>-<token>.json, .beat, beside it). Only the main
    process, once every process has read the last one: past a collective that follows their from_main call."""
    for marker in folder.parent.glob(f".{folder.name}-*"):
        marker.unlink(missing_ok=True)


class _Heartbeat:
    """A file the main process rewrites every BEAT_S while it renders, so that the others tell a long rendering from
    a main process that died (killed, out of memory, a full disk) or a folder they cannot see (an output_dir that not
    every node shares)."""

    def __init__(self, path: Path):
        self.path, self._stop, self.failed = path, threading.Event(), False
        self._thread = threading.Thread(target=self._run, name="kosov-render-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        write_atomic(self.path, "0")
        self._thread.start()
        return self

    def _run(self) -> None:
        beat = 0
        while not self._stop.wait(BEAT_S):
            beat += 1
            try:
                write_atomic(self.path, str(beat))
            except OSError as e:  # once (an NFS blip) is nothing; beats failing for SILENT_S stop the others
                if not self.failed:
                    log.warning("could not write %s (%s): the other processes give up if this lasts", self.path, e)
                self.failed = True

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.path.unlink(missing_ok=True)


def wait_for(marker: Path, heartbeat: Path, work: str, silent_s: float = SILENT_S, grace_s: float = GRACE_S
             ) -> dict[str, Any]:
    """The main process's outcome (its marker), once written. A KosovError once its heartbeat has not changed for
    silent_s seconds (measured on this machine's clock, so clocks that differ between nodes do not matter), or once
    it went and no outcome followed within grace_s (the main process ended without one: a full disk). `work`: what
    the main process is doing, for the errors ("rendering the data into <folder>")."""
    seen, since, beaten = None, time.monotonic(), False
    while not marker.is_file():
        try:
            beat: str | None = heartbeat.read_text(encoding="utf-8")
        except OSError:
            beat = None
        if beat != seen:
            seen, since, beaten = beat, time.monotonic(), beaten or beat is not None
        elif beaten and seen is None and time.monotonic() - since > grace_s:
            raise KosovError(f"the main process stopped {work} without saying how it "
                             "ended: its disk is full, most likely",
                             fix="see the main process's log, then start the run again with resume=true")
        elif time.monotonic() - since > silent_s:
            if seen is None:
                raise KosovError(f"the main process has shown no sign of {work} for "
                                 f"{silent_s:.0f} s: this process cannot see the run folder's files, or the main "
                                 "process died first",
                                 fix="put output_dir on a filesystem every node shares (the main process alone "
                                     "writes the run folder), and see the main process's log")
            raise KosovError(f"the main process stopped {work} ({silent_s:.0f} s without a "
                             "sign of it): it was killed, ran out of memory, or its disk is full",
                             fix="see the main process's log, then start the run again with resume=true")
        time.sleep(POLL_S)
    return json.loads(marker.read_text(encoding="utf-8"))


def from_main(folder: Path, make: Callable[[], dict[str, Any]], work: str | None = None) -> dict[str, Any]:
    """make() on the main process, its result on every process; its KosovError is every process's. The others wait
    for a marker file beside the folder (one name per start, sent from the main process) rather than at a barrier
    that times out, watching the main process's heartbeat; their copy of the result comes through the file. `work`:
    what make() does, as the waiting processes log it (default: rendering the data into `folder`)."""
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    state = PartialState()
    if state.num_processes == 1:
        return make()
    token = [uuid.uuid4().hex if state.is_main_process else None]
    broadcast_object_list(token)  # quick: every process has just loaded the tokenizer
    marker = folder.with_name(f".{folder.name}-{token[0]}.json")
    heartbeat = marker.with_suffix(".beat")
    if state.is_main_process:
        remove_markers(folder)  # earlier calls' markers: every process has read them to reach the broadcast above
        with _Heartbeat(heartbeat):
            try:
                result = make()
            except KosovError as e:
                write_json(marker, {"error": [e.what, e.where, e.fix]})
                raise
            except BaseException as e:
                write_json(marker, {"failed": f"{type(e).__name__}: {e}"})
                raise
            write_json(marker, {"result": result})
        return result
    work = work or f"rendering the data into {folder}"
    log.info("waiting for the main process: %s", work)
    outcome = wait_for(marker, heartbeat, work)
    if "error" in outcome:
        what, where, fix = outcome["error"]
        raise KosovError(what, where=where, fix=fix)
    if "failed" in outcome:
        raise KosovError(f"the main process failed {work}: {outcome['failed']}",
                         fix="see the main process's traceback")
    return outcome["result"]
