"""OCR with Tesseract: the text of a scanned PDF page or of a PNG/JPEG picture.

Tesseract runs as a program (Debian `tesseract-ocr`, plus `tesseract-ocr-<lang>` per language),
one process per page with a time limit, the image handed over on stdin; PDF pages are rendered
with pypdfium2. Every failure is an IngestError naming the file, the page and the setting to
change: OCR off (RAGCHAT_OCR), a language that is not installed (RAGCHAT_OCR_LANG), too many
pages (RAGCHAT_OCR_MAX_PAGES), a page that takes too long (RAGCHAT_OCR_PAGE_TIMEOUT).
"""

from __future__ import annotations

import functools
import io
import os
import re
import shutil
import subprocess
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from rag_core.errors import IngestError

if TYPE_CHECKING:
    from PIL.Image import Image

OcrMode = Literal["auto", "off"]
OCR_DPI = 300  # Tesseract reads body text best at about 300 dpi
MAX_OCR_PIXELS = 40_000_000  # a bigger page or picture is scaled down to this first
# A PDF page with fewer visible characters than this in its text layer is taken as a scan.
MIN_TEXT_LAYER_CHARS = 16
# Pages read at once (each a Tesseract process of one thread): the cores, at most four
OCR_WORKERS = max(1, min(4, len(os.sched_getaffinity(0))))
INSTALL_HINT = "install it (Debian: apt-get install tesseract-ocr tesseract-ocr-eng)"
_LANG = re.compile(r"^[A-Za-z0-9_]+(?:\+[A-Za-z0-9_]+)*$")


@dataclass(frozen=True)
class OcrOptions:
    """How scanned pages and pictures are read (RAGCHAT_OCR, _OCR_LANG, _OCR_MAX_PAGES,
    _OCR_PAGE_TIMEOUT); validated here so a bad value never reaches Tesseract."""

    mode: OcrMode = "auto"
    lang: str = "eng"
    max_pages: int = 200
    page_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "off"):
            raise ValueError(f"RAGCHAT_OCR must be 'auto' or 'off', got {self.mode!r}")
        if not _LANG.match(self.lang):
            raise ValueError(
                f"RAGCHAT_OCR_LANG must be Tesseract language codes joined by '+' "
                f"(e.g. eng or eng+deu), got {self.lang!r}"
            )
        if self.max_pages < 1 or self.page_timeout_s <= 0:
            raise ValueError("RAGCHAT_OCR_MAX_PAGES and RAGCHAT_OCR_PAGE_TIMEOUT must be positive")

    @property
    def on(self) -> bool:
        return self.mode != "off"


def needs_ocr(text_layer: str) -> bool:
    """Whether a PDF page whose text layer is `text_layer` is a scan to read by OCR."""
    return sum(1 for ch in text_layer if not ch.isspace()) < MIN_TEXT_LAYER_CHARS


@functools.cache
def _languages(binary: str) -> frozenset[str]:
    """The languages this Tesseract has data for (`tesseract --list-langs`)."""
    try:
        out = subprocess.run(
            [binary, "--list-langs"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    lines = (out.stdout + out.stderr).splitlines()
    return frozenset(line.strip() for line in lines[1:] if line.strip() and " " not in line)


def tesseract_binary(name: str, options: OcrOptions) -> str:
    """The Tesseract program to run, after checking it has every language asked for."""
    binary = shutil.which("tesseract")
    if binary is None:
        raise IngestError(
            name,
            "needs OCR (it has scanned pages or is a picture), but Tesseract is not installed; "
            f"{INSTALL_HINT}, or set RAGCHAT_OCR=off to skip such files",
        )
    installed = _languages(binary)
    missing = [lang for lang in options.lang.split("+") if lang not in installed]
    if missing:
        have = ", ".join(sorted(installed - {"osd"})) or "none"
        package = " ".join(f"tesseract-ocr-{m.lower()}" for m in missing)
        raise IngestError(
            name,
            f"OCR language {'+'.join(missing)} (RAGCHAT_OCR_LANG={options.lang}) is not "
            f"installed (installed: {have}); install {package} or change RAGCHAT_OCR_LANG",
        )
    return binary


def ocr_image(image: Image, name: str, where: str, options: OcrOptions) -> str:
    """The text Tesseract reads in `image`; `where` ('page 3', 'the picture') goes in errors."""
    binary = tesseract_binary(name, options)
    gray = _fit(image.convert("L"))
    buf = io.BytesIO()
    gray.save(buf, format="PPM")  # uncompressed: far quicker to write than PNG
    # one thread per page: OpenMP threads in Tesseract only slow a busy machine down
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        done = subprocess.run(
            [binary, "stdin", "stdout", "-l", options.lang, "--psm", "3"],
            input=buf.getvalue(),
            capture_output=True,
            timeout=options.page_timeout_s,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise IngestError(
            name,
            f"OCR of {where} took longer than {options.page_timeout_s:g} s, the limit set by "
            "RAGCHAT_OCR_PAGE_TIMEOUT; raise the limit or add a copy with a text layer",
        ) from exc
    except OSError as exc:
        raise IngestError(name, f"could not run Tesseract for {where}: {exc}") from exc
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise IngestError(
            name, f"OCR of {where} failed: {detail[-1] if detail else done.returncode}"
        )
    return done.stdout.decode("utf-8", "replace")


def _fit(image: Image) -> Image:
    """`image` scaled down to at most MAX_OCR_PIXELS (a poster-sized page stays affordable)."""
    pixels = image.width * image.height
    if pixels <= MAX_OCR_PIXELS:
        return image
    scale = (MAX_OCR_PIXELS / pixels) ** 0.5
    size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
    return image.resize(size)


def render_pdf_pages(data: bytes, pages: Sequence[int], name: str) -> Iterator[tuple[int, Image]]:
    """(page number, image) for each 1-based page of the PDF in `data`, rendered at OCR_DPI
    (less for a page too big for MAX_OCR_PIXELS), one at a time."""
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise IngestError(name, f"could not render the PDF for OCR: {exc}") from exc
    try:
        for number in pages:
            try:
                page = pdf[number - 1]
                width, height = page.get_size()  # in points, 72 per inch
                scale = OCR_DPI / 72
                area = width * height * scale * scale
                if area > MAX_OCR_PIXELS:
                    scale *= (MAX_OCR_PIXELS / area) ** 0.5
                image = page.render(scale=scale, grayscale=True).to_pil()
                page.close()
            except (pdfium.PdfiumError, ValueError, IndexError) as exc:
                raise IngestError(name, f"could not render page {number} for OCR: {exc}") from exc
            yield number, image
    finally:
        pdf.close()


def ocr_pdf_pages(
    data: bytes, pages: Sequence[int], name: str, options: OcrOptions
) -> dict[int, str]:
    """The text OCR reads on each of `pages` (1-based) of a PDF, for the pages where it finds
    any. Pages are rendered one after another and read by up to OCR_WORKERS Tesseract processes
    at once, so only a few rendered pages are held at any time."""
    read: dict[int, str] = {}
    if not pages:
        return read
    with ThreadPoolExecutor(OCR_WORKERS) as pool:
        running: deque[tuple[int, Future[str]]] = deque()

        def collect() -> None:
            number, future = running.popleft()
            text = future.result()  # an IngestError of that page surfaces here
            if text.strip():
                read[number] = text

        try:
            for number, image in render_pdf_pages(data, pages, name):
                running.append(
                    (number, pool.submit(ocr_image, image, name, f"page {number}", options))
                )
                if len(running) >= OCR_WORKERS:
                    collect()
            while running:
                collect()
        finally:
            for _, future in running:
                future.cancel()
    return read
