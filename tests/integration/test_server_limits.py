"""The server's limits against a real `ragchat serve`: the health check answers at once while
50 OpenAI-style requests queue for the generator; a client that sends its headers slowly (or
never) is dropped; what the server writes is private to its owner (0700 folder, 0600 files)."""

from __future__ import annotations

import concurrent.futures
import socket
import stat
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.webapp_server import RunningServer, launch

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

HEADER_TIMEOUT_S = 2
REQUESTS = 50
HEALTH_P99_BOUND_S = 0.5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("limits") / "home"  # created by the server itself
    home.parent.mkdir(exist_ok=True)
    running = launch(
        home.parent,
        {"RAGCHAT_HOME": str(home), "RAGCHAT_MAX_NEW_TOKENS": "8",
         "RAGCHAT_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S)},
    )  # fmt: skip
    running.home = home
    yield running
    running.stop()


def test_health_answers_at_once_while_answers_queue(server: RunningServer) -> None:
    http = httpx.Client(base_url=server.url, timeout=600)
    doc = b"# Vexel\n\nThe Vexel pump moves 40 litres of water per minute.\n"
    assert http.post("api/documents", files={"files": ("vexel.md", doc)}).status_code == 200
    body = {"model": "ragchat", "max_tokens": 8,
            "messages": [{"role": "user", "content": "How much water does the Vexel pump move?"}]}  # fmt: skip

    def complete(i: int) -> int:
        with httpx.Client(base_url=server.url, timeout=900) as c:
            r = c.post("v1/chat/completions", json={**body, "stream": i % 2 == 1})
            if i % 2 == 1:
                assert "[DONE]" in r.text
            return r.status_code

    waits: list[float] = []
    with concurrent.futures.ThreadPoolExecutor(REQUESTS) as pool:
        futures = [pool.submit(complete, i) for i in range(REQUESTS)]
        time.sleep(1.0)  # let them queue
        while not all(f.done() for f in futures):
            started = time.monotonic()
            assert http.get("healthz", timeout=30).status_code == 200
            waits.append(time.monotonic() - started)
            time.sleep(0.05)
        statuses = [f.result() for f in futures]
    assert statuses == [200] * REQUESTS
    waits.sort()
    p50 = statistics.median(waits)
    p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))]
    print(f"\n/healthz during {REQUESTS} queued /v1 answers: {len(waits)} probes, "
          f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {waits[-1] * 1000:.1f} ms")  # fmt: skip
    assert len(waits) >= 20
    assert p99 < HEALTH_P99_BOUND_S, waits[-10:]


def _connect(server: RunningServer) -> socket.socket:
    host, port = server.url.split("//")[1].strip("/").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def test_slow_or_huge_headers_are_dropped(server: RunningServer) -> None:
    slow = _connect(server)
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
    idle = _connect(server)  # says nothing at all
    started = time.monotonic()
    assert slow.recv(1024) == b""  # closed by the server
    assert idle.recv(1024) == b""
    waited = time.monotonic() - started
    assert HEADER_TIMEOUT_S - 0.5 < waited < HEADER_TIMEOUT_S + 5, waited
    # a request sent in pieces within the deadline is answered
    ok = _connect(server)
    ok.sendall(b"GET /healthz HTTP/1.1\r\n")
    time.sleep(HEADER_TIMEOUT_S / 2)
    ok.sendall(b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert ok.recv(1024).startswith(b"HTTP/1.1 200")
    # headers still incomplete after 16 KB are refused: a slow client cannot pile up memory
    huge = _connect(server)
    huge.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 40_000)
    reply = huge.recv(1024)
    assert reply == b"" or reply.startswith(b"HTTP/1.1 400"), reply[:80]


def test_what_the_server_writes_is_private(server: RunningServer) -> None:
    home = server.home
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    db = home / "ragchat.sqlite"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "webapp.secret").stat().st_mode) == 0o600
    exposed = [
        (str(p.relative_to(home)), oct(stat.S_IMODE(p.stat().st_mode)))
        for p in home.rglob("*")
        if not p.is_symlink() and p.stat().st_mode & 0o077
    ]
    assert exposed == [], exposed
    assert any(Path(p).is_file() for p in home.rglob("*.sqlite3"))  # Chroma wrote files too
