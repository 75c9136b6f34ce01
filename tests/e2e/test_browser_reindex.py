"""The page's re-embedding banner in a real Chromium: shown on load while an index is being
built (as `ragchat reindex` records it from any process), refreshed by the page's poll as the
run progresses, gone once it is swapped in."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from rag_core.config import Settings
from rag_core.db.database import Database
from rag_core.db.indexes import IndexRegistry
from rag_core.embedders.identity import EmbedderIdentity
from tests.e2e.test_browser import load
from tests.webapp_server import launch

pytestmark = pytest.mark.e2e

SMALL = EmbedderIdentity("small-test-model", "/models/small", "e" * 64, "float32", 32)


def test_the_banner_follows_a_reindex(open_page: Any) -> None:
    home = Path(tempfile.mkdtemp(prefix="ragchat-web-reindex-"))
    server = launch(home, {"RAGCHAT_ANSWER_STRATEGY": "extractive"})
    db = Database(Settings(home=home).db_url)
    try:
        indexes = IndexRegistry(db)
        building = indexes.start_building("ragchat", SMALL)
        indexes.progress(building.id, 10, 40)
        page = load(open_page(1280, 800), server)
        banner = page.locator("#rc-index-banner")
        expect(banner).to_contain_text("Re-embedding the knowledge base with small-test-model")
        expect(banner).to_contain_text("10 of 40 passages (25%)")
        expect(banner).to_contain_text("Answers come from the current index")
        indexes.progress(building.id, 30, 40)
        expect(banner).to_contain_text("30 of 40 passages (75%)", timeout=30_000)  # the poll
        indexes.remove(building.id)  # as a run for another embedder is abandoned
        expect(page.locator("#rc-index-banner .rc-index-banner")).to_have_count(0, timeout=30_000)
    finally:
        db.dispose()
        server.stop()
