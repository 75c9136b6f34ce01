"""Ingestion: file -> parsed text -> chunks -> embeddings -> vector store + keyword index + registry.

Order of writes, so that a crash at any point leaves nothing retrievable that should not be:
1. the registry row is created with status 'ingesting' (retrieval ignores such documents);
2. chunks go to the vector store and the keyword index;
3. one transaction marks it 'ready' and the version it replaces 'deleting';
4. the old version's chunks are removed from both indexes, then its row.
`recover()` finishes or rolls back whatever a crash interrupted.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rag_core.config import Settings
from rag_core.db.registry import DocumentRegistry
from rag_core.errors import IngestError, UserError
from rag_core.ingest.chunking import chunk_document
from rag_core.ingest.loaders import load_document
from rag_core.protocols import Embedder, KeywordIndex, VectorStore
from rag_core.stores import text_hash
from rag_core.types import Chunk, DocumentRecord, IngestResult, IngestStatus

Progress = Callable[[str, float], None]  # (stage description, fraction done 0..1)

SUPPORTED_EXTENSIONS = {
    ".pdf",
    ".docx",
    ".html",
    ".htm",
    ".md",
    ".markdown",
    ".txt",
    ".text",
    ".rst",
}


def clean_name(name: str) -> str:
    """A safe display name: the last path component, no control characters, at most 200 chars."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip()
    base = base.strip(". ") or "untitled"
    if len(base) > 200:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 200 - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 else base[:200]
    return base


@dataclass
class _Prepared:
    record: DocumentRecord
    chunks: list[Chunk]
    previous: DocumentRecord | None
    started: float
    slot: int = -1


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

    # -- entry points -------------------------------------------------------------------------

    def ingest_path(self, path: Path, progress: Progress | None = None) -> IngestResult:
        """Ingest one file from disk; its size is checked before it is read."""
        name = clean_name(path.name)
        started = time.perf_counter()
        try:
            size = path.stat().st_size
            self._check_size(name, size)
            data = path.read_bytes()
        except IngestError as exc:
            return IngestResult(
                name, "error", error=str(exc), seconds=time.perf_counter() - started
            )
        except OSError as exc:
            return IngestResult(
                name, "error", error=f"{name}: cannot read file ({exc.strerror or exc})"
            )
        return self.ingest_bytes(data, name, progress)

    def ingest_bytes(
        self, data: bytes, name: str, progress: Progress | None = None
    ) -> IngestResult:
        """Ingest one file's content. Never raises for a bad file: the result says what went wrong."""
        return self.ingest_many([(data, name)], progress)[0]

    def ingest_many(
        self, files: Iterable[tuple[bytes, str]], progress: Progress | None = None
    ) -> list[IngestResult]:
        """Ingest several files, embedding their chunks in shared batches (fast for small files).

        Each file succeeds or fails on its own; one bad file never affects the others.
        """
        report = progress or (lambda stage, fraction: None)
        results: list[IngestResult] = []
        with self._lock:
            batch: list[_Prepared] = []
            batch_chunks = 0
            seen: dict[str, _Prepared] = {}
            for data, raw_name in files:
                prepared = self._prepare(data, clean_name(raw_name), seen)
                if isinstance(prepared, IngestResult):
                    results.append(prepared)
                    continue
                seen[prepared.record.content_hash] = prepared
                results.append(IngestResult(prepared.record.name, "added"))  # placeholder
                prepared.slot = len(results) - 1
                batch.append(prepared)
                batch_chunks += len(prepared.chunks)
                if batch_chunks >= 512:
                    self._finish(batch, results, report)
                    batch, batch_chunks = [], 0
            if batch:
                self._finish(batch, results, report)
        report("done", 1.0)
        return results

    def _prepare(
        self, data: bytes, name: str, seen: dict[str, _Prepared]
    ) -> _Prepared | IngestResult:
        """Check, parse and chunk one file and open its registry row ('ingesting')."""
        started = time.perf_counter()
        try:
            self._check_size(name, len(data))
            if not data.strip():
                raise IngestError(name, "the file is empty")
            content_hash = hashlib.sha256(data).hexdigest()
            existing = self.registry.by_hash(content_hash)
            if existing is not None:
                return IngestResult(
                    name, "duplicate", existing, existing.chunk_count, 0, None,
                    time.perf_counter() - started,
                )  # fmt: skip
            if content_hash in seen:
                return IngestResult(name, "duplicate", seen[content_hash].record)
            parsed = load_document(
                data,
                name,
                max_pages=self.settings.max_pages,
                max_text_chars=self.settings.max_text_chars,
            )
            previous = self.registry.by_name(name)
            if any(p.record.name == name for p in seen.values()):
                raise IngestError(name, "another file with this name is in the same upload")
            record = self.registry.begin(
                name,
                content_hash,
                len(data),
                parsed.doc_type,
                parsed.page_count,
                replaces_id=previous.id if previous else None,
            )
        except UserError as exc:
            return IngestResult(
                name, "error", error=str(exc), seconds=time.perf_counter() - started
            )
        try:
            chunks = chunk_document(
                parsed,
                document_id=record.id,
                document_name=name,
                version=content_hash,
                count_tokens=self.embedder.count_tokens,
                chunk_size=self.settings.chunk_size,
                chunk_overlap=self.settings.chunk_overlap,
            )
            if not chunks:
                raise IngestError(name, "no text could be extracted")
        except UserError as exc:
            self.registry.remove(record.id)
            return IngestResult(
                name, "error", error=str(exc), seconds=time.perf_counter() - started
            )
        except BaseException:
            self.registry.remove(record.id)
            raise
        return _Prepared(record, chunks, previous, started)

    def _finish(
        self, batch: list[_Prepared], results: list[IngestResult], report: Progress
    ) -> None:
        """Embed and index a batch of prepared files, then commit each one and drop old versions."""
        chunks = [c for p in batch for c in p.chunks]
        try:
            reused = self._index(chunks, report)
        except BaseException:
            for p in batch:
                self._purge(p.record.id)
            raise
        for p in batch:
            record = self.registry.commit(p.record.id, len(p.chunks))
            if p.previous is not None:
                self._purge(p.previous.id)
            status: IngestStatus = "replaced" if p.previous is not None else "added"
            results[p.slot] = IngestResult(
                record.name, status, record, len(p.chunks), reused.get(p.record.id, 0), None,
                time.perf_counter() - p.started,
            )  # fmt: skip

    def delete(self, id_or_name: str) -> DocumentRecord:
        """Remove a document from the registry and both indexes; it is never retrieved again."""
        with self._lock:
            record = self.registry.get(id_or_name)
            self.registry.mark_deleting(record.id)
            self._purge(record.id)
            return record

    def recover(self) -> list[str]:
        """Finish what a crash interrupted: drop half-ingested documents, finish deletions,
        and remove chunks whose document the registry does not know. Returns what was done."""
        actions: list[str] = []
        with self._lock:
            for record in self.registry.not_ready():
                self._purge(record.id)
                actions.append(
                    f"removed unfinished {record.status} document {record.name} ({record.id})"
                )
            known = {r.id for r in self.registry.list()}
            for doc_id in (self.store.document_ids() | self.keyword.document_ids()) - known:
                self.store.delete_document(doc_id)
                self.keyword.delete_document(doc_id)
                actions.append(f"removed orphan chunks of unknown document {doc_id}")
        return actions

    def check(self) -> list[str]:
        """Inconsistencies between registry, vector store and keyword index (nothing is changed)."""
        problems: list[str] = []
        ready = {r.id: r for r in self.registry.list()}
        for record in self.registry.not_ready():
            problems.append(
                f"document {record.name} ({record.id}) is stuck in state {record.status}"
            )
        in_store = self.store.document_ids()
        in_keyword = self.keyword.document_ids()
        for doc_id in sorted((in_store | in_keyword) - set(ready)):
            problems.append(f"chunks of unknown document {doc_id} in the indexes")
        for doc_id, record in ready.items():
            if doc_id not in in_store:
                problems.append(f"document {record.name} has no chunks in the vector store")
            if doc_id not in in_keyword:
                problems.append(f"document {record.name} has no chunks in the keyword index")
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

    def _index(self, chunks: Sequence[Chunk], report: Progress) -> dict[str, int]:
        """Embed (reusing stored embeddings of unchanged chunk texts) and write both indexes."""
        texts = [c.embedding_text for c in chunks]
        hashes = [text_hash(t) for t in texts]
        known = self.store.embeddings_by_text_hash(sorted(set(hashes)))
        vectors: dict[str, list[float]] = dict(known)
        todo: dict[str, str] = {}  # hash -> text, each distinct text embedded once
        for h, t in zip(hashes, texts, strict=True):
            if h not in vectors:
                todo.setdefault(h, t)
        pending = list(todo.items())
        batch = max(self.settings.embed_batch_size, 1)
        for start in range(0, len(pending), batch):
            part = pending[start : start + batch]
            embedded = self.embedder.embed_documents([t for _, t in part])
            for (h, _), vec in zip(part, embedded, strict=True):
                vectors[h] = vec
            report("embedding", 0.05 + 0.85 * min(1.0, (start + len(part)) / max(len(pending), 1)))
        report("indexing", 0.92)
        self.store.add(chunks, [vectors[h] for h in hashes])
        self.keyword.add(chunks)
        reused: dict[str, int] = {}
        for h, c in zip(hashes, chunks, strict=True):
            if h in known:
                reused[c.document_id] = reused.get(c.document_id, 0) + 1
        return reused

    def _purge(self, document_id: str) -> None:
        self.store.delete_document(document_id)
        self.keyword.delete_document(document_id)
        self.registry.remove(document_id)
