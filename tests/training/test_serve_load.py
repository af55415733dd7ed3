"""`kosov serve` under load it must shrug off: a client that leaves mid-generation, a prompt that takes long to
prepare or can never fit the context, sampling settings out of any range."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from data_tools.sampling import SAMPLING_RANGES, sampling_ok
from tests.training.serve_helpers import USER, ask, chat
from training.config import KosovConfig
from training.serve import Engine, ServeConfig, create_app, load_teacher, start_in_thread
from training.serve_schema import (BadRequest, ChatRequest, ServedRequest, context_tokens, max_token_chars,
                                   to_generation_request)


@pytest.fixture(scope="module")
def teacher():
    return load_teacher(KosovConfig(), ServeConfig(max_batch=2))  # an engine's batch of 2 is one generate()


def test_a_request_whose_client_leaves_stops_generating_and_the_next_one_is_answered():
    """Client A asks for 1500 tokens (seeded: left alone it runs to that limit) and gives up after 1 s; B, sent then,
    asks for 1. A's generation stops when its client leaves (it used to run on to 1500 tokens, 75-110 s on 2 CPU
    cores, and B waited for it)."""
    url, stop = start_in_thread(KosovConfig(), ServeConfig(port=0, max_batch=1))
    try:
        with pytest.raises(httpx.TimeoutException):
            chat(url, max_tokens=1500, seed=1, temperature=1.0, timeout=1)
        started = time.monotonic()
        b = chat(url, max_tokens=1, seed=2, timeout=120)
        b_seconds = time.monotonic() - started
        stats = httpx.get(url.removesuffix("/v1") + "/stats").json()
    finally:
        stop()
    assert b.status_code == 200 and b.json()["usage"]["completion_tokens"] == 1
    assert b_seconds < 30  # generous: a few seconds (the poll for A's client, then B's own token)
    assert stats["abandoned"] == 1 and stats["completions"] == 2
    assert stats["completion_tokens"] < 1500 // 2  # A's share is what it made before its client left


def test_an_abandoned_row_stops_while_the_rest_of_its_batch_runs_on(teacher, monkeypatch):
    """Two requests generated together: the one whose client left stops at its next token; the other gives the
    same seeded answer it gives alone."""
    alone = teacher.generate([ask("반가워요", max_new_tokens=12, seed=3)], progress=False)[0]
    generate, started, release = teacher.generate, threading.Event(), threading.Event()

    def first_waits(requests, **kwargs):  # the queue fills behind the first generation
        started.set()
        assert release.wait(30)
        return generate(requests, **kwargs)

    monkeypatch.setattr(teacher, "generate", first_waits)
    engine = Engine(teacher, max_batch=2)
    try:
        warm = engine.submit(ask("먼저", max_new_tokens=2, seed=0))
        assert started.wait(30)
        # left alone, this one runs to its limit (1500 tokens, 110 s on 2 busy CPU cores)
        long_request = ServedRequest([dict(m) for m in USER], max_new_tokens=1500, seed=1, temperature=1.0, top_p=1.0)
        futures = [engine.submit(long_request), engine.submit(ask("반가워요", max_new_tokens=12, seed=3))]
        release.set()
        warm.result(timeout=60)
        deadline = time.monotonic() + 60
        while not futures[0].running():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.5)  # a few tokens in
        Engine.abandon(long_request, futures[0])
        cut, other = (f.result(timeout=120) for f in futures)
    finally:
        release.set()
        engine.close()
    assert engine.batches == 2 and engine.abandoned == 1  # the warm one, then A and C together
    assert cut.usage["completion_tokens"] < 1500 // 2
    assert other.text == alone.text and other.usage == alone.usage


def test_health_answers_while_a_prompt_is_rendered_and_counted(teacher, monkeypatch):
    """Rendering and tokenizing a long prompt takes seconds (3.6 M characters: 47 s of a frozen server before this
    ran in a thread): meanwhile /health answers. Here rendering waits (up to 20 s) until /health has answered."""
    rendering, health_answered, renders = threading.Event(), threading.Event(), []
    render = teacher.render

    def slow_render(request):  # the request's first render, to count its tokens (generate() renders it again)
        renders.append(request)
        if len(renders) == 1:
            rendering.set()
            health_answered.wait(20)  # on the event loop, this froze it: /health answered only after these 20 s
            rendering.clear()
        return render(request)

    monkeypatch.setattr(teacher, "render", slow_render)
    engine = Engine(teacher, max_batch=1)
    app = create_app(teacher, engine, ServeConfig())

    async def scenario():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kosov",
                                     timeout=60) as client:
            body = {"messages": [{"role": "user", "content": "안녕하세요"}], "max_tokens": 2}
            asked = asyncio.create_task(client.post("/v1/chat/completions", json=body))
            deadline = time.monotonic() + 30
            while not rendering.is_set():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            health = await client.get("/health")
            while_rendering = rendering.is_set()
            health_answered.set()
            return health.status_code, while_rendering, (await asked).status_code

    try:
        assert asyncio.run(scenario()) == (200, True, 200)
    finally:
        health_answered.set()
        engine.close()


def test_a_message_no_context_can_hold_is_refused_at_once_and_health_answers_meanwhile():
    """3.6 M characters of Korean (far over tiny-ko's 2048 tokens): a 400 naming the context, without rendering or
    tokenizing it, and /health answers while it is sent and read."""
    url, stop = start_in_thread(KosovConfig(), ServeConfig(port=0))
    big = [{"role": "user", "content": "경복궁은 조선 왕조의 법궁이다. " * 200_000}]
    try:
        with ThreadPoolExecutor(1) as pool:
            refused = pool.submit(chat, url, messages=big, max_tokens=1, timeout=120)
            time.sleep(0.5)
            started = time.monotonic()
            health = httpx.get(url.removesuffix("/v1") + "/health", timeout=120)
            health_seconds = time.monotonic() - started
            response = refused.result()
    finally:
        stop()
    assert health.status_code == 200 and health_seconds < 10  # generous: it was 47 s
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "messages" and "more than this model's context of 2048 tokens" in error["message"]


def test_the_early_size_check_refuses_only_what_cannot_fit(teacher):
    """The bound: a token stands for at most max_token_chars characters (tiny-ko: 31), so context * 31 characters
    besides spaces cannot fit; one fewer goes on to be counted exactly (and is refused by the exact count)."""
    limit = context_tokens(teacher) * max_token_chars(teacher.tokenizer)
    assert max_token_chars(teacher.tokenizer) == 31 and limit == 2048 * 31

    def refusal(chars: int) -> str:
        body = ChatRequest(messages=[{"role": "system", "content": "가 " * (chars // 2)},
                                     {"role": "user", "content": "나" * (chars - chars // 2)},
                                     {"role": "assistant", "content": "다" * limit},  # may be dropped: not counted
                                     {"role": "user", "content": ""}])
        with pytest.raises(BadRequest) as e:
            to_generation_request(body, teacher)
        return e.value.message

    assert refusal(limit).startswith(f"the messages have {limit} characters (besides spaces)")
    assert "the prompt alone has" in refusal(limit - 1)


@pytest.mark.parametrize("key, value", [("top_k", 10**30), ("top_k", 2**63), ("temperature", float("inf")),
                                        ("temperature", float("nan")), ("top_p", float("nan")),
                                        ("min_p", float("inf"))])
def test_sampling_settings_out_of_any_range_are_refused(key, value):
    assert not sampling_ok(key, value)


def test_a_top_k_too_large_for_torch_gets_a_400_naming_it(server):
    """top_k=1e30 used to reach the sampler and fail there: a 500 "Overflow when unpacking long long"."""
    response = chat(server, top_k=10**30, max_tokens=2)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "top_k" and error["message"] == (f"top_k={10**30} is not allowed: use top_k "
                                                              f"{SAMPLING_RANGES['top_k']}")
    assert chat(server, top_k=2**63 - 1, max_tokens=2, seed=0).status_code == 200  # over the vocabulary: all kept


def test_a_multimodal_configs_text_window_bounds_the_prompt_size():
    """A config that gives its window under text_config only (Gemma 3, Qwen-VL): not 'no bound'."""
    import types

    config = types.SimpleNamespace(text_config=types.SimpleNamespace(max_position_embeddings=32768))
    assert context_tokens(types.SimpleNamespace(model=types.SimpleNamespace(config=config))) == 32768
