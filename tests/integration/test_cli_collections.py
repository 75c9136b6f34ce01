"""Collections on the command line, as two people use it through `--user`: `ragchat` commands run
in this process over the real default embedder, real Chroma and SQLite and PostgreSQL. Alice's
private collection and the document she ingests into it are never shown to, nor reached by, Bob
(docs list/show/delete, ask, collections), a scoped question is refused when its collection does
not hold the answer, only Alice deletes her collection, and deleting it with its documents leaves
the stores in agreement (`ragchat doctor`). `ingest --watch --collection` files what it adds."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rag_core import factory
from rag_core.db.collections import Collections
from rag_core.db.database import Database
from rag_core.db.log import ConversationLog
from rag_core.types import Actor, Scope
from webapp import cli

pytestmark = pytest.mark.integration

PUBLIC = "# Office\n\nThe office coffee machine is descaled every Friday at noon.\n"
SECRET = "# Salaries\n\nThe Zorblat project budget for 2027 is 4.2 million euros.\n"
MENU = "# Menu\n\nThe canteen serves lentil soup on Tuesdays.\n"
QUESTION = "What is the Zorblat project budget for 2027?"


@dataclass
class Cli:
    """`ragchat ARGS` in this process on one data folder and database; each engine the command
    builds is closed after it (its pool would otherwise hold PostgreSQL connections)."""

    home: Path
    db_url: str
    capsys: Any
    built: list[Any] = field(default_factory=list)

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        try:
            code = cli.main(list(args))
        finally:
            for engine in self.built:
                engine.store.close()
                engine.registry.db.dispose()
            self.built.clear()
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str) -> Any:
        code, out, err = self(*args, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def run(  # type: ignore[no-untyped-def]
    real_embedder, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> Iterator[Cli]:
    for key in list(os.environ):
        if key.startswith("RAGCHAT_") and key != "RAGCHAT_MODEL_CACHE":
            monkeypatch.delenv(key)
    home = tmp_path / "home"
    monkeypatch.setenv("RAGCHAT_HOME", str(home))
    monkeypatch.setenv("RAGCHAT_DATABASE_URL", db_url)
    monkeypatch.setenv("RAGCHAT_ANSWER_STRATEGY", "extractive")  # quotes: no generator to load
    runner = Cli(home, db_url, capsys)
    # the default embedder, loaded once for the session instead of once per command
    monkeypatch.setattr(factory, "make_embedder", lambda *args: real_embedder)
    build = factory.build_engine

    def recorded(*args: Any, **kwargs: Any) -> Any:
        engine = build(*args, **kwargs)
        runner.built.append(engine)
        return engine

    monkeypatch.setattr(factory, "build_engine", recorded)
    yield runner


def write(folder: Path, name: str, text: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return str(folder / name)


def passages(answer: dict[str, Any]) -> set[str]:
    return {p["document"] for p in answer["retrieved"]} | {
        c["document"] for c in answer["citations"]
    }


def test_bob_never_sees_nor_reaches_alices_private_collection(run: Cli, tmp_path: Path) -> None:
    files = tmp_path / "files"
    code, out, err = run("collections", "create", "Alice notes", "--user", "alice")
    assert code == 0 and "created collection Alice notes (private" in out, err
    code, _, err = run("ingest", "--user", "bob", write(files, "office.md", PUBLIC))
    assert code == 0, err
    salaries = write(files, "salaries.md", SECRET)
    code, out, err = run("ingest", "--user", "alice", "--collection", "alice notes", salaries)
    assert code == 0 and out.startswith("added") and "(collection Alice notes)" in err, out + err

    # alice and the operator see both documents, each with its collections
    mine = {d["name"]: d for d in run.json("docs", "list", "--user", "alice")}
    assert {n: d["collections"] for n, d in mine.items()} == {
        "office.md": ["Default"],
        "salaries.md": ["Alice notes"],
    }
    assert (mine["salaries.md"]["owner"], mine["office.md"]["owner"]) == ("alice", "bob")
    code, out, _ = run("docs", "list")
    row = next(line for line in out.splitlines() if "salaries.md" in line)
    assert row.endswith("  Alice notes") and out.splitlines()[0].endswith("collections")
    secret_id = mine["salaries.md"]["id"]
    bob_is_kept_out(run, secret_id)
    alice_asks_in_and_out_of_her_collection(run)
    only_alice_deletes(run, files, secret_id)


def bob_is_kept_out(run: Cli, secret_id: str) -> None:
    """For bob, alice's document and collection do not exist, whatever the way in."""
    assert [d["name"] for d in run.json("docs", "list", "--user", "bob")] == ["office.md"]
    code, out, _ = run("docs", "list", "--user", "bob")
    assert code == 0 and "salaries" not in out and "Alice" not in out
    for key in ("salaries.md", secret_id[:8], secret_id):
        for command in (["docs", "show", key], ["docs", "delete", key]):
            code, out, err = run(*command, "--user", "bob")
            assert code == 2 and out == "", (command, out)
            assert err.strip() == f"ragchat: No document named {key!r} or with that id"
    listed = run.json("collections", "list", "--user", "bob")
    assert [c["name"] for c in listed] == ["Default"]
    code, out, _ = run("collections", "list", "--user", "bob")
    assert "Alice" not in out and code == 0
    for command in (
        ["collections", "show", "Alice notes"],
        ["collections", "rename", "Alice notes", "Bob notes"],
        ["collections", "delete", "Alice notes", "--delete-documents"],
        ["collections", "add", "Alice notes", "office.md"],
        ["ask", QUESTION, "--collection", "Alice notes"],
    ):
        code, out, err = run(*command, "--user", "bob")
        assert code == 2 and out == "", command
        assert err.startswith("ragchat: No collection 'Alice notes'; yours to search: 'Default'")
    code, out, err = run("ask", QUESTION, "--doc", "salaries.md", "--user", "bob")
    assert code == 2 and "No document named 'salaries.md'" in err
    for_bob = run.json("ask", QUESTION, "--user", "bob")
    assert for_bob["refused"] and passages(for_bob) == {"office.md"}
    assert "4.2 million" not in json.dumps(for_bob)
    assert run.json("docs", "show", "salaries.md", "--user", "alice")["collections"] == [
        "Alice notes"
    ]  # bob's delete did nothing


def alice_asks_in_and_out_of_her_collection(run: Cli) -> None:
    """Scoped to Default her own document is out of reach and the question is refused; scoped to
    her collection it is answered, and the conversation is hers, with that scope."""
    scoped = run.json("ask", QUESTION, "--user", "alice", "--collection", "Default")
    assert scoped["refused"] and passages(scoped) == {"office.md"}
    assert scoped["config"]["scope"] == {"collections": ["Default"], "documents": []}
    answered = run.json("ask", QUESTION, "--user", "alice", "--collection", "Alice notes")
    assert not answered["refused"] and "4.2 million euros" in answered["answer"]
    assert passages(answered) == {"salaries.md"}
    db = Database(run.db_url)
    try:
        log = ConversationLog(db)
        assert [c.scope for c in log.list_conversations("alice")] == [
            Scope(collections=("Alice notes",)),
            Scope(collections=("Default",)),
        ]
        assert len(log.list_conversations("bob")) == 1 and log.list_conversations("local") == []
    finally:
        db.dispose()


def only_alice_deletes(run: Cli, files: Path, secret_id: str) -> None:
    """An 'everyone' collection of alice's: bob sees it, but only alice changes or deletes it
    (that it holds a document found nowhere else is not what he is told). Then alice deletes
    her private collection: refused while it would strand her document, then with it."""
    code, _, err = run("collections", "create", "Alice public", "--user", "alice",
                       "--visibility", "everyone")  # fmt: skip
    assert code == 0, err
    menu = write(files, "menu.md", MENU)
    code, _, err = run("ingest", "--user", "alice", "--collection", "Alice public", menu)
    assert code == 0, err
    assert "Alice public" in {c["name"] for c in run.json("collections", "list", "--user", "bob")}
    for command in (
        ["collections", "delete", "Alice public"],
        ["collections", "rename", "Alice public", "Bob's"],
        ["collections", "edit", "Alice public", "--description", "mine now"],
    ):
        code, out, err = run(*command, "--user", "bob")
        assert code == 2 and "it belongs to alice; only its owner or an admin" in err, command

    code, _, err = run("collections", "delete", "Alice notes", "--user", "alice")
    assert code == 2 and "holds 1 document(s) found in no other collection" in err
    assert run.json("docs", "show", "salaries.md")["collections"] == ["Alice notes"]
    code, out, err = run(
        "collections", "delete", "Alice notes", "--user", "alice", "--delete-documents"
    )
    assert code == 0, err
    assert out.splitlines()[0].startswith("deleted collection Alice notes (")
    assert out.splitlines()[1].startswith(f"deleted salaries.md ({secret_id[:8]}, 1 chunks)")
    assert [d["name"] for d in run.json("docs", "list")] == ["menu.md", "office.md"]
    gone = run.json("ask", QUESTION)  # the operator searches everything: nothing of it is left
    assert passages(gone) <= {"menu.md", "office.md"} and gone["refused"]
    code, out, err = run("doctor")
    assert code == 0 and "OK: registry, vector store and keyword index agree." in out, out + err


def test_collections_add_remove_rename_and_a_shared_collection(run: Cli, tmp_path: Path) -> None:
    files = tmp_path / "files"
    code, _, err = run("ingest", write(files, "office.md", PUBLIC), write(files, "s.md", SECRET))
    assert code == 0, err
    code, out, err = run("collections", "create", "Team", "--user", "alice",
                         "--member", "carol", "--description", "the team's")  # fmt: skip
    assert code == 0 and "(shared with carol," in out, err
    code, out, err = run("collections", "add", "Team", "s.md", "office.md", "--user", "alice")
    assert (code, out.strip()) == (0, "added 2 document(s) to Team"), err
    code, out, _ = run("collections", "add", "team", "s.md", "--user", "alice")
    assert out.strip() == "added 0 document(s) to Team (1 already there)"
    shown = run.json("collections", "show", "Team", "--user", "carol")
    assert (shown["visibility"], shown["members"], shown["owner"]) == ("shared", ["carol"], "alice")
    assert [d["name"] for d in shown["documents"]] == ["office.md", "s.md"]
    assert shown["document_count"] == 2
    assert [c["name"] for c in run.json("collections", "list", "--user", "dave")] == ["Default"]

    # a document must stay in some collection; out of Team it goes, back in Default it stays
    code, out, _ = run("collections", "remove", "Team", "office.md", "--user", "alice")
    assert (code, out.strip()) == (0, "removed 1 document(s) from Team")
    code, _, err = run("collections", "remove", "Default", "s.md")
    assert code == 0, err
    code, _, err = run("collections", "remove", "Team", "s.md", "--user", "alice")
    assert code == 2 and "s.md: in no other collection" in err
    code, out, err = run("collections", "rename", "Team", "Budget team", "--user", "alice")
    assert (code, out.strip()) == (0, "renamed collection Team to Budget team"), err
    code, out, _ = run("collections", "show", "Budget team", "--user", "carol")
    assert out.splitlines()[0].startswith("Budget team (shared, owner alice, id ")
    assert "  Members:     carol" in out and "s.md" in out and "office.md" not in out
    code, _, err = run("collections", "create", "budget TEAM")
    assert code == 2 and "A collection named 'budget TEAM' already exists" in err
    code, out, err = run("collections", "edit", "Budget team", "--user", "alice",
                         "--visibility", "private")  # fmt: skip
    assert (code, out.strip()) == (0, "changed collection Budget team (private)"), err
    code, _, err = run("collections", "show", "Budget team", "--user", "carol")
    assert code == 2 and "No collection 'Budget team'" in err
    code, _, err = run("collections", "delete", "Default")
    assert code == 2 and "The Default collection cannot be deleted" in err


def test_watch_files_new_documents_in_the_collection_as_the_user(run: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    write(folder, "salaries.md", SECRET)
    watch = ["ingest", "--watch", str(folder), "--debounce", "0.1", "--user", "alice"]
    code, out, err = run(*watch, "--collection", "Inbox")
    assert code == 2 and err.startswith("ragchat: No collection 'Inbox'") and out == ""
    code, _, err = run("collections", "create", "Inbox", "--user", "alice")
    assert code == 0, err

    db = Database(run.db_url)
    collections = Collections(db)

    def stop_when_filed() -> None:
        deadline = time.monotonic() + 120
        inbox = collections.get("Inbox", Actor("alice"))
        while not collections.document_ids(inbox.id) and time.monotonic() < deadline:
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=stop_when_filed)
    thread.start()
    try:
        code, out, err = run(*watch, "--collection", "inbox")
    finally:
        thread.join()
        db.dispose()
    assert code == 0, err
    assert f"watching {folder} into collection inbox" in err
    assert out.startswith(f"added      {folder / 'salaries.md'} -> salaries.md v1")
    doc = run.json("docs", "show", "salaries.md", "--user", "alice")
    assert (doc["collections"], doc["owner"]) == (["Inbox"], "alice")
    assert run.json("docs", "list", "--user", "bob") == []
