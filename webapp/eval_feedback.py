"""`ragchat eval feedback [--export DIR]`: the users' rated answers as an evaluation set, run on
today's knowledge base with today's settings; the same retrieval and answer figures as
`ragchat eval retrieval` and `ragchat eval answers`. Nothing is logged or changed."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rag_core.config import Settings
from rag_core.evaluation import (
    CorpusMap,
    RetrievalScores,
    evaluate_answers,
    evaluate_retrieval,
    summarize_answers,
)
from rag_core.evaluation.feedback import FeedbackSet, feedback_set, write_beir
from webapp.eval_cli import (
    _ANSWER_ROWS,
    MODES,
    _progress,
    _round,
)
from webapp.eval_tables import print_figures, print_retrieval_table


def add_feedback_command(esub: Any) -> None:
    """The `eval feedback` subcommand."""
    fb = esub.add_parser(
        "feedback", help="rated answers as an evaluation set: export it (BEIR) and measure it"
    )
    fb.add_argument("--export", default=None, metavar="DIR", help="write the set here (BEIR)")
    fb.add_argument("--user", default=None, help="only this user's ratings (default: everyone's)")
    fb.add_argument("--mode", choices=[*MODES, "all"], default="all")
    fb.add_argument("--no-answers", action="store_true", help="retrieval only (no generation)")
    fb.add_argument("--json", action="store_true", help="print one JSON object")
    fb.set_defaults(func=cmd_feedback)


def _retrieval(engine: Any, data: FeedbackSet, modes: list[Any]) -> list[RetrievalScores]:
    if not data.judged:
        return []
    queries = {q.id: q.question for q in data.judged}
    names = CorpusMap({name: name for name in data.corpus})
    return evaluate_retrieval(
        engine, queries, data.qrels, modes, documents=names, progress=_progress("queries")
    )


def _without_per_query(scores: RetrievalScores) -> dict[str, Any]:
    return {k: v for k, v in asdict(scores).items() if k != "per_query"}


def cmd_feedback(args: argparse.Namespace, settings: Settings) -> int:
    from webapp.cli import _engine

    engine = _engine(settings)
    data = feedback_set(engine, user=args.user)
    written = write_beir(data, Path(args.export)) if args.export else []
    modes = list(MODES) if args.mode == "all" else [args.mode]
    scores = _retrieval(engine, data, modes)
    policy = settings.grounding
    questions: list[tuple[str, frozenset[str] | None]] = [
        (q.question, q.relevant) for q in data.judged
    ]
    questions += [(q.question, None) for q in data.unanswerable]
    summary = None
    if questions and not args.no_answers:
        records = evaluate_answers(
            engine,
            questions,
            [policy],
            documents=CorpusMap({name: name for name in data.corpus}),
            progress=_progress("answers"),
        )
        summary = summarize_answers(records, policy)
    counts = {
        "rated": len(data.queries),
        "judged": len(data.judged),
        "unanswerable": len(data.unanswerable),
        "documents": len(data.corpus),
    }
    if args.json:
        out: dict[str, Any] = {
            **counts,
            "export": [str(p) for p in written],
            "settings": settings.snapshot(),
            "modes": {s.mode: _round(_without_per_query(s)) for s in scores},
            "grounding": {policy: _round(asdict(summary))} if summary else {},
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    print(
        f"feedback: {counts['rated']} rated answers, {counts['judged']} with a relevant "
        f"document, {counts['unanswerable']} the documents do not answer; "
        f"{counts['documents']} documents"
    )
    if written:
        print(f"written: {', '.join(str(p) for p in written)}")
    if scores:
        print_retrieval_table(scores)
    if summary is not None:
        print_figures("grounding", [(summary.grounding, summary)], _ANSWER_ROWS)
    return 0
