"""What kind of fact a question asks for, and whether a sentence holds one of that kind.

"How long is the warranty?" asks for a duration; a sentence that names the warranty but gives no
duration does not answer it, however similar it reads. The extractive scorer favours sentences that
hold the asked-for kind and penalises those that hold none; the answer checks flag a generated
sentence that lacks it as not answering.
"""

from __future__ import annotations

import re
from typing import Literal

from rag_core.prompting import strip_markers
from rag_core.quantities import quantities

AnswerKind = Literal[
    "duration", "money", "percent", "date", "time", "quantity", "name", "contact", "phone",
    "weight", "length", "loudness", "power", "data", "speed", "brightness", "ordinal", "colour",
]  # fmt: skip
# measures: a number with one of these units (rag_core.quantities canonical units)
_MEASURES: dict[str, frozenset[str]] = {
    "weight": frozenset({"g", "kg", "t", "lb"}),
    "length": frozenset({"mm", "cm", "m", "km", "mile"}),
    "loudness": frozenset({"db"}),
    "power": frozenset({"w", "kw"}),
    "data": frozenset({"gb", "mb", "tb"}),
    "speed": frozenset({"km/h", "mph", "rpm"}),
    "brightness": frozenset({"lumen"}),
}

_NUMBER = (
    r"(?:\d+(?:[.,]\d+)*|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
    r"fifteen|twenty|thirty|forty|fifty|sixty|ninety|hundred)"
)
_NUM = rf"(?:{_NUMBER}|a|an)"  # "a week", "an hour"
_MONTHS = (
    r"january|february|march|april|may|june|july|august|september|october|november|december|"
    r"jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_HOLDS: dict[str, re.Pattern[str]] = {
    "duration": re.compile(
        rf"\b{_NUM}(?:\s+|-)(?:[a-z]+[\s-]+){{0,2}}?"  # "1400 operating hours", "3 calendar days"
        r"(?:seconds?|secs?|minutes?|mins?|hours?|hrs?|h|days?|weeks?|months?|years?|yrs?)\b|"
        r"\b(?:hourly|daily|weekly|fortnightly|monthly|quarterly|yearly|annually|overnight)\b|"
        r"\bevery (?:other )?(?:second|minute|hour|day|night|week|month|year|morning|evening)\b|"
        r"\b(?:once|twice) (?:a|an|per|every) \w+",
        re.IGNORECASE,
    ),
    "money": re.compile(
        r"[€$£]\s*\d|\b(?:eur|gbp|usd|chf)\s*\d|"
        r"\b\d[\d.,]*\s*(?:million\s+|m\s+)?(?:euros?|pounds?|dollars?|cents?|pence|eur|gbp|usd|chf)\b|"
        r"\bfree of charge\b|\bno charge\b|\bfree\b",
        re.IGNORECASE,
    ),
    "percent": re.compile(r"\d\s*(?:%|percent\b|per cent\b)", re.IGNORECASE),
    "date": re.compile(
        rf"\b(?:{_MONTHS})\b|\b\d{{1,2}}([./])\d{{1,2}}\1(?:\d{{2,4}})?|\b\d{{4}}-\d\d-\d\d\b|"
        r"\b(?:1[5-9]|20)\d\d\b|\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)s?\b",
        re.IGNORECASE,
    ),
    "time": re.compile(
        r"\b\d{1,2}[:.]\d{2}\b|\b\d{1,2}\s*(?:am|pm|a\.m\.|p\.m\.|o'?clock)|\bnoon\b|\bmidnight\b",
        re.IGNORECASE,
    ),
    "quantity": re.compile(rf"\b{_NUMBER}\b|\d", re.IGNORECASE),
    # two or more capitalised words inside a sentence, or opening one when a comma or a verb
    # follows ("Ines Varga, Head of People, is ..."; not "The Club" or "Annual Fees")
    "name": re.compile(
        r"(?<=[\w,;:] )(?:Dr\.? |Mr\.? |Ms\.? |Mrs\.? )?[A-Z][a-z]+(?: [A-Z][a-z]+)+|"
        r"^(?!(?:The|A|An|This|That|These|Those|Our|Your|Their|Each|Every|All|No|Any)\b)"
        r"(?:Dr\.? |Mr\.? |Ms\.? |Mrs\.? )?[A-Z][a-z]+(?: [A-Z][a-z]+)+"
        r"(?=,| (?:is|was|has|heads|leads|manages|runs|signs|approves)\b)"
    ),
    "colour": re.compile(
        r"\b(?:red|green|blue|yellow|orange|amber|white|black|grey|gray|purple|violet|pink|"
        r"brown|silver|gold|turquoise|cyan|magenta)(?:dish)?\b",
        re.IGNORECASE,
    ),
    "ordinal": re.compile(
        r"\b(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|"
        r"\d+(?:st|nd|rd|th))\b",
        re.IGNORECASE,
    ),
    "contact": re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+|\bhttps?://|\bwww\.", re.IGNORECASE),
}

# What the question asks for, tried in order; the first rule that matches decides.
_ASKS: tuple[tuple[re.Pattern[str], tuple[AnswerKind, ...]], ...] = (
    (
        # the number itself is asked for, not a question about a phone ("charge my phone")
        re.compile(
            r"\b(?:phone|telephone|fax|hotline|helpline)\s+(?:number|no\b)|\b(?:what|which) number\b|"
            r"\bnumber (?:do|should|can|could) (?:i|we|you) (?:call|ring|dial)\b",
            re.IGNORECASE,
        ),
        ("phone",),
    ),
    (re.compile(r"\be-?mail(?: address)?\b|\bwebsite\b|\burl\b", re.IGNORECASE), ("contact",)),
    (re.compile(r"\bwhat percentage\b|\bwhat share\b|\bpercent\b", re.IGNORECASE), ("percent",)),
    (
        re.compile(
            r"\bhow (?:long|often|soon|quickly)\b|\bhow (?:much|many) (?:time|notice)\b|"
            # "how many days", "how many paid days", "for how many working days"
            r"\bhow many (?:\w+ )?(?:seconds|minutes|hours|days|weeks|months|years)\b|"
            r"\bafter how long\b|\bhow far in advance\b|\blongest time\b|\bhow much notice\b",
            re.IGNORECASE,
        ),
        ("duration",),
    ),
    # "when" opening the question asks for a date, a time or a duration, whatever its topic
    # ("When do members pay their subscription?")
    (re.compile(r"^\W*when\b", re.IGNORECASE), ("date", "time", "duration")),
    (
        re.compile(
            r"\b(?:cost|costs|price|fee|fees|charge|charges|pay|deposit|surcharge|"
            r"subscription|penalty|fine|tariff|cover)\b|\bhow much is\b|\bhow much does\b",
            re.IGNORECASE,
        ),
        ("money", "percent"),
    ),
    (
        re.compile(r"\bwhat time\b|\b(?:opening|visiting|quiet|office) hours\b", re.IGNORECASE),
        ("time",),
    ),
    (
        re.compile(
            r"\b(?:by )?what date\b|\bwhich (?:date|month|year)\b|\bwhat year\b|\bdeadline\b",
            re.I,
        ),
        ("date",),
    ),
    (re.compile(r"\b(?:what|which) colou?rs?\b", re.IGNORECASE), ("colour",)),
    # "from which day (of an illness)": a calendar date, or the nth day
    (re.compile(r"\bwhich day\b", re.IGNORECASE), ("date", "ordinal")),
    (
        re.compile(r"^\W*(?:who|whom|whose)\b|\bwho (?:is|are|was|manages|runs)\b", re.IGNORECASE),
        ("name",),
    ),
    (re.compile(r"\bhow heavy\b|\bweigh(?:s|t)?\b", re.IGNORECASE), ("weight",)),
    (
        re.compile(
            r"\bhow (?:tall|high|far|deep|wide|close)\b|\b(?:height|width|depth|distance|range)\b",
            re.IGNORECASE,
        ),
        ("length",),
    ),
    (re.compile(r"\bhow loud\b|\bnoise level\b|\bdecibels?\b", re.IGNORECASE), ("loudness",)),
    (re.compile(r"\bhow much power\b|\bwatts?\b|\bwattage\b", re.IGNORECASE), ("power",)),
    (re.compile(r"\b(?:internet )?data\b|\bstorage\b", re.IGNORECASE), ("data",)),
    (re.compile(r"\bspeed limit\b|\bhow fast\b", re.IGNORECASE), ("speed",)),
    # "lumens", not "Lumen": a product may be called that
    (
        re.compile(r"\bhow bright\b|\bbrightness\b|\blight output\b|\blumens\b", re.I),
        ("brightness",),
    ),
    (
        re.compile(
            r"\bhow (?:many|much|heavy|tall|high|far|loud|deep|big|wide|fast|old|large|small)\b|"
            r"\b(?:maximum|minimum|lowest|highest|biggest|heaviest|largest|smallest|most|least)\b|"
            r"\bup to what\b|\bbelow what\b|\babove what\b|\bspeed limit\b|\bwhat age\b",
            re.IGNORECASE,
        ),
        ("quantity",),
    ),
)


_CLAUSE_NUMBER = re.compile(r"^\s*(?:\d+(?:\.\d+)+\.?|\d+\.)\s+(?=[A-Z])")
_PHONE = re.compile(r"(?<![\w.:/])\+?\(?\d[\d ()/-]{6,}\d(?![\w.:/])")
_YEARS = re.compile(r"^(?:1[5-9]|20)\d\d\s*[-/]\s*(?:1[5-9]|20)\d\d$")


def _has_phone_number(text: str) -> bool:
    """A run of at least 8 digits in the shape of a phone number (not a range of years)."""
    return any(
        sum(ch.isdigit() for ch in m.group()) >= 8 and not _YEARS.match(m.group())
        for m in _PHONE.finditer(text)
    )


# a yes/no question: its answer is yes or no, whatever quantity it mentions
POLAR = re.compile(
    r"^\W*(?:can|could|may|might|is|are|was|were|do|does|did|should|must|will|would|am|has|"
    r"have|shall)\b",
    re.IGNORECASE,
)


def expected_kinds(question: str) -> tuple[AnswerKind, ...]:
    """The kinds of fact that can answer `question`; () when it asks for none in particular
    (yes/no questions, explanations)."""
    if POLAR.match(question):
        return ()
    for pattern, kinds in _ASKS:
        if pattern.search(question):
            return kinds
    return ()


# A line of a program: an interpreter or shell prompt, a statement (import, def, class, return,
# raise, assert), an assignment to a program's name or a call with hardly a word of prose, the
# end of a call, or a line thick with code punctuation and hardly a word. Not a spec or price
# line: "Weight = 1.4 kg" assigns no program's name (one word, capitalised), "$ 25 a night" is
# no shell prompt, "Speed < 25 km/h" has one mark of punctuation.
_CODE_START = re.compile(
    r"^\s*(?:>>>|\$ (?!\d)|#include\b|#define\b|def \w+\s*\(|class \w+\s*(?:\([^)]*\))?:\s*$|"
    r"import [\w.]+(?:\s+as\s+\w+)?(?:,\s*[\w.]+)*\s*$|from [\w.]+ import\b|"
    r"(?:return|raise|assert)\b(?=.*[()\[\]=]))"
)
_ASSIGNMENT = re.compile(
    r"^\s*(?:[a-z_][\w.]*|[A-Z][A-Z0-9_]+|\w*[_.]\w*)(?:\[[^\]]*\])?\s*[-+*/%]?=(?!=)\s*\S"
)
_CONTINUATION = re.compile(r"^\.\.\.\s+")  # the interpreter's prompt inside a statement
_CALL = re.compile(r"^[A-Za-z_][\w.]*\(.*\)[;:]?$")  # a call alone on its line
_PROSE_WORD = re.compile(r"(?<![\w.$@/-])[a-z]{2,}(?![\w(./-])")
_CODE_CHARS = frozenset("=;{}[]<>\\")


def looks_like_code(text: str) -> bool:
    """Whether `text` is code rather than a sentence (most of its lines are lines of code, or
    it holds an interpreter's prompt): its numbers are a program's literals ("JUPITER =
    (1.9e+27, 7.1492e7)", ">>> fruits = ['apple', ...]"), not facts the documents state, so it
    holds no kind of fact. Table rows ("Memory | Minimum: 4 GB"), spec lines ("Weight = 1.4
    kg") and prose that quotes code are not code."""
    # a line without a letter or a digit ("...", ")") counts for neither
    lines = [line for line in text.splitlines() if any(ch.isalnum() for ch in line)]
    if any(line.lstrip().startswith(">>>") for line in lines):
        return True  # an interactive session: its other lines are the program's output
    return 2 * sum(_code_line(line) for line in lines) > len(lines)


def _code_line(line: str) -> bool:
    bare = _CONTINUATION.sub("", line.strip())  # "...     def f(x):" is "def f(x):"
    if _CODE_START.match(bare):
        return True
    prose = len(_PROSE_WORD.findall(bare))
    if (_ASSIGNMENT.match(bare) or _CALL.match(bare)) and prose < 4:
        return True
    if bare.count(")") > bare.count("(") and prose == 0:  # the end of a call begun above
        return True
    chars = [ch for ch in bare if not ch.isspace()]
    code = sum(ch in _CODE_CHARS for ch in chars)
    return code >= 3 and code / len(chars) > 0.05 and prose < 3


def holds_kind(sentence: str, kind: AnswerKind) -> bool:
    """Whether `sentence` states a fact of `kind` (citation markers ignored); a line of code
    states none."""
    return holds_any(sentence, (kind,))


def holds_any(sentence: str, kinds: tuple[AnswerKind, ...]) -> bool:
    """Whether `sentence` holds a fact of one of `kinds`; True when no kind is asked for. The
    sentence is read once (markers, clause number, whether it is code) for all the kinds."""
    if not kinds:
        return True
    # a clause number ("2.2 New members pay ...") is neither a date nor a quantity
    text = _CLAUSE_NUMBER.sub("", strip_markers(sentence), count=1)
    return not looks_like_code(text) and any(_states(text, k) for k in kinds)


def _states(text: str, kind: AnswerKind) -> bool:
    if kind == "phone" or (kind == "contact" and _has_phone_number(text)):
        return _has_phone_number(text)
    units = _MEASURES.get(kind)
    if units is not None:
        return any(q.unit in units for q in quantities(text))
    return _HOLDS[kind].search(text) is not None
