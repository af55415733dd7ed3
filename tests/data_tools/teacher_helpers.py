"""Helpers for the teacher tests: seeded Korean requests, server counters, cache files, a hosted-API stand-in."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from data_tools.teachers import Generation, GenerationRequest

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


class StrictOpenAI(LocalHTTP):
    """A local stand-in for a hosted OpenAI API: like api.openai.com it refuses request arguments it does not know
    (400 "Unrecognized request argument supplied"), answers 400 for a prompt over its context (a user turn with
    LONG), 401 without the right key; every request body is kept in `bodies`. refuse_unknown=False: like vLLM,
    it ignores arguments it does not know. A request with CUT in its user turn is answered up to max_tokens
    (finish_reason "length"), one with ENGLISH in English, the judge gate's prompt with a rating of 8."""

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
                content = "Sure, here it is." if "ENGLISH" in text else f"좋은 질문입니다. {text[:12]}에 답하면 이렇습니다."
                if text.endswith("점수:"):  # the judge gate's prompt (JUDGE_PROMPT): a rating
                    content = "8"
                return self.answer(200, {"choices": [{"message": {"role": "assistant", "content": content},
                                                      "finish_reason": "length" if "CUT" in text else "stop"}],
                                         "usage": {"prompt_tokens": 10, "completion_tokens": 10}})

        self.serve(Handler)
