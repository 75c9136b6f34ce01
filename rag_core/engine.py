"""The engine: question -> retrieval -> refusal gate -> generation -> sentence checks -> answer.

`Engine.answer` yields typed events (Retrieved, Token, SentenceChecked, Done); `Engine.chat` does
the same inside a logged conversation and adds a Logged event once the turn is stored.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from rag_core.config import Settings
from rag_core.db.log import ConversationLog
from rag_core.db.registry import DocumentRegistry
from rag_core.errors import GenerationError, InvalidQuestionError
from rag_core.grounding import (
    Evidence,
    GateModel,
    check_sentences,
    citations_for,
    extractive_answer,
    gate_features,
    render,
    split_answer,
)
from rag_core.ingest.pipeline import OPERATOR, IngestPipeline, Progress
from rag_core.prompting import NOT_FOUND, build_messages, is_not_found, markers_in, strip_markers
from rag_core.protocols import Embedder, Generator, KeywordIndex, VectorStore
from rag_core.retrieval import FusionParams, Retriever, standalone_query
from rag_core.types import (
    Actor,
    Chunk,
    Citation,
    DocumentRecord,
    Done,
    Event,
    Hit,
    IngestResult,
    Logged,
    Message,
    RetrievalMode,
    Retrieved,
    SentenceCheck,
    SentenceChecked,
    Timings,
    Token,
    Turn,
)

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")  # lone halves (JSON allows them; UTF-8 cannot)


def refusal_text(question: str) -> str:
    q = " ".join(question.split())
    if len(q) > 120:
        q = q[:117] + "..."
    return (
        f"Your documents don't say. Nothing in them answers “{q}”. "
        "The closest passages are listed under Sources."
    )


def clean_question(question: str, max_chars: int) -> str:
    """Validate a question: not empty, not absurdly long; control characters removed."""
    if not isinstance(question, str):
        raise InvalidQuestionError("The question must be text.")
    text = _SURROGATE.sub("\ufffd", _CONTROL.sub(" ", question)).strip()
    if not text:
        raise InvalidQuestionError("The question is empty: type a question about your documents.")
    if len(text) > max_chars:
        raise InvalidQuestionError(
            f"The question is {len(text):,} characters long; the limit is {max_chars:,} "
            "(setting RAGCHAT_MAX_QUESTION_CHARS). Ask a shorter question."
        )
    return text


class Engine:
    """Facade over ingestion, retrieval, generation, grounding and the conversation log."""

    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder,
        store: VectorStore,
        keyword: KeywordIndex,
        generator: Generator,
        registry: DocumentRegistry,
        log: ConversationLog,
        keyword_sync: Callable[[], object] | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.keyword = keyword
        self.generator = generator
        self.registry = registry
        self.log = log
        # brings a replica's local keyword index up to date with the shared registry and store
        self.keyword_sync = keyword_sync
        self.pipeline = IngestPipeline(settings, embedder, store, keyword, registry)
        self.retriever = Retriever(
            embedder,
            store,
            keyword,
            registry.ready_chunk_counts,
            FusionParams.from_settings(settings),
        )

    # -- documents ----------------------------------------------------------------------------

    def ingest_path(
        self,
        path: Path,
        progress: Progress | None = None,
        *,
        name: str | None = None,
        actor: Actor = OPERATOR,
    ) -> IngestResult:
        return self.pipeline.ingest_path(Path(path), progress, name=name, actor=actor)

    def ingest_bytes(
        self, data: bytes, name: str, progress: Progress | None = None, *, actor: Actor = OPERATOR
    ) -> IngestResult:
        return self.pipeline.ingest_bytes(data, name, progress, actor=actor)

    def delete_document(self, id_or_name: str, *, actor: Actor = OPERATOR) -> DocumentRecord:
        """Delete a document (PermissionDeniedError if `actor` may not change it)."""
        return self.pipeline.delete(id_or_name, actor=actor)

    def documents(self) -> list[DocumentRecord]:
        return self.registry.list()

    def chunks_of(self, id_or_name: str) -> list[Chunk]:
        return self.store.chunks_of(self.registry.get(id_or_name).id)

    # -- answering ----------------------------------------------------------------------------

    def answer(
        self,
        question: str,
        history: Sequence[Turn] = (),
        *,
        mode: RetrievalMode | None = None,
        top_k: int | None = None,
        max_new_tokens: int | None = None,
        answer_mode: str | None = None,
        grounding: str | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[Event]:
        """Answer a question from the documents, streaming events. Ends with exactly one Done."""
        s = self.settings
        question = clean_question(question, s.max_question_chars)
        mode = mode or s.retrieval_mode
        top_k = top_k or s.top_k
        max_new_tokens = max_new_tokens or s.max_new_tokens
        answer_mode = answer_mode or s.answer_mode
        grounding = grounding or s.grounding
        if answer_mode not in ("generate", "extractive"):
            raise InvalidQuestionError(
                f"unknown answer mode {answer_mode!r}: generate or extractive"
            )
        if grounding not in ("mark", "remove", "off"):
            raise InvalidQuestionError(
                f"unknown grounding policy {grounding!r}: mark, remove or off"
            )
        stop = stop or threading.Event()
        config: dict[str, Any] = {
            **s.snapshot(),
            "retrieval_mode": mode,
            "top_k": top_k,
            "max_new_tokens": max_new_tokens,
            "answer_mode": answer_mode,
            "grounding": grounding,
        }
        t0 = time.perf_counter()
        if self.keyword_sync is not None:
            self.keyword_sync()
        query = standalone_query(question, history)
        result = self.retriever.search(query, mode=mode, k=top_k, candidates=s.candidates)
        hits = tuple(result.hits)
        gate = 0.0
        if hits:
            signals = gate_features(hits, result.top_dense, self.retriever.term_stats(query))
            gate = GateModel.from_weights(s.refusal_gate).score(signals)
        refused = not hits or gate < s.refusal_threshold
        retrieval_ms = (time.perf_counter() - t0) * 1000
        yield Retrieved(question, query, hits, refused, round(gate, 4))

        def done(**kw: Any) -> Done:
            total = (time.perf_counter() - t0) * 1000
            timings = kw.pop("timings", None) or Timings(retrieval_ms=retrieval_ms, total_ms=total)
            base: dict[str, Any] = dict(
                question=question, query=query, hits=hits, config=config, timings=timings
            )
            base.update(kw)
            return Done(**base)

        if refused:
            text = refusal_text(question)
            yield Token(text)
            yield done(
                answer=text, raw_answer="", citations=(), sentences=(), refused=True,
                mode="refused", status="complete",
            )  # fmt: skip
            return

        evidence = Evidence(question, hits, self.embedder)
        if answer_mode == "extractive":
            yield from self._extractive(question, evidence, done, reason=None)
            return

        messages = build_messages(question, hits, history, s.max_history_turns)
        raw = ""
        checks: list[SentenceCheck] = []
        seen: set[str] = set()
        consumed = 0  # sentences of `raw` already checked (or skipped as repeats)
        first_token_ms: float | None = None
        t_gen = time.perf_counter()
        status = "complete"
        error: str | None = None
        halt = threading.Event()  # set by the user's stop, or by us (NOT FOUND, repetition)

        def check(new_sentences: Sequence[str]) -> list[SentenceCheck]:
            fresh = []
            for sentence in new_sentences:
                key = " ".join(strip_markers(sentence).lower().split())
                if key in seen:  # small models loop; a repeated sentence ends the answer
                    halt.set()
                    break
                seen.add(key)
                fresh.append(sentence)
            new = check_sentences(
                fresh, evidence, threshold=s.support_threshold, start_index=len(checks)
            )
            checks.extend(new)
            return new

        try:
            stream = self.generator.stream(
                messages, max_new_tokens=max_new_tokens, temperature=s.temperature, stop=halt
            )
            for piece in stream:
                if stop.is_set():
                    halt.set()
                if not piece:
                    continue
                if first_token_ms is None:
                    first_token_ms = (time.perf_counter() - t0) * 1000
                raw += piece
                yield Token(piece)
                if raw.lstrip().upper().startswith(NOT_FOUND):
                    halt.set()
                    continue
                if halt.is_set():
                    continue
                complete = split_answer(raw)[:-1]
                if len(complete) > consumed:
                    new = check(complete[consumed:])
                    consumed = len(complete)
                    for c in new:
                        yield SentenceChecked(c)
            if stop.is_set() and not is_not_found(raw):
                status = "stopped"
        except GenerationError as exc:
            status, error = "error", f"The answer could not be generated: {exc}"
        gen_ms = (time.perf_counter() - t_gen) * 1000
        tokens = self.generator.count_tokens(raw) if raw else 0
        prompt_tokens = _prompt_tokens(self.generator, messages)
        decode_s = max((gen_ms - ((first_token_ms or 0) - retrieval_ms)) / 1000, 1e-6)
        timings = Timings(
            retrieval_ms=retrieval_ms,
            first_token_ms=first_token_ms,
            generation_ms=gen_ms,
            total_ms=(time.perf_counter() - t0) * 1000,
            tokens=tokens,
            tokens_per_s=(tokens - 1) / decode_s if tokens > 1 else None,
            prompt_tokens=prompt_tokens,
        )

        if is_not_found(raw):
            # the generator says the passages cannot answer: quote them if one clearly does
            yield from self._extractive(question, evidence, done, reason="not-found", raw=raw)
            return

        sentences = split_answer(raw)
        if len(sentences) > consumed and status != "stopped" and not halt.is_set():
            for c in check(sentences[consumed:]):
                yield SentenceChecked(c)

        supported = [c for c in checks if c.supported]
        if status == "complete" and not supported:
            yield from self._extractive(question, evidence, done, reason="unsupported", raw=raw,
                                        checks=checks, timings=timings)  # fmt: skip
            return

        if grounding == "off":
            shown = raw.strip()
            citations = _marker_citations(raw, hits)
        else:
            shown = render(checks, grounding)
            citations = citations_for(checks, hits)
        if status == "error" and not shown:
            shown = error or "The answer could not be generated."
        yield done(
            answer=shown, raw_answer=raw, citations=citations, sentences=tuple(checks),
            refused=False, mode="generated", status=status, timings=timings, error=error,
        )  # fmt: skip

    def _extractive(
        self,
        question: str,
        evidence: Evidence,
        done: Any,
        *,
        reason: str | None,
        raw: str = "",
        checks: Sequence[SentenceCheck] = (),
        timings: Timings | None = None,
    ) -> Iterator[Event]:
        """Quote the passage sentences that best answer the question; refuse if none does."""
        quoted = extractive_answer(question, evidence, min_score=self.settings.extractive_min_score)
        rejected = tuple(checks)
        if not quoted:
            text = refusal_text(question)
            if reason is None:
                yield Token(text)
            yield done(
                answer=text, raw_answer=raw, citations=(), sentences=rejected, refused=True,
                mode="refused", status="complete", timings=timings,
            )  # fmt: skip
            return
        body = " ".join(c.text for c in quoted)
        if reason == "unsupported":
            text = (
                "The generated answer could not be checked against your documents; they say: "
                + body
            )
        elif reason == "not-found":
            text = "The documents may not answer this directly; the closest they say is: " + body
        else:
            text = body
        if reason is None:
            yield Token(text)
        for c in quoted:
            yield SentenceChecked(c)
        offset = len(rejected)
        numbered = tuple(replace(c, index=offset + i) for i, c in enumerate(quoted))
        yield done(
            answer=text, raw_answer=raw, citations=citations_for(quoted, evidence.hits),
            sentences=rejected + numbered, refused=False, mode="extractive", status="complete",
            timings=timings,
        )  # fmt: skip

    def chat(
        self,
        question: str,
        conversation_id: str | None = None,
        *,
        user: str = "local",
        stop: threading.Event | None = None,
        history: Sequence[Turn] | None = None,
        **options: Any,
    ) -> Iterator[Event]:
        """`answer` inside a logged conversation: history comes from the log (or, for a caller
        that keeps its own, such as an OpenAI-style client, from `history`), the turn goes to it.

        The turn is written even when the caller stops early or the generator fails, marked
        'stopped' or 'error', so the log always has a complete record of what was shown.
        """
        if conversation_id is None:
            conversation_id = self.log.create_conversation(user, "New conversation").id
        logged = self.log.history(conversation_id, user)  # also checks the user owns it
        history = logged if history is None else history
        stop = stop or threading.Event()
        events = self.answer(question, history, stop=stop, **options)
        final: Done | None = None
        retrieved: Retrieved | None = None
        streamed = ""
        try:
            for event in events:
                if isinstance(event, Done):
                    final = event
                    turn_id = self.log.record_turn(conversation_id, user, event)
                    yield event
                    yield Logged(conversation_id, turn_id)
                else:
                    if isinstance(event, Retrieved):
                        retrieved = event
                    elif isinstance(event, Token):
                        streamed += event.text
                    yield event
        except Exception as exc:  # an unexpected failure mid-answer: log what was shown, re-raise
            if final is None and retrieved is not None:
                final = _failed(retrieved, streamed, exc, self.settings.snapshot())
                self.log.record_turn(conversation_id, user, final)
            raise
        finally:
            if final is None:
                stop.set()
                for event in events:  # drain: the generator ends promptly once stop is set
                    if isinstance(event, Done):
                        final = replace(event, status="stopped")
                        self.log.record_turn(conversation_id, user, final)


def _prompt_tokens(generator: Generator, messages: Sequence[Message]) -> int:
    """Tokens of the prompt the generator read; 0 if it cannot say."""
    try:
        return int(generator.count_prompt_tokens(messages))
    except (AttributeError, GenerationError, ValueError):
        return 0


def _failed(retrieved: Retrieved, streamed: str, exc: Exception, config: Any) -> Done:
    """The turn to log when answering raised: the passages and the text shown so far."""
    error = f"The answer failed: {type(exc).__name__}: {exc}"
    return Done(
        question=retrieved.question, query=retrieved.query, answer=streamed.strip() or error,
        raw_answer=streamed, citations=(), hits=retrieved.hits, sentences=(), refused=False,
        mode="generated", status="error", timings=Timings(), config=config, error=error,
    )  # fmt: skip


def _marker_citations(raw: str, hits: Sequence[Hit]) -> tuple[Citation, ...]:
    """Citations exactly as the generator wrote them (markers to no passage are dropped)."""
    return tuple(Citation(n, hits[n - 1].chunk) for n in markers_in(raw) if 1 <= n <= len(hits))
