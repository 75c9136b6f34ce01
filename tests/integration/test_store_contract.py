"""Contract tests: every VectorStore and every KeywordIndex implementation behaves the same.

Vector stores run against real Chroma: embedded (PersistentClient in tmp_path) and, when the
`chroma` executable is installed, a `chroma run` server on a free local port. Embeddings are
deterministic fakes (hashed bag of words, 32 dimensions, normalised). To add an implementation,
add a param to `store_factory` / `index_factory` that returns a factory opening it.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import chromadb
import pytest

from rag_core.protocols import KeywordIndex, VectorStore
from rag_core.stores import keyword as keyword_module
from rag_core.stores import text_hash
from rag_core.stores.chroma import ChromaStore, chunk_from_metadata, chunk_to_metadata
from rag_core.stores.keyword import BM25Index
from rag_core.stores.tokenize import tokenize
from rag_core.testing import InMemoryStore
from rag_core.types import Chunk
from tests.services import chroma_run

pytestmark = pytest.mark.integration

DIM = 32

StoreFactory = Callable[[], ChromaStore]  # opens (or re-opens) the same store
IndexFactory = Callable[[], BM25Index]


def fake_embed(text: str) -> list[float]:
    """Hashed bag of words: texts sharing words get close vectors; deterministic across runs."""
    vec = [0.0] * DIM
    for word in re.findall(r"\w+", text.lower()):
        vec[int(hashlib.sha1(word.encode()).hexdigest(), 16) % DIM] += 1.0
    norm = math.sqrt(sum(x * x for x in vec)) or 1.0
    return [x / norm for x in vec] if any(vec) else [1.0] + [0.0] * (DIM - 1)


def make_chunk(doc: str, index: int, text: str, **fields: Any) -> Chunk:
    base = Chunk(
        id=f"{doc}#{index}",
        document_id=doc,
        document_name=f"{doc}.md",
        version="v1",
        index=index,
        text=text,
        char_start=index * 1000,
        char_end=index * 1000 + len(text),
    )
    return replace(base, **fields)


def add(store: VectorStore, chunks: Sequence[Chunk]) -> None:
    store.add(chunks, [fake_embed(c.text) for c in chunks])


CORPUS = [
    make_chunk("fruit", 0, "apples and pears grow on fruit trees in the orchard"),
    make_chunk("fruit", 1, "bananas are yellow tropical fruit"),
    make_chunk("fruit", 2, "oranges are citrus fruit full of vitamin c"),
    make_chunk("space", 0, "rockets launch satellites into orbit around the earth"),
    make_chunk("space", 1, "the moon orbits the earth every month"),
    make_chunk("code", 0, "use os.path.join to build a file path from a directory and a name"),
    make_chunk("code", 1, "python lists are ordered and mutable sequences"),
]


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A `chroma run` server on a free local port for this module."""
    with chroma_run(tmp_path_factory.mktemp("chroma-server")) as url:
        yield url


@pytest.fixture(params=["embedded", "server", "memory"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A factory opening the same store each call (a new client each time); all closed after.
    'memory' is rag_core.testing's InMemoryStore, the fake the unit tests rely on: reopening it
    gives the same instance."""
    yield from _store_factory(request, tmp_path)


@pytest.fixture(params=["embedded", "server"])
def chroma_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """For what only Chroma has (its collections, batch limits, HNSW settings)."""
    yield from _store_factory(request, tmp_path)


def _store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    collection = f"test-{uuid.uuid4().hex[:12]}"
    opened: list[Any] = []
    if request.param == "memory":
        memory = InMemoryStore(dimension=DIM)

        def open_store() -> Any:
            opened.append(memory)
            return memory

    elif request.param == "embedded":

        def open_store() -> ChromaStore:
            store = ChromaStore(path=tmp_path / "chroma", collection=collection, dimension=DIM)
            opened.append(store)
            return store

    else:
        url = request.getfixturevalue("chroma_server")

        def open_store() -> ChromaStore:
            store = ChromaStore(url=url, collection=collection, dimension=DIM)
            opened.append(store)
            return store

    yield open_store
    for store in opened:
        store.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> ChromaStore:
    return store_factory()


@pytest.fixture(params=["bm25"])
def index_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IndexFactory]:
    opened: list[BM25Index] = []

    def open_index() -> BM25Index:
        index = BM25Index(tmp_path / "bm25")
        opened.append(index)
        return index

    yield open_index
    for index in opened:
        index.close()


@pytest.fixture
def index(index_factory: IndexFactory) -> BM25Index:
    return index_factory()


# ---------------------------------------------------------------------------- metadata


def test_metadata_conversion_round_trip() -> None:
    chunk = make_chunk("d", 3, "text", page=None, heading_path=("A > B", "Ünïcødé 日本"))
    meta = chunk_to_metadata(chunk)
    assert meta["page"] == -1 and meta["page_end"] == -1
    assert meta["text_hash"] == text_hash(chunk.embedding_text)  # what the embedder saw
    assert all(isinstance(v, str | int) for v in meta.values())
    assert chunk_from_metadata(chunk.id, chunk.text, meta) == chunk
    paged = replace(chunk, page=0, page_end=2, ocr=True)
    assert chunk_from_metadata(paged.id, paged.text, chunk_to_metadata(paged)) == paged
    # a chunk written before OCR existed has no "ocr" key: its text was not read by OCR
    old = {k: v for k, v in meta.items() if k != "ocr"}
    assert chunk_from_metadata(chunk.id, chunk.text, old).ocr is False


# ---------------------------------------------------------------------------- vector stores


def test_store_is_a_vector_store(store: ChromaStore) -> None:
    assert isinstance(store, VectorStore)
    assert store.count() == 0
    assert store.document_ids() == set()
    assert store.query(fake_embed("anything"), 5) == []


def test_add_and_query_ordering(store: ChromaStore) -> None:
    add(store, CORPUS)
    assert store.count() == len(CORPUS)
    hits = store.query(fake_embed("the moon orbits the earth every month"), 3)
    assert hits[0][0].id == "space#1"
    assert hits[0][1] == pytest.approx(1.0, abs=1e-5)
    sims = [s for _, s in hits]
    assert sims == sorted(sims, reverse=True)
    assert all(-1.0 - 1e-6 <= s <= 1.0 + 1e-6 for s in sims)
    assert len(store.query(fake_embed("fruit"), 100)) == len(CORPUS)
    assert store.query(fake_embed("fruit"), 0) == []


def test_query_filters_by_document_ids(store: ChromaStore) -> None:
    add(store, CORPUS)
    hits = store.query(fake_embed("the moon orbits the earth"), 10, document_ids=["fruit", "code"])
    assert {c.document_id for c, _ in hits} == {"fruit", "code"}
    assert len(hits) == 5
    assert {c.document_id for c, _ in store.query(fake_embed("x"), 10, ["space"])} == {"space"}
    assert store.query(fake_embed("moon"), 10, document_ids=[]) == []
    assert store.query(fake_embed("moon"), 10, document_ids=["unknown"]) == []


def test_get_keeps_the_requested_order(store: ChromaStore) -> None:
    add(store, CORPUS)
    got = store.get(["space#1", "missing", "fruit#0", "code#1"])
    assert [c.id for c in got] == ["space#1", "fruit#0", "code#1"]
    assert got[1] == CORPUS[0]
    assert store.get([]) == []


def test_chunks_of_is_ordered_by_index(store: ChromaStore) -> None:
    shuffled = [make_chunk("doc", i, f"passage number {i}") for i in range(12)]
    random.Random(1).shuffle(shuffled)
    add(store, shuffled)
    assert [c.index for c in store.chunks_of("doc")] == list(range(12))
    assert store.chunks_of("unknown") == []


def test_delete_document(store: ChromaStore) -> None:
    add(store, CORPUS)
    assert store.delete_document("space") == 2
    assert store.count() == len(CORPUS) - 2
    assert store.document_ids() == {"fruit", "code"}
    hits = store.query(fake_embed("the moon orbits the earth every month"), 10)
    assert all(c.document_id != "space" for c, _ in hits)
    assert store.chunks_of("space") == []
    assert store.delete_document("space") == 0


def test_delete_chunks(store: ChromaStore) -> None:
    add(store, CORPUS)
    store.delete_chunks(["fruit#0", "fruit#2", "missing"])
    assert [c.index for c in store.chunks_of("fruit")] == [1]
    assert store.count() == len(CORPUS) - 2
    store.delete_chunks([])


def test_add_replaces_chunks_with_the_same_id(store: ChromaStore) -> None:
    add(store, CORPUS)
    new = replace(CORPUS[0], text="completely different words", version="v2", page=7)
    add(store, [new])
    assert store.count() == len(CORPUS)
    assert store.get([new.id]) == [new]
    assert store.query(fake_embed("completely different words"), 1)[0][0] == new


def test_add_validates_its_input(store: ChromaStore) -> None:
    with pytest.raises(ValueError, match="2 chunks but 1 embeddings"):
        store.add(CORPUS[:2], [fake_embed("x")])
    with pytest.raises(ValueError, match="duplicate chunk ids"):
        add(store, [CORPUS[0], CORPUS[0]])
    with pytest.raises(ValueError, match="dimension 3"):
        store.add(CORPUS[:1], [[1.0, 0.0, 0.0]])
    store.add([], [])
    assert store.count() == 0


def test_embeddings_by_text_hash(store: ChromaStore) -> None:
    add(store, CORPUS)
    hashes = [text_hash(CORPUS[1].text), text_hash(CORPUS[4].text), text_hash("not stored")]
    found = store.embeddings_by_text_hash(hashes)
    assert set(found) == set(hashes[:2])
    assert found[hashes[0]] == pytest.approx(fake_embed(CORPUS[1].text), abs=1e-6)
    assert found[hashes[1]] == pytest.approx(fake_embed(CORPUS[4].text), abs=1e-6)
    assert store.embeddings_by_text_hash([]) == {}
    # The hash is of the embedder's input: the same text under another heading is not reused.
    headed = make_chunk("headed", 0, CORPUS[1].text, heading_path=("Tropical",))
    add(store, [headed])
    found = store.embeddings_by_text_hash([text_hash(headed.embedding_text)])
    assert list(found) == [text_hash(headed.embedding_text)]


def _mean_vector(chunks: Sequence[Chunk]) -> list[float]:
    parts = [fake_embed(c.text) for c in chunks]
    mean = [sum(col) for col in zip(*parts, strict=True)]
    norm = math.sqrt(sum(x * x for x in mean))
    return [x / norm for x in mean]


def test_document_vectors_are_normalised_chunk_means(store_factory: StoreFactory) -> None:
    store = store_factory()
    add(store, CORPUS)
    found = store.document_vectors(["fruit", "space", "unknown", "fruit"])
    assert set(found) == {"fruit", "space"}  # a document without chunks is left out
    for doc, vec in found.items():
        assert vec == pytest.approx(_mean_vector([c for c in CORPUS if c.document_id == doc]))
    assert store.document_vectors([]) == {}
    # removing chunks updates the vector; removing the document removes it
    store.delete_chunks([CORPUS[2].id])
    assert store.document_vectors(["fruit"])["fruit"] == pytest.approx(_mean_vector(CORPUS[:2]))
    store.delete_document("space")
    assert set(store.document_vectors(["fruit", "space"])) == {"fruit"}


def test_document_vectors_are_saved_and_computed_for_older_stores(
    chroma_factory: StoreFactory,
) -> None:
    store = chroma_factory()
    add(store, CORPUS)
    store.delete_document("space")
    # saved with the chunks: a reopened store reads them without touching the chunks
    store.close()
    reopened = chroma_factory()
    docs = reopened._documents
    assert sorted(docs.get(include=[])["ids"]) == ["code", "fruit"]
    # a store written before document vectors existed gets them computed, and saved, on demand
    docs.delete(ids=["code"])
    vec = reopened.document_vectors(["code"])["code"]
    assert vec == pytest.approx(_mean_vector(CORPUS[5:]))
    assert docs.get(ids=["code"], include=[])["ids"] == ["code"]


def test_document_vectors_of_documents_added_in_batches(chroma_factory: StoreFactory) -> None:
    """A document written a batch at a time (as ingestion streams it) gets the mean of all its
    chunks, without its earlier chunks being read again; re-adding a stored chunk, or a store
    whose saved vector lacks the chunk sum's norm, falls back to recomputing from the chunks."""
    store = chroma_factory()
    rng = random.Random(5)
    words = [f"w{i}" for i in range(12)]
    big = [make_chunk("big", i, " ".join(rng.choices(words, k=8))) for i in range(40)]
    reads: list[Any] = []
    original_get = store._collection.get

    def counting_get(*args: Any, **kwargs: Any) -> Any:
        reads.append(kwargs.get("include"))
        return original_get(*args, **kwargs)

    store._collection.get = counting_get  # type: ignore[method-assign]
    for start in range(0, len(big), 7):
        add(store, big[start : start + 7] + ([CORPUS[start // 7]] if start < 28 else []))
    assert all("embeddings" not in (inc or []) for inc in reads)  # no chunk was read back
    del store._collection.get
    found = store.document_vectors(["big", "fruit", "space"])
    assert found["big"] == pytest.approx(_mean_vector(big), abs=1e-6)
    assert found["fruit"] == pytest.approx(_mean_vector(CORPUS[:3]), abs=1e-6)
    assert found["space"] == pytest.approx(_mean_vector(CORPUS[3:4]), abs=1e-6)
    # a stored chunk replaced with another text: the vector follows the stored chunks
    changed = replace(big[0], text="omega omega omega")
    add(store, [changed])
    assert store.document_vectors(["big"])["big"] == pytest.approx(
        _mean_vector([changed, *big[1:]]), abs=1e-6
    )
    # a saved vector without the norm (written by an older version): recomputed on the next add
    docs = store._documents
    saved = docs.get(ids=["space"], include=["embeddings"])
    docs.upsert(ids=["space"], embeddings=saved["embeddings"], metadatas=[{"document_id": "space"}])
    add(store, [CORPUS[4]])
    assert store.document_vectors(["space"])["space"] == pytest.approx(
        _mean_vector(CORPUS[3:5]), abs=1e-6
    )
    # ...and so is a document whose vector is missing although it has chunks
    docs.delete(ids=["fruit"])
    extra = make_chunk("fruit", 3, "cherries are small red stone fruit")
    add(store, [extra])
    assert store.document_vectors(["fruit"])["fruit"] == pytest.approx(
        _mean_vector([*CORPUS[:3], extra]), abs=1e-6
    )


def test_ef_search_is_set_on_new_and_existing_collections(chroma_factory: StoreFactory) -> None:
    from rag_core.errors import ConfigError
    from rag_core.stores.chroma import DEFAULT_EF_SEARCH

    store = chroma_factory()
    add(store, CORPUS)
    hnsw = (store._collection.configuration_json or {})["hnsw"]
    assert hnsw["ef_search"] == DEFAULT_EF_SEARCH and hnsw["space"] == "cosine"
    where = {"path": Path(store.location)} if not store.location.startswith("http") else {}
    where = where or {"url": store.location}
    wider = ChromaStore(**where, collection=store.collection_name, ef_search=800)  # type: ignore[arg-type]
    try:
        assert (wider._collection.configuration_json or {})["hnsw"]["ef_search"] == 800
        assert wider.query(fake_embed(CORPUS[3].text), 1)[0][0] == CORPUS[3]
    finally:
        wider.close()
    with pytest.raises(ConfigError, match="ef_search must be at least 1"):
        ChromaStore(**where, collection=store.collection_name, ef_search=0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="collection name must be 3-502 characters"):
        ChromaStore(**where, collection="x" * 505)  # type: ignore[arg-type]


def test_metadata_round_trip_of_every_field(store: ChromaStore) -> None:
    chunks = [
        make_chunk("meta", 0, "no page at all", page=None, page_end=None, heading_path=()),
        make_chunk(
            "meta",
            1,
            "Ünïcødé text — with “quotes” and 日本語",
            page=3,
            page_end=5,
            heading_path=("Setup > Install", "Ünïcødé 日本語", 'say "hi"', ""),
            version="sha256:abc",
            ocr=True,
        ),
        make_chunk("meta", 2, "page zero", page=0, page_end=0, heading_path=("Only",)),
    ]
    add(store, chunks)
    assert store.get([c.id for c in chunks]) == chunks
    assert store.chunks_of("meta") == chunks
    hit, _ = store.query(fake_embed(chunks[1].text), 1)[0]
    assert hit == chunks[1]
    assert hit.location == 'pp. 3-5 · Setup > Install > Ünïcødé 日本語 > say "hi" > '


def test_persists_across_reopening(store_factory: StoreFactory) -> None:
    first = store_factory()
    add(first, CORPUS)
    first.delete_document("code")
    first.close()
    second = store_factory()
    assert second.count() == len(CORPUS) - 2
    assert second.document_ids() == {"fruit", "space"}
    assert second.chunks_of("fruit") == CORPUS[:3]
    assert second.query(fake_embed(CORPUS[3].text), 1)[0][0] == CORPUS[3]
    assert second.dimension == DIM


def test_reopening_with_another_dimension_is_refused(chroma_factory: StoreFactory) -> None:
    from rag_core.errors import ConfigError

    store = chroma_factory()
    add(store, CORPUS[:1])
    with pytest.raises(ConfigError, match="32-dimensional"):
        ChromaStore(
            path=Path(store.location) if not store.location.startswith("http") else None,
            url=store.location if store.location.startswith("http") else None,
            collection=store.collection_name,
            dimension=DIM * 2,
        )


def test_batches_larger_than_the_max_batch_size(
    chroma_factory: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = chroma_factory()
    monkeypatch.setattr(chromadb.api.client.Client, "get_max_batch_size", lambda self: 3)
    sizes: list[int] = []
    original = chromadb.Collection.upsert

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.name == store.collection_name:  # not the document vectors' collection
            sizes.append(len(kwargs["ids"]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(chromadb.Collection, "upsert", spy)
    chunks = [make_chunk("big", i, f"chunk {i} of a big document") for i in range(11)]
    add(store, chunks)
    assert sizes == [3, 3, 3, 2]
    assert store.count() == 11
    assert store.get([c.id for c in reversed(chunks)]) == chunks[::-1]
    assert store.document_ids() == {"big"}
    hashes = [text_hash(c.text) for c in chunks]
    assert set(store.embeddings_by_text_hash(hashes)) == set(hashes)
    assert store.delete_document("big") == 11
    assert store.count() == 0


def test_never_embeds_with_chromas_default_model(
    chroma_factory: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ONNX model download: Chroma's default embedder is never called, even by a raw client."""
    from chromadb.api.types import DefaultEmbeddingFunction

    calls: list[Any] = []

    def forbidden(self: Any, input: Any) -> Any:
        calls.append(input)
        raise AssertionError("Chroma's default embedding function was called")

    monkeypatch.setattr(DefaultEmbeddingFunction, "__call__", forbidden)
    onnx_dir = Path.home() / ".cache" / "chroma" / "onnx_models"
    existed = onnx_dir.exists()

    store = chroma_factory()
    add(store, CORPUS)
    store.query(fake_embed("moon"), 3, document_ids=["space"])
    store.get(["fruit#0"])
    store.chunks_of("fruit")
    store.embeddings_by_text_hash([text_hash(CORPUS[0].text)])
    store.delete_document("fruit")

    # Even Chroma's own API on this collection refuses to embed text rather than download.
    collection = store._collection
    with pytest.raises(Exception, match="ragchat passes embeddings"):
        collection.add(ids=["raw"], documents=["text without an embedding"])
    with pytest.raises(Exception, match="ragchat passes embeddings"):
        collection.query(query_texts=["a text query"], n_results=1)
    assert collection.configuration_json["embedding_function"]["name"] == "ragchat-precomputed"

    assert calls == []
    assert existed or not onnx_dir.exists()


# ---------------------------------------------------------------------------- keyword indexes


def test_index_is_a_keyword_index(index: BM25Index) -> None:
    assert isinstance(index, KeywordIndex)
    assert index.count() == 0
    assert index.search("anything", 5) == []


def test_ranking_sanity(index: BM25Index) -> None:
    index.add(CORPUS)
    assert index.count() == len(CORPUS)
    hits = index.search("Which fruit is yellow?", 5)
    assert hits[0][0] == "fruit#1"
    scores = [s for _, s in hits]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
    assert {cid for cid, _ in hits} == {"fruit#0", "fruit#1", "fruit#2"}  # only matches
    assert index.search("orbiting satellites", 1)[0][0] == "space#0"
    assert index.search("zebra quantum", 5) == []
    assert index.search("the of and", 5) == []  # stop words only
    assert index.search("fruit", 0) == []
    assert len(index.search("fruit", 2)) == 2


def test_rare_terms_weigh_more(index: BM25Index) -> None:
    index.add(CORPUS)
    # "earth" is in two chunks, "month" in one: the chunk with the rarer term wins.
    hits = index.search("earth month", 5)
    assert [cid for cid, _ in hits] == ["space#1", "space#0"]


def test_identifier_search(index: BM25Index) -> None:
    index.add(CORPUS)
    index.add([make_chunk("sql", 0, "an inner join combines rows of two tables")])
    hits = index.search("os.path.join", 3)
    assert hits[0][0] == "code#0"  # the exact identifier
    other = BM25Index(None)
    other.add([c for c in CORPUS if c.id != "code#0"])
    other.add(
        [
            make_chunk("paths", 0, "to join a directory and a file name into one path"),
            make_chunk("sql", 0, "an inner join combines rows of two tables"),
        ]
    )
    # Without the literal identifier, "join" in a "path" context ranks above a bare "join".
    assert [cid for cid, _ in other.search("os.path.join", 3)] == ["paths#0", "sql#0"]
    other.add([make_chunk("api", 0, "def get_user_name(user): return user.name")])
    assert other.search("getUserName", 1)[0][0] == "api#0"  # camelCase finds snake_case
    other.close()


def test_filter_by_document_ids(index: BM25Index) -> None:
    index.add(CORPUS)
    hits = index.search("fruit earth path", 10, document_ids=["space", "code"])
    assert {cid.split("#")[0] for cid, _ in hits} == {"space", "code"}
    assert index.search("fruit", 10, document_ids=["space"]) == []
    assert index.search("fruit", 10, document_ids=[]) == []
    assert index.search("fruit", 10, document_ids=["unknown"]) == []


def test_incremental_add_and_delete(index: BM25Index) -> None:
    index.add(CORPUS[:3])
    assert index.search("moon", 5) == []
    index.add(CORPUS[3:])
    assert index.search("moon", 5)[0][0] == "space#1"
    assert index.document_ids() == {"fruit", "space", "code"}
    assert index.chunk_ids_of("space") == ["space#0", "space#1"]

    assert index.delete_document("space") == 2
    assert index.delete_document("space") == 0
    assert index.search("moon orbit", 5) == []
    assert index.document_ids() == {"fruit", "code"}
    assert index.count() == len(CORPUS) - 2

    # Same id again: the new text replaces the old one.
    index.add([replace(CORPUS[1], text="kiwis are small and green")])
    assert index.count() == len(CORPUS) - 2
    assert index.search("bananas", 5) == []
    assert index.search("kiwi", 5)[0][0] == "fruit#1"

    assert index.delete_chunks(["fruit#0", "missing"]) == 1
    assert index.chunk_ids_of("fruit") == ["fruit#2", "fruit#1"]  # insertion order


def test_incremental_index_scores_like_a_fresh_one(
    index_factory: IndexFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deltas, tombstones and compactions must not change the scores."""
    monkeypatch.setattr(keyword_module, "_MIN_SPARE", 3)
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa", "omega"]
    live: dict[str, Chunk] = {}
    index = index_factory()
    for step in range(60):
        doc = f"d{rng.randrange(8)}"
        if rng.random() < 0.2:
            index.delete_document(doc)
            live = {k: c for k, c in live.items() if c.document_id != doc}
        else:
            new = [
                make_chunk(doc, rng.randrange(4), " ".join(rng.choices(words, k=rng.randint(3, 9))))
                for _ in range(rng.randint(1, 3))
            ]
            index.add(new)
            live.update({c.id: c for c in new})
        if step % 5 == 0:
            index.search("alpha", 3)  # interleave queries so deltas and compactions happen
    fresh = BM25Index(None)
    fresh.add(list(live.values()))
    assert index.count() == fresh.count() == len(live)
    assert index.document_ids() == fresh.document_ids()
    for query in ["alpha", "beta gamma", "omega sigma kappa", "zeta"]:
        got = dict(index.search(query, 100))
        want = dict(fresh.search(query, 100))
        assert got.keys() == want.keys()
        for cid, score in want.items():
            assert got[cid] == pytest.approx(score, rel=1e-5)
    fresh.close()


def test_persists_across_reopening_index(index_factory: IndexFactory) -> None:
    first = index_factory()
    first.add(CORPUS)
    first.delete_document("code")
    before = first.search("fruit earth", 10)
    first.close()
    second = index_factory()
    assert second.count() == len(CORPUS) - 2
    assert second.document_ids() == {"fruit", "space"}
    assert second.chunk_ids_of("fruit") == ["fruit#0", "fruit#1", "fruit#2"]
    after = second.search("fruit earth", 10)
    assert [cid for cid, _ in after] == [cid for cid, _ in before]
    assert [s for _, s in after] == pytest.approx([s for _, s in before])
    second.add([make_chunk("more", 0, "vitamin rich fruit salad")])
    assert second.search("salad", 1)[0][0] == "more#0"


def test_two_instances_on_one_folder_see_each_others_writes(index_factory: IndexFactory) -> None:
    """Stands in for two processes: each has its own SQLite connection and memory."""
    a, b = index_factory(), index_factory()
    a.add(CORPUS[:3])
    assert b.count() == 3
    b.add(CORPUS[3:])  # b's new terms must not collide with a's
    a.add([make_chunk("late", 0, "a late arrival about quasars")])
    assert a.search("moon", 1)[0][0] == "space#1"
    assert b.search("quasar", 1)[0][0] == "late#0"
    assert b.delete_document("fruit") == 3
    assert a.document_ids() == {"space", "code", "late"}


def test_concurrent_threads(index: BM25Index) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(20):
                index.add([make_chunk(f"w{n}", i, f"thread {n} writes passage {i} about moons")])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def reader() -> None:
        try:
            for _ in range(50):
                index.search("moons passage", 5)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert index.count() == 80


def test_keyword_latency_is_printed(index_factory: IndexFactory) -> None:
    """Not a timing assertion: prints add and query latency at 10k chunks (see with -s)."""
    rng = random.Random(3)
    vocab = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(4, 9)))
        for _ in range(20000)
    ]
    weights = [1.0 / (r + 1) for r in range(len(vocab))]  # Zipf-like word frequencies
    n = 10_000
    words = rng.choices(vocab, weights=weights, k=n * 60)
    chunks = [
        make_chunk(f"doc{i // 20}", i % 20, " ".join(words[i * 60 : (i + 1) * 60]))
        for i in range(n)
    ]
    index = index_factory()
    start = time.perf_counter()
    index.add(chunks)
    added = time.perf_counter() - start
    start = time.perf_counter()
    index.search("warm up", 1)
    built = time.perf_counter() - start
    queries = [" ".join(rng.choices(vocab[:2000], k=4)) for _ in range(200)]
    times = []
    for q in queries:
        start = time.perf_counter()
        index.search(q, 10)
        times.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    index.add([make_chunk("extra", 0, queries[0])])
    index.search(queries[0], 10)
    small = (time.perf_counter() - start) * 1000
    times.sort()
    print(
        f"\nBM25 {n} chunks: add {added:.1f} s, first query (build) {built * 1000:.0f} ms,"
        f" query p50 {statistics.median(times):.2f} ms p95 {times[int(0.95 * len(times))]:.2f} ms,"
        f" add 1 chunk + query {small:.1f} ms"
    )
    assert index.count() == n + 1


def test_document_frequency_counts_live_chunks(index: BM25Index) -> None:
    index.add(CORPUS)
    terms = [*tokenize("fruit earth"), "os.path.join", "zzz"]
    expected = {"fruit": 3, "earth": 2, "os.path.join": 1, "zzz": 0}
    assert index.document_frequency(terms) == expected
    index.delete_document("space")
    assert index.document_frequency(["earth", "fruit"]) == {"earth": 0, "fruit": 3}
    assert index.document_frequency([]) == {}


def test_document_frequency_inside_a_scope_counts_only_its_documents(index: BM25Index) -> None:
    index.add(CORPUS)
    terms = ["fruit", "earth", "os.path.join", "zzz"]
    assert index.document_frequency(terms, ["space", "code"]) == {
        "fruit": 0, "earth": 2, "os.path.join": 1, "zzz": 0,
    }  # fmt: skip
    assert index.document_frequency(terms, ["fruit", "nowhere"])["fruit"] == 3
    assert index.document_frequency(terms, []) == dict.fromkeys(terms, 0)
    index.delete_chunks([CORPUS[0].id])  # a dead chunk is not counted
    index.add([make_chunk("moon", 0, "the earth has one moon")])  # nor is a new one missed
    assert index.document_frequency(["fruit", "earth"], ["fruit", "moon"]) == {
        "fruit": 2, "earth": 1,
    }  # fmt: skip
