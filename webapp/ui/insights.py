"""The Insights tab: plots and lists drawn from the conversation log (rag_core/db/insights.py).

The log holds every user's questions, so with accounts on the tab shows only for admins, and
the engine refuses anyone else even if they call the event directly. The figures load when the
tab is opened or refreshed, never on a page load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import pandas as pd

from rag_core.config import Settings
from rag_core.db.insights import DEFAULT_DAYS, Insights
from rag_core.engine import Engine
from rag_core.errors import UserError
from webapp.render.text import esc, plural
from webapp.ui.common import actor_of, warn

PERIODS = [("Last 7 days", 7), ("Last 30 days", 30), ("Last 90 days", 90), ("Last year", 365)]
# refresh returns these outputs: summary, questions, rates, times, cited plot, cited and never
# cited lists, refused questions
INSIGHT_OUTPUTS = 7
HINT = "Add documents about this"


def _days(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return DEFAULT_DAYS


def questions_frame(report: Insights) -> pd.DataFrame:
    """One row per day: the questions asked."""
    rows = [{"day": pd.Timestamp(d.day), "questions": d.questions} for d in report.days]
    return pd.DataFrame(rows, columns=["day", "questions"])


def rates_frame(report: Insights) -> pd.DataFrame:
    """Per day, the refusal, quoted-fallback and thumbs-down rates in percent (long format)."""
    rows = [
        {"day": pd.Timestamp(d.day), "rate": round(100 * value, 2), "series": name}
        for d in report.days
        for name, value in (
            ("refused", d.refusal_rate),
            ("quoted fallback", d.quoted_rate),
            ("thumbs down", d.thumbs_down_rate),
        )
    ]
    return pd.DataFrame(rows, columns=["day", "rate", "series"])


def times_frame(report: Insights) -> pd.DataFrame:
    """Per day, first-token and total time p50 and p95 in seconds (long format)."""
    label = {"first_token": "first token", "total": "total"}
    rows = [
        {
            "day": pd.Timestamp(t.day),
            "seconds": round(value / 1000, 3),
            "series": f"{label[t.metric]} {p}",
        }
        for t in report.times
        for p, value in (("p50", t.p50_ms), ("p95", t.p95_ms))
    ]
    return pd.DataFrame(rows, columns=["day", "seconds", "series"])


def cited_frame(report: Insights) -> pd.DataFrame:
    rows = [{"document": c.document, "answers": c.answers} for c in report.most_cited]
    return pd.DataFrame(rows, columns=["document", "answers"])


def render_summary(report: Insights) -> str:
    since, until = report.since.date().isoformat(), report.until.date().isoformat()
    refused = sum(d.refused for d in report.days)
    rate = f"{100 * refused / report.questions:.1f}%" if report.questions else "-"
    return (
        f'<div class="rc-insights-summary">{plural(report.questions, "question")} from {since} '
        f"to before {until} · {refused} refused ({rate})</div>"
    )


def render_documents(report: Insights) -> str:
    """The most cited documents and those no answer cited in the period."""
    cited = "".join(
        f"<li>{esc(c.document)} — {plural(c.answers, 'answer')}</li>" for c in report.most_cited
    )
    never = "".join(
        f"<li>{esc(u.document)} <span class='rc-muted'>(version {u.version}, added "
        f"{u.added_at.date().isoformat()})</span></li>"
        for u in report.never_cited
    )
    return (
        '<div class="rc-insights-docs"><h4>Most cited documents</h4>'
        f"<ol>{cited or '<li>No answer cited a document in this period.</li>'}</ol>"
        "<h4>Never cited in this period</h4>"
        f"<ul>{never or '<li>None.</li>'}</ul></div>"
    )


def render_refused(report: Insights) -> str:
    """The questions refused most often: gaps in the knowledge base."""
    if not report.refused:
        return '<div class="rc-insights-refused">No question was refused in this period.</div>'
    items = "".join(
        f"<li><b>{esc(r.question)}</b> <span class='rc-muted'>refused {r.count}×, last "
        f"{r.last_asked.date().isoformat()}</span> — <i>{HINT}.</i></li>"
        for r in report.refused
    )
    return (
        '<div class="rc-insights-refused"><h4>Questions refused most often</h4>'
        "<p>Your documents did not answer these: add documents about them, and ask again.</p>"
        f"<ol>{items}</ol></div>"
    )


@dataclass(eq=False)
class InsightsController:
    """The Insights tab's events."""

    engine: Engine
    settings: Settings

    def on_load(self, request: gr.Request) -> dict[str, Any]:
        """Show the tab to whoever may read the insights (everyone without accounts)."""
        actor = actor_of(self.settings, request)
        return gr.update(visible=actor.name is None or actor.admin)

    def refresh(self, days: Any, request: gr.Request) -> tuple[Any, ...]:
        """Every figure for the chosen period."""
        try:
            report = self.engine.insights(_days(days), actor=actor_of(self.settings, request))
        except UserError as exc:  # not an admin; a period out of range
            warn(str(exc))
            return (gr.skip(),) * INSIGHT_OUTPUTS
        return (
            render_summary(report),
            questions_frame(report),
            rates_frame(report),
            times_frame(report),
            cited_frame(report),
            render_documents(report),
            render_refused(report),
        )
