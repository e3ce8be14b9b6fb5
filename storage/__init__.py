"""PostgreSQL/TimescaleDB adapter: migrations and the batched, idempotent readings store."""

from storage.connection import StoreUnavailable, connect
from storage.deadletter_store import DeadLetterStore
from storage.migrations import Migration, applied_migrations, migrate, pending
from storage.readings_store import ReadingStore, WriteResult
from storage.retry import retry_while_unavailable
from storage.rule_settings import publish_thresholds

__all__ = [
    "DeadLetterStore",
    "Migration",
    "ReadingStore",
    "StoreUnavailable",
    "WriteResult",
    "applied_migrations",
    "connect",
    "migrate",
    "pending",
    "publish_thresholds",
    "retry_while_unavailable",
]
