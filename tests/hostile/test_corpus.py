"""The hostile corpus through the Python door: loaders, then the engine's pipeline (fast fake
embedder, real Chroma, real keyword index, real SQLite). Every rejected file gets an error that
names the file and says what is wrong, and leaves the knowledge base and the log unchanged;
every accepted file is indexed with the text it should have, and without what it should not."""

from __future__ import annotations

import fnmatch
import resource
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from rag_core.config import Settings
from rag_core.engine import Engine
from rag_core.errors import EmptyDocumentError, IngestError
from rag_core.ingest.loaders import LoadLimits, load_document
from tests.hostile.conftest import make_engine, snapshot
from tests.hostile.corpus import BLANK_PAGES, GIB, Case, blank_pages_pdf


def _limits() -> LoadLimits:
    return Settings().load_limits()


def _ids(cases: list[Case]) -> list[str]:
    return [c.key for c in cases]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return make_engine(tmp_path_factory.mktemp("hostile-home"))


def name_matches(shown: str, expected: str) -> bool:
    return fnmatch.fnmatchcase(shown, expected)


def assert_error_mentions(error: str, case: Case, name: str) -> None:
    assert error.startswith(f"{name}: "), f"the error does not start with the file name: {error!r}"
    for fragment in case.mentions:
        assert fragment.lower() in error.lower(), f"{case.key}: {fragment!r} not in {error!r}"
    assert "Traceback" not in error


def test_corpus_has_at_least_40_distinct_files(corpus: tuple[Path, list[Case]]) -> None:
    folder, cases = corpus
    assert len(cases) >= 40
    assert len({c.key for c in cases}) == len(cases)
    good = [c for c in cases if c.status == "added"]
    bad = [c for c in cases if c.status == "error"]
    assert len(bad) >= 35 and len(good) >= 15
    contents = [(folder / c.filename).read_bytes() for c in good]
    assert len(set(contents)) == len(contents), "two good files share content (duplicates)"
    assert (folder / "huge.txt").stat().st_size == GIB
    assert (folder / "huge.txt").stat().st_blocks * 512 < 1024 * 1024  # sparse: costs no disk
    assert (folder / "zip-bomb.docx").stat().st_size < 1024 * 1024


def test_loaders(corpus: tuple[Path, list[Case]]) -> None:
    """load_document raises the expected IngestError subclass, or extracts the expected text."""
    folder, cases = corpus
    failures = []
    for case in cases:
        if case.error_type is None and case.status == "error":
            continue  # refused by the pipeline before any loader runs (size)
        data = (folder / case.filename).read_bytes()
        name = case.disk_shown
        started = time.perf_counter()
        try:
            parsed = load_document(data, name, _limits())
        except IngestError as exc:
            if case.status == "added":
                failures.append(f"{case.key}: unexpected error {exc}")
            elif not isinstance(exc, case.error_type or IngestError):
                failures.append(f"{case.key}: {type(exc).__name__}, not {case.error_type}: {exc}")
            else:
                try:
                    assert_error_mentions(str(exc), case, name)
                except AssertionError as err:
                    failures.append(str(err))
        else:
            if case.status == "error":
                failures.append(f"{case.key}: accepted, expected an error with {case.mentions}")
            for word in case.contains:
                if word not in parsed.text:
                    failures.append(f"{case.key}: {word!r} missing from the text")
            for word in case.absent:
                if word in parsed.text:
                    failures.append(f"{case.key}: {word!r} must not be in the text")
            if case.pages is not None and parsed.page_count != case.pages:
                failures.append(f"{case.key}: {parsed.page_count} pages, not {case.pages}")
        elapsed = time.perf_counter() - started
        if elapsed > 5:
            failures.append(f"{case.key}: took {elapsed:.1f} s")
    assert not failures, "\n".join(failures)


def test_pipeline_from_disk(engine: Engine, corpus: tuple[Path, list[Case]]) -> None:
    """Every corpus file through engine.ingest_path, as `ragchat ingest` reads it: rejected ones
    leave registry, Chroma, the keyword index and every table as they were."""
    folder, cases = corpus
    failures = []
    for case in cases:
        before = snapshot(engine)
        started = time.perf_counter()
        result = engine.ingest_path(folder / case.filename)
        elapsed = time.perf_counter() - started
        if elapsed > 10:
            failures.append(f"{case.key}: took {elapsed:.1f} s")
        if not name_matches(result.name, case.disk_shown):
            failures.append(f"{case.key}: shown as {result.name!r}, not {case.disk_shown!r}")
        if case.status == "error":
            if result.status != "error" or result.error is None:
                failures.append(f"{case.key}: {result.status}, expected an error")
                continue
            try:
                assert_error_mentions(result.error, case, result.name)
            except AssertionError as err:
                failures.append(str(err))
            if snapshot(engine) != before:
                failures.append(f"{case.key}: a rejected file changed the knowledge base")
            continue
        if result.status != "added" or result.document is None:
            failures.append(f"{case.key}: {result.status} {result.error}, expected added")
            continue
        doc = result.document
        chunks = engine.chunks_of(doc.id)
        text = "\n".join(c.text for c in chunks)
        if case.chunks is not None and len(chunks) != case.chunks:
            failures.append(f"{case.key}: {len(chunks)} chunks, expected {case.chunks}")
        if not chunks or doc.chunk_count != len(chunks):
            failures.append(f"{case.key}: registry says {doc.chunk_count}, store {len(chunks)}")
        if case.pages is not None and doc.page_count != case.pages:
            failures.append(f"{case.key}: {doc.page_count} pages, expected {case.pages}")
        failures += [f"{case.key}: {w!r} missing" for w in case.contains if w not in text]
        failures += [f"{case.key}: {w!r} indexed" for w in case.absent if w in text]
    assert not failures, "\n".join(failures)
    assert engine.pipeline.check() == []


def test_upload_names_are_cleaned(tmp_path: Path, corpus: tuple[Path, list[Case]]) -> None:
    """Names as a browser or API client may send them (../, NUL, 300 characters, RTL override)
    become safe display names; the file content is indexed under that name."""
    folder, cases = corpus
    engine = make_engine(tmp_path / "home")
    named = [c for c in cases if c.key.startswith("name-")]
    assert len(named) >= 10
    for case in named:
        result = engine.ingest_bytes((folder / case.filename).read_bytes(), case.sent_name)
        assert result.status == "added", (case.key, result.error)
        assert name_matches(result.name, case.shown_name), (case.key, result.name)
        assert "/" not in result.name and "\\" not in result.name and "\x00" not in result.name
        assert len(result.name) <= 200
    names = [d.name for d in engine.documents()]
    assert len(set(names)) == len(named), f"two hostile names collapsed into one: {names}"


def test_one_gigabyte_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    engine = make_engine(tmp_path / "home")
    huge = tmp_path / "huge.md"
    with huge.open("wb") as fh:
        fh.truncate(GIB)
    before = snapshot(engine)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = engine.ingest_path(huge)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    assert result.status == "error" and result.error is not None
    assert "huge.md: file is 1024.0 MB, larger than the limit of 100 MB" in result.error
    assert "RAGCHAT_MAX_FILE_MB" in result.error
    assert peak < 5 * 1024 * 1024, f"{peak / 2**20:.0f} MB allocated for a refused file"
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert grown < 50 * 1024, f"peak memory grew by {grown / 1024:.0f} MB"
    assert elapsed < 2
    assert snapshot(engine) == before


def test_ten_thousand_blank_pages(tmp_path: Path) -> None:
    """Refused at once by the page limit; with the limit raised, refused as having no text,
    without a single empty chunk indexed."""
    data = blank_pages_pdf(BLANK_PAGES)
    engine = make_engine(tmp_path / "a")
    started = time.perf_counter()
    result = engine.ingest_bytes(data, "blank.pdf")
    assert time.perf_counter() - started < 1  # the declared page count refuses it at once
    assert result.error == (
        "blank.pdf: has 10,000 pages, more than the limit of 5,000 (RAGCHAT_MAX_PAGES)"
    )
    with pytest.raises(EmptyDocumentError, match="no extractable text in 10000 page"):
        load_document(data, "blank.pdf", LoadLimits(max_pages=20_000, max_text_chars=10**6))
    raised = make_engine(tmp_path / "b", max_pages=20_000)
    started = time.perf_counter()
    result = raised.ingest_bytes(data, "blank.pdf")
    assert time.perf_counter() - started < 10
    assert result.status == "error" and "no extractable text" in (result.error or "")
    assert raised.store.count() == 0 and raised.keyword.count() == 0 and not raised.documents()


def test_same_file_twenty_times_at_once(tmp_path: Path) -> None:
    """20 threads ingest the same bytes under different names: one document, 19 duplicates."""
    engine = make_engine(tmp_path / "home")
    data = ("The Nimbrel ferry leaves at 07:15 from pier 4.\n\n" * 40).encode()
    results: list[object] = [None] * 20
    gate = threading.Barrier(20)

    def worker(i: int) -> None:
        gate.wait()
        results[i] = engine.ingest_bytes(data, f"ferry-{i}.txt")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    statuses = sorted(r.status for r in results)  # type: ignore[attr-defined]
    assert statuses == ["added"] + ["duplicate"] * 19
    added = next(r for r in results if r.status == "added")  # type: ignore[attr-defined]
    docs = engine.documents()
    assert [d.id for d in docs] == [added.document.id]  # type: ignore[attr-defined]
    for r in results:
        assert r.document.id == docs[0].id  # type: ignore[attr-defined]
    assert engine.store.count() == engine.keyword.count() == docs[0].chunk_count
    assert engine.store.document_ids() == engine.keyword.document_ids() == {docs[0].id}
    assert engine.pipeline.check() == []
