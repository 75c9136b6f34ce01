"""Indexing a BEIR corpus through the real ingestion path, and mapping chunks back to its ids."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from rag_core.evaluation.beir import BeirDocument
from rag_core.ingest.pipeline import clean_name
from rag_core.types import Chunk, Hit

if TYPE_CHECKING:
    from rag_core.engine import Engine

Progress = Callable[[int, int], None]  # (items done, items in all)
A = TypeVar("A")
B = TypeVar("B")
R = TypeVar("R")


def run_grid(
    outer: Sequence[A],
    inner: Sequence[B],
    run: Callable[[A, B], R],
    progress: Progress | None = None,
) -> list[R]:
    """`run(a, b)` for every a in `outer` and b in `inner`, in that order, reporting progress
    after each: the loop every evaluation over (question x setting) runs."""
    results: list[R] = []
    total = len(outer) * len(inner)
    for a in outer:
        for b in inner:
            results.append(run(a, b))
            if progress:
                progress(len(results), total)
    return results


@dataclass(frozen=True)
class CorpusMap:
    """How indexed documents map back to corpus ids.

    `names` maps a document name to its corpus id. Corpus documents with the same content as an
    earlier one are not indexed twice (the pipeline reports them as duplicates): `duplicates` maps
    the indexed id to the ids that share its content, which get the same score.
    """

    names: Mapping[str, str]
    duplicates: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)
    chunks: int = 0

    def doc_ids(self, chunk: Chunk) -> tuple[str, ...]:
        doc = self.names.get(chunk.document_name)
        if doc is None:
            doc = chunk.document_name.removesuffix(".md")
        return (doc, *self.duplicates.get(doc, ()))

    def to_json(self) -> dict[str, Any]:
        return {
            "names": dict(self.names),
            "duplicates": {k: list(v) for k, v in self.duplicates.items()},
            "errors": dict(self.errors),
            "chunks": self.chunks,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CorpusMap:
        return cls(
            names=dict(data["names"]),
            duplicates={k: tuple(v) for k, v in data.get("duplicates", {}).items()},
            errors=dict(data.get("errors", {})),
            chunks=int(data.get("chunks", 0)),
        )


def document_names(ids: Iterable[str]) -> dict[str, str]:
    """A document name per corpus id: f"{id}.md", made safe where the id is not a valid file name.

    Ids such as 'faq/general#1' hold a '/', which the ingestion path would cut ('general#1.md',
    colliding with 'library/general#1'); '/' and '\\' become '__', and a name that is still not
    safe or unique gets a hash of the id.
    """
    out: dict[str, str] = {}
    used: set[str] = set()
    for doc_id in ids:
        name = re.sub(r"[\\/]", "__", doc_id) + ".md"
        if clean_name(name) != name or name in used:
            name = f"doc-{hashlib.sha1(doc_id.encode()).hexdigest()[:16]}.md"
        used.add(name)
        out[doc_id] = name
    return out


def index_corpus(
    engine: Engine,
    corpus: Mapping[str, BeirDocument],
    progress: Progress | None = None,
    *,
    group: int = 256,
) -> CorpusMap:
    """Ingest every corpus document as Markdown (`# title` then text) via `ingest_many`."""
    names = document_names(corpus)
    by_name = {name: doc_id for doc_id, name in names.items()}
    name_of_doc_id: dict[str, str] = {}  # registry document id -> corpus id
    duplicates: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    chunks = 0
    ids = list(corpus)
    for start in range(0, len(ids), group):
        part = ids[start : start + group]
        files = [(corpus[i].markdown.encode("utf-8"), names[i]) for i in part]
        results = engine.pipeline.ingest_many(files)
        for doc_id, result in zip(part, results, strict=True):
            if result.status in ("added", "replaced") and result.document is not None:
                name_of_doc_id[result.document.id] = doc_id
                chunks += result.chunks
            elif result.status == "duplicate" and result.document is not None:
                original = by_name.get(result.document.name)
                if original is None:
                    errors[doc_id] = f"duplicate of unknown document {result.document.name}"
                else:
                    duplicates.setdefault(original, []).append(doc_id)
            else:
                errors[doc_id] = result.error or result.status
        if progress:
            progress(min(start + group, len(ids)), len(ids))
    return CorpusMap(by_name, {k: tuple(v) for k, v in duplicates.items()}, errors, chunks)


def rank_documents(hits: Sequence[Hit], documents: CorpusMap) -> list[str]:
    """Corpus ids in ranking order; a document ranks where its best chunk does."""
    seen: dict[str, None] = {}
    for hit in hits:
        for doc in documents.doc_ids(hit.chunk):
            seen.setdefault(doc, None)
    return list(seen)
