"""The embedded engine: in-process MQTT broker, durable group commit, embedded PostgreSQL."""

from embedded.auth import (
    DirectoryAuthPlugin,
    DirectoryLoader,
    DirectoryRefresher,
    DirectoryTopicPlugin,
    Gate,
    empty_directory,
)
from embedded.broker import DurableBroker, DurableHandler, broker_config
from embedded.committer import (
    CommitStats,
    EngineStopped,
    GroupCommitter,
    NotStored,
)
from embedded.engine import EmbeddedConfig, EmbeddedEngine, ListenError
from embedded.postgres import EmbeddedPostgres, start_embedded_postgres
from sensors.deadletter import deadletter_ref  # the key both engines dedupe dead letters by

__all__ = [
    "CommitStats",
    "DirectoryAuthPlugin",
    "DirectoryLoader",
    "DirectoryRefresher",
    "DirectoryTopicPlugin",
    "DurableBroker",
    "DurableHandler",
    "EmbeddedConfig",
    "EmbeddedEngine",
    "EmbeddedPostgres",
    "EngineStopped",
    "Gate",
    "GroupCommitter",
    "ListenError",
    "NotStored",
    "broker_config",
    "deadletter_ref",
    "empty_directory",
    "start_embedded_postgres",
]
