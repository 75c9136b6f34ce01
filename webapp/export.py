"""A conversation as a file for audit: JSON, Markdown or PDF, from the log alone.

Every format holds the same things: each question and answer, each citation with the exact
passage text and its document, version, page and heading path, the settings snapshot, the
timings and the timestamps. Passages come from the log, so a turn whose document was deleted
since still exports them (marked as no longer in the knowledge base). The REST endpoint and
the page's Export control both call `export_conversation`; this module is the one place the
formats are made.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, get_args

from rag_core.db.records import ConversationRecord, TurnRecord
from rag_core.engine import Engine
from rag_core.errors import UserError
from webapp import serialize

ExportFormat = Literal["md", "json", "pdf"]
FORMATS: tuple[str, ...] = get_args(ExportFormat)
FORMAT_NAME = "ragchat-conversation"
FORMAT_VERSION = 2  # 2: passages and citations carry version and offsets; turns carry the lead
MEDIA_TYPES = {
    "md": "text/markdown; charset=utf-8",
    "json": "application/json",
    "pdf": "application/pdf",
}
# A font with most of Unicode, where the system has one (Debian: fonts-dejavu-core); without
# it the PDF falls back to Helvetica and shows characters outside Latin-1 as '?'.
UNICODE_FONTS = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"),
    Path("/usr/local/share/fonts/DejaVuSans.ttf"),
)
MAX_STEM = 60  # characters of the title kept in a file name


class ExportFormatError(UserError):
    """An export format that is not one of FORMATS."""


@dataclass(frozen=True)
class ExportFile:
    """A finished export: a safe file name, its media type and its bytes."""

    filename: str
    media_type: str
    content: bytes


def check_format(fmt: str) -> ExportFormat:
    """`fmt` as an ExportFormat, or an ExportFormatError naming the choices."""
    if fmt not in FORMATS:
        raise ExportFormatError(
            f"Unknown export format {fmt[:40]!r}: choose one of {', '.join(FORMATS)}"
        )
    return fmt  # type: ignore[return-value]


def safe_filename(title: str, conversation_id: str, ext: str) -> str:
    """A file name any system accepts: the title folded to ASCII letters, digits, '-' and '_'
    (accents dropped, anything else a '-'), cut short, then the conversation id's start."""
    folded = unicodedata.normalize("NFKD", title.casefold()).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9_]+", "-", folded).strip("-_")[:MAX_STEM].strip("-_")
    conv = re.sub(r"[^A-Za-z0-9]", "", conversation_id)[:8] or "export"
    return f"{stem or 'conversation'}-{conv}.{ext}"


def export_conversation(
    conversation: ConversationRecord,
    turns: Sequence[TurnRecord],
    fmt: str,
    *,
    available: Collection[str] | None = None,
    exported_at: datetime | None = None,
) -> ExportFile:
    """The conversation in format `fmt`. `available` holds the ids of the documents in the
    knowledge base now (None: not checked), so passages of versions deleted or replaced since
    are marked."""
    kind = check_format(fmt)
    data = export_data(conversation, turns, available=available, exported_at=exported_at)
    if kind == "json":
        content = json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")
    elif kind == "md":
        content = markdown(data).encode("utf-8")
    else:
        content = pdf(data)
    name = safe_filename(conversation.title, conversation.id, kind)
    return ExportFile(name, MEDIA_TYPES[kind], content)


def export_data(
    conversation: ConversationRecord,
    turns: Sequence[TurnRecord],
    *,
    available: Collection[str] | None = None,
    exported_at: datetime | None = None,
) -> dict[str, Any]:
    """The JSON export (schema in docs/API.md); Markdown and PDF are drawn from it."""
    when = exported_at or datetime.now(UTC)
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "exported_at": when.isoformat(),
        "conversation": {
            "id": conversation.id,
            "title": conversation.title,
            "user": conversation.user,
            "turn_count": len(turns),
            "created_at": conversation.created_at.isoformat(),
            "updated_at": conversation.updated_at.isoformat(),
            "turns": [_turn(t, available) for t in turns],
        },
    }


def _turn(record: TurnRecord, available: Collection[str] | None) -> dict[str, Any]:
    data = {**serialize.turn(record), "lead": record.lead}
    for item in (*data["citations"], *data["passages"]):
        item["document_available"] = None if available is None else item["document_id"] in available
    return data


# -- Markdown ------------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _quote(text: str) -> str:
    """`text` as a Markdown block quote, every line kept."""
    return "\n".join("> " + line if line else ">" for line in str(text).splitlines() or [""])


def source_line(item: dict[str, Any]) -> str:
    """Where a passage comes from: document, version, page(s), heading path, and whether the
    document is still in the knowledge base."""
    parts = [f"{item['document']} (version {item['version']})"]
    if item.get("page") is not None:
        end = item.get("page_end")
        pages = f"{item['page']}-{end}" if end not in (None, item["page"]) else f"{item['page']}"
        parts.append(f"page {pages}")
    if item.get("heading_path"):
        parts.append(" > ".join(item["heading_path"]))
    if item.get("document_available") is False:
        parts.append("this version since deleted or replaced")
    return " · ".join(parts)


def _settings_lines(config: dict[str, Any]) -> Iterator[str]:
    for key in sorted(config):
        yield f"- {key}: {json.dumps(config[key], ensure_ascii=False)}"


def _turn_lines(number: int, turn: dict[str, Any]) -> Iterator[str]:
    yield f"## {number}. {_one_line(turn['question'])}"
    yield ""
    yield (
        f"Asked {turn['created_at']} · turn {turn['id']} · {turn['mode']} · {turn['status']}"
        + (" · refused" if turn["refused"] else "")
    )
    if turn["query"] != turn["question"]:
        yield f"Searched as: {_one_line(turn['query'])}"
    yield ""
    yield "### Answer"
    yield ""
    yield _quote(turn["answer"])
    if turn.get("error"):
        yield ""
        yield f"Error: {_one_line(turn['error'])}"
    yield ""
    yield "### Citations"
    yield ""
    if not turn["citations"]:
        yield "None."
        yield ""
    for c in turn["citations"]:
        yield f"**[{c['number']}]** {source_line(c)}"
        yield ""
        yield _quote(c["text"])
        yield ""
        if c.get("support"):
            yield f"Supporting sentence: {_one_line(c['support'])}"
            yield ""
    rating = {1: "thumbs up", -1: "thumbs down"}.get(turn["feedback_rating"] or 0)
    if rating:
        comment = f": {_one_line(turn['feedback_comment'])}" if turn["feedback_comment"] else ""
        yield f"Feedback: {rating}{comment}"
        yield ""
    timings = ", ".join(f"{k} {v}" for k, v in turn["timings"].items() if v is not None)
    yield f"Timings: {timings}"
    yield ""
    yield "Settings:"
    yield ""
    yield from _settings_lines(turn["config"])
    yield ""


def markdown(data: dict[str, Any]) -> str:
    """The export as Markdown: a header, then each turn with its citations' passages."""
    conv = data["conversation"]
    lines = [
        f"# {_one_line(conv['title'])}",
        "",
        f"Conversation {conv['id']} of {conv['user']} · started {conv['created_at']}"
        f" · last active {conv['updated_at']} · exported {data['exported_at']}"
        f" · {conv['turn_count']} turn(s)",
        "",
    ]
    for i, turn in enumerate(conv["turns"], 1):
        lines.extend(_turn_lines(i, turn))
    return "\n".join(lines).rstrip() + "\n"


# -- PDF -----------------------------------------------------------------------------------------

_HEADING = re.compile(r"^(#{1,3}) (.*)$")
_BOLD_CITE = re.compile(r"^\*\*(\[\d+\])\*\* (.*)$")


def _unicode_font() -> Path | None:
    return next((p for p in UNICODE_FONTS if p.is_file()), None)


def pdf(data: dict[str, Any]) -> bytes:
    """The export as PDF: the Markdown export's lines laid out as headings, quotes and text."""
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    doc = FPDF(format="A4")
    doc.set_title(_one_line(data["conversation"]["title"]))
    doc.set_creator("ragchat")
    doc.set_auto_page_break(auto=True, margin=15)
    font = _unicode_font()
    family = "Helvetica"
    if font is not None:
        family = "RagchatSans"
        doc.add_font(family, "", str(font))
        bold = font.with_name(font.stem + "-Bold.ttf")
        doc.add_font(family, "B", str(bold if bold.is_file() else font))
    doc.add_page()
    sizes = {1: 16.0, 2: 13.0, 3: 11.0}

    def write(text: str, *, style: str = "", size: float = 10.0, indent: float = 0.0) -> None:
        text = text.expandtabs(4)  # fonts draw no tab
        if font is None:
            text = text.encode("latin-1", "replace").decode("latin-1")
        doc.set_font(family, style, size)
        doc.set_x(doc.l_margin + indent)
        width = doc.w - doc.r_margin - doc.l_margin - indent
        doc.multi_cell(width, size * 0.5, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    for line in markdown(data).splitlines():
        if heading := _HEADING.match(line):
            doc.ln(2)
            write(heading.group(2), style="B", size=sizes[len(heading.group(1))])
        elif cite := _BOLD_CITE.match(line):
            write(f"{cite.group(1)} {cite.group(2)}", style="B")
        elif line.startswith(">"):
            write(line[2:] if line.startswith("> ") else "", indent=6.0)
        elif line:
            write(line)
        else:
            doc.ln(2)
    return bytes(doc.output())


def export_for(engine: Engine, conversation_id: str, user: str, fmt: str) -> ExportFile:
    """One of `user`'s conversations exported (ConversationNotFoundError for another user's or
    a missing one, exactly alike); the format is checked before anything is read."""
    kind = check_format(fmt)
    conversation = engine.log.get_conversation(conversation_id, user)
    turns = engine.log.turns(conversation_id, user)
    return export_conversation(conversation, turns, kind, available=engine.registry.ready_ids())
