"""Facts about text that several parts share: stop words, words that shape a request rather than
name a topic, the control characters cleaned from text, and splitting text into sentences. One
source for each, so ingestion, the keyword index, the refusal gate, the follow-up rewrite, the
sentence checks and the page's highlighting agree.
"""

from __future__ import annotations

import heapq
import itertools
import re
from collections.abc import Iterator

from rag_core.errors import InvalidQuestionError

# The Snowball / NLTK English stop words, without the forms with an apostrophe (the tokenizer
# splits "don't" into don + t). Question words are included: they carry no topic.
STOP_WORDS: frozenset[str] = frozenset(
    """
    a about above after again against ain all am an and any are aren as at be because been
    before being below between both but by can couldn d did didn do does doesn doing don down
    during each few for from further had hadn has hasn have haven having he her here hers
    herself him himself his how i if in into is isn it its itself just ll m ma me mightn more
    most mustn my myself needn no nor not now o of off on once only or other our ours ourselves
    out over own re s same shan she should shouldn so some such t than that the their theirs
    them themselves then there these they this those through to too under until up ve very was
    wasn we were weren what when where which while who whom why will with won wouldn y you your
    yours yourself yourselves
    """.split()  # noqa: SIM905 (a word list reads better as text)
)

# Function words beyond the stop words: modal verbs, quantifiers and the like.
FUNCTION_WORDS: frozenset[str] = STOP_WORDS | frozenset(
    [
        "also",
        "could",
        "would",
        "might",
        "may",
        "must",
        "shall",
        "us",
        "whose",
        "many",
        "much",
        "it's",
    ]
)

# Words of a request or a question's frame ("describe ... in detail", "what is the best way to
# get ...", "how long does it take"): in a small knowledge base they are often absent and would
# weigh as much as a missing product name, so they are not topic terms.
REQUEST_WORDS: frozenset[str] = frozenset(
    """
    long often take get use make work way happen need want find possible good best better
    differ difference mean know help thing something anything instead kind question answer
    exist available allow able like right correct wrong easy easiest recommend recommended
    usual usually normal normally common commonly actual actually describe description detail
    detailed explain explanation tell overview summary summarise summarize please
    """.split()  # noqa: SIM905
)

# Verbs of a request that the follow-up rewrite leaves out of a question's content words.
REQUEST_VERBS: frozenset[str] = frozenset(
    ["describe", "explain", "give", "list", "please", "show", "tell"]
)

# Not a topic: what the page's highlighting leaves out of a question.
NON_TOPIC_WORDS: frozenset[str] = (
    FUNCTION_WORDS
    | REQUEST_WORDS
    | REQUEST_VERBS
    | frozenset(["get", "let", "like", "new", "old", "one", "put", "say", "see", "two", "use"])
)

# C0 control characters and DEL, without tab, line feed, form feed and carriage return: never
# text. Ingestion drops them (a form feed or vertical tab becomes a line break).
CONTROL_CODES: tuple[int, ...] = (*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F)
CONTROL_TABLE: dict[int, str | None] = {
    **dict.fromkeys(CONTROL_CODES),
    0x0C: "\n",  # form feed: a page break inside extracted text
    0x0B: "\n",  # vertical tab: Word's manual line break in some exports
}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")  # lone halves (JSON allows them; UTF-8 cannot)


def storable(text: str) -> str:
    """User text as every database stores it: control characters and lone surrogate halves
    (JSON can carry them, UTF-8 cannot) replaced."""
    return _UNSTORABLE.sub("\ufffd", text)


def clean_question(question: str, max_chars: int) -> str:
    """Validate a question: not empty, not absurdly long; control characters removed."""
    if not isinstance(question, str):
        raise InvalidQuestionError("The question must be text.")
    text = _SURROGATE.sub("\ufffd", _CONTROL.sub(" ", question)).strip()
    if not text:
        raise InvalidQuestionError("The question is empty: type a question about your documents.")
    if len(text) > max_chars:
        raise InvalidQuestionError(
            f"The question is {len(text):,} characters long; the limit is {max_chars:,} "
            "(setting RAGCHAT_MAX_QUESTION_CHARS). Ask a shorter question."
        )
    return text


# -- sentences ---------------------------------------------------------------------------------

# A period after these never ends a sentence ("e.g. this", "Mr. Smith").
_ABBREVIATIONS = frozenset(
    {"e.g", "i.e", "eg", "ie", "cf", "mr", "mrs", "ms", "mx", "dr", "prof", "sr", "jr", "st", "mt",
     "ft", "vs", "viz", "approx", "ca", "al", "resp", "incl", "excl", "dept", "univ", "assoc", "lt",
     "sgt", "capt", "rev", "jan", "feb", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov",
     "dec", "tue", "thu", "fri"}
)  # fmt: skip
# ...and these only when a number follows ("No. 5", "Fig. 3", "pp. 10-12").
_NUMBER_ABBREVIATIONS = frozenset(
    {"no", "nos", "nr", "vol", "vols", "p", "pp", "fig", "figs", "eq", "eqs", "sec", "ch", "art",
     "ref", "tab"}
)  # fmt: skip
_DOTTED = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")  # U.S, p.m, e.g
_TERMINAL = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s)|[。！？]+[」』”’)）]*")
PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
# A line that is a list item or a Markdown heading starts a new sentence even without punctuation.
_LINE_START = re.compile(r"\n(?=[ \t]*(?:[-*+•‣◦▪]|\d{1,3}[.)])[ \t]+\S| {0,3}#{1,6}[ \t])")
_HEADING_LINE = re.compile(r"^ {0,3}#{1,6}[ \t].*$", re.M)
_OPENERS = "([{\"'“‘«"


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of `text`, each stripped of surrounding whitespace.

    A simple rule-based splitter: a sentence ends at . ! ? or … followed by whitespace and a
    character that is not a lower-case letter, unless the word before the period is an
    abbreviation ("e.g.", "Mr.", "U.S."), an initial, or a list number at the start of a line.
    Periods inside tokens ("3.14", "v1.2.3", "setup.py") never split. Blank lines, list items and
    Markdown heading lines always start a new sentence.
    """
    return list(iter_sentences(text))


def iter_sentences(text: str) -> Iterator[tuple[int, int]]:
    """`split_sentences` one span at a time (the cuts of each rule are merged lazily)."""
    terminal = (
        m.end()
        for m in _TERMINAL.finditer(text)
        if m.group().startswith(("。", "！", "？")) or _ends_sentence(text, m)
    )
    cuts = heapq.merge(
        terminal,
        (m.start() for m in PARAGRAPH_BREAK.finditer(text)),
        (m.start() for m in _LINE_START.finditer(text)),
        (m.end() for m in _HEADING_LINE.finditer(text)),
    )
    prev = 0
    for cut in itertools.chain(cuts, (len(text),)):
        if cut < prev:
            continue
        span = strip_span(text, prev, cut)
        if span is not None:
            yield span
        prev = cut


def _ends_sentence(text: str, m: re.Match[str]) -> bool:
    k = m.end()
    n = len(text)
    while k < n and text[k].isspace():
        k += 1
    if k < n and text[k].islower():
        return False
    punct = m.group()
    if punct.rstrip("\"'”’»)]") != ".":
        return True  # "?", "!", "...": always an end before a non-lower-case character
    begin = m.start()
    while begin > 0 and not text[begin - 1].isspace():
        begin -= 1
    token = text[begin : m.start()].lstrip(_OPENERS)
    lower = token.lower()
    if lower in _ABBREVIATIONS or _DOTTED.fullmatch(token):
        return False
    if len(token) == 1 and token.isupper():
        return False  # an initial: "J. Smith"
    if lower in _NUMBER_ABBREVIATIONS and k < n and text[k].isdigit():
        return False
    if token.isdigit() and len(token) <= 3:
        line_start = text.rfind("\n", 0, begin) + 1
        if not text[line_start:begin].strip():
            return False  # "1. Install" - a numbered list item, not a sentence "1."
    return True


def strip_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None
