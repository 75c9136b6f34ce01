"""`ragchat collections ...`, and who the command line acts as: `--user NAME` on ingest, ask, docs
and collections (a user with accounts, who sees only the collections they may see and owns what
they add; without it, the operator, who sees everything), `ingest --collection` and the scope of
`ask --collection/--doc`. The engine enforces every rule; this module only parses and prints."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from rag_core.config import Settings
from rag_core.errors import CollectionError, UserError
from rag_core.types import VISIBILITIES, Actor, CollectionRecord, DocumentRecord, Scope
from webapp import serialize

if TYPE_CHECKING:
    from rag_core.engine import Engine

MAX_USER = 255


# -- who acts, and what a question searches ---------------------------------------------------


def user_name(value: str) -> str:
    """`--user NAME`: one word, as account names are (no spaces or commas)."""
    clean = value.strip()
    if not clean or len(clean) > MAX_USER or any(ch.isspace() or ch == "," for ch in clean):
        raise argparse.ArgumentTypeError(
            f"not a user name: {value!r} (one word of 1 to {MAX_USER} characters, no commas)"
        )
    return clean


def a_name(value: str) -> str:
    """A collection or document name on the command line: not blank (the engine trims it)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("a name cannot be empty")
    return value


def add_user_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--user",
        type=user_name,
        default=None,
        metavar="NAME",
        help="act as this user: see only the collections NAME may see, own what NAME adds"
        " (admins: RAGCHAT_ADMINS; default: the operator, who sees everything)",
    )


def add_access_arguments(
    ingest: argparse.ArgumentParser,
    ask: argparse.ArgumentParser,
    docs: Sequence[argparse.ArgumentParser],
) -> None:
    """`--user` on ingest, ask and the docs commands; `ingest --collection`; `ask --collection
    --doc`, the scope of a question."""
    for parser in (ingest, ask, *docs):
        add_user_argument(parser)
    ingest.add_argument(
        "--collection",
        type=a_name,
        default=None,
        metavar="NAME",
        help="new documents join this collection (default: Default); with --watch, every file"
        " the watcher adds",
    )
    ask.add_argument(
        "--collection",
        dest="collections",
        type=a_name,
        action="append",
        default=[],
        metavar="NAME",
        help="search only this collection (repeatable; with --doc, the union)",
    )
    ask.add_argument(
        "--doc",
        dest="documents",
        type=a_name,
        action="append",
        default=[],
        metavar="NAME",
        help="search only this document, by name or id (repeatable)",
    )


def actor_of(args: argparse.Namespace, settings: Settings) -> Actor:
    """The operator, or with `--user NAME` that user (an admin when listed in RAGCHAT_ADMINS).
    With accounts on (RAGCHAT_AUTH), NAME must be one of them: a typo would own what it adds."""
    name: str | None = getattr(args, "user", None)
    if name is not None and settings.auth:
        from webapp.auth import parse_users

        users = parse_users(settings.auth)
        if name not in users:
            raise UserError(f"user {name!r} is not in RAGCHAT_AUTH ({', '.join(sorted(users))})")
    return Actor() if name is None else Actor(name, admin=name in settings.admin_users)


def scope_of(args: argparse.Namespace) -> Scope | None:
    """The scope `ask --collection/--doc` names; None without them (a continued conversation
    searches the scope it remembers, a new one everything the user may see)."""
    if not args.collections and not args.documents:
        return None
    return Scope(tuple(args.collections), tuple(args.documents))


def collections_line(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "(none)"


# -- ragchat collections ----------------------------------------------------------------------


def collection_json(record: CollectionRecord) -> dict[str, Any]:
    """A collection as `--json` prints it: its record's fields, the date in ISO 8601."""
    data = asdict(record)
    data["members"] = list(record.members)
    data["created_at"] = record.created_at.isoformat() if record.created_at else None
    return data


def _owner(record: CollectionRecord) -> str:
    return record.owner or "(operator)"


def _list(engine: Engine, args: argparse.Namespace, actor: Actor) -> int:
    found = engine.collections.list(actor)
    if args.json:
        print(json.dumps([collection_json(c) for c in found], ensure_ascii=False, indent=2))
        return 0
    print(f"{'name':<32} {'visibility':<10} {'owner':<16} {'docs':>5}  members / description")
    for c in found:
        about = ", ".join(c.members) if c.members else c.description
        print(
            f"{c.name[:32]:<32} {c.visibility:<10} {_owner(c)[:16]:<16} {c.document_count:>5}"
            f"  {' '.join(about.split())[:60]}"
        )
    return 0


def _show(engine: Engine, args: argparse.Namespace, actor: Actor) -> int:
    record = engine.collections.get(args.name, actor)
    inside = engine.collections.document_ids(record.id)
    docs = [d for d in engine.documents(actor) if d.id in inside]
    if args.json:
        data = {
            **collection_json(record),
            "documents": [serialize.document(d) for d in docs],
        }
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return 0
    print(f"{record.name} ({record.visibility}, owner {_owner(record)}, id {record.id})")
    if record.members:
        print(f"  Members:     {', '.join(record.members)}")
    if record.description:
        print(f"  Description: {' '.join(record.description.split())}")
    if not docs:
        print("  No documents. Add some with: ragchat ingest --collection NAME PATH")
    for d in docs:
        print(f"  {d.id[:8]}  {d.name}  (v{d.version}, {d.chunk_count} chunks)")
    return 0


def _create(engine: Engine, args: argparse.Namespace, actor: Actor) -> int:
    members = args.members or []
    # naming members is sharing: --member alone means --visibility shared
    visibility = args.visibility or ("shared" if members else "private")
    record = engine.collections.create(
        args.name,
        actor,
        description=args.description or "",
        visibility=visibility,
        members=members,
    )
    shared = f" with {', '.join(record.members)}" if record.members else ""
    print(f"created collection {record.name} ({record.visibility}{shared}, id {record.id})")
    return 0


def _edit(engine: Engine, args: argparse.Namespace, actor: Actor) -> int:
    if args.description is None and args.visibility is None and args.members is None:
        raise CollectionError("nothing to change: give --description, --visibility or --member")
    visibility = args.visibility or ("shared" if args.members else None)
    record = engine.collections.update(
        args.name,
        actor,
        description=args.description,
        visibility=visibility,
        members=args.members,
    )
    shared = f" with {', '.join(record.members)}" if record.members else ""
    print(f"changed collection {record.name} ({record.visibility}{shared})")
    return 0


def _rename(engine: Engine, args: argparse.Namespace, actor: Actor) -> int:
    old = engine.collections.get(args.name, actor)
    record = engine.collections.update(old.id, actor, name=args.new_name)
    print(f"renamed collection {old.name} to {record.name}")
    return 0


def _delete(engine: Engine, args: argparse.Namespace, actor: Actor) -> int:
    record, removed = engine.delete_collection(
        args.name, actor=actor, delete_documents=args.delete_documents
    )
    print(f"deleted collection {record.name} ({record.id})")
    for d in removed:
        print(f"deleted {d.name} ({d.id[:8]}, {d.chunk_count} chunks): in no other collection")
    return 0


def _documents(engine: Engine, keys: Sequence[str], actor: Actor) -> list[DocumentRecord]:
    """The documents named (names or id prefixes) that `actor` may see; not found otherwise."""
    found = {}
    for key in keys:
        record = engine.document(key, actor=actor)
        found[record.id] = record
    return list(found.values())


def _add(engine: Engine, args: argparse.Namespace, actor: Actor) -> int:
    record = engine.collections.get(args.name, actor)
    docs = _documents(engine, args.documents, actor)
    new = engine.collections.add_documents(record.id, [d.id for d in docs], actor)
    already = len(docs) - new
    note = f" ({already} already there)" if already else ""
    print(f"added {new} document(s) to {record.name}{note}")
    return 0


def _remove(engine: Engine, args: argparse.Namespace, actor: Actor) -> int:
    record = engine.collections.get(args.name, actor)
    docs = _documents(engine, args.documents, actor)
    gone = engine.collections.remove_documents(record.id, [d.id for d in docs], actor)
    absent = len(docs) - gone
    note = f" ({absent} were not in it)" if absent else ""
    print(f"removed {gone} document(s) from {record.name}{note}")
    return 0


ACTIONS = {
    "list": _list,
    "show": _show,
    "create": _create,
    "edit": _edit,
    "rename": _rename,
    "delete": _delete,
    "add": _add,
    "remove": _remove,
}


def cmd_collections(args: argparse.Namespace, settings: Settings) -> int:
    from webapp.cli import _engine

    engine = _engine(settings)
    return ACTIONS[args.collections_cmd](engine, args, actor_of(args, settings))


def _sharing_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--description", default=None, metavar="TEXT")
    parser.add_argument(
        "--visibility",
        choices=VISIBILITIES,
        default=None,
        help="private: its owner only; shared: its owner and --member users; everyone"
        " (default: private, or shared when --member is given)",
    )
    parser.add_argument(
        "--member",
        dest="members",
        type=user_name,
        nargs="+",
        action="extend",
        default=None,
        metavar="USER",
        help="a user a shared collection is shared with (repeatable)",
    )


def add_collections_command(sub: Any) -> None:
    """Register `ragchat collections` on the command line's subparsers."""
    who = argparse.ArgumentParser(add_help=False)
    add_user_argument(who)
    col = sub.add_parser(
        "collections", help="list, show, create, change, fill or delete collections of documents"
    )
    csub = col.add_subparsers(dest="collections_cmd", required=True)

    def command(name: str, text: str, *, key: bool = True) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = csub.add_parser(name, help=text, parents=[who])
        if key:
            what = (
                "the new collection's name" if name == "create" else "the collection's name or id"
            )
            parser.add_argument("name", type=a_name, help=what)
        return parser

    command("list", "the collections you may see, with their document counts", key=False)
    csub.choices["list"].add_argument("--json", action="store_true")
    command("show", "a collection and its documents").add_argument("--json", action="store_true")
    _sharing_arguments(command("create", "make a collection (yours with --user)"))
    _sharing_arguments(command("edit", "change a collection's description or who sees it"))
    command("rename", "rename a collection").add_argument("new_name", type=a_name)
    command("delete", "delete a collection (not Default)").add_argument(
        "--delete-documents",
        action="store_true",
        help="also delete its documents that are in no other collection (without it, such a"
        " collection is not deleted)",
    )
    for name, text in (("add", "put documents in"), ("remove", "take documents out of")):
        command(name, f"{text} a collection").add_argument(
            "documents", nargs="+", type=a_name, metavar="DOC", help="document names or ids"
        )
    col.set_defaults(func=cmd_collections)
