"""The write half of one batched ingest: the files registered in it (`Prepared`) and the
`BatchWriter` that streams their chunks into batches, embeds and writes each batch to both
indexes, commits a file once its last chunk is written, and removes what was written of the
files not committed when the ingest fails or is cancelled (see rag_core.ingest.pipeline)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rag_core.errors import IngestError
from rag_core.ingest.chunking import iter_chunks
from rag_core.types import (
    Chunk,
    DocumentRecord,
    IngestReport,
    IngestResult,
    IngestStatus,
    ParsedDocument,
)

if TYPE_CHECKING:
    from rag_core.ingest.pipeline import IngestPipeline, Progress


@dataclass
class Prepared:
    """A file parsed and registered ('ingesting'); its chunks are written as they are made."""

    record: DocumentRecord
    parsed: ParsedDocument | None  # dropped once all its chunks are made
    previous: DocumentRecord | None
    started: float
    load_seconds: float = 0.0  # reading and parsing the file
    tables: int = 0  # what the loader found, kept for the report once `parsed` is dropped
    warnings: tuple[str, ...] = ()
    slot: int = -1
    chunks: int = 0  # chunks made so far
    reused: int = 0  # ...whose embedding was found in the vector store
    fresh: set[str] = field(default_factory=set)  # text hashes embedded for this document


class Cancelled(Exception):
    """Raised inside ingest_many when its cancel event is set; never leaves it."""


def cancelled_result(name: str) -> IngestResult:
    return IngestResult(name, "cancelled", error=f"{name}: cancelled before it was added")


class BatchWriter:
    """Streams the chunks of the files of one `ingest_many` call into batches: each batch is
    embedded and written to both indexes, then dropped; a file is committed (made 'ready') once
    the batch holding its last chunk is written. `abort()` removes every file not committed."""

    def __init__(
        self,
        pipeline: IngestPipeline,
        results: list[IngestResult],
        report: Progress,
        cancel: threading.Event | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.results = results
        self.report = report
        self.cancel = cancel
        self.open: dict[str, Prepared] = {}  # registered in this call, not committed yet
        self.done: list[Prepared] = []  # every chunk made, some perhaps not written yet
        self.batch: list[Chunk] = []
        self.fraction = 0.0  # of the text of the file being chunked, up to its last chunk
        self.touched = time.monotonic()

    def write(self, doc: Prepared) -> None:
        """Chunk one registered file into the batches; a file without chunks is an error."""
        pipeline = self.pipeline
        settings = pipeline.settings
        parsed = doc.parsed
        assert parsed is not None
        self.open[doc.record.id] = doc
        length = max(len(parsed.text), 1)
        for chunk in iter_chunks(
            parsed,
            document_id=doc.record.id,
            document_name=doc.record.name,
            version=doc.record.content_hash,
            count_tokens=pipeline.embedder.count_tokens,
            chunk_size=settings.chunk_size,
            chunk_overlap=settings.chunk_overlap,
        ):
            self.check_cancel()
            self.batch.append(chunk)
            doc.chunks += 1
            self.fraction = min(1.0, chunk.char_end / length)
            if len(self.batch) >= max(pipeline.batch_chunks, 1):
                self.flush()
        doc.parsed = None
        if doc.chunks == 0:
            del self.open[doc.record.id]
            pipeline.registry.remove(doc.record.id)
            error = IngestError(doc.record.name, "no text could be extracted")
            self.results[doc.slot] = IngestResult(
                doc.record.name, "error", error=str(error),
                seconds=time.perf_counter() - doc.started,
            )  # fmt: skip
            return
        self.done.append(doc)

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled

    def flush(self) -> None:
        """Write the batch, then commit the files whose chunks are now all written."""
        self.check_cancel()
        if self.batch:
            self.pipeline.index_batch(self.batch, self.open, self.touch)
            self.batch = []
            self.report("embedding", 0.05 + 0.85 * self.fraction)
            self.check_cancel()  # before any commit: a cancel during the last batch counts
        for doc in self.done:
            self.commit(doc)
        self.done = []

    def commit(self, doc: Prepared) -> None:
        pipeline = self.pipeline
        identity = pipeline.identity()
        report = IngestReport(
            tables=doc.tables,
            warnings=doc.warnings,
            embedder=identity.name,
            embedder_fingerprint=identity.fingerprint,
            seconds=time.perf_counter() - doc.started,
            load_seconds=doc.load_seconds,
        )
        record = pipeline.registry.commit(
            doc.record.id, doc.chunks, index_id=pipeline.index_id, report=report
        )
        del self.open[doc.record.id]
        if doc.previous is not None:
            pipeline.purge(doc.previous.id)
        status: IngestStatus = "replaced" if doc.previous is not None else "added"
        self.results[doc.slot] = IngestResult(
            record.name, status, record, doc.chunks, doc.reused, None,
            report.seconds,
        )  # fmt: skip

    def touch(self) -> None:
        """Before each encoder batch: stop if cancelled; now and then, mark the open rows
        alive, so other replicas leave them be."""
        self.check_cancel()
        if time.monotonic() - self.touched > self.pipeline.settings.shared_lease_s / 4:
            self.pipeline.registry.touch(set(self.open))
            self.touched = time.monotonic()

    def abort(self) -> list[Prepared]:
        """Remove the chunks written so far and the rows of the files not committed; returns
        those files."""
        self.batch = []
        self.done = []
        removed = list(self.open.values())
        for doc_id in list(self.open):
            self.pipeline.purge(doc_id)
            del self.open[doc_id]
        return removed
