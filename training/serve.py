"""`kosov serve`: an OpenAI-compatible HTTP server for a recipe's base model plus an optional adapter.

    kosov serve experiment=smoke-sft serve.adapter=outputs/smoke-sft/<run> serve.port=8000
    curl localhost:8000/v1/chat/completions -H 'Content-Type: application/json' \
        -d '{"model": "tiny-ko+outputs/smoke-sft/<run>", "messages": [{"role": "user", "content": "안녕?"}]}'

Endpoints: `GET /v1/models`, `POST /v1/chat/completions` (OpenAI schema, no streaming; Qwen3-style
`chat_template_kwargs` such as enable_thinking; the <think> part comes back as message.reasoning_content),
`GET /health` and `GET /stats` (request and token counters). Any `HTTPTeacher` can use it as a teacher. The
request schema is serve_schema's: vLLM's top_k and min_p are accepted too, and a sampling setting a request leaves
out takes the model's generation_config.json value, as in vLLM (the startup log says which).

Generation goes through `data_tools.teachers.TransformersTeacher`, so a seeded request gives the same text here
as in-process. One worker thread owns the model: requests queue and are generated `serve.max_batch` at a time, each
answered as soon as its own answer ends (a request arriving meanwhile waits for the batch's longest; see
serve_engine). A request whose client leaves stops generating at its next token. The prompt is rendered and counted
off the event loop (a long one takes seconds), so /health answers meanwhile; one that cannot fit the context is
refused before that.
An adapter of a kosov run is served with the chat template and end of turn its run trained with. Ctrl-C (or SIGTERM)
takes no more connections and gives the requests received, the queued ones too, up to serve.shutdown_timeout_s to be
answered; then, or at a second Ctrl-C, those still waiting answer a 503 at once (the queued ones are never generated,
the ones generating stop at their next token) and the server exits once the batch under way ends (see
serve_shutdown).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import anyio
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from data_tools.teachers import TransformersTeacher
from training.errors import KosovError
from training.serve_engine import Engine
from training.serve_schema import BadRequest, ChatRequest, describe_sampling, to_generation_request
from training.serve_shutdown import AnswerWhenForced, ForcedShutdown, QuietCancelled, Server
from training.schema import ServeConfig
from training.adapters import adapter_dir, adapter_model_config, check_adapter_base, trained_thinking
from training.models import (check_attention, check_remote_code, load_for_inference, load_tokenizer, stop_ids,
                             model_source, resolve_device)

log = logging.getLogger(__name__)

CHAT_PATH = "/v1/chat/completions"


@dataclass
class ServerStats:
    requests: int = 0  # POSTs to /v1/chat/completions received (any outcome)
    in_flight: int = 0  # ... being handled now (queued or generating)
    max_in_flight: int = 0


def load_teacher(cfg: Any, scfg: ServeConfig) -> TransformersTeacher:
    """The recipe's base (+ serve.adapter) as a TransformersTeacher; every check runs before weights load."""
    mcfg = cfg.model
    device = resolve_device(cfg.device)
    source, is_local = model_source(mcfg)
    check_remote_code(mcfg, source, is_local)
    check_attention(mcfg, device, training=False)
    adapter = adapter_dir(scfg.adapter) if scfg.adapter else None
    if adapter is not None:
        check_adapter_base(adapter, source, mcfg.name_or_path, mcfg.revision)
        mcfg = adapter_model_config(mcfg, adapter)
    tokenizer = load_tokenizer(mcfg, source)
    stops = stop_ids(mcfg, tokenizer)  # an unknown end-of-turn token fails here, before the model loads
    model = load_for_inference(cfg, source, device, adapter)
    if adapter is not None:
        log.info("serving the adapter %s on %s", adapter, mcfg.name_or_path)
    name = scfg.model_name or (mcfg.name_or_path if adapter is None else f"{mcfg.name_or_path}+{scfg.adapter}")
    # An adapter answers in the thinking mode its run trained (a request's enable_thinking wins): the template's
    # own default (Qwen3: thinking on) would prompt an adapter trained with thinking off as it never was.
    thinking = trained_thinking(adapter) if adapter is not None else None
    # an answer ends with its turn (<|im_end|>), also where the base's eos is another token
    teacher = TransformersTeacher(model, tokenizer, name, batch_size=scfg.max_batch, stop_token_ids=stops,
                                  template_defaults=None if thinking is None else {"enable_thinking": thinking})
    log.info("a request that leaves out a sampling setting gets %s", describe_sampling(teacher))
    return teacher


def check_serve_config(scfg: ServeConfig) -> None:
    if scfg.max_batch < 1:
        raise KosovError(f"serve.max_batch={scfg.max_batch} is not allowed", fix="use 1 or more")
    if not 0 <= scfg.port <= 65535:
        raise KosovError(f"serve.port={scfg.port} is not a TCP port", fix="use 1-65535, or 0 for any free port")
    if scfg.shutdown_timeout_s is not None and not scfg.shutdown_timeout_s >= 0:
        raise KosovError(f"serve.shutdown_timeout_s={scfg.shutdown_timeout_s} is not allowed",
                         fix="use 0 or more seconds, or null to wait for every request received")
    if scfg.api_key_env and not os.environ.get(scfg.api_key_env):
        raise KosovError(f"serve.api_key_env={scfg.api_key_env}, but that environment variable is empty",
                         fix=f"export {scfg.api_key_env}=<a secret key>, or set serve.api_key_env=null")
    if not scfg.api_key_env and scfg.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serve.host=%s accepts connections from the network, without an API key (serve.api_key_env)",
                    scfg.host)


def _error(status: int, message: str, param: str | None = None, kind: str = "invalid_request_error"):
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": None}}, status)


def shutting_down() -> JSONResponse:
    return _error(503, "the server is shutting down", kind="server_error")


class CountAndAuthorize:
    """The API key check on /v1/* and the request counters of /stats. Plain ASGI, not BaseHTTPMiddleware: under
    that, a handler watching for its client to leave (Request.is_disconnected) left the middleware waiting."""

    def __init__(self, app: Any, scfg: ServeConfig, stats: ServerStats):
        self.app, self.scfg, self.stats = app, scfg, stats

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request, key_env, stats = Request(scope), self.scfg.api_key_env, self.stats
        if key_env and request.url.path.startswith("/v1/"):
            sent = request.headers.get("authorization", "").strip()
            if sent[:7].lower() == "bearer ":  # the scheme is case-insensitive (RFC 7235)
                sent = sent[7:].strip()
            if not hmac.compare_digest(sent.encode(), os.environ.get(key_env, "").encode()):
                denied = _error(401, "missing or wrong API key (send Authorization: Bearer <key>)", kind="auth_error")
                return await denied(scope, receive, send)
        if request.url.path != CHAT_PATH:
            return await self.app(scope, receive, send)
        stats.requests += 1  # the event loop is one thread: these counters need no lock
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            return await self.app(scope, receive, send)
        finally:
            stats.in_flight -= 1


def create_app(teacher: TransformersTeacher, engine: Engine, scfg: ServeConfig) -> FastAPI:
    app = FastAPI(title="kosov serve", version="1")
    stats = ServerStats()
    created = int(time.time())

    # A forced shutdown (a second Ctrl-C, or serve.shutdown_timeout_s passed): the engine takes nothing more and
    # every request not answered yet answers 503 now, while its connection is open; its generation stops (abandon).
    forced = ForcedShutdown(engine.stop, shutting_down)
    app.add_middleware(CountAndAuthorize, scfg=scfg, stats=stats)
    app.add_middleware(AnswerWhenForced, shutdown=forced)  # outermost of the two: it answers whatever is waiting
    app.state.force_shutdown = forced.force

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":
            return _error(400, f"the request body is not valid JSON: {first.get('ctx', {}).get('error', '')}")
        content_type = request.headers.get("content-type", "")
        if tuple(first.get("loc", ())) == ("body",) and "json" not in content_type:  # curl -d sends a form type
            return _error(400, f"the request body was sent as {content_type or 'no content type'}: send it as JSON "
                               "with the header Content-Type: application/json (curl: -H 'Content-Type: "
                               "application/json')")
        param = ".".join(str(p) for p in first["loc"][1:]) or None
        return _error(400, f"{param}: {first['msg']}" if param else first["msg"], param)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request, exc: StarletteHTTPException):  # FastAPI's own 4xx (unknown path, bad body)
        cause = exc.__cause__
        message = (f"the request body is not valid JSON: {cause}" if isinstance(cause, UnicodeDecodeError)
                   else str(exc.detail))
        response = _error(exc.status_code, message, kind="invalid_request_error" if exc.status_code < 500
                          else "server_error")
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(BadRequest)
    async def bad(_request, exc: BadRequest):
        return _error(exc.status, exc.message, exc.param)

    @app.get("/health")
    async def health() -> dict:  # on the event loop: answers while the thread pool is busy preparing prompts
        return {"status": "ok"}

    @app.get("/stats")
    def read_stats() -> dict:
        return {**vars(stats), "completions": engine.completions, "batches": engine.batches,
                "completion_tokens": engine.completion_tokens, "abandoned": engine.abandoned}

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": teacher.name, "object": "model", "created": created,
                                            "owned_by": "kosov"}]}

    @app.post(CHAT_PATH)
    async def chat_completions(body: ChatRequest, http: Request):  # waits without a thread: /health answers
        if body.model is not None and body.model != teacher.name:
            raise BadRequest(f"the model {body.model!r} does not exist here; this server serves {teacher.name!r}",
                             "model", status=404)
        # rendering and tokenizing a long prompt takes seconds: in a thread, which a forced shutdown need not wait for
        request = await anyio.to_thread.run_sync(to_generation_request, body, teacher, abandon_on_cancel=True)
        future = engine.submit(request)
        waiting = asyncio.wrap_future(future)
        try:
            while not (await asyncio.wait({waiting}, timeout=0.5))[0]:
                if await http.is_disconnected():  # the client gave up: its generation stops, or never starts
                    engine.abandon(request, future)
                    return _error(499, "the client closed the connection", kind="client_closed")
        except asyncio.CancelledError:  # a forced shutdown answers for it (AnswerWhenForced): its request is dropped
            engine.abandon(request, future)
            raise
        if waiting.cancelled():  # the engine closed before its turn, or a forced shutdown
            return shutting_down()
        try:
            generation = waiting.result()
        except Exception as e:  # noqa: BLE001 - an engine failure (e.g. out of memory) is the server's error
            log.exception("generation failed")
            return _error(500, f"generation failed: {type(e).__name__}: {e}", kind="server_error")
        message: dict[str, Any] = {"role": "assistant", "content": generation.text}
        if generation.reasoning is not None:
            message["reasoning_content"] = generation.reasoning
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": teacher.name, "usage": generation.usage,
                "choices": [{"index": 0, "message": message, "finish_reason": generation.finish_reason}]}

    return app


def _bind(scfg: ServeConfig) -> socket.socket:
    family = socket.AF_INET6 if ":" in scfg.host else socket.AF_INET
    try:
        return socket.create_server((scfg.host, scfg.port), family=family)
    except OSError as e:
        raise KosovError(f"cannot listen on {scfg.host}:{scfg.port}: {e}",
                         fix="choose another serve.port (0 = any free one) or stop what uses it") from None


def _prepare(cfg: Any, serve_cfg: ServeConfig | None):
    scfg = serve_cfg or getattr(cfg, "serve", None) or ServeConfig()
    check_serve_config(scfg)
    sock = _bind(scfg)  # a port in use fails before the weights load
    try:
        teacher = load_teacher(cfg, scfg)
    except BaseException:
        sock.close()
        raise
    engine = Engine(teacher, scfg.max_batch)
    app = create_app(teacher, engine, scfg)
    server = Server(uvicorn.Config(app, log_config=None, access_log=False), app.state.force_shutdown,
                    scfg.shutdown_timeout_s)
    host, port = sock.getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/v1"
    return teacher, engine, server, sock, url


def serve(cfg: Any, serve_cfg: ServeConfig | None = None) -> None:
    """Serve until interrupted (Ctrl-C). `serve_cfg` defaults to cfg.serve."""
    teacher, engine, server, sock, url = _prepare(cfg, serve_cfg)
    log.info("serving %s at %s (POST %s/chat/completions)", teacher.name, url, url)
    quiet = QuietCancelled()
    logging.getLogger("uvicorn.error").addFilter(quiet)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down gracefully on Ctrl-C (see Server), then re-raises it
        pass
    finally:
        if server.force_exit:
            log.info("%s: the waiting requests were answered 503; finishing the batch being generated",
                     "shutdown timeout" if server.timed_out else "forced shutdown")
        engine.close()
        sock.close()
        logging.getLogger("uvicorn.error").removeFilter(quiet)
    log.info("stopped serving %s", teacher.name)


def start_in_thread(cfg: Any, serve_cfg: ServeConfig | None = None) -> tuple[str, Callable[[], None]]:
    """Start the server in a background thread: (base_url ending in /v1, stop). For tests and notebooks."""
    teacher, engine, server, sock, url = _prepare(cfg, serve_cfg)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="kosov-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            engine.close()
            sock.close()
            raise KosovError(f"the server for {teacher.name} did not start", fix="see the log above")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True  # answers the requests in flight (503 after serve.shutdown_timeout_s), returns
        thread.join()
        engine.close()
        sock.close()

    log.info("serving %s at %s", teacher.name, url)
    return url, stop
