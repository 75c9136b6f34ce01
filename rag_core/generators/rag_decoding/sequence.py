"""RAG-Sequence: candidates per passage, re-scored under every passage (thorough) or not (fast)."""

from __future__ import annotations

import math
import threading
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rag_core.errors import ConfigError
from rag_core.generators.rag_decoding.contexts import _Contexts
from rag_core.generators.rag_decoding.mixture import PassageMixture
from rag_core.generators.rag_decoding.prior import (
    SEQUENCE_MODES,
    FinishReason,
    SequenceMode,
    _check_max_new_tokens,
    _check_temperature,
    _log_normalise,
    _logsumexp,
    span_posterior,
)

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Candidate:
    """One RAG-Sequence candidate answer and how likely it is under each passage.

    ``sources``: the passages whose decoding produced it. ``step_logprobs[t][z]`` is
    log p(y_t | x, z, y<t) and ``passage_logprobs[z]`` their sum, log p(y | x, z); both are -inf
    for passages that did not score it (mode 'fast'). ``logprob`` is log p(y | x) =
    logsumexp_z(log p(z|x) + log p(y|x,z)); ``posterior[z]`` = p(z | x, y). ``ended``: it ends
    with an EOS token (whose probability is included); otherwise it was cut at max_new_tokens.
    """

    token_ids: tuple[int, ...]
    sources: tuple[int, ...]
    step_logprobs: tuple[tuple[float, ...], ...]
    passage_logprobs: tuple[float, ...]
    logprob: float
    posterior: tuple[float, ...]
    ended: bool


@dataclass(frozen=True)
class SequenceDecoding:
    """RAG-Sequence's result: every candidate, best first, and how they were scored.

    ``mode`` is the scoring actually done ('fast' when a stop cut decoding short, whatever was
    asked). ``finish_reason`` is 'stopped' then, else whether the best candidate ended with EOS.
    """

    candidates: tuple[Candidate, ...]
    log_prior: tuple[float, ...]
    mode: SequenceMode
    finish_reason: FinishReason

    @property
    def best(self) -> Candidate:
        return self.candidates[0]

    def span_posterior(self, start: int, end: int) -> tuple[float, ...]:
        """p(z | x, y[start:end]) for the best candidate's tokens."""
        return span_posterior(self.log_prior, self.best.step_logprobs, start, end)


class RagSequenceDecoding:
    """RAG-Sequence over a PassageMixture: candidates per passage, scored 'thorough' or 'fast'.

    Per passage: the greedy answer and ``samples_per_passage`` samples at ``sample_temperature``
    (> 0 when sampling), all k·(1 + samples) rows decoded as one batch. Settings are checked
    here; ``run()`` decodes and scores (it can only choose once every candidate is scored). If
    ``stop`` is set meanwhile, the candidates so far (cut short) are scored the fast way.
    """

    def __init__(
        self,
        mixture: PassageMixture,
        *,
        max_new_tokens: int,
        mode: SequenceMode = "thorough",
        samples_per_passage: int = 0,
        sample_temperature: float = 1.0,
        rng: torch.Generator | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        _check_max_new_tokens(max_new_tokens)
        if mode not in SEQUENCE_MODES:
            raise ConfigError(f"RAG-Sequence mode must be one of {SEQUENCE_MODES}, got {mode!r}")
        samples = samples_per_passage
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
            raise ConfigError(f"samples_per_passage must be an integer >= 0, got {samples!r}")
        _check_temperature("sample_temperature", sample_temperature)
        if samples and sample_temperature == 0:
            raise ConfigError(
                "sample_temperature must be > 0 when samples_per_passage > 0 (at 0 every sample "
                "would repeat the greedy answer)"
            )
        self.mixture = mixture
        self.max_new_tokens = max_new_tokens
        self.mode: SequenceMode = mode
        self.samples_per_passage = samples
        self.sample_temperature = sample_temperature
        self.rng = rng
        self.stop = stop

    def run(self) -> SequenceDecoding:
        """Decode every candidate, score them, and return them best first."""
        mixture, stop = self.mixture, self.stop
        run = _Rows(mixture.k, 1 + self.samples_per_passage)
        batch: _Contexts | None = None
        if stop is None or not stop.is_set():
            thorough = self.mode == "thorough"
            batch = _Contexts(mixture.model, mixture.contexts, mixture.lock, keep_prompt=thorough)
            eos = mixture.eos_token_ids
            run.decode(batch, self.max_new_tokens, eos, self.sample_temperature, self.rng, stop)
        else:
            run.stopped = True
        known = run.candidates()
        sources = {y: tuple(sorted(by_z)) for y, by_z in known.items()}  # the passages that made y
        scoring: SequenceMode = "fast" if run.stopped else self.mode
        if scoring == "thorough":  # RagSequenceForGeneration.generate's self(labels=...) / get_nll
            pairs = [
                (z, y) for y, by_z in known.items() for z in run.passages if z not in by_z and y
            ]
            if pairs:
                assert batch is not None
                for (z, y), scored in zip(pairs, batch.score(pairs), strict=True):
                    known[y][z] = scored
        candidates = sorted(
            (_candidate(y, sources[y], by_z, mixture) for y, by_z in known.items()),
            key=lambda c: -c.logprob,
        )
        ended = candidates[0].ended
        finish: FinishReason = "stopped" if run.stopped else "eos" if ended else "length"
        return SequenceDecoding(tuple(candidates), mixture.log_prior, scoring, finish)


class _Rows:
    """The k·per decoding rows of RAG-Sequence: per passage, the greedy row then the samples."""

    def __init__(self, k: int, per: int) -> None:
        self.passages = range(k)
        self.passage_of = [row // per for row in range(k * per)]
        self.sampled = [row % per != 0 for row in range(k * per)]
        self.tokens: list[list[int]] = [[] for _ in self.passage_of]
        self.logps: list[list[float]] = [[] for _ in self.passage_of]
        self.per = per
        self.stopped = False

    def decode(
        self,
        batch: _Contexts,
        max_new_tokens: int,
        eos: Collection[int],
        temperature: float,
        rng: torch.Generator | None,
        stop: threading.Event | None,
    ) -> None:
        """All rows as one batch; rows that end leave it."""
        import torch

        logp = batch.start()
        if self.per > 1:
            batch.select(self.passage_of)
            logp = logp[self.passage_of]
        alive = list(range(len(self.passage_of)))  # batch position -> row
        for t in range(max_new_tokens):
            if stop is not None and stop.is_set():
                self.stopped = True
                return
            chosen = logp.argmax(dim=-1)
            draw = [pos for pos, row in enumerate(alive) if self.sampled[row]]
            if draw:
                probs = torch.softmax(logp[draw] / temperature, dim=-1)
                chosen[draw] = torch.multinomial(probs, 1, generator=rng).squeeze(-1)
            picked = chosen.tolist()
            picked_logp = logp.gather(-1, chosen.unsqueeze(-1)).squeeze(-1).tolist()
            for pos, row in enumerate(alive):
                self.tokens[row].append(picked[pos])
                self.logps[row].append(picked_logp[pos])
            keep = [pos for pos, row in enumerate(alive) if picked[pos] not in eos]
            if not keep or t + 1 == max_new_tokens:
                return
            if len(keep) < len(alive):
                batch.select(keep)
                alive = [alive[pos] for pos in keep]
                picked = [picked[pos] for pos in keep]
            logp = batch.advance(picked)

    def candidates(self) -> dict[tuple[int, ...], dict[int, list[float]]]:
        """Identical id sequences merged (modeling_rag's do_deduplication), with the log-probs
        of each passage that produced them."""
        known: dict[tuple[int, ...], dict[int, list[float]]] = {}
        for row, z in enumerate(self.passage_of):
            known.setdefault(tuple(self.tokens[row]), {}).setdefault(z, self.logps[row])
        return known


def _candidate(
    y: tuple[int, ...],
    sources: tuple[int, ...],
    by_z: dict[int, list[float]],
    mixture: PassageMixture,
) -> Candidate:
    """A candidate with p(y|x) = sum_z p(z|x) p(y|x,z) (0 where a passage did not score it)."""
    log_prior, k = mixture.log_prior, mixture.k
    steps = tuple(
        tuple(by_z[z][t] if z in by_z else -math.inf for z in range(k)) for t in range(len(y))
    )
    per_passage = tuple(math.fsum(by_z[z]) if z in by_z else -math.inf for z in range(k))
    if not y:  # stopped before any token: the empty answer, as likely under every passage
        per_passage = tuple(0.0 for _ in range(k))
    joint = [p + q for p, q in zip(log_prior, per_passage, strict=True)]
    return Candidate(
        token_ids=y,
        sources=sources,
        step_logprobs=steps,
        passage_logprobs=per_passage,
        logprob=_logsumexp(joint),
        posterior=tuple(math.exp(v) for v in _log_normalise(joint)),
        ended=bool(y) and y[-1] in mixture.eos_token_ids,
    )
