"""20 chat sessions at once through a real `ragchat serve` (loopback), on SQLite and PostgreSQL.

Each session is its own gradio_client Client (its own browser session): it asks a question, waits
for the streamed answer, then reads its turn and conversation list, gives feedback and renames
the conversation, so the log's writes (turns, passages, feedback, titles) from many requests
overlap. Every answer must be complete with no error, and every turn, passage, citation and
feedback row must be in the database, read directly with SQL. On SQLite the sessions get generated
answers (RAGCHAT_MAX_NEW_TOKENS=24; the server generates one answer at a time, so later sessions
queue); on PostgreSQL quoted answers (no generator), which turn the database over faster.

Then, on SQLite, the time to first token of questions asked while a large upload is being
ingested is measured against the same questions without the upload: ingestion has its own queue
(concurrency group) and must not hold chats back beyond UPLOAD_TTFT_BOUND_S. The figures are
printed (pytest -s shows them).
"""

from __future__ import annotations

import re
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from gradio_client import Client, handle_file

from tests.webapp_server import RunningServer, launch

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
SESSIONS = 20
MAX_NEW_TOKENS = 24
UPLOAD_TTFT_BOUND_S = 12.0  # first token while a large file is ingesting, beyond the baseline

FACTS = {
    "pumps.md": "# Pumps\n\nThe Vexel pump moves 40 litres of water per minute. It is serviced "
    "every six months by a certified technician.\n\nThe Ardent pump moves 15 litres per minute "
    "and runs on solar power.\n",
    "turbines.md": "# Turbines\n\nThe Quarnet turbine spins at 7200 rpm. Its bearings are "
    "greased every 900 operating hours.\n\nThe Lorn turbine spins at 3100 rpm and was built in "
    "Tromso.\n",
    "office.txt": "The Ostrava office opens at 8 o'clock and closes at 17 o'clock. Visitors "
    "sign in at the front desk on the ground floor.\n",
    "lamps.md": "# Lamps\n\nThe Lumen lamp battery lasts 14 hours on a full charge. The lamp is "
    "cleaned with a dry cloth only.\n",
}
QUESTIONS = [
    "How many litres per minute does the Vexel pump move?",
    "How often is the Vexel pump serviced?",
    "How fast does the Quarnet turbine spin?",
    "When are the Quarnet bearings greased?",
    "When does the Ostrava office open?",
    "How long does the Lumen lamp battery last?",
    "What powers the Ardent pump?",
    "Where was the Lorn turbine built?",
    "Where do visitors sign in at the Ostrava office?",
    "How is the Lumen lamp cleaned?",
]


def _start(home: Path, database_url: str) -> RunningServer:
    """`ragchat serve` on a free loopback port with short answers, waiting until it answers."""
    return launch(
        home,
        {"RAGCHAT_DATABASE_URL": database_url, "RAGCHAT_MAX_NEW_TOKENS": str(MAX_NEW_TOKENS)},
    )


@pytest.fixture
def server(db_url: str) -> Iterator[RunningServer]:
    home = Path(tempfile.mkdtemp(prefix="ragchat-load-"))
    running = _start(home, db_url)
    try:
        yield running
    finally:
        running.process.terminate()  # a throwaway server: no need to wait for a slow shutdown
        try:
            running.process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            running.process.kill()
        running.stop()


def _first_token(output: Any) -> bool:
    """Whether a streamed /ask output already shows answer text (or the finished answer)."""
    shown = str(output[1]).rsplit('class="rc-turn"', 1)[-1]  # the newest turn only
    return any(mark in shown for mark in ('class="rc-pending"', 'class="rc-ok"', "rc-mode-"))


@dataclass
class Answer:
    session: int
    turn_id: int | None = None
    seconds: float = 0.0
    ttft: float | None = None
    status: str | None = None
    cited: int = 0
    error: str | None = None


def ask(client: Client, question: str, style: str) -> tuple[Any, float, float | None]:
    """Ask through /ask; returns (final output, seconds, seconds to the first token)."""
    started = time.monotonic()
    job = client.submit(question, "hybrid", 5, None, style, api_name="/ask")
    ttft = None
    while not job.done():
        if ttft is None and any(_first_token(o) for o in job.outputs()):
            ttft = time.monotonic() - started
        time.sleep(0.02)
    final = job.result(timeout=600)
    seconds = time.monotonic() - started
    return final, seconds, ttft if ttft is not None else seconds


def session(url: str, i: int, style: str, answers: list[Answer]) -> None:
    """One user: a question, then reads and writes on the logged turn."""
    answer = Answer(i)
    answers.append(answer)
    client = Client(url, verbose=False)
    try:
        final, answer.seconds, answer.ttft = ask(client, QUESTIONS[i % len(QUESTIONS)], style)
        ids = [int(t) for t in re.findall(r'data-turn-id="(\d+)"', final[1])]
        assert ids, f"no logged turn in the final output: {final[1][-400:]}"
        answer.turn_id = ids[-1]
        logged = client.predict(answer.turn_id, api_name="/turn")
        answer.status = logged["status"]
        answer.cited = len({c["text"] for c in logged["citations"]})
        if logged["status"] != "complete" or "rc-error-note" in final[1]:
            answer.error = f"status {logged['status']}: {final[1][-300:]}"
        listed = {c["id"]: c["turns"] for c in client.predict(api_name="/conversations")}
        assert listed[logged["conversation_id"]] == 1  # no accounts: every session is 'local'
        client.predict(answer.turn_id, 1, f"good {i}", api_name="/feedback")
        client.predict(f"load session {i}", api_name="/rename_conversation")
    except Exception as exc:  # recorded and asserted on below, with the session number
        answer.error = f"{type(exc).__name__}: {exc}"
    finally:
        client.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values) or [float("nan")]
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def test_twenty_sessions_at_once(server: RunningServer, db_url: str, tmp_path: Path) -> None:
    backend = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    style = "generate" if backend == "sqlite" else "extractive"
    uploader = Client(server.url, verbose=False)
    paths = []
    for name, text in FACTS.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        paths.append(handle_file(str(tmp_path / name)))
    uploader.predict(paths, api_name="/upload")

    answers: list[Answer] = []
    threads = [threading.Thread(target=session, args=(server.url, i, style, answers))
               for i in range(SESSIONS)]  # fmt: skip
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    wall = time.monotonic() - started
    errors = [f"session {a.session}: {a.error}" for a in answers if a.error]
    latencies = [a.seconds for a in answers if not a.error]
    ttfts = [a.ttft for a in answers if a.ttft is not None and not a.error]
    print(
        f"\nload {backend} ({style}, {MAX_NEW_TOKENS} new tokens): {len(latencies)}/{SESSIONS}"
        f" answers complete, {len(errors)} errors, {wall:.1f} s wall;"
        f" latency p50 {pct(latencies, 0.5):.1f} s p95 {pct(latencies, 0.95):.1f} s;"
        f" first token p50 {pct(ttfts, 0.5):.1f} s p95 {pct(ttfts, 0.95):.1f} s"
    )
    assert not errors, "\n".join(errors) + "\n" + server.log_tail()
    assert len(answers) == SESSIONS and all(a.status == "complete" for a in answers)

    # every turn, passage, citation, feedback and title is in the database
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            turns = conn.execute(sa.text(
                "SELECT t.id, t.status, t.error, t.feedback_rating, c.title,"
                " (SELECT count(*) FROM turn_passages p WHERE p.turn_id = t.id),"
                " (SELECT count(*) FROM turn_passages p WHERE p.turn_id = t.id AND p.cited)"
                " FROM turns t JOIN conversations c ON c.id = t.conversation_id"
            )).all()  # fmt: skip
    finally:
        engine.dispose()
    by_id = {row[0]: row for row in turns}
    assert len(turns) == SESSIONS
    for a in answers:
        _, status, error, rating, title, passages, cited = by_id[a.turn_id]
        assert (status, error, rating) == ("complete", None, 1)
        assert title == f"load session {a.session}"
        assert passages >= 1
        assert cited == a.cited, (a.session, cited, a.cited)  # the citations shown are logged
    assert sum(a.cited for a in answers) > 0
    if backend == "sqlite":
        check_upload_does_not_block_chats(server, tmp_path)


def big_document() -> str:
    words = ["valve", "gauge", "turbine", "bearing", "lamp", "office", "pump", "filter",
             "housing", "copper", "steel", "bronze", "sensor", "relay", "cable", "panel"]  # fmt: skip
    paragraphs = [f"# Field manual\n\nThe Zentor archive holds {len(words)} kinds of part."]
    for n in range(1440):  # ~1.1 MB: its ingest outlasts the three questions asked meanwhile
        body = " ".join(words[(n * 7 + k) % len(words)] for k in range(110))
        paragraphs.append(f"Record {n}: the part number {n} is described as follows. {body}.")
    return "\n\n".join(paragraphs) + "\n"


def check_upload_does_not_block_chats(server: RunningServer, tmp_path: Path) -> None:
    """Time to first token with and without a large upload being ingested at the same time."""
    questions = QUESTIONS[:3]

    def first_token(question: str) -> tuple[float, float]:
        client = Client(server.url, verbose=False)  # a new conversation: same prompt size
        try:
            _final, seconds, ttft = ask(client, question, "generate")
        finally:
            client.close()
        return ttft or seconds, seconds

    baseline = [first_token(q) for q in questions[:2]]
    big = tmp_path / "field-manual.md"
    big.write_text(big_document(), encoding="utf-8")
    uploader = Client(server.url, verbose=False)
    started = time.monotonic()
    job = uploader.submit([handle_file(str(big))], api_name="/upload")
    ended: list[float] = []

    def watch() -> None:
        while not job.done():
            time.sleep(0.05)
        ended.append(time.monotonic())

    threading.Thread(target=watch, daemon=True).start()
    time.sleep(1.5)  # the file is sent and its ingestion (parse, chunk, embed) has begun
    during: list[tuple[float, float]] = []
    overlapped = 0
    for q in questions:
        asked = time.monotonic()
        during.append(first_token(q))
        overlapped += not ended or ended[0] > asked + during[-1][0]  # first token mid-ingest
    results, table, _picker, _files = job.result(timeout=600)
    time.sleep(0.1)
    ingest_s = (ended[0] if ended else time.monotonic()) - started
    shown = ", ".join
    print(
        f"first token / whole answer without upload: {shown(f'{t:.1f}/{a:.1f}' for t, a in baseline)}"
        f" s; while a {big.stat().st_size // 1024} KB file was ingesting ({ingest_s:.0f} s):"
        f" {shown(f'{t:.1f}/{a:.1f}' for t, a in during)} s ({overlapped}/3 during the ingest)"
    )
    assert "field-manual.md" in table and "added" in str(results)
    assert overlapped >= 2, "the upload finished too early to measure anything"
    worst = max(t for t, _ in during)
    assert worst <= statistics.median(t for t, _ in baseline) + UPLOAD_TTFT_BOUND_S, (
        baseline, during)  # fmt: skip
    uploader.close()
