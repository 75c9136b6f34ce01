"""fetchmail: the Fetchmail FAQ over fetchmail's HTML documentation (Debian's `fetchmail` package).

The FAQ's entries (G1, B2, ... under chapters G, B, F, C, T, S, I, K, R, H, D, M, X, O) are the
queries, whole chapters go to each split. The corpus is every section of the four HTML documents
in usr/share/doc/fetchmail (the FAQ, the feature list, the design notes, the to-do list); the manual
page (roff) and the plain-text NEWS and READMEs are not used.
"""

from __future__ import annotations

import re
from pathlib import Path

from bench.corpora.common import (
    MIN_WORDS,
    Corpus,
    Doc,
    Dropped,
    Package,
    Question,
    clean_heading,
    html_sections,
    page_title,
    parse_html,
    pointer_only,
    remove,
    words,
)

LICENCE = "GPL-2+ with OpenSSL exception (usr/share/doc/fetchmail/copyright)"
NAME = "fetchmail"
PACKAGE = "fetchmail"
DOC_DIR = Path("usr/share/doc/fetchmail")
FAQ_PAGE = "fetchmail-FAQ"
PAGES = ("design-notes", "fetchmail-FAQ", "fetchmail-features", "todo")
_ENTRY = re.compile(r"^([A-Z])(\d+)$")
_LABEL = re.compile(r"^[A-Z]\d+\.\s*")
# the FAQ's two tables of contents (they list every question): navigation, not content
_TOC_ANCHORS = re.compile(r"^(?:Contents|Contentdetail|C_[A-Z])$")


def page_docs(html: bytes, page: str) -> tuple[list[Doc], list[Question], list[Dropped]]:
    """The sections of one page; on the FAQ the numbered entries become questions."""
    soup = parse_html(html)
    body = soup.body or soup
    remove(body, 'table[summary="Canned page footer"]')
    struck: set[str] = set()
    for heading in body.find_all("h2"):
        target = heading.find(lambda t: t.has_attr("id") or t.has_attr("name"))
        if target is not None and heading.find("strike") is not None:
            struck.add(str(target.get("id") or target.get("name")))
    title = clean_heading(page_title(soup)) or page
    is_faq = page == FAQ_PAGE
    docs: list[Doc] = []
    questions: list[Question] = []
    dropped: list[Dropped] = []
    for n, section in enumerate(html_sections(body)):
        doc_id = f"{page}#{n}"
        if is_faq and _TOC_ANCHORS.match(section.anchor):
            continue
        heading = clean_heading(section.heading or "")
        entry = _ENTRY.match(section.anchor) if is_faq and section.level == 2 else None
        if entry is None:
            if words(section.text) >= MIN_WORDS:
                full = title if not heading or heading == title else f"{title} > {heading}"
                docs.append(Doc(doc_id, full, section.text))
            continue
        question = _LABEL.sub("", heading)
        label = section.anchor
        if words(section.text) < MIN_WORDS:
            # F1, T2, I2 answer only in their subsections, which stay in the corpus
            dropped.append(Dropped(question, f"{label}: answer of {words(section.text)} words"))
            continue
        docs.append(Doc(doc_id, "", section.text))
        if label in struck:
            dropped.append(Dropped(question, f"{label}: struck out in the FAQ (obsolete)"))
        elif pointer_only(section.text):
            dropped.append(Dropped(question, f"{label}: answer only points elsewhere"))
        else:
            questions.append(Question(f"q:{doc_id}", question, doc_id, entry.group(1)))
    return docs, questions, dropped


def build(package: Package) -> Corpus:
    folder = package.root / DOC_DIR
    corpus = Corpus(NAME, [], [])
    for page in PAGES:
        path = folder / f"{page}.html"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing")
        docs, questions, dropped = page_docs(path.read_bytes(), page)
        corpus.docs += docs
        corpus.questions += questions
        corpus.dropped += dropped
    corpus.manifest = {
        "source": [f"{DOC_DIR}/{p}.html" for p in PAGES],
        "pages": len(PAGES),
        "licence": LICENCE,
    }
    return corpus
