"""A Hub endpoint that takes the request and never answers (a proxy on a closed network that swallows it) does not
hold `kosov train` at start: the commit of a hub base is taken from the local cache's refs/ after
HF_HUB_ETAG_TIMEOUT seconds, with a warning that names the endpoint and that setting. Not offline mode: the Hub is
asked, at a local server that accepts connections and says nothing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHA = "0123456789abcdef0123456789abcdef01234567"
LIMIT_S = 60  # the old code waited for good; with HF_HUB_ETAG_TIMEOUT=2 two lookups take some 4 s past the imports


@pytest.fixture
def silent_hub():
    """The address of a server that accepts every connection and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:  # closed at teardown
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for connection in held:
        connection.close()


def test_a_hub_that_never_answers_falls_back_to_the_cache_within_the_etag_timeout(silent_hub, tmp_path):
    cache = tmp_path / "hub"
    refs = cache / "models--kosov-test--cached" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text(SHA)
    env = {key: value for key, value in os.environ.items() if key not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=silent_hub, HF_HUB_ETAG_TIMEOUT="2", HF_HUB_CACHE=str(cache), HF_HUB_DISABLE_TELEMETRY="1")
    script = ("import logging; logging.basicConfig(level=logging.WARNING)\n"
              "from training.base_commit import base_commit\n"
              "print(base_commit('kosov-test/cached', None)); print(base_commit('kosov-test/uncached', 'main'))\n")
    try:
        done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"resolving a hub base's commit at {silent_hub}, which never answers, took over {LIMIT_S} s")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [SHA, "None"]  # main from the cache's refs/; nothing cached: no commit, not a guess
    said = [line for line in done.stderr.splitlines() if line.startswith("WARNING:training.base_commit:the Hub at")]
    assert len(said) == 2 and all(silent_hub in line and "HF_HUB_ETAG_TIMEOUT=2" in line for line in said), done.stderr
    assert "could not tell which commit of kosov-test/uncached" in done.stderr
