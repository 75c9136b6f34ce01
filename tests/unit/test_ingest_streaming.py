"""Ingestion streams chunks in batches (fakes for the models): each batch is embedded and written
before the next is made, a document becomes visible only once all its batches are written, and an
error in any batch leaves nothing of the documents not yet committed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from rag_core.config import Settings
from rag_core.db.database import Database
from rag_core.db.registry import DocumentRegistry
from rag_core.ingest.chunking import iter_chunks
from rag_core.ingest.pipeline import IngestPipeline
from rag_core.stores.keyword import BM25Index
from rag_core.testing import FakeEmbedder, InMemoryStore
from rag_core.types import Chunk
from tests.chunk_golden import SOURCES, documents


class Boom(RuntimeError):
    pass


def paragraphs(n: int, tag: str = "p") -> bytes:
    return "\n\n".join(
        f"Paragraph {tag}{i} tells about valve {tag}{i}. It opens at {i} kilopascals and closes "
        f"later. Every seal {tag}{i} is checked twice a week."
        for i in range(n)
    ).encode()


class Recorder:
    """Wraps the embedder, store and index of a pipeline to see each batch as it is written."""

    def __init__(self, pipeline: IngestPipeline) -> None:
        self.pipeline = pipeline
        self.adds: list[list[Chunk]] = []
        self.embeds: list[int] = []
        self.counts = 0  # count_tokens calls so far
        self.counts_at_add: list[int] = []
        self.ready_at_add: list[set[str]] = []
        self.fail_embed_at: int | None = None
        self.fail_store_at: int | None = None
        self.fail_keyword_at: int | None = None
        self.keyword_adds = 0
        embedder, store, keyword = pipeline.embedder, pipeline.store, pipeline.keyword
        embed, add, kw_add, count = (
            embedder.embed_documents,
            store.add,
            keyword.add,
            embedder.count_tokens,
        )

        def count_tokens(texts: Sequence[str]) -> list[int]:
            self.counts += 1
            return count(texts)

        def embed_documents(texts: Sequence[str]) -> list[list[float]]:
            self.embeds.append(len(texts))
            if self.fail_embed_at == len(self.embeds):
                raise Boom("the encoder failed")
            return embed(texts)

        def store_add(chunks: Sequence[Chunk], embeddings: Sequence[Sequence[float]]) -> None:
            self.adds.append(list(chunks))
            self.counts_at_add.append(self.counts)
            self.ready_at_add.append({r.name for r in pipeline.registry.list()})
            if self.fail_store_at == len(self.adds):
                half = len(chunks) // 2
                add(chunks[:half], embeddings[:half])  # a torn write
                raise Boom("the vector store failed")
            add(chunks, embeddings)

        def keyword_add(chunks: Sequence[Chunk]) -> None:
            self.keyword_adds += 1
            if self.fail_keyword_at == self.keyword_adds:
                raise Boom("the keyword index failed")
            kw_add(chunks)

        embedder.embed_documents = embed_documents  # type: ignore[method-assign]
        embedder.count_tokens = count_tokens  # type: ignore[method-assign]
        store.add = store_add  # type: ignore[method-assign]
        keyword.add = keyword_add  # type: ignore[method-assign]


def make_pipeline(tmp_path: Path, batch: int = 8, **overrides: Any) -> IngestPipeline:
    settings = Settings(home=tmp_path, embed_batch_size=4, **overrides)
    db = Database(settings.db_url)
    db.migrate()
    pipeline = IngestPipeline(
        settings, FakeEmbedder(), InMemoryStore(), BM25Index(tmp_path / "kw"), DocumentRegistry(db)
    )
    pipeline.batch_chunks = batch
    return pipeline


def nothing_left(pipeline: IngestPipeline, *, except_ids: frozenset[str] = frozenset()) -> None:
    store = pipeline.store
    assert store.document_ids() <= except_ids
    assert pipeline.keyword.document_ids() <= except_ids
    assert {r.id for r in pipeline.registry.list()} <= except_ids
    assert pipeline.registry.not_ready() == []
    assert pipeline.check() == []


def test_document_is_written_in_batches_and_visible_only_when_complete(tmp_path: Path) -> None:
    pipeline = make_pipeline(tmp_path, batch=64, chunk_size=32, chunk_overlap=0)
    rec = Recorder(pipeline)
    result = pipeline.ingest_bytes(paragraphs(1500), "valves.txt")  # 4,500 sentences
    assert result.status == "added" and result.chunks > 1000
    assert len(rec.adds) == -(-result.chunks // 64) >= 4  # several batches of at most 64
    assert all(len(batch) <= 64 for batch in rec.adds)
    assert max(rec.embeds) <= 4  # the encoder's own batch size
    # streaming: the first batch was written before the chunker had counted the whole text
    assert rec.counts_at_add[0] < rec.counts / 2
    # not ready (not listed, not retrievable) while any batch was being written
    assert all("valves.txt" not in ready for ready in rec.ready_at_add)
    record = result.document
    assert record is not None and record.status == "ready" and record.chunk_count == result.chunks
    assert [r.name for r in pipeline.registry.list()] == ["valves.txt"]
    stored = pipeline.store.chunks_of(record.id)
    assert [c.index for c in stored] == list(range(result.chunks))
    assert sorted(pipeline.keyword.chunk_ids_of(record.id)) == sorted(c.id for c in stored)
    assert pipeline.check() == []


def test_streamed_chunks_are_what_iter_chunks_makes(tmp_path: Path) -> None:
    """Batches change nothing: every stored chunk is the one iter_chunks makes (which
    tests/unit/test_chunk_golden.py pins to the output before streaming)."""
    pipeline = make_pipeline(tmp_path, batch=5)
    for name, parsed in documents().items():
        result = pipeline.ingest_bytes(SOURCES[name](), name)
        assert result.status == "added", result.error
        record = result.document
        assert record is not None
        expected = list(
            iter_chunks(
                parsed,
                document_id=record.id,
                document_name=name,
                version=record.content_hash,
                count_tokens=FakeEmbedder().count_tokens,
                chunk_size=pipeline.settings.chunk_size,
                chunk_overlap=pipeline.settings.chunk_overlap,
            )
        )
        assert pipeline.store.chunks_of(record.id) == expected, name


@pytest.mark.parametrize(("where", "call"), [("embed", 5), ("store", 3), ("keyword", 3)])
def test_error_in_a_middle_batch_leaves_nothing(tmp_path: Path, where: str, call: int) -> None:
    pipeline = make_pipeline(tmp_path, batch=8, chunk_size=32, chunk_overlap=0)
    rec = Recorder(pipeline)
    setattr(rec, f"fail_{where}_at", call)  # in the third batch: two are written already
    with pytest.raises(Boom):
        pipeline.ingest_bytes(paragraphs(60), "valves.txt")
    assert len(rec.adds) >= 2  # something had been written before the failure
    nothing_left(pipeline)
    assert pipeline.store.count() == 0 and pipeline.keyword.count() == 0


def test_error_in_a_batch_keeps_the_files_already_committed(tmp_path: Path) -> None:
    """A small file whose chunks were all written is committed; the big one that fails after it
    is removed entirely, and so is a later file of the same call."""
    pipeline = make_pipeline(tmp_path, batch=8, chunk_size=32, chunk_overlap=0)
    rec = Recorder(pipeline)
    rec.fail_store_at = 4
    files = [(paragraphs(2, "s"), "small.txt"), (paragraphs(60), "big.txt")]
    with pytest.raises(Boom):
        pipeline.ingest_many(files)
    (small,) = pipeline.registry.list()
    assert small.name == "small.txt" and small.status == "ready"
    nothing_left(pipeline, except_ids=frozenset({small.id}))
    assert pipeline.store.count() == small.chunk_count == pipeline.keyword.count()


def test_replacing_version_stays_until_the_new_one_is_complete(tmp_path: Path) -> None:
    pipeline = make_pipeline(tmp_path, batch=8, chunk_size=32, chunk_overlap=0)
    first = pipeline.ingest_bytes(paragraphs(20), "valves.txt")
    assert first.document is not None
    rec = Recorder(pipeline)
    rec.fail_embed_at = 2
    with pytest.raises(Boom):
        pipeline.ingest_bytes(paragraphs(60, "v2-"), "valves.txt")
    assert pipeline.registry.list() == [first.document]  # the old version is untouched
    nothing_left(pipeline, except_ids=frozenset({first.document.id}))
    assert pipeline.store.count() == first.chunks == pipeline.keyword.count()
    rec.fail_embed_at = None
    second = pipeline.ingest_bytes(paragraphs(60, "v2-"), "valves.txt")
    assert second.status == "replaced" and second.document is not None
    assert [r.id for r in pipeline.registry.list()] == [second.document.id]
    assert all("valves.txt" in ready for ready in rec.ready_at_add)  # v1 served meanwhile
    assert pipeline.check() == []


def test_embeddings_are_reused_across_batches_and_versions(tmp_path: Path) -> None:
    """Identical chunk texts are embedded once even when they fall in different batches, and do
    not count as reused; a new version reuses the stored embeddings of its unchanged chunks."""
    pipeline = make_pipeline(tmp_path, batch=4, chunk_size=32, chunk_overlap=0)
    rec = Recorder(pipeline)
    repeated = b"\n\n".join([paragraphs(3)] * 6)  # the same 3 paragraphs six times
    result = pipeline.ingest_bytes(repeated, "repeated.txt")
    assert result.status == "added" and result.reused_embeddings == 0
    distinct = {c.embedding_text for c in pipeline.store.chunks_of(result.document.id)}  # type: ignore[union-attr]
    assert result.chunks > len(distinct) and sum(rec.embeds) == len(distinct)
    edited = paragraphs(30).replace(b"valve p7.", b"valve X7.")
    pipeline.ingest_bytes(paragraphs(30), "handbook.txt")
    rec.embeds.clear()
    again = pipeline.ingest_bytes(edited, "handbook.txt")
    assert again.status == "replaced"
    assert again.reused_embeddings == again.chunks - sum(rec.embeds) >= again.chunks - 2
    vectors = pipeline.store.document_vectors([again.document.id])  # type: ignore[union-attr]
    assert list(vectors) == [again.document.id]  # type: ignore[union-attr]


def test_file_without_chunks_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    pipeline = make_pipeline(tmp_path, batch=4)
    results = pipeline.ingest_many([(b"   \n\n \n", "blank.md"), (paragraphs(3), "ok.txt")])
    assert [r.status for r in results] == ["error", "added"]
    assert results[0].error and "blank.md" in results[0].error
    assert [r.name for r in pipeline.registry.list()] == ["ok.txt"]
    assert pipeline.check() == []
