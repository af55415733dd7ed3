"""`kosov serve` on tiny-ko over real HTTP: the OpenAI schema, sampling, stop strings, thinking, request errors."""

from __future__ import annotations

import json
import logging
import unicodedata

import httpx
import pytest

from tests.training.serve_helpers import USER, answer, chat
from training.config import KosovConfig
from training.models import load_tokenizer, model_source
from training.serve import ServeConfig, start_in_thread


@pytest.fixture(scope="module")
def tokenizer():
    cfg = KosovConfig()
    return load_tokenizer(cfg.model, model_source(cfg.model)[0])


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
    "negative top_k": ({"top_k": -2}, 400, "top_k=-2 is not allowed: use top_k -1 or 0 (off), or from 1 to"),
    "fractional top_k": ({"top_k": 2.5}, 400, "top_k: Input should be a valid integer"),
    "min_p over 1": ({"min_p": 1.5}, 400, "min_p=1.5 is not allowed: use min_p in [0, 1]"),
    "negative min_p": ({"min_p": -0.1}, 400, "min_p=-0.1 is not allowed"),
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


def test_a_body_that_is_not_json_gets_a_400(server):
    response = httpx.post(f"{server}/chat/completions", content=b"{not json",
                          headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded", "text/plain"])
def test_a_json_body_sent_as_another_content_type_is_told_to_say_json(server, content_type):
    """curl -d without -H sends a form: the body is good JSON, and the error must say what is wrong with it."""
    body = json.dumps({"messages": [{"role": "user", "content": "안녕하세요"}], "max_tokens": 2}).encode()
    response = httpx.post(f"{server}/chat/completions", content=body,
                          headers={"content-type": content_type} if content_type else {})
    assert response.status_code == 400 and "Content-Type: application/json" in response.json()["error"]["message"]


def test_a_body_that_is_not_utf8_and_an_unknown_path_get_openai_style_errors(server):
    broken = b'{"messages": [{"role": "user", "content": "\xed\x95"}]}'  # half of a Hangul syllable
    response = httpx.post(f"{server}/chat/completions", content=broken, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "not valid JSON" in error["message"] and "utf-8" in error["message"]
    assert error["type"] == "invalid_request_error"
    missing = httpx.get(f"{server}/completions")
    assert missing.status_code in (404, 405) and "message" in missing.json()["error"]


def test_top_k_and_min_p_are_accepted_like_vllm(server):
    def text(**body) -> str:
        return answer(server, max_tokens=16, **body)["choices"][0]["message"]["content"]

    greedy = text(temperature=0)
    assert text(temperature=2, top_k=1, seed=4) == text(temperature=2, min_p=1, seed=4) == greedy
    assert text(temperature=2, seed=4) != greedy  # so top_k=1 and min_p=1 did the work
    plain = text(seed=4)
    assert text(seed=4, top_k=0) == text(seed=4, top_k=-1) == text(seed=4, min_p=0) == plain  # off
    assert text(seed=4, top_k=None, min_p=None) == plain  # null: tiny-ko's generation_config sets neither


@pytest.fixture(scope="module")
def qwen3_sampling(tmp_path_factory):
    """tiny-ko with the sampling defaults Qwen3 ships in its generation_config.json."""
    import shutil

    folder = tmp_path_factory.mktemp("qwen3-sampling") / "model"
    shutil.copytree(model_source(KosovConfig().model)[0], folder)
    config = json.loads((folder / "generation_config.json").read_text())
    config.update(do_sample=True, temperature=0.6, top_p=0.95, top_k=20)
    (folder / "generation_config.json").write_text(json.dumps(config))
    return folder


def test_sampling_settings_a_request_leaves_out_are_the_models_own(qwen3_sampling, monkeypatch, caplog):
    """Like vLLM's OpenAI server (--generation-config auto): what a request leaves out comes from the model's
    generation_config.json (Qwen3: temperature 0.6, top_p 0.95, top_k 20), what it sends wins; the log says so."""
    from data_tools.teachers import TransformersTeacher

    asked = []
    generate = TransformersTeacher.generate

    def recording(self, requests, **kwargs):
        asked.extend((r.temperature, r.top_p, getattr(r, "top_k", None), getattr(r, "min_p", None)) for r in requests)
        return generate(self, requests, **kwargs)

    monkeypatch.setattr(TransformersTeacher, "generate", recording)
    cfg = KosovConfig()
    cfg.model.name_or_path = str(qwen3_sampling)
    with caplog.at_level(logging.INFO, logger="training.serve"):
        url, stop = start_in_thread(cfg, ServeConfig(port=0, model_name="tiny-ko"))
    try:
        omitted = answer(url, max_tokens=16, seed=7)["choices"][0]["message"]["content"]
        assert asked == [(0.6, 0.95, 20, 0.0)]
        nulls = answer(url, max_tokens=16, seed=7, temperature=None, top_p=None, top_k=None, min_p=None)
        explicit = answer(url, max_tokens=16, seed=7, temperature=0.6, top_p=0.95, top_k=20)
        answer(url, max_tokens=2, seed=7, temperature=0, top_p=1, top_k=-1, min_p=0.1)
    finally:
        stop()
    assert asked == [(0.6, 0.95, 20, 0.0)] * 3 + [(0, 1, -1, 0.1)]
    assert omitted == nulls["choices"][0]["message"]["content"] == explicit["choices"][0]["message"]["content"]
    assert "temperature=0.6, top_p=0.95, top_k=20, min_p=0.0 (the model's generation_config sets temperature, " \
           "top_p, top_k)" in caplog.text
