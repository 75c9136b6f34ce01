"""Format detection by content, and strict text decoding."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_core.errors import EmptyDocumentError, IngestError, UnsupportedFormatError
from rag_core.ingest.detect import decode_text, detect_type
from tests import docmaker as dm


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        (dm.make_pdf(["Hello."]), "report.pdf", "pdf"),
        (dm.make_pdf(["Hello."]), "report.bin", "pdf"),  # content wins over the name
        (dm.make_docx(["Hello."]), "letter.docx", "docx"),
        (dm.make_docx(["Hello."]), "letter", "docx"),
        (dm.make_html(["Hello."]), "page.html", "html"),
        (dm.make_html(["Hello."]), "page.htm", "html"),
        (dm.make_html(["Hello."]), "page", "html"),  # sniffed: <!DOCTYPE html>
        (b"  <html><body>x</body></html>", "download.php", "html"),
        (dm.make_markdown(["# Title", "Text."]), "notes.md", "markdown"),
        (dm.make_markdown(["# Title", "Text."]), "notes.markdown", "markdown"),
        (dm.make_text(["Plain text."]), "notes.txt", "text"),
        (dm.make_text(["Plain text."]), "README", "text"),
        (dm.make_text(["Plain text."]), "data.xyz", "text"),
        (dm.make_utf16_text(), "windows.txt", "text"),
        (dm.make_cp1252_text(), "legacy.txt", "text"),
    ],
)
def test_detects_supported_formats(data: bytes, name: str, expected: str) -> None:
    assert detect_type(data, name) == expected


def test_empty_file() -> None:
    with pytest.raises(EmptyDocumentError, match=r"empty\.txt: the file is empty"):
        detect_type(b"", "empty.txt")


def test_zip_renamed_docx_is_rejected_as_zip() -> None:
    with pytest.raises(UnsupportedFormatError, match="is a ZIP archive, not a Word document"):
        detect_type(dm.make_zip_renamed_docx(), "report.docx")


def test_plain_zip_is_unsupported() -> None:
    with pytest.raises(UnsupportedFormatError, match="is a ZIP archive, not a supported document"):
        detect_type(dm.make_zip_renamed_docx(), "archive.zip")


def test_corrupt_zip_named_docx() -> None:
    data = dm.make_docx(["Hello."])[:200]
    with pytest.raises(IngestError, match="corrupt or truncated Word document"):
        detect_type(data, "cut.docx")


@pytest.mark.parametrize("name", ["binary.txt", "binary.md", "binary.html", "noextension"])
def test_binary_data_named_as_text(name: str) -> None:
    with pytest.raises(UnsupportedFormatError, match="contains binary data, not text"):
        detect_type(dm.make_binary_txt(), name)


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 32, "scan.png"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 32, "photo"),
    ],
    ids=["png", "jpeg-without-extension"],
)
def test_pictures_are_images_read_by_ocr(data: bytes, name: str) -> None:
    assert detect_type(data, name) == "image"


def test_png_named_txt_says_what_it_is() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    with pytest.raises(UnsupportedFormatError, match=r"binary data, not text \(.*PNG image"):
        detect_type(png, "picture.txt")


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"GIF89a" + b"\x00" * 32, "a GIF image"),
        (b"\x7fELF\x02\x01\x01" + b"\x00" * 32, "an ELF executable"),
        (b"\x1f\x8b\x08\x00" + b"\x00" * 32, "a gzip archive"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 32, "a legacy Office file"),
    ],
    ids=["gif", "elf", "gzip", "doc"],
)
def test_known_binary_types_are_named(data: bytes, what: str) -> None:
    with pytest.raises(UnsupportedFormatError, match=f"looks like {what}"):
        detect_type(data, "upload.dat")


def test_unknown_binary_type() -> None:
    with pytest.raises(UnsupportedFormatError, match=r"unrecognised binary file \(\.bin\)"):
        detect_type(dm.make_binary_txt(), "blob.bin")


def test_pdf_name_without_pdf_content() -> None:
    with pytest.raises(UnsupportedFormatError, match=r"named \.pdf but is not a PDF file"):
        detect_type(b"Just some text, really.", "fake.pdf")


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_bomless_utf16_is_decoded(codec: str) -> None:
    data = "Hello world, this is Grüße text.\n".encode(codec)
    assert detect_type(data, "notes.txt") == "text"
    assert detect_type(data, "notes") == "text"
    assert decode_text(data, "notes.txt") == "Hello world, this is Grüße text.\n"


def test_bomless_utf16_that_is_not_valid_gets_a_hint() -> None:
    half = "Hello world, this is text.\n".encode("utf-16-le")
    data = half + b"\x00\xdc" + half  # a lone low surrogate in the middle
    with pytest.raises(UnsupportedFormatError, match="UTF-16 without a byte-order mark, but is"):
        detect_type(data, "notes.txt")


def test_int16_samples_are_not_utf16_text() -> None:
    data = bytes(b for i in range(2000) for b in (i % 7, 0))  # small numbers: controls as text
    with pytest.raises(UnsupportedFormatError, match="NUL bytes"):
        detect_type(data, "samples.txt")


def test_terminal_colour_codes_are_text() -> None:
    data = b"\x1b[32mok\x1b[0m build 12 finished\n" * 10
    assert detect_type(data, "build.log") == "text"


def test_invalid_utf8_with_unknown_extension() -> None:
    with pytest.raises(IngestError, match="not valid UTF-8"):
        detect_type(dm.make_invalid_utf8(), "notes.data")


# --------------------------------------------------------------------------- decode_text


def test_decode_utf8_with_bom() -> None:
    assert decode_text(b"\xef\xbb\xbfCaf\xc3\xa9", "x.txt") == "Café"


def test_decode_utf16_with_bom() -> None:
    assert decode_text(dm.make_utf16_text("Grüße"), "x.txt") == "Grüße"
    assert decode_text("Grüße".encode("utf-16-be").join([b"\xfe\xff", b""]), "x.txt") == "Grüße"


def test_decode_cp1252_fallback() -> None:
    assert decode_text(dm.make_cp1252_text(), "x.txt") == "Café crème – “quoted” résumé.\n"


def test_broken_utf8_is_an_error_not_mojibake() -> None:
    with pytest.raises(
        IngestError, match=r"not valid UTF-8 text \(invalid byte 0xff at offset 34\)"
    ):
        decode_text(dm.make_invalid_utf8(), "broken.txt")


def test_cp1252_fallback_refuses_control_characters() -> None:
    with pytest.raises(IngestError, match="not valid UTF-8"):
        decode_text(b"caf\xe9\x01\x02", "x.txt")


def test_text_mentioning_pdf_header_is_text() -> None:
    data = b"Notes\n\nEvery PDF file starts with %PDF-1.7 in its first line.\n"
    assert detect_type(data, "notes.md") == "markdown"


def test_a_folder_ingest_takes_every_format_the_loaders_read(tmp_path: Path) -> None:
    from rag_core.ingest.detect import SUPPORTED_EXTENSIONS
    from webapp.cli import iter_files

    for ext in ("mkd", "xhtml", "log", "csv", "json", "yaml", "tsv", "md", "pdf", "docx", "PDF"):
        (tmp_path / f"file.{ext}").write_bytes(b"x")
    (tmp_path / "image.png").write_bytes(b"x")  # pictures are read by OCR
    (tmp_path / "image.gif").write_bytes(b"x")
    (tmp_path / ".hidden.md").write_bytes(b"x")
    found = {p.name for p in iter_files([str(tmp_path)])}
    assert "image.gif" not in found and ".hidden.md" not in found
    assert found == {f"file.{ext}" for ext in ("mkd", "xhtml", "log", "csv", "json", "yaml",
                                              "tsv", "md", "pdf", "docx", "PDF")} | {"image.png"}  # fmt: skip
    assert {".mkd", ".xhtml", ".log", ".csv", ".json"} <= SUPPORTED_EXTENSIONS
