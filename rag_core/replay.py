"""Replay: answer a logged turn again, with the settings it was answered with, on today's
knowledge base, and say what changed (answer, citations, passages, gate score, sentence verdicts,
documents deleted or replaced since). A regression check after a settings, model or document
change; nothing is written to the log.

The settings that shape retrieval and answering come from the turn's snapshot; the models and
the index are today's, so a turn answered by another generator or embedder says so.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from rag_core.config import RANKING_KEYS, Settings
from rag_core.db.records import TurnRecord
from rag_core.engine import Engine
from rag_core.errors import InvalidOptionError, RagError, UserError
from rag_core.ingest.pipeline import OPERATOR
from rag_core.retrieval import FusionParams
from rag_core.types import (
    Actor,
    AnswerOptions,
    Citation,
    DocumentRecord,
    Done,
    Hit,
    Scope,
    SentenceCheck,
)

# snapshot keys a replay applies (the rest of the settings are today's)
REPLAYED = (
    *RANKING_KEYS,
    "temperature",
    "refusal_gate",
    "refusal_threshold",
    "support_threshold",
    "extractive_min_score",
)
# snapshot key -> the AnswerOptions override it becomes
OPTIONS = {
    "retrieval_mode": "mode",
    "top_k": "top_k",
    "max_new_tokens": "max_new_tokens",
    "answer_mode": "answer_mode",
    "grounding": "grounding",
}
# settings added after turns were first logged: a snapshot without one was answered with this
UNRECORDED_BEFORE = {"fusion_normalise": "max"}
MODELS = ("generator", "generator_model", "embedder")  # a replay can only run today's
INDEX = ("chunk_size", "chunk_overlap")  # the knowledge base is chunked as it is today

PassageChangeKind = Literal["same", "moved", "in", "out"]


@dataclass(frozen=True)
class PassageChange:
    """A passage retrieved before, after, or both, with its rank each time (None: not retrieved).
    Passages are matched by document name and text, so an unchanged passage of a replaced
    document counts as the same passage."""

    document_name: str
    location: str
    text: str
    rank_before: int | None
    rank_after: int | None
    cited_before: bool
    cited_after: bool

    @property
    def change(self) -> PassageChangeKind:
        if self.rank_before is None:
            return "in"
        if self.rank_after is None:
            return "out"
        return "same" if self.rank_before == self.rank_after else "moved"


@dataclass(frozen=True)
class SentenceChange:
    """One sentence of the logged answer beside its counterpart in the replay (aligned by text:
    None where one side has no such sentence)."""

    before: SentenceCheck | None
    after: SentenceCheck | None

    @property
    def changed(self) -> bool:
        if self.before is None or self.after is None:
            return True
        return (self.before.text, self.before.verdict) != (self.after.text, self.after.verdict)


@dataclass(frozen=True)
class DocumentChange:
    """A document the logged turn retrieved that is no longer in the knowledge base as it was:
    deleted, or replaced by a newer version (`current`)."""

    document_id: str
    name: str
    status: Literal["deleted", "replaced"]
    current: DocumentRecord | None = None


@dataclass(frozen=True)
class Replay:
    """A logged turn (`before`) and its answer today (`after`), with what changed."""

    before: TurnRecord
    after: Done
    passages: tuple[PassageChange, ...]
    sentences: tuple[SentenceChange, ...]
    documents: tuple[DocumentChange, ...]
    models_differ: bool  # the turn was answered by another generator or embedder than today's
    notes: tuple[str, ...]  # what the replay could not reproduce, in words

    @property
    def answer_changed(self) -> bool:
        return _normal(self.before.answer) != _normal(self.after.answer)

    @property
    def citations_moved(self) -> bool:
        """The answer now cites other passages (by document and text) than it did."""
        return _cited(self.before.citations) != _cited(self.after.citations)

    @property
    def refusal_appeared(self) -> bool:
        return not self.before.refused and self.after.refused

    @property
    def refusal_vanished(self) -> bool:
        return self.before.refused and not self.after.refused

    @property
    def gate_before(self) -> float | None:
        return self.before.gate_score

    @property
    def gate_after(self) -> float | None:
        return self.after.gate_score

    @property
    def changed(self) -> bool:
        return (
            self.answer_changed
            or self.citations_moved
            or any(p.change != "same" for p in self.passages)
        )


@dataclass(frozen=True)
class ReplayFailure:
    """A turn that could not be replayed, and why."""

    turn_id: int
    error: str


@dataclass(frozen=True)
class ReplaySummary:
    """Many turns replayed: each replay, the turns that failed, and the counts of what changed."""

    replays: tuple[Replay, ...]
    failures: tuple[ReplayFailure, ...]

    def _ids(self, test: Callable[[Replay], bool]) -> tuple[int, ...]:
        return tuple(r.before.id for r in self.replays if test(r))

    @property
    def answers_changed(self) -> tuple[int, ...]:
        return self._ids(lambda r: r.answer_changed)

    @property
    def citations_moved(self) -> tuple[int, ...]:
        return self._ids(lambda r: r.citations_moved)

    @property
    def refusals_appeared(self) -> tuple[int, ...]:
        return self._ids(lambda r: r.refusal_appeared)

    @property
    def refusals_vanished(self) -> tuple[int, ...]:
        return self._ids(lambda r: r.refusal_vanished)

    @property
    def models_differ(self) -> tuple[int, ...]:
        return self._ids(lambda r: r.models_differ)


def _normal(text: str) -> str:
    return " ".join(text.split())


def _key(document_name: str, text: str) -> tuple[str, str]:
    return (document_name, _normal(text))


def _cited(citations: Sequence[Citation]) -> set[tuple[str, str]]:
    return {_key(c.chunk.document_name, c.chunk.text) for c in citations}


def replay_settings(
    settings: Settings, config: Mapping[str, Any]
) -> tuple[Settings, AnswerOptions, bool, tuple[str, ...]]:
    """Today's settings with a turn's snapshot applied: the settings and options to answer it
    with, whether its models differ from today's, and notes on what cannot be reproduced."""
    notes: list[str] = []
    config = {**UNRECORDED_BEFORE, **config}
    update = {k: config[k] for k in REPLAYED if k in config}
    missing = [k for k in (*REPLAYED, *OPTIONS) if k not in config]
    if missing:
        notes.append(f"Not in the turn's snapshot, today's value used: {', '.join(missing)}.")
    try:
        replayed = type(settings)(**{**dict(settings), **update})
        overrides = {OPTIONS[k]: config[k] for k in OPTIONS if k in config}
        options = replayed.answer_options(**overrides)
    except (ValidationError, InvalidOptionError, TypeError) as exc:
        raise UserError(f"The turn's settings snapshot cannot be replayed: {exc}") from exc
    was = {k: config.get(k) for k in MODELS}
    now = {k: getattr(settings, k) for k in MODELS}
    models_differ = any(k in config and was[k] != now[k] for k in MODELS)
    if models_differ:
        notes.append(
            f"This turn was answered with generator {was['generator']!r} and embedder "
            f"{was['embedder']!r}; today's are {now['generator']!r} and {now['embedder']!r}. "
            "The replay runs today's models: it is not the same run, and differences may come "
            "from the models rather than the documents."
        )
    chunking = [k for k in INDEX if k in config and config[k] != getattr(settings, k)]
    if chunking:
        then = ", ".join(f"{k} {config[k]}" for k in chunking)
        today = ", ".join(f"{k} {getattr(settings, k)}" for k in chunking)
        notes.append(f"The documents were chunked with {then} then; with {today} today.")
    return replayed, options, models_differ, tuple(notes)


def _engine_with(engine: Engine, settings: Settings) -> Engine:
    """The same models, stores and log under other settings (the retriever shares its caches)."""
    retriever = copy.copy(engine.retriever)
    retriever.fusion = FusionParams.from_settings(settings)
    return replace(engine, settings=settings, retriever=retriever)


def diff_passages(
    before: Sequence[Hit],
    before_cited: Sequence[Citation],
    after: Sequence[Hit],
    after_cited: Sequence[Citation],
) -> tuple[PassageChange, ...]:
    """Every passage of either side, in the replay's rank order, then those that dropped out."""
    old = {_key(h.chunk.document_name, h.chunk.text): h for h in reversed(before)}
    new = {_key(h.chunk.document_name, h.chunk.text): h for h in reversed(after)}
    cited_old, cited_new = _cited(before_cited), _cited(after_cited)
    order = [*sorted(new, key=lambda k: new[k].rank), *(k for k in old if k not in new)]
    changes = []
    for key in order:
        hit = new.get(key) or old[key]
        changes.append(
            PassageChange(
                document_name=hit.chunk.document_name,
                location=hit.chunk.location,
                text=hit.chunk.text,
                rank_before=old[key].rank if key in old else None,
                rank_after=new[key].rank if key in new else None,
                cited_before=key in cited_old,
                cited_after=key in cited_new,
            )
        )
    rest = [c for c in changes if c.rank_after is None]
    rest.sort(key=lambda c: c.rank_before or 0)
    return (*[c for c in changes if c.rank_after is not None], *rest)


def diff_sentences(
    before: Sequence[SentenceCheck], after: Sequence[SentenceCheck]
) -> tuple[SentenceChange, ...]:
    """The two answers' sentences side by side, equal texts aligned (difflib)."""
    matcher = difflib.SequenceMatcher(
        None, [_normal(s.text) for s in before], [_normal(s.text) for s in after], autojunk=False
    )
    pairs: list[SentenceChange] = []
    for _tag, i1, i2, j1, j2 in matcher.get_opcodes():
        left, right = list(before[i1:i2]), list(after[j1:j2])
        for i in range(max(len(left), len(right))):
            pairs.append(
                SentenceChange(
                    left[i] if i < len(left) else None, right[i] if i < len(right) else None
                )
            )
    return tuple(pairs)


def document_changes(
    hits: Sequence[Hit], ready: Sequence[DocumentRecord]
) -> tuple[DocumentChange, ...]:
    """The documents of a logged turn's passages that are gone (deleted) or have a newer version
    under the same name (replaced), each once, in rank order."""
    by_id = {d.id for d in ready}
    by_name: dict[str, DocumentRecord] = {}
    for d in ready:
        if d.name not in by_name or d.version > by_name[d.name].version:
            by_name[d.name] = d
    changes: dict[str, DocumentChange] = {}
    for h in hits:
        c = h.chunk
        if c.document_id in by_id or c.document_id in changes:
            continue
        current = by_name.get(c.document_name)
        status: Literal["deleted", "replaced"] = "replaced" if current else "deleted"
        changes[c.document_id] = DocumentChange(c.document_id, c.document_name, status, current)
    return tuple(changes.values())


def replay_turn(engine: Engine, turn_id: int, user: str, actor: Actor = OPERATOR) -> Replay:
    """Answer one of `user`'s logged turns again with its settings snapshot and scope, on
    today's knowledge base as `actor` sees it (ConversationNotFoundError for a turn that is not
    theirs); nothing is logged."""
    before = engine.log.get_turn(turn_id, user)
    history = engine.log.history(before.conversation_id, user, before=before.position)
    settings, options, models_differ, notes = replay_settings(engine.settings, before.config)
    after: Done | None = None
    scope = Scope.from_json(before.config.get("scope"))
    replaying = _engine_with(engine, settings)
    for event in replaying.answer(before.question, history, options, actor=actor, scope=scope):
        if isinstance(event, Done):
            after = event
    if after is None:  # answer() always ends with one Done
        raise RuntimeError(f"Replaying turn {turn_id} ended without an answer")
    if before.status != "complete":
        notes = (*notes, f"The logged turn did not complete (status {before.status!r}).")
    return Replay(
        before=before,
        after=after,
        passages=diff_passages(before.hits, before.citations, after.hits, after.citations),
        sentences=diff_sentences(before.sentences, after.sentences),
        documents=document_changes(before.hits, engine.registry.list()),
        models_differ=models_differ,
        notes=notes,
    )


def replay_since(
    engine: Engine,
    since: datetime,
    *,
    user: str | None = None,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReplaySummary:
    """Replay every turn logged at or after `since` (of `user`, or everyone's), oldest first; a
    turn that fails is counted with its error, the others go on."""
    ids = engine.log.turn_ids(user=user, since=since, limit=limit)
    replays: list[Replay] = []
    failures: list[ReplayFailure] = []
    for done, (turn_id, owner) in enumerate(ids, 1):
        try:
            replays.append(replay_turn(engine, turn_id, owner))
        except RagError as exc:
            failures.append(ReplayFailure(turn_id, str(exc)))
        if progress is not None:
            progress(done, len(ids))
    return ReplaySummary(tuple(replays), tuple(failures))
