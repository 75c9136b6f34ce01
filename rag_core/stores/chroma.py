"""Chroma vector store, embedded (PersistentClient on a folder) or client/server (`chroma run`).

ragchat always computes embeddings itself and passes them in: the collection is bound to
`PrecomputedEmbeddings`, an embedding function that refuses to run, so Chroma can never fall
back to its default ONNX model (which it would try to download). Telemetry is off. Each chunk is
stored with its text as the Chroma document and every other field in the metadata (see
`chunk_to_metadata`), plus `text_hash`, the sha256 of `Chunk.embedding_text` (what was
embedded), so unchanged chunks of a new document version can reuse their embeddings, and
`embedder`, the key of the embedder that made the vector, so that only its own are reused.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import chromadb
import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.config import Settings
from chromadb.errors import NotFoundError
from chromadb.utils.embedding_functions import register_embedding_function

from rag_core.errors import ConfigError
from rag_core.stores import text_hash
from rag_core.types import Chunk

__all__ = [
    "ChromaStore",
    "PrecomputedEmbeddings",
    "chunk_from_metadata",
    "chunk_to_metadata",
    "text_hash",
]

NO_PAGE = -1  # Chroma metadata values cannot be None
_LOCK_WAIT_S = 10.0  # how long a write waits for another client of the same folder to let go


def _when_unlocked(write: Any) -> None:
    """Run a write to an embedded Chroma that another client of the same folder (a `ragchat
    reindex` beside the server, a replica on one disk) may hold locked for a moment: SQLite's
    "database is locked" is retried with a growing pause for up to _LOCK_WAIT_S, then raised."""
    from chromadb.errors import InternalError

    deadline = time.monotonic() + _LOCK_WAIT_S
    pause = 0.05
    while True:
        try:
            write()
            return
        except InternalError as exc:
            if "database is locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


_DIMENSION_KEY = "ragchat_dimension"
# The documents' vectors live in a second collection named after the chunks' one.
DOCUMENTS_SUFFIX = "-documents"
# ...with the norm of the chunk sum they were normalised from in their metadata, so that chunks
# added later extend the sum instead of every chunk of the document being read again.
_NORM_KEY = "chunk_sum_norm"
# How many candidates the HNSW search keeps (Chroma's default is 100). pyfaq dev (19k chunks):
# share of the exact top 40 that the search returns 0.975 at 100 (0.75 for the worst question),
# 0.994 at 200, 0.999 at 400.
DEFAULT_EF_SEARCH = 400
_COLLECTION_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]")


class PrecomputedEmbeddings(EmbeddingFunction[Documents]):
    """Chroma embedding function that refuses to embed: ragchat always passes its own vectors.

    Binding the collection to it keeps Chroma from ever using its default ONNX model.
    """

    def __init__(self) -> None:
        pass

    def __call__(self, input: Documents) -> Embeddings:
        raise RuntimeError(
            "ragchat passes embeddings to Chroma explicitly; Chroma was asked to embed text itself"
        )

    @staticmethod
    def name() -> str:
        return "ragchat-precomputed"

    def get_config(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> PrecomputedEmbeddings:
        return PrecomputedEmbeddings()

    def default_space(self) -> Space:
        return "cosine"


# Registered so that Chroma can rebuild it from a persisted collection configuration.
_register: Any = register_embedding_function  # chromadb's decorator is untyped
_register(PrecomputedEmbeddings)


def chunk_to_metadata(chunk: Chunk) -> dict[str, str | int | bool]:
    """Every Chunk field but id and text (Chroma's id and document), plus the text_hash.

    text_hash hashes `embedding_text` (heading path + text), the string the embedder saw, so a
    reused embedding always belongs to exactly that input.
    """
    return {
        "document_id": chunk.document_id,
        "document_name": chunk.document_name,
        "version": chunk.version,
        "index": chunk.index,
        "char_start": chunk.char_start,
        "char_end": chunk.char_end,
        "page": NO_PAGE if chunk.page is None else chunk.page,
        "page_end": NO_PAGE if chunk.page_end is None else chunk.page_end,
        "heading_path": json.dumps(list(chunk.heading_path), ensure_ascii=False),
        "ocr": chunk.ocr,
        "text_hash": text_hash(chunk.embedding_text),
    }


def chunk_from_metadata(chunk_id: str, text: str, metadata: Mapping[str, Any]) -> Chunk:
    """The inverse of `chunk_to_metadata`."""
    page = int(metadata["page"])
    page_end = int(metadata["page_end"])
    return Chunk(
        id=chunk_id,
        document_id=str(metadata["document_id"]),
        document_name=str(metadata["document_name"]),
        version=str(metadata["version"]),
        index=int(metadata["index"]),
        text=text,
        char_start=int(metadata["char_start"]),
        char_end=int(metadata["char_end"]),
        page=None if page == NO_PAGE else page,
        page_end=None if page_end == NO_PAGE else page_end,
        heading_path=tuple(json.loads(str(metadata["heading_path"]))),
        ocr=bool(metadata.get("ocr", False)),  # absent in chunks written before OCR
    )


def _parse_url(url: str) -> tuple[str, int, bool]:
    """'http://host:port' -> (host, port, ssl); the port defaults to 8000 (443 for https)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"Chroma server url must look like http://host:port, got {url!r}")
    try:
        port = parts.port
    except ValueError as e:
        raise ConfigError(f"Chroma server url {url!r} has an invalid port") from e
    ssl = parts.scheme == "https"
    return parts.hostname, port or (443 if ssl else 8000), ssl


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ChromaStore:
    """VectorStore on a Chroma collection with cosine distance; similarity = 1 - distance.

    Embedded (`path`: a folder, PersistentClient) by default; client/server when `url` is given
    (it then takes precedence over `path`). `dimension`, when given, is recorded in a new
    collection and checked against an existing one and against every vector passed in, so a
    change of embedding model is caught instead of mixing vector spaces.
    """

    def __init__(
        self,
        *,
        path: Path | None = None,
        url: str | None = None,
        collection: str = "ragchat",
        dimension: int | None = None,
        ef_search: int = DEFAULT_EF_SEARCH,
        embedder_key: str | None = None,
    ) -> None:
        if ef_search < 1:
            raise ConfigError(f"HNSW ef_search must be at least 1, got {ef_search}")
        too_long = len(collection) + len(DOCUMENTS_SUFFIX) > 512
        if not _COLLECTION_RE.fullmatch(collection) or ".." in collection or too_long:
            raise ConfigError(
                f"Chroma collection name must be 3-{512 - len(DOCUMENTS_SUFFIX)} characters from"
                f" [a-zA-Z0-9._-], starting and ending with a letter or digit, got {collection!r}"
            )
        if dimension is not None and dimension <= 0:
            raise ConfigError(f"embedding dimension must be positive, got {dimension}")
        self.embedder_key = embedder_key
        self._path, self._url, self._ef_search = path, url, ef_search
        settings = Settings(anonymized_telemetry=False, allow_reset=False)
        if url is not None:
            host, port, ssl = _parse_url(url)
            try:
                self._client = chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=settings)
            except ValueError as e:
                raise ConfigError(f"cannot use the Chroma server at {url}: {e}") from e
            self.location = url
        elif path is not None:
            path = Path(path)
            if path.exists() and not path.is_dir():
                raise ConfigError(f"Chroma path {path} exists and is not a folder")
            path.mkdir(parents=True, exist_ok=True)
            self._client = chromadb.PersistentClient(path=str(path), settings=settings)
            self.location = str(path)
        else:
            raise ConfigError("ChromaStore needs a path (embedded Chroma) or a url (Chroma server)")
        self.collection_name = collection
        self._collection = self._client.get_or_create_collection(
            name=collection,
            configuration={"hnsw": {"space": "cosine", "ef_search": ef_search}},
            metadata={_DIMENSION_KEY: dimension} if dimension is not None else None,
            embedding_function=PrecomputedEmbeddings(),  # type: ignore[arg-type]
        )
        self._check_space()
        if self._set_ef_search(ef_search) and url is None and path is not None:
            # Chroma reads ef_search when it loads the index: reopen, so that it holds in this
            # process too (a server applies it to an existing collection once it restarts)
            cast(Any, self._client).close()
            self._client = chromadb.PersistentClient(path=str(path), settings=settings)
            self._collection = self._client.get_collection(
                name=collection,
                embedding_function=PrecomputedEmbeddings(),  # type: ignore[arg-type]
            )
        self.dimension = self._check_dimension(dimension)
        # one vector per document: the normalised mean of its chunks' embeddings (never queried
        # by similarity, only read by id)
        self._documents = self._client.get_or_create_collection(
            name=collection + DOCUMENTS_SUFFIX,
            configuration={"hnsw": {"space": "cosine"}},
            embedding_function=PrecomputedEmbeddings(),  # type: ignore[arg-type]
        )
        self._lock = threading.Lock()  # makes delete_document's read-then-delete atomic

    def sibling(
        self, collection: str, *, dimension: int | None = None, embedder_key: str | None = None
    ) -> ChromaStore:
        """Another collection of the same Chroma (its own client: closing one leaves the
        other working)."""
        return ChromaStore(
            path=self._path,
            url=self._url,
            collection=collection,
            dimension=dimension,
            ef_search=self._ef_search,
            embedder_key=embedder_key,
        )

    def drop(self) -> None:
        """Delete this store's collections (chunks and document vectors) from Chroma."""
        for name in (self.collection_name, self.collection_name + DOCUMENTS_SUFFIX):
            with contextlib.suppress(ValueError, NotFoundError):  # already gone
                self._client.delete_collection(name)

    def _check_space(self) -> None:
        config = self._collection.configuration_json or {}
        index = config.get("hnsw") or config.get("spann") or {}
        space = index.get("space", "l2")
        if space != "cosine":
            raise ConfigError(
                f"Chroma collection {self.collection_name!r} at {self.location} uses distance"
                f" {space!r}, ragchat needs 'cosine': use another collection name"
            )

    def _set_ef_search(self, ef_search: int) -> bool:
        """Apply `ef_search` to a collection created with another (it may change at any time);
        whether it was changed."""
        config = self._collection.configuration_json or {}
        if (config.get("hnsw") or {}).get("ef_search", ef_search) == ef_search:
            return False
        _when_unlocked(
            lambda: self._collection.modify(configuration={"hnsw": {"ef_search": ef_search}})
        )
        return True

    def _check_dimension(self, dimension: int | None) -> int | None:
        stored = (self._collection.metadata or {}).get(_DIMENSION_KEY)
        if stored is None:
            peek = self._collection.get(limit=1, include=["embeddings"])
            embeddings = peek["embeddings"]
            stored = len(embeddings[0]) if embeddings is not None and len(embeddings) else None
        if dimension is not None and stored is not None and int(cast(int, stored)) != dimension:
            raise ConfigError(
                f"Chroma collection {self.collection_name!r} at {self.location} holds"
                f" {stored}-dimensional embeddings, the embedder makes {dimension}-dimensional"
                " ones: use another collection name or re-index"
            )
        return dimension if dimension is not None else cast(int | None, stored)

    def _vectors(self, embeddings: Sequence[Sequence[float]]) -> np.ndarray:
        """Embeddings as a 2-D float32 array, checked against the store's dimension."""
        arr = np.asarray(embeddings, dtype=np.float32)
        if arr.ndim != 2:
            raise ValueError(f"embeddings must be a list of equal-length vectors, got {arr.shape}")
        if self.dimension is None:
            self.dimension = arr.shape[1]
        elif arr.shape[1] != self.dimension:
            raise ValueError(
                f"embedding dimension {arr.shape[1]} does not match the store's {self.dimension}"
            )
        return arr

    @property
    def max_batch_size(self) -> int:
        """Most records Chroma takes in one call (asked each time: a server may change it)."""
        return int(self._client.get_max_batch_size())

    def add(self, chunks: Sequence[Chunk], embeddings: Sequence[Sequence[float]]) -> None:
        """Insert or replace (same id) chunks with their embeddings, in Chroma-sized batches.

        The vectors of their documents are brought up to date: extended by the new chunks'
        sum when every chunk is new (a document written in batches costs O(batch) per batch),
        else recomputed from all their stored chunks.
        """
        if len(chunks) != len(embeddings):
            raise ValueError(f"{len(chunks)} chunks but {len(embeddings)} embeddings")
        if not chunks:
            return
        ids = [c.id for c in chunks]
        if len(set(ids)) != len(ids):
            dups = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"duplicate chunk ids in one add: {dups[:5]}")
        vectors = self._vectors(embeddings)
        size = self.max_batch_size
        documents = list(dict.fromkeys(c.document_id for c in chunks))
        with self._lock:
            sums = self._document_sums(documents, ids)
            for start in range(0, len(chunks), size):
                batch = chunks[start : start + size]
                self._collection.upsert(
                    ids=[c.id for c in batch],
                    embeddings=vectors[start : start + size],
                    documents=[c.text for c in batch],
                    metadatas=[self._metadata(c) for c in batch],
                )
            if sums is None:
                self._refresh_documents(documents)
                return
            owners = np.array([c.document_id for c in chunks])
            for doc, total in sums.items():
                if total is not None:
                    total += vectors[owners == doc].sum(axis=0, dtype=np.float64)
            self._save_documents({d: t for d, t in sums.items() if t is not None})
            self._refresh_documents([d for d, t in sums.items() if t is None])

    def _metadata(self, chunk: Chunk) -> dict[str, str | int | bool]:
        meta = chunk_to_metadata(chunk)
        if self.embedder_key is not None:
            meta["embedder"] = self.embedder_key
        return meta

    def _document_sums(
        self, documents: Sequence[str], new_ids: Sequence[str]
    ) -> dict[str, np.ndarray | None] | None:
        """Before an add: the sum of the stored chunk embeddings of each document (zeros for a
        document without chunks), None for one whose saved vector cannot give it (written
        before sums were recorded); None for all when a chunk being added is stored already."""
        for batch in _batches(list(new_ids), self.max_batch_size):
            if self._collection.get(ids=list(batch), include=[])["ids"]:
                return None
        out: dict[str, np.ndarray | None] = {}
        for batch in _batches(list(documents), self.max_batch_size):
            res = self._documents.get(ids=list(batch), include=["embeddings", "metadatas"])
            embeddings = res["embeddings"]
            metas = res["metadatas"] or []
            if embeddings is None:
                continue
            for doc, emb, meta in zip(res["ids"], embeddings, metas, strict=True):
                norm = (meta or {}).get(_NORM_KEY)
                if isinstance(norm, (int, float)):
                    out[doc] = np.asarray(emb, dtype=np.float64) * float(norm)
                else:
                    out[doc] = None
        missing = [d for d in documents if d not in out]
        for batch in _batches(missing, 100):
            where: dict[str, Any] = {"document_id": {"$in": list(batch)}}
            res = self._collection.get(where=where, include=["metadatas"])
            stored = {str(m["document_id"]) for m in res["metadatas"] or []}
            for doc in batch:
                out[doc] = None if doc in stored else np.zeros(self.dimension or 0, np.float64)
        return out

    def _save_documents(self, sums: Mapping[str, np.ndarray]) -> dict[str, list[float]]:
        """Save each document's vector (its normalised chunk sum) with the sum's norm, from
        which the next add recovers the sum; a zero sum removes the vector. Returns the vectors."""
        out: dict[str, list[float]] = {}
        norms: dict[str, float] = {}
        for doc, total in sums.items():
            norm = float(np.linalg.norm(total))
            if norm > 0:
                out[doc] = (total / norm).astype(np.float32).tolist()
                norms[doc] = norm
        gone = [d for d in sums if d not in out]
        if gone:
            self._documents.delete(ids=gone)
        found = list(out)
        for batch in _batches(found, self.max_batch_size):
            self._documents.upsert(
                ids=list(batch),
                embeddings=np.asarray([out[d] for d in batch], dtype=np.float32),
                metadatas=[{"document_id": d, _NORM_KEY: norms[d]} for d in batch],
            )
        return out

    def query(
        self, embedding: Sequence[float], k: int, document_ids: Sequence[str] | None = None
    ) -> list[tuple[Chunk, float]]:
        """The `k` nearest chunks as (chunk, cosine similarity), best first."""
        if k <= 0:
            return []
        where: dict[str, Any] | None = None
        if document_ids is not None:
            wanted = list(dict.fromkeys(document_ids))
            if not wanted:
                return []
            where = {"document_id": {"$in": wanted}}
        vector = self._vectors([embedding])
        res = self._collection.query(
            query_embeddings=vector,
            n_results=k,
            where=where,
            include=["documents", "metadatas", "distances"],
        )
        ids = res["ids"][0]
        docs = (res["documents"] or [[]])[0]
        metas = (res["metadatas"] or [[]])[0]
        dists = (res["distances"] or [[]])[0]
        hits = [
            (chunk_from_metadata(i, d, m), 1.0 - float(dist))
            for i, d, m, dist in zip(ids, docs, metas, dists, strict=True)
        ]
        hits.sort(key=lambda h: -h[1])
        return hits

    def get(self, chunk_ids: Sequence[str]) -> list[Chunk]:
        """The chunks with these ids, in the order asked; unknown ids are skipped."""
        unique = list(dict.fromkeys(chunk_ids))
        found: dict[str, Chunk] = {}
        for batch in _batches(unique, self.max_batch_size):
            res = self._collection.get(ids=list(batch), include=["documents", "metadatas"])
            found.update(self._chunks(res))
        return [found[i] for i in chunk_ids if i in found]

    def chunks_of(self, document_id: str) -> list[Chunk]:
        """All chunks of a document, ordered by their index."""
        res = self._collection.get(
            where={"document_id": document_id}, include=["documents", "metadatas"]
        )
        return sorted(self._chunks(res).values(), key=lambda c: c.index)

    def delete_document(self, document_id: str) -> int:
        """Remove every chunk of a document and its vector; returns how many chunks were removed."""
        with self._lock:
            self._documents.delete(ids=[document_id])
            ids = self._collection.get(where={"document_id": document_id}, include=[])["ids"]
            for batch in _batches(ids, self.max_batch_size):
                self._collection.delete(ids=list(batch))
            return len(ids)

    def delete_chunks(self, chunk_ids: Sequence[str]) -> None:
        """Remove chunks by id (their documents' vectors are recomputed); unknown ids are ignored."""
        with self._lock:
            owners: set[str] = set()
            for batch in _batches(list(dict.fromkeys(chunk_ids)), self.max_batch_size):
                res = self._collection.get(ids=list(batch), include=["metadatas"])
                owners.update(str(m["document_id"]) for m in res["metadatas"] or [])
                self._collection.delete(ids=list(batch))
            self._refresh_documents(sorted(owners))

    def embeddings_by_text_hash(self, text_hashes: Sequence[str]) -> dict[str, list[float]]:
        """{text_hash: embedding} for the hashes some stored chunk has (to skip re-embedding).
        With an `embedder_key`, only chunks embedded by that embedder count."""
        out: dict[str, list[float]] = {}
        unique = list(dict.fromkeys(text_hashes))
        for batch in _batches(unique, min(self.max_batch_size, 1000)):
            where: dict[str, Any] = {"text_hash": {"$in": list(batch)}}
            if self.embedder_key is not None:
                where = {"$and": [where, {"embedder": self.embedder_key}]}
            res = self._collection.get(where=where, include=["embeddings", "metadatas"])
            embeddings = res["embeddings"]
            if embeddings is None:
                continue
            for meta, emb in zip(res["metadatas"] or [], embeddings, strict=True):
                out.setdefault(str(meta["text_hash"]), [float(x) for x in emb])
        return out

    def document_vectors(self, document_ids: Sequence[str]) -> dict[str, list[float]]:
        """{document id: the normalised mean of its chunks' embeddings} for the documents that
        have chunks stored (a vector of the whole document, for document-level evidence).

        Written whenever a document's chunks are added or removed; one that is missing (a store
        written before document vectors existed) is computed from its chunks and saved.
        """
        wanted = list(dict.fromkeys(document_ids))
        out: dict[str, list[float]] = {}
        for batch in _batches(wanted, self.max_batch_size):
            res = self._documents.get(ids=list(batch), include=["embeddings"])
            embeddings = res["embeddings"]
            if embeddings is not None:
                for doc, emb in zip(res["ids"], embeddings, strict=True):
                    out[doc] = [float(x) for x in emb]
        missing = [d for d in wanted if d not in out]
        if missing:
            out.update(self._refresh_documents(missing))
        return out

    def _refresh_documents(self, document_ids: Sequence[str]) -> dict[str, list[float]]:
        """Recompute and save the vectors of these documents from their stored chunks (one
        without chunks loses its vector); returns the new vectors."""
        out: dict[str, list[float]] = {}
        for batch in _batches(list(document_ids), 100):
            where: dict[str, Any] = {"document_id": {"$in": list(batch)}}
            res = self._collection.get(where=where, include=["embeddings", "metadatas"])
            embeddings = res["embeddings"]
            metas = res["metadatas"] or []
            sums: dict[str, np.ndarray] = {d: np.zeros(0) for d in batch}
            if embeddings is not None and len(embeddings):
                vectors = np.asarray(embeddings, dtype=np.float32)
                owners = np.array([str(m["document_id"]) for m in metas])
                for doc in dict.fromkeys(owners.tolist()):
                    sums[doc] = vectors[owners == doc].sum(axis=0, dtype=np.float64)
            out.update(self._save_documents(sums))
        return out

    def document_ids(self) -> set[str]:
        """Ids of the documents that have at least one chunk stored."""
        out: set[str] = set()
        page = self.max_batch_size
        offset = 0
        while True:
            res = self._collection.get(include=["metadatas"], limit=page, offset=offset)
            metas = res["metadatas"] or []
            out.update(str(m["document_id"]) for m in metas)
            if len(metas) < page:
                return out
            offset += page

    def count(self) -> int:
        """Number of stored chunks."""
        return int(self._collection.count())

    def close(self) -> None:
        """Release the client (for an embedded store: its SQLite files and memory)."""
        cast(Any, self._client).close()  # Client has close(); the ClientAPI protocol does not

    def __enter__(self) -> ChromaStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _chunks(res: Mapping[str, Any]) -> dict[str, Chunk]:
        docs = res["documents"] or []
        metas = res["metadatas"] or []
        return {
            i: chunk_from_metadata(i, d, m) for i, d, m in zip(res["ids"], docs, metas, strict=True)
        }
