"""Ingestion: file -> parsed text -> chunks -> embeddings -> vector store + keyword index + registry.

Order of writes, so that a crash at any point leaves nothing retrievable that should not be:
1. the registry row is created with status 'ingesting' (retrieval ignores such documents);
2. chunks go to the vector store and the keyword index, a batch at a time;
3. one transaction marks it 'ready' and the version it replaces 'deleting';
4. the old version's chunks are removed from both indexes, then its row.
`recover()` finishes or rolls back whatever a crash interrupted; `check()` compares the three
stores chunk by chunk and `repair()` fixes what `check()` finds.

Memory stays bounded whatever the size and shape of a file: chunks stream out of the chunker into
batches of `IngestPipeline.batch_chunks`, each embedded, written to both indexes and dropped before
the next is made (the embeddings of a whole document are never held). An error in any batch
removes every chunk already written of the documents not yet committed, and their rows.

Writers in several processes sharing one RAGCHAT_HOME (the server, `ragchat ingest`, `ragchat
doctor`) take a lock file there (`ingest.lock`, flock) besides this process's lock, so they never
write the indexes at the same time, and a row left 'ingesting' is known to be dead when recovery
holds the lock. The kernel drops the lock of a killed process.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rag_core.config import Settings
from rag_core.db.registry import DocumentRegistry
from rag_core.embedders.identity import EmbedderIdentity, embedder_identity
from rag_core.errors import IngestError, PermissionDeniedError, UserError
from rag_core.ingest.embedding import embed_chunks
from rag_core.ingest.loaders import load_document
from rag_core.ingest.writer import BatchWriter, Cancelled, Prepared, cancelled_result
from rag_core.protocols import Embedder, KeywordIndex, VectorStore
from rag_core.types import (
    Actor,
    Chunk,
    DocumentRecord,
    IngestResult,
)

Progress = Callable[[str, float], None]  # (stage description, fraction done 0..1)
# a file on disk, a file on disk with the name the user gave it, or (content, name)
IngestSource = Path | tuple[Path, str] | tuple[bytes, str]

log = logging.getLogger(__name__)
LOCK_FILE = "ingest.lock"


def clean_name(name: str) -> str:
    """A safe display name: the last path component, no control characters, at most 200 chars.

    A name with nothing usable left ('...', spaces) becomes 'untitled-' and a short hash of it,
    so two such files do not become versions of one document.
    """
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip()
    raw = (name or "").encode("utf-8", "surrogatepass")
    base = base.strip(". ") or f"untitled-{hashlib.sha256(raw).hexdigest()[:8]}"
    if len(base) > 200:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 200 - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 else base[:200]
    return base


OPERATOR = Actor()  # the command line, the server itself, or a server without accounts


def not_yours(record: DocumentRecord, action: str) -> str:
    """Why a user may not delete or replace `record`."""
    who = f"it belongs to {record.owner}" if record.owner else "it was added by an operator"
    return f"{who}; only its owner or an admin (setting RAGCHAT_ADMINS) can {action} it" + (
        "" if action == "delete" else "; upload it under another name to add your own copy"
    )


@dataclass(frozen=True)
class Target:
    """Where an ingest puts new documents, and what it may match: `collection_id` is the
    collection they join (None: Default; a new version keeps its own); `visible` the documents
    the adding user may see (None: all). A file whose content is already in a document the user
    cannot see is added as their own copy, not reported as that document's duplicate."""

    collection_id: str | None = None
    visible: frozenset[str] | None = None

    def sees(self, record: DocumentRecord) -> bool:
        return self.visible is None or record.id in self.visible


ANYWHERE = Target()


@dataclass(frozen=True)
class _Problem:
    """One inconsistency found by check(): its kind decides how repair() fixes it."""

    kind: str  # stuck | orphan | vector-missing | vector-extra | keyword
    record: DocumentRecord | None
    message: str


class IngestPipeline:
    """Adds, replaces and deletes documents, keeping registry, vector store and keyword index in step."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        store: VectorStore,
        keyword: KeywordIndex,
        registry: DocumentRegistry,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.keyword = keyword
        self.registry = registry
        self._lock = threading.Lock()  # one writer at a time: duplicate checks stay exact
        # the registered vector index `store` is (commits check it is still the active one)
        self.index_id: str | None = None
        self._identity: EmbedderIdentity | None = None  # of `embedder`, for the reports

    # Chunks embedded and written together: large enough for few store calls and for the
    # encoder's length-sorted batches, small enough that a batch costs a few MB.
    batch_chunks = 512

    # -- entry points -------------------------------------------------------------------------

    def ingest_sources(
        self,
        sources: Iterable[IngestSource],
        progress: Progress | None = None,
        *,
        actor: Actor = OPERATOR,
        cancel: threading.Event | None = None,
        target: Target = ANYWHERE,
    ) -> list[IngestResult]:
        """Ingest files on disk (a path, or a path and the name the user gave it) and contents
        ((bytes, name)) through the one batched path: their chunks are embedded together, each
        file is read only when its turn comes, and the results come in the order given. Setting
        `cancel` stops it: see ingest_many."""
        sources = list(sources)
        failed: dict[int, IngestResult] = {}
        order: list[int] = []

        def contents() -> Iterator[tuple[bytes, str]]:
            for i, source in enumerate(sources):
                if isinstance(source, tuple) and isinstance(source[0], bytes):
                    order.append(i)
                    yield source[0], source[1]
                    continue
                path = source[0] if isinstance(source, tuple) else source
                read = self._read(Path(path), _source_name(source))
                if isinstance(read, IngestResult):
                    failed[i] = read
                else:
                    order.append(i)
                    yield read

        done = self.ingest_many(contents(), progress, actor=actor, cancel=cancel, target=target)
        merged = {**failed, **dict(zip(order, done, strict=False))}
        for i, source in enumerate(sources):  # not reached: the ingest was cancelled first
            if i not in merged:
                merged[i] = cancelled_result(_source_name(source))
        return [merged[i] for i in sorted(merged)]

    def _read(self, path: Path, name: str) -> tuple[bytes, str] | IngestResult:
        """A file's content, its size checked before it is read; or why it cannot be read."""
        started = time.perf_counter()
        try:
            self._check_size(name, path.stat().st_size)
            return path.read_bytes(), name
        except IngestError as exc:
            return IngestResult(
                name, "error", error=str(exc), seconds=time.perf_counter() - started
            )
        except OSError as exc:
            reason = exc.strerror or exc
            return IngestResult(name, "error", error=f"{name}: cannot read file ({reason})")

    def ingest_bytes(
        self, data: bytes, name: str, progress: Progress | None = None, *, actor: Actor = OPERATOR
    ) -> IngestResult:
        """Ingest one file's content. Never raises for a bad file: the result says what went wrong."""
        return self.ingest_many([(data, name)], progress, actor=actor)[0]

    def ingest_many(
        self,
        files: Iterable[tuple[bytes, str]],
        progress: Progress | None = None,
        *,
        actor: Actor = OPERATOR,
        cancel: threading.Event | None = None,
        target: Target = ANYWHERE,
    ) -> list[IngestResult]:
        """Ingest several files, embedding their chunks in shared batches (fast for small files).

        Each file succeeds or fails on its own; one bad file never affects the others. `actor`
        becomes the owner of new documents and may replace only documents it may change. An
        error while embedding or writing (not the file's fault) removes what was written of every
        file not yet committed and is raised. Once `cancel` is set, the files committed so far
        stay, what was written of the others is removed, and those not read yet are not read:
        they come back 'cancelled' (a file never read has no result: ingest_sources adds one).
        `target`: the collection new documents join and the documents `actor` may see (see Target).
        """
        report = progress or (lambda stage, fraction: None)
        results: list[IngestResult] = []
        with self.exclusive():
            writer = BatchWriter(self, results, report, cancel)
            seen: dict[str, DocumentRecord] = {}  # content hash -> registered in this call
            try:
                for data, raw_name in files:
                    writer.check_cancel()
                    prepared = self._prepare(data, clean_name(raw_name), seen, actor, target)
                    if isinstance(prepared, IngestResult):
                        results.append(prepared)
                        continue
                    seen[prepared.record.content_hash] = prepared.record
                    results.append(IngestResult(prepared.record.name, "added"))  # placeholder
                    prepared.slot = len(results) - 1
                    writer.write(prepared)
                writer.flush()
            except Cancelled:
                for doc in writer.abort():
                    results[doc.slot] = cancelled_result(doc.record.name)
                report("cancelled", 1.0)
                return results
            except BaseException:
                writer.abort()
                raise
        report("done", 1.0)
        return results

    def _prepare(
        self,
        data: bytes,
        name: str,
        seen: dict[str, DocumentRecord],
        actor: Actor,
        target: Target = ANYWHERE,
    ) -> Prepared | IngestResult:
        """Check and parse one file and open its registry row ('ingesting')."""
        started = time.perf_counter()
        try:
            self._check_size(name, len(data))
            if not data.strip():
                raise IngestError(name, "the file is empty")
            content_hash = hashlib.sha256(data).hexdigest()
            existing = self.registry.by_hash(content_hash, among=target.visible)
            if existing is not None:
                return IngestResult(
                    name, "duplicate", existing, existing.chunk_count, 0, None,
                    time.perf_counter() - started,
                )  # fmt: skip
            if content_hash in seen:
                return IngestResult(name, "duplicate", seen[content_hash])
            parsed = load_document(data, name, self.settings.load_limits())
            previous = self.registry.by_name(name)
            if previous is not None and not target.sees(previous):
                raise IngestError(
                    name,
                    "a document of this name is in a collection you cannot see; upload it under"
                    " another name",
                )
            if previous is not None and not actor.may_change(previous):
                raise IngestError(name, not_yours(previous, "replace"))
            if any(r.name == name for r in seen.values()):
                raise IngestError(name, "another file with this name is in the same upload")
            record = self.registry.begin(
                name,
                content_hash,
                len(data),
                parsed.doc_type,
                parsed.page_count,
                replaces_id=previous.id if previous else None,
                added_by=actor.name,
                ocr_pages=parsed.ocr_pages,
                collection_id=target.collection_id,
            )
        except UserError as exc:
            return IngestResult(
                name, "error", error=str(exc), seconds=time.perf_counter() - started
            )
        loaded = time.perf_counter() - started
        return Prepared(record, parsed, previous, started, loaded, parsed.tables, parsed.warnings)

    def delete(self, id_or_name: str, *, actor: Actor = OPERATOR) -> DocumentRecord:
        """Remove a document from the registry and both indexes; it is never retrieved again."""
        with self.exclusive():
            record = self.registry.get(id_or_name)
            if not actor.may_change(record):
                raise PermissionDeniedError(f"{record.name}: {not_yours(record, 'delete')}")
            self.registry.mark_deleting(record.id)
            self.purge(record.id)
            return record

    def recover(self, *, wait: bool = True) -> list[str]:
        """Finish what a crash interrupted: drop half-ingested documents, finish deletions,
        and remove chunks whose document the registry does not know. Returns what was done.

        With wait=False (start-up of the server and of reading commands) it does nothing while
        another process is writing: that process is alive, and retrieval ignores its unfinished
        rows anyway.
        """
        with self.exclusive(wait=wait) as held:
            if not held:
                log.info("recovery skipped: another process is writing to the knowledge base")
                return []
            return self._recover()

    def check(self) -> list[str]:
        """Inconsistencies between registry, vector store and keyword index (nothing is changed).

        Compares chunk ids document by document: every ready document must have exactly its
        registered chunks in both indexes, and no index may hold chunks of any other document.
        """
        with self.exclusive():
            return [p.message for p in self._problems()]

    def repair(self) -> list[str]:
        """Fix what `check()` reports; returns what was done.

        Interrupted ingests are rolled back, interrupted deletions finished, orphan chunks
        removed. A ready document whose keyword entries are missing or wrong is re-indexed from
        the vector store (which keeps the chunk texts); one whose vector-store chunks are lost
        cannot be rebuilt without its file, so it is removed and must be ingested again.
        """
        with self.exclusive():
            actions = self._recover()
            problems = self._problems()
            lost = {p.record.id for p in problems if p.kind == "vector-missing" and p.record}
            for problem in problems:
                record = problem.record
                if record is None:
                    continue  # stuck rows and orphans: handled by _recover above
                if problem.kind == "keyword" and record.id not in lost:
                    chunks = self._valid_chunks(record)
                    self.keyword.delete_document(record.id)
                    self.keyword.add(chunks)
                    actions.append(
                        f"re-indexed the {len(chunks)} keyword entries of {record.name}"
                        f" ({record.id}) from the vector store"
                    )
                elif problem.kind == "vector-extra":
                    valid = {c.id for c in self._valid_chunks(record)}
                    extra = [c.id for c in self.store.chunks_of(record.id) if c.id not in valid]
                    self.store.delete_chunks(extra)
                    actions.append(
                        f"removed {len(extra)} stray chunks of {record.name} ({record.id})"
                        " from the vector store"
                    )
                elif problem.kind == "vector-missing":
                    self.registry.mark_deleting(record.id)
                    self.purge(record.id)
                    actions.append(
                        f"removed document {record.name} ({record.id}): chunks were lost from"
                        " the vector store and cannot be rebuilt; ingest the file again"
                    )
            return actions

    @contextmanager
    def exclusive(self, *, wait: bool = True) -> Iterator[bool]:
        """Hold this process's writer lock and the lock file in RAGCHAT_HOME; yields False
        (holding nothing) when wait=False and another thread or process holds them."""
        if not self._lock.acquire(blocking=wait):
            yield False
            return
        try:
            home = Path(self.settings.home)
            home.mkdir(parents=True, exist_ok=True)
            fd = os.open(home / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    yield False
                    return
                yield True
            finally:
                os.close(fd)  # releases the flock
        finally:
            self._lock.release()

    def _in_flight_elsewhere(self, record: DocumentRecord) -> bool:
        """An unfinished row another replica may still be working on: with a shared Chroma
        server the local lock proves nothing about other hosts, so only a row that made no
        progress for `shared_lease_s` counts as abandoned."""
        if not self.settings.chroma_url or record.updated_at is None:
            return False
        idle = (datetime.now(UTC) - record.updated_at).total_seconds()
        return idle < self.settings.shared_lease_s

    def _recover(self) -> list[str]:
        actions: list[str] = []
        busy: set[str] = set()
        for record in self.registry.not_ready():
            if self._in_flight_elsewhere(record):
                busy.add(record.id)
                continue
            self.purge(record.id)
            what = "ingest" if record.status == "ingesting" else "deletion"
            actions.append(
                f"finished the interrupted {what} of {record.name} ({record.id}):"
                f" removed the {record.status} version {record.version}"
            )
        known = {r.id for r in self.registry.list()} | busy
        in_store = self.store.document_ids()
        in_keyword = self.keyword.document_ids()
        for doc_id in sorted((in_store | in_keyword) - known):
            removed_v = self.store.delete_document(doc_id)
            removed_k = self.keyword.delete_document(doc_id)
            actions.append(
                f"removed orphan chunks of unknown document {doc_id}: {removed_v} from the"
                f" vector store, {removed_k} from the keyword index"
            )
        return actions

    def _valid_chunks(self, record: DocumentRecord) -> list[Chunk]:
        """The vector store's chunks that belong to this registered version of the document."""
        return [
            c
            for c in self.store.chunks_of(record.id)
            if c.version == record.content_hash and 0 <= c.index < record.chunk_count
        ]

    def _problems(self) -> list[_Problem]:
        problems: list[_Problem] = []
        stuck = self.registry.not_ready()
        for r in stuck:
            if self._in_flight_elsewhere(r):
                continue  # another replica's ingest in progress, not a problem (yet)
            what = "an ingest" if r.status == "ingesting" else "a deletion"
            problems.append(_Problem("stuck", r, (
                f"document {r.name} ({r.id}) version {r.version} is stuck in state"
                f" '{r.status}': {what} was interrupted"
            )))  # fmt: skip
        ready = {r.id: r for r in self.registry.list()}
        known = set(ready) | {r.id for r in stuck}
        in_store = self.store.document_ids()
        in_keyword = self.keyword.document_ids()
        for where, ids in (("vector store", in_store), ("keyword index", in_keyword)):
            for doc_id in sorted(ids - known):
                problems.append(_Problem("orphan", None, (
                    f"orphan chunks in the {where}: document {doc_id} is not in the registry"
                )))  # fmt: skip
        for doc_id, r in ready.items():
            label = f"document {r.name} ({doc_id})"
            vector = self.store.chunks_of(doc_id) if doc_id in in_store else []
            valid = {
                c.id for c in vector if c.version == r.content_hash and 0 <= c.index < r.chunk_count
            }
            extra = len(vector) - len(valid)
            keyword = set(self.keyword.chunk_ids_of(doc_id)) if doc_id in in_keyword else set()
            if len(valid) < r.chunk_count:
                problems.append(_Problem("vector-missing", r, (
                    f"{label} is ready but {r.chunk_count - len(valid)} of its {r.chunk_count}"
                    " chunks are missing from the vector store"
                )))  # fmt: skip
            elif extra:
                problems.append(_Problem("vector-extra", r, (
                    f"{label} has {extra} chunks in the vector store that are not part of its"
                    f" registered version {r.version}"
                )))  # fmt: skip
            if keyword != valid:
                missing, stray = len(valid - keyword), len(keyword - valid)
                problems.append(_Problem("keyword", r, (
                    f"{label}: the keyword index lacks {missing} of its {r.chunk_count} chunks"
                    + (f" and holds {stray} chunks that are not part of it" if stray else "")
                )))  # fmt: skip
        return problems

    # -- internals -----------------------------------------------------------------------------

    def _check_size(self, name: str, size: int) -> None:
        limit = self.settings.max_file_mb * 1024 * 1024
        if size > limit:
            raise IngestError(
                name,
                f"file is {size / 1024 / 1024:.1f} MB, larger than the limit of "
                f"{self.settings.max_file_mb:g} MB (setting RAGCHAT_MAX_FILE_MB)",
            )

    def index_batch(
        self, chunks: Sequence[Chunk], docs: dict[str, Prepared], touch: Callable[[], None]
    ) -> None:
        """Embed one batch of chunks (reusing stored embeddings of the same texts) and write it
        to both indexes; counts per document the embeddings taken from the store."""
        done = embed_chunks(
            self.embedder, self.store, chunks, self.settings.embed_batch_size, touch
        )
        self.store.add(chunks, done.vectors)
        self.keyword.add(chunks)
        for h, c in zip(done.hashes, chunks, strict=True):
            doc = docs[c.document_id]
            if h in done.fresh:
                doc.fresh.add(h)
            elif h not in doc.fresh:  # in the store before this document's ingest began
                doc.reused += 1

    def identity(self) -> EmbedderIdentity:
        """The embedder's identity, named in each document's report (computed once: the
        fingerprint of a model folder reads its files)."""
        if self._identity is None:
            self._identity = embedder_identity(self.embedder)
        return self._identity

    def purge(self, document_id: str) -> None:
        self.store.delete_document(document_id)
        self.keyword.delete_document(document_id)
        self.registry.remove(document_id)


def _source_name(source: IngestSource) -> str:
    """The name a source is ingested under: the name given with it, else its file's name."""
    if isinstance(source, tuple):
        return clean_name(str(source[1]))
    return clean_name(Path(source).name)
