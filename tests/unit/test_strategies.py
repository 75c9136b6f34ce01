"""Answer strategies through the engine with fakes: each runs the same checks, and the Released
text a client gets is exactly the checked answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_core.config import Settings
from rag_core.engine import Engine
from rag_core.errors import InvalidOptionError
from rag_core.generators.openai_compat import OpenAICompatGenerator
from rag_core.testing import FakeGenerator, fake_engine
from rag_core.types import Done, Released, Token

MANUAL = (
    "# Lumen L2 manual\n\nA full charge takes 3 hours with the supplied USB-C cable. "
    "At medium brightness the lamp runs for 14 hours on one charge. "
    "Northwind Lighting gives a two-year warranty on the Lumen L2.\n"
)
QUESTION = "How long does the Lumen L2 run at medium brightness?"


def engine_with(tmp_path: Path, reply: str, **settings: object) -> Engine:
    engine = fake_engine(
        Settings(home=tmp_path / "home", **{"refusal_threshold": 0.0, **settings}),  # type: ignore[arg-type]
        generator=FakeGenerator(reply),
    )
    engine.ingest_bytes(MANUAL.encode(), "lumen.md")
    return engine


def answer(engine: Engine, question: str = QUESTION, **options: object) -> tuple[str, str, Done]:
    """(the Token text, the Released text, the Done)."""
    tokens = released = ""
    done = None
    for event in engine.answer(question, (), engine.options(**options)):
        if isinstance(event, Token):
            tokens += event.text
        elif isinstance(event, Released):
            released += event.text
        elif isinstance(event, Done):
            done = event
    assert done is not None
    return tokens, released, done


@pytest.mark.parametrize(
    "reply",
    [
        "The lamp runs for 14 hours at medium brightness [1].",  # supported
        "The answer is: 10 years. The lamp runs for 14 hours at medium brightness [1].",
        "The lamp runs for 40 hours [1].",  # unsupported: a quoted fallback
        "NOT FOUND",
    ],
)
@pytest.mark.parametrize("strategy", ["concat", "extract-then-phrase", "extractive"])
def test_released_text_is_exactly_the_checked_answer(
    tmp_path: Path, reply: str, strategy: str
) -> None:
    engine = engine_with(tmp_path, reply)
    _, released, done = answer(engine, strategy=strategy)
    assert released == done.answer
    assert done.strategy == strategy
    for invented in ("10 years.", "40 hours"):  # shown only with its mark, never as fact
        assert invented not in released or f"{invented} [not in your documents]" in released


def test_an_unchecked_sentence_is_never_released_before_the_answer_is_known(
    tmp_path: Path,
) -> None:
    engine = engine_with(tmp_path, "The lamp runs for 40 hours [1].")
    tokens, released, done = answer(engine, strategy="concat")
    assert "40 hours" in tokens  # the live draft shows it, marked unchecked by the page
    assert done.mode == "extractive" and released.startswith("Your documents say:")
    assert "14 hours" in released and "40 hours" not in released


def test_extract_then_phrase_reads_only_the_chosen_sentences(tmp_path: Path) -> None:
    engine = engine_with(tmp_path, "The Lumen L2 runs for 14 hours at medium brightness [1].")
    _, released, done = answer(engine, strategy="extract-then-phrase")
    assert done.mode == "generated" and "14 hours" in released
    [messages] = engine.generator.calls  # type: ignore[attr-defined]
    prompt = messages[-1].content
    assert "14 hours" in prompt and "two-year warranty" not in prompt
    assert done.citations and done.citations[0].support and "14 hours" in done.citations[0].support


def test_a_supported_sentence_without_the_asked_kind_of_fact_does_not_answer(
    tmp_path: Path,
) -> None:
    engine = engine_with(tmp_path, "Northwind Lighting gives a warranty on the Lumen L2 [1].")
    _, _, done = answer(engine, "How long is the warranty on the Lumen L2?", strategy="concat")
    generated = [s for s in done.sentences if s.verdict == "replaced"]
    assert generated and "kind asked for" in generated[0].reason
    assert done.mode == "extractive" and "two-year" in done.answer  # the next best candidate


def test_strategy_options_are_validated_by_name(tmp_path: Path) -> None:
    engine = engine_with(tmp_path, "")
    with pytest.raises(InvalidOptionError, match=r"answer strategy.*'rag-tokens'"):
        engine.options(strategy="rag-tokens")
    assert engine.options(answer_mode="extractive").strategy == "extractive"
    assert engine.options(strategy="extract-then-phrase").answer_mode == "generate"
    legacy = Settings(home=tmp_path / "h2", answer_mode="extractive")
    assert legacy.answer_options().strategy == "extractive"
    chosen = Settings(home=tmp_path / "h3", answer_strategy="rag-token")
    assert chosen.answer_options().strategy == "rag-token"
    assert chosen.answer_options(answer_mode="generate").strategy == "rag-token"


@pytest.mark.parametrize("strategy", ["rag-token", "rag-sequence"])
def test_rag_decodings_need_token_probabilities(tmp_path: Path, strategy: str) -> None:
    engine = engine_with(tmp_path, "")
    engine.generator = OpenAICompatGenerator("http://127.0.0.1:9/v1", "some-model")
    with pytest.raises(InvalidOptionError, match=rf"'{strategy}'.*token probabilities"):
        engine.options(strategy=strategy)


def test_a_sentence_holding_the_asked_fact_overrides_the_gate(tmp_path: Path) -> None:
    strict = {"refusal_threshold": 5.0}  # the retrieval gate refuses everything
    engine = engine_with(tmp_path / "a", "", **strict)
    assert not engine.retrieve(QUESTION, (), engine.options()).refused
    off = engine_with(tmp_path / "b", "", gate_override_score=0.0, **strict)
    assert off.retrieve(QUESTION, (), off.options()).refused
    # nothing of the asked kind (a phone number) in the documents: the gate's refusal stands
    asked = "What is the phone number of Northwind Lighting?"
    assert engine.retrieve(asked, (), engine.options()).refused
