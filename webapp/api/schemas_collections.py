"""The request and response bodies of /api/collections: named groups of documents with an owner
and a visibility (private, shared with members, or everyone)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rag_core.types import CollectionRecord
from webapp.api.schemas import DocumentOut

VisibilityName = Literal["private", "shared", "everyone"]
_VISIBILITY_HELP = (
    "private (its owner only), shared (its owner and `members`) or everyone (every user)"
)
_MEMBERS_HELP = "the users a 'shared' collection is shared with (empty for the other visibilities)"


class CollectionOut(BaseModel):
    """A collection the caller may see, with how many ready documents it holds."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str = Field(description="unique, case-insensitively; also the /v1 model `ragchat/NAME`")
    description: str
    owner: str | None = Field(description="who manages it; null: an operator (Default too)")
    visibility: VisibilityName = Field(description=_VISIBILITY_HELP)
    members: list[str] = Field(description=_MEMBERS_HELP)
    document_count: int
    created_at: datetime | None

    @model_validator(mode="before")
    @classmethod
    def _from_record(cls, data: Any) -> Any:
        """A CollectionRecord (its tuple of members becomes a list)."""
        if isinstance(data, CollectionRecord):
            return {**data.__dict__, "members": list(data.members)}
        return data


class CollectionDetail(CollectionOut):
    """A collection with the documents in it."""

    documents: list[DocumentOut]


class CollectionCreate(BaseModel):
    """A new collection, owned by the caller."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, examples=["Handbooks"])
    description: str = Field("", max_length=2000)
    visibility: VisibilityName = Field("private", description=_VISIBILITY_HELP)
    members: list[str] = Field(default_factory=list, max_length=1000, description=_MEMBERS_HELP)


class CollectionUpdate(BaseModel):
    """What to change; omitted fields stay as they are. Only the collection's owner or an admin
    (RAGCHAT_ADMINS) may change it."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=100, description="a new name")
    description: str | None = Field(None, max_length=2000)
    visibility: VisibilityName | None = Field(None, description=_VISIBILITY_HELP)
    members: list[str] | None = Field(None, max_length=1000, description=_MEMBERS_HELP)


class CollectionDocumentsRequest(BaseModel):
    """Documents to put in a collection (names or ids)."""

    model_config = ConfigDict(extra="forbid")

    documents: list[str] = Field(min_length=1, max_length=1000, examples=[["manual.pdf"]])


class CollectionDocumentsChanged(BaseModel):
    """A collection after documents were added to it or removed from it."""

    collection: CollectionOut
    changed: int = Field(description="documents added (or removed) that were not there already")


class CollectionDeleted(BaseModel):
    """A deleted collection and the documents deleted with it (`delete_documents=true`)."""

    collection: CollectionOut
    deleted_documents: list[DocumentOut]
