"""The HTTP teacher's failures: retries with backoff, timeouts, errors not retried, a hosted API's refusals."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from data_tools.teacher_http import HTTPTeacher
from data_tools.teachers import GenerationRequest, TeacherError
from tests.data_tools.teacher_helpers import LocalHTTP, StrictOpenAI, cache_files, requests, stats


class FaultProxy(LocalHTTP):
    """A local HTTP proxy in front of the real server that first answers with the given faults
    ((status, retry_after) pairs), or holds each request for `delay_s` before forwarding it."""

    def __init__(self, upstream: str, faults=(), delay_s: float = 0.0):
        self.upstream, self.faults, self.delay_s, self.hits = upstream.removesuffix("/v1"), list(faults), delay_s, []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                proxy.hits.append(time.monotonic())
                if proxy.faults:
                    status, retry_after = proxy.faults.pop(0)
                    self.send_response(status)
                    if retry_after is not None:
                        self.send_header("Retry-After", str(retry_after))
                    self.end_headers()
                    self.wfile.write(json.dumps({"error": {"message": f"injected {status}"}}).encode())
                    return
                time.sleep(proxy.delay_s)
                try:
                    answer = httpx.post(proxy.upstream + self.path, content=body, timeout=30,
                                        headers={"content-type": "application/json"})
                    self.send_response(answer.status_code)
                    self.end_headers()
                    self.wfile.write(answer.content)
                except (OSError, httpx.HTTPError):  # the client gave up waiting, or the test is over
                    pass

        self.serve(Handler)


def test_503_and_429_are_retried_with_exponential_backoff_and_retry_after(server, teacher):
    proxy = FaultProxy(server, faults=[(503, None), (503, None), (503, None), (429, 0.4)])
    before = stats(server)["requests"]
    try:
        [g] = HTTPTeacher(proxy.url, "tiny-ko", backoff_s=0.05, max_retries=5).generate(requests(1), progress=False)
    finally:
        proxy.close()
    assert len(proxy.hits) == 5 and stats(server)["requests"] - before == 1  # 4 faults, then the real answer
    assert g.text == teacher.generate(requests(1), progress=False)[0].text
    gaps = [b - a for a, b in zip(proxy.hits, proxy.hits[1:])]
    assert [gap >= 0.05 * 2**i * 0.5 for i, gap in enumerate(gaps[:3])] == [True] * 3  # 25, 50, 100 ms at least
    assert gaps[3] >= 0.4  # the server's Retry-After beats the shorter backoff


def test_retries_give_up_with_the_last_error():
    proxy = FaultProxy("http://127.0.0.1:9", faults=[(503, None)] * 10)
    try:
        with pytest.raises(TeacherError, match=r"failed 3 times; last: HTTP 503: injected 503"):
            HTTPTeacher(proxy.url, "tiny-ko", max_retries=2, backoff_s=0.01).generate(requests(1), progress=False)
    finally:
        proxy.close()
    assert len(proxy.hits) == 3


def test_a_timeout_is_retried_then_raises_a_clear_error(server):
    proxy = FaultProxy(server, delay_s=1.5)
    try:
        with pytest.raises(TeacherError, match=r"failed 2 times; last: no answer within timeout_s=0.3") as e:
            HTTPTeacher(proxy.url, "tiny-ko", timeout_s=0.3, max_retries=1, backoff_s=0.01).generate(
                requests(1), progress=False)
    finally:
        proxy.close()
    # the proxy answers after 1.5 s: an error at all means each try gave up at timeout_s (no timed assertion: CI
    # under load took longer than a bound on the wall clock)
    assert len(proxy.hits) == 2
    assert "raise timeout_s" in str(e.value)


def test_other_4xx_fail_at_once_with_the_servers_message(server):
    before = stats(server)["requests"]
    with pytest.raises(TeacherError, match="answered 404: the model 'gpt-x' does not exist"):
        HTTPTeacher(server, "gpt-x", backoff_s=0.01).generate(requests(1), progress=False)
    bad = GenerationRequest([{"role": "bot", "content": "안녕"}], seed=0)  # 400: this request only, not the job
    [refused] = HTTPTeacher(server, "tiny-ko", backoff_s=0.01).generate([bad], progress=False)
    assert refused.finish_reason == "error" and "messages[0].role='bot' is not allowed" in refused.error
    assert stats(server)["requests"] - before == 2  # one request each: no retries


def test_a_base_url_without_scheme_or_v1_is_named_as_the_problem(server, monkeypatch):
    with pytest.raises(TeacherError, match="has no http:// or https://") as e:
        HTTPTeacher(server.removeprefix("http://"), "tiny-ko")  # at once, not after six retries
    assert "http://127.0.0.1:8000/v1" in e.value.fix
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    root = server.removesuffix("/v1")
    with pytest.raises(TeacherError, match="answered 404") as e:
        HTTPTeacher(root, "tiny-ko", backoff_s=0.01).generate(requests(1), progress=False)
    assert f"{root}/v1" in e.value.fix
    proxy = FaultProxy(server, faults=[(403, None)])
    try:
        with pytest.raises(TeacherError, match="answered 403") as e:
            HTTPTeacher(proxy.url, "tiny-ko").generate(requests(1), progress=False)
    finally:
        proxy.close()
    assert "$OPENAI_API_KEY is not set" in e.value.fix and "$None" not in e.value.fix


@pytest.fixture
def strict():
    fake = StrictOpenAI()
    yield fake
    fake.close()


def test_a_hosted_api_that_refuses_chat_template_kwargs_is_asked_again_without_it(strict, caplog):
    batch = requests(3, chat_template_kwargs={"enable_thinking": False})
    teacher = HTTPTeacher(strict.url, "gpt-x", concurrency=1, max_retries=0)
    with caplog.at_level("WARNING"):
        first = teacher.generate(batch, progress=False)
        again = teacher.generate(requests(2, seed0=10, chat_template_kwargs={"enable_thinking": False}),
                                 progress=False)
    assert [g.finish_reason for g in first + again] == ["stop"] * 5 and all("좋은 질문" in g.text for g in first)
    assert ["chat_template_kwargs" in b for b in strict.bodies] == [True] + [False] * 5  # one refusal, then never
    assert caplog.text.count("does not take chat_template_kwargs") == 1


def test_a_request_the_endpoint_refuses_is_a_failed_generation_not_a_failed_job(strict, tmp_path, caplog):
    batch = requests(4)
    batch[2].messages[-1]["content"] = "LONG " * 20
    batch[2].where = "prompts.jsonl:3"
    teacher = HTTPTeacher(strict.url, "gpt-x", cache_dir=tmp_path)
    with caplog.at_level("WARNING"):
        out = teacher.generate(batch, progress=False)
    assert [g.finish_reason for g in out] == ["stop", "stop", "error", "stop"]
    assert out[2].text == "" and "maximum context length" in out[2].error
    assert len(teacher.refused) == 1 and teacher.refused[0][0] == "prompts.jsonl:3"
    assert "prompts.jsonl:3" in caplog.text and "maximum context length" in caplog.text
    assert len(cache_files(tmp_path)) == 3  # the refusal is not cached: a rerun (say with a longer context) asks it
    sent = len(strict.bodies)
    HTTPTeacher(strict.url, "gpt-x", cache_dir=tmp_path).generate(batch, progress=False)
    assert len(strict.bodies) - sent == 1


def test_a_wrong_api_key_still_stops_the_job():
    fake = StrictOpenAI(key="sk-right")
    try:
        with pytest.raises(TeacherError, match="answered 401: Incorrect API key") as e:
            HTTPTeacher(fake.url, "gpt-x", api_key_env="NO_SUCH_VARIABLE").generate(requests(3), progress=False)
    finally:
        fake.close()
    assert "API key" in e.value.fix


def test_a_greedy_request_is_cached_whatever_its_seed(strict, tmp_path):
    """Greedy decoding reads no seed: the same question at temperature 0 under another seed (the judge's row moved
    in its batch) is a cache hit, not a second payment. A sampled one keeps its seed in the key."""
    teacher = HTTPTeacher(strict.url, "gpt-x", cache_dir=tmp_path, max_retries=0)
    teacher.generate(requests(3, temperature=0.0), progress=False)
    sent = len(strict.bodies)
    again = teacher.generate(requests(3, seed0=100, temperature=0.0), progress=False)
    assert len(strict.bodies) == sent and all(g.cached for g in again)
    teacher.generate(requests(3, temperature=0.7), progress=False)
    sent = len(strict.bodies)
    sampled = teacher.generate(requests(3, seed0=100, temperature=0.7), progress=False)
    assert len(strict.bodies) - sent == 3 and not any(g.cached for g in sampled)
