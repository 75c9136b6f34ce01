"""Export and Insights in a real browser: a conversation downloads as Markdown from the page, and
the Insights tab draws its plots and lists the refused question with the hint to add documents."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.test_browser import ask, load
from tests.webapp_server import RunningServer, launch
from webapp.auth import hash_password

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

GAP = "Which orchestra premiered the Zorvath symphony in 1911?"


def test_export_download_and_insights_tab(
    open_page: Any, server: RunningServer, screenshots: Path
) -> None:
    rp = open_page(1280, 900, accept_downloads=True)
    page = load(rp, server)
    turn = ask(page, GAP)  # nothing in the demo documents answers it: refused at once
    expect(turn.locator(".rc-refused")).to_be_visible()

    page.locator("#rc-conv-tools").get_by_text("This conversation").click()
    page.locator("#rc-export-format").get_by_text("Markdown").click()
    page.locator("#rc-export").click()
    link = page.locator("#rc-export-file a").first
    expect(link).to_be_visible(timeout=30_000)
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename.endswith(".md")
    assert "/" not in download.suggested_filename
    text = Path(download.path()).read_text(encoding="utf-8")
    assert f"## 1. {GAP}" in text and "Settings:" in text

    page.get_by_role("tab", name="Insights").click()
    expect(page.locator("#rc-insights-summary")).to_contain_text(
        re.compile(r"\d+ questions? from"), timeout=30_000
    )
    refused = page.locator("#rc-insights-refused")
    expect(refused).to_contain_text(GAP)
    expect(refused).to_contain_text("Add documents about this")
    for plot in ("#rc-plot-questions", "#rc-plot-rates", "#rc-plot-times"):
        expect(page.locator(f"{plot} canvas, {plot} svg").first).to_be_visible(timeout=30_000)
    page.screenshot(path=str(screenshots / "insights.png"), full_page=True)
    assert rp.external_requests() == []


@pytest.fixture(scope="module")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server with accounts: alice is an admin, bob is not."""
    users = ",".join(
        f"{u}:{hash_password(p)}" for u, p in (("alice", "wonder"), ("bob", "builder"))
    )
    server = launch(
        tmp_path_factory.mktemp("insights"), {"RAGCHAT_AUTH": users, "RAGCHAT_ADMINS": "alice"}
    )
    yield server
    server.stop()


def _login(rp: Any, server: RunningServer, user: str, password: str) -> Any:
    page = rp.page
    page.goto(server.url)
    page.locator("input[type=text], input[name=username]").first.fill(user)
    page.locator("input[type=password]").first.fill(password)
    page.keyboard.press("Enter")
    expect(page.locator("#rc-transcript .rc-transcript")).to_be_visible()
    return page


def test_with_accounts_only_an_admin_sees_the_insights_tab(
    open_page: Any, accounts: RunningServer
) -> None:
    bob = _login(open_page(), accounts, "bob", "builder")
    expect(bob.get_by_role("tab", name="Knowledge base")).to_be_visible()
    expect(bob.get_by_text("Signed in as")).to_be_visible()
    bob.wait_for_timeout(1500)  # the page-load events have answered: the tab stays hidden
    expect(bob.get_by_role("tab", name="Insights")).to_have_count(0)
    alice = _login(open_page(), accounts, "alice", "wonder")
    expect(alice.get_by_text("Signed in as")).to_be_visible()
    alice.get_by_role("tab", name="Insights").click()
    expect(alice.locator("#rc-insights-summary")).to_contain_text("0 questions", timeout=30_000)
