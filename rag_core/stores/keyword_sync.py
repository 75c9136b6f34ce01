"""KeywordSync: keeps a replica's local keyword index equal to the shared registry and store.

Several app processes on different machines share one vector store and one registry database,
but each has its own keyword index file: a local cache of the shared truth. Before each answer
`KeywordSync` compares the registry's change token with the token the index was last brought up
to date at; only when they differ does it drop the documents that are no longer registered and
index, from the vector store's chunk texts, the ready documents it lacks or holds a different
number of chunks of. So every replica ranks with the same BM25 statistics.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rag_core.protocols import VectorStore
from rag_core.stores.keyword import BM25Index
from rag_core.types import DocumentRecord

if TYPE_CHECKING:
    from rag_core.db.registry import DocumentRegistry

__all__ = ["KeywordSync", "SyncReport"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncReport:
    """What one `KeywordSync.sync()` did."""

    token: str
    changed: bool  # False: the registry had not changed since the last sync (nothing was read)
    added: tuple[str, ...] = ()  # documents (re)indexed from the vector store
    removed: tuple[str, ...] = ()  # documents dropped from the index
    chunks_added: int = 0
    incomplete: tuple[str, ...] = ()  # ready documents whose chunks the vector store lacks


class KeywordSync:
    """Keeps a local BM25Index equal to the shared registry and vector store (the truth).

    `change_token()` is the registry's cheap change counter; `ready()` lists the ready documents
    and `unfinished()` the ids of documents still being ingested (their chunks are indexed before
    they become ready, by whichever process ingests them, and must not be dropped meanwhile).
    `sync()` is cheap when nothing changed: one call to `change_token()`. Thread-safe.

    Reads happen in an order that cannot lose a change: the token first (a change after it bumps
    the token again, so the next sync looks again), then the local index, then the registry (a
    document found locally was registered before it was indexed, so the registry read sees it).
    """

    def __init__(
        self,
        index: BM25Index,
        store: VectorStore,
        *,
        change_token: Callable[[], str],
        ready: Callable[[], Sequence[DocumentRecord]],
        unfinished: Callable[[], set[str]],
    ) -> None:
        self.index = index
        self.store = store
        self.change_token = change_token
        self.ready = ready
        self.unfinished = unfinished
        self._lock = threading.Lock()

    @classmethod
    def following(
        cls, index: BM25Index, store: VectorStore, registry: DocumentRegistry
    ) -> KeywordSync:
        """`index` kept equal to what `registry` (a shared database) says is ready in `store`."""

        def unfinished() -> set[str]:
            return {r.id for r in registry.not_ready() if r.status == "ingesting"}

        return cls(
            index,
            store,
            change_token=registry.change_token,
            ready=registry.list,
            unfinished=unfinished,
        )

    def __call__(self) -> SyncReport:
        return self.sync()

    def sync(self) -> SyncReport:
        """Bring the index up to date with the registry if it changed since the last sync."""
        with self._lock:
            token = self.change_token()
            if token == self.index.synced_token():
                return SyncReport(token, changed=False)
            local = self.index.chunk_counts()
            keep = self.unfinished()  # before ready(): a commit in between leaves it in one of them
            ready = {r.id: r for r in self.ready()}
            keep |= set(ready)
            removed = sorted(d for d in local if d not in keep)
            for doc_id in removed:
                self.index.delete_document(doc_id)
            added: list[str] = []
            incomplete: list[str] = []
            n_chunks = 0
            for doc_id, record in ready.items():
                if local.get(doc_id) == record.chunk_count:
                    continue
                chunks = [
                    c
                    for c in self.store.chunks_of(doc_id)
                    if c.version == record.content_hash and 0 <= c.index < record.chunk_count
                ]
                if len(chunks) != record.chunk_count:
                    incomplete.append(doc_id)
                    log.warning(
                        "document %s (%s) is ready but the vector store holds %d of its %d chunks;"
                        " `ragchat doctor --repair` fixes it",
                        record.name,
                        doc_id,
                        len(chunks),
                        record.chunk_count,
                    )
                if doc_id in local:
                    self.index.delete_document(doc_id)
                self.index.add(chunks)
                added.append(doc_id)
                n_chunks += len(chunks)
            self.index.set_synced_token(token)
            if added or removed:
                log.info(
                    "keyword index synced to registry %s: %d documents indexed (%d chunks), %d dropped",
                    token,
                    len(added),
                    n_chunks,
                    len(removed),
                )
            return SyncReport(
                token, True, tuple(added), tuple(removed), n_chunks, tuple(incomplete)
            )
