"""The history sidebar and the knowledge base tab: conversations, upload results, collections,
documents and their chunks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rag_core.db.records import ConversationRecord
from rag_core.types import Actor, Chunk, CollectionRecord, DocumentRecord, IngestResult, page_ranges
from webapp.render.text import esc, fmt_time, plural
from webapp.serialize import report_facts

_STATUS_LABEL = {
    "added": "added",
    "duplicate": "duplicate",
    "replaced": "new version",
    "error": "error",
    "cancelled": "cancelled",
}
_LOAD_MORE = (
    '<button type="button" class="rc-more" data-action="more" id="rc-history-more">'
    "Load more</button>"
)


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
        items.append(
            f'<button type="button" class="{cls}" data-action="open" data-conv="{esc(c.id)}" '
            f'title="{esc(c.title)}"><span class="rc-conv-title">{esc(c.title)}</span>'
            f'<span class="rc-conv-meta">{esc(fmt_time(c.updated_at))} · '
            f"{plural(c.turn_count, 'question')}</span></button>"
        )
    if more:
        items.append(_LOAD_MORE)
    return f'<div class="rc-history">{"".join(items)}</div>'


def _ingest_detail(r: IngestResult) -> str:
    doc = r.document
    if r.status == "error":
        return r.error or "could not be ingested"
    if r.status == "cancelled":
        return "the upload was cancelled before this file was added; nothing of it was kept"
    if r.status == "duplicate" and doc is not None:
        return f"same content as {doc.name} (v{doc.version}); nothing added"
    if doc is not None:
        reused = f", {r.reused_embeddings} embeddings reused" if r.reused_embeddings else ""
        ocr = f", OCR read page(s) {page_ranges(doc.ocr_pages)}" if doc.ocr_pages else ""
        done = f"v{doc.version}: {plural(r.chunks, 'chunk')}{reused}{ocr} in {r.seconds:.1f} s"
        return done + _first_warning(doc)
    return ""


def _first_warning(doc: DocumentRecord) -> str:
    """'; page 7 has almost no text (12 characters) (+2 more warnings)': the report's first
    warning, so an upload says at once what was not fully read."""
    warnings = doc.report.warnings if doc.report is not None else ()
    if not warnings:
        return ""
    more = f" (+{plural(len(warnings) - 1, 'more warning')})" if len(warnings) > 1 else ""
    return f"; {warnings[0]}{more}"


def render_ingest_results(results: Sequence[IngestResult]) -> str:
    """One row per uploaded file: added, duplicate, new version or error with the reason."""
    if not results:
        return ""
    rows = [
        f'<tr class="rc-ingest-{r.status}"><td class="rc-fname">{esc(r.name)}</td>'
        f'<td><span class="rc-status rc-status-{r.status}">{_STATUS_LABEL[r.status]}'
        "</span></td>"
        f"<td>{esc(_ingest_detail(r))}</td></tr>"
        for r in results
    ]
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


def render_documents(
    docs: Sequence[DocumentRecord], collections: Mapping[str, Sequence[str]] | None = None
) -> str:
    """The documents table: name, the collections it is in (`collections`: document id ->
    names), type, pages, chunks, version, who added it, when."""
    if not docs:
        return '<p class="rc-muted rc-empty-docs">No documents yet: drop files above.</p>'
    rows = []
    for d in docs:
        pages = "–" if d.page_count is None else str(d.page_count)
        if d.ocr_pages:
            pages += f" (OCR: {page_ranges(d.ocr_pages)})"
        groups = ", ".join((collections or {}).get(d.id, ())) or "–"
        rows.append(
            f'<tr><td class="rc-fname" title="{esc(d.id)}">{esc(d.name)}</td>'
            f"<td class='rc-doc-collections'>{esc(groups)}</td><td>{esc(d.doc_type)}</td><td class='rc-num'>{pages}</td>"
            f"<td class='rc-num'>{d.chunk_count}</td><td class='rc-num'>v{d.version}</td>"
            f"<td class='rc-owner'>{esc(added_by(d))}</td>"
            f"<td>{esc(fmt_time(d.added_at))}</td></tr>"
        )
    total = sum(d.chunk_count for d in docs)
    return (
        f'<div class="rc-kb-summary">{plural(len(docs), "document")} · {total} chunks</div>'
        '<div class="rc-table-wrap"><table class="rc-table rc-docs"><thead><tr><th>Name</th>'
        "<th>Collections</th><th>Type</th><th>Pages</th><th>Chunks</th><th>Version</th><th>Added by</th><th>Added</th>"
        "</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def render_chunks(doc: DocumentRecord | None, chunks: Sequence[Chunk]) -> str:
    """A document's chunks in order, each with its location and character offsets."""
    if doc is None:
        return '<p class="rc-muted">Pick a document to see how it was split into chunks.</p>'
    items = []
    for c in chunks:
        loc = f" · {c.shown_location}" if c.shown_location else ""
        items.append(
            f'<article class="rc-chunk"><header>chunk {c.index + 1}{esc(loc)}'
            f'<span class="rc-offsets">chars {c.char_start}–{c.char_end}</span></header>'
            f'<div class="rc-chunk-text">{esc(c.text)}</div></article>'
        )
    ocr = f" · OCR read page(s) {page_ranges(doc.ocr_pages)}" if doc.ocr_pages else ""
    return (
        f'<div class="rc-chunks"><div class="rc-panel-title">{esc(doc.name)} · '
        f"{len(chunks)} chunks{ocr}</div>{render_report(doc)}{''.join(items)}</div>"
    )


def render_report(doc: DocumentRecord) -> str:
    """The document's ingest report (pages, OCR, tables, chunks, embedder, time, warnings) as
    a small table; every value escaped."""
    warning = ' class="rc-report-warning"'
    rows = "".join(
        f"<tr{warning if label == 'Warning' else ''}><th>{esc(label)}</th><td>{esc(text)}</td></tr>"
        for label, text in report_facts(doc)
    )
    return (
        '<section class="rc-report" aria-label="Ingest report"><div class="rc-report-title">'
        f'Ingest report</div><table class="rc-report-table">{rows}</table></section>'
    )


def document_choices(docs: Sequence[DocumentRecord]) -> list[tuple[str, str]]:
    """(label, id) pairs for the document picker."""
    return [(f"{d.name} (v{d.version})", d.id) for d in docs]


def render_collections(collections: Sequence[CollectionRecord], actor: Actor) -> str:
    """The collections table: name, visibility (with members), owner, documents."""
    if not collections:
        return '<p class="rc-muted">No collections you may see.</p>'
    rows = []
    for c in collections:
        shared = f" with {', '.join(c.members)}" if c.visibility == "shared" else ""
        manage = "" if actor.may_manage(c) else ' <span class="rc-muted">(read only)</span>'
        desc = f'<div class="rc-muted">{esc(c.description)}</div>' if c.description else ""
        rows.append(
            f'<tr data-collection="{esc(c.name)}"><td class="rc-fname">{esc(c.name)}{manage}'
            f"{desc}</td><td>{esc(c.visibility + shared)}</td>"
            f"<td class='rc-owner'>{esc(c.owner or 'operator')}</td>"
            f"<td class='rc-num'>{c.document_count}</td></tr>"
        )
    return (
        '<div class="rc-table-wrap"><table class="rc-table rc-collections"><thead><tr>'
        "<th>Collection</th><th>Visibility</th><th>Owner</th><th>Documents</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )
