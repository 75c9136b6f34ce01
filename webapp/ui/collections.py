"""The collections panel of the knowledge base tab (list, create, rename, edit, delete, add or
move documents) and the chat's scope picker (which collections and documents a question searches).

The picker's values are readable labels, "Collection: Handbook" and "Document: x.pdf"; a scope
keeps names, so the log, the sources panel and a reloaded conversation say what was searched
without a look-up. Every read and change goes through the engine as the page's user (`Actor`):
a collection or document they may not see is never listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from rag_core.config import Settings
from rag_core.engine import Engine
from rag_core.errors import ConversationNotFoundError, UserError
from rag_core.types import DEFAULT_COLLECTION, Actor, CollectionRecord, DocumentRecord, Scope
from webapp.render import esc, render_collections
from webapp.render.text import plural
from webapp.ui.common import State, actor_of, notify, skips, user_of, warn

COLLECTION_PREFIX = "Collection: "
DOCUMENT_PREFIX = "Document: "
# refresh() updates: collections table, managed collection, upload target, documents to file,
# chat scope picker
REFRESH_OUTPUTS = 5


def scope_from_picker(values: Sequence[str] | str | None) -> Scope:
    """The scope the picker's labels name (none: everything the user may see)."""
    if isinstance(values, str):
        values = [values] if values else []
    collections: list[str] = []
    documents: list[str] = []
    for value in values or []:
        text = str(value).strip()
        if text.startswith(COLLECTION_PREFIX):
            collections.append(text[len(COLLECTION_PREFIX) :].strip())
        elif text.startswith(DOCUMENT_PREFIX):
            documents.append(text[len(DOCUMENT_PREFIX) :].strip())
        elif text:
            collections.append(text)  # a program may send a bare collection name
    return Scope(tuple(dict.fromkeys(collections)), tuple(dict.fromkeys(documents)))


def picker_from_scope(scope: Scope) -> list[str]:
    """The picker's labels for a remembered scope."""
    return [COLLECTION_PREFIX + c for c in scope.collections] + [
        DOCUMENT_PREFIX + d for d in scope.documents
    ]


def _names(collections: Sequence[CollectionRecord]) -> list[str]:
    return [c.name for c in collections]


def _scope_labels(
    collections: Sequence[CollectionRecord], docs: Sequence[DocumentRecord]
) -> list[str]:
    names = dict.fromkeys(d.name for d in docs)
    return [COLLECTION_PREFIX + c.name for c in collections] + [DOCUMENT_PREFIX + n for n in names]


def _kept(value: Any, allowed: Sequence[str]) -> list[str]:
    """The picked values that are still offered."""
    picked = value if isinstance(value, list) else [value] if value else []
    return [v for v in picked if v in allowed]


def _users(members: str | None) -> list[str]:
    """The user names of a members box: separated by commas or spaces."""
    return [u for u in (members or "").replace(",", " ").split() if u]


def _note(text: str) -> str:
    return f'<p class="rc-note">{esc(text)}</p>'


@dataclass(eq=False)
class CollectionsController:
    """Collection events and the scope picker; the documents table itself is the knowledge
    controller's (its `catalog` shows each document's collections)."""

    engine: Engine
    settings: Settings

    def _actor(self, request: gr.Request | None) -> Actor:
        return actor_of(self.settings, request)

    def _listed(self, actor: Actor) -> tuple[list[CollectionRecord], list[DocumentRecord]]:
        return self.engine.collections.list(actor), self.engine.documents(actor)

    # -- what the page shows -------------------------------------------------------------------

    def scope_choices(self, request: gr.Request | None) -> list[str]:
        """The scope picker's labels: every collection, then every document, the user may see."""
        return _scope_labels(*self._listed(self._actor(request)))

    def refresh(
        self, managed: Any, target: Any, docs: Any, scope: Any, request: gr.Request
    ) -> tuple[Any, ...]:
        """Redraw the panel and every picker after a change, keeping the picks still valid."""
        actor = self._actor(request)
        collections, documents = self._listed(actor)
        names = _names(collections)
        doc_choices = [(f"{d.name} (v{d.version})", d.id) for d in documents]
        ids = [d.id for d in documents]
        scope_choices = _scope_labels(collections, documents)
        default = next((c.name for c in collections if c.id == DEFAULT_COLLECTION), None)
        target_value = target if target in names else default
        return (
            render_collections(collections, actor),
            gr.update(choices=names, value=managed if managed in names else None),
            gr.update(choices=names, value=target_value),
            gr.update(choices=doc_choices, value=_kept(docs, ids)),
            gr.update(choices=scope_choices, value=_kept(scope, scope_choices)),
        )

    def conversation_scope(self, state: State, request: gr.Request) -> dict[str, Any]:
        """The picker after a conversation is opened (its remembered scope) or left (empty:
        everything)."""
        conv = (state or {}).get("conv")
        choices = self.scope_choices(request)
        scope = Scope()
        if conv:
            try:
                scope = self.engine.log.get_conversation(conv, user_of(request)).scope
            except ConversationNotFoundError:
                scope = Scope()
        value = picker_from_scope(scope)
        # a remembered collection since renamed or deleted still shows what was searched
        return gr.update(choices=list(dict.fromkeys([*choices, *value])), value=value)

    # -- events --------------------------------------------------------------------------------

    def create(
        self, name: str, description: str, visibility: str, members: str, request: gr.Request
    ) -> tuple[Any, ...]:
        """A new collection owned by the page's user: (status, managed collection, and the name
        and description boxes, emptied)."""
        actor = self._actor(request)
        users = _users(members)
        try:
            record = self.engine.collections.create(
                name or "",
                actor,
                description=description or "",
                visibility=visibility or "private",
                members=users if visibility == "shared" else (),
            )
        except UserError as exc:
            warn(str(exc))
            return skips(4)
        notify(f"Collection {record.name} created.")
        names = _names(self.engine.collections.list(actor))
        return (
            _note(f"Created {record.name} ({record.visibility})."),
            gr.update(choices=names, value=record.name),
            "",
            "",
        )

    def rename(self, managed: str | None, new_name: str, request: gr.Request) -> tuple[Any, ...]:
        """Rename the picked collection: (status, managed collection, new-name box)."""
        if not managed:
            warn("Pick a collection to rename.")
            return skips(3)
        actor = self._actor(request)
        try:
            record = self.engine.collections.update(managed, actor, name=new_name or "")
        except UserError as exc:
            warn(str(exc))
            return skips(3)
        names = _names(self.engine.collections.list(actor))
        message = _note(f"Renamed {managed} to {record.name}.")
        return message, gr.update(choices=names, value=record.name), ""

    def edit_fields(self, managed: str | None, request: gr.Request) -> tuple[str, str, str]:
        """The edit boxes for the picked collection: its description, visibility and members
        (blank for none, or one gone since it was picked)."""
        if not managed:
            return "", "private", ""
        try:
            record = self.engine.collections.get(managed, self._actor(request))
        except UserError:
            return "", "private", ""
        return record.description, record.visibility, ", ".join(record.members)

    def save_edit(
        self,
        managed: str | None,
        description: str,
        visibility: str,
        members: str,
        request: gr.Request,
    ) -> tuple[Any, ...]:
        """Change the picked collection's description, visibility and members (its owner or an
        admin only): (status, and the three edit boxes as saved). Members count only for a
        shared collection, as when creating one."""
        if not managed:
            warn("Pick a collection to edit.")
            return skips(4)
        visibility = visibility or "private"
        users = _users(members) if visibility == "shared" else []
        try:
            record = self.engine.collections.update(
                managed,
                self._actor(request),
                description=description or "",
                visibility=visibility,
                members=users,
            )
        except UserError as exc:
            warn(str(exc))
            return skips(4)
        shared = f" with {', '.join(record.members)}" if record.members else ""
        notify(f"Collection {record.name} saved.")
        return (
            _note(f"Saved {record.name} ({record.visibility}{shared})."),
            record.description,
            record.visibility,
            ", ".join(record.members),
        )

    def delete(
        self, managed: str | None, with_documents: bool, request: gr.Request
    ) -> tuple[Any, ...]:
        """Delete the picked collection; its documents found nowhere else go too only when the
        box is ticked (else the engine's refusal is shown). (status, managed collection)"""
        if not managed:
            warn("Pick a collection to delete.")
            return skips(2)
        actor = self._actor(request)
        try:
            record, removed = self.engine.delete_collection(
                managed, actor=actor, delete_documents=bool(with_documents)
            )
        except UserError as exc:
            warn(str(exc))
            return skips(2)
        gone = f" and {plural(len(removed), 'document')} found nowhere else" if removed else ""
        notify(f"Collection {record.name} deleted.")
        names = _names(self.engine.collections.list(actor))
        return _note(f"Deleted {record.name}{gone}."), gr.update(choices=names, value=None)

    def add_documents(self, managed: str | None, docs: Any, request: gr.Request) -> Any:
        """Add the picked documents to the picked collection (they stay where they are too)."""
        return self._file(managed, docs, request, move=False)

    def move_documents(self, managed: str | None, docs: Any, request: gr.Request) -> Any:
        """Move the picked documents to the picked collection: out of the other collections
        the user manages (one they may only read keeps them, and says so)."""
        return self._file(managed, docs, request, move=True)

    def _file(self, managed: str | None, docs: Any, request: gr.Request, *, move: bool) -> Any:
        ids = [str(d) for d in (docs if isinstance(docs, list) else [docs] if docs else [])]
        if not managed or not ids:
            warn("Pick a collection and the documents to put in it.")
            return gr.skip()
        actor = self._actor(request)
        try:
            target = self.engine.collections.get(managed, actor)
            for doc_id in ids:
                self.engine.document(doc_id, actor=actor)  # one they may see
            added = self.engine.collections.add_documents(target.id, ids, actor)
            kept = self._take_out(ids, target, actor) if move else []
        except UserError as exc:
            warn(str(exc))
            return gr.skip()
        verb = "Moved" if move else "Added"
        text = f"{verb} {plural(len(ids), 'document')} to {target.name} ({added} new there)."
        if kept:
            text += f" Still also in {', '.join(sorted(set(kept)))} (not yours to change)."
        return _note(text)

    def _take_out(self, ids: list[str], target: CollectionRecord, actor: Actor) -> list[str]:
        """Remove `ids` from every other visible collection; the names of those kept back."""
        visible = {c.name: c for c in self.engine.collections.list(actor)}
        kept: list[str] = []
        for doc_id, names in self.engine.collections.memberships(ids).items():
            for name in names:
                other = visible.get(name)
                if other is None or other.id == target.id:
                    continue
                if not actor.may_manage(other):
                    kept.append(other.name)
                    continue
                self.engine.collections.remove_documents(other.id, [doc_id], actor)
        return kept
