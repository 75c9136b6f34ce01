"""What the user waits for before generation: `Engine.retrieve` (query embedding, hybrid search,
section openings, term statistics and the refusal gate) p50/p95 on indexes of real embedded text;
target p50 <= 30 ms at 100k chunks.

Indexes, each an engine home of its own under ~/.cache/ragchat/bench/latency-v2/ (built once):
- pyfaq: the pyfaq corpus (/work/shared/eval/pyfaq) ingested through the real ingestion path
  with the real default embedder (19,143 chunks).
- debian: real documentation from a Debian package (python3.11-doc's HTML, `apt-get download` +
  `dpkg -x`), ingested through the real loaders and embedder, up to --debian-chunks chunks.
- scaled-N: N chunks made of the chunks of both real indexes: each real chunk once as it is, then
  copies of them (the same text, their real embedding moved by a small random perturbation and
  renormalised, cosine ~0.97 to the original) until N. Embedding 100k chunks takes over an hour
  on two cores, so the large sizes are real text with perturbed real embeddings, not new text.

Queries: the pyfaq dev questions, warm, each run on every index in turn (rotating the order).
Two changes are timed both ways side by side, on the same engine: term statistics from the
keyword index's document frequencies (now) or one keyword search per term (before
`KeywordIndex.document_frequency`); the ready documents kept by the registry's change token (now)
or read from its rows on every question (before).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import CACHE, DEFAULT_BEIR, BenchResult, Check, fmt, log, p, print_result

if TYPE_CHECKING:
    from rag_core.engine import Engine
    from rag_core.retrieval import TermStat
    from rag_core.types import Chunk

TARGET_P50_MS = 30.0
DEFAULT_SIZES = (100_000,)
DEBIAN_PACKAGE = "python3.11-doc"
DEBIAN_DOCS = Path("usr/share/doc/python3.11/html")
DEBIAN_CHUNKS = 10_000  # real chunks of Debian documentation embedded (~15 min on two shared cores)
NOISE = 0.25  # norm of the perturbation added to a unit embedding: cosine ~ 1/sqrt(1 + 0.25^2)
SEED = 20261130
HOME = CACHE / "latency-v2"
MARKER = "complete.json"


# --------------------------------------------------------------------------------------------
# engine homes


def _engine(folder: Path) -> Engine:
    """An engine over the index in `folder`, with the default settings otherwise."""
    from rag_core.config import Settings
    from rag_core.factory import build_engine

    settings = Settings(_env_file=None).model_copy(
        update={"home": folder, "database_url": None, "chroma_url": None}
    )
    return build_engine(settings)


def _close(engine: Engine) -> None:
    for part in (engine.store, engine.keyword):
        close = getattr(part, "close", None)
        if callable(close):
            close()


def _fresh(folder: Path) -> None:
    """Start a home from nothing (a half-built one is removed)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def _done(folder: Path, **record: Any) -> None:
    (folder / MARKER).write_text(json.dumps(record), encoding="utf-8")


def built(folder: Path) -> dict[str, Any] | None:
    """The record of a complete index in `folder`, or None."""
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def build_pyfaq(beir: Path = DEFAULT_BEIR) -> Path:
    """The pyfaq corpus through the real ingestion path and embedder (once)."""
    from rag_core.evaluation import index_corpus, load_beir

    folder = HOME / "pyfaq"
    if built(folder):
        return folder
    _fresh(folder)
    dataset = load_beir(beir)
    log(f"latency: embedding the pyfaq corpus ({len(dataset.corpus):,} documents) in {folder}")
    started = time.perf_counter()
    engine = _engine(folder)
    cmap = index_corpus(engine, dataset.corpus, _progress("pyfaq", started))
    chunks = engine.keyword.count()
    _close(engine)
    seconds = time.perf_counter() - started
    _done(folder, chunks=chunks, documents=len(cmap.names), seconds=round(seconds, 1))
    log(f"latency: pyfaq built, {chunks:,} chunks in {seconds:.0f} s")
    return folder


def _progress(label: str, started: float) -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        log(f"latency: {label} {done:,} / {total:,} ({time.perf_counter() - started:.0f} s)")

    return report


def debian_pages(root: Path) -> list[Path]:
    """The documentation pages of an unpacked python3.11-doc, in sorted order; generated
    indexes (genindex, the module index, search) are navigation, not documentation."""
    skip = ("genindex", "py-modindex", "search")
    return sorted(
        path
        for path in root.rglob("*.html")
        if not any(part.startswith("_") for part in path.relative_to(root).parts)
        and not path.stem.startswith(skip)
    )


def _debian_root() -> Path:
    """python3.11-doc's HTML, downloaded (apt-get download) and unpacked (dpkg -x) once, as the
    evaluation corpora are (bench/corpora)."""
    from bench.corpora.common import fetch_package

    return fetch_package(DEBIAN_PACKAGE, CACHE).root / DEBIAN_DOCS


def build_debian(limit: int = DEBIAN_CHUNKS) -> Path:
    """Pages of python3.11-doc through the real loaders and embedder, in sorted order, until the
    index holds at least `limit` chunks (once)."""
    folder = HOME / f"debian-{limit}"
    if built(folder):
        return folder
    root = _debian_root()
    _fresh(folder)
    pages = debian_pages(root)
    log(f"latency: embedding {DEBIAN_PACKAGE} pages ({len(pages)} in all) up to {limit:,} chunks")
    started = time.perf_counter()
    engine = _engine(folder)
    used = 0
    for start in range(0, len(pages), 8):
        part = pages[start : start + 8]
        engine.ingest([(path, str(path.relative_to(root)).replace("/", "__")) for path in part])
        used += len(part)
        chunks = engine.keyword.count()
        log(
            f"latency: debian {used} pages, {chunks:,} chunks ({time.perf_counter() - started:.0f} s)"
        )
        if chunks >= limit:
            break
    chunks = engine.keyword.count()
    _close(engine)
    seconds = time.perf_counter() - started
    _done(folder, chunks=chunks, pages=used, seconds=round(seconds, 1), package=DEBIAN_PACKAGE)
    return folder


# --------------------------------------------------------------------------------------------
# the scaled index: real chunks, perturbed real embeddings


def perturb(vectors: Any, noise: float, rng: Any) -> Any:
    """Unit vectors moved by a random direction of norm `noise` and renormalised: cosine to the
    original about 1 / sqrt(1 + noise^2)."""
    import numpy as np

    step = rng.standard_normal(vectors.shape)
    step *= noise / np.linalg.norm(step, axis=1, keepdims=True)
    out = vectors + step
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def copy_plan(sizes: Sequence[int], target: int) -> list[tuple[int, int]]:
    """(copy, document) pairs, copy 0 being the real documents, taking whole documents in turn
    until adding the next would pass `target` chunks."""
    if not sizes or sum(sizes) <= 0:
        raise ValueError("no source chunks to copy")
    plan: list[tuple[int, int]] = []
    total = 0
    copy = 0
    while True:
        for doc, n in enumerate(sizes):
            if total + n > target:
                return plan
            plan.append((copy, doc))
            total += n
        copy += 1


def _sources(folders: Sequence[Path]) -> Iterator[tuple[Sequence[Chunk], Any, str, str]]:
    """Each ready document of the source indexes: its chunks, their stored embeddings, name and
    content hash."""
    import numpy as np

    from rag_core.stores import text_hash

    for folder in folders:
        engine = _engine(folder)
        for record in engine.registry.list():
            chunks = engine.store.chunks_of(record.id)
            hashes = [text_hash(c.embedding_text) for c in chunks]
            found = engine.store.embeddings_by_text_hash(hashes)
            vectors = np.array([found[h] for h in hashes], dtype=np.float32)
            yield chunks, vectors, record.name, record.content_hash
        _close(engine)


def build_scaled(size: int, folders: Sequence[Path], noise: float = NOISE) -> Path:
    """`size` chunks from the real chunks of `folders`, copied with perturbed embeddings (once)."""
    import numpy as np

    folder = HOME / f"scaled-{size}-{'-'.join(f.name for f in folders)}"
    if built(folder):
        return folder
    log(f"latency: reading the real chunks of {', '.join(f.name for f in folders)}")
    docs = list(_sources(folders))
    plan = copy_plan([len(chunks) for chunks, *_ in docs], size)
    _fresh(folder)
    log(f"latency: writing {size:,} chunks ({len(plan):,} documents) to {folder}")
    started = time.perf_counter()
    engine = _engine(folder)
    rng = np.random.default_rng(SEED)
    batch: list[Chunk] = []
    vectors: list[Any] = []
    pending: list[tuple[str, int]] = []
    for copy, index in plan:
        chunks, real, name, content = docs[index]
        if copy:
            name, content = f"copy{copy}__{name}", f"{content}-copy{copy}"
        record = engine.registry.begin(name, content, 0, "copy", None)
        batch += [
            replace(
                c,
                id=f"{record.id}:{content[:12]}:{c.index:05d}",
                document_id=record.id,
                document_name=name,
                version=content,
            )
            for c in chunks
        ]
        vectors.append(perturb(real, noise, rng) if copy else real)
        pending.append((record.id, len(chunks)))
        if len(batch) >= 5000 or (copy, index) == plan[-1]:
            engine.store.add(batch, np.concatenate(vectors).tolist())
            engine.keyword.add(batch)
            for doc_id, n in pending:
                engine.registry.commit(doc_id, n)
            log(f"latency: scaled {engine.keyword.count():,} / {size:,} chunks")
            batch, vectors, pending = [], [], []
    chunks_in = engine.keyword.count()
    _close(engine)
    seconds = time.perf_counter() - started
    _done(folder, chunks=chunks_in, documents=len(plan), noise=noise, seconds=round(seconds, 1))
    return folder


# --------------------------------------------------------------------------------------------
# term statistics as they were computed before KeywordIndex.document_frequency


def term_stats_by_search(retriever: Any, query: str, *, max_terms: int = 16) -> list[TermStat]:
    """Term statistics the way `Retriever.term_stats` computed them before the keyword index
    kept document frequencies: one keyword search over the whole index per term, its hits
    counted (a code identifier: the top 20 hits fetched and read)."""
    from rag_core.retrieval import TermStat, bm25_idf
    from rag_core.stores.tokenize import terms_with_sources, tokenize

    n = retriever.keyword.count()
    if n == 0:
        return []
    out: list[TermStat] = []
    sources: dict[str, str] = {}
    for term, source in terms_with_sources(query):
        sources.setdefault(term, source)
    for term, source in sources.items():
        if len(out) >= max_terms:
            break
        found = retriever.keyword.search(source, n)
        if len(tokenize(source)) > 1:
            top = retriever.store.get([cid for cid, _ in found[:20]])
            df = sum(term in tokenize(c.text) for c in top)
        else:
            df = len(found)
        out.append(TermStat(term, df, bm25_idf(df, n)))
    return out


def ready_counts_uncached(registry: Any) -> dict[str, int]:
    """The ready documents and their chunk counts read from the registry's rows on every call,
    as `DocumentRegistry.ready_chunk_counts` did before it kept them by change token."""
    import sqlalchemy as sa

    from rag_core.db.models import DocumentRow

    stmt = sa.select(DocumentRow.id, DocumentRow.chunk_count).where(DocumentRow.status == "ready")
    with registry.db.read_session() as s:
        return {doc_id: int(count or 0) for doc_id, count in s.execute(stmt)}


def _with_retriever(engine: Engine, retriever: Any) -> Engine:
    """The same engine (stores, registry, models, keyword sync) over another retriever."""
    return replace(engine, retriever=retriever)


def with_search_term_stats(engine: Engine) -> Engine:
    """The engine with term statistics computed by per-term searches, as before
    `KeywordIndex.document_frequency`."""
    from rag_core.retrieval import Retriever

    class PerTermSearch(Retriever):
        def term_stats(self, query: str, *, max_terms: int = 16) -> list[TermStat]:
            return term_stats_by_search(self, query, max_terms=max_terms)

    r = engine.retriever
    return _with_retriever(
        engine, PerTermSearch(r.embedder, r.store, r.keyword, r.ready_ids, r.fusion)
    )


def with_uncached_ready(engine: Engine) -> Engine:
    """The engine reading the ready documents' rows on every question, as before the registry
    kept them by change token."""
    from rag_core.retrieval import Retriever

    r, registry = engine.retriever, engine.registry
    ready = lambda: ready_counts_uncached(registry)  # noqa: E731
    return _with_retriever(engine, Retriever(r.embedder, r.store, r.keyword, ready, r.fusion))


SIDES: dict[str, Callable[[Engine], Engine]] = {
    "per-term searches": with_search_term_stats,
    "ready rows read every time": with_uncached_ready,
}


# --------------------------------------------------------------------------------------------
# the run


def timed(fn: Callable[..., object], *args: Any, **kwargs: Any) -> float:
    """Milliseconds `fn(*args, **kwargs)` took."""
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return (time.perf_counter() - t0) * 1000


def rotations(names: Sequence[str], count: int) -> Iterator[list[str]]:
    """`count` orders of `names`, each starting one further along: every name is first, second,
    ... equally often, so a warm cache or a load spike favours none."""
    for i in range(count):
        yield rotated(names, i)


def rotated(names: Sequence[str], i: int) -> list[str]:
    """`names` starting at the i-th (modulo their number)."""
    k = i % max(len(names), 1)
    return [*names[k:], *names[:k]]


def _indexes(sizes: Sequence[int], debian_chunks: int, beir: Path) -> dict[str, Path]:
    """Name -> engine home of every index the run times, built where missing."""
    started = time.perf_counter()
    real = {"pyfaq": build_pyfaq(beir)}
    if debian_chunks > 0:
        real[DEBIAN_PACKAGE] = build_debian(debian_chunks)
    out = dict(real)
    for size in sizes:
        out[f"scaled {size:,}"] = build_scaled(size, list(real.values()))
    log(f"latency: indexes ready ({time.perf_counter() - started:.0f} s)")
    return out


def describe(name: str, record: dict[str, Any]) -> tuple[str, str]:
    """A row on how an index was built (its complete.json)."""
    parts = [f"{record['chunks']:,} chunks"]
    if "documents" in record:
        parts.append(f"{record['documents']:,} documents")
    if "pages" in record:
        parts.append(f"{record['pages']:,} pages")
    how = "copies, perturbed embeddings" if name.startswith("scaled") else "embedded"
    return f"{name} index", f"{', '.join(parts)}; {how} in {record['seconds']:.0f} s (once, cached)"


def _measure(
    engines: dict[str, dict[str, Engine]], texts: Sequence[str]
) -> dict[str, dict[str, list[float]]]:
    """Per index: Engine.retrieve as it is ('now') and on each side of SIDES, in a rotating
    order on every question; then its parts alone: the hybrid search, the term statistics both
    ways, the query embedding, the dense and keyword queries, the ready documents both ways."""
    parts = ["search", "terms", "terms before", "embed", "dense", "bm25", "ready", "ready before"]
    ms: dict[str, dict[str, list[float]]] = {
        name: {k: [] for k in [*sides, *parts]} for name, sides in engines.items()
    }
    for sides in engines.values():  # warm-up: models, caches, first-query costs
        for q in texts[:3]:
            for engine in sides.values():
                engine.retrieve(q)
    for i, (q, order) in enumerate(zip(texts, rotations(list(engines), len(texts)), strict=True)):
        for name in order:
            sides, m = engines[name], ms[name]
            for side in rotated(list(sides), i):
                t0 = time.perf_counter()
                result = sides[side].retrieve(q)
                m[side].append((time.perf_counter() - t0) * 1000)
                if not result.hits:
                    raise RuntimeError(f"no hits in {name} for {q!r}")
            now, query, old = sides["now"], result.query, sides["per-term searches"]
            o, n = now.options(), now.settings.candidates
            m["search"].append(
                timed(now.retriever.search, query, mode=o.mode, k=o.top_k, candidates=n)
            )
            m["terms"].append(timed(now.retriever.term_stats, query))
            m["terms before"].append(timed(old.retriever.term_stats, query))
            m["embed"].append(timed(now.embedder.embed_query, query))
            vector = now.embedder.embed_query(query)
            m["dense"].append(timed(now.store.query, vector, n + 10))
            m["bm25"].append(timed(now.keyword.search, query, n + 10))
            m["ready"].append(timed(now.registry.ready_chunk_counts))
            m["ready before"].append(timed(ready_counts_uncached, now.registry))
    return ms


def _pair(values: Sequence[float]) -> str:
    return f"{fmt(p(values, 50))} / {fmt(p(values, 95))} ms"


def _figures(label: str, m: dict[str, list[float]]) -> tuple[list[tuple[str, str]], list[Check]]:
    """One index's rows, and its checks: the target, and each earlier way at least as slow."""
    now = p(m["now"], 50)
    rows = [(f"{label} retrieve p50 / p95", _pair(m["now"]))]
    checks = [Check(f"retrieve p50 at {label}", now, TARGET_P50_MS, at_most=True, unit=" ms")]
    for side in SIDES:
        ratio = p(m[side], 50) / now
        rows.append((f"{label} before: {side}", f"{_pair(m[side])} (x{ratio:.2f})"))
        checks.append(Check(f"retrieve p50 with {side} / now, {label}", ratio, 1.0))
    rows += [
        (f"{label} hybrid search alone", _pair(m["search"])),
        (
            f"{label} parts alone p50: embedding, dense, BM25",
            " / ".join(fmt(p(m[k], 50)) for k in ("embed", "dense", "bm25")) + " ms",
        ),
        (
            f"{label} term stats p50: now / per-term searches",
            f"{fmt(p(m['terms'], 50))} / {fmt(p(m['terms before'], 50))} ms",
        ),
        (
            f"{label} ready documents p50: now / rows read every time",
            f"{fmt(p(m['ready'], 50))} / {fmt(p(m['ready before'], 50))} ms",
        ),
    ]
    return rows, checks


def run(
    sizes: Sequence[int] = DEFAULT_SIZES,
    queries: int = 106,
    debian_chunks: int = DEBIAN_CHUNKS,
    beir: Path = DEFAULT_BEIR,
) -> BenchResult:
    from rag_core.evaluation import load_beir, spread
    from rag_core.factory import offline_environment

    offline_environment()
    started = time.perf_counter()
    indexes = _indexes(sorted(set(sizes)), debian_chunks, beir)
    engines: dict[str, dict[str, Engine]] = {}
    records = {name: built(folder) or {} for name, folder in indexes.items()}
    for name, folder in indexes.items():
        engine = _engine(folder)
        engine.warm_up()
        engines[name] = {"now": engine} | {side: make(engine) for side, make in SIDES.items()}
    texts = spread(list(load_beir(beir).queries.values()), queries)
    ms = _measure(engines, texts)
    for sides in engines.values():
        _close(sides["now"])
    rows: list[tuple[str, str]] = [
        ("queries", f"{len(texts)} pyfaq dev questions, warm, default settings (hybrid)"),
        (
            "what is timed",
            "Engine.retrieve: keyword-index sync check, query embedding, dense and BM25 search, "
            "fusion, section openings, term statistics, refusal gate",
        ),
        *(describe(name, record) for name, record in records.items()),
    ]
    checks: list[Check] = []
    for name, record in records.items():
        index_rows, index_checks = _figures(f"{name} ({record['chunks']:,} chunks)", ms[name])
        rows += index_rows
        if name.startswith("scaled"):
            checks += index_checks
    notes = [
        f"pyfaq and {DEBIAN_PACKAGE} are real text embedded by the default embedder through the "
        f"real ingestion path ({DEBIAN_PACKAGE}: its HTML pages in sorted order, as a user would "
        "upload them, until --debian-chunks).",
        "scaled indexes are NOT newly embedded text: each real chunk of both indexes once, "
        f"then copies of them with their real embedding perturbed (noise {NOISE}, cosine ~0.97) "
        "until the size, since embedding 100k chunks takes over an hour on two cores.",
        "before: the same engine (same stores and models) as it was before each change, the "
        "sides in a rotating order on every question: term statistics from one keyword search "
        "per query term (before KeywordIndex.document_frequency); the ready documents read from "
        "the registry's rows on every question (before they were kept by change token).",
    ]
    return BenchResult(
        name="latency",
        title="Retrieval latency: Engine.retrieve on real data",
        command=f"python -m bench.latency --sizes {','.join(str(n) for n in sizes)} "
        f"--queries {queries} --debian-chunks {debian_chunks}",
        rows=tuple(rows),
        checks=tuple(checks),
        notes=tuple(notes),
        seconds=time.perf_counter() - started,
        data={"ms": ms, "indexes": records},
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sizes",
        default=",".join(str(n) for n in DEFAULT_SIZES),
        help="comma-separated chunk counts of scaled indexes (100000; 1000000 for 1M)",
    )
    parser.add_argument("--queries", type=int, default=106, help="pyfaq questions (106)")
    parser.add_argument(
        "--debian-chunks",
        type=int,
        default=DEBIAN_CHUNKS,
        help=f"real {DEBIAN_PACKAGE} chunks to embed ({DEBIAN_CHUNKS}; 0: pyfaq alone)",
    )
    parser.add_argument("--beir", type=Path, default=DEFAULT_BEIR, help="BEIR folder (pyfaq)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        sizes = parse_sizes(args.sizes)
    except ValueError as exc:
        parser.error(str(exc))
    if args.queries < 1 or args.debian_chunks < 0:
        parser.error("--queries must be at least 1 and --debian-chunks at least 0")
    print_result(run(sizes, args.queries, args.debian_chunks, args.beir), as_json=args.json)
    return 0


def parse_sizes(text: str) -> list[int]:
    """'100000,1_000_000' -> [100000, 1000000]; empty means no scaled index."""
    try:
        sizes = [int(x.strip().replace("_", "")) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--sizes must be comma-separated integers, got {text!r}") from None
    if any(n < 1 for n in sizes):
        raise ValueError(f"--sizes must be positive, got {text!r}")
    return sizes


if __name__ == "__main__":
    raise SystemExit(main())
