"""The collections panel and the chat's scope picker (webapp/ui/collections.py), called directly:
an Engine on SQLite with the fast fakes and accounts on (alice and bob), no server, no browser.
The same events run in a browser in tests/e2e/test_browser_collections.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import pytest

from rag_core.config import Settings
from rag_core.testing import fake_engine
from rag_core.types import Actor, Scope
from tests.unit.test_api import ACME, REPLY
from tests.unit.test_ui_controllers import UI, Request, build_ui, cached_upload, no_progress
from webapp.auth import hash_password
from webapp.render import TurnView, render_sources
from webapp.security import UploadLedger
from webapp.ui.collections import CollectionsController, picker_from_scope, scope_from_picker
from webapp.ui.common import fresh_state

SKIP = gr.skip()
ALICE, BOB = Request("alice", "tab-a"), Request("bob", "tab-b")
PUMP = b"# Pump\n\nThe pump of the Zorblat rig runs at 3 bar.\n"


@pytest.fixture
def ui(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> UI:
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    users = ",".join(f"{u}:{hash_password('pw')}" for u in ("alice", "bob"))
    settings = Settings(
        home=tmp_path, refusal_threshold=0.0, max_file_mb=1, auth=users, admins="root"
    )
    engine = fake_engine(settings, reply=REPLY)
    engine.ingest_bytes(ACME.encode(), "acme.md")  # by the operator, into Default
    built = build_ui(engine)
    built.knowledge.blocks = SimpleNamespace(upload_ledger=UploadLedger())
    return built


@pytest.fixture
def coll(ui: UI) -> CollectionsController:
    return CollectionsController(ui.engine, ui.engine.settings)


def refreshed(coll: CollectionsController, request: Request, **picked: Any) -> dict[str, Any]:
    out = coll.refresh(
        picked.get("managed"), picked.get("target"), picked.get("docs"), picked.get("scope"),
        request,
    )  # fmt: skip
    return dict(zip(("table", "managed", "target", "docs", "scope"), out, strict=True))


def upload_as(ui: UI, request: Request, name: str, data: bytes, target: str | None) -> str:
    path = cached_upload(ui, name, data, user=request.username)
    payload = [{"path": path, "orig_name": name}]
    results, table, _picker, _files = ui.knowledge.upload(payload, request, no_progress, target)
    return str(results) + str(table)


def test_scope_labels_round_trip() -> None:
    scope = scope_from_picker(["Collection: Handbook", "Document: x.pdf", "Collection: Handbook"])
    assert scope == Scope(("Handbook",), ("x.pdf",))
    assert picker_from_scope(scope) == ["Collection: Handbook", "Document: x.pdf"]
    assert scope_from_picker(None).everything and scope_from_picker([]).everything
    assert scope_from_picker("Handbook") == Scope(("Handbook",))  # a program's bare name


def test_create_a_private_collection_upload_into_it_and_only_its_owner_sees_it(
    ui: UI, coll: CollectionsController
) -> None:
    status, managed, name_box, desc_box = coll.create("Rig notes", "pumps", "private", "", ALICE)
    assert "Created Rig notes (private)" in status and name_box == desc_box == ""
    assert managed["value"] == "Rig notes" and "Rig notes" in managed["choices"]
    shown = upload_as(ui, ALICE, "pump.md", PUMP, "Rig notes")
    assert "rc-ingest-added" in shown and "Rig notes" in shown  # the table's collections column
    alice = refreshed(coll, ALICE, target="Rig notes")
    assert "Rig notes" in alice["table"] and "alice" in alice["table"]
    assert alice["target"]["value"] == "Rig notes"
    assert "Collection: Rig notes" in alice["scope"]["choices"]
    assert "Document: pump.md" in alice["scope"]["choices"]
    # bob sees neither the collection nor its document, anywhere on the page
    bob = refreshed(coll, BOB, target="Rig notes", scope=["Collection: Rig notes"])
    assert "Rig notes" not in bob["table"] and bob["target"]["value"] == "Default"
    assert bob["scope"]["value"] == [] and "Document: pump.md" not in bob["scope"]["choices"]
    table, picker = ui.knowledge.catalog(None, BOB)
    assert "pump.md" not in table and "acme.md" in table
    assert all("pump" not in label for label, _ in picker["choices"])
    assert "1 document" in ui.knowledge.welcome(BOB)
    doc_id = ui.engine.documents(Actor("alice"))[-1].id
    assert "no longer exists" in ui.knowledge.show_chunks(doc_id, BOB)
    assert "Pump" in ui.knowledge.show_chunks(doc_id, ALICE)
    with pytest.warns(UserWarning, match="No document"):
        ui.knowledge.delete_document(doc_id, BOB)
    # bob cannot upload into alice's collection: told so, nothing staged
    with pytest.warns(UserWarning, match="No collection .#x27;Rig notes"):
        path = cached_upload(ui, "b.md", b"# B\n\nbee\n", user="bob")
        out = ui.knowledge.upload(
            [{"path": path, "orig_name": "b.md"}], BOB, no_progress, "Rig notes"
        )
    assert out[0] == SKIP and [d.name for d in ui.engine.documents(Actor("bob"))] == ["acme.md"]


def test_bad_input_and_others_collections_are_refused_with_the_engines_message(
    ui: UI, coll: CollectionsController
) -> None:
    with pytest.warns(UserWarning, match="needs a name"):
        assert coll.create("  ", "", "private", "", ALICE) == (SKIP,) * 4
    with pytest.warns(UserWarning, match="needs the users it is shared with"):
        coll.create("Team", "", "shared", "", ALICE)
    status, *_ = coll.create("Team", "", "shared", "bob, carol", ALICE)
    assert "Created Team (shared)" in status
    assert "shared with bob, carol" in refreshed(coll, BOB)["table"]  # bob is a member
    with pytest.warns(UserWarning, match="only its owner or an admin"):
        assert coll.rename("Team", "Mine", BOB) == (SKIP,) * 3
    with pytest.warns(UserWarning, match="already exists"):
        coll.create("team", "", "private", "", BOB)
    with pytest.warns(UserWarning, match="Pick a collection"):
        coll.delete(None, False, ALICE)
    # a name with markup stays text in the table, the pickers and the documents' column
    coll.create("<img src=x onerror=alert(1)>", "<b>bold", "everyone", "", ALICE)
    upload_as(ui, ALICE, "pump.md", PUMP, "<img src=x onerror=alert(1)>")
    shown = refreshed(coll, BOB)
    assert "<img" not in shown["table"] and "&lt;img src=x onerror=alert(1)&gt;" in shown["table"]
    assert "&lt;b&gt;bold" in shown["table"]
    assert "Collection: <img src=x onerror=alert(1)>" in shown["scope"]["choices"]
    table, _ = ui.knowledge.catalog(None, BOB)
    assert "<img" not in table and "&lt;img src=x onerror=alert(1)&gt;" in table


def test_rename_delete_and_the_refusal_to_strand_documents(
    ui: UI, coll: CollectionsController
) -> None:
    coll.create("Rig notes", "", "everyone", "", ALICE)
    upload_as(ui, ALICE, "pump.md", PUMP, "Rig notes")
    status, managed, box = coll.rename("Rig notes", "Rig", ALICE)
    assert "Renamed Rig notes to Rig" in status and managed["value"] == "Rig" and box == ""
    with pytest.warns(UserWarning, match="1 document\\(s\\) found in no other collection"):
        assert coll.delete("Rig", False, ALICE) == (SKIP, SKIP)
    status, managed = coll.delete("Rig", True, ALICE)
    assert "Deleted Rig and 1 document found nowhere else" in status
    assert managed["value"] is None and "Rig" not in managed["choices"]
    assert [d.name for d in ui.engine.documents()] == ["acme.md"]
    with pytest.warns(UserWarning, match="cannot be deleted"):
        coll.delete("Default", True, Request("root"))


def test_add_and_move_documents_between_collections(ui: UI, coll: CollectionsController) -> None:
    coll.create("A", "", "everyone", "", ALICE)
    coll.create("B", "", "private", "", ALICE)
    upload_as(ui, ALICE, "pump.md", PUMP, "A")
    doc = next(d for d in ui.engine.documents() if d.name == "pump.md")
    assert "Added 1 document to B (1 new there)" in coll.add_documents("B", [doc.id], ALICE)
    memberships = ui.engine.collections.memberships
    assert memberships([doc.id])[doc.id] == ["A", "B"]
    assert "Moved 1 document to A (0 new there)" in coll.move_documents("A", [doc.id], ALICE)
    assert memberships([doc.id])[doc.id] == ["A"]
    # bob may add what he sees to Default but not take it out of alice's collection
    moved = coll.move_documents("Default", [doc.id], BOB)
    assert "Still also in A (not yours to change)" in moved
    assert memberships([doc.id])[doc.id] == ["A", "Default"]
    table, _ = ui.knowledge.catalog(None, BOB)
    assert "A, Default" in table
    with pytest.warns(UserWarning, match="Pick a collection and the documents"):
        coll.add_documents("B", [], ALICE)
    with pytest.warns(UserWarning, match="No collection .#x27;B"):  # bob may not see B
        coll.add_documents("B", [doc.id], BOB)


def ask_in(ui: UI, request: Request, question: str, scope: list[str], state: Any = None) -> Any:
    frames = ui.chat.ask(
        question, "hybrid", 5, "Short", "generate", state or fresh_state(), request, scope
    )
    return list(frames)[-1]


def test_a_scoped_question_searches_only_the_picked_collection_and_is_remembered(
    ui: UI, coll: CollectionsController
) -> None:
    coll.create("Rig", "", "private", "", ALICE)
    upload_as(ui, ALICE, "pump.md", PUMP, "Rig")
    _q, _t, sources, _h, state, _s = ask_in(
        ui, ALICE, "How does the pump run?", ["Collection: Rig"]
    )
    turn = ui.engine.log.get_turn(state["turn"], "alice")
    assert {h.chunk.document_name for h in turn.hits} == {"pump.md"}
    assert turn.config["scope"] == {"collections": ["Rig"], "documents": []}
    assert "Searched: collection Rig" in sources
    assert ui.engine.log.get_conversation(state["conv"], "alice").scope == Scope(("Rig",))
    # the picker follows the conversation: its scope when opened, everything when left
    assert coll.conversation_scope(state, ALICE)["value"] == ["Collection: Rig"]
    assert coll.conversation_scope(fresh_state(), ALICE)["value"] == []
    # a program's /ask sends no scope: the conversation's remembered one is searched again
    frames = ui.chat.ask("And the pump?", "hybrid", 5, "Short", "generate", state, ALICE)
    *_, (_q, _t, sources, _h, state, _s) = frames
    assert ui.engine.log.get_turn(state["turn"], "alice").config["scope"]["collections"] == ["Rig"]
    assert "Searched: collection Rig" in sources
    # a single document, then everything: the panel says what was searched, or nothing
    *_, sources, _h, state, _s = ask_in(ui, ALICE, "Upload size?", ["Document: acme.md"], state)
    assert "Searched: document acme.md" in sources
    *_, sources, _h, state, _s = ask_in(ui, ALICE, "Upload size?", [], state)
    assert "Searched:" not in sources
    assert ui.engine.log.get_conversation(state["conv"], "alice").scope.everything


def test_bob_cannot_search_alices_collection_and_sees_only_what_he_may(
    ui: UI, coll: CollectionsController
) -> None:
    coll.create("Rig", "", "private", "", ALICE)
    upload_as(ui, ALICE, "pump.md", PUMP, "Rig")
    _q, transcript, *_ = ask_in(ui, BOB, "How does the pump run?", ["Collection: Rig"])
    assert "No collection &#x27;Rig&#x27;" in transcript and 'role="alert"' in transcript
    *_, state, _s = ask_in(ui, BOB, "How does the Zorblat pump run?", [])
    hits = ui.engine.log.get_turn(state["turn"], "bob").hits
    assert hits and {h.chunk.document_name for h in hits} == {"acme.md"}


def test_the_sources_panel_escapes_the_scope_it_shows() -> None:
    view = TurnView(question="q", finished=True)
    view.config = {"scope": {"collections": ["<b>x</b>"], "documents": ["y.pdf"]}}
    html = render_sources(view)
    assert "Searched: collection &lt;b&gt;x&lt;/b&gt;, document y.pdf" in html


def test_the_owner_shares_a_private_collection_and_the_member_then_sees_it(
    ui: UI, coll: CollectionsController
) -> None:
    coll.create("Rig", "pumps", "private", "", ALICE)
    assert coll.edit_fields("Rig", ALICE) == ("pumps", "private", "")
    assert "Rig" not in [c.name for c in ui.engine.collections.list(Actor("bob"))]
    status, desc, vis, members = coll.save_edit("Rig", "pumps, valves", "shared", "bob", ALICE)
    assert "Saved Rig (shared with bob)" in status
    assert (desc, vis, members) == ("pumps, valves", "shared", "bob")
    seen = {c.name: c for c in ui.engine.collections.list(Actor("bob"))}
    assert seen["Rig"].members == ("bob",) and seen["Rig"].description == "pumps, valves"
    assert coll.edit_fields("Rig", BOB) == ("pumps, valves", "shared", "bob")
    bob = refreshed(coll, BOB)
    assert "Collection: Rig" in bob["scope"]["choices"] and "Rig" in bob["target"]["choices"]
    # back to private: members left in the box do not count, bob loses it again
    status, _d, vis, members = coll.save_edit("Rig", "pumps", "private", "bob", ALICE)
    assert "Saved Rig (private)" in status and (vis, members) == ("private", "")
    assert "Rig" not in [c.name for c in ui.engine.collections.list(Actor("bob"))]
    assert coll.edit_fields(None, ALICE) == coll.edit_fields("Gone", ALICE) == ("", "private", "")


def test_editing_is_refused_with_the_engines_message_and_changes_nothing(
    ui: UI, coll: CollectionsController
) -> None:
    coll.create("Team", "ours", "shared", "bob", ALICE)
    before = ui.engine.collections.get("Team", Actor("alice"))
    with pytest.warns(UserWarning, match="only its owner or an admin"):
        assert coll.save_edit("Team", "his", "everyone", "", BOB) == (SKIP,) * 4
    with pytest.warns(UserWarning, match="needs the users it is shared with"):
        assert coll.save_edit("Team", "ours", "shared", " , ", ALICE) == (SKIP,) * 4
    assert ui.engine.collections.get("Team", Actor("alice")) == before
    with pytest.warns(UserWarning, match="Pick a collection to edit"):
        coll.save_edit(None, "", "private", "", ALICE)
    with pytest.warns(UserWarning, match="Default collection is searched by everyone"):
        coll.save_edit("Default", "", "private", "", Request("root"))
