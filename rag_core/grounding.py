"""Grounding: the refusal gate, the sentence-level support check, citation repair, extractive answers.

The default generator is small and invents facts when left alone, so no generated sentence is shown
as fact unless a passage supports it: its numbers and names must appear in the passage (or the
question), and its content must match a passage sentence both in meaning (embedding similarity)
and in words (stemmed overlap).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from rag_core.prompting import markers_in, strip_markers
from rag_core.protocols import Embedder
from rag_core.quantities import Quantity, compatible, describe, quantities
from rag_core.retrieval import TermStat
from rag_core.stores.tokenize import tokenize
from rag_core.text import FUNCTION_WORDS, REQUEST_WORDS, split_sentences
from rag_core.types import (
    Citation,
    GateFeatures,
    GroundingPolicy,
    Hit,
    SentenceCheck,
    Verdict,
)

UNSUPPORTED_MARK = "[not in your documents]"

_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,:/-]\d+)*(?:st|nd|rd|th|%)?", re.IGNORECASE)
_QUOTED = re.compile(r"[\"“‘']([^\"”’']{2,60})[\"”’']")
_CAPWORD = re.compile(r"\b[A-Z][\w'&-]*[\w]")
_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60",
    "ninety": "90", "hundred": "100",
}  # fmt: skip
_FILLER = re.compile(
    r"^(sure|certainly|of course|okay|ok|yes|no|here is|here's|the answer is|answer|"
    r"according to the passages?|based on the passages?|i hope this helps)[\s:,.!]*$",
    re.IGNORECASE,
)
# Capitalised words that are not names: function words, and the vocabulary of answers.
_COMMON_CAPS = FUNCTION_WORDS | frozenset(
    ["yes", "answer", "passage", "passages", "question", "note", "however", "according", "based"]
)


_ROW_LINE = re.compile(r"^\s*(?:\|.*\||[-*•]\s|\d{1,2}[.)]\s|\(?[a-z]\)\s|#)")


def line_units(text: str) -> list[tuple[int, int]]:
    """Sentence spans of a passage, further cut at line breaks that end a unit on their own: a
    table row, a list item or numbered clause, a heading, or a line after one that ends with
    sentence punctuation or a colon. Lines of a wrapped paragraph stay one sentence."""
    units: list[tuple[int, int]] = []
    for start, end in split_sentences(text):
        piece_start = start
        lines = text[start:end].split("\n")
        offset = start
        for k, line in enumerate(lines[:-1]):
            offset += len(line) + 1
            following = lines[k + 1]
            bare = line.strip()
            cut = (
                not bare
                or bare[-1] in ".:;!?|"
                or _ROW_LINE.match(line) is not None
                or " | " in line  # a table row written as "Header: cell | Header: cell"
                or _ROW_LINE.match(following) is not None
                or (len(bare) < 45 and following[:1].isupper())
            )
            if cut and text[piece_start:offset].strip():
                units.append((piece_start, offset - 1))
                piece_start = offset
        if text[piece_start:end].strip():
            units.append((piece_start, end))
    return units


@dataclass(frozen=True)
class PassageSentence:
    passage: int  # 1-based passage number [n]
    start: int  # offsets inside the passage's chunk text
    end: int
    text: str


@dataclass
class Evidence:
    """The passages of one answer, split into sentences and embedded once, for every check."""

    question: str
    hits: Sequence[Hit]
    embedder: Embedder
    sentences: list[PassageSentence] = field(default_factory=list)
    _vectors: list[list[float]] | None = None
    _tokens: list[set[str]] = field(default_factory=list)
    _passage_context: list[str] = field(default_factory=list)
    _sentence_text: list[str] = field(default_factory=list)
    _quantities: dict[int, list[Quantity]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for n, hit in enumerate(self.hits, start=1):
            chunk = hit.chunk
            text = chunk.text
            self._passage_context.append(
                _norm(" ".join((chunk.document_name, *chunk.heading_path)))
            )
            for start, end in line_units(text):
                piece = text[start:end].strip()
                if len(piece) >= 3:
                    self.sentences.append(PassageSentence(n, start, end, piece))
        self._tokens = [set(tokenize(s.text)) for s in self.sentences]
        self._sentence_text = [_norm(s.text) for s in self.sentences]

    @property
    def vectors(self) -> list[list[float]]:
        if self._vectors is None:
            texts = [s.text for s in self.sentences]
            self._vectors = self.embedder.embed_documents(texts) if texts else []
        return self._vectors

    def sentence_tokens(self, i: int) -> set[str]:
        """The BM25 terms of passage sentence i."""
        return self._tokens[i]

    def quantities_of(self, i: int) -> list[Quantity]:
        """The quantities of passage sentence i (computed once)."""
        cached = self._quantities.get(i)
        if cached is None:
            cached = self._quantities[i] = quantities(self.sentences[i].text)
        return cached

    def passage_context(self, n: int) -> str:
        """Passage n's document name and heading path, normalised: where a name may come from."""
        return self._passage_context[n - 1]


@dataclass(frozen=True)
class Support:
    score: float
    sentence: PassageSentence | None
    missing: tuple[str, ...] = ()  # facts of the claim absent from this support's window
    # facts absent from the passage window that best matches the claim's content, when that
    # window is not the one reported (its numbers or names came from elsewhere)
    unmatched: tuple[str, ...] = ()


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w%.:/-]+", " ", text.lower()).split())


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two vectors (0 when either is zero)."""
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def salient_terms(sentence: str) -> list[str]:
    """Numbers, quoted strings and names in a sentence: facts that must appear in the source."""
    terms: list[str] = []
    for m in _NUMBER.finditer(sentence):
        terms.append(m.group(0).rstrip(".,").lower())
    for word in re.findall(r"[A-Za-z]+", sentence):
        if word.lower() in _NUMBER_WORDS and word.lower() not in ("one", "no"):
            terms.append(_NUMBER_WORDS[word.lower()])
    for m in _QUOTED.finditer(sentence):
        terms.append(m.group(1).strip().lower())
    first = re.match(r"\W*(\w+)", sentence)
    first_end = first.end() if first else 0
    for m in _CAPWORD.finditer(sentence):
        word = m.group(0)
        if m.start() < first_end or word.lower() in _COMMON_CAPS:
            continue
        terms.append(word.lower())
    seen: dict[str, None] = {}
    for t in terms:
        seen.setdefault(t, None)
    return list(seen)


def _present(term: str, haystack: str) -> bool:
    needle = _norm(term)
    if not needle:
        return True
    if needle.replace(" ", "").isdigit() or _NUMBER.fullmatch(needle):
        return re.search(rf"(?<![\w.]){re.escape(needle)}(?![\d])", haystack) is not None
    return needle in haystack


# Lead-ins that talk about the answer instead of giving it; removed, the rest kept.
_LEAD_IN = re.compile(
    r"^\s*(?:(?:yes|no|sure|okay|ok)\s*[,:]\s*)?(?:"
    r"(?:(?:the\s+)?answer\s+)?to\s+(?:the|your)\s+question(?:\s+is)?\s*[:,]|"
    r"(?:the\s+)?answer(?:\s+is)?\s*[:,]?|"
    r"(?:according\s+to|based\s+on|from|in)\s+(?:the\s+)?(?:passages?|text|documents?|docs?)"
    r"(?:\s*\[\d+\])?\s*[,:]?|"
    r"(?:the|this)\s+(?:passages?|text|documents?|doc)(?:\s*\[\d+\])?\s+"
    r"(?:says|states|mentions|explains|notes|shows|indicates)(?:\s+that)?\s*[,:]?"
    r")\s*",
    re.IGNORECASE,
)
# What is left talking about the passages themselves is not a claim about the world.
_SELF_REFERENCE = re.compile(
    r"\b(?:the|this|that)\s+(?:passages?|sentences?)\b|^\s*question\s*:|"
    r"\bgenerated answer\b|\byour documents (?:say|don't say)\b|"
    r"\b(?:the|this|that|my) (?:reason for the |final |correct )?answer\b",
    re.IGNORECASE,
)


def clean_sentence(sentence: str) -> str:
    """A generated sentence without its lead-in ("The answer is:", "According to the passage,"
    ...), the first letter raised; "" when what is left only talks about the passages, echoes
    the question or repeats ragchat's own words: such a sentence is not a claim."""
    text = sentence.strip()
    stripped = _LEAD_IN.sub("", text, count=1).strip()
    if stripped != text and stripped:
        text = stripped[0].upper() + stripped[1:]
    if _SELF_REFERENCE.search(strip_markers(text)):
        return ""
    return text


def is_filler(sentence: str) -> bool:
    """A sentence that makes no claim ('Sure!', 'The answer is:')."""
    bare = strip_markers(sentence).strip()
    if not bare or _FILLER.match(bare):
        return True
    # fragments such as "```python" or "This will output:" carry no checkable claim
    return len(set(tokenize(bare))) < 2 and not _NUMBER.search(bare)


def _is_number(term: str) -> bool:
    return _NUMBER.fullmatch(term) is not None or term.replace(" ", "").isdigit()


def best_support(
    sentence: str, evidence: Evidence, question: str, vector: Sequence[float]
) -> dict[int, Support]:
    """For each passage, how well its best sentence supports `sentence` (0..1), and missing facts.

    Support is measured on a window: a passage sentence with its neighbours in the same passage.
    The claim's numbers, dates and names must appear in that same window (or in the question; a
    name may also come from the passage's document name or heading path), not merely somewhere in
    the passage: a number taken from a sentence about something else does not support a claim. A
    window that lacks some of them can still be reported as the best match, with what is missing.
    """
    claim = strip_markers(sentence)
    claim_tokens = set(tokenize(claim))
    terms = salient_terms(claim)
    q_norm = _norm(question)
    needed = [t for t in terms if not _present(t, q_norm)]
    asked = {q.value for q in quantities(question)}
    amounts = [q for q in quantities(claim) if q.value not in asked]
    per_passage: dict[int, Support] = {}
    closest: dict[int, Support] = {}  # the best-scoring window of each passage, facts or not
    vectors = evidence.vectors
    sentences = evidence.sentences
    for i, ps in enumerate(sentences):
        cos = cosine(vector, vectors[i])
        members = [i]
        if i > 0 and sentences[i - 1].passage == ps.passage:
            members.append(i - 1)
        if i + 1 < len(sentences) and sentences[i + 1].passage == ps.passage:
            members.append(i + 1)
        window = set().union(*(evidence._tokens[j] for j in members))
        texts = [evidence._sentence_text[j] for j in members]
        lex = len(claim_tokens & window) / len(claim_tokens) if claim_tokens else 0.0
        score = 0.5 * max(cos, 0.0) + 0.5 * lex
        if needed:
            haystack = " ".join(texts)
            context = evidence.passage_context(ps.passage)
            missing = tuple(
                t
                for t in needed
                if not _present(t, haystack) and (_is_number(t) or not _present(t, context))
            )
        else:
            missing = ()
        if amounts:  # its numbers with their units and roles, not only the digits
            found = [q for j in members for q in evidence.quantities_of(j)]
            missing += tuple(
                describe(q)
                for q in amounts
                if q.value not in missing and not any(compatible(q, f) for f in found)
            )
        support = Support(score, _holder(evidence, members, needed) or ps, missing)
        current = per_passage.get(ps.passage)
        # a window with every fact beats one without; then the higher score wins
        if current is None or (not missing, score) > (not current.missing, current.score):
            per_passage[ps.passage] = support
        near = closest.get(ps.passage)
        if near is None or score > near.score:
            closest[ps.passage] = support
    for n, sup in per_passage.items():
        near = closest[n]
        if near is not sup and near.missing and near.score > sup.score:
            per_passage[n] = Support(sup.score, sup.sentence, sup.missing, near.missing)
    return per_passage


def _holder(
    evidence: Evidence, members: Sequence[int], needed: Sequence[str]
) -> PassageSentence | None:
    """The sentence of a window that holds the claim's facts, to show as the support: the
    window's centre when it holds them, else the neighbour that holds the most."""
    if not needed:
        return None
    held = [
        (sum(_present(t, evidence._sentence_text[j]) for t in needed), -k, j)
        for k, j in enumerate(members)
    ]
    best = max(held)
    return evidence.sentences[best[2]] if best[0] > 0 and best[2] != members[0] else None


UNSUPPORTED_VERDICT: dict[str, Verdict] = {
    "mark": "marked",
    "remove": "removed",
    "off": "unchecked",
}


def check_sentences(
    sentences: Sequence[str],
    evidence: Evidence,
    *,
    threshold: float,
    start_index: int = 0,
    policy: GroundingPolicy = "mark",
) -> list[SentenceCheck]:
    """Check each answer sentence; repair its citation markers to the passage that supports it.
    An unsupported sentence's verdict follows the grounding `policy` (marked, removed or shown
    unchecked); a sentence that states nothing is 'no-claim'."""
    sentences = [clean_sentence(s) for s in sentences]
    claims = [strip_markers(s) for s in sentences]
    vectors = evidence.embedder.embed_documents(claims) if claims else []
    n_passages = len(evidence.hits)
    checks = []
    for offset, (sentence, claim, vector) in enumerate(
        zip(sentences, claims, vectors, strict=True)
    ):
        index = start_index + offset
        if is_filler(sentence):
            checks.append(SentenceCheck(index, claim, False, 0.0, verdict="no-claim"))
            continue
        supports = best_support(sentence, evidence, evidence.question, vector)
        cited = [n for n in markers_in(sentence) if 1 <= n <= n_passages]
        valid = {n: s for n, s in supports.items() if not s.missing and s.score >= threshold}
        chosen: int | None = None
        for n in cited:  # keep the model's own marker when that passage supports the claim
            if n in valid:
                chosen = n
                break
        if chosen is None and valid:
            chosen = max(valid, key=lambda n: valid[n].score)
        if chosen is not None:
            sup = valid[chosen]
            support_text = sup.sentence.text if sup.sentence else None
            checks.append(
                SentenceCheck(
                    index, f"{claim} [{chosen}]", True, round(sup.score, 4), chosen, support_text
                )
            )
            continue
        best_n = max(supports, key=lambda n: supports[n].score) if supports else None
        best = supports.get(best_n) if best_n is not None else None
        if best is not None and best.missing:
            reason = "not in the passages: " + ", ".join(best.missing)
        elif best is not None and best.unmatched and best.score < threshold:
            reason = "not in the passage sentence that matches it: " + ", ".join(best.unmatched)
        elif best is not None:
            reason = f"no passage sentence matches it (best match {best.score:.2f})"
        else:
            reason = "no passages"
        score = round(best.score, 4) if best else 0.0
        checks.append(
            SentenceCheck(
                index, claim, False, score, reason=reason, verdict=UNSUPPORTED_VERDICT[policy]
            )
        )
    return checks


def split_answer(text: str) -> list[str]:
    """Sentences of an answer, citation markers kept with the sentence they follow."""
    out: list[str] = []
    for start, end in split_sentences(text):
        piece = text[start:end].strip()
        lead = re.match(r"((?:\[[^\]]{1,12}\]\s*)+)", piece)
        if lead and out:  # "... days. [1] Monthly ..." - the marker closes the previous sentence
            out[-1] += " " + lead.group(1).strip()
            piece = piece[lead.end() :].strip()
        if piece:
            out.append(piece)
    return out


def render_answer(lead: str, sentences: Sequence[SentenceCheck]) -> str:
    """The answer as text, the one place it is rendered: `lead`, then each shown sentence with
    its markers, a marked one followed by UNSUPPORTED_MARK."""
    parts = [lead.strip()] if lead.strip() else []
    for c in sentences:
        if c.verdict == "marked":
            parts.append(f"{c.text} {UNSUPPORTED_MARK}")
        elif c.shown:
            parts.append(c.text)
    return " ".join(parts).strip()


def citations_for(checks: Sequence[SentenceCheck], hits: Sequence[Hit]) -> tuple[Citation, ...]:
    """One Citation per passage number cited by a supported sentence, with its supporting text."""
    out: dict[int, Citation] = {}
    for c in checks:
        if not c.supported or c.citation is None or c.citation in out:
            continue
        chunk = hits[c.citation - 1].chunk
        start = chunk.text.find(c.support) if c.support else -1
        out[c.citation] = Citation(
            n=c.citation,
            chunk=chunk,
            support=c.support,
            support_start=start if start >= 0 else None,
            support_end=start + len(c.support) if c.support and start >= 0 else None,
        )
    return tuple(out[n] for n in sorted(out))


# the gate's features in GateFeatures.values() order (sentence and asks_kind when computed)
GATE_FEATURES = ("top_dense", "coverage", "known", "sentence", "asks_kind")


# Words of a request are not topic terms (see rag_core.text.REQUEST_WORDS).
REQUEST_TERMS = frozenset(tokenize(" ".join(sorted(REQUEST_WORDS))))


def gate_features(
    hits: Sequence[Hit], top_dense: float | None, terms: Sequence[TermStat]
) -> GateFeatures:
    """The gate's evidence from the ranked passages and the idf of the question's terms."""
    terms = [t for t in terms if t.term not in REQUEST_TERMS]
    total = sum(t.idf for t in terms)
    covered = 0.0
    for h in hits:
        found = set(tokenize(" ".join((*h.chunk.heading_path, h.chunk.text))))
        covered = max(covered, sum(t.idf for t in terms if t.df > 0 and t.term in found))
    known = sum(t.idf for t in terms if t.df > 0)
    return GateFeatures(
        top_dense if top_dense is not None else 0.0,
        covered / total if total > 0 else 0.0,
        known / total if total > 0 else 0.0,
    )


@dataclass(frozen=True)
class GateModel:
    """The refusal gate's score, in units of cosine similarity (refuse below the threshold):

        score = max(0, top_dense + coverage_weight * (coverage - 1) + known_weight * (known - 1)
                       + sentence_weight * sentence + asks_kind_weight * asks_kind)

    A question whose terms all occur in its passages keeps its best similarity; each missing
    share of idf mass costs the weights; the best passage sentence's score as an answer adds
    its weight times that score; a question asking for a kind of fact (an amount, a duration)
    moves the score by the asked-kind weight. A weight of 0 leaves its feature unread (and
    uncomputed). The weights come from a logistic regression on the features (`fit_gate`,
    bench/gate_study.py), divided by the similarity's coefficient: the same decisions, on the
    scale of the single-score gate (all weights 0).
    """

    coverage_weight: float
    known_weight: float
    sentence_weight: float = 0.0
    asks_kind_weight: float = 0.0

    @classmethod
    def from_weights(cls, weights: Sequence[float]) -> GateModel:
        """From (coverage, known[, sentence[, asks_kind]]) weights, the form kept in settings."""
        if len(weights) not in (2, 3, 4):
            raise ValueError(
                "refusal gate weights must be two to four numbers (coverage, known[, sentence"
                f"[, asks_kind]]), got {len(weights)}"
            )
        return cls(*(float(w) for w in weights))

    @property
    def weights(self) -> tuple[float, ...]:
        if self.asks_kind_weight:
            return (
                self.coverage_weight,
                self.known_weight,
                self.sentence_weight,
                self.asks_kind_weight,
            )
        if self.sentence_weight:
            return (self.coverage_weight, self.known_weight, self.sentence_weight)
        return (self.coverage_weight, self.known_weight)

    @property
    def reads_sentence(self) -> bool:
        return self.sentence_weight != 0.0

    @property
    def reads_kind(self) -> bool:
        return self.asks_kind_weight != 0.0

    def score(self, features: GateFeatures) -> float:
        """The gate score, never below 0 (so a threshold of 0 turns refusals off)."""
        extra = 0.0
        if self.sentence_weight and features.sentence is not None:
            extra += self.sentence_weight * features.sentence
        if self.asks_kind_weight and features.asks_kind is not None:
            extra += self.asks_kind_weight * features.asks_kind
        return max(
            0.0,
            features.top_dense
            + self.coverage_weight * (features.coverage - 1.0)
            + self.known_weight * (features.known - 1.0)
            + extra,
        )


def fit_gate(
    answerable: Sequence[GateFeatures],
    unanswerable: Sequence[GateFeatures],
    *,
    l2: float = 1.0,
    iterations: int = 50,
) -> GateModel:
    """Fit the gate by L2-regularised logistic regression (Newton's method) on the features.

    Classes are weighted to equal total weight, so the model does not favour the larger set.
    The coefficients are returned relative to the similarity's (see GateModel).
    """
    import numpy as np

    if not answerable or not unanswerable:
        raise ValueError("fitting the refusal gate needs answerable and unanswerable questions")
    rows = [f.values() for f in (*answerable, *unanswerable)]
    if len({len(r) for r in rows}) != 1:
        raise ValueError("fitting the refusal gate needs the same features for every question")
    x = np.array(rows, dtype=np.float64)
    y = np.array([1.0] * len(answerable) + [0.0] * len(unanswerable))
    w_row = np.where(y == 1.0, 0.5 / len(answerable), 0.5 / len(unanswerable)) * len(y)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1.0
    z = np.hstack([np.ones((len(y), 1)), (x - mean) / std])
    beta = np.zeros(z.shape[1])
    reg = np.full(z.shape[1], l2)
    reg[0] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ beta, -60, 60)))
        grad = z.T @ (w_row * (p - y)) + reg * beta
        hess = (z * (w_row * p * (1 - p))[:, None]).T @ z + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if float(np.abs(step).max()) < 1e-9:
            break
    weights = beta[1:] / std
    if weights[0] <= 1e-6:
        raise ValueError(
            "the refusal gate fit gives no positive weight to dense similarity: the answerable "
            "and unanswerable questions do not separate on it (check the data)"
        )
    return GateModel.from_weights([float(w / weights[0]) for w in weights[1:]])
