"""Dense, keyword and hybrid retrieval: query -> ranked list of Hit, fused by score or RRF."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from rag_core.protocols import Embedder, KeywordIndex, VectorStore
from rag_core.stores.tokenize import terms_with_sources
from rag_core.text import FUNCTION_WORDS, REQUEST_VERBS, REQUEST_WORDS
from rag_core.types import Chunk, Hit, RetrievalMode, Turn

if TYPE_CHECKING:
    from rag_core.config import Settings


@dataclass(frozen=True)
class RetrievalResult:
    """Ranked hits, and the best dense similarity of the query to any ready chunk (gate evidence)."""

    hits: list[Hit]
    top_dense: float | None


@dataclass(frozen=True)
class FusionParams:
    method: str = "convex"  # 'convex' (score-based) or 'rrf' (reciprocal rank fusion)
    alpha: float = 0.95  # convex: weight of the dense cosine; 1 - alpha for normalised BM25
    rrf_k: int = 60
    dense_weight: float = 1.0
    keyword_weight: float = 0.5
    # added to the dense similarity of a chunk that opens its section (see Retriever.search)
    section_bonus: float = 0.0
    # times log(chunks of the chunk's document, at most LENGTH_PENALTY_CAP), subtracted from its
    # dense similarity in ranking (see Retriever.search)
    length_penalty: float = 0.0
    # share of a chunk's dense similarity taken from its whole document's (Retriever.search)
    document_weight: float = 0.0
    # convex: how the two retrievers' scores are put on one scale before mixing ('max': BM25
    # divided by the query's best BM25, the cosine as it is; 'z': each retriever's candidate
    # scores as z-scores over that retriever's candidates)
    normalise: str = "max"

    @classmethod
    def from_settings(cls, settings: Settings) -> FusionParams:
        """The fusion the engine runs with these settings (benchmarks use it too)."""
        return cls(
            settings.fusion,
            settings.fusion_alpha,
            settings.rrf_k,
            settings.dense_weight,
            settings.keyword_weight,
            settings.section_bonus,
            settings.length_penalty,
            settings.document_weight,
            settings.fusion_normalise,
        )


@dataclass(frozen=True)
class TermStat:
    """How specific a query term is in the indexed chunks (refusal-gate evidence).

    `df` counts the chunks that contain the term (0: the documents never use it); `idf` is the
    keyword index's BM25 idf, log(1 + (N - df + 0.5) / (df + 0.5)), so an unknown term weighs most.
    """

    term: str
    df: int
    idf: float


_OPENINGS_CACHE = 200_000
# Document vectors kept in memory (384 float32 each with the default embedder: ~30 MB when full)
_DOCUMENT_VECTORS_CACHE = 20_000
# Documents longer than this many chunks all get the same length penalty: it corrects the best
# of a few chunks, and never buries a long document under short ones.
LENGTH_PENALTY_CAP = 8


def bm25_idf(df: int, n: int) -> float:
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


class Retriever:
    """Runs the dense and keyword retrievers and fuses their rankings.

    Only chunks of documents in `ready_ids()` are returned: a document that is being ingested,
    replaced or deleted is never retrieved, whatever state the indexes are in. `ready_ids` may
    return a mapping of those ids to their chunk counts, which the length penalty needs (with a
    plain set there is none).
    """

    def __init__(
        self,
        embedder: Embedder,
        store: VectorStore,
        keyword: KeywordIndex,
        ready_ids: Callable[[], set[str] | Mapping[str, int]],
        fusion: FusionParams | None = None,
    ) -> None:
        self.embedder = embedder
        self.store = store
        self.keyword = keyword
        self.ready_ids = ready_ids
        self.fusion = fusion or FusionParams()
        # chunk id -> opens a section? Ids name a chunk of one document version, so the answer
        # never changes; bounded, cleared when full.
        self._openings: dict[str, bool] = {}
        # document id -> its document vector; an id names one version, so it never changes
        self._document_vectors: dict[str, npt.NDArray[np.float32]] = {}

    def search(
        self,
        query: str,
        *,
        mode: RetrievalMode = "hybrid",
        k: int = 5,
        candidates: int = 40,
        document_ids: Sequence[str] | None = None,
    ) -> RetrievalResult:
        if mode not in ("hybrid", "dense", "bm25"):
            raise ValueError(f"unknown retrieval mode {mode!r}: use hybrid, dense or bm25")
        listed = self.ready_ids()
        sizes: Mapping[str, int] = listed if isinstance(listed, Mapping) else {}
        ready: AbstractSet[str] = listed.keys() if isinstance(listed, Mapping) else listed
        scope: list[str] | None = None
        if document_ids is not None:
            allowed = ready & set(document_ids)
            # the stores search inside the scope (unless it holds every ready document):
            # filtering a global top n afterwards would leave a small collection in a large
            # knowledge base with few candidates or none
            if len(allowed) < len(ready):
                scope = sorted(allowed)
            ready = allowed
        if not ready:
            return RetrievalResult([], None)
        n = max(k, candidates)
        keyword: list[tuple[str, float]] = []
        # the dense ranking is always computed: in bm25 mode it still feeds the refusal gate
        vector = self.embedder.embed_query(query)
        found = self.store.query(vector, n + 10, document_ids=scope)
        dense = [(c, s) for c, s in found if c.document_id in ready][:n]
        top_dense = dense[0][1] if dense else None
        if mode in ("hybrid", "bm25"):
            # n candidates, as dense has (the fusion's z-scores are over each retriever's n).
            # Not filtered by `ready` here (that costs a pass over every document per query):
            # fuse skips a chunk of a document that is not ready when it comes to fetch it
            keyword = self.keyword.search(query, n, document_ids=scope)
        if mode == "bm25":
            dense = []
        bonus = self.dense_priors([c for c, _ in dense], sizes) if dense else {}
        if dense and self.fusion.document_weight:
            for cid, amount in self.document_evidence(vector, dense).items():
                bonus[cid] = bonus.get(cid, 0.0) + amount
        hits = fuse(
            dense, keyword, self.store.get, ready, k=k, mode=mode, params=self.fusion, bonus=bonus
        )
        return RetrievalResult(hits, top_dense)

    def dense_priors(self, chunks: Sequence[Chunk], sizes: Mapping[str, int]) -> dict[str, float]:
        """What ranking adds to each dense candidate's similarity (chunk id -> amount, non-zero).

        `section_bonus` for a chunk that opens its section; minus `length_penalty` times
        log(n), n its document's chunk count (from `sizes`) capped at LENGTH_PENALTY_CAP. A
        document's best chunk is the best of n tries, so a long document's best similarity runs
        high by chance: on pyfaq dev the penalty 0.02 lifted hybrid nDCG@10 0.783 -> 0.798.
        """
        out: dict[str, float] = {}
        if self.fusion.section_bonus:
            out = dict.fromkeys(self.section_openings(chunks), self.fusion.section_bonus)
        if self.fusion.length_penalty and sizes:
            for c in chunks:
                n = min(sizes.get(c.document_id, 1), LENGTH_PENALTY_CAP)
                if n > 1:
                    out[c.id] = out.get(c.id, 0.0) - self.fusion.length_penalty * math.log(n)
        return out

    def document_evidence(
        self, vector: Sequence[float], dense: Sequence[tuple[Chunk, float]]
    ) -> dict[str, float]:
        """What the whole document adds to each dense candidate's similarity (chunk id -> amount).

        A chunk's similarity becomes (1 - w) * its own + w * its document's, w the
        `document_weight`; a document's similarity is the query's cosine with the normalised mean
        of its chunk embeddings. A chunk that is a good match inside a document about something
        else loses; one whose document is about the question as a whole gains. pyfaq dev hybrid
        nDCG@10 (`ragchat eval retrieval`): 0.798 -> 0.806 at w = 0.2 (0.801 -> 0.809 on another
        build of the index); with exact search, 5 questions better and 1 worse.
        """
        weight = self.fusion.document_weight
        sims = self.document_similarities(vector, [c.document_id for c, _ in dense])
        return {
            c.id: weight * (sims[c.document_id] - score)
            for c, score in dense
            if c.document_id in sims
        }

    def document_similarities(
        self, vector: Sequence[float], document_ids: Sequence[str]
    ) -> dict[str, float]:
        """Cosine of the query with each document's vector (mean of its chunk embeddings).

        Vectors are read from the store once per document id and kept (bounded, cleared when
        full); a document without stored chunks is left out.
        """
        wanted = list(dict.fromkeys(document_ids))
        cache = self._document_vectors
        missing = [d for d in wanted if d not in cache]
        if missing:
            found = self.store.document_vectors(missing)
            if len(cache) + len(found) > _DOCUMENT_VECTORS_CACHE:
                cache.clear()
            for doc, values in found.items():
                cache[doc] = np.asarray(values, dtype=np.float32)
        query = np.asarray(vector, dtype=np.float32)
        out: dict[str, float] = {}
        for doc in wanted:
            vec = cache.get(doc)  # another thread may clear the cache meanwhile
            if vec is not None:
                out[doc] = float(vec @ query)
        return out

    def section_openings(self, chunks: Sequence[Chunk]) -> set[str]:
        """Ids of the chunks that open a section: a document's first chunk, or one whose heading
        path differs from the previous chunk's (fetched in one batch).

        A section's opening states what the section is about (its heading, its first sentences),
        so it gets `section_bonus` in ranking: on pyfaq dev a bonus of 0.1 lifted nDCG@10 where
        a long section's later chunks otherwise outrank the short section that answers.
        """
        previous: dict[str, str] = {}
        opening: set[str] = set()
        cache = self._openings
        for c in chunks:
            known = cache.get(c.id)
            if known is not None:
                if known:
                    opening.add(c.id)
                continue
            if c.index == 0:
                opening.add(c.id)
                continue
            # chunk ids end in ":<index>" (rag_core.ingest.chunking): the previous one is known
            prefix, sep, number = c.id.rpartition(":")
            if sep and number.isdigit():
                previous[f"{prefix}:{c.index - 1:0{len(number)}d}"] = c.id
        if previous:
            found = {p.id: p for p in self.store.get(list(previous))}
            by_id = {c.id: c for c in chunks}
            if len(cache) + len(previous) > _OPENINGS_CACHE:
                cache.clear()
            for pid, cid in previous.items():
                prev = found.get(pid)
                opens = prev is None or prev.heading_path != by_id[cid].heading_path
                cache[cid] = opens
                if opens:
                    opening.add(cid)
        return opening

    def term_stats(
        self,
        query: str,
        *,
        max_terms: int = 16,
        document_ids: Sequence[str] | None = None,
    ) -> list[TermStat]:
        """Document frequency and idf of the query's keyword terms (at most `max_terms`), read
        from the counts the keyword index keeps. A whole code identifier (``json.loads_fast``)
        is a term of its own, so it counts only the chunks that hold it whole. With
        `document_ids` (a scoped question) only those documents' chunks count: a term that
        only documents outside the scope hold is unknown to the question."""
        scope = None
        if document_ids is not None:
            counts = self.keyword.chunk_counts()
            scope = [d for d in dict.fromkeys(document_ids) if d in counts]
            n = sum(counts[d] for d in scope)
            if len(scope) == len(counts):
                scope = None
        else:
            n = self.keyword.count()
        if n == 0:
            return []
        terms = list(dict.fromkeys(term for term, _ in terms_with_sources(query)))[:max_terms]
        df = self.keyword.document_frequency(terms, scope)
        return [TermStat(t, df.get(t, 0), bm25_idf(df.get(t, 0), n)) for t in terms]


def z_scores(scores: Mapping[str, float]) -> dict[str, float]:
    """Each score as (score - mean) / standard deviation over all of them (0 when all agree)."""
    if not scores:
        return {}
    mean = sum(scores.values()) / len(scores)
    std = math.sqrt(sum((x - mean) ** 2 for x in scores.values()) / len(scores)) or 1.0
    return {cid: (x - mean) / std for cid, x in scores.items()}


def fuse(
    dense: Sequence[tuple[Chunk, float]],
    keyword: Sequence[tuple[str, float]],
    fetch: Callable[[Sequence[str]], list[Chunk]],
    ready: AbstractSet[str],
    *,
    k: int,
    mode: RetrievalMode,
    params: FusionParams,
    bonus: Mapping[str, float] | None = None,
) -> list[Hit]:
    """Fuse the dense and keyword rankings into one.

    convex (default): alpha * cosine + (1 - alpha) * BM25 / best BM25 of the query. A chunk only
    one retriever found gets the other's floor (0 for BM25, the lowest dense candidate's cosine).
    With params.normalise 'z', both are z-scores over their own candidates instead (a chunk BM25
    did not find gets BM25's mean, 0).
    On pyfaq dev this lifts nDCG@10 over dense alone, where rank fusion with the weaker BM25
    ranking lowers it (see docs in README). rrf: sum over retrievers of w / (rrf_k + rank).
    `bonus` (chunk id -> amount) is added to a chunk's dense similarity in ranking (convex and
    dense modes); the hits keep the raw similarity as dense_score. Keyword candidates are ids:
    only those that reach the top k are fetched, through `fetch`.
    """
    bonus = bonus or {}
    chunks: dict[str, Chunk] = {c.id: c for c, _ in dense}
    dense_info = {c.id: (rank, score) for rank, (c, score) in enumerate(dense, start=1)}
    boosted = {cid: s + bonus.get(cid, 0.0) for cid, (_, s) in dense_info.items()}
    kw_info = {cid: (rank, score) for rank, (cid, score) in enumerate(keyword, start=1)}

    scores: dict[str, float] = {}
    if mode == "dense":
        scores = dict(boosted)
    elif mode == "bm25":
        scores = {cid: s for cid, (_, s) in kw_info.items()}
    elif params.method == "convex":
        floor = min(boosted.values(), default=0.0)
        on_d = {cid: boosted.get(cid, floor) for cid in set(dense_info) | set(kw_info)}
        on_k = {cid: score for cid, (_, score) in kw_info.items()}
        if params.normalise == "z":
            on_d, on_k = z_scores(on_d), z_scores(on_k)
        else:
            top_kw = max(on_k.values(), default=0.0) or 1.0
            on_k = {cid: score / top_kw for cid, score in on_k.items()}
        a = params.alpha
        scores = {cid: a * on_d[cid] + (1 - a) * on_k.get(cid, 0.0) for cid in on_d}
    else:
        for cid, (rank, _) in dense_info.items():
            scores[cid] = scores.get(cid, 0.0) + params.dense_weight / (params.rrf_k + rank)
        for cid, (rank, _) in kw_info.items():
            scores[cid] = scores.get(cid, 0.0) + params.keyword_weight / (params.rrf_k + rank)
    order = sorted(scores, key=lambda cid: (-scores[cid], cid))
    hits: list[Hit] = []
    start = 0
    # Only the chunks that make the cut are fetched (keyword candidates come as ids); one that
    # the store lacks, or whose document is not ready, is skipped and the next one taken.
    while len(hits) < k and start < len(order):
        batch = order[start : start + k - len(hits)]
        start += len(batch)
        missing = [cid for cid in batch if cid not in chunks]
        if missing:
            chunks.update({c.id: c for c in fetch(missing)})
        for cid in batch:
            found = chunks.get(cid)
            if found is None or found.document_id not in ready:
                continue
            d = dense_info.get(cid)
            kw = kw_info.get(cid)
            hits.append(
                Hit(
                    chunk=found,
                    rank=len(hits) + 1,
                    score=scores[cid],
                    dense_score=d[1] if d else None,
                    dense_rank=d[0] if d else None,
                    keyword_score=kw[1] if kw else None,
                    keyword_rank=kw[0] if kw else None,
                )
            )
    return hits


# A question that continues the conversation: it opens with a connective ("and", "what about")
# or refers back with a pronoun or determiner ("its page size", "who designed it").
_CONTINUES = re.compile(r"^\s*(and|also|what about|how about|but|then|so|or)\b", re.IGNORECASE)
_REFERS_BACK = re.compile(
    r"\b(it|its|it's|they|them|their|theirs|this|that|these|those|he|him|his|she|her|hers|"
    r"the same|the latter|the former|the other one|that one|this one)\b",
    re.IGNORECASE,
)
# A question frame: a question word or an auxiliary first ("What is ...", "Does ...").
_FRAME = re.compile(
    r"^\s*(what|which|who|whom|whose|when|where|why|how|is|are|was|were|do|does|did|can|could|"
    r"will|would|should|shall|may|might|must|has|have|had)\b",
    re.IGNORECASE,
)
_ELLIPSIS_WORDS = 2  # "The price?", "In 2020?": a fragment with this few words is elliptical
_OWN_TOPIC_WORDS = 3  # a question with a pronoun but this many own words names its own topic
_WORD = re.compile(r"[\w][\w.\-']*", re.UNICODE)
_STOP = FUNCTION_WORDS | REQUEST_VERBS


def content_words(text: str) -> list[str]:
    """Words of a text that carry meaning (no stop words), in order, without duplicates."""
    out: list[str] = []
    seen: set[str] = set()
    for word in _WORD.findall(text):
        word = word.strip(".-'")
        if word and word.lower() not in _STOP and word.lower() not in seen:
            seen.add(word.lower())
            out.append(word)
    return out


def depends_on_history(question: str) -> bool:
    """Whether a question only makes sense after the earlier turns: it continues them ("and
    ...?", "what about ...?"), refers back to them with a pronoun while naming little of its
    own ("who designed it?"), or is elliptical ("The price?"). "What is the capital of
    Australia?" stands alone, whatever was asked before."""
    q = question.strip()
    words = [w for w in content_words(q) if w.lower() not in REQUEST_WORDS]
    if _CONTINUES.search(q) or (not _FRAME.search(q) and len(words) <= _ELLIPSIS_WORDS):
        return True
    return _REFERS_BACK.search(q) is not None and len(words) <= _OWN_TOPIC_WORDS


def standalone_query(question: str, history: Sequence[Turn], max_turns: int = 2) -> str:
    """Turn a follow-up question into a self-contained search query using earlier questions.

    Only a question that depends on the earlier turns (`depends_on_history`) is rewritten: it
    gets the content words of the previous questions that it lacks, so both retrievers see the
    topic. A question that stands alone is searched as asked.
    """
    q = question.strip()
    if not history or not depends_on_history(q):
        return q
    have = {w.lower() for w in content_words(q)}
    context: list[str] = []
    for turn in list(history)[-max_turns:][::-1]:
        for w in content_words(turn.question):
            if w.lower() not in have:
                have.add(w.lower())
                context.append(w)
        if context:
            break
    if not context:
        return q
    return f"{' '.join(context)}: {q}"
