"""SQL persistence: the document registry and the conversation log (SQLAlchemy + Alembic)."""

from rag_core.db.database import Database
from rag_core.db.log import ConversationLog
from rag_core.db.records import ConversationRecord, TurnRecord
from rag_core.db.registry import DocumentRegistry

__all__ = ["ConversationLog", "ConversationRecord", "Database", "DocumentRegistry", "TurnRecord"]
