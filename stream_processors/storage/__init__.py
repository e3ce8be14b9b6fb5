"""PostgreSQL/TimescaleDB adapter: migrations and the batched, idempotent readings store."""

from stream_processors.storage.connection import StoreUnavailable, connect
from stream_processors.storage.deadletter_store import DeadLetterStore
from stream_processors.storage.migrations import Migration, applied_migrations, migrate, pending
from stream_processors.storage.readings_store import ReadingStore, WriteResult

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
]
