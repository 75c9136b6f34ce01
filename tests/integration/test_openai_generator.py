"""The openai: generator against a real OpenAI-compatible HTTP server (tests/openai_server.py).

The server streams from the real default SmolLM2 model, so these tests show the whole engine
answering through HTTP; scripted model names reproduce the failures a real server shows.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rag_core.config import Settings
from rag_core.errors import ConfigError, GenerationError
from rag_core.factory import build_engine
from rag_core.generators.openai_compat import OpenAICompatGenerator
from rag_core.types import Done, Logged, Message, Token
from tests.openai_server import OpenAITestServer

pytestmark = pytest.mark.integration

MESSAGES = [
    Message("system", "You answer in one short sentence."),
    Message("user", "What colour is the sky on a clear day?"),
]


@pytest.fixture(scope="module")
def server(real_generator: Any) -> Iterator[OpenAITestServer]:
    with OpenAITestServer(real_generator, stall_s=3.0) as srv:
        yield srv


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_streams_the_real_model_token_by_token(
    server: OpenAITestServer, real_generator: Any
) -> None:
    gen = OpenAICompatGenerator(server.base_url, "smollm2")
    pieces = list(gen.stream(MESSAGES, max_new_tokens=12))
    assert len(pieces) > 1  # streamed, not one blob
    # greedy decoding is deterministic: through HTTP the text is exactly the local model's
    assert "".join(pieces) == real_generator.generate(MESSAGES, max_new_tokens=12)
    sent = server.requests[-1]
    assert sent["stream"] is True and sent["model"] == "smollm2" and sent["max_tokens"] == 12
    assert sent["messages"][1] == {"role": "user", "content": MESSAGES[1].content}
    assert gen.count_tokens("".join(pieces)) >= 1


def test_stop_event_ends_the_stream(server: OpenAITestServer) -> None:
    gen = OpenAICompatGenerator(server.base_url, "smollm2")
    stop = threading.Event()
    pieces = []
    for piece in gen.stream(MESSAGES, max_new_tokens=12, stop=stop):
        pieces.append(piece)
        stop.set()
    assert 1 <= len(pieces) <= 2  # unstopped, these 12 tokens stream as many more pieces


def test_api_key_is_sent_and_a_wrong_one_is_reported(real_generator: Any) -> None:
    with OpenAITestServer(real_generator, api_key="s3cret") as srv:
        ok = OpenAICompatGenerator(srv.base_url, "smollm2", api_key="s3cret")
        assert "".join(ok.stream(MESSAGES, max_new_tokens=3))
        bad = OpenAICompatGenerator(srv.base_url, "smollm2", api_key="wrong")
        with pytest.raises(GenerationError) as err:
            list(bad.stream(MESSAGES, max_new_tokens=3))
    message = str(err.value)
    assert "HTTP 401" in message and "Incorrect API key provided" in message
    assert "RAGCHAT_GENERATOR_API_KEY" in message


def test_a_server_that_ignores_stream_true_still_answers(
    server: OpenAITestServer, real_generator: Any
) -> None:
    gen = OpenAICompatGenerator(server.base_url, "no-stream")
    pieces = list(gen.stream(MESSAGES, max_new_tokens=4))
    assert pieces == [real_generator.generate(MESSAGES, max_new_tokens=4)]
    assert gen.count_tokens(pieces[0]) == 4  # the server's own count (usage)


def test_connection_refused_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    gen = OpenAICompatGenerator(url, "smollm2", connect_timeout=2)
    with pytest.raises(GenerationError) as err:
        list(gen.stream(MESSAGES, max_new_tokens=5))
    assert f"cannot connect to the generator server at {url}: connection refused" in str(err.value)


def test_http_500_carries_the_servers_message(server: OpenAITestServer) -> None:
    gen = OpenAICompatGenerator(server.base_url, "fail-500")
    with pytest.raises(GenerationError) as err:
        list(gen.stream(MESSAGES, max_new_tokens=5))
    assert str(err.value) == (
        f"the generator server at {server.base_url} answered HTTP 500: model overloaded"
    )


def test_a_silent_server_times_out(server: OpenAITestServer) -> None:
    gen = OpenAICompatGenerator(server.base_url, "stall", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(GenerationError) as err:
        list(gen.stream(MESSAGES, max_new_tokens=5))
    assert time.monotonic() - started < 2.5  # gave up after the timeout, not after the stall
    assert "sent nothing for 0.5 s (RAGCHAT_GENERATOR_TIMEOUT)" in str(err.value)


def test_a_server_dying_mid_stream_is_reported_after_the_partial_text(
    server: OpenAITestServer,
) -> None:
    gen = OpenAICompatGenerator(server.base_url, "die-after-3")
    pieces: list[str] = []
    with pytest.raises(GenerationError) as err:
        for piece in gen.stream(MESSAGES, max_new_tokens=20):
            pieces.append(piece)
    assert len(pieces) == 3
    assert "closed the connection mid-answer" in str(err.value)
    assert f"after {len(''.join(pieces))} characters" in str(err.value)


def test_bad_settings_name_the_setting() -> None:
    with pytest.raises(ConfigError, match="RAGCHAT_GENERATOR_MODEL is required"):
        OpenAICompatGenerator("http://127.0.0.1:8000/v1", None)
    with pytest.raises(ConfigError, match="give the server's base URL"):
        OpenAICompatGenerator("openai:localhost:8000", "m")
    with pytest.raises(ConfigError, match="bad port"):
        OpenAICompatGenerator("openai:http://127.0.0.1:port/v1", "m")
    with pytest.raises(ConfigError, match="RAGCHAT_GENERATOR_TIMEOUT"):
        OpenAICompatGenerator("http://127.0.0.1:8000/v1", "m", timeout=0)


DOC = (
    "# Harbour ferry\n\n"
    "The Quillon harbour ferry leaves the north pier every 40 minutes from 6 am to 11 pm. "
    "A single ticket costs 3 euros and children under six travel free.\n"
)


def _engine(tmp_path: Path, url: str, model: str) -> Any:
    settings = Settings(
        home=tmp_path / "home",
        generator=f"openai:{url}",
        generator_model=model,
        max_new_tokens=40,
        answer_strategy="concat",  # the generator answers (the shipped default quotes)
        _env_file=None,  # type: ignore[call-arg]
    )
    engine = build_engine(settings)
    result = engine.ingest_bytes(DOC.encode(), "ferry.md")
    assert result.status == "added", result.error
    return engine


def test_the_engine_answers_through_http(server: OpenAITestServer, tmp_path: Path) -> None:
    engine = _engine(tmp_path, server.base_url, "smollm2")
    assert isinstance(engine.generator, OpenAICompatGenerator)  # picked from settings alone
    events = list(engine.chat("How often does the Quillon harbour ferry leave?"))
    done = next(e for e in events if isinstance(e, Done))
    assert done.status == "complete" and not done.refused
    assert done.raw_answer == "".join(e.text for e in events if isinstance(e, Token))
    assert done.raw_answer.strip()  # the model's text came over HTTP
    assert done.citations and done.citations[0].chunk.document_name == "ferry.md"
    prompt = server.requests[-1]["messages"]
    assert any("every 40 minutes" in m["content"] for m in prompt)  # retrieved passage was sent
    assert done.config["generator"] == f"openai:{server.base_url}"
    assert done.config["generator_model"] == "smollm2"
    logged = next(e for e in events if isinstance(e, Logged))
    turn = engine.log.turns(logged.conversation_id, "local")[0]
    assert turn.status == "complete" and turn.raw_answer == done.raw_answer


def test_a_server_dying_mid_answer_gives_a_logged_error_turn_with_the_partial_text(
    server: OpenAITestServer, tmp_path: Path
) -> None:
    engine = _engine(tmp_path, server.base_url, "die-after-4")
    events = list(engine.chat("How often does the Quillon harbour ferry leave?"))
    streamed = "".join(e.text for e in events if isinstance(e, Token))
    done = next(e for e in events if isinstance(e, Done))
    assert done.status == "error"
    assert done.error is not None and "closed the connection mid-answer" in done.error
    assert streamed and done.raw_answer == streamed  # the partial text is kept
    logged = next(e for e in events if isinstance(e, Logged))
    turn = engine.log.turns(logged.conversation_id, "local")[0]
    assert turn.status == "error"
    assert turn.raw_answer == streamed
    assert turn.error is not None and "closed the connection mid-answer" in turn.error
