"""Data files shipped for `ragchat eval`: questions that a dataset's corpus cannot answer."""

from __future__ import annotations

from pathlib import Path

PYFAQ_UNANSWERABLE = Path(__file__).resolve().parent / "pyfaq_unanswerable.txt"


def default_unanswerable() -> Path:
    """The questions the Python documentation (pyfaq corpus) cannot answer, one a line."""
    return PYFAQ_UNANSWERABLE
