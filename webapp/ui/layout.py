"""build_app(engine, settings) -> gr.Blocks: the chat, sources inspector, history, knowledge base.

Layout and wiring only: every event is a method of a controller (chat.py, history.py,
knowledge.py), which asks the engine or the conversation log and renders with `webapp.render`.
Building the app loads nothing heavy; models load on first use.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.events import api as gradio_api

from rag_core.config import Settings
from rag_core.engine import Engine
from webapp import render
from webapp.ui.chat import FEEDBACK_REASONS, LENGTHS, ChatController
from webapp.ui.collections import CollectionsController
from webapp.ui.common import fresh_state
from webapp.ui.history import HistoryController
from webapp.ui.insights import PERIODS, InsightsController
from webapp.ui.knowledge import KnowledgeController
from webapp.ui.layout_collections import (
    CollectionsPanel,
    Wiring,
    collections_panel,
    scope_picker,
    upload_target,
    wire_collections,
)
from webapp.ui.sessions import Sessions
from webapp.ui.theme import CLICK_JS, SOURCES_JS, TRANSCRIPT_JS, logo_svg

MODES = [("Hybrid (keyword + dense)", "hybrid"), ("Dense (meaning)", "dense"), ("Keyword", "bm25")]
EXPORTS = [("Markdown", "md"), ("JSON", "json"), ("PDF", "pdf")]
STRATEGIES = [
    ("One sentence from the best passage sentences (extract-then-phrase)", "extract-then-phrase"),
    ("Quoted passage sentences only (extractive)", "extractive"),
    ("Generated from all passages (concat)", "concat"),
    ("RAG-Token: mixture over passages, token by token", "rag-token"),
    ("RAG-Sequence: best answer over passages", "rag-sequence"),
]

KB_INTRO = (
    '<div class="rc-kb-intro">Drop PDF, Word, HTML, Markdown or text files, or PNG/JPEG '
    "pictures of text (scans are read by OCR). A file with the same content is recognised "
    "as a duplicate; the same name with new content becomes a new version.</div>"
)
# event options: UI-only events that answer at once (QUIET: without a progress bar either),
# and the one queue answers go through, one at a time
QUIET: dict[str, Any] = {
    "api_visibility": "private",
    "concurrency_limit": None,
    "show_progress": "hidden",
}
PRIVATE: dict[str, Any] = {"api_visibility": "private", "concurrency_limit": None}
GENERATE: dict[str, Any] = {
    "concurrency_id": "generate",
    "concurrency_limit": 1,
    "show_progress": "hidden",
}


def ensure_secret(home: Path) -> str:
    """A stable per-installation secret (for the browser-side state), created on first use."""
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


def _length_for(settings: Settings) -> str:
    """The answer-length choice closest to the configured max_new_tokens."""
    return min(LENGTHS, key=lambda k: abs(LENGTHS[k] - settings.max_new_tokens))


class Page:
    """The components events read or write, filled in as the layout builds them."""

    state: gr.State
    saved_conv: gr.BrowserState
    # sidebar
    new_btn: gr.Button
    history_search: gr.Textbox
    history: gr.HTML
    title_box: gr.Textbox
    rename_btn: gr.Button
    delete_btn: gr.Button
    export_format: gr.Radio
    export_btn: gr.Button
    export_file: gr.File
    mode: gr.Radio
    top_k: gr.Slider
    length: gr.Radio
    style: gr.Dropdown
    who: gr.HTML
    # chat column and sources panel
    transcript: gr.HTML
    question: gr.Textbox
    send_btn: gr.Button
    stop_btn: gr.Button
    retry_btn: gr.Button
    scope: gr.Dropdown  # what questions search (layout_collections.scope_picker)
    new_btn2: gr.Button
    feedback_box: gr.Group
    feedback_label: gr.HTML
    comment: gr.Textbox
    comment_btn: gr.Button
    fb_reason: gr.Radio
    sources: gr.HTML
    # knowledge base tab
    collections: CollectionsPanel
    upload_target: gr.Dropdown
    files: gr.File
    cancel_btn: gr.Button
    results: gr.HTML
    docs_table: gr.HTML
    doc_pick: gr.Dropdown
    chunks_btn: gr.Button
    del_doc_btn: gr.Button
    refresh_btn: gr.Button
    chunks_view: gr.HTML
    # above the tabs: shown while the knowledge base is re-embedded
    index_banner: gr.HTML
    # insights tab
    insights_tab: gr.Tab
    insights_days: gr.Radio
    insights_btn: gr.Button
    insights_summary: gr.HTML
    questions_plot: gr.BarPlot
    rates_plot: gr.LinePlot
    times_plot: gr.LinePlot
    cited_plot: gr.BarPlot
    insights_docs: gr.HTML
    insights_refused: gr.HTML
    # API-only inputs (hidden): programs call these endpoints with explicit values
    api_conv: gr.Textbox
    api_turn_in: gr.Number
    api_n: gr.Number
    api_rating: gr.Number
    api_comment: gr.Textbox
    api_btn: gr.Button

    def answer_settings(self) -> list[Any]:
        return [self.mode, self.top_k, self.length, self.style]

    def answer_outputs(self) -> list[Any]:
        """What ask and retry update (chat.ANSWER_OUTPUTS)."""
        shown = [self.question, self.transcript, self.sources, self.history]
        return [*shown, self.state, self.saved_conv]

    def conversation_outputs(self) -> list[Any]:
        """What opening or leaving a conversation updates (history.CONVERSATION_OUTPUTS)."""
        shown = [self.transcript, self.sources, self.history, self.state, self.title_box]
        return [*shown, self.saved_conv, self.feedback_box]

    def _feedback(self) -> list[Any]:
        return [self.feedback_box, self.feedback_label, self.comment, self.fb_reason]

    def feedback_outputs(self) -> list[Any]:
        return [self.transcript, self.state, *self._feedback()]

    def panel_outputs(self) -> list[Any]:
        """What a click in the chat or sources panel updates."""
        return [self.transcript, self.sources, self.state, *self._feedback()]

    def kb_outputs(self) -> list[Any]:
        return [self.results, self.docs_table, self.doc_pick]

    def insight_outputs(self) -> list[Any]:
        """What refreshing the insights updates (insights.INSIGHT_OUTPUTS)."""
        plots = [self.questions_plot, self.rates_plot, self.times_plot, self.cited_plot]
        return [self.insights_summary, *plots, self.insights_docs, self.insights_refused]


def build_app(engine: Engine, settings: Settings, *, secret: str | None = None) -> gr.Blocks:
    """The whole UI. `secret` keys the browser-side memory of the open conversation."""
    knowledge = KnowledgeController(engine, settings)  # first: it points Gradio's upload cache
    sessions = Sessions()
    history = HistoryController(engine, settings, sessions, knowledge)
    chat = ChatController(engine, settings, sessions, history)
    collections = CollectionsController(engine, settings)
    page = Page()
    # uploads never submitted for ingestion leave the cache after an hour (checked every 10 min)
    with gr.Blocks(
        title="ragchat", fill_width=True, analytics_enabled=False, delete_cache=(600, 3600)
    ) as app:
        page.state = gr.State(fresh_state())
        page.saved_conv = gr.BrowserState(
            "", storage_key="ragchat-open-conversation", secret=secret
        )
        with gr.Row(elem_id="rc-header", equal_height=True):
            gr.HTML(
                f'<div class="rc-brand">{logo_svg()}<div><div class="rc-name">ragchat</div>'
                '<div class="rc-tagline">Answers from your documents, every sentence checked'
                "</div></div></div>",
                elem_classes="rc-plain",
            )
        page.index_banner = gr.HTML("", elem_id="rc-index-banner", elem_classes="rc-plain")
        with gr.Tabs(elem_id="rc-tabs"):
            with gr.Tab("Chat", id="chat", elem_id="rc-chat-tab"):  # noqa: SIM117 - KB tab follows
                with gr.Row(equal_height=False, elem_id="rc-chat-row"):
                    with gr.Column(scale=1, min_width=230, elem_id="rc-side-col"):
                        _sidebar(page, settings)
                    with gr.Column(scale=3, min_width=340, elem_id="rc-chat-col"):
                        _chat_column(page, history.transcript([]))
                    with gr.Column(scale=2, min_width=300, elem_id="rc-sources-col"):
                        page.sources = gr.HTML(
                            render.render_sources(None),
                            label="Sources",
                            elem_id="rc-sources",
                            js_on_load=SOURCES_JS,
                        )
            with gr.Tab("Knowledge base", id="kb", elem_id="rc-kb-tab"):
                _knowledge_tab(page)
            # with accounts on, shown to admins only (on page load)
            with gr.Tab(
                "Insights", id="insights", elem_id="rc-insights-tab", visible=not settings.auth
            ) as page.insights_tab:
                _insights_tab(page)
        with gr.Group(visible=False):
            _api_inputs(page)
        conversations = _wire_chat(page, chat, history)
        changed = _wire_knowledge(page, knowledge)
        _wire_insights(app, page, InsightsController(engine, settings))
        loaded = _wire_programs(app, page, chat, history)
        _wire_index_banner(app, page, knowledge)
        wiring = Wiring(
            page.collections,
            page.upload_target,
            page.scope,
            page.state,
            page.docs_table,
            page.doc_pick,
        )
        wire_collections(wiring, collections, knowledge, changed, conversations, loaded)
    knowledge.blocks = app  # webapp.api sets its upload ledger on the Blocks
    blocks: gr.Blocks = app
    return blocks


# -- layout ------------------------------------------------------------------------------------


def _sidebar(page: Page, settings: Settings) -> None:
    """New conversation, the history list and search, this conversation's tools, settings."""
    page.new_btn = gr.Button("+ New conversation", variant="primary", elem_id="rc-new")
    gr.HTML('<div class="rc-side-title">History</div>', elem_classes="rc-plain")
    page.history_search = gr.Textbox(
        show_label=False,
        placeholder="Search conversations…",
        max_lines=1,
        elem_id="rc-history-search",
        container=False,
    )
    page.history = gr.HTML(
        '<div class="rc-history rc-loading">Loading…</div>',
        label="History",
        elem_id="rc-history",
        js_on_load=CLICK_JS,
    )
    with gr.Accordion("This conversation", open=False, elem_id="rc-conv-tools"):
        page.title_box = gr.Textbox(
            label="Title", max_lines=1, elem_id="rc-title", placeholder="Rename…"
        )
        with gr.Row():
            page.rename_btn = gr.Button("Rename", size="sm", elem_id="rc-rename")
            page.delete_btn = gr.Button(
                "Delete", size="sm", variant="stop", elem_id="rc-delete-conv"
            )
        page.export_format = gr.Radio(
            EXPORTS, value="md", label="Export as", elem_id="rc-export-format"
        )
        page.export_btn = gr.Button("Export", size="sm", elem_id="rc-export")
        page.export_file = gr.File(
            label="Download", interactive=False, visible=False, elem_id="rc-export-file"
        )
    with gr.Accordion("Answer settings", open=False, elem_id="rc-settings"):
        page.mode = gr.Radio(MODES, value=settings.retrieval_mode, label="Retrieval")
        page.top_k = gr.Slider(
            1,
            max(20, settings.top_k),
            value=settings.top_k,
            step=1,
            label="Passages (top-k)",
        )
        page.length = gr.Radio(list(LENGTHS), value=_length_for(settings), label="Answer length")
        page.style = gr.Dropdown(
            STRATEGIES,
            value=settings.answer_options().strategy,
            label="Answer strategy",
            info="How the answer is made; every strategy's sentences are checked the same way.",
            # programs may still send the older answer modes ("generate", "extractive"); the
            # engine names any other value it does not know
            allow_custom_value=True,
        )
    page.who = gr.HTML("", label="Account", elem_classes="rc-plain")


def _chat_column(page: Page, transcript: str) -> None:
    """The transcript, the question box with Ask and Stop, the scope picker below it, Retry,
    and the feedback box."""
    with gr.Group(elem_classes="rc-scroll-group"):
        page.transcript = gr.HTML(
            transcript,
            label="Chat",
            elem_id="rc-transcript",
            elem_classes="rc-scroll",
            js_on_load=TRANSCRIPT_JS,
        )
    with gr.Row(elem_id="rc-ask-row", equal_height=True):
        page.question = gr.Textbox(
            show_label=False,
            placeholder="Ask your documents…",
            lines=1,
            max_lines=6,
            scale=8,
            min_width=160,
            elem_id="rc-question",
            autofocus=True,
        )
        page.send_btn = gr.Button(
            "Ask", variant="primary", scale=1, min_width=70, elem_id="rc-send"
        )
        page.stop_btn = gr.Button("Stop", variant="stop", scale=1, min_width=70, elem_id="rc-stop")
    with gr.Row(elem_id="rc-scope-row"):
        page.scope = scope_picker()
    with gr.Row(elem_id="rc-tools-row"):
        page.retry_btn = gr.Button("↻ Retry", size="sm", elem_id="rc-retry")
        page.new_btn2 = gr.Button("+ New conversation", size="sm", elem_id="rc-new-inline")
    with gr.Group(visible=False, elem_id="rc-feedback") as page.feedback_box:
        page.feedback_label = gr.HTML("", label="Feedback", elem_classes="rc-plain")
        page.fb_reason = gr.Radio(
            FEEDBACK_REASONS,
            value=None,
            label="What was wrong?",
            visible=False,
            elem_id="rc-reason",
        )
        with gr.Row(equal_height=True):
            page.comment = gr.Textbox(
                show_label=False,
                placeholder="What was good or wrong? (optional)",
                max_lines=3,
                scale=5,
                elem_id="rc-comment",
            )
            page.comment_btn = gr.Button("Save", scale=1, min_width=110, elem_id="rc-comment-save")


def _knowledge_tab(page: Page) -> None:
    """Upload, the results of the last upload, the documents table and the document tools."""
    page.collections = collections_panel()
    gr.HTML(KB_INTRO, elem_classes="rc-plain")
    page.upload_target = upload_target()
    page.files = gr.File(
        label="Add documents",
        file_count="multiple",
        type="filepath",
        elem_id="rc-upload",
        height=150,
    )
    page.cancel_btn = gr.Button(
        "Cancel upload", size="sm", variant="secondary", elem_id="rc-cancel-upload"
    )
    page.results = gr.HTML("", label="Upload results", elem_id="rc-ingest-results")
    gr.HTML('<div class="rc-side-title">Documents</div>', elem_classes="rc-plain")
    page.docs_table = gr.HTML(render.render_documents([]), label="Documents", elem_id="rc-docs")
    with gr.Row(equal_height=True, elem_id="rc-doc-tools"):
        page.doc_pick = gr.Dropdown(
            choices=[],
            label="Document",
            scale=4,
            elem_id="rc-doc-pick",
            allow_custom_value=True,
        )
        page.chunks_btn = gr.Button("View chunks", scale=1, elem_id="rc-view-chunks")
        page.del_doc_btn = gr.Button(
            "Delete document", variant="stop", scale=1, elem_id="rc-delete-doc"
        )
        page.refresh_btn = gr.Button("Refresh", scale=1, elem_id="rc-refresh-docs")
    page.chunks_view = gr.HTML(render.render_chunks(None, []), label="Chunks", elem_id="rc-chunks")


def _insights_tab(page: Page) -> None:
    """The period, the plots drawn from the log, and the lists of documents and refusals."""
    with gr.Row(equal_height=True):
        page.insights_days = gr.Radio(
            PERIODS, value=30, label="Period", scale=4, elem_id="rc-insights-days"
        )
        page.insights_btn = gr.Button("Refresh", scale=1, elem_id="rc-insights-refresh")
    page.insights_summary = gr.HTML("", elem_id="rc-insights-summary", elem_classes="rc-plain")
    with gr.Row():
        page.questions_plot = gr.BarPlot(
            x="day", y="questions", title="Questions per day", elem_id="rc-plot-questions"
        )
        page.rates_plot = _daily_lines(
            "rate", "Refused, quoted fallback and thumbs down (% of answers)", "rc-plot-rates"
        )
    with gr.Row():
        page.times_plot = _daily_lines(
            "seconds", "First token and total time (s), p50 and p95", "rc-plot-times"
        )
        page.cited_plot = gr.BarPlot(
            x="document", y="answers", title="Most cited documents", elem_id="rc-plot-cited"
        )
    with gr.Row():
        page.insights_docs = gr.HTML("", label="Documents", elem_id="rc-insights-docs")
        page.insights_refused = gr.HTML("", label="Refused", elem_id="rc-insights-refused")


def _daily_lines(y: str, title: str, elem_id: str) -> gr.LinePlot:
    """A line per series over the days: the plot of the (day, `y`, series) frames of ui/insights."""
    return gr.LinePlot(x="day", y=y, color="series", title=title, elem_id=elem_id)


def _api_inputs(page: Page) -> None:
    page.api_conv = gr.Textbox(label="conversation_id")
    page.api_turn_in = gr.Number(label="turn_id", precision=0)
    page.api_n = gr.Number(label="n", precision=0)
    page.api_rating = gr.Number(label="rating", precision=0)
    page.api_comment = gr.Textbox(label="comment")
    page.api_btn = gr.Button()


# -- wiring (the order fixes each event's fn_index) ------------------------------------------


def _endpoint(name: str, **options: Any) -> dict[str, Any]:
    """Options of an event programs may call by `name`; it answers at once (no queue limit)."""
    return {"api_name": name, "concurrency_limit": None, **options}


def _in_scope(name: str) -> dict[str, Any]:
    """Options of the page's own answer events, which send the scope picker too."""
    return {"api_name": f"{name}_in_scope", **GENERATE, "api_visibility": "private"}


def _wire_chat(page: Page, chat: ChatController, history: HistoryController) -> list[Any]:
    """Asking, the panels, feedback, and the sidebar's conversation events; returns those that
    open or leave a conversation (the scope picker follows them)."""
    answer_in, answer_out = [*page.answer_settings(), page.state], page.answer_outputs()
    conv_out, panel_out = page.conversation_outputs(), page.panel_outputs()
    ask, asked = [page.question.submit, page.send_btn.click], [page.question, *answer_in]
    # the page sends its scope picker; programs call "ask" and "retry" with the inputs they
    # always had (a raw call must send every input), searching the conversation's scope
    gr.on(ask, chat.ask, [*asked, page.scope], answer_out, **_in_scope("ask"))
    page.api_btn.click(chat.ask, asked, answer_out, api_name="ask", **GENERATE)
    retry_in = [*answer_in, page.scope]
    page.retry_btn.click(chat.retry, retry_in, answer_out, **_in_scope("retry"))
    page.api_btn.click(chat.retry, answer_in, answer_out, api_name="retry", **GENERATE)
    page.stop_btn.click(chat.stop_answer, None, None, **_endpoint("stop", show_progress="hidden"))
    leave = [page.new_btn.click, page.new_btn2.click]
    left = gr.on(leave, history.new_conversation, None, conv_out, **_endpoint("new_conversation"))
    page.transcript.click(chat.panel_click, [page.state], panel_out, **QUIET)
    page.sources.click(chat.panel_click, [page.state], panel_out, **QUIET)
    opened = page.history.click(history.history_click, [page.state], conv_out, **QUIET)
    search_in = [page.history_search, page.state]
    page.history_search.change(
        history.search_history, search_in, [page.history], trigger_mode="always_last", **QUIET
    )
    comment_in = [page.comment, page.fb_reason, page.state]
    page.comment_btn.click(chat.save_comment, comment_in, page.feedback_outputs(), **PRIVATE)
    rename, rename_in = history.rename_conversation, [page.title_box, page.state]
    rename_out = [page.history, page.title_box]
    page.rename_btn.click(rename, rename_in, rename_out, **_endpoint("rename_conversation"))
    page.title_box.submit(rename, rename_in, rename_out, **PRIVATE)
    delete = history.delete_conversation
    deleted = page.delete_btn.click(
        delete, [page.state], conv_out, **_endpoint("delete_conversation")
    )
    export_in = [page.export_format, page.state]
    page.export_btn.click(history.export_conversation, export_in, [page.export_file], **PRIVATE)
    return [left, opened, deleted]


def _wire_knowledge(page: Page, knowledge: KnowledgeController) -> list[Any]:
    """The knowledge base tab; changes to it queue one at a time ('ingest'). Returns the events
    that change what the collection and scope pickers offer."""
    kb_out, picked, chunks = page.kb_outputs(), [page.doc_pick], [page.chunks_view]
    upload_out = [*kb_out, page.files]
    ingest: dict[str, Any] = {
        "preprocess": False,  # the raw payload keeps the name the user gave each file
        "concurrency_id": "ingest",
        "concurrency_limit": 1,
    }
    # the page sends the chosen collection; programs call "upload" (into Default) as before
    targeted = [page.files, page.upload_target]
    uploaded = page.files.upload(
        knowledge.upload, targeted, upload_out, api_name="upload_to", **ingest,
        api_visibility="private",
    )  # fmt: skip
    page.api_btn.click(knowledge.upload, [page.files], upload_out, api_name="upload", **ingest)
    # not in the 'ingest' queue: it must run while an upload does
    page.cancel_btn.click(knowledge.cancel, None, None, **_endpoint("cancel_upload"))
    page.chunks_btn.click(knowledge.show_chunks, picked, chunks, **_endpoint("chunks"))
    page.doc_pick.select(knowledge.show_chunks, picked, chunks, **PRIVATE)
    delete_out = [*kb_out, page.chunks_view]
    deleted = page.del_doc_btn.click(
        knowledge.delete_document,
        picked,
        delete_out,
        api_name="delete_document",
        concurrency_id="ingest",
    )
    catalog = [page.docs_table, page.doc_pick]
    refreshed = page.refresh_btn.click(
        knowledge.refresh_documents, picked, catalog, **_endpoint("documents")
    )
    return [uploaded, deleted, refreshed]


def _wire_insights(app: gr.Blocks, page: Page, insights: InsightsController) -> None:
    """The figures load when the tab is opened, on Refresh or a new period; the tab shows only
    to those who may read them."""
    days, out = [page.insights_days], page.insight_outputs()
    refresh = [page.insights_tab.select, page.insights_btn.click, page.insights_days.change]
    gr.on(refresh, insights.refresh, days, out, api_name="insights", concurrency_limit=None)
    app.load(insights.on_load, None, [page.insights_tab], **QUIET)


def _wire_programs(
    app: gr.Blocks, page: Page, chat: ChatController, history: HistoryController
) -> list[Any]:
    """Endpoints for programs (hidden inputs, JSON), then what a page load fills in; returns
    the page load and the open_conversation endpoint (both open a conversation)."""
    conv_out, api = page.conversation_outputs(), page.api_btn
    show_in = [page.api_turn_in, page.api_n, page.state]
    feedback_in = [page.api_turn_in, page.api_rating, page.api_comment, page.state]
    opened = api.click(
        history.open_conversation, [page.api_conv], conv_out, **_endpoint("open_conversation")
    )
    api.click(chat.show_source, show_in, [page.sources, page.state], **_endpoint("show_source"))
    api.click(chat.give_feedback, feedback_in, page.feedback_outputs(), **_endpoint("feedback"))
    gradio_api(history.api_conversations, api_name="conversations", concurrency_limit=None)
    gradio_api(chat.api_turn, api_name="turn", concurrency_limit=None)
    loaded = app.load(
        history.on_load,
        [page.saved_conv],
        [*conv_out, page.who, page.docs_table, page.doc_pick],
        api_visibility="private",
        concurrency_limit=None,
    )
    # the Replay button answers again: it waits its turn behind answers (registered last, so
    # the events above keep their fn_index)
    replay_opts = {**GENERATE, "api_visibility": "private"}
    page.sources.click(chat.replay_click, [page.state], [page.sources, page.state], **replay_opts)
    return [opened, loaded]


INDEX_POLL_S = 10.0  # how often an open page asks whether a re-embedding runs


def _wire_index_banner(app: gr.Blocks, page: Page, knowledge: KnowledgeController) -> None:
    """The re-embedding banner: filled on load and refreshed every INDEX_POLL_S seconds, so a
    `ragchat reindex` started anywhere shows on every open page (registered last: the events
    above keep their fn_index)."""
    app.load(knowledge.index_banner, None, [page.index_banner], **QUIET)
    timer = gr.Timer(INDEX_POLL_S)
    timer.tick(knowledge.index_banner, None, [page.index_banner], **QUIET)
