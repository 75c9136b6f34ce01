"""The audit loop in a real browser: rate an answer thumbs down with a reason and the passage it
should have used, replay it from the sources inspector, then export the ratings as an evaluation
set with `ragchat eval feedback` and measure it (against the same server's data folder)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client
from playwright.sync_api import expect

from rag_core.evaluation import load_beir
from tests.e2e.test_browser import ANSWER_TIMEOUT_MS, ask, load
from tests.webapp_server import ROOT, RunningServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

PUMP = (
    "# Brindle pump manual\n\n## Priming\n\nPrime the Brindle pump with two litres of water "
    "before the first start.\n\n## Maintenance\n\nThe Brindle pump filter is replaced every 400 "
    "operating hours.\n"
)


def test_rate_mark_replay_export_and_evaluate(
    open_page: Any, server: RunningServer, tmp_path: Path
) -> None:
    page = load(open_page(1280, 900), server)
    page.get_by_role("tab", name="Knowledge base").click()
    page.locator("#rc-upload input[type=file]").set_input_files(
        [{"name": "brindle.md", "mimeType": "text/markdown", "buffer": PUMP.encode()}]
    )
    expect(page.locator("#rc-ingest-results")).to_contain_text("brindle.md", timeout=120_000)
    page.get_by_role("tab", name="Chat").click()
    turn = ask(page, "How often is the Brindle pump filter replaced?")
    turn_id = int(turn.locator(".rc-fb").first.get_attribute("data-turn") or 0)

    # -- thumbs down: the reasons appear, the sources panel offers to mark a passage ----------
    turn.locator('.rc-fb[data-rating="-1"]').click()
    reason = page.locator("#rc-reason")
    expect(reason).to_be_visible()
    sources = page.locator("#rc-sources")
    expect(sources.locator(".rc-mark-intro")).to_be_visible()
    right = sources.locator(".rc-passage", has_text="400 operating hours").first
    right.locator('[data-action="mark"]').click()
    expect(sources.locator(".rc-passage.is-marked")).to_have_count(1)
    reason.get_by_label("A wrong or missing citation").check()
    page.locator("#rc-comment textarea").fill("The filter interval is in the maintenance part.")
    page.locator("#rc-comment-save").click()
    expect(page.locator(".rc-fb-label")).to_contain_text("saved")
    page.wait_for_timeout(500)
    logged = Client(server.url, verbose=False).predict(turn_id, api_name="/turn")
    assert (logged["feedback_rating"], logged["feedback_reason"]) == (-1, "wrong_citation")
    marked = next(h for h in logged["hits"] if "400 operating hours" in h["text"])
    assert logged["feedback_passage"] and marked

    # -- replay from the sources inspector: the logged answer beside today's -------------------
    sources.locator(".rc-replay-btn").click()
    replay = sources.locator(".rc-replay")
    expect(replay.locator(".rc-replay-side")).to_have_count(2, timeout=ANSWER_TIMEOUT_MS)
    expect(replay).to_contain_text("gate score")
    expect(replay.locator(".rc-replay-table").first).to_contain_text("brindle.md")
    replay.locator('[data-action="sources"]').click()
    expect(sources.locator(".rc-passage.is-marked")).to_have_count(1)

    # -- export the ratings as a BEIR set and measure retrieval on it --------------------------
    out = tmp_path / "feedback-set"
    command = [sys.executable, "-m", "webapp.cli", "eval", "feedback", "--export", str(out)]
    result = subprocess.run(
        [*command, "--json", "--no-answers"],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["judged"] >= 1 and report["modes"]["hybrid"]["recall_at_10"] > 0
    dataset = load_beir(out, "test")
    assert dataset.qrels[f"turn-{turn_id}"] == {"brindle.md": 1}
    assert "400 operating hours" in dataset.corpus["brindle.md"].text
