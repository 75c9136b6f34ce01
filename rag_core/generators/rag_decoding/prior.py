"""The passage prior p(z|x) = softmax(score / tau), posteriors over spans, and argument checks."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

from rag_core.errors import ConfigError
from rag_core.types import Hit, Message

if TYPE_CHECKING:
    pass

DEFAULT_TAU = 0.1
"""Temperature of the passage prior softmax(score / tau); see the module docstring."""

Weighting = Literal["prior", "posterior"]
SequenceMode = Literal["thorough", "fast"]
FinishReason = Literal["eos", "length", "stopped"]
MessagesFor = Callable[[str, Hit | str, int], Sequence[Message]]
"""Builds the chat messages for one passage: (question, passage, its number [n]) -> messages."""

WEIGHTINGS: tuple[Weighting, ...] = ("prior", "posterior")
SEQUENCE_MODES: tuple[SequenceMode, ...] = ("thorough", "fast")
_SCORE_FLOATS = 1 << 26  # teacher-forced scoring: at most this many logits (256 MB) at a time


def _check_tau(tau: float) -> None:
    if (
        isinstance(tau, bool)
        or not isinstance(tau, int | float)
        or not (tau > 0 and tau < math.inf)
    ):
        raise ConfigError(
            f"tau (the temperature of the passage prior softmax(score / tau)) must be a positive "
            f"number, got {tau!r}"
        )


def passage_log_prior(scores: Sequence[float], tau: float = DEFAULT_TAU) -> tuple[float, ...]:
    """log p(z|x) = log_softmax(score_z / tau) over the passages (modeling_rag's doc_logprobs)."""
    _check_tau(tau)
    values = [float(s) for s in scores]
    if not values:
        raise ValueError("no passages: RAG decoding needs at least one retrieved passage (k=0)")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"retrieval scores must be finite numbers, got {values}")
    return _log_normalise([v / tau for v in values])


def passage_prior(scores: Sequence[float], tau: float = DEFAULT_TAU) -> tuple[float, ...]:
    """p(z|x) = softmax(score_z / tau): probabilities summing to 1."""
    return tuple(math.exp(v) for v in passage_log_prior(scores, tau))


def _log_normalise(values: Sequence[float]) -> tuple[float, ...]:
    top = max(values)
    if top == -math.inf:
        raise ValueError("every passage has probability 0 for this span")
    total = top + math.log(sum(math.exp(v - top) for v in values))
    return tuple(v - total for v in values)


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(v - top) for v in values))


def span_posterior(
    log_prior: Sequence[float], step_logprobs: Sequence[Sequence[float]], start: int, end: int
) -> tuple[float, ...]:
    """p(z | x, y[start:end]) ∝ p(z|x) · prod_{start <= t < end} p(y_t | x, z, y<t).

    ``step_logprobs[t][z]`` is log p(y_t | x, z, y<t) (TokenStep.passage_logprobs, or a
    Candidate's step_logprobs); -inf for a passage never scored (fast RAG-Sequence) gives it 0.
    An empty span gives the prior. The result sums to 1.
    """
    if not 0 <= start <= end <= len(step_logprobs):
        raise ValueError(
            f"span [{start}, {end}) is not inside the {len(step_logprobs)} generated tokens"
        )
    k = len(log_prior)
    totals = list(log_prior)
    for t in range(start, end):
        row = step_logprobs[t]
        if len(row) != k:
            raise ValueError(f"token {t} has log-probs for {len(row)} passages, the prior for {k}")
        for z in range(k):
            totals[z] += row[z]
    return tuple(math.exp(v) for v in _log_normalise(totals))


def _check_inputs(contexts: Sequence[Sequence[int]], scores: Sequence[float]) -> None:
    if len(contexts) == 0:
        raise ValueError("no passages: RAG decoding needs at least one retrieved passage (k=0)")
    if len(scores) != len(contexts):
        raise ValueError(
            f"{len(contexts)} passage contexts but {len(scores)} retrieval scores: one score per "
            "passage is needed"
        )
    for i, context in enumerate(contexts):
        if len(context) == 0:
            raise ValueError(f"the context of passage {i + 1} has no tokens")


def _check_max_new_tokens(max_new_tokens: int) -> None:
    if (
        isinstance(max_new_tokens, bool)
        or not isinstance(max_new_tokens, int)
        or max_new_tokens < 1
    ):
        raise ConfigError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")


def _check_temperature(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
