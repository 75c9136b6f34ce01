"""Choosing the passage sentence that holds the asked-for fact: quoted answers, and the evidence
that `extract-then-phrase` hands the generator.

A sentence's score mixes its meaning (embedding similarity to the question) with the question's
words it contains, each weighted by how rare it is among the retrieved sentences (a word every
sentence shares, such as the product name, tells them apart less than "warranty"). A sentence that
holds the kind of fact asked for (a duration for "how long", an amount for "how much does it cost")
gets a bonus, one that holds none a penalty; footers, questions and headings are penalised, since a
person never accepts them as the answer.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from rag_core.answer_types import POLAR, AnswerKind, expected_kinds, holds_any
from rag_core.grounding import REQUEST_TERMS, Evidence, PassageSentence, cosine
from rag_core.prompting import strip_markers
from rag_core.quantities import quantities
from rag_core.stores.tokenize import tokenize
from rag_core.types import SentenceCheck

MAX_FACTOID_SENTENCES = 2
KIND_BONUS = 0.15  # the sentence holds the kind of fact asked for
KIND_PENALTY = 0.3  # the question asks for a kind of fact the sentence does not hold
SECOND_SENTENCE_GAP = 0.1  # a second quoted sentence must score within this of the first

_OPEN_ENDED = re.compile(
    r"^\s*(how\s+(do|does|can|could|should|would|to)\b|why\b|explain\b|describe\b|"
    r"what\s+(are|were)\s+the\s+(steps|ways|differences|options|reasons)\b|list\b|"
    r"tell\s+me\s+about\b|what\s+is\s+the\s+difference\b|compare\b)",
    re.IGNORECASE,
)
_FOOTER = re.compile(
    r"©|\bcopyright\b|\ball rights reserved\b|\bpage \d+ of \d+\b|^\s*page \d+\s*$|"
    r"\bprinted in\b|\bversion \d[\d.]*\s*$",
    re.IGNORECASE,
)


# A sentence that refers back to the one before it ("The only exceptions are ...", "It works only
# when ..."): quoted alone it misleads, so the sentence it leans on is quoted first. Not "This
# policy/manual ...", which names the document itself.
_LEANS_BACK = re.compile(
    r"^\W*(?:the only exceptions?\b|exceptions? (?:are|is)\b|however\b|otherwise\b|except\b|"
    r"in (?:that|this|which) case\b|such\b|"
    r"(?:it|they|this|these|those|that)\b(?! (?:policy|document|manual|guide|handbook|page|"
    r"section|chapter|agreement|leaflet|list|table|price list)\b))",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^\s*[-*\u2022]\s")


def is_factoid(question: str) -> bool:
    """A question after one fact (how long, when, who, is it allowed, ...), answered in at most
    MAX_FACTOID_SENTENCES sentences; not one that asks how to do something or why."""
    return _OPEN_ENDED.search(question) is None


@dataclass(frozen=True)
class Scored:
    """One passage sentence and how well it answers the question."""

    score: float
    index: int  # into Evidence.sentences
    sentence: PassageSentence
    holds_kind: bool


def form_penalty(text: str) -> float:
    """What a sentence loses for its form: a footer, a question, a heading or a bare label."""
    bare = text.strip()
    if _FOOTER.search(bare):
        return 0.6
    if bare.endswith("?"):
        return 0.3
    if bare.startswith("#"):
        return 0.3
    words = bare.split()
    if len(words) <= 6 and bare[-1:] not in ".!:" and not any(ch.isdigit() for ch in bare):
        return 0.15  # a heading or a label: it names a topic, it states nothing
    return 0.0


def _idf(evidence: Evidence) -> dict[str, float]:
    """BM25 idf of each term among the retrieved sentences."""
    n = len(evidence.sentences)
    df: dict[str, int] = {}
    for i in range(n):
        for term in evidence.sentence_tokens(i):
            df[term] = df.get(term, 0) + 1
    return {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}


def _question_weights(question: str, idf: dict[str, float]) -> dict[str, float]:
    """The question's content terms with their weights: rarity among the sentences, doubled for
    the question's own numbers (a number asked about names the very row or clause)."""
    numbers = {q.value for q in quantities(question)}
    weights: dict[str, float] = {}
    for term in tokenize(question):
        if term in REQUEST_TERMS:
            continue
        w = idf.get(term, max(idf.values(), default=1.0))
        weights[term] = w * (2.0 if term in numbers or term.isdigit() else 1.0)
    return weights


def _lead_ins(evidence: Evidence) -> dict[int, set[str]]:
    """The terms of the line that introduces each list item ("Annual subscriptions are:" before
    "- Social member: EUR 35"): the item is read with it, as with its heading."""
    leads: dict[int, set[str]] = {}
    sentences = evidence.sentences
    for i, ps in enumerate(sentences):
        if not _BULLET.match(ps.text):
            continue
        j = i - 1
        while j >= 0 and sentences[j].passage == ps.passage and _BULLET.match(sentences[j].text):
            j -= 1
        if j >= 0 and sentences[j].passage == ps.passage and sentences[j].text.rstrip()[-1:] == ":":
            leads[i] = evidence.sentence_tokens(j)
    return leads


def score_sentences(question: str, evidence: Evidence) -> list[Scored]:
    """Every passage sentence scored as an answer to `question`, best first."""
    if not evidence.sentences:
        return []
    qv = evidence.embedder.embed_query(question)
    kinds: tuple[AnswerKind, ...] = expected_kinds(question)
    idf = _idf(evidence)
    weights = _question_weights(question, idf)
    total = sum(weights.values())
    # each passage's document name and heading path, tokenized once for all its sentences
    contexts = {
        n: set(tokenize(evidence.passage_context(n))) for n in range(1, len(evidence.hits) + 1)
    }
    leads = _lead_ins(evidence)
    scored = []
    for i, ps in enumerate(evidence.sentences):
        tokens = evidence.sentence_tokens(i)
        context = contexts[ps.passage]
        lead = leads.get(i, set())
        got = 0.0
        for term, w in weights.items():
            if term in tokens:
                # a word of the document's name or heading tells its sentences apart less
                got += w * (0.25 if term in context else 1.0)
            elif term in context or term in lead:
                got += 0.5 * w  # the heading or the list's lead-in says it: it is about it
        lex = got / total if total else 0.0
        held = holds_any(ps.text, kinds)
        score = 0.5 * max(cosine(qv, evidence.vectors[i]), 0.0) + 0.5 * lex
        if kinds:
            score += KIND_BONUS if held else -KIND_PENALTY
        score -= form_penalty(ps.text) + 0.01 * (ps.passage - 1)
        scored.append(Scored(score, i, ps, held and bool(kinds)))
    scored.sort(key=lambda s: (-s.score, s.index))
    return scored


def choose_sentences(
    question: str, evidence: Evidence, *, max_sentences: int = 2, min_score: float = 0.3
) -> list[Scored]:
    """The sentences that answer `question`, most relevant first: the best one, and a second only
    when it scores nearly as well (a factoid gets its fact, not a paragraph)."""
    kinds = expected_kinds(question)
    ranked = [
        s
        for s in score_sentences(question, evidence)
        if s.score >= min_score and (s.holds_kind or not kinds)  # the fact asked for, or nothing
    ]
    if not ranked:
        return []
    chosen = [ranked[0]]
    for s in ranked[1:max_sentences]:
        if s.score >= ranked[0].score - SECOND_SENTENCE_GAP:
            chosen.append(s)
    before = _leaned_on(ranked[0], evidence, ranked)
    if before is not None:
        chosen = [before, ranked[0], *(s for s in chosen[1:] if s.index != before.index)]
    return chosen[:max_sentences]


def _leaned_on(best: Scored, evidence: Evidence, ranked: list[Scored]) -> Scored | None:
    """The sentence just before `best` in its passage when `best` refers back to it, scored as
    it was (or at `best`'s score when the filter left it out); None when it stands alone."""
    i = best.index
    if i == 0 or not _LEANS_BACK.match(best.sentence.text):
        return None
    prev = evidence.sentences[i - 1]
    if prev.passage != best.sentence.passage or form_penalty(prev.text) > 0:
        return None
    known = next((s for s in ranked if s.index == i - 1), None)
    return known or Scored(best.score, i - 1, prev, holds_kind=False)


def extractive_answer(
    question: str,
    evidence: Evidence,
    *,
    max_sentences: int = 2,
    min_score: float = 0.3,
) -> list[SentenceCheck]:
    """The passage sentences that best answer the question, quoted verbatim with their markers."""
    checks = []
    for index, s in enumerate(
        choose_sentences(question, evidence, max_sentences=max_sentences, min_score=min_score)
    ):
        ps = s.sentence
        text = " ".join(ps.text.split())
        checks.append(
            SentenceCheck(
                index, f"{text} [{ps.passage}]", True, round(s.score, 4), ps.passage, ps.text
            )
        )
    return checks


_NEGATION = re.compile(
    r"\b(?:not|no|never|cannot|nor|none|neither|forbidden|prohibited)\b|n't\b", re.IGNORECASE
)


def polar_lead(question: str, sentence: str) -> str:
    """ "No." before a quoted answer to a yes/no question whose quoted sentence says no (a
    deterministic rephrasing: the words after it are the document's own)."""
    if POLAR.match(question) and _NEGATION.search(strip_markers(sentence)):
        return "No."
    return ""


def does_not_answer(question: str, sentence: str) -> bool:
    """A sentence supported by a passage can still miss the question: it holds no fact of the
    kind asked for ("How long ...?" answered without a duration)."""
    kinds = expected_kinds(question)
    return bool(kinds) and not holds_any(sentence, kinds)
