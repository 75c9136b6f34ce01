"""The benchmark helpers: checks, percentiles, interleaving, corpus slices, the report, and the
latency benchmark's pure parts (perturbed copies, copy plan, rotations, the old term statistics)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.common import BenchResult, Check, alternate, corpus_slice, fmt, median, p, write_corpus
from bench.ingest_memory import make_one_line, make_short_lines, peak_rss
from bench.latency import (
    copy_plan,
    debian_pages,
    parse_sizes,
    perturb,
    ready_counts_uncached,
    rotated,
    rotations,
    term_stats_by_search,
)
from bench.report import render_report, write_report
from bench.run_all import result_from_json
from rag_core.evaluation import BeirDataset, BeirDocument


def test_check_verdicts() -> None:
    assert Check("ratio", 0.95, 0.90).verdict == "PASS"
    assert Check("ratio", 0.85, 0.90).verdict == "MISS"
    assert Check("ms", 25.0, 30.0, at_most=True).verdict == "PASS"
    assert Check("ms", 31.0, 30.0, at_most=True).verdict == "MISS"
    assert Check("ms", None, 30.0, at_most=True).verdict == "NOT RUN"
    assert "target <= 30.0" in Check("ms", 31.0, 30.0, at_most=True, unit="").describe()


def test_median_percentiles_and_format() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert p([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert p([0.0, 10.0], 95) == pytest.approx(9.5)
    with pytest.raises(ValueError):
        p([], 50)
    assert fmt(1234.5) == "1,234"
    assert fmt(12.345) == "12.3"
    assert fmt(0.12345) == "0.123"


def test_alternate_interleaves_the_sides() -> None:
    calls: list[str] = []

    def side(name: str) -> float:
        calls.append(name)
        return float(len(calls))

    out = alternate({"a": lambda: side("a"), "b": lambda: side("b")}, 3)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert out == {"a": [1.0, 4.0, 5.0], "b": [2.0, 3.0, 6.0]}


def _dataset() -> BeirDataset:
    corpus = {f"d{i}": BeirDocument(f"d{i}", f"Title {i}", f"text {i}") for i in range(10)}
    return BeirDataset(Path("x"), "dev", corpus, {"q1": "?"}, {"q1": {"d7": 1, "d9": 2}})


def test_corpus_slice_keeps_gold_documents(tmp_path: Path) -> None:
    sliced = corpus_slice(_dataset(), 4, gold_first=True)
    assert len(sliced) == 4 and {"d7", "d9"} <= set(sliced)
    assert len(corpus_slice(_dataset(), 5)) == 5
    files = write_corpus(sliced, tmp_path)
    assert files["d7"].read_text() == "# Title 7\n\ntext 7"


def test_report_and_json_round_trip(tmp_path: Path) -> None:
    result = BenchResult(
        name="demo",
        title="Demo | bench",
        command="python -m bench.demo",
        rows=(("speed", "12 chunks/s"),),
        checks=(Check("ratio", 0.8, 0.9), Check("p50", 20.0, 30.0, at_most=True, unit=" ms")),
        notes=("a note",),
        seconds=3.0,
    )
    text = render_report(
        [result], {"cpu": "Test CPU"}, command="make bench", skipped={"peer": "failed"}
    )
    assert "| Demo \\| bench | ratio | 0.800x | >= 0.900x | **MISS** |" in text
    assert "| Demo \\| bench | p50 | 20.0 ms | <= 30.0 ms | **PASS** |" in text
    assert "| peer | not run |" in text and "| cpu | Test CPU |" in text and "- a note" in text
    path = tmp_path / "docs" / "BENCHMARKS.md"
    write_report(path, text)
    assert path.read_text() == text
    back = result_from_json(
        {
            "name": "demo",
            "title": "Demo",
            "command": "c",
            "figures": {"speed": "12"},
            "checks": [{"name": "r", "value": 1.0, "target": 0.9, "at_most": False, "unit": "x"}],
            "notes": [],
            "seconds": 1.5,
        }
    )
    assert back.checks[0].passed and back.rows == (("speed", "12"),)


def test_ingest_memory_inputs_have_their_shape(tmp_path: Path) -> None:
    one = make_one_line(tmp_path / "one.txt", 0.05).read_text()
    assert 49_990 < len(one) <= 50_000 and "\n" not in one and "." not in one
    assert one == make_one_line(tmp_path / "again.txt", 0.05).read_text()  # seeded
    lines = make_short_lines(tmp_path / "lines.txt", 0.05).read_text().splitlines()
    assert len(lines) > 600 and max(map(len, lines)) <= 80 and "." not in "".join(lines)


def test_peak_rss_is_the_childs(tmp_path: Path) -> None:
    import os
    import sys

    grow = "x = bytearray(300 * 2**20); x[::4096] = b'1' * len(x[::4096]); print('ok')"
    peak, code, out = peak_rss([sys.executable, "-c", grow], env=dict(os.environ), cwd=tmp_path)
    assert code == 0 and out.strip() == "ok"
    assert 300 < peak < 600


def test_insights_bench_runs_on_a_small_log() -> None:
    from bench.insights import DAYS, NOW, database, fill, measure
    from rag_core.db.insights import LogInsights

    with database("sqlite") as db:
        fill(db, 300)
        report = LogInsights(db).report(DAYS, now=NOW)
        assert report.questions == 300 and len(report.days) <= DAYS
        assert report.most_cited and report.refused  # the generator cites and refuses
        timings = measure(db, repeats=1)
    assert len(timings) == 6 and all(ms > 0 for ms in timings.values())


def test_perturbed_copies_stay_unit_vectors_near_their_original() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    real = rng.standard_normal((200, 384)).astype(np.float32)
    real /= np.linalg.norm(real, axis=1, keepdims=True)
    moved = perturb(real, 0.25, np.random.default_rng(1))
    assert moved.shape == real.shape and moved.dtype == np.float32
    assert np.allclose(np.linalg.norm(moved, axis=1), 1.0, atol=1e-5)
    cosines = (moved * real).sum(axis=1)
    # the noise is (almost) orthogonal to the vector in 384 dimensions: cos ~ 1 / sqrt(1 + 0.0625)
    assert np.allclose(cosines, 1 / np.sqrt(1 + 0.25**2), atol=0.02)
    again = perturb(real, 0.25, np.random.default_rng(1))
    assert np.array_equal(moved, again)  # seeded: the same index every build
    assert not np.allclose(perturb(real, 0.25, np.random.default_rng(2)), moved)


def test_copy_plan_takes_the_real_documents_first_then_whole_copies() -> None:
    sizes = [3, 5, 2]
    plan = copy_plan(sizes, 28)
    assert plan[:3] == [(0, 0), (0, 1), (0, 2)]  # every real document once, as it is
    assert plan[3:] == [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1)]  # then copies, in turn
    assert sum(sizes[d] for _, d in plan) == 28
    assert copy_plan(sizes, 27)[-1] == (2, 0)  # never past the target
    assert copy_plan(sizes, 7) == [(0, 0)]  # the next document would pass the target
    with pytest.raises(ValueError, match="no source chunks"):
        copy_plan([], 100)


def test_rotations_put_each_index_first_equally_often() -> None:
    orders = list(rotations(["a", "b", "c"], 6))
    assert orders[:3] == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]
    assert [o[0] for o in orders].count("a") == [o[0] for o in orders].count("c") == 2
    assert all(sorted(o) == ["a", "b", "c"] for o in orders)
    assert rotated(["now", "x", "y"], 4) == ["x", "y", "now"] and rotated([], 3) == []


def test_uncached_ready_read_matches_the_registry(tmp_path: Path) -> None:
    """The bench's reconstruction of the old read gives what the cached registry gives."""
    from rag_core.db.database import Database
    from rag_core.db.registry import DocumentRegistry

    db = Database(f"sqlite:///{tmp_path / 'r.sqlite'}")
    db.migrate()
    registry = DocumentRegistry(db)
    a = registry.commit(registry.begin("a.md", "a" * 64, 1, "markdown", None).id, 4)
    registry.begin("b.md", "b" * 64, 1, "markdown", None)  # ingesting: not ready
    assert ready_counts_uncached(registry) == registry.ready_chunk_counts() == {a.id: 4}
    registry.mark_deleting(a.id)
    assert ready_counts_uncached(registry) == registry.ready_chunk_counts() == {}
    db.dispose()


def test_parse_sizes() -> None:
    assert parse_sizes("100000, 1_000_000") == [100_000, 1_000_000]
    assert parse_sizes("") == []
    with pytest.raises(ValueError, match="comma-separated integers"):
        parse_sizes("100k")
    with pytest.raises(ValueError, match="positive"):
        parse_sizes("0")


def test_debian_pages_leave_out_generated_indexes_and_assets(tmp_path: Path) -> None:
    for rel in (
        "library/json.html", "faq/general.html", "index.html", "genindex-A.html",
        "py-modindex.html", "search.html", "_static/x.html", "library/os.txt",
    ):  # fmt: skip
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("<p>x</p>")
    pages = [str(p.relative_to(tmp_path)) for p in debian_pages(tmp_path)]
    assert pages == ["faq/general.html", "index.html", "library/json.html"]


def test_term_stats_by_search_agree_with_the_document_frequencies() -> None:
    """The reconstructed old path (one search per term) counts what the keyword index's document
    frequencies count, so the benchmark compares two ways of computing the same statistics."""
    from rag_core.retrieval import Retriever
    from rag_core.stores.keyword import BM25Index
    from rag_core.testing import FakeEmbedder, InMemoryStore
    from rag_core.types import Chunk

    texts = [
        "Use json.loads to parse a JSON document.",
        "The json module reads and writes JSON.",
        "Sort a list with sorted() or list.sort().",
        "The bearings must be greased every 900 operating hours.",
    ]
    chunks = [Chunk(f"c{i}", "d1", "doc", "v", i, t, 0, len(t)) for i, t in enumerate(texts)]
    embedder, store, keyword = FakeEmbedder(), InMemoryStore(), BM25Index()
    store.add(chunks, embedder.embed_documents(texts))
    keyword.add(chunks)
    retriever = Retriever(embedder, store, keyword, lambda: {"d1"})
    for query in (
        "What does json.loads_fast return for JSON?",
        "How often are the bearings greased?",
        "parse with json.loads or sort a list",
    ):
        now = retriever.term_stats(query)
        before = term_stats_by_search(retriever, query)
        assert [(t.term, t.df) for t in before] == [(t.term, t.df) for t in now]
        assert [t.idf for t in before] == pytest.approx([t.idf for t in now])
    assert len(term_stats_by_search(retriever, "json sort list bearings greased", max_terms=2)) == 2
    assert term_stats_by_search(Retriever(embedder, InMemoryStore(), BM25Index(), set), "x") == []


def test_a_report_keeps_the_sections_other_runs_wrote(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(
        "# Benchmarks\n\n## Latency\n\nold figures\n\n## Multi-corpus study\n\nstudy table\n",
        encoding="utf-8",
    )
    write_report(path, "# Benchmarks\n\n## Latency\n\nnew figures\n")
    text = path.read_text(encoding="utf-8")
    assert "new figures" in text and "old figures" not in text
    assert text.endswith("## Multi-corpus study\n\nstudy table\n")


def test_the_study_writes_its_tables_between_the_markers_only(tmp_path: Path) -> None:
    from bench.study_tables import BEGIN, END, write_into

    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text(f"# Benchmarks\n\nprose before\n\n{BEGIN}\n\n| old |\n\n{END}\n\nprose after\n")
    write_into(doc, "| new | table |\n| --- | --- |\n")
    assert doc.read_text() == (
        f"# Benchmarks\n\nprose before\n\n{BEGIN}\n\n| new | table |\n| --- | --- |\n\n{END}"
        "\n\nprose after\n"
    )
    write_into(doc, "| again |")  # idempotent: the markers stay
    assert doc.read_text().count(BEGIN) == 1 and "| new |" not in doc.read_text()
    bare = tmp_path / "bare.md"
    bare.write_text("no markers here\n")
    with pytest.raises(ValueError, match="no '<!-- study tables: begin -->'"):
        write_into(bare, "| x |")
    assert bare.read_text() == "no markers here\n"  # nothing lost


def test_the_shipped_benchmarks_file_has_the_study_block() -> None:
    from bench.study_tables import BEGIN, END

    text = (Path(__file__).resolve().parents[2] / "docs" / "BENCHMARKS.md").read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1 and text.index(BEGIN) < text.index(END)
