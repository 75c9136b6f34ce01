"""RAG-Token and RAG-Sequence decoding (Lewis et al. 2020, "Retrieval-Augmented Generation for
Knowledge-Intensive NLP Tasks", §2.2-2.5) over a local Hugging Face causal or seq2seq model.

Instead of one prompt holding all k retrieved passages, each passage z is its own context x_z:
(system instruction + that ONE passage, keeping its number [n] so the model can cite it + the
question). The prior over passages is p(z|x) = softmax(score_z / tau) over the k retrieval scores.

RAG-Token (``RagTokenDecoding``): every next token comes from the mixture
    p(y_t | x, y<t) = sum_z w_t(z) p(y_t | x, z, y<t)
computed as ONE batched forward over the k contexts per step, with their KV caches (causal LMs:
the k prompts left-padded into one batch with an attention mask and per-row position ids; seq2seq:
the k contexts through the encoder once, the decoder batched with its cache). ``weighting``:
  "prior"      w_t(z) = p(z|x) at every step: the paper's eq. for RAG-Token and exactly what
               RagTokenForGeneration.marginalize computes (the default);
  "posterior"  w_t(z) = p(z | x, y<t) ∝ p(z|x) prod_{s<t} p(y_s | x, z, y<s): the prior updated by
               the tokens chosen so far. The product over t of this mixture telescopes to
               sum_z p(z|x) p(y|x,z), the RAG-Sequence likelihood, so this is RAG-Sequence decoded
               greedily token by token (one pass, streams at once).
Greedy (temperature 0) or sampling (temperature > 0, from softmax(log mixture / temperature), seeded
by a torch.Generator). Each step records log p(y_t | x, z, y<t) for every passage, so the
posterior over passages given any span of the answer (a finished sentence, to choose its citation)
is p(z | x, y_span) ∝ p(z|x) prod_{t in span} p(y_t | x, z, y<t) (``span_posterior``).

RAG-Sequence (``rag_sequence_decode``): (a) candidates: per passage the greedy answer plus
``samples_per_passage`` samples, all rows decoded as one batch (rows that end are dropped from the
batch), identical candidates merged; (b) mode="thorough": every candidate y is re-scored under every
passage by a teacher-forced batched forward (causal LMs reuse the prompts' KV cache), and
p(y|x) = sum_z p(z|x) p(y|x,z); (c) mode="fast": p(y|x,z) is taken as 0 for passages whose decoding
did not produce y, so no extra forward is needed. The best candidate, its log p(y|x) and its
posterior over passages are returned; every candidate keeps its per-token, per-passage log-probs.

Two layers. Token ids, for any HF model (what the unit tests check against brute force):
    passage_log_prior(scores, tau=DEFAULT_TAU) -> tuple[float, ...]
    passage_prior(scores, tau=DEFAULT_TAU) -> tuple[float, ...]
    RagTokenDecoding(model, contexts, scores, *, max_new_tokens, eos_token_ids=(), tau=DEFAULT_TAU,
                     temperature=0.0, rng=None, stop=None, weighting="prior", lock=None)
        iterator of TokenStep; .steps, .token_ids, .finish_reason, .posterior(),
        .span_posterior(start, end), .run()
    rag_sequence_decode(model, contexts, scores, *, max_new_tokens, eos_token_ids=(),
                        tau=DEFAULT_TAU, mode="thorough", samples_per_passage=0,
                        sample_temperature=1.0, rng=None, stop=None, lock=None) -> SequenceDecoding
    span_posterior(log_prior, step_logprobs, start, end) -> tuple[float, ...]
Text, over a loaded TransformersGenerator (what the engine calls):
    require_token_probabilities(generator, strategy) -> TransformersGenerator
    passage_messages(question, passage, number) -> list[Message]
    rag_token_stream(generator, question, passages, *, max_new_tokens, ...) -> RagTokenStream
    rag_sequence_stream(generator, question, passages, *, max_new_tokens, ...) -> RagSequenceStream
Both streams are iterators of new text pieces (cut as TextIteratorStreamer cuts them: cumulative ids
decoded, the new suffix given up to the last space, at once after a newline or a CJK character, so
multi-byte characters and merged tokens never come out half-made) and keep the decoding readable:
.token_ids, .finish_reason, .posterior(), .span_posterior(start, end) over token positions, and
.token_span(char_start, char_end) mapping a sentence of .text to its token positions. RAG-Sequence
can only choose once every candidate is decoded and scored, so its stream's first next() runs the
whole decoding and the chosen answer then comes out in pieces (no streaming during decoding).

Choosing tau: retrieval scores here are fused similarities in about [0, 1] (RagModel's doc_scores
are DPR dot products, tens apart, used with tau = 1). With tau = 0.1 a score 0.1 higher weighs e
times more; tau -> 0 keeps only the top passage, large tau makes the prior uniform. 0.1 is a
starting point until it is fitted on dev data.

Correspondence with transformers/models/rag/modeling_rag.py (transformers 5.24):
- passage_log_prior is ``nn.functional.log_softmax(doc_scores, dim=1)`` of
  RagTokenForGeneration.marginalize and RagSequenceForGeneration.get_nll, with scores / tau.
- One RAG-Token step is RagTokenForGeneration.marginalize: ``log_softmax(seq_logits)`` viewed as
  (batch, n_docs, len, vocab), plus ``doc_logprobs``, ``logsumexp`` over the docs dimension.
  RagTokenForGeneration.generate runs the generator over batch * n_docs rows (``extend_enc_output``),
  marginalises inside forward (``prepare_inputs_for_generation`` sets do_marginalize=True) and lets
  greedy / sampling act on the marginal log-probs, the cache holding n_docs rows per hypothesis
  (``_reorder_cache``'s ``_reorder_stacked``); RagTokenDecoding does the same for one hypothesis.
  HF has no "posterior" weighting, no tau and no per-passage log-probs or posterior in its output.
- mode="thorough" is RagSequenceForGeneration.generate: candidates from ``self.generator.generate``
  on each doc (num_beams beams each; here greedy + samples), ``do_deduplication`` (identical id
  sequences merged), then ``self(..., labels=output_sequences, exclude_bos_score=True)`` scores every
  candidate under every doc; get_nll gathers each target token's log-prob, adds ``doc_logprobs`` once
  per sequence (at the 2nd position because the 1st is BOS and excluded: here the decoder start
  token is never part of a candidate), masks pads after EOS (here a candidate ends at its EOS, whose
  probability counts), sums over tokens and takes ``logsumexp`` over docs; ``topk(-loss)`` picks.
- mode="fast" is the paper's Fast Decoding (§2.5: p(y|x,z_i) ≈ 0 when y was not produced from
  x, z_i); modeling_rag.py does not implement it (its generate is always thorough, and
  do_deduplication only merges duplicates), so the definition is the paper's.
Logits processors (repetition penalty, forced BOS, ...) are not applied.

Concurrency: decoding runs in the consumer's thread, one model call per ``next()`` (RAG-Token) or all
at the first ``next()`` (RAG-Sequence). Every model call holds ``lock`` (the text layer passes the
generator's, so it queues with TransformersGenerator.stream and with other decodings). ``stop``
ends decoding before the next model call; closing an iterator early stops it too.
"""

from __future__ import annotations

import copy
import inspect
import math
import threading
from collections.abc import Callable, Collection, Generator, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from rag_core.errors import ConfigError, GenerationError
from rag_core.generators.transformers import TransformersGenerator
from rag_core.models import configure_threads
from rag_core.prompting import SYSTEM_PROMPT, format_passage
from rag_core.types import Hit, Message

if TYPE_CHECKING:
    import torch

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

# -- prior, posterior, validation ----------------------------------------------------------------


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


# -- the k contexts as one batch -------------------------------------------------------------------


def _first_id(value: Any) -> int | None:
    if isinstance(value, list | tuple):
        return int(value[0]) if value else None
    return None if value is None else int(value)


def _pad_id(model: Any) -> int:
    """Any id will do for padding (it is masked); the model's pad, else EOS, else 0."""
    for source in (model.config, getattr(model, "generation_config", None)):
        for name in ("pad_token_id", "eos_token_id"):
            value = _first_id(getattr(source, name, None))
            if value is not None:
                return value
    return 0


class _Contexts:
    """k token contexts as one batch with a KV cache, for a causal or an encoder-decoder LM.

    Causal: left-padded to one width, attention mask, position ids counted from each row's first
    real token (as generate() does), one DynamicCache; every step appends one token per row.
    Seq2seq: right-padded through the encoder once; the decoder starts from decoder_start_token_id
    and runs batched with an EncoderDecoderCache. ``select`` keeps / repeats rows (the cache too);
    ``score`` teacher-forces continuations after the prompts without touching the running cache.
    """

    def __init__(
        self,
        model: Any,
        contexts: Sequence[Sequence[int]],
        lock: AbstractContextManager[Any] | None,
        *,
        keep_prompt: bool = False,
    ) -> None:
        import torch

        self.model = model
        self.lock: AbstractContextManager[Any] = lock if lock is not None else nullcontext()
        self.keep_prompt = keep_prompt
        self.seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))
        self.device = getattr(model, "device", torch.device("cpu"))
        self.pad = _pad_id(model)
        k, width = len(contexts), max(len(c) for c in contexts)
        ids = torch.full((k, width), self.pad, dtype=torch.long)
        mask = torch.zeros((k, width), dtype=torch.long)
        for i, context in enumerate(contexts):
            row = torch.tensor(list(context), dtype=torch.long)
            if self.seq2seq:  # encoders see the whole input at once: pad on the right
                ids[i, : len(row)] = row
                mask[i, : len(row)] = 1
            else:  # causal: pad on the left, so every row's next token is in the last column
                ids[i, width - len(row) :] = row
                mask[i, width - len(row) :] = 1
        self.prompt_ids = ids.to(self.device)
        self.prompt_mask = mask.to(self.device)
        self.start_id: int | None = None
        if self.seq2seq:
            self.start_id = _first_id(
                getattr(model.generation_config, "decoder_start_token_id", None)
            )
            if self.start_id is None:
                self.start_id = _first_id(getattr(model.config, "decoder_start_token_id", None))
            if self.start_id is None:
                raise ValueError("the encoder-decoder model has no decoder_start_token_id")
        params = inspect.signature(model.forward).parameters
        self.keep_kwargs = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        self.cache: Any = None
        self.first_logp: torch.Tensor | None = None
        self.prompt_cache: Any = None

    def _new_cache(self) -> Any:
        from transformers import DynamicCache, EncoderDecoderCache

        if self.seq2seq:
            return EncoderDecoderCache(
                DynamicCache(config=self.model.config), DynamicCache(config=self.model.config)
            )
        return DynamicCache(config=self.model.config)

    def start(self) -> torch.Tensor:
        """Prefill / encode: log-probs (k, vocab) of the first answer token under each context."""
        import torch

        with self.lock, torch.no_grad():
            cache = self._new_cache()
            if self.seq2seq:
                assert self.start_id is not None
                encoder = self.model.get_encoder()
                self.encoder_out = encoder(
                    input_ids=self.prompt_ids, attention_mask=self.prompt_mask, return_dict=True
                )
                self.prompt_hidden = self.encoder_out.last_hidden_state
                self.enc_mask = self.prompt_mask
                start = torch.full(
                    (len(self.prompt_ids), 1), self.start_id, dtype=torch.long, device=self.device
                )
                out = self.model(
                    encoder_outputs=self.encoder_out,
                    attention_mask=self.enc_mask,
                    decoder_input_ids=start,
                    cache=cache,
                    use_cache=True,
                )
            else:
                positions = (self.prompt_mask.cumsum(-1) - 1).masked_fill(self.prompt_mask == 0, 1)
                out = self.model(
                    input_ids=self.prompt_ids,
                    attention_mask=self.prompt_mask,
                    position_ids=positions,
                    cache=cache,
                    use_cache=True,
                    **self.keep_kwargs,
                )
                self.mask = self.prompt_mask
                self.next_pos = positions[:, -1:] + 1
            self.cache = out.cache if getattr(out, "cache", None) is not None else cache
            logp = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
            if self.keep_prompt:
                self.first_logp = logp
                if not self.seq2seq:
                    self.prompt_cache = copy.deepcopy(self.cache)
        return logp

    def advance(self, tokens: Sequence[int]) -> torch.Tensor:
        """Append one token per row; log-probs (rows, vocab) of the token after it."""
        import torch

        step = torch.tensor(list(tokens), dtype=torch.long, device=self.device).view(-1, 1)
        with self.lock, torch.no_grad():
            if self.seq2seq:
                out = self.model(
                    encoder_outputs=self.encoder_out,
                    attention_mask=self.enc_mask,
                    decoder_input_ids=step,
                    cache=self.cache,
                    use_cache=True,
                )
            else:
                self.mask = torch.cat([self.mask, self.mask.new_ones((len(step), 1))], dim=-1)
                out = self.model(
                    input_ids=step,
                    attention_mask=self.mask,
                    position_ids=self.next_pos,
                    cache=self.cache,
                    use_cache=True,
                )
                self.next_pos = self.next_pos + 1
            if getattr(out, "cache", None) is not None:
                self.cache = out.cache
            return torch.log_softmax(out.logits[:, -1].float(), dim=-1)

    def select(self, rows: Sequence[int]) -> None:
        """Keep these rows, in this order (an index may repeat): cache, masks and positions."""
        import torch
        from transformers.modeling_outputs import BaseModelOutput

        index = torch.tensor(list(rows), dtype=torch.long, device=self.device)
        self.cache.batch_select_indices(index)
        if self.seq2seq:
            hidden = self.encoder_out.last_hidden_state[index]
            self.encoder_out = BaseModelOutput(last_hidden_state=hidden)
            self.enc_mask = self.enc_mask[index]
        else:
            self.mask = self.mask[index]
            self.next_pos = self.next_pos[index]

    def score(self, pairs: Sequence[tuple[int, Sequence[int]]]) -> list[list[float]]:
        """log p(y_t | x_z, y<t) for each (passage z, continuation y): teacher forcing, batched.

        Causal LMs continue from a copy of the prompts' KV cache (kept by start()); seq2seq models
        rerun the decoder on the stored encoder states. Needs ``keep_prompt=True``.
        """
        import torch
        from transformers.modeling_outputs import BaseModelOutput

        assert self.first_logp is not None, "score() needs keep_prompt=True and start()"
        results: list[list[float]] = []
        vocab = self.first_logp.shape[-1]
        longest = max((len(y) for _, y in pairs), default=1)
        group = max(1, _SCORE_FLOATS // max(1, longest * vocab))
        for begin in range(0, len(pairs), group):
            chunk = pairs[begin : begin + group]
            width = max(len(y) for _, y in chunk)
            zs = torch.tensor([z for z, _ in chunk], dtype=torch.long, device=self.device)
            targets = torch.full((len(chunk), width), self.pad, dtype=torch.long)
            for i, (_, y) in enumerate(chunk):
                targets[i, : len(y)] = torch.tensor(list(y), dtype=torch.long)
            targets = targets.to(self.device)
            with self.lock, torch.no_grad():
                if self.seq2seq:
                    assert self.start_id is not None
                    start = targets.new_full((len(chunk), 1), self.start_id)
                    out = self.model(
                        encoder_outputs=BaseModelOutput(last_hidden_state=self.prompt_hidden[zs]),
                        attention_mask=self.prompt_mask[zs],
                        decoder_input_ids=torch.cat([start, targets[:, :-1]], dim=-1),
                        use_cache=False,
                    )
                    logp = torch.log_softmax(out.logits.float(), dim=-1)
                else:
                    logp = self.first_logp[zs].unsqueeze(1)
                    if width > 1:
                        cache = copy.deepcopy(self.prompt_cache)
                        cache.batch_select_indices(zs)
                        prompt_mask = self.prompt_mask[zs]
                        mask = torch.cat(
                            [prompt_mask, prompt_mask.new_ones((len(chunk), width - 1))], -1
                        )
                        offsets = torch.arange(width - 1, device=self.device)
                        positions = prompt_mask.sum(-1, keepdim=True) + offsets
                        out = self.model(
                            input_ids=targets[:, :-1],
                            attention_mask=mask,
                            position_ids=positions,
                            cache=cache,
                            use_cache=True,
                        )
                        rest = torch.log_softmax(out.logits.float(), dim=-1)
                        logp = torch.cat([logp, rest], dim=1)
            token_logp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            for i, (_, y) in enumerate(chunk):
                results.append(token_logp[i, : len(y)].tolist())
        return results


# -- RAG-Token -----------------------------------------------------------------------------------


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
    """RAG-Token decoding over token ids: an iterator of TokenStep, readable while it runs.

    ``contexts[z]`` are the prompt ids of passage z (for a causal LM, the full prompt after its
    chat template; for seq2seq, the encoder input) and ``scores[z]`` its retrieval score.
    Decoding ends after an ``eos_token_ids`` token (which is the last step), after
    ``max_new_tokens`` steps, or before the next model call once ``stop`` is set; ``finish_reason``
    then says which. Arguments are checked here; the model runs on the first ``next()``.
    """

    def __init__(
        self,
        model: Any,
        contexts: Sequence[Sequence[int]],
        scores: Sequence[float],
        *,
        max_new_tokens: int,
        eos_token_ids: Collection[int] = (),
        tau: float = DEFAULT_TAU,
        temperature: float = 0.0,
        rng: torch.Generator | None = None,
        stop: threading.Event | None = None,
        weighting: Weighting = "prior",
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        _check_inputs(contexts, scores)
        _check_max_new_tokens(max_new_tokens)
        _check_temperature("temperature", temperature)
        if weighting not in WEIGHTINGS:
            raise ConfigError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        self.log_prior = passage_log_prior(scores, tau)
        self.model = model
        self.contexts = [list(c) for c in contexts]
        self.max_new_tokens = max_new_tokens
        self.eos_token_ids = frozenset(int(i) for i in eos_token_ids)
        self.temperature = float(temperature)
        self.rng = rng
        self.stop = stop
        self.weighting = weighting
        self.lock = lock
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
        return tuple(math.exp(v) for v in self.log_prior)

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
        k = len(self.contexts)
        batch = _Contexts(self.model, self.contexts, self.lock)
        logp = batch.start()
        log_prior = torch.tensor(self.log_prior, dtype=torch.float64, device=logp.device)
        so_far = torch.zeros(k, dtype=torch.float64, device=logp.device)
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
            if token in self.eos_token_ids:
                self.finish_reason = "eos"
            elif t + 1 == self.max_new_tokens:
                self.finish_reason = "length"
            yield step
            if self.finish_reason is not None:
                return
            if self._stopped():
                self.finish_reason = "stopped"
                return
            logp = batch.advance([token] * k)


# -- RAG-Sequence --------------------------------------------------------------------------------


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


def _check_sequence_settings(
    max_new_tokens: int, mode: str, samples_per_passage: int, sample_temperature: float
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
            "sample_temperature must be > 0 when samples_per_passage > 0 (at 0 every sample would "
            "repeat the greedy answer)"
        )


def rag_sequence_decode(
    model: Any,
    contexts: Sequence[Sequence[int]],
    scores: Sequence[float],
    *,
    max_new_tokens: int,
    eos_token_ids: Collection[int] = (),
    tau: float = DEFAULT_TAU,
    mode: SequenceMode = "thorough",
    samples_per_passage: int = 0,
    sample_temperature: float = 1.0,
    rng: torch.Generator | None = None,
    stop: threading.Event | None = None,
    lock: AbstractContextManager[Any] | None = None,
) -> SequenceDecoding:
    """RAG-Sequence over token ids: candidates per passage, scored 'thorough' or 'fast'.

    Per passage: the greedy answer and ``samples_per_passage`` samples at ``sample_temperature``
    (> 0 when sampling), all k·(1 + samples) rows decoded as one batch. If ``stop`` is set
    meanwhile, the candidates so far (cut short) are scored the fast way.
    """
    import torch

    _check_inputs(contexts, scores)
    _check_sequence_settings(max_new_tokens, mode, samples_per_passage, sample_temperature)
    log_prior = passage_log_prior(scores, tau)
    k = len(contexts)
    eos = frozenset(int(i) for i in eos_token_ids)
    per = 1 + samples_per_passage
    passage_of = [row // per for row in range(k * per)]
    sampled = [row % per != 0 for row in range(k * per)]
    tokens: list[list[int]] = [[] for _ in passage_of]
    logps: list[list[float]] = [[] for _ in passage_of]
    stopped = stop is not None and stop.is_set()
    batch: _Contexts | None = None
    if not stopped:
        batch = _Contexts(model, contexts, lock, keep_prompt=mode == "thorough")
        logp = batch.start()
        if per > 1:
            batch.select(passage_of)
            logp = logp[passage_of]
        alive = list(range(len(passage_of)))  # batch position -> row
        for t in range(max_new_tokens):
            if stop is not None and stop.is_set():
                stopped = True
                break
            chosen = logp.argmax(dim=-1)
            draw = [pos for pos, row in enumerate(alive) if sampled[row]]
            if draw:
                probs = torch.softmax(logp[draw] / sample_temperature, dim=-1)
                chosen[draw] = torch.multinomial(probs, 1, generator=rng).squeeze(-1)
            picked = chosen.tolist()
            picked_logp = logp.gather(-1, chosen.unsqueeze(-1)).squeeze(-1).tolist()
            for pos, row in enumerate(alive):
                tokens[row].append(picked[pos])
                logps[row].append(picked_logp[pos])
            keep = [pos for pos, row in enumerate(alive) if picked[pos] not in eos]
            if not keep or t + 1 == max_new_tokens:
                break
            if len(keep) < len(alive):  # rows that ended leave the batch
                batch.select(keep)
                alive = [alive[pos] for pos in keep]
                picked = [picked[pos] for pos in keep]
            logp = batch.advance(picked)

    # candidates: identical id sequences merged (modeling_rag's do_deduplication), with the
    # log-probs of each passage that produced them
    known: dict[tuple[int, ...], dict[int, list[float]]] = {}
    for row, z in enumerate(passage_of):
        known.setdefault(tuple(tokens[row]), {}).setdefault(z, logps[row])
    sources = {y: tuple(sorted(by_z)) for y, by_z in known.items()}
    scoring: SequenceMode = "fast" if stopped else mode
    if scoring == "thorough":  # RagSequenceForGeneration.generate's self(..., labels=...) / get_nll
        pairs = [(z, y) for y, by_z in known.items() for z in range(k) if z not in by_z and y]
        if pairs:
            assert batch is not None
            for (z, y), scored in zip(pairs, batch.score(pairs), strict=True):
                known[y][z] = scored
    candidates = []
    for y, by_z in known.items():
        steps = tuple(
            tuple(by_z[z][t] if z in by_z else -math.inf for z in range(k)) for t in range(len(y))
        )
        per_passage = tuple(math.fsum(by_z[z]) if z in by_z else -math.inf for z in range(k))
        if not y:  # stopped before any token: the empty answer, as likely under every passage
            per_passage = tuple(0.0 for _ in range(k))
        joint = [p + q for p, q in zip(log_prior, per_passage, strict=True)]
        candidates.append(
            Candidate(
                token_ids=y,
                sources=sources[y],
                step_logprobs=steps,
                passage_logprobs=per_passage,
                logprob=_logsumexp(joint),
                posterior=tuple(math.exp(v) for v in _log_normalise(joint)),
                ended=bool(y) and y[-1] in eos,
            )
        )
    candidates.sort(key=lambda c: -c.logprob)
    finish: FinishReason = "stopped" if stopped else "eos" if candidates[0].ended else "length"
    return SequenceDecoding(tuple(candidates), log_prior, scoring, finish)


# -- text: prompts, detokenizing, streams over a TransformersGenerator ---------------------------


def require_token_probabilities(generator: object, strategy: str) -> TransformersGenerator:
    """The generator, if it can give token probabilities (a local transformers model).

    RAG-Token / RAG-Sequence need log p(y_t | x, z, y<t) for every passage; a chat server (e.g.
    an OpenAI-compatible one) streams text only, so the strategy cannot run on it.
    """
    if isinstance(generator, TransformersGenerator):
        return generator
    name = getattr(generator, "name", None) or type(generator).__name__
    raise ConfigError(
        f"the {strategy!r} decoding strategy needs the model's token probabilities, which only a "
        f"local transformers generator gives; generator {name!r} ({type(generator).__name__}) "
        "does not: set RAGCHAT_GENERATOR to a local model ('default', a folder or a model id) or "
        "choose another strategy"
    )


def passage_messages(question: str, passage: Hit | str, number: int) -> list[Message]:
    """The chat messages for one passage: system prompt, '[n] (document, p. 3) text', question.

    The style of rag_core.prompting.build_messages with one passage, which keeps its own number
    so the model cites it as [n]. A plain string passage is shown as '[n] text'.
    """
    if isinstance(passage, Hit):
        block = format_passage(passage, number)
    else:
        block = f"[{number}] {' '.join(passage.split())}"
    user = f"Passages:\n{block}\n\nQuestion: {question.strip()}"
    return [Message("system", SYSTEM_PROMPT), Message("user", user)]


def _is_cjk(char: str) -> bool:
    """A CJK ideograph (transformers TextStreamer._is_chinese_char): words without spaces."""
    cp = ord(char)
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


class _Detokenizer:
    """Token ids -> text pieces, cut as transformers' TextStreamer cuts them.

    The ids since the last newline are decoded together and the new suffix is given up to its
    last space (at once after a newline or a CJK character), so a character split over several
    byte tokens, or a token that merges with the next, is never given half-made. ``char_ends[t]``
    is where token t's text ends in the answer.
    """

    def __init__(self, tokenizer: Any, lock: AbstractContextManager[Any] | None = None) -> None:
        self.tokenizer = tokenizer
        self.lock: AbstractContextManager[Any] = lock if lock is not None else nullcontext()
        self.ids: list[int] = []
        self.printed = 0  # chars of decode(self.ids) already given
        self.base = 0  # chars given before self.ids began
        self.pieces: list[str] = []
        self.char_ends: list[int] = []

    def _decode(self) -> str:
        with self.lock:
            return str(self.tokenizer.decode(self.ids, skip_special_tokens=True))

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        text = self._decode()
        self.char_ends.append(self.base + len(text))
        if text.endswith("\n"):
            piece = text[self.printed :]
            self.base += len(text)
            self.ids, self.printed = [], 0
        elif text and _is_cjk(text[-1]):
            piece = text[self.printed :]
            self.printed += len(piece)
        else:
            piece = text[self.printed : text.rfind(" ") + 1]
            self.printed += len(piece)
        self.pieces.append(piece)
        return piece

    def flush(self) -> str:
        piece = self._decode()[self.printed :] if self.ids else ""
        self.base += self.printed + len(piece)
        self.ids, self.printed = [], 0
        self.pieces.append(piece)
        return piece

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def token_span(self, char_start: int, char_end: int) -> tuple[int, int]:
        """Token positions [start, end) whose text covers characters [char_start, char_end)."""
        if not 0 <= char_start <= char_end:
            raise ValueError(f"bad character span [{char_start}, {char_end})")
        ends = self.char_ends
        start = next((t for t, end in enumerate(ends) if end > char_start), len(ends))
        stop = next((t + 1 for t, end in enumerate(ends) if end >= char_end), len(ends))
        return start, max(start, stop)


class RagTokenStream:
    """RAG-Token text: iterate for the answer's new text pieces; the decoding stays readable.

    ``decoding`` is the RagTokenDecoding (steps, per-passage log-probs). An error inside the model
    is raised here as GenerationError, with the original as __cause__.
    """

    def __init__(
        self,
        decoding: RagTokenDecoding,
        tokenizer: Any,
        tokenizer_lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self.decoding = decoding
        self._text = _Detokenizer(tokenizer, tokenizer_lock)
        self._iterator = self._pieces()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self._iterator)

    def close(self) -> None:
        self._iterator.close()
        self.decoding.close()

    def _pieces(self) -> Generator[str, None, None]:
        try:
            for step in self.decoding:
                piece = self._text.push(step.token_id)
                if piece:
                    yield piece
        except Exception as exc:
            raise GenerationError(
                f"RAG-Token decoding failed: {type(exc).__name__}: {exc}"
            ) from exc
        tail = self._text.flush()
        if tail:
            yield tail

    @property
    def text(self) -> str:
        """The text given so far (all of it once the iterator is exhausted)."""
        return self._text.text

    @property
    def token_ids(self) -> tuple[int, ...]:
        return self.decoding.token_ids

    @property
    def finish_reason(self) -> FinishReason | None:
        return self.decoding.finish_reason

    @property
    def prior(self) -> tuple[float, ...]:
        return self.decoding.prior

    def posterior(self) -> tuple[float, ...]:
        return self.decoding.posterior()

    def span_posterior(self, start: int, end: int) -> tuple[float, ...]:
        return self.decoding.span_posterior(start, end)

    def token_span(self, char_start: int, char_end: int) -> tuple[int, int]:
        """Token positions of the characters [char_start, char_end) of ``text`` (a sentence)."""
        return self._text.token_span(char_start, char_end)


class RagSequenceStream:
    """RAG-Sequence text: the first ``next()`` decodes and scores every candidate; the chosen
    answer then comes out in pieces. ``decoding`` (a SequenceDecoding) is set from then on."""

    def __init__(
        self,
        run: Callable[[], SequenceDecoding],
        tokenizer: Any,
        tokenizer_lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        self._run = run
        self._tokenizer = tokenizer
        self._tokenizer_lock = tokenizer_lock
        self._text = _Detokenizer(tokenizer, tokenizer_lock)
        self.decoding: SequenceDecoding | None = None
        self._iterator = self._pieces()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        return next(self._iterator)

    def close(self) -> None:
        self._iterator.close()

    def _pieces(self) -> Generator[str, None, None]:
        try:
            self.decoding = self._run()
        except Exception as exc:
            raise GenerationError(
                f"RAG-Sequence decoding failed: {type(exc).__name__}: {exc}"
            ) from exc
        for token in self.decoding.best.token_ids:
            piece = self._text.push(token)
            if piece:
                yield piece
        tail = self._text.flush()
        if tail:
            yield tail

    def _done(self) -> SequenceDecoding:
        if self.decoding is None:
            raise RuntimeError("RAG-Sequence has not decoded yet: iterate the stream first")
        return self.decoding

    @property
    def text(self) -> str:
        return self._text.text

    @property
    def token_ids(self) -> tuple[int, ...]:
        return self._done().best.token_ids

    @property
    def finish_reason(self) -> FinishReason | None:
        return None if self.decoding is None else self.decoding.finish_reason

    def candidate_texts(self) -> tuple[str, ...]:
        """Every candidate's text, best first (same order as decoding.candidates)."""
        with self._tokenizer_lock if self._tokenizer_lock is not None else nullcontext():
            return tuple(
                str(self._tokenizer.decode(list(c.token_ids), skip_special_tokens=True))
                for c in self._done().candidates
            )

    def posterior(self) -> tuple[float, ...]:
        return self._done().best.posterior

    def span_posterior(self, start: int, end: int) -> tuple[float, ...]:
        return self._done().span_posterior(start, end)

    def token_span(self, char_start: int, char_end: int) -> tuple[int, int]:
        return self._text.token_span(char_start, char_end)


def _eos_ids(generator: TransformersGenerator) -> frozenset[int]:
    """The ids that end an answer: the model's generation_config EOS ids and the tokenizer's."""
    ids: set[int] = set()
    value = getattr(generator._model.generation_config, "eos_token_id", None)
    if isinstance(value, list | tuple):
        ids.update(int(v) for v in value)
    elif value is not None:
        ids.add(int(value))
    if generator._tokenizer.eos_token_id is not None:
        ids.add(int(generator._tokenizer.eos_token_id))
    return frozenset(ids)


def _passage_contexts(
    generator: TransformersGenerator,
    question: str,
    passages: Sequence[Hit | str],
    scores: Sequence[float] | None,
    messages_for: MessagesFor,
) -> tuple[list[list[int]], list[float]]:
    """Each passage's prompt ids (as TransformersGenerator encodes a prompt) and its score."""
    if not passages:
        raise ValueError("no passages: RAG decoding needs at least one retrieved passage (k=0)")
    if scores is None:
        if not all(isinstance(p, Hit) for p in passages):
            raise ValueError("scores are required when passages are plain strings")
        scores = [p.score for p in passages if isinstance(p, Hit)]
    if len(scores) != len(passages):
        raise ValueError(f"{len(passages)} passages but {len(scores)} scores")
    generator.load()
    configure_threads(generator.threads)
    contexts = []
    for number, passage in enumerate(passages, start=1):
        try:
            encoded = generator._encode(messages_for(question, passage, number))
        except Exception as exc:
            raise GenerationError(f"cannot build the prompt of passage {number}: {exc}") from exc
        contexts.append([int(i) for i in encoded["input_ids"][0].tolist()])
    return contexts, [float(s) for s in scores]


def rag_token_stream(
    generator: object,
    question: str,
    passages: Sequence[Hit | str],
    *,
    max_new_tokens: int,
    scores: Sequence[float] | None = None,
    tau: float = DEFAULT_TAU,
    temperature: float = 0.0,
    rng: torch.Generator | None = None,
    stop: threading.Event | None = None,
    weighting: Weighting = "prior",
    messages_for: MessagesFor = passage_messages,
) -> RagTokenStream:
    """RAG-Token answer text from a local generator, one prompt per passage (numbered from 1).

    ``scores`` default to the hits' retrieval scores. Settings are checked before returning; the
    prompts are encoded here and the model runs as the stream is iterated.
    """
    gen = require_token_probabilities(generator, "rag-token")
    contexts, values = _passage_contexts(gen, question, passages, scores, messages_for)
    decoding = RagTokenDecoding(
        gen._model,
        contexts,
        values,
        max_new_tokens=max_new_tokens,
        eos_token_ids=_eos_ids(gen),
        tau=tau,
        temperature=temperature,
        rng=rng,
        stop=stop,
        weighting=weighting,
        lock=gen._generate_lock,
    )
    return RagTokenStream(decoding, gen._tokenizer, gen._tokenizer_lock)


def rag_sequence_stream(
    generator: object,
    question: str,
    passages: Sequence[Hit | str],
    *,
    max_new_tokens: int,
    scores: Sequence[float] | None = None,
    tau: float = DEFAULT_TAU,
    mode: SequenceMode = "thorough",
    samples_per_passage: int = 0,
    sample_temperature: float = 1.0,
    rng: torch.Generator | None = None,
    stop: threading.Event | None = None,
    messages_for: MessagesFor = passage_messages,
) -> RagSequenceStream:
    """RAG-Sequence answer text from a local generator (see RagSequenceStream for when it runs)."""
    gen = require_token_probabilities(generator, f"rag-sequence-{mode}")
    # check the settings now, not at the first next()
    _check_sequence_settings(max_new_tokens, mode, samples_per_passage, sample_temperature)
    _check_tau(tau)
    contexts, values = _passage_contexts(gen, question, passages, scores, messages_for)
    passage_log_prior(values, tau)
    eos = _eos_ids(gen)

    def run() -> SequenceDecoding:
        return rag_sequence_decode(
            gen._model,
            contexts,
            values,
            max_new_tokens=max_new_tokens,
            eos_token_ids=eos,
            tau=tau,
            mode=mode,
            samples_per_passage=samples_per_passage,
            sample_temperature=sample_temperature,
            rng=rng,
            stop=stop,
            lock=gen._generate_lock,
        )

    return RagSequenceStream(run, gen._tokenizer, gen._tokenizer_lock)
