"""`ragchat ingest --watch DIR`: keep a folder in sync with the knowledge base until stopped.

SIGTERM or Ctrl-C (SIGINT) stops it after the change in progress (a batch of files being
ingested is finished); a second signal cancels that batch (the engine keeps the files already
added and nothing of the others), and the watcher still exits 0. A third one interrupts at once;
the ingest undoes its unfinished files, and `Engine.recover` at the next start anything left.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from rag_core.config import Settings
from rag_core.errors import UserError
from rag_core.watch import Deleted, FolderWatcher, Ingested, InSync, Skipped, WatchEvent
from webapp.cli import _result_line, shown
from webapp.collections_cli import actor_of

if TYPE_CHECKING:
    from rag_core.engine import Engine


def cmd_watch(
    args: argparse.Namespace, settings: Settings, engine_of: Callable[[Settings], Engine]
) -> int:
    """Watch `args.watch` until SIGTERM or SIGINT; `engine_of(settings)` builds the engine."""
    if args.paths:
        raise UserError(
            f"--watch takes one folder and no other paths ({', '.join(args.paths)}); ingest"
            " those separately"
        )
    debounce = args.debounce if args.debounce is not None else settings.watch_debounce_s
    if not 0 < debounce <= 3600:
        raise UserError(
            f"--debounce must be more than 0 and at most 3600 seconds, not {debounce:g}"
        )
    folder = Path(args.watch)
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is not a folder"
        raise UserError(f"cannot watch {shown(folder)}: it {what}")
    stop, cancel = threading.Event(), threading.Event()
    received: list[str] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)
        if cancel.is_set():  # the third: at once
            raise KeyboardInterrupt
        (cancel if stop.is_set() else stop).set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        watcher = FolderWatcher(
            engine_of(settings),
            folder,
            debounce_s=debounce,
            actor=actor_of(args, settings),
            collection=getattr(args, "collection", None),
        )
        into = f" into collection {args.collection}" if getattr(args, "collection", None) else ""
        print(
            f"watching {shown(folder)}{into} (changes taken after {debounce:g} s unchanged);"
            " stop with Ctrl-C or SIGTERM",
            file=sys.stderr,
            flush=True,
        )
        try:
            for event in watcher.run(stop, cancel=cancel):
                _show(event, folder, args.quiet)
            if cancel.is_set():
                print(
                    "ragchat: stopped at once: files not added yet were cancelled (nothing of"
                    " them was kept); the next start takes them up again",
                    file=sys.stderr,
                )
        except KeyboardInterrupt:
            print(
                "ragchat: stopped at once: a change in progress was abandoned (nothing of it"
                " was kept); the next start takes it up again",
                file=sys.stderr,
            )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    why = f" ({received[0]})" if received else ""
    print(f"stopped watching {shown(folder)}{why}", file=sys.stderr, flush=True)
    return 0


def _show(event: WatchEvent, folder: Path, quiet: bool) -> None:
    """One line per change on stdout; skipped files and 'in sync' on stderr."""
    if isinstance(event, Ingested) and event.result.status == "cancelled":
        print(f"{'cancelled':<10} {shown(folder / event.path)}", flush=True)
    elif isinstance(event, Ingested):
        if not quiet or event.result.status == "error":
            print(_result_line(folder / event.path, event.result), flush=True)
    elif isinstance(event, Deleted):
        if not quiet:
            record = event.record
            print(
                f"{'deleted':<10} {shown(folder / event.path)} -> {record.name} v{record.version}"
                " (its file was removed)",
                flush=True,
            )
    elif isinstance(event, Skipped):
        print(f"skipped {shown(folder / event.path)}: {event.reason}", file=sys.stderr, flush=True)
    elif isinstance(event, InSync):
        print(
            f"in sync: {event.files} files of the folder in the knowledge base"
            f" ({event.changes} changes)",
            file=sys.stderr,
            flush=True,
        )


def add_watch_arguments(ingest: argparse.ArgumentParser) -> None:
    """`ragchat ingest`'s --watch and --debounce."""
    ingest.add_argument(
        "--watch",
        metavar="DIR",
        default=None,
        help="keep the folder DIR in sync until stopped (Ctrl-C, SIGTERM): add new files,"
        " replace a document when its file changes, delete it when the file is removed",
    )
    ingest.add_argument(
        "--debounce",
        metavar="SECONDS",
        type=float,
        default=None,
        help="with --watch: take a change once the file is unchanged this long"
        " (default: RAGCHAT_WATCH_DEBOUNCE_S, 2)",
    )
