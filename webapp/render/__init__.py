"""Structured results (engine events, log records, documents) -> the HTML the web app shows.

Everything that comes from a document, a file name or a person (passages, titles, questions,
answers) goes through `esc` before it reaches the page, so a document that contains `<script>` or
`<img onerror=...>` shows that text and nothing runs. Turns are rebuilt from
`ConversationLog.get_turn`/`turns`, so chat, citations and the sources panel survive a page reload
or a server restart. Nothing here parses HTML or text back.

- `text`: escaping, dates, the question's words and passage highlighting
- `turns`: `TurnView` (one question and its answer) -> chat bubbles, the transcript, errors
- `sources`: the sources inspector (citation card, score chart, every passage)
- `replay`: a replayed answer beside the logged one, in the sources inspector
- `index_banner`: the banner shown while the knowledge base is re-embedded
- `lists`: the history sidebar and the knowledge base (upload results, collections, documents,
  chunks)
"""

from webapp.render.index_banner import render_index_banner
from webapp.render.lists import (
    added_by,
    document_choices,
    render_chunks,
    render_collections,
    render_documents,
    render_history,
    render_ingest_results,
    render_report,
)
from webapp.render.replay import render_replay, render_replay_pending
from webapp.render.sources import render_sources
from webapp.render.text import esc, highlight, question_terms
from webapp.render.turns import (
    TurnView,
    answer_segments,
    render_error,
    render_transcript,
    render_turn,
    render_welcome,
)

__all__ = [
    "TurnView",
    "added_by",
    "answer_segments",
    "document_choices",
    "esc",
    "highlight",
    "question_terms",
    "render_chunks",
    "render_collections",
    "render_documents",
    "render_error",
    "render_history",
    "render_index_banner",
    "render_ingest_results",
    "render_replay",
    "render_replay_pending",
    "render_report",
    "render_sources",
    "render_transcript",
    "render_turn",
    "render_welcome",
]
