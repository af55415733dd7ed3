"""How `kosov serve` stops. The first Ctrl-C (or SIGTERM) takes no more connections and gives the requests received
(the batch being generated and the queued ones) up to serve.shutdown_timeout_s to be answered; a second Ctrl-C, or
that timeout, forces the shutdown: every request still waiting answers a JSON 503 at once, also one whose client is
still sending its body, the queued ones are never generated, the ones generating stop at their next token (their
handlers are cancelled, which abandons their requests), and the process exits once the batch under way ends.

uvicorn's own timeout (timeout_graceful_shutdown) and forced exit cancel the waiting handlers instead, which answers
them a text/plain 500 no OpenAI client can read (and leaves their queued generations to run).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Any, Callable, Optional

import uvicorn

log = logging.getLogger("training.serve")


class ForcedShutdown:
    """The forced shutdown's switch: `force()` stops the engine and answers every request whose response has not
    begun with `answer()` (a JSON 503), through the AnswerWhenForced middleware."""

    def __init__(self, stop_engine: Callable[[], None], answer: Callable[[], Any]):
        self.stop_engine, self.answer = stop_engine, answer
        self.event = asyncio.Event()  # bound to the server's loop when first awaited (Python 3.10+)

    @property
    def forced(self) -> bool:
        return self.event.is_set()

    def force(self) -> None:
        """Called on the server's event loop. Does not block: the batch under way ends once the handlers of its
        requests, cancelled by AnswerWhenForced, have abandoned them (each row stops at its next token)."""
        self.stop_engine()
        self.event.set()


class AnswerWhenForced:
    """Plain ASGI middleware: a request whose response has not begun when the shutdown is forced is answered
    `answer()` at once, whatever its handler was waiting for: the engine, or the rest of the request's body (the
    handler is cancelled; a chat handler cancels its queued generation with it)."""

    def __init__(self, app: Any, shutdown: ForcedShutdown):
        self.app, self.shutdown = app, shutdown

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.shutdown.forced:
            return await self.shutdown.answer()(scope, receive, send)
        began = False

        async def tracked(message: dict) -> None:
            nonlocal began
            began = began or message["type"] == "http.response.start"
            await send(message)

        handler = asyncio.ensure_future(self.app(scope, receive, tracked))
        forced = asyncio.ensure_future(self.shutdown.event.wait())
        try:
            await asyncio.wait({handler, forced}, return_when=asyncio.FIRST_COMPLETED)
            if not handler.done() and not began:
                while not handler.done():  # cancelled again should a handler swallow it (an anyio cancel scope)
                    handler.cancel()
                    await asyncio.wait({handler}, timeout=0.5)
                if not began:
                    return await self.shutdown.answer()(scope, receive, send)
            if not handler.cancelled():
                return await handler  # its response, or its exception (a 500 from ServerErrorMiddleware)
        finally:
            forced.cancel()
            handler.cancel()  # uvicorn's teardown cancelled this request: its handler with it; else a no-op


class Server(uvicorn.Server):
    """uvicorn's Server, whose shutdown is kosov's: serve.shutdown_timeout_s (None: no bound) after the first signal,
    or at a second Ctrl-C, the requests still waiting are answered a JSON 503 by `force_shutdown`. On Python 3.12+
    uvicorn's own forced exit would first wait for their connections to close, that is for every queued generation."""

    def __init__(self, config: uvicorn.Config, force_shutdown: Callable[[], None], timeout_s: Optional[float]):
        super().__init__(config)
        self.force_shutdown, self.timeout_s = force_shutdown, timeout_s
        self.timed_out = False

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.server_state.tasks:
            wait = ("every request received is answered" if self.timeout_s is None else
                    f"the requests received get up to {self.timeout_s:g} s (serve.shutdown_timeout_s), then those "
                    "still waiting are answered 503")
            log.info("stopping: no new connections; %d request(s) in flight; %s. Ctrl-C again answers them 503 at "
                     "once", len(self.server_state.tasks), wait)
        forced = asyncio.create_task(self._answer_when_forced())  # alongside: uvicorn's may wait for the answers
        await super().shutdown(sockets)
        if self.force_exit:
            await forced  # the answers are sent before the teardown
        else:
            forced.cancel()

    async def _answer_when_forced(self) -> None:
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        while not self.force_exit:
            state = self.server_state  # uvicorn waits for the connections too: the timeout bounds that wait
            if deadline is not None and time.monotonic() >= deadline and (state.tasks or state.connections):
                log.info("serve.shutdown_timeout_s=%g passed: answering the %d request(s) still waiting with 503",
                         self.timeout_s, len(self.server_state.tasks))
                self.timed_out = self.force_exit = True  # uvicorn stops waiting for them, as at a second Ctrl-C
                break
            await asyncio.sleep(0.1)  # as often as uvicorn looks
        self.force_shutdown()
        if self.server_state.tasks:  # they answer at once, also one whose client is still sending its body
            await asyncio.wait(set(self.server_state.tasks), timeout=5)


class QuietCancelled(logging.Filter):
    """uvicorn logs a request cancelled at a forced shutdown as 'Exception in ASGI application' with a traceback,
    and the cancelled lifespan as traceback text: that is the shutdown asked for, not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError):
            return False
        return not (isinstance(record.msg, str) and record.msg.startswith("Traceback")
                    and record.msg.rstrip().endswith("CancelledError"))
