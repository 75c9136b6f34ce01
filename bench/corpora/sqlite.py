"""sqlite: the questions of SQLite's faq.html over all of SQLite's HTML documentation.

Source: Debian's `sqlite3-doc` package (usr/share/doc/sqlite3, the sqlite.org site as shipped).
Every page is cut into sections at its headings; a section's title is '<page title> > <heading>'.
faq.html has no chapters, so its questions are split tune/test as a seeded random half.
"""

from __future__ import annotations

import re
from pathlib import Path

from bs4 import BeautifulSoup, Tag

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

LICENCE = "public domain (usr/share/doc/sqlite3-doc/copyright)"
NAME = "sqlite"
PACKAGE = "sqlite3-doc"
DOC_DIR = Path("usr/share/doc/sqlite3")
FAQ_PAGE = "faq"

# Site chrome on every page (logo, menus, search box, the page-title banner and its table of
# contents, the "last modified" footer) and the repeated trailers of the C API and release pages.
BOILERPLATE = (
    "div.nosearch > a",
    "div.tagline",
    "div.menu",
    "div.searchmenu",
    "div.fancy_title",
    "div.fancy_toc",
)
# Generated link indexes (every keyword, target, link or title of the site in a list): navigation, not
# documentation, and each one is a single huge section of names.
NAVIGATION_PAGES = frozenset(
    {
        "doc_backlink_crossref",
        "doc_keyword_crossref",
        "doc_pagelink_crossref",
        "doc_target_crossref",
        "doclist",
        "keyword_index",
        "sitemap",
    }
)
_TRAILERS = (
    re.compile(r"^See also lists of Objects, Constants, and Functions\.?$"),
    re.compile(r"^A complete list of SQLite releases in a single page and a chronology"),
)
_FAQ_QUESTION = re.compile(r"^\((\d+)\)\s*(.+)$", re.S)


def strip_trailers(root: Tag) -> None:
    """Drop the "last modified" footer and the repeated trailers of C API and release pages.

    Only the innermost paragraph goes: pages leave <p> unclosed, so an outer paragraph can hold
    whole tables (omitted.html) and must stay.
    """
    for link in root.select("#mtimelink"):
        footer = link.find_parent("p")
        (footer or link).decompose()
    for p in root.find_all("p"):
        text = " ".join(p.get_text().split())
        if words(text) <= 60 and any(t.match(text) for t in _TRAILERS):
            p.decompose()


def mark_faq_questions(soup: BeautifulSoup, root: Tag) -> int:
    """faq.html writes each question as <p><b>(N) question</b></p>: make those h3 headings.

    Its list of questions at the top (a table of contents) is removed.
    """
    remove(root, "ol.nounderline")
    count = 0
    for p in root.find_all("p"):
        bold = p.find("b")
        if not isinstance(bold, Tag) or p.get_text().strip() != bold.get_text().strip():
            continue
        match = _FAQ_QUESTION.match(" ".join(bold.get_text().split()))
        if not match:
            continue
        heading = soup.new_tag("h3")
        heading.string = match.group(2)
        p.replace_with(heading)
        count += 1
    return count


def page_docs(html: bytes, page: str) -> tuple[list[Doc], list[Question], list[Dropped]]:
    """The sections of one page; on faq.html the question sections become questions."""
    soup = parse_html(html)
    body = soup.body or soup
    remove(body, *BOILERPLATE)
    strip_trailers(body)
    is_faq = page == FAQ_PAGE
    if is_faq:
        mark_faq_questions(soup, body)
    title = page_title(soup) or page
    docs: list[Doc] = []
    questions: list[Question] = []
    dropped: list[Dropped] = []
    for n, section in enumerate(html_sections(body)):
        doc_id = f"{page}#{n}"
        heading = clean_heading(section.heading or "")
        if is_faq and section.level == 3:
            if words(section.text) < MIN_WORDS:
                dropped.append(
                    Dropped(heading, f"answer of {words(section.text)} words ({doc_id})")
                )
                continue
            docs.append(Doc(doc_id, "", section.text))
            if pointer_only(section.text):
                dropped.append(Dropped(heading, f"answer only points elsewhere ({doc_id})"))
            else:
                questions.append(Question(f"q:{doc_id}", heading, doc_id, FAQ_PAGE))
        elif words(section.text) >= MIN_WORDS:
            full = title if not heading or heading == title else f"{title} > {heading}"
            docs.append(Doc(doc_id, full, section.text))
    return docs, questions, dropped


def build(package: Package) -> Corpus:
    folder = package.root / DOC_DIR
    pages = sorted(folder.rglob("*.html"), key=lambda p: p.relative_to(folder).as_posix())
    if not (folder / f"{FAQ_PAGE}.html").is_file():
        raise FileNotFoundError(f"{folder / FAQ_PAGE}.html is missing")
    corpus = Corpus(NAME, [], [], by_chapter=False)
    used = 0
    for path in pages:
        page = path.relative_to(folder).with_suffix("").as_posix()
        if page in NAVIGATION_PAGES:
            continue
        used += 1
        docs, questions, dropped = page_docs(path.read_bytes(), page)
        corpus.docs += docs
        corpus.questions += questions
        corpus.dropped += dropped
    corpus.manifest = {
        "source": f"{DOC_DIR}/**/*.html",
        "pages": used,
        "pages_skipped": sorted(NAVIGATION_PAGES),
        "licence": LICENCE,
    }
    return corpus
