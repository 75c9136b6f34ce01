"""Watched folders (rag_core.watch): settling, planning, scanning, and the watcher over the fake
engine with a hand-driven clock. The real engine in a real `ragchat ingest --watch` process is
tests/integration/test_watch_real.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rag_core.config import Settings
from rag_core.errors import UserError
from rag_core.watch import (
    Action,
    Deleted,
    FolderWatcher,
    Held,
    Ingested,
    InSync,
    Signature,
    Skipped,
    Tracked,
    load_state,
    plan,
    scan,
    settle,
    state_file,
)
from webapp import cli

A = Signature(10, 1)
B = Signature(12, 2)


def held(name: str, content: str = "h1") -> Held:
    return Held(name, content, f"id-{name}")


# -- settle ---------------------------------------------------------------------------------------


def test_a_new_file_is_stable_only_after_the_debounce() -> None:
    tracked, stable, waiting = settle({}, {"a.txt": A}, (), now=0.0, debounce_s=2)
    assert (stable, waiting) == (set(), {"a.txt"})
    tracked, stable, waiting = settle(tracked, {"a.txt": A}, (), now=1.9, debounce_s=2)
    assert (stable, waiting) == (set(), {"a.txt"})
    tracked, stable, waiting = settle(tracked, {"a.txt": A}, (), now=2.0, debounce_s=2)
    assert (stable, waiting) == ({"a.txt"}, set())


def test_a_file_still_changing_waits_again_from_its_last_change() -> None:
    tracked, _, _ = settle({}, {"a.txt": A}, (), now=0.0, debounce_s=2)
    tracked, stable, waiting = settle(tracked, {"a.txt": B}, (), now=1.5, debounce_s=2)
    assert tracked["a.txt"] == Tracked(B, 1.5)
    assert (stable, waiting) == (set(), {"a.txt"})
    _, stable, _ = settle(tracked, {"a.txt": B}, (), now=3.0, debounce_s=2)
    assert stable == set()
    _, stable, _ = settle(tracked, {"a.txt": B}, (), now=3.5, debounce_s=2)
    assert stable == {"a.txt"}


def test_a_held_file_that_is_gone_waits_the_debounce_before_it_may_be_deleted() -> None:
    tracked = {"a.txt": Tracked(A, 0.0)}
    tracked, stable, waiting = settle(tracked, {}, {"a.txt"}, now=5.0, debounce_s=2)
    assert tracked["a.txt"] == Tracked(None, 5.0)
    assert (stable, waiting) == (set(), {"a.txt"})
    # back before the debounce (an editor that deletes and rewrites): a change, not a deletion
    _, stable, waiting = settle(tracked, {"a.txt": B}, {"a.txt"}, now=6.0, debounce_s=2)
    assert (stable, waiting) == (set(), {"a.txt"})
    tracked, stable, waiting = settle(tracked, {}, {"a.txt"}, now=7.0, debounce_s=2)
    assert (stable, waiting) == (set(), set())  # neither: plan deletes it


def test_an_absent_path_that_is_not_held_is_forgotten() -> None:
    tracked, stable, waiting = settle({"a.txt": Tracked(A, 0.0)}, {}, (), now=5.0, debounce_s=2)
    assert (tracked, stable, waiting) == ({}, set(), set())


# -- plan -----------------------------------------------------------------------------------------


def test_plan_adds_replaces_deletes_and_leaves_unchanged_files_alone() -> None:
    kb = {
        "same.txt": held("same.txt"),
        "changed.md": held("changed.md"),
        "gone.txt": held("gone.txt"),
    }
    folder = {"same.txt": "h1", "changed.md": "h2", "new.txt": "h3"}
    assert plan(folder, kb) == [
        Action("delete", "gone.txt", kb["gone.txt"]),  # deletions first
        Action("replace", "changed.md", kb["changed.md"]),
        Action("add", "new.txt"),
    ]


def test_plan_leaves_waiting_paths_and_ignored_contents_alone() -> None:
    kb = {"gone.txt": held("gone.txt"), "bad.txt": held("bad.txt")}
    folder = {"bad.txt": "h9", "dup.txt": "h5"}
    assert plan(folder, kb, waiting={"gone.txt"}, ignore={"bad.txt": "h9", "dup.txt": "h5"}) == []
    # ignored only while the file holds that content
    assert plan({"dup.txt": "h6"}, {}, ignore={"dup.txt": "h5"}) == [Action("add", "dup.txt")]


def test_plan_of_an_empty_folder_deletes_everything_and_of_an_empty_kb_adds_everything() -> None:
    kb = {"a.txt": held("a.txt")}
    assert plan({}, kb) == [Action("delete", "a.txt", kb["a.txt"])]
    assert plan({"b.txt": "x", "a.txt": "y"}, {}) == [
        Action("add", "a.txt"),
        Action("add", "b.txt"),
    ]


# -- scan -----------------------------------------------------------------------------------------


def test_scan_lists_supported_files_recursively_and_says_why_others_are_skipped(
    tmp_path: Path,
) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "sub" / "b.md").write_text("bb")
    (tmp_path / "sub" / "deeper" / "a.txt").write_text("other a")
    (tmp_path / "tool.exe").write_bytes(b"MZ")
    (tmp_path / ".a.txt.swp").write_text("editor")
    (tmp_path / ".git" / "c.txt").write_text("hidden folder")
    listing = scan(tmp_path)
    assert sorted(listing.files) == ["a.txt", "sub/b.md"]
    assert listing.files["sub/b.md"].size == 2
    assert set(listing.skipped) == {"tool.exe", "sub/deeper/a.txt"}
    assert "not a supported type" in listing.skipped["tool.exe"]
    assert listing.skipped["sub/deeper/a.txt"].startswith("a.txt has the same file name")


# -- the watcher over the fake engine -------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def write(path: Path, text: str, mtime: int) -> None:
    """Write a file with a given mtime (seconds), so each write is a new signature."""
    path.write_text(text)
    os.utime(path, (mtime, mtime))


def settled(watcher: FolderWatcher, clock: Clock) -> list[object]:
    """Poll, let the debounce pass, poll again; what the second poll did."""
    watcher.poll()
    clock.now += 1.0
    return list(watcher.poll())


def statuses(events: list[object]) -> list[tuple[str, str]]:
    out = []
    for e in events:
        if isinstance(e, Ingested):
            out.append((e.result.status, e.path))
        elif isinstance(e, Deleted):
            out.append(("deleted", e.path))
    return out


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    f = tmp_path / "watched"
    f.mkdir()
    return f


def test_the_watcher_adds_replaces_and_deletes_and_a_restart_reingests_nothing(
    fake_engine, folder: Path
) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    watcher = FolderWatcher(fake_engine, folder, debounce_s=0.5, clock=clock)
    write(folder / "keep.txt", "The copper kettle whistles at noon.", 1000)
    assert watcher.poll() == []  # seen, not settled yet
    clock.now += 1.0
    events = watcher.poll()
    assert statuses(events) == [("added", "keep.txt")]
    clock.now += 1.0
    assert watcher.poll() == [InSync(files=1, changes=1)]
    clock.now += 1.0
    assert watcher.poll() == []  # said once until something changes

    write(folder / "keep.txt", "The copper kettle whistles at one o'clock.", 2000)
    write(folder / "gone.txt", "The paper lantern is red.", 2000)
    assert statuses(settled(watcher, clock)) == [("added", "gone.txt"), ("replaced", "keep.txt")]
    assert fake_engine.document("keep.txt").version == 2
    assert [d.name for d in fake_engine.documents()] == ["gone.txt", "keep.txt"]

    (folder / "gone.txt").unlink()
    assert statuses(settled(watcher, clock)) == [("deleted", "gone.txt")]
    assert [d.name for d in fake_engine.documents()] == ["keep.txt"]
    assert not any(
        h.chunk.document_name == "gone.txt" for h in fake_engine.retrieve("lantern").hits
    )

    # stopped: one file changes, one is removed, one stays
    write(folder / "stay.md", "# Stay\n\nThe iron gate squeaks.", 3000)
    write(folder / "other.txt", "The glass bell rings twice.", 3000)
    settled(watcher, clock)
    stay = fake_engine.document("stay.md")
    write(folder / "keep.txt", "The copper kettle is quiet now.", 4000)
    (folder / "other.txt").unlink()

    restarted = FolderWatcher(fake_engine, folder, debounce_s=0.5, clock=clock)
    assert statuses(settled(restarted, clock)) == [
        ("deleted", "other.txt"),
        ("replaced", "keep.txt"),
    ]
    clock.now += 1.0
    assert restarted.poll() == [InSync(files=2, changes=2)]
    assert fake_engine.document("stay.md") == stay  # not ingested again
    assert fake_engine.document("keep.txt").version == 3
    assert fake_engine.check() == []


def test_unsupported_and_failing_files_are_reported_once(fake_engine, folder: Path) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    watcher = FolderWatcher(fake_engine, folder, debounce_s=0.5, clock=clock)
    (folder / "movie.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    write(folder / "blank.txt", "   \n", 1000)
    first = watcher.poll()
    assert [type(e) for e in first] == [Skipped] and first[0].path == "movie.mp4"  # type: ignore[union-attr]
    clock.now += 1.0
    events = watcher.poll()
    assert statuses(events) == [("error", "blank.txt")]
    clock.now += 1.0
    assert watcher.poll() == [InSync(files=0, changes=0)]  # a failure changed nothing
    for _ in range(3):
        clock.now += 1.0
        assert [e for e in watcher.poll() if not isinstance(e, InSync)] == []
    write(folder / "blank.txt", "Now it has text.", 2000)  # changed: tried again
    assert statuses(settled(watcher, clock)) == [("added", "blank.txt")]


def test_a_file_renamed_within_the_folder_becomes_a_document_of_its_new_name(
    fake_engine, folder: Path
) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    watcher = FolderWatcher(fake_engine, folder, debounce_s=0.5, clock=clock)
    write(folder / "draft.txt", "The velvet curtain is blue.", 1000)
    settled(watcher, clock)
    (folder / "draft.txt").rename(folder / "final.txt")
    events = settled(watcher, clock)
    assert statuses(events) == [("deleted", "draft.txt"), ("added", "final.txt")]
    assert [d.name for d in fake_engine.documents()] == ["final.txt"]


def test_a_lost_state_file_finds_the_documents_again_by_name_and_content(
    fake_engine, folder: Path
) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    watcher = FolderWatcher(fake_engine, folder, debounce_s=0.5, clock=clock)
    write(folder / "a.txt", "The walnut desk has three drawers.", 1000)
    settled(watcher, clock)
    before = fake_engine.document("a.txt")
    watcher.state_path.unlink()
    again = FolderWatcher(fake_engine, folder, debounce_s=0.5, clock=clock)
    assert statuses(settled(again, clock)) == [("duplicate", "a.txt")]
    assert load_state(again.state_path, folder) == {"a.txt": "a.txt"}
    assert fake_engine.documents() == [before]
    (folder / "a.txt").unlink()
    assert statuses(settled(again, clock)) == [("deleted", "a.txt")]


def test_a_document_deleted_by_hand_comes_back_while_its_file_is_there(
    fake_engine, folder: Path
) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    watcher = FolderWatcher(fake_engine, folder, debounce_s=0.5, clock=clock)
    write(folder / "a.txt", "The marble stairs are cold.", 1000)
    settled(watcher, clock)
    fake_engine.delete_document("a.txt")
    clock.now += 1.0
    assert statuses(watcher.poll()) == [("added", "a.txt")]


def test_a_copy_of_another_document_is_said_once_and_not_added(fake_engine, folder: Path) -> None:  # type: ignore[no-untyped-def]
    fake_engine.ingest_bytes(b"The tin soldier stands guard.", "elsewhere.txt")
    clock = Clock()
    watcher = FolderWatcher(fake_engine, folder, debounce_s=0.5, clock=clock)
    write(folder / "copy.txt", "The tin soldier stands guard.", 1000)
    assert statuses(settled(watcher, clock)) == [("duplicate", "copy.txt")]
    write(folder / "b.txt", "Something else entirely.", 1000)
    assert statuses(settled(watcher, clock)) == [("added", "b.txt")]  # copy.txt not said again
    (folder / "copy.txt").unlink()
    settled(watcher, clock)
    assert [d.name for d in fake_engine.documents()] == ["b.txt", "elsewhere.txt"]


def test_state_files_are_per_folder_and_a_broken_one_is_named(tmp_path: Path, folder: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    assert state_file(tmp_path, folder) != state_file(tmp_path, other)
    broken = tmp_path / "state.json"
    broken.write_text("{not json")
    with pytest.raises(UserError, match=r"state\.json"):
        load_state(broken, folder)


def test_the_watcher_refuses_a_missing_folder_and_a_bad_debounce(
    fake_engine, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UserError, match=r"nowhere.*does not exist"):
        FolderWatcher(fake_engine, tmp_path / "nowhere", debounce_s=1)
    with pytest.raises(UserError, match="-1"):
        FolderWatcher(fake_engine, tmp_path, debounce_s=-1)


# -- settings and command line --------------------------------------------------------------------


def test_the_debounce_setting_reads_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAGCHAT_WATCH_DEBOUNCE_S", "0.25")
    assert Settings().watch_debounce_s == 0.25
    monkeypatch.setenv("RAGCHAT_WATCH_DEBOUNCE_S", "0")
    with pytest.raises(ValueError, match="watch_debounce_s"):
        Settings()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ingest"], "--watch DIR"),
        (["ingest", "{tmp}", "--debounce", "3"], "--debounce 3 goes with --watch DIR"),
        (["ingest", "--watch", "{tmp}", "extra.txt"], "extra.txt"),
        (["ingest", "--watch", "{tmp}/nowhere"], "nowhere: it does not exist"),
        (["ingest", "--watch", "{tmp}", "--debounce", "0"], "--debounce must be more than 0"),
        (["ingest", "--watch", "{tmp}", "--debounce", "inf"], "at most 3600 seconds, not inf"),
    ],
)
def test_the_command_line_names_what_is_wrong(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RAGCHAT_HOME", str(tmp_path / "home"))
    code = cli.main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert code == 1
    assert message in capsys.readouterr().err


def _watch(fake_engine, folder: Path, capsys) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """`ragchat ingest --watch FOLDER` in this process over the fake engine; a thread sends
    SIGTERM once the file in the folder is in the knowledge base."""
    import signal
    import threading
    import time

    from webapp.watch_cli import cmd_watch

    def stop_it() -> None:
        deadline = time.monotonic() + 30
        while not fake_engine.documents() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    args = cli.build_parser().parse_args(["ingest", "--watch", str(folder), "--debounce", "0.1"])
    thread = threading.Thread(target=stop_it)
    thread.start()
    try:
        code = cmd_watch(args, fake_engine.settings, lambda settings: fake_engine)
    finally:
        thread.join()
    return code, capsys.readouterr().err


def test_sigterm_stops_the_watcher_with_exit_code_0(fake_engine, folder: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    (folder / "a.txt").write_text("The brass compass points north.")
    code, err = _watch(fake_engine, folder, capsys)
    assert code == 0
    assert err.splitlines()[-1] == f"stopped watching {folder} (SIGTERM)"
    assert [d.name for d in fake_engine.documents()] == ["a.txt"]
    assert signal_handlers_restored()


@pytest.mark.parametrize(
    ("signals", "said"),
    [
        (2, "files not added yet were cancelled"),  # the engine's cancel, at the next batch
        (3, "a change in progress was abandoned"),  # KeyboardInterrupt: the ingest undoes it
    ],
)
def test_more_signals_stop_the_batch_in_progress_and_still_exit_0(
    signals: int, said: str, fake_engine, folder: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """Signals while a file's chunks are being embedded: nothing of the file is kept."""
    import signal

    from webapp.watch_cli import cmd_watch

    embedder = fake_engine.pipeline.embedder
    embed = embedder.embed_documents

    def interrupted(texts):  # type: ignore[no-untyped-def]
        for _ in range(signals):
            os.kill(os.getpid(), signal.SIGTERM)
        return embed(texts)

    monkeypatch.setattr(embedder, "embed_documents", interrupted)
    (folder / "a.txt").write_text("The brass compass points north.")
    args = cli.build_parser().parse_args(["ingest", "--watch", str(folder), "--debounce", "0.1"])
    code = cmd_watch(args, fake_engine.settings, lambda settings: fake_engine)
    out, err = capsys.readouterr()
    assert code == 0
    assert said in err
    assert err.splitlines()[-1] == f"stopped watching {folder} (SIGTERM)"
    if signals == 2:
        assert out.split() == ["cancelled", str(folder / "a.txt")]
    assert fake_engine.documents() == []
    assert fake_engine.registry.not_ready() == []
    assert fake_engine.check() == []
    assert signal_handlers_restored()


def signal_handlers_restored() -> bool:
    import signal

    return signal.getsignal(signal.SIGINT) is signal.default_int_handler and signal.getsignal(
        signal.SIGTERM
    ) in (signal.SIG_DFL, None)


def test_a_folder_that_cannot_be_read_keeps_its_documents(fake_engine, folder: Path) -> None:  # type: ignore[no-untyped-def]
    """An unmounted share or a folder renamed away is not a folder emptied: nothing is deleted."""
    clock = Clock()
    watcher = FolderWatcher(fake_engine, folder, debounce_s=0.5, clock=clock)
    write(folder / "a.txt", "The oak door is heavy.", 1000)
    settled(watcher, clock)
    away = folder.with_name("away")
    folder.rename(away)
    events = watcher.poll()
    assert [(type(e), getattr(e, "path", None)) for e in events] == [(Skipped, "")]
    assert "the folder cannot be read" in events[0].reason  # type: ignore[union-attr]
    for _ in range(3):  # said once; not deleted however long it lasts
        clock.now += 5
        assert watcher.poll() == []
    assert [d.name for d in fake_engine.documents()] == ["a.txt"]
    away.rename(folder)
    assert statuses(settled(watcher, clock)) == []
    assert load_state(watcher.state_path, folder) == {"a.txt": "a.txt"}


def test_a_reindex_swap_during_a_batch_is_retried_on_the_next_poll(
    fake_engine, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from rag_core.errors import IndexChangedError

    ingest = fake_engine.ingest
    calls: list[int] = []

    def swapped_once(sources, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:
            raise IndexChangedError("the knowledge base was re-embedded while this file was added")
        return ingest(sources, *args, **kwargs)

    monkeypatch.setattr(fake_engine, "ingest", swapped_once)
    clock = Clock()
    watcher = FolderWatcher(fake_engine, folder, debounce_s=0.5, clock=clock)
    write(folder / "a.txt", "The clay pot holds rain.", 1000)
    events = settled(watcher, clock)
    assert [type(e) for e in events] == [Skipped]
    assert "re-embedded" in events[0].reason  # type: ignore[union-attr]
    clock.now += 1.0
    assert statuses(watcher.poll()) == [("added", "a.txt")]


def test_a_listed_file_that_cannot_be_read_is_not_taken_for_removed(
    fake_engine, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import rag_core.watch as watch

    clock = Clock()
    watcher = FolderWatcher(fake_engine, folder, debounce_s=0.5, clock=clock)
    write(folder / "a.txt", "The pewter jug is full.", 1000)
    settled(watcher, clock)
    write(folder / "a.txt", "The pewter jug is empty now.", 2000)

    def unreadable(path: Path) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(watch, "file_hash", unreadable)
    for _ in range(3):
        clock.now += 1.0
        assert watcher.poll() == []
    assert [d.name for d in fake_engine.documents()] == ["a.txt"]
    monkeypatch.undo()
    clock.now += 1.0
    assert statuses(watcher.poll()) == [("replaced", "a.txt")]
