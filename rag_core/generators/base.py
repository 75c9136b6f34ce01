"""BaseGenerator: the checks every generator's `stream` makes, and `generate` built on it.

A backend implements `_stream` (and `count_tokens`, `count_prompt_tokens`); `stream` validates
the arguments at the call, before any text, so a bad value is a ConfigError naming it rather
than a failure in a worker thread.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rag_core.errors import ConfigError
from rag_core.types import Message


@dataclass(frozen=True)
class Request:
    """One generation, its arguments checked by BaseGenerator.stream."""

    messages: tuple[Message, ...]
    max_new_tokens: int
    temperature: float
    stop: threading.Event | None


class BaseGenerator(ABC):
    """What rag_core.protocols.Generator asks for, with the shared validation."""

    name: str

    def stream(
        self,
        messages: Sequence[Message],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        stop: threading.Event | None = None,
    ) -> Iterator[str]:
        """Yield the answer's new text as it is generated (see the Generator protocol)."""
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
            raise ConfigError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
        if isinstance(temperature, bool) or temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature!r}")
        if not messages:
            raise ConfigError("messages must not be empty")
        return self._stream(Request(tuple(messages), max_new_tokens, float(temperature), stop))

    @abstractmethod
    def _stream(self, request: Request) -> Iterator[str]:
        """The backend's generation of a checked request."""

    def generate(
        self,
        messages: Sequence[Message],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        stop: threading.Event | None = None,
    ) -> str:
        """The whole answer as one string (built on stream)."""
        return "".join(
            self.stream(messages, max_new_tokens=max_new_tokens, temperature=temperature, stop=stop)
        )

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens of `text` as this generator counts them."""

    @abstractmethod
    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        """Tokens of the prompt this generator reads for `messages`."""
