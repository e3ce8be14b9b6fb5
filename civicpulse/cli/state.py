"""The state file a running ``run``/``demo`` leaves in its data dir, so other commands find it."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from civicpulse.redact import redact
from civicpulse.settings import PREFIX, default_data_dir

STATE_FILE = "civicpulse-state.json"


@dataclass(frozen=True, slots=True)
class PlatformState:
    """Where a running platform listens (URLs without passwords) and which process it is."""

    pid: int
    mode: str  # "run" or "demo"
    mqtt_url: str
    database_url: str
    data_dir: str
    started_at: str

    def discovered(self) -> dict[str, str]:
        """The settings it provides to other commands (``Settings`` field → value).

        A URL whose password was removed is left out: it would not log in.
        """
        urls = {"mqtt_url": self.mqtt_url, "database_url": self.database_url}
        return {k: v for k, v in urls.items() if ":***@" not in v}


def write_state(state: PlatformState) -> Path:
    """Write ``state`` (passwords removed) into its data dir, atomically, readable by all."""
    directory = Path(state.data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    clean = {k: redact(v) if isinstance(v, str) else v for k, v in asdict(state).items()}
    path = directory / STATE_FILE
    tmp = directory / f".{STATE_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(clean, indent=2) + "\n", encoding="utf-8")
    tmp.chmod(0o644)
    tmp.replace(path)
    return path


def remove_state(data_dir: Path | str, pid: int) -> None:
    """Remove the state file if it is still the one process ``pid`` wrote."""
    path = Path(data_dir) / STATE_FILE
    state = read_state(path)
    if state is not None and state.pid == pid:
        with contextlib.suppress(OSError):
            path.unlink()


def read_state(path: Path) -> PlatformState | None:
    """The state in ``path``, or ``None`` if there is none or it is unreadable."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return PlatformState(
            pid=int(raw["pid"]),
            mode=str(raw["mode"]),
            mqtt_url=str(raw["mqtt_url"]),
            database_url=str(raw["database_url"]),
            data_dir=str(raw["data_dir"]),
            started_at=str(raw["started_at"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running civicpulse process (not a reused pid of something else)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: assume it is the platform
    cmdline = Path(f"/proc/{pid}/cmdline")
    with contextlib.suppress(OSError):
        return b"civicpulse" in cmdline.read_bytes()
    return True


def search_dirs(explicit: Path | None, environ: Mapping[str, str]) -> list[Path]:
    """Where to look: ``--data-dir``, else CIVICPULSE_DATA_DIR, else run's then demo's default."""
    if explicit is not None:
        return [explicit]
    configured = environ.get(PREFIX + "DATA_DIR")
    if configured:
        return [Path(configured)]
    return [Path(default_data_dir()), Path(default_data_dir("civicpulse-demo"))]


def discover(dirs: list[Path]) -> tuple[PlatformState | None, list[str]]:
    """The first live platform's state in ``dirs``, and a note for each stale file passed."""
    notes: list[str] = []
    for directory in dirs:
        path = directory.expanduser() / STATE_FILE
        state = read_state(path)
        if state is None:
            continue
        if alive(state.pid):
            return state, notes
        notes.append(
            f"note: ignoring {path}: the civicpulse {state.mode} that wrote it"
            f" (pid {state.pid}) is no longer running"
        )
    return None, notes
