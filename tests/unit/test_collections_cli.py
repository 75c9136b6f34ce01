"""`ragchat collections` and `--user/--collection/--doc` over the fake engine: bad arguments are
named by argparse (exit 2), a request the engine refuses is one line on stderr (exit 2, never a
traceback), and `--user` is an admin only when RAGCHAT_ADMINS names them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rag_core.types import Actor, Scope
from webapp import cli
from webapp.collections_cli import actor_of, scope_of


@pytest.fixture
def run(fake_engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):  # type: ignore[no-untyped-def]
    """`ragchat ARGS` over the fake engine; returns (exit code, stdout, stderr)."""
    for key in list(os.environ):
        if key.startswith("RAGCHAT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("RAGCHAT_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(cli, "_engine", lambda settings, **kwargs: fake_engine)

    def call(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return call


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["collections", "create", "x", "--visibility", "public"], "invalid choice: 'public'"),
        (["collections", "edit", "x", "--visibility", "open"], "invalid choice: 'open'"),
        (["collections", "create"], "the following arguments are required: name"),
        (["collections", "create", "  "], "argument name: a name cannot be empty"),
        (["collections", "rename", "Team"], "the following arguments are required: new_name"),
        (["collections", "add", "Team"], "the following arguments are required: DOC"),
        (["collections", "delete"], "the following arguments are required: name"),
        (["collections", "create", "T", "--member", "a,b"], "not a user name: 'a,b'"),
        (["ask", "why?", "--user", ""], "argument --user: not a user name: ''"),
        (["docs", "list", "--user", "two words"], "not a user name: 'two words'"),
        (["ask", "why?", "--collection", " "], "argument --collection: a name cannot be empty"),
        (["ingest", "f.md", "--collection", ""], "argument --collection: a name cannot be empty"),
    ],
)
def test_bad_arguments_are_named_with_exit_code_2(
    argv: list[str], message: str, run, capsys
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as stopped:
        run(*argv)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["collections", "create", "T", "--visibility", "shared"], "needs the users"),
        (["collections", "create", "a/b"], "may not contain '/'"),
        (
            ["collections", "create", "T", "--visibility", "everyone", "--member", "bob"],
            "Members are for a 'shared' collection",
        ),
        (["collections", "edit", "Default"], "nothing to change"),
        (["collections", "show", "Nope"], "No collection 'Nope'; yours to search: 'Default'"),
        (["collections", "add", "Default", "nope.md"], "No document 'nope.md'"),
        (["collections", "delete", "Default", "--delete-documents"], "cannot be deleted"),
        (["collections", "edit", "Default", "--visibility", "private"], "stays so"),
        (["docs", "show", "nope.md"], "No document 'nope.md'"),
    ],
)
def test_refusals_are_one_line_with_exit_code_2(argv: list[str], message: str, run) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run(*argv)
    assert (code, out) == (2, "")
    assert err.startswith("ragchat: ") and message in err and err.count("\n") == 1


def test_member_means_shared_and_an_admin_sees_every_collection(  # type: ignore[no-untyped-def]
    run, fake_engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run("collections", "create", "Team", "--user", "alice", "--member", "bob")
    assert code == 0 and out.startswith("created collection Team (shared with bob, id "), err
    code, out, _ = run("collections", "create", "Mine", "--user", "alice", "--description", "x")
    assert code == 0 and "(private, id" in out
    assert [c.name for c in fake_engine.collections.list(Actor("bob"))] == ["Default", "Team"]
    code, out, _ = run("collections", "list", "--user", "root")
    assert code == 0 and "Mine" not in out
    monkeypatch.setenv("RAGCHAT_ADMINS", "root")
    code, out, _ = run("collections", "list", "--user", "root")
    rows = [line.split()[:4] for line in out.splitlines()[1:]]
    assert rows == [
        ["Default", "everyone", "(operator)", "0"],
        ["Mine", "private", "alice", "0"],
        ["Team", "shared", "alice", "0"],
    ]
    # with no file read yet, a collection the user may not see stops the ingest
    (tmp_path / "a.md").write_text("The kettle is blue.")
    code, _, err = run("ingest", str(tmp_path / "a.md"), "--collection", "Mine", "--user", "bob")
    assert code == 2 and "No collection 'Mine'" in err
    assert fake_engine.documents() == []


def test_who_acts_and_what_a_question_searches() -> None:
    from rag_core.config import Settings

    settings = Settings(admins="root, ops")
    args = cli.build_parser().parse_args(["ask", "why?"])
    assert actor_of(args, settings) == Actor() and scope_of(args) is None
    args = cli.build_parser().parse_args(
        ["ask", "why?", "--user", "ops", "--collection", "A", "--doc", "x.md", "--collection", "B"]
    )
    assert actor_of(args, settings) == Actor("ops", admin=True)
    assert scope_of(args) == Scope(collections=("A", "B"), documents=("x.md",))
    args = cli.build_parser().parse_args(["docs", "list", "--user", "alice"])
    assert actor_of(args, settings) == Actor("alice", admin=False)


def test_a_users_watcher_files_into_the_collection_and_leaves_others_documents(  # type: ignore[no-untyped-def]
    fake_engine, tmp_path: Path
) -> None:
    from rag_core.errors import CollectionNotFoundError
    from rag_core.watch import Deleted, FolderWatcher, Ingested, Skipped

    folder = tmp_path / "watched"
    folder.mkdir()
    now = [100.0]

    def settled(watcher: FolderWatcher) -> list[object]:
        watcher.poll()
        now[0] += 1.0
        return list(watcher.poll())

    def watcher(actor: Actor | None = None, collection: str | None = None) -> FolderWatcher:
        return FolderWatcher(
            fake_engine, folder, debounce_s=0.5, clock=lambda: now[0], actor=actor,
            collection=collection,
        )  # fmt: skip

    alice = Actor("alice")
    with pytest.raises(CollectionNotFoundError):  # checked before anything is watched
        watcher(alice, "Inbox")
    fake_engine.collections.create("Inbox", alice)
    (folder / "op.txt").write_text("The operator's kettle is blue.")
    assert [type(e) for e in settled(watcher())] == [Ingested]  # the operator's, in Default

    (folder / "op.txt").unlink()
    (folder / "mine.txt").write_text("Alice's teapot is green.")
    events = settled(watcher(alice, "inbox"))
    added = [e for e in events if isinstance(e, Ingested)]
    assert [(e.path, e.result.status) for e in added] == [("mine.txt", "added")]
    doc = added[0].result.document
    assert doc is not None and doc.owner == "alice"
    assert fake_engine.collections.memberships([doc.id]) == {doc.id: ["Inbox"]}
    # the operator's document: its file is gone, but it is not alice's to delete
    skipped = [e for e in events if isinstance(e, Skipped)]
    assert [e.path for e in skipped] == ["op.txt"] and "not deleted" in skipped[0].reason
    assert not any(isinstance(e, Deleted) for e in events)
    assert [d.name for d in fake_engine.documents()] == ["mine.txt", "op.txt"]


def test_with_accounts_on_the_user_must_be_one_of_them(  # type: ignore[no-untyped-def]
    run, fake_engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from webapp.auth import pbkdf2_hash

    monkeypatch.setenv("RAGCHAT_AUTH", f"alice:{pbkdf2_hash('pw', iterations=1000)}")
    code, out, err = run("collections", "create", "Notes", "--user", "alcie")
    assert (code, out) == (1, "")
    assert err.strip() == "ragchat: user 'alcie' is not in RAGCHAT_AUTH (alice)"
    assert [c.name for c in fake_engine.collections.list(Actor())] == ["Default"]
    code, out, _ = run("collections", "create", "Notes", "--user", "alice")
    assert code == 0 and fake_engine.collections.get("Notes", Actor()).owner == "alice"
