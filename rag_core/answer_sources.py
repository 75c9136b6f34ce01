"""Where a generated answer's text comes from, per answer strategy: one prompt over every passage
(concat), a one-sentence phrasing of the chosen passage sentences (extract-then-phrase), or the
RAG paper's per-passage decodings (rag-token, rag-sequence). Each gives the same thing to
`Answerer`: text pieces as they stream, the prompt read, and for the RAG decodings the prior and
posterior over passages that choose the citations."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from rag_core.config import Settings
from rag_core.prompting import build_messages, build_phrase_messages
from rag_core.protocols import Generator
from rag_core.types import AnswerOptions, Hit, Message, Turn

SpanPosterior = Callable[[int, int], tuple[float, ...]]


@dataclass
class TextSource:
    """A generated answer on its way: `pieces` stream its text."""

    pieces: Iterator[str]
    messages: Sequence[Message]  # the prompt the generator read (for its token count)
    prior: tuple[float, ...] = ()  # p(z|x) per passage (RAG decodings only)
    span_posterior: SpanPosterior | None = None  # characters [start, end) of the text -> p(z|x,y)
    posterior: Callable[[], tuple[float, ...]] | None = None  # of the whole answer
    # prompt tokens read, when the source knows them exactly (RAG: all k passage prompts);
    # None: counted from `messages`
    prompt_tokens: int | None = None


def concat_source(
    generator: Generator,
    question: str,
    hits: Sequence[Hit],
    history: Sequence[Turn],
    settings: Settings,
    options: AnswerOptions,
    halt: threading.Event,
) -> TextSource:
    """One prompt with every passage, numbered [1]..[k], and a few earlier turns."""
    messages = build_messages(question, hits, history, settings.max_history_turns)
    pieces = generator.stream(
        messages, max_new_tokens=options.max_new_tokens, temperature=settings.temperature, stop=halt
    )
    return TextSource(iter(pieces), messages)


def phrase_source(
    generator: Generator,
    question: str,
    facts: Sequence[tuple[int, str]],
    settings: Settings,
    halt: threading.Event,
) -> TextSource:
    """One short sentence phrased from the chosen passage sentences only."""
    messages = build_phrase_messages(question, facts)
    pieces = generator.stream(
        messages, max_new_tokens=settings.phrase_max_new_tokens, temperature=0.0, stop=halt
    )
    return TextSource(iter(pieces), messages)


def rag_source(
    generator: Generator,
    strategy: str,
    question: str,
    hits: Sequence[Hit],
    settings: Settings,
    options: AnswerOptions,
    halt: threading.Event,
) -> TextSource:
    """RAG-Token or RAG-Sequence over the k passages, each its own context; the prior is
    softmax(retrieval score / tau). Raises ConfigError for a generator without token
    probabilities (an OpenAI-compatible server)."""
    from rag_core.generators.rag_decoding import (
        RagSequenceDecoding,
        RagTokenDecoding,
        passage_messages,
        passage_prompts,
        require_token_probabilities,
    )

    scores = [h.score for h in hits]
    gen = require_token_probabilities(generator, strategy)
    prompts = passage_prompts(gen, question, hits, scores=scores, tau=settings.rag_tau)
    limit = options.max_new_tokens
    stream: Any
    if strategy == "rag-token":
        stream = prompts.stream(RagTokenDecoding(prompts.mixture, max_new_tokens=limit, stop=halt))
    else:
        mode = settings.rag_sequence_mode
        decoding = RagSequenceDecoding(prompts.mixture, max_new_tokens=limit, mode=mode, stop=halt)
        stream = prompts.stream(decoding)

    def span(start: int, end: int) -> tuple[float, ...]:
        return tuple(stream.span_posterior(*stream.token_span(start, end)))

    return TextSource(
        iter(stream),
        passage_messages(question, hits[0], 1) if hits else [],
        prior=prompts.mixture.prior,
        span_posterior=span,
        posterior=lambda: tuple(stream.posterior()),
        prompt_tokens=sum(len(context) for context in prompts.mixture.contexts),
    )
