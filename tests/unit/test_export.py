"""webapp/export.py: a logged conversation as JSON, Markdown and PDF, each holding every question,
answer, cited passage (document, version, page, headings), the settings and the timestamps."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rag_core.db import ConversationLog, Database
from rag_core.db.records import ConversationRecord, TurnRecord
from rag_core.types import Chunk, Citation, Done, Hit, SentenceCheck, Timings
from webapp import export
from webapp.api.schemas import ConversationExport

PASSAGE = "Grease the Ø-bearing monthly.\nUse lithium grease — 5 g per nipple."
PUMP = Chunk("c1", "doc-pump", "pump manual.pdf", "ab12cd", 3, PASSAGE, 100, 160, 7, 8,
             ("Maintenance", "Bearings"))  # fmt: skip
OTHER = Chunk("c2", "doc-old", "old.md", "ff00", 0, "Unrelated text.", 0, 15)
SUPPORT = "Grease the Ø-bearing monthly."
DONE = Done(
    question="How often is the bearing greased?",
    query="bearing grease interval",
    answer="Monthly, with lithium grease. [1]",
    raw_answer="Monthly, with lithium grease [1].",
    citations=(Citation(1, PUMP, SUPPORT, 0, len(SUPPORT)),),
    hits=(Hit(PUMP, 1, 0.9), Hit(OTHER, 2, 0.1)),
    sentences=(SentenceCheck(0, "Monthly, with lithium grease. [1]", True, 0.9, 1, SUPPORT),),
    refused=False,
    mode="generated",
    status="complete",
    timings=Timings(retrieval_ms=12.0, first_token_ms=300.0, total_ms=900.0, tokens=9),
    config={"top_k": 5, "retrieval_mode": "hybrid", "generator": "transformers"},
)
WHEN = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.fixture
def logged(tmp_path: Path) -> Iterator[tuple[ConversationRecord, list[TurnRecord]]]:
    db = Database(f"sqlite:///{tmp_path / 'log.sqlite'}")
    db.migrate()
    log = ConversationLog(db)
    conv = log.create_conversation("alice", "Pumps: Größe & <care>/../x")
    log.record_turn(conv.id, "alice", DONE)
    log.record_turn(conv.id, "alice", DONE)
    turn = log.turns(conv.id, "alice")[1]
    log.set_feedback(turn.id, "alice", -1, "too vague")
    yield log.get_conversation(conv.id, "alice"), log.turns(conv.id, "alice")
    db.dispose()


def test_json_export_follows_the_documented_schema(
    logged: tuple[ConversationRecord, list[TurnRecord]],
) -> None:
    conv, turns = logged
    file = export.export_conversation(conv, turns, "json", available={"doc-pump"}, exported_at=WHEN)
    assert file.media_type == "application/json"
    data = json.loads(file.content)
    ConversationExport.model_validate(data)  # the schema docs/API.md and /openapi.json show
    assert (data["format"], data["format_version"]) == ("ragchat-conversation", 2)
    assert data["exported_at"] == WHEN.isoformat()
    c = data["conversation"]
    assert (c["user"], c["title"], c["turn_count"]) == ("alice", conv.title, 2)
    first = c["turns"][0]
    assert first["question"] == DONE.question and first["answer"] == DONE.answer
    cite = first["citations"][0]
    assert cite["text"] == PASSAGE and cite["version"] == "ab12cd"
    assert (cite["page"], cite["page_end"], cite["heading_path"]) == (
        7,
        8,
        ["Maintenance", "Bearings"],
    )
    assert cite["support"] == SUPPORT and cite["document_available"] is True
    assert [p["document_available"] for p in first["passages"]] == [True, False]
    assert first["config"] == DONE.config and first["timings"]["first_token_ms"] == 300.0
    assert c["turns"][1]["feedback_rating"] == -1 and c["turns"][1]["created_at"]


def test_markdown_export_holds_passages_settings_and_times(
    logged: tuple[ConversationRecord, list[TurnRecord]],
) -> None:
    conv, turns = logged
    file = export.export_conversation(conv, turns, "md", available=set(), exported_at=WHEN)
    text = file.content.decode("utf-8")
    assert file.media_type.startswith("text/markdown")
    assert text.startswith(f"# {conv.title}\n")
    assert text.count("\n## ") == 2 and f"## 1. {DONE.question}" in text
    # the exact passage, line by line, as a quote; where it comes from
    assert "> Grease the Ø-bearing monthly.\n> Use lithium grease — 5 g per nipple." in text
    assert "pump manual.pdf (version ab12cd) · page 7-8 · Maintenance > Bearings" in text
    assert "this version since deleted or replaced" in text  # nothing is available now
    assert f"Supporting sentence: {SUPPORT}" in text
    assert '- retrieval_mode: "hybrid"' in text and "- top_k: 5" in text
    assert turns[0].created_at.isoformat() in text and WHEN.isoformat() in text
    assert "Feedback: thumbs down: too vague" in text


def test_pdf_export_reads_back_as_text(
    logged: tuple[ConversationRecord, list[TurnRecord]],
) -> None:
    from pypdf import PdfReader

    conv, turns = logged
    file = export.export_conversation(conv, turns, "pdf", exported_at=WHEN)
    assert file.media_type == "application/pdf" and file.content.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(file.content))
    text = " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages)
    assert DONE.question in text
    assert "Use lithium grease" in text and "5 g per nipple" in text
    assert "pump manual.pdf (version ab12cd)" in text and "Maintenance > Bearings" in text
    assert "retrieval_mode" in text and WHEN.isoformat() in text
    if export._unicode_font() is not None:  # Helvetica shows only Latin-1
        assert "Ø-bearing" in text and "—" in text


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Pumps: Größe & <care>/../x", "pumps-grosse-care-x-0123abcd.md"),
        ("../../etc/passwd", "etc-passwd-0123abcd.md"),
        ("東京の質問", "conversation-0123abcd.md"),
        ("a" * 300, "a" * export.MAX_STEM + "-0123abcd.md"),
        ("CON\\x00\r\nname", "con-x00-name-0123abcd.md"),
    ],
)
def test_file_names_are_safe(title: str, expected: str) -> None:
    name = export.safe_filename(title, "0123abcd" + "e" * 24, "md")
    assert name == expected
    assert "/" not in name and "\\" not in name and name.isascii()


def test_an_unknown_format_is_refused_by_name(
    logged: tuple[ConversationRecord, list[TurnRecord]],
) -> None:
    conv, turns = logged
    with pytest.raises(export.ExportFormatError, match=r"'docx'.*md, json, pdf"):
        export.export_conversation(conv, turns, "docx")
