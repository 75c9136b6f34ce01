"""BM25 keyword index over chunk texts: SQLite on disk, compressed postings in memory.

Persistence: one SQLite file (``bm25.sqlite3``, WAL journal, ``synchronous=FULL``) in the index
folder holds the vocabulary (``terms``: stable integer ids) and, per chunk, its document, token
count and term-frequency vector (``chunks``: int32 term ids + uint16 counts as blobs). Every add or
delete is one transaction, so a crash leaves either the old or the new state, never a torn file,
and a write costs O(changed chunks) rather than rewriting the whole index. Loading needs no
re-tokenization: the stored vectors are read straight into numpy.

In memory: term-frequency postings in CSC layout (one column per term), split into a large
*base* over the older chunks and a small *delta* over the chunks added since; deleted or replaced
chunks are tombstoned. BM25 length normalisation and idf are computed at query time from live
statistics, so an add only rebuilds the delta (milliseconds), and a compaction (base + delta
rebuilt without tombstones) runs only when the delta or the tombstones grow past a fraction of
the index.

Replicas: several app processes on different machines share one vector store and one registry
database but each has its own RAGCHAT_HOME, hence its own index file. The index is then a local
*cache* of the shared truth, and `KeywordSync` keeps it equal to it: before each answer it compares
the registry's change token with the token the index was last synchronised at (stored in this
file's ``meta`` table); only when they differ does it drop the documents that are no longer
registered and index, from the vector store's chunk texts, the ready documents it lacks or holds
a different number of chunks of. So every replica ranks with the same BM25 statistics.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from rag_core.errors import ConfigError
from rag_core.stores.tokenize import TOKENIZER_VERSION, tokenize
from rag_core.types import Chunk

__all__ = ["DB_NAME", "BM25Index"]

log = logging.getLogger(__name__)

DB_NAME = "bm25.sqlite3"
SCHEMA_VERSION = "1"
_TERM_DTYPE = np.dtype("<i4")
_TF_DTYPE = np.dtype("<u2")
_EMPTY_TERMS = np.zeros(0, _TERM_DTYPE)
_EMPTY_TFS = np.zeros(0, _TF_DTYPE)
_MIN_SPARE = 2048  # delta / tombstones tolerated before compaction, at least this many slots
_SYNC_KEY = "synced_at"  # meta key: the registry change token the index was last synced at

_SCHEMA = """
CREATE TABLE IF NOT EXISTS terms (id INTEGER PRIMARY KEY, term TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS chunks (
    seq INTEGER PRIMARY KEY,
    chunk_id TEXT NOT NULL UNIQUE,
    document_id TEXT NOT NULL,
    length INTEGER NOT NULL,
    term_ids BLOB NOT NULL,
    tfs BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_document ON chunks (document_id);
"""


@dataclass(frozen=True)
class _Postings:
    """Term-frequency postings (CSC: column = term id) for slots first .. first + rows - 1."""

    first: int
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray

    @property
    def n_terms(self) -> int:
        return len(self.indptr) - 1


class BM25Index:
    """Okapi BM25 (k1=1.5, b=0.75, Lucene idf) over chunks, incremental and thread-safe.

    `path` is a folder (created if missing); None keeps the index in memory only. All methods
    take one lock, so threads may share an instance. Several processes may share a folder:
    SQLite serialises their writes, and before each call an instance checks ``PRAGMA
    data_version`` and reloads everything if another process committed since (a full load, about
    a second per 100k chunks), so cross-process writes are correct but make the next call slow.
    """

    # In-memory state, one "slot" per chunk as added (see _reset).
    _slot_ids: list[str]
    _slot_terms: list[np.ndarray]
    _slot_tfs: list[np.ndarray]
    _slot_doc: np.ndarray
    _dl: np.ndarray
    _alive: np.ndarray
    _id_to_slot: dict[str, int]
    _doc_index: dict[str, int]
    _doc_names: list[str]
    _doc_slots: dict[str, dict[int, None]]
    _n_slots: int
    _n_alive: int
    _n_dead: int
    _total_len: float
    _base: _Postings | None
    _delta: _Postings | None
    _base_end: int
    _delta_dirty: bool

    def __init__(self, path: Path | None = None, *, k1: float = 1.5, b: float = 0.75) -> None:
        if k1 < 0:
            raise ConfigError(f"BM25 k1 must be >= 0, got {k1}")
        if not 0 <= b <= 1:
            raise ConfigError(f"BM25 b must be between 0 and 1, got {b}")
        self.k1 = k1
        self.b = b
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            if self.path.exists() and not self.path.is_dir():
                raise ConfigError(f"BM25 index path {self.path} exists and is not a folder")
            self.path.mkdir(parents=True, exist_ok=True)
            target = str(self.path / DB_NAME)
        else:
            target = ":memory:"
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            target, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._data_version = -1
        self._vocab: dict[str, int] = {}  # term -> stable id (ids of vanished terms stay unused)
        self._n_terms = 0
        self._df = np.zeros(1024, np.int64)  # live chunks per term id
        self._reset(0)
        self._init_schema()
        self._load()

    # ------------------------------------------------------------------ public API

    def add(self, chunks: Sequence[Chunk]) -> None:
        """Index `chunks`; a chunk whose id is already indexed replaces the old one."""
        if not chunks:
            return
        prepared = []
        for chunk in chunks:  # tokenize outside the lock: it is the slow part
            tokens = tokenize(chunk.text)
            counts = Counter(tokens)
            tfs = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
            tfs = np.minimum(tfs, np.iinfo(_TF_DTYPE).max).astype(_TF_DTYPE)
            prepared.append((chunk.id, chunk.document_id, len(tokens), list(counts), tfs))
        with self._lock:
            self._begin_write()
            try:
                new_terms: dict[str, int] = {}
                next_id = self._n_terms
                rows = []
                for chunk_id, document_id, length, terms, tfs in prepared:
                    ids = np.empty(len(terms), _TERM_DTYPE)
                    for j, term in enumerate(terms):
                        tid = self._vocab.get(term)
                        if tid is None:
                            tid = new_terms.get(term)
                            if tid is None:
                                tid = new_terms[term] = next_id
                                next_id += 1
                        ids[j] = tid
                    rows.append((chunk_id, document_id, length, ids, tfs))
                self._conn.executemany(
                    "INSERT INTO terms (id, term) VALUES (?, ?)",
                    [(tid, term) for term, tid in new_terms.items()],
                )
                self._conn.executemany(
                    "INSERT OR REPLACE INTO chunks (chunk_id, document_id, length, term_ids, tfs)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [(c, d, n, ids.tobytes(), tfs.tobytes()) for c, d, n, ids, tfs in rows],
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._vocab.update(new_terms)
            self._set_n_terms(next_id)
            for row in rows:
                self._append(*row)

    def delete_document(self, document_id: str) -> int:
        """Remove every chunk of `document_id`; returns how many were removed."""
        with self._lock:
            self._begin_write()
            try:
                cur = self._conn.execute("DELETE FROM chunks WHERE document_id = ?", (document_id,))
                removed = cur.rowcount
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            for slot in list(self._doc_slots.get(document_id, ())):
                self._kill(slot)
            return removed

    def delete_chunks(self, chunk_ids: Sequence[str]) -> int:
        """Remove the given chunks (unknown ids are ignored); returns how many were removed."""
        with self._lock:
            self._begin_write()
            try:
                self._conn.executemany(
                    "DELETE FROM chunks WHERE chunk_id = ?", [(c,) for c in chunk_ids]
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            slots = {self._id_to_slot[c] for c in chunk_ids if c in self._id_to_slot}
            for slot in slots:
                self._kill(slot)
            return len(slots)

    def search(
        self, query: str, k: int, document_ids: Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        """The `k` best chunks for `query` as (chunk_id, BM25 score), best first, scores > 0."""
        if k <= 0:
            return []
        terms = set(tokenize(query))
        with self._lock:
            self._sync()
            if not terms or self._n_alive == 0:
                return []
            wanted: list[int] | None = None
            if document_ids is not None:
                wanted = [self._doc_index[d] for d in set(document_ids) if d in self._doc_slots]
                if not wanted:
                    return []
            self._refresh()
            scores = self._score(terms)
            cand = np.flatnonzero(scores)
            cand = cand[self._alive[cand]]
            if wanted is not None:
                allowed = np.zeros(len(self._doc_names), bool)
                allowed[wanted] = True
                cand = cand[allowed[self._slot_doc[cand]]]
            if cand.size == 0:
                return []
            best = scores[cand]
            if cand.size > k:
                top = np.argpartition(-best, k - 1)[:k]
                cand, best = cand[top], best[top]
            order = np.lexsort((cand, -best))  # score descending, then insertion order
            return [(self._slot_ids[cand[i]], float(best[i])) for i in order]

    def document_frequency(
        self, terms: Sequence[str], document_ids: Sequence[str] | None = None
    ) -> dict[str, int]:
        """How many indexed chunks contain each term (terms as `tokenize` emits them: stems, or
        whole identifiers); 0 for a term no chunk holds. Without `document_ids` it is read from
        the live counts the index keeps (a dictionary lookup per term); with them, only chunks
        of those documents count (a pass over each term's postings)."""
        with self._lock:
            self._sync()
            out: dict[str, int] = {}
            if document_ids is None:
                for term in terms:
                    tid = self._vocab.get(term)
                    known = tid is not None and tid < len(self._df)
                    out[term] = int(self._df[tid]) if known else 0
                return out
            allowed = np.zeros(len(self._doc_names), bool)
            allowed[[self._doc_index[d] for d in set(document_ids) if d in self._doc_slots]] = True
            self._refresh()
            for term in terms:
                slots = self._slots_of(self._vocab.get(term))
                live = slots[self._alive[slots]]
                out[term] = int(allowed[self._slot_doc[live]].sum()) if live.size else 0
            return out

    def document_ids(self) -> set[str]:
        """Ids of the documents that have at least one indexed chunk."""
        with self._lock:
            self._sync()
            return set(self._doc_slots)

    def chunk_ids_of(self, document_id: str) -> list[str]:
        """Ids of the indexed chunks of `document_id`, in the order they were added."""
        with self._lock:
            self._sync()
            return [self._slot_ids[s] for s in sorted(self._doc_slots.get(document_id, ()))]

    def count(self) -> int:
        """Number of indexed chunks."""
        with self._lock:
            self._sync()
            return self._n_alive

    def chunk_counts(self) -> dict[str, int]:
        """Indexed chunks per document id."""
        with self._lock:
            self._sync()
            return {doc: len(slots) for doc, slots in self._doc_slots.items()}

    def synced_token(self) -> str | None:
        """The registry change token this index was last brought up to date at (None: never)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM meta WHERE key = ?", (_SYNC_KEY,)
            ).fetchone()
            return str(row[0]) if row else None

    def set_synced_token(self, token: str) -> None:
        """Record that the index now reflects the registry at change token `token`."""
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (_SYNC_KEY, token)
            )

    def close(self) -> None:
        """Close the SQLite connection (the instance is unusable afterwards)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> BM25Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ scoring

    def _score(self, terms: set[str]) -> np.ndarray:
        """BM25 score of every slot (dead slots included; the caller masks them)."""
        k1, b = self.k1, self.b
        n_docs = self._n_alive
        avgdl = self._total_len / n_docs if self._total_len > 0 else 1.0
        dl = self._dl
        scores = np.zeros(self._n_slots, np.float32)
        for term in terms:
            tid = self._vocab.get(term)
            if tid is None:
                continue
            df = int(self._df[tid])
            if df <= 0:
                continue
            idf = math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
            for rows, tf in self._postings(tid):
                norm = k1 * (1.0 - b + b * dl[rows] / avgdl)
                scores[rows] += (idf * (k1 + 1.0)) * tf / (tf + norm)
        return scores

    def _postings(self, tid: int | None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Term id `tid`'s postings as (slots, term frequencies), one pair per non-empty part
        (base, delta); dead slots included (the caller masks them)."""
        out: list[tuple[np.ndarray, np.ndarray]] = []
        for part in (self._base, self._delta):
            if tid is None or part is None or tid >= part.n_terms:
                continue
            lo, hi = part.indptr[tid], part.indptr[tid + 1]
            if lo == hi:
                continue
            rows = part.indices[lo:hi]
            out.append((rows + part.first if part.first else rows, part.data[lo:hi]))
        return out

    def _slots_of(self, tid: int | None) -> np.ndarray:
        """The slots (dead ones included) whose chunk holds term id `tid`."""
        found = [rows for rows, _ in self._postings(tid)]
        return np.concatenate(found).astype(np.int64) if found else np.zeros(0, np.int64)

    def _refresh(self) -> None:
        """Bring the postings up to date: rebuild the delta, or compact when it is too big."""
        spare = max(_MIN_SPARE, self._n_slots // 4)
        if self._n_dead > spare or self._n_slots - self._base_end > spare:
            self._compact()
        elif self._delta_dirty:
            self._delta = self._build(self._base_end, self._n_slots)
            self._delta_dirty = False

    def _build(self, first: int, last: int) -> _Postings | None:
        """CSC postings of slots first .. last-1 (a CSR built from the vectors, transposed)."""
        n = last - first
        if n <= 0:
            return None
        terms = self._slot_terms[first:last]
        indptr = np.zeros(n + 1, np.int64)
        np.cumsum(np.fromiter(map(len, terms), np.int64, count=n), out=indptr[1:])
        indices = np.concatenate(terms) if indptr[-1] else np.zeros(0, np.int32)
        data = (
            np.concatenate(self._slot_tfs[first:last]).astype(np.float32)
            if indptr[-1]
            else np.zeros(0, np.float32)
        )
        csc = sparse.csr_matrix((data, indices, indptr), shape=(n, self._n_terms)).tocsc()
        return _Postings(first, csc.indptr, csc.indices, csc.data)

    def _compact(self) -> None:
        """Drop tombstoned slots, renumber the rest and rebuild the base postings (no delta)."""
        keep = np.flatnonzero(self._alive[: self._n_slots])
        ids = [self._slot_ids[i] for i in keep]
        docs = [self._doc_names[d] for d in self._slot_doc[keep]]
        terms = [self._slot_terms[i] for i in keep]
        tfs = [self._slot_tfs[i] for i in keep]
        lengths = self._dl[keep]
        self._reset(len(keep))
        for i, (chunk_id, doc) in enumerate(zip(ids, docs, strict=True)):
            self._place(i, chunk_id, doc, float(lengths[i]), terms[i], tfs[i])
        self._n_slots = self._n_alive = len(keep)
        self._total_len = float(lengths.sum())
        self._base = self._build(0, self._n_slots)
        self._base_end = self._n_slots

    # ------------------------------------------------------------------ slots

    def _reset(self, capacity: int) -> None:
        """Empty in-memory state with room for `capacity` slots (vocabulary kept)."""
        cap = max(capacity, 1024)
        self._slot_ids = []
        self._slot_terms = []
        self._slot_tfs = []
        self._slot_doc = np.zeros(cap, np.int32)
        self._dl = np.zeros(cap, np.float32)
        self._alive = np.zeros(cap, np.bool_)
        self._id_to_slot = {}
        self._doc_index = {}
        self._doc_names = []
        self._doc_slots = {}  # ordered sets of live slots
        self._n_slots = 0
        self._n_alive = 0
        self._n_dead = 0
        self._total_len = 0.0
        self._base: _Postings | None = None
        self._delta: _Postings | None = None
        self._base_end = 0
        self._delta_dirty = False

    def _place(
        self, slot: int, chunk_id: str, doc: str, length: float, terms: np.ndarray, tfs: np.ndarray
    ) -> None:
        """Write one live chunk into `slot` (bookkeeping only; df and counters are the caller's)."""
        doc_idx = self._doc_index.get(doc)
        if doc_idx is None:
            doc_idx = self._doc_index[doc] = len(self._doc_names)
            self._doc_names.append(doc)
        self._slot_ids.append(chunk_id)
        self._slot_terms.append(terms)
        self._slot_tfs.append(tfs)
        self._slot_doc[slot] = doc_idx
        self._dl[slot] = length
        self._alive[slot] = True
        self._id_to_slot[chunk_id] = slot
        self._doc_slots.setdefault(doc, {})[slot] = None

    def _append(
        self, chunk_id: str, doc: str, length: int, terms: np.ndarray, tfs: np.ndarray
    ) -> None:
        """Add a chunk in a new slot at the end, tombstoning the chunk it replaces."""
        old = self._id_to_slot.get(chunk_id)
        if old is not None:
            self._kill(old)
        slot = self._n_slots
        if slot >= len(self._dl):
            grown = max(2 * len(self._dl), slot + 1)
            self._slot_doc = np.resize(self._slot_doc, grown)
            self._dl = np.resize(self._dl, grown)
            alive = np.zeros(grown, np.bool_)
            alive[:slot] = self._alive[:slot]
            self._alive = alive
        self._place(slot, chunk_id, doc, float(length), terms, tfs)
        self._n_slots += 1
        self._n_alive += 1
        self._total_len += length
        self._df[terms] += 1  # term ids are unique within a chunk
        self._delta_dirty = True

    def _kill(self, slot: int) -> None:
        """Tombstone a live slot: it stays in the postings but is masked out and uncounted."""
        self._alive[slot] = False
        self._n_alive -= 1
        self._n_dead += 1
        self._total_len -= float(self._dl[slot])
        self._df[self._slot_terms[slot]] -= 1
        chunk_id = self._slot_ids[slot]
        del self._id_to_slot[chunk_id]
        doc = self._doc_names[self._slot_doc[slot]]
        slots = self._doc_slots[doc]
        del slots[slot]
        if not slots:
            del self._doc_slots[doc]
        self._slot_terms[slot] = _EMPTY_TERMS
        self._slot_tfs[slot] = _EMPTY_TFS

    def _set_n_terms(self, n_terms: int) -> None:
        self._n_terms = n_terms
        if n_terms > len(self._df):
            df = np.zeros(max(n_terms, 2 * len(self._df)), np.int64)
            df[: len(self._df)] = self._df
            self._df = df

    # ------------------------------------------------------------------ SQLite

    def _init_schema(self) -> None:
        """Create the tables; drop the index if it was built by another schema or tokenizer."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            current = {"schema": SCHEMA_VERSION, "tokenizer": TOKENIZER_VERSION}
            if meta and {k: meta.get(k) for k in current} != current:
                log.warning(
                    "BM25 index %s was built with %s, this version needs %s: it starts empty"
                    " and the documents must be indexed again",
                    self.path,
                    meta,
                    current,
                )
                conn.execute("DROP TABLE IF EXISTS chunks")
                conn.execute("DROP TABLE IF EXISTS terms")
                conn.execute("DELETE FROM meta WHERE key = ?", (_SYNC_KEY,))
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", current.items()
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _load(self) -> None:
        """Read the whole index from SQLite into memory (no tokenization) and build postings."""
        conn = self._conn
        own_txn = not conn.in_transaction
        if own_txn:
            conn.execute("BEGIN")
        try:
            self._data_version = self._current_data_version()
            vocab_rows: list[Any] = conn.execute("SELECT id, term FROM terms").fetchall()
            rows: list[Any] = conn.execute(
                "SELECT chunk_id, document_id, length, term_ids, tfs FROM chunks ORDER BY seq"
            ).fetchall()
        finally:
            if own_txn:
                conn.execute("COMMIT")
        self._vocab = {term: tid for tid, term in vocab_rows}
        self._n_terms = 0
        self._df = np.zeros(1024, np.int64)
        self._set_n_terms(max(self._vocab.values(), default=-1) + 1)
        self._reset(len(rows))
        total = 0.0
        for slot, (chunk_id, doc, length, term_blob, tf_blob) in enumerate(rows):
            terms = np.frombuffer(term_blob, _TERM_DTYPE)
            tfs = np.frombuffer(tf_blob, _TF_DTYPE)
            self._place(slot, chunk_id, doc, float(length), terms, tfs)
            total += length
        self._n_slots = self._n_alive = len(rows)
        self._total_len = total
        if rows:
            all_terms = np.concatenate(self._slot_terms)
            counts = np.bincount(all_terms, minlength=self._n_terms)
            self._df[: len(counts)] = counts
        self._base = self._build(0, self._n_slots)
        self._base_end = self._n_slots

    def _current_data_version(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _sync(self) -> None:
        """Reload when another connection (another process) has committed since we last looked."""
        if self._current_data_version() != self._data_version:
            log.info("BM25 index %s changed on disk: reloading", self.path)
            self._load()

    def _begin_write(self) -> None:
        """Take SQLite's write lock, then make sure memory matches the database."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._sync()
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
