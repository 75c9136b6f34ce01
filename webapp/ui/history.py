"""The history sidebar and the open conversation: new, open, rename, delete; the listing with
'Load more' and a title search; what a page load shows. Other controllers render conversations
through it (`views`, `transcript`, `listing`), so each conversation-log read has one home."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from rag_core.config import Settings
from rag_core.db.records import ConversationRecord
from rag_core.engine import Engine
from rag_core.errors import ConversationNotFoundError, UserError
from webapp import render
from webapp.auth import LOCAL_USER
from webapp.export import export_for
from webapp.render import TurnView
from webapp.ui.common import State, fresh_state, notify, session_of, skips, user_of, warn
from webapp.ui.knowledge import KnowledgeController
from webapp.ui.sessions import HISTORY_PAGE, Sessions

# new_conversation, open_conversation and the like return these 7 outputs:
# transcript, sources, history, state, title box, saved conversation, feedback box
CONVERSATION_OUTPUTS = 7
EXPORTS_KEPT_S = 600  # export files wait this long for their download (Gradio serves a copy)


@dataclass(eq=False)
class HistoryController:
    """Conversation events. `sessions` holds each browser session's sidebar listing;
    `knowledge` gives the welcome card and the documents a page load shows."""

    engine: Engine
    settings: Settings
    sessions: Sessions
    knowledge: KnowledgeController

    # -- reading the log -------------------------------------------------------------------------

    def views(self, conv: str | None, user: str) -> list[TurnView]:
        """The turns of a conversation as shown (none for no conversation); raises
        ConversationNotFoundError for one that is not the user's or no longer exists."""
        if not conv:
            return []
        return [TurnView.from_record(r) for r in self.engine.log.turns(conv, user)]

    def transcript(self, views: list[TurnView], request: gr.Request | None = None) -> str:
        """The chat column for these turns (the welcome card, with what the user may see, when
        there are none)."""
        welcome = "" if views else self.knowledge.welcome(request)
        return render.render_transcript((render.render_turn(v) for v in views), welcome=welcome)

    def _conversations(
        self, user: str, limit: int | None = None, search: str | None = None
    ) -> list[ConversationRecord]:
        return self.engine.log.list_conversations(user, limit=limit, search=search)

    def listing(self, user: str, active: str | None, request: gr.Request | None) -> str:
        """The sidebar: the newest conversations of this browser session's listing (more after
        'Load more'), filtered by its search text."""
        shown, search = self.sessions.history_view(session_of(request))
        convs = self._conversations(user, limit=shown + 1, search=search or None)
        return render.render_history(convs[:shown], active, more=len(convs) > shown, search=search)

    def title(self, conv: str | None, user: str) -> str:
        if not conv:
            return ""
        try:
            return self.engine.log.get_conversation(conv, user).title
        except ConversationNotFoundError:
            return ""

    # -- events ----------------------------------------------------------------------------------

    def new_conversation(self, request: gr.Request) -> tuple[Any, ...]:
        """Leave the current conversation; the next question starts a new one."""
        return (
            self.transcript([], request),
            render.render_sources(None),
            self.listing(user_of(request), None, request),
            fresh_state(),
            "",
            "",
            gr.update(visible=False),
        )

    def open_conversation(self, conv_id: str, request: gr.Request) -> tuple[Any, ...]:
        """Show a past conversation, its last answer's sources, and continue it."""
        user = user_of(request)
        conv_id = (conv_id or "").strip()
        try:
            views = self.views(conv_id, user) if conv_id else []
            title = self.title(conv_id, user) if conv_id else ""
        except ConversationNotFoundError:
            warn("That conversation no longer exists.")
            return self.new_conversation(request)
        state = fresh_state()
        if conv_id and title:
            state["conv"] = conv_id
        last = views[-1] if views else None
        if last is not None:
            state["turn"] = last.turn_id
        return (
            self.transcript(views, request),
            render.render_sources(last),
            self.listing(user, state["conv"], request),
            state,
            title,
            state["conv"] or "",
            gr.update(visible=False),
        )

    def history_click(
        self, evt: gr.EventData, state: State, request: gr.Request
    ) -> tuple[Any, ...]:
        """A click in the sidebar: open a conversation, or show more of the list."""
        data = getattr(evt, "_data", None) or {}
        if data.get("action") == "more":
            shown, search = self.sessions.history_view(session_of(request))
            self.sessions.set_history_view(session_of(request), shown + HISTORY_PAGE, search)
            listing = self.listing(user_of(request), (state or {}).get("conv"), request)
            return (gr.skip(), gr.skip(), listing, *skips(4))
        if data.get("action") != "open":
            return skips(CONVERSATION_OUTPUTS)
        return self.open_conversation(str(data.get("conv") or ""), request)

    def search_history(self, text: str, state: State, request: gr.Request) -> str:
        """Keep the sidebar's conversations whose title contains `text`."""
        search = " ".join((text or "").split())[:200]
        self.sessions.set_history_view(session_of(request), HISTORY_PAGE, search)
        return self.listing(user_of(request), (state or {}).get("conv"), request)

    def rename_conversation(self, title: str, state: State, request: gr.Request) -> tuple[Any, ...]:
        """Rename the open conversation."""
        user = user_of(request)
        conv = (state or {}).get("conv")
        if not conv:
            warn("Open or start a conversation first.")
            return skips(2)
        try:
            record = self.engine.log.rename(conv, user, title or "")
        except UserError as exc:
            warn(str(exc))
            return skips(2)
        notify("Conversation renamed.")
        return self.listing(user, conv, request), record.title

    def delete_conversation(self, state: State, request: gr.Request) -> tuple[Any, ...]:
        """Delete the open conversation with all its turns and feedback."""
        conv = (state or {}).get("conv")
        if conv:
            try:
                self.engine.log.delete(conv, user_of(request))
                notify("Conversation deleted.")
            except ConversationNotFoundError:
                pass
        return self.new_conversation(request)

    def export_conversation(self, fmt: str, state: State, request: gr.Request) -> dict[str, Any]:
        """The open conversation as a file (Markdown, JSON or PDF) for the download box."""
        conv = (state or {}).get("conv")
        if not conv:
            warn("Open or start a conversation first.")
            return gr.update(value=None, visible=False)
        try:
            file = export_for(self.engine, conv, user_of(request), fmt or "md")
        except UserError as exc:  # another user's or a deleted conversation; a bad format
            warn(str(exc))
            return gr.update(value=None, visible=False)
        folder = self._export_folder()
        path = folder / file.filename
        path.write_bytes(file.content)
        return gr.update(value=str(path), visible=True)

    @staticmethod
    def _export_folder() -> Path:
        """A fresh private folder in the system's temp folder (one of the places Gradio serves
        a result file from); export folders older than EXPORTS_KEPT_S are removed."""
        root = Path(tempfile.gettempdir()) / "ragchat-exports"
        root.mkdir(mode=0o700, exist_ok=True)
        for old in root.iterdir():
            if old.is_dir() and time.time() - old.stat().st_mtime > EXPORTS_KEPT_S:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(dir=root))

    def on_load(self, saved: str | None, request: gr.Request) -> tuple[Any, ...]:
        """Page load: the history list, and the conversation this browser had open, if any."""
        user = user_of(request)
        who = ""
        if user != LOCAL_USER or self.settings.auth:
            who = (
                f'<div class="rc-who">Signed in as <b>{render.esc(user)}</b> · '
                # a form, not a link: logging out changes state, so it is a POST
                '<form method="post" action="/logout" class="rc-logout">'
                '<button type="submit" id="rc-logout">Log out</button></form></div>'
            )
        kb = self.knowledge.catalog(None, request)
        if saved:
            return (*self.open_conversation(saved, request), who, *kb)
        return (*self.new_conversation(request), who, *kb)

    # -- JSON for programs (the UI itself uses the events above) ---------------------------------

    def api_conversations(self, request: gr.Request) -> list[dict[str, Any]]:
        """The caller's conversations, newest first (REST's /api/conversations pages them)."""
        return [
            {
                "id": c.id,
                "title": c.title,
                "turns": c.turn_count,
                "updated_at": c.updated_at.isoformat(),
            }
            for c in self._conversations(user_of(request))
        ]
