"""Generator over any OpenAI-compatible chat server (vLLM, TGI, llama.cpp server, Ollama, ...).

``RAGCHAT_GENERATOR=openai:http://host:port/v1`` with ``RAGCHAT_GENERATOR_MODEL=<name>`` sends
``POST <base>/chat/completions`` with ``stream=true`` and yields the ``delta.content`` of each
server-sent event. Every failure (connection refused, an HTTP error, a server that stays silent
longer than the timeout, a connection closed before the answer ended, a malformed event) is raised
as GenerationError with a message that names the server and says what happened.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from rag_core.errors import ConfigError, GenerationError
from rag_core.generators.base import BaseGenerator, Request
from rag_core.types import Message

PREFIX = "openai:"
_WORDISH = re.compile(r"\w+|[^\w\s]")


def parse_spec(spec: str) -> str:
    """The base URL of an ``openai:http(s)://host[:port]/path`` generator setting.

    Raises ConfigError, naming the setting and the value, for anything else.
    """
    if not spec.startswith(PREFIX):
        raise ConfigError(f"RAGCHAT_GENERATOR={spec!r} is not an 'openai:<base URL>' generator")
    url = spec[len(PREFIX) :].strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"RAGCHAT_GENERATOR={spec!r}: after 'openai:' give the server's base URL, "
            "e.g. openai:http://127.0.0.1:8000/v1"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ConfigError(f"RAGCHAT_GENERATOR={spec!r}: bad port ({exc})") from None
    return url


def _server_message(response: httpx.Response) -> str:
    """The error text an OpenAI-compatible server put in its body (JSON or plain), shortened."""
    try:
        body = response.read().decode("utf-8", errors="replace").strip()
    except httpx.HTTPError:
        return "(no body)"
    try:
        data = json.loads(body)
    except ValueError:
        return body[:500] or "(empty body)"
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            for key in ("message", "detail", "error"):
                if isinstance(err.get(key), str):
                    return str(err[key])[:500]
        elif isinstance(err, str):
            return err[:500]
        if isinstance(data.get("detail"), str):
            return str(data["detail"])[:500]
    return body[:500]


class OpenAICompatGenerator(BaseGenerator):
    """Streams chat completions from an OpenAI-compatible HTTP server.

    ``timeout`` is the longest the server may stay silent (before the first token or between two
    events); ``connect_timeout`` bounds opening the connection. One httpx client is shared by all
    calls (it is thread-safe and keeps connections alive). Token counts are the server's own
    (``usage``) when it reports them for the last answer, otherwise an estimate from words and
    punctuation: the server's tokenizer is not available here.
    """

    name: str

    def __init__(
        self,
        base_url: str,
        model: str | None,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = parse_spec(base_url if base_url.startswith(PREFIX) else PREFIX + base_url)
        if not model or not model.strip():
            raise ConfigError(
                f"RAGCHAT_GENERATOR_MODEL is required with RAGCHAT_GENERATOR=openai:{self.base_url}"
                ": the name of the model the server serves (e.g. as listed by GET /v1/models)"
            )
        if timeout <= 0:
            raise ConfigError(f"RAGCHAT_GENERATOR_TIMEOUT must be positive, got {timeout!r}")
        if connect_timeout <= 0:
            raise ConfigError(
                f"RAGCHAT_GENERATOR_CONNECT_TIMEOUT must be positive, got {connect_timeout!r}"
            )
        self.model = model.strip()
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.name = f"{self.model} @ {self.base_url}"
        headers = {"Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(
            timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
            headers=headers,
            transport=transport,
        )
        self._usage_lock = threading.Lock()
        self._last_usage: tuple[str, int] | None = None  # (answer text, completion tokens)
        self._last_prompt: tuple[str, int] | None = None  # (messages key, prompt tokens)

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/chat/completions"

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        """The server's prompt count when it reported one for these messages, else an
        estimate (words and punctuation, plus a few tokens per message for the roles)."""
        key = _messages_key([{"role": m.role, "content": m.content} for m in messages])
        with self._usage_lock:
            if self._last_prompt is not None and self._last_prompt[0] == key:
                return self._last_prompt[1]
        return sum(len(_WORDISH.findall(m.content)) + 4 for m in messages)

    def count_tokens(self, text: str) -> int:
        """The server's count for the last streamed answer if ``text`` is it, else an estimate."""
        with self._usage_lock:
            if self._last_usage is not None and self._last_usage[0] == text:
                return self._last_usage[1]
        return len(_WORDISH.findall(text))

    def _stream(self, request: Request) -> Iterator[str]:
        """Yield the answer's text as the server streams it; `stop` ends it after the next event."""
        payload = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        return self._request(payload, request.stop)

    def _request(self, payload: dict[str, Any], stop: threading.Event | None) -> Iterator[str]:
        where = f"the generator server at {self.base_url}"
        text = ""
        finished = False
        usage: int | None = None
        prompt: int | None = None
        try:
            with self._client.stream("POST", self.endpoint, json=payload) as response:
                if response.status_code >= 400:
                    raise GenerationError(self._http_error(response))
                if response.headers.get("content-type", "").startswith("application/json"):
                    # a server that ignores stream=true answers with one whole completion
                    text, usage, prompt = self._whole_completion(response.read())
                    if text:
                        yield text
                    finished = True
                    lines: Iterator[str] = iter(())
                else:
                    lines = response.iter_lines()
                for line in lines:
                    if stop is not None and stop.is_set():
                        return
                    data = _sse_data(line)
                    if data is None:
                        continue
                    if data == "[DONE]":
                        finished = True
                        break
                    piece, done, tokens, prompt_tokens = self._parse_event(data)
                    finished = finished or done
                    usage = tokens if tokens is not None else usage
                    prompt = prompt_tokens if prompt_tokens is not None else prompt
                    if piece:
                        text += piece
                        yield piece
        except GenerationError:
            raise
        except httpx.ConnectTimeout:
            raise GenerationError(
                f"cannot connect to {where}: no answer within {self.connect_timeout:g} s "
                "(RAGCHAT_GENERATOR_CONNECT_TIMEOUT)"
            ) from None
        except httpx.ConnectError as exc:
            reason = "connection refused" if "refused" in str(exc).lower() else str(exc)
            raise GenerationError(
                f"cannot connect to {where}: {reason}; is the server running and is "
                "RAGCHAT_GENERATOR right?"
            ) from exc
        except httpx.ReadTimeout:
            raise GenerationError(
                f"{where} sent nothing for {self.timeout:g} s (RAGCHAT_GENERATOR_TIMEOUT); "
                f"stopped after {len(text)} characters of answer"
            ) from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise GenerationError(
                f"{where} closed the connection mid-answer, after {len(text)} characters "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        except httpx.HTTPError as exc:
            raise GenerationError(
                f"request to {where} failed: {type(exc).__name__}: {exc}"
            ) from exc
        if not finished:
            raise GenerationError(
                f"{where} closed the connection mid-answer, after {len(text)} characters "
                "(the stream ended without a finish reason or [DONE])"
            )
        with self._usage_lock:
            if usage is not None:
                self._last_usage = (text, usage)
            if prompt is not None:
                self._last_prompt = (_messages_key(payload["messages"]), prompt)

    def _http_error(self, response: httpx.Response) -> str:
        message = _server_message(response)
        hint = ""
        if response.status_code in (401, 403):
            hint = " (check RAGCHAT_GENERATOR_API_KEY)"
        elif response.status_code == 404:
            hint = f" (check the base URL and RAGCHAT_GENERATOR_MODEL={self.model!r})"
        return (
            f"the generator server at {self.base_url} answered HTTP {response.status_code}: "
            f"{message}{hint}"
        )

    def _whole_completion(self, body: bytes) -> tuple[str, int | None, int | None]:
        """(text, completion tokens, prompt tokens) of a non-streamed chat completion."""
        try:
            data = json.loads(body)
            message = data["choices"][0]["message"]
            content = message.get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise GenerationError(
                f"the generator server at {self.base_url} answered with JSON that is not a chat "
                f"completion: {body[:200]!r}"
            ) from None
        usage = data.get("usage") if isinstance(data, dict) else None
        return str(content), *_usage_counts(usage)

    def _parse_event(self, data: str) -> tuple[str, bool, int | None, int | None]:
        """(new text, whether the answer is finished, completion and prompt tokens if the server
        says)."""
        try:
            event = json.loads(data)
        except ValueError:
            raise GenerationError(
                f"the generator server at {self.base_url} sent an event that is not JSON: "
                f"{data[:200]!r}"
            ) from None
        if not isinstance(event, dict):
            raise GenerationError(
                f"the generator server at {self.base_url} sent an unexpected event: {data[:200]!r}"
            )
        if "error" in event:
            err = event["error"]
            message = err.get("message", err) if isinstance(err, dict) else err
            raise GenerationError(
                f"the generator server at {self.base_url} reported an error mid-answer: {message}"
            )
        tokens, prompt = _usage_counts(event.get("usage"))
        choices = event.get("choices") or []
        if not choices or not isinstance(choices[0], dict):
            return "", False, tokens, prompt
        choice = choices[0]
        delta = choice.get("delta") or {}
        piece = delta.get("content") if isinstance(delta, dict) else None
        finished = choice.get("finish_reason") is not None
        return (piece if isinstance(piece, str) else ""), finished, tokens, prompt

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def __repr__(self) -> str:
        return f"OpenAICompatGenerator({self.base_url!r}, model={self.model!r})"


def _usage_counts(usage: Any) -> tuple[int | None, int | None]:
    """(completion tokens, prompt tokens) of an OpenAI `usage` object, where it gives them."""
    if not isinstance(usage, dict):
        return None, None
    completion, prompt = usage.get("completion_tokens"), usage.get("prompt_tokens")
    return (
        completion if isinstance(completion, int) else None,
        prompt if isinstance(prompt, int) else None,
    )


def _messages_key(messages: Any) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()


def _sse_data(line: str) -> str | None:
    """The payload of a server-sent-event ``data:`` line; None for comments, other fields, blanks."""
    if not line.startswith("data:"):
        return None
    return line[5:].strip()
