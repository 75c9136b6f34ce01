"""RAG-Token: each next token from the mixture over passages, one batched forward per step."""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rag_core.errors import ConfigError
from rag_core.generators.rag_decoding.contexts import _Contexts
from rag_core.generators.rag_decoding.mixture import PassageMixture
from rag_core.generators.rag_decoding.prior import (
    WEIGHTINGS,
    FinishReason,
    Weighting,
    _check_max_new_tokens,
    _check_temperature,
    span_posterior,
)

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class TokenStep:
    """One RAG-Token step: the token chosen and how likely it was, overall and per passage.

    ``logprob`` is log p(y_t | x, y<t) under the mixture it was chosen from (at temperature 1, even
    when sampling at another temperature); ``passage_logprobs[z]`` is log p(y_t | x, z, y<t).
    """

    token_id: int
    logprob: float
    passage_logprobs: tuple[float, ...]


class RagTokenDecoding:
    """RAG-Token decoding over a PassageMixture: an iterator of TokenStep, readable while it runs.

    Decoding ends after one of the mixture's EOS tokens (which is the last step), after
    ``max_new_tokens`` steps, or before the next model call once ``stop`` is set;
    ``finish_reason`` then says which. Settings are checked here; the model runs on the first
    ``next()``.
    """

    def __init__(
        self,
        mixture: PassageMixture,
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        rng: torch.Generator | None = None,
        stop: threading.Event | None = None,
        weighting: Weighting = "prior",
    ) -> None:
        _check_max_new_tokens(max_new_tokens)
        _check_temperature("temperature", temperature)
        if weighting not in WEIGHTINGS:
            raise ConfigError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        self.mixture = mixture
        self.log_prior = mixture.log_prior
        self.max_new_tokens = max_new_tokens
        self.temperature = float(temperature)
        self.rng = rng
        self.stop = stop
        self.weighting = weighting
        self.steps: list[TokenStep] = []
        self.finish_reason: FinishReason | None = None
        self._iterator = self._decode()

    def __iter__(self) -> Iterator[TokenStep]:
        return self

    def __next__(self) -> TokenStep:
        return next(self._iterator)

    def close(self) -> None:
        """Stop early (as closing a generator does); finish_reason becomes 'stopped'."""
        self._iterator.close()
        if self.finish_reason is None:
            self.finish_reason = "stopped"

    def run(self) -> RagTokenDecoding:
        """Decode to the end; returns self (for ``RagTokenDecoding(...).run().token_ids``)."""
        for _ in self:
            pass
        return self

    @property
    def token_ids(self) -> tuple[int, ...]:
        return tuple(step.token_id for step in self.steps)

    @property
    def prior(self) -> tuple[float, ...]:
        return self.mixture.prior

    def span_posterior(self, start: int, end: int) -> tuple[float, ...]:
        """p(z | x, y[start:end]) over the tokens decoded so far (see ``span_posterior``)."""
        rows = [step.passage_logprobs for step in self.steps]
        return span_posterior(self.log_prior, rows, start, end)

    def posterior(self) -> tuple[float, ...]:
        """p(z | x, y) given every token decoded so far."""
        return self.span_posterior(0, len(self.steps))

    def _stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _choose(self, mixture: torch.Tensor) -> int:
        import torch

        if self.temperature == 0:
            return int(mixture.argmax())
        probs = torch.softmax(mixture / self.temperature, dim=-1)
        return int(torch.multinomial(probs, 1, generator=self.rng))

    def _decode(self) -> Generator[TokenStep, None, None]:
        import torch

        if self._stopped():
            self.finish_reason = "stopped"
            return
        passages = self.mixture
        batch = _Contexts(passages.model, passages.contexts, passages.lock)
        logp = batch.start()
        log_prior = torch.tensor(self.log_prior, dtype=torch.float64, device=logp.device)
        so_far = torch.zeros(passages.k, dtype=torch.float64, device=logp.device)
        for t in range(self.max_new_tokens):
            per_passage = logp.double()
            log_w = log_prior + so_far if self.weighting == "posterior" else log_prior
            log_w = log_w - torch.logsumexp(log_w, dim=0)
            # modeling_rag RagTokenForGeneration.marginalize: logsumexp_z(log w(z) + log p(y|x,z))
            mixture = torch.logsumexp(log_w.unsqueeze(-1) + per_passage, dim=0)
            token = self._choose(mixture)
            chosen = per_passage[:, token]
            so_far += chosen
            step = TokenStep(token, float(mixture[token]), tuple(chosen.tolist()))
            self.steps.append(step)
            if token in passages.eos_token_ids:
                self.finish_reason = "eos"
            elif t + 1 == self.max_new_tokens:
                self.finish_reason = "length"
            yield step
            if self.finish_reason is not None:
                return
            if self._stopped():
                self.finish_reason = "stopped"
                return
            logp = batch.advance([token] * passages.k)
