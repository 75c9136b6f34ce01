"""The engine: question -> retrieval -> refusal gate -> generation -> sentence checks -> answer.

`Engine.retrieve` finds the passages and decides whether the documents can answer;
`Engine.answer` yields typed events (Retrieved, Token, SentenceChecked, Done); `Engine.chat` does
the same inside a logged conversation and adds a Logged event once the turn is stored. Options
are resolved once, from Settings, into a frozen AnswerOptions (`Settings.answer_options`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import KW_ONLY, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag_core.answer_types import expected_kinds
from rag_core.answering import Answerer, refusal_text
from rag_core.config import Settings
from rag_core.db.collections import Collections
from rag_core.db.insights import DEFAULT_DAYS, Insights, LogInsights
from rag_core.db.log import ConversationLog
from rag_core.db.registry import DocumentRegistry
from rag_core.errors import (
    CollectionConflictError,
    ConfigError,
    DocumentNotFoundError,
    InvalidOptionError,
    PermissionDeniedError,
)
from rag_core.grounding import Evidence, GateModel, gate_features
from rag_core.ingest.pipeline import OPERATOR, IngestPipeline, IngestSource, Progress, Target
from rag_core.protocols import Embedder, KeywordIndex, VectorStore
from rag_core.protocols import Generator as TextGenerator
from rag_core.retrieval import Retriever, standalone_query
from rag_core.text import clean_question
from rag_core.types import (
    Actor,
    AnswerOptions,
    Chunk,
    CollectionRecord,
    DocumentRecord,
    Done,
    Event,
    Hit,
    IndexRecord,
    IndexStatus,
    IngestResult,
    Logged,
    Retrieved,
    Scope,
    Timings,
    Token,
    Turn,
)

if TYPE_CHECKING:
    from rag_core.extractive import Scored

__all__ = ["Engine", "IndexWatch", "clean_question", "refusal_text"]

_FOLLOW_LOCK = threading.Lock()


@dataclass(frozen=True)
class IndexWatch:
    """The vector index an engine serves, and how it follows a reindex: `status()` reads the
    registry's active and building indexes; `follow(record)` builds an engine over a newly
    active one (its embedder and collection)."""

    record: IndexRecord
    status: Callable[[], IndexStatus]
    follow: Callable[[IndexRecord], Engine]


@dataclass(eq=False, repr=False)
class Engine:
    """Facade over ingestion, retrieval, generation, grounding and the conversation log.

    factory.compose_engine wires it: the pipeline and the retriever are handed in, built over the
    same embedder, stores and registry. A dataclass so that `dataclasses.replace` gives the same
    backends under other settings (replay); compared by identity, like any service object.
    """

    settings: Settings
    _: KW_ONLY
    embedder: Embedder
    store: VectorStore
    keyword: KeywordIndex
    generator: TextGenerator
    registry: DocumentRegistry
    log: ConversationLog
    pipeline: IngestPipeline
    retriever: Retriever
    # brings a replica's local keyword index up to date with the shared registry and store
    keyword_sync: Callable[[], object] | None = None
    # the recorded vector index served (None: composed by hand, as tests do)
    index: IndexWatch | None = None

    # -- the vector index ---------------------------------------------------------------------

    def index_status(self) -> IndexStatus | None:
        """The active index and a reindex in progress (None for an engine without records)."""
        return self.index.status() if self.index is not None else None

    def follow_index(self) -> None:
        """Switch to the active index if a reindex swapped it in since this engine was built
        (its embedder, collection, pipeline and retriever; a request already under way
        finishes on the old ones). Every request checks first: one small registry read."""
        watch = self.index
        if watch is None:
            return
        active = watch.status().active
        if active is None or active.id == watch.record.id:
            return
        with _FOLLOW_LOCK:
            if self.index is not None and self.index.record.id == active.id:
                return
            fresh = watch.follow(active)
            for f in fields(self):
                setattr(self, f.name, getattr(fresh, f.name))

    # -- documents ----------------------------------------------------------------------------

    def ingest(
        self,
        sources: Iterable[IngestSource],
        progress: Progress | None = None,
        *,
        cancel: threading.Event | None = None,
        actor: Actor = OPERATOR,
        collection: str | None = None,
    ) -> list[IngestResult]:
        """Ingest files through one batched path (see IngestPipeline.ingest_sources): their
        chunks are embedded together; each file succeeds or fails on its own; results in order.
        Every entry point (the page, the API, the command line) ingests through here. Setting
        `cancel` stops it: files not yet added come back 'cancelled', with nothing of them kept.
        New documents join `collection` (a name or id `actor` may see; None: Default), and so
        does a document found to hold the same content."""
        self.follow_index()
        target = self._target(collection, actor)
        results = self.pipeline.ingest_sources(
            sources, progress, actor=actor, cancel=cancel, target=target
        )
        if target.collection_id is not None:  # the same bytes as a document of theirs: file it
            same = {
                r.document.id
                for r in results
                if r.status == "duplicate" and r.document and actor.may_change(r.document)
            }
            if same:
                self.collections.add_documents(target.collection_id, same, actor)
        return results

    def _target(self, collection: str | None, actor: Actor) -> Target:
        cid = self.collections.get(collection, actor).id if collection is not None else None
        return Target(cid, self.collections.visible_document_ids(actor))

    def ingest_path(
        self,
        path: Path,
        progress: Progress | None = None,
        *,
        name: str | None = None,
        actor: Actor = OPERATOR,
        collection: str | None = None,
    ) -> IngestResult:
        """Ingest one file from disk through the batched path; `name` is the name the user gave
        the file (an upload stored under a generated name), else its own."""
        source: IngestSource = Path(path) if name is None else (Path(path), name)
        return self.ingest([source], progress, actor=actor, collection=collection)[0]

    def ingest_bytes(
        self,
        data: bytes,
        name: str,
        progress: Progress | None = None,
        *,
        actor: Actor = OPERATOR,
        collection: str | None = None,
    ) -> IngestResult:
        return self.ingest([(data, name)], progress, actor=actor, collection=collection)[0]

    def delete_document(self, id_or_name: str, *, actor: Actor = OPERATOR) -> DocumentRecord:
        """Delete a document (not found if `actor` may not see it; PermissionDeniedError if
        they may see but not change it)."""
        self.follow_index()
        record = self.document(id_or_name, actor=actor)
        return self.pipeline.delete(record.id, actor=actor)

    @property
    def collections(self) -> Collections:
        """The collections in the registry (a light object over the same database)."""
        return Collections(self.registry.db)

    def documents(self, actor: Actor = OPERATOR) -> list[DocumentRecord]:
        """The ready documents `actor` may see, by name."""
        visible = self.collections.visible_document_ids(actor)
        found = self.registry.list()
        return found if visible is None else [d for d in found if d.id in visible]

    def delete_collection(
        self, name_or_id: str, *, actor: Actor = OPERATOR, delete_documents: bool = False
    ) -> tuple[CollectionRecord, list[DocumentRecord]]:
        """Delete a collection. Documents found in no other collection would be stranded: the
        deletion is refused (naming how many) unless `delete_documents`, which deletes them."""
        record = self.collections.deletable(name_or_id, actor)
        orphans = self.collections.orphans(record.id)
        theirs = sorted(d.name for d in map(self.registry.get, orphans) if not actor.may_change(d))
        if orphans and delete_documents and theirs:
            raise PermissionDeniedError(
                f"Collection {record.name!r} holds documents found nowhere else that are not"
                f" yours to delete: {', '.join(theirs)}; move them to another collection first"
            )
        if orphans and not delete_documents:
            raise CollectionConflictError(
                f"Collection {record.name!r} holds {len(orphans)} document(s) found in no other"
                " collection; move them first, or delete the collection with its documents"
            )
        self.collections.delete(record)
        removed = []
        for doc_id in sorted(orphans):
            removed.append(self.pipeline.delete(doc_id, actor=actor))
        return record, removed

    def insights(self, days: int = DEFAULT_DAYS, *, actor: Actor = OPERATOR) -> Insights:
        """What the log says over the last `days` days, across every user: for the operator or
        an admin only (PermissionDeniedError otherwise)."""
        if actor.name is not None and not actor.admin:
            raise PermissionDeniedError(
                "Insights cover every user's questions: only an admin (RAGCHAT_ADMINS) sees them"
            )
        return LogInsights(self.log.db).report(days)

    def document(self, id_or_name: str, *, actor: Actor = OPERATOR) -> DocumentRecord:
        """A document by id, unique id prefix or name (DocumentNotFoundError otherwise, and
        when `actor` may not see it: its existence is not revealed)."""
        record = self.registry.get(id_or_name)
        visible = self.collections.visible_document_ids(actor)
        if visible is not None and record.id not in visible:
            raise DocumentNotFoundError(f"No document named {id_or_name.strip()!r} or with that id")
        return record

    def count_documents(self, actor: Actor = OPERATOR) -> int:
        visible = self.collections.visible_document_ids(actor)
        return (
            self.registry.count() if visible is None else len(visible & self.registry.ready_ids())
        )

    def chunks_of(self, id_or_name: str, *, actor: Actor = OPERATOR) -> list[Chunk]:
        self.follow_index()
        return self.store.chunks_of(self.document(id_or_name, actor=actor).id)

    def scoped(
        self, options: AnswerOptions, scope: Scope | None = None, actor: Actor = OPERATOR
    ) -> AnswerOptions:
        """`options` for a question in `scope` (None: the one already in `options`) asked by
        `actor`: the document ids it searches are resolved here, and only those are retrieved
        (a collection or document they may not see is not found)."""
        scope = options.scope if scope is None else scope
        ids = self.collections.resolve(scope, actor, lambda key: self.registry.get(key).id)
        return replace(options, scope=scope, document_ids=ids)

    # -- maintenance --------------------------------------------------------------------------

    def recover(self, *, wait: bool = True) -> list[str]:
        """Finish or undo what a crash interrupted; what was done, a line each."""
        return self.pipeline.recover(wait=wait)

    def check(self) -> list[str]:
        """Compare the registry, the vector store and the keyword index; each problem found."""
        return self.pipeline.check()

    def repair(self) -> list[str]:
        """Fix what `check` finds; what was done."""
        return self.pipeline.repair()

    def warm_up(self) -> None:
        """Bring the keyword index up to date and load the models, so the first question waits
        for neither."""
        if self.keyword_sync is not None:
            self.keyword_sync()
        self.embedder.embed_query("warm up")
        load = getattr(self.generator, "load", None)
        if callable(load):
            load()

    # -- answering ----------------------------------------------------------------------------

    def options(self, **overrides: Any) -> AnswerOptions:
        """The settings' answer options with a request's overrides (None keeps a setting). A RAG
        decoding asked of a generator without token probabilities is refused here, by name."""
        options = self.settings.answer_options(**overrides)
        if options.strategy in ("rag-token", "rag-sequence"):
            from rag_core.generators.rag_decoding import require_token_probabilities

            try:
                require_token_probabilities(self.generator, options.strategy)
            except ConfigError as exc:
                raise InvalidOptionError(str(exc)) from exc
        return options

    def retrieve(
        self,
        question: str,
        history: Sequence[Turn] = (),
        options: AnswerOptions | None = None,
    ) -> Retrieved:
        """The passages for a question, and whether the documents can answer it at all: the
        refusal gate's score from the dense similarity and how much of the question's rare
        vocabulary the passages and the documents hold."""
        s = self.settings
        options = options or s.answer_options()
        question = clean_question(question, s.max_question_chars)
        started = time.perf_counter()
        self.follow_index()
        if self.keyword_sync is not None:
            self.keyword_sync()
        query = standalone_query(question, history)
        scope = None if options.document_ids is None else sorted(options.document_ids)
        result = self.retriever.search(
            query, mode=options.mode, k=options.top_k, candidates=s.candidates, document_ids=scope
        )
        hits = tuple(result.hits)
        features = None
        gate = 0.0
        ranked: list[Scored] | None = None
        if hits:
            model = GateModel.from_weights(s.refusal_gate)
            terms = self.retriever.term_stats(query, document_ids=scope)
            features = gate_features(hits, result.top_dense, terms)
            if model.reads_sentence:
                ranked = self._ranked_sentences(question, hits)
                features = replace(features, sentence=ranked[0].score if ranked else 0.0)
            if model.reads_kind:
                features = replace(features, asks_kind=1.0 if expected_kinds(question) else 0.0)
            gate = model.score(features)
        refused = not hits or gate < s.refusal_threshold
        if refused and hits and s.gate_override_score > 0:
            refused = not self._holds_the_answer(
                ranked if ranked is not None else self._ranked_sentences(question, hits)
            )
        elapsed = (time.perf_counter() - started) * 1000
        return Retrieved(question, query, hits, refused, round(gate, 4), features, elapsed)

    def _ranked_sentences(self, question: str, hits: Sequence[Hit]) -> list[Scored]:
        """The passages' sentences scored as answers to the question, best first."""
        from rag_core.extractive import score_sentences

        return score_sentences(question, Evidence(question, hits, self.embedder))

    def _holds_the_answer(self, ranked: Sequence[Scored]) -> bool:
        """The answer-level check that overrides the gate: a passage sentence holds a fact of
        the kind the question asks for (a duration, an amount, ...) and scores as an answer at
        least `gate_override_score`. The gate reads the question's words; a question worded
        unlike its documents ("how heavy" for "Weight: 1.4 kg") is answered all the same."""
        return (
            bool(ranked)
            and ranked[0].holds_kind
            and (ranked[0].score >= self.settings.gate_override_score)
        )

    def answer(
        self,
        question: str,
        history: Sequence[Turn] = (),
        options: AnswerOptions | None = None,
        *,
        stop: threading.Event | None = None,
        actor: Actor = OPERATOR,
        scope: Scope | None = None,
    ) -> Iterator[Event]:
        """Answer a question from the documents `actor` may see within `scope` (None: the one in
        `options`), streaming events. Ends with exactly one Done. The question, the options and
        the scope are checked before the first event."""
        options = self.scoped(options or self.settings.answer_options(), scope, actor)
        question = clean_question(question, self.settings.max_question_chars)
        return self._answer(question, history, options, stop or threading.Event())

    def _answer(
        self,
        question: str,
        history: Sequence[Turn],
        options: AnswerOptions,
        stop: threading.Event,
    ) -> Iterator[Event]:
        started = time.perf_counter()
        retrieved = self.retrieve(question, history, options)
        yield retrieved
        config = {**self.settings.snapshot(), **_option_snapshot(options)}
        answerer = Answerer(
            self.settings, self.embedder, self.generator, retrieved, options, config, started
        )
        yield from answerer.run(history, stop)

    def chat(
        self,
        question: str,
        conversation_id: str | None = None,
        *,
        user: str = "local",
        options: AnswerOptions | None = None,
        stop: threading.Event | None = None,
        history: Sequence[Turn] | None = None,
        actor: Actor = OPERATOR,
        scope: Scope | None = None,
    ) -> Generator[Event, None, None]:
        """`answer` inside a logged conversation: history comes from the log (or, for a caller
        that keeps its own, such as an OpenAI-style client, from `history`), the turn goes to it.

        Everything is checked before the first event (the question, the options, that the user
        owns the conversation); the conversation is created only then. The turn is written even
        when the caller stops early or the generator fails, marked 'stopped' or 'error', so the
        log always has a complete record of what was shown.

        `actor` is who asks (with accounts on, `user` as an Actor: only the collections they may
        see are searched). `scope` is what to search; the conversation remembers it, and a later
        question without one searches the conversation's scope again.
        """
        options = options or self.settings.answer_options()
        question = clean_question(question, self.settings.max_question_chars)
        remembered = (
            self.log.get_conversation(conversation_id, user).scope if conversation_id else None
        )
        options = self.scoped(options, scope if scope is not None else remembered, actor)
        logged = self.log.history(conversation_id, user) if conversation_id else []
        if conversation_id is None:
            conversation_id = self.log.create_conversation(user, scope=options.scope).id
        elif scope is not None and scope != remembered:
            self.log.set_scope(conversation_id, user, scope)
        stop = stop or threading.Event()
        events = self._answer(question, logged if history is None else history, options, stop)
        return self._logged(events, conversation_id, user, stop)

    def _logged(
        self,
        events: Iterator[Event],
        conversation_id: str,
        user: str,
        stop: threading.Event,
    ) -> Generator[Event, None, None]:
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
                    continue
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


def _option_snapshot(options: AnswerOptions) -> dict[str, Any]:
    """The options as logged with the turn (their names as in the settings)."""
    return {
        "retrieval_mode": options.mode,
        "top_k": options.top_k,
        "max_new_tokens": options.max_new_tokens,
        "answer_mode": options.answer_mode,
        "answer_strategy": options.strategy,
        "grounding": options.grounding,
        **({} if options.scope.everything else {"scope": options.scope.as_json()}),
    }


def _failed(retrieved: Retrieved, streamed: str, exc: Exception, config: Any) -> Done:
    """The turn to log when answering raised: the passages and the text shown so far."""
    error = f"The answer failed: {type(exc).__name__}: {exc}"
    return Done(
        question=retrieved.question,
        query=retrieved.query,
        answer=streamed.strip() or error,
        raw_answer=streamed,
        citations=(),
        hits=retrieved.hits,
        sentences=(),
        refused=False,
        mode="generated",
        status="error",
        timings=Timings(),
        config=config,
        error=error,
    )
