"""An OpenAI-compatible HTTP endpoint as a teacher (`kosov serve`, `vllm serve`, a hosted API): a concurrency
limit, retries with backoff, timeouts, and an on-disk cache so a crashed or repeated job never pays twice.

    >>> teacher = HTTPTeacher("http://127.0.0.1:8000/v1", "tiny-ko", cache_dir="cache/teacher")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from data_tools.atomic import write_atomic
from data_tools.teachers import Generation, GenerationRequest, TeacherError, check_requests, split_reasoning, usage

log = logging.getLogger(__name__)


RETRY_STATUS = frozenset({408, 409, 429})  # plus every 5xx
# This one request cannot be answered (a prompt longer than the context, say): a failed generation, not a failed
# job. Any other 4xx (401, 403, 404: the key, the model name, the address) is wrong for every request: the job stops.
REFUSED_STATUS = frozenset({400, 413, 422})
MAX_BACKOFF_S = 60.0


class HTTPTeacher:
    """`POST {base_url}/chat/completions` on any OpenAI-compatible server.

    - at most `concurrency` requests in flight; each gets `timeout_s` (connect, read and write);
    - 429, 408, 5xx, timeouts and connection errors are retried up to `max_retries` times, waiting
      `backoff_s * 2**attempt` (times a random 0.5-1.5, at least the server's Retry-After);
    - a 400, 413 or 422 refuses that one request: it comes back as a Generation with finish_reason "error" (not
      cached, so a rerun asks again), is counted in `refused` and the first is logged; any other 4xx (401, 403,
      404) fails the job at once with the server's message;
    - with `cache_dir`, each finished generation is one small JSON file named by the sha256 of (model, messages,
      sampling settings, and the seed of a sampled request: greedy decoding reads none), written atomically: a
      repeated or crashed job asks only for the rows it lacks, whatever the base_url. Sampled requests without a
      seed are never cached (a cache hit would repeat a sample).

    The API key is read from the environment variable `api_key_env` when a request is sent; it is never stored.
    chat_template_kwargs and stop are sent only when set. vLLM, SGLang and `kosov serve` take chat_template_kwargs;
    a hosted API that refuses it (api.openai.com: "Unrecognized request argument supplied: chat_template_kwargs")
    is asked again without it, and so is every later request of this teacher (one warning).
    """

    def __init__(self, base_url: str, model: str, api_key_env: str | None = "OPENAI_API_KEY", concurrency: int = 8,
                 timeout_s: float = 60, max_retries: int = 5, backoff_s: float = 1.0,
                 cache_dir: str | Path | None = None):
        if concurrency < 1 or max_retries < 0 or timeout_s <= 0:
            raise TeacherError(f"concurrency={concurrency}, max_retries={max_retries}, timeout_s={timeout_s}",
                               fix="use concurrency >= 1, max_retries >= 0 and timeout_s > 0")
        if not base_url.startswith(("http://", "https://")):
            raise TeacherError(f"base_url={base_url!r} has no http:// or https://",
                               fix="give the whole address, e.g. http://127.0.0.1:8000/v1")
        self.base_url, self.name, self.api_key_env = base_url.rstrip("/"), model, api_key_env
        self.concurrency, self.timeout_s = concurrency, timeout_s
        self.max_retries, self.backoff_s = max_retries, backoff_s
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else None
        self.send_template_kwargs = True  # until the endpoint refuses chat_template_kwargs
        self.asked = 0  # requests given to generate(), cache hits included
        self.refused: list[tuple[str | None, str]] = []  # (where, the server's message) of each refused request
        self._lock = threading.Lock()

    # -- cache -----------------------------------------------------------------------------------------------

    def cache_key(self, r: GenerationRequest) -> str | None:
        """sha256 of what determines the answer (not the base_url); None for an unseeded sampled request. A greedy
        request (temperature 0) is keyed without its seed, which greedy decoding does not read: the same question
        asked under another seed is a cache hit."""
        if self.cache_dir is None or (r.seed is None and r.temperature > 0):
            return None
        fields = {"model": self.name, "messages": r.messages, "max_new_tokens": r.max_new_tokens,
                  "temperature": r.temperature, "top_p": r.top_p, "chat_template_kwargs": r.chat_template_kwargs,
                  "stop": r.stop}
        if r.temperature > 0:
            fields["seed"] = r.seed
        return hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def _cache_file(self, key: str) -> Path:
        assert self.cache_dir is not None
        return self.cache_dir / key[:2] / f"{key}.json"

    def _read_cache(self, key: str) -> Generation | None:
        path = self._cache_file(key)
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))["generation"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError) as e:
            log.warning("ignoring the unreadable cache file %s (%s): asking again", path, e)
            return None
        return Generation(**{**saved, "cached": True})

    def _write_cache(self, key: str, request: GenerationRequest, generation: Generation) -> None:
        path = self._cache_file(key)
        record = {"model": self.name, "request": asdict(request),
                  "generation": {k: v for k, v in asdict(generation).items() if k != "cached"},
                  "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        write_atomic(path, json.dumps(record, ensure_ascii=False))  # whole, and on disk: a paid answer

    # -- requests --------------------------------------------------------------------------------------------

    def generate(self, requests: list[GenerationRequest], *, progress: bool = True) -> list[Generation]:
        import httpx

        check_requests(requests)
        if any(r.prompt_text is not None for r in requests):
            raise TeacherError("an OpenAI chat endpoint takes messages, not a raw prompt (prompt_text)",
                               fix="run prompt_text generators (Magpie) with the transformers or vLLM teacher")
        self.asked += len(requests)
        results: list[Generation | None] = [None] * len(requests)
        todo: dict[str, list[int]] = {}  # one HTTP request per distinct key; unkeyed requests get their own
        for i, r in enumerate(requests):
            key = self.cache_key(r)
            hit = self._read_cache(key) if key else None
            if hit is not None:
                results[i] = hit
            else:
                todo.setdefault(key or f"uncached-{i}", []).append(i)
        unseeded = sum(1 for r in requests if r.seed is None and r.temperature > 0)
        if self.cache_dir is not None and unseeded:
            log.warning("%d sampled requests have no seed: they are not cached (give each a seed to make reruns "
                        "free and reproducible)", unseeded)
        hits = len(requests) - sum(len(v) for v in todo.values())
        abort = threading.Event()
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        with httpx.Client(timeout=httpx.Timeout(self.timeout_s), limits=limits) as client, \
                tqdm(total=len(requests), initial=hits, desc=self.name, unit="row", disable=not progress) as bar, \
                ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="teacher") as pool:
            futures = {pool.submit(self._fetch, client, requests[ix[0]], key, abort): ix for key, ix in todo.items()}
            try:
                for future in as_completed(futures):
                    first, *same = futures[future]  # identical requests share one answer, each its own copy
                    results[first] = future.result()
                    for i in same:
                        results[i] = replace(results[first])
                    bar.update(1 + len(same))
            except BaseException:
                abort.set()  # workers stop retrying; rows already finished stay in the cache
                for future in futures:
                    future.cancel()
                raise
        refused = sum(g.finish_reason == "error" for g in results if g is not None)
        log.info("%s: %d rows, %d from the cache, %d refused", self.name, len(requests), hits, refused)
        return results  # type: ignore[return-value]

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key and not key.isascii():
            raise TeacherError(f"${self.api_key_env} holds characters that an HTTP header cannot carry",
                               fix=f"check the value of ${self.api_key_env}: API keys are plain ASCII")
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _body(self, r: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.name, "messages": r.messages, "max_tokens": r.max_new_tokens,
                                "temperature": r.temperature, "top_p": r.top_p, "n": 1}
        if r.seed is not None:
            body["seed"] = r.seed
        if r.stop:
            body["stop"] = r.stop
        if r.chat_template_kwargs and self.send_template_kwargs:
            body["chat_template_kwargs"] = r.chat_template_kwargs
        return body

    def _fetch(self, client: Any, request: GenerationRequest, key: str, abort: threading.Event) -> Generation:
        import httpx

        url, last, attempt = f"{self.base_url}/chat/completions", "", 0
        while True:
            if abort.is_set():
                raise TeacherError("cancelled: another request of this job failed")
            retry_after, body = 0.0, self._body(request)
            try:
                response = client.post(url, json=body, headers=self._headers())
            except httpx.TimeoutException:
                last = f"no answer within timeout_s={self.timeout_s:g}"
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {e}"
            else:
                if response.status_code == 200:
                    generation = self._parse(response)
                    if not key.startswith("uncached-"):
                        self._write_cache(key, request, generation)
                    return generation
                message = _server_message(response)
                if response.status_code in REFUSED_STATUS and "chat_template_kwargs" in body \
                        and "chat_template_kwargs" in message:
                    self._drop_template_kwargs(message)
                    continue  # the same request at once, without it: not a retry
                if response.status_code in REFUSED_STATUS:
                    return self._refuse(request, f"HTTP {response.status_code}: {message}")
                if response.status_code not in RETRY_STATUS and response.status_code < 500:
                    raise TeacherError(f"{url} answered {response.status_code}: {message}",
                                       fix=self._client_error_fix(response.status_code))
                last = f"HTTP {response.status_code}: {message}"
                retry_after = _retry_after(response)
            if attempt >= self.max_retries:
                break
            delay = min(MAX_BACKOFF_S, max(retry_after, self.backoff_s * 2**attempt * random.uniform(0.5, 1.5)))
            log.debug("retrying %s in %.2fs (attempt %d): %s", url, delay, attempt + 1, last)
            abort.wait(delay)
            attempt += 1
        raise TeacherError(f"{url} failed {self.max_retries + 1} times; last: {last}",
                           fix="check that the server is up and reachable; for slow answers raise timeout_s or "
                               "lower concurrency. Finished rows are cached: rerunning asks only for the rest")

    def _drop_template_kwargs(self, message: str) -> None:
        with self._lock:
            if self.send_template_kwargs:
                self.send_template_kwargs = False
                log.warning("%s does not take chat_template_kwargs (%s): sending every request without it, so the "
                            "endpoint's own defaults apply (e.g. its thinking mode)", self.base_url, message)

    def _refuse(self, request: GenerationRequest, message: str) -> Generation:
        """A failed generation for a request the endpoint refused; the first refusal is logged with its input."""
        with self._lock:
            self.refused.append((request.where, message))
            first = len(self.refused) == 1
        if first:
            log.warning("%s refused a request%s, which is skipped (and asked again on a rerun; later refusals are "
                        "only counted, in the data card): %s", self.name,
                        f" from {request.where}" if request.where else "", message)
        return Generation("", None, "error", False, {}, error=message)

    def _client_error_fix(self, status: int) -> str:
        """What to check for a 4xx answer (not retried)."""
        if status == 404 and not self.base_url.endswith("/v1"):
            return f"base_url={self.base_url!r} usually ends in /v1 (e.g. {self.base_url}/v1); this error is not retried"
        if self.api_key_env is None:
            key = "no API key is sent (api_key_env is null)"
        elif os.environ.get(self.api_key_env):
            key = f"the API key in ${self.api_key_env}"
        else:
            key = f"the API key: ${self.api_key_env} is not set"
        return f"check the request, the model name and {key}; this error is not retried"

    def _parse(self, response: Any) -> Generation:
        try:
            data = response.json()
            choice = data["choices"][0]
            message = choice["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise TeacherError(f"{response.url} answered 200 without an OpenAI chat completion: "
                               f"{response.text[:200]!r}", fix="check base_url (it usually ends in /v1)") from None
        content = message.get("content") or ""
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if reasoning is None:
            reasoning, content = split_reasoning(content)
        raw = data.get("usage") or {}
        return Generation(content, reasoning, choice.get("finish_reason") or "stop", False,
                          usage(int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0)))


def _server_message(response: Any) -> str:
    """The server's own error message (OpenAI error bodies: {"error": {"message": ...}})."""
    try:
        error = response.json().get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if error:
            return str(error)
    except (ValueError, AttributeError):
        pass
    return response.text[:500] or response.reason_phrase


def _retry_after(response: Any) -> float:
    try:
        return float(response.headers.get("retry-after", 0))
    except ValueError:  # an HTTP date: fall back to our own backoff
        return 0.0
