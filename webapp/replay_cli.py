"""`ragchat replay TURN_ID` and `ragchat replay --since DATE`: answer logged turns again with the
settings they were answered with, on today's knowledge base, and print what changed."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from rag_core.config import Settings
from rag_core.errors import UserError
from rag_core.replay import Replay, ReplaySummary, replay_since, replay_turn
from rag_core.types import Citation
from webapp import serialize


def add_replay_command(sub: Any) -> None:
    """The `replay` subcommand."""
    rp = sub.add_parser(
        "replay",
        help="answer a logged turn again on today's knowledge base and show what changed",
    )
    rp.add_argument("turn_id", nargs="?", type=int, help="the turn's id (see /api/turns)")
    rp.add_argument("--since", default=None, metavar="DATE", help="replay every turn since DATE")
    rp.add_argument("--user", default=None, help="with --since: only this user's turns")
    rp.add_argument("--limit", type=int, default=None, help="with --since: at most N turns")
    rp.add_argument("--json", action="store_true", help="print one JSON object")
    rp.set_defaults(func=cmd_replay)


def parse_since(text: str) -> datetime:
    """An ISO date or date and time; without a zone, UTC."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise UserError(
            f"--since {text!r} is not a date like 2026-11-30 or 2026-11-30T08:00"
        ) from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    if (args.turn_id is None) == (args.since is None):
        raise UserError("Give a turn id or --since DATE (one of the two)")
    from webapp.cli import _engine

    engine = _engine(settings)
    if args.since is not None:
        since = parse_since(args.since)
        summary = replay_since(
            engine, since, user=args.user, limit=args.limit, progress=_progress(args.json)
        )
        if args.json:
            data = {"since": since.isoformat(), **serialize.replay_summary(summary)}
            print(json.dumps(data, ensure_ascii=False, indent=2))
        else:
            print(summary_text(summary))
        return 0 if not summary.failures else 1
    replay = replay_turn(engine, args.turn_id, engine.log.turn_owner(args.turn_id))
    if args.json:
        print(json.dumps(serialize.replay(replay), ensure_ascii=False, indent=2))
    else:
        print(replay_text(replay))
    return 0


def _progress(quiet: bool) -> Any:
    def report(done: int, total: int) -> None:
        if not quiet and sys.stderr.isatty():
            print(f"\rreplayed {done}/{total}", end="" if done < total else "\n", file=sys.stderr)

    return report


def _one_line(text: str, width: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _gate(value: float | None) -> str:
    return "not logged" if value is None else f"{value:.3f}"


def _cites(citations: tuple[Citation, ...]) -> str:
    if not citations:
        return "none"
    return "; ".join(
        f"[{c.n}] {c.chunk.document_name}" + (f" ({c.chunk.location})" if c.chunk.location else "")
        for c in citations
    )


def replay_text(r: Replay) -> str:
    """A logged turn and its replay, section by section, for a terminal."""
    b, a = r.before, r.after
    lines = [f"Turn {b.id}, logged {b.created_at:%Y-%m-%d %H:%M} UTC: “{_one_line(b.question)}”"]
    lines += [f"! {note}" for note in r.notes]
    lines += [f"! {d.name}: {d.status} since" for d in r.documents]
    changes = [
        name
        for name, flag in (
            ("answer changed", r.answer_changed),
            ("citations moved", r.citations_moved),
            ("refusal appeared", r.refusal_appeared),
            ("refusal vanished", r.refusal_vanished),
        )
        if flag
    ]
    lines.append("Changes: " + (", ".join(changes) if changes else "none in answer or citations"))
    lines += ["", "Answer then:", f"  {_one_line(b.answer, 600)}", "Answer today:"]
    lines += [f"  {_one_line(a.answer, 600)}", ""]
    lines.append(f"Gate score: {_gate(r.gate_before)} then, {_gate(r.gate_after)} today")
    lines.append(f"Citations then: {_cites(b.citations)}")
    lines.append(f"Citations today: {_cites(a.citations)}")
    lines.append("\nPassages (rank then -> today):")
    for p in r.passages:
        ranks = f"{p.rank_before or '-'} -> {p.rank_after or '-'}"
        where = f" ({p.location})" if p.location else ""
        lines.append(
            f"  {p.change:<5} {ranks:<8} {p.document_name}{where}: {_one_line(p.text, 80)}"
        )
    lines.append("\nSentences (verdict then -> today):")
    for s in r.sentences:
        mark = "~" if s.changed else "="
        then = s.before.verdict if s.before else "-"
        now = s.after.verdict if s.after else "-"
        shown = s.after or s.before
        text = shown.text if shown is not None else ""
        lines.append(f"  {mark} {then:>9} -> {now:<9} {_one_line(text, 100)}")
    return "\n".join(lines)


def summary_text(summary: ReplaySummary) -> str:
    """What changed across many replayed turns, with the turn ids of each kind of change."""

    def ids(values: tuple[int, ...]) -> str:
        return f"{len(values)}" + (f" (turns {', '.join(map(str, values))})" if values else "")

    lines = [
        f"Replayed {len(summary.replays)} turns.",
        f"Answers changed: {ids(summary.answers_changed)}",
        f"Citations moved: {ids(summary.citations_moved)}",
        f"Refusals appeared: {ids(summary.refusals_appeared)}",
        f"Refusals vanished: {ids(summary.refusals_vanished)}",
        f"Answered by other models than today's: {ids(summary.models_differ)}",
    ]
    lines += [f"Failed: turn {f.turn_id}: {f.error}" for f in summary.failures]
    return "\n".join(lines)
