"""The benchmark helpers: checks, percentiles, interleaving, corpus slices and the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.common import BenchResult, Check, alternate, corpus_slice, fmt, median, p, write_corpus
from bench.ingest_memory import make_one_line, make_short_lines, peak_rss
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
