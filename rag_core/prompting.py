"""Prompt construction: numbered passages, citation markers [n], and the NOT FOUND convention."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag_core.types import Hit, Message, Turn

NOT_FOUND = "NOT FOUND"

SYSTEM_PROMPT = (
    "You answer questions using only the numbered passages you are given. "
    "Use the words of the passage that answers the question. "
    "After each sentence, cite the passage it comes from as [1], [2], ... "
    f"If the passages do not contain the answer, reply exactly: {NOT_FOUND}"
)

# [3], [1, 2], [1][2], and the [^3] / [ 3 ] forms small models sometimes write
MARKER = re.compile(r"\[\^?\s*(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\s*\]")


def format_passage(hit: Hit, n: int, max_chars: int = 1500) -> str:
    """One passage as the generator reads it: '[n] (document, p. 3) text', cut at max_chars."""
    chunk = hit.chunk
    where = chunk.document_name + (f", {chunk.location}" if chunk.location else "")
    text = " ".join(chunk.text.split())
    if len(text) > max_chars:
        text = text[:max_chars].rsplit(" ", 1)[0] + " ..."
    return f"[{n}] ({where}) {text}"


def passage_block(hits: Sequence[Hit], max_chars: int = 1500) -> str:
    """The passages as the generator reads them, numbered from 1, one blank line apart."""
    return "\n\n".join(format_passage(hit, n, max_chars) for n, hit in enumerate(hits, start=1))


def build_messages(
    question: str, hits: Sequence[Hit], history: Sequence[Turn] = (), max_history_turns: int = 2
) -> list[Message]:
    """System instruction, a few earlier turns, then the passages and the question."""
    messages = [Message("system", SYSTEM_PROMPT)]
    answered = [t for t in history if t.answer.strip()]  # a refusal is no answer to learn from
    for turn in answered[-max_history_turns:] if max_history_turns else []:
        messages.append(Message("user", turn.question))
        messages.append(Message("assistant", strip_markers(turn.answer)[:600]))
    user = f"Passages:\n{passage_block(hits)}\n\nQuestion: {question.strip()}"
    messages.append(Message("user", user))
    return messages


def markers_in(text: str) -> list[int]:
    """Every passage number cited in `text`, in order of first appearance."""
    seen: dict[int, None] = {}
    for match in MARKER.finditer(text):
        for part in re.split(r"[,;]", match.group(1)):
            seen.setdefault(int(part), None)
    return list(seen)


def strip_markers(text: str) -> str:
    """The text without citation markers (and without the space left before them)."""
    return re.sub(r"\s*" + MARKER.pattern, "", text).strip()


def is_not_found(text: str) -> bool:
    """True when the generator said the passages do not contain the answer."""
    flat = " ".join(text.upper().split())
    return flat.startswith(NOT_FOUND) or flat.rstrip(".! ") == NOT_FOUND


PHRASE_PROMPT = (
    "Answer the question in one short sentence, using only the facts given. "
    "Copy numbers, units, dates and names exactly as they are written in the facts. "
    "End the sentence with the fact's number, as [1]."
)
# One worked example: a small model copies the form of an answer better than it follows rules.
_PHRASE_EXAMPLE = (
    "Facts:\n[2] The K7 kettle is covered by a two-year warranty from the date of purchase.\n\n"
    "Question: How long is the warranty on the K7 kettle?",
    "The K7 kettle has a two-year warranty from the date of purchase [2].",
)


def build_phrase_messages(question: str, facts: Sequence[tuple[int, str]]) -> list[Message]:
    """The prompt of extract-then-phrase: the chosen passage sentences, each with its passage
    number, and the question; the answer is one sentence built from them."""
    lines = "\n".join(f"[{n}] {' '.join(text.split())}" for n, text in facts)
    return [
        Message("system", PHRASE_PROMPT),
        Message("user", _PHRASE_EXAMPLE[0]),
        Message("assistant", _PHRASE_EXAMPLE[1]),
        Message("user", f"Facts:\n{lines}\n\nQuestion: {question.strip()}"),
    ]
