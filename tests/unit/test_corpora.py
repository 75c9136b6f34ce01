"""bench.corpora: sectioning, heading removal, seeded splits and BEIR writing (offline, no apt)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.corpora import common, debian_faq, fetchmail, pyfaq, sqlite
from bench.corpora.common import (
    BuildError,
    Corpus,
    Doc,
    Question,
    assign_splits,
    clean_heading,
    html_sections,
    is_question,
    parse_html,
    pointer_only,
    seeded_order,
    split_chapters,
    split_half,
    split_unanswerable,
    write_beir,
    write_text,
)
from rag_core.evaluation import load_beir

LONG = " ".join(f"word{i}" for i in range(20))  # 20 words: above the 15-word minimum


def test_html_sections_split_at_headings_and_keep_code() -> None:
    html = """<html><head><title>T</title><script>var x = 1;</script></head><body>
    <p>Intro text before any heading.</p>
    <h1>1. First</h1><p>Para <b>one</b> of
    first.</p><ul><li>item a<li>item b</ul>
    <pre>
  code line 1
    indented 2
</pre>
    <h2 id="sec">1.1. Second?</h2><div>Second <a href="x">text</a>.<!-- a comment --></div>
    <svg><text>diagram</text></svg><button>hide</button>
    </body></html>"""
    sections = html_sections(parse_html(html).body)
    assert [(s.heading, s.level) for s in sections] == [
        (None, 0),
        ("1. First", 1),
        ("1.1. Second?", 2),
    ]
    assert sections[0].text == "Intro text before any heading."
    assert sections[1].text == (
        "Para one of first.\n\nitem a\n\nitem b\n\n  code line 1\n    indented 2"
    )
    assert sections[2].text == "Second text."
    assert sections[2].anchor == "sec"


def test_a_heading_closed_by_the_wrong_tag_does_not_swallow_the_page() -> None:
    html = "<body><h2 align=center>List Of Documents</h1><p>" + LONG + "</p><h3>Next</h3>x</body>"
    sections = html_sections(parse_html(html).body)
    assert sections[0].heading == "List Of Documents"
    assert sections[0].text == LONG
    assert sections[1].heading == "Next"


def test_clean_heading_and_is_question() -> None:
    assert clean_heading("Chapter 3. Choosing a Debian distribution") == (
        "Choosing a Debian distribution"
    )
    assert clean_heading("3.1.12. I am  tracking stable?") == "I am tracking stable?"
    assert clean_heading("1.0 About SQLite Requirements") == "About SQLite Requirements"
    assert clean_heading("1. Summary") == "Summary"
    assert clean_heading("A Virtual Package") == "A Virtual Package"
    assert clean_heading("64-bit rowids") == "64-bit rowids"
    assert is_question("What is Debian?")
    assert is_question("OK, now I know what Debian is... what is Linux?!")
    assert is_question("Why symlinks for `unstable'? I thought this CD held only stable!")
    assert not is_question("dpkg")
    assert not is_question("Files in /etc/rc?.d")


def test_pointer_only_answers() -> None:
    assert pointer_only("See limits.html for a full discussion of the limits of SQLite.")
    assert pointer_only("https://www.debian.org/doc/")
    assert pointer_only(
        "For a more detailed description on this, read the New Maintainers' Guide, available "
        "in the maint-guide package or at https://www.debian.org/doc/devel-manuals#maint-guide."
    )
    assert not pointer_only("Yes. SQLite is in the public domain. You can do anything with it.")
    assert not pointer_only("See? It works. Packages are kept in a pool. Then more. And more.")


DEBIAN_PAGE = f"""<html><head><title>Chapter 7. Basics</title></head><body>
<div class="navheader"><table><tr><th>Chapter 7. Basics</th></tr></table></div>
<div class="chapter"><h1 class="title"><a id="pkg"></a>Chapter 7. Basics</h1>
<div class="toc"><dl><dt><a href="#a">7.1. What is a Debian package?</a></dt></dl></div>
<div class="section"><h2 class="title"><a id="a"></a>7.1. What is a Debian package?</h2>
<p>{LONG}, as <a class="xref" href="x.html#b" title="7.2">Section 7.2, “How do I hold a package?”</a>
explains.</p></div>
<div class="section"><h2 class="title">7.2. How do I hold a package?</h2><p>Use dpkg.</p></div>
<div class="section"><h3 class="title">7.2.1. dpkg</h3><p>{LONG}</p></div>
</div><div class="navfooter"><p>Prev Next</p></div></body></html>"""


def test_debian_page_questions_lose_their_heading() -> None:
    docs, questions, dropped = debian_faq.page_sections(DEBIAN_PAGE.encode(), "pkg-basics")
    assert [q.id for q in questions] == ["q:pkg-basics#1"]
    assert questions[0].text == "What is a Debian package?"
    assert questions[0].gold == "pkg-basics#1"
    assert questions[0].chapter == "pkg-basics"
    by_id = {d.id: d for d in docs}
    gold = by_id["pkg-basics#1"]
    assert gold.title == ""
    assert "What is a Debian package" not in gold.text
    # the generated xref text (another question, verbatim) is cut to the reference
    assert "Section 7.2 explains." in gold.text
    assert "How do I hold" not in gold.text
    assert by_id["pkg-basics#3"].title == "dpkg"  # not a question: the heading is its title
    assert [d.question for d in dropped] == ["How do I hold a package?"]  # 2-word answer
    assert set(by_id) == {"pkg-basics#1", "pkg-basics#3"}  # toc, nav and empty h1 are gone


SQLITE_FAQ = f"""<html><head><title>SQLite Frequently Asked Questions</title></head><body>
<div class="nosearch"><a href="index.html"><img class="logo"></a><div class="menu">Home</div></div>
<h2>Frequently Asked Questions</h2><ol class="nounderline"><li><a href="#q1">How?</a></li></ol>
<a name="q1"></a><p><b>(1) How do I create an AUTOINCREMENT field?</b></p>
<blockquote><p>{LONG}</p><pre>CREATE TABLE t1(a INTEGER PRIMARY KEY);</pre></blockquote>
<a name="q2"></a><p><b>(2) Are there size limits?</b></p>
<blockquote><p>See <a href="limits.html">limits.html</a> for a full discussion.</p></blockquote>
<p align="center"><small><i>This page last modified on <a id="mtimelink">2021</a></i></small></p>
</body></html>"""


def test_sqlite_faq_questions_and_boilerplate() -> None:
    docs, questions, dropped = sqlite.page_docs(SQLITE_FAQ.encode(), "faq")
    assert [(q.id, q.text, q.gold) for q in questions] == [
        ("q:faq#1", "How do I create an AUTOINCREMENT field?", "faq#1")
    ]
    assert [d.id for d in docs] == ["faq#1"]
    assert docs[0].title == ""
    assert docs[0].text.endswith("CREATE TABLE t1(a INTEGER PRIMARY KEY);")
    assert "modified" not in docs[0].text
    assert [d.question for d in dropped] == ["Are there size limits?"]


def test_sqlite_unclosed_paragraph_keeps_its_table() -> None:
    html = f"""<html><head><title>Omitted</title></head><body><h2>Omitted</h2>
    <p>See also the quirks.
    <table><tr><td><b>GRANT and REVOKE</b></td><td>{LONG}</td></tr></table>
    <p align="center"><small><i>Last modified <a id="mtimelink">2022</a></i></small></p>
    </body></html>"""
    docs, questions, _ = sqlite.page_docs(html.encode(), "omitted")
    assert questions == []
    assert docs[0].title == "Omitted"
    assert "GRANT and REVOKE" in docs[0].text and LONG in docs[0].text
    assert "modified" not in docs[0].text


def test_sqlite_title_is_the_heading_path() -> None:
    html = f"<html><head><title>SQLite Autoincrement</title></head><body><h1>1. Summary</h1><p>{LONG}</p></body></html>"
    docs, _, _ = sqlite.page_docs(html.encode(), "autoinc")
    assert docs == [Doc("autoinc#0", "SQLite Autoincrement > Summary", LONG)]


def test_seeded_splits_are_deterministic_and_partition() -> None:
    keys = [f"q{i}" for i in range(41)]
    tune, test = split_half(keys, seed=7)
    assert (tune, test) == split_half(list(reversed(keys)), seed=7)
    assert len(tune) == 21 and len(test) == 20
    assert sorted(tune + test) == sorted(keys)
    assert split_half(keys, seed=8) != (tune, test)
    assert seeded_order(keys, 7) != seeded_order(keys, 8)


def test_chapter_split_balances_whole_chapters() -> None:
    pyfaq_sizes = {"programming": 61, "general": 22, "extending": 16, "gui": 4, "installed": 3}
    tune, test = split_chapters(pyfaq_sizes)
    assert sorted([tune, test]) == [
        ["extending", "general", "gui", "installed"],
        ["programming"],
    ]
    sizes = {f"ch{i}": n for i, n in enumerate([7, 17, 6, 3, 10, 15, 7, 4, 14, 6, 4, 13, 6, 6])}
    tune, test = split_chapters(sizes, seed=3)
    assert split_chapters(sizes, seed=3) == (tune, test)
    assert sorted(tune + test) == sorted(sizes) and not set(tune) & set(test)
    assert abs(sum(sizes[c] for c in tune) - sum(sizes[c] for c in test)) <= 1
    # above EXHAUSTIVE chapters: greedy, still within the largest chapter
    many = {f"c{i:02}": 1 + (i * 7) % 11 for i in range(common.EXHAUSTIVE + 3)}
    tune, test = split_chapters(many, seed=3)
    gap = abs(sum(many[c] for c in tune) - sum(many[c] for c in test))
    assert gap <= max(many.values())


def test_unanswerable_split_keeps_file_order() -> None:
    questions = [f"Question {i}?" for i in range(10)]
    tune, test = split_unanswerable(questions, seed=5)
    assert len(tune) == 5 and len(test) == 5
    assert tune == [q for q in questions if q in tune]
    assert sorted(tune + test) == sorted(questions)


def _corpus() -> Corpus:
    docs = [Doc(f"p#{i}", f"Title {i}", f"text {i} " + LONG) for i in (10, 2, 1, 3)]
    questions = [
        Question("q:p#1", "One?", "p#1", "a"),
        Question("q:p#2", "Two?", "p#2", "b"),
        Question("q:p#10", "Ten?", "p#10", "b"),
    ]
    return Corpus("toy", docs, questions)


def test_write_beir_is_readable_sorted_and_byte_stable(tmp_path: Path) -> None:
    corpus = _corpus()
    splits = assign_splits(corpus, seed=1)
    write_beir(tmp_path / "toy", corpus.docs, splits["all"], splits)
    lines = (tmp_path / "toy" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    assert [line.split('"')[3] for line in lines] == ["p#1", "p#2", "p#3", "p#10"]
    for split in ("tune", "test", "all"):
        dataset = load_beir(tmp_path / "toy", split)
        assert len(dataset.corpus) == 4
        for qid, judged in dataset.qrels.items():
            assert judged == {qid.removeprefix("q:"): 1}
    tune = load_beir(tmp_path / "toy", "tune").queries
    test = load_beir(tmp_path / "toy", "test").queries
    assert not set(tune) & set(test) and len(tune) + len(test) == 3
    # whole chapters: p#2 and p#10 (chapter b) are on the same side
    assert ("q:p#2" in tune) == ("q:p#10" in tune)
    first = {p.name: p.read_bytes() for p in (tmp_path / "toy").rglob("*") if p.is_file()}
    other = tmp_path / "again"
    reordered = Corpus("toy", list(reversed(corpus.docs)), list(reversed(corpus.questions)))
    splits = assign_splits(reordered, seed=1)
    write_beir(other, reordered.docs, splits["all"], splits)
    assert {p.name: p.read_bytes() for p in other.rglob("*") if p.is_file()} == first


def test_write_beir_refuses_a_gold_outside_the_corpus(tmp_path: Path) -> None:
    corpus = _corpus()
    bad = [*corpus.questions, Question("q:p#9", "Nine?", "p#9", "a")]
    with pytest.raises(BuildError, match="p#9"):
        write_beir(tmp_path, corpus.docs, bad, {"all": bad})


def test_write_text_leaves_an_unchanged_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    assert write_text(path, "same\n")
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert not write_text(path, "same\n")
    assert path.stat().st_mtime_ns == 1_000_000_000
    assert write_text(path, "changed\n")


def test_pyfaq_split_from_a_read_only_dev_set(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "qrels").mkdir(parents=True)
    (source / "corpus.jsonl").write_text('{"_id": "faq/general#1", "title": "", "text": "x"}\n')
    (source / "queries.jsonl").write_text('{"_id": "q:faq/general#1", "text": "x?"}\n')
    rows = [(f"q:faq/programming#{i}", f"faq/programming#{i}") for i in range(1, 7)]
    rows += [("q:faq/general#1", "faq/general#1"), ("q:faq/gui#2", "faq/gui#2")]
    dev = "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in rows)
    (source / "qrels" / "dev.tsv").write_text(dev)
    manifest = pyfaq.build(tmp_path / "out", source, seed=1)
    folder = tmp_path / "out" / "pyfaq"
    assert (folder / "corpus.jsonl").is_symlink()
    assert (folder / "qrels" / "dev.tsv").read_text() == dev
    assert sorted([manifest["chapters"]["tune"], manifest["chapters"]["test"]]) == [
        ["faq/general", "faq/gui"],
        ["faq/programming"],
    ]
    tune = (folder / "qrels" / "tune.tsv").read_text().splitlines()[1:]
    test = (folder / "qrels" / "test.tsv").read_text().splitlines()[1:]
    assert sorted(tune + test) == sorted(f"{q}\t{d}\t1" for q, d in rows)
    pyfaq.build(tmp_path / "out", source, seed=1)  # a second build over the first is fine


def test_missing_apt_get_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common.shutil, "which", lambda name: None)
    with pytest.raises(BuildError, match="apt-get"):
        common.fetch_package("debian-faq", tmp_path)


FETCHMAIL_FAQ = f"""<html><head><title>The Fetchmail FAQ</title></head><body>
<table summary="Canned page footer"><tr><td>Back to Fetchmail Home Page</td></tr></table>
<h1 id="Contentdetail">Detailed Contents</h1>
<h2 id="C_G">General problems</h2>
<a href="#G1">G1. What is fetchmail and why should I bother?</a><br/>{LONG}
<h1 id="G">General problems</h1>
<h2><a id="G1" name="G1">G1. What is fetchmail and why should I
bother?</a></h2><p>{LONG}</p>
<h2><a id="G2" name="G2"><strike>G2. Is it obsolete?</strike></a></h2><p>{LONG}</p>
<h2><a id="F1" name="F1">F1. Why does my old .fetchmailrc file no longer work?</a></h2>
<h3>If your file predates 6.4.0</h3><p>{LONG}</p>
</body></html>"""


def test_fetchmail_entries_chapters_and_struck_out_questions() -> None:
    docs, questions, dropped = fetchmail.page_docs(FETCHMAIL_FAQ.encode(), "fetchmail-FAQ")
    assert [(q.text, q.chapter) for q in questions] == [
        ("What is fetchmail and why should I bother?", "G")
    ]
    by_id = {d.id: d for d in docs}
    assert by_id[questions[0].gold].title == ""
    assert "G1" not in by_id[questions[0].gold].text
    # the table of contents is gone; the struck-out entry stays as a distractor without a query
    assert not any("What is fetchmail" in d.text for d in docs)
    assert {d.reason.split(":")[0] for d in dropped} == {"G2", "F1"}
    assert any(d.title == "The Fetchmail FAQ > If your file predates 6.4.0" for d in docs)
