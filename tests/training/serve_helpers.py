"""Helpers for the `kosov serve` tests: a Korean chat and its request to the server, checked for a 200; a request
as the engine takes it; the answers of a stand-in teacher."""

from __future__ import annotations

import httpx

from data_tools.teachers import Generation

from training.serve_schema import ServedRequest

USER = [{"role": "system", "content": "당신은 친절한 한국어 도우미입니다."},
        {"role": "user", "content": "경복궁은 언제 지어졌나요?"}]


def chat(url: str, timeout: float = 60, **body) -> httpx.Response:
    return httpx.post(f"{url}/chat/completions", json={"model": "tiny-ko", "messages": USER, **body}, timeout=timeout)


def answer(url: str, **body) -> dict:
    response = chat(url, **body)
    assert response.status_code == 200, response.text
    return response.json()


def ask(text: str, max_new_tokens: int = 2, **settings) -> ServedRequest:
    """A request for the engine (what the server makes of a chat request)."""
    return ServedRequest([{"role": "user", "content": text}], max_new_tokens=max_new_tokens, **settings)


def echo(requests, on_row=None) -> list[Generation]:
    """A stand-in teacher's answers: each request's last message, each handed to `on_row` as TransformersTeacher
    does (kosov serve's engine answers a request from it)."""
    outs = [Generation(r.messages[-1]["content"], None, "stop") for r in requests]
    for i, out in enumerate(outs):
        if on_row is not None:
            on_row(i, out)
    return outs
