"""RAG-Token and RAG-Sequence decoding with the real default generator (SmolLM2-135M-Instruct):
one of three passages answers the question; the answer states its fact and the posterior over the
passages points at it. Also prints RAG-Token's speed at k=5 next to plain generation on the
concatenated prompt (informational; run with -s to see it)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from rag_core.generators.rag_decoding import (
    RagSequenceDecoding,
    RagTokenDecoding,
    passage_prompts,
)
from rag_core.prompting import build_messages
from rag_core.types import Chunk, Hit

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

QUESTION = "How long does the Lumen L2 lamp run at medium brightness?"
TEXTS = [
    "The Lumen L2 lamp weighs 420 grams and folds flat for travel.",
    "The Lumen L2 lamp runs 14 hours at medium brightness.",
    "Orders ship within two business days from our warehouse in Leeds.",
    "The charging cable is USB-C; a full charge takes 3 hours.",
    "The warranty covers manufacturing defects for two years from purchase.",
]
ANSWERING = 1  # index of the passage that answers


def _hits(texts: list[str], score: float = 0.5) -> list[Hit]:
    """Equal retrieval scores: a uniform prior, so only the passages' likelihoods decide."""
    hits = []
    for n, text in enumerate(texts, start=1):
        chunk = Chunk(f"c{n}", f"d{n}", "lumen-faq.txt", "v1", n, text, 0, len(text))
        hits.append(Hit(chunk=chunk, rank=n, score=score))
    return hits


def _argmax(values: tuple[float, ...]) -> int:
    return max(range(len(values)), key=values.__getitem__)


@pytest.mark.parametrize("weighting", ["prior", "posterior"])
def test_rag_token_answers_from_the_right_passage(real_generator: Any, weighting: Any) -> None:
    prompts = passage_prompts(real_generator, QUESTION, _hits(TEXTS[:3]))
    stream = prompts.stream(
        RagTokenDecoding(prompts.mixture, max_new_tokens=40, weighting=weighting)
    )
    text = "".join(stream)
    posterior = stream.posterior()
    print(f"\nRAG-Token ({weighting}): {text!r} posterior={[round(p, 3) for p in posterior]}")
    assert _argmax(posterior) == ANSWERING
    assert stream.finish_reason == "eos"
    if weighting == "prior":  # the paper's RAG-Token; 'posterior' may leave the number out
        assert "14" in text


@pytest.mark.parametrize("mode", ["thorough", "fast"])
def test_rag_sequence_answers_from_the_right_passage(real_generator: Any, mode: Any) -> None:
    prompts = passage_prompts(real_generator, QUESTION, _hits(TEXTS[:3]))
    stream = prompts.stream(RagSequenceDecoding(prompts.mixture, max_new_tokens=40, mode=mode))
    text = "".join(stream)
    assert stream.decoding is not None
    print(
        f"\nRAG-Sequence ({mode}): {text!r} posterior={[round(p, 3) for p in stream.posterior()]}"
        f" candidates={list(stream.candidate_texts())}"
    )
    assert "14" in text
    assert _argmax(stream.posterior()) == ANSWERING
    assert stream.decoding.mode == mode


def _timed(pieces: Iterator[str]) -> tuple[str, float, float]:
    """(text, seconds to the first piece, seconds in all)."""
    started = time.perf_counter()
    first: float | None = None
    parts = []
    for piece in pieces:
        if first is None:
            first = time.perf_counter() - started
        parts.append(piece)
    total = time.perf_counter() - started
    return "".join(parts), first if first is not None else total, total


def test_rag_token_speed_next_to_plain_generation(real_generator: Any) -> None:
    """Informational: first-piece latency and decode rate, RAG-Token k=5 vs one prompt."""
    hits = _hits(TEXTS)
    max_new = 40
    real_generator.generate(build_messages("warm up", hits[:1]), max_new_tokens=2)

    plain_text, plain_first, plain_total = _timed(
        real_generator.stream(build_messages(QUESTION, hits), max_new_tokens=max_new)
    )
    plain_tokens = real_generator.count_tokens(plain_text) + 1  # + the EOS token, not shown

    prompts = passage_prompts(real_generator, QUESTION, hits)
    stream = prompts.stream(RagTokenDecoding(prompts.mixture, max_new_tokens=max_new))
    rag_text, rag_first, rag_total = _timed(stream)
    rag_tokens = len(stream.token_ids)

    def rate(tokens: int, first: float, total: float) -> float:
        return (tokens - 1) / (total - first) if tokens > 1 and total > first else float("nan")

    prompt = real_generator.count_tokens(
        real_generator.render_prompt(build_messages(QUESTION, hits))
    )
    print(
        f"\nplain, one prompt of {prompt} tokens: first piece {plain_first:.2f} s, "
        f"{plain_tokens} tokens, {rate(plain_tokens, plain_first, plain_total):.1f} tokens/s "
        f"after it, {plain_total:.2f} s in all: {plain_text!r}"
        f"\nRAG-Token k=5: first piece {rag_first:.2f} s, {rag_tokens} tokens, "
        f"{rate(rag_tokens, rag_first, rag_total):.1f} tokens/s after it, {rag_total:.2f} s in all: "
        f"{rag_text!r} posterior={[round(p, 3) for p in stream.posterior()]}"
    )
    assert rag_tokens > 0 and plain_tokens > 0
