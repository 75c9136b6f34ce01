"""Detect a file's format from its content (and name), and decode text files strictly.

The extension alone is not trusted: a renamed ZIP is not a Word document and a binary file named
``.txt`` is not text. Text is decoded as UTF-8 (BOM optional), UTF-16/32 with a BOM, or UTF-16 without a BOM when
every other byte is zero (Notepad's "Unicode" saved by some tools without a mark); other bytes
are accepted as Windows-1252 only when they look like real single-byte text (see `decode_text`),
so a user never gets silently garbled (mojibake) passages.
"""

from __future__ import annotations

import codecs
import io
import re
import zipfile
from pathlib import PurePath

from rag_core.errors import EmptyDocumentError, IngestError, UnsupportedFormatError
from rag_core.text import CONTROL_CODES
from rag_core.types import DocType

SUPPORTED = "PDF, Word (.docx), HTML, Markdown, plain text and PNG/JPEG pictures of text"

HTML_EXTENSIONS = frozenset({".html", ".htm", ".xhtml", ".shtml"})
MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown", ".mdown", ".mkd", ".mkdn"})
TEXT_EXTENSIONS = frozenset(
    {".txt", ".text", ".rst", ".log", ".csv", ".tsv", ".json", ".yaml", ".yml", ".toml", ".ini"}
)
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg"})
_TEXTUAL_EXTENSIONS = HTML_EXTENSIONS | MARKDOWN_EXTENSIONS | TEXT_EXTENSIONS
# Every extension a folder ingest picks up and an upload keeps: what the loaders read.
SUPPORTED_EXTENSIONS: frozenset[str] = (
    frozenset({".pdf", ".docx"}) | _TEXTUAL_EXTENSIONS | IMAGE_EXTENSIONS
)
# Pictures read by OCR: their magic bytes (the name must not claim a text format).
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")

# (magic bytes, offset, what it looks like); checked before any text sniffing.
_MAGIC: tuple[tuple[bytes, int, str | None], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "a PNG image"),
    (b"\xff\xd8\xff", 0, "a JPEG image"),
    (b"GIF87a", 0, "a GIF image"),
    (b"GIF89a", 0, "a GIF image"),
    (b"II*\x00", 0, "a TIFF image"),
    (b"MM\x00*", 0, "a TIFF image"),
    (b"BM", 0, None),  # too short to trust alone; see _looks_like
    (b"\x7fELF", 0, "an ELF executable"),
    (b"MZ", 0, None),
    (b"\x1f\x8b", 0, "a gzip archive"),
    (b"BZh", 0, None),
    (b"\xfd7zXZ\x00", 0, "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", 0, "a 7-Zip archive"),
    (b"Rar!\x1a\x07", 0, "a RAR archive"),
    (b"SQLite format 3\x00", 0, "an SQLite database"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 0, "a legacy Office file (.doc/.xls/.ppt)"),
    (b"{\\rtf", 0, "an RTF document"),
    (b"ustar", 257, "a tar archive"),
    (b"ftyp", 4, "an MP4/QuickTime video"),
    (b"ID3", 0, "an MP3 audio file"),
    (b"OggS", 0, "an Ogg media file"),
    (b"fLaC", 0, "a FLAC audio file"),
    (b"wOFF", 0, "a web font"),
    (b"\x00asm", 0, "a WebAssembly module"),
)

_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
# C0 controls that never appear in text (everything below 0x20 except \t \n \f \r, plus DEL).
_CONTROL_BYTES = bytes(CONTROL_CODES)
_CP1252_OK_SYMBOLS = set("€‚„…†‡ˆ‰‹›‘’“”•–—˜™«»¡¿£¥¢§¶©®°±²³µ·¹º¼½¾×÷¬¦¯´¸¨ª\xa0\xad")
_SNIFF = 65536
# Western text rarely has 4 accented letters in a row; Cyrillic or Greek read as cp1252 does.
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]{4,}")


def detect_type(data: bytes, name: str) -> DocType:
    """The document type of `data`, judged by content first and the file name second.

    Raises EmptyDocumentError for an empty file and UnsupportedFormatError (naming what the file
    looks like) for anything that is not PDF, DOCX, HTML, Markdown, text or a PNG/JPEG picture
    (a picture named as a text file is refused: the name says it should be text).
    """
    if not data:
        raise EmptyDocumentError(name, "the file is empty (0 bytes)")
    ext = PurePath(name).suffix.lower()
    head = data[:1024]

    # Readers accept a PDF header anywhere in the first 1 KB; outside a .pdf file that is more
    # likely text that mentions "%PDF-", so elsewhere it must come first.
    if data.startswith(b"%PDF-") or (ext == ".pdf" and b"%PDF-" in head):
        return "pdf"
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return _detect_zip(data, name, ext)
    if data.startswith(_IMAGE_MAGIC) and ext not in _TEXTUAL_EXTENSIONS | {".pdf", ".docx"}:
        return "image"
    looks_like = _looks_like(data)
    if ext == ".pdf":
        what = f" (it looks like {looks_like})" if looks_like else ""
        raise UnsupportedFormatError(name, f"is named .pdf but is not a PDF file{what}")
    if ext == ".docx":
        what = f"it looks like {looks_like}" if looks_like else "it is not a ZIP archive"
        raise UnsupportedFormatError(name, f"is named .docx but is not a Word document ({what})")
    if looks_like:
        if ext in _TEXTUAL_EXTENSIONS:
            raise UnsupportedFormatError(
                name, f"contains binary data, not text (it looks like {looks_like})"
            )
        raise UnsupportedFormatError(
            name, f"looks like {looks_like}, which is not supported (supported: {SUPPORTED})"
        )

    problem = binary_problem(data)
    if problem is not None:
        if ext in _TEXTUAL_EXTENSIONS or not ext:
            raise UnsupportedFormatError(name, f"contains binary data, not text ({problem})")
        raise UnsupportedFormatError(
            name, f"is an unrecognised binary file ({ext}); supported: {SUPPORTED}"
        )

    if ext in HTML_EXTENSIONS:
        return "html"
    if ext in MARKDOWN_EXTENSIONS:
        return "markdown"
    if ext in TEXT_EXTENSIONS:
        return "text"
    # Any other name: the content decides. decode_text raises a clear error if it is not text.
    text = decode_text(data[:_SNIFF], name, partial=True)
    if _sniff_html(text):
        return "html"
    return "text"


def _detect_zip(data: bytes, name: str, ext: str) -> DocType:
    """A ZIP is a DOCX only if it holds word/document.xml; anything else is named for what it is."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        if ext == ".docx":
            raise IngestError(name, f"corrupt or truncated Word document: {exc}") from exc
        raise UnsupportedFormatError(
            name, "is a damaged ZIP archive, not a supported document"
        ) from exc
    if "word/document.xml" in names:
        return "docx"
    kind = "a ZIP archive"
    if "xl/workbook.xml" in names:
        kind = "an Excel workbook (.xlsx)"
    elif "ppt/presentation.xml" in names:
        kind = "a PowerPoint presentation (.pptx)"
    elif "mimetype" in names:
        kind = "an OpenDocument or EPUB file"
    if ext == ".docx":
        raise UnsupportedFormatError(name, f"is {kind}, not a Word document")
    raise UnsupportedFormatError(name, f"is {kind}, not a supported document ({SUPPORTED})")


def _looks_like(data: bytes) -> str | None:
    """What a binary file looks like from its magic bytes, or None if no known signature."""
    for magic, offset, what in _MAGIC:
        if data[offset : offset + len(magic)] != magic:
            continue
        if what is not None:
            return what
        if magic == b"MZ" and b"This program cannot be run in DOS mode" in data[:512]:
            return "a Windows executable"
        if magic == b"BZh" and data[3:4].isdigit() and data[4:10] == b"1AY&SY":
            return "a bzip2 archive"
        if magic == b"BM" and len(data) > 26 and data[6:10] == b"\x00\x00\x00\x00":
            return "a BMP image"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "a WebP image"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "a WAV audio file"
    return None


def binary_problem(data: bytes) -> str | None:
    """Why `data` is not text ('NUL bytes', ...), or None when it may well be text."""
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return None
    sample = data[:_SNIFF]
    if b"\x00" in sample:
        codec = bomless_utf16_codec(sample)
        if codec is not None:
            return None
        if len(sample) >= 4 and _looks_like_bomless_utf16(sample):
            return "NUL bytes: it looks like UTF-16 without a byte-order mark, but is not valid"
        return "it contains NUL bytes"
    controls = _count_controls(sample)
    if controls > max(2, len(sample) // 100):
        return f"{controls} control characters in the first {len(sample):,} bytes"
    high = len(sample) - len(sample.translate(None, bytes(range(0x80, 0x100))))
    if high > len(sample) * 0.3:
        try:
            sample.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(sample) - 4:  # not merely a sequence cut at the sample's end
                return "mostly non-text bytes that are not valid UTF-8"
    return None


def _looks_like_bomless_utf16(sample: bytes) -> bool:
    even, odd = sample[0::2], sample[1::2]
    return odd.count(0) > len(odd) * 0.8 or even.count(0) > len(even) * 0.8


# ANSI terminal colour and cursor sequences (ESC [ ... letter), common in saved logs.
ANSI_ESCAPE = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]")
ANSI_ESCAPE_TEXT = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def _count_controls(sample: bytes) -> int:
    """Control bytes that never appear in text; terminal colour sequences are not counted."""
    sample = ANSI_ESCAPE.sub(b"", sample)
    return len(sample) - len(sample.translate(None, _CONTROL_BYTES))


def bomless_utf16_codec(sample: bytes) -> str | None:
    """'utf-16-le' or 'utf-16-be' when `sample` is mostly-Latin UTF-16 text saved without a
    byte-order mark (every other byte zero, and it decodes to text without control characters),
    else None."""
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > len(odd) * 0.8 and even.count(0) < len(even) * 0.2:
        codec = "utf-16-le"
    elif even.count(0) > len(even) * 0.8 and odd.count(0) < len(odd) * 0.2:
        codec = "utf-16-be"
    else:
        return None
    try:
        text = codecs.getincrementaldecoder(codec)().decode(sample, final=False)
    except UnicodeDecodeError:
        return None
    controls = sum(1 for ch in text if ord(ch) < 0x20 and ch not in "\t\n\r\f")
    return codec if controls <= max(2, len(text) // 100) else None


def decode_text(data: bytes, name: str, *, partial: bool = False, fallback: bool = True) -> str:
    """Decode a text file: UTF-8 (BOM optional), UTF-16/32 with a BOM, else careful Windows-1252.

    Windows-1252 (a superset of printable Latin-1) is accepted only when the bytes contain no
    UTF-8 multi-byte sequences (which would mean broken UTF-8, and decoding would give mojibake),
    no control characters, and decode to letters and common punctuation. Anything else raises an
    IngestError that says where the first invalid byte is. `partial` tolerates a multi-byte
    character cut off at the end of `data` (used when sniffing a prefix); `fallback=False`
    turns the Windows-1252 fallback off (HTML tries its declared charset first).
    """
    for bom, codec in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return codecs.getincrementaldecoder(codec)().decode(data, final=not partial)
            except UnicodeDecodeError as exc:
                raise IngestError(
                    name, f"starts with a {codec.upper()} byte-order mark but is not valid {codec}"
                ) from exc
    if b"\x00" in data[:_SNIFF]:
        utf16 = bomless_utf16_codec(data[:_SNIFF])
        if utf16 is not None:
            try:
                return codecs.getincrementaldecoder(utf16)().decode(data, final=not partial)
            except UnicodeDecodeError as exc:
                raise IngestError(
                    name,
                    f"looks like {utf16.upper()} text without a byte-order mark, but is not "
                    f"valid {utf16.upper()} (at byte {exc.start:,}); save it as UTF-8",
                ) from exc
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(data, final=not partial)
    except UnicodeDecodeError as exc:
        utf8_error = exc
    legacy = _decode_cp1252(data) if fallback else None
    if legacy is not None:
        return legacy
    bad = data[utf8_error.start]
    raise IngestError(
        name,
        f"is not valid UTF-8 text (invalid byte 0x{bad:02x} at offset {utf8_error.start:,}); "
        "save it as UTF-8 and try again",
    )


def _decode_cp1252(data: bytes) -> str | None:
    """`data` as Windows-1252 if it plausibly is single-byte Western text, else None."""
    if _UTF8_SEQUENCE.search(data) or data.translate(None, _CONTROL_BYTES) != data:
        return None
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return None
    odd = [
        ch for ch in text if ord(ch) > 0x7F and not ch.isalpha() and ch not in _CP1252_OK_SYMBOLS
    ]
    non_ascii = sum(1 for ch in text if ord(ch) > 0x7F)
    if odd or non_ascii > len(text) * 0.3 or _NON_ASCII_RUN.search(text):
        return None
    return text


_HTML_START = re.compile(
    r"\A\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)\b", re.I | re.S
)


def _sniff_html(text: str) -> bool:
    """True when text starts like an HTML document (<!doctype html> or <html>)."""
    return bool(_HTML_START.match(text[:4096]))


def html_declared_charset(data: bytes) -> str | None:
    """The charset an HTML file declares in a <meta> tag within its first 4 KB, if any."""
    m = re.search(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_\-:.]+)", data[:4096], re.I)
    if not m:
        return None
    try:
        return codecs.lookup(m.group(1).decode("ascii")).name
    except (LookupError, UnicodeDecodeError):
        return None
