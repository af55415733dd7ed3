"""kosov serve's engine after a failed generation: what the failure held is freed before anything else runs."""

from __future__ import annotations

import gc
import threading
import weakref

from data_tools.teachers import Generation
from tests.training.serve_helpers import ask, echo
from training.serve_engine import Engine


class Activations:
    """Stands in for a generation's KV cache and activations: what only its frames reference."""


class OutOfMemoryTeacher:
    """The first generation (a lone request) waits for the test to queue more behind it; generating those together
    runs out of memory; on its own, each is answered ("💥" always fails). Every lone generation notes
    whether the failed batch's activations were still alive when it started."""

    def __init__(self):
        self.started, self.release = threading.Event(), threading.Event()
        self.batch: weakref.ref | None = None
        self.alive_during_retries: list[bool] = []
        self.solo_failures: list[weakref.ref] = []

    def generate(self, requests, *, progress=True, on_row=None):
        if not self.started.is_set():
            self.started.set()
            assert self.release.wait(60)
        elif len(requests) > 1:
            activations = Activations()  # a local of the failing frame, as model.generate's KV cache is
            self.batch = weakref.ref(activations)
            raise RuntimeError("CUDA out of memory")
        elif self.batch is not None:
            gc.collect()
            self.alive_during_retries.append(self.batch() is not None)
        if "💥" in requests[0].messages[-1]["content"]:
            activations = Activations()
            self.solo_failures.append(weakref.ref(activations))
            raise RuntimeError("CUDA out of memory: tried to allocate 2.00 GiB")
        return echo(requests, on_row)


def test_requests_retried_after_a_failed_batch_run_without_its_memory():
    """PyTorch's advice after an out-of-memory error: recover outside the except clause. The engine retries each
    request of a failed batch alone only once the batch's frames (its KV cache, its activations) are gone; the one
    that fails alone too answers with its error, which holds none of its own attempt's memory either."""
    teacher = OutOfMemoryTeacher()
    engine = Engine(teacher, max_batch=4)
    try:
        first = engine.submit(ask("먼저"))
        assert teacher.started.wait(30)
        queued = [engine.submit(ask(text)) for text in ("안녕하세요", "💥", "반가워요")]
        teacher.release.set()
        answers = [f.result(timeout=30).text for f in (first, queued[0], queued[2])]
        error = queued[1].exception(timeout=30)
        gc.collect()
        alive = [ref() is not None for ref in teacher.solo_failures]
    finally:
        teacher.release.set()
        engine.close()
    assert teacher.batch is not None, "the queued requests were not generated together"
    assert answers == ["먼저", "안녕하세요", "반가워요"]
    assert teacher.alive_during_retries == [False, False, False]
    assert str(error) == "CUDA out of memory: tried to allocate 2.00 GiB" and alive == [False]


def test_a_failed_request_keeps_its_error_but_not_its_memory(caplog):
    """The waiting request gets the error's type and message (its 500 names them), not the traceback that would
    keep the failed generation's tensors alive for as long as the answer is held; the engine logs the traceback."""
    teacher = OutOfMemoryTeacher()
    teacher.started.set()
    engine = Engine(teacher, max_batch=4)
    try:
        error = engine.submit(ask("💥")).exception(timeout=30)
        gc.collect()
        alive = teacher.solo_failures[0]() is not None
    finally:
        engine.close()
    assert f"{type(error).__name__}: {error}" == "RuntimeError: CUDA out of memory: tried to allocate 2.00 GiB"
    assert not alive and error.__traceback__ is None
    assert "Traceback" in caplog.text and "CUDA out of memory: tried to allocate" in caplog.text


class FailsAfterItsFirstRow(OutOfMemoryTeacher):
    """A batch whose first row ends (and is answered) before the rest of the batch runs out of memory."""

    def generate(self, requests, *, progress=True, on_row=None):
        if self.started.is_set() and len(requests) > 1:
            on_row(0, Generation(requests[0].messages[-1]["content"], None, "stop"))
        return super().generate(requests, progress=progress, on_row=on_row)


def test_a_batch_failing_after_a_row_was_answered_retries_only_the_others():
    """A row answered as it ended keeps its answer when its batch fails later; only the unanswered ones are generated
    again, each alone."""
    teacher = FailsAfterItsFirstRow()
    engine = Engine(teacher, max_batch=4)
    try:
        first = engine.submit(ask("먼저"))
        assert teacher.started.wait(30)
        queued = [engine.submit(ask(text)) for text in ("짧은 답", "긴 답")]
        teacher.release.set()
        answers = [f.result(timeout=30).text for f in (first, *queued)]
    finally:
        teacher.release.set()
        engine.close()
    assert teacher.batch is not None, "the queued requests were not generated together"
    assert answers == ["먼저", "짧은 답", "긴 답"]
    assert len(teacher.alive_during_retries) == 1  # "긴 답" alone; "짧은 답" was not generated again
    assert engine.completions == 3
