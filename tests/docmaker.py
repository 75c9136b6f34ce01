"""Build real test documents in code (no binary fixtures in the repository).

Good files: make_pdf, make_table_pdf, make_docx, make_html, make_markdown, make_text (DOCX,
HTML and Markdown take tables as lists of rows, the first row the header). Bad files: make_corrupt_pdf,
make_truncated_pdf, make_encrypted_pdf, make_scanned_pdf, make_zip_renamed_docx,
make_docx_zip_bomb, make_binary_txt, make_invalid_utf8, make_utf16_text, make_nested_html,
make_script_html. Scans: make_text_image (a PNG/JPEG of text), make_image_pdf (pages that are
only pictures of text). Every function returns the file's bytes; the caller picks the file name.

Headings use one convention everywhere: a string starting with "# " is a level-1 heading,
"## " level 2, and so on; any other string is a paragraph.
"""

from __future__ import annotations

import html
import io
import random
import re
import zipfile
from collections.abc import Sequence

_HEADING = re.compile(r"^(#{1,6}) (.*)$")


def _heading(item: str) -> tuple[int, str] | None:
    m = _HEADING.match(item)
    return (len(m.group(1)), m.group(2)) if m else None


# --------------------------------------------------------------------------- PDF


def make_pdf(pages: Sequence[str], *, title: str | None = None) -> bytes:
    """A real text PDF (fpdf2, Helvetica) with one page per string; text must be Latin-1."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_auto_page_break(auto=False)
    pdf.set_font("Helvetica", size=10)
    if title:
        pdf.set_title(title)
    for text in pages:
        pdf.add_page()
        pdf.set_xy(10, 10)
        pdf.multi_cell(0, 5, text)
    return bytes(pdf.output())


def make_table_pdf(before: str, rows: Sequence[Sequence[str]], after: str = "") -> bytes:
    """A one-page text PDF with a ruled table (fpdf2 draws each cell's borders) between two
    paragraphs; the first row is the header."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    pdf.multi_cell(0, 5, before)
    pdf.ln(4)
    with pdf.table() as table:
        for cells in rows:
            row = table.row()
            for cell in cells:
                row.cell(cell)
    if after:
        pdf.ln(4)
        pdf.multi_cell(0, 5, after)
    return bytes(pdf.output())


def make_scanned_pdf(n_pages: int = 2) -> bytes:
    """A PDF whose pages hold only drawings, no text: what a scan without OCR looks like."""
    from fpdf import FPDF

    pdf = FPDF()
    for _ in range(n_pages):
        pdf.add_page()
        pdf.rect(20, 20, 100, 60, style="F")
    return bytes(pdf.output())


def make_text_image(lines: Sequence[str], *, fmt: str = "PNG", width: int = 1700) -> bytes:
    """A picture of text (Pillow draws it, black on white, about 12 pt at 200 dpi): what a
    photographed or scanned page looks like to OCR. `fmt` is PNG or JPEG."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=34)
    height = 120 + 52 * len(lines)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((80, 60 + 52 * i), line, fill=0, font=font)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def make_png_bomb(side: int = 100_000) -> bytes:
    """A tiny PNG whose header declares side x side grey pixels (10 gigapixels by default)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 99))
        + chunk(b"IEND", b"")
    )


def make_image_pdf(pages: Sequence[Sequence[str]]) -> bytes:
    """A PDF of scanned pages: each page one picture of its lines (make_text_image), no text
    layer at all, as a scanner without OCR makes it."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_auto_page_break(auto=False)
    for lines in pages:
        pdf.add_page()
        picture = io.BytesIO(make_text_image(lines))
        pdf.image(picture, x=0, y=10, w=pdf.w)
    return bytes(pdf.output())


def make_encrypted_pdf(
    pages: Sequence[str], *, user_password: str = "secret", owner_password: str = "owner"
) -> bytes:
    """make_pdf(pages) encrypted with RC4-128 (no 'cryptography' package needed).

    With user_password="" anyone can open it (only owner permissions are protected).
    """
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(pages))))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_truncated_pdf(pages: Sequence[str] = ("Some text.",), keep: float = 0.5) -> bytes:
    """The first `keep` fraction of a real PDF, as left by an interrupted download."""
    data = make_pdf(pages)
    return data[: int(len(data) * keep)]


def make_corrupt_pdf() -> bytes:
    """A file with a PDF header followed by garbage: no cross-reference table, no objects."""
    return b"%PDF-1.7\n" + bytes(random.Random(7).randrange(32, 127) for _ in range(2000))


# --------------------------------------------------------------------------- DOCX


def make_docx(
    items: Sequence[str | list[list[str]]],
    *,
    title: str | None = None,
) -> bytes:
    """A Word document: "# Heading" strings become Heading n paragraphs, other strings Normal
    paragraphs, and a list of rows (list[list[str]]) becomes a table at that position."""
    import docx

    document = docx.Document()
    if title:
        document.core_properties.title = title
    for item in items:
        if isinstance(item, list):
            columns = max((len(row) for row in item), default=1)
            table = document.add_table(rows=len(item), cols=columns)
            for r, row in enumerate(item):
                for c, cell in enumerate(row):
                    table.cell(r, c).text = cell
            continue
        heading = _heading(item)
        if heading:
            document.add_heading(heading[1], level=heading[0])
        else:
            document.add_paragraph(item)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_zip_renamed_docx() -> bytes:
    """An ordinary ZIP archive (a text file and a picture) that a user renamed to .docx."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("notes/readme.txt", "Just a zip file, not a Word document.\n")
        zf.writestr("notes/photo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    return out.getvalue()


def make_docx_zip_bomb(uncompressed_mb: int = 300) -> bytes:
    """A DOCX-shaped ZIP with a valid word/document.xml plus one member of `uncompressed_mb` MB
    of zeros. Written in streamed 1 MB pieces, so memory stays small; ~1 KB per MB on disk."""
    valid = zipfile.ZipFile(io.BytesIO(make_docx(["Harmless looking text."])))
    out = io.BytesIO()
    zeros = b"\x00" * (1024 * 1024)
    with valid, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for info in valid.infolist():
            zf.writestr(info.filename, valid.read(info.filename))
        member = zipfile.ZipInfo("word/media/bomb.bin")
        member.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(member, "w", force_zip64=True) as fh:
            for _ in range(uncompressed_mb):
                fh.write(zeros)
    return out.getvalue()


# --------------------------------------------------------------------------- HTML


def make_html(items: Sequence[str | list[list[str]]], *, title: str = "Test page") -> bytes:
    """A UTF-8 HTML page: "# Heading" strings become <h1>..<h6>, others <p> (text is escaped),
    and a list of rows a table whose first row is its header (<thead>, <th>)."""
    body = []
    for item in items:
        if isinstance(item, list):
            head = "".join(f"<th>{html.escape(c)}</th>" for c in item[0])
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                for row in item[1:]
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            continue
        heading = _heading(item)
        if heading:
            level, text = heading
            body.append(f"<h{level}>{html.escape(text)}</h{level}>")
        else:
            body.append(f"<p>{html.escape(item)}</p>")
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    ).encode()


def make_script_html(visible: str = "Visible paragraph.", secret: str = "SECRET") -> bytes:
    """An HTML page stuffed with script, style, noscript, template and hidden content that all
    contain `secret`; only `visible` should survive extraction."""
    junk = (
        f"<script>var s = '{secret}'; document.write(s);</script>"
        f"<style>.x::after {{ content: '{secret}'; }}</style>"
        f"<noscript>{secret} enable javascript</noscript>"
        f"<template><p>{secret} template</p></template>"
        f"<div hidden>{secret} hidden</div>"
        f"<span style='display: none'>{secret} invisible</span>"
    )
    return (
        f"<!doctype html><html><head><title>Scripts</title>{junk}"
        f"<script src='x.js'></script></head><body>{junk * 50}"
        f"<p>{html.escape(visible)}</p>{junk * 50}</body></html>"
    ).encode()


def make_nested_html(depth: int = 5000, text: str = "Deep text.") -> bytes:
    """`depth` nested <div>s around `text`: breaks any recursive tree walk."""
    return (
        "<html><body>" + "<div>" * depth + text + "</div>" * depth + "<p>After.</p></body></html>"
    ).encode()


# --------------------------------------------------------------------------- text


def make_markdown(items: Sequence[str | list[list[str]]]) -> bytes:
    """Markdown source: the items (headings "# ..." as ATX headings) separated by blank lines; a
    list of rows becomes a pipe table whose first row is its header."""
    parts = []
    for item in items:
        if isinstance(item, list):
            lines = ["| " + " | ".join(row) + " |" for row in item]
            lines.insert(1, "|" + "---|" * len(item[0]))
            parts.append("\n".join(lines))
        else:
            parts.append(item)
    return ("\n\n".join(parts) + "\n").encode()


def make_text(paragraphs: Sequence[str]) -> bytes:
    """A UTF-8 text file of paragraphs separated by blank lines."""
    return ("\n\n".join(paragraphs) + "\n").encode()


def make_binary_txt(size: int = 4096) -> bytes:
    """Random bytes (with NULs and control characters), as in a binary file misnamed .txt."""
    return random.Random(42).randbytes(size)


def make_invalid_utf8() -> bytes:
    """Mostly UTF-8 text with broken bytes in it: neither valid UTF-8 nor plausible Latin-1."""
    return "Café au lait costs 3 €.\n".encode() + b"Broken \xff\xfe bytes \xc3\x28 here.\n"


def make_utf16_text(text: str = "Grüße aus Köln.\n\nZweiter Absatz.\n") -> bytes:
    """`text` encoded as UTF-16 with a byte-order mark (as Windows Notepad saves 'Unicode')."""
    return text.encode("utf-16")


def make_cp1252_text(text: str = "Café crème – “quoted” résumé.\n") -> bytes:
    """`text` in Windows-1252, the legacy Western encoding that is accepted as a fallback."""
    return text.encode("cp1252")
