"""What every controller needs: pop-ups (escaped), who is asking, and the per-tab state.

Gradio renders the text of gr.Warning / gr.Info / gr.Error as HTML, so every pop-up goes through
`warn`, `notify` or `fail`, which escape it (a document or conversation name may hold markup).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from rag_core.config import Settings
from rag_core.ingest.pipeline import OPERATOR
from rag_core.types import Actor
from webapp.auth import LOCAL_USER
from webapp.security import escape_text

State = dict[str, Any]  # the gr.State of one browser tab: see fresh_state


def warn(message: str) -> None:
    """A warning pop-up; Gradio renders its text as HTML, so it is escaped."""
    gr.Warning(escape_text(message))


def notify(message: str) -> None:
    """An information pop-up (escaped, as `warn`)."""
    gr.Info(escape_text(message))


def fail(message: str) -> gr.Error:
    """An error for an API caller or pop-up (escaped, as `warn`)."""
    return gr.Error(escape_text(message), print_exception=False)


def fresh_state() -> State:
    """A tab's state with nothing open: conversation, turn shown in the sources panel, citation
    focused there, and the turn whose feedback the comment box edits."""
    return {"conv": None, "turn": None, "focus": None, "fb": None}


def user_of(request: gr.Request | None) -> str:
    """The signed-in user, or the single local user when accounts are off."""
    name = getattr(request, "username", None) if request is not None else None
    return str(name) if name else LOCAL_USER


def session_of(request: gr.Request | None) -> str:
    """The browser session (one page load) a request comes from."""
    return str(getattr(request, "session_hash", None) or "")


def actor_of(settings: Settings, request: gr.Request | None) -> Actor:
    """Who changes the knowledge base: with accounts, the signed-in user (an admin if
    RAGCHAT_ADMINS names them); without, the operator."""
    if not settings.auth:
        return OPERATOR
    user = user_of(request)
    return Actor(user, admin=user in settings.admin_users)


def as_int(value: Any) -> int | None:
    """A number from a click or an API call (a string, a float), or None."""
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def skips(n: int) -> tuple[Any, ...]:
    """Leave all `n` outputs of an event as they are."""
    return (gr.skip(),) * n
