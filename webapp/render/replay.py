"""A replay in the sources inspector: the logged answer and today's side by side, then the gate
score, the passages that came in, went out or moved, each sentence's verdict then and today, and
the documents deleted or replaced since. Built from rag_core.replay.Replay; nothing is parsed."""

from __future__ import annotations

from rag_core.db.records import TurnRecord
from rag_core.replay import PassageChange, Replay, SentenceChange
from rag_core.types import Citation, Done, SentenceCheck
from webapp.render.text import esc, fmt_time

CHANGE_LABEL = {"same": "same", "moved": "moved", "in": "new", "out": "gone"}


def replay_button(turn_id: int) -> str:
    """The sources inspector's Replay button for a logged answer."""
    return (
        f'<button type="button" class="rc-link rc-replay-btn" data-action="replay" '
        f'data-turn="{turn_id}" title="Answer this question again with the settings it was '
        "answered with, on today's documents, and compare\">↻ Replay on today's documents"
        "</button>"
    )


def render_replay_pending(turn_id: int) -> str:
    """What the inspector shows while a replay runs."""
    return (
        f'<div class="rc-sources rc-replay" data-turn="{turn_id}">'
        '<div class="rc-panel-title">Replay</div>'
        '<p class="rc-muted"><span class="rc-dots"></span> Answering again on today\'s '
        "documents…</p></div>"
    )


def _cites(citations: tuple[Citation, ...]) -> str:
    if not citations:
        return '<span class="rc-muted">no citations</span>'
    items = "".join(
        f"<li>[{c.n}] {esc(c.chunk.document_name)}"
        + (f' <span class="rc-loc">{esc(c.chunk.location)}</span>' if c.chunk.location else "")
        + "</li>"
        for c in citations
    )
    return f'<ul class="rc-replay-cites">{items}</ul>'


def _gate(value: float | None) -> str:
    return "not logged" if value is None else f"{value:.3f}"


def _side(title: str, answer: TurnRecord | Done, changed: bool) -> str:
    cls = " is-changed" if changed else ""
    refused = '<span class="rc-badge rc-badge-stop">refused</span>' if answer.refused else ""
    return (
        f'<section class="rc-replay-side{cls}"><h4>{esc(title)} {refused}</h4>'
        f'<div class="rc-replay-answer">{esc(answer.answer)}</div>'
        f'<div class="rc-replay-gate">gate score {_gate(answer.gate_score)}</div>'
        f"{_cites(answer.citations)}</section>"
    )


def _notes(replay: Replay) -> str:
    notes = [esc(n) for n in replay.notes]
    for d in replay.documents:
        if d.status == "replaced" and d.current is not None:
            notes.append(f"{esc(d.name)} was replaced since (now version {d.current.version}).")
        else:
            notes.append(f"{esc(d.name)} was deleted since.")
    if not notes:
        return ""
    items = "".join(f"<li>{n}</li>" for n in notes)
    cls = " rc-replay-models" if replay.models_differ else ""
    return f'<ul class="rc-replay-notes{cls}">{items}</ul>'


def _changes(replay: Replay) -> str:
    flags = [
        ("answer changed", replay.answer_changed),
        ("citations moved", replay.citations_moved),
        ("refusal appeared", replay.refusal_appeared),
        ("refusal vanished", replay.refusal_vanished),
    ]
    shown = [name for name, flag in flags if flag]
    if not shown:
        return '<div class="rc-replay-summary is-same">Same answer, same citations.</div>'
    badges = "".join(f'<span class="rc-badge rc-badge-stop">{n}</span>' for n in shown)
    return f'<div class="rc-replay-summary">{badges}</div>'


def _passage_row(p: PassageChange) -> str:
    ranks = f"{p.rank_before or '–'} → {p.rank_after or '–'}"
    cited = "cited " + " → ".join(
        "yes" if flag else "no" for flag in (p.cited_before, p.cited_after)
    )
    where = f' <span class="rc-loc">{esc(p.location)}</span>' if p.location else ""
    text = " ".join(p.text.split())
    return (
        f'<tr class="rc-replay-{p.change}"><td><span class="rc-badge">'
        f"{CHANGE_LABEL[p.change]}</span></td><td>{ranks}</td>"
        f'<td><span class="rc-doc">{esc(p.document_name)}</span>{where}'
        f'<div class="rc-replay-snippet" title="{esc(text)}">{esc(text[:160])}</div></td>'
        f"<td>{cited}</td></tr>"
    )


def _sentence_cell(side: str, check: SentenceCheck | None) -> str:
    if check is None:
        return '<td class="rc-muted">–</td>'
    return (
        f'<td class="rc-replay-{side}"><span class="rc-badge rc-verdict-{esc(check.verdict)}">'
        f"{esc(check.verdict)}</span> {esc(check.text)}</td>"
    )


def _sentence_row(s: SentenceChange) -> str:
    cls = ' class="is-changed"' if s.changed else ""
    return f"<tr{cls}>{_sentence_cell('before', s.before)}{_sentence_cell('after', s.after)}</tr>"


def render_replay(replay: Replay) -> str:
    """The inspector's side-by-side diff of a logged answer and its replay."""
    before, after = replay.before, replay.after
    changed = replay.answer_changed or replay.citations_moved
    passages = "".join(_passage_row(p) for p in replay.passages) or (
        '<tr><td colspan="4" class="rc-muted">No passage then or today.</td></tr>'
    )
    sentences = "".join(_sentence_row(s) for s in replay.sentences) or (
        '<tr><td colspan="2" class="rc-muted">No checked sentences.</td></tr>'
    )
    back = (
        f'<button type="button" class="rc-link" data-action="sources" data-turn="{before.id}">'
        "← Back to the sources</button>"
    )
    return (
        f'<div class="rc-sources rc-replay" data-turn="{before.id}">'
        f'<div class="rc-panel-title">Replay</div>{back}'
        f'<div class="rc-src-q">“{esc(before.question)}”</div>'
        f"{_notes(replay)}{_changes(replay)}"
        '<div class="rc-replay-cols">'
        f"{_side('Logged ' + fmt_time(before.created_at), before, changed)}"
        f"{_side('Today', after, changed)}</div>"
        '<table class="rc-replay-table"><caption>Passages (rank then → today)</caption>'
        f"{passages}</table>"
        '<table class="rc-replay-table"><caption>Sentences (then · today)</caption>'
        f"{sentences}</table></div>"
    )
