"""Tables in every format become rows of text that keep each cell with its column header, in a
block of their own, and the chunker never separates a row from its headers."""

from __future__ import annotations

import pytest

from rag_core.ingest.chunking import iter_chunks
from rag_core.ingest.loaders import LoadLimits, load_document
from rag_core.ingest.loaders.tables import table_lines
from rag_core.types import ParsedDocument
from tests import docmaker as dm

ROUTERS = [
    ["Model", "Ethernet ports", "Wi-Fi"],
    ["X200", "four 2.5 Gbit ports", "6E"],
    ["X100", "two 1 Gbit ports", "5"],
]
X200 = "Model: X200 | Ethernet ports: four 2.5 Gbit ports | Wi-Fi: 6E"
X100 = "Model: X100 | Ethernet ports: two 1 Gbit ports | Wi-Fi: 5"


def load(data: bytes, name: str) -> ParsedDocument:
    return load_document(data, name, LoadLimits(50, 1_000_000))


def table_text(parsed: ParsedDocument) -> list[str]:
    """The text of each table block."""
    return [parsed.text[b.char_start : b.char_end].strip() for b in parsed.blocks if b.table]


def test_table_lines_pair_cells_with_headers() -> None:
    assert table_lines(ROUTERS) == [X200, X100]  # a header row is guessed...
    assert table_lines([["1", "2"], ["3", "4"]]) == ["1 | 2", "3 | 4"]  # ...not from numbers
    assert table_lines([["Key", "Value"], ["a", "b"]], header=False) == ["Key | Value", "a | b"]
    rows = [["Part", "Note"], ["Seal", ""], ["Spare parts", "Spare parts"], ["Valve", "x", "y"]]
    # empty cells are left out; a label spanning the row once; a cell beyond the headers alone
    assert table_lines(rows, header=True) == [
        "Part: Seal",
        "Spare parts",
        "Part: Valve | Note: x | y",
    ]
    assert table_lines([["Only", "a header"]], header=True) == ["Only | a header"]
    assert table_lines([["  ", ""], []]) == []


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("r.docx", dm.make_docx(["# Routers", "Our models.", ROUTERS, "Ask the shop."])),
        ("r.html", dm.make_html(["# Routers", "Our models.", ROUTERS, "Ask the shop."])),
        ("r.md", dm.make_markdown(["# Routers", "Our models.", ROUTERS, "Ask the shop."])),
        ("r.pdf", dm.make_table_pdf("Routers. Our models.", ROUTERS, "Ask the shop.")),
    ],
    ids=["docx", "html", "markdown", "pdf"],
)
def test_every_format_turns_table_rows_into_text_with_headers(name: str, data: bytes) -> None:
    parsed = load(data, name)
    assert table_text(parsed) == [f"{X200}\n{X100}"]
    assert parsed.tables == 1
    assert "Our models." in parsed.text and "Ask the shop." in parsed.text
    table = next(b for b in parsed.blocks if b.table)
    if name != "r.pdf":
        assert table.heading_path == ("Routers",)
    else:
        assert table.page == 1


def test_html_row_headers_and_layout_tables_stay_as_they_were() -> None:
    page = (
        b"<table><tr><th>Weight</th><td>3 kg</td></tr><tr><th>Colour</th><td>red</td></tr></table>"
        b"<table><tr><td><h2>Side menu</h2><p>Layout cell text.</p></td></tr></table>"
    )
    parsed = load(page, "layout.html")
    assert table_text(parsed) == ["Weight | 3 kg\nColour | red"]  # th heads rows, not columns
    assert "Layout cell text." in parsed.text  # a layout table is walked as text...
    assert parsed.tables == 1  # ...and not counted


def test_html_tables_never_show_scripts_or_hidden_cells() -> None:
    page = (
        b"<table><tr><th>Part</th><th>Price</th></tr><tr><td>Seal<script>SECRET1</script></td>"
        b"<td>4 EUR<span style='display: none'>SECRET2</span></td><td hidden>SECRET3</td></tr>"
        b"</table>"
    )
    parsed = load(page, "tricky.html")
    assert "SECRET" not in parsed.text and "Seal" in parsed.text and "4 EUR" in parsed.text


def test_markdown_tables_in_code_fences_stay_code() -> None:
    source = (
        b"```\n| a | b |\n|---|---|\n| 1 | 2 |\n```\n\n| k | v |\n|:--|--:|\n| x \\| y | **z** |\n"
    )
    parsed = load(source, "code.md")
    assert parsed.text.startswith("```\n| a | b |\n|---|---|\n| 1 | 2 |\n```")
    assert table_text(parsed) == ["k: x | y | v: z"]


def test_a_pdf_without_ruled_tables_keeps_its_text() -> None:
    parsed = load(dm.make_pdf(["Model X200 has four ports.", "Second page."]), "plain.pdf")
    assert parsed.text == "Model X200 has four ports.\n\nSecond page." and parsed.tables == 0


def test_chunks_of_a_long_table_each_keep_the_headers_and_whole_rows() -> None:
    """A table shares chunks with the text around it (the paragraph that introduces it opens
    the section), but every row in a chunk is whole and carries every column header."""
    rows = [["Valve", "Pressure", "Inspection"]] + [
        [f"V-{n}", f"{n} kPa", f"every {n % 12 + 1} months"] for n in range(60)
    ]
    parsed = load(
        dm.make_docx(["# Plant", "Intro paragraph. " * 5, rows, "Closing words."]), "v.docx"
    )
    chunks = list(
        iter_chunks(
            parsed,
            document_id="d",
            document_name="v.docx",
            version="v" * 12,
            count_tokens=lambda texts: [len(t.split()) + 2 for t in texts],
            chunk_size=64,
            chunk_overlap=8,
        )
    )
    table = next(b for b in parsed.blocks if b.table)
    in_table = [
        c for c in chunks if c.char_start < table.char_end and c.char_end > table.char_start
    ]
    assert len(in_table) > 3  # the table is long enough to need several chunks
    for chunk in in_table:
        start, end = max(chunk.char_start, table.char_start), min(chunk.char_end, table.char_end)
        rows = parsed.text[start:end].strip()
        assert rows, chunk
        for line in rows.split("\n"):  # whole rows, each with every header
            assert line.startswith("Valve: V-") and "| Pressure: " in line
            assert "| Inspection: every " in line and line.endswith("months")
    covered = "\n".join(c.text for c in in_table)
    assert "Valve: V-59 | Pressure: 59 kPa | Inspection: every 12 months" in covered


def test_hostile_markdown_tables_are_read_in_linear_time() -> None:
    import time

    long_cell = "*a " * 100_000 + "[" * 100_000
    data = (
        "| a | b |\n|-" + " " * 200_000 + "x\n\n| a | b |\n|---|---|\n| " + long_cell + " | y |\n"
    )
    started = time.perf_counter()
    parsed = load(data.encode(), "hostile.md")
    assert time.perf_counter() - started < 3
    assert parsed.tables == 1  # the first is no table: its delimiter row is not one
