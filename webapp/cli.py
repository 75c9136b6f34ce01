"""The `ragchat` command line: ingest, ask, docs, collections, doctor, serve, apikey, eval, replay,
reindex."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, get_args

from rag_core.config import Settings
from rag_core.errors import (
    CollectionError,
    DocumentNotFoundError,
    PermissionDeniedError,
    RagError,
    UserError,
)
from rag_core.ingest.detect import SUPPORTED_EXTENSIONS
from rag_core.types import (
    Actor,
    AnswerStrategy,
    Done,
    IngestResult,
    Released,
    Retrieved,
    page_ranges,
)
from webapp import serialize
from webapp.collections_cli import (
    actor_of,
    add_access_arguments,
    add_collections_command,
    collections_line,
    scope_of,
)


def _engine(settings: Settings, *, recover: bool = True) -> Any:
    """The engine; by default first finishing what a crashed process left half done (skipped
    while another process is writing: it is alive, and unfinished documents are never read)."""
    from rag_core.factory import build_engine

    engine = build_engine(settings)
    if recover:
        for action in engine.recover(wait=False):
            print(f"ragchat: recovered: {action}", file=sys.stderr)
    return engine


def iter_files(paths: Sequence[str]) -> Iterator[Path]:
    """Files named on the command line; folders are walked recursively (supported types only)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in child.relative_to(path).parts)
                if child.is_file() and child.suffix.lower() in SUPPORTED_EXTENSIONS and not hidden:
                    yield child
        else:
            yield path


def shown(path: Path) -> str:
    """A path as one printable line: control characters (a newline in a file name) escaped."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(path))


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    if args.watch is not None:
        from webapp.watch_cli import cmd_watch

        return cmd_watch(args, settings, _engine)
    if args.debounce is not None:
        raise UserError(f"--debounce {args.debounce:g} goes with --watch DIR")
    if not args.paths:
        raise UserError("name files or folders to ingest, or a folder to keep in sync: --watch DIR")
    files = list(iter_files(args.paths))
    if not files:
        print("No files to ingest.", file=sys.stderr)
        return 1
    engine = _engine(settings)
    if args.collection is not None:  # a name the user may not see fails before any file is read
        args.collection = engine.collections.get(args.collection, actor_of(args, settings)).name
    bar = tqdm(total=1000, unit="‰", disable=args.quiet or not sys.stderr.isatty())

    def report(stage: str, fraction: float) -> None:
        bar.set_description(stage[:30])
        bar.update(max(0, int(fraction * 1000) - bar.n))

    # every file through one batched ingest: their chunks are embedded together
    results = engine.ingest(
        files, report, actor=actor_of(args, settings), collection=args.collection
    )
    bar.close()
    failures = sum(r.status == "error" for r in results)
    if not args.quiet:
        for path, result in zip(files, results, strict=True):
            print(_result_line(path, result))
    ok = len(files) - failures
    into = f" (collection {args.collection})" if args.collection is not None else ""
    print(
        f"{ok} of {len(files)} files ingested or already present{into}; {failures} failed.",
        file=sys.stderr,
    )
    return 0 if failures == 0 else 1


def _result_line(path: Path, result: IngestResult) -> str:
    """One line per file: what happened to it."""
    doc = result.document
    if result.status == "error" or doc is None:
        return f"error      {result.error}"
    if result.status == "duplicate":
        return f"duplicate  {shown(path)} (same content as {doc.name}, nothing added)"
    reused = f", {result.reused_embeddings} embeddings reused" if result.reused_embeddings else ""
    ocr = f", OCR read page(s) {page_ranges(doc.ocr_pages)}" if doc.ocr_pages else ""
    warnings = doc.report.warnings if doc.report is not None else ()
    more = f" (+{len(warnings) - 1} more: ragchat docs show)" if len(warnings) > 1 else ""
    warned = f"; warning: {warnings[0]}{more}" if warnings else ""
    return (
        f"{result.status:<10} {shown(path)} -> {doc.name} v{doc.version}: {result.chunks} "
        f"chunks{reused}{ocr} in {result.seconds:.1f}s{warned}"
    )


# `ragchat ask --json`: webapp.serialize's fields, in the names and order this output has always
# had (`n` is a citation's number, `retrieved` the passages; the score has 6 decimals).
ASK_FIELDS = (
    "question query answer raw_answer mode refused status error citations sentences retrieved "
    "timings config"
)
CITATION_FIELDS = (
    "n document document_id version page heading_path ocr chunk_id char_start char_end support text"
)
RETRIEVED_FIELDS = (
    "rank score dense_score keyword_score found_by document document_id page heading_path ocr "
    "chunk_id cited text"
)


def done_json(done: Done) -> dict[str, Any]:
    """The answer as `ragchat ask --json` prints it."""
    data = serialize.answer(done)
    data["citations"] = [serialize.pick(c, CITATION_FIELDS, n="number") for c in data["citations"]]
    data["retrieved"] = [
        {**serialize.pick(p, RETRIEVED_FIELDS), "score": round(p["score"], 6)}
        for p in data["passages"]
    ]
    return serialize.pick(data, ASK_FIELDS)


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    engine = _engine(settings)
    options: dict[str, Any] = {"mode": args.mode, "strategy": args.strategy}
    if args.extractive:
        options["strategy"] = "extractive"
    if args.top_k:
        options["top_k"] = args.top_k
    done: Done | None = None
    streamed = ""
    events = engine.chat(
        args.question,
        args.conversation,
        user=args.user or "local",
        options=engine.options(**options),
        actor=actor_of(args, settings),
        scope=scope_of(args),
    )
    for event in events:
        if isinstance(event, Released) and not args.json:  # checked text only, as it passes
            streamed += event.text
            sys.stdout.write(event.text)
            sys.stdout.flush()
        elif isinstance(event, Retrieved) and not args.json and event.query != event.question:
            print(f"(searching for: {event.query})", file=sys.stderr)
        elif isinstance(event, Done):
            done = event
    if done is None:
        return 1
    if args.json:
        print(json.dumps(done_json(done), ensure_ascii=False, indent=2))
        return 0 if done.status == "complete" else 1
    print()
    if done.citations:
        print("\nSources:")
        for c in done.citations:
            where = f" ({c.chunk.shown_location})" if c.chunk.shown_location else ""
            quote = " ".join((c.support or c.chunk.text).split())
            print(f"  [{c.n}] {c.chunk.document_name}{where}: “{quote[:200]}”")
    elif done.hits:
        print("\nClosest passages:")
        for h in done.hits[:3]:
            where = f" ({h.chunk.shown_location})" if h.chunk.shown_location else ""
            print(
                f"  {h.rank}. {h.chunk.document_name}{where}: {' '.join(h.chunk.text.split())[:160]}"
            )
    return 0 if done.status == "complete" else 1


def cmd_docs(args: argparse.Namespace, settings: Settings) -> int:
    engine = _engine(settings)
    actor = actor_of(args, settings)
    if args.docs_cmd == "list":
        return _list_documents(engine, actor, as_json=args.json)
    if args.docs_cmd == "delete":
        record = engine.delete_document(args.document, actor=actor)
        print(f"deleted {record.name} ({record.id[:8]}, {record.chunk_count} chunks)")
        return 0
    if args.docs_cmd == "show":
        return _show_document(engine, args.document, actor, as_json=args.json)
    return 2


def _list_documents(engine: Any, actor: Actor, *, as_json: bool) -> int:
    """`ragchat docs list`: the documents `actor` may see, each with its collections."""
    docs = engine.documents(actor)
    where = engine.collections.memberships(d.id for d in docs)
    if as_json:
        data = [{**asdict(d), "collections": where.get(d.id, [])} for d in docs]
        print(json.dumps(data, indent=2, default=lambda t: t.isoformat()))
        return 0
    if not docs:
        print("No documents. Add some with: ragchat ingest PATH")
        return 0
    print(
        f"{'id':<10} {'name':<40} {'type':<8} {'pages':>5} {'chunks':>6} {'ver':>3}  {'added':<16}"
        "  collections"
    )
    for d in docs:
        pages = "" if d.page_count is None else str(d.page_count)
        print(
            f"{d.id[:8]:<10} {d.name[:40]:<40} {d.doc_type:<8} {pages:>5} {d.chunk_count:>6} "
            f"{d.version:>3}  {d.added_at:%Y-%m-%d %H:%M}  {collections_line(where.get(d.id, []))}"
        )
    return 0


def _show_document(engine: Any, key: str, actor: Actor, *, as_json: bool) -> int:
    """`ragchat docs show`: the document's ingest report, then its chunks."""
    record = engine.document(key, actor=actor)
    chunks = engine.chunks_of(record.id, actor=actor)
    where = engine.collections.memberships([record.id]).get(record.id, [])
    if as_json:
        data = {
            **serialize.document(record),
            "collections": where,
            "chunks": [serialize.chunk(c) for c in chunks],
        }
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    print(
        f"{record.name} (v{record.version}, {record.doc_type}, id {record.id}) in "
        f"{collections_line(where)}"
    )
    for label, text in serialize.report_facts(record):
        print(f"  {label + ':':<13} {text}")
    for c in chunks:
        print(f"--- chunk {c.index} {c.shown_location} [{c.char_start}:{c.char_end}]")
        print(c.text)
    return 0


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0 when registry, vector store and keyword index agree (after --repair: once fixed)."""
    from rag_core.factory import build_engine

    engine = build_engine(settings, check_index=False)
    mismatch = _index_notes(engine)
    problems = engine.check()
    if mismatch:  # the embedder first: `ragchat reindex`, then the rest
        for p in problems:
            print(f"problem: {p}")
        return 1
    if not problems:
        print("OK: registry, vector store and keyword index agree.")
        return 0
    for p in problems:
        print(f"problem: {p}")
    if not args.repair:
        print(f"{len(problems)} problems. Run `ragchat doctor --repair` to fix them.")
        return 1
    for action in engine.repair():
        print(f"repaired: {action}")
    left = engine.check()
    for p in left:
        print(f"still wrong: {p}")
    print("OK after repair." if not left else f"{len(left)} problems remain.")
    return 0 if not left else 1


def _index_notes(engine: Any) -> bool:
    """What `doctor` says about the vector index: its embedder, one that does not match the
    configured one (True: then nothing else can be repaired first), a re-embedding left
    unfinished."""
    from rag_core.errors import IndexMismatchError
    from rag_core.factory import check_embedder

    status = engine.index_status()
    if status is None or status.active is None:
        return False
    print(
        f"index: {status.active.collection}, made by {status.active.identity.describe()}",
        file=sys.stderr,
    )
    mismatch = False
    try:
        check_embedder(status.active, engine.embedder)
    except IndexMismatchError as exc:
        print(f"problem: {exc}")
        mismatch = True
    building = status.building
    if building is not None:
        state = "stopped" if status.stalled else "running"
        print(
            f"note: a re-embedding with {building.identity.describe()} is {state} at"
            f" {building.chunks_done} of {building.chunks_total} chunks; `ragchat reindex`"
            " resumes it"
        )
    return mismatch


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from webapp.server import serve

    serve(settings, host=args.host, port=args.port, demo=not args.no_demo)
    return 0


def cmd_apikey(args: argparse.Namespace, settings: Settings) -> int:
    """Create, list or revoke a user's API keys (stored only as hashes)."""
    from rag_core.db.apikeys import ApiKeys
    from rag_core.db.database import Database
    from webapp.auth import parse_users

    users = parse_users(settings.auth) if settings.auth else None
    user: str = getattr(args, "user", None) or ""
    if args.apikey_cmd == "create" and users is not None and user not in users:
        raise UserError(f"user {user!r} is not in RAGCHAT_AUTH ({', '.join(sorted(users))})")
    db = Database(settings.db_url)
    try:
        db.migrate()
        keys = ApiKeys(db)
        if args.apikey_cmd == "create":
            record, key = keys.create(user, args.name or "")
            print(key)
            print(
                f"API key {record.id} ({record.prefix}…) for {record.user}: shown only now, "
                "store it safely. Send it as 'Authorization: Bearer KEY'.",
                file=sys.stderr,
            )
            if users is None:
                print(
                    "note: accounts are off (RAGCHAT_AUTH unset), so the API is open and does "
                    "not check keys.",
                    file=sys.stderr,
                )
            return 0
        if args.apikey_cmd == "list":
            records = keys.list(user or None)
            if not records:
                print(f"No API keys for {user}." if user else "No API keys.")
            for r in records:
                used = f"{r.last_used_at:%Y-%m-%d %H:%M}" if r.last_used_at else "never"
                state = f"revoked {r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "active"
                print(
                    f"{r.id:>4}  {r.prefix}…  {r.user:<16} {r.name[:24]:<24} "
                    f"created {r.created_at:%Y-%m-%d %H:%M}  last used {used}  {state}"
                )
            return 0
        record = keys.revoke(user, args.key)
        print(f"revoked API key {record.id} ({record.prefix}…) of {record.user}")
        return 0
    finally:
        db.dispose()


def build_parser() -> argparse.ArgumentParser:
    from webapp.watch_cli import add_watch_arguments

    p = argparse.ArgumentParser(prog="ragchat", description="Chat with your documents, offline.")
    sub = p.add_subparsers(dest="cmd", required=True)

    ing = sub.add_parser("ingest", help="add files or folders (recursively) to the knowledge base")
    ing.add_argument("paths", nargs="*", help="files, and folders to walk recursively")
    ing.add_argument("-q", "--quiet", action="store_true")
    add_watch_arguments(ing)
    ing.set_defaults(func=cmd_ingest)

    ask = sub.add_parser("ask", help="ask a question; streams the answer, then lists the sources")
    ask.add_argument("question")
    ask.add_argument("--mode", choices=["hybrid", "dense", "bm25"], default=None)
    ask.add_argument("--top-k", type=int, default=None)
    ask.add_argument(
        "--strategy",
        choices=list(get_args(AnswerStrategy)),
        default=None,
        help="how the answer is made (default: RAGCHAT_ANSWER_STRATEGY; see docs/ANSWERS.md)",
    )
    ask.add_argument(
        "--extractive", action="store_true", help="quote passages (--strategy extractive)"
    )
    ask.add_argument("--conversation", default=None, help="continue this conversation id")
    ask.add_argument("--json", action="store_true", help="print one JSON object")
    ask.set_defaults(func=cmd_ask)

    docs = sub.add_parser("docs", help="list, show or delete documents")
    dsub = docs.add_subparsers(dest="docs_cmd", required=True)
    dl = dsub.add_parser("list")
    dl.add_argument("--json", action="store_true")
    dd = dsub.add_parser("delete")
    dd.add_argument("document", help="name or id (prefix)")
    ds = dsub.add_parser("show", help="print a document's ingest report and its chunks")
    ds.add_argument("document", help="name or id (prefix)")
    ds.add_argument("--json", action="store_true", help="print one JSON object")
    docs.set_defaults(func=cmd_docs)
    add_access_arguments(ing, ask, (dl, dd, ds))

    doc = sub.add_parser("doctor", help="check that registry and indexes agree")
    doc.add_argument("--repair", action="store_true")
    doc.set_defaults(func=cmd_doctor)

    srv = sub.add_parser("serve", help="start the web app")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=7860)
    srv.add_argument("--no-demo", action="store_true", help="don't add the demo documents")
    srv.set_defaults(func=cmd_serve)

    keys = sub.add_parser("apikey", help="create, list or revoke a user's API keys")
    ksub = keys.add_subparsers(dest="apikey_cmd", required=True)
    kc = ksub.add_parser("create", help="make a key (printed once; only its hash is stored)")
    kc.add_argument("--user", required=True)
    kc.add_argument("--name", default="", help="a label, e.g. where the key is used")
    kl = ksub.add_parser("list", help="the keys (never the keys themselves)")
    kl.add_argument("--user", default=None)
    kr = ksub.add_parser("revoke", help="revoke a key by id or prefix")
    kr.add_argument("--user", required=True)
    kr.add_argument("key", help="the key's id or prefix (from `ragchat apikey list`)")
    keys.set_defaults(func=cmd_apikey)

    from webapp.eval_cli import add_eval_commands
    from webapp.reindex_cli import add_reindex_command
    from webapp.replay_cli import add_replay_command

    add_eval_commands(sub)
    add_replay_command(sub)
    add_reindex_command(sub)
    add_collections_command(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # What ragchat writes (database, indexes, uploads, secrets) is for its owner only: 0600 files
    # and 0700 folders, whatever the shell's umask.
    os.umask(0o077)
    try:
        settings = Settings()
    except Exception as exc:  # pydantic ValidationError: show which setting is wrong
        print(f"ragchat: invalid settings: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args, settings))
    except (DocumentNotFoundError, CollectionError, PermissionDeniedError) as exc:
        # not there, not visible to this user, or not theirs: bad input, like a bad argument
        print(f"ragchat: {exc}", file=sys.stderr)
        return 2
    except UserError as exc:
        print(f"ragchat: {exc}", file=sys.stderr)
        return 1
    except RagError as exc:
        print(f"ragchat: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
