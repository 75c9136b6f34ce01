"""The Gradio UI's event handlers (webapp/ui controllers), called directly: no server, no browser.

An Engine on SQLite in tmp_path with the fast fakes (tests/unit/test_api.py make_engine); a
gr.Request is a small object with `username` and `session_hash`, gr.EventData one with `_data`,
gr.Progress a no-op. The same events run through a real server in
tests/integration/test_webapp_api.py and in a browser in tests/e2e.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import pytest

from rag_core.config import Settings
from rag_core.engine import Engine
from rag_core.errors import ConversationNotFoundError
from rag_core.types import Actor
from tests.unit.test_api import ACME, QUESTION, make_engine
from webapp.security import UploadLedger
from webapp.ui.chat import ChatController
from webapp.ui.common import fresh_state
from webapp.ui.history import HistoryController
from webapp.ui.insights import InsightsController
from webapp.ui.knowledge import KnowledgeController, eta_text
from webapp.ui.sessions import HISTORY_PAGE, Sessions

SKIP = gr.skip()


@dataclass
class Request:
    username: str | None = None
    session_hash: str = "tab-1"


@dataclass
class Click:
    """What gr.EventData carries for a click inside an HTML panel."""

    _data: dict[str, Any] = field(default_factory=dict)


def no_progress(*_args: Any, **_kwargs: Any) -> None:
    pass


@dataclass
class UI:
    engine: Engine
    sessions: Sessions
    knowledge: KnowledgeController
    history: HistoryController
    chat: ChatController


def build_ui(engine: Engine, settings: Settings | None = None) -> UI:
    settings = settings or engine.settings
    sessions = Sessions()
    knowledge = KnowledgeController(engine, settings)
    history = HistoryController(engine, settings, sessions, knowledge)
    chat = ChatController(engine, settings, sessions, history)
    return UI(engine, sessions, knowledge, history, chat)


@pytest.fixture
def ui(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> UI:
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))  # restored afterwards
    engine = make_engine(tmp_path)
    engine.ingest_bytes(ACME.encode(), "acme.md")
    return build_ui(engine)


def ask(ui: UI, question: str = QUESTION, state: dict[str, Any] | None = None) -> list[tuple]:
    frames = ui.chat.ask(
        question, "hybrid", 5, "Short", "generate", state or fresh_state(), Request()
    )
    return list(frames)


def turn_ids(transcript: str) -> list[int]:
    return [int(t) for t in re.findall(r'data-turn-id="(\d+)"', transcript)]


def history_ids(listing: str) -> list[str]:
    return re.findall(r'data-action="open" data-conv="([^"]+)"', listing)


# -- chat --------------------------------------------------------------------------------------


def test_ask_streams_frames_and_ends_with_the_logged_turn(ui: UI) -> None:
    frames = ask(ui)
    assert len(frames) >= 3 and all(len(f) == 6 and f[0] == "" for f in frames)
    first, last = frames[0], frames[-1]
    assert "rc-streaming" in first[1] and "rc-sources-empty" in first[2] and first[3] == SKIP
    _, transcript, sources, listing, state, saved = last
    conv = state["conv"]
    [turn] = ui.engine.log.turns(conv, "local")
    assert saved == conv and state["turn"] == turn.id and state["focus"] is None
    assert turn_ids(transcript) == [turn.id] and "rc-streaming" not in transcript
    assert 'data-action="cite"' in transcript  # the [1] chip of the logged answer
    assert f'data-turn="{turn.id}"' in sources and "acme.md" in sources
    assert history_ids(listing) == [conv] and "is-active" in listing
    # a follow-up continues the conversation below the first turn
    *_, (_, transcript, _, _, state2, _) = ask(ui, "And the annual plans?", state)
    assert state2["conv"] == conv and len(turn_ids(transcript)) == 2


def test_a_blank_question_changes_nothing(ui: UI) -> None:
    assert ask(ui, "   ") == [(SKIP,) * 6]
    assert ui.engine.log.list_conversations("local") == []


def test_a_question_in_a_deleted_conversation_starts_a_new_one(
    ui: UI, monkeypatch: pytest.MonkeyPatch
) -> None:
    *_, (_, _, _, _, state, _) = ask(ui)
    ui.engine.log.delete(state["conv"], "local")
    *_, (_, transcript, _, _, new_state, saved) = ask(ui, "Again?", state)
    assert new_state["conv"] not in (None, state["conv"]) and saved == new_state["conv"]
    assert len(turn_ids(transcript)) == 1
    # deleted while the question is on its way (another tab): the question is not answered
    chat = ui.engine.chat

    def deleted_meanwhile(question: str, conv: str | None, **kw: Any) -> Any:
        ui.engine.log.delete(new_state["conv"], "local")
        return chat(question, conv, **kw)

    monkeypatch.setattr(ui.engine, "chat", deleted_meanwhile)
    *_, (_, transcript, sources, listing, last_state, saved) = ask(ui, "More?", new_state)
    assert "This conversation no longer exists" in transcript and 'role="alert"' in transcript
    assert sources == SKIP and history_ids(listing) == []  # both conversations are gone
    assert last_state == fresh_state() and saved == ""


def test_retry_asks_the_last_question_again(ui: UI) -> None:
    nothing = list(ui.chat.retry("hybrid", 5, "Short", "generate", fresh_state(), Request()))
    assert nothing == [(SKIP,) * 6]
    *_, (_, _, _, _, state, _) = ask(ui)
    frames = list(ui.chat.retry("dense", 3, "Long", "extractive", state, Request()))
    *_, (_, transcript, _, _, state2, _) = frames
    turns = ui.engine.log.turns(state["conv"], "local")
    assert [t.question for t in turns] == [QUESTION, QUESTION]
    assert turns[-1].mode == "extractive" and turns[-1].config["retrieval_mode"] == "dense"
    assert state2["turn"] == turns[-1].id and len(turn_ids(transcript)) == 2


def test_stop_sets_the_session_stop_event_and_the_turn_is_kept(ui: UI) -> None:
    assert ui.sessions.stop("tab-1") is False  # nothing streams
    frames = ui.chat.ask(QUESTION, "hybrid", 5, "Short", "generate", fresh_state(), Request())
    next(frames)  # the question is shown; the answer has not started
    other_tab = ui.sessions.start_answer("tab-2")
    ui.chat.stop_answer(Request(session_hash="tab-1"))
    assert not other_tab.is_set()
    *_, (_, _, _, _, state, _) = list(frames)
    assert ui.engine.log.get_turn(state["turn"], "local").status == "stopped"
    assert ui.sessions.stop("tab-1") is False  # the finished answer let go of its stop event


def test_a_citation_click_opens_the_passage_in_the_sources_panel(ui: UI) -> None:
    *_, (_, _, _, _, state, _) = ask(ui)
    turn = state["turn"]
    out = ui.chat.panel_click(
        Click({"action": "cite", "turn": str(turn), "n": "1"}), state, Request()
    )
    transcript, sources, new_state, *feedback = out
    assert transcript == SKIP and feedback == [SKIP] * 4
    assert 'class="rc-citation" data-n="1"' in sources and new_state["focus"] == 1
    out = ui.chat.panel_click(Click({"action": "sources", "turn": str(turn)}), state, Request())
    assert "rc-citation" not in out[1] and out[2]["focus"] is None
    assert ui.chat.panel_click(Click({"action": "other"}), state, Request())[2] is state
    assert ui.chat.show_source(None, 1, state, Request())[0].startswith('<div class="rc-sources rc')


def test_the_replay_button_shows_the_logged_answer_beside_todays(ui: UI) -> None:
    *_, (_, _, sources, _, state, _) = ask(ui)
    turn = state["turn"]
    assert f'data-action="replay" data-turn="{turn}"' in sources  # the button is in the panel
    click = Click({"action": "replay", "turn": str(turn)})
    pending, final = list(ui.chat.replay_click(click, state, Request()))
    assert "Answering again" in pending[0]
    html, new_state = final
    assert 'class="rc-sources rc-replay"' in html and "Same answer, same citations." in html
    assert html.count('class="rc-replay-side') == 2 and "gate score 0." in html
    assert new_state["turn"] == turn and 'data-action="sources"' in html  # the way back
    ui.engine.delete_document("acme.md")
    *_, (html, _) = ui.chat.replay_click(click, state, Request())
    assert "refusal appeared" in html and "acme.md was deleted since." in html
    assert "rc-replay-out" in html and "<script>" not in html
    # other clicks in the panel, a missing turn and another user's turn change nothing
    assert list(ui.chat.replay_click(Click({"action": "cite"}), state, Request())) == [
        (SKIP, state)
    ]
    with pytest.warns(UserWarning, match="not found"):
        *_, last = ui.chat.replay_click(click, state, Request("bob"))
    assert last[0] == SKIP


def test_feedback_stores_the_rating_and_the_comment(ui: UI) -> None:
    *_, (_, _, _, _, state, _) = ask(ui)
    turn = state["turn"]
    click = Click({"action": "feedback", "turn": str(turn), "rating": "-1"})
    out = ui.chat.panel_click(click, state, Request())
    transcript, sources, state, box, label, comment, reason = out
    assert box == gr.update(visible=True) and comment == ""
    assert reason == gr.update(visible=True, value=None)  # a thumbs down asks what was wrong
    assert "Feedback on answer 1: 👎 saved." in label and state["fb"] == turn
    assert "rc-fb is-active" in transcript  # the thumb shows as pressed
    assert 'data-action="mark"' in sources and "Which passage should" in sources
    assert ui.engine.log.get_turn(turn, "local").feedback_rating == -1
    ui.chat.save_comment("should mention <the> unit", "wrong_citation", state, Request())
    logged = ui.engine.log.get_turn(turn, "local")
    assert (logged.feedback_rating, logged.feedback_comment) == (-1, "should mention <the> unit")
    assert logged.feedback is not None and logged.feedback.reason == "wrong_citation"
    # through the API endpoint: a rating with a comment; a thumbs up clears the reason
    _t, _s, _b, _l, _c, reason = ui.chat.give_feedback(turn, 1, "fine", state, Request())
    logged = ui.engine.log.get_turn(turn, "local")
    assert (logged.feedback_rating, logged.feedback_comment) == (1, "fine")
    assert logged.feedback is None and reason == gr.update(visible=False, value=None)


def test_after_a_thumbs_down_the_right_passage_or_none_is_marked(ui: UI) -> None:
    *_, (_, _, _, _, state, _) = ask(ui)
    turn = state["turn"]
    ui.chat.panel_click(
        Click({"action": "feedback", "turn": str(turn), "rating": "-1"}), state, Request()
    )
    record = ui.engine.log.get_turn(turn, "local")
    mark = Click({"action": "mark", "turn": str(turn), "n": "1"})
    _t, sources, state, *rest = ui.chat.panel_click(mark, state, Request())
    assert rest == [SKIP] * 4 and 'is-marked" data-rank="1"' in sources
    assert 'data-n="1" aria-pressed="true"' in sources
    said = ui.engine.log.get_turn(turn, "local").feedback
    assert said is not None and said.passage == record.hits[0].chunk.id and not said.no_passage
    none = Click({"action": "mark", "turn": str(turn), "n": "0"})
    sources = ui.chat.panel_click(none, state, Request())[1]
    said = ui.engine.log.get_turn(turn, "local").feedback
    assert said is not None and said.no_passage and said.passage is None
    assert "✓ none of these answers it" in sources and "is-marked" not in sources
    ui.chat.panel_click(none, state, Request())  # clicked again: the mark is taken back
    assert ui.engine.log.get_turn(turn, "local").feedback is None
    with pytest.warns(UserWarning, match="not one of this answer"):
        bad = Click({"action": "mark", "turn": str(turn), "n": "99"})
        assert ui.chat.panel_click(bad, state, Request())[1] == SKIP
    with pytest.warns(UserWarning, match="not found"):  # another user's answer
        assert ui.chat.panel_click(mark, state, Request("bob"))[1] == SKIP


def test_feedback_that_cannot_be_stored_warns_and_changes_nothing(ui: UI) -> None:
    state = fresh_state()
    with pytest.warns(UserWarning, match="Rate an answer"):
        assert ui.chat.save_comment("x", None, state, Request())[2:] == (SKIP,) * 4
    with pytest.warns(UserWarning, match=r"\+1 or -1"):
        assert ui.chat.give_feedback(1, 5, None, state, Request())[0] == SKIP
    *_, (_, _, _, _, state, _) = ask(ui)
    with pytest.warns(UserWarning):  # another user's answer is not found
        assert ui.chat.give_feedback(state["turn"], 1, None, state, Request("bob"))[2] == SKIP
    assert ui.engine.log.get_turn(state["turn"], "local").feedback_rating is None


def test_the_turn_endpoint_returns_one_users_answers_only(ui: UI) -> None:
    *_, (_, _, _, _, state, _) = ask(ui)
    logged = ui.chat.api_turn(state["turn"], Request())
    assert logged["question"] == QUESTION and logged["conversation_id"] == state["conv"]
    assert logged["citations"][0]["document"] == "acme.md" and logged["citations"][0]["n"] == 1
    assert logged["hits"] and any(h["cited"] for h in logged["hits"])
    with pytest.raises(gr.Error):
        ui.chat.api_turn(state["turn"], Request("bob"))


# -- history -----------------------------------------------------------------------------------


def test_history_lists_fifty_then_load_more_and_search_filters_titles(ui: UI) -> None:
    log = ui.engine.log
    for i in range(HISTORY_PAGE + 5):
        log.create_conversation("local", f"{'Pump' if i % 10 == 0 else 'Valve'} question {i}")
    request = Request()
    listing = ui.history.listing("local", None, request)
    assert len(history_ids(listing)) == HISTORY_PAGE and 'id="rc-history-more"' in listing
    more = ui.history.history_click(Click({"action": "more"}), fresh_state(), request)
    assert more[:2] == (SKIP, SKIP) and more[3:] == (SKIP,) * 4
    assert len(history_ids(more[2])) == HISTORY_PAGE + 5 and "rc-history-more" not in more[2]
    found = ui.history.search_history("  pump   QUESTION ", fresh_state(), request)
    assert len(history_ids(found)) == 6 and "Valve" not in found and "rc-history-more" not in found
    # the search belongs to this browser session's listing; another tab lists everything
    assert len(history_ids(ui.history.listing("local", None, Request(session_hash="t2")))) == 50
    assert "No conversation title contains" in ui.history.search_history("zzz", {}, request)
    assert ui.history.history_click(Click({}), fresh_state(), request) == (SKIP,) * 7


def test_open_rename_and_delete_a_conversation(ui: UI) -> None:
    *_, (_, _, _, _, state, _) = ask(ui)
    conv = state["conv"]
    opened = ui.history.history_click(Click({"action": "open", "conv": conv}), {}, Request())
    transcript, sources, listing, state, title, saved, box = opened
    assert state["conv"] == conv and saved == conv and box == gr.update(visible=False)
    assert len(turn_ids(transcript)) == 1 and f'data-turn="{state["turn"]}"' in sources
    listing, title = ui.history.rename_conversation("Acme <limits>", state, Request())
    assert title == "Acme <limits>" and "Acme &lt;limits&gt;" in listing
    assert ui.engine.log.get_conversation(conv, "local").title == "Acme <limits>"
    with pytest.warns(UserWarning, match="cannot be empty"):
        assert ui.history.rename_conversation("  ", state, Request()) == (SKIP, SKIP)
    left = ui.history.delete_conversation(state, Request())
    assert left[3] == fresh_state() and left[5] == "" and "rc-welcome" in left[0]
    with pytest.raises(ConversationNotFoundError):
        ui.engine.log.get_conversation(conv, "local")
    with pytest.warns(UserWarning, match="no longer exists"):
        assert ui.history.open_conversation(conv, Request())[3] == fresh_state()


def test_export_writes_the_open_conversation_for_its_user_only(ui: UI) -> None:
    *_, (_, _, _, _, state, _) = ask(ui)
    for fmt, start in (("md", b"# "), ("json", b"{"), ("pdf", b"%PDF-")):
        shown = ui.history.export_conversation(fmt, state, Request())
        path = Path(shown["value"])
        assert shown["visible"] and path.suffix == f".{fmt}" and path.read_bytes().startswith(start)
        assert path.name.endswith(f"-{state['conv'][:8]}.{fmt}")
    md = Path(ui.history.export_conversation("md", state, Request())["value"]).read_text()
    assert QUESTION in md and "2 GB per file" in md
    with pytest.warns(UserWarning, match="not found"):  # another user's conversation
        hidden = ui.history.export_conversation("md", state, Request(username="mallory"))
    assert hidden == gr.update(value=None, visible=False)
    with pytest.warns(UserWarning, match="Open or start"):
        ui.history.export_conversation("md", fresh_state(), Request())
    with pytest.warns(UserWarning, match="Unknown export format .*docx.*md, json, pdf"):
        ui.history.export_conversation("docx", state, Request())


def test_page_load_restores_the_open_conversation_and_lists_documents(ui: UI) -> None:
    *_, (_, _, _, _, state, _) = ask(ui)
    loaded = ui.history.on_load(state["conv"], Request())
    assert len(loaded) == 10 and loaded[3]["conv"] == state["conv"]
    who, table, picker = loaded[7:]
    assert who == "" and "acme.md" in table and picker["choices"][0][0] == "acme.md (v1)"
    fresh = ui.history.on_load("", Request("alice"))  # alice sees none of local's conversations
    assert fresh[3] == fresh_state() and "Signed in as <b>alice</b>" in fresh[7]
    assert history_ids(fresh[2]) == []
    convs = ui.history.api_conversations(Request())
    assert [(c["id"], c["turns"]) for c in convs] == [(state["conv"], 1)]


# -- knowledge base ----------------------------------------------------------------------------


def cached_upload(ui: UI, name: str, data: bytes, user: str | None = "local") -> str:
    """A file as Gradio's upload route leaves it: in its cache, recorded in the upload ledger."""
    folder = ui.knowledge.upload_cache / f"hash-{len(name)}-{len(data)}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    if user is not None:
        ui.knowledge.blocks.upload_ledger.record(user, [str(path)])
    return str(path)


@pytest.fixture
def kb(ui: UI) -> UI:
    ui.knowledge.blocks = SimpleNamespace(upload_ledger=UploadLedger())
    return ui


def test_upload_ingests_a_staged_copy_and_reports_a_concurrent_twin(kb: UI) -> None:
    path = cached_upload(kb, "pump notes.md", b"# Pump\n\nThe pump runs at 3 bar.\n")
    payload = [{"path": path, "orig_name": "pump <notes>.md"}]
    results, table, _picker, files = kb.knowledge.upload(payload, Request(), no_progress)
    assert "rc-ingest-added" in results and "pump &lt;notes&gt;.md" in results
    assert "pump &lt;notes&gt;.md" in table and files is None
    assert [d.name for d in kb.engine.documents()] == ["acme.md", "pump <notes>.md"]
    # moved; Gradio's folder stays for the stale-upload sweep (another upload may be moving in)
    assert not Path(path).exists() and list(Path(path).parent.iterdir()) == []
    staged = [p for p in kb.knowledge.settings.uploads_path.iterdir() if p.is_file()]
    assert staged == []  # the staged copy is deleted once ingested
    # the same bytes under the same name, uploaded at the same time: one cached file
    twin, *_ = kb.knowledge.upload(payload, Request(), no_progress)
    assert "rc-ingest-duplicate" in twin and len(kb.engine.documents()) == 2
    assert kb.knowledge.upload(None, Request(), no_progress) == (
        SKIP,
        *kb.knowledge.catalog(),
        SKIP,
    )


def test_cancel_stops_this_browsers_upload_and_keeps_nothing_of_it(kb: UI) -> None:
    paths = [cached_upload(kb, f"note{i}.md", f"# Note {i}\n\nValve {i} is red.\n".encode())
             for i in range(2)]  # fmt: skip
    with pytest.warns(UserWarning, match="No upload of yours is running"):
        kb.knowledge.cancel(Request())
    other_tab = Request(session_hash="tab-2")
    seen: list[str] = []

    def progress(fraction: float, desc: str = "") -> None:
        seen.append(desc)
        if len(seen) == 1:
            kb.knowledge.cancel(other_tab)  # another browser's cancel: not this upload
            assert not kb.knowledge.cancels["tab-1"].is_set()
            kb.knowledge.cancel(Request())

    results, table, *_ = kb.knowledge.upload(paths, Request(), progress)
    assert results.count("rc-ingest-cancelled") == 2 and "nothing of it was kept" in results
    assert [d.name for d in kb.engine.documents()] == ["acme.md"] and "note0" not in table
    assert kb.engine.check() == [] and kb.knowledge.cancels == {}
    assert seen[-1] == "cancelled"


def test_eta_is_shown_once_a_twentieth_is_done() -> None:
    assert eta_text(3.0, 0.01) == "" and eta_text(3.0, 1.0) == ""
    assert eta_text(10.0, 0.5) == " · about 10 s left"
    assert eta_text(60.0, 0.25) == " · about 3 min 00 s left"


def test_upload_refuses_a_path_the_user_did_not_upload(kb: UI, tmp_path: Path) -> None:
    theirs = cached_upload(kb, "theirs.md", b"# Theirs\n\nsecret\n", user="bob")
    copied = cached_upload(kb, "db.sqlite3", b"not uploaded", user=None)  # Gradio's copy
    outside = tmp_path / "outside.md"
    outside.write_text("# Outside\n\nnot in the cache\n")
    kb.knowledge.blocks.upload_ledger.record("local", [str(outside)])
    payload = [theirs, {"path": copied, "orig_name": "db.sqlite3"}, str(outside)]
    results, *_ = kb.knowledge.upload(payload, Request(), no_progress)
    assert results.count("rc-ingest-error") == 3 and results.count("not an uploaded file") == 3
    assert [d.name for d in kb.engine.documents()] == ["acme.md"]
    assert not Path(theirs).exists() and not Path(copied).exists()  # the copies are discarded
    assert outside.exists()  # a file outside Gradio's cache is left alone


def test_upload_without_a_ledger_accepts_what_gradio_received(ui: UI) -> None:
    ui.knowledge.blocks = SimpleNamespace(upload_file_set=set())
    path = cached_upload(ui, "faq.txt", b"The office opens at 9.", user=None)
    results, *_ = ui.knowledge.upload([path], Request(), no_progress)
    assert "not an uploaded file" in results
    path = cached_upload(ui, "faq.txt", b"The office opens at 9.", user=None)
    ui.knowledge.blocks.upload_file_set.add(path)
    results, *_ = ui.knowledge.upload([path], Request(), no_progress)
    assert "rc-ingest-added" in results


def test_chunks_refresh_and_delete_a_document(ui: UI) -> None:
    [doc] = ui.engine.documents()
    assert "Pick a document" in ui.knowledge.show_chunks(None)
    chunks = ui.knowledge.show_chunks(doc.id)
    assert "acme.md" in chunks and chunks.count('class="rc-chunk"') == doc.chunk_count
    report = chunks.index("Ingest report")  # the report comes before the chunks
    assert report < chunks.index('class="rc-chunk"') and "<th>Embedder</th><td>fake" in chunks
    assert "no longer exists" in ui.knowledge.show_chunks("missing")
    table, picker = ui.knowledge.refresh_documents(doc.id)
    assert "acme.md" in table and picker["value"] == doc.id
    with pytest.warns(UserWarning, match="Pick a document"):
        assert ui.knowledge.delete_document(None, Request())[0] == SKIP
    note, table, picker, chunks = ui.knowledge.delete_document(doc.id, Request())
    assert "Deleted acme.md" in note and "No documents yet" in table and picker["value"] is None
    assert "Pick a document" in chunks and ui.engine.documents() == []
    assert "knowledge base is empty" in ui.history.new_conversation(Request())[0]


def test_with_accounts_only_the_owner_or_an_admin_deletes_a_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    engine = make_engine(tmp_path)
    settings = engine.settings.model_copy(
        update={"auth": "alice:x,bob:y,carol:z", "admins": "carol"}
    )
    ui = build_ui(engine, settings)
    alices = engine.ingest_bytes(ACME.encode(), "acme.md", actor=Actor("alice")).document
    bobs = engine.ingest_bytes(b"# Bob\n\nBob's notes.\n", "bob.md", actor=Actor("bob")).document
    assert alices is not None and bobs is not None and alices.owner == "alice"
    with pytest.warns(UserWarning, match="belongs to alice; only its owner or an admin"):
        refused = ui.knowledge.delete_document(alices.id, Request("bob"))
    assert refused[0] == SKIP and refused[3] == SKIP and "acme.md" in refused[1]
    assert {d.name for d in engine.documents()} == {"acme.md", "bob.md"}
    assert "Deleted acme.md" in ui.knowledge.delete_document(alices.id, Request("alice"))[0]
    assert "Deleted bob.md" in ui.knowledge.delete_document(bobs.id, Request("carol"))[0]
    assert engine.documents() == []


def test_insights_tab_shows_the_log_to_admins_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    engine = make_engine(tmp_path)
    engine.ingest_bytes(ACME.encode(), "acme.md")
    engine.ingest_bytes(b"# Other\n\nNothing anyone asks about.\n", "other.md")
    ui = build_ui(engine)
    ask(ui)
    ask(ui, "What is the refund window?")
    assert InsightsController(engine, engine.settings).on_load(Request()) == gr.update(visible=True)
    summary, questions, rates, times, cited, docs, refused = InsightsController(
        engine, engine.settings
    ).refresh(30, Request())
    assert "2 questions" in summary and questions["questions"].tolist() == [2]
    assert set(rates["series"]) == {"refused", "quoted fallback", "thumbs down"}
    assert set(times["series"]) >= {"total p50", "total p95"} and (times["seconds"] >= 0).all()
    assert cited["document"].tolist() == ["acme.md"]
    assert "Never cited" in docs and "other.md" in docs
    assert "No question was refused" in refused  # the gate is off (threshold 0)

    settings = engine.settings.model_copy(update={"auth": "alice:x,carol:z", "admins": "carol"})
    insights = InsightsController(engine, settings)
    assert insights.on_load(Request("alice")) == gr.update(visible=False)
    assert insights.on_load(Request("carol")) == gr.update(visible=True)
    with pytest.warns(UserWarning, match="only an admin"):
        assert insights.refresh(30, Request("alice")) == (SKIP,) * 7
    assert "2 questions" in insights.refresh("7", Request("carol"))[0]


def test_refused_questions_carry_the_add_documents_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    ui = build_ui(make_engine(tmp_path))  # nothing to retrieve: every question is refused
    ask(ui, "Where is the <b>boiler</b> manual?")
    refused = InsightsController(ui.engine, ui.engine.settings).refresh(30, Request())[6]
    assert "&lt;b&gt;boiler&lt;/b&gt;" in refused and "Add documents about this" in refused


def test_pop_ups_escape_what_they_show(ui: UI) -> None:
    with pytest.warns(UserWarning) as warned:  # Gradio shows a pop-up's text as HTML
        ui.knowledge.delete_document("<img src=x onerror=alert(1)>", Request())
    message = str(warned[0].message)
    assert "<img" not in message and "&lt;img" in message
    *_, (_, _, _, _, state, _) = ask(ui)
    with pytest.raises(gr.Error) as error:
        ui.chat.api_turn(state["turn"] + 1, Request())
    assert "<" not in str(error.value.message)
