"""The chat column and the sources panel: ask, retry and stop an answer; clicks on a citation, on
'n sources' or on a thumb; the feedback comment; the JSON of one logged answer for programs."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import gradio as gr

from rag_core.config import Settings
from rag_core.db.records import Feedback, TurnRecord, passage_id
from rag_core.engine import Engine, clean_question
from rag_core.errors import ConversationNotFoundError, RagError, UserError
from rag_core.replay import replay_turn
from rag_core.types import (
    Done,
    Event,
    FeedbackReason,
    Logged,
    Retrieved,
    Scope,
    SentenceChecked,
    Token,
)
from webapp import render
from webapp.render import TurnView
from webapp.ui.collections import scope_from_picker
from webapp.ui.common import (
    State,
    actor_of,
    as_int,
    fail,
    fresh_state,
    notify,
    session_of,
    skips,
    user_of,
    warn,
)
from webapp.ui.history import HistoryController
from webapp.ui.sessions import Sessions

log = logging.getLogger("ragchat.webapp.ui.chat")

LENGTHS = {"Short": 80, "Medium": 160, "Long": 320}  # answer length choice -> max new tokens
# what a thumbs down may say was wrong (label, value stored)
FEEDBACK_REASONS = [
    ("A wrong fact", "wrong_fact"),
    ("A wrong or missing citation", "wrong_citation"),
    ("Refused, but the documents answer it", "should_answer"),
    ("Answered, but the documents don't say", "should_refuse"),
]
STREAM_INTERVAL_S = 0.06  # at most ~16 redraws a second while tokens stream
# ask and retry yield these 6 outputs:
# question box, transcript, sources, history, state, saved conversation
ANSWER_OUTPUTS = 6
GONE = "This conversation no longer exists. Your question starts a new one: ask again."
BROKEN = "Something went wrong while answering; the server log has details."


@dataclass(frozen=True)
class AnswerChoices:
    """The answer settings of the sidebar, as the UI sends them."""

    mode: str
    top_k: float
    length: str
    style: str  # the answer strategy (or the older answer mode)
    scope: Scope | None = None  # what to search (empty: everything; None: as remembered)

    def options(self) -> dict[str, Any]:
        """The engine's options for them (None: the configured default)."""
        return {
            "mode": self.mode or None,
            "top_k": as_int(self.top_k),
            "max_new_tokens": LENGTHS.get(self.length),
            **(
                {"answer_mode": self.style}
                if self.style == "generate"  # the older answer mode keeps the configured strategy
                else {"strategy": self.style or None}
            ),
        }


def _scope(picked: list[str] | None) -> Scope | None:
    """The page's picker as a scope (empty: everything); None (a program that sends none):
    the conversation's remembered scope."""
    return None if picked is None else scope_from_picker(picked)


def _frame(prior: list[str], state: State, current: str, sources: Any = None) -> tuple[Any, ...]:
    """An answer in progress below the conversation's earlier turns (the panel when given)."""
    panel = gr.skip() if sources is None else sources
    return ("", render.render_transcript([*prior, current]), panel, gr.skip(), state, gr.skip())


def _feedback_unchanged(state: State) -> tuple[Any, ...]:
    """transcript, state, feedback box, feedback label, comment, reason: nothing changes."""
    return gr.skip(), state, gr.skip(), gr.skip(), gr.skip(), gr.skip()


@dataclass(eq=False)
class ChatController:
    """Chat events. Conversations are read and rendered through `history`; `sessions` holds the
    stop switch of the answer each browser session streams."""

    engine: Engine
    settings: Settings
    sessions: Sessions
    history: HistoryController

    def _turn(self, turn_id: int, user: str) -> TurnRecord:
        return self.engine.log.get_turn(turn_id, user)

    # -- answering -------------------------------------------------------------------------------

    def ask(
        self,
        question: str,
        mode: str,
        top_k: float,
        length: str,
        style: str,
        state: State,
        request: gr.Request,
        scope: list[str] | None = None,
    ) -> Iterator[tuple[Any, ...]]:
        """Ask a question in the current conversation (a new one if none is open), searching
        what the scope picker names (nothing picked: everything the user may see; no picker,
        from a program: what the conversation searched before)."""
        if not (question or "").strip():
            yield skips(ANSWER_OUTPUTS)
            return
        choices = AnswerChoices(mode, top_k, length, style, _scope(scope))
        yield from self._run_turn(question, choices, state, request)

    def retry(
        self,
        mode: str,
        top_k: float,
        length: str,
        style: str,
        state: State,
        request: gr.Request,
        scope: list[str] | None = None,
    ) -> Iterator[tuple[Any, ...]]:
        """Ask the conversation's last question again (with the current settings and scope)."""
        try:
            views = self.history.views((state or {}).get("conv"), user_of(request))
        except ConversationNotFoundError:
            views = []
        if not views:
            notify("Nothing to retry yet: ask a question first.")
            yield skips(ANSWER_OUTPUTS)
            return
        choices = AnswerChoices(mode, top_k, length, style, _scope(scope))
        yield from self._run_turn(views[-1].question, choices, state, request)

    def stop_answer(self, request: gr.Request) -> None:
        """Stop the answer being streamed to this browser session; what was checked is kept."""
        self.sessions.stop(session_of(request))

    def _run_turn(
        self, question: str, choices: AnswerChoices, state: State, request: gr.Request | None
    ) -> Iterator[tuple[Any, ...]]:
        """Stream one answer: (question box, transcript, sources, history, state, saved conv)."""
        user = user_of(request)
        state = dict(state or fresh_state())
        conv: str | None = state.get("conv")
        try:
            prior = [render.render_turn(v) for v in self.history.views(conv, user)]
        except ConversationNotFoundError:
            conv, prior = None, []
            state.update(fresh_state())
        view = TurnView(question=question)
        session = session_of(request)
        stop = self.sessions.start_answer(session)
        events: Iterator[Event] | None = None
        try:
            question = clean_question(question, self.settings.max_question_chars)
            view.question = question
            yield _frame(prior, state, render.render_turn(view), render.render_sources(None))
            options = self.engine.options(**choices.options())
            events = self.engine.chat(
                question,
                conv,
                user=user,
                stop=stop,
                options=options,
                actor=actor_of(self.settings, request),
                scope=choices.scope,
            )
            yield from self._stream(events, view, prior, state, request)
        except ConversationNotFoundError:
            state.update(fresh_state())
            transcript = render.render_transcript([render.render_error(question, GONE)])
            listing = self.history.listing(user, None, request)
            yield ("", transcript, gr.skip(), listing, state, "")
        except UserError as exc:
            yield _frame(prior, state, render.render_error(question, str(exc)))
        except RagError as exc:
            log.warning("answer failed: %s", exc)
            message = f"The answer could not be produced: {exc}"
            yield _frame(prior, state, render.render_error(question, message))
        except Exception:
            log.exception("unexpected error while answering %r", question)
            yield _frame(prior, state, render.render_error(question, BROKEN))
        finally:
            if events is not None and hasattr(events, "close"):
                events.close()  # a client that went away: the engine stops and logs the turn
            self.sessions.end_answer(session, stop)

    def _stream(
        self,
        events: Iterator[Event],
        view: TurnView,
        prior: list[str],
        state: State,
        request: gr.Request | None,
    ) -> Iterator[tuple[Any, ...]]:
        """A frame per engine event worth a redraw; the logged turn, as stored, last."""
        last = 0.0
        for event in events:
            view.apply(event)
            if isinstance(event, Token):
                now = time.monotonic()
                if now - last < STREAM_INTERVAL_S:
                    continue
                last = now
                yield _frame(prior, state, render.render_turn(view))
            elif isinstance(event, Retrieved):
                yield _frame(prior, state, render.render_turn(view), render.render_sources(view))
            elif isinstance(event, SentenceChecked | Done):
                yield _frame(prior, state, render.render_turn(view))
            elif isinstance(event, Logged):
                yield self._logged(event, prior, state, request)

    def _logged(
        self, event: Logged, prior: list[str], state: State, request: gr.Request | None
    ) -> tuple[Any, ...]:
        user = user_of(request)
        record = TurnView.from_record(self._turn(event.turn_id, user))
        state.update(conv=event.conversation_id, turn=event.turn_id, focus=None)
        return (
            "",
            render.render_transcript([*prior, render.render_turn(record)]),
            render.render_sources(record),
            self.history.listing(user, event.conversation_id, request),
            state,
            event.conversation_id,
        )

    # -- the sources panel and feedback ----------------------------------------------------------

    def show_source(self, turn: Any, n: Any, state: State, request: gr.Request) -> tuple[Any, ...]:
        """Open turn `turn`'s passages in the sources panel, citation [n] first (n=0: none)."""
        turn_id, number = as_int(turn), as_int(n)
        state = dict(state or fresh_state())
        if turn_id is None:
            return render.render_sources(None), state
        try:
            view = TurnView.from_record(self._turn(turn_id, user_of(request)))
        except ConversationNotFoundError:
            warn("That answer no longer exists.")
            return gr.skip(), state
        state.update(turn=turn_id, focus=number or None)
        return render.render_sources(view, focus=number or None), state

    def give_feedback(
        self, turn: Any, rating: Any, comment: str | None, state: State, request: gr.Request
    ) -> tuple[Any, ...]:
        """Thumbs up (+1) or down (-1) on an answer, with an optional comment, stored per turn;
        a thumbs down keeps what was said about it, and opens the reasons."""
        user = user_of(request)
        turn_id, value = as_int(turn), as_int(rating)
        state = dict(state or fresh_state())
        if turn_id is None or value not in (1, -1):
            warn("Feedback needs an answer and a rating of +1 or -1.")
            return _feedback_unchanged(state)
        try:
            record = self._turn(turn_id, user)
            text = record.feedback_comment if comment is None else comment
            self.engine.log.set_feedback(turn_id, user, value, text)
            views = self.history.views(record.conversation_id, user)
        except UserError as exc:
            warn(str(exc))
            return _feedback_unchanged(state)
        state["fb"] = turn_id
        number = next((i + 1 for i, v in enumerate(views) if v.turn_id == turn_id), None)
        label = f"Feedback on answer {number}: {'👍' if value == 1 else '👎'} saved."
        if value == -1:
            label += " What was wrong? The sources panel lets you mark the passage it should "
            label += "have used."
        label += " Add a comment (optional):"
        if comment is not None:
            notify("Thanks, your feedback was saved.")
        current = next((v for v in views if v.turn_id == turn_id), None)
        shown = record.conversation_id == state.get("conv")
        reason = current.feedback.reason if current and current.feedback else None
        return (
            self.history.transcript(views, request) if shown else gr.skip(),
            state,
            gr.update(visible=True),
            f'<div class="rc-fb-label">{render.esc(label)}</div>',
            (current.comment if current else None) or "",
            gr.update(visible=value == -1, value=reason),
        )

    def save_comment(
        self, comment: str, reason: str | None, state: State, request: gr.Request
    ) -> tuple[Any, ...]:
        """Attach the comment box's text (and, to a thumbs down, the reason chosen) to the
        answer that was just rated."""
        turn_id = (state or {}).get("fb")
        if not turn_id:
            warn("Rate an answer with 👍 or 👎 first.")
            return _feedback_unchanged(state)
        user = user_of(request)
        try:
            record = self._turn(turn_id, user)
            rating = record.feedback_rating or 1
            if rating == -1:
                said = record.feedback or Feedback()
                chosen = cast(FeedbackReason | None, reason or None)
                feedback = Feedback(chosen, said.passage, said.no_passage)
                self.engine.log.set_feedback(turn_id, user, -1, record.feedback_comment, feedback)
        except UserError as exc:
            warn(str(exc))
            return _feedback_unchanged(state)
        return self.give_feedback(turn_id, rating, comment or "", state, request)

    def mark_passage(self, turn: Any, n: Any, state: State, request: gr.Request) -> tuple[Any, ...]:
        """After a thumbs down: passage n (1-based) should have been used; 0: none of these
        answers. Clicking the marked one again takes the mark back. (sources, state)"""
        user, turn_id, number = user_of(request), as_int(turn), as_int(n)
        state = dict(state or fresh_state())
        if turn_id is None or number is None:
            return gr.skip(), state
        try:
            record = self._turn(turn_id, user)
            said = record.feedback or Feedback()
            if number == 0:
                feedback = Feedback(said.reason, None, not said.no_passage)
            else:
                chunk = passage_id(record, number)
                feedback = Feedback(said.reason, None if said.passage == chunk else chunk)
            self.engine.log.set_feedback(turn_id, user, -1, record.feedback_comment, feedback)
            view = TurnView.from_record(self._turn(turn_id, user))
        except UserError as exc:
            warn(str(exc))
            return gr.skip(), state
        state.update(turn=turn_id, focus=None, fb=turn_id)
        return render.render_sources(view), state

    def panel_click(self, evt: gr.EventData, state: State, request: gr.Request) -> tuple[Any, ...]:
        """A click inside the chat or sources panel: a citation chip, 'sources', a thumb, or a
        passage marked after a thumbs down."""
        data = getattr(evt, "_data", None) or {}
        action = data.get("action")
        rest = (gr.skip(),) * 4  # the feedback box, its label, the comment, the reason
        if action in ("cite", "sources"):
            sources, new_state = self.show_source(
                data.get("turn"), data.get("n") or 0, state, request
            )
            return (gr.skip(), sources, new_state, *rest)
        if action == "mark":
            sources, new_state = self.mark_passage(data.get("turn"), data.get("n"), state, request)
            return (gr.skip(), sources, new_state, *rest)
        if action == "feedback":
            transcript, new_state, *feedback = self.give_feedback(
                data.get("turn"), data.get("rating"), None, state, request
            )
            sources = gr.skip()
            if new_state.get("fb") == as_int(data.get("turn")):  # rated: show what to mark
                sources, new_state = self.show_source(new_state["fb"], 0, new_state, request)
            return (transcript, sources, new_state, *feedback)
        return (gr.skip(), gr.skip(), state, *rest)

    def replay_click(
        self, evt: gr.EventData, state: State, request: gr.Request
    ) -> Iterator[tuple[Any, ...]]:
        """The sources panel's Replay button: answer the turn again with its logged settings on
        today's documents, and show the two side by side (other clicks: nothing here)."""
        data = getattr(evt, "_data", None) or {}
        if data.get("action") != "replay":
            yield gr.skip(), state
            return
        yield from self.replay(data.get("turn"), state, request)

    def replay(self, turn: Any, state: State, request: gr.Request) -> Iterator[tuple[Any, ...]]:
        """Replay one of the user's answers into the sources panel (sources, state)."""
        turn_id = as_int(turn)
        state = dict(state or fresh_state())
        if turn_id is None:
            warn("Replay needs an answer: open one's sources first.")
            yield gr.skip(), state
            return
        yield render.render_replay_pending(turn_id), state
        try:
            result = replay_turn(self.engine, turn_id, user_of(request))
        except UserError as exc:
            warn(str(exc))
            yield gr.skip(), state
            return
        except RagError as exc:
            log.exception("replaying turn %s failed", turn_id)
            warn(f"The replay failed: {exc}")
            yield gr.skip(), state
            return
        state.update(turn=turn_id, focus=None)
        yield render.render_replay(result), state

    # -- JSON for programs (the UI itself uses the events above) ---------------------------------

    def api_turn(self, turn_id: int, request: gr.Request) -> dict[str, Any]:
        """One logged answer with its citations, retrieved passages and feedback."""
        try:
            rec = self._turn(int(turn_id), user_of(request))
        except UserError as exc:
            raise fail(str(exc)) from exc
        return turn_json(rec)


def turn_json(rec: TurnRecord) -> dict[str, Any]:
    """What the /turn endpoint returns for a logged answer."""
    cited = {c.chunk.id for c in rec.citations}
    citations = [
        {
            "n": c.n,
            "document": c.chunk.document_name,
            "page": c.chunk.page,
            "heading_path": list(c.chunk.heading_path),
            "ocr": c.chunk.ocr,
            "support": c.support,
            "text": c.chunk.text,
        }
        for c in rec.citations
    ]
    hits = [
        {
            "rank": x.rank,
            "score": x.score,
            "found_by": x.found_by,
            "document": x.chunk.document_name,
            "cited": x.chunk.id in cited,
            "text": x.chunk.text,
        }
        for x in rec.hits
    ]
    return {
        "id": rec.id,
        "conversation_id": rec.conversation_id,
        "question": rec.question,
        "answer": rec.answer,
        "mode": rec.mode,
        "status": rec.status,
        "refused": rec.refused,
        "feedback_rating": rec.feedback_rating,
        "feedback_comment": rec.feedback_comment,
        "feedback_reason": rec.feedback.reason if rec.feedback else None,
        "feedback_passage": rec.feedback.passage if rec.feedback else None,
        "feedback_no_passage": bool(rec.feedback and rec.feedback.no_passage),
        "citations": citations,
        "hits": hits,
    }
