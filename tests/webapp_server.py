"""A real `ragchat serve` in a subprocess, started once per test session and shared.

The API tests (tests/integration/test_webapp_api.py) and the browser tests (tests/e2e/) both use
`start_server()`: real default models, real Chroma, real SQLite, in a fresh data folder. Model
loading is slow, so one server serves every test; each test uses its own conversations and
distinct fictional documents so they do not disturb each other.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 240


@dataclass
class RunningServer:
    """A server process, its URL and its data folder."""

    url: str
    home: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.home, ignore_errors=True)


_servers: dict[str, RunningServer] = {}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_up(server: RunningServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"ragchat serve exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        try:
            with urllib.request.urlopen(server.url + "gradio_api/info", timeout=5):
                return
        except urllib.error.HTTPError:  # 401 with accounts: up, and asking for a login
            return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"ragchat serve did not answer in {timeout_s} s:\n{server.log_tail()}")


def launch(
    home: Path, settings: dict[str, str], *, start_timeout_s: float = START_TIMEOUT_S
) -> RunningServer:
    """`python -m webapp.cli serve --no-demo` on a free loopback port, data in `home`, configured
    by `settings` (RAGCHAT_* variables; the caller's own are not passed on); waits until it
    answers. The URL ends with a slash."""
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RAGCHAT_") or k == "RAGCHAT_MODEL_CACHE"
    }
    env.update(
        RAGCHAT_HOME=str(home),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        ANONYMIZED_TELEMETRY="False",
        GRADIO_ANALYTICS_ENABLED="False",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    if not {"RAGCHAT_ANSWER_STRATEGY", "RAGCHAT_ANSWER_MODE"} & set(settings):
        # these servers test the generating path, streaming included (the shipped default
        # quotes, see docs/ANSWERS.md); a caller's settings may choose otherwise
        env["RAGCHAT_ANSWER_STRATEGY"] = "concat"
    log_path = home / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "webapp.cli", "serve", "--host", "127.0.0.1", "--port",
             str(port), "--no-demo"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = RunningServer(f"http://127.0.0.1:{port}/", home, process, log_path, env)
    _wait_until_up(server, start_timeout_s)
    return server


def start_server(name: str = "default", *, auth: str | None = None) -> RunningServer:
    """Start (once per name) the shared test server: short answers, optional accounts."""
    if name in _servers and _servers[name].process.poll() is None:
        return _servers[name]
    home = Path(tempfile.mkdtemp(prefix=f"ragchat-web-{name}-"))
    settings = {"RAGCHAT_MAX_NEW_TOKENS": "60"}
    if auth:
        settings["RAGCHAT_AUTH"] = auth
    server = launch(home, settings)
    atexit.register(server.stop)
    _servers[name] = server
    return server
