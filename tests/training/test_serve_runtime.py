"""`kosov serve` at work: micro-batching, failures and load, the API key, bad settings, shutdown with a queue."""

from __future__ import annotations

import asyncio
import json
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import CancelledError, ThreadPoolExecutor

import httpx
import pytest

from tests.training.serve_helpers import answer, ask, chat, echo
from training.config import KosovConfig
from training.errors import KosovError
from training.recipes import compose
from training.serve import Engine, ServeConfig, create_app, load_teacher, start_in_thread


def test_one_failing_request_does_not_fail_the_requests_batched_with_it(monkeypatch):
    """A generation that fails for one request (here: out of memory for the message with 💥) answers that request
    with a 500; the others in its batch are generated again on their own and answered."""
    from data_tools.teachers import TransformersTeacher

    generate = TransformersTeacher.generate

    def failing(self, requests, **kwargs):
        if any("💥" in m["content"] for r in requests for m in r.messages):
            raise RuntimeError("CUDA out of memory")
        return generate(self, requests, **kwargs)

    monkeypatch.setattr(TransformersTeacher, "generate", failing)
    url, stop = start_in_thread(KosovConfig(), ServeConfig(port=0, max_batch=4))
    try:
        with ThreadPoolExecutor(4) as pool:
            slow = pool.submit(chat, url, max_tokens=400, seed=0)  # the queue fills behind it
            time.sleep(0.2)
            rest = [pool.submit(chat, url, max_tokens=8, seed=1, messages=[{"role": "user", "content": text}])
                    for text in ("안녕하세요", "💥", "반가워요")]
            responses = [f.result() for f in (slow, *rest)]
    finally:
        stop()
    assert [r.status_code for r in responses] == [200, 200, 500, 200]
    assert responses[2].json()["error"] == {"message": "generation failed: RuntimeError: CUDA out of memory",
                                            "type": "server_error", "param": None, "code": None}


def test_health_answers_under_load_and_abandoned_requests_are_not_generated():
    """While one long generation runs, /health answers at once; four clients that give up while queued behind it
    cost no generation (their futures are cancelled before their turn)."""
    url, stop = start_in_thread(KosovConfig(), ServeConfig(port=0, max_batch=1))
    root = url.removesuffix("/v1")

    def impatient(i: int) -> bool:
        try:
            chat(url, max_tokens=1500, seed=i, messages=[{"role": "user", "content": f"{i}번"}], timeout=0.5)
        except httpx.TimeoutException:
            return True
        return False

    try:
        with ThreadPoolExecutor(8) as pool:
            slow = pool.submit(chat, url, max_tokens=2000, seed=0, timeout=600)  # minutes on a busy CPU
            time.sleep(0.3)
            started = time.monotonic()
            assert httpx.get(f"{root}/health", timeout=5).status_code == 200
            health_s = time.monotonic() - started
            gave_up = list(pool.map(impatient, range(4)))
            assert slow.result().status_code == 200
        time.sleep(1.5)  # the cancelled futures reach the engine
        stats = httpx.get(f"{root}/stats").json()
    finally:
        stop()
    assert health_s < 2 and all(gave_up)
    assert stats["completions"] <= 2 and stats["in_flight"] == 0  # the slow one, at most one caught mid-start


def test_micro_batching_serves_the_same_seeded_answers(server):
    bodies = [{"max_tokens": 12, "seed": s, "messages": [{"role": "user", "content": f"{s}번째 질문입니다."}]}
              for s in range(8)]
    serial = [answer(server, **b)["choices"][0]["message"]["content"] for b in bodies]
    url, stop = start_in_thread(KosovConfig(), ServeConfig(port=0, max_batch=4))
    try:
        with ThreadPoolExecutor(8) as pool:
            batched = list(pool.map(lambda b: answer(url, **b)["choices"][0]["message"]["content"], bodies))
        stats = httpx.get(url.removesuffix("/v1") + "/stats").json()
    finally:
        stop()
    assert batched == serial
    assert stats["completions"] == 8 and stats["batches"] < 8  # some requests were generated together


def test_an_api_key_guards_the_v1_endpoints(monkeypatch):
    monkeypatch.setenv("KOSOV_SERVE_TEST_KEY", "sk-serve-test-key")
    url, stop = start_in_thread(KosovConfig(), ServeConfig(port=0, api_key_env="KOSOV_SERVE_TEST_KEY"))
    try:
        assert httpx.get(f"{url}/models").status_code == 401
        wrong = httpx.get(f"{url}/models", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "API key" in wrong.json()["error"]["message"]
        for header in ("Bearer sk-serve-test-key", "bearer sk-serve-test-key", "sk-serve-test-key"):
            assert httpx.get(f"{url}/models", headers={"Authorization": header}).status_code == 200, header
        assert httpx.get(url.removesuffix("/v1") + "/health").json() == {"status": "ok"}
    finally:
        stop()


def test_bad_serve_settings_fail_before_the_model_loads(monkeypatch):
    monkeypatch.delenv("KOSOV_EMPTY_KEY", raising=False)
    with pytest.raises(KosovError, match="serve.api_key_env=KOSOV_EMPTY_KEY"):
        start_in_thread(KosovConfig(), ServeConfig(port=0, api_key_env="KOSOV_EMPTY_KEY"))
    with pytest.raises(KosovError, match="serve.max_batch=0"):
        start_in_thread(KosovConfig(), ServeConfig(port=0, max_batch=0))
    with pytest.raises(KosovError, match="serve.shutdown_timeout_s=-1.0 is not allowed"):
        start_in_thread(KosovConfig(), ServeConfig(port=0, shutdown_timeout_s=-1.0))


def test_the_shutdown_timeout_composes_from_the_command_line():
    assert compose([]).serve.shutdown_timeout_s == 25  # under the 30 s Kubernetes and Slurm leave before SIGKILL
    assert compose(["serve.shutdown_timeout_s=null"]).serve.shutdown_timeout_s is None
    assert compose(["serve.shutdown_timeout_s=2"]).serve.shutdown_timeout_s == 2.0


def test_a_port_in_use_fails_before_the_model_loads():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        with pytest.raises(KosovError, match="cannot listen on 127.0.0.1"):
            start_in_thread(KosovConfig(), ServeConfig(port=taken.getsockname()[1]))


def test_serve_blocks_until_ctrl_c_then_exits_cleanly():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    code = ("from training.config import KosovConfig; from training.serve import ServeConfig, serve; "
            f"serve(KosovConfig(), ServeConfig(port={port}))")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, process.stdout.read().decode()
                time.sleep(0.1)
        assert answer(f"http://127.0.0.1:{port}/v1", max_tokens=4, seed=0)["usage"]["completion_tokens"] >= 1
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()


GATED_SERVE = """
import json, logging, sys
from data_tools.teachers import TransformersTeacher
from training.config import KosovConfig
from training.serve import ServeConfig, serve
logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
generate = TransformersTeacher.generate
def gated(self, requests, **kwargs):  # a long generation: it ends when the test writes a line to stdin
    print("generating", flush=True)
    sys.stdin.readline()
    return generate(self, requests, **kwargs)
TransformersTeacher.generate = gated
serve(KosovConfig(), ServeConfig(port=int(sys.argv[1]), max_batch=1, shutdown_timeout_s=json.loads(sys.argv[2])))
"""


class GatedServer:
    """`kosov serve` in a process of its own whose every generation waits for a line on its stdin (GATED_SERVE)."""

    def __init__(self, shutdown_timeout_s: float | None):
        with socket.create_server(("127.0.0.1", 0)) as probe:
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        self.process = subprocess.Popen([sys.executable, "-c", GATED_SERVE, str(port), json.dumps(shutdown_timeout_s)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True)
        self.lines: queue.Queue = queue.Queue()
        self.reader = threading.Thread(target=lambda: [*map(self.lines.put, self.process.stdout), self.lines.put(None)],
                                       daemon=True)
        self.reader.start()
        self.seen: list[str] = []

    def wait_for(self, start: str) -> str:
        while True:
            line = self.lines.get(timeout=60)
            assert line is not None, "".join(self.seen)  # the server exited
            self.seen.append(line)
            if line.startswith(start):
                return line

    def wait_in_flight(self, n: int) -> None:
        deadline = time.monotonic() + 30
        while httpx.get(f"{self.url.removesuffix('/v1')}/stats").json()["in_flight"] < n:
            assert time.monotonic() < deadline
            time.sleep(0.02)

    def release(self, generations: int) -> None:
        self.process.stdin.write("\n" * generations)
        self.process.stdin.flush()

    def exit_and_log(self) -> str:
        """Wait for the server to exit 0; its whole output."""
        assert self.process.wait(timeout=30) == 0
        self.reader.join(30)
        return "".join(self.seen + list(iter(self.lines.get_nowait, None)))


def sending_its_body(url: str) -> httpx.Response:
    """A request whose client is still sending its body: a space every 50 ms after the first bytes, for 30 s."""
    def body():
        yield b'{"model": "tiny-ko", "max_tokens": 2, "messages": '
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.05)
            yield b" "

    return httpx.post(f"{url}/chat/completions", content=body(), headers={"Content-Type": "application/json"},
                      timeout=60)


def assert_json_503(answers: list[httpx.Response]) -> None:
    assert [(a.status_code, a.headers["content-type"]) for a in answers] == [(503, "application/json")] * len(answers)
    assert {a.json()["error"]["type"] for a in answers} == {"server_error"}


@pytest.mark.parametrize("ctrl_c", [1, 2])
def test_ctrl_c_answers_the_waiting_requests_and_a_second_one_answers_them_503_at_once(ctrl_c):
    """`kosov serve` in a process of its own, one request generating and two queued behind it, then Ctrl-C: they
    are all answered. Ctrl-C twice: all three get a JSON 503 at once, before the generation under way ends (uvicorn
    alone left them a text/plain 500), the queued ones are never generated, and the server exits when it ends. So does
    a fourth whose client is still sending its body (uvicorn's teardown answered it a text/plain 500)."""
    server = GatedServer(shutdown_timeout_s=None)
    url = server.url
    try:
        server.wait_for("Application startup complete")
        with ThreadPoolExecutor(4) as pool:
            asked = [pool.submit(chat, url, max_tokens=2, seed=0)]
            server.wait_for("generating")
            asked += [pool.submit(chat, url, max_tokens=2, seed=i) for i in (1, 2)]
            if ctrl_c == 2:
                asked.append(pool.submit(sending_its_body, url))
            server.wait_in_flight(len(asked))
            server.process.send_signal(signal.SIGINT)
            server.wait_for("Shutting down")  # uvicorn took the first Ctrl-C
            if ctrl_c == 2:
                server.process.send_signal(signal.SIGINT)
                for f in asked:
                    f.result(timeout=10)  # answered while the generation under way still waits for stdin
            server.release(3)
            answers = [f.result(timeout=30) for f in asked]
        output = server.exit_and_log()
    finally:
        server.process.kill()
    assert output.count("generating") == (3 if ctrl_c == 1 else 1)  # Ctrl-C twice: the queued never are
    if ctrl_c == 1:
        assert [a.status_code for a in answers] == [200] * 3
    else:
        assert_json_503(answers)


def test_the_shutdown_timeout_answers_the_requests_still_waiting_503_without_a_second_ctrl_c():
    """serve.shutdown_timeout_s=2: after one Ctrl-C, the generation under way that ends within 2 s is answered; at
    2 s the request then generating, the one queued behind it and one whose client is still sending its body get a
    JSON 503 (uvicorn's own timeout would have sent a text/plain 500), while the generation under way still runs; the
    queued one is never generated."""
    server = GatedServer(shutdown_timeout_s=2)
    url = server.url
    try:
        server.wait_for("Application startup complete")
        with ThreadPoolExecutor(4) as pool:
            first = pool.submit(chat, url, max_tokens=2, seed=0)
            server.wait_for("generating")
            waiting = [pool.submit(chat, url, max_tokens=2, seed=i) for i in (1, 2)]
            waiting.append(pool.submit(sending_its_body, url))
            server.wait_in_flight(4)
            server.process.send_signal(signal.SIGINT)
            signalled = time.monotonic()
            server.wait_for("Shutting down")  # uvicorn took the Ctrl-C
            server.release(1)  # the first generation ends within the timeout
            assert first.result(timeout=30).status_code == 200
            server.wait_for("generating")  # the next one starts, and waits for stdin past the timeout
            answers = [f.result(timeout=10) for f in waiting]  # no second Ctrl-C
            answered_s = time.monotonic() - signalled
            server.release(1)
        output = server.exit_and_log()
    finally:
        server.process.kill()
    assert_json_503(answers)
    assert 1.5 < answered_s < 8
    assert output.count("generating") == 2 and "serve.shutdown_timeout_s=2 passed" in output
    assert "up to 2 s (serve.shutdown_timeout_s)" in output and "Ctrl-C again answers them 503 at once" in output


class GatedTeacher:
    """A teacher whose generate() blocks until released: a long generation the queue waits behind."""

    def __init__(self):
        self.started, self.release, self.generated = threading.Event(), threading.Event(), []

    def generate(self, requests, *, progress=True, on_row=None):
        self.started.set()
        assert self.release.wait(60)
        self.generated += [r.messages[-1]["content"] for r in requests]
        return echo(requests, on_row)


def test_closing_the_engine_cancels_the_queued_requests_instead_of_generating_them():
    """Ctrl-C with requests queued behind a long generation: they are cancelled at once, never generated; close()
    returns when the generation under way ends."""
    teacher = GatedTeacher()
    engine = Engine(teacher, max_batch=1)
    first = engine.submit(ask("먼저"))
    assert teacher.started.wait(30)
    queued = [engine.submit(ask(f"{i}번")) for i in range(4)]
    closing = threading.Thread(target=engine.close)
    closing.start()
    try:
        for future in queued:
            with pytest.raises(CancelledError):
                future.result(timeout=20)
    finally:
        teacher.release.set()
    closing.join(20)
    assert not closing.is_alive() and first.result(timeout=20).text == "먼저"
    assert teacher.generated == ["먼저"]
    assert engine.submit(ask("늦게")).cancelled()  # after close: refused, not queued forever


def test_a_cancelled_request_handler_cancels_its_queued_request():
    """uvicorn cancels the handlers of requests still waiting when the server is forced down (a second Ctrl-C):
    their requests must not be generated afterwards."""
    teacher = load_teacher(KosovConfig(), ServeConfig())
    gate = GatedTeacher()
    teacher.generate = gate.generate
    engine = Engine(teacher, max_batch=1)
    app = create_app(teacher, engine, ServeConfig())

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kosov", timeout=60) as client:
            def post(text):
                body = {"messages": [{"role": "user", "content": text}], "max_tokens": 2}
                return asyncio.create_task(client.post("/v1/chat/completions", json=body))

            first = post("먼저")
            deadline = time.monotonic() + 30
            while not gate.started.is_set():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            waiting = [post(f"{i}번") for i in range(3)]
            while engine.queue.qsize() < 3:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            for task in waiting:
                task.cancel()
            await asyncio.gather(*waiting, return_exceptions=True)
            gate.release.set()
            return (await first).status_code

    try:
        assert asyncio.run(scenario()) == 200
    finally:
        gate.release.set()
        engine.close()
    assert gate.generated == ["먼저"]
