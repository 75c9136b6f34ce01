"""Two app replicas behind one Chroma server and one PostgreSQL schema, each with its own home.

Real `ragchat serve` processes, a real `chroma run` and the PostgreSQL server on 127.0.0.1:5432,
driven through the REST API: a document uploaded through one replica is retrieved (by both the
dense and the keyword retriever) and cited through the other; a conversation started on one
continues on the other; a document deleted through one can no longer be retrieved through the
other. Answers are extractive and the generator is a remote one that is never called, so no
process loads the language model: the point here is the shared state, not generation.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.services import chroma_run, postgres_schema
from tests.webapp_server import ROOT, RunningServer, launch

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.timeout(400)]

START_TIMEOUT_S = 180
TURBINE = b"""# Quarnet turbine handbook

## Specification

The Quarnet turbine spins at 7200 rpm. It was designed by Ilse Varga in Troms\xc3\xb8.

## Service

The Quarnet bearings must be greased every 900 operating hours.
"""
QUESTION = "How often must the Quarnet bearings be greased?"


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A `chroma run` server (chromadb's own) on a free local port."""
    with chroma_run(tmp_path_factory.mktemp("replica-chroma")) as url:
        yield url


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A fresh schema of its own on the PostgreSQL server."""
    with postgres_schema("r") as url:
        yield url


def start_replica(name: str, chroma_url: str, database_url: str, tmp: Path) -> RunningServer:
    """`ragchat serve` configured by settings only: shared Chroma and database, own home."""
    home = tmp / name
    home.mkdir()
    return launch(
        home,
        {
            "RAGCHAT_CHROMA_URL": chroma_url,
            "RAGCHAT_DATABASE_URL": database_url,
            "RAGCHAT_ANSWER_MODE": "extractive",
            # a remote generator that is never called: extractive answers need none, and no
            # replica spends a minute and a gigabyte loading the local model
            "RAGCHAT_GENERATOR": "openai:http://127.0.0.1:9/v1",
            "RAGCHAT_GENERATOR_MODEL": "unused",
        },
        start_timeout_s=START_TIMEOUT_S,
    )


@pytest.fixture(scope="module")
def replicas(
    chroma_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, RunningServer]]:
    tmp = tmp_path_factory.mktemp("replicas")
    with ThreadPoolExecutor(2) as pool:  # both start at once, as behind a load balancer
        futures = [pool.submit(start_replica, name, chroma_url, database_url, tmp) for name in "ab"]
        errors = [f.exception() for f in futures]
        started = [f.result() for f in futures if f.exception() is None]
    if any(errors):
        for s in started:
            s.stop()
        raise next(e for e in errors if e is not None)
    a, b = started
    try:
        yield a, b
    finally:
        for s in (a, b):
            s.stop()


def ask(server: RunningServer, question: str, **extra: Any) -> dict[str, Any]:
    response = httpx.post(f"{server.url}api/ask", json={"question": question, **extra}, timeout=120)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_replicas_share_documents_and_conversations(
    replicas: tuple[RunningServer, RunningServer],
) -> None:
    a, b = replicas
    assert a.home != b.home
    upload = httpx.post(
        f"{a.url}api/documents",
        files=[("files", ("quarnet-turbine.md", TURBINE, "text/markdown"))],
        timeout=120,
    )
    assert upload.status_code == 200, upload.text
    result = upload.json()["results"][0]
    assert result["status"] == "added", result
    doc_id = result["document"]["id"]

    # B never saw the upload, yet retrieves and cites it, with both retrievers
    listed = httpx.get(f"{b.url}api/documents", timeout=30).json()
    assert [d["name"] for d in listed] == ["quarnet-turbine.md"]
    first = ask(b, QUESTION)
    assert not first["refused"], first["answer"]
    assert "900 operating hours" in first["answer"]
    assert first["citations"] and first["citations"][0]["document_id"] == doc_id
    top = first["passages"][0]
    assert top["document_id"] == doc_id
    assert top["found_by"] == "both" and top["keyword_score"]  # B's local BM25 index has it
    bm25 = ask(b, QUESTION, mode="bm25")
    assert bm25["passages"] and bm25["passages"][0]["document_id"] == doc_id

    # the conversation started on B continues on A: same id, B's turn is A's history
    conversation = first["conversation_id"]
    follow = ask(a, "And who designed it?", conversation_id=conversation)
    assert follow["conversation_id"] == conversation
    assert "Quarnet" in follow["query"]  # the follow-up was completed from the turn on B
    assert "Ilse Varga" in follow["answer"]
    shown = httpx.get(f"{b.url}api/conversations/{conversation}", timeout=30).json()
    assert [t["question"] for t in shown["turns"]] == [QUESTION, "And who designed it?"]
    assert [t["id"] for t in shown["turns"]] == [first["turn_id"], follow["turn_id"]]

    # deleted through A: B can no longer retrieve it, by either retriever
    deleted = httpx.delete(f"{a.url}api/documents/quarnet-turbine.md", timeout=60)
    assert deleted.status_code == 200, deleted.text
    assert httpx.get(f"{b.url}api/documents", timeout=30).json() == []
    for mode in ("hybrid", "bm25", "dense"):
        after = ask(b, QUESTION, mode=mode)
        assert after["refused"] and after["passages"] == [], (mode, after)
    # B's keyword index dropped it too (not just filtered): the registry and B's index agree
    doctor = subprocess.run(
        [sys.executable, "-m", "webapp.cli", "doctor"], cwd=ROOT, env=b.env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
