"""The ingest report's facts: the warnings the PDF loader gives for empty, thin, scanned and
unread pages and for tables it could not read; the report the pipeline keeps (fake embedder);
its text and HTML (escaped), and a document from before reports were kept."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rag_core.config import Settings
from rag_core.ingest.loaders import LoadLimits, load_document, pdf_tables
from rag_core.ingest.ocr import OcrOptions
from rag_core.testing import fake_engine
from rag_core.types import DocumentRecord, IngestReport, IngestResult
from tests import docmaker
from webapp import render, serialize

TEXT = "The pump runs at 40 litres a minute when the valve is open."
XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=1">'


def merged(*parts: bytes) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for part in parts:
        writer.append(io.BytesIO(part))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_empty_and_thin_pages_are_reported_in_page_order_one_sentence_a_kind() -> None:
    pdf = docmaker.make_pdf([TEXT, "Fig. 2", "", " ", "3", TEXT, "p. 7"])
    parsed = load_document(pdf, "pump.pdf")
    assert parsed.warnings == (
        "pages 2, 5, 7 have almost no text (5, 1, 3 characters)",
        "pages 3-4 have no text",
    )
    assert load_document(docmaker.make_pdf([TEXT, "x"]), "a.pdf").warnings == (
        "page 2 has almost no text (1 character)",
    )
    assert load_document(docmaker.make_pdf([TEXT, TEXT]), "b.pdf").warnings == ()


def test_a_scanned_page_with_ocr_off_is_reported_as_not_read() -> None:
    pdf = merged(docmaker.make_pdf([TEXT]), docmaker.make_image_pdf([["Lighthouse notes."]]))
    parsed = load_document(pdf, "scan.pdf", LoadLimits(ocr=OcrOptions(mode="off")))
    assert parsed.warnings == (
        "page 2 looks scanned (an image without a text layer) and not read: OCR is off"
        " (RAGCHAT_OCR=off)",
    )
    assert parsed.ocr_pages == ()


def test_a_scan_ocr_finds_nothing_in_is_reported() -> None:
    pdf = merged(docmaker.make_pdf([TEXT]), docmaker.make_image_pdf([[]]))
    parsed = load_document(pdf, "blank-scan.pdf")
    assert parsed.warnings == ("page 2: OCR found no text in the scanned image",)
    assert parsed.ocr_pages == ()


def test_tables_that_cannot_be_read_are_reported_and_the_text_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = [["Model", "Ports"], ["X200", "four"], ["X100", "two"]]
    pdf = docmaker.make_table_pdf("Routers the shop sells.", rows)
    assert load_document(pdf, "t.pdf").tables == 1

    def broken(page: object, number: int) -> None:
        raise ValueError("bad cell box")

    monkeypatch.setattr(pdf_tables, "_page_pieces", broken)
    parsed = load_document(pdf, "t.pdf")
    assert parsed.tables == 0 and "X200" in parsed.text
    assert parsed.warnings == (
        "tables on page 1 could not be read (bad cell box); the page keeps its plain text",
    )


def test_pictures_in_a_word_document_are_reported_as_not_read() -> None:
    import docx

    document = docx.Document()
    document.add_paragraph(TEXT)
    for _ in range(2):
        document.add_picture(io.BytesIO(docmaker.make_text_image(["Wiring diagram"])))
    out = io.BytesIO()
    document.save(out)
    parsed = load_document(out.getvalue(), "wiring.docx")
    assert parsed.warnings == ("2 pictures in the document: text inside pictures is not read",)
    assert load_document(docmaker.make_docx([TEXT]), "plain.docx").warnings == ()


def test_the_pipeline_keeps_the_report_with_the_document(tmp_path: Path) -> None:
    engine = fake_engine(Settings(home=tmp_path))
    table = [["Model", "Ports"], ["X200", "four"], ["X100", "two"]]
    docx = docmaker.make_docx(["# Routers", "Two routers.", table])
    results = engine.ingest([(docmaker.make_pdf([TEXT, ""]), "a.pdf"), (docx, "r.docx")])
    assert [r.status for r in results] == ["added", "added"]
    pdf, word = (engine.document(n) for n in ("a.pdf", "r.docx"))
    assert pdf.report is not None and word.report is not None
    assert pdf.report.warnings == ("page 2 has no text",) and pdf.report.tables == 0
    assert word.report.warnings == () and word.report.tables == 1
    assert pdf.report.embedder == "fake" and len(pdf.report.embedder_fingerprint) == 64
    for result, record in zip(results, (pdf, word), strict=True):
        assert record.report is not None
        assert 0 < record.report.load_seconds <= record.report.seconds
        assert record.report.seconds == pytest.approx(result.seconds, abs=0.001)
    again = engine.ingest([(docx, "copy.docx")])[0]  # a duplicate keeps the first report
    assert again.status == "duplicate" and again.document == word


def record(report: IngestReport | None, name: str = "guide.pdf") -> DocumentRecord:
    return DocumentRecord(
        "d1", name, "h" * 64, 1, 10, "pdf", 4, 6, datetime.now(UTC), ocr_pages=(3, 4),
        report=report,
    )  # fmt: skip


def test_report_text_json_and_html() -> None:
    report = IngestReport(2, ("page 2 has no text", XSS), "minilm", "f" * 64, 1.25, 0.5)
    doc = record(report, name=f"{XSS}.pdf")
    assert serialize.report_facts(doc) == [
        ("Pages", "4"),
        ("Read by OCR", "page(s) 3-4"),
        ("Chunks", "6"),
        ("Tables", "2"),
        ("Embedder", "minilm (weights ffffffffffff)"),
        ("Time", "1.25 s (reading 0.50 s, chunking and embedding 0.75 s)"),
        ("Warning", "page 2 has no text"),
        ("Warning", XSS),
    ]
    data = serialize.document(doc)["report"]
    assert data["warnings"] == ["page 2 has no text", XSS] and data["index_seconds"] == 0.75
    shown = render.render_chunks(doc, [])
    assert "Ingest report" in shown and "<script" not in shown and "<img" not in shown
    assert "&lt;script&gt;" in shown and shown.count('class="rc-report-warning"') == 2
    quiet = serialize.report_facts(record(IngestReport(0, (), "minilm", "", 0.1, 0.1)))
    assert ("Warnings", "none") in quiet and ("Embedder", "minilm") in quiet


def test_a_document_from_before_reports_says_not_recorded() -> None:
    doc = record(None)
    facts = dict(serialize.report_facts(doc))
    assert facts == {
        "Pages": "4",
        "Read by OCR": "page(s) 3-4",
        "Chunks": "6",
        "Report": "not recorded (added before ingest reports were kept)",
    }
    data = serialize.document(doc)["report"]
    assert data["recorded"] is False and data["warnings"] is None and data["embedder"] is None
    assert "not recorded" in render.render_report(doc)


def test_an_upload_result_names_the_first_warning() -> None:
    three = IngestReport(0, ("page 2 has no text", XSS, "page 9 has no text"), "m", "", 1, 1)
    results = [
        IngestResult("a.pdf", "added", record(three, "a.pdf"), 6, seconds=1.0),
        IngestResult("b.pdf", "added", record(IngestReport(0, (), "m", "", 1, 1), "b.pdf"), 6),
    ]
    shown = render.render_ingest_results(results)
    assert "OCR read page(s) 3-4 in 1.0 s; page 2 has no text (+2 more warnings)" in shown
    assert "<script" not in shown and shown.count("warning") == 1
