"""Check the facts benchmark: every question against the text of its documents.

    python bench/data/facts/check_set.py            # both splits; exit 1 on any error
    python bench/data/facts/check_set.py -v dev     # one split, with notes on answer variants

Errors (exit status 1):
- a malformed line, a missing or unknown field, a duplicate id, an unknown type or hard-case tag;
- an evidence string not found in its document (whitespace-normalised; table cells may be
  written joined by " | "), or, for a PDF, not on the page the question names;
- a canonical answer (the first of ``answers``) not in its evidence (case-insensitive);
- a yes/no question whose answers are not yes/no or none of whose reason_terms is in its evidence;
- a "table" question whose evidence is not in a table, or whose answer also appears outside the
  tables of the document; a "later_page" question whose answer is on page 1; a "unit" question
  whose number does not also occur elsewhere in the split in another sense;
- an unanswerable question whose ``near`` document matches one of its ``absent`` patterns;
- a split below the minimum counts, lacking a format, or sharing a document with the other split;
- a document outside 400-2500 words.

Text comes from the extractors named in the README (pypdf per page; python-docx paragraphs and
table rows; BeautifulSoup without script/style; Markdown and text as written) and, when rag_core
is importable, also from ragchat's own loaders, so the evidence is what the application sees.

For every unanswerable question the best-matching sentences of its near document and of the
other documents are printed for a human to confirm that none of them answers it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SPLITS = ("dev", "test")
FORMATS = {".pdf": "pdf", ".docx": "docx", ".html": "html", ".md": "markdown", ".txt": "text"}
TYPES = frozenset({"number", "date", "name", "duration", "money", "yesno", "text"})
HARD = frozenset(
    {"unit", "distractor", "similar_doc", "table", "later_page", "reason", "paraphrase",
     "boilerplate"}
)  # fmt: skip
MINIMUMS = {
    "dev": {"documents": 7, "answerable": 64, "unanswerable": 18},
    "test": {"documents": 5, "answerable": 36, "unanswerable": 12},
}
WORDS = (400, 2500)
_COMMON = ("id", "question", "answerable", "answers", "document", "page", "type", "hard")
_DROP_HTML = ("script", "style", "noscript", "template", "head")


def norm(text: str) -> str:
    """Whitespace-normalised text with table-cell separators (|) treated as spaces."""
    return " ".join(text.replace("|", " ").split())


def in_loaded_text(evidence: str, loaded: str) -> bool:
    """Whether the loader's text holds `evidence`; evidence from a table row ('a | b | c') is
    held when one line has its cells in order, each under its column header as the loaders
    write rows ('Model: a | Motor: b | Price: c')."""
    if norm(evidence) in norm(loaded):
        return True
    cells = [norm(cell) for cell in evidence.split("|") if cell.strip()]
    if len(cells) < 2:
        return False
    for line in loaded.splitlines():
        parts = [norm(part) for part in line.split(" | ")]
        k = 0
        for part in parts:
            if k < len(cells) and (part == cells[k] or part.endswith(": " + cells[k])):
                k += 1
        if k == len(cells):
            return True
    return False


def fold(text: str) -> str:
    return norm(text).casefold()


def contains(haystack: str, needle: str) -> bool:
    """needle in haystack as whole words: '5 working days' is not in '15 working days'."""
    return re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", haystack) is not None


@dataclass
class DocText:
    """A document's extracted text: per page (one page unless PDF), and its table text apart."""

    name: str
    fmt: str
    pages: list[str]
    tables: str = ""  # the text of table rows only
    body: str = ""  # the text outside tables
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def full(self) -> str:
        return "\n".join(self.pages)


def extract(path: Path) -> DocText:
    fmt = FORMATS[path.suffix]
    if fmt == "pdf":
        from pypdf import PdfReader

        pages = [page.extract_text() or "" for page in PdfReader(path).pages]
        return DocText(path.name, fmt, pages, body="\n".join(pages))
    if fmt == "docx":
        import docx

        document = docx.Document(str(path))
        body, tables = [], []
        has_heading = False
        for item in document.iter_inner_content():
            if hasattr(item, "rows"):
                for row in item.rows:
                    tables.append(" | ".join(cell.text for cell in row.cells))
            else:
                body.append(item.text)
                has_heading |= item.style.name.lower().startswith("heading")
        text = "\n".join(body + tables)
        extra = {"has_table": bool(tables), "has_heading": has_heading}
        return DocText(path.name, fmt, [text], "\n".join(tables), "\n".join(body), extra)
    if fmt == "html":
        from bs4 import BeautifulSoup

        raw = path.read_text(encoding="utf-8")
        soup = BeautifulSoup(raw, "html.parser")
        extra = {tag: soup.find(tag) is not None for tag in ("script", "style", "nav", "table")}
        for tag in soup.find_all(_DROP_HTML):
            tag.decompose()
        text = soup.get_text(" ")
        tables = [t.get_text(" ") for t in soup.find_all("table")]
        for t in soup.find_all("table"):
            t.decompose()
        return DocText(path.name, fmt, [text], "\n".join(tables), soup.get_text(" "), extra)
    text = path.read_text(encoding="utf-8")
    if fmt == "markdown":
        lines = text.splitlines()
        tables = [ln for ln in lines if ln.lstrip().startswith("|")]
        body = [ln for ln in lines if not ln.lstrip().startswith("|")]
        extra = {
            "has_table": bool(tables),
            "has_heading": any(ln.startswith("#") for ln in lines),
        }
        return DocText(path.name, fmt, [text], "\n".join(tables), "\n".join(body), extra)
    return DocText(path.name, fmt, [text], body=text)


def loader_pages(path: Path) -> dict[int | None, str] | None:
    """The text ragchat's own loader gives, by PDF page (key None for other formats);
    None if rag_core cannot be imported."""
    try:
        from rag_core.ingest.loaders import LoadLimits, load_document
    except ImportError:
        return None
    doc = load_document(path.read_bytes(), path.name, LoadLimits(1000, 10**7))
    pages: dict[int | None, str] = {}
    for block in doc.blocks:
        piece = doc.text[block.char_start : block.char_end]
        pages[block.page] = pages.get(block.page, "") + "\n" + piece
    return pages


def documents(split: str) -> dict[str, Path]:
    folder = HERE / split / "documents"
    return {p.name: p for p in sorted(folder.iterdir()) if p.suffix in FORMATS}


def load_questions(split: str) -> list[dict[str, Any]]:
    path = HERE / split / "questions.jsonl"
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"{path}:{number}: not JSON: {exc}") from exc
        row["_line"] = number
        rows.append(row)
    return rows


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_UNITS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
]  # fmt: skip
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60}
_WORD_NUMBER = re.compile(
    rf"\b(?:({'|'.join(_TENS)})(?:-({'|'.join(_UNITS[1:10])}))?|({'|'.join(_UNITS)}))\b", re.I
)


def _digits(m: re.Match[str]) -> str:
    if m.group(3):
        return str(_UNITS.index(m.group(3).lower()))
    value = _TENS[m.group(1).lower()]
    return str(value + (_UNITS.index(m.group(2).lower()) if m.group(2) else 0))


def numbers(text: str) -> set[str]:
    """Numbers in text, canonical: number words as digits, thousands commas dropped, decimal
    comma as point, 129.00 -> 129."""
    out = set()
    for raw in _NUMBER.findall(_WORD_NUMBER.sub(_digits, text)):
        s = raw
        if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", s):
            s = s.replace(",", "")
        s = s.replace(",", ".")
        if "." in s:
            s = s.rstrip("0").rstrip(".")
        out.add(s)
    return out


_STOP = frozenset(
    {
        "a", "an", "the", "of", "to", "in", "on", "for", "at", "by", "with", "and", "or", "is", "are",
        "was", "be", "can", "do", "does", "did", "how", "what", "which", "who", "when", "where", "why",
        "much", "many", "long", "my", "i", "me", "we", "our", "you", "your", "it", "its", "this",
        "that", "from", "as", "if", "per", "any", "there", "their", "have", "has", "need", "must",
        "may", "should", "will", "would", "get", "give",
    }
)  # fmt: skip


def _terms(text: str) -> set[str]:
    return {w[:5] for w in re.findall(r"[a-z0-9]+", text.casefold()) if w not in _STOP}


def sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+|\n\s*\n|\n(?=\s*[-|#])", text)
    return [norm(p) for p in parts if len(norm(p)) > 3]


def best_sentences(question: str, doc: DocText, n: int = 1) -> list[tuple[int, str]]:
    want = _terms(question)
    scored = [(len(want & _terms(s)), s) for s in sentences(doc.full)]
    scored.sort(key=lambda x: (-x[0], len(x[1])))
    return scored[:n]


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unanswerable: list[str] = field(default_factory=list)
    stats: dict[str, Counter[str]] = field(default_factory=dict)
    loader_checked: bool = False  # evidence also checked against ragchat's own loaders


def check_split(split: str, *, with_loader: bool = True, best_matches: bool = True) -> Report:
    rep = Report()
    err = rep.errors.append
    docs = documents(split)
    texts = {name: extract(path) for name, path in docs.items()}
    loaded = {name: loader_pages(path) for name, path in docs.items()} if with_loader else {}
    rep.loader_checked = bool(loaded) and all(v is not None for v in loaded.values())
    rows = load_questions(split)

    # ---------------------------------------------------------------- documents
    fmt_count = Counter(t.fmt for t in texts.values())
    rep.stats["documents"] = fmt_count
    for fmt in FORMATS.values():
        if not fmt_count[fmt]:
            err(f"{split}: no {fmt} document")
    if not any(t.fmt == "pdf" and len(t.pages) >= 4 for t in texts.values()):
        err(f"{split}: no PDF of 4 or more pages")
    if not any(t.fmt == "docx" and t.extra["has_table"] and t.extra["has_heading"] for t in texts.values()):  # fmt: skip
        err(f"{split}: no DOCX with both a table and headings")
    if not any(t.fmt == "html" and all(t.extra.values()) for t in texts.values()):
        err(f"{split}: no HTML page with <script>, <style>, <nav> and <table>")
    if not any(t.fmt == "markdown" and t.extra["has_table"] and t.extra["has_heading"] for t in texts.values()):  # fmt: skip
        err(f"{split}: no Markdown document with both a table and headings")
    words = {}
    for name, t in texts.items():
        words[name] = len(t.full.split())
        if not WORDS[0] <= words[name] <= WORDS[1]:
            err(f"{split}/{name}: {words[name]} words, outside {WORDS[0]}-{WORDS[1]}")
    rep.stats["words"] = Counter(words)

    # ---------------------------------------------------------------- questions
    ids: Counter[str] = Counter(r.get("id", "") for r in rows)
    for qid, n in ids.items():
        if n > 1:
            err(f"{split}: id {qid} used {n} times")
    used_docs: set[str] = set()
    types: Counter[str] = Counter()
    hards: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    corpus = {name: fold(t.full) for name, t in texts.items()}
    for row in rows:
        qid = row.get("id", f"line {row['_line']}")
        where = f"{split}/{qid}"
        missing = [k for k in _COMMON if k not in row]
        if missing:
            err(f"{where}: missing fields {missing}")
            continue
        if not str(qid).startswith(f"{split}-"):
            err(f"{where}: id does not start with '{split}-'")
        if row["type"] not in TYPES:
            err(f"{where}: unknown type {row['type']!r}")
        unknown = set(row["hard"]) - HARD
        if unknown:
            err(f"{where}: unknown hard-case tags {sorted(unknown)}")
        if not isinstance(row["question"], str) or not row["question"].strip().endswith("?"):
            err(f"{where}: the question should be a string ending in '?'")
        if row["answerable"] is True:
            kinds["answerable"] += 1
            types[row["type"]] += 1
            hards.update(row["hard"])
            _check_answerable(row, where, texts, loaded, corpus, rep)
            used_docs.add(row["document"])
        elif row["answerable"] is False:
            kinds["unanswerable"] += 1
            hards.update(f"unanswerable:{h}" for h in row["hard"])
            _check_unanswerable(row, where, texts, rep, best_matches)
            used_docs.add(row.get("near"))
        else:
            err(f"{where}: answerable must be true or false")
    for name in docs:
        if name not in used_docs:
            err(f"{split}/{name}: no question is about this document")
    rep.stats["questions"] = kinds
    rep.stats["types"] = types
    rep.stats["hard"] = hards
    mins = MINIMUMS[split]
    if len(docs) < mins["documents"]:
        err(f"{split}: {len(docs)} documents, need {mins['documents']}")
    for kind in ("answerable", "unanswerable"):
        if kinds[kind] < mins[kind]:
            err(f"{split}: {kinds[kind]} {kind} questions, need {mins[kind]}")
    return rep


def _check_answerable(
    row: dict[str, Any],
    where: str,
    texts: dict[str, DocText],
    loaded: dict[str, dict[int | None, str] | None],
    corpus: dict[str, str],
    rep: Report,
) -> None:
    err = rep.errors.append
    name, evidence, answers = row["document"], row.get("evidence"), row["answers"]
    if name not in texts:
        err(f"{where}: document {name!r} is not in this split")
        return
    doc = texts[name]
    if not isinstance(evidence, str) or not evidence.strip():
        err(f"{where}: no evidence")
        return
    if not answers or not all(isinstance(a, str) and a.strip() for a in answers):
        err(f"{where}: answers must be a non-empty list of strings")
        return
    if len({fold(a) for a in answers}) != len(answers):
        err(f"{where}: duplicate answer variants")
    ev = norm(evidence)
    # evidence in the document (and on its page)
    if doc.fmt == "pdf":
        page = row["page"]
        if not isinstance(page, int) or not 1 <= page <= len(doc.pages):
            err(f"{where}: page {page!r} is not a page of {name} ({len(doc.pages)} pages)")
            return
        if ev not in norm(doc.pages[page - 1]):
            on = [i + 1 for i, p in enumerate(doc.pages) if ev in norm(p)]
            err(f"{where}: evidence not on page {page} of {name}" + (f" (on {on})" if on else ""))
    else:
        if row["page"] is not None:
            err(f"{where}: page must be null for a {doc.fmt} document")
        if ev not in norm(doc.full):
            err(f"{where}: evidence not found in {name}: {evidence[:80]!r}")
    pages = loaded.get(name)
    if pages is not None:
        key = row["page"] if doc.fmt == "pdf" else None
        if not in_loaded_text(evidence, pages.get(key, "")):
            err(f"{where}: evidence not in the text ragchat's loader gives for {name}")
    # answers in the evidence (a yes/no question's answer is a key word; its reason is checked)
    canonical = fold(answers[0])
    yesno = row["type"] == "yesno"
    if not yesno and not contains(fold(evidence), canonical):
        err(f"{where}: canonical answer {answers[0]!r} not in the evidence")
    ev_numbers = numbers(evidence)
    for variant in [] if yesno else answers[1:]:
        if contains(fold(evidence), fold(variant)):
            continue
        nums = numbers(variant)
        if nums and not nums <= ev_numbers:
            rep.notes.append(f"{where}: variant {variant!r} has numbers not in the evidence")
        elif not nums:
            rep.notes.append(f"{where}: variant {variant!r} (no digits) is not in the evidence")
    hard = set(row["hard"])
    # yes/no
    if yesno:
        terms = row.get("reason_terms")
        if not {fold(a) for a in answers} <= {"yes", "no"}:
            err(f"{where}: yes/no answers must be 'yes' or 'no'")
        if not terms or not any(fold(t) in fold(evidence) for t in terms):
            err(f"{where}: none of the reason_terms {terms} is in the evidence")
        if "reason" not in hard:
            err(f"{where}: a yes/no question with a reason should be tagged 'reason'")
    elif "reason_terms" in row:
        err(f"{where}: reason_terms on a question that is not yes/no")
    # hard-case tags that can be verified
    if "table" in hard:
        if doc.fmt not in ("docx", "html", "markdown"):
            err(f"{where}: 'table' is for DOCX, HTML and Markdown tables")
        elif ev not in norm(doc.tables):
            err(f"{where}: tagged 'table' but the evidence is not in a table")
        else:
            # The fact must be only in the table; the same string may serve another fact in the
            # text (a distractor), which a person confirms from this note.
            for sentence in sentences(doc.body):
                if contains(fold(sentence), canonical):
                    rep.notes.append(f"{where}: {answers[0]!r} also outside the table: {sentence}")
    if "later_page" in hard:
        if doc.fmt != "pdf" or not isinstance(row["page"], int) or row["page"] < 3:
            err(f"{where}: 'later_page' needs a PDF page from the third on")
        elif fold(evidence) in fold(doc.pages[0]) or (
            not yesno and contains(fold(doc.pages[0]), canonical)
        ):
            err(f"{where}: tagged 'later_page' but the fact is on page 1")
    if "unit" in hard:
        others = _other_senses(answers[0], corpus)
        if not others:
            err(f"{where}: tagged 'unit' but its number appears nowhere else in another sense")
        else:
            rep.notes.append(f"{where}: {answers[0]!r} vs " + "; ".join(others[:3]))


def _other_senses(answer: str, corpus: dict[str, str]) -> list[str]:
    """Places in the split where the answer's number occurs with another unit than the answer's
    (EUR 35 vs 35 cents, 14 hours vs 14 days)."""
    m = re.search(r"(\d+)((?:[.,]\d+)?)", answer)
    if not m:
        return []
    whole, decimals = m.groups()
    if decimals and set(decimals[1:]) == {"0"}:
        decimals = ""  # EUR 20.00 is also written EUR 20
    tail = re.escape(decimals) if decimals else r"(?:[.,]0+)?"
    pattern = re.compile(rf"(?<![\d.,:]){whole}{tail}(?![\d:]|[.,]\d)")
    unit = fold(answer[: m.start()] + " " + answer[m.end() :]).strip()
    found = []
    for name, text in corpus.items():
        for hit in pattern.finditer(text):
            before = text[max(0, hit.start() - len(unit) - 1) : hit.start()]
            after = text[hit.end() : hit.end() + len(unit) + 1]
            if unit and (unit in before or unit in after):
                continue
            found.append(f"{name}: ...{text[max(0, hit.start() - 12) : hit.end() + 14]}...")
    return found


def _check_unanswerable(
    row: dict[str, Any], where: str, texts: dict[str, DocText], rep: Report, best_matches: bool
) -> None:
    err = rep.errors.append
    if row["answers"] != [] or row["document"] is not None:
        err(f"{where}: an unanswerable question has answers [] and document null")
    near = row.get("near")
    if near not in texts:
        err(f"{where}: near document {near!r} is not in this split")
        return
    for pattern in row.get("absent", []):
        m = re.search(pattern, texts[near].full)
        if m:
            err(f"{where}: absent pattern {pattern!r} matches {near}: {m.group(0)!r}")
    if not row.get("absent"):
        rep.notes.append(f"{where}: no 'absent' patterns; check the best matches by eye")
    if best_matches:
        lines = [f"{where} [{near}] {row['question']}"]
        for score, sentence in best_sentences(row["question"], texts[near], 2):
            lines.append(f"    near  ({score}) {sentence[:160]}")
        elsewhere = [
            (score, name, s)
            for name, t in texts.items()
            if name != near
            for score, s in best_sentences(row["question"], t)
        ]
        for score, name, sentence in sorted(elsewhere, key=lambda x: -x[0])[:1]:
            if not score:
                break
            lines.append(f"    other ({score}) {name}: {sentence[:140]}")
        rep.unanswerable.append("\n".join(lines))


def check_all(splits: tuple[str, ...] = SPLITS, **kwargs: Any) -> dict[str, Report]:
    reports = {split: check_split(split, **kwargs) for split in splits}
    if set(splits) == set(SPLITS):
        shared = set(documents("dev")) & set(documents("test"))
        if shared:
            reports["test"].errors.append(f"documents in both splits: {sorted(shared)}")
        questions = {fold(r["question"]) for r in load_questions("dev")}
        for r in load_questions("test"):
            if fold(r["question"]) in questions:
                reports["test"].errors.append(f"test/{r['id']}: same question as in dev")
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("splits", nargs="*", choices=[*SPLITS, []], help="default: both")
    parser.add_argument("-v", "--verbose", action="store_true", help="print notes too")
    parser.add_argument("--no-loader", action="store_true", help="skip ragchat's loaders")
    args = parser.parse_args(argv)
    reports = check_all(tuple(args.splits or SPLITS), with_loader=not args.no_loader)
    failed = False
    for split, rep in reports.items():
        print(f"== {split}")
        for key in ("documents", "questions", "types", "hard"):
            print(f"  {key}: " + ", ".join(f"{k} {v}" for k, v in sorted(rep.stats[key].items())))
        print("  words: " + ", ".join(f"{k} {v}" for k, v in rep.stats["words"].items()))
        print(f"  evidence checked against ragchat's loaders too: {rep.loader_checked}")
        print("  -- unanswerable questions, with the best-matching sentences (check by eye):")
        for block in rep.unanswerable:
            print("  " + block.replace("\n", "\n  "))
        if args.verbose:
            for note in rep.notes:
                print(f"  note: {note}")
        for error in rep.errors:
            print(f"  ERROR: {error}")
        print(f"  {len(rep.errors)} errors, {len(rep.notes)} notes")
        failed |= bool(rep.errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
