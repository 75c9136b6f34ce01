"""The banner the page shows while the knowledge base is re-embedded (`ragchat reindex`)."""

from __future__ import annotations

from rag_core.types import IndexStatus
from webapp.render.text import esc


def render_index_banner(status: IndexStatus | None, problem: str | None = None) -> str:
    """Empty when nothing is re-embedded; else where the run is, and that answers still come
    from the current index. A run that stopped says how to finish it; `problem` is an error
    about the index (a swapped-in embedder this server cannot load)."""
    if problem:
        return f'<div class="rc-index-banner rc-index-problem" role="alert">{esc(problem)}</div>'
    if status is None or status.building is None:
        return ""
    building = status.building
    total = building.chunks_total
    shown = f"{building.chunks_done:,} of {total:,} passages" if total else "starting"
    percent = f" ({100 * building.chunks_done / total:.0f}%)" if total else ""
    new = esc(building.identity.name)
    old = esc(status.active.identity.name) if status.active is not None else "the current index"
    if status.stalled:
        return (
            '<div class="rc-index-banner rc-index-stalled" role="status">'
            f"Re-embedding the knowledge base with <b>{new}</b> stopped at {shown}{percent}."
            f" Answers come from the current index ({old}). Run <code>ragchat reindex</code>"
            " to finish it.</div>"
        )
    return (
        '<div class="rc-index-banner" role="status">'
        f"Re-embedding the knowledge base with <b>{new}</b>: {shown}{percent}. Answers come"
        f" from the current index ({old}) until the new one is complete.</div>"
    )
