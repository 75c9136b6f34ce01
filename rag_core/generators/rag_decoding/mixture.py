"""The k passages both decodings mix: their contexts, the prior over them, and the model."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from rag_core.generators.rag_decoding.prior import DEFAULT_TAU, _check_inputs, passage_log_prior


@dataclass(frozen=True, eq=False)
class PassageMixture:
    """What RAG-Token and RAG-Sequence share: k passage contexts on one model and the prior.

    ``contexts[z]`` are the prompt ids of passage z (for a causal LM, the full prompt after its
    chat template; for seq2seq, the encoder input) and ``scores[z]`` its retrieval score; the
    prior p(z|x) = softmax(score_z / tau) is computed once, as ``log_prior``. An answer ends
    after one of ``eos_token_ids``; every model call holds ``lock``. Checked on construction
    (ValueError for missing or empty contexts and mismatched scores, ConfigError for tau); the
    contexts, scores and EOS ids are stored as tuples and a frozenset.
    """

    model: Any
    contexts: Sequence[Sequence[int]]
    scores: Sequence[float]
    _: KW_ONLY
    tau: float = DEFAULT_TAU
    eos_token_ids: Collection[int] = ()
    lock: AbstractContextManager[Any] | None = None
    log_prior: tuple[float, ...] = field(init=False)

    def __post_init__(self) -> None:
        _check_inputs(self.contexts, self.scores)
        fixed = {
            "contexts": tuple(tuple(int(i) for i in c) for c in self.contexts),
            "scores": tuple(float(s) for s in self.scores),
            "eos_token_ids": frozenset(int(i) for i in self.eos_token_ids),
            "log_prior": passage_log_prior(self.scores, self.tau),
        }
        for name, value in fixed.items():
            object.__setattr__(self, name, value)

    @property
    def k(self) -> int:
        """The number of passages."""
        return len(self.contexts)

    @property
    def prior(self) -> tuple[float, ...]:
        """p(z|x), summing to 1."""
        return tuple(math.exp(v) for v in self.log_prior)
