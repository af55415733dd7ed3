"""The HTTP teacher against a real `kosov serve` on localhost: seeds, concurrency, the cache, a crash, the API key."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from data_tools.teacher_http import HTTPTeacher
from data_tools.teachers import TeacherError
from tests.data_tools.teacher_helpers import cache_files, requests, stats, texts
from training.schema import KosovConfig
from training.serve import ServeConfig, start_in_thread


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
