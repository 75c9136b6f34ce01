"""The web app's endpoints through gradio_client, against a real `ragchat serve` (real models).

Covers upload (added / duplicate / new version / error), asking with streaming, the sources
panel and citations rebuilt from the log, follow-ups and history, feedback, refusals, error
messages, stop, document management, and accounts (each user sees only their own history).
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client, handle_file

from tests.webapp_server import RunningServer, start_server
from webapp.auth import hash_password

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

TURBINE = """# Quarnet turbine handbook

## Specification

The Quarnet turbine spins at 7200 rpm. It was designed by Ilse Varga in Tromsø.

## Service

The Quarnet bearings must be greased every 900 operating hours.
"""
ASK = ("hybrid", 5, "Short", "generate")


def text_of(fragment: str) -> str:
    """The visible text of an HTML fragment."""
    return html.unescape(re.sub(r"<[^>]+>", " ", fragment))


class _ClassText(HTMLParser):
    """Collects the text inside every element that has a given class (nesting-aware)."""

    def __init__(self, cls: str) -> None:
        super().__init__()
        self.cls, self.stack, self.found = cls, [], []  # type: ignore[var-annotated]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        hit = self.cls in (dict(attrs).get("class") or "").split()
        if hit:
            self.found.append("")
        self.stack.append((tag, hit, len(self.found) - 1))

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        for _tag, hit, index in self.stack:
            if hit:
                self.found[index] += data


def texts_in(fragment: str, cls: str) -> list[str]:
    """The text of each element with class `cls` in an HTML fragment."""
    parser = _ClassText(cls)
    parser.feed(fragment)
    return parser.found


def turn_ids(transcript: str) -> list[int]:
    return [int(t) for t in re.findall(r'data-turn-id="(\d+)"', transcript)]


@pytest.fixture(scope="module")
def server() -> RunningServer:
    return start_server()


@pytest.fixture(scope="module")
def docs(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The turbine handbook, uploaded once for this module."""
    folder = tmp_path_factory.mktemp("api-docs")
    path = folder / "quarnet-turbine.md"
    path.write_text(TURBINE, encoding="utf-8")
    client = Client(server.url, verbose=False)
    results, table, _picker, _files = client.predict([handle_file(str(path))], api_name="/upload")
    assert "quarnet-turbine.md" in text_of(table)
    return {"folder": folder, "path": path, "results": results}


@pytest.fixture
def client(server: RunningServer) -> Iterator[Client]:
    """A fresh client per test: gradio_client keeps the session (the open conversation)."""
    c = Client(server.url, verbose=False)
    yield c
    c.close()


def ask(client: Client, question: str, *options: Any) -> list[tuple[Any, ...]]:
    """Ask through /ask and return every streamed output (the last one is final)."""
    job = client.submit(question, *(options or ASK), api_name="/ask")
    job.result(timeout=300)
    return list(job.outputs())


def test_upload_reports_each_file(client: Client, docs: dict[str, Any], tmp_path: Path) -> None:
    assert "added" in text_of(docs["results"])
    same = tmp_path / "copy-of-turbine.md"
    same.write_text(TURBINE, encoding="utf-8")
    version = tmp_path / "pump-notes.txt"
    version.write_text("The Brellix pump needs a new filter every 40 days.", encoding="utf-8")
    empty = tmp_path / "empty.txt"
    empty.write_text("   ", encoding="utf-8")
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 8)
    files = [handle_file(str(p)) for p in (same, version, empty, binary)]
    results, table, _picker, _files = client.predict(files, api_name="/upload")
    rows = re.findall(r"<tr class=\"rc-ingest-(\w+)\">(.*?)</tr>", results, re.S)
    by_name = {text_of(cells).split()[0]: status for status, cells in rows}
    assert by_name == {
        "copy-of-turbine.md": "duplicate",
        "pump-notes.txt": "added",
        "empty.txt": "error",
        "blob.bin": "error",
    }
    assert "same content as quarnet-turbine.md" in text_of(results)
    assert "empty" in text_of(results).lower()

    version.write_text("The Brellix pump needs a new filter every 45 days.", encoding="utf-8")
    results, table, _picker, _files = client.predict(
        [handle_file(str(version))], api_name="/upload"
    )
    assert "new version" in text_of(results)
    assert re.search(r"pump-notes\.txt.*?v2", text_of(table), re.S)

    chunks = client.predict("pump-notes.txt", api_name="/chunks")
    assert "every 45 days" in text_of(chunks)
    _results, table, _picker, _chunks = client.predict(
        "pump-notes.txt", api_name="/delete_document"
    )
    assert "pump-notes.txt" not in text_of(table)


def test_answer_streams_with_citations_from_the_log(client: Client, docs: dict[str, Any]) -> None:
    outputs = ask(client, "How fast does the Quarnet turbine spin?")
    transcripts = [o[1] for o in outputs if isinstance(o[1], str)]
    lengths = [len(text_of(t).strip()) for t in transcripts]
    assert len(set(lengths)) >= 3, f"expected several streamed steps, got lengths {lengths}"
    assert any("rc-streaming" in t for t in transcripts[:-1]), "no in-progress frame was streamed"
    final, sources = transcripts[-1], outputs[-1][2]
    assert "rc-streaming" not in final
    assert "7200" in text_of(final)
    chips = re.findall(
        r'class="rc-chip[^"]*" data-action="cite" data-turn="(\d+)" data-n="(\d+)"', final
    )
    assert chips, final
    turn, n = int(chips[0][0]), int(chips[0][1])
    assert turn in turn_ids(final)
    assert "quarnet-turbine.md" in text_of(sources)
    assert "rc-by-" in sources and "rc-bar" in sources  # the score chart

    logged = client.predict(turn, api_name="/turn")
    assert logged["status"] == "complete" and logged["mode"] in ("generated", "extractive")
    cite = next(c for c in logged["citations"] if c["n"] == n)
    assert cite["document"] == "quarnet-turbine.md" and "7200 rpm" in (cite["support"] or "")
    assert any(hit["cited"] for hit in logged["hits"])
    assert {hit["found_by"] for hit in logged["hits"]} <= {"both", "dense", "keyword"}

    # the citation view is rebuilt from the log, in a brand-new session too
    panel = Client(client.src, verbose=False).predict(turn, n, api_name="/show_source")
    assert 'class="rc-citation"' in panel
    assert any("7200 rpm" in t for t in texts_in(panel, "rc-support"))


def test_follow_up_history_rename_and_reopen(
    client: Client, docs: dict[str, Any], server: RunningServer
) -> None:
    first = ask(client, "Who designed the Quarnet turbine?")[-1]
    second = ask(client, "How often must its bearings be greased?")[-1]
    assert len(turn_ids(second[1])) == 2  # the follow-up went into the same conversation
    conversations = client.predict(api_name="/conversations")
    newest = conversations[0]
    assert newest["turns"] == 2 and newest["title"].startswith("Who designed the Quarnet")
    assert [c["updated_at"] for c in conversations] == sorted(
        (c["updated_at"] for c in conversations), reverse=True
    )
    assert newest["id"] in first[3]  # the history panel lists it

    history, title = client.predict("Quarnet questions", api_name="/rename_conversation")
    assert title == "Quarnet questions" and "Quarnet questions" in text_of(history)

    other = Client(server.url, verbose=False)  # e.g. after a page reload
    transcript, sources, history, title, _saved = other.predict(
        newest["id"], api_name="/open_conversation"
    )
    assert "Who designed the Quarnet turbine?" in text_of(transcript)
    assert "How often must its bearings be greased?" in text_of(transcript)
    assert "quarnet-turbine.md" in text_of(sources)
    assert title == "Quarnet questions"
    third = other.submit("What speed does it spin at?", *ASK, api_name="/ask").result(timeout=300)
    assert len(turn_ids(third[1])) == 3  # continued after re-opening

    transcript, *_rest = other.predict(api_name="/delete_conversation")
    assert newest["id"] not in [c["id"] for c in other.predict(api_name="/conversations")]
    assert "rc-welcome" in transcript


def test_retry_asks_the_last_question_again(client: Client, docs: dict[str, Any]) -> None:
    first = ask(client, "Who designed the Quarnet turbine?")[-1]
    job = client.submit("hybrid", 5, "Short", "extractive", api_name="/retry")
    job.result(timeout=300)
    final = job.outputs()[-1]
    assert len(turn_ids(final[1])) == 2 and turn_ids(first[1])[0] == turn_ids(final[1])[0]
    assert text_of(final[1]).count("Who designed the Quarnet turbine?") == 2
    assert "rc-mode-extractive" in final[1] or "rc-refused" in final[1]


def test_feedback_is_stored_with_the_turn(client: Client, docs: dict[str, Any]) -> None:
    final = ask(client, "How fast does the Quarnet turbine spin?")[-1]
    turn = turn_ids(final[1])[-1]
    transcript, label, comment, reason = client.predict(
        turn, -1, "should mention the unit", api_name="/feedback"
    )
    assert "rc-fb is-active" in transcript and "saved" in text_of(label)
    assert comment == "should mention the unit" and reason["visible"] is True  # asks why
    logged = client.predict(turn, api_name="/turn")
    assert logged["feedback_rating"] == -1
    assert logged["feedback_comment"] == "should mention the unit"
    client.predict(turn, 1, "", api_name="/feedback")
    logged = client.predict(turn, api_name="/turn")
    assert logged["feedback_rating"] == 1 and logged["feedback_comment"] is None


def test_refusal_is_shown_with_the_closest_passages(client: Client, docs: dict[str, Any]) -> None:
    final = ask(client, "Which football team won the 1998 World Cup final?")[-1]
    transcript, sources = final[1], final[2]
    assert "rc-refused" in transcript
    assert "Your documents don" in text_of(transcript)
    assert "Refused" in text_of(sources) and "rc-passage" in sources


def test_engine_errors_are_messages_not_tracebacks(client: Client, docs: dict[str, Any]) -> None:
    before = client.predict(api_name="/conversations")
    final = ask(client, "why " * 2000)[-1]
    assert "rc-error-note" in final[1]
    assert "limit is 4,000" in text_of(final[1])
    assert "Traceback" not in final[1]
    assert client.predict(api_name="/conversations") == before  # nothing was logged


def test_stop_keeps_what_was_checked(client: Client, docs: dict[str, Any]) -> None:
    job = client.submit(
        "Describe the Quarnet turbine, its designer and its service in detail.",
        "hybrid", 5, "Long", "generate", api_name="/ask",
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any("rc-pending" in str(o[1]) for o in job.outputs()):
        time.sleep(0.05)
    client.predict(api_name="/stop")
    final = job.result(timeout=300)
    turn = turn_ids(final[1])[-1]
    logged = client.predict(turn, api_name="/turn")
    assert logged["status"] == "stopped", logged
    assert "stopped" in text_of(final[1])


@pytest.fixture(scope="module")
def auth_server() -> RunningServer:
    # one accounts server for this module and tests/integration/test_api.py (carol and dave)
    users = ",".join(
        f"{u}:{hash_password(p)}"
        for u, p in [("alice", "wonderland"), ("bob", "builder"), ("carol", "cellar"),
                     ("dave", "diver")]
    )  # fmt: skip
    return start_server("auth", auth=users)


def test_accounts_see_only_their_own_conversations(
    auth_server: RunningServer, tmp_path: Path
) -> None:
    with pytest.raises(Exception):  # noqa: B017 - gradio_client raises a plain ValueError
        Client(auth_server.url, auth=("alice", "wrong"), verbose=False)
    alice = Client(auth_server.url, auth=("alice", "wonderland"), verbose=False)
    bob = Client(auth_server.url, auth=("bob", "builder"), verbose=False)
    note = tmp_path / "alice-note.txt"
    note.write_text("The Ostrava office opens at 8 o'clock.", encoding="utf-8")
    alice.predict([handle_file(str(note))], api_name="/upload")
    final = alice.submit(
        "When does the Ostrava office open?", "hybrid", 5, "Short", "extractive", api_name="/ask"
    ).result(timeout=300)
    turn = turn_ids(final[1])[-1]
    assert [c["turns"] for c in alice.predict(api_name="/conversations")] == [1]
    assert bob.predict(api_name="/conversations") == []
    with pytest.raises(Exception, match="not found"):
        bob.predict(turn, api_name="/turn")
    panel = bob.predict(turn, 1, api_name="/show_source")
    assert "Ostrava" not in str(panel)
