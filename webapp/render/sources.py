"""The sources inspector for one answer: the focused citation's card, a chart of retrieval scores,
and every retrieved passage with its rank, score, which retriever found it and what cites it."""

from __future__ import annotations

from collections.abc import Sequence

from rag_core.types import Citation, Hit, Scope
from webapp.render.replay import replay_button
from webapp.render.text import esc, highlight, question_terms
from webapp.render.turns import TurnView

FOUND_BY_LABEL = {"both": "keyword + dense", "dense": "dense", "keyword": "keyword"}
MODE_LABEL = {"hybrid": "hybrid", "dense": "dense", "bm25": "keyword"}

EMPTY_SOURCES = (
    '<div class="rc-sources rc-sources-empty"><div class="rc-panel-title">Sources</div>'
    "<p>Ask a question: every passage the answer was drawn from appears here, with its "
    "rank, score and which retriever found it. Click a [n] chip to open that passage.</p>"
    "</div>"
)
_LEGEND = (
    '<div class="rc-legend"><span><i class="rc-by-both"></i>both</span>'
    '<span><i class="rc-by-dense"></i>dense</span>'
    '<span><i class="rc-by-keyword"></i>keyword</span>'
    '<span><i class="rc-cited-dot"></i>cited</span></div>'
)


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
    return f'<div class="rc-chart" aria-label="Retrieval scores">{"".join(rows)}{_LEGEND}</div>'


def _retriever_detail(h: Hit) -> str:
    bits = []
    if h.dense_rank is not None:
        score = f" ({h.dense_score:.3f})" if h.dense_score is not None else ""
        bits.append(f"dense #{h.dense_rank}{score}")
    if h.keyword_rank is not None:
        score = f" ({h.keyword_score:.2f})" if h.keyword_score is not None else ""
        bits.append(f"keyword #{h.keyword_rank}{score}")
    return " · ".join(bits)


def _mark_button(turn_id: int, number: int, marked: bool) -> str:
    """After a thumbs down: mark passage `number` as the one the answer should have used."""
    label = "✓ marked as the right passage" if marked else "This passage answers it"
    pressed = "true" if marked else "false"
    return (
        f'<button type="button" class="rc-link rc-mark{" is-active" if marked else ""}" '
        f'data-action="mark" data-turn="{turn_id}" data-n="{number}" aria-pressed="{pressed}">'
        f"{label}</button>"
    )


def _passage(
    h: Hit,
    numbers: list[int],
    terms: Sequence[str],
    cite: Citation | None,
    focused: bool,
    mark: str = "",
) -> str:
    c = h.chunk
    classes = ["rc-passage"]
    if numbers:
        classes.append("is-cited")
    if focused:
        classes.append("is-focused")
    if "is-active" in mark:
        classes.append("is-marked")
    cited = (
        '<span class="rc-badge rc-badge-cited">cited '
        + " ".join(f"[{n}]" for n in numbers)
        + "</span>"
        if numbers
        else '<span class="rc-badge rc-badge-muted">not cited</span>'
    )
    loc = f'<span class="rc-loc">{esc(c.shown_location)}</span>' if c.shown_location else ""
    return (
        f'<article class="{" ".join(classes)}" data-rank="{h.rank}" data-chunk="{esc(c.id)}">'
        f'<header><span class="rc-rank">#{h.rank}</span>'
        f'<span class="rc-doc" title="{esc(c.document_name)}">{esc(c.document_name)}</span>{loc}'
        "</header>"
        f'<div class="rc-passage-meta"><span class="rc-badge rc-found-{h.found_by}">'
        f"{FOUND_BY_LABEL[h.found_by]}</span>{cited}"
        f'<span class="rc-score" title="{esc(_retriever_detail(h))}">score {h.score:.4f}</span>'
        f"{mark}</div>"
        f"<details{' open' if focused or numbers else ''}><summary>Passage · chunk {c.index + 1}"
        f'</summary><div class="rc-passage-text">{highlight(c.text, terms, _support_span(cite))}'
        f'</div><div class="rc-retrievers">{esc(_retriever_detail(h))}</div></details></article>'
    )


def _citation_card(cite: Citation, terms: Sequence[str]) -> str:
    c = cite.chunk
    loc = f'<div class="rc-cite-loc">{esc(c.shown_location)}</div>' if c.shown_location else ""
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


def _focused(view: TurnView, focus: int | None) -> Citation | None:
    """Citation [focus] of the answer; for a marker no sentence relied on, passage `focus`."""
    if focus is None:
        return None
    cite = {c.n: c for c in view.citations}.get(focus)
    if cite is None and 1 <= focus <= len(view.hits):
        cite = Citation(focus, view.hits[focus - 1].chunk)
    return cite


def _head_note(view: TurnView) -> str:
    if view.mode == "refused":
        return (
            '<div class="rc-refusal-note">Refused: no passage answers the question. '
            "These are the closest ones.</div>"
        )
    if not view.finished:
        return '<div class="rc-muted">Answer in progress: citations appear once checked.</div>'
    return ""


def _summary(view: TurnView, cited: dict[str, list[int]]) -> str:
    """The question, the query searched for when it differs, and a line of counts."""
    mode = MODE_LABEL.get(str(view.config.get("retrieval_mode", "")), "")
    meta = [f"{len(view.hits)} passages"]
    if mode:
        meta.append(f"{mode} retrieval")
    if view.citations:
        meta.append(f"{len(cited)} cited")
    query = ""
    if view.query and view.query.strip() != view.question.strip():
        query = f'<div class="rc-query">searched for: “{esc(view.query)}”</div>'
    return (
        f'<div class="rc-src-q">“{esc(view.question)}”</div>{query}'
        f'<div class="rc-src-meta">{esc(" · ".join(meta))}</div>{_searched(view)}'
    )


def _searched(view: TurnView) -> str:
    """'Searched: collection Handbook, document x.pdf' for an answer asked within a scope (the
    turn's config says; an answer over everything has none)."""
    scope = Scope.from_json(view.config.get("scope"))
    if scope.everything:
        return ""
    parts = [f"collection {c}" for c in scope.collections]
    parts += [f"document {d}" for d in scope.documents]
    return f'<div class="rc-searched">Searched: {esc(", ".join(parts))}</div>'


def _marking(view: TurnView) -> bool:
    """Whether the panel offers to mark the right passage: a logged answer rated thumbs down."""
    return view.turn_id is not None and view.rating == -1


def _mark_intro(view: TurnView) -> str:
    """After a thumbs down: which passage should the answer have used, or none of these."""
    if not _marking(view) or view.turn_id is None:
        return ""
    none = bool(view.feedback and view.feedback.no_passage)
    label = "✓ none of these answers it" if none else "None of these answers it"
    return (
        '<div class="rc-mark-intro">👎 Which passage should the answer have used? Mark it '
        f'below, or: <button type="button" class="rc-link rc-mark{" is-active" if none else ""}" '
        f'data-action="mark" data-turn="{view.turn_id}" data-n="0" '
        f'aria-pressed="{"true" if none else "false"}">{label}</button></div>'
    )


def _passages(view: TurnView, cited: dict[str, list[int]], focus_id: str | None) -> str:
    if not view.hits:
        return '<p class="rc-muted">No passage was retrieved.</p>'
    terms = question_terms(view.question)
    marked = view.feedback.passage if view.feedback else None
    return "".join(
        _passage(
            h,
            cited.get(h.chunk.id, []),
            terms,
            next((c for c in view.citations if c.chunk.id == h.chunk.id), None),
            h.chunk.id == focus_id,
            _mark_button(view.turn_id, i + 1, h.chunk.id == marked)
            if _marking(view) and view.turn_id is not None
            else "",
        )
        for i, h in enumerate(view.hits)
    )


def _decoding(view: TurnView) -> str:
    """RAG-Token / RAG-Sequence: each passage's prior p(z|x) and posterior p(z|x, answer)."""
    prior = view.config.get("passage_prior") or []
    posterior = view.config.get("passage_posterior") or []
    if not prior:
        return ""
    rows = "".join(
        f"<tr><td>[{n}]</td><td>{p:.2f}</td><td>{posterior[n - 1]:.2f}</td></tr>"
        if n - 1 < len(posterior)
        else f"<tr><td>[{n}]</td><td>{p:.2f}</td><td></td></tr>"
        for n, p in enumerate(prior, start=1)
    )
    strategy = esc(str(view.config.get("answer_strategy", "")))
    return (
        f'<details class="rc-decoding"><summary>{strategy}: passage weights</summary>'
        "<table><tr><th>passage</th><th>prior p(z|x)</th><th>posterior p(z|x,y)</th></tr>"
        f"{rows}</table></details>"
    )


def render_sources(view: TurnView | None, focus: int | None = None) -> str:
    """The sources inspector for one answer: citation card, score chart, every passage."""
    if view is None:
        return EMPTY_SOURCES
    cited: dict[str, list[int]] = {}
    for c in view.citations:
        cited.setdefault(c.chunk.id, []).append(c.n)
    focus_cite = _focused(view, focus)
    focus_id = focus_cite.chunk.id if focus_cite is not None else None
    card = (
        _citation_card(focus_cite, question_terms(view.question)) if focus_cite is not None else ""
    )
    chart = _score_chart(view.hits, cited, focus_id) if view.hits else ""
    turn = "" if view.turn_id is None else f' data-turn="{view.turn_id}"'
    replay = replay_button(view.turn_id) if view.turn_id is not None and view.finished else ""
    return (
        f'<div class="rc-sources"{turn}><div class="rc-panel-title">Sources</div>'
        f"{_summary(view, cited)}{replay}{_head_note(view)}{_mark_intro(view)}{card}{chart}"
        f"{_decoding(view)}"
        f'<div class="rc-passages">{_passages(view, cited, focus_id)}</div></div>'
    )
