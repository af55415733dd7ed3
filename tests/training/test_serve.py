"""`kosov serve` on tiny-ko over real HTTP: the OpenAI schema, sampling settings, stop strings, thinking kwargs,
an adapter, micro-batching, the API key, and a clear OpenAI-style error for every bad request."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from training.config import KosovConfig
from training.errors import KosovError
from training.models import load_base_model, load_tokenizer, model_source
from training.serve import ServeConfig, start_in_thread

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
                  presence_penalty=0, frequency_penalty=0.0, logprobs=False)
    assert body["choices"][0]["finish_reason"] in ("length", "stop")
    assert chat(server, presence_penalty=0.5).status_code == 400  # a value that would change the output


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
