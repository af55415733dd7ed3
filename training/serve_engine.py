"""kosov serve's engine: the one thread that owns the model. Requests queue and are generated serve.max_batch at a
time in arrival order; one that fails in a batch is generated again alone, so it alone answers 500; a request its
client abandoned before its turn is never generated, one abandoned while generating stops at its next token (its
row ends: RowStop), and closing the engine cancels the queued ones.

Each request is answered as soon as its own row ends (TransformersTeacher.generate's on_row), while the rest of its
batch generates on: a short answer does not wait for a long one generated with it. Requests arriving meanwhile
still wait for the whole batch (its longest answer) before theirs starts: serve.max_batch > 1 buys throughput with
that wait; 1 (the default) starts each request as the one before it ends.

A failure is handled outside its `except` clause: the traceback holds generate()'s frames, and with them the failed
batch's KV cache and activations, so retrying inside it (or handing it to the future) would keep that memory in
use (PyTorch's FAQ on recovering from out of memory). The engine thread logs the traceback; the future gets the
exception, its type and message intact, without it."""

from __future__ import annotations

import gc
import logging
import queue
import sys
import threading
import traceback
from concurrent.futures import Future

from data_tools.teachers import Generation, TransformersTeacher
from training.serve_schema import ServedRequest

log = logging.getLogger("training.serve")


class Engine:
    """The one thread that owns the model: takes queued requests, up to max_batch at a time, in arrival order."""

    def __init__(self, teacher: TransformersTeacher, max_batch: int):
        self.teacher, self.max_batch = teacher, max_batch
        # written by the engine thread only: generate() calls that succeeded, requests they answered, the tokens
        # those generated, and how many of those requests had been abandoned (cut short) by their clients
        self.batches = self.completions = self.completion_tokens = self.abandoned = 0
        self.closed = False
        self.lock = threading.Lock()  # submit() never queues behind close()'s end marker
        self.queue: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="kosov-serve-engine", daemon=True)
        self.thread.start()

    def submit(self, request: ServedRequest) -> Future:
        """Queue a request; the future gets its Generation. A future cancelled before its turn is skipped, and
        one submitted after close() comes back cancelled."""
        future: Future = Future()
        with self.lock:
            if self.closed:
                future.cancel()
            else:
                self.queue.put((request, future))
        return future

    @staticmethod
    def abandon(request: ServedRequest, future: Future) -> None:
        """Its client left: if still queued it is never generated; if generating, its row stops at the next token
        and the future gets what it generated so far (no one reads it)."""
        request.cancelled.set()
        future.cancel()

    def stop(self) -> None:
        """Take no more requests: the queued ones are cancelled, never generated, and later ones come back cancelled;
        the batch being generated runs on. Does not block, so a forced shutdown can answer its clients first."""
        cancelled = 0
        with self.lock:
            if self.closed:
                return
            self.closed = True  # from here the engine thread also cancels whatever it takes off the queue
            while True:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None and not item[1].done():  # not already cancelled by its client
                    item[1].cancel()
                    cancelled += 1
            self.queue.put(None)
        if cancelled:
            log.info("cancelled %d queued request(s)", cancelled)

    def close(self) -> None:
        """stop(), then wait for the batch being generated to end (a thread cannot be stopped inside generate(), and
        one left running aborts the interpreter's exit)."""
        self.stop()
        self.thread.join()

    def _starts(self, future: Future) -> bool:
        """Claim a request's turn: False for one its client abandoned, or one still queued at close()."""
        if self.closed:
            future.cancel()
        return future.set_running_or_notify_cancel()

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            batch = [item]
            while len(batch) < self.max_batch and not self.queue.empty():
                if (more := self.queue.get()) is None:
                    self.queue.put(None)
                    break
                batch.append(more)
            batch = [(r, f) for r, f in batch if self._starts(f)]  # abandoned or shut down: not generated
            if not batch:
                continue
            failure = self._generate(batch, logged=len(batch) == 1)
            if failure is None:
                continue
            if len(batch) == 1:
                if not batch[0][1].done():  # else it failed after its answer went out
                    batch[0][1].set_exception(failure)
                free_memory()
                continue
            log.warning("a batch of %d requests failed (%s: %s); generating each alone", len(batch),
                        type(failure).__name__, failure)
            del failure
            free_memory()
            for one in [(r, f) for r, f in batch if not f.done()]:  # one bad request must not fail the others
                if (failure := self._generate([one])) is not None:
                    one[1].set_exception(failure)
                    free_memory()

    def _generate(self, batch: list[tuple[ServedRequest, Future]], logged: bool = True) -> BaseException | None:
        """Generate `batch`, answering each request as its row ends; the failure, detached, or None. It is returned
        out of its `except` clause: the caller frees the failed batch's tensors (see the module docstring)."""

        def answer(i: int, out: Generation) -> None:  # on the engine thread, inside generate()
            request, future = batch[i]
            self.completions += 1
            self.completion_tokens += out.usage.get("completion_tokens", 0)
            self.abandoned += request.cancelled.is_set()
            future.set_result(out)

        try:
            self.teacher.generate([r for r, _ in batch], progress=False, on_row=answer)
        except Exception as e:  # noqa: BLE001 - handed to the waiting request, which answers 500
            return detached(e, logged=logged)
        self.batches += 1
        return None


def detached(error: BaseException, logged: bool = True) -> BaseException:
    """`error` without its traceback, nor those of the exceptions it chains to (their frames hold the failed
    generation's tensors), after logging them here when `logged`. Its type and message stay: kosov serve's 500
    names them. The traceback is logged as text: a LogRecord's exc_info would keep it alive in any handler that
    keeps records."""
    if logged:
        log.error("generation failed on the engine thread:\n%s", "".join(traceback.format_exception(error)).rstrip())
    seen: set[int] = set()
    chain = [error]
    while chain:
        e = chain.pop()
        if e is not None and id(e) not in seen:
            seen.add(id(e))
            e.__traceback__ = None
            chain += [e.__cause__, e.__context__]
    return error


def free_memory() -> None:
    """Give back what a failed generation held: its cycles, and PyTorch's cached CUDA blocks when CUDA is in use."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
