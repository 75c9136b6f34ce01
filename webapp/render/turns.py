"""One question and its answer -> chat bubbles: while it streams (checked sentences, the unchecked
tail) and once it is final (citation chips, unsupported sentences struck, feedback thumbs)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from rag_core.db.records import Feedback, TurnRecord
from rag_core.grounding import render_answer, split_answer
from rag_core.types import (
    Chunk,
    Citation,
    Done,
    Event,
    Hit,
    Logged,
    Retrieved,
    SentenceCheck,
    SentenceChecked,
    Token,
)
from webapp.render.text import esc

_MARKER = re.compile(r"\[(\d{1,3})\]")
_NO_SUPPORT = "no passage supports it"

ICON_UP = '<span class="rc-icon rc-icon-up" aria-hidden="true"></span>'
ICON_DOWN = '<span class="rc-icon rc-icon-down" aria-hidden="true"></span>'


@dataclass
class TurnView:
    """One question and its answer as shown: built from streamed events or from a logged turn."""

    question: str
    turn_id: int | None = None
    conversation_id: str | None = None
    hits: tuple[Hit, ...] = ()
    raw: str = ""
    checks: list[SentenceCheck] = field(default_factory=list)
    retrieved: bool = False
    finished: bool = False
    answer: str = ""
    lead: str = ""
    mode: str = ""
    status: str = "streaming"
    error: str | None = None
    refused: bool = False
    citations: tuple[Citation, ...] = ()
    sentences: tuple[SentenceCheck, ...] = ()
    rating: int | None = None
    comment: str | None = None
    feedback: Feedback | None = None  # with a thumbs down: the reason and the marked passage
    timings: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    query: str = ""

    @classmethod
    def from_record(cls, rec: TurnRecord) -> TurnView:
        """A logged turn, exactly as it was answered."""
        view = cls(
            question=rec.question,
            turn_id=rec.id,
            conversation_id=rec.conversation_id,
            raw=rec.raw_answer,
            checks=list(rec.sentences),
            retrieved=True,
            rating=rec.feedback_rating,
            comment=rec.feedback_comment,
            feedback=rec.feedback,
            query=rec.query,
        )
        view._finish(rec, asdict(rec.timings))
        return view

    def apply(self, event: Event) -> None:
        """Fold one engine event into the view (the engine yields new text; we accumulate)."""
        if isinstance(event, Retrieved):
            self.hits, self.refused, self.retrieved = event.hits, event.refused, True
            self.query = event.query
        elif isinstance(event, Token):
            self.raw += event.text
        elif isinstance(event, SentenceChecked):
            self.checks.append(event.check)
        elif isinstance(event, Done):
            self._finish(event, {k: getattr(event.timings, k) for k in ("total_ms", "tokens")})
        elif isinstance(event, Logged):
            self.turn_id, self.conversation_id = event.turn_id, event.conversation_id

    def _finish(self, final: Done | TurnRecord, timings: dict[str, Any]) -> None:
        """The final answer, from the Done event or from the log."""
        self.finished = True
        self.answer, self.mode, self.status = final.answer, final.mode, final.status
        self.lead = final.lead
        self.error, self.refused, self.hits = final.error, final.refused, final.hits
        self.citations, self.sentences = final.citations, final.sentences
        self.timings = timings
        self.config = dict(final.config)


def _chip(n: int, view: TurnView, cites: dict[int, Citation]) -> str:
    """A clickable [n] that opens passage n of this turn in the sources panel."""
    cite = cites.get(n)
    chunk: Chunk | None = cite.chunk if cite else None
    weak = cite is None
    if chunk is None and 1 <= n <= len(view.hits):
        chunk = view.hits[n - 1].chunk
    if chunk is None:
        return esc(f"[{n}]")
    where = f" · {chunk.shown_location}" if chunk.shown_location else ""
    title = f"[{n}] {chunk.document_name}{where}"
    turn = "" if view.turn_id is None else str(view.turn_id)
    cls = "rc-chip rc-chip-weak" if weak else "rc-chip"
    return (
        f'<button type="button" class="{cls}" data-action="cite" data-turn="{turn}" '
        f'data-n="{n}" title="{esc(title)}" aria-label="{esc("Show source " + title)}">{n}</button>'
    )


def _text_with_chips(text: str, view: TurnView, cites: dict[int, Citation]) -> str:
    out, pos = [], 0
    for m in _MARKER.finditer(text):
        out.append(esc(text[pos : m.start()]).replace("\n", "<br>"))
        out.append(_chip(int(m.group(1)), view, cites))
        pos = m.end()
    out.append(esc(text[pos:]).replace("\n", "<br>"))
    return "".join(out)


def _unsupported(text: str, reason: str, view: TurnView, cites: dict[int, Citation]) -> str:
    why = reason or _NO_SUPPORT
    return (
        f'<span class="rc-unsupported" title="{esc("Not in your documents: " + why)}">'
        f"{_text_with_chips(text, view, cites)}</span>"
        f'<span class="rc-flag" title="{esc(why)}">not in your documents</span>'
    )


def answer_segments(view: TurnView) -> list[tuple[str, str | None]]:
    """The final answer as (text, None) and (unsupported sentence, reason) pieces, built from
    the lead and the verdict of each sentence. A turn logged before verdicts were kept, whose
    parts do not make up its text, is shown as its text."""
    parts: list[tuple[str, str | None]] = [(view.lead, None)] if view.lead else []
    for s in view.sentences:
        if s.verdict == "marked":
            parts.append((s.text, s.reason or _NO_SUPPORT))
        elif s.shown:
            parts.append((s.text, None))
    if " ".join(render_answer(view.lead, view.sentences).split()) != " ".join(view.answer.split()):
        return [(view.answer, None)]
    return parts


def _streaming_body(view: TurnView) -> str:
    """Checked sentences as verdicts, the unchecked tail muted as 'checking…'."""
    cites = {
        c.citation: Citation(c.citation, view.hits[c.citation - 1].chunk)
        for c in view.checks
        if c.supported and c.citation and 1 <= c.citation <= len(view.hits)
    }
    parts = []
    for c in view.checks:
        if not c.claim:
            continue
        if c.supported:
            parts.append(f'<span class="rc-ok">{_text_with_chips(c.text, view, cites)}</span>')
        else:
            parts.append(_unsupported(c.text, c.reason, view, cites))
    tail = " ".join(split_answer(view.raw)[len(view.checks) :]) if view.raw else ""
    if tail:
        parts.append(
            f'<span class="rc-pending" title="Not yet checked against your documents">'
            f"{esc(tail)}</span>"
        )
    parts.append(
        f'<span class="rc-checking"><span class="rc-dots"></span>{esc(_progress(view))}</span>'
    )
    return " ".join(parts)


def _progress(view: TurnView) -> str:
    """What a streaming answer is doing now."""
    if not view.retrieved:
        return "Searching your documents…"
    if not view.raw and not view.checks:
        return f"Reading {len(view.hits)} passages…"
    return "checking…"


def _final_body(view: TurnView) -> str:
    cites = {c.n: c for c in view.citations}
    if view.mode == "refused":
        return (
            '<div class="rc-refusal-head">Not in your documents</div>'
            f'<div class="rc-refusal-text">{esc(view.answer)}</div>'
        )
    parts = []
    for text, reason in answer_segments(view):
        if reason is None:
            parts.append(_text_with_chips(text, view, cites))
        else:
            parts.append(_unsupported(text, reason, view, cites))
    body = " ".join(p for p in parts if p)
    if not body and view.status == "stopped":
        body = '<span class="rc-muted">Stopped before any text was checked.</span>'
    return body


def _badges(view: TurnView) -> str:
    badges = []
    if view.mode == "extractive":
        badges.append(
            '<span class="rc-badge rc-badge-quote" title="The sentences are quoted from the '
            'passages, not generated">quoted from your documents</span>'
        )
    if view.status == "stopped":
        badges.append('<span class="rc-badge rc-badge-stop">stopped</span>')
    if view.status == "error":
        badges.append('<span class="rc-badge rc-badge-error">error</span>')
    return f'<div class="rc-badges">{"".join(badges)}</div>' if badges else ""


def _footer(view: TurnView) -> str:
    if view.turn_id is None:
        return ""
    t = view.turn_id
    up = " is-active" if view.rating == 1 else ""
    down = " is-active" if view.rating == -1 else ""
    total = view.timings.get("total_ms")
    took = f'<span class="rc-took">{total / 1000:.1f} s</span>' if total else ""
    n = len(view.hits)
    sources = (
        f'<button type="button" class="rc-link" data-action="sources" data-turn="{t}">'
        f"{n} source{'s' if n != 1 else ''}</button>"
    )
    return (
        f'<div class="rc-footer">{sources}{took}<span class="rc-spacer"></span>'
        f'<button type="button" class="rc-fb{up}" data-action="feedback" data-turn="{t}" '
        f'data-rating="1" title="Good answer" aria-label="Good answer">{ICON_UP}</button>'
        f'<button type="button" class="rc-fb{down}" data-action="feedback" data-turn="{t}" '
        f'data-rating="-1" title="Bad answer" aria-label="Bad answer">{ICON_DOWN}</button></div>'
    )


def render_turn(view: TurnView) -> str:
    """One question bubble and its answer bubble."""
    q = esc(view.question).replace("\n", "<br>")
    kind = "rc-streaming" if not view.finished else f"rc-mode-{esc(view.mode or 'none')}"
    if view.finished and view.mode == "refused":
        kind += " rc-refused"
    body = _final_body(view) if view.finished else _streaming_body(view)
    error = ""
    if view.finished and view.error:
        error = f'<div class="rc-error-note">{esc(view.error)}</div>'
    turn_attr = "" if view.turn_id is None else f' data-turn-id="{view.turn_id}"'
    return (
        f'<div class="rc-turn"{turn_attr}>'
        f'<div class="rc-msg rc-user"><div class="rc-bubble">{q}</div></div>'
        f'<div class="rc-msg rc-bot {kind}"><div class="rc-bubble">'
        f'{_badges(view) if view.finished else ""}<div class="rc-answer">{body}</div>{error}'
        f"{_footer(view)}</div></div></div>"
    )


def render_error(question: str, message: str) -> str:
    """A question whose answer failed before anything was logged: the reason, no traceback."""
    return (
        '<div class="rc-turn">'
        f'<div class="rc-msg rc-user"><div class="rc-bubble">{esc(question)}</div></div>'
        '<div class="rc-msg rc-bot rc-failed"><div class="rc-bubble">'
        f'<div class="rc-error-note" role="alert">{esc(message)}</div></div></div></div>'
    )


def render_welcome(documents: int, chunks: int) -> str:
    """What an empty conversation shows: what the app does and what it knows."""
    if documents:
        kb = f"{documents} document{'s' if documents != 1 else ''} · {chunks} passages indexed"
        hint = (
            "Ask a question about them. Every sentence of an answer is checked against a passage."
        )
    else:
        kb = "The knowledge base is empty"
        hint = "Add files in the Knowledge base tab, then ask about them."
    return (
        '<div class="rc-welcome">'
        '<div class="rc-welcome-title">Ask your documents</div>'
        f'<div class="rc-welcome-kb">{esc(kb)}</div>'
        f'<div class="rc-welcome-hint">{esc(hint)}</div>'
        '<ul class="rc-welcome-list">'
        "<li><b>[1]</b> chips open the passage a sentence comes from.</li>"
        '<li><span class="rc-unsupported">Struck amber text</span> is not backed by your '
        "documents.</li>"
        "<li>Sources shows every passage retrieved, and why.</li></ul></div>"
    )


def render_transcript(parts: Iterable[str], *, welcome: str = "") -> str:
    """The chat column: rendered turns, or the welcome card when there are none."""
    body = "".join(parts)
    return f'<div class="rc-transcript">{body or welcome}</div>'
