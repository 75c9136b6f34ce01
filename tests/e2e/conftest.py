"""Browser fixtures: one real server (shared with the API tests), Debian's chromium via Playwright.

Chromium comes from the apt package `chromium` (`make browser`); Playwright never downloads one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.webapp_server import RunningServer, start_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
LOCAL_HOSTS = {"127.0.0.1"}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "assets" / "screenshots"


@pytest.fixture(scope="session")
def server() -> RunningServer:
    return start_server()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: install the apt package chromium (make browser)")
        pytest.skip(f"{CHROMIUM} is missing: install the apt package chromium (make browser)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


class RecordedPage:
    """A page in a fresh browser context that remembers every URL it requested."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.requests: list[str] = []
        context.on("request", lambda r: self.requests.append(r.url))
        self.page = context.new_page()
        self.page.set_default_timeout(30_000)

    def external_requests(self) -> list[str]:
        """Requests that left the machine: anything but 127.0.0.1 (data: and blob: are local)."""
        out = []
        for url in self.requests:
            parsed = urlparse(url)
            if parsed.scheme in ("data", "blob", "about"):
                continue
            if parsed.hostname not in LOCAL_HOSTS:
                out.append(url)
        return out


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    """open_page(width, height, **context options) -> RecordedPage; contexts closed afterwards."""
    contexts: list[Any] = []

    def factory(width: int = 1280, height: int = 800, **options: Any) -> RecordedPage:
        context = browser.new_context(viewport={"width": width, "height": height}, **options)
        contexts.append(context)
        return RecordedPage(context)

    yield factory
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
