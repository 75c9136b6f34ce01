"""`ragchat ingest --watch DIR` as a user runs it: a real process with the default embedder, real
Chroma, and the registry on SQLite and PostgreSQL. Files are added, changed and removed while
it runs and while it is stopped; a restart re-ingests nothing unchanged; SIGINT and SIGTERM stop
it with exit code 0, and `ragchat doctor` finds the stores in agreement afterwards."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag_core.db.database import Database
from rag_core.db.registry import DocumentRegistry
from rag_core.types import DocumentRecord
from webapp import cli

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEBOUNCE = "0.3"


class Watcher:
    """A `python -m webapp ingest --watch DIR` process whose output lines are collected."""

    def __init__(self, folder: Path, env: dict[str, str], *args: str) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "webapp", "ingest", "--watch", str(folder), *args],
            cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, pattern: str, *, after: int = 0, timeout: float = 90) -> int:
        """Wait for a line (from index `after`) matching `pattern`; returns the next index."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for i in range(after, len(self.lines)):
                    if regex.search(self.lines[i]):
                        return i + 1
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    if self.proc.poll() is not None:
                        self._changed.wait(0.5)  # the last lines of a process that exited
                        if any(regex.search(line) for line in self.lines[after:]):
                            continue
                    pytest.fail(f"no line matching {pattern!r}; output:\n" + "\n".join(self.lines))
                self._changed.wait(min(left, 0.5))

    def stop(self, signum: int) -> int:
        self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"still running 60 s after {signal.Signals(signum).name}; output:\n"
                + "\n".join(self.lines)
            )
        finally:
            time.sleep(0.2)  # let the readers take the last lines

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("RAGCHAT_")}
    if "RAGCHAT_MODEL_CACHE" in os.environ:
        out["RAGCHAT_MODEL_CACHE"] = os.environ["RAGCHAT_MODEL_CACHE"]
    out.update(
        RAGCHAT_HOME=str(tmp_path / "home"),
        RAGCHAT_DATABASE_URL=db_url,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        ANONYMIZED_TELEMETRY="False",
        TOKENIZERS_PARALLELISM="false",
    )
    return out


@pytest.fixture
def registry(db_url: str) -> Iterator[DocumentRegistry]:
    db = Database(db_url)
    yield DocumentRegistry(db)
    db.dispose()


def ready(registry: DocumentRegistry) -> dict[str, DocumentRecord]:
    return {d.name: d for d in registry.list()}


def in_process(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys, *argv: str
) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """Run `ragchat ARGV` in this process (once no watcher runs), with the watcher's settings."""
    for key in [k for k in os.environ if k.startswith("RAGCHAT_")]:
        monkeypatch.delenv(key)
    for key in ("RAGCHAT_HOME", "RAGCHAT_DATABASE_URL", "RAGCHAT_MODEL_CACHE"):
        if key in env:
            monkeypatch.setenv(key, env[key])
    capsys.readouterr()
    code = cli.main(list(argv))
    return code, capsys.readouterr().out


def retrieved(env: dict[str, str], *questions: str) -> list[list[str]]:
    """The documents of the passages the engine retrieves for each question (once no watcher
    runs), in rank order."""
    from rag_core.config import Settings
    from rag_core.factory import build_engine

    settings = Settings(home=Path(env["RAGCHAT_HOME"]), database_url=env["RAGCHAT_DATABASE_URL"])
    engine = build_engine(settings)
    return [[h.chunk.document_name for h in engine.retrieve(q).hits] for q in questions]


def test_a_watched_folder_stays_in_sync_across_changes_restarts_and_signals(
    tmp_path: Path, env: dict[str, str], registry: DocumentRegistry, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "keep.txt").write_text("The copper kettle whistles at noon.\n")
    (folder / "stay.md").write_text("# Stay\n\nThe iron gate squeaks when the wind blows.\n")
    (folder / "photo.gif").write_bytes(b"GIF89a" + b"\x00" * 20)

    first = Watcher(folder, env, "--debounce", DEBOUNCE)
    try:
        first.wait_for(r"^skipped .*photo\.gif: not a supported type")
        first.wait_for(r"^added +.*stay\.md -> stay\.md v1")
        at = first.wait_for(r"in sync: 2 files")
        stay = ready(registry)["stay.md"]

        (folder / "gone.txt").write_text("The paper lantern glows red over the harbour.\n")
        (folder / "other.txt").write_text("The glass bell rings twice at the tram stop.\n")
        at = first.wait_for(r"in sync: 4 files", after=at)
        (folder / "keep.txt").write_text("The copper kettle whistles at one o'clock sharp.\n")
        at = first.wait_for(r"replaced +.*keep\.txt -> keep\.txt v2", after=at)
        (folder / "gone.txt").unlink()
        at = first.wait_for(r"deleted +.*gone\.txt -> gone\.txt v1", after=at)
        first.wait_for(r"in sync: 3 files", after=at)
        docs = ready(registry)
        assert sorted(docs) == ["keep.txt", "other.txt", "stay.md"]
        assert docs["keep.txt"].version == 2
        assert first.stop(signal.SIGINT) == 0
        assert "stopped watching" in first.lines[-1] and "SIGINT" in first.lines[-1]
    finally:
        first.kill()
    added = [x for x in first.lines if re.match(r"(added|replaced) ", x)]
    assert len(added) == 5, first.lines  # each change ingested once

    # stopped: one file changes, one is removed, one stays as it was
    (folder / "keep.txt").write_text("The copper kettle has gone quiet for good.\n")
    (folder / "other.txt").unlink()
    second = Watcher(folder, {**env, "RAGCHAT_WATCH_DEBOUNCE_S": DEBOUNCE})
    try:
        second.wait_for(r"in sync: 2 files")
        assert second.stop(signal.SIGTERM) == 0
    finally:
        second.kill()
    changes = [x.split()[0:2] for x in second.lines if re.match(r"(added|replaced|deleted) ", x)]
    assert sorted(changes) == [
        ["deleted", str(folder / "other.txt")],
        ["replaced", str(folder / "keep.txt")],
    ]
    assert "(SIGTERM)" in second.lines[-1]
    docs = ready(registry)
    assert sorted(docs) == ["keep.txt", "stay.md"]
    assert docs["stay.md"] == stay  # unchanged: not ingested again
    assert docs["keep.txt"].version == 3

    code, out = in_process(env, monkeypatch, capsys, "docs", "list", "--json")
    assert code == 0
    assert sorted((d["name"], d["version"]) for d in json.loads(out)) == [
        ("keep.txt", 3), ("stay.md", 1),
    ]  # fmt: skip
    lantern, bell, kettle = retrieved(
        env, "paper lantern harbour", "glass bell tram stop", "copper kettle quiet"
    )
    assert "gone.txt" not in lantern and "other.txt" not in bell
    assert kettle[0] == "keep.txt"
    code, out = in_process(env, monkeypatch, capsys, "doctor")
    assert (code, out.strip()) == (0, "OK: registry, vector store and keyword index agree.")
