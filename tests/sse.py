"""Server-sent events read back from a streamed HTTP response, for the API tests."""

from __future__ import annotations

import json
from typing import Any

import httpx


def sse_events(response: httpx.Response) -> list[tuple[str, Any]]:
    """Each event of a `text/event-stream` response as (event name, decoded JSON data)."""
    events, name = [], "message"
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
    return events
