"""Web app pieces that need no server: escaping, answer rendering, highlighting, password hashes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from rag_core.db.records import ConversationRecord
from rag_core.errors import ConfigError
from rag_core.types import (
    Chunk,
    Citation,
    DocumentRecord,
    Done,
    Hit,
    IngestResult,
    Logged,
    Retrieved,
    SentenceCheck,
    SentenceChecked,
    Timings,
    Token,
)
from webapp import render
from webapp.auth import authenticator, hash_password, parse_users, verify_password

XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=1">'


def chunk(text: str, name: str = "guide.md", cid: str = "c1") -> Chunk:
    return Chunk(cid, "d1", name, "v", 0, text, 0, len(text), page=3, heading_path=("Setup",))


def hit(c: Chunk, rank: int = 1) -> Hit:
    return Hit(c, rank, 0.03, dense_score=0.7, dense_rank=rank, keyword_score=None)


def done(
    answer: str, hits: tuple[Hit, ...], sentences: tuple[SentenceCheck, ...], **kw: object
) -> Done:
    citations = tuple(
        Citation(s.citation, hits[s.citation - 1].chunk, s.support)
        for s in sentences
        if s.supported and s.citation
    )
    base: dict[str, object] = dict(
        question="q", query="q", answer=answer, raw_answer=answer, citations=citations, hits=hits,
        sentences=sentences, refused=False, mode="generated", status="complete", timings=Timings(),
    )  # fmt: skip
    base.update(kw)
    return Done(**base)  # type: ignore[arg-type]


def no_raw_markup(html_text: str) -> bool:
    return "<script" not in html_text and "<img" not in html_text


def test_document_text_and_names_are_escaped_everywhere() -> None:
    c = chunk(f"The valve runs at 42 bar. {XSS}", name=f"{XSS}.md")
    hits = (hit(c),)
    check = SentenceCheck(0, "It runs at 42 bar. [1]", True, 0.9, 1, "The valve runs at 42 bar.")
    view = render.TurnView(question=XSS, turn_id=7)
    for event in (
        Retrieved(XSS, XSS, hits, False),
        Token("It runs at 42 bar."),
        SentenceChecked(check),
        done(f"It runs at 42 bar. [1] {XSS}", hits, (check,), question=XSS),
        Logged("conv", 7),
    ):
        view.apply(event)
    rendered = [
        render.render_turn(view),
        render.render_sources(view, focus=1),
        render.render_error(XSS, XSS),
        render.render_chunks(
            DocumentRecord("d1", XSS, "x", 1, 1, "text", None, 1, datetime.now(UTC)), [c]
        ),
        render.render_history(
            [ConversationRecord("c", "u", XSS, datetime.now(UTC), datetime.now(UTC), 1)], "c"
        ),
        render.render_ingest_results([IngestResult(XSS, "error", error=XSS)]),
    ]
    for fragment in rendered:
        assert no_raw_markup(fragment), fragment
        assert "&lt;script&gt;" in fragment or "&lt;img" in fragment


def test_streaming_shows_the_unchecked_tail_as_pending() -> None:
    c = chunk("The valve runs at 42 bar. It was made in 2019.")
    view = render.TurnView(question="q")
    view.apply(Retrieved("q", "q", (hit(c),), False))
    view.apply(Token("It runs at 42 bar. It is blue"))
    html_text = render.render_turn(view)
    assert 'class="rc-pending"' in html_text and "It runs at 42 bar. It is blue" in html_text
    view.apply(SentenceChecked(SentenceCheck(0, "It runs at 42 bar. [1]", True, 0.9, 1, "x")))
    html_text = render.render_turn(view)
    assert '<span class="rc-ok">It runs at 42 bar.' in html_text
    assert 'data-n="1"' in html_text
    pending = html_text.split('class="rc-pending"')[1]
    assert "It is blue" in pending and "42 bar" not in pending


def test_unsupported_sentences_are_marked_with_their_reason() -> None:
    c = chunk("The valve runs at 42 bar.")
    hits = (hit(c),)
    good = SentenceCheck(0, "It runs at 42 bar. [1]", True, 0.9, 1, "The valve runs at 42 bar.")
    bad = SentenceCheck(1, "It is painted blue.", False, 0.1, None, None, "no matching passage")
    answer = "It runs at 42 bar. [1] It is painted blue. [not in your documents]"
    view = render.TurnView(question="q")
    view.apply(done(answer, hits, (good, bad)))
    html_text = render.render_turn(view)
    assert "[not in your documents]" not in html_text
    assert 'class="rc-unsupported" title="Not in your documents: no matching passage"' in html_text
    assert "It is painted blue." in html_text.split("rc-unsupported")[1]
    assert render.answer_segments(view) == [
        ("It runs at 42 bar. [1]", None),
        ("It is painted blue.", "no matching passage"),
    ]
    # a turn logged before verdicts were kept, whose parts do not make up its text: its text
    legacy = render.TurnView(question="q")
    legacy.apply(done("Something else entirely.", hits, (good, bad)))
    assert render.answer_segments(legacy) == [("Something else entirely.", None)]


def test_refusal_and_stopped_turns_are_labelled() -> None:
    c = chunk("Unrelated text.")
    view = render.TurnView(question="q")
    view.apply(done("Your documents don't say.", (hit(c),), (), refused=True, mode="refused"))
    assert "rc-refused" in render.render_turn(view)
    assert "Refused" in render.render_sources(view)
    view = render.TurnView(question="q")
    view.apply(done("", (hit(c),), (), status="stopped"))
    assert "stopped" in render.render_turn(view)


def test_citations_passages_and_documents_say_when_text_was_read_by_ocr() -> None:
    from dataclasses import replace

    scanned = replace(chunk("The valve runs at 42 bar."), ocr=True)
    typed = chunk("The pump is grey.", cid="c2")
    hits = (hit(scanned), hit(typed, 2))
    check = SentenceCheck(0, "It runs at 42 bar. [1]", True, 0.9, 1, "The valve runs at 42 bar.")
    view = render.TurnView(question="q")
    view.apply(done("It runs at 42 bar. [1]", hits, (check,)))
    sources = render.render_sources(view, focus=1)
    card = sources.split('class="rc-citation"')[1]
    assert "p. 3 · Setup · read by OCR" in card  # the citation card
    passages = sources.split('data-rank="')
    assert "read by OCR" in passages[1] and "read by OCR" not in passages[2]
    assert 'title="[1] guide.md · p. 3 · Setup · read by OCR"' in render.render_turn(view)
    doc = DocumentRecord(
        "d1", "scan.pdf", "x", 1, 1, "pdf", 9, 4, datetime.now(UTC), ocr_pages=(1, 2, 3, 7)
    )
    assert "9 (OCR: 1-3, 7)" in render.render_documents([doc])
    added = render.render_ingest_results([IngestResult("scan.pdf", "added", doc, 4)])
    assert "OCR read page(s) 1-3, 7" in added
    shown = render.render_chunks(doc, [scanned])
    assert "scan.pdf · 1 chunks · OCR read page(s) 1-3, 7" in shown
    assert "p. 3 · Setup · read by OCR" in shown


def test_highlight_marks_support_and_question_words() -> None:
    text = "Intro. The valve runs at 42 bar. Valves rust."
    start = text.index("The valve")
    out = render.highlight(
        text, render.question_terms("How fast does the valve run?"), (start, start + 25)
    )
    assert out.count('<mark class="rc-support">') == 1
    assert (
        '<mark class="rc-term">valve</mark>' in out and '<mark class="rc-term">Valves</mark>' in out
    )
    assert "does" not in render.question_terms("How fast does the valve run?")


def test_password_hashes_round_trip_and_users_parse() -> None:
    encoded = hash_password("s3cret", iterations=1000)
    assert encoded.startswith("pbkdf2_sha256$1000$")
    assert verify_password("s3cret", encoded) and not verify_password("wrong", encoded)
    assert not verify_password("s3cret", "garbage")
    users = parse_users(f"alice:{encoded}, bob:{hash_password('pw', iterations=1000)}")
    assert set(users) == {"alice", "bob"}
    check = authenticator(users)
    assert check("alice", "s3cret") and not check("alice", "pw") and not check("carol", "s3cret")
    with pytest.raises(ConfigError, match="not a user:hash pair"):
        parse_users("alice")
    with pytest.raises(ConfigError, match="hash of user 'alice'"):
        parse_users("alice:plaintext")


def test_users_file(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text(
        f"# accounts\nalice:{hash_password('pw', iterations=1000)}\n\n", encoding="utf-8"
    )
    assert list(parse_users(str(path))) == ["alice"]


def test_cli_prints_each_file_on_one_line() -> None:
    """A newline or other control character in a file name cannot break the line per file."""
    from webapp.cli import shown

    assert shown(Path("dir/a\nb\tc\x00.txt")) == "dir/a\\nb\\tc\\x00.txt"
    assert shown(Path("résumé ✓.pdf")) == "résumé ✓.pdf"
