"""Collections in the registry: named groups of documents with an owner and a visibility.

A document belongs to one or more collections; one added without a collection joins 'Default'
(everyone). A user sees a document when it is in a collection they may see (`Actor.may_see`), so
every path that lists, downloads, deletes or retrieves asks `visible_document_ids` first. A
collection the user may not see is reported as unknown, like a name that does not exist.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Collection, Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from rag_core.db.database import Database
from rag_core.db.models import (
    CollectionDocumentRow,
    CollectionMemberRow,
    CollectionRow,
    DocumentRow,
)
from rag_core.errors import (
    CollectionConflictError,
    CollectionError,
    CollectionNotFoundError,
    DocumentNotFoundError,
    PermissionDeniedError,
)
from rag_core.types import (
    DEFAULT_COLLECTION,
    VISIBILITIES,
    Actor,
    CollectionRecord,
    Scope,
    Visibility,
)

MAX_NAME = 100
MAX_DESCRIPTION = 2000
_USER = re.compile(r"[^\s,]{1,255}")
DocumentFinder = Callable[[str], str]  # a document's name or id -> its id (or not found)


def _record(row: CollectionRow, count: int = 0) -> CollectionRecord:
    return CollectionRecord(
        id=row.id,
        name=row.name,
        description=row.description or "",
        owner=row.owner,
        visibility=row.visibility,  # type: ignore[arg-type]  # the check constraint holds it
        members=tuple(m.user for m in row.members),
        document_count=count,
        created_at=row.created_at,
    )


def check_name(name: str) -> str:
    """A collection name as stored: trimmed, 1 to 100 characters, no control characters, and
    not 'ragchat/...' style paths (the name is also a `/v1` model id)."""
    clean = " ".join((name or "").split())
    if not clean:
        raise CollectionError("A collection needs a name")
    if len(clean) > MAX_NAME:
        raise CollectionError(
            f"Collection name too long ({len(clean)} characters, at most {MAX_NAME})"
        )
    if "/" in clean or any(ord(ch) < 32 for ch in clean):
        raise CollectionError(
            f"Collection name {clean!r} may not contain '/' or control characters"
        )
    return clean


def check_visibility(visibility: str, members: Sequence[str]) -> tuple[Visibility, tuple[str, ...]]:
    if visibility not in VISIBILITIES:
        raise CollectionError(
            f"Unknown visibility {visibility!r}; use one of {', '.join(VISIBILITIES)}"
        )
    users = tuple(dict.fromkeys(u.strip() for u in members if u.strip()))
    bad = [u for u in users if not _USER.fullmatch(u)]
    if bad:
        raise CollectionError(f"Not a user name: {bad[0]!r}")
    if users and visibility != "shared":
        raise CollectionError(f"Members are for a 'shared' collection; this one is {visibility!r}")
    if visibility == "shared" and not users:
        raise CollectionError("A 'shared' collection needs the users it is shared with")
    return visibility, users


class Collections:
    """The collections tables behind a small API that returns CollectionRecord objects."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- reading ------------------------------------------------------------------------------

    def list(self, actor: Actor) -> builtins.list[CollectionRecord]:
        """The collections `actor` may see, Default first, then by name, with document counts."""
        counts = self._counts()
        with self.db.read_session() as s:
            seen, _ = self._seen(s, actor)
            found = [_record(r, counts.get(r.id, 0)) for r in seen]
        return sorted(found, key=lambda c: (c.id != DEFAULT_COLLECTION, c.name.casefold()))

    @staticmethod
    def _seen(s: Session, actor: Actor) -> tuple[builtins.list[CollectionRow], int]:
        """The collection rows `actor` may see (members loaded), and how many they may not."""
        rows = s.scalars(sa.select(CollectionRow).options(selectinload(CollectionRow.members)))
        seen, hidden = [], 0
        for row in rows:
            if actor.may_see(_record(row)):
                seen.append(row)
            else:
                hidden += 1
        return seen, hidden

    def get(self, name_or_id: str, actor: Actor) -> CollectionRecord:
        """A collection by id or name (case-insensitive); CollectionNotFoundError when there is
        none, or `actor` may not see it (the same answer: its existence is not revealed)."""
        key = " ".join((name_or_id or "").split())
        with self.db.read_session() as s:
            row = self._find(s, key)
            record = _record(row, self._counts(s, [row.id]).get(row.id, 0)) if row else None
        if record is None or not actor.may_see(record):
            names = ", ".join(repr(c.name) for c in self.list(actor)[:10])
            raise CollectionNotFoundError(f"No collection {key!r}; yours to search: {names}")
        return record

    @staticmethod
    def _find(s: Session, key: str) -> CollectionRow | None:
        stmt = sa.select(CollectionRow).options(selectinload(CollectionRow.members))
        row = s.scalars(stmt.where(CollectionRow.id == key)).first()
        if row is None:
            lowered = sa.func.lower(CollectionRow.name) == key.casefold()
            row = s.scalars(stmt.where(lowered)).first()
        return row

    def _counts(self, s: Session | None = None, ids: Sequence[str] | None = None) -> dict[str, int]:
        """Ready documents per collection."""
        stmt = (
            sa.select(CollectionDocumentRow.collection_id, sa.func.count())
            .join(DocumentRow, DocumentRow.id == CollectionDocumentRow.document_id)
            .where(DocumentRow.status == "ready")
            .group_by(CollectionDocumentRow.collection_id)
        )
        if ids is not None:
            stmt = stmt.where(CollectionDocumentRow.collection_id.in_(ids))
        if s is not None:
            return {cid: int(n) for cid, n in s.execute(stmt)}
        with self.db.read_session() as session:
            return {cid: int(n) for cid, n in session.execute(stmt)}

    def document_ids(self, collection_id: str) -> set[str]:
        """The ready documents in one collection."""
        stmt = (
            sa.select(CollectionDocumentRow.document_id)
            .join(DocumentRow, DocumentRow.id == CollectionDocumentRow.document_id)
            .where(
                CollectionDocumentRow.collection_id == collection_id,
                DocumentRow.status == "ready",
            )
        )
        with self.db.read_session() as s:
            return set(s.scalars(stmt))

    def memberships(self, document_ids: Iterable[str]) -> dict[str, builtins.list[str]]:
        """The names of the collections each document is in (for listings)."""
        wanted = sorted(set(document_ids))
        if not wanted:
            return {}
        stmt = (
            sa.select(CollectionDocumentRow.document_id, CollectionRow.name)
            .join(CollectionRow, CollectionRow.id == CollectionDocumentRow.collection_id)
            .where(CollectionDocumentRow.document_id.in_(wanted))
            .order_by(CollectionRow.name)
        )
        found: dict[str, builtins.list[str]] = {d: [] for d in wanted}
        with self.db.read_session() as s:
            for doc_id, name in s.execute(stmt):
                found[doc_id].append(name)
        return found

    def visible_document_ids(self, actor: Actor) -> frozenset[str] | None:
        """The ids of the documents `actor` may see; None when that is every document (the
        operator, an admin, or no collection hidden from this user: no filter is needed)."""
        if actor.sees_all:
            return None
        with self.db.read_session() as s:
            rows, hidden = self._seen(s, actor)
            seen = [r.id for r in rows]
            if not hidden:
                unfiled = s.scalar(
                    sa.select(sa.func.count())
                    .select_from(DocumentRow)
                    .where(~DocumentRow.id.in_(sa.select(CollectionDocumentRow.document_id)))
                )
                if not unfiled:
                    return None
            stmt = sa.select(CollectionDocumentRow.document_id).where(
                CollectionDocumentRow.collection_id.in_(seen)
            )
            return frozenset(s.scalars(stmt))

    def resolve(
        self, scope: Scope, actor: Actor, find_document: DocumentFinder
    ) -> frozenset[str] | None:
        """The document ids a question in `scope` searches for `actor`: the union of the scope's
        collections and single documents, each of which must be visible to them; with an empty
        scope, every document they may see (None: all of them)."""
        visible = self.visible_document_ids(actor)
        if scope.everything:
            return visible
        ids: set[str] = set()
        for key in scope.collections:
            ids |= self.document_ids(self.get(key, actor).id)
        for key in scope.documents:
            doc_id = find_document(key)
            if visible is not None and doc_id not in visible:
                raise DocumentNotFoundError(f"No document named {key!r} or with that id")
            ids.add(doc_id)
        return frozenset(ids)

    # -- changing -----------------------------------------------------------------------------

    def create(
        self,
        name: str,
        actor: Actor,
        *,
        description: str = "",
        visibility: str = "private",
        members: Sequence[str] = (),
    ) -> CollectionRecord:
        """A new collection owned by `actor` (an operator's has no owner)."""
        clean = check_name(name)
        vis, users = check_visibility(visibility, members)
        if len(description) > MAX_DESCRIPTION:
            raise CollectionError(f"Description too long (at most {MAX_DESCRIPTION} characters)")
        with self.db.session() as s:
            if self._find(s, clean) is not None:
                raise CollectionConflictError(f"A collection named {clean!r} already exists")
            row = CollectionRow(
                name=clean,
                description=description.strip(),
                owner=actor.name,
                visibility=vis,
                members=[CollectionMemberRow(user=u) for u in users],
            )
            s.add(row)
            s.flush()
            return _record(row)

    def update(
        self,
        name_or_id: str,
        actor: Actor,
        *,
        name: str | None = None,
        description: str | None = None,
        visibility: str | None = None,
        members: Sequence[str] | None = None,
    ) -> CollectionRecord:
        """Rename a collection, or change its description, visibility or members (its owner,
        an operator or an admin only)."""
        current = self.managed(name_or_id, actor, "change")
        clean = check_name(name) if name is not None else current.name
        vis, users = check_visibility(
            visibility or current.visibility,
            members
            if members is not None
            else (current.members if (visibility or current.visibility) == "shared" else ()),
        )
        if current.id == DEFAULT_COLLECTION and vis != "everyone":
            raise CollectionConflictError(
                "The Default collection is searched by everyone; it stays so"
            )
        with self.db.session() as s:
            clash = self._find(s, clean)
            if clash is not None and clash.id != current.id:
                raise CollectionConflictError(f"A collection named {clean!r} already exists")
            row = s.get(CollectionRow, current.id)
            assert row is not None
            row.name = clean
            if description is not None:
                row.description = description.strip()[:MAX_DESCRIPTION]
            row.visibility = vis
            row.members = [CollectionMemberRow(user=u) for u in users]
            s.flush()
        return self.get(current.id, actor)

    def delete(self, record: CollectionRecord) -> None:
        """Delete a collection that `deletable` returned, once the caller has dealt with its
        `orphans`; its members and memberships go with it (ON DELETE CASCADE)."""
        with self.db.session() as s:
            s.execute(sa.delete(CollectionRow).where(CollectionRow.id == record.id))

    def deletable(self, name_or_id: str, actor: Actor) -> CollectionRecord:
        """The collection, if `actor` may delete it (PermissionDeniedError; CollectionError for
        Default): asked before anything else, so no other refusal hides these."""
        record = self.managed(name_or_id, actor, "delete")
        if record.id == DEFAULT_COLLECTION:
            raise CollectionConflictError("The Default collection cannot be deleted")
        return record

    def orphans(self, collection_id: str) -> set[str]:
        """Documents of this collection found in no other (deleting it would strand them)."""
        others = sa.select(CollectionDocumentRow.document_id).where(
            CollectionDocumentRow.collection_id != collection_id
        )
        stmt = sa.select(CollectionDocumentRow.document_id).where(
            CollectionDocumentRow.collection_id == collection_id,
            CollectionDocumentRow.document_id.not_in(others),
        )
        with self.db.read_session() as s:
            return set(s.scalars(stmt))

    def add_documents(self, name_or_id: str, document_ids: Collection[str], actor: Actor) -> int:
        """Put documents in a collection `actor` may see (adding twice is a no-op); how many
        were new there. A collection shows its documents to all its readers, so a user files
        only their own documents and ones everyone may already see."""
        record = self.get(name_or_id, actor)
        with self.db.session() as s:
            if not actor.sees_all:
                self._check_filable(s, document_ids, actor)
            have = set(
                s.scalars(
                    sa.select(CollectionDocumentRow.document_id).where(
                        CollectionDocumentRow.collection_id == record.id
                    )
                )
            )
            new = sorted(set(document_ids) - have)
            s.add_all(CollectionDocumentRow(collection_id=record.id, document_id=d) for d in new)
        return len(new)

    @staticmethod
    def _check_filable(s: Session, document_ids: Collection[str], actor: Actor) -> None:
        public = (
            sa.select(CollectionDocumentRow.document_id)
            .join(CollectionRow, CollectionRow.id == CollectionDocumentRow.collection_id)
            .where(CollectionRow.visibility == "everyone")
        )
        rows = s.execute(
            sa.select(DocumentRow.name, DocumentRow.owner).where(
                DocumentRow.id.in_(sorted(document_ids)),
                DocumentRow.owner.is_distinct_from(actor.name),
                DocumentRow.id.not_in(public),
            )
        ).all()
        if rows:
            name, owner = sorted((n, o or "an operator") for n, o in rows)[0]
            raise PermissionDeniedError(
                f"Document {name!r} belongs to {owner} and not everyone may see it; only its"
                " owner or an admin (setting RAGCHAT_ADMINS) can add it to a collection"
            )

    def remove_documents(self, name_or_id: str, document_ids: Collection[str], actor: Actor) -> int:
        """Take documents out of a collection (its owner's, or an operator's or admin's right).
        A document must stay in at least one collection: move it, or delete it."""
        record = self.managed(name_or_id, actor, "remove documents from")
        wanted = set(document_ids)
        with self.db.session() as s:
            rows = s.execute(
                sa.select(CollectionDocumentRow.document_id, sa.func.count())
                .where(CollectionDocumentRow.document_id.in_(sorted(wanted)))
                .group_by(CollectionDocumentRow.document_id)
            ).all()
            last = sorted(d for d, n in rows if n <= 1)
            if last:
                names = s.scalars(sa.select(DocumentRow.name).where(DocumentRow.id.in_(last)))
                raise CollectionConflictError(
                    f"{', '.join(sorted(set(names)))}: in no other collection; add it to another"
                    " collection first, or delete the document"
                )
            deleted = s.execute(
                sa.delete(CollectionDocumentRow).where(
                    CollectionDocumentRow.collection_id == record.id,
                    CollectionDocumentRow.document_id.in_(sorted(wanted)),
                )
            )
            return int(getattr(deleted, "rowcount", 0) or 0)

    def managed(self, name_or_id: str, actor: Actor, action: str) -> CollectionRecord:
        """A collection `actor` may see and manage (its owner, an operator or an admin):
        not found, or PermissionDeniedError naming `action`."""
        record = self.get(name_or_id, actor)
        if not actor.may_manage(record):
            who = f"it belongs to {record.owner}" if record.owner else "an operator made it"
            raise PermissionDeniedError(
                f"Collection {record.name!r}: {who}; only its owner or an admin (setting"
                f" RAGCHAT_ADMINS) can {action} it"
            )
        return record
