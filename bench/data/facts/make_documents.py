"""Build the PDF and DOCX documents of the facts benchmark from their text sources.

    python bench/data/facts/make_documents.py           # (re)write every PDF and DOCX
    python bench/data/facts/make_documents.py --check   # exit 1 if a committed file differs

Sources live in ``<split>/sources/<name>.pdf.txt`` and ``<split>/sources/<name>.docx.txt`` and
become ``<split>/documents/<name>.pdf`` / ``.docx``. The HTML, Markdown and text documents are
written by hand directly in ``<split>/documents/`` and are not touched here. Sources sit outside
``documents/`` so that ingesting that folder never picks up a second copy of a document's text.

Source markup, one element per line (a paragraph may span several lines; a blank line ends it):

    %title: ...          document title (PDF/DOCX metadata)
    %author: ...         author (metadata)
    %footer: ...         PDF footer text, followed by "Page n of N"
    %pages: 5            PDF only: the number of pages the build must produce (checked)
    # Heading            heading level 1 (## level 2, ### level 3)
    - item               bullet
    | a | b | c |        table row (consecutive rows form one table, the first is the header;
                         a |---|---| separator row is skipped). DOCX only.
    ====                 PDF page break (ignored for DOCX)

The output is byte-stable: fixed creation dates in both formats and fixed timestamps for the
members of the DOCX zip, so regenerating gives identical files (``--check`` verifies it).
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPLITS = ("dev", "test")
FIXED_DATE = datetime(2025, 1, 6, 9, 0, 0, tzinfo=UTC)
_ZIP_DATE = (2025, 1, 6, 9, 0, 0)


@dataclass
class Element:
    kind: str  # "h1" "h2" "h3" "p" "li" "table" "page"
    text: str = ""
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class Source:
    meta: dict[str, str]
    elements: list[Element]


def parse_source(text: str) -> Source:
    meta: dict[str, str] = {}
    elements: list[Element] = []
    para: list[str] = []
    table: list[list[str]] = []

    def end_para() -> None:
        if para:
            elements.append(Element("p", " ".join(para)))
            para.clear()

    def end_table() -> None:
        if table:
            elements.append(Element("table", rows=[list(r) for r in table]))
            table.clear()

    for raw in text.splitlines():
        line = raw.rstrip()
        stripped = line.strip()
        if stripped.startswith("|"):
            end_para()
            cells = [c.strip() for c in stripped.strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                table.append(cells)
            continue
        end_table()
        if not stripped:
            end_para()
        elif stripped.startswith("%") and ":" in stripped and not elements and not para:
            key, _, value = stripped[1:].partition(":")
            meta[key.strip()] = value.strip()
        elif stripped == "====":
            end_para()
            elements.append(Element("page"))
        elif stripped.startswith(("# ", "## ", "### ")):
            end_para()
            level = len(stripped.split(" ", 1)[0])
            elements.append(Element(f"h{level}", stripped[level + 1 :].strip()))
        elif stripped.startswith("- "):
            end_para()
            elements.append(Element("li", stripped[2:].strip()))
        else:
            para.append(stripped)
    end_para()
    end_table()
    return Source(meta, elements)


# --------------------------------------------------------------------------- PDF


def build_pdf(src: Source, name: str) -> bytes:
    from fpdf import FPDF

    footer_text = src.meta.get("footer", "")

    class Doc(FPDF):
        def footer(self) -> None:
            self.set_y(-15)
            self.set_font("Helvetica", size=8)
            self.cell(0, 10, f"{footer_text} - Page {self.page_no()} of {{nb}}", align="C")

    pdf = Doc(format="A4")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_title(src.meta.get("title", name))
    pdf.set_author(src.meta.get("author", ""))
    pdf.set_creator("ragchat bench/data/facts/make_documents.py")
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_margins(20, 20, 20)
    pdf.add_page()
    first_on_page = True
    for el in src.elements:
        if el.kind == "page":
            pdf.add_page()
            first_on_page = True
            continue
        _check_latin1(el.text, name)
        if el.kind in ("h1", "h2", "h3"):
            size = {"h1": 16, "h2": 12.5, "h3": 11}[el.kind]
            if not first_on_page:
                pdf.ln(3 if el.kind != "h1" else 5)
            pdf.set_font("Helvetica", style="B", size=size)
            pdf.multi_cell(0, size * 0.5, el.text, align="L")
            pdf.ln(1.5)
        elif el.kind == "p":
            pdf.set_font("Helvetica", size=10)
            pdf.multi_cell(0, 5, el.text, align="L")
            pdf.ln(2)
        elif el.kind == "li":
            pdf.set_font("Helvetica", size=10)
            pdf.set_x(pdf.l_margin + 4)
            pdf.multi_cell(0, 5, f"- {el.text}", align="L")
            pdf.ln(0.8)
        elif el.kind == "table":
            raise SystemExit(f"{name}: tables are only supported in DOCX sources")
        first_on_page = False
    expected = src.meta.get("pages")
    if expected is not None and pdf.pages_count != int(expected):
        raise SystemExit(
            f"{name}: built {pdf.pages_count} pages, the source says %pages: {expected} "
            "(a page overflowed or a break is missing)"
        )
    return bytes(pdf.output())


def _check_latin1(text: str, name: str) -> None:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end]
        raise SystemExit(
            f"{name}: {bad!r} is not Latin-1 (fpdf2 core fonts): {text[:60]!r}"
        ) from exc


# --------------------------------------------------------------------------- DOCX


def build_docx(src: Source, name: str) -> bytes:
    import docx
    from docx.shared import Pt

    document = docx.Document()
    props = document.core_properties
    props.title = src.meta.get("title", name)
    props.author = src.meta.get("author", "")
    props.last_modified_by = src.meta.get("author", "")
    props.created = FIXED_DATE.replace(tzinfo=None)
    props.modified = FIXED_DATE.replace(tzinfo=None)
    props.last_printed = FIXED_DATE.replace(tzinfo=None)
    props.revision = 1
    props.comments = "Fictional document written for the ragchat facts benchmark."
    for el in src.elements:
        if el.kind == "page":
            continue
        if el.kind in ("h1", "h2", "h3"):
            document.add_heading(el.text, level=int(el.kind[1]))
        elif el.kind == "p":
            document.add_paragraph(el.text)
        elif el.kind == "li":
            document.add_paragraph(el.text, style="List Bullet")
        elif el.kind == "table":
            ncols = max(len(r) for r in el.rows)
            table = document.add_table(rows=len(el.rows), cols=ncols)
            table.style = "Table Grid"
            for i, row in enumerate(el.rows):
                for j in range(ncols):
                    cell = table.cell(i, j)
                    cell.text = row[j] if j < len(row) else ""
                    if i == 0:
                        for run in cell.paragraphs[0].runs:
                            run.bold = True
                            run.font.size = Pt(10)
            document.add_paragraph("")
    out = io.BytesIO()
    document.save(out)
    return _fix_zip_dates(out.getvalue())


def _fix_zip_dates(data: bytes) -> bytes:
    """The same zip with every member dated _ZIP_DATE (python-docx stamps the current time)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=_ZIP_DATE)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()


# --------------------------------------------------------------------------- main


def targets() -> list[tuple[Path, Path]]:
    """(source, output) pairs for every binary document of every split."""
    pairs = []
    for split in SPLITS:
        for source in sorted((HERE / split / "sources").glob("*.txt")):
            stem, fmt = source.name[: -len(".txt")].rsplit(".", 1)
            pairs.append((source, HERE / split / "documents" / f"{stem}.{fmt}"))
    return pairs


def build(source: Path, output: Path) -> bytes:
    src = parse_source(source.read_text(encoding="utf-8"))
    if output.suffix == ".pdf":
        return build_pdf(src, output.name)
    if output.suffix == ".docx":
        return build_docx(src, output.name)
    raise SystemExit(f"{source}: unknown target format {output.suffix}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files")
    args = parser.parse_args(argv)
    differ = 0
    for source, output in targets():
        data = build(source, output)
        rel = output.relative_to(HERE)
        if args.check:
            same = output.exists() and output.read_bytes() == data
            differ += not same
            print(f"{'same   ' if same else 'DIFFERS'} {rel}")
        else:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_bytes(data)
            print(f"wrote {rel} ({len(data):,} bytes)")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
