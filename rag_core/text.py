"""Facts about text that several parts share: stop words, words that shape a request rather than
name a topic, and cleaning user text of control characters. One source for each, so the keyword
index, the refusal gate, the follow-up rewrite and the page's highlighting agree.
"""

from __future__ import annotations

import re

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
