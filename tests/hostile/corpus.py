"""A corpus of hostile and malformed files, generated in code, each with its expected outcome.

`write_corpus(folder)` writes every file into `folder` and returns one `Case` per file: either
rejected (status "error", with the fragments the error message must contain and the IngestError
subclass the loaders raise) or ingested (status "added", with the text the chunks must and must
not contain). The same corpus goes through the three doors: the Python pipeline, `ragchat ingest`
and the web upload (tests/hostile/test_corpus.py, tests/integration/test_hostile_doors.py).

`filename` is the name on disk; `upload_name` is the name a user may send with an upload (it may
hold `../`, NUL bytes or 300 characters, which no file system accepts). `display_name` is the
name the knowledge base must show for an upload, `disk_display` the one for the file on disk.
"""

from __future__ import annotations

import atexit
import codecs
import functools
import io
import os
import random
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rag_core.errors import EmptyDocumentError, IngestError, UnsupportedFormatError
from tests import docmaker as dm

GIB = 1024**3
BLANK_PAGES = 10_000
ZIP_BOMB_MB = 300
XSS = '<img src=x onerror="window.__xss=1">'


@dataclass(frozen=True)
class Case:
    """One file of the corpus and what must happen to it."""

    key: str
    filename: str  # on disk (str; undecodable bytes are surrogate-escaped as os.fsdecode does)
    status: Literal["error", "added"]
    mentions: tuple[str, ...] = ()  # the error message contains each (case-insensitive)
    error_type: type[IngestError] | None = None  # what load_document raises (None: pipeline)
    contains: tuple[str, ...] = ()  # an ingested file's chunks contain each
    absent: tuple[str, ...] = ()  # ...and none of these
    chunks: int | None = None  # exact chunk count when the file is small enough to be sure
    pages: int | None = None  # page count of an ingested PDF
    upload_name: str = ""  # defaults to filename
    display_name: str = ""  # defaults to upload_name / filename
    disk_display: str = ""  # the name `ragchat ingest` shows for the file on disk
    note: str = ""
    size: int = field(default=0, compare=False)  # bytes on disk, filled in by write_corpus

    @property
    def sent_name(self) -> str:
        return self.upload_name or self.filename

    @property
    def shown_name(self) -> str:
        return self.display_name or self.sent_name

    @property
    def disk_shown(self) -> str:
        if self.disk_display:
            return self.disk_display
        return self.filename if self.upload_name else self.shown_name


# --------------------------------------------------------------------------- builders


def _pdf_objects(objects: list[bytes], trailer_extra: bytes = b"") -> bytes:
    """A PDF from numbered object bodies (object 1 is the catalog), with a correct xref table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n"
        % (len(objects) + 1, trailer_extra, xref)
    )
    return out.getvalue()


def blank_pages_pdf(n_pages: int) -> bytes:
    """A valid PDF with `n_pages` empty pages (no content streams): ~100 bytes a page."""
    kids = b" ".join(b"%d 0 R" % (3 + i) for i in range(n_pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Count %d /Kids [%s] >>" % (n_pages, kids),
    ]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>"] * n_pages
    return _pdf_objects(objects)


def looping_pages_pdf() -> bytes:
    """A page tree whose /Kids points back at itself: a naive walk never ends."""
    return _pdf_objects(
        [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Count 1 /Kids [2 0 R] >>"]
    )


def aes256_encrypted_pdf() -> bytes:
    """A PDF that declares AES-256 encryption (V5/R6) with a user password: unreadable."""
    key = bytes(random.Random(3).randrange(256) for _ in range(48))
    hexkey = key.hex().encode()
    encrypt = (
        b"<< /Filter /Standard /V 5 /R 6 /Length 256 /P -1028 "
        b"/CF << /StdCF << /CFM /AESV3 /AuthEvent /DocOpen /Length 32 >> >> "
        b"/StmF /StdCF /StrF /StdCF "
        b"/O <" + hexkey + b"> /U <" + hexkey + b"> /OE <" + hexkey[:64] + b"> /UE <"
        + hexkey[:64] + b"> /Perms <" + hexkey[:32] + b"> >>"
    )  # fmt: skip
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Count 1 /Kids [3 0 R] >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 5 0 R >>",
        encrypt,
        b"<< /Length 16 >>\nstream\n" + key[:16] + b"\nendstream",
    ]
    return _pdf_objects(objects, b"/Encrypt 4 0 R /ID [<%s> <%s>] " % (hexkey[:32], hexkey[:32]))


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def _docx_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def lying_size_docx(actual_mb: int = 16) -> bytes:
    """A DOCX whose word/document.xml declares 2 KB but inflates to `actual_mb` MB."""
    members = _docx_members(dm.make_docx(["Harmless."]))
    big = members["word/document.xml"] + b" " * (actual_mb * 1024 * 1024)
    members["word/document.xml"] = big
    data = bytearray(_zip(members))
    real = len(big).to_bytes(4, "little")
    fake = (2048).to_bytes(4, "little")
    # the uncompressed size sits at offset 22 of the local header and 24 of the central entry
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (pos := data.find(signature, start)) >= 0:
            if data[pos + offset : pos + offset + 4] == real:
                data[pos + offset : pos + offset + 4] = fake
            start = pos + 4
    return bytes(data)


def billion_laughs_docx() -> bytes:
    """A DOCX whose document.xml defines nested XML entities (10^9 'lol's if expanded)."""
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    )
    xml = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<!DOCTYPE w:document '
        f"[{entities}]>"
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        "<w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p></w:body></w:document>"
    )
    members = _docx_members(dm.make_docx(["Harmless."]))
    members["word/document.xml"] = xml.encode()
    return _zip(members)


def many_members_docx(n: int = 12_000) -> bytes:
    """A DOCX-shaped ZIP with `n` tiny parts: each costs a header, together a denial of service."""
    members = _docx_members(dm.make_docx(["Harmless."]))
    for i in range(n):
        members[f"word/media/p{i}.bin"] = b""
    return _zip(members, zipfile.ZIP_STORED)


def xlsx_bytes() -> bytes:
    return _zip({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>"})


def docx_without_content_types() -> bytes:
    members = _docx_members(dm.make_docx(["Harmless."]))
    del members["[Content_Types].xml"]
    return _zip(members)


def one_line_markdown(n_bytes: int, seed: int) -> bytes:
    """`n_bytes` of words on a single line, no newline anywhere but the end."""
    rng = random.Random(seed)
    words = [f"w{rng.randrange(10**6)}" for _ in range(4000)]
    line = " ".join(words)
    body = (line + " ") * (n_bytes // (len(line) + 1) + 1)
    return ("# One line\n\n" + body[:n_bytes] + "\n").encode()


# --------------------------------------------------------------------------- the corpus

TEXT = "The Zorblat valve opens at 42 kilopascals and closes at 17."
LONG_NAME = "a" * 296 + ".txt"  # 300 characters: no file system accepts it


def _cases() -> list[tuple[Case, Callable[[], bytes] | None]]:
    empty_err = ("empty",)
    pdf_err = ("corrupt or truncated pdf",)
    c: list[tuple[Case, Callable[[], bytes] | None]] = []

    def add(case: Case, make: Callable[[], bytes] | None) -> None:
        c.append((case, make))

    # -- empty files of every type ---------------------------------------------------------
    for ext in ("pdf", "docx", "html", "md", "txt"):
        add(Case(f"empty-{ext}", f"empty.{ext}", "error", empty_err, EmptyDocumentError), bytes)
    add(
        Case("whitespace-txt", "whitespace.txt", "error", empty_err, EmptyDocumentError),
        lambda: b" \n\t\r\n   \n",
    )
    add(
        Case("html-empty-body", "empty-body.html", "error", ("no text",), EmptyDocumentError),
        lambda: b"<!doctype html><html><head><title>Nothing</title></head><body></body></html>",
    )
    add(
        Case("html-only-script", "only-script.html", "error", ("no text",), EmptyDocumentError),
        lambda: b"<html><body><script>alert('Zorblat')</script><style>p{}</style></body></html>",
    )
    add(
        Case("docx-no-body", "no-body.docx", "error", ("no text",), EmptyDocumentError),
        lambda: dm.make_docx([]),
    )
    add(
        Case("pdf-images-only", "scanned.pdf", "error", ("no extractable text", "ocr"),
             EmptyDocumentError),
        lambda: dm.make_scanned_pdf(3),
    )  # fmt: skip
    add(
        Case("png-pixel-bomb", "bomb.png", "error", ("picture of more than", "pixels"),
             IngestError),
        dm.make_png_bomb,
    )  # fmt: skip
    add(
        Case("pdf-scan-of-text", "scan-of-text.pdf", "added", contains=("Zorblat gasket",),
             pages=1),
        lambda: dm.make_image_pdf([["Only a picture: the Zorblat gasket is changed yearly."]]),
    )  # fmt: skip
    add(
        Case("pdf-zero-pages", "no-pages.pdf", "error", ("no pages",), EmptyDocumentError),
        lambda: blank_pages_pdf(0),
    )

    # -- broken, encrypted and oversized PDFs ----------------------------------------------
    add(
        Case("pdf-truncated", "truncated.pdf", "error", pdf_err, IngestError),
        lambda: dm.make_truncated_pdf(["Some text on a page that was cut off."], keep=0.4),
    )
    add(
        Case("pdf-header-only", "header-only.pdf", "error", pdf_err, IngestError),
        lambda: b"%PDF-1.7\n",
    )
    add(Case("pdf-corrupt", "corrupt.pdf", "error", pdf_err, IngestError), dm.make_corrupt_pdf)
    add(
        Case("pdf-page-loop", "page-loop.pdf", "error", ("pdf",), IngestError,
             note="a page tree that contains itself"),
        looping_pages_pdf,
    )  # fmt: skip
    add(
        Case("pdf-encrypted-rc4", "encrypted.pdf", "error", ("encrypted pdf", "password"),
             IngestError),
        lambda: dm.make_encrypted_pdf(["Secret Zorblat plans."]),
    )  # fmt: skip
    add(
        Case("pdf-encrypted-aes256", "encrypted-aes.pdf", "error", ("encrypted pdf",),
             IngestError),
        aes256_encrypted_pdf,
    )  # fmt: skip
    add(
        Case("pdf-empty-user-password", "owner-locked.pdf", "added", contains=("Quillon",),
             chunks=1, pages=1, note="encrypted, but the user password is empty: it opens"),
        lambda: dm.make_encrypted_pdf(["The Quillon gate is blue."], user_password=""),
    )  # fmt: skip
    add(
        Case("pdf-10000-blank-pages", "blank-10000.pdf", "error", ("10,000 pages",
             "RAGCHAT_MAX_PAGES"), IngestError),
        lambda: blank_pages_pdf(BLANK_PAGES),
    )  # fmt: skip
    add(
        Case("pdf-10000-pages-lying-count", "blank-lying.pdf", "error", ("10,000 pages",
             "RAGCHAT_MAX_PAGES"), IngestError, note="its page tree claims 1 page"),
        lambda: blank_pages_pdf(BLANK_PAGES).replace(b"/Count 10000 ", b"/Count 1 " + b" " * 4),
    )  # fmt: skip
    add(
        Case("pdf-named-txt", "really-a-pdf.txt", "added", contains=("Marrowind",), chunks=2,
             pages=2, note="content decides, not the extension"),
        lambda: dm.make_pdf(["The Marrowind pump.", "Second page."]),
    )  # fmt: skip
    add(
        Case("text-named-pdf", "not-a.pdf", "error", ("named .pdf but is not a pdf",),
             UnsupportedFormatError),
        lambda: b"Just some text, saved with the wrong extension.\n",
    )  # fmt: skip
    add(
        Case("gzip-named-pdf", "archive.pdf", "error", ("not a pdf", "gzip"),
             UnsupportedFormatError),
        lambda: b"\x1f\x8b\x08\x00" + bytes(200),
    )  # fmt: skip

    # -- Word documents that are not what they claim ---------------------------------------
    add(
        Case("docx-zip-bomb", "zip-bomb.docx", "error", ("zip bomb", "RAGCHAT_MAX_UNPACKED_MB"),
             IngestError, note=f"~350 KB that unpacks to {ZIP_BOMB_MB} MB"),
        lambda: dm.make_docx_zip_bomb(ZIP_BOMB_MB),
    )  # fmt: skip
    add(
        Case("docx-lying-sizes", "lying-sizes.docx", "error", ("corrupt",), IngestError,
             note="declares 2 KB, inflates to 16 MB: zipfile stops at the declared size"),
        lying_size_docx,
    )  # fmt: skip
    add(
        Case("docx-billion-laughs", "billion-laughs.docx", "error", ("word document",),
             IngestError, note="XML entity expansion must not run"),
        billion_laughs_docx,
    )  # fmt: skip
    add(
        Case("docx-12000-parts", "many-parts.docx", "error", ("12,", "parts"), IngestError),
        many_members_docx,
    )
    add(
        Case("zip-renamed-docx", "renamed-zip.docx", "error", ("zip archive, not a word",),
             UnsupportedFormatError),
        dm.make_zip_renamed_docx,
    )  # fmt: skip
    add(
        Case("xlsx-renamed-docx", "sheet.docx", "error", ("excel workbook",),
             UnsupportedFormatError),
        xlsx_bytes,
    )  # fmt: skip
    add(
        Case("docx-truncated", "truncated.docx", "error", ("corrupt or truncated word",),
             IngestError),
        lambda: dm.make_docx(["Hello."])[:300],
    )  # fmt: skip
    add(
        Case("docx-no-content-types", "no-content-types.docx", "error", ("corrupt word",),
             IngestError),
        docx_without_content_types,
    )  # fmt: skip
    add(
        Case("exe-named-docx", "setup.docx", "error", ("not a word document",),
             UnsupportedFormatError),
        lambda: b"MZ\x90\x00" + bytes(60) + b"This program cannot be run in DOS mode" + bytes(400),
    )  # fmt: skip
    add(
        Case("docx-named-md", "letter-as.md", "added", contains=("Brambleton",), chunks=1),
        lambda: dm.make_docx(["# Letter", "Brambleton ferries leave at dawn."]),
    )

    # -- binary data and broken encodings in text files --------------------------------------
    add(
        Case("random-binary-txt", "random.txt", "error", ("binary data",),
             UnsupportedFormatError),
        lambda: dm.make_binary_txt(8192),
    )  # fmt: skip
    add(
        Case("random-binary-md", "random.md", "error", ("binary data",), UnsupportedFormatError),
        lambda: random.Random(5).randbytes(8192),
    )
    add(
        Case("jpeg-named-txt", "photo.txt", "error", ("binary data", "jpeg"),
             UnsupportedFormatError),
        lambda: b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + random.Random(9).randbytes(3000),
    )  # fmt: skip
    add(
        Case("elf-named-md", "program.md", "error", ("binary data", "elf"),
             UnsupportedFormatError),
        lambda: b"\x7fELF\x02\x01\x01" + bytes(500),
    )  # fmt: skip
    add(
        Case("invalid-utf8", "broken-utf8.txt", "error", ("not valid utf-8", "offset"),
             IngestError),
        dm.make_invalid_utf8,
    )  # fmt: skip
    add(
        Case("nul-bytes-in-text", "nul-bytes.txt", "error", ("nul bytes",),
             UnsupportedFormatError),
        lambda: b"Plain text\x00 with NUL\x00 bytes\x00 in it.\n" * 20,
    )  # fmt: skip
    add(
        Case("utf16-le-bom", "utf16-bom.txt", "added", contains=("Grüße aus Köln",), chunks=1),
        lambda: dm.make_utf16_text("Grüße aus Köln. Der Ofen heizt auf 230 Grad.\n"),
    )
    add(
        Case("utf16-be-bom-md", "utf16-be.md", "added", contains=("Überschrift", "Fjordvik"),
             chunks=1),
        lambda: codecs.BOM_UTF16_BE + "# Überschrift\n\nFjordvik liegt am Meer.\n".encode(
            "utf-16-be"),
    )  # fmt: skip
    add(
        Case("utf16-le-no-bom", "utf16-nobom.txt", "added", contains=("Østerby",), chunks=1,
             note="UTF-16 without a byte-order mark, recognised from its zero bytes"),
        lambda: "Østerby bridge opens at 06:00 on weekdays.\n".encode("utf-16-le"),
    )  # fmt: skip
    add(
        Case("utf16-be-no-bom", "utf16be-nobom.txt", "added", contains=("Kettleby",), chunks=1),
        lambda: "Kettleby market is held on Tuesdays.\n".encode("utf-16-be"),
    )
    add(
        Case("utf8-bom-md", "bom.md", "added", contains=("Harbour rules",), chunks=1),
        lambda: codecs.BOM_UTF8 + b"# Harbour rules\n\nNo swimming near the Velloc pier.\n",
    )
    add(
        Case("cp1252-text", "legacy.txt", "added", contains=("Café crème",), chunks=1),
        lambda: "Café crème at the Dornath station costs 3 €.\n".encode("cp1252"),
    )
    add(
        Case("mixed-line-endings", "mixed-eol.txt", "added", contains=("Line two", "Line three"),
             absent=("\r",), chunks=1),
        lambda: b"Line one of Wexford notes.\r\nLine two.\rLine three.\nLine four.\r\n",
    )  # fmt: skip
    add(
        Case("ansi-escapes-log", "colours.log.txt", "added", contains=("Tarnhelm job done",),
             absent=("\x1b",), chunks=1, note="a few control characters are dropped"),
        lambda: b"\x1b[32mTarnhelm job done\x1b[0m after a long run of the nightly build.\n" * 3,
    )  # fmt: skip
    add(
        Case("bidi-emoji-text", "bidi.txt", "added", contains=("Qasr", "🚀"), chunks=1),
        lambda: "Qasr launch 🚀 \u202etxet desrever\u202c and مرحبا in one line.\n".encode(),
    )
    add(
        Case("markdown-50mb-one-line", "one-line-50mb.md", "error", ("20,000,000",
             "RAGCHAT_MAX_TEXT_CHARS"), IngestError),
        lambda: one_line_markdown(50 * 1024 * 1024, 1),
    )  # fmt: skip
    add(
        Case("markdown-60kb-one-line", "one-line-60kb.md", "added", contains=("One line",),
             note="one long line is split into many chunks"),
        lambda: one_line_markdown(60 * 1024, 2),
    )  # fmt: skip
    add(
        Case("one-gigabyte", "huge.txt", "error", ("larger than the limit of 100 MB",
             "RAGCHAT_MAX_FILE_MB"), None, note="sparse; must be refused before reading"),
        None,
    )  # fmt: skip

    # -- HTML built to hurt parsers and people -----------------------------------------------
    add(
        Case("html-nested-10000", "nested.html", "added", contains=("Deep Yarrow text",
             "After."), chunks=1),
        lambda: dm.make_nested_html(10_000, "Deep Yarrow text."),
    )  # fmt: skip
    add(
        Case("html-scripts", "scripts.html", "added", contains=("Visible Pellam paragraph",),
             absent=("SECRET", "document.write"), chunks=1),
        lambda: dm.make_script_html("Visible Pellam paragraph.", "SECRET"),
    )  # fmt: skip
    add(
        Case("html-event-handlers", "handlers.html", "added",
             contains=("Click the Ostrava button", "Read the manual"),
             absent=("steal", "javascript:", "onerror", "alert"), chunks=1),
        lambda: (
            b"<html><body onload='steal()'><p onclick=\"steal()\">Click the Ostrava button.</p>"
            b"<a href=\"javascript:alert(1)\" onmouseover='steal()'>Read the manual.</a>"
            b"<img src=x onerror='alert(1)'><iframe srcdoc='<script>alert(1)</script>'></iframe>"
            b"<svg><script>alert(1)</script></svg></body></html>"
        ),
    )  # fmt: skip
    add(
        Case("html-xss-text", "xss-text.html", "added", contains=(XSS, "Quorra"), chunks=1,
             note="escaped markup in the page is text and stays text"),
        lambda: dm.make_html([f"The Quorra lamp glows. {XSS}"]),
    )  # fmt: skip

    # -- hostile names (good content) ---------------------------------------------------------
    def named(key: str, filename: str, word: str, **kw: str) -> None:
        add(
            Case(key, filename, "added", contains=(word,), chunks=1, **kw),  # type: ignore[arg-type]
            lambda: f"The {word} sensor reads the tide level every hour.\n".encode(),
        )

    named("name-dotdot", "dotdot.txt", "Ambrel", upload_name="../../etc/passwd.txt",
          display_name="passwd.txt")  # fmt: skip
    named("name-windows-path", "winpath.md", "Coriel",
          upload_name="C:\\Users\\eve\\..\\..\\Windows\\win.md", display_name="win.md")  # fmt: skip
    named("name-nul", "nul-name.txt", "Dessaly", upload_name="report\x00.exe\x00.txt",
          display_name="report.exe.txt")  # fmt: skip
    named("name-300-chars", "a" * 240 + ".txt", "Elmbrook", upload_name=LONG_NAME,
          display_name="a" * 196 + ".txt", disk_display="a" * 196 + ".txt")  # fmt: skip
    named("name-rtl-override", "invoice\u202etxt.exe.md", "Fennick",
          display_name="invoicetxt.exe.md")  # fmt: skip
    named("name-emoji-cjk", "📄 Résumé 日本語 ملف.md", "Galloway")
    named("name-markup", f"{XSS}.txt", "Hollin")
    named("name-newline", "line\nbreak.txt", "Ivers", display_name="linebreak.txt")
    named("name-undecodable", os.fsdecode(b"bad\xff\xfename.txt"), "Jorvik",
          display_name="badname.txt")  # fmt: skip
    named("name-only-dots", "...", "Kestrel", display_name="untitled-*")
    named("name-only-spaces", "   ", "Lowick", display_name="untitled-*")
    named("name-dots-spaces-ext", " . .txt", "Mirefield", display_name="txt")
    return c


def write_corpus(folder: Path) -> list[Case]:
    """Write every file of the corpus into `folder` (created) and return the cases."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    for case, make in _cases():
        path = folder / case.filename
        if make is None:  # the 1 GB file: sparse, so it costs nothing on disk
            with path.open("wb") as fh:
                fh.truncate(GIB)
        else:
            path.write_bytes(make())
        cases.append(
            Case(**{**case.__dict__, "size": path.stat().st_size})  # type: ignore[arg-type]
        )
    return cases


@functools.cache
def shared_corpus() -> tuple[Path, tuple[Case, ...]]:
    """The corpus written once per test process (it takes seconds), removed at exit.
    Tests read it and never change it; one that must change files copies them first."""
    folder = Path(tempfile.mkdtemp(prefix="ragchat-hostile-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder, tuple(write_corpus(folder))
