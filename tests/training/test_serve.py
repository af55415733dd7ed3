"""`kosov serve` on tiny-ko over real HTTP: the OpenAI schema, sampling settings, stop strings, thinking kwargs,
an adapter (with the chat template its run trained with), micro-batching, the API key, shutdown with requests
queued, and a clear OpenAI-style error for every bad request."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
import unicodedata
from concurrent.futures import CancelledError, ThreadPoolExecutor

import httpx
import pytest

from data_tools.teachers import Generation, GenerationRequest
from training.config import KosovConfig
from training.errors import KosovError
from training.models import load_base_model, load_tokenizer, model_source
from training.serve import Engine, ServeConfig, create_app, load_teacher, start_in_thread
from training.tiny_ko import TEMPLATE_PATH

USER = [{"role": "system", "content": "당신은 친절한 한국어 도우미입니다."},
        {"role": "user", "content": "경복궁은 언제 지어졌나요?"}]


@pytest.fixture(scope="module")
def server():
    url, stop = start_in_thread(KosovConfig(), ServeConfig(port=0))
    yield url
    stop()


@pytest.fixture(scope="module")
def tokenizer():
    cfg = KosovConfig()
    return load_tokenizer(cfg.model, model_source(cfg.model)[0])


def chat(url: str, timeout: float = 60, **body) -> httpx.Response:
    return httpx.post(f"{url}/chat/completions", json={"model": "tiny-ko", "messages": USER, **body}, timeout=timeout)


def answer(url: str, **body) -> dict:
    response = chat(url, **body)
    assert response.status_code == 200, response.text
    return response.json()


def test_models_and_a_korean_chat_completion_in_the_openai_schema(server, tokenizer):
    models = httpx.get(f"{server}/models").json()
    assert models["object"] == "list" and [m["id"] for m in models["data"]] == ["tiny-ko"]
    out = answer(server, max_tokens=12, temperature=0.8, seed=3)
    assert out["object"] == "chat.completion" and out["id"].startswith("chatcmpl-") and out["model"] == "tiny-ko"
    [choice] = out["choices"]
    assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length")
    prompt = tokenizer.apply_chat_template(USER, tokenize=False, add_generation_prompt=True)
    usage = out["usage"]
    assert usage["prompt_tokens"] == len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert 1 <= usage["completion_tokens"] <= 12
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_max_tokens_ends_with_length_and_the_seed_fixes_the_sample(server):
    out = answer(server, max_tokens=3, seed=11)
    assert out["choices"][0]["finish_reason"] == "length" and out["usage"]["completion_tokens"] == 3
    texts = [answer(server, max_tokens=16, seed=s)["choices"][0]["message"]["content"] for s in (5, 5, 6)]
    assert texts[0] == texts[1] != texts[2]
    greedy = [answer(server, max_tokens=16, temperature=0)["choices"][0]["message"]["content"] for _ in range(2)]
    assert greedy[0] == greedy[1]


def test_stop_strings_cut_the_answer(server):
    full = answer(server, max_tokens=16, seed=2)["choices"][0]["message"]["content"]
    stop = full[4:6]
    cut = answer(server, max_tokens=16, seed=2, stop=stop)["choices"][0]
    assert cut["message"]["content"] == full[: full.index(stop)] and cut["finish_reason"] == "stop"
    cut = answer(server, max_tokens=16, seed=2, stop=["없는 문자열", stop])["choices"][0]
    assert cut["message"]["content"] == full[: full.index(stop)]


def test_an_nfd_stop_string_and_nfd_messages_match_the_nfc_text(server):
    """Korean typed or pasted on macOS arrives decomposed (NFD: 한 as three jamo); the model writes NFC."""
    full = answer(server, max_tokens=40, seed=2)["choices"][0]["message"]["content"]
    stop = next(full[i : i + 2] for i in range(len(full) - 1) if all("가" <= c <= "힣" for c in full[i : i + 2]))
    nfd = unicodedata.normalize("NFD", stop)
    assert nfd != stop
    cut = answer(server, max_tokens=40, seed=2, stop=[nfd])["choices"][0]
    assert cut["message"]["content"] == full[: full.index(stop)] and cut["finish_reason"] == "stop"
    decomposed = [{**m, "content": unicodedata.normalize("NFD", m["content"])} for m in USER]
    same = answer(server, max_tokens=40, seed=2, messages=decomposed)
    assert same["choices"][0]["message"]["content"] == full
    assert same["usage"]["prompt_tokens"] == answer(server, max_tokens=1)["usage"]["prompt_tokens"]


def test_chat_template_kwargs_switch_thinking_off_in_the_prompt(server, tokenizer):
    plain = answer(server, max_tokens=2, seed=0)["usage"]["prompt_tokens"]
    off = answer(server, max_tokens=2, seed=0, chat_template_kwargs={"enable_thinking": False})["usage"]
    empty_think = tokenizer("<think>\n\n</think>\n\n", add_special_tokens=False)["input_ids"]
    assert off["prompt_tokens"] == plain + len(empty_think)


BAD = {
    "empty messages": ({"messages": []}, 400, "messages must not be empty"),
    "unknown role": ({"messages": [{"role": "bot", "content": "안녕"}]}, 400, "role='bot' is not allowed"),
    "no messages": ({"messages": None}, 400, "messages"),
    "stream": ({"stream": True}, 400, "stream=true is not supported"),
    "n": ({"n": 3}, 400, "n=3 is not supported"),
    "unknown parameter": ({"logprobs": True}, 400, "unsupported parameters ['logprobs']"),
    "json mode": ({"response_format": {"type": "json_object"}}, 400,
                  "response_format is accepted only as {\"type\": \"text\"}"),
    "top logprobs": ({"top_logprobs": 2}, 400, "unsupported parameters ['top_logprobs']"),
    "tools": ({"tools": [{"type": "function", "function": {"name": "f"}}]}, 400, "unsupported parameters ['tools']"),
    "bad temperature": ({"temperature": -1}, 400, "temperature"),
    "image content": ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}, 400,
                      "only text content"),
    "template arguments": ({"chat_template_kwargs": {"tokenize": True}}, 400, "may not set ['tokenize']"),
    "too long": ({"max_tokens": 5000}, 400, "context is 2048 tokens"),
    "prompt over the context": ({"messages": [{"role": "user", "content": "서울 " * 2100}]}, 400,
                                "the prompt alone has"),
    "seed out of range": ({"seed": 2**64}, 400, "seed"),
    "another model": ({"model": "gpt-4o"}, 404, "the model 'gpt-4o' does not exist here"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_requests_get_an_openai_style_error(server, case):
    body, status, message = BAD[case]
    response = chat(server, **body)
    assert response.status_code == status
    error = response.json()["error"]
    assert message in error["message"] and error["type"] == "invalid_request_error"


def test_nulls_and_neutral_openai_parameters_are_accepted(server):
    """Clients that send every field (None for unset) or OpenAI's neutral values get an answer, not a 400."""
    body = answer(server, max_tokens=4, temperature=None, top_p=None, n=None, stream=None, seed=None,
                  presence_penalty=0, frequency_penalty=0.0, logprobs=False, chat_template_kwargs=None,
                  response_format={"type": "text"}, logit_bias={}, tools=[], top_logprobs=0)
    assert body["choices"][0]["finish_reason"] in ("length", "stop")
    assert chat(server, presence_penalty=0.5).status_code == 400  # a value that would change the output
    assert chat(server, presence_penalty=False).status_code == 400  # a bool is not the number 0


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
            codes = [f.result().status_code for f in (slow, *rest)]
    finally:
        stop()
    assert codes == [200, 200, 500, 200]


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
            slow = pool.submit(chat, url, max_tokens=2000, seed=0)
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


def test_a_body_that_is_not_json_gets_a_400(server):
    response = httpx.post(f"{server}/chat/completions", content=b"{not json",
                          headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]


def test_a_body_that_is_not_utf8_and_an_unknown_path_get_openai_style_errors(server):
    broken = b'{"messages": [{"role": "user", "content": "\xed\x95"}]}'  # half of a Hangul syllable
    response = httpx.post(f"{server}/chat/completions", content=broken, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "not valid JSON" in error["message"] and "utf-8" in error["message"]
    assert error["type"] == "invalid_request_error"
    missing = httpx.get(f"{server}/completions")
    assert missing.status_code in (404, 405) and "message" in missing.json()["error"]


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


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    """A LoRA adapter on tiny-ko with random (non-zero) weights: it changes what the model says."""
    from peft import LoraConfig, get_peft_model

    cfg = KosovConfig()
    model = load_base_model(cfg, model_source(cfg.model)[0], "cpu")
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    folder = tmp_path_factory.mktemp("run") / "adapter"
    peft_model.save_pretrained(folder)
    return folder


def test_serving_a_base_with_an_adapter(server, adapter):
    url, stop = start_in_thread(KosovConfig(), ServeConfig(port=0, adapter=str(adapter.parent)))  # the run folder
    try:
        served = f"tiny-ko+{adapter.parent}"
        assert [m["id"] for m in httpx.get(f"{url}/models").json()["data"]] == [served]
        adapted = answer(url, model=served, max_tokens=12, temperature=0)["choices"][0]["message"]["content"]
    finally:
        stop()
    base = answer(server, max_tokens=12, temperature=0)["choices"][0]["message"]["content"]
    assert adapted != base


def test_an_adapter_of_another_base_is_refused_before_loading(adapter, tmp_path):
    other = tmp_path / "adapter"
    other.mkdir()
    config = json.loads((adapter / "adapter_config.json").read_text())
    (other / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "Qwen/Qwen3-8B"}))
    with pytest.raises(KosovError, match="was trained on 'Qwen/Qwen3-8B'"):
        start_in_thread(KosovConfig(), ServeConfig(port=0, adapter=str(other)))


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


class GatedTeacher:
    """A teacher whose generate() blocks until released: a long generation the queue waits behind."""

    def __init__(self):
        self.started, self.release, self.generated = threading.Event(), threading.Event(), []

    def generate(self, requests, *, progress=True):
        self.started.set()
        assert self.release.wait(60)
        self.generated += [r.messages[-1]["content"] for r in requests]
        return [Generation(r.messages[-1]["content"], None, "stop") for r in requests]


def ask(text: str) -> GenerationRequest:
    return GenerationRequest([{"role": "user", "content": text}], max_new_tokens=2)


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


def test_an_adapter_is_served_with_the_chat_template_its_run_trained_with(custom_template_run):
    run, template = custom_template_run
    question = [{"role": "user", "content": "경복궁은 언제 지어졌나요?"}]
    tokenizer = load_tokenizer(dataclasses.replace(KosovConfig().model, chat_template=str(template)),
                               model_source(KosovConfig().model)[0])
    trained = tokenizer.apply_chat_template(question, tokenize=False, add_generation_prompt=True)
    assert "당신은 한국어로만 답하는 도우미입니다." in trained  # the run's template adds it
    url, stop = start_in_thread(KosovConfig(), ServeConfig(port=0, adapter=str(run)))  # the recipe sets no template
    try:
        served = answer(url, model=f"tiny-ko+{run}", messages=question, max_tokens=1)["usage"]["prompt_tokens"]
    finally:
        stop()
    assert served == len(tokenizer(trained, add_special_tokens=False)["input_ids"])


def test_a_recipe_template_other_than_the_runs_wins_with_a_warning(custom_template_run, tmp_path, caplog):
    from training.adapters import adapter_model_config

    run, template = custom_template_run
    mcfg = KosovConfig().model
    with caplog.at_level(logging.WARNING, logger="training.adapters"):
        same = adapter_model_config(dataclasses.replace(mcfg, chat_template=str(template)), run / "adapter")
    assert same.chat_template == str(template) and not caplog.records  # the same template: nothing to say
    other = tmp_path / "other.jinja"
    other.write_text(TEMPLATE_PATH.read_text(encoding="utf-8"), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="training.adapters"):
        chosen = adapter_model_config(dataclasses.replace(mcfg, chat_template=str(other)), run / "adapter")
    assert chosen.chat_template == str(other)
    assert str(template) in caplog.text and str(other) in caplog.text
    # the recipe names no end of turn: the run's own closes an answer
    assert adapter_model_config(dataclasses.replace(mcfg, end_of_turn_token=None), run / "adapter"
                               ).end_of_turn_token == "<|im_end|>"
