"""Tokenizer for the keyword index: lowercased, stop words out, Snowball-stemmed, code-aware.

Code identifiers are kept whole AND split into their parts, so a question about ``os.path.join``
matches a passage that says "join the path", and one about ``max_batch_size`` matches "batch size":
``getUserName`` -> ``getusername, get, user, name``; ``os.path.join`` -> ``os.path.join, os, path,
join``. Parts are stemmed like ordinary words; whole identifiers are kept verbatim (lowercased).
The same function tokenizes documents and queries, so both sides always agree.
"""

from __future__ import annotations

import functools
import re
import threading

import Stemmer

from rag_core.text import STOP_WORDS

__all__ = ["STOP_WORDS", "TOKENIZER_VERSION", "terms_with_sources", "tokenize"]

# Bump when tokenize() changes what it emits: indexes built with another version are rebuilt.
TOKENIZER_VERSION = "2"

MAX_TOKEN_CHARS = 64  # longer runs (hashes, base64) only bloat the vocabulary

# A word, or words joined by dots (os.path.join, 1.5.9, docs.example.com); \w includes "_".
_WORD_RE = re.compile(r"\w+(?:\.\w+)*")
# camelCase / PascalCase / acronyms / digits: "HTTPServerError2" -> HTTP, Server, Error, 2.
_CAMEL_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
# An acronym's plural ("PDFs", "CD-ROMs", "getURLs"): the acronym, not a camelCase boundary
# ("ROMs" is not "RO" + "Ms"), so a question about PDFs matches a passage about a PDF.
_PLURAL_ACRONYM_RE = re.compile(r"([A-Z]{2,})s(?![a-z])")

_local = threading.local()  # PyStemmer objects are not thread-safe: one per thread


@functools.lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    """Snowball English stem of a lowercase word, cached (words repeat a lot across chunks)."""
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return str(stemmer.stemWord(word))


def _parts(identifier: str) -> list[str]:
    """Split an identifier (original case) on dots, underscores and camelCase boundaries."""
    out: list[str] = []
    for piece in re.split(r"[._]+", identifier):
        if not piece:
            continue
        if piece.isascii():
            piece = _PLURAL_ACRONYM_RE.sub(r"\1", piece)
            out.extend(_CAMEL_RE.findall(piece) or [piece])
        else:
            out.append(piece)
    return out


def tokenize(text: str) -> list[str]:
    """Split `text` into BM25 terms: stemmed words without stop words, plus whole identifiers."""
    return [term for term, _ in terms_with_sources(text)]


def terms_with_sources(text: str) -> list[tuple[str, str]]:
    """`tokenize(text)` with, for each term, the text it came from (the word before stemming, or
    the whole identifier). Look a term up by its source: stemming a stem again can change it
    ("greased" -> "greas" -> "grea")."""
    tokens: list[tuple[str, str]] = []
    for match in _WORD_RE.finditer(text):
        raw = match.group()
        parts = _parts(raw)
        whole = raw.strip("._").lower()
        if len(parts) > 1 and len(whole) <= MAX_TOKEN_CHARS:
            tokens.append((whole, whole))
        for part in parts:
            word = part.lower()
            if word in STOP_WORDS or len(word) > MAX_TOKEN_CHARS:
                continue
            tokens.append((_stem(word), word))
    return tokens
