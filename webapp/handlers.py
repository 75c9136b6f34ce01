"""Engine events and log records -> the HTML the web app shows (chat, sources, tables).

Everything that comes from a document, a file name or a person (passages, titles, questions,
answers) goes through `esc` before it reaches the page, so a document that contains `<script>` or
`<img onerror=...>` shows that text and nothing runs. Turns are rebuilt from
`ConversationLog.get_turn`/`turns`, so chat, citations and the sources panel survive a page reload
or a server restart.
"""

from __future__ import annotations

import dataclasses
import html
import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rag_core.db.records import ConversationRecord, TurnRecord
from rag_core.grounding import UNSUPPORTED_MARK, split_answer
from rag_core.types import (
    Chunk,
    Citation,
    DocumentRecord,
    Done,
    Event,
    Hit,
    IngestResult,
    Logged,
    Retrieved,
    SentenceCheck,
    SentenceChecked,
    Token,
)

_MARKER = re.compile(r"\[(\d{1,3})\]")
_WORD = re.compile(r"[^\W_]{3,}", re.UNICODE)
_STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        """the and for are but not you all any can had her was one our out has his how its may
        new now old see two who did get let put say she too use what when where which while with
        would could should does this that these those from have into than then them they their
        there about after before being between both each more most other over same some such only
        very your yours tell give show list explain describe please many much why whom whose also
        just like""",
    )
)
FOUND_BY_LABEL = {"both": "keyword + dense", "dense": "dense", "keyword": "keyword"}
MODE_LABEL = {"hybrid": "hybrid", "dense": "dense", "bm25": "keyword"}

ICON_UP = '<span class="rc-icon rc-icon-up" aria-hidden="true"></span>'
ICON_DOWN = '<span class="rc-icon rc-icon-down" aria-hidden="true"></span>'


def esc(value: object) -> str:
    """HTML-escape anything shown on the page (quotes too: values also land in attributes)."""
    return html.escape(str(value), quote=True)


def _fmt_time(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone().strftime("%Y-%m-%d %H:%M")


def question_terms(question: str) -> list[str]:
    """The content words of a question, for highlighting them in passages."""
    seen: list[str] = []
    for word in _WORD.findall(question.lower()):
        if word not in _STOPWORDS and word not in seen:
            seen.append(word)
    return seen


def highlight(text: str, terms: Sequence[str], support: tuple[int, int] | None = None) -> str:
    """Escaped passage text with the supporting sentence and the question's words marked."""
    marks: list[tuple[int, int]] = []
    if terms:
        pattern = re.compile(
            r"(?<![^\W_])(?:" + "|".join(re.escape(t) for t in terms) + r")[^\W_]*", re.IGNORECASE
        )
        marks = [(m.start(), m.end()) for m in pattern.finditer(text)]
    bounds = {0, len(text)}
    for s, e in marks:
        bounds.update((s, e))
    if support:
        bounds.update(support)
    cuts = sorted(b for b in bounds if 0 <= b <= len(text))
    out: list[str] = []
    in_support_open = False
    for a, b in itertools.pairwise(cuts):
        piece = text[a:b]
        inside = support is not None and support[0] <= a and b <= support[1]
        if inside and not in_support_open:
            out.append('<mark class="rc-support">')
            in_support_open = True
        elif not inside and in_support_open:
            out.append("</mark>")
            in_support_open = False
        is_term = any(s <= a and b <= e for s, e in marks)
        out.append(f'<mark class="rc-term">{esc(piece)}</mark>' if is_term else esc(piece))
    if in_support_open:
        out.append("</mark>")
    return "".join(out)


# -- turns ------------------------------------------------------------------------------------


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
    mode: str = ""
    status: str = "streaming"
    error: str | None = None
    refused: bool = False
    citations: tuple[Citation, ...] = ()
    sentences: tuple[SentenceCheck, ...] = ()
    rating: int | None = None
    comment: str | None = None
    timings: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    query: str = ""

    @classmethod
    def from_record(cls, rec: TurnRecord) -> TurnView:
        """A logged turn, exactly as it was answered."""
        return cls(
            question=rec.question,
            turn_id=rec.id,
            conversation_id=rec.conversation_id,
            hits=rec.hits,
            raw=rec.raw_answer,
            checks=list(rec.sentences),
            retrieved=True,
            finished=True,
            answer=rec.answer,
            mode=rec.mode,
            status=rec.status,
            error=rec.error,
            refused=rec.refused,
            citations=rec.citations,
            sentences=rec.sentences,
            rating=rec.feedback_rating,
            comment=rec.feedback_comment,
            timings=dataclasses.asdict(rec.timings),
            config=dict(rec.config),
            query=rec.query,
        )

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
            self.finished = True
            self.answer, self.mode, self.status = event.answer, event.mode, event.status
            self.error, self.refused, self.hits = event.error, event.refused, event.hits
            self.citations, self.sentences = event.citations, event.sentences
            self.timings = {k: getattr(event.timings, k) for k in ("total_ms", "tokens")}
            self.config = dict(event.config)
        elif isinstance(event, Logged):
            self.turn_id, self.conversation_id = event.turn_id, event.conversation_id


def _chip(n: int, view: TurnView, cites: dict[int, Citation]) -> str:
    """A clickable [n] that opens passage n of this turn in the sources panel."""
    cite = cites.get(n)
    chunk: Chunk | None = cite.chunk if cite else None
    weak = cite is None
    if chunk is None and 1 <= n <= len(view.hits):
        chunk = view.hits[n - 1].chunk
    if chunk is None:
        return esc(f"[{n}]")
    where = f" · {chunk.location}" if chunk.location else ""
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
    why = reason or "no passage supports it"
    return (
        f'<span class="rc-unsupported" title="{esc("Not in your documents: " + why)}">'
        f"{_text_with_chips(text, view, cites)}</span>"
        f'<span class="rc-flag" title="{esc(why)}">not in your documents</span>'
    )


def answer_segments(
    answer: str, sentences: Sequence[SentenceCheck]
) -> list[tuple[str, str | None]]:
    """Split a final answer into (text, None) and (unsupported sentence, reason) pieces."""
    segments: list[tuple[str, str | None]] = []
    pos = 0
    for s in sentences:
        if s.supported or not s.claim:
            continue
        target = f"{s.text} {UNSUPPORTED_MARK}"
        i = answer.find(target, pos)
        if i < 0:
            continue
        segments.append((answer[pos:i], None))
        segments.append((s.text, s.reason or "no passage supports it"))
        pos = i + len(target)
    rest = answer[pos:]
    while UNSUPPORTED_MARK in rest:  # a marked sentence the checks did not name: mark it anyway
        i = rest.index(UNSUPPORTED_MARK)
        before = rest[:i]
        cut = max((m.end() for m in re.finditer(r"[.!?]\s+(?=\S)", before.rstrip())), default=0)
        segments.append((before[:cut], None))
        segments.append((before[cut:].strip(), "no passage supports it"))
        rest = rest[i + len(UNSUPPORTED_MARK) :]
    segments.append((rest, None))
    return [(t, r) for t, r in segments if t.strip() or r is not None]


def _streaming_body(view: TurnView) -> str:
    """Checked sentences as verdicts, the unchecked tail muted as 'checking…'."""
    cites = {c.citation: Citation(c.citation, view.hits[c.citation - 1].chunk)
             for c in view.checks
             if c.supported and c.citation and 1 <= c.citation <= len(view.hits)}  # fmt: skip
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
    if not view.retrieved:
        status = "Searching your documents…"
    elif not view.raw and not view.checks:
        status = f"Reading {len(view.hits)} passages…"
    else:
        status = "checking…"
    parts.append(f'<span class="rc-checking"><span class="rc-dots"></span>{esc(status)}</span>')
    return " ".join(parts)


def _final_body(view: TurnView) -> str:
    cites = {c.n: c for c in view.citations}
    if view.mode == "refused":
        return (
            '<div class="rc-refusal-head">Not in your documents</div>'
            f'<div class="rc-refusal-text">{esc(view.answer)}</div>'
        )
    parts = []
    for text, reason in answer_segments(view.answer, view.sentences):
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


# -- sources panel ------------------------------------------------------------------------------


def _support_span(cite: Citation | None) -> tuple[int, int] | None:
    if cite is None:
        return None
    if cite.support_start is not None and cite.support_end is not None:
        return (cite.support_start, cite.support_end)
    if cite.support:
        i = cite.chunk.text.find(cite.support)
        if i >= 0:
            return (i, i + len(cite.support))
    return None


def _score_chart(hits: Sequence[Hit], cited: dict[str, list[int]], focus_id: str | None) -> str:
    top = max((h.score for h in hits), default=0.0) or 1.0
    rows = []
    for h in hits:
        pct = max(3.0, 100.0 * h.score / top)
        cls = "rc-bar-cited" if h.chunk.id in cited else ""
        if h.chunk.id == focus_id:
            cls += " rc-bar-focus"
        name = f"#{h.rank} {h.chunk.document_name}"
        rows.append(
            f'<div class="rc-bar-row" title="{esc(name)} · score {h.score:.4f}">'
            f'<span class="rc-bar-rank">{h.rank}</span>'
            f'<span class="rc-bar-track"><span class="rc-bar rc-by-{h.found_by} {cls}" '
            f'style="width:{pct:.1f}%"></span></span>'
            f'<span class="rc-bar-val">{h.score:.3f}</span></div>'
        )
    legend = (
        '<div class="rc-legend"><span><i class="rc-by-both"></i>both</span>'
        '<span><i class="rc-by-dense"></i>dense</span>'
        '<span><i class="rc-by-keyword"></i>keyword</span>'
        '<span><i class="rc-cited-dot"></i>cited</span></div>'
    )
    return f'<div class="rc-chart" aria-label="Retrieval scores">{"".join(rows)}{legend}</div>'


def _retriever_detail(h: Hit) -> str:
    bits = []
    if h.dense_rank is not None:
        score = f" ({h.dense_score:.3f})" if h.dense_score is not None else ""
        bits.append(f"dense #{h.dense_rank}{score}")
    if h.keyword_rank is not None:
        score = f" ({h.keyword_score:.2f})" if h.keyword_score is not None else ""
        bits.append(f"keyword #{h.keyword_rank}{score}")
    return " · ".join(bits)


def _passage(
    h: Hit,
    numbers: list[int],
    terms: Sequence[str],
    cite: Citation | None,
    focused: bool,
) -> str:
    c = h.chunk
    classes = ["rc-passage"]
    if numbers:
        classes.append("is-cited")
    if focused:
        classes.append("is-focused")
    cited = (
        '<span class="rc-badge rc-badge-cited">cited '
        + " ".join(f"[{n}]" for n in numbers)
        + "</span>"
        if numbers
        else '<span class="rc-badge rc-badge-muted">not cited</span>'
    )
    loc = f'<span class="rc-loc">{esc(c.location)}</span>' if c.location else ""
    return (
        f'<article class="{" ".join(classes)}" data-rank="{h.rank}" data-chunk="{esc(c.id)}">'
        f'<header><span class="rc-rank">#{h.rank}</span>'
        f'<span class="rc-doc" title="{esc(c.document_name)}">{esc(c.document_name)}</span>{loc}'
        "</header>"
        f'<div class="rc-passage-meta"><span class="rc-badge rc-found-{h.found_by}">'
        f"{FOUND_BY_LABEL[h.found_by]}</span>{cited}"
        f'<span class="rc-score" title="{esc(_retriever_detail(h))}">score {h.score:.4f}</span>'
        "</div>"
        f"<details{' open' if focused or numbers else ''}><summary>Passage · chunk {c.index + 1}"
        f'</summary><div class="rc-passage-text">{highlight(c.text, terms, _support_span(cite))}'
        f'</div><div class="rc-retrievers">{esc(_retriever_detail(h))}</div></details></article>'
    )


def _citation_card(cite: Citation, terms: Sequence[str]) -> str:
    c = cite.chunk
    loc = f'<div class="rc-cite-loc">{esc(c.location)}</div>' if c.location else ""
    support = (
        f'<div class="rc-cite-support"><span>Supporting sentence</span>“{esc(cite.support)}”</div>'
        if cite.support
        else ""
    )
    return (
        f'<section class="rc-citation" data-n="{cite.n}" aria-live="polite">'
        f'<div class="rc-cite-head"><span class="rc-chip rc-chip-static">{cite.n}</span>'
        f'<span class="rc-cite-doc">{esc(c.document_name)}</span></div>{loc}{support}'
        f'<div class="rc-cite-text">{highlight(c.text, terms, _support_span(cite))}</div></section>'
    )


def render_sources(view: TurnView | None, focus: int | None = None) -> str:
    """The sources inspector for one answer: citation card, score chart, every passage."""
    if view is None:
        return (
            '<div class="rc-sources rc-sources-empty"><div class="rc-panel-title">Sources</div>'
            "<p>Ask a question: every passage the answer was drawn from appears here, with its "
            "rank, score and which retriever found it. Click a [n] chip to open that passage.</p>"
            "</div>"
        )
    terms = question_terms(view.question)
    cites = {c.n: c for c in view.citations}
    cited: dict[str, list[int]] = {}
    for c in view.citations:
        cited.setdefault(c.chunk.id, []).append(c.n)
    focus_cite = cites.get(focus) if focus is not None else None
    focus_id: str | None = None
    if focus_cite is not None:
        focus_id = focus_cite.chunk.id
    elif focus is not None and 1 <= focus <= len(view.hits):  # a marker no sentence relied on
        focus_cite = Citation(focus, view.hits[focus - 1].chunk)
        focus_id = focus_cite.chunk.id
    head_note = ""
    if view.mode == "refused":
        head_note = (
            '<div class="rc-refusal-note">Refused: no passage answers the question. '
            "These are the closest ones.</div>"
        )
    elif not view.finished:
        head_note = '<div class="rc-muted">Answer in progress: citations appear once checked.</div>'
    mode = MODE_LABEL.get(str(view.config.get("retrieval_mode", "")), "")
    meta = [f"{len(view.hits)} passages"]
    if mode:
        meta.append(f"{mode} retrieval")
    if view.citations:
        meta.append(f"{len(cited)} cited")
    query = ""
    if view.query and view.query.strip() != view.question.strip():
        query = f'<div class="rc-query">searched for: “{esc(view.query)}”</div>'
    card = _citation_card(focus_cite, terms) if focus_cite is not None else ""
    passages = "".join(
        _passage(h, cited.get(h.chunk.id, []), terms, _first_cite(view.citations, h.chunk.id),
                 h.chunk.id == focus_id)
        for h in view.hits
    )  # fmt: skip
    if not view.hits:
        passages = '<p class="rc-muted">No passage was retrieved.</p>'
    chart = _score_chart(view.hits, cited, focus_id) if view.hits else ""
    turn = "" if view.turn_id is None else f' data-turn="{view.turn_id}"'
    return (
        f'<div class="rc-sources"{turn}><div class="rc-panel-title">Sources</div>'
        f'<div class="rc-src-q">“{esc(view.question)}”</div>{query}'
        f'<div class="rc-src-meta">{esc(" · ".join(meta))}</div>{head_note}{card}{chart}'
        f'<div class="rc-passages">{passages}</div></div>'
    )


def _first_cite(citations: Sequence[Citation], chunk_id: str) -> Citation | None:
    return next((c for c in citations if c.chunk.id == chunk_id), None)


# -- history and knowledge base ---------------------------------------------------------------


def render_history(
    conversations: Sequence[ConversationRecord],
    active: str | None,
    *,
    more: bool = False,
    search: str = "",
) -> str:
    """Past conversations, newest first; a click opens one. `more`: a 'Load more' button;
    `search`: the title filter the list was made with."""
    if not conversations:
        empty = (
            f"No conversation title contains “{esc(search)}”."
            if search
            else "No conversations yet."
        )
        return f'<div class="rc-history"><p class="rc-muted">{empty}</p></div>'
    items = []
    for c in conversations:
        cls = "rc-conv is-active" if c.id == active else "rc-conv"
        turns = f"{c.turn_count} question{'s' if c.turn_count != 1 else ''}"
        items.append(
            f'<button type="button" class="{cls}" data-action="open" data-conv="{esc(c.id)}" '
            f'title="{esc(c.title)}"><span class="rc-conv-title">{esc(c.title)}</span>'
            f'<span class="rc-conv-meta">{esc(_fmt_time(c.updated_at))} · {turns}</span></button>'
        )
    if more:
        items.append(
            '<button type="button" class="rc-more" data-action="more" id="rc-history-more">'
            "Load more</button>"
        )
    return f'<div class="rc-history">{"".join(items)}</div>'


_STATUS_LABEL = {
    "added": "added",
    "duplicate": "duplicate",
    "replaced": "new version",
    "error": "error",
}


def render_ingest_results(results: Sequence[IngestResult]) -> str:
    """One row per uploaded file: added, duplicate, new version or error with the reason."""
    if not results:
        return ""
    rows = []
    for r in results:
        doc = r.document
        if r.status == "error":
            detail = r.error or "could not be ingested"
        elif r.status == "duplicate" and doc is not None:
            detail = f"same content as {doc.name} (v{doc.version}); nothing added"
        elif doc is not None:
            reused = f", {r.reused_embeddings} embeddings reused" if r.reused_embeddings else ""
            chunks = f"{r.chunks} chunk{'s' if r.chunks != 1 else ''}"
            detail = f"v{doc.version}: {chunks}{reused} in {r.seconds:.1f} s"
        else:
            detail = ""
        rows.append(
            f'<tr class="rc-ingest-{r.status}"><td class="rc-fname">{esc(r.name)}</td>'
            f'<td><span class="rc-status rc-status-{r.status}">{_STATUS_LABEL[r.status]}'
            "</span></td>"
            f"<td>{esc(detail)}</td></tr>"
        )
    return (
        '<table class="rc-table rc-results"><thead><tr><th>File</th><th>Result</th><th>Details</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def added_by(d: DocumentRecord) -> str:
    """Who added a document: its owner, and this version's author when someone else."""
    owner = d.owner or "–"
    if d.added_by and d.added_by != d.owner:
        return f"{owner} (v{d.version}: {d.added_by})"
    return owner


def render_documents(docs: Sequence[DocumentRecord]) -> str:
    """The documents table: name, type, pages, chunks, version, who added it, when."""
    if not docs:
        return '<p class="rc-muted rc-empty-docs">No documents yet: drop files above.</p>'
    rows = []
    for d in docs:
        pages = "–" if d.page_count is None else str(d.page_count)
        rows.append(
            f'<tr><td class="rc-fname" title="{esc(d.id)}">{esc(d.name)}</td>'
            f"<td>{esc(d.doc_type)}</td><td class='rc-num'>{pages}</td>"
            f"<td class='rc-num'>{d.chunk_count}</td><td class='rc-num'>v{d.version}</td>"
            f"<td class='rc-owner'>{esc(added_by(d))}</td>"
            f"<td>{esc(_fmt_time(d.added_at))}</td></tr>"
        )
    total = sum(d.chunk_count for d in docs)
    return (
        f'<div class="rc-kb-summary">{len(docs)} document{"s" if len(docs) != 1 else ""} · '
        f"{total} chunks</div>"
        '<div class="rc-table-wrap"><table class="rc-table rc-docs"><thead><tr><th>Name</th>'
        "<th>Type</th><th>Pages</th><th>Chunks</th><th>Version</th><th>Added by</th><th>Added</th>"
        "</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def render_chunks(doc: DocumentRecord | None, chunks: Sequence[Chunk]) -> str:
    """A document's chunks in order, each with its location and character offsets."""
    if doc is None:
        return '<p class="rc-muted">Pick a document to see how it was split into chunks.</p>'
    items = []
    for c in chunks:
        loc = f" · {c.location}" if c.location else ""
        items.append(
            f'<article class="rc-chunk"><header>chunk {c.index + 1}{esc(loc)}'
            f'<span class="rc-offsets">chars {c.char_start}–{c.char_end}</span></header>'
            f'<div class="rc-chunk-text">{esc(c.text)}</div></article>'
        )
    return (
        f'<div class="rc-chunks"><div class="rc-panel-title">{esc(doc.name)} · '
        f"{len(chunks)} chunks</div>{''.join(items)}</div>"
    )


def document_choices(docs: Sequence[DocumentRecord]) -> list[tuple[str, str]]:
    """(label, id) pairs for the document picker."""
    return [(f"{d.name} (v{d.version})", d.id) for d in docs]
