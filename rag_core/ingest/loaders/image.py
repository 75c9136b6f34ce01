"""PNG and JPEG pictures of text: read by OCR (Tesseract), the whole picture one block."""

from __future__ import annotations

import io
import warnings

from rag_core.errors import IngestError, UnsupportedFormatError
from rag_core.ingest.loaders.common import (
    _PARSER_ERRORS,
    LoadLimits,
    _assemble,
    _finish,
    _Piece,
)
from rag_core.ingest.ocr import ocr_image
from rag_core.types import ParsedDocument


def load_image(data: bytes, name: str, limits: LoadLimits) -> ParsedDocument:
    """The text OCR reads in a PNG or JPEG picture (turned upright by its EXIF orientation).
    A picture over Pillow's decompression-bomb limit (about 89 megapixels) is refused before
    it is decoded."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    options = limits.ocr
    if not options.on:
        raise UnsupportedFormatError(
            name, "is a picture: reading its text needs OCR, which is off (RAGCHAT_OCR=off)"
        )
    too_big: tuple[type[BaseException], ...] = (
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,  # raised as an error here
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data))  # reads the header only; checks the size
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except too_big as exc:
        raise IngestError(
            name, f"is a picture of more than {Image.MAX_IMAGE_PIXELS:,} pixels, too big for OCR"
        ) from exc
    except UnidentifiedImageError as exc:
        raise IngestError(name, f"corrupt {_kind(data)} picture (unreadable format)") from exc
    except _PARSER_ERRORS as exc:
        raise IngestError(name, f"corrupt or truncated {_kind(data)} picture: {exc}") from exc
    text = ocr_image(image, name, "the picture", options)
    found = bool(text.strip())
    body, blocks = _assemble([_Piece(text, ocr=True)], name, limits.max_text_chars)
    return _finish(
        name,
        "image",
        body,
        blocks,
        limits.max_text_chars,
        empty_reason="OCR found no text in the picture",
        ocr_pages=(1,) if found else (),
    )


def _kind(data: bytes) -> str:
    return "PNG" if data.startswith(b"\x89PNG") else "JPEG"
