"""Frozen dataclasses that cross module boundaries: documents, chunks, hits, citations, events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from rag_core.embedders.identity import EmbedderIdentity

DocType = Literal["pdf", "docx", "html", "markdown", "text", "image"]
RetrievalMode = Literal["hybrid", "dense", "bm25"]
AnswerMode = Literal["generate", "extractive"]
# How the answer is made from the passages (docs/ANSWERS.md): one prompt with every passage, quotes
# only, quotes phrased by the generator, or the RAG paper's per-passage decodings.
AnswerStrategy = Literal["concat", "extractive", "extract-then-phrase", "rag-token", "rag-sequence"]
GroundingPolicy = Literal["mark", "remove", "off"]
Role = Literal["system", "user", "assistant"]
# What became of an answer sentence: shown as supported fact, shown marked as not in the
# documents, removed, shown unchecked (grounding off), replaced by quotes, or not a claim.
Verdict = Literal["supported", "marked", "removed", "unchecked", "replaced", "no-claim"]
# what a thumbs down says was wrong: a fact, a citation (wrong or missing), a refusal although the
# documents answer, an answer although they don't
FeedbackReason = Literal["wrong_fact", "wrong_citation", "should_answer", "should_refuse"]
SHOWN_VERDICTS: frozenset[str] = frozenset({"supported", "marked", "unchecked"})


@dataclass(frozen=True)
class Block:
    """A span of a parsed document's text that shares one page and one heading path."""

    char_start: int
    char_end: int
    page: int | None = None
    heading_path: tuple[str, ...] = ()
    ocr: bool = False  # the text was read from an image by OCR
    table: bool = False  # rows of a table, one per line, each cell with its column header


@dataclass(frozen=True)
class ParsedDocument:
    """What a loader extracts from a file: the plain text and where each part of it came from."""

    text: str
    blocks: tuple[Block, ...]
    doc_type: DocType
    page_count: int | None = None
    title: str | None = None
    ocr_pages: tuple[int, ...] = ()  # pages whose text OCR read (1 for an image file)
    tables: int = 0  # tables whose rows became text
    # what the loader saw but could not (fully) use: 'page 7 has almost no text (12 characters)'
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Chunk:
    """A passage of a document as indexed: its text and exactly where it sits in the document."""

    id: str
    document_id: str
    document_name: str
    version: str  # content hash of the document version this chunk belongs to
    index: int
    text: str
    char_start: int
    char_end: int
    page: int | None = None
    page_end: int | None = None
    heading_path: tuple[str, ...] = ()
    ocr: bool = False  # its text was read from an image by OCR (a scanned page or a picture)

    @property
    def embedding_text(self) -> str:
        """What the embedder sees: the heading path (what the passage is about), then the text."""
        if self.heading_path:
            return " > ".join(self.heading_path) + "\n" + self.text
        return self.text

    @property
    def location(self) -> str:
        """A short human description: 'p. 3 · Setup > Install'."""
        parts = []
        if self.page is not None:
            if self.page_end is not None and self.page_end != self.page:
                parts.append(f"pp. {self.page}-{self.page_end}")
            else:
                parts.append(f"p. {self.page}")
        if self.heading_path:
            parts.append(" > ".join(self.heading_path))
        return " · ".join(parts)

    @property
    def shown_location(self) -> str:
        """`location` as citations show it: 'p. 3 · read by OCR' when the text came from OCR,
        so a reader knows to allow for misread characters."""
        return " · ".join(
            part for part in (self.location, "read by OCR" if self.ocr else "") if part
        )


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its fused rank and score, and what each retriever said about it."""

    chunk: Chunk
    rank: int  # 1-based rank after fusion (or in the single mode used)
    score: float
    dense_score: float | None = None
    dense_rank: int | None = None
    keyword_score: float | None = None
    keyword_rank: int | None = None

    @property
    def found_by(self) -> Literal["both", "dense", "keyword"]:
        if self.dense_rank is not None and self.keyword_rank is not None:
            return "both"
        return "dense" if self.dense_rank is not None else "keyword"


@dataclass(frozen=True)
class Citation:
    """Marker [n] in an answer, resolved to the passage it cites and the sentence that supports it."""

    n: int
    chunk: Chunk
    support: str | None = None  # the passage sentence that supports the claim
    support_start: int | None = None  # offsets of `support` inside chunk.text
    support_end: int | None = None


@dataclass(frozen=True)
class SentenceCheck:
    """The grounding verdict on one answer sentence, and what became of it in the answer."""

    index: int
    text: str  # the sentence as shown, with its (repaired) citation markers
    supported: bool
    score: float
    citation: int | None = None  # passage number [n] that supports it
    support: str | None = None  # the supporting passage sentence
    reason: str = ""  # why unsupported: 'no matching passage', 'number 6 not in passage', ...
    verdict: Verdict = "supported"

    def __post_init__(self) -> None:
        if self.verdict == "supported" and not self.supported:
            object.__setattr__(self, "verdict", "marked")  # only a supported sentence is

    @property
    def claim(self) -> bool:
        """False for a sentence that states nothing checkable ('Sure!', 'The answer is:')."""
        return self.verdict != "no-claim"

    @property
    def shown(self) -> bool:
        """Whether the answer shows this sentence."""
        return self.verdict in SHOWN_VERDICTS


@dataclass(frozen=True)
class AnswerOptions:
    """How one question is answered; `Settings.answer_options` resolves and validates them."""

    mode: RetrievalMode = "hybrid"
    top_k: int = 5
    max_new_tokens: int = 160
    strategy: AnswerStrategy = "concat"
    grounding: GroundingPolicy = "mark"
    # what the question searches, as asked (logged with the turn) and as resolved for the asking
    # user by `Engine.scoped` (None: every document; an empty set: none, so the gate refuses)
    scope: Scope = field(default_factory=lambda: Scope())
    document_ids: frozenset[str] | None = None

    @property
    def answer_mode(self) -> AnswerMode:
        """'extractive' for quotes only, else 'generate' (the older, coarser setting)."""
        return "extractive" if self.strategy == "extractive" else "generate"


@dataclass(frozen=True)
class GateFeatures:
    """Retrieval evidence that the documents can answer a question (the refusal gate's inputs).

    top_dense: best cosine similarity of the question to any chunk. coverage: the largest share
    of the question's keyword terms, weighted by idf, that one retrieved passage holds (heading
    path included). known: the idf-weighted share of its terms that occur anywhere in the
    documents. An unanswerable question usually names something (a product, a module, a place)
    that the documents never mention, and such a rare term weighs most; or it combines known
    words that no single passage holds together ("the requests library" + "timeout").
    """

    top_dense: float
    coverage: float
    known: float
    # read only by a gate with weights for them (None: not computed): the best passage
    # sentence's score as an answer (rag_core/extractive.py), and 1.0 when the question asks
    # for a kind of fact (an amount, a duration, ...; rag_core/answer_types.py), else 0.0
    sentence: float | None = None
    asks_kind: float | None = None

    def values(self) -> tuple[float, ...]:
        """The features a gate model reads: the three retrieval ones, then the sentence score
        and the asked kind when they were computed."""
        extra = tuple(v for v in (self.sentence, self.asks_kind) if v is not None)
        return (self.top_dense, self.coverage, self.known, *extra)


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class Turn:
    """One question and the answer that was shown for it (history for follow-up questions)."""

    question: str
    answer: str


@dataclass(frozen=True)
class Retrieved:
    """Event: the passages retrieved for a question, before any text is generated."""

    question: str
    query: str  # the standalone query actually searched (after rewriting a follow-up)
    hits: tuple[Hit, ...]
    refused: bool  # the refusal gate decided the documents cannot answer
    gate_score: float | None = None
    features: GateFeatures | None = None  # what the gate score was computed from
    retrieval_ms: float = 0.0


@dataclass(frozen=True)
class Token:
    """Event: new text from the generator (the UI accumulates it)."""

    text: str


@dataclass(frozen=True)
class SentenceChecked:
    """Event: one sentence of the streamed answer was checked against the passages."""

    check: SentenceCheck


@dataclass(frozen=True)
class Released:
    """Event: checked answer text, safe to hand a client as the answer. Released pieces, joined,
    are exactly Done.answer: a sentence is released once its check passes (and only after the
    first supported sentence, since a fallback replaces what came before)."""

    text: str


@dataclass(frozen=True)
class Timings:
    retrieval_ms: float = 0.0
    first_token_ms: float | None = None
    generation_ms: float = 0.0
    total_ms: float = 0.0
    tokens: int = 0  # generated (completion) tokens
    tokens_per_s: float | None = None
    prompt_tokens: int = 0  # tokens of the prompt the generator read (0: no generator ran)


@dataclass(frozen=True)
class Done:
    """Event: the final answer, its citations and sentence verdicts, timings and the config used."""

    question: str
    query: str
    answer: str  # as shown: `lead`, then the shown sentences (grounding.render_answer)
    raw_answer: str  # the generator's text as it streamed
    citations: tuple[Citation, ...]
    hits: tuple[Hit, ...]
    sentences: tuple[SentenceCheck, ...]  # every sentence checked, each with its verdict
    refused: bool
    mode: str  # 'generated', 'extractive', 'refused'
    status: Literal["complete", "stopped", "error"]
    timings: Timings
    config: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    lead: str = ""  # text before the sentences: a refusal, or what a quoted answer is
    gate_score: float | None = None  # the refusal gate's score (None: nothing was retrieved)
    strategy: str = ""  # the answer strategy that ran (AnswerStrategy)
    # RAG-Token / RAG-Sequence: p(z|x) and p(z|x,answer) per passage, in passage order
    prior: tuple[float, ...] = ()
    posterior: tuple[float, ...] = ()

    @property
    def shown(self) -> tuple[SentenceCheck, ...]:
        """The sentences the answer shows, in order, with their verdicts and citations."""
        return tuple(s for s in self.sentences if s.shown)


@dataclass(frozen=True)
class Logged:
    """Event: the turn was written to the conversation log (ids for feedback and replay)."""

    conversation_id: str
    turn_id: int


Event = Retrieved | Token | SentenceChecked | Released | Done | Logged


@dataclass(frozen=True)
class IngestReport:
    """What ingesting one version of a document found and cost, kept with it (its report); the
    pages, the pages OCR read and the chunks are the record's own fields."""

    tables: int = 0  # tables whose rows became text
    warnings: tuple[str, ...] = ()  # what the loader could not (fully) read, a sentence each
    embedder: str = ""  # name of the embedder whose vectors serve its chunks
    embedder_fingerprint: str = ""  # ...and the hash of its weights (EmbedderIdentity)
    seconds: float = 0.0  # from reading the file to ready
    load_seconds: float = 0.0  # of which reading and parsing it (OCR included)

    @property
    def index_seconds(self) -> float:
        """The rest: chunking, embedding and writing the indexes."""
        return max(0.0, self.seconds - self.load_seconds)


@dataclass(frozen=True)
class DocumentRecord:
    """A document as the registry knows it."""

    id: str
    name: str
    content_hash: str
    version: int
    size: int
    doc_type: str
    page_count: int | None
    chunk_count: int
    added_at: datetime
    status: str = "ready"
    updated_at: datetime | None = None  # last progress of an unfinished ingest or deletion
    owner: str | None = None  # the user who added the first version (None: added by an operator)
    added_by: str | None = None  # the user who added this version
    ocr_pages: tuple[int, ...] = ()  # pages whose text OCR read (1 for an image file)
    report: IngestReport | None = None  # None: ingested before reports were kept


IndexState = Literal["active", "building", "retired"]


@dataclass(frozen=True)
class IndexRecord:
    """A vector index (one Chroma collection) as the registry knows it: the embedder that
    fills it, and while it is being built, how far it got."""

    id: str
    collection: str
    status: IndexState
    identity: EmbedderIdentity
    chunks_done: int
    chunks_total: int
    created_at: datetime
    updated_at: datetime  # last progress while building


@dataclass(frozen=True)
class IndexStatus:
    """The index that answers, and the one a `ragchat reindex` is building (None if none)."""

    active: IndexRecord | None
    building: IndexRecord | None
    stalled: bool = False  # the building one made no progress for a while: its run has died


def page_ranges(pages: Sequence[int]) -> str:
    """Page numbers as short ranges: (1, 2, 3, 7) -> '1-3, 7'."""
    runs: list[list[int]] = []
    for page in sorted(set(pages)):
        if runs and page == runs[-1][1] + 1:
            runs[-1][1] = page
        else:
            runs.append([page, page])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


Visibility = Literal["private", "shared", "everyone"]
VISIBILITIES: tuple[Visibility, ...] = ("private", "shared", "everyone")
DEFAULT_COLLECTION = "default"  # the id of the collection documents join when none is named


@dataclass(frozen=True)
class Scope:
    """What a question searches: the union of these collections (ids or names) and single
    documents (names or ids). Empty: every document the asking user may see."""

    collections: tuple[str, ...] = ()
    documents: tuple[str, ...] = ()

    @property
    def everything(self) -> bool:
        return not self.collections and not self.documents

    def as_json(self) -> dict[str, list[str]]:
        return {"collections": list(self.collections), "documents": list(self.documents)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Scope:
        data = data or {}
        return cls(tuple(data.get("collections") or ()), tuple(data.get("documents") or ()))


@dataclass(frozen=True)
class CollectionRecord:
    """A named group of documents with an owner and a visibility: private (its owner), shared
    (its owner and `members`) or everyone. Owner None: made by an operator (or the Default)."""

    id: str
    name: str
    description: str
    owner: str | None
    visibility: Visibility
    members: tuple[str, ...] = ()
    document_count: int = 0
    created_at: datetime | None = None


@dataclass(frozen=True)
class Actor:
    """Who asks to change the knowledge base. `name` None is the operator (the command line, the
    server itself, or a server without accounts): allowed everything. With accounts on, a user
    deletes and replaces only the documents they own, unless they are an admin."""

    name: str | None = None
    admin: bool = False

    def may_change(self, document: DocumentRecord) -> bool:
        return self.name is None or self.admin or document.owner == self.name

    @property
    def sees_all(self) -> bool:
        """The operator and admins see every collection."""
        return self.name is None or self.admin

    def may_see(self, collection: CollectionRecord) -> bool:
        """Whether this user may search, list and add to `collection`."""
        return (
            self.sees_all
            or collection.visibility == "everyone"
            or collection.owner == self.name
            or (collection.visibility == "shared" and self.name in collection.members)
        )

    def may_manage(self, collection: CollectionRecord) -> bool:
        """Only its owner (or the operator, or an admin) renames or deletes a collection; a
        collection made by an operator is managed by operators and admins."""
        return self.sees_all or (collection.owner is not None and collection.owner == self.name)


IngestStatus = Literal["added", "duplicate", "replaced", "error", "cancelled"]


@dataclass(frozen=True)
class IngestResult:
    """The outcome for one file: added, duplicate (of `document`), replaced (new version), error,
    or cancelled (the ingest was stopped before the file was added: nothing of it is kept)."""

    name: str
    status: IngestStatus
    document: DocumentRecord | None = None
    chunks: int = 0
    reused_embeddings: int = 0
    error: str | None = None
    seconds: float = 0.0
