"""`ragchat eval retrieval|answers|calibrate` (and `facts`, `feedback`): measure the engine on a BEIR-format dataset.

The corpus is indexed through the real ingestion path into an engine home of its own (never the
user's data), kept in a cache folder keyed by the corpus file, the embedder, the chunking settings
and the indexing code, and reused while complete.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag_core.config import Settings
from rag_core.embedders.sentence_transformers import resolve_precision
from rag_core.errors import UserError
from rag_core.evaldata import default_unanswerable
from rag_core.evaluation import (
    NO_EVIDENCE,
    AnswerScores,
    BeirDataset,
    CorpusMap,
    RefusalStats,
    RetrievalScores,
    best_threshold,
    calibrate_gate,
    checker_judge,
    evaluate_answers,
    evaluate_retrieval,
    index_corpus,
    load_beir,
    percentile,
    question_gate_features,
    read_questions,
    refusal_stats,
    spread,
    summarize_answers,
)
from rag_core.grounding import GATE_FEATURES, GateModel
from rag_core.types import GateFeatures, RetrievalMode
from webapp import eval_tables

if TYPE_CHECKING:
    from rag_core.engine import Engine

INDEX_FORMAT = 1
STAMP = ".ragchat-eval-index"  # written first: the folder is ours and may be rebuilt
MARKER = "index-complete.json"  # written last: the index is complete
MODES: tuple[RetrievalMode, ...] = ("hybrid", "dense", "bm25")
STRATEGIES = ("concat", "extractive", "extract-then-phrase", "rag-token", "rag-sequence")
# code whose changes alter what an index holds: a change rebuilds the cached index
_INDEX_CODE = (
    "ingest/loaders",
    "ingest/chunking.py",
    "ingest/pipeline.py",
    "stores/tokenize.py",
    "stores/keyword.py",
    "stores/chroma.py",
    "embedders/sentence_transformers.py",
)


def add_eval_commands(sub: Any) -> None:
    """Register `eval` and its subcommands on the main parser's subparsers."""
    ev = sub.add_parser("eval", help="measure retrieval and answer quality on a BEIR dataset")
    esub = ev.add_subparsers(dest="eval_cmd", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--beir",
        required=True,
        metavar="DIR[,DIR...]",
        help="BEIR-format dataset folder(s), comma-separated: each is measured on its own "
        "index, then their macro average",
    )
    common.add_argument(
        "--split",
        default="auto",
        help="qrels/<SPLIT>.tsv (default auto: test where a dataset has one, else dev)",
    )
    common.add_argument(
        "--index-dir",
        default=None,
        help="where the index is kept (default: ~/.cache/ragchat/eval/...)",
    )
    common.add_argument("--reindex", action="store_true", help="rebuild the cached index")
    common.add_argument("--json", action="store_true", help="print one JSON object")

    r = esub.add_parser(
        "retrieval", parents=[common], help="nDCG@10, Recall@10/100, MRR@10, latency"
    )
    r.add_argument("--mode", choices=[*MODES, "all"], default="all")
    r.add_argument("--limit", type=int, default=None, help="at most N queries (evenly spread)")
    r.add_argument(
        "--per-query", action="store_true", help="with --json: each query's nDCG@10 per mode"
    )
    r.set_defaults(func=cmd_retrieval)

    a = esub.add_parser(
        "answers", parents=[common], help="citations, grounding and refusals of full answers"
    )
    a.add_argument("--limit", type=int, default=None, help="at most N questions of each set")
    a.add_argument("--unanswerable", default=None, metavar="FILE", help="one question a line")
    a.add_argument(
        "--grounding",
        choices=["mark", "remove", "off", "both"],
        default=None,
        help="grounding policy; 'both' runs mark and off side by side (default: the setting)",
    )
    a.set_defaults(func=cmd_answers)

    f = esub.add_parser(
        "facts", help="short-answer facts over documents in every format (bench/data/facts)"
    )
    f.add_argument("dir", help="a facts split: documents/ and questions.jsonl")
    f.add_argument(
        "--strategy",
        default=None,
        help=f"one of {', '.join(STRATEGIES)}, or all (default: the setting)",
    )
    f.add_argument("--limit", type=int, default=None, help="at most N questions (evenly spread)")
    f.add_argument("--reindex", action="store_true", help="rebuild the cached index")
    f.add_argument("--json", action="store_true", help="print one JSON object")
    f.set_defaults(func=_facts, index_dir=None)

    c = esub.add_parser(
        "calibrate", parents=[common], help="choose the refusal-gate threshold (no generation)"
    )
    c.add_argument("--unanswerable", default=None, metavar="FILE", help="one question a line")
    c.add_argument("--folds", type=int, default=10, help="cross-validation folds (default 10)")
    c.set_defaults(func=cmd_calibrate)
    from webapp.eval_feedback import add_feedback_command

    add_feedback_command(esub)


# --------------------------------------------------------------------------------------------
# the cached index


@dataclass(frozen=True)
class IndexInfo:
    folder: Path
    reused: bool
    documents: int
    chunks: int
    errors: int
    build_s: float


def _code_fingerprint() -> str:
    import rag_core
    from rag_core.types import Chunk

    root = Path(rag_core.__file__).resolve().parent
    h = hashlib.sha256(inspect.getsource(Chunk).encode())
    for rel in _INDEX_CODE:
        path = root / rel
        files = sorted(path.glob("*.py")) if path.is_dir() else [path]
        for file in files:
            name = str(file.relative_to(root)).encode()
            h.update(name + (file.read_bytes() if file.is_file() else b""))
    return h.hexdigest()


def index_key(dataset: BeirDataset, settings: Settings) -> str:
    """Identifies an index: corpus file (path, size, mtime), embedder, chunking, indexing code."""
    st = dataset.corpus_file.stat()
    source = {
        "corpus": str(dataset.corpus_file.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
    }
    return hashed_index_key(source, settings)


def hashed_index_key(source: dict[str, Any], settings: Settings) -> str:
    """The key of an index of `source` (what identifies the documents) built with these settings:
    the index format, embedder, precision, chunking and indexing code are part of every key."""
    parts = {
        **source,
        "format": INDEX_FORMAT,
        "embedder": settings.embedder,
        "embed_precision": resolve_precision(settings.embed_precision),
        "chunk_size": settings.chunk_size,
        "chunk_overlap": settings.chunk_overlap,
        "code": _code_fingerprint(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def default_index_dir(dataset: BeirDataset, key: str) -> Path:
    return Path.home() / ".cache" / "ragchat" / "eval" / f"{dataset.path.name}-{key[:16]}"


def _build_engine(settings: Settings) -> Engine:
    from rag_core.factory import build_engine

    return build_engine(settings)


def _clear(folder: Path) -> None:
    """Empty a folder for a new index, but only one this command made (or an empty one)."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise UserError(f"index folder {folder} exists and is not a folder")
    if (folder / STAMP).is_file():
        shutil.rmtree(folder)
    elif any(folder.iterdir()):
        raise UserError(
            f"refusing to use {folder} as an evaluation index: it is not empty and was not made "
            "by `ragchat eval`. Pick another --index-dir."
        )


def _status(message: str) -> None:
    """Progress and index messages go to stderr, so --json output on stdout stays clean."""
    print(message, file=sys.stderr, flush=True)


def _progress(label: str) -> Callable[[int, int], None]:
    """A progress printer to stderr: a line every ~10% (readable in logs as well as terminals)."""
    t0 = time.perf_counter()
    last = [-1]

    def report(done: int, total: int) -> None:
        step = (10 * done) // max(total, 1)
        if step != last[0] or done == total:
            last[0] = step
            _status(f"{label}: {done}/{total} ({time.perf_counter() - t0:.0f} s)")

    return report


def open_index(
    args: argparse.Namespace, settings: Settings, dataset: BeirDataset
) -> tuple[Engine, CorpusMap, IndexInfo]:
    """An engine over the dataset's corpus in its own home: the cached index, or a new one."""
    key = index_key(dataset, settings)
    folder = (
        Path(args.index_dir).expanduser() if args.index_dir else default_index_dir(dataset, key)
    )
    marker = folder / MARKER
    saved: dict[str, Any] | None = None
    if not args.reindex and marker.is_file():
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict) and data.get("key") == key:
            saved = data
    if saved is None:
        _clear(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / STAMP).write_text(key + "\n", encoding="utf-8")
    home = settings.model_copy(update={"home": folder, "database_url": None, "chroma_url": None})
    engine = _build_engine(home)
    if saved is not None:
        cmap = CorpusMap.from_json(saved["corpus"])
        info = IndexInfo(
            folder,
            True,
            len(dataset.corpus),
            cmap.chunks,
            len(cmap.errors),
            float(saved.get("build_s", 0.0)),
        )
        _status(f"index: reusing {folder} ({cmap.chunks} chunks)")
        return engine, cmap, info
    _status(f"index: building {folder} from {len(dataset.corpus)} documents")
    t0 = time.perf_counter()
    cmap = index_corpus(engine, dataset.corpus, _progress("indexing documents"))
    build_s = time.perf_counter() - t0
    record = {
        "key": key,
        "dataset": str(dataset.path),
        "embedder": settings.embedder,
        "embed_precision": resolve_precision(settings.embed_precision),
        "chunk_size": settings.chunk_size,
        "chunk_overlap": settings.chunk_overlap,
        "build_s": round(build_s, 1),
        "corpus": cmap.to_json(),
    }
    marker.write_text(json.dumps(record), encoding="utf-8")
    if cmap.errors:
        _status(f"index: {len(cmap.errors)} documents could not be ingested")
    info = IndexInfo(folder, False, len(dataset.corpus), cmap.chunks, len(cmap.errors), build_s)
    return engine, cmap, info


def _close(engine: Engine) -> None:
    for part in (engine.store, engine.keyword):
        close = getattr(part, "close", None)
        if callable(close):
            close()


def _header(dataset: BeirDataset, info: IndexInfo, queries: int) -> dict[str, Any]:
    return {
        "dataset": str(dataset.path),
        "split": dataset.split,
        "queries": queries,
        "documents": info.documents,
        "index": {
            "folder": str(info.folder),
            "reused": info.reused,
            "chunks": info.chunks,
            "errors": info.errors,
            "build_s": round(info.build_s, 1),
        },
    }


def _round(data: dict[str, Any], digits: int = 4) -> dict[str, Any]:
    return {k: round(v, digits) if isinstance(v, float) else v for k, v in data.items()}


# --------------------------------------------------------------------------------------------
# commands


def dataset_paths(spec: str) -> list[Path]:
    """The folders of `--beir A,B,C` (at least one)."""
    paths = [Path(p.strip()).expanduser() for p in spec.split(",") if p.strip()]
    if not paths:
        raise UserError("--beir names no dataset folder")
    return paths


def resolve_split(path: Path, split: str) -> str:
    """'auto': the dataset's test half if it has one, else dev."""
    if split != "auto":
        return split
    return "test" if (path / "qrels" / "test.tsv").is_file() else "dev"


def load_datasets(args: argparse.Namespace) -> list[BeirDataset]:
    if len(dataset_paths(args.beir)) > 1 and args.index_dir:
        raise UserError("--index-dir names one index: give it with a single --beir dataset")
    return [load_beir(p, resolve_split(p, args.split)) for p in dataset_paths(args.beir)]


def _retrieval_of(
    args: argparse.Namespace, settings: Settings, dataset: BeirDataset, modes: list[RetrievalMode]
) -> tuple[list[RetrievalScores], IndexInfo, dict[str, str]]:
    ids = spread(list(dataset.queries), args.limit)
    queries = {q: dataset.queries[q] for q in ids}
    engine, cmap, info = open_index(args, settings, dataset)
    try:
        scores = evaluate_retrieval(
            engine, queries, dataset.qrels, modes, documents=cmap, progress=_progress("queries")
        )
    finally:
        _close(engine)
    return scores, info, queries


def cmd_retrieval(args: argparse.Namespace, settings: Settings) -> int:
    modes = list(MODES) if args.mode == "all" else [args.mode]
    results = []
    for dataset in load_datasets(args):
        scores, info, queries = _retrieval_of(args, settings, dataset, modes)
        results.append((dataset, info, queries, scores))
    macro = macro_average([scores for *_, scores in results]) if len(results) > 1 else None
    if args.json:
        outs = []
        for dataset, info, queries, scores in results:
            out = _header(dataset, info, len(queries))
            out["settings"] = settings.snapshot()
            out["modes"] = {sc.mode: _round(_scores_json(sc, args.per_query)) for sc in scores}
            outs.append(out)
        data: dict[str, Any] = outs[0] if macro is None else {"datasets": outs, "macro": macro}
        print(json.dumps(data, indent=2))
        return 0
    for dataset, info, queries, scores in results:
        _print_retrieval(dataset, info, len(queries), scores, settings)
    if macro is not None:
        names = ", ".join(f"{d.path.name} ({d.split})" for d, *_ in results)
        print(f"\nmacro average over {len(results)} datasets: {names}")
        print(f"{'mode':<8}" + "".join(f"{c:>9}" for c in ("nDCG@10", "R@10", "R@100", "MRR@10")))
        for mode, m in macro.items():
            cells = (m["ndcg_at_10"], m["recall_at_10"], m["recall_at_100"], m["mrr_at_10"])
            print(f"{mode:<8}" + "".join(f"{v:>9.3f}" for v in cells))
    return 0


def macro_average(per_dataset: Sequence[Sequence[RetrievalScores]]) -> dict[str, dict[str, float]]:
    """Each mode's metrics averaged over datasets (every dataset counts the same)."""
    out: dict[str, dict[str, float]] = {}
    for mode in dict.fromkeys(s.mode for scores in per_dataset for s in scores):
        rows = [s for scores in per_dataset for s in scores if s.mode == mode]
        out[mode] = {
            key: round(sum(getattr(s, key) for s in rows) / len(rows), 4)
            for key in ("ndcg_at_10", "recall_at_10", "recall_at_100", "mrr_at_10")
        }
    return out


def _scores_json(scores: RetrievalScores, per_query: bool) -> dict[str, Any]:
    data = asdict(scores)
    if not per_query:
        data.pop("per_query", None)
    return data


def _print_retrieval(
    dataset: BeirDataset,
    info: IndexInfo,
    queries: int,
    scores: Sequence[RetrievalScores],
    settings: Settings,
) -> None:
    print(
        f"{dataset.path.name} ({dataset.split}): {queries} queries, "
        f"{info.documents} documents, {info.chunks} chunks "
        f"(chunk_size {settings.chunk_size}, overlap {settings.chunk_overlap})"
    )
    eval_tables.print_retrieval_table(scores)
    print(
        f"latency: Engine.retrieve as an answer runs it (top_k {settings.top_k}, candidates "
        f"{settings.candidates}, query embedding and refusal gate included)"
    )


def _single_dataset(args: argparse.Namespace, command: str) -> BeirDataset:
    datasets = load_datasets(args)
    if len(datasets) > 1:
        raise UserError(f"`ragchat eval {command}` takes one --beir dataset")
    return datasets[0]


def _unanswerable(args: argparse.Namespace) -> list[str]:
    return read_questions(args.unanswerable or default_unanswerable())


_ANSWER_ROWS = (
    ("citation_precision", "citation precision"),
    ("answers_with_correct_citation", "answers with >= 1 correct citation"),
    ("alce_citation_recall", "ALCE citation recall (sentences)"),
    ("alce_citation_precision", "ALCE citation precision (citations)"),
    ("supported_sentence_rate", "supported-sentence rate (shown sentences)"),
    ("unflagged_unsupported_rate", "unflagged-unsupported rate (answers)"),
    ("refusal_rate_answerable", "refusal rate on answerable"),
    ("refusal_precision", "refusal precision"),
    ("refusal_recall", "refusal recall"),
    ("extractive_share", "extractive fallback share"),
    ("first_token_p50_ms", "time to first token p50 (ms)"),
    ("first_token_p95_ms", "time to first token p95 (ms)"),
)


def cmd_answers(args: argparse.Namespace, settings: Settings) -> int:
    dataset = _single_dataset(args, "answers")
    unanswerable = spread(_unanswerable(args), args.limit)
    ids = spread(list(dataset.queries), args.limit)
    questions: list[tuple[str, frozenset[str] | None]] = [
        (dataset.queries[q], frozenset(d for d, r in dataset.qrels[q].items() if r > 0))
        for q in ids
    ]
    questions += [(q, None) for q in unanswerable]
    policy = args.grounding or settings.grounding
    policies = ["mark", "off"] if policy == "both" else [policy]
    engine, cmap, info = open_index(args, settings, dataset)
    try:
        records = evaluate_answers(
            engine,
            questions,
            policies,
            documents=cmap,
            progress=_progress("answers"),
            judge=checker_judge(engine.embedder, settings.support_threshold),
        )
    finally:
        _close(engine)
    summaries: list[AnswerScores] = [summarize_answers(records, p) for p in policies]
    if args.json:
        out = _header(dataset, info, len(ids))
        out["unanswerable"] = len(unanswerable)
        out["settings"] = settings.snapshot()
        out["grounding"] = {s.grounding: _round(asdict(s)) for s in summaries}
        out["answers"] = [asdict(r) for r in records]
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    print(
        f"{dataset.path.name} ({dataset.split}): {len(ids)} answerable and {len(unanswerable)} "
        f"unanswerable questions, generator {settings.generator}"
    )
    eval_tables.print_figures("grounding", [(s.grounding, s) for s in summaries], _ANSWER_ROWS)
    return 0


def _stats_json(stats: RefusalStats) -> dict[str, Any]:
    return _round(asdict(stats))


def _distribution(values: Sequence[float]) -> dict[str, float | None]:
    return {
        f"p{p}": (None if (v := percentile(values, p)) is None else round(v, 4))
        for p in (5, 25, 50, 75, 95)
    }


def _feature_json(f: GateFeatures) -> dict[str, float]:
    values = {name: getattr(f, name) for name in GATE_FEATURES}
    return {name: round(v, 4) for name, v in values.items() if v is not None}


def cmd_calibrate(args: argparse.Namespace, settings: Settings) -> int:
    dataset = _single_dataset(args, "calibrate")
    unanswerable = _unanswerable(args)
    engine, _, info = open_index(args, settings, dataset)
    try:
        ans = [question_gate_features(engine, q) or NO_EVIDENCE for q in dataset.queries.values()]
        unans = [question_gate_features(engine, q) or NO_EVIDENCE for q in unanswerable]
    finally:
        _close(engine)
    cal = calibrate_gate(ans, unans, folds=args.folds)
    current_model = GateModel.from_weights(settings.refusal_gate)
    current = refusal_stats(
        [current_model.score(f) for f in ans],
        [current_model.score(f) for f in unans],
        settings.refusal_threshold,
    )
    # a gate on the best dense similarity alone, for comparison
    single = best_threshold([f.top_dense for f in ans], [f.top_dense for f in unans])
    weights = [round(w, 4) for w in cal.model.weights]
    if args.json:
        out = _header(dataset, info, len(dataset.queries))
        out.update(
            unanswerable=len(unanswerable),
            retrieval_mode=settings.retrieval_mode,
            criterion="max refusal F1 (positives: unanswerable questions)",
            features=list(GATE_FEATURES[: 1 + len(weights)]),
            weights=dict(
                zip(("coverage", "known", "sentence", "asks_kind"), weights, strict=False)
            ),
            folds=cal.folds,
            best=_stats_json(cal.fitted),
            cross_validated=_stats_json(cal.cross_validated),
            current=_stats_json(current),
            single_score=_stats_json(single),
            answerable_scores=_distribution([cal.model.score(f) for f in ans]),
            unanswerable_scores=_distribution([cal.model.score(f) for f in unans]),
            features_of={
                "answerable": {
                    q: _feature_json(f) for q, f in zip(dataset.queries, ans, strict=True)
                },
                "unanswerable": {
                    q: _feature_json(f) for q, f in zip(unanswerable, unans, strict=True)
                },
            },
        )
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"refusal gate on {dataset.path.name} ({dataset.split}): {len(ans)} answerable, "
        f"{len(unans)} unanswerable questions, retrieval mode {settings.retrieval_mode}"
    )
    sentence = f" + {weights[2]:.3f} x (sentence - 1)" if len(weights) > 2 else ""
    sentence += f" + {weights[3]:.3f} x asks_kind" if len(weights) > 3 else ""
    print(
        f"gate score = top_dense + {weights[0]:.3f} x (coverage - 1) + {weights[1]:.3f} x (known - 1)"
        f"{sentence} (weights from logistic regression)"
    )
    print(f"{'':<34}{'threshold':>10}{'precision':>10}{'recall':>8}{'F1':>7}{'bal.acc':>9}")
    rows = (
        ("best (max refusal F1, in-sample)", cal.fitted),
        (f"{cal.folds}-fold cross-validated", cal.cross_validated),
        ("current (settings)", current),
        ("best dense similarity alone", single),
    )
    for label, st in rows:
        print(
            f"{label:<34}{st.threshold:>10.3f}{st.precision:>10.3f}{st.recall:>8.3f}{st.f1:>7.3f}"
            f"{st.balanced_accuracy:>9.3f}"
        )
    print(
        "refuse when the score < threshold (threshold: max refusal F1); to use the fitted gate set:"
    )
    print(f"RAGCHAT_REFUSAL_GATE='{json.dumps(weights)}'")
    print(f"RAGCHAT_REFUSAL_THRESHOLD={cal.fitted.threshold}")
    return 0


def _facts(args: argparse.Namespace, settings: Settings) -> int:
    from webapp.eval_facts import cmd_facts

    return cmd_facts(args, settings)
