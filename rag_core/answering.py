"""One answer from retrieved passages: generation, sentence checks as they stream, fallbacks.

`Answerer.run` takes what `Engine.retrieve` found and yields Token and SentenceChecked events,
then exactly one Done. A refusal, a generator that says NOT FOUND, and an answer whose every
sentence fails its check end in quoted passage sentences (or a refusal when none answers).
Every sentence carries its verdict; the shown text is rendered from them in one place
(grounding.render_answer).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from rag_core.answer_sources import TextSource, concat_source, phrase_source, rag_source
from rag_core.config import Settings
from rag_core.errors import GenerationError
from rag_core.extractive import (
    MAX_FACTOID_SENTENCES,
    choose_sentences,
    does_not_answer,
    extractive_answer,
    is_factoid,
    polar_lead,
)
from rag_core.grounding import (
    UNSUPPORTED_VERDICT,
    Evidence,
    check_sentences,
    citations_for,
    render_answer,
    split_answer,
)
from rag_core.prompting import NOT_FOUND, is_not_found, markers_in, strip_markers
from rag_core.protocols import Embedder, Generator
from rag_core.types import (
    AnswerOptions,
    Citation,
    Done,
    Event,
    Hit,
    Message,
    Released,
    Retrieved,
    SentenceCheck,
    SentenceChecked,
    Timings,
    Token,
    Turn,
)

QUOTED_LEAD = "Your documents say:"  # every quoted answer says plainly what it is
Fallback = Literal["refused", "not-found", "unsupported"]


def refusal_text(question: str) -> str:
    """What a refused question is answered with."""
    q = " ".join(question.split())
    if len(q) > 120:
        q = q[:117] + "..."
    return (
        f"Your documents don't say. Nothing in them answers “{q}”. "
        "The closest passages are listed under Sources."
    )


@dataclass
class _Draft:
    """The generator's text so far and the verdicts on its finished sentences."""

    raw: str = ""
    checks: list[SentenceCheck] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    consumed: int = 0  # sentences of `raw` checked (or skipped as repeats)
    cursor: int = 0  # where in `raw` the next sentence to check starts (for its posterior)
    first_token_ms: float | None = None
    status: Literal["complete", "stopped", "error"] = "complete"
    error: str | None = None


class Answerer:
    """Answers one question from its retrieved passages (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        generator: Generator,
        retrieved: Retrieved,
        options: AnswerOptions,
        config: dict[str, Any],
        started: float,
    ) -> None:
        self.settings = settings
        self.generator = generator
        self.retrieved = retrieved
        self.options = options
        self.config = config
        self.started = started
        self.evidence = Evidence(retrieved.question, retrieved.hits, embedder)
        self.factoid = is_factoid(retrieved.question)
        self.released = ""  # checked text handed out so far (Released events)
        self.source: TextSource | None = None

    # -- the whole answer ------------------------------------------------------------------

    def run(self, history: Sequence[Turn], stop: threading.Event) -> Iterator[Event]:
        """Token and SentenceChecked events, then one Done."""
        if self.retrieved.refused:
            text = refusal_text(self.retrieved.question)
            yield Token(text)
            yield from self.finish(self.done(lead=text, refused=True, mode="refused"))
            return
        if self.options.strategy == "extractive":
            yield from self.quote(None)
            return
        yield from self.generate(history, stop)

    def finish(self, done: Done) -> Iterator[Event]:
        """The checked text not yet released, then the Done."""
        if done.answer.startswith(self.released):
            rest = done.answer[len(self.released) :]
        else:  # cannot happen: text is released only once no fallback can replace it
            rest = done.answer
        if rest:
            self.released += rest
            yield Released(rest)
        yield done

    def _release(self, draft: _Draft) -> Iterator[Event]:
        """Release the checked sentences so far, once one of them is supported (from then on no
        fallback replaces them); nothing while checks are off."""
        if self.options.grounding == "off" or not any(c.supported for c in draft.checks):
            return
        text = render_answer("", draft.checks)
        if text.startswith(self.released) and len(text) > len(self.released):
            rest = text[len(self.released) :]
            self.released = text
            yield Released(rest)

    def done(self, **fields: Any) -> Done:
        """The Done event: the answer rendered from its lead and sentence verdicts."""
        r = self.retrieved
        total = (time.perf_counter() - self.started) * 1000
        base: dict[str, Any] = {
            "question": r.question, "query": r.query, "hits": r.hits, "config": self.config,
            "raw_answer": "", "citations": (), "sentences": (), "refused": False,
            "status": "complete", "lead": "", "gate_score": r.gate_score if r.hits else None,
            "timings": Timings(retrieval_ms=r.retrieval_ms, total_ms=total),
            "strategy": self.options.strategy,
        }  # fmt: skip
        if self.source is not None and self.source.prior:
            # logged with the settings snapshot, so the sources inspector shows them after a reload
            base["prior"] = tuple(round(p, 4) for p in self.source.prior)
            if self.source.posterior is not None:
                base["posterior"] = tuple(round(p, 4) for p in self.source.posterior())
            base["config"] = {
                **self.config,
                "passage_prior": list(base["prior"]),
                "passage_posterior": list(base.get("posterior", ())),
            }
        base.update(fields)
        if "answer" not in fields:
            base["answer"] = render_answer(base["lead"], base["sentences"])
        return Done(**base)

    # -- generation --------------------------------------------------------------------------

    def generate(self, history: Sequence[Turn], stop: threading.Event) -> Iterator[Event]:
        """Stream the generator's answer, checking each sentence as soon as it is complete."""
        draft = _Draft()
        halt = threading.Event()  # the user's stop, or ours (NOT FOUND, a repeated sentence)
        t_gen = time.perf_counter()
        source = self._source(history, halt)
        if source is None:  # extract-then-phrase found no sentence to phrase
            yield from self.quote(None)
            return
        self.source = source
        try:
            for piece in source.pieces:
                if stop.is_set():
                    halt.set()
                if piece:
                    yield from self._take(piece, draft, halt)
            if stop.is_set() and not is_not_found(draft.raw):
                draft.status = "stopped"
        except GenerationError as exc:
            draft.status, draft.error = "error", f"The answer could not be generated: {exc}"
        timings = self._timings(draft, source, t_gen)
        yield from self._finish(draft, halt, timings)

    def _source(self, history: Sequence[Turn], halt: threading.Event) -> TextSource | None:
        """The text source of this answer's strategy (None: nothing to phrase)."""
        o, s, r = self.options, self.settings, self.retrieved
        if o.strategy in ("rag-token", "rag-sequence"):
            return rag_source(self.generator, o.strategy, r.question, r.hits, s, o, halt)
        if o.strategy == "extract-then-phrase":
            chosen = choose_sentences(
                r.question, self.evidence, max_sentences=2, min_score=s.extractive_min_score
            )
            if not chosen:
                return None
            facts = [(c.sentence.passage, c.sentence.text) for c in chosen]
            return phrase_source(self.generator, r.question, facts, s, halt)
        return concat_source(self.generator, r.question, r.hits, history, s, o, halt)

    def _take(self, piece: str, draft: _Draft, halt: threading.Event) -> Iterator[Event]:
        """One streamed piece: pass it on, and check the sentences it completes."""
        if draft.first_token_ms is None:
            draft.first_token_ms = (time.perf_counter() - self.started) * 1000
        draft.raw += piece
        yield Token(piece)
        if draft.raw.lstrip().upper().startswith(NOT_FOUND):
            halt.set()
            return
        if halt.is_set():
            return
        complete = split_answer(draft.raw)[:-1]
        if len(complete) > draft.consumed:
            new = self._check(complete[draft.consumed :], draft, halt)
            draft.consumed = len(complete)
            for c in new:
                yield SentenceChecked(c)
            yield from self._release(draft)

    def _check(
        self, sentences: Sequence[str], draft: _Draft, halt: threading.Event
    ) -> list[SentenceCheck]:
        """Check new sentences; a sentence the model repeats ends the answer (small models loop)."""
        fresh = []
        for sentence in sentences:
            key = " ".join(strip_markers(sentence).lower().split())
            if key in draft.seen:
                halt.set()
                break
            draft.seen.add(key)
            fresh.append(self._cite_by_posterior(sentence, draft))
        new = check_sentences(
            fresh,
            self.evidence,
            threshold=self.settings.support_threshold,
            start_index=len(draft.checks),
            policy=self.options.grounding,
        )
        new = [self._not_answering(c) for c in new]
        draft.checks.extend(new)
        if self.factoid and sum(c.shown and c.claim for c in draft.checks) >= MAX_FACTOID_SENTENCES:
            halt.set()  # a factoid question gets its fact in at most two sentences
        return new

    def _cite_by_posterior(self, sentence: str, draft: _Draft) -> str:
        """RAG decodings: the sentence cited to the passage with the highest posterior
        p(z | x, sentence); the check keeps that citation when the passage supports it."""
        source = self.source
        if source is None or source.span_posterior is None:
            return sentence
        bare = strip_markers(sentence)
        start = draft.raw.find(bare[:40], draft.cursor) if bare else -1
        if start < 0:
            return sentence
        end = min(len(draft.raw), start + len(bare))
        draft.cursor = end
        posterior = source.span_posterior(start, end)
        if not posterior:
            return sentence
        best = max(range(len(posterior)), key=lambda z: posterior[z]) + 1
        return f"{bare} [{best}]"

    def _not_answering(self, check: SentenceCheck) -> SentenceCheck:
        """A supported sentence that holds no fact of the kind asked for does not answer."""
        if not check.supported or not does_not_answer(self.retrieved.question, check.text):
            return check
        return replace(
            check,
            text=strip_markers(check.text),
            supported=False,
            citation=None,
            support=None,
            reason="does not answer the question: it holds no fact of the kind asked for",
            verdict=UNSUPPORTED_VERDICT[self.options.grounding],
        )

    def _timings(self, draft: _Draft, source: TextSource, t_gen: float) -> Timings:
        gen_ms = (time.perf_counter() - t_gen) * 1000
        tokens = self.generator.count_tokens(draft.raw) if draft.raw else 0
        retrieval_ms = self.retrieved.retrieval_ms
        decode_s = max((gen_ms - ((draft.first_token_ms or 0) - retrieval_ms)) / 1000, 1e-6)
        return Timings(
            retrieval_ms=retrieval_ms,
            first_token_ms=draft.first_token_ms,
            generation_ms=gen_ms,
            total_ms=(time.perf_counter() - self.started) * 1000,
            tokens=tokens,
            tokens_per_s=(tokens - 1) / decode_s if tokens > 1 else None,
            prompt_tokens=source.prompt_tokens
            if source.prompt_tokens is not None
            else _prompt_tokens(self.generator, source.messages),
        )

    def _finish(self, draft: _Draft, halt: threading.Event, timings: Timings) -> Iterator[Event]:
        """Check what is left of the text, then the Done (or a quoted fallback)."""
        if is_not_found(draft.raw):
            yield from self.quote("not-found", draft, timings)
            return
        sentences = split_answer(draft.raw)
        if len(sentences) > draft.consumed and draft.status != "stopped" and not halt.is_set():
            for c in self._check(sentences[draft.consumed :], draft, halt):
                yield SentenceChecked(c)
        if (
            draft.status == "complete"
            and self.options.grounding != "off"
            and not any(c.supported for c in draft.checks)
        ):
            yield from self.quote("unsupported", draft, timings)
            return
        hits = self.retrieved.hits
        if self.options.grounding == "off":
            citations = _marker_citations(draft.raw, hits)
            answer: str | None = draft.raw.strip()
        else:
            citations, answer = citations_for(draft.checks, hits), None
        fields: dict[str, Any] = {
            "raw_answer": draft.raw, "citations": citations, "sentences": tuple(draft.checks),
            "mode": "generated", "status": draft.status, "timings": timings,
            "error": draft.error,
        }  # fmt: skip
        if answer is not None:
            fields["answer"] = answer
        elif draft.status == "error" and not any(c.shown for c in draft.checks):
            fields["lead"] = draft.error or "The answer could not be generated."
        yield from self.finish(self.done(**fields))

    # -- quoting -----------------------------------------------------------------------------

    def quote(
        self,
        fallback: Fallback | None,
        draft: _Draft | None = None,
        timings: Timings | None = None,
    ) -> Iterator[Event]:
        """Quote the passage sentences that best answer the question; refuse if none does.
        `fallback` says why (None: quotes were asked for); the generated sentences, if any, are
        kept as 'replaced'."""
        quoted = extractive_answer(
            self.retrieved.question, self.evidence, min_score=self.settings.extractive_min_score
        )
        replaced = tuple(replace(c, verdict="replaced") for c in (draft.checks if draft else ()))
        raw = draft.raw if draft else ""
        extra = {"timings": timings} if timings is not None else {}
        if not quoted:
            text = refusal_text(self.retrieved.question)
            if fallback is None:
                yield Token(text)
            yield from self.finish(self.done(lead=text, raw_answer=raw, sentences=replaced,
                                             refused=True, mode="refused", **extra))  # fmt: skip
            return
        polar = polar_lead(self.retrieved.question, quoted[0].text)
        lead_text = f"{polar} {QUOTED_LEAD}" if polar else QUOTED_LEAD
        numbered = tuple(replace(c, index=len(replaced) + i) for i, c in enumerate(quoted))
        if fallback is None:
            yield Token(render_answer(lead_text, numbered))
        for c in numbered:
            yield SentenceChecked(c)
        yield from self.finish(self.done(
            lead=lead_text, raw_answer=raw, sentences=replaced + numbered, mode="extractive",
            citations=citations_for(quoted, self.retrieved.hits), **extra,
        ))  # fmt: skip


def _prompt_tokens(generator: Generator, messages: Sequence[Message]) -> int:
    """Tokens of the prompt the generator read; 0 if it cannot say."""
    try:
        return int(generator.count_prompt_tokens(messages))
    except (AttributeError, GenerationError, ValueError):
        return 0


def _marker_citations(raw: str, hits: Sequence[Hit]) -> tuple[Citation, ...]:
    """Citations exactly as the generator wrote them (markers to no passage are dropped)."""
    return tuple(Citation(n, hits[n - 1].chunk) for n in markers_in(raw) if 1 <= n <= len(hits))
