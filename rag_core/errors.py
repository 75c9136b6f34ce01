"""A small error hierarchy: UserError and its children carry a message fit to show a person."""

from __future__ import annotations


class RagError(Exception):
    """Base of every error ragchat raises on purpose."""


class UserError(RagError):
    """Something the user can fix; the message says what and where, never a traceback."""


class IngestError(UserError):
    """A file could not be ingested. `name` is the file as the user called it."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class UnsupportedFormatError(IngestError):
    """The file's content is not one of the supported formats."""


class EmptyDocumentError(IngestError):
    """The file holds no extractable text."""


class DocumentNotFoundError(UserError):
    """A document name or id that the registry does not know."""


class CollectionNotFoundError(DocumentNotFoundError):
    """A collection name or id that does not exist, or that the user may not see."""


class CollectionError(UserError):
    """A collection cannot be made or changed as asked (a bad name, visibility, member, ...)."""


class CollectionConflictError(CollectionError):
    """The change clashes with what exists: a name taken, documents it would leave in no
    collection, the Default collection's rules."""


class PermissionDeniedError(UserError):
    """The user may not change this (e.g. another user's document)."""


class ConversationNotFoundError(UserError):
    """A conversation id that does not exist (or belongs to someone else)."""


class ConfigError(UserError):
    """A setting has a value that cannot work; the message names the setting and the value."""


class ModelLoadError(RagError):
    """A model could not be found or loaded."""


class GenerationError(RagError):
    """The generator failed while producing an answer."""


class InvalidQuestionError(UserError):
    """The question cannot be answered as given (empty, too long, ...)."""


class InvalidOptionError(InvalidQuestionError):
    """An answer option (retrieval mode, top_k, answer mode, ...) has a value that cannot work."""


class IndexMismatchError(ConfigError):
    """The vector index was built by another embedder than the configured one."""


class IndexChangedError(UserError):
    """A reindex swapped the vector index while files were being added to the old one."""
