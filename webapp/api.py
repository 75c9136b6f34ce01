"""create_app(engine, settings) -> FastAPI: the REST API, an OpenAI-compatible endpoint, the UI.

- ``/api/...``: documents (upload, list, show, delete), ask (JSON or server-sent events),
  conversations (list, show, rename, delete, export) and a turn's citations and passages.
- ``/v1/chat/completions`` and ``/v1/models``: OpenAI's chat API, so OpenAI clients can use
  ragchat as a model; answers carry their citations in an extra ``citations`` field.
- ``/healthz``: liveness with the document count. ``/openapi.json`` documents everything; the
  ``/api/docs`` page lists it without any external asset (FastAPI's own /docs loads from a CDN,
  so it is switched off).
- ``/``: the Gradio UI, mounted (``mount=True``).

With accounts (RAGCHAT_AUTH) every /api and /v1 request needs ``Authorization: Bearer KEY``,
a per-user key from ``ragchat apikey create``; without accounts the API is open to whoever can
reach the port, as the single local user. Other users' conversations and turns answer 404, the
same as ids that do not exist, so ids reveal nothing. See docs/API.md.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import anyio
from fastapi import Depends, FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from rag_core.config import Settings
from rag_core.db.apikeys import ApiKeys
from rag_core.db.log import cursor_of
from rag_core.db.records import ConversationRecord, TurnRecord
from rag_core.engine import Engine, clean_question
from rag_core.errors import (
    ConversationNotFoundError,
    DocumentNotFoundError,
    InvalidQuestionError,
    PermissionDeniedError,
    RagError,
    UserError,
)
from rag_core.ingest.pipeline import OPERATOR
from rag_core.prompting import MARKER, NOT_FOUND, markers_in
from rag_core.types import (
    Actor,
    Chunk,
    Citation,
    DocumentRecord,
    Done,
    Hit,
    IngestResult,
    Logged,
    Retrieved,
    SentenceCheck,
    SentenceChecked,
    Timings,
    Token,
    Turn,
)
from webapp.auth import LOCAL_USER
from webapp.security import (
    GuardConfig,
    SessionTokens,
    UploadLedger,
    WebGuard,
    async_authenticator,
    gradio_user_resolver,
    guard_file_inputs,
    mounted_gradio_app,
    parse_origins,
)

log = logging.getLogger("ragchat.webapp.api")

MODEL_ID = "ragchat"
ANSWER_THREADS = 100  # answers in progress or waiting for the generator, per server
DEFAULT_PAGE = 100  # conversations per page of /api/conversations
MAX_PAGE = 500
MAX_FILES_PER_UPLOAD = 50
CHECKED_HEADER = "\n\nChecked against your documents:\n"
RetrievalModeName = Literal["hybrid", "dense", "bm25"]
AnswerModeName = Literal["generate", "extractive"]

# -- response and request models ----------------------------------------------------------------


class DocumentOut(BaseModel):
    """A document of the knowledge base (the newest version of a name)."""

    id: str
    name: str
    version: int
    content_hash: str
    size: int = Field(description="bytes")
    doc_type: str
    page_count: int | None
    chunk_count: int
    added_at: datetime
    status: str
    owner: str | None = Field(
        None, description="who may delete or replace it (accounts on); null: an operator"
    )
    added_by: str | None = Field(None, description="who added this version")

    @classmethod
    def of(cls, d: DocumentRecord) -> DocumentOut:
        return cls(
            id=d.id, name=d.name, version=d.version, content_hash=d.content_hash, size=d.size,
            doc_type=d.doc_type, page_count=d.page_count, chunk_count=d.chunk_count,
            added_at=d.added_at, status=d.status, owner=d.owner, added_by=d.added_by,
        )  # fmt: skip


class ChunkOut(BaseModel):
    """A passage of a document as indexed."""

    id: str
    index: int
    text: str
    page: int | None
    page_end: int | None
    heading_path: list[str]
    char_start: int
    char_end: int

    @classmethod
    def of(cls, c: Chunk) -> ChunkOut:
        return cls(
            id=c.id, index=c.index, text=c.text, page=c.page, page_end=c.page_end,
            heading_path=list(c.heading_path), char_start=c.char_start, char_end=c.char_end,
        )  # fmt: skip


class DocumentDetail(DocumentOut):
    """A document with its chunks."""

    chunks: list[ChunkOut]


class UploadResult(BaseModel):
    """What happened to one uploaded file."""

    name: str = Field(description="the file name as uploaded")
    status: Literal["added", "duplicate", "replaced", "error"]
    document: DocumentOut | None = Field(
        None, description="the document added or replaced, or the one it duplicates"
    )
    chunks: int = 0
    reused_embeddings: int = 0
    error: str | None = Field(None, description="why the file was rejected (status 'error')")
    seconds: float = 0.0

    @classmethod
    def of(cls, r: IngestResult) -> UploadResult:
        return cls(
            name=r.name, status=r.status,
            document=DocumentOut.of(r.document) if r.document else None, chunks=r.chunks,
            reused_embeddings=r.reused_embeddings, error=r.error, seconds=round(r.seconds, 3),
        )  # fmt: skip


class UploadResponse(BaseModel):
    """One result per file, in upload order; a rejected file changes nothing."""

    results: list[UploadResult]


class PassageOut(BaseModel):
    """A retrieved passage; ``number`` is the [n] an answer uses to cite it."""

    number: int
    rank: int
    score: float
    found_by: Literal["both", "dense", "keyword"]
    dense_score: float | None
    keyword_score: float | None
    cited: bool
    document: str
    document_id: str
    page: int | None
    page_end: int | None
    heading_path: list[str]
    chunk_id: str
    text: str

    @classmethod
    def of(cls, number: int, h: Hit, cited: bool) -> PassageOut:
        c = h.chunk
        return cls(
            number=number, rank=h.rank, score=h.score, found_by=h.found_by,
            dense_score=h.dense_score, keyword_score=h.keyword_score, cited=cited,
            document=c.document_name, document_id=c.document_id, page=c.page,
            page_end=c.page_end, heading_path=list(c.heading_path), chunk_id=c.id, text=c.text,
        )  # fmt: skip


class CitationOut(BaseModel):
    """Citation [number]: the passage it points to and the passage sentence that supports it."""

    number: int
    document: str
    document_id: str
    page: int | None
    page_end: int | None
    heading_path: list[str]
    chunk_id: str
    text: str = Field(description="the whole cited passage")
    support: str | None = Field(description="the passage sentence that supports the claim")
    support_start: int | None = Field(None, description="offset of `support` in `text`")
    support_end: int | None = None

    @classmethod
    def of(cls, c: Citation) -> CitationOut:
        k = c.chunk
        return cls(
            number=c.n, document=k.document_name, document_id=k.document_id, page=k.page,
            page_end=k.page_end, heading_path=list(k.heading_path), chunk_id=k.id, text=k.text,
            support=c.support, support_start=c.support_start, support_end=c.support_end,
        )  # fmt: skip


class SentenceOut(BaseModel):
    """The check of one answer sentence against the passages."""

    index: int
    text: str
    supported: bool
    score: float
    citation: int | None
    support: str | None
    reason: str

    @classmethod
    def of(cls, s: SentenceCheck) -> SentenceOut:
        return cls(
            index=s.index, text=s.text, supported=s.supported, score=s.score,
            citation=s.citation, support=s.support, reason=s.reason,
        )  # fmt: skip


def _passages(hits: Sequence[Hit], citations: Sequence[Citation]) -> list[PassageOut]:
    cited = {c.chunk.id for c in citations}
    return [PassageOut.of(i + 1, h, h.chunk.id in cited) for i, h in enumerate(hits)]


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
    citations: list[CitationOut]
    passages: list[PassageOut]
    sentences: list[SentenceOut]
    timings: dict[str, Any]
    config: dict[str, Any]

    @classmethod
    def of(cls, t: TurnRecord) -> TurnOut:
        return cls(
            id=t.id, conversation_id=t.conversation_id, position=t.position,
            question=t.question, query=t.query, answer=t.answer, raw_answer=t.raw_answer,
            refused=t.refused, mode=t.mode, status=t.status, error=t.error,
            created_at=t.created_at, feedback_rating=t.feedback_rating,
            feedback_comment=t.feedback_comment,
            citations=[CitationOut.of(c) for c in t.citations],
            passages=_passages(t.hits, t.citations),
            sentences=[SentenceOut.of(s) for s in t.sentences], timings=asdict(t.timings),
            config=t.config,
        )  # fmt: skip


class ConversationOut(BaseModel):
    """A conversation as listed, newest activity first."""

    id: str
    title: str
    turn_count: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, c: ConversationRecord) -> ConversationOut:
        return cls(
            id=c.id, title=c.title, turn_count=c.turn_count, created_at=c.created_at,
            updated_at=c.updated_at,
        )  # fmt: skip


class ConversationDetail(ConversationOut):
    """A conversation with every turn."""

    turns: list[TurnOut]


class ConversationExport(BaseModel):
    """A conversation as a self-contained JSON file."""

    format: Literal["ragchat-conversation"] = "ragchat-conversation"
    format_version: int = 1
    exported_at: datetime
    conversation: ConversationDetail


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

    @classmethod
    def of(cls, done: Done, logged: Logged | None, conversation_id: str) -> AskResponse:
        t = done.timings
        return cls(
            conversation_id=logged.conversation_id if logged else conversation_id,
            turn_id=logged.turn_id if logged else None, question=done.question,
            query=done.query, answer=done.answer, raw_answer=done.raw_answer,
            refused=done.refused, mode=done.mode, status=done.status, error=done.error,
            citations=[CitationOut.of(c) for c in done.citations],
            passages=_passages(done.hits, done.citations),
            sentences=[SentenceOut.of(s) for s in done.sentences],
            timings={
                "retrieval_ms": t.retrieval_ms, "first_token_ms": t.first_token_ms,
                "generation_ms": t.generation_ms, "total_ms": t.total_ms, "tokens": t.tokens,
                "tokens_per_s": t.tokens_per_s, "prompt_tokens": t.prompt_tokens,
            },
        )  # fmt: skip


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"
    documents: int
    accounts: bool


# OpenAI-compatible models ------------------------------------------------------------------------


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        parts = self.content or []
        return "\n".join(str(p.get("text", "")) for p in parts if p.get("type") == "text")


class ChatCompletionRequest(BaseModel):
    """OpenAI's request body. Sampling options are accepted and ignored (ragchat's settings
    decide); `conversation_id`, `mode`, `top_k` and `answer_mode` are ragchat extras."""

    model_config = ConfigDict(extra="allow")

    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    conversation_id: str | None = Field(None, description="ragchat: log into this conversation")
    mode: RetrievalModeName | None = None
    top_k: int | None = Field(None, ge=1, le=50)
    answer_mode: AnswerModeName | None = None


class CompletionMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class CompletionChoice(BaseModel):
    index: int = 0
    message: CompletionMessage
    finish_reason: Literal["stop", "length"] = "stop"


class Usage(BaseModel):
    prompt_tokens: int = Field(
        description="tokens of the prompt the generator read (passages, history, question); "
        "0 when no generator ran (a refusal or a quoted answer)"
    )
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, timings: Timings) -> Usage:
        prompt, completion = timings.prompt_tokens, timings.tokens
        return cls(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )


class RagchatInfo(BaseModel):
    """ragchat's extra details of a completion."""

    conversation_id: str
    turn_id: int | None
    refused: bool
    mode: str
    status: str
    answer: str = Field(description="the checked answer (what `content` holds when not streamed)")


class ChatCompletion(BaseModel):
    """OpenAI's chat.completion, plus `citations` and `ragchat`."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    citations: list[CitationOut] = Field(description="ragchat: what each [n] in the answer cites")
    ragchat: RagchatInfo


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "ragchat"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorOut(BaseModel):
    detail: str


# -- helpers -----------------------------------------------------------------------------------------

_STARTED = int(time.time())
_END = object()
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no valid API key (accounts on)"},
    403: {"model": ErrorOut, "description": "not yours to change (accounts on)"},
    404: {"model": ErrorOut, "description": "no such id (or another user's)"},
}


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


def _stream_tail(checked: str, streamed: str) -> str:
    """What to send after the streamed text so the client ends up with the checked answer:
    nothing when they agree, the missing markers when only markers were repaired, else the
    checked answer under a heading (streamed text cannot be taken back)."""

    def words(text: str) -> list[str]:
        return re.sub(r"\W+", " ", MARKER.sub(" ", text)).lower().split()

    if not streamed.strip():
        return checked
    if words(checked) != words(streamed) or set(markers_in(streamed)) - set(markers_in(checked)):
        return CHECKED_HEADER + checked  # other words, or a marker the check moved elsewhere
    missing = [n for n in dict.fromkeys(markers_in(checked)) if n not in markers_in(streamed)]
    return " " + "".join(f"[{n}]" for n in missing) if missing else ""


def _history(messages: Sequence[ChatMessage]) -> tuple[str, list[Turn]]:
    """The last user message is the question; earlier user/assistant pairs become history."""
    if messages[-1].role != "user":
        raise InvalidQuestionError("the last message must be the user's question (role 'user')")
    turns: list[Turn] = []
    pending: str | None = None
    for m in messages[:-1]:
        if m.role == "user":
            pending = m.text()
        elif m.role == "assistant" and pending is not None:
            turns.append(Turn(question=pending, answer=m.text()))
            pending = None
    return messages[-1].text(), turns


class _Answer:
    """Runs engine.chat in the caller's thread and remembers Done and Logged."""

    def __init__(
        self, engine: Engine, question: str, conversation_id: str | None, user: str,
        history: Sequence[Turn] | None, options: Mapping[str, Any],
    ) -> None:  # fmt: skip
        self.stop = threading.Event()
        self.done: Done | None = None
        self.logged: Logged | None = None
        self.conversation_id = conversation_id or ""
        self.events = engine.chat(
            question, conversation_id, user=user, stop=self.stop, history=history,
            options=engine.options(**options),
        )  # fmt: skip

    def __iter__(self) -> Iterator[Any]:
        for event in self.events:
            if isinstance(event, Done):
                self.done = event
            elif isinstance(event, Logged):
                self.logged = event
                self.conversation_id = event.conversation_id
            yield event

    def close(self) -> None:
        self.stop.set()
        self.events.close()


async def _stream(
    chunks: Iterator[str], answer: _Answer, limiter: anyio.CapacityLimiter
) -> AsyncIterator[str]:
    """Pull a blocking iterator in worker threads (of `limiter`); a client that goes away stops
    the answer (engine.chat then logs the turn as 'stopped')."""
    try:
        while True:
            item = await anyio.to_thread.run_sync(next, chunks, _END, limiter=limiter)
            if item is _END:
                return
            yield item  # type: ignore[misc]
    finally:
        answer.stop.set()
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(answer.close)


@dataclass(frozen=True)
class _Auth:
    keys: ApiKeys
    users: dict[str, str] | None  # None: accounts off


_bearer = HTTPBearer(
    auto_error=False,
    description="a per-user API key (`ragchat apikey create --user NAME`); "
    "needed only when accounts are on",
)


def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The caller: the key's owner with accounts on (401 without a valid key), else 'local'."""
    auth: _Auth = request.app.state.ragchat_auth
    if auth.users is None:
        return LOCAL_USER
    user = auth.keys.authenticate(credentials.credentials) if credentials else None
    if user is None or user not in auth.users:
        raise HTTPException(
            401,
            "A valid API key is required: send 'Authorization: Bearer KEY' (create a key "
            "with `ragchat apikey create --user NAME`).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


User = Annotated[str, Depends(current_user)]


# -- the application -------------------------------------------------------------------------------


def create_app(
    engine: Engine,
    settings: Settings,
    *,
    users: Mapping[str, str] | None = None,
    ui: Any = None,
    ui_options: Mapping[str, Any] | None = None,
    trusted_hosts: Collection[str] | None = None,
) -> FastAPI:
    """The FastAPI application; `ui` (a gr.Blocks, queue already set) is mounted at '/'.

    `users` (from RAGCHAT_AUTH) turns accounts on: the UI asks for a login and the API for a
    per-user key. `ui_options` go to gr.mount_gradio_app (theme, CSS, max_file_size, ...).
    `trusted_hosts`: the only Host header names answered (see webapp.security.WebGuard).
    """
    conv_log = engine.log
    keys = ApiKeys(conv_log.db)
    # Answers wait for the generator in threads of their own, so that requests queued behind
    # it never hold the threads every other endpoint (and the health check) runs in.
    answer_limiter = anyio.CapacityLimiter(ANSWER_THREADS)
    health_limiter = anyio.CapacityLimiter(2)

    async def answering(work: Callable[[Any, str], Any], body: Any, user: str) -> Any:
        return await anyio.to_thread.run_sync(work, body, user, limiter=answer_limiter)

    accounts = users is not None
    ingest_lock = threading.Lock()  # one upload at a time, as in the UI

    app = FastAPI(
        title="ragchat API",
        version="1",
        description=(
            "Chat with your documents: answers with a citation [n] on every claim, each "
            "sentence checked against its source. With accounts on, send "
            "`Authorization: Bearer KEY` (keys from `ragchat apikey create --user NAME`)."
        ),
        docs_url=None,  # FastAPI's pages load JavaScript from a CDN; /api/docs needs none
        redoc_url=None,
    )
    app.state.ragchat_auth = _Auth(keys, dict(users) if users is not None else None)

    def actor_of(user: str) -> Actor:
        """Who changes the knowledge base: the key's user with accounts, else the operator."""
        if not accounts:
            return OPERATOR
        return Actor(user, admin=user in settings.admin_users)

    # -- errors --------------------------------------------------------------------------------

    def _openai_error(status: int, message: str, kind: str) -> JSONResponse:
        body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
        return JSONResponse(body, status_code=status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith("/v1/"):
            kind = "authentication_error" if exc.status_code == 401 else "invalid_request_error"
            response = _openai_error(exc.status_code, str(exc.detail), kind)
        else:
            response = JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        for k, v in (exc.headers or {}).items():
            response.headers[k] = v
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: "
            f"{e.get('msg', 'invalid')}"
            for e in exc.errors()
        )
        if request.url.path.startswith("/v1/"):
            return _openai_error(400, problems, "invalid_request_error")
        return JSONResponse({"detail": problems}, status_code=422)

    def not_found(exc: UserError) -> HTTPException:
        return HTTPException(404, str(exc))

    # -- health and docs -----------------------------------------------------------------------

    @app.get("/healthz", response_model=HealthOut, tags=["health"])
    async def healthz() -> HealthOut:
        """The app is up: 200 with the number of documents (no key needed). It has threads of
        its own, so it answers at once however many answers are being generated."""
        count = await anyio.to_thread.run_sync(engine.registry.count, limiter=health_limiter)
        return HealthOut(documents=count, accounts=accounts)

    @app.get("/api/docs", response_class=HTMLResponse, include_in_schema=False)
    def api_docs() -> str:
        return DOCS_PAGE

    # -- documents -----------------------------------------------------------------------------

    @app.get("/api/documents", response_model=list[DocumentOut], tags=["documents"],
             responses=ERRORS)  # fmt: skip
    def list_documents(user: User) -> list[DocumentOut]:
        """Every document in the knowledge base (it is shared by all users)."""
        return [DocumentOut.of(d) for d in engine.documents()]

    @app.get("/api/documents/{document}", response_model=DocumentDetail, tags=["documents"],
             responses=ERRORS)  # fmt: skip
    def show_document(document: str, user: User) -> DocumentDetail:
        """A document, by id, id prefix or name, with its chunks."""
        try:
            d = engine.document(document)
            chunks = engine.chunks_of(d.id)
        except DocumentNotFoundError as exc:
            raise not_found(exc) from exc
        return DocumentDetail(
            **DocumentOut.of(d).model_dump(), chunks=[ChunkOut.of(c) for c in chunks]
        )

    @app.delete("/api/documents/{document}", response_model=DocumentOut, tags=["documents"],
                responses=ERRORS)  # fmt: skip
    def delete_document(document: str, user: User) -> DocumentOut:
        """Remove a document from the knowledge base and every index; returns what was removed.
        With accounts on, only its owner or an admin (RAGCHAT_ADMINS) may (403 otherwise)."""
        try:
            with ingest_lock:
                return DocumentOut.of(engine.delete_document(document, actor=actor_of(user)))
        except DocumentNotFoundError as exc:
            raise not_found(exc) from exc
        except PermissionDeniedError as exc:
            raise HTTPException(403, str(exc)) from exc

    @app.post("/api/documents", response_model=UploadResponse, tags=["documents"],
              responses=ERRORS)  # fmt: skip
    def upload_documents(
        files: Annotated[list[UploadFile], File(description="one or more files")],
        user: User,
    ) -> UploadResponse:
        """Add files (PDF, DOCX, HTML, Markdown, text). Each gets its own result: added,
        duplicate (same content as an existing document), replaced (same name, new content:
        a new version) or error (with the reason; nothing is changed)."""
        if len(files) > MAX_FILES_PER_UPLOAD:
            raise HTTPException(
                422, f"{len(files)} files in one request; the limit is {MAX_FILES_PER_UPLOAD}"
            )
        limit = int(settings.max_file_mb * 1024 * 1024)
        results = []
        for upload in files:
            name = upload.filename or "upload"
            size = upload.size
            if size is not None and size > limit:
                too_big = (
                    f"{name}: the file is {size / 1024 / 1024:.1f} MB; the limit is "
                    f"{settings.max_file_mb:g} MB (setting RAGCHAT_MAX_FILE_MB)"
                )
                results.append(IngestResult(name, "error", error=too_big))
                continue
            data = upload.file.read(limit + 1)
            try:
                with ingest_lock:
                    results.append(engine.ingest_bytes(data, name, actor=actor_of(user)))
            except RagError as exc:
                results.append(IngestResult(name, "error", error=str(exc)))
            except Exception as exc:
                log.exception("ingesting %r failed", name)
                results.append(IngestResult(name, "error", error=f"{name}: {exc}"))
        return UploadResponse(results=[UploadResult.of(r) for r in results])

    # -- asking --------------------------------------------------------------------------------

    def prepare(question: str, conversation_id: str | None, user: str) -> str:
        try:
            question = clean_question(question, settings.max_question_chars)
        except InvalidQuestionError as exc:
            raise HTTPException(422, str(exc)) from exc
        if conversation_id:
            try:
                conv_log.get_conversation(conversation_id, user)
            except ConversationNotFoundError as exc:
                raise not_found(exc) from exc
        return question

    def ask_options(body: AskRequest) -> dict[str, Any]:
        return {
            "mode": body.mode, "top_k": body.top_k, "max_new_tokens": body.max_new_tokens,
            "answer_mode": body.answer_mode,
        }  # fmt: skip

    def finished(answer: _Answer) -> AskResponse:
        if answer.done is None:
            raise HTTPException(
                500, "The answer could not be produced; the server log has details."
            )
        return AskResponse.of(answer.done, answer.logged, answer.conversation_id)

    @app.post("/api/ask", response_model=AskResponse, tags=["ask"], responses=ERRORS)
    async def ask(body: AskRequest, user: User) -> AskResponse:
        """Ask a question and wait for the whole checked answer (see /api/ask/stream)."""
        return await answering(ask_and_wait, body, user)

    def ask_and_wait(body: AskRequest, user: str) -> AskResponse:
        question = prepare(body.question, body.conversation_id, user)
        answer = _Answer(engine, question, body.conversation_id, user, None, ask_options(body))
        try:
            for _ in answer:
                pass
        except UserError as exc:
            raise HTTPException(422, str(exc)) from exc
        except RagError as exc:
            raise HTTPException(500, f"The answer could not be produced: {exc}") from exc
        finally:
            answer.close()
        return finished(answer)

    @app.post(
        "/api/ask/stream",
        tags=["ask"],
        responses={
            **ERRORS,
            200: {
                "description": "server-sent events: `retrieved` (passages), `token` (new text), "
                "`sentence` (a checked sentence), then `done` (answer, citations, turn_id) or "
                "`error`",
                "content": {"text/event-stream": {}},
            },
        },
    )
    def ask_stream(body: AskRequest, user: User) -> StreamingResponse:
        """Ask a question; the answer streams as server-sent events."""
        question = prepare(body.question, body.conversation_id, user)
        answer = _Answer(engine, question, body.conversation_id, user, None, ask_options(body))

        def events() -> Iterator[str]:
            try:
                for event in answer:
                    if isinstance(event, Retrieved):
                        yield _sse("retrieved", {
                            "question": event.question, "query": event.query,
                            "refused": event.refused, "gate_score": event.gate_score,
                            "passages": [p.model_dump() for p in _passages(event.hits, ())],
                        })  # fmt: skip
                    elif isinstance(event, Token):
                        yield _sse("token", {"text": event.text})
                    elif isinstance(event, SentenceChecked):
                        yield _sse("sentence", SentenceOut.of(event.check).model_dump())
                    elif isinstance(event, Logged):
                        yield _sse("done", finished(answer).model_dump(mode="json"))
            except RagError as exc:
                yield _sse("error", {"detail": str(exc)})
            except Exception:
                log.exception("answering %r failed", question)
                yield _sse("error", {"detail": "The answer failed; the server log has details."})

        return StreamingResponse(
            _stream(events(), answer, answer_limiter),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # -- conversations and turns -------------------------------------------------------------------

    def conversation_detail(conv_id: str, user: str) -> ConversationDetail:
        try:
            record = conv_log.get_conversation(conv_id, user)
            turns = conv_log.turns(conv_id, user)
        except ConversationNotFoundError as exc:
            raise not_found(exc) from exc
        return ConversationDetail(
            **ConversationOut.of(record).model_dump(), turns=[TurnOut.of(t) for t in turns]
        )

    def turn_of(turn_id: int, user: str) -> TurnRecord:
        try:
            return conv_log.get_turn(turn_id, user)
        except ConversationNotFoundError as exc:
            raise not_found(exc) from exc

    @app.get("/api/conversations", response_model=list[ConversationOut],
             tags=["conversations"], responses=ERRORS)  # fmt: skip
    def list_conversations(
        user: User,
        response: Response,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
        cursor: Annotated[str | None, Query(max_length=400)] = None,
        q: Annotated[str | None, Query(max_length=200, description="title contains")] = None,
    ) -> list[ConversationOut]:
        """The caller's conversations, most recently active first, a page at a time: when
        there are more, the `X-Next-Cursor` header (and a `Link: <...>; rel="next"` header)
        gives the `cursor` of the next page."""
        try:
            page = conv_log.list_conversations(user, limit=limit + 1, after=cursor, search=q)
        except UserError as exc:
            raise HTTPException(422, str(exc)) from exc
        if len(page) > limit:
            page = page[:limit]
            following = cursor_of(page[-1])
            response.headers["X-Next-Cursor"] = following
            query = urlencode({k: v for k, v in
                               (("limit", limit), ("cursor", following), ("q", q)) if v})  # fmt: skip
            response.headers["Link"] = f'</api/conversations?{query}>; rel="next"'
        return [ConversationOut.of(c) for c in page]

    @app.get("/api/conversations/{conversation_id}", response_model=ConversationDetail,
             tags=["conversations"], responses=ERRORS)  # fmt: skip
    def get_conversation(conversation_id: str, user: User) -> ConversationDetail:
        """A conversation with all its turns, citations and passages."""
        return conversation_detail(conversation_id, user)

    @app.patch("/api/conversations/{conversation_id}", response_model=ConversationOut,
               tags=["conversations"], responses=ERRORS)  # fmt: skip
    def rename_conversation(
        conversation_id: str, body: RenameRequest, user: User
    ) -> ConversationOut:
        """Rename a conversation (whitespace collapsed, at most 200 characters kept)."""
        try:
            return ConversationOut.of(conv_log.rename(conversation_id, user, body.title))
        except ConversationNotFoundError as exc:
            raise not_found(exc) from exc
        except UserError as exc:
            raise HTTPException(422, str(exc)) from exc

    @app.delete("/api/conversations/{conversation_id}", status_code=204,
                tags=["conversations"], responses=ERRORS)  # fmt: skip
    def delete_conversation(conversation_id: str, user: User) -> Response:
        """Delete a conversation with its turns, passages and feedback."""
        try:
            conv_log.delete(conversation_id, user)
        except ConversationNotFoundError as exc:
            raise not_found(exc) from exc
        return Response(status_code=204)

    @app.get("/api/conversations/{conversation_id}/export", response_model=ConversationExport,
             tags=["conversations"], responses=ERRORS)  # fmt: skip
    def export_conversation(conversation_id: str, user: User) -> JSONResponse:
        """The conversation as a JSON file to download (every turn, citation and passage)."""
        export = ConversationExport(
            exported_at=datetime.now(UTC),
            conversation=conversation_detail(conversation_id, user),
        )
        return JSONResponse(
            export.model_dump(mode="json"),
            headers={
                "Content-Disposition": f'attachment; filename="conversation-{conversation_id}.json"'
            },
        )

    @app.get("/api/turns/{turn_id}", response_model=TurnOut, tags=["conversations"],
             responses=ERRORS)  # fmt: skip
    def get_turn(turn_id: int, user: User) -> TurnOut:
        """One logged answer with its citations, passages and sentence checks."""
        return TurnOut.of(turn_of(turn_id, user))

    @app.get("/api/turns/{turn_id}/citations", response_model=list[CitationOut],
             tags=["conversations"], responses=ERRORS)  # fmt: skip
    def turn_citations(turn_id: int, user: User) -> list[CitationOut]:
        """What each [n] of a logged answer cites, with the supporting sentence."""
        return [CitationOut.of(c) for c in turn_of(turn_id, user).citations]

    @app.get("/api/turns/{turn_id}/passages", response_model=list[PassageOut],
             tags=["conversations"], responses=ERRORS)  # fmt: skip
    def turn_passages(turn_id: int, user: User) -> list[PassageOut]:
        """Every passage retrieved for a logged answer, cited or not, in rank order."""
        record = turn_of(turn_id, user)
        return _passages(record.hits, record.citations)

    # -- OpenAI-compatible -----------------------------------------------------------------------

    @app.get("/v1/models", response_model=ModelList, tags=["openai"], responses=ERRORS)
    def models(user: User) -> ModelList:
        """The one model ragchat serves: answers from your documents."""
        return ModelList(data=[ModelCard(id=MODEL_ID, created=_STARTED)])

    @app.post(
        "/v1/chat/completions",
        response_model=ChatCompletion,
        tags=["openai"],
        responses={
            **ERRORS,
            200: {
                "description": "a chat.completion, or with `stream: true` server-sent "
                "chat.completion.chunk objects ending with `data: [DONE]`; the last chunk "
                "carries `citations` and `ragchat`",
                "content": {"text/event-stream": {}},
            },
        },
    )
    async def chat_completions(body: ChatCompletionRequest, user: User) -> Any:
        """OpenAI's chat completions: the last user message is the question, earlier messages
        are the history. The answer has [n] markers; `citations` says what each one cites."""
        return await answering(complete_chat, body, user)

    def complete_chat(body: ChatCompletionRequest, user: str) -> Any:
        try:
            question, history = _history(body.messages)
        except InvalidQuestionError as exc:
            raise HTTPException(400, str(exc)) from exc
        question = prepare(question, body.conversation_id, user)
        options = {
            "mode": body.mode, "top_k": body.top_k, "answer_mode": body.answer_mode,
            "max_new_tokens": min(body.max_completion_tokens or body.max_tokens or 0, 4096)
            or None,
        }  # fmt: skip
        answer = _Answer(engine, question, body.conversation_id, user, history, options)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())

        def extras() -> dict[str, Any]:
            done = answer.done
            assert done is not None
            info = RagchatInfo(
                conversation_id=answer.conversation_id,
                turn_id=answer.logged.turn_id if answer.logged else None,
                refused=done.refused, mode=done.mode, status=done.status, answer=done.answer,
            )  # fmt: skip
            return {
                "citations": [CitationOut.of(c).model_dump() for c in done.citations],
                "ragchat": info.model_dump(),
            }

        if not body.stream:
            try:
                for _ in answer:
                    pass
            except RagError as exc:
                raise HTTPException(500, f"The answer could not be produced: {exc}") from exc
            finally:
                answer.close()
            done = answer.done
            if done is None:
                raise HTTPException(500, "The answer could not be produced.")
            return ChatCompletion(
                id=completion_id, created=created, model=body.model,
                choices=[CompletionChoice(message=CompletionMessage(content=done.answer))],
                usage=Usage.of(done.timings), **extras(),
            )  # fmt: skip

        def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> str:
            payload = {
                "id": completion_id, "object": "chat.completion.chunk", "created": created,
                "model": body.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **more,
            }  # fmt: skip
            return f"data: {json.dumps(payload, ensure_ascii=False, default=str)}\n\n"

        def chunks() -> Iterator[str]:
            yield chunk({"role": "assistant", "content": ""})
            raw = ""  # generator text so far; held back while it may be the NOT FOUND signal
            sent = ""
            try:
                for event in answer:
                    if isinstance(event, Token):
                        raw += event.text
                        head = raw.lstrip().upper()[: len(NOT_FOUND)]
                        if NOT_FOUND.startswith(head):
                            continue  # maybe "NOT FOUND": the checked answer replaces it
                        piece = raw[len(sent) :]
                        sent = raw
                        yield chunk({"content": piece})
                    elif isinstance(event, Logged):
                        break
            except RagError as exc:
                yield chunk({"content": f"\n\n{exc}"}, "stop")
                yield "data: [DONE]\n\n"
                return
            done = answer.done
            if done is None:
                yield "data: [DONE]\n\n"
                return
            tail = _stream_tail(done.answer, sent)
            if tail:
                yield chunk({"content": tail})
            usage = Usage.of(done.timings).model_dump()
            yield chunk({}, "stop", usage=usage, **extras())
            yield "data: [DONE]\n\n"

        return StreamingResponse(
            _stream(chunks(), answer, answer_limiter),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # -- the UI and the guards in front of everything ----------------------------------------

    ledger = UploadLedger()
    user_of = None
    if ui is not None:
        user_of = _mount_ui(app, ui, settings, users, ui_options, ledger)
    # The parent configures CORS, so Gradio adds none of its own (Gradio 6.31 echoes any Origin
    # with credentials when Host is not localhost): only the listed origins get CORS headers.
    origins = sorted(parse_origins(settings.allowed_origins))
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_credentials=True,
        allow_methods=["*"],
        allow_headers=["*"],
    )
    upload_cap = int(settings.max_file_mb * 1024 * 1024 * 1.05) * MAX_FILES_PER_UPLOAD + 2**20
    config = GuardConfig(
        upload_cap=upload_cap,
        max_file_mb=settings.max_file_mb,
        max_files=MAX_FILES_PER_UPLOAD,
        accounts=accounts,
        trusted_hosts=frozenset(trusted_hosts) if trusted_hosts is not None else None,
        allowed_origins=frozenset(origins),
        session_hours=settings.session_hours,
        default_user=LOCAL_USER,
    )
    app.add_middleware(WebGuard, config=config, ledger=ledger, user_of=user_of)
    app.state.upload_ledger = ledger
    return app


def _mount_ui(
    app: FastAPI,
    ui: Any,
    settings: Settings,
    users: Mapping[str, str] | None,
    ui_options: Mapping[str, Any] | None,
    ledger: UploadLedger,
) -> Any:
    """Mount the Gradio UI at '/' with its guards; returns the resolver of a request's user."""
    import gradio as gr

    from webapp.auth import authenticator

    accepted = inspect.signature(gr.mount_gradio_app).parameters
    options = {k: v for k, v in (ui_options or {}).items() if k in accepted}
    for key in set(ui_options or {}) - set(options):
        log.warning("the mounted UI ignores the launch option %r", key)
    gr.mount_gradio_app(
        app,
        ui,
        path="/",
        auth=async_authenticator(authenticator(dict(users))) if users else None,
        auth_message="Sign in to ragchat." if users else None,
        **options,
    )
    # Gradio 6.31: a mounted app never sets has_launched, which is what turns on Gradio's own
    # check that event inputs name files from its upload folder (guard_file_inputs checks more).
    ui.has_launched = True
    gradio_app = mounted_gradio_app(app)
    gradio_app.tokens = SessionTokens(settings.session_hours * 3600)
    guard_file_inputs(ui, ledger, LOCAL_USER)
    ui.upload_ledger = ledger  # the upload handler checks it again before reading a file
    return gradio_user_resolver(gradio_app)


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ragchat API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #1e293b; }
code, pre { font-family: ui-monospace, monospace; background: #f1f5f9; border-radius: 4px; }
pre { padding: .6rem; overflow-x: auto; }
.op { border-top: 1px solid #e2e8f0; padding: .6rem 0; }
.m { display: inline-block; min-width: 4.5rem; font-weight: 600; color: #4338ca; }
</style></head>
<body><h1>ragchat API</h1>
<p>Everything here is described by <a href="/openapi.json"><code>/openapi.json</code></a>.
With accounts on, send <code>Authorization: Bearer KEY</code>
(keys from <code>ragchat apikey create --user NAME</code>).</p>
<div id="ops">Loading…</div>
<script>
const esc = (s) => String(s ?? '').replace(/[&<>"']/g,
  (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]));
fetch('/openapi.json').then((r) => r.json()).then((spec) => {
  const out = [];
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      out.push(`<div class="op"><span class="m">${esc(method.toUpperCase())}</span>` +
        `<code>${esc(path)}</code><div>${esc(op.summary)}</div>` +
        `<div>${esc(op.description)}</div></div>`);
    }
  }
  document.getElementById('ops').innerHTML = out.join('');
});
</script></body></html>
"""
