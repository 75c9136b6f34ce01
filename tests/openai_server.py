"""A small, real OpenAI-compatible chat server for the tests (stdlib http.server, HTTP/1.1).

``POST /v1/chat/completions`` with ``stream=true`` streams server-sent events with the text of a
real generator (the default SmolLM2 model in the tests), chunked like vLLM or llama.cpp do, and
ends with ``data: [DONE]``. The request's model name scripts the failure modes a real server shows:

- ``fail-500``: HTTP 500 with an OpenAI-style JSON error body;
- ``no-stream``: ignores ``stream=true`` and answers with one whole JSON completion;
- ``stall``: sends the headers and one event, then nothing for ``stall_s`` seconds;
- ``die-after-N``: streams N pieces of the real answer, then drops the connection mid-body.

With ``api_key`` set, a request without ``Authorization: Bearer <api_key>`` gets HTTP 401.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rag_core.protocols import Generator
from rag_core.types import Message

_DIE = re.compile(r"die-after-(\d+)")


@dataclass
class OpenAITestServer:
    """Serves ``generator`` on 127.0.0.1 (a free port); use as a context manager."""

    generator: Generator
    api_key: str | None = None
    stall_s: float = 5.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> OpenAITestServer:
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(10)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    owner: OpenAITestServer

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _event(self, payload: dict[str, Any] | str) -> None:
        body = payload if isinstance(payload, str) else json.dumps(payload)
        self._chunk(f"data: {body}\n\n")

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": "smollm2", "object": "model"}]})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        owner = self.owner
        length = int(self.headers.get("Content-Length", "0"))
        request = json.loads(self.rfile.read(length) or b"{}")
        owner.requests.append(request)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        if owner.api_key and self.headers.get("Authorization") != f"Bearer {owner.api_key}":
            self._json(401, {"error": {"message": "Incorrect API key provided", "type": "auth"}})
            return
        model = str(request.get("model", ""))
        if model == "fail-500":
            self._json(500, {"error": {"message": "model overloaded", "type": "server_error"}})
            return
        if model == "no-stream":  # a server that ignores stream=true
            text = "".join(self._generate(request))
            self._json(200, {
                "id": "chatcmpl-test", "object": "chat.completion", "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": "length"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 4, "total_tokens": 5},
            })  # fmt: skip
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        created = int(time.time())

        def event(content: str | None, finish: str | None = None) -> dict[str, Any]:
            delta = {"content": content} if content is not None else {}
            return {
                "id": "chatcmpl-test", "object": "chat.completion.chunk", "created": created,
                "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }  # fmt: skip

        try:
            self._event(event(""))  # the role/opening event real servers send first
            if model == "stall":
                time.sleep(owner.stall_s)
                return
            die = _DIE.fullmatch(model)
            limit = int(die.group(1)) if die else None
            pieces = self._generate(request)
            try:
                for n, piece in enumerate(pieces, start=1):
                    self._event(event(piece))
                    if limit is not None and n >= limit:
                        self.close_connection = True
                        return  # no terminating chunk: the body ends mid-stream
            finally:
                close = getattr(pieces, "close", None)
                if close is not None:
                    close()
            self._event(event(None, "stop"))
            self._event("[DONE]")
            self._chunk("")  # zero-length chunk: the body is complete
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away (stopped): just end

    def _generate(self, request: dict[str, Any]) -> Iterator[str]:
        messages = [Message(m["role"], m["content"]) for m in request["messages"]]
        return self.owner.generator.stream(
            messages,
            max_new_tokens=int(request.get("max_tokens") or 16),
            temperature=float(request.get("temperature") or 0.0),
        )
