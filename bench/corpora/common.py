"""What every corpus build shares: Debian packages, HTML sectioning, seeded splits, BEIR writing.

A corpus is built the way pyfaq was: a documentation set is cut into sections at its headings; the
FAQ's question headings become the queries, and the gold document of each question is its own
section with the heading (the question) removed; every other section is a distractor. Everything
here is deterministic: the same .deb gives byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup, CData, NavigableString, Tag

MIN_WORDS = 15  # as pyfaq: shorter sections are not in the corpus, shorter answers drop a question
SEED = 20240611  # the seed of every split (chapters, random halves, unanswerable questions)
SPLITS = ("tune", "test")
EXHAUSTIVE = 18  # chapters up to which split_chapters tries every partition


class BuildError(RuntimeError):
    """A corpus cannot be built (a missing tool, package or file); the message says which."""


def default_out() -> Path:
    """The eval cache: $RAGCHAT_EVAL_DATA, else ~/.cache/ragchat/eval."""
    env = os.environ.get("RAGCHAT_EVAL_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ragchat" / "eval"


# --------------------------------------------------------------------------------------------
# the documents


@dataclass(frozen=True)
class Doc:
    """One corpus section: a stable id (`page#n`), its heading as title, plain text."""

    id: str
    title: str
    text: str


@dataclass(frozen=True)
class Question:
    """A FAQ question; `gold` is the id of its answer section, `chapter` decides its split."""

    id: str
    text: str
    gold: str
    chapter: str


@dataclass(frozen=True)
class Dropped:
    question: str
    reason: str


@dataclass
class Corpus:
    """What a corpus module returns; `build.py` splits and writes it."""

    name: str
    docs: list[Doc]
    questions: list[Question]
    dropped: list[Dropped] = field(default_factory=list)
    by_chapter: bool = True  # split whole chapters; False: a seeded random half of the questions
    manifest: dict[str, Any] = field(default_factory=dict)


def words(text: str) -> int:
    return len(text.split())


_NUMBERING = re.compile(
    r"^\s*(?:(?:chapter|appendix)\s+\w+\.?\s+|\d+(?:\.\d+)*\.\s+|\d+(?:\.\d+)+\s+)", re.I
)


def clean_heading(text: str) -> str:
    """A heading without its numbering ('Chapter 3. ', '3.1.2. ', '1.0 ') and extra spaces."""
    text = " ".join(text.split())
    stripped = _NUMBERING.sub("", text, count=1)
    return stripped if stripped else text


def is_question(heading: str) -> bool:
    """A heading that asks: a '?' ending it or one of its sentences ('what is Linux?!' too)."""
    return re.search(r"\?(?=[\s!\"'”)]|$)", heading.strip()) is not None


def id_key(doc_id: str) -> tuple[str, int, str]:
    """Sort key for `page#n` ids: by page, then by section number (not as text)."""
    page, _, num = doc_id.rpartition("#")
    return (page, int(num), "") if num.isdigit() else (page or doc_id, -1, num)


# --------------------------------------------------------------------------------------------
# HTML -> sections of plain text

HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
SKIP = {
    "script",
    "style",
    "svg",
    "noscript",
    "template",
    "head",
    "title",
    "button",
    "select",
    "option",
    "input",
    "textarea",
    "iframe",
    "object",
    "map",
}
BLOCK = {
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "br",
    "caption",
    "center",
    "dd",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "header",
    "hr",
    "html",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "section",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "ul",
}
_STRUCTURE = (BLOCK - {"br"}) | set(HEADINGS) | {"pre"}
_BREAK = object()


@dataclass(frozen=True)
class HtmlSection:
    """Text under one heading up to the next heading of any level; heading None: the preamble."""

    heading: str | None
    level: int
    text: str
    anchor: str = ""


def parse_html(data: bytes | str) -> BeautifulSoup:
    """Parse with the standard-library parser (no lxml version drift in the output)."""
    return BeautifulSoup(data, "html.parser")


def page_title(soup: BeautifulSoup) -> str:
    title = soup.find("title")
    return " ".join(title.get_text().split()) if isinstance(title, Tag) else ""


def _heading_anchor(tag: Tag) -> str:
    if tag.get("id"):
        return str(tag["id"])
    inner = tag.find(lambda t: t.has_attr("id") or t.has_attr("name"))
    if isinstance(inner, Tag):
        return str(inner.get("id") or inner.get("name"))
    return ""


def _events(root: Tag) -> Iterator[object]:
    """Document order: strings, _BREAK at block edges, ('pre', text), ('h', level, text, anchor)."""
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        if node is _BREAK:
            yield _BREAK
        elif isinstance(node, NavigableString):
            if type(node) is NavigableString or isinstance(node, CData):
                yield str(node)
        elif isinstance(node, Tag):
            name = node.name.lower()
            if name in SKIP:
                continue
            if name in HEADINGS:
                # A heading left open (<h2>...</h1>) swallows what follows: its title is the
                # inline text before its first block, and the blocks are walked as content.
                inline: list[str] = []
                rest: list[Any] = []
                for i, child in enumerate(node.contents):
                    if isinstance(child, Tag) and child.name.lower() in _STRUCTURE:
                        rest = node.contents[i:]
                        break
                    if isinstance(child, Tag) and child.name.lower() not in SKIP:
                        inline.append(child.get_text())
                    elif type(child) is NavigableString or isinstance(child, CData):
                        inline.append(str(child))
                text = " ".join("".join(inline).split())
                yield ("h", HEADINGS[name], text, _heading_anchor(node))
                if rest:
                    stack.append(_BREAK)
                    stack.extend(reversed(rest))
            elif name == "pre":
                yield ("pre", node.get_text())
            elif name in BLOCK:
                yield _BREAK
                stack.append(_BREAK)
                stack.extend(reversed(node.contents))
            else:
                stack.extend(reversed(node.contents))


def _join_blocks(blocks: Sequence[str]) -> str:
    return "\n\n".join(blocks)


def html_sections(root: Tag) -> list[HtmlSection]:
    """Split at every heading (h1-h6): each section is the text up to the next heading.

    Text is plain: inline markup becomes its text, blocks (paragraphs, list items, table rows)
    are separated by a blank line, and <pre> keeps its lines. Headings in the text are not kept:
    they are the sections' titles.
    """
    sections: list[HtmlSection] = []
    heading: str | None = None
    level = 0
    anchor = ""
    blocks: list[str] = []
    line: list[str] = []

    def flush_line() -> None:
        text = " ".join("".join(line).split())
        line.clear()
        if text:
            blocks.append(text)

    def close() -> None:
        flush_line()
        text = _join_blocks(blocks)
        blocks.clear()
        if heading is not None or text:
            sections.append(HtmlSection(heading, level, text, anchor))

    for event in _events(root):
        if event is _BREAK:
            flush_line()
        elif isinstance(event, str):
            line.append(event)
        elif isinstance(event, tuple) and event[0] == "pre":
            flush_line()
            pre = "\n".join(raw.rstrip() for raw in str(event[1]).split("\n")).strip("\n")
            if pre.strip():
                blocks.append(pre)
        elif isinstance(event, tuple) and event[0] == "h":
            close()
            _, level, heading, anchor = event
    close()
    return sections


def remove(soup: BeautifulSoup | Tag, *selectors: str) -> None:
    """Drop every element matching any CSS selector (navigation, tables of contents, banners)."""
    for selector in selectors:
        for tag in soup.select(selector):
            tag.decompose()


# --------------------------------------------------------------------------------------------
# plain-text FAQ helpers


def pointer_only(text: str) -> bool:
    """An answer that only sends the reader elsewhere ('See ...', a bare URL), nothing of its own."""
    flat = " ".join(text.split())
    if words(flat) > 40:
        return False
    if re.fullmatch(r"(?:https?://|www\.)\S+\.?", flat):
        return True
    sentences = flat.count(". ") + 1
    lead = r"(?i)(?:please\s+)?(?:see|refer to|read|look at|check)\b"
    further = r"(?i)for (?:more|a more detailed|further|details)\b[^.]*\b(?:see|read|refer)\b"
    return sentences <= 2 and bool(re.match(lead, flat) or re.match(further, flat))


# --------------------------------------------------------------------------------------------
# seeded splits


def seeded_order(keys: Iterable[str], seed: int = SEED) -> list[str]:
    """A shuffle that depends only on the seed and the keys (sha256 of 'seed:key', then key)."""
    return sorted(set(keys), key=lambda k: (hashlib.sha256(f"{seed}:{k}".encode()).hexdigest(), k))


def split_half(keys: Iterable[str], seed: int = SEED) -> tuple[list[str], list[str]]:
    """A seeded random half: the first ceil(n/2) keys of the seeded order are tune, the rest test."""
    order = seeded_order(keys, seed)
    cut = math.ceil(len(order) / 2)
    return sorted(order[:cut]), sorted(order[cut:])


def split_chapters(sizes: Mapping[str, int], seed: int = SEED) -> tuple[list[str], list[str]]:
    """Whole chapters to two halves whose question counts are as equal as chapters allow.

    Up to EXHAUSTIVE chapters, every partition is tried and, among the most balanced ones (both
    orientations), the seed chooses: the one whose tune chapters hash first (sha256 of
    'seed:chapter|chapter...'). With more chapters: the chapters in seeded order, each to the half
    with fewer questions so far (tune on a tie).
    """
    names = sorted(sizes)
    total = sum(sizes.values())
    if len(names) <= EXHAUSTIVE:
        best: tuple[int, str] | None = None
        chosen: list[str] = []
        for mask in range(1 << len(names)):
            tune = [n for i, n in enumerate(names) if mask >> i & 1]
            gap = abs(2 * sum(sizes[n] for n in tune) - total)
            rank = (gap, hashlib.sha256(f"{seed}:{'|'.join(tune)}".encode()).hexdigest())
            if best is None or rank < best:
                best, chosen = rank, tune
        return chosen, [n for n in names if n not in chosen]
    tune_g: list[str] = []
    test_g: list[str] = []
    count = {"tune": 0, "test": 0}
    for chapter in seeded_order(sizes, seed):
        half = "tune" if count["tune"] <= count["test"] else "test"
        (tune_g if half == "tune" else test_g).append(chapter)
        count[half] += sizes[chapter]
    return sorted(tune_g), sorted(test_g)


def assign_splits(corpus: Corpus, seed: int = SEED) -> dict[str, list[Question]]:
    """tune/test (and all) questions of a corpus, by chapter or as a seeded random half."""
    questions = sorted(
        corpus.questions, key=lambda q: id_key(q.id[2:] if q.id.startswith("q:") else q.id)
    )
    if corpus.by_chapter:
        sizes: dict[str, int] = {}
        for q in questions:
            sizes[q.chapter] = sizes.get(q.chapter, 0) + 1
        tune_ch, _ = split_chapters(sizes, seed)
        tune = [q for q in questions if q.chapter in tune_ch]
        test = [q for q in questions if q.chapter not in tune_ch]
    else:
        tune_ids, _ = split_half((q.id for q in questions), seed)
        tune = [q for q in questions if q.id in set(tune_ids)]
        test = [q for q in questions if q.id not in set(tune_ids)]
    return {"tune": tune, "test": test, "all": questions}


def read_question_lines(path: Path) -> list[str]:
    """One question a line; '#' comments and blank lines skipped (as rag_core's read_questions)."""
    return [
        line.strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def split_unanswerable(questions: Sequence[str], seed: int = SEED) -> tuple[list[str], list[str]]:
    """The same seeded-half rule as questions without chapters; each half keeps the file's order."""
    tune_set = set(split_half(questions, seed)[0])
    tune = [q for q in questions if q in tune_set]
    test = [q for q in questions if q not in tune_set]
    return tune, test


# --------------------------------------------------------------------------------------------
# writing


def write_text(path: Path, text: str) -> bool:
    """Write a file only when its content changes (mtimes stay, so eval's index cache holds)."""
    data = text.encode("utf-8")
    if path.is_file() and not path.is_symlink() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return True


def jsonl(rows: Iterable[Mapping[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def qrels_tsv(pairs: Iterable[tuple[str, str]]) -> str:
    lines = ["query-id\tcorpus-id\tscore"]
    lines += [f"{qid}\t{doc}\t1" for qid, doc in pairs]
    return "\n".join(lines) + "\n"


def write_beir(
    folder: Path,
    docs: Sequence[Doc],
    queries: Sequence[Question],
    splits: Mapping[str, Sequence[Question]],
) -> None:
    """corpus.jsonl, queries.jsonl and qrels/<split>.tsv in BEIR's layout, sorted by id."""
    ids = [d.id for d in docs]
    if len(set(ids)) != len(ids):
        raise BuildError(
            "duplicate corpus ids: " + ", ".join(sorted({i for i in ids if ids.count(i) > 1}))
        )
    known = set(ids)
    for q in queries:
        if q.gold not in known:
            raise BuildError(f"question {q.id} has gold {q.gold}, which is not in the corpus")
    ordered = sorted(docs, key=lambda d: id_key(d.id))
    write_text(
        folder / "corpus.jsonl",
        jsonl({"_id": d.id, "title": d.title, "text": d.text} for d in ordered),
    )
    write_text(
        folder / "queries.jsonl",
        jsonl({"_id": q.id, "text": q.text} for q in sorted(queries, key=lambda q: id_key(q.id))),
    )
    for split, members in splits.items():
        pairs = [(q.id, q.gold) for q in sorted(members, key=lambda q: id_key(q.id))]
        write_text(folder / "qrels" / f"{split}.tsv", qrels_tsv(pairs))


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n")


def write_unanswerable(folder: Path, source: Path, seed: int = SEED) -> dict[str, int]:
    """Copy the hand-written file and write its seeded tune/test halves beside it."""
    text = source.read_text(encoding="utf-8")
    questions = read_question_lines(source)
    tune, test = split_unanswerable(questions, seed)
    head = f"# Seeded half (seed {seed}) of unanswerable.txt; see the corpus README.\n"
    write_text(folder / "unanswerable.txt", text)
    write_text(folder / "unanswerable-tune.txt", head + "".join(q + "\n" for q in tune))
    write_text(folder / "unanswerable-test.txt", head + "".join(q + "\n" for q in test))
    return {"all": len(questions), "tune": len(tune), "test": len(test)}


# --------------------------------------------------------------------------------------------
# Debian packages (downloaded, never installed)


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    deb: Path
    root: Path  # where `dpkg -x` unpacked it
    sha256: str


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BuildError(
            f"`{name}` is not on PATH: the corpora are built from Debian packages "
            "(apt-get download + dpkg -x); run on a Debian or Ubuntu system"
        )
    return path


def _run(args: Sequence[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        raise BuildError(
            f"`{' '.join(args)}` failed (exit {exc.returncode}): {exc.stderr.strip()[-500:]}"
        ) from exc
    return done.stdout


def fetch_package(name: str, cache: Path) -> Package:
    """The package's .deb in cache/debs (downloaded once with apt-get), unpacked in cache/src."""
    debs = cache / "debs"
    found = sorted(debs.glob(f"{name}_*.deb"))
    if not found:
        debs.mkdir(parents=True, exist_ok=True)
        _run([_tool("apt-get"), "download", name], cwd=debs)
        found = sorted(debs.glob(f"{name}_*.deb"))
        if not found:
            raise BuildError(f"apt-get download {name} left no {name}_*.deb in {debs}")
    if len(found) > 1:
        raise BuildError(
            f"several .deb files for {name} in {debs}: "
            + ", ".join(p.name for p in found)
            + "; delete all but the one to build from"
        )
    deb = found[0]
    version = _run([_tool("dpkg-deb"), "-f", str(deb), "Version"]).strip()
    sha = hashlib.sha256(deb.read_bytes()).hexdigest()
    root = cache / "src" / f"{name}_{version.replace(':', '%3a')}"
    done = root / ".unpacked"
    if not done.is_file() or done.read_text(encoding="utf-8").strip() != sha:
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        _run([_tool("dpkg"), "-x", str(deb), str(root)])
        done.write_text(sha + "\n", encoding="utf-8")
    return Package(name, version, deb, root, sha)
