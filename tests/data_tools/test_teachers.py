"""Teachers on tiny-ko: the transformers teacher in-process, and the HTTP teacher against a real `kosov serve` on
localhost (no mock server): seeds, the concurrency limit, the cache across reruns and a crash, retries with
backoff, timeouts, errors that are not retried, and the API key kept out of the cache. The vLLM teacher only
refuses clearly on this CPU machine."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from data_tools.teacher_http import HTTPTeacher
from data_tools.teachers import (Generation, GenerationRequest, TeacherError, TransformersTeacher, VLLMTeacher,
                                 split_reasoning)
from training.models import load_base_model, load_tokenizer, model_source
from training.schema import KosovConfig
from training.serve import ServeConfig, start_in_thread

QUESTIONS = ["서울의 날씨는 어때요?", "김치찌개는 어떻게 끓여요?", "한국어 조사 '은'과 '는'의 차이를 설명해 주세요.",
             "부산까지 기차로 얼마나 걸리나요?", "좋은 아침이에요!", "세종대왕은 무엇을 만들었나요?"]


def requests(n: int, *, seed0: int = 0, max_new_tokens: int = 12, **kwargs) -> list[GenerationRequest]:
    return [GenerationRequest([{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}], seed=seed0 + i,
                              max_new_tokens=max_new_tokens, **kwargs) for i in range(n)]


def texts(generations: list[Generation]) -> list[str]:
    return [g.text for g in generations]


def stats(url: str) -> dict:
    return httpx.get(url.removesuffix("/v1") + "/stats").json()


def cache_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.json") if not p.name.startswith("."))


@pytest.fixture(scope="module")
def tiny():
    cfg = KosovConfig()
    source, _ = model_source(cfg.model)
    return load_base_model(cfg, source, "cpu"), load_tokenizer(cfg.model, source)


@pytest.fixture(scope="module")
def teacher(tiny):
    return TransformersTeacher(*tiny, name="tiny-ko", batch_size=4)


@pytest.fixture(scope="module")
def server():
    url, stop = start_in_thread(KosovConfig(), ServeConfig(port=0))
    yield url
    stop()


# --- the transformers teacher ---------------------------------------------------------------------------


def test_batched_generation_gives_each_seeded_request_the_text_it_gets_alone(teacher, tiny):
    batch = requests(6, max_new_tokens=10)
    batch[2].max_new_tokens = 4  # rows of one batch with their own limits
    together = teacher.generate(batch, progress=False)
    alone = TransformersTeacher(*tiny, name="tiny-ko", batch_size=1).generate(batch, progress=False)
    assert texts(together) == texts(alone)
    assert [g.usage for g in together] == [g.usage for g in alone]
    _, tokenizer = tiny
    for request, g in zip(batch, together):
        prompt = teacher.render(request)
        assert g.usage["prompt_tokens"] == len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        assert 1 <= g.usage["completion_tokens"] <= request.max_new_tokens
        assert g.finish_reason in ("stop", "length") and g.cached is False
    assert together[2].usage["completion_tokens"] <= 4


def test_seeds_make_sampling_reproducible_and_different_seeds_differ(teacher):
    first = teacher.generate(requests(4, max_new_tokens=16), progress=False)
    again = teacher.generate(requests(4, max_new_tokens=16), progress=False)
    other = teacher.generate(requests(4, seed0=100, max_new_tokens=16), progress=False)
    assert texts(first) == texts(again)
    assert all(a != b for a, b in zip(texts(first), texts(other)))


def test_temperature_zero_and_a_tiny_top_p_are_plain_greedy_decoding(teacher, tiny):
    model, tokenizer = tiny
    request = requests(1, max_new_tokens=12)[0]
    enc = tokenizer(teacher.render(request), return_tensors="pt", add_special_tokens=False)
    out = model.generate(**enc, do_sample=False, max_new_tokens=12, pad_token_id=tokenizer.pad_token_id)
    greedy = tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    request.temperature = 0.0
    assert teacher.generate([request], progress=False)[0].text == greedy
    request.temperature, request.top_p = 1.0, 1e-9  # the nucleus is the top token alone
    assert teacher.generate([request], progress=False)[0].text == greedy


def test_a_stop_string_cuts_the_answer_where_it_starts(teacher):
    [full] = teacher.generate(requests(1, max_new_tokens=16), progress=False)
    stop = full.text[5:7]
    [cut] = teacher.generate(requests(1, max_new_tokens=16, stop=[stop]), progress=False)
    assert cut.text == full.text[: full.text.index(stop)] and cut.finish_reason == "stop"


def test_chat_template_kwargs_reach_the_template(teacher):
    plain, no_thinking = requests(2, max_new_tokens=4)
    no_thinking.chat_template_kwargs = {"enable_thinking": False}
    assert teacher.render(no_thinking).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert not teacher.render(plain).endswith("</think>\n\n")
    a, b = teacher.generate([plain, no_thinking], progress=False)
    assert b.usage["prompt_tokens"] > a.usage["prompt_tokens"]
    with pytest.raises(TeacherError, match="may not set"):
        teacher.generate(requests(1, chat_template_kwargs={"tokenize": True}), progress=False)


def test_the_think_block_is_split_off_as_reasoning():
    assert split_reasoning("<think>\n12 곱하기 3\n</think>\n\n36입니다.") == ("12 곱하기 3", "36입니다.")
    assert split_reasoning("<think>\n끝나지 않은 생각") == ("끝나지 않은 생각", "")  # cut off by max_new_tokens
    assert split_reasoning("36입니다.") == (None, "36입니다.")


def base_like(model, tokenizer):
    """tiny-ko as a base checkpoint (eos <|endoftext|>, as Qwen3-*-Base ships) fine-tuned to close its turns with
    <|im_end|>: its head prefers <|im_end|>, which is no longer its eos."""
    import copy

    import torch

    model, tokenizer = copy.deepcopy(model), copy.deepcopy(tokenizer)
    tokenizer.eos_token = "<|endoftext|>"
    im_end, eot = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=False)
    with torch.no_grad():
        head.weight.copy_(model.get_input_embeddings().weight)
        head.weight[im_end] *= 30
    model.lm_head, model.config.tie_word_embeddings = head, False
    model.config.eos_token_id = model.generation_config.eos_token_id = eot
    return model, tokenizer, im_end


def test_a_base_checkpoint_stops_at_the_end_of_its_turn_not_only_at_its_eos(tiny):
    """What `kosov serve` builds (no stop ids given): the token the chat template closes a turn with still ends
    the answer, instead of generating past it to max_new_tokens."""
    model, tokenizer, im_end = base_like(*tiny)
    request = requests(1, max_new_tokens=40, temperature=0.0)[0]
    enc = tokenizer(TransformersTeacher(model, tokenizer, "x").render(request), return_tensors="pt",
                    add_special_tokens=False)
    raw = model.generate(**enc, do_sample=False, max_new_tokens=40, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.eos_token_id)[0, enc["input_ids"].shape[1]:].tolist()
    assert im_end in raw[:20]  # the model ends its turn early; its eos alone would not stop it
    for teacher in (TransformersTeacher(model, tokenizer, "base-like"),
                    TransformersTeacher(model, tokenizer, "base-like", stop_token_ids=[im_end])):
        assert im_end in teacher.eos_ids
        [g] = teacher.generate([request], progress=False)
        assert g.finish_reason == "stop" and g.usage["completion_tokens"] == raw.index(im_end) + 1
        assert g.text == tokenizer.decode(raw[: raw.index(im_end)], skip_special_tokens=True)


def test_the_vllm_teacher_refuses_clearly_without_a_gpu():
    with pytest.raises(TeacherError) as e:
        VLLMTeacher("Qwen/Qwen3-8B")
    assert "vLLM" in str(e.value) and "GPU" in str(e.value) and "Fix:" in str(e.value)


# --- the HTTP teacher against a real `kosov serve` ------------------------------------------------------


def test_korean_chat_through_the_http_teacher_matches_the_in_process_teacher(server, teacher):
    assert [m["id"] for m in httpx.get(f"{server}/models").json()["data"]] == ["tiny-ko"]
    http = HTTPTeacher(server, "tiny-ko", concurrency=2)
    batch = requests(4, max_new_tokens=12)
    remote = http.generate(batch, progress=False)
    assert http.name == "tiny-ko"
    assert all(isinstance(g.text, str) and g.usage["prompt_tokens"] > 10 and g.usage["completion_tokens"] >= 1
               for g in remote)
    # The server generates with the same code: a seed gives the same text over HTTP as in-process.
    assert texts(remote) == texts(teacher.generate(batch, progress=False))
    assert texts(http.generate(batch, progress=False)) == texts(remote)  # no cache: asked again, same answers


def test_the_concurrency_limit_holds_on_the_server():
    url, stop = start_in_thread(KosovConfig(), ServeConfig(port=0))  # fresh counters
    try:
        HTTPTeacher(url, "tiny-ko", concurrency=3).generate(requests(9, max_new_tokens=24), progress=False)
        seen = stats(url)
    finally:
        stop()
    assert seen["requests"] == 9 and seen["max_in_flight"] == 3  # 3 at once, never more


def test_the_cache_answers_a_rerun_without_any_request(server, tmp_path):
    batch = [*requests(6), requests(1)[0]]  # the last repeats the first: one request serves both
    before = stats(server)["requests"]
    first = HTTPTeacher(server, "tiny-ko", cache_dir=tmp_path).generate(batch, progress=False)
    assert stats(server)["requests"] - before == 6 and len(cache_files(tmp_path)) == 6
    assert not any(g.cached for g in first) and first[6] == first[0] and first[6] is not first[0]
    # Another base_url (nothing listens there): the cache key does not depend on it.
    again = HTTPTeacher("http://127.0.0.1:9/v1", "tiny-ko", cache_dir=tmp_path, max_retries=0).generate(batch)
    assert stats(server)["requests"] - before == 6
    assert all(g.cached for g in again)
    assert [(g.text, g.reasoning, g.finish_reason, g.usage) for g in again] == \
        [(g.text, g.reasoning, g.finish_reason, g.usage) for g in first]


def test_unseeded_sampled_requests_are_never_cached(server, tmp_path):
    batch = requests(2)
    for r in batch:
        r.seed = None
    HTTPTeacher(server, "tiny-ko", cache_dir=tmp_path).generate(batch, progress=False)
    assert cache_files(tmp_path) == []


def test_a_crashed_job_reruns_only_the_rows_it_lacks(tmp_path, teacher):
    batch = requests(10, max_new_tokens=16)
    url, stop = start_in_thread(KosovConfig(), ServeConfig(port=0))

    def crash_after_four_rows():
        while len(cache_files(tmp_path)) < 4:
            time.sleep(0.005)
        stop()  # the server goes away mid-job

    killer = threading.Thread(target=crash_after_four_rows)
    killer.start()
    crashed = HTTPTeacher(url, "tiny-ko", concurrency=1, max_retries=1, backoff_s=0.01, cache_dir=tmp_path)
    with pytest.raises(TeacherError, match="failed 2 times"):
        crashed.generate(batch, progress=False)
    killer.join()
    finished = len(cache_files(tmp_path))
    assert 4 <= finished < 10

    url, stop = start_in_thread(KosovConfig(), ServeConfig(port=0))  # a new server, on another port
    try:
        rerun = HTTPTeacher(url, "tiny-ko", cache_dir=tmp_path).generate(batch, progress=False)
        assert stats(url)["requests"] == 10 - finished
    finally:
        stop()
    assert sum(g.cached for g in rerun) == finished and len(cache_files(tmp_path)) == 10
    assert texts(rerun) == texts(teacher.generate(batch, progress=False))  # as if it had never crashed


class LocalHTTP:
    """A local HTTP server on a free port, in a thread: `url` is its /v1 base."""

    def serve(self, handler: type) -> None:
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self):
        self.http.shutdown()
        self.http.server_close()


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
    start = time.monotonic()
    try:
        with pytest.raises(TeacherError, match=r"failed 2 times; last: no answer within timeout_s=0.3") as e:
            HTTPTeacher(proxy.url, "tiny-ko", timeout_s=0.3, max_retries=1, backoff_s=0.01).generate(
                requests(1), progress=False)
    finally:
        proxy.close()
    assert len(proxy.hits) == 2 and time.monotonic() - start < 1.4
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


def test_the_api_key_is_sent_but_never_written_to_the_cache_or_the_log(tmp_path, monkeypatch, caplog):
    secret = "sk-kosov-test-0123456789abcdef"
    monkeypatch.setenv("KOSOV_TEST_KEY", secret)
    url, stop = start_in_thread(KosovConfig(), ServeConfig(port=0, api_key_env="KOSOV_TEST_KEY"))
    try:
        with caplog.at_level("DEBUG"):
            keyed = HTTPTeacher(url, "tiny-ko", api_key_env="KOSOV_TEST_KEY", cache_dir=tmp_path)
            assert len(keyed.generate(requests(3), progress=False)) == 3  # the server accepted the key
        with pytest.raises(TeacherError, match="answered 401"):
            HTTPTeacher(url, "tiny-ko", api_key_env="NO_SUCH_VARIABLE").generate(requests(1), progress=False)
    finally:
        stop()
    files = cache_files(tmp_path)
    assert len(files) == 3
    assert all(secret.encode() not in p.read_bytes() and b"KOSOV_TEST_KEY" not in p.read_bytes() for p in files)
    assert secret not in caplog.text
    record = json.loads(files[0].read_text())
    assert set(record) == {"model", "request", "generation", "created"} and record["model"] == "tiny-ko"


class StrictOpenAI(LocalHTTP):
    """A local stand-in for a hosted OpenAI API: like api.openai.com it refuses request arguments it does not know
    (400 "Unrecognized request argument supplied"), answers 400 for a prompt over its context (a user turn with
    LONG), 401 without the right key; every request body is kept in `bodies`. refuse_unknown=False: like vLLM,
    it ignores arguments it does not know."""

    KNOWN = {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "seed", "stop",
             "stream", "presence_penalty", "frequency_penalty", "logit_bias", "user", "response_format"}

    def __init__(self, key: str | None = None, refuse_unknown: bool = True):
        self.bodies: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status: int, data: dict) -> None:
                raw = json.dumps(data, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                fake.bodies.append(body)
                unknown = sorted(set(body) - StrictOpenAI.KNOWN)
                text = body["messages"][-1]["content"]
                if key and self.headers.get("authorization") != f"Bearer {key}":
                    return self.answer(401, {"error": {"message": "Incorrect API key provided"}})
                if unknown and refuse_unknown:
                    return self.answer(400, {"error": {"message": f"Unrecognized request argument supplied: "
                                                                  f"{unknown[0]}", "type": "invalid_request_error"}})
                if "LONG" in text:
                    return self.answer(400, {"error": {"message": "This model's maximum context length is 4096 "
                                                                  "tokens. However, you requested 9000 tokens."}})
                return self.answer(200, {"choices": [{"message": {"role": "assistant", "content":
                                                                  f"좋은 질문입니다. {text[:12]}에 답하면 이렇습니다."},
                                                      "finish_reason": "stop"}],
                                         "usage": {"prompt_tokens": 10, "completion_tokens": 10}})

        self.serve(Handler)


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
