"""State kept per browser session on the server: the stop switch of the answer being streamed,
and how the history sidebar is listed (how many conversations, which title search)."""

from __future__ import annotations

import threading
from collections import OrderedDict

HISTORY_PAGE = 50  # conversations the sidebar lists at first, and adds per 'Load more'
MAX_VIEWS = 10_000  # sidebar views remembered; the oldest is forgotten first


class Sessions:
    """Per-browser-session stop events and history views, keyed by Gradio's session hash."""

    def __init__(self) -> None:
        self._stops: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._views: OrderedDict[str, tuple[int, str]] = OrderedDict()  # session: (shown, search)

    def start_answer(self, session: str) -> threading.Event:
        """A new stop event for the answer this session now streams (replacing an older one)."""
        stop = threading.Event()
        with self._lock:
            self._stops[session] = stop
        return stop

    def end_answer(self, session: str, stop: threading.Event) -> None:
        """Forget `stop` once its answer is over, unless a newer answer replaced it."""
        with self._lock:
            if self._stops.get(session) is stop:
                del self._stops[session]

    def stop(self, session: str) -> bool:
        """Stop the answer being streamed to `session`; False if none is."""
        with self._lock:
            event = self._stops.get(session)
        if event is None:
            return False
        event.set()
        return True

    def history_view(self, session: str) -> tuple[int, str]:
        """(how many conversations the sidebar shows, the title search) for `session`."""
        return self._views.get(session, (HISTORY_PAGE, ""))

    def set_history_view(self, session: str, shown: int, search: str) -> None:
        self._views.pop(session, None)
        self._views[session] = (shown, search)
        while len(self._views) > MAX_VIEWS:
            self._views.popitem(last=False)
