"""A real `ragchat serve` in a subprocess for the server benchmarks: free loopback port, temporary
RAGCHAT_HOME, default models and settings (the demo knowledge base is ingested at start), plus
reading its memory from /proc and timing chats through gradio_client's /ask endpoint."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import ROOT, free_port

START_TIMEOUT_S = 300
# The questions asked of the demo knowledge base (assets/demo), which answers them all.
QUESTIONS = (
    "How long does a full charge of the Lumen L2 take?",
    "What warranty does Northwind Lighting give on the Lumen L2?",
    "How do I switch the Lumen L2 between warm white and daylight?",
    "Does ragchat send my documents to an outside service?",
    "How is a password hash made for a ragchat account?",
    "Which two retrievers does ragchat use to search documents?",
    "How long does the Lumen L2 run on one charge at medium brightness?",
    "Where are past conversations listed in ragchat?",
)
ASK = ("hybrid", 5, "Medium", "generate")  # mode, top k, length (160 tokens), style: the defaults


@dataclass
class Server:
    url: str
    home: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    def memory(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak) of the server process, in kB, from /proc/<pid>/status."""
        out: dict[str, int] = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
        return out

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.home, ignore_errors=True)


def start_server(extra_env: dict[str, str] | None = None) -> Server:
    """Start `python -m webapp.cli serve` with default settings and wait until it answers."""
    home = Path(tempfile.mkdtemp(prefix="ragchat-bench-serve-"))
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
    env.update(extra_env or {})
    log_path = home / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "webapp.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}/", home, process, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = server.log_tail()
            server.stop()
            raise RuntimeError(f"ragchat serve exited with {process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(server.url + "gradio_api/info", timeout=5):
                return server
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    tail = server.log_tail()
    server.stop()
    raise RuntimeError(f"ragchat serve did not answer in {START_TIMEOUT_S} s:\n{tail}")


@dataclass(frozen=True)
class ChatTiming:
    """One question through /ask: seconds to the first answer text and to the end."""

    first_token_s: float
    total_s: float


def timed_chat(url: str, question: str, timeout: float = 900) -> ChatTiming:
    """Ask one question in a fresh client (a new conversation) and time it.

    /ask streams frames: the question, then the sources (retrieval done), then the answer as it
    grows. The first token is the first frame after the sources frame.
    """
    from gradio_client import Client

    client = Client(url, verbose=False)
    try:
        t0 = time.perf_counter()
        job = client.submit(question, *ASK, api_name="/ask")
        first: float | None = None
        while not job.done():
            if first is None and len(job.outputs()) >= 3:
                first = time.perf_counter() - t0
            if time.perf_counter() - t0 > timeout:
                job.cancel()
                raise TimeoutError(f"no answer to {question!r} in {timeout:.0f} s")
            time.sleep(0.01)
        job.result(timeout=timeout)
        total = time.perf_counter() - t0
        outputs: list[Any] = list(job.outputs())
        if first is None:
            first = total
        if len(outputs) < 3:
            raise RuntimeError(f"/ask streamed only {len(outputs)} frames for {question!r}")
        return ChatTiming(first, total)
    finally:
        client.close()


def concurrent_chats(
    url: str, questions: list[str], workers: int
) -> tuple[list[ChatTiming], float]:
    """Ask all `questions` with `workers` clients at once, each taking the next question when
    its answer is done; every question's timing and the wall time."""
    pending = list(enumerate(questions))
    lock = threading.Lock()
    results: list[ChatTiming | BaseException | None] = [None] * len(questions)
    barrier = threading.Barrier(workers)

    def worker() -> None:
        barrier.wait()
        while True:
            with lock:
                if not pending:
                    return
                i, question = pending.pop(0)
            try:
                results[i] = timed_chat(url, question)
            except BaseException as exc:  # reported to the caller below
                results[i] = exc

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    out: list[ChatTiming] = []
    for r in results:
        if not isinstance(r, ChatTiming):
            raise RuntimeError(f"a concurrent chat failed: {r!r}")
        out.append(r)
    return out, wall
