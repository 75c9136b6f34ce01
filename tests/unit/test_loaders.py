"""Loaders: text, blocks (offsets, pages, heading paths) and the error for each kind of bad file."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from rag_core.errors import EmptyDocumentError, IngestError, UnsupportedFormatError
from rag_core.ingest.loaders import LoadLimits, load_document, normalize_text
from rag_core.types import ParsedDocument
from tests import docmaker as dm

LIMITS = LoadLimits(max_pages=50, max_text_chars=1_000_000)


def load(data: bytes, name: str, **limits: float) -> ParsedDocument:
    return load_document(data, name, replace(LIMITS, **limits))


def assert_tiles(parsed: ParsedDocument) -> None:
    """Blocks are contiguous, cover the whole text and each holds some text."""
    assert parsed.blocks, "a document with text has blocks"
    assert parsed.blocks[0].char_start == 0
    assert parsed.blocks[-1].char_end == len(parsed.text)
    for a, b in itertools.pairwise(parsed.blocks):
        assert a.char_end == b.char_start
    for block in parsed.blocks:
        assert parsed.text[block.char_start : block.char_end].strip()


def block_at(parsed: ParsedDocument, needle: str) -> tuple[int | None, tuple[str, ...]]:
    """(page, heading_path) of the block that holds `needle`."""
    pos = parsed.text.index(needle)
    for block in parsed.blocks:
        if block.char_start <= pos < block.char_end:
            return block.page, block.heading_path
    raise AssertionError(f"{needle!r} is in no block")


# --------------------------------------------------------------------------- PDF


def test_pdf_pages_are_kept() -> None:
    data = dm.make_pdf(
        ["Alpha page one text.", "Bravo page two text.", "Charlie page three text."],
        title="Three Pages",
    )
    parsed = load(data, "three.pdf")
    assert parsed.doc_type == "pdf"
    assert parsed.page_count == 3
    assert parsed.title == "Three Pages"
    assert parsed.text == "Alpha page one text.\n\nBravo page two text.\n\nCharlie page three text."
    assert [b.page for b in parsed.blocks] == [1, 2, 3]
    assert block_at(parsed, "Bravo") == (2, ())
    assert block_at(parsed, "Charlie") == (3, ())
    assert_tiles(parsed)


def test_pdf_blank_page_is_skipped_but_counted() -> None:
    parsed = load(dm.make_pdf(["First.", "", "Third."]), "gap.pdf")
    assert parsed.page_count == 3
    assert [b.page for b in parsed.blocks] == [1, 3]
    assert_tiles(parsed)


def test_encrypted_pdf() -> None:
    with pytest.raises(IngestError, match=r"locked\.pdf: encrypted PDF \(password protected\)"):
        load(dm.make_encrypted_pdf(["Secret text."]), "locked.pdf")


def test_pdf_with_empty_user_password_opens() -> None:
    parsed = load(dm.make_encrypted_pdf(["Readable text."], user_password=""), "owner.pdf")
    assert parsed.text == "Readable text."


def test_truncated_pdf() -> None:
    with pytest.raises(IngestError, match=r"cut\.pdf: corrupt or truncated PDF: \S"):
        load(dm.make_truncated_pdf(["Some text."] * 3), "cut.pdf")


def test_corrupt_pdf() -> None:
    with pytest.raises(IngestError, match=r"bad\.pdf: corrupt or truncated PDF: \S") as info:
        load(dm.make_corrupt_pdf(), "bad.pdf")
    assert type(info.value) is IngestError


def test_scanned_pdf_without_text() -> None:
    with pytest.raises(EmptyDocumentError, match=r"scan\.pdf: no extractable text.*scanned images"):
        load(dm.make_scanned_pdf(2), "scan.pdf")


def test_pdf_page_limit() -> None:
    with pytest.raises(
        IngestError, match=r"has 4 pages, more than the limit of 3 \(RAGCHAT_MAX_PAGES\)"
    ):
        load(dm.make_pdf(["a.", "b.", "c.", "d."]), "long.pdf", max_pages=3)


# --------------------------------------------------------------------------- DOCX


def test_docx_headings_paragraphs_and_tables() -> None:
    data = dm.make_docx(
        [
            "# Introduction",
            "Opening paragraph.",
            "## Background",
            "History goes here.",
            [["Name", "Value"], ["alpha", "1"]],
            "### Detail",
            "Fine print.",
            "# Results",
            "It worked.",
        ],
        title="Report",
    )
    parsed = load(data, "report.docx")
    assert parsed.doc_type == "docx"
    assert parsed.title == "Report"
    assert parsed.text.startswith("Introduction\n\nOpening paragraph.\n\nBackground")
    assert "\n\nName: alpha | Value: 1\n\n" in parsed.text  # each cell with its column header
    assert block_at(parsed, "Opening")[1] == ("Introduction",)
    assert block_at(parsed, "History")[1] == ("Introduction", "Background")
    assert block_at(parsed, "Name: alpha")[1] == ("Introduction", "Background")
    assert block_at(parsed, "Fine print")[1] == ("Introduction", "Background", "Detail")
    assert block_at(parsed, "It worked")[1] == ("Results",)
    assert all(b.page is None for b in parsed.blocks)
    assert_tiles(parsed)


def test_docx_zip_bomb_by_total_size() -> None:
    with pytest.raises(
        IngestError,
        match=r"bomb\.docx: unpacks to 21\d MB, more than the limit of 200 MB "
        r"\(RAGCHAT_MAX_UNPACKED_MB\); it looks like a zip bomb",
    ):
        load(dm.make_docx_zip_bomb(210), "bomb.docx")


def test_docx_unpacked_limit_is_a_setting() -> None:
    data = dm.make_docx_zip_bomb(8)  # 8 MB of zeros: under the ratio guard's 10 MB
    with pytest.raises(IngestError, match=r"more than the limit of 5 MB \(RAGCHAT_MAX_UNPACKED"):
        load(data, "bomb.docx", max_unpacked_mb=5)
    assert "Harmless" in load(data, "bomb.docx", max_unpacked_mb=50).text


def test_docx_zip_bomb_by_ratio() -> None:
    with pytest.raises(
        IngestError, match=r"compressed [\d,]+:1 \(limit 100:1\); it looks like a zip"
    ):
        load(dm.make_docx_zip_bomb(20), "small-bomb.docx")


def test_zip_renamed_docx() -> None:
    with pytest.raises(UnsupportedFormatError, match="is a ZIP archive, not a Word document"):
        load(dm.make_zip_renamed_docx(), "fake.docx")


def test_empty_docx() -> None:
    with pytest.raises(EmptyDocumentError, match=r"blank\.docx: has no text"):
        load(dm.make_docx(["", "   "]), "blank.docx")


# --------------------------------------------------------------------------- HTML


def test_html_blocks_and_heading_paths() -> None:
    data = dm.make_html(
        ["# Guide", "Welcome text.", "## Install", "Run the installer.", "# FAQ", "Questions."],
        title="The Guide",
    )
    parsed = load(data, "guide.html")
    assert parsed.title == "The Guide"
    assert parsed.text == (
        "Guide\n\nWelcome text.\n\nInstall\n\nRun the installer.\n\nFAQ\n\nQuestions."
    )
    assert block_at(parsed, "Welcome")[1] == ("Guide",)
    assert block_at(parsed, "Run the")[1] == ("Guide", "Install")
    assert block_at(parsed, "Questions")[1] == ("FAQ",)
    assert "The Guide" not in parsed.text  # the <title> is metadata, not body text
    assert_tiles(parsed)


def test_html_scripts_styles_and_hidden_content_are_dropped() -> None:
    parsed = load(dm.make_script_html("Only this is visible.", secret="XYZZY"), "spam.html")
    assert parsed.text == "Only this is visible."
    assert "XYZZY" not in parsed.text


def test_deeply_nested_html_does_not_recurse() -> None:
    parsed = load(dm.make_nested_html(5000, "Deep text."), "deep.html")
    assert parsed.text == "Deep text.\n\nAfter."


def test_html_inline_tables_lists_and_pre() -> None:
    page = (
        b"<p>Hello <b>bold</b>\n   world.</p>"
        b"<table><tr><th>Key</th><td>Value</td></tr><tr><td>a</td><td></td><td>b</td></tr></table>"
        b"<ul><li>one</li><li>two</li></ul><pre>x = 1\n    y = 2</pre><!-- a comment -->"
    )
    parsed = load(page, "mixed.htm")
    assert parsed.text == "Hello bold world.\n\nKey | Value\na | b\n\none\ntwo\n\nx = 1\n    y = 2"


def test_html_with_only_scripts_is_empty() -> None:
    with pytest.raises(EmptyDocumentError, match=r"js\.html: has no text"):
        load(b"<html><body><script>alert(1)</script></body></html>", "js.html")


def test_html_declared_legacy_charset() -> None:
    page = '<html><head><meta charset="windows-1251"></head><body>Привет</body></html>'
    parsed = load(page.encode("cp1251"), "ru.html")
    assert parsed.text == "Привет"


# --------------------------------------------------------------------------- Markdown


MARKDOWN = """\
---
title: front matter
---
# Manual

Intro text.

```bash
# not a heading, a shell comment
echo hi
```

Setup
-----

Install it.

### Deep *section* ###

Details.

Other Part
==========

The end.
"""


def test_markdown_raw_text_and_heading_paths() -> None:
    parsed = load(MARKDOWN.encode(), "manual.md")
    assert parsed.doc_type == "markdown"
    assert parsed.text == MARKDOWN  # kept as written
    assert parsed.title == "Manual"
    assert block_at(parsed, "title: front")[1] == ()
    assert block_at(parsed, "Intro text")[1] == ("Manual",)
    assert block_at(parsed, "echo hi")[1] == ("Manual",)
    assert block_at(parsed, "Setup")[1] == ("Manual", "Setup")  # setext starts at its text
    assert block_at(parsed, "Install it")[1] == ("Manual", "Setup")
    assert block_at(parsed, "Details")[1] == ("Manual", "Setup", "Deep section")
    assert block_at(parsed, "The end")[1] == ("Other Part",)
    assert_tiles(parsed)


def test_markdown_hashtag_is_not_a_heading() -> None:
    parsed = load(b"#hashtag text\n\nmore\n", "tags.md")
    assert [b.heading_path for b in parsed.blocks] == [()]


# --------------------------------------------------------------------------- text


def test_text_normalisation() -> None:
    raw = b"Line one.\r\nLine two.\r\n\r\n\r\n\r\n\r\nPara two.\n\n\n"
    parsed = load(raw, "notes.txt")
    assert parsed.text == "Line one.\nLine two.\n\nPara two.\n\n"
    assert parsed.blocks[0].char_start == 0 and parsed.blocks[-1].char_end == len(parsed.text)
    assert parsed.blocks[0].heading_path == ()


def test_utf16_text() -> None:
    parsed = load(dm.make_utf16_text("Grüße aus Köln.\r\n\r\nZweiter Absatz.\r\n"), "win.txt")
    assert parsed.text == "Grüße aus Köln.\n\nZweiter Absatz.\n"


def test_invalid_utf8_text() -> None:
    with pytest.raises(IngestError, match=r"bad\.txt: is not valid UTF-8 text \(invalid byte 0xff"):
        load(dm.make_invalid_utf8(), "bad.txt")


def test_binary_txt() -> None:
    with pytest.raises(UnsupportedFormatError, match=r"blob\.txt: contains binary data, not text"):
        load(dm.make_binary_txt(), "blob.txt")


@pytest.mark.parametrize("data", [b"", b"   \n\n\t  \r\n"], ids=["empty", "whitespace"])
def test_empty_text(data: bytes) -> None:
    with pytest.raises(EmptyDocumentError, match=r"empty\.txt: (the file is empty|has no text)"):
        load(data, "empty.txt")


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (dm.make_text(["word " * 400]), "big.txt"),
        (dm.make_markdown(["word " * 400]), "big.md"),
        (dm.make_html(["word " * 400]), "big.html"),
        (dm.make_docx(["word " * 400]), "big.docx"),
        (dm.make_pdf(["word " * 400]), "big.pdf"),
    ],
    ids=["text", "markdown", "html", "docx", "pdf"],
)
def test_text_limit_names_the_setting(data: bytes, name: str) -> None:
    with pytest.raises(IngestError, match=r"more than 1,000 characters .*RAGCHAT_MAX_TEXT_CHARS"):
        load(data, name, max_text_chars=1000)


def test_normalize_text() -> None:
    assert normalize_text("a\r\nb\rc\x00d\x07\n \n\t\n\n\ne\x0cf") == "a\nb\ncd\n\ne\nf"


def test_markdown_leading_blank_lines_make_no_empty_block() -> None:
    parsed = load(b"\n\n# Top\n\nText.\n", "lead.md")
    assert [b.heading_path for b in parsed.blocks] == [("Top",)]
    assert_tiles(parsed)
