"""RAG-Token and RAG-Sequence decoding on tiny random models (no downloads), checked against
brute force: every passage's full sequence run alone, without cache, batching or padding, and the
marginal formulas written out."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from rag_core.answer_sources import rag_source
from rag_core.config import Settings
from rag_core.errors import ConfigError
from rag_core.generators import rag_decoding as rd
from rag_core.generators.rag_decoding import (
    PassageMixture,
    RagSequenceDecoding,
    RagTokenDecoding,
    passage_log_prior,
    passage_messages,
    passage_prior,
    passage_prompts,
    require_token_probabilities,
    span_posterior,
)
from rag_core.generators.rag_decoding import text as rd_text
from rag_core.generators.transformers import TransformersGenerator
from rag_core.testing import FakeGenerator
from rag_core.types import Chunk, Hit

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.timeout(300)

VOCAB = 64
EOS = 1
# contexts of different lengths, so the batch is padded
CONTEXTS = [list(range(5, 15)), [20, 21], [30, 31, 32, 33, 34, 35]]
SCORES = [0.5, 0.45, 0.3]
TAU = 0.1
ATOL = 1e-4


def mix(
    model: Any,
    contexts: Sequence[Sequence[int]] = CONTEXTS,
    scores: Sequence[float] = SCORES,
    **kwargs: Any,
) -> PassageMixture:
    """The passage mixture of the tests: CONTEXTS and SCORES unless told otherwise."""
    return PassageMixture(model, contexts, scores, **kwargs)


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    """Tiny random models with large initial weights, so that each context makes its own,
    peaked next-token distributions (a passage then clearly favours some answers)."""
    from transformers import (
        BartConfig,
        BartForConditionalGeneration,
        LlamaConfig,
        LlamaForCausalLM,
        T5Config,
        T5ForConditionalGeneration,
    )

    torch.manual_seed(0)
    llama = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=VOCAB,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=128,
            initializer_range=1.0,
            pad_token_id=0,
            eos_token_id=EOS,
            bos_token_id=2,
        )
    )
    t5 = T5ForConditionalGeneration(
        T5Config(
            vocab_size=VOCAB,
            d_model=16,
            d_kv=8,
            d_ff=32,
            num_layers=2,
            num_heads=2,
            pad_token_id=0,
            eos_token_id=EOS,
            decoder_start_token_id=0,
            initializer_factor=1.0,
        )
    )
    bart = BartForConditionalGeneration(
        BartConfig(
            vocab_size=VOCAB,
            d_model=16,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=32,
            decoder_ffn_dim=32,
            max_position_embeddings=128,
            pad_token_id=3,
            bos_token_id=2,
            eos_token_id=EOS,
            decoder_start_token_id=2,
            forced_bos_token_id=None,
            init_std=1.0,
        )
    )
    return {"llama": llama.eval(), "t5": t5.eval(), "bart": bart.eval()}


# -- brute force: one passage, one full sequence, no cache ----------------------------------------


def next_logp(model: Any, context: Sequence[int], prefix: Sequence[int]) -> Any:
    """log p(. | x_z, prefix) from one unbatched forward over the whole sequence."""
    with torch.no_grad():
        if model.config.is_encoder_decoder:
            start = model.config.decoder_start_token_id
            out = model(
                input_ids=torch.tensor([list(context)]),
                decoder_input_ids=torch.tensor([[start, *prefix]]),
            )
        else:
            out = model(input_ids=torch.tensor([[*context, *prefix]]))
    return torch.log_softmax(out.logits[0, -1].double(), dim=-1)


def brute_log_prior(scores: Sequence[float], tau: float) -> Any:
    return torch.log_softmax(torch.tensor(scores, dtype=torch.float64) / tau, dim=0)


def brute_rag_token(
    model: Any, contexts: Sequence[Sequence[int]], scores: Sequence[float], tokens: Sequence[int]
) -> list[tuple[int, float, list[float]]]:
    """Per step along ``tokens``: (argmax of the marginal, log marginal of the token, per-passage
    log-probs), with the prior weights of RagTokenForGeneration.marginalize."""
    log_prior = brute_log_prior(scores, TAU)
    out = []
    for t, token in enumerate(tokens):
        per = torch.stack([next_logp(model, c, tokens[:t]) for c in contexts])
        marginal = torch.logsumexp(log_prior[:, None] + per, dim=0)
        out.append((int(marginal.argmax()), float(marginal[token]), per[:, token].tolist()))
    return out


def brute_rag_token_posterior_weighted(
    model: Any, contexts: Sequence[Sequence[int]], scores: Sequence[float], tokens: Sequence[int]
) -> list[tuple[int, float, list[float]]]:
    """As brute_rag_token, weighting passages by p(z | x, y<t) ∝ p(z|x) prod_{s<t} p(y_s|x,z,y<s)."""
    log_prior = brute_log_prior(scores, TAU)
    seen = torch.zeros(len(contexts), dtype=torch.float64)
    out = []
    for t, token in enumerate(tokens):
        per = torch.stack([next_logp(model, c, tokens[:t]) for c in contexts])
        weights = torch.log_softmax(log_prior + seen, dim=0)
        marginal = torch.logsumexp(weights[:, None] + per, dim=0)
        out.append((int(marginal.argmax()), float(marginal[token]), per[:, token].tolist()))
        seen += per[:, token]
    return out


def sequence_logp(model: Any, context: Sequence[int], y: Sequence[int]) -> float:
    """log p(y | x_z) by one unbatched teacher-forced forward."""
    with torch.no_grad():
        if model.config.is_encoder_decoder:
            start = model.config.decoder_start_token_id
            logits = model(
                input_ids=torch.tensor([list(context)]),
                decoder_input_ids=torch.tensor([[start, *y[:-1]]]),
            ).logits[0]
        else:
            logits = model(input_ids=torch.tensor([[*context, *y[:-1]]])).logits[
                0, len(context) - 1 :
            ]
    logp = torch.log_softmax(logits.double(), dim=-1)
    return float(sum(logp[i, tok] for i, tok in enumerate(y)))


def greedy_alone(model: Any, context: Sequence[int], max_new: int, eos: int | None) -> list[int]:
    y: list[int] = []
    for _ in range(max_new):
        y.append(int(next_logp(model, context, y).argmax()))
        if y[-1] == eos:
            break
    return y


# -- prior, errors ---------------------------------------------------------------------------------


def test_prior_is_softmax_of_scores_over_tau() -> None:
    prior = passage_prior([1.0, 0.5, 0.0], tau=0.5)
    expected = torch.softmax(torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64), 0).tolist()
    assert prior == pytest.approx(expected)
    assert math.fsum(prior) == pytest.approx(1.0)
    assert passage_log_prior([1.0, 0.5, 0.0], 0.5) == pytest.approx([math.log(p) for p in prior])
    assert passage_prior([0.9, 0.1], tau=1e6) == pytest.approx([0.5, 0.5])
    assert passage_prior([0.9, 0.1], tau=1e-3)[0] == pytest.approx(1.0)


def test_the_mixture_checks_once_and_holds_the_prior_both_decodings_use(
    models: dict[str, Any],
) -> None:
    mixture = mix(models["llama"], tau=TAU, eos_token_ids=[EOS, EOS])
    assert mixture.k == 3 and mixture.contexts[1] == (20, 21) and mixture.scores == tuple(SCORES)
    assert mixture.eos_token_ids == frozenset({EOS})
    assert mixture.log_prior == pytest.approx(passage_log_prior(SCORES, TAU))
    assert mixture.prior == pytest.approx(passage_prior(SCORES, TAU))
    assert RagTokenDecoding(mixture, max_new_tokens=1).log_prior is mixture.log_prior
    assert RagSequenceDecoding(mixture, max_new_tokens=1).run().log_prior is mixture.log_prior


@pytest.mark.parametrize("tau", [0, -0.1, float("nan"), float("inf"), True, "0.1"])
def test_tau_must_be_positive(models: dict[str, Any], tau: Any) -> None:
    with pytest.raises(ConfigError, match="tau"):
        passage_prior([0.1], tau)
    with pytest.raises(ConfigError, match="tau"):
        mix(models["llama"], tau=tau)


def test_bad_inputs_are_explained(models: dict[str, Any]) -> None:
    llama = models["llama"]
    for call in (
        lambda: mix(llama, [], []),
        lambda: passage_prior([]),
    ):
        with pytest.raises(ValueError, match="k=0"):
            call()
    with pytest.raises(ValueError, match="3 passage contexts but 2 retrieval scores"):
        mix(llama, CONTEXTS, SCORES[:2])
    with pytest.raises(ValueError, match="3 passage contexts but 4"):
        mix(llama, CONTEXTS, [*SCORES, 0.1])
    with pytest.raises(ValueError, match="passage 2 has no tokens"):
        mix(llama, [[5], []], [0.1, 0.2])
    with pytest.raises(ValueError, match="finite"):
        passage_prior([0.1, float("nan")])
    mixture = mix(llama)
    with pytest.raises(ConfigError, match="max_new_tokens"):
        RagTokenDecoding(mixture, max_new_tokens=0)
    with pytest.raises(ConfigError, match="max_new_tokens"):
        RagSequenceDecoding(mixture, max_new_tokens=0)
    with pytest.raises(ConfigError, match="temperature"):
        RagTokenDecoding(mixture, max_new_tokens=2, temperature=-1)
    with pytest.raises(ConfigError, match="weighting"):
        RagTokenDecoding(mixture, max_new_tokens=2, weighting="mean")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="mode"):
        RagSequenceDecoding(mixture, max_new_tokens=2, mode="beam")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="sample_temperature must be > 0"):
        RagSequenceDecoding(mixture, max_new_tokens=2, samples_per_passage=1, sample_temperature=0)
    with pytest.raises(ValueError, match="span"):
        span_posterior([0.0], [[-1.0]], 0, 2)


def test_only_local_transformers_models_give_token_probabilities(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'rag-token' decoding strategy.*'fake'"):
        require_token_probabilities(FakeGenerator("hi"), "rag-token")
    with pytest.raises(ConfigError, match="rag-sequence"):
        require_token_probabilities(FakeGenerator("hi"), "rag-sequence")
    local = TransformersGenerator("default", cache_dir=tmp_path)
    assert require_token_probabilities(local, "rag-token") is local


# -- RAG-Token -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["llama", "t5", "bart"])
@pytest.mark.parametrize("weighting", ["prior", "posterior"])
def test_rag_token_greedy_matches_brute_force_marginal(
    models: dict[str, Any], name: str, weighting: rd.Weighting
) -> None:
    model = models[name]
    decoding = RagTokenDecoding(mix(model, tau=TAU), max_new_tokens=6, weighting=weighting).run()
    assert decoding.finish_reason == "length" and len(decoding.steps) == 6
    brute = (brute_rag_token if weighting == "prior" else brute_rag_token_posterior_weighted)(
        model, CONTEXTS, SCORES, list(decoding.token_ids)
    )
    for step, (argmax, marginal, per_passage) in zip(decoding.steps, brute, strict=True):
        assert step.token_id == argmax
        assert step.logprob == pytest.approx(marginal, abs=ATOL)
        assert step.passage_logprobs == pytest.approx(per_passage, abs=ATOL)


def test_posterior_weighting_telescopes_to_the_rag_sequence_likelihood(
    models: dict[str, Any],
) -> None:
    """sum_t log sum_z p(z|x,y<t) p(y_t|x,z,y<t) = log sum_z p(z|x) p(y|x,z)."""
    decoding = RagTokenDecoding(mix(models["llama"]), max_new_tokens=6, weighting="posterior").run()
    per_passage = [sum(s.passage_logprobs[z] for s in decoding.steps) for z in range(3)]
    joint = torch.tensor(decoding.log_prior, dtype=torch.float64) + torch.tensor(per_passage)
    assert sum(s.logprob for s in decoding.steps) == pytest.approx(
        float(torch.logsumexp(joint, 0)), abs=ATOL
    )


def test_rag_token_sampling_is_seeded_and_scores_like_brute_force(models: dict[str, Any]) -> None:
    model = models["llama"]

    def sample(seed: int) -> RagTokenDecoding:
        rng = torch.Generator().manual_seed(seed)
        return RagTokenDecoding(mix(model), max_new_tokens=8, temperature=1.5, rng=rng).run()

    first, again = sample(1), sample(1)
    assert first.token_ids == again.token_ids
    assert len({sample(seed).token_ids for seed in range(2, 6)} | {first.token_ids}) > 1
    brute = brute_rag_token(model, CONTEXTS, SCORES, list(first.token_ids))
    for step, (_, marginal, per_passage) in zip(first.steps, brute, strict=True):
        assert step.logprob == pytest.approx(marginal, abs=ATOL)  # at temperature 1
        assert step.passage_logprobs == pytest.approx(per_passage, abs=ATOL)


@pytest.mark.parametrize("name", ["llama", "t5"])
def test_one_passage_rag_token_is_plain_greedy_decoding(models: dict[str, Any], name: str) -> None:
    model = models[name]
    context = CONTEXTS[0]
    ours = RagTokenDecoding(
        mix(model, [context], [0.3], eos_token_ids={EOS}), max_new_tokens=8
    ).run()
    with torch.no_grad():
        out = model.generate(
            torch.tensor([context]),
            attention_mask=torch.ones((1, len(context)), dtype=torch.long),
            do_sample=False,
            max_new_tokens=8,
            eos_token_id=EOS,
            pad_token_id=0,
        )[0].tolist()
    new = out[1:] if model.config.is_encoder_decoder else out[len(context) :]
    assert list(ours.token_ids) == new
    assert ours.posterior() == (1.0,)


def test_batched_left_padded_contexts_equal_unpadded_single_runs(models: dict[str, Any]) -> None:
    """RAG-Sequence decodes each passage's greedy answer in one padded batch; each must be what
    the passage alone (k=1, no padding) gives, token for token and log-prob for log-prob."""
    model = models["llama"]
    batched = RagSequenceDecoding(mix(model), max_new_tokens=6, mode="fast").run()
    by_source = {c.sources: c for c in batched.candidates}
    for z, context in enumerate(CONTEXTS):
        alone = RagTokenDecoding(mix(model, [context], [0.0]), max_new_tokens=6).run()
        candidate = next(c for sources, c in by_source.items() if z in sources)
        assert candidate.token_ids == alone.token_ids
        own = [row[z] for row in candidate.step_logprobs]
        assert own == pytest.approx([s.passage_logprobs[0] for s in alone.steps], abs=ATOL)


def test_eos_ends_rag_token_and_stop_interrupts_it(models: dict[str, Any]) -> None:
    model = models["llama"]
    free = RagTokenDecoding(mix(model), max_new_tokens=6).run()
    third = free.token_ids[2]
    ends = RagTokenDecoding(mix(model, eos_token_ids={third}), max_new_tokens=6).run()
    assert ends.finish_reason == "eos"
    assert ends.token_ids == free.token_ids[: free.token_ids.index(third) + 1]

    stop = threading.Event()
    decoding = RagTokenDecoding(mix(model), max_new_tokens=6, stop=stop)
    next(decoding), next(decoding)
    stop.set()
    assert list(decoding) == []
    assert decoding.finish_reason == "stopped" and len(decoding.steps) == 2
    assert RagTokenDecoding(mix(model), max_new_tokens=6, stop=stop).run().steps == []


def test_rag_token_posterior_sums_to_one_and_follows_the_answer(models: dict[str, Any]) -> None:
    model = models["llama"]
    decoding = RagTokenDecoding(mix(model), max_new_tokens=6).run()
    prior, posterior = decoding.prior, decoding.posterior()
    assert math.fsum(posterior) == pytest.approx(1.0)
    # the exact formula: p(z|x,y) ∝ p(z|x) prod_t p(y_t|x,z,y<t)
    joint = [
        math.log(prior[z]) + sum(s.passage_logprobs[z] for s in decoding.steps) for z in range(3)
    ]
    assert posterior == pytest.approx(torch.softmax(torch.tensor(joint), 0).tolist(), abs=1e-6)
    # the answer follows the most likely passage, which the posterior then favours even more
    top = max(range(3), key=lambda z: prior[z])
    assert posterior[top] > prior[top]
    # a span's posterior (a sentence) uses only its tokens; one token, and the empty span
    one = decoding.span_posterior(2, 3)
    assert math.fsum(one) == pytest.approx(1.0)
    weights = [math.log(prior[z]) + decoding.steps[2].passage_logprobs[z] for z in range(3)]
    assert one == pytest.approx(torch.softmax(torch.tensor(weights), 0).tolist(), abs=1e-6)
    assert decoding.span_posterior(4, 4) == pytest.approx(prior)


# -- RAG-Sequence ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["llama", "t5", "bart"])
def test_rag_sequence_thorough_matches_brute_force_enumeration(
    models: dict[str, Any], name: str
) -> None:
    model = models[name]
    result = RagSequenceDecoding(mix(model, eos_token_ids={EOS}, tau=TAU), max_new_tokens=5).run()
    assert result.mode == "thorough"
    log_prior = brute_log_prior(SCORES, TAU)
    expected: dict[tuple[int, ...], float] = {}
    for context in CONTEXTS:
        y = tuple(greedy_alone(model, context, 5, EOS))
        per = torch.tensor([sequence_logp(model, c, y) for c in CONTEXTS], dtype=torch.float64)
        expected[y] = float(torch.logsumexp(log_prior + per, 0))
    assert {c.token_ids: c.logprob for c in result.candidates} == pytest.approx(expected, abs=ATOL)
    assert result.best.token_ids == max(expected, key=expected.__getitem__)
    for candidate in result.candidates:
        assert math.fsum(candidate.posterior) == pytest.approx(1.0)
        assert candidate.ended == (candidate.token_ids[-1] == EOS)
        for z, context in enumerate(CONTEXTS):
            brute = sequence_logp(model, context, candidate.token_ids)
            assert candidate.passage_logprobs[z] == pytest.approx(brute, abs=ATOL)


def test_rag_sequence_fast_scores_only_under_the_passages_that_produced_it(
    models: dict[str, Any],
) -> None:
    model = models["llama"]
    fast = RagSequenceDecoding(mix(model), max_new_tokens=5, mode="fast").run()
    thorough = RagSequenceDecoding(mix(model), max_new_tokens=5).run()
    assert fast.mode == "fast"
    assert {c.token_ids for c in fast.candidates} == {c.token_ids for c in thorough.candidates}
    full = {c.token_ids: c for c in thorough.candidates}
    for candidate in fast.candidates:
        others = [z for z in range(3) if z not in candidate.sources]
        assert all(candidate.passage_logprobs[z] == -math.inf for z in others)
        assert all(candidate.posterior[z] == 0.0 for z in others)
        joint = [
            fast.log_prior[z] + full[candidate.token_ids].passage_logprobs[z]
            for z in candidate.sources
        ]
        assert candidate.logprob == pytest.approx(float(torch.logsumexp(torch.tensor(joint), 0)))
        # what generation recorded under a source equals teacher forcing under it
        for z in candidate.sources:
            assert candidate.passage_logprobs[z] == pytest.approx(
                full[candidate.token_ids].passage_logprobs[z], abs=ATOL
            )
    assert fast.candidates[0].logprob <= thorough.candidates[0].logprob + ATOL


def test_rag_sequence_samples_are_seeded_and_scored_exactly(models: dict[str, Any]) -> None:
    model = models["t5"]

    def run(seed: int) -> rd.SequenceDecoding:
        return RagSequenceDecoding(
            mix(model, eos_token_ids={EOS}),
            max_new_tokens=4,
            samples_per_passage=2,
            sample_temperature=2.0,
            rng=torch.Generator().manual_seed(seed),
        ).run()

    first = run(7)
    assert first.candidates == run(7).candidates
    assert len(first.candidates) > 3  # samples add candidates beyond the 3 greedy ones
    log_prior = brute_log_prior(SCORES, TAU)
    for candidate in first.candidates:
        per = [sequence_logp(model, c, candidate.token_ids) for c in CONTEXTS]
        assert candidate.passage_logprobs == pytest.approx(per, abs=ATOL)
        joint = log_prior + torch.tensor(per, dtype=torch.float64)
        assert candidate.logprob == pytest.approx(float(torch.logsumexp(joint, 0)), abs=ATOL)
    logprobs = [c.logprob for c in first.candidates]
    assert logprobs == sorted(logprobs, reverse=True)


def test_posterior_moves_to_the_passage_that_makes_the_answer_likely(
    models: dict[str, Any],
) -> None:
    """Equal retrieval scores; the answer is what passage 2 alone says: the posterior over the
    passages given that answer puts (nearly) everything on passage 2."""
    model = models["llama"]
    answer = tuple(greedy_alone(model, CONTEXTS[1], 5, None))
    result = RagSequenceDecoding(mix(model, CONTEXTS, [0.4, 0.4, 0.4]), max_new_tokens=5).run()
    candidate = next(c for c in result.candidates if c.token_ids == answer)
    assert candidate.posterior[1] > 0.9 > 1 / 3
    assert result.log_prior == pytest.approx([math.log(1 / 3)] * 3)
    # sentence by sentence: the span posterior of the best candidate's first tokens
    best = result.best
    span = result.span_posterior(0, 2)
    assert math.fsum(span) == pytest.approx(1.0)
    weights = [
        result.log_prior[z] + sum(best.step_logprobs[t][z] for t in range(2)) for z in range(3)
    ]
    assert span == pytest.approx(torch.softmax(torch.tensor(weights), 0).tolist(), abs=1e-6)


def test_rag_sequence_stop_before_start_gives_an_empty_answer(models: dict[str, Any]) -> None:
    stop = threading.Event()
    stop.set()
    result = RagSequenceDecoding(mix(models["llama"]), max_new_tokens=5, stop=stop).run()
    assert result.finish_reason == "stopped" and result.mode == "fast"
    assert result.best.token_ids == ()
    assert result.best.posterior == pytest.approx(passage_prior(SCORES, TAU))


# -- text: tiny word-level tokenizer, a saved tiny model, and byte-level detokenizing ------------

WORDS = ["the", "lamp", "runs", "hours", "at", "medium", "brightness", "14", "how", "long"]
WORDS += ["does", "?", ".", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m"]
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>"]
TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} </s> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def _word_tokenizer() -> Any:
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers import models as tk_models
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + WORDS)}
    backend = Tokenizer(tk_models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.add_special_tokens(SPECIALS)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", eos_token="</s>"
    )
    tok.chat_template = TEMPLATE
    return tok


@pytest.fixture(scope="module")
def local_generator(tmp_path_factory: pytest.TempPathFactory) -> TransformersGenerator:
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    torch.manual_seed(1)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(SPECIALS) + len(WORDS),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=512,
            initializer_range=1.0,
            pad_token_id=0,
            eos_token_id=3,
        )
    )
    with torch.no_grad():  # special tokens (EOS too) score 0, far below the best word (std 4)
        model.get_output_embeddings().weight[: len(SPECIALS)] = 0.0
    model.save_pretrained(folder)
    _word_tokenizer().save_pretrained(folder)
    gen = TransformersGenerator(str(folder), cache_dir=tmp_path_factory.mktemp("cache"))
    gen.load()
    return gen


@pytest.fixture(scope="module")
def local_seq2seq(tmp_path_factory: pytest.TempPathFactory) -> TransformersGenerator:
    from transformers import T5Config, T5ForConditionalGeneration

    folder = tmp_path_factory.mktemp("tiny-t5")
    torch.manual_seed(1)
    model = T5ForConditionalGeneration(
        T5Config(
            vocab_size=len(SPECIALS) + len(WORDS),
            d_model=16,
            d_kv=8,
            d_ff=32,
            num_layers=2,
            num_heads=2,
            pad_token_id=0,
            eos_token_id=3,
            decoder_start_token_id=0,
            initializer_factor=1.0,
            tie_word_embeddings=False,
        )
    )
    with torch.no_grad():
        model.get_output_embeddings().weight[: len(SPECIALS)] = 0.0
    model.save_pretrained(folder)
    _word_tokenizer().save_pretrained(folder)
    gen = TransformersGenerator(str(folder), cache_dir=tmp_path_factory.mktemp("cache"))
    gen.load()
    return gen


def _hit(n: int, text: str, score: float) -> Hit:
    chunk = Chunk(f"c{n}", f"d{n}", f"doc{n}.txt", "v", 0, text, 0, len(text))
    return Hit(chunk=chunk, rank=n, score=score)


HITS = [
    _hit(1, "a b c d e f", 0.5),
    _hit(2, "the lamp runs 14 hours at medium brightness .", 0.45),
    _hit(3, "g h i j k l m", 0.3),
]


def test_passage_messages_keep_the_passage_number() -> None:
    messages = passage_messages("How long?", HITS[1], 2)
    assert [m.role for m in messages] == ["system", "user"]
    assert "[2] (doc2.txt) the lamp runs 14 hours" in messages[1].content
    assert messages[1].content.endswith("Question: How long?")
    assert "[3] plain text" in passage_messages("q", "plain   text", 3)[1].content


def test_rag_token_stream_gives_text_pieces_and_posteriors(
    local_generator: TransformersGenerator,
) -> None:
    prompts = passage_prompts(local_generator, "how long does the lamp run ?", HITS)
    stream = prompts.stream(RagTokenDecoding(prompts.mixture, max_new_tokens=8))
    pieces = list(stream)
    assert len(pieces) > 1 and all(pieces)
    tokenizer = local_generator._tokenizer
    assert "".join(pieces) == stream.text
    assert stream.text == tokenizer.decode(list(stream.token_ids), skip_special_tokens=True)
    assert stream.finish_reason == "length" and len(stream.token_ids) == 8
    assert math.fsum(stream.posterior()) == pytest.approx(1.0)
    assert stream.prior == pytest.approx(passage_prior([h.score for h in HITS], rd.DEFAULT_TAU))
    # a "sentence" of the text maps to its tokens
    words = stream.text.split(" ")
    start = len(words[0]) + 1
    assert stream.token_span(start, start + len(words[1])) == (1, 2)
    assert stream.span_posterior(*stream.token_span(0, len(stream.text))) == stream.posterior()

    # the same prompts by hand: one passage each, as TransformersGenerator encodes them
    contexts = [
        local_generator._encode(passage_messages("how long does the lamp run ?", h, n))[
            "input_ids"
        ][0].tolist()
        for n, h in enumerate(HITS, start=1)
    ]
    assert [list(c) for c in prompts.mixture.contexts] == contexts
    by_hand = mix(local_generator._model, contexts, [h.score for h in HITS])
    direct = RagTokenDecoding(by_hand, max_new_tokens=8).run()
    assert direct.token_ids == stream.token_ids
    with pytest.raises(ValueError, match="other passages"):
        prompts.stream(direct)


def test_rag_sequence_stream_chooses_then_streams(local_generator: TransformersGenerator) -> None:
    prompts = passage_prompts(local_generator, "how long ?", HITS)
    decoding = RagSequenceDecoding(prompts.mixture, max_new_tokens=6, mode="thorough")
    stream = prompts.stream(decoding)
    assert stream.decoding is None and stream.text == ""
    pieces = list(stream)
    assert stream.decoding is not None
    assert "".join(pieces) == stream.text == stream.candidate_texts()[0]
    assert stream.token_ids == stream.decoding.best.token_ids
    assert math.fsum(stream.posterior()) == pytest.approx(1.0)
    assert stream.finish_reason == "length"
    with pytest.raises(ValueError, match="scores are required"):
        passage_prompts(local_generator, "q", ["plain"])


@pytest.mark.parametrize("strategy", ["rag-token", "rag-sequence"])
def test_the_engines_rag_source_streams_with_the_settings_tau_and_mode(
    local_generator: TransformersGenerator, tmp_path: Path, strategy: str
) -> None:
    settings = Settings(home=tmp_path, rag_tau=0.2, rag_sequence_mode="fast")
    options = settings.answer_options(strategy=strategy, max_new_tokens=5)
    halt = threading.Event()
    source = rag_source(local_generator, strategy, "how long ?", HITS, settings, options, halt)
    assert source.prior == pytest.approx(passage_prior([h.score for h in HITS], 0.2))
    text = "".join(source.pieces)
    assert text and source.posterior is not None and source.span_posterior is not None
    assert math.fsum(source.posterior()) == pytest.approx(1.0)
    assert math.fsum(source.span_posterior(0, len(text))) == pytest.approx(1.0)
    prompts = passage_prompts(local_generator, "how long ?", HITS, tau=0.2)
    # the prompt tokens read are all k passage prompts, not the first one
    assert source.prompt_tokens == sum(len(c) for c in prompts.mixture.contexts)
    assert source.prompt_tokens > len(prompts.mixture.contexts[0])
    if strategy == "rag-token":
        expected = prompts.stream(RagTokenDecoding(prompts.mixture, max_new_tokens=5))
    else:
        sequence = RagSequenceDecoding(prompts.mixture, max_new_tokens=5, mode="fast")
        expected = prompts.stream(sequence)
    assert text == "".join(expected)


def test_detokenizer_never_splits_a_character() -> None:
    """Byte-level tokens: 'é' and '日' are several tokens each; no piece holds half of one."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers import models as tk_models
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    backend = Tokenizer(
        tk_models.BPE(vocab={c: i for i, c in enumerate(sorted(alphabet))}, merges=[])
    )
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend)
    text = "héllo wörld 日本語 ok\nnext é"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(text)  # multi-byte characters are several tokens
    detok = rd_text._Detokenizer(tokenizer)
    pieces = [detok.push(i) for i in ids] + [detok.flush()]
    assert "".join(pieces) == text == detok.text
    assert not any("\ufffd" in p for p in pieces)
    assert detok.char_ends[-1] == len(text)
    assert detok.char_ends == sorted(detok.char_ends)


def test_text_layer_runs_an_encoder_decoder_generator(local_seq2seq: TransformersGenerator) -> None:
    assert local_seq2seq.is_encoder_decoder
    prompts = passage_prompts(local_seq2seq, "how long ?", HITS)
    stream = prompts.stream(RagTokenDecoding(prompts.mixture, max_new_tokens=5))
    assert "".join(stream) == stream.text and len(stream.token_ids) == 5
    tokenizer = local_seq2seq._tokenizer
    assert stream.text == tokenizer.decode(list(stream.token_ids), skip_special_tokens=True)
    sequence = prompts.stream(RagSequenceDecoding(prompts.mixture, max_new_tokens=5, mode="fast"))
    assert "".join(sequence) == sequence.candidate_texts()[0]
    assert math.fsum(sequence.posterior()) == pytest.approx(1.0)
