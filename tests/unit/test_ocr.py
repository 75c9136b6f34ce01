"""OCR of scanned PDF pages and pictures with the real Tesseract (installed by `make`): the text
it reads, which pages are marked, and a clear error for every limit and every missing piece."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydantic import ValidationError

from rag_core.config import Settings
from rag_core.errors import EmptyDocumentError, IngestError, UnsupportedFormatError
from rag_core.ingest.chunking import iter_chunks
from rag_core.ingest.loaders import LoadLimits, load_document
from rag_core.ingest.ocr import OcrOptions
from rag_core.types import Chunk, page_ranges
from tests import docmaker as dm


def load(data: bytes, name: str, **ocr: object) -> object:
    options = OcrOptions(**ocr)  # type: ignore[arg-type]
    return load_document(data, name, LoadLimits(50, 1_000_000, ocr=options))


def _mixed_pdf() -> bytes:
    """Page 1 has a text layer, page 2 is a scan."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for part in (
        dm.make_pdf(["Typed page. The office opens at nine in the morning."]),
        dm.make_image_pdf([["Scanned page.", "The spare key hangs behind the blue door."]]),
    ):
        for page in PdfReader(io.BytesIO(part)).pages:
            writer.add_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_an_image_only_pdf_is_read_page_by_page() -> None:
    data = dm.make_image_pdf(
        [["Delivery notes.", "Parcels leave the depot at six."], ["The depot code is 4711."]]
    )
    parsed = load(data, "scan.pdf")
    assert "Parcels leave the depot at six" in parsed.text  # type: ignore[attr-defined]
    blocks = parsed.blocks  # type: ignore[attr-defined]
    assert [(b.page, b.ocr) for b in blocks] == [(1, True), (2, True)]
    assert "4711" in parsed.text[blocks[1].char_start : blocks[1].char_end]  # type: ignore[attr-defined]
    assert parsed.ocr_pages == (1, 2)  # type: ignore[attr-defined]


def test_only_the_scanned_page_of_a_mixed_pdf_is_marked_and_chunks_carry_the_mark() -> None:
    parsed = load(_mixed_pdf(), "mixed.pdf")
    assert parsed.ocr_pages == (2,)  # type: ignore[attr-defined]
    chunks = list(
        iter_chunks(
            parsed,  # type: ignore[arg-type]
            document_id="d",
            document_name="mixed.pdf",
            version="v" * 12,
            count_tokens=lambda texts: [len(t.split()) + 2 for t in texts],
            chunk_size=200,
            chunk_overlap=0,
        )
    )
    marks = [(c.page, c.ocr) for c in chunks]
    assert marks == [(1, False), (2, True)]
    assert "blue door" in chunks[1].text
    assert chunks[1].shown_location == "p. 2 · read by OCR"
    assert chunks[0].shown_location == "p. 1"


@pytest.mark.parametrize(("fmt", "name"), [("PNG", "note.png"), ("JPEG", "note.jpg")])
def test_pictures_are_read(fmt: str, name: str) -> None:
    data = dm.make_text_image(["Reminder: the boiler service is due in March."], fmt=fmt)
    parsed = load(data, name)
    assert "boiler service is due in March" in parsed.text  # type: ignore[attr-defined]
    assert parsed.doc_type == "image" and parsed.ocr_pages == (1,)  # type: ignore[attr-defined]
    assert all(b.ocr for b in parsed.blocks)  # type: ignore[attr-defined]


def test_ocr_off_refuses_pictures_and_says_why_a_scan_has_no_text() -> None:
    picture = dm.make_text_image(["Some text."])
    with pytest.raises(UnsupportedFormatError, match=r"needs OCR.*RAGCHAT_OCR=off"):
        load(picture, "a.png", mode="off")
    scan = dm.make_image_pdf([["Some text on a scanned page."]])
    with pytest.raises(EmptyDocumentError, match=r"scanned images.*RAGCHAT_OCR is off"):
        load(scan, "scan.pdf", mode="off")


def test_a_blank_scan_is_an_empty_document() -> None:
    with pytest.raises(EmptyDocumentError, match=r"no extractable text in 2 page.*OCR found no"):
        load(dm.make_image_pdf([[], []]), "blank.pdf")  # white pictures
    # pages that draw no picture at all are not worth rendering: blank, or only shapes
    with pytest.raises(EmptyDocumentError, match=r"in 3 page.*no scanned images in it for OCR"):
        load(dm.make_scanned_pdf(3), "shapes.pdf")


def test_pages_per_file_limit_names_the_setting() -> None:
    scan = dm.make_image_pdf([["Page one."], ["Page two."], ["Page three."]])
    with pytest.raises(IngestError, match=r"3 pages without a text layer.*RAGCHAT_OCR_MAX_PAGES"):
        load(scan, "long.pdf", max_pages=2)


def test_seconds_per_page_limit_names_the_setting() -> None:
    scan = dm.make_image_pdf([["A page that takes too long."]])
    with pytest.raises(IngestError, match=r"OCR of page 1 took longer than 0\.01 s.*_PAGE_TIMEOUT"):
        load(scan, "slow.pdf", page_timeout_s=0.01)


def test_missing_tesseract_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no tesseract on this PATH
    with pytest.raises(IngestError, match=r"Tesseract is not installed.*apt-get install tesseract"):
        load(dm.make_text_image(["Text."]), "a.png")


def test_missing_language_names_the_setting_and_the_package() -> None:
    with pytest.raises(
        IngestError, match=r"language klingon \(RAGCHAT_OCR_LANG=eng\+klingon\).*tesseract-ocr-kl"
    ):
        load(dm.make_text_image(["Text."]), "a.png", lang="eng+klingon")


def test_settings_validate_ocr_values() -> None:
    s = Settings(ocr="off", ocr_lang="eng+deu", ocr_max_pages=5, ocr_page_timeout=9)
    assert s.ocr_options() == OcrOptions("off", "eng+deu", 5, 9.0)
    for bad in ({"ocr": "always"}, {"ocr_lang": "eng; rm -rf /"}, {"ocr_max_pages": 0}):
        with pytest.raises(ValidationError):
            Settings(**bad)  # type: ignore[arg-type]


def test_corrupt_picture() -> None:
    with pytest.raises(IngestError, match=r"bad\.png: corrupt PNG picture"):
        load(b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "bad.png")


def test_page_ranges() -> None:
    assert page_ranges([7, 1, 2, 3, 9, 10]) == "1-3, 7, 9-10"
    assert page_ranges([]) == ""


def test_old_chunks_without_the_mark_read_as_not_ocr() -> None:
    chunk = Chunk("i", "d", "n", "v", 0, "t", 0, 1)
    assert chunk.ocr is False and chunk.shown_location == ""


def test_cli_ingest_line_lists_the_pages_ocr_read() -> None:
    from datetime import UTC, datetime

    from rag_core.types import DocumentRecord, IngestResult
    from webapp.cli import _result_line

    doc = DocumentRecord(
        "d1", "scan.pdf", "h", 1, 10, "pdf", 4, 3, datetime.now(UTC), ocr_pages=(1, 2, 4)
    )
    line = _result_line(Path("scan.pdf"), IngestResult("scan.pdf", "added", doc, 3, seconds=2.0))
    assert line.startswith("added") and "3 chunks, OCR read page(s) 1-2, 4 in 2.0s" in line


def test_cli_ingest_line_names_the_first_warning_of_the_report() -> None:
    from datetime import UTC, datetime

    from rag_core.types import DocumentRecord, IngestReport, IngestResult
    from webapp.cli import _result_line

    report = IngestReport(
        warnings=("page 2 has almost no text (5 characters)", "page 3 has no text")
    )
    doc = DocumentRecord("d1", "a.pdf", "h", 1, 10, "pdf", 3, 2, datetime.now(UTC), report=report)
    line = _result_line(Path("a.pdf"), IngestResult("a.pdf", "added", doc, 2, seconds=1.0))
    assert line.endswith(
        "in 1.0s; warning: page 2 has almost no text (5 characters) (+1 more: ragchat docs show)"
    )


def test_a_picture_bomb_is_refused_before_it_is_decoded() -> None:
    with pytest.raises(IngestError, match=r"bomb\.png: is a picture of more than [\d,]+ pixels"):
        load(dm.make_png_bomb(), "bomb.png")
