"""`ragchat reindex` from the command line while `ragchat serve` runs on the same data folder, and
a kill -9 in the middle of it: the server keeps answering from the old index and reports the run
(`GET /api/index`, the page's banner); the run resumes when started again; the server follows
the swap at its next request. Real processes, the real default embedder, Chroma and SQLite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.webapp_server import launch

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FACTS = ROOT / "bench" / "data" / "facts" / "dev" / "documents"


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def _upload(url: str, paths: list[Path]) -> Any:
    boundary = "ragchatboundary"
    parts = []
    for path in paths:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            + path.read_bytes()
            + b"\r\n"
        )
    data = b"".join(parts) + f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        url + "api/documents", data, {"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())


def _reindex(home: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGCHAT_")}
    env.update(RAGCHAT_HOME=str(home), RAGCHAT_EMBED_PRECISION="float32", HF_HUB_OFFLINE="1")
    return subprocess.Popen(
        [sys.executable, "-m", "webapp.cli", "reindex", "--grace", "0", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def test_reindex_beside_a_running_server_survives_kill_9(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    server = launch(
        home, {"RAGCHAT_EMBED_PRECISION": "float32", "RAGCHAT_ANSWER_STRATEGY": "extractive"}
    )
    try:
        results = _upload(server.url, sorted(FACTS.iterdir()))["results"]
        assert {r["status"] for r in results} == {"added"}, results
        total = sum(r["chunks"] for r in results)
        before = _get(server.url + "api/index")
        assert before["building"] is None and before["active"]["collection"] == "ragchat"

        run = _reindex(home, "--force")  # the same model: slow enough to be killed midway
        deadline = time.monotonic() + 300
        while True:
            status = _get(server.url + "api/index")
            building = status["building"]
            if building is not None and 0 < building["chunks_done"] < total:
                break
            assert run.poll() is None and time.monotonic() < deadline, run.stdout.read()  # type: ignore[union-attr]
            time.sleep(0.2)
        run.send_signal(signal.SIGKILL)
        run.wait()
        status = _get(server.url + "api/index")
        assert status["active"]["collection"] == "ragchat"
        done = status["building"]["chunks_done"]
        assert 0 < done < total and status["building"]["chunks_total"] == total
        answer = _post(server.url + "api/ask", {"question": "How many days of annual leave?"})
        assert answer["status"] == "complete" and answer["citations"]

        again = _reindex(home)  # resumes the unfinished run
        out = again.communicate(timeout=600)[0].decode()
        assert again.returncode == 0, out
        assert f"Re-embedded {total} chunks of {len(results)} documents" in out
        assert "resumed" in out and "Dropped the old index ragchat " in out
        embedded = int(out.split(" texts embedded")[0].rsplit("(", 1)[1])
        assert embedded <= total - done, out

        after = _get(server.url + "api/index")  # the server switched at this request
        assert after["building"] is None and after["active"]["collection"] != "ragchat"
        answer = _post(server.url + "api/ask", {"question": "How many days of annual leave?"})
        assert answer["status"] == "complete" and answer["citations"], answer
    finally:
        server.stop()
