"""debian-faq: the Debian GNU/Linux FAQ (Debian's `debian-faq` package, DocBook HTML).

Every page of the FAQ is cut into sections at its headings (h1-h4); the question headings (those
ending in '?') are the queries, each page is a chapter. The package holds nothing else but the same
FAQ as plain text and PDF, which are not used.
"""

from __future__ import annotations

import re
from pathlib import Path

from bs4 import Tag

from bench.corpora.common import (
    MIN_WORDS,
    Corpus,
    Doc,
    Dropped,
    Package,
    Question,
    clean_heading,
    html_sections,
    is_question,
    page_title,
    parse_html,
    pointer_only,
    remove,
    words,
)

LICENCE = (
    "Software in the Public Interest's permission notice: verbatim and modified copies and "
    "translations may be distributed (usr/share/doc/debian-faq/copyright)"
)
NAME = "debian-faq"
PACKAGE = "debian-faq"
FAQ_DIR = Path("usr/share/doc/debian/FAQ")


def rewrite_xrefs(root: Tag) -> None:
    """DocBook expands a cross-reference into 'Section 12.1, “<the target's title>”'.

    The FAQ's authors wrote only the reference; the stylesheet inserted the title, which for a FAQ
    is another question verbatim. Keep 'Section 12.1' so no question reaches the corpus that way.
    """
    for link in root.select("a.xref"):
        text = " ".join(link.get_text().split())
        short = re.split(r",\s*[“\"]", text, maxsplit=1)[0]
        link.clear()
        link.append(short)


def page_sections(html: bytes, stem: str) -> tuple[list[Doc], list[Question], list[Dropped]]:
    """The sections of one FAQ page (a chapter); question headings become questions."""
    soup = parse_html(html)
    body = soup.body or soup
    remove(body, "div.navheader", "div.navfooter", "div.toc", "div.list-of-tables")
    rewrite_xrefs(body)
    title = clean_heading(page_title(soup))
    docs: list[Doc] = []
    questions: list[Question] = []
    dropped: list[Dropped] = []
    for n, section in enumerate(html_sections(body)):
        doc_id = f"{stem}#{n}"
        heading = clean_heading(section.heading or "")
        if section.heading is not None and is_question(heading):
            if words(section.text) < MIN_WORDS:
                dropped.append(
                    Dropped(heading, f"answer of {words(section.text)} words ({doc_id})")
                )
            elif pointer_only(section.text):
                dropped.append(Dropped(heading, f"answer only points elsewhere ({doc_id})"))
                docs.append(Doc(doc_id, "", section.text))
            else:
                questions.append(Question(f"q:{doc_id}", heading, doc_id, stem))
                docs.append(Doc(doc_id, "", section.text))
        elif words(section.text) >= MIN_WORDS:
            docs.append(Doc(doc_id, heading or title, section.text))
    return docs, questions, dropped


def build(package: Package) -> Corpus:
    folder = package.root / FAQ_DIR
    pages = sorted(folder.glob("*.en.html"))
    if not pages:
        raise FileNotFoundError(f"no *.en.html in {folder}")
    corpus = Corpus(NAME, [], [])
    for page in pages:
        stem = page.name.removesuffix(".en.html")
        docs, questions, dropped = page_sections(page.read_bytes(), stem)
        corpus.docs += docs
        corpus.questions += questions
        corpus.dropped += dropped
    corpus.manifest = {
        "source": f"{FAQ_DIR}/*.en.html",
        "pages": len(pages),
        "licence": LICENCE,
    }
    return corpus
