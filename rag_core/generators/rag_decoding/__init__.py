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

RAG-Sequence (``RagSequenceDecoding``): (a) candidates: per passage the greedy answer plus
``samples_per_passage`` samples, all rows decoded as one batch (rows that end are dropped from the
batch), identical candidates merged; (b) mode="thorough": every candidate y is re-scored under every
passage by a teacher-forced batched forward (causal LMs reuse the prompts' KV cache), and
p(y|x) = sum_z p(z|x) p(y|x,z); (c) mode="fast": p(y|x,z) is taken as 0 for passages whose decoding
did not produce y, so no extra forward is needed. The best candidate, its log p(y|x) and its
posterior over passages are returned; every candidate keeps its per-token, per-passage log-probs.

Two layers. Token ids, for any HF model (what the unit tests check against brute force). What
both decodings share is one PassageMixture, checked once, with the prior computed once:
    passage_log_prior(scores, tau=DEFAULT_TAU) -> tuple[float, ...]
    passage_prior(scores, tau=DEFAULT_TAU) -> tuple[float, ...]
    PassageMixture(model, contexts, scores, *, tau=DEFAULT_TAU, eos_token_ids=(), lock=None)
        .log_prior, .prior, .k
    RagTokenDecoding(mixture, *, max_new_tokens, temperature=0.0, rng=None, stop=None,
                     weighting="prior")
        iterator of TokenStep; .steps, .token_ids, .finish_reason, .posterior(),
        .span_posterior(start, end), .run()
    RagSequenceDecoding(mixture, *, max_new_tokens, mode="thorough", samples_per_passage=0,
                        sample_temperature=1.0, rng=None, stop=None)
        .run() -> SequenceDecoding
    span_posterior(log_prior, step_logprobs, start, end) -> tuple[float, ...]
Both check their settings when made and call the model only when run (iterated).
Text, over a loaded TransformersGenerator (what the engine calls):
    require_token_probabilities(generator, strategy) -> TransformersGenerator
    passage_messages(question, passage, number) -> list[Message]
    passage_prompts(generator, question, passages, *, scores=None, tau=DEFAULT_TAU,
                    messages_for=passage_messages) -> PassagePrompts (.generator, .mixture)
    PassagePrompts.stream(RagTokenDecoding(prompts.mixture, ...)) -> RagTokenStream
    PassagePrompts.stream(RagSequenceDecoding(prompts.mixture, ...)) -> RagSequenceStream
e.g.
    prompts = passage_prompts(generator, question, hits, tau=0.075)
    stream = prompts.stream(RagTokenDecoding(prompts.mixture, max_new_tokens=200, stop=halt))
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
at the first ``next()`` (RAG-Sequence). Every model call holds the PassageMixture's ``lock``
(passage_prompts gives it the generator's, so it queues with TransformersGenerator.stream and with other decodings). ``stop``
ends decoding before the next model call; closing an iterator early stops it too.
"""

from __future__ import annotations

from rag_core.generators.rag_decoding.mixture import PassageMixture
from rag_core.generators.rag_decoding.prior import (
    DEFAULT_TAU,
    SEQUENCE_MODES,
    WEIGHTINGS,
    FinishReason,
    MessagesFor,
    SequenceMode,
    Weighting,
    passage_log_prior,
    passage_prior,
    span_posterior,
)
from rag_core.generators.rag_decoding.sequence import (
    Candidate,
    RagSequenceDecoding,
    SequenceDecoding,
)
from rag_core.generators.rag_decoding.text import (
    PassagePrompts,
    RagSequenceStream,
    RagTokenStream,
    passage_messages,
    passage_prompts,
    require_token_probabilities,
)
from rag_core.generators.rag_decoding.token import RagTokenDecoding, TokenStep

__all__ = [
    "DEFAULT_TAU",
    "SEQUENCE_MODES",
    "WEIGHTINGS",
    "Candidate",
    "FinishReason",
    "MessagesFor",
    "PassageMixture",
    "PassagePrompts",
    "RagSequenceDecoding",
    "RagSequenceStream",
    "RagTokenDecoding",
    "RagTokenStream",
    "SequenceDecoding",
    "SequenceMode",
    "TokenStep",
    "Weighting",
    "passage_log_prior",
    "passage_messages",
    "passage_prior",
    "passage_prompts",
    "require_token_probabilities",
    "span_posterior",
]
