"""Watched folders: `ragchat ingest --watch DIR` keeps a folder and the knowledge base in sync.

Each poll lists the folder (recursively, supported types only, hidden files and folders left
out), lets every change settle (`settle`: a file is taken once its size and modification time
have not changed for the debounce interval; a removed file is deleted once gone that long, so an
editor that deletes and rewrites a file makes a new version, not a new document) and turns the
difference between the folder and the knowledge base into actions (`plan`, pure): add a new
file, replace a document whose file changed, delete one whose file is gone.

A document is named by its file's name, as `ragchat ingest` names it. Which documents belong to
the folder is kept in a small state file under RAGCHAT_HOME (`Settings.watch_path`); what they
hold is read from the registry (content hashes), so on start the folder is reconciled with what
the knowledge base really holds: unchanged files are not ingested again, files changed or removed
while the watcher was stopped are replaced or deleted, and a document deleted by hand comes back
while its file is there. The state file is written after each change; if a crash loses the last
write, the file's document is found again by name and content (a duplicate of the same name).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rag_core.errors import (
    DocumentNotFoundError,
    IndexChangedError,
    PermissionDeniedError,
    UserError,
)
from rag_core.ingest.detect import SUPPORTED, SUPPORTED_EXTENSIONS
from rag_core.ingest.pipeline import clean_name
from rag_core.types import Actor, DocumentRecord, IngestResult

if TYPE_CHECKING:
    from rag_core.engine import Engine

STATE_VERSION = 1


@dataclass(frozen=True)
class Signature:
    """What a poll sees of a file without reading it."""

    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Tracked:
    """A path's last seen signature (None: absent) and since when it has not changed."""

    signature: Signature | None
    since: float


@dataclass(frozen=True)
class Held:
    """A document of the folder: the file's path relative to it, and what the registry holds."""

    name: str
    content_hash: str
    document_id: str


@dataclass(frozen=True)
class Action:
    """One change to make: add or replace the file at `path`, or delete its document."""

    kind: Literal["add", "replace", "delete"]
    path: str  # relative to the folder, '/'-separated
    held: Held | None = None  # the document replaced or deleted


@dataclass(frozen=True)
class Listing:
    """One scan of the folder: the files to keep in sync, those skipped with the reason, and the
    folders that could not be read ('' the watched folder itself; their files are not gone)."""

    files: dict[str, Signature]
    skipped: dict[str, str]
    unreadable: tuple[str, ...] = ()

    def hidden(self, path: str) -> bool:
        """True if `path` lies in a folder this scan could not read (its absence proves nothing)."""
        return any(path.startswith(prefix) for prefix in self.unreadable)


@dataclass(frozen=True)
class Ingested:
    """A file went through the engine's ingest (added, replaced, a duplicate or an error)."""

    path: str
    result: IngestResult


@dataclass(frozen=True)
class Deleted:
    """A file is gone from the folder: its document was deleted."""

    path: str
    record: DocumentRecord


@dataclass(frozen=True)
class Skipped:
    """A file the watcher leaves alone (said once per file and reason)."""

    path: str
    reason: str


@dataclass(frozen=True)
class InSync:
    """Nothing is waiting: the knowledge base holds the folder's `files`; `changes` were made
    since the last InSync."""

    files: int
    changes: int


WatchEvent = Ingested | Deleted | Skipped | InSync


def _changed(event: WatchEvent) -> bool:
    """Whether the event changed the knowledge base (a document added, replaced or deleted)."""
    if isinstance(event, Ingested):
        return event.result.status in ("added", "replaced")
    return isinstance(event, Deleted)


def settle(
    tracked: Mapping[str, Tracked],
    listing: Mapping[str, Signature],
    held: Collection[str],
    now: float,
    debounce_s: float,
) -> tuple[dict[str, Tracked], set[str], set[str]]:
    """Track each path's signature over polls. Returns the new tracking, the present files whose
    signature has not changed for `debounce_s` (stable), and the paths to leave alone for now:
    files still changing, and held paths gone for less than `debounce_s`. Absent paths are
    tracked only while they are held (there is nothing to delete otherwise)."""
    out: dict[str, Tracked] = {}
    stable: set[str] = set()
    waiting: set[str] = set()
    for path in listing.keys() | set(held):
        signature = listing.get(path)
        before = tracked.get(path)
        since = before.since if before is not None and before.signature == signature else now
        if signature is None and path not in held:
            continue
        out[path] = Tracked(signature, since)
        settled = now - since >= debounce_s
        if signature is not None and settled:
            stable.add(path)
        elif not settled:
            waiting.add(path)
    return out, stable, waiting


def plan(
    folder: Mapping[str, str],
    kb: Mapping[str, Held],
    waiting: Collection[str] = (),
    ignore: Mapping[str, str] | None = None,
) -> list[Action]:
    """What to do to make the knowledge base hold the folder. `folder`: the stable files' content
    hashes by path; `kb`: the folder's documents by path; `waiting`: paths still settling (left
    alone); `ignore`: path -> content hash already tried without success (a file that failed,
    or duplicates another document), not tried again while it holds that content.
    Deletions come first, so a file renamed (or moved) within the folder is added afresh rather
    than refused as a duplicate of its own old document."""
    ignore = ignore or {}
    deletes = [
        Action("delete", path, held)
        for path, held in sorted(kb.items())
        if path not in folder and path not in waiting
    ]
    ingests: list[Action] = []
    for path, content_hash in sorted(folder.items()):
        if ignore.get(path) == content_hash:
            continue
        held = kb.get(path)
        if held is None:
            ingests.append(Action("add", path))
        elif held.content_hash != content_hash:
            ingests.append(Action("replace", path, held))
    return deletes + ingests


def document_name(path: str) -> str:
    """The name the document of the file at `path` (relative, '/'-separated) gets."""
    return clean_name(path.rsplit("/", 1)[-1])


def scan(folder: Path) -> Listing:
    """The supported files under `folder` by relative path. Hidden files and folders (a leading
    '.', as editors' temporary files have) are left out silently; files of another type, and
    files whose document name an earlier file (in path order) already has, are skipped."""
    found: dict[str, Signature] = {}
    skipped: dict[str, str] = {}
    unreadable: list[str] = []
    _walk(folder, "", found, skipped, unreadable)
    files: dict[str, Signature] = {}
    names: dict[str, str] = {}
    for path in sorted(found):
        name = document_name(path)
        first = names.setdefault(name, path)
        if first != path:
            skipped[path] = (
                f"{first} has the same file name, and a document is named by its file name;"
                " rename one of them"
            )
            continue
        files[path] = found[path]
    return Listing(files, skipped, tuple(unreadable))


def _walk(
    folder: Path,
    prefix: str,
    found: dict[str, Signature],
    skipped: dict[str, str],
    unreadable: list[str],
) -> None:
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:  # unmounted, no permission, removed mid-scan
        unreadable.append(prefix)
        skipped[prefix] = (
            f"the folder cannot be read ({exc.strerror or exc}); its documents are kept until"
            " it can"
        )
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = prefix + entry.name
        try:
            if entry.is_dir(follow_symlinks=False):
                _walk(Path(entry.path), path + "/", found, skipped, unreadable)
                continue
            if not entry.is_file():
                continue
            if Path(entry.name).suffix.lower() not in SUPPORTED_EXTENSIONS:
                skipped[path] = f"not a supported type ({SUPPORTED})"
                continue
            st = entry.stat()
        except OSError:  # removed between listing and stat
            continue
        found[path] = Signature(st.st_size, st.st_mtime_ns)


def file_hash(path: Path) -> str:
    """The SHA-256 of a file's content, as the registry records it."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def state_file(watch_path: Path, folder: Path) -> Path:
    """The state file of a watched folder (one per folder, by its resolved path)."""
    key = hashlib.sha256(str(folder.resolve()).encode("utf-8", "surrogatepass")).hexdigest()
    return watch_path / f"{key[:24]}.json"


def load_state(path: Path, folder: Path) -> dict[str, str]:
    """The folder's files the watcher added, path -> document name ({} when there is no state
    yet). A state file that cannot be read is a UserError naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data["files"]
        if not isinstance(files, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in files.items()
        ):
            raise ValueError("'files' is not a map of paths to document names")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(
            f"cannot read the watch state {path} of {folder}: {exc}; remove it to let the"
            " watcher rebuild it (documents are found again by file name and content)"
        ) from exc
    return dict(files)


def save_state(path: Path, folder: Path, files: Mapping[str, str]) -> None:
    """Write the state atomically (a crash leaves the old file or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"version": STATE_VERSION, "folder": str(folder.resolve()), "files": dict(files)}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class _Memory:
    """What the watcher remembers between polls."""

    tracked: dict[str, Tracked] = field(default_factory=dict)
    hashes: dict[str, tuple[Signature, str]] = field(default_factory=dict)  # path -> last read
    failed: dict[str, str] = field(default_factory=dict)  # until the file changes
    duplicates: dict[str, str] = field(default_factory=dict)  # until the registry changes
    noticed: set[tuple[str, str]] = field(default_factory=set)
    token: str | None = None
    documents: dict[str, DocumentRecord] = field(default_factory=dict)  # by name
    changes: int = 0
    synced: bool = False


class FolderWatcher:
    """Keeps one folder in sync with an engine's knowledge base; `poll()` does one round,
    `run(stop)` polls until `stop` is set (checked between changes too: a batch of files being
    ingested is finished first, unless `cancel` is set as well: then the engine stops it at the
    next chunk batch, keeps the files already added and reports the others 'cancelled').
    It acts as `actor` (the operator by default: it sees every document; a user sees and
    replaces only what they may), and new files join `collection` (None: Default)."""

    def __init__(
        self,
        engine: Engine,
        folder: Path,
        *,
        debounce_s: float,
        state_path: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        actor: Actor | None = None,
        collection: str | None = None,
    ) -> None:
        folder = Path(folder)
        if not folder.is_dir():
            what = "does not exist" if not folder.exists() else "is not a folder"
            raise UserError(f"cannot watch {folder}: it {what}")
        if not debounce_s > 0:
            raise UserError(f"the debounce interval must be more than 0 seconds, not {debounce_s}")
        self.engine = engine
        self.actor = actor or Actor()
        # checked now (not found, or not visible to the actor: before anything is watched)
        self.collection = (
            engine.collections.get(collection, self.actor).id if collection is not None else None
        )
        self.folder = folder
        self.debounce_s = debounce_s
        self.state_path = state_path or state_file(engine.settings.watch_path, folder)
        self.clock = clock
        self.files = load_state(self.state_path, folder)  # path -> document name
        self._m = _Memory()

    def run(
        self,
        stop: threading.Event,
        interval: float | None = None,
        *,
        cancel: threading.Event | None = None,
    ) -> Iterator[WatchEvent]:
        """Poll every `interval` seconds (default: a quarter of the debounce, 0.1 to 1 s) until
        `stop` is set."""
        wait = interval if interval is not None else min(1.0, max(0.1, self.debounce_s / 4))
        while not stop.is_set():
            yield from self.poll(stop, cancel)
            stop.wait(wait)

    def poll(
        self, stop: threading.Event | None = None, cancel: threading.Event | None = None
    ) -> list[WatchEvent]:
        """One round: scan, settle, plan, act. Returns what happened."""
        m = self._m
        now = self.clock()
        listing = scan(self.folder)
        events: list[WatchEvent] = [
            Skipped(path, why)
            for path, why in sorted(listing.skipped.items())
            if self._new(path, why)
        ]
        self._refresh()
        kb = self._held()
        gone = [
            p
            for p in self.files
            if p not in kb and p not in listing.files and not listing.hidden(p)
        ]
        if gone:  # deleted by hand while its file was removed too: forget it
            for path in gone:
                del self.files[path]
            self._save()
        m.tracked, stable, waiting = settle(m.tracked, listing.files, kb, now, self.debounce_s)
        for memo in (m.hashes, m.failed, m.duplicates):  # forget files no longer there
            for path in [p for p in memo if p not in listing.files and not listing.hidden(p)]:
                del memo[path]
        folder: dict[str, str] = {}
        for path in sorted(stable):
            content = self._hash(path, listing.files[path])
            if content is not None:
                folder[path] = content
            else:  # listed but not readable now: not gone either
                waiting.add(path)
        waiting |= {path for path in kb if listing.hidden(path)}  # not gone, unreadable
        actions = plan(folder, kb, waiting, {**m.failed, **m.duplicates})
        events += self._act(actions, folder, stop, cancel)
        if actions:
            m.changes += sum(_changed(e) for e in events)
            m.synced = False
        elif not waiting and not m.synced:
            events.append(InSync(len(self._held()), m.changes))
            m.synced, m.changes = True, 0
        return events

    # -- internals -----------------------------------------------------------------------------

    def _new(self, path: str, why: str) -> bool:
        """True the first time this path is skipped for this reason."""
        if (path, why) in self._m.noticed:
            return False
        self._m.noticed.add((path, why))
        return True

    def _refresh(self) -> None:
        """Read the ready documents again when the registry changed (one small query if not)."""
        m = self._m
        token = self.engine.registry.change_token()
        if token == m.token:
            return
        m.token = token
        m.documents = {
            d.name: d for d in self.engine.documents(self.actor)
        }  # by version: latest wins
        m.duplicates.clear()  # the document they duplicated may be gone

    def _held(self) -> dict[str, Held]:
        """The folder's documents the knowledge base holds, by path."""
        docs = self._m.documents
        return {
            path: Held(name, docs[name].content_hash, docs[name].id)
            for path, name in self.files.items()
            if name in docs
        }

    def _hash(self, path: str, signature: Signature) -> str | None:
        """The file's content hash, read again only when its signature changed."""
        cached = self._m.hashes.get(path)
        if cached is not None and cached[0] == signature:
            return cached[1]
        try:
            content = file_hash(self.folder / path)
        except OSError:  # removed or unreadable since the scan: the next poll sees it
            return None
        self._m.hashes[path] = (signature, content)
        return content

    def _act(
        self,
        actions: list[Action],
        folder: Mapping[str, str],
        stop: threading.Event | None,
        cancel: threading.Event | None,
    ) -> list[WatchEvent]:
        events: list[WatchEvent] = []
        ingest: list[Action] = []
        for action in actions:
            if stop is not None and stop.is_set():
                return events
            if action.kind != "delete":
                ingest.append(action)
                continue
            assert action.held is not None
            try:
                record = self.engine.delete_document(action.held.document_id, actor=self.actor)
                events.append(Deleted(action.path, record))
            except DocumentNotFoundError:
                pass  # deleted by hand meanwhile: nothing left to do
            except PermissionDeniedError as exc:  # another user's version now: theirs to keep
                events.append(Skipped(action.path, f"not deleted: {exc}"))
            self.files.pop(action.path, None)
            self._save()
        if ingest and not (stop is not None and stop.is_set()):
            events += self._ingest(ingest, folder, cancel)
        return events

    def _ingest(
        self, actions: list[Action], folder: Mapping[str, str], cancel: threading.Event | None
    ) -> list[WatchEvent]:
        """Ingest the files in one batch (their chunks are embedded together); a file cancelled
        is neither the folder's nor failed: it is taken again."""
        sources = [(self.folder / a.path, document_name(a.path)) for a in actions]
        try:
            results = self.engine.ingest(
                sources, cancel=cancel, actor=self.actor, collection=self.collection
            )
        except IndexChangedError:  # a reindex swapped its index in: the next poll retries
            why = "the knowledge base was re-embedded meanwhile; the file is taken again"
            return [Skipped(a.path, why) for a in actions]
        events: list[WatchEvent] = []
        for action, result in zip(actions, results, strict=True):
            name = document_name(action.path)
            doc = result.document
            again = f"duplicate:{folder[action.path]}:{doc.id if doc else ''}"
            if result.status != "duplicate" or doc is None or self._new(action.path, again):
                events.append(Ingested(action.path, result))
            if result.status in ("added", "replaced") or (
                result.status == "duplicate" and doc is not None and doc.name == name
            ):
                self.files[action.path] = name  # ours (a duplicate by name: found again)
            elif result.status == "duplicate":
                self._m.duplicates[action.path] = folder[action.path]
            elif result.status == "error":
                self._m.failed[action.path] = folder[action.path]
        self._save()
        return events

    def _save(self) -> None:
        save_state(self.state_path, self.folder, self.files)
