"""Re-embedding the knowledge base with another embedder (`ragchat reindex`).

Every chunk is embedded again from the text the vector store keeps, into a new collection (a
'building' index in the registry), while the active index keeps answering. Progress is
recorded in the registry as it goes, so a run killed at any moment (kill -9 included) resumes
where it stopped: a document whose chunks are all in the new collection is not embedded again.
When every ready document is there, the new index becomes active and the old one retired in one
registry transaction (`IndexRegistry.swap`), under the ingestion lock and only if no document
was committed or deleted since the last catch-up pass (replicas on other hosts), else it
catches up again. The retired collection is dropped afterwards.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import KW_ONLY, dataclass, field

from rag_core.config import Settings
from rag_core.db.indexes import IndexRegistry
from rag_core.db.registry import DocumentRegistry
from rag_core.embedders.identity import EmbedderIdentity, embedder_identity
from rag_core.errors import ConfigError
from rag_core.ingest.embedding import embed_chunks
from rag_core.protocols import Embedder, VectorStore
from rag_core.types import Chunk, DocumentRecord, IndexRecord

__all__ = ["ReindexResult", "Reindexer"]

log = logging.getLogger(__name__)

ReindexProgress = Callable[[int, int], None]  # (chunks in the new index, chunks in all)
MAX_SWAP_TRIES = 20  # catch-up passes before giving up when documents keep changing


@dataclass(frozen=True)
class ReindexResult:
    """What one run did."""

    status: str  # 'unchanged' (the index was already made by this embedder) or 'swapped'
    previous: EmbedderIdentity | None
    identity: EmbedderIdentity
    documents: int = 0  # ready documents in the new index
    chunks: int = 0  # chunks in the new index
    embedded: int = 0  # texts embedded by this run (the rest were there or reused)
    resumed: bool = False  # continued an unfinished run
    skipped: tuple[str, ...] = ()  # documents whose chunks the old index had lost
    retired: IndexRecord | None = None  # the old index, to be dropped
    seconds: float = 0.0


@dataclass
class _Pass:
    """Counters of one pass over the ready documents."""

    total: int
    done: int = 0
    embedded: int = 0
    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Copy:
    """One re-embedding: chunks read from the `old` store, embedded anew into the `new` one,
    recorded against the `building` index and reported to `progress`."""

    old: VectorStore
    new: VectorStore
    building: IndexRecord
    progress: ReindexProgress | None


def _valid(chunks: Sequence[Chunk], record: DocumentRecord) -> list[Chunk]:
    """The chunks of the registered version of the document."""
    return [
        c for c in chunks if c.version == record.content_hash and 0 <= c.index < record.chunk_count
    ]


@dataclass(eq=False)
class Reindexer:
    """Fills a new vector index with the configured embedder and swaps it in.

    `open_store(record)` opens the collection of an index record (bound to its embedder key);
    `lock()` is the ingestion lock (IngestPipeline.exclusive) held for the final catch-up and
    the swap.
    """

    settings: Settings
    registry: DocumentRegistry
    indexes: IndexRegistry
    embedder: Embedder
    open_store: Callable[[IndexRecord], VectorStore]
    lock: Callable[[], AbstractContextManager[bool]]
    _: KW_ONLY
    collection_prefix: str = "ragchat"
    # chunks embedded and written together: the grain of progress and of resuming
    batch_chunks: int = 64

    def run(self, *, force: bool = False, progress: ReindexProgress | None = None) -> ReindexResult:
        """Re-embed every ready document unless the active index is this embedder's already
        (`force` re-embeds all the same); an unfinished run by the same embedder is resumed
        (with or without `force`), one by another embedder dropped."""
        started = time.perf_counter()
        identity = embedder_identity(self.embedder)
        active = self.indexes.active()
        if active is None:
            raise ConfigError("no vector index is recorded yet: start ragchat once first")
        building = self.indexes.building()
        if building is not None and not building.identity.same(identity):
            self._abandon(building)
            building = None
        if building is None and active.identity.same(identity) and not force:
            return ReindexResult("unchanged", active.identity, identity)
        resumed = building is not None
        if building is None:
            building = self.indexes.start_building(self.collection_prefix, identity)
        old, new = self.open_store(active), self.open_store(building)
        try:
            copy = _Copy(old, new, building, progress)
            first = self._pass(copy)
            final = self._finish(copy)
        finally:
            for store in (old, new):
                _close(store)
        return ReindexResult(
            "swapped",
            active.identity,
            identity,
            documents=self.registry.count(),
            chunks=final.total,
            embedded=first.embedded + final.embedded,
            resumed=resumed,
            skipped=tuple(dict.fromkeys(first.skipped + final.skipped)),
            retired=active,
            seconds=time.perf_counter() - started,
        )

    def _finish(self, copy: _Copy) -> _Pass:
        """Catch up with what changed during the long pass, then swap, under the lock."""
        for _ in range(MAX_SWAP_TRIES):
            with self.lock():
                token = self.registry.change_token()
                last = self._pass(copy)
                if self.indexes.swap(copy.building.id, token):
                    return last
            time.sleep(0.2)  # another replica keeps committing: let it, then catch up again
        raise ConfigError(
            "documents kept changing while the new index was completed; run `ragchat reindex`"
            " again (it resumes)"
        )

    def _pass(self, copy: _Copy) -> _Pass:
        """Bring the new index up to the ready documents: drop what was deleted, copy (embedded
        anew) what it lacks. Progress is recorded after each written batch."""
        old, new = copy.old, copy.new
        ready = self.registry.list()
        for gone in sorted(new.document_ids() - {r.id for r in ready}):
            new.delete_document(gone)
        counts = _Pass(total=sum(r.chunk_count for r in ready))
        batch: list[Chunk] = []
        for record in ready:
            stored = new.chunks_of(record.id)
            valid = _valid(stored, record)
            if len(valid) == record.chunk_count and len(stored) == len(valid):
                counts.done += record.chunk_count
                continue
            if len(stored) != len(valid):
                new.delete_document(record.id)  # an older version's chunks
            chunks = _valid(old.chunks_of(record.id), record)
            if len(chunks) != record.chunk_count:
                counts.skipped.append(record.name)
                log.warning(
                    "%s (%s): the old index holds %d of its %d chunks; `ragchat doctor` reports it",
                    record.name, record.id, len(chunks), record.chunk_count,
                )  # fmt: skip
            batch.extend(chunks)
            if len(batch) >= self.batch_chunks:
                self._write(copy, batch, counts)
                batch = []
        self._write(copy, batch, counts)
        return counts

    def _write(self, copy: _Copy, batch: list[Chunk], counts: _Pass) -> None:
        if batch:
            done = embed_chunks(self.embedder, copy.new, batch, self.settings.embed_batch_size)
            copy.new.add(batch, done.vectors)
            counts.embedded += len(done.fresh)
            counts.done += len(batch)
        self.indexes.progress(copy.building.id, counts.done, counts.total)
        if copy.progress is not None:
            copy.progress(counts.done, counts.total)

    def _abandon(self, building: IndexRecord) -> None:
        """Drop an unfinished index made for another embedder (or restarted by `force`)."""
        log.info("dropping the unfinished index %s (%s)", building.collection, building.identity)
        store = self.open_store(building)
        _drop(store)
        self.indexes.remove(building.id)

    def drop_retired(self) -> list[IndexRecord]:
        """Drop the collections of retired indexes and forget them; the ones dropped."""
        dropped = []
        for record in self.indexes.retired():
            _drop(self.open_store(record))
            self.indexes.remove(record.id)
            dropped.append(record)
        return dropped


def _drop(store: VectorStore) -> None:
    drop = getattr(store, "drop", None)
    if callable(drop):
        drop()
    _close(store)


def _close(store: VectorStore) -> None:
    close = getattr(store, "close", None)
    if callable(close):
        close()
