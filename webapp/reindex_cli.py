"""`ragchat reindex`: embed every chunk again with the configured embedder (see rag_core/reindex.py)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from rag_core.config import Settings

DEFAULT_GRACE_S = 5.0  # after the swap: requests already under way finish on the old index


def _progress(quiet: bool) -> tuple[Any, Any]:
    """A progress bar on a terminal, a line every tenth otherwise (nothing when quiet)."""
    from tqdm import tqdm

    if quiet:
        return (lambda done, total: None), None
    if sys.stderr.isatty():
        bar = tqdm(total=0, unit="chunk", desc="re-embedding", file=sys.stderr)

        def update(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        return update, bar
    shown = [-1]

    def line(done: int, total: int) -> None:
        tenth = 10 * done // total if total else 10
        if tenth != shown[0]:
            shown[0] = tenth
            print(f"re-embedding: {done} of {total} chunks", file=sys.stderr, flush=True)

    return line, None


def cmd_reindex(args: argparse.Namespace, settings: Settings) -> int:
    from rag_core.factory import build_engine, build_reindexer

    engine = build_engine(settings, check_index=False)
    for action in engine.recover(wait=False):
        print(f"ragchat: recovered: {action}", file=sys.stderr)
    reindexer = build_reindexer(engine)
    report, bar = _progress(args.quiet)
    try:
        result = reindexer.run(force=args.force, progress=report)
    finally:
        if bar is not None:
            bar.close()
    if result.status == "unchanged":
        print(f"Nothing to do: the index was made by {result.identity.describe()}.")
        print("(`ragchat reindex --force` embeds every chunk again all the same.)")
        return 0
    resumed = ", resumed" if result.resumed else ""
    print(
        f"Re-embedded {result.chunks} chunks of {result.documents} documents with"
        f" {result.identity.describe()} in {result.seconds:.1f}s ({result.embedded} texts"
        f" embedded{resumed}); it now answers."
    )
    for name in result.skipped:
        print(f"warning: {name}: chunks were missing from the old index; see `ragchat doctor`")
    if args.keep_old:
        print("The old index is kept; the next `ragchat reindex` drops it.")
        return 0
    time.sleep(max(args.grace, 0.0))
    for record in reindexer.drop_retired():
        print(f"Dropped the old index {record.collection} ({record.identity.describe()}).")
    return 0


def add_reindex_command(sub: Any) -> None:
    """Register `ragchat reindex` on the command line's subparsers."""
    p = sub.add_parser(
        "reindex",
        help="embed every chunk again with the configured embedder (resumable; the current"
        " index keeps answering until the new one is complete)",
    )
    p.add_argument("--force", action="store_true", help="even if the index is this embedder's")
    p.add_argument("--keep-old", action="store_true", help="keep the replaced index's collection")
    p.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE_S,
        help="seconds to wait after the switch before dropping the old index (default 5)",
    )
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_reindex)
