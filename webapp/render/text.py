"""Escaping, dates, and marking a question's words and a supporting sentence in a passage."""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Sequence
from datetime import UTC, datetime

_WORD = re.compile(r"[^\W_]{3,}", re.UNICODE)
_STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        """the and for are but not you all any can had her was one our out has his how its may
        new now old see two who did get let put say she too use what when where which while with
        would could should does this that these those from have into than then them they their
        there about after before being between both each more most other over same some such only
        very your yours tell give show list explain describe please many much why whom whose also
        just like""",
    )
)


def esc(value: object) -> str:
    """HTML-escape anything shown on the page (quotes too: values also land in attributes)."""
    return html.escape(str(value), quote=True)


def plural(n: int, word: str) -> str:
    """'1 file', '3 files'."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def fmt_time(value: datetime) -> str:
    """A stored time (UTC when naive) in the server's local time, to the minute."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone().strftime("%Y-%m-%d %H:%M")


def question_terms(question: str) -> list[str]:
    """The content words of a question, for highlighting them in passages."""
    seen: list[str] = []
    for word in _WORD.findall(question.lower()):
        if word not in _STOPWORDS and word not in seen:
            seen.append(word)
    return seen


def _term_spans(text: str, terms: Sequence[str]) -> list[tuple[int, int]]:
    """Where words starting with one of `terms` stand in `text` (case-insensitive)."""
    if not terms:
        return []
    pattern = re.compile(
        r"(?<![^\W_])(?:" + "|".join(re.escape(t) for t in terms) + r")[^\W_]*", re.IGNORECASE
    )
    return [(m.start(), m.end()) for m in pattern.finditer(text)]


def highlight(text: str, terms: Sequence[str], support: tuple[int, int] | None = None) -> str:
    """Escaped passage text with the supporting sentence and the question's words marked."""
    marks = _term_spans(text, terms)
    bounds = {0, len(text)}
    for s, e in marks:
        bounds.update((s, e))
    if support:
        bounds.update(support)
    cuts = sorted(b for b in bounds if 0 <= b <= len(text))
    out: list[str] = []
    in_support_open = False
    for a, b in itertools.pairwise(cuts):
        piece = text[a:b]
        inside = support is not None and support[0] <= a and b <= support[1]
        if inside and not in_support_open:
            out.append('<mark class="rc-support">')
            in_support_open = True
        elif not inside and in_support_open:
            out.append("</mark>")
            in_support_open = False
        is_term = any(s <= a and b <= e for s, e in marks)
        out.append(f'<mark class="rc-term">{esc(piece)}</mark>' if is_term else esc(piece))
    if in_support_open:
        out.append("</mark>")
    return "".join(out)
