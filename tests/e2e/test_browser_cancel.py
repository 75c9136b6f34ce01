"""A long upload in a real browser: the progress shows the time left, and Cancel upload stops it
with nothing of the file kept (real server, real embedder, Debian chromium via Playwright)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from gradio_client import Client
from playwright.sync_api import expect

from tests.webapp_server import RunningServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def test_a_long_upload_shows_time_left_and_can_be_cancelled(
    open_page: Any, server: RunningServer
) -> None:
    marker = uuid.uuid4().hex[:8]
    name = f"harbour-log-{marker}.txt"
    # ~1,300 chunks: three embedding batches, the first reports progress with an estimate
    text = "\n\n".join(
        f"Entry {i}. The tug Marrow {marker} berthed at quay {i % 40} with {i % 9 + 2} crew, "
        f"after a crossing of {i % 13 + 1} hours in a {['calm', 'rough', 'grey'][i % 3]} sea."
        for i in range(9_000)
    )
    page = open_page(1280, 800).page
    page.goto(server.url)
    page.get_by_role("tab", name="Knowledge base").click()
    page.locator("#rc-upload input[type=file]").set_input_files(
        [{"name": name, "mimeType": "text/plain", "buffer": text.encode()}]
    )
    results = page.locator("#rc-ingest-results")
    left = results.get_by_text(re.compile(r"embedding \(1 file\) · about \d+.* left"))
    expect(left).to_be_visible(timeout=300_000)
    page.locator("#rc-cancel-upload").click()
    expect(results.locator("tr.rc-ingest-cancelled")).to_have_count(1, timeout=180_000)
    expect(results).to_contain_text("nothing of it was kept")
    expect(page.locator("#rc-docs")).not_to_contain_text(name)
    table = Client(server.url, verbose=False).predict(None, api_name="/documents")[0]
    assert name not in table
