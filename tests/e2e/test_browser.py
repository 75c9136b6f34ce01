"""The web app in a real browser (Debian chromium driven by Playwright) against a real server.

One flow per test, as a person would use it: upload through the page, ask, watch the answer
stream, open a citation, rate the answer, reload and find everything again; hostile file names
and document text stay text; a phone-sized screen works; nothing is fetched from outside.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client
from playwright.sync_api import expect

from tests.e2e.conftest import RecordedPage
from tests.webapp_server import RunningServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

DEMO = Path(__file__).resolve().parents[2] / "assets" / "demo"
XSS_NAME = '<img src=x onerror="window.__xss=1">.txt'
XSS_SCRIPT = "<script>window.__xss=1</script>"
XSS_IMG = '<img src=x onerror="window.__xss=1">'
XSS_TEXT = (
    "Vortigan relay notes.\n\n"
    f"The Vortigan relay switches at 35 volts. {XSS_SCRIPT}\n\n"
    f"Its housing is made of green ceramic. {XSS_IMG}\n"
)
ANSWER_TIMEOUT_MS = 180_000

# Records the length of the answer being streamed each time the chat panel changes.
STREAM_PROBE = """() => {
  window.__lengths = [];
  const box = document.querySelector('#rc-transcript');
  new MutationObserver(() => {
    const live = box.querySelector('.rc-streaming .rc-answer');
    if (live) window.__lengths.push(live.textContent.length);
  }).observe(box, {subtree: true, childList: true, characterData: true});
}"""


def norm(text: str) -> str:
    return " ".join(text.split())


def load(rp: RecordedPage, server: RunningServer) -> Any:
    page = rp.page
    page.goto(server.url)
    expect(page.locator("#rc-transcript .rc-transcript")).to_be_visible()
    expect(page.locator("#rc-history .rc-history:not(.rc-loading)")).to_be_attached()
    return page


def ask(page: Any, question: str) -> Any:
    """Type a question, press Ask, wait until the answer is logged; returns the last turn."""
    before = page.locator("#rc-transcript .rc-footer").count()
    page.locator("#rc-question textarea").fill(question)
    page.locator("#rc-send").click()
    expect(page.locator("#rc-transcript .rc-footer")).to_have_count(
        before + 1, timeout=ANSWER_TIMEOUT_MS
    )
    return page.locator("#rc-transcript .rc-turn").last


def assert_no_xss(page: Any) -> None:
    assert page.evaluate("() => typeof window.__xss") == "undefined"


def test_upload_ask_cite_feedback_reload(
    open_page: Any, server: RunningServer, screenshots: Path
) -> None:
    rp = open_page(1280, 800)
    page = load(rp, server)
    assert page.title() == "ragchat"
    icon = page.locator("link[rel~=icon]").first.get_attribute("href")
    favicon = page.request.get(server.url + (icon or "favicon.ico").lstrip("/"))
    assert favicon.ok and favicon.body() == (DEMO.parent / "favicon.png").read_bytes()
    expect(page.locator("#rc-header svg")).to_be_visible()  # the logo

    # -- upload five files in one drop, one of them with a hostile name and content ----------
    page.get_by_role("tab", name="Knowledge base").click()
    uploads: list[Any] = [
        {"name": p.name, "mimeType": "text/plain", "buffer": p.read_bytes()}
        for p in sorted(DEMO.iterdir())
        if p.is_file()
    ]
    uploads.append({"name": XSS_NAME, "mimeType": "text/plain", "buffer": XSS_TEXT.encode()})
    page.locator("#rc-upload input[type=file]").set_input_files(uploads)
    results = page.locator("#rc-ingest-results")
    expect(results.locator("tr.rc-ingest-added")).to_have_count(len(uploads), timeout=180_000)
    expect(results).to_contain_text(XSS_NAME)
    expect(page.locator("#rc-docs")).to_contain_text(XSS_NAME)
    expect(page.locator("#rc-docs")).to_contain_text("lumen-l2-desk-lamp.md")
    assert_no_xss(page)

    pick = page.locator("#rc-doc-pick input")
    pick.fill(XSS_NAME)
    pick.press("Enter")
    page.locator("#rc-view-chunks").click()
    chunks = page.locator("#rc-chunks")
    expect(chunks).to_contain_text(XSS_SCRIPT)
    expect(chunks).to_contain_text(XSS_IMG)
    assert page.locator("#rc-chunks img, #rc-chunks script").count() == 0
    # the ingest report sits above the chunks: what was read, by which embedder, how long
    report = chunks.locator(".rc-report")
    expect(report).to_contain_text("Ingest report")
    expect(report).to_contain_text("Embedder")
    expect(report.locator("tr", has_text="Warnings")).to_contain_text("none")
    assert report.bounding_box()["y"] < chunks.locator(".rc-chunk").first.bounding_box()["y"]
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(screenshots / "knowledge-base.png"))
    assert_no_xss(page)

    # -- ask: the answer streams in several steps, then citations become chips -------------
    page.get_by_role("tab", name="Chat").click()
    page.evaluate(STREAM_PROBE)
    question = "Which file formats can ragchat read?"
    turn = ask(page, question)
    lengths = page.evaluate("() => window.__lengths")
    assert len(set(lengths)) >= 3, f"the answer did not stream in steps: {lengths}"
    chip = turn.locator(".rc-chip").first
    expect(chip).to_be_visible()
    turn_id, n = int(chip.get_attribute("data-turn") or 0), int(chip.get_attribute("data-n") or 0)
    document = re.sub(r"^\[\d+\] ", "", chip.get_attribute("title") or "").split(" · ")[0]
    chip.click()
    card = page.locator("#rc-sources .rc-citation")
    expect(card).to_be_visible()
    expect(card.locator(".rc-cite-doc")).to_have_text(document)

    logged = Client(server.url, verbose=False).predict(turn_id, api_name="/turn")
    cited = next(c for c in logged["citations"] if c["n"] == n)
    assert norm(card.locator(".rc-cite-text").inner_text()) == norm(cited["text"])
    if cited["support"]:
        assert norm(cited["support"]) in norm(card.locator("mark.rc-support").first.inner_text())
    expect(page.locator("#rc-sources .rc-passage.is-focused")).to_have_count(1)
    expect(page.locator("#rc-sources .rc-chart .rc-bar-row")).to_have_count(len(logged["hits"]))
    page.screenshot(path=str(screenshots / "answer-with-sources.png"))

    # -- feedback: thumbs down, then a comment -------------------------------------------------
    turn.locator('.rc-fb[data-rating="-1"]').click()
    expect(page.locator("#rc-comment textarea")).to_be_visible()
    expect(page.locator('#rc-transcript .rc-fb.is-active[data-rating="-1"]')).to_have_count(1)
    page.locator("#rc-comment textarea").fill("Also name the page numbers.")
    page.locator("#rc-comment-save").click()
    expect(page.locator("#rc-comment textarea")).to_have_value("Also name the page numbers.")
    page.wait_for_timeout(500)
    logged = Client(server.url, verbose=False).predict(turn_id, api_name="/turn")
    assert logged["feedback_rating"] == -1
    assert logged["feedback_comment"] == "Also name the page numbers."

    # -- the hostile document answers as text; nothing runs -----------------------------------
    turn = ask(page, "At what voltage does the Vortigan relay switch?")
    expect(turn).to_contain_text("35")
    turn.locator(".rc-chip").first.click()
    expect(page.locator("#rc-sources .rc-citation")).to_contain_text(XSS_NAME)
    expect(page.locator("#rc-sources .rc-citation")).to_contain_text(XSS_SCRIPT)
    assert page.locator("#rc-sources img, #rc-sources script, #rc-transcript img").count() == 0
    assert_no_xss(page)

    # an answer with claims the documents do not back: shown struck through, never as fact
    turn = ask(page, "How do I switch between warm white and daylight?")
    if turn.locator(".rc-unsupported").count():
        expect(turn.locator(".rc-flag").first).to_have_text("not in your documents")
        page.screenshot(path=str(screenshots / "answer-checked.png"))

    # -- reload: the conversation, its citations and sources come back from the database -------
    page.reload()
    expect(page.locator("#rc-transcript")).to_contain_text(question, timeout=30_000)
    expect(page.locator("#rc-transcript .rc-turn")).to_have_count(3)
    expect(page.locator("#rc-sources .rc-passage").first).to_be_visible()
    expect(page.locator("#rc-history .rc-conv.is-active")).to_contain_text(question[:30])
    page.locator("#rc-transcript .rc-turn").first.locator(".rc-chip").first.click()
    expect(page.locator("#rc-sources .rc-citation .rc-cite-doc")).to_have_text(document)
    expect(page.locator('#rc-transcript .rc-fb.is-active[data-rating="-1"]')).to_have_count(1)

    # a new conversation, then the old one again from the history list
    page.locator("#rc-new").click()
    expect(page.locator("#rc-transcript .rc-welcome")).to_be_visible()
    page.locator("#rc-history .rc-conv", has_text=question[:30]).first.click()
    expect(page.locator("#rc-transcript .rc-turn")).to_have_count(3)
    assert_no_xss(page)
    assert rp.external_requests() == []


def test_refusal_and_narrow_screen(
    open_page: Any, server: RunningServer, screenshots: Path
) -> None:
    rp = open_page(390, 844, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = load(rp, server)
    overflow = "() => document.scrollingElement.scrollWidth - window.innerWidth"
    assert page.evaluate(overflow) <= 1, "the page scrolls sideways on a narrow screen"
    for selector in ("#rc-question textarea", "#rc-send", "#rc-transcript"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 391, selector

    turn = ask(page, "Which football team won the 1998 World Cup final?")
    expect(turn.locator(".rc-refused")).to_be_visible()
    expect(turn).to_contain_text("Your documents don")
    expect(page.locator("#rc-sources")).to_contain_text("Refused")
    expect(page.locator("#rc-sources .rc-passage").first).to_be_attached()
    assert page.evaluate(overflow) <= 1
    page.screenshot(path=str(screenshots / "mobile-refusal.png"))
    page.locator("#rc-sources").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "mobile-sources.png"))
    assert re.search(r"\d+ passages", page.locator("#rc-sources .rc-src-meta").inner_text())
    assert rp.external_requests() == []


XSS_QUESTION = f'Does the Vortigan relay {XSS_IMG} {XSS_SCRIPT} <b id="rc-injected">x</b> fit?'


def test_hostile_question_stays_text(open_page: Any, server: RunningServer) -> None:
    """Markup typed as a question shows as text in the chat and in the history list."""
    rp = open_page(1280, 800)
    page = load(rp, server)
    turn = ask(page, XSS_QUESTION)
    expect(turn).to_contain_text(XSS_SCRIPT)
    expect(turn).to_contain_text(XSS_IMG)
    history = page.locator("#rc-history .rc-conv.is-active")
    expect(history).to_contain_text("Does the Vortigan relay <img")
    page.reload()
    expect(page.locator("#rc-transcript")).to_contain_text(XSS_SCRIPT, timeout=30_000)
    assert page.locator("#rc-injected").count() == 0
    assert page.locator("#rc-transcript img, #rc-history img, #rc-sources img").count() == 0
    assert page.locator("#rc-transcript script, #rc-history script").count() == 0
    assert_no_xss(page)
