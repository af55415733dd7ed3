"""kosov serve's engine: the one thread that owns the model. Requests queue and are generated serve.max_batch at a
time in arrival order; one that fails in a batch is generated again alone, so it alone answers 500; a request its
client abandoned before its turn is never generated, and closing the engine cancels the queued ones."""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future

from data_tools.teachers import GenerationRequest, TransformersTeacher

log = logging.getLogger("training.serve")


class Engine:
    """The one thread that owns the model: takes queued requests, up to max_batch at a time, in arrival order."""

    def __init__(self, teacher: TransformersTeacher, max_batch: int):
        self.teacher, self.max_batch = teacher, max_batch
        self.batches = self.completions = 0  # written by the engine thread only
        self.closed = False
        self.lock = threading.Lock()  # submit() never queues behind close()'s end marker
        self.queue: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="kosov-serve-engine", daemon=True)
        self.thread.start()

    def submit(self, request: GenerationRequest) -> Future:
        """Queue a request; the future gets its Generation. A future cancelled before its turn is skipped, and
        one submitted after close() comes back cancelled."""
        future: Future = Future()
        with self.lock:
            if self.closed:
                future.cancel()
            else:
                self.queue.put((request, future))
        return future

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
            try:
                outs = self.teacher.generate([r for r, _ in batch], progress=False)
            except Exception as e:  # noqa: BLE001 - handed to the waiting request, which answers 500
                if len(batch) == 1:
                    batch[0][1].set_exception(e)
                else:  # one bad request must not fail the others: each again on its own
                    for one in batch:
                        self._alone(*one)
                continue
            self.batches += 1
            self.completions += len(batch)
            for (_, future), out in zip(batch, outs, strict=True):
                future.set_result(out)

    def _alone(self, request: GenerationRequest, future: Future) -> None:
        try:
            out = self.teacher.generate([request], progress=False)[0]
        except Exception as e:  # noqa: BLE001 - this request's own failure
            future.set_exception(e)
            return
        self.batches += 1
        self.completions += 1
        future.set_result(out)
