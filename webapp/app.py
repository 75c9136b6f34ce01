"""build_app(engine, settings) -> gr.Blocks: the chat, sources inspector, history, knowledge base.

A thin adapter: every callback asks the engine or the conversation log and renders the result
with `webapp.render`. Building the app loads nothing heavy; models load on first use.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr

from rag_core.config import Settings
from rag_core.engine import Engine, clean_question
from rag_core.errors import (
    ConversationNotFoundError,
    DocumentNotFoundError,
    RagError,
    UserError,
)
from rag_core.ingest.pipeline import OPERATOR, SUPPORTED_EXTENSIONS, clean_name
from rag_core.types import Actor, Done, IngestResult, Logged, Retrieved, SentenceChecked, Token
from webapp import render as h
from webapp.auth import LOCAL_USER
from webapp.security import escape_text

log = logging.getLogger("ragchat.webapp.app")

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
STATIC = Path(__file__).resolve().parent / "static"

LENGTHS = {"Short": 80, "Medium": 160, "Long": 320}
MODES = [("Hybrid (keyword + dense)", "hybrid"), ("Dense (meaning)", "dense"), ("Keyword", "bm25")]
STYLES = [("Generated, checked", "generate"), ("Quoted passages only", "extractive")]
PROGRESS = gr.Progress()  # gradio injects the real tracker for a parameter with this default
HISTORY_PAGE = 50  # conversations the sidebar lists at first, and adds per 'Load more'
STREAM_INTERVAL_S = 0.06  # at most ~16 redraws a second while tokens stream

# Clicks inside the HTML panels become one 'click' event carrying what was clicked.
CLICK_JS = """
element.addEventListener('click', (e) => {
  const el = e.target.closest('[data-action]');
  if (!el || !element.contains(el)) return;
  e.preventDefault();
  const d = el.dataset;
  if (d.action === 'cite' && !d.turn) return;
  trigger('click', {action: d.action, turn: d.turn || '', n: d.n || '', rating: d.rating || '',
                    conv: d.conv || ''});
});
"""
TRANSCRIPT_JS = (
    CLICK_JS
    + """
const scroller = () => element.closest('.rc-scroll') || element.parentElement;
watch('value', () => {
  const box = scroller();
  if (!box) return;
  if (element.querySelector('.rc-streaming') || box.dataset.stick !== 'no') {
    box.scrollTop = box.scrollHeight;
  }
});
"""
)
SOURCES_JS = (
    CLICK_JS
    + """
watch('value', () => {
  const target = element.querySelector('.rc-citation') || element.querySelector('.is-focused');
  if (target) target.scrollIntoView({block: 'nearest', behavior: 'smooth'});
});
"""
)


def _logo_svg() -> str:
    try:
        return (ASSETS / "logo.svg").read_text(encoding="utf-8")
    except OSError:
        return ""


def theme() -> gr.themes.Base:
    """A calm theme that uses system fonts only, so the page fetches nothing from the web."""
    return gr.themes.Soft(
        primary_hue=gr.themes.colors.indigo,
        secondary_hue=gr.themes.colors.slate,
        neutral_hue=gr.themes.colors.slate,
        radius_size=gr.themes.sizes.radius_md,
        font=[
            gr.themes.Font("system-ui"),
            gr.themes.Font("-apple-system"),
            gr.themes.Font("Segoe UI"),
            gr.themes.Font("Roboto"),
            gr.themes.Font("Helvetica Neue"),
            gr.themes.Font("Arial"),
            gr.themes.Font("sans-serif"),
        ],
        font_mono=[
            gr.themes.Font("ui-monospace"),
            gr.themes.Font("SFMono-Regular"),
            gr.themes.Font("Menlo"),
            gr.themes.Font("Consolas"),
            gr.themes.Font("monospace"),
        ],
    )


def launch_options() -> dict[str, Any]:
    """What `Blocks.launch` needs besides host and port (gradio 6 takes theme and CSS there)."""
    css_path = STATIC / "ragchat.css"
    favicon = ASSETS / "favicon.png"
    return {
        "theme": theme(),
        "css_paths": [css_path] if css_path.exists() else None,
        "head": (
            '<meta name="description" content="ragchat: chat with your documents, offline">'
            '<link rel="icon" type="image/png" href="favicon.ico">'
            # gradio scopes custom CSS inside the app; the page padding lies outside it
            "<style>@media (max-width: 760px) { .gradio-container > .main.app "
            "{ padding-left: 8px !important; padding-right: 8px !important; } }</style>"
        ),
        "favicon_path": str(favicon) if favicon.exists() else None,
        "ssr_mode": False,
        "footer_links": ["api"],
        "show_error": False,
    }


def warn(message: str) -> None:
    """A warning pop-up; Gradio renders its text as HTML, so it is escaped."""
    gr.Warning(escape_text(message))


def notify(message: str) -> None:
    """An information pop-up (escaped, as `warn`)."""
    gr.Info(escape_text(message))


def fail(message: str) -> gr.Error:
    """An error for an API caller or pop-up (escaped, as `warn`)."""
    return gr.Error(escape_text(message), print_exception=False)


def _user(request: gr.Request | None) -> str:
    name = getattr(request, "username", None) if request is not None else None
    return str(name) if name else LOCAL_USER


def _session(request: gr.Request | None) -> str:
    return str(getattr(request, "session_hash", None) or "")


def _int(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _fresh_state() -> dict[str, Any]:
    return {"conv": None, "turn": None, "focus": None, "fb": None}


def uploaded_files(payload: Any) -> list[tuple[str, str]]:
    """(server path, name the user gave the file) for each file of an unpreprocessed gr.File.

    Gradio strips characters such as < > " from the stored file name; the knowledge base keeps
    (and shows, escaped) the original name. Gradio has already checked that every path lies in
    its upload folder.
    """
    items = payload if isinstance(payload, list) else [payload] if payload else []
    out = []
    for item in items:
        if isinstance(item, dict) and item.get("path"):
            path = str(item["path"])
            out.append((path, str(item.get("orig_name") or Path(path).name)))
        elif isinstance(item, str) and item:
            out.append((item, Path(item).name))
    return out


UPLOAD_CACHE = "incoming"  # Gradio's upload cache, inside RAGCHAT_HOME/uploads
_STAGED_EXTENSIONS = frozenset(SUPPORTED_EXTENSIONS)


def configure_upload_dir(settings: Settings) -> Path:
    """Point Gradio's upload cache (GRADIO_TEMP_DIR) at RAGCHAT_HOME/uploads/incoming, so an
    upload is never written outside the data folder. build_app calls it; a server that builds
    the Gradio app some other way must call it before creating or mounting the app."""
    folder = (settings.uploads_path / UPLOAD_CACHE).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    return folder


def stage_upload(path: Path, settings: Settings, name: str) -> Path:
    """Move an upload out of Gradio's cache (where its file name is the user's) to
    RAGCHAT_HOME/uploads/<random hex><ext>: a generated name, with the extension only when it is
    a supported one. The display name is kept apart, by the caller. Gradio's per-file folder is
    removed when it is left empty."""
    uploads = settings.uploads_path.resolve()
    uploads.mkdir(parents=True, exist_ok=True)
    ext = Path(clean_name(name)).suffix.lower()
    staged = uploads / f"{uuid.uuid4().hex}{ext if ext in _STAGED_EXTENSIONS else ''}"
    shutil.move(str(path), staged)
    cache = (uploads / UPLOAD_CACHE).resolve()
    parent = path.resolve().parent
    if parent != cache and parent.is_relative_to(cache):
        with contextlib.suppress(OSError):  # not empty: another upload shares the folder
            parent.rmdir()
    return staged


def clean_stale_uploads(settings: Settings, max_age_s: float) -> int:
    """Delete uploads (Gradio's cache and staged files) untouched for `max_age_s` seconds: an
    aborted or never-submitted upload must not stay on disk. Returns how many files went."""
    uploads = settings.uploads_path
    if not uploads.is_dir():
        return 0
    cutoff = time.time() - max_age_s
    removed = 0
    for path in sorted(uploads.rglob("*"), reverse=True):  # files before their folders
        try:
            if path.is_symlink() or path.is_file():
                if path.lstat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            elif path.is_dir() and path != uploads / UPLOAD_CACHE:
                path.rmdir()  # only when empty
        except OSError:
            continue
    return removed


def discard_copy(path: Path, cache: Path) -> None:
    """Delete a file Gradio copied into its upload cache (and its folder, if left empty)."""
    resolved = path.resolve()
    if resolved.parent == cache or not resolved.is_relative_to(cache):
        return
    with contextlib.suppress(OSError):
        resolved.unlink(missing_ok=True)
        resolved.parent.rmdir()


def build_app(engine: Engine, settings: Settings, *, secret: str | None = None) -> gr.Blocks:
    """The whole UI. `secret` keys the browser-side memory of the open conversation."""
    upload_cache = configure_upload_dir(settings)
    # Outcome per Gradio cache path: the same bytes under the same name uploaded twice at once
    # share one cached file, which the first upload moves away; the second reports the same.
    consumed: OrderedDict[str, IngestResult] = OrderedDict()
    conv_log = engine.log
    stops: dict[str, threading.Event] = {}
    stops_lock = threading.Lock()

    def actor_of(request: gr.Request | None) -> Actor:
        """Who changes the knowledge base: with accounts, the signed-in user (an admin if
        RAGCHAT_ADMINS names them); without, the operator."""
        if not settings.auth:
            return OPERATOR
        user = _user(request)
        return Actor(user, admin=user in settings.admin_users)

    # -- helpers over the log --------------------------------------------------------------

    def kb_counts() -> tuple[int, int]:
        docs = engine.documents()
        return len(docs), sum(d.chunk_count for d in docs)

    def welcome() -> str:
        return h.render_welcome(*kb_counts())

    def transcript_for(turns: list[h.TurnView]) -> str:
        return h.render_transcript((h.render_turn(v) for v in turns), welcome=welcome())

    def turns_of(conv: str | None, user: str) -> list[h.TurnView]:
        if not conv:
            return []
        return [h.TurnView.from_record(r) for r in conv_log.turns(conv, user)]

    history_views: OrderedDict[str, tuple[int, str]] = OrderedDict()  # session: (shown, search)

    def history_html(user: str, active: str | None, request: gr.Request | None) -> str:
        """The sidebar: the newest conversations of this browser session's listing (more after
        'Load more'), filtered by its search text."""
        shown, search = history_views.get(_session(request), (HISTORY_PAGE, ""))
        convs = conv_log.list_conversations(user, limit=shown + 1, search=search or None)
        return h.render_history(convs[:shown], active, more=len(convs) > shown, search=search)

    def set_history_view(request: gr.Request | None, shown: int, search: str) -> None:
        history_views.pop(_session(request), None)
        history_views[_session(request)] = (shown, search)
        while len(history_views) > 10_000:
            history_views.popitem(last=False)

    def title_of(conv: str | None, user: str) -> str:
        if not conv:
            return ""
        try:
            return conv_log.get_conversation(conv, user).title
        except ConversationNotFoundError:
            return ""

    # -- chat ------------------------------------------------------------------------------

    def run_turn(
        question: str,
        mode: str,
        top_k: float,
        length: str,
        style: str,
        state: dict[str, Any],
        request: gr.Request | None,
    ) -> Iterator[tuple[Any, ...]]:
        """Stream one answer: (question box, transcript, sources, history, state, saved conv)."""
        user = _user(request)
        state = dict(state or _fresh_state())
        conv: str | None = state.get("conv")
        try:
            prior = [h.render_turn(v) for v in turns_of(conv, user)]
        except ConversationNotFoundError:
            conv, prior = None, []
            state.update(_fresh_state())
        view = h.TurnView(question=question)
        stop = threading.Event()
        session = _session(request)
        with stops_lock:
            stops[session] = stop

        def frame(current: str, sources: Any = None) -> tuple:
            panel = gr.skip() if sources is None else sources
            return ("", h.render_transcript([*prior, current]), panel, gr.skip(), state, gr.skip())

        events: Iterator[Any] | None = None
        try:
            question = clean_question(question, settings.max_question_chars)
            view.question = question
            yield frame(h.render_turn(view), h.render_sources(None))
            events = engine.chat(
                question,
                conv,
                user=user,
                stop=stop,
                mode=mode or None,
                top_k=_int(top_k),
                max_new_tokens=LENGTHS.get(length),
                answer_mode=style or None,
            )
            last = 0.0
            for event in events:
                view.apply(event)
                if isinstance(event, Token):
                    now = time.monotonic()
                    if now - last < STREAM_INTERVAL_S:
                        continue
                    last = now
                    yield frame(h.render_turn(view))
                elif isinstance(event, Retrieved):
                    yield frame(h.render_turn(view), h.render_sources(view))
                elif isinstance(event, SentenceChecked | Done):
                    yield frame(h.render_turn(view))
                elif isinstance(event, Logged):
                    record = h.TurnView.from_record(conv_log.get_turn(event.turn_id, user))
                    state.update(conv=event.conversation_id, turn=event.turn_id, focus=None)
                    yield (
                        "",
                        h.render_transcript([*prior, h.render_turn(record)]),
                        h.render_sources(record),
                        history_html(user, event.conversation_id, request),
                        state,
                        event.conversation_id,
                    )
        except ConversationNotFoundError:
            state.update(_fresh_state())
            msg = "This conversation no longer exists. Your question starts a new one: ask again."
            yield ("", h.render_transcript([h.render_error(question, msg)]), gr.skip(),
                   history_html(user, None, request), state, "")  # fmt: skip
        except UserError as exc:
            yield frame(h.render_error(question, str(exc)))
        except RagError as exc:
            log.warning("answer failed: %s", exc)
            yield frame(h.render_error(question, f"The answer could not be produced: {exc}"))
        except Exception:
            log.exception("unexpected error while answering %r", question)
            yield frame(
                h.render_error(
                    question, "Something went wrong while answering; the server log has details."
                )
            )
        finally:
            if events is not None and hasattr(events, "close"):
                events.close()  # a client that went away: the engine stops and logs the turn
            with stops_lock:
                if stops.get(session) is stop:
                    del stops[session]

    def ask(
        question: str,
        mode: str,
        top_k: float,
        length: str,
        style: str,
        state: dict[str, Any],
        request: gr.Request,
    ) -> Iterator[tuple[Any, ...]]:
        """Ask a question in the current conversation (a new one if none is open)."""
        if not (question or "").strip():
            yield (gr.skip(),) * 6
            return
        yield from run_turn(question, mode, top_k, length, style, state, request)

    def retry(
        mode: str,
        top_k: float,
        length: str,
        style: str,
        state: dict[str, Any],
        request: gr.Request,
    ) -> Iterator[tuple[Any, ...]]:
        """Ask the conversation's last question again (with the current settings)."""
        user = _user(request)
        conv = (state or {}).get("conv")
        turns = []
        if conv:
            try:
                turns = conv_log.turns(conv, user)
            except ConversationNotFoundError:
                turns = []
        if not turns:
            notify("Nothing to retry yet: ask a question first.")
            yield (gr.skip(),) * 6
            return
        yield from run_turn(turns[-1].question, mode, top_k, length, style, state, request)

    def stop_answer(request: gr.Request) -> None:
        """Stop the answer being streamed to this browser session; what was checked is kept."""
        with stops_lock:
            event = stops.get(_session(request))
        if event is not None:
            event.set()

    def new_conversation(request: gr.Request) -> tuple[Any, ...]:
        """Leave the current conversation; the next question starts a new one."""
        user = _user(request)
        return (
            transcript_for([]),
            h.render_sources(None),
            history_html(user, None, request),
            _fresh_state(),
            "",
            "",
            gr.update(visible=False),
        )

    def open_conversation(conv_id: str, request: gr.Request) -> tuple[Any, ...]:
        """Show a past conversation, its last answer's sources, and continue it."""
        user = _user(request)
        conv_id = (conv_id or "").strip()
        try:
            views = turns_of(conv_id, user) if conv_id else []
            title = title_of(conv_id, user) if conv_id else ""
        except ConversationNotFoundError:
            warn("That conversation no longer exists.")
            return new_conversation(request)
        state = _fresh_state()
        if conv_id and title:
            state["conv"] = conv_id
        last = views[-1] if views else None
        if last is not None:
            state["turn"] = last.turn_id
        return (
            transcript_for(views),
            h.render_sources(last),
            history_html(user, state["conv"], request),
            state,
            title,
            state["conv"] or "",
            gr.update(visible=False),
        )

    def show_source(turn: Any, n: Any, state: dict[str, Any], request: gr.Request) -> tuple:
        """Open turn `turn`'s passages in the sources panel, citation [n] first (n=0: none)."""
        user = _user(request)
        turn_id, number = _int(turn), _int(n)
        state = dict(state or _fresh_state())
        if turn_id is None:
            return h.render_sources(None), state
        try:
            view = h.TurnView.from_record(conv_log.get_turn(turn_id, user))
        except ConversationNotFoundError:
            warn("That answer no longer exists.")
            return gr.skip(), state
        state.update(turn=turn_id, focus=number or None)
        return h.render_sources(view, focus=number or None), state

    def give_feedback(
        turn: Any, rating: Any, comment: str | None, state: dict[str, Any], request: gr.Request
    ) -> tuple:
        """Thumbs up (+1) or down (-1) on an answer, with an optional comment, stored per turn."""
        user = _user(request)
        turn_id, value = _int(turn), _int(rating)
        state = dict(state or _fresh_state())
        if turn_id is None or value not in (1, -1):
            warn("Feedback needs an answer and a rating of +1 or -1.")
            return gr.skip(), state, gr.skip(), gr.skip(), gr.skip()
        try:
            record = conv_log.get_turn(turn_id, user)
            text = record.feedback_comment if comment is None else comment
            conv_log.set_feedback(turn_id, user, value, text)
            views = turns_of(record.conversation_id, user)
        except UserError as exc:
            warn(str(exc))
            return gr.skip(), state, gr.skip(), gr.skip(), gr.skip()
        state["fb"] = turn_id
        number = next((i + 1 for i, v in enumerate(views) if v.turn_id == turn_id), None)
        label = f"Feedback on answer {number}: {'👍' if value == 1 else '👎'} saved."
        if comment is not None:
            notify("Thanks, your feedback was saved.")
        current = next((v.comment for v in views if v.turn_id == turn_id), None)
        return (
            transcript_for(views) if record.conversation_id == state.get("conv") else gr.skip(),
            state,
            gr.update(visible=True),
            f'<div class="rc-fb-label">{h.esc(label)} Add a comment (optional):</div>',
            current or "",
        )

    def save_comment(comment: str, state: dict[str, Any], request: gr.Request) -> tuple:
        """Attach the comment box's text to the answer that was just rated."""
        user = _user(request)
        turn_id = (state or {}).get("fb")
        if not turn_id:
            warn("Rate an answer with 👍 or 👎 first.")
            return gr.skip(), state, gr.skip(), gr.skip(), gr.skip()
        try:
            rating = conv_log.get_turn(turn_id, user).feedback_rating or 1
        except UserError as exc:
            warn(str(exc))
            return gr.skip(), state, gr.skip(), gr.skip(), gr.skip()
        return give_feedback(turn_id, rating, comment or "", state, request)

    def panel_click(evt: gr.EventData, state: dict[str, Any], request: gr.Request) -> tuple:
        """A click inside the chat or sources panel: a citation chip, 'sources', or a thumb."""
        data = getattr(evt, "_data", None) or {}
        action = data.get("action")
        nothing = (gr.skip(), gr.skip(), state, gr.skip(), gr.skip(), gr.skip())
        if action in ("cite", "sources"):
            sources, new_state = show_source(data.get("turn"), data.get("n") or 0, state, request)
            return gr.skip(), sources, new_state, gr.skip(), gr.skip(), gr.skip()
        if action == "feedback":
            transcript, new_state, box, label, comment = give_feedback(
                data.get("turn"), data.get("rating"), None, state, request
            )
            return transcript, gr.skip(), new_state, box, label, comment
        return nothing

    def history_click(evt: gr.EventData, state: dict[str, Any], request: gr.Request) -> tuple:
        """A click in the sidebar: open a conversation, or show more of the list."""
        data = getattr(evt, "_data", None) or {}
        if data.get("action") == "more":
            shown, search = history_views.get(_session(request), (HISTORY_PAGE, ""))
            set_history_view(request, shown + HISTORY_PAGE, search)
            listing = history_html(_user(request), (state or {}).get("conv"), request)
            return (gr.skip(), gr.skip(), listing, *(gr.skip(),) * 4)
        if data.get("action") != "open":
            return (gr.skip(),) * 7
        return open_conversation(str(data.get("conv") or ""), request)

    def search_history(text: str, state: dict[str, Any], request: gr.Request) -> str:
        """Keep the sidebar's conversations whose title contains `text`."""
        set_history_view(request, HISTORY_PAGE, " ".join((text or "").split())[:200])
        return history_html(_user(request), (state or {}).get("conv"), request)

    def rename_conversation(title: str, state: dict[str, Any], request: gr.Request) -> tuple:
        """Rename the open conversation."""
        user = _user(request)
        conv = (state or {}).get("conv")
        if not conv:
            warn("Open or start a conversation first.")
            return gr.skip(), gr.skip()
        try:
            record = conv_log.rename(conv, user, title or "")
        except UserError as exc:
            warn(str(exc))
            return gr.skip(), gr.skip()
        notify("Conversation renamed.")
        return history_html(user, conv, request), record.title

    def delete_conversation(state: dict[str, Any], request: gr.Request) -> tuple:
        """Delete the open conversation with all its turns and feedback."""
        user = _user(request)
        conv = (state or {}).get("conv")
        if conv:
            try:
                conv_log.delete(conv, user)
                notify("Conversation deleted.")
            except ConversationNotFoundError:
                pass
        return new_conversation(request)

    def on_load(saved: str | None, request: gr.Request) -> tuple:
        """Page load: the history list, and the conversation this browser had open, if any."""
        user = _user(request)
        who = ""
        if user != LOCAL_USER or settings.auth:
            who = (
                f'<div class="rc-who">Signed in as <b>{h.esc(user)}</b> · '
                # a form, not a link: logging out changes state, so it is a POST
                '<form method="post" action="/logout" class="rc-logout">'
                '<button type="submit" id="rc-logout">Log out</button></form></div>'
            )
        docs = engine.documents()
        kb = (
            h.render_documents(docs),
            gr.update(choices=h.document_choices(docs), value=None),
        )
        if saved:
            opened = open_conversation(saved, request)
            return (*opened, who, *kb)
        return (*new_conversation(request), who, *kb)

    # -- knowledge base ----------------------------------------------------------------------

    def kb_outputs(results_html: Any, selected: str | None = None) -> tuple:
        docs = engine.documents()
        ids = {d.id for d in docs}
        return (
            results_html,
            h.render_documents(docs),
            gr.update(
                choices=h.document_choices(docs), value=selected if selected in ids else None
            ),
        )

    def received_by(path: str, user: str) -> bool:
        """Whether `user` uploaded `path` through this server's upload route (the guard in front
        of Gradio checked it already; this holds for an app served without that guard too)."""
        ledger = getattr(app, "upload_ledger", None)
        if ledger is not None:
            return bool(ledger.owned_by(path, user))
        return path in getattr(app, "upload_file_set", set())

    def upload(payload: Any, request: gr.Request, progress: gr.Progress = PROGRESS) -> tuple:
        """Ingest uploaded files one by one with a progress bar; one result row per file."""
        user = _user(request)
        files = uploaded_files(payload)
        if not files:
            return (*kb_outputs(gr.skip()), gr.skip())
        results: list[IngestResult] = []
        total = len(files)
        for i, (path, name) in enumerate(files):
            label = name if len(name) <= 60 else name[:57] + "…"

            def report(stage: str, fraction: float, i: int = i, label: str = label) -> None:
                done = min(max(fraction, 0.0), 1.0)
                progress((i + done) / total, desc=f"{label}: {stage} ({i + 1}/{total})")

            report("reading", 0.0)
            earlier = consumed.get(path) if not Path(path).exists() else None
            if earlier is not None:
                if earlier.document is not None:
                    results.append(IngestResult(clean_name(name), "duplicate", earlier.document))
                else:
                    results.append(replace(earlier, name=clean_name(name)))
                continue
            # Only files this server received through its upload route: Gradio copies any other
            # path a client names (e.g. the data folder's database) into its cache first.
            if not received_by(path, user) or not Path(path).resolve().is_relative_to(upload_cache):
                log.warning("refused a path that was not uploaded: %r", path)
                discard_copy(Path(path), upload_cache)
                shown = clean_name(name)
                results.append(IngestResult(shown, "error", error=f"{shown}: not an uploaded file"))
                continue
            try:
                staged = stage_upload(Path(path), settings, name)
            except OSError as exc:
                shown = clean_name(name)
                results.append(
                    IngestResult(shown, "error", error=f"{shown}: cannot read the upload ({exc})")
                )
                continue
            try:
                result = engine.ingest_path(staged, report, name=name, actor=actor_of(request))
            except Exception as exc:
                log.exception("ingesting %r failed", name)
                result = IngestResult(name, "error", error=f"{name}: {exc}")
            finally:
                staged.unlink(missing_ok=True)
            results.append(result)
            consumed[path] = result
            while len(consumed) > 256:
                consumed.popitem(last=False)
        progress(1.0, desc="done")
        return (*kb_outputs(h.render_ingest_results(results)), None)

    def show_chunks(doc_id: str | None) -> str:
        """The chunks of the picked document."""
        if not doc_id:
            return h.render_chunks(None, [])
        try:
            doc = engine.registry.get(doc_id)
            return h.render_chunks(doc, engine.chunks_of(doc.id))
        except DocumentNotFoundError:
            return '<p class="rc-muted">That document no longer exists.</p>'

    def delete_document(doc_id: str | None, request: gr.Request) -> tuple:
        """Remove the picked document from the knowledge base and both indexes (with accounts
        on: only its owner or an admin)."""
        if not doc_id:
            warn("Pick a document to delete.")
            return (*kb_outputs(gr.skip()), gr.skip())
        try:
            record = engine.delete_document(doc_id, actor=actor_of(request))
        except UserError as exc:
            warn(str(exc))
            return (*kb_outputs(gr.skip()), gr.skip())
        msg = f'<p class="rc-note">Deleted {h.esc(record.name)} ({record.chunk_count} chunks).</p>'
        return (*kb_outputs(msg), h.render_chunks(None, []))

    def refresh_documents(selected: str | None) -> tuple:
        docs = engine.documents()
        ids = {d.id for d in docs}
        return (
            h.render_documents(docs),
            gr.update(
                choices=h.document_choices(docs), value=selected if selected in ids else None
            ),
        )

    # -- JSON endpoints for programs (the UI itself uses the events above) -------------------

    def api_conversations(request: gr.Request) -> list[dict[str, Any]]:
        """The caller's conversations, newest first (REST's /api/conversations pages them)."""
        user = _user(request)
        return [
            {"id": c.id, "title": c.title, "turns": c.turn_count,
             "updated_at": c.updated_at.isoformat()}
            for c in conv_log.list_conversations(user)
        ]  # fmt: skip

    def api_turn(turn_id: int, request: gr.Request) -> dict[str, Any]:
        """One logged answer with its citations, retrieved passages and feedback."""
        try:
            rec = conv_log.get_turn(int(turn_id), _user(request))
        except UserError as exc:
            raise fail(str(exc)) from exc
        cited = {c.chunk.id for c in rec.citations}
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
            "citations": [
                {"n": c.n, "document": c.chunk.document_name, "page": c.chunk.page,
                 "heading_path": list(c.chunk.heading_path), "support": c.support,
                 "text": c.chunk.text}
                for c in rec.citations
            ],
            "hits": [
                {"rank": x.rank, "score": x.score, "found_by": x.found_by,
                 "document": x.chunk.document_name, "cited": x.chunk.id in cited,
                 "text": x.chunk.text}
                for x in rec.hits
            ],
        }  # fmt: skip

    # -- layout --------------------------------------------------------------------------------

    # uploads never submitted for ingestion leave the cache after an hour (checked every 10 min)
    with gr.Blocks(
        title="ragchat", fill_width=True, analytics_enabled=False, delete_cache=(600, 3600)
    ) as app:
        state = gr.State(_fresh_state())
        saved_conv = gr.BrowserState("", storage_key="ragchat-open-conversation", secret=secret)

        with gr.Row(elem_id="rc-header", equal_height=True):
            gr.HTML(
                f'<div class="rc-brand">{_logo_svg()}<div><div class="rc-name">ragchat</div>'
                '<div class="rc-tagline">Answers from your documents, every sentence checked'
                "</div></div></div>",
                elem_classes="rc-plain",
            )

        with gr.Tabs(elem_id="rc-tabs"):
            with gr.Tab("Chat", id="chat", elem_id="rc-chat-tab"):  # noqa: SIM117 - KB tab follows
                with gr.Row(equal_height=False, elem_id="rc-chat-row"):
                    with gr.Column(scale=1, min_width=230, elem_id="rc-side-col"):
                        new_btn = gr.Button(
                            "+ New conversation", variant="primary", elem_id="rc-new"
                        )
                        gr.HTML('<div class="rc-side-title">History</div>', elem_classes="rc-plain")
                        history_search = gr.Textbox(
                            show_label=False,
                            placeholder="Search conversations…",
                            max_lines=1,
                            elem_id="rc-history-search",
                            container=False,
                        )
                        history = gr.HTML(
                            '<div class="rc-history rc-loading">Loading…</div>',
                            label="History",
                            elem_id="rc-history",
                            js_on_load=CLICK_JS,
                        )
                        with gr.Accordion("This conversation", open=False, elem_id="rc-conv-tools"):
                            title_box = gr.Textbox(
                                label="Title",
                                max_lines=1,
                                elem_id="rc-title",
                                placeholder="Rename…",
                            )
                            with gr.Row():
                                rename_btn = gr.Button("Rename", size="sm", elem_id="rc-rename")
                                delete_btn = gr.Button(
                                    "Delete", size="sm", variant="stop", elem_id="rc-delete-conv"
                                )
                        with gr.Accordion("Answer settings", open=False, elem_id="rc-settings"):
                            mode = gr.Radio(MODES, value=settings.retrieval_mode, label="Retrieval")
                            top_k = gr.Slider(
                                1, max(20, settings.top_k), value=settings.top_k, step=1,
                                label="Passages (top-k)",
                            )  # fmt: skip
                            length = gr.Radio(
                                list(LENGTHS), value=_length_for(settings), label="Answer length"
                            )
                            style = gr.Radio(
                                STYLES, value=settings.answer_mode, label="Answer style"
                            )
                        who = gr.HTML("", label="Account", elem_classes="rc-plain")
                    with gr.Column(scale=3, min_width=340, elem_id="rc-chat-col"):
                        with gr.Group(elem_classes="rc-scroll-group"):
                            transcript = gr.HTML(
                                transcript_for([]),
                                label="Chat",
                                elem_id="rc-transcript",
                                elem_classes="rc-scroll",
                                js_on_load=TRANSCRIPT_JS,
                            )
                        with gr.Row(elem_id="rc-ask-row", equal_height=True):
                            question = gr.Textbox(
                                show_label=False,
                                placeholder="Ask your documents…",
                                lines=1,
                                max_lines=6,
                                scale=8,
                                min_width=160,
                                elem_id="rc-question",
                                autofocus=True,
                            )
                            send_btn = gr.Button(
                                "Ask", variant="primary", scale=1, min_width=70, elem_id="rc-send"
                            )
                            stop_btn = gr.Button(
                                "Stop", variant="stop", scale=1, min_width=70, elem_id="rc-stop"
                            )
                        with gr.Row(elem_id="rc-tools-row"):
                            retry_btn = gr.Button("↻ Retry", size="sm", elem_id="rc-retry")
                            new_btn2 = gr.Button(
                                "+ New conversation", size="sm", elem_id="rc-new-inline"
                            )
                        with gr.Group(visible=False, elem_id="rc-feedback") as feedback_box:
                            feedback_label = gr.HTML("", label="Feedback", elem_classes="rc-plain")
                            with gr.Row(equal_height=True):
                                comment = gr.Textbox(
                                    show_label=False,
                                    placeholder="What was good or wrong? (optional)",
                                    max_lines=3,
                                    scale=5,
                                    elem_id="rc-comment",
                                )
                                comment_btn = gr.Button(
                                    "Save comment",
                                    scale=1,
                                    min_width=110,
                                    elem_id="rc-comment-save",
                                )
                    with gr.Column(scale=2, min_width=300, elem_id="rc-sources-col"):
                        sources = gr.HTML(
                            h.render_sources(None),
                            label="Sources",
                            elem_id="rc-sources",
                            js_on_load=SOURCES_JS,
                        )

            with gr.Tab("Knowledge base", id="kb", elem_id="rc-kb-tab"):
                gr.HTML(
                    '<div class="rc-kb-intro">Drop PDF, Word, HTML, Markdown or text files. A file '
                    "with the same content is recognised as a duplicate; the same name with new "
                    "content becomes a new version.</div>",
                    elem_classes="rc-plain",
                )
                files = gr.File(
                    label="Add documents",
                    file_count="multiple",
                    type="filepath",
                    elem_id="rc-upload",
                    height=150,
                )
                results = gr.HTML("", label="Upload results", elem_id="rc-ingest-results")
                gr.HTML('<div class="rc-side-title">Documents</div>', elem_classes="rc-plain")
                docs_table = gr.HTML(h.render_documents([]), label="Documents", elem_id="rc-docs")
                with gr.Row(equal_height=True, elem_id="rc-doc-tools"):
                    doc_pick = gr.Dropdown(
                        choices=[], label="Document", scale=4, elem_id="rc-doc-pick",
                        allow_custom_value=True,
                    )  # fmt: skip
                    chunks_btn = gr.Button("View chunks", scale=1, elem_id="rc-view-chunks")
                    del_doc_btn = gr.Button(
                        "Delete document", variant="stop", scale=1, elem_id="rc-delete-doc"
                    )
                    refresh_btn = gr.Button("Refresh", scale=1, elem_id="rc-refresh-docs")
                chunks_view = gr.HTML(
                    h.render_chunks(None, []), label="Chunks", elem_id="rc-chunks"
                )

        # API-only inputs (hidden): programs call these endpoints with explicit values
        with gr.Group(visible=False):
            api_conv = gr.Textbox(label="conversation_id")
            api_turn_in = gr.Number(label="turn_id", precision=0)
            api_n = gr.Number(label="n", precision=0)
            api_rating = gr.Number(label="rating", precision=0)
            api_comment = gr.Textbox(label="comment")
            api_btn = gr.Button()

        # -- wiring --------------------------------------------------------------------------
        chat_out = [question, transcript, sources, history, state, saved_conv]
        settings_in = [mode, top_k, length, style]
        conv_out = [transcript, sources, history, state, title_box, saved_conv, feedback_box]
        fb_out = [transcript, state, feedback_box, feedback_label, comment]
        kb_out = [results, docs_table, doc_pick]
        gen: dict[str, Any] = {
            "concurrency_id": "generate",
            "concurrency_limit": 1,
            "show_progress": "hidden",
        }

        gr.on([question.submit, send_btn.click], ask, [question, *settings_in, state], chat_out,
              api_name="ask", **gen)  # fmt: skip
        retry_btn.click(retry, [*settings_in, state], chat_out, api_name="retry", **gen)
        stop_btn.click(
            stop_answer, None, None, api_name="stop", concurrency_limit=None, show_progress="hidden"
        )
        gr.on([new_btn.click, new_btn2.click], new_conversation, None, conv_out,
              api_name="new_conversation", concurrency_limit=None)  # fmt: skip
        transcript.click(
            panel_click,
            [state],
            [transcript, sources, state, feedback_box, feedback_label, comment],
            api_visibility="private",
            concurrency_limit=None,
            show_progress="hidden",
        )
        sources.click(
            panel_click,
            [state],
            [transcript, sources, state, feedback_box, feedback_label, comment],
            api_visibility="private",
            concurrency_limit=None,
            show_progress="hidden",
        )
        history.click(history_click, [state], conv_out, api_visibility="private",
                      concurrency_limit=None, show_progress="hidden")  # fmt: skip
        history_search.change(search_history, [history_search, state], [history],
                             api_visibility="private", concurrency_limit=None,
                             show_progress="hidden", trigger_mode="always_last")  # fmt: skip
        comment_btn.click(save_comment, [comment, state], fb_out, api_visibility="private",
                          concurrency_limit=None)  # fmt: skip
        rename_btn.click(rename_conversation, [title_box, state], [history, title_box],
                         api_name="rename_conversation", concurrency_limit=None)  # fmt: skip
        title_box.submit(rename_conversation, [title_box, state], [history, title_box],
                         api_visibility="private", concurrency_limit=None)  # fmt: skip
        delete_btn.click(delete_conversation, [state], conv_out, api_name="delete_conversation",
                         concurrency_limit=None)  # fmt: skip

        files.upload(upload, [files], [*kb_out, files], api_name="upload", preprocess=False,
                     concurrency_id="ingest",
                     concurrency_limit=1)  # fmt: skip
        chunks_btn.click(show_chunks, [doc_pick], [chunks_view], api_name="chunks",
                         concurrency_limit=None)  # fmt: skip
        doc_pick.select(show_chunks, [doc_pick], [chunks_view], api_visibility="private",
                        concurrency_limit=None)  # fmt: skip
        del_doc_btn.click(delete_document, [doc_pick], [*kb_out, chunks_view],
                          api_name="delete_document", concurrency_id="ingest")  # fmt: skip
        refresh_btn.click(refresh_documents, [doc_pick], [docs_table, doc_pick],
                          api_name="documents", concurrency_limit=None)  # fmt: skip

        api_btn.click(open_conversation, [api_conv], conv_out, api_name="open_conversation",
                      concurrency_limit=None)  # fmt: skip
        api_btn.click(show_source, [api_turn_in, api_n, state], [sources, state],
                      api_name="show_source", concurrency_limit=None)  # fmt: skip
        api_btn.click(give_feedback, [api_turn_in, api_rating, api_comment, state], fb_out,
                      api_name="feedback", concurrency_limit=None)  # fmt: skip
        gr.api(api_conversations, api_name="conversations", concurrency_limit=None)
        gr.api(api_turn, api_name="turn", concurrency_limit=None)

        app.load(
            on_load,
            [saved_conv],
            [*conv_out, who, docs_table, doc_pick],
            api_visibility="private",
            concurrency_limit=None,
        )
    return app


def _length_for(settings: Settings) -> str:
    """The answer-length choice closest to the configured max_new_tokens."""
    return min(LENGTHS, key=lambda k: abs(LENGTHS[k] - settings.max_new_tokens))


def ensure_secret(home: Path) -> str:
    """A stable per-installation secret (for the browser-side state), created on first use."""
    import secrets

    path = home / "webapp.secret"
    try:
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
    except OSError:
        pass
    home.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    path.write_text(value, encoding="utf-8")
    path.chmod(0o600)
    return value
