"""What an exception means to the person at the terminal: one line and an exit code."""

from __future__ import annotations

import errno
import socket

from sensors.errors import CivicPulseError

USAGE = 2  # bad flags, arguments, URLs or configuration: the command line must change
RUNTIME = 1  # a service, file or the data let the command down

PG_HINT = (
    "is PostgreSQL running there? `civicpulse run` starts one; "
    "--database-url or CIVICPULSE_DATABASE_URL says where"
)
KAFKA_HINT = "is Kafka running? pass --kafka-bootstrap or set CIVICPULSE_KAFKA_BOOTSTRAP"
_FILE_ERRORS = {
    errno.ENOENT: "no such file or directory",
    errno.EEXIST: "already exists: choose another path or remove it",
    errno.EISDIR: "is a directory: give a file",
    errno.ENOTDIR: "a part of the path is not a directory",
    errno.EACCES: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device",
}


def first_line(exc: BaseException) -> str:
    """The first non-empty line of the exception's message, or its type's name."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def _module(exc: BaseException) -> str:
    return type(exc).__module__.split(".")[0]


def explain(exc: BaseException) -> tuple[str, int]:
    """One line saying what went wrong and what to do, and the exit code (1 or 2)."""
    text = first_line(exc)
    if isinstance(exc, RecursionError):
        return "the input is nested too deeply to read — is it the right file?", RUNTIME
    if _module(exc) == "psycopg":
        return _database(exc, text)
    if _module(exc) in ("kafka", "aiokafka"):
        return f"Kafka: {text} — {KAFKA_HINT}", RUNTIME
    if type(exc).__name__ == "StoreUnavailable":
        return f"{text} — {PG_HINT}", RUNTIME
    if type(exc).__name__ == "ThresholdError":
        return f"{text} — fix the thresholds file (see config/thresholds.example.toml)", USAGE
    if isinstance(exc, CivicPulseError):
        return text, RUNTIME
    if isinstance(exc, (ConnectionError, socket.gaierror, TimeoutError)):
        return f"cannot connect: {text} — is the service running at the URL given?", RUNTIME
    if isinstance(exc, OSError):
        return _os_error(exc), RUNTIME
    if isinstance(exc, UnicodeError):
        return f"{text} — the input is not UTF-8 text", RUNTIME
    if isinstance(exc, ValueError):
        return text, USAGE
    if isinstance(exc, MemoryError):
        return "out of memory — is the input far larger than expected?", RUNTIME
    return (
        f"unexpected {type(exc).__name__}: {text} — a bug: rerun with --debug and report it",
        RUNTIME,
    )


def _database(exc: BaseException, text: str) -> tuple[str, int]:
    name = type(exc).__name__
    if name == "ProgrammingError" and "connection info string" in text:
        return (
            f"not a database URL ({text}) — use postgresql://user@host:port/database",
            USAGE,
        )
    if name == "UndefinedTable":
        return f"{text} — run `civicpulse db migrate` first", RUNTIME
    if name == "OperationalError":
        return f"{text} — {PG_HINT}", RUNTIME
    return f"database: {text}", RUNTIME


def _os_error(exc: OSError) -> str:
    what = _FILE_ERRORS.get(exc.errno or 0, exc.strerror or first_line(exc))
    where = exc.filename if exc.filename is not None else None
    if where is None:
        return f"{what}"
    other = f" → {exc.filename2}" if exc.filename2 is not None else ""
    return f"{where}{other}: {what}"
