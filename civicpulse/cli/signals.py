"""Long-running commands stop within seconds of SIGINT/SIGTERM, whatever they are waiting on."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

GRACE_S = 4.0  # a clean stop gets this long; then the process exits anyway
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_armed = threading.Lock()


def stop_deadline(signum: int, grace_s: float = GRACE_S) -> None:
    """Exit the process ``grace_s`` from now unless it has ended by then (first call only).

    Safe for every civicpulse service: a message is acknowledged only once it is stored (or
    in Kafka), so whatever a forced exit cuts short is redelivered by the broker.
    """
    if not _armed.acquire(blocking=False):
        return

    def expire() -> None:
        name = signal.Signals(signum).name
        sys.stderr.write(
            f"stopped: still busy {grace_s:.0f} s after {name}; exiting now "
            "(unacknowledged messages are redelivered)\n"
        )
        sys.stderr.flush()
        os._exit(128 + signum)

    timer = threading.Timer(grace_s, expire)
    timer.daemon = True
    timer.start()


def on_stop_signals(stop: Callable[[], None], grace_s: float = GRACE_S) -> None:
    """On SIGINT/SIGTERM run ``stop`` in a thread (never blocking the signal) under a deadline.

    A second signal exits at once.
    """
    requested = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        if requested.is_set():
            os._exit(128 + signum)
        requested.set()
        stop_deadline(signum, grace_s)
        threading.Thread(target=stop, name="civicpulse-stop", daemon=True).start()

    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)


def run_faust_worker(app: Any, loglevel: str) -> None:
    """Run a Faust worker whose SIGINT/SIGTERM also arm the stop deadline."""
    import faust

    class Worker(faust.Worker):
        def _on_sigint(self) -> None:
            stop_deadline(signal.SIGINT)
            super()._on_sigint()

        def _on_sigterm(self) -> None:
            stop_deadline(signal.SIGTERM)
            super()._on_sigterm()

    try:
        Worker(app, loglevel=loglevel.lower(), quiet=True).execute_from_commandline()
    except SystemExit as done:  # the worker has stopped cleanly: skip the interpreter's
        # teardown, where mode's closed event loop prints "Exception ignored" tracebacks
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(done.code if isinstance(done.code, int) else 1)
