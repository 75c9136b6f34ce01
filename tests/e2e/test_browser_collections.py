"""Collections in a real browser (real server with accounts, real embedder, Debian chromium):
alice makes a private collection in the knowledge base tab, uploads a document into it, picks the
collection beside the question and gets an answer cited from that document only; the reloaded
conversation's picker shows the scope; bob sees neither the collection nor its document until
alice shares it with him from the panel's edit part."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.test_browser import ANSWER_TIMEOUT_MS, ask
from tests.e2e.test_browser_insights import _login
from tests.webapp_server import RunningServer, launch
from webapp.auth import hash_password

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

COLLECTION = "Rig manuals"
MANUAL = (
    "rig-pump-manual.md",
    "# Rig pump\n\nThe Zorblat rig pump runs at a pressure of 3 bar.\n\n"
    "# Service\n\nThe Zorblat rig pump is serviced every 40 days.\n",
)
DECOY = (
    "old-pump-memo.md",
    "# Memo\n\nThe Zorblat rig pump ran at a pressure of 7 bar before the refit.\n",
)
QUESTION = "What pressure does the Zorblat rig pump run at?"


@pytest.fixture(scope="module")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server with accounts alice and bob (no admins), answers quoted from the passages."""
    users = ",".join(
        f"{u}:{hash_password(p)}" for u, p in (("alice", "wonder"), ("bob", "builder"))
    )
    settings = {"RAGCHAT_AUTH": users, "RAGCHAT_ANSWER_STRATEGY": "extractive"}
    server = launch(tmp_path_factory.mktemp("collections"), settings)
    yield server
    server.stop()


def pick(page: Any, elem_id: str, label: str) -> None:
    """Choose `label` in a Gradio dropdown: open it, type, click the option."""
    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(label)
    page.locator(f'#{elem_id} [role=option][aria-label="{label}"]').click()


def shoot(page: Any, path: Path, **options: Any) -> None:
    """A screenshot without the pop-ups that would cover the page."""
    for close in page.locator(".toast-close").all():
        close.click()
    expect(page.locator(".toast-body")).to_have_count(0)
    page.screenshot(path=str(path), **options)


def upload(page: Any, name: str, text: str) -> None:
    page.locator("#rc-upload input[type=file]").set_input_files(
        [{"name": name, "mimeType": "text/markdown", "buffer": text.encode()}]
    )
    added = page.locator("#rc-ingest-results tr.rc-ingest-added", has_text=name)
    expect(added).to_have_count(1, timeout=180_000)
    expect(page.locator("#rc-docs")).to_contain_text(name)


def test_a_private_collection_scopes_the_chat_and_stays_hidden_from_others(
    open_page: Any, accounts: RunningServer, screenshots: Path
) -> None:
    alice = _login(open_page(1280, 1000), accounts, "alice", "wonder")
    alice.get_by_role("tab", name="Knowledge base").click()
    # -- create the collection in the panel ----------------------------------------------------
    alice.locator("#rc-coll-manage").get_by_text("Manage collections").first.click()
    alice.locator("#rc-coll-new").get_by_text("New collection").click()
    alice.locator("#rc-coll-name input").fill(COLLECTION)
    alice.locator("#rc-coll-desc textarea").fill("Pump and valve manuals")
    alice.locator("#rc-coll-create").click()
    table = alice.locator("#rc-collections")
    expect(table.locator("tr", has_text=COLLECTION)).to_contain_text("private")
    expect(table.locator("tr", has_text=COLLECTION)).to_contain_text("alice")
    # -- the manual into it, the decoy into Default ---------------------------------------------
    expect(alice.locator("#rc-upload-collection input")).to_have_value("Default")
    pick(alice, "rc-upload-collection", COLLECTION)
    expect(alice.locator("#rc-upload-collection input")).to_have_value(COLLECTION)
    upload(alice, *MANUAL)
    row = alice.locator("#rc-docs tr", has_text=MANUAL[0])
    expect(row.locator(".rc-doc-collections")).to_have_text(COLLECTION)
    expect(table.locator("tr", has_text=COLLECTION)).to_contain_text("1")
    pick(alice, "rc-upload-collection", "Default")
    upload(alice, *DECOY)
    row = alice.locator("#rc-docs tr", has_text=DECOY[0])
    expect(row.locator(".rc-doc-collections")).to_have_text("Default")
    shoot(alice, screenshots / "collections.png", full_page=True)

    # -- a question scoped to the collection: cited from the manual only ------------------------
    alice.get_by_role("tab", name="Chat").click()
    pick(alice, "rc-scope", f"Collection: {COLLECTION}")
    scope = alice.locator("#rc-scope")
    expect(scope.locator(".token")).to_have_text([f"Collection: {COLLECTION}"])
    turn = ask(alice, QUESTION)
    expect(turn.locator(".rc-chip").first).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(turn).to_contain_text("3 bar")
    turn.locator(".rc-chip").first.click()
    sources = alice.locator("#rc-sources")
    expect(sources).to_contain_text(f"Searched: collection {COLLECTION}")
    expect(sources.locator(".rc-citation .rc-cite-doc")).to_have_text(MANUAL[0])
    expect(sources).not_to_contain_text(DECOY[0])
    shoot(alice, screenshots / "scoped-answer.png")

    # -- reloaded: the conversation comes back with its scope; a new one searches everything ----
    alice.reload()
    expect(alice.locator("#rc-transcript .rc-turn")).to_have_count(1, timeout=30_000)
    expect(alice.locator("#rc-scope .token")).to_have_text([f"Collection: {COLLECTION}"])
    expect(alice.locator("#rc-sources")).to_contain_text(f"Searched: collection {COLLECTION}")
    alice.locator("#rc-new").click()
    expect(alice.locator("#rc-scope .token")).to_have_count(0)
    alice.locator("#rc-history .rc-conv").first.click()
    expect(alice.locator("#rc-scope .token")).to_have_text([f"Collection: {COLLECTION}"])

    # -- bob sees neither the collection nor its document ----------------------------------------
    bob = _login(open_page(1280, 1000), accounts, "bob", "builder")
    bob.get_by_role("tab", name="Knowledge base").click()
    expect(bob.locator("#rc-collections")).to_contain_text("Default")
    expect(bob.locator("#rc-docs")).to_contain_text(DECOY[0])
    expect(bob.locator("#rc-collections")).not_to_contain_text(COLLECTION)
    expect(bob.locator("#rc-docs")).not_to_contain_text(MANUAL[0])
    bob.get_by_role("tab", name="Chat").click()
    bob.locator("#rc-scope input").click()
    options = bob.locator("#rc-scope [role=option]")
    expect(options.first).to_be_visible()
    texts = options.all_inner_texts()
    assert f"Document: {DECOY[0]}" in texts, texts
    assert not any(COLLECTION in t or MANUAL[0] in t for t in texts), texts

    # -- alice shares it with bob from the panel; bob, reloaded, may pick it and its document ---
    alice.get_by_role("tab", name="Knowledge base").click()
    if not alice.locator("#rc-coll-pick").is_visible():  # folded again after the reload
        alice.locator("#rc-coll-manage").get_by_text("Manage collections").first.click()
    pick(alice, "rc-coll-pick", COLLECTION)
    alice.locator("#rc-coll-edit").get_by_text("Edit the picked collection").click()
    expect(alice.locator("#rc-coll-edit-desc textarea")).to_have_value("Pump and valve manuals")
    alice.locator("#rc-coll-edit-vis").get_by_text("Shared (me and the users").click()
    alice.locator("#rc-coll-edit-members input").fill("bob")
    alice.locator("#rc-coll-save").click()
    expect(alice.locator("#rc-coll-status")).to_contain_text(f"Saved {COLLECTION} (shared")
    expect(table.locator("tr", has_text=COLLECTION)).to_contain_text("shared with bob")
    bob.keyboard.press("Escape")
    bob.reload()
    expect(bob.locator("#rc-transcript .rc-transcript")).to_be_visible()
    bob.locator("#rc-scope input").click()
    wanted = bob.locator(f'#rc-scope [role=option][aria-label="Collection: {COLLECTION}"]')
    expect(wanted).to_have_count(1)
    texts = bob.locator("#rc-scope [role=option]").all_inner_texts()
    assert f"Document: {MANUAL[0]}" in texts, texts
