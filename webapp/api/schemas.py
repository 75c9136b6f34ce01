"""The request and response bodies of the REST and OpenAI-compatible API (they make the
OpenAPI schema). Answers and turns are validated from webapp/serialize.py's dicts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rag_core.types import DocumentRecord, IngestResult, Scope
from webapp import serialize

RetrievalModeName = Literal["hybrid", "dense", "bm25"]
AnswerModeName = Literal["generate", "extractive"]
FeedbackReasonName = Literal["wrong_fact", "wrong_citation", "should_answer", "should_refuse"]
MAX_SCOPE = 100  # collections or documents one question may name
ScopeKey = Annotated[str, Field(min_length=1, max_length=255)]
StrategyName = Literal["concat", "extractive", "extract-then-phrase", "rag-token", "rag-sequence"]
STRATEGY_HELP = (
    "how the answer is made: concat, extractive (quotes only), extract-then-phrase, rag-token or "
    "rag-sequence (default: RAGCHAT_ANSWER_STRATEGY)"
)


class IngestReportOut(BaseModel):
    """What ingesting a document found and cost. `recorded` false: it was ingested before
    reports were kept, and only pages, ocr_pages and chunks are known (the rest is null)."""

    recorded: bool
    pages: int | None = Field(None, description="null for a format without pages")
    ocr_pages: list[int] = Field(default_factory=list, description="pages whose text OCR read")
    tables: int | None = Field(None, description="tables whose rows became text")
    chunks: int
    warnings: list[str] | None = Field(
        None, description="what could not be (fully) read: 'page 7 has almost no text (12 ...)'"
    )
    embedder: str | None = Field(None, description="the embedder whose vectors serve its chunks")
    embedder_fingerprint: str | None = Field(None, description="sha256 of its weights")
    seconds: float | None = Field(None, description="from reading the file to ready")
    load_seconds: float | None = Field(None, description="reading and parsing (OCR included)")
    index_seconds: float | None = Field(None, description="chunking, embedding and writing")


class DocumentOut(BaseModel):
    """A document of the knowledge base (the newest version of a name), with its ingest report."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    version: int
    content_hash: str
    size: int = Field(description="bytes")
    doc_type: str
    page_count: int | None
    ocr_pages: list[int] = Field(
        default_factory=list, description="pages whose text OCR read (1 for a picture)"
    )
    chunk_count: int
    added_at: datetime
    status: str
    owner: str | None = Field(
        None, description="who may delete or replace it (accounts on); null: an operator"
    )
    added_by: str | None = Field(None, description="who added this version")
    report: IngestReportOut
    collections: list[str] = Field(
        default_factory=list, description="the names of the collections it is in"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_record(cls, data: Any) -> Any:
        """A DocumentRecord, as webapp.serialize shapes it (the CLI's --json is the same)."""
        return serialize.document(data) if isinstance(data, DocumentRecord) else data


class ChunkOut(BaseModel):
    """A passage of a document as indexed."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    index: int
    text: str
    page: int | None
    page_end: int | None
    heading_path: list[str]
    ocr: bool = Field(False, description="its text was read from an image by OCR")
    char_start: int
    char_end: int


class DocumentDetail(DocumentOut):
    """A document with its chunks."""

    chunks: list[ChunkOut]


class UploadResult(BaseModel):
    """What happened to one uploaded file."""

    name: str = Field(description="the file name as uploaded")
    status: Literal["added", "duplicate", "replaced", "error", "cancelled"]
    document: DocumentOut | None = Field(
        None, description="the document added or replaced, or the one it duplicates"
    )
    chunks: int = 0
    reused_embeddings: int = 0
    error: str | None = Field(None, description="why the file was rejected (status 'error')")
    seconds: float = 0.0

    @classmethod
    def of(
        cls, r: IngestResult, memberships: Mapping[str, list[str]] | None = None
    ) -> UploadResult:
        """One file's result; `memberships`: the collections of each document, by id."""
        same = {
            k: getattr(r, k) for k in ("name", "status", "chunks", "reused_embeddings", "error")
        }
        document = None
        if r.document:
            document = DocumentOut.model_validate(r.document)
            document.collections = list((memberships or {}).get(r.document.id, []))
        return cls(**same, document=document, seconds=round(r.seconds, 3))


class UploadResponse(BaseModel):
    """One result per file, in upload order; a rejected file changes nothing."""

    results: list[UploadResult]


class _Numbered(BaseModel):
    number: int


class _Ranked(_Numbered):
    rank: int
    score: float
    found_by: Literal["both", "dense", "keyword"]
    dense_score: float | None
    keyword_score: float | None
    cited: bool


class _Source(BaseModel):
    """Where a passage comes from (the fields a passage and a citation share)."""

    document: str
    document_id: str
    version: str = Field("", description="the content hash of the document version quoted")
    page: int | None
    page_end: int | None
    heading_path: list[str]
    ocr: bool = Field(False, description="the passage's text was read from an image by OCR")
    chunk_id: str


# Pydantic takes the fields of the last base first, so the keys keep the order clients have
# always seen: the number (and the ranking), then the source, then the text.


class PassageOut(_Source, _Ranked):
    """A retrieved passage; ``number`` is the [n] an answer uses to cite it."""

    text: str


class CitationOut(_Source, _Numbered):
    """Citation [number]: the passage it points to and the passage sentence that supports it."""

    text: str = Field(description="the whole cited passage")
    support: str | None = Field(description="the passage sentence that supports the claim")
    support_start: int | None = Field(None, description="offset of `support` in `text`")
    support_end: int | None = None


class SentenceOut(BaseModel):
    """The check of one answer sentence against the passages."""

    index: int
    text: str
    supported: bool
    score: float
    citation: int | None
    support: str | None
    reason: str
    verdict: Literal["supported", "marked", "removed", "unchecked", "replaced", "no-claim"] = Field(
        "supported",
        description="what became of the sentence: shown as supported, shown marked 'not in "
        "your documents', removed, shown unchecked (grounding off), replaced by quotes, or "
        "not a claim",
    )


class ScopeOut(BaseModel):
    """What a question searches: these collections and single documents (names or ids, as
    asked). Both empty: every document the asker may see."""

    model_config = ConfigDict(from_attributes=True)

    collections: list[str] = Field(default_factory=list)
    documents: list[str] = Field(default_factory=list)


class TurnOut(BaseModel):
    """One logged question and answer, with what it retrieved and cited."""

    id: int
    conversation_id: str
    position: int
    question: str
    query: str = Field(description="the standalone query searched (a follow-up, rewritten)")
    answer: str
    raw_answer: str
    refused: bool
    mode: str = Field(description="generated, extractive or refused")
    status: str = Field(description="complete, stopped or error")
    error: str | None
    created_at: datetime
    feedback_rating: int | None
    feedback_comment: str | None
    feedback_reason: FeedbackReasonName | None = Field(
        None, description="with a thumbs down: what was wrong"
    )
    feedback_passage: str | None = Field(
        None, description="with a thumbs down: chunk_id of the passage that should have been used"
    )
    feedback_no_passage: bool = Field(
        False, description="with a thumbs down: none of the retrieved passages answers"
    )
    gate_score: float | None = Field(
        None, description="the refusal gate's score; null: logged before it was kept"
    )
    citations: list[CitationOut]
    passages: list[PassageOut]
    sentences: list[SentenceOut]
    timings: dict[str, Any]
    config: dict[str, Any]
    scope: ScopeOut = Field(default_factory=ScopeOut, description="what it searched")


class ConversationOut(BaseModel):
    """A conversation as listed, newest activity first."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
    turn_count: int
    created_at: datetime
    updated_at: datetime


class ConversationDetail(ConversationOut):
    """A conversation with every turn, and the scope its next question searches when it names
    none."""

    scope: ScopeOut
    turns: list[TurnOut]


class _Exported(BaseModel):
    char_start: int = Field(description="where the passage starts in its document's text")
    char_end: int
    document_available: bool | None = Field(
        description="false: this version of the document was deleted or replaced since (the "
        "log keeps the passage)"
    )


class PassageExport(_Exported, PassageOut):
    """A retrieved passage as exported."""


class CitationExport(_Exported, CitationOut):
    """A citation as exported: the exact passage text and where it comes from."""


class TurnExport(TurnOut):
    """A turn as exported."""

    lead: str = Field(description="what the answer says before its sentences (a refusal, ...)")
    citations: list[CitationExport]  # type: ignore[assignment]
    passages: list[PassageExport]  # type: ignore[assignment]


class ConversationExportDetail(ConversationOut):
    """The exported conversation: whose it is and every turn."""

    user: str
    turns: list[TurnExport]


class ConversationExport(BaseModel):
    """A conversation as a self-contained JSON file (`format=json` of the export endpoint)."""

    format: Literal["ragchat-conversation"] = "ragchat-conversation"
    format_version: int = 2
    exported_at: datetime
    conversation: ConversationExportDetail


class RenameRequest(BaseModel):
    title: str = Field(min_length=1, max_length=1000, examples=["Turbine questions"])


class AskRequest(BaseModel):
    """A question; without `conversation_id` it starts a new conversation."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(examples=["How often must the bearings be greased?"])
    conversation_id: str | None = Field(None, description="continue this conversation")
    mode: RetrievalModeName | None = None
    top_k: int | None = Field(None, ge=1, le=50)
    max_new_tokens: int | None = Field(None, ge=1, le=4096)
    answer_mode: AnswerModeName | None = Field(
        None, description="generate (checked) or extractive (quotes passages, no generator)"
    )
    strategy: StrategyName | None = Field(None, description=STRATEGY_HELP)
    collections: list[ScopeKey] | None = Field(
        None,
        max_length=MAX_SCOPE,
        description="search only these collections (names or ids); with `documents`, their "
        "union. Both omitted: the conversation's remembered scope (new: everything); both "
        "empty lists: everything again",
        examples=[["Handbooks"]],
    )
    documents: list[ScopeKey] | None = Field(
        None, max_length=MAX_SCOPE, description="search only these documents (names or ids)"
    )

    def scope(self) -> Scope | None:
        """The scope asked for; None when neither field was given."""
        if self.collections is None and self.documents is None:
            return None
        return Scope(tuple(self.collections or ()), tuple(self.documents or ()))


class AskResponse(BaseModel):
    """The checked answer with its citations, as logged under `turn_id`."""

    conversation_id: str
    turn_id: int | None
    question: str
    query: str
    answer: str = Field(description="the checked answer with [n] citation markers")
    raw_answer: str
    refused: bool
    mode: str
    status: str
    error: str | None
    citations: list[CitationOut]
    passages: list[PassageOut]
    sentences: list[SentenceOut]
    timings: dict[str, Any]
    scope: ScopeOut = Field(description="what was searched (both empty: everything visible)")


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"
    documents: int
    accounts: bool


class EmbedderOut(BaseModel):
    """The embedder that fills a vector index."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    source: str = Field(description="the RAGCHAT_EMBEDDER value that loads it")
    fingerprint: str = Field(description="sha256 of its weights and configuration files")
    precision: str
    dimension: int


class VectorIndexOut(BaseModel):
    """A vector index (a Chroma collection) and its embedder."""

    collection: str
    status: Literal["active", "building", "retired"]
    embedder: EmbedderOut
    chunks_done: int = Field(description="while building: chunks embedded so far")
    chunks_total: int = Field(description="while building: chunks of the ready documents")
    updated_at: datetime = Field(description="while building: its last progress")


class IndexStatusOut(BaseModel):
    """The index that answers and, while `ragchat reindex` runs, the one it builds."""

    active: VectorIndexOut | None
    building: VectorIndexOut | None = Field(description="null when no re-embedding is under way")
    stalled: bool = Field(description="the building index made no progress for two minutes")


class ErrorOut(BaseModel):
    detail: str


class ReplaySide(BaseModel):
    """One side of a replay: the logged answer (`before`) or today's (`after`)."""

    answer: str
    refused: bool
    mode: str
    status: str
    gate_score: float | None = Field(description="the refusal gate's score; null: not logged")
    citations: list[CitationOut]
    config: dict[str, Any] = Field(description="the settings it ran with")


class ReplayPassage(BaseModel):
    """A passage retrieved then, today, or both (matched by document and text)."""

    document_name: str
    location: str
    text: str
    rank_before: int | None
    rank_after: int | None
    cited_before: bool
    cited_after: bool
    change: Literal["same", "moved", "in", "out"]


class ReplaySentenceSide(BaseModel):
    text: str
    verdict: str
    citation: int | None


class ReplaySentence(BaseModel):
    """A sentence of the logged answer beside its counterpart today (null: none)."""

    before: ReplaySentenceSide | None
    after: ReplaySentenceSide | None
    changed: bool


class ReplayDocument(BaseModel):
    """A document the logged turn retrieved that was deleted or replaced since."""

    document_id: str
    name: str
    status: Literal["deleted", "replaced"]
    current_id: str | None = Field(description="the version that replaced it")
    current_version: int | None


class ReplayChanges(BaseModel):
    answer: bool
    citations: bool = Field(description="the answer cites other passages than it did")
    refusal_appeared: bool
    refusal_vanished: bool


class ReplayOut(BaseModel):
    """A logged turn answered again with its settings snapshot on today's knowledge base."""

    turn_id: int
    conversation_id: str
    question: str
    logged_at: datetime
    models_differ: bool = Field(
        description="the turn was answered by another generator or embedder than today's"
    )
    notes: list[str] = Field(description="what the replay could not reproduce, in words")
    changed: ReplayChanges
    before: ReplaySide
    after: ReplaySide
    passages: list[ReplayPassage]
    sentences: list[ReplaySentence]
    documents: list[ReplayDocument]


class FeedbackRequest(BaseModel):
    """A thumbs up or down on a logged answer; with a thumbs down, what was wrong and which
    passage should have been used (its `number` in /api/turns/{id}/passages), or that none of
    them answers."""

    model_config = ConfigDict(extra="forbid")

    rating: Literal[1, -1]
    comment: str | None = Field(None, max_length=4000)
    reason: FeedbackReasonName | None = Field(
        None,
        description="wrong_fact, wrong_citation (wrong or missing), should_answer (refused, but "
        "the documents answer), should_refuse (answered, but the documents don't)",
    )
    passage: int | None = Field(None, ge=1, description="the passage that should have been used")
    none_of_these: bool = Field(False, description="none of the retrieved passages answers")


class InsightDay(BaseModel):
    day: date
    questions: int
    refused: int
    quoted: int = Field(description="answers quoting passages after the generated one failed")
    rated: int
    thumbs_down: int
    refusal_rate: float
    quoted_rate: float
    thumbs_down_rate: float = Field(description="thumbs down among all the day's answers")


class InsightTimes(BaseModel):
    day: date
    metric: Literal["first_token", "total"]
    count: int = Field(description="answers with this timing that day")
    p50_ms: float
    p95_ms: float


class CitedDocumentOut(BaseModel):
    document: str
    answers: int = Field(description="answers that cited it (any version)")
    last_cited: datetime


class UncitedDocumentOut(BaseModel):
    document: str
    version: int
    added_at: datetime


class RefusedQuestionOut(BaseModel):
    question: str
    count: int = Field(description="times refused (the same question in any letter case)")
    last_asked: datetime


class InsightsOut(BaseModel):
    """What the log says over [since, until): every user's questions."""

    since: datetime
    until: datetime
    questions: int
    days: list[InsightDay]
    times: list[InsightTimes]
    most_cited: list[CitedDocumentOut]
    never_cited: list[UncitedDocumentOut]
    refused: list[RefusedQuestionOut]
