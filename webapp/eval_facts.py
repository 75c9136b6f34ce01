"""`ragchat eval facts DIR`: the short-answer facts benchmark (bench/data/facts) through the
real engine, its documents indexed once in a cached engine home of their own."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag_core.config import Settings
from rag_core.errors import InvalidOptionError, UserError
from rag_core.evaluation import spread
from webapp import eval_cli
from webapp.eval_cli import (
    MARKER,
    STAMP,
    STRATEGIES,
    _clear,
    _close,
    _progress,
    _round,
    _status,
    hashed_index_key,
)
from webapp.eval_tables import print_figures

if TYPE_CHECKING:
    from rag_core.engine import Engine
    from rag_core.evaluation.facts import FactsSet


def files_key(files: Sequence[Path], settings: Settings) -> str:
    """Identifies an index of files: their names and bytes, the embedder, chunking, the code."""
    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return hashed_index_key({"files": h.hexdigest()}, settings)


def open_files_index(
    args: argparse.Namespace, settings: Settings, name: str, files: Sequence[Path]
) -> Engine:
    """An engine over `files` in a home of its own, cached while the files are unchanged."""
    key = files_key(files, settings)
    folder = Path.home() / ".cache" / "ragchat" / "eval" / f"{name}-{key[:16]}"
    marker = folder / MARKER
    fresh = args.reindex or not marker.is_file()
    if fresh:
        _clear(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / STAMP).write_text(key + "\n", encoding="utf-8")
    home = settings.model_copy(update={"home": folder, "database_url": None, "chroma_url": None})
    engine = eval_cli._build_engine(home)
    if fresh:
        _status(f"index: building {folder} from {len(files)} files")
        for path in files:
            result = engine.ingest_path(path)
            if result.status not in ("added", "replaced", "duplicate"):
                raise UserError(f"{path.name} could not be indexed: {result.error}")
        marker.write_text(json.dumps({"key": key, "files": [p.name for p in files]}), "utf-8")
    else:
        _status(f"index: reusing {folder}")
    return engine


def open_facts_index(args: argparse.Namespace, settings: Settings, facts: FactsSet) -> Engine:
    """An engine over a facts split's documents: one cached index per split, named after it
    (the benchmarks under bench/ reuse the index `ragchat eval facts` built)."""
    return open_files_index(args, settings, f"facts-{facts.root.name}", facts.documents)


_FACT_ROWS = (
    ("right", "right (fact shown and gold document cited)"),
    ("fact_shown", "fact shown"),
    ("cites_gold", "gold document cited"),
    ("refusal_precision", "refusal precision"),
    ("refusal_recall", "refusal recall"),
    ("answerable_refused", "answerable questions refused"),
    ("meta_talk", "meta-talk rate"),
    ("quoted_fallback", "quoted-fallback rate"),
    ("sentences_per_answer", "sentences per answer"),
    ("first_token_p50_ms", "first token p50 (ms)"),
    ("total_p50_ms", "total p50 (ms)"),
)


def cmd_facts(args: argparse.Namespace, settings: Settings) -> int:
    from rag_core.evaluation.facts import evaluate_facts, load_facts, summarize_facts

    facts = load_facts(args.dir)
    names = list(STRATEGIES) if args.strategy == "all" else [args.strategy or "concat"]
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise UserError(f"unknown strategy {unknown[0]!r}: choose {', '.join(STRATEGIES)} or all")
    questions = spread(list(facts.questions), args.limit)
    engine = open_facts_index(args, settings, facts)
    try:
        chosen = _chosen(engine, names, every=args.strategy == "all")
        names = [n for n, _ in chosen]
        records = evaluate_facts(engine, questions, chosen, _progress("answers"))
    finally:
        _close(engine)
    scores = [summarize_facts(records, n) for n in names]
    if args.json:
        from rag_core.evaluation.facts import facts_as_json

        out = {
            "set": str(facts.root),
            "questions": len(questions),
            "settings": settings.snapshot(),
            "strategies": {sc.strategy: _round(asdict(sc)) for sc in scores},
            "answers": facts_as_json(records),
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    n_ans = sum(q.answerable for q in questions)
    print(
        f"{facts.root} : {n_ans} answerable and {len(questions) - n_ans} unanswerable questions "
        f"over {len(facts.documents)} documents, generator {settings.generator}"
    )
    columns = [(sc.strategy, sc) for sc in scores]
    print_figures("strategy", columns, _FACT_ROWS, cell=12, digits=_fact_digits)
    return 0


def _fact_digits(key: str) -> int:
    return 0 if key.endswith("_ms") else 2 if key == "sentences_per_answer" else 3


def _chosen(engine: Engine, names: Sequence[str], *, every: bool) -> list[tuple[str, Any]]:
    """Each strategy's options; with `all`, one this generator cannot run is skipped, and said
    so (a RAG decoding on a generator without token probabilities)."""
    chosen = []
    for name in names:
        try:
            chosen.append((name, engine.options(strategy=name)))
        except InvalidOptionError as exc:
            if not every:
                raise
            print(f"skipped {name}: {exc}", file=sys.stderr)
    return chosen
