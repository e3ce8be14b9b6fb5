"""The bridge's copy of the device registry, reloaded in the background, for ingest's check.

With ``CIVICPULSE_AUTH=required`` the bridge checks every message as the embedded engine does:
one from an unknown or disabled device (a broker configured open, an ACL gone stale) is
dead-lettered as ``unknown_device`` / ``device_disabled``, never stored. Until the registry
has been loaded once (the database down at start), nothing is refused here: the broker's own
authentication still applies, and the bridge says so in its log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sensors.errors import RejectedPayload
from sensors.topics import parse_topic
from trust import Directory, refusal

log = logging.getLogger(__name__)


class RegistryWatch:
    """A registry snapshot for ``refusal(topic)``, reloaded every ``interval_s``."""

    def __init__(self, load: Callable[[], Directory], interval_s: float = 2.0) -> None:
        self._load = load
        self._interval_s = interval_s
        self._directory: Directory | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def refresh(self) -> bool:
        """Load once now; whether it worked (the last snapshot is kept if not)."""
        try:
            directory = self._load()
        except Exception as exc:
            if not self._failing:
                keeping = "keeping the last" if self._directory else "not checking devices yet"
                log.warning("could not load the device registry (%s): %s", keeping, exc)
            self._failing = True
            return False
        if self._failing:
            log.info("device registry loaded again")
        self._failing = False
        self._directory = directory
        return True

    def refusal(self, topic: str) -> str | None:
        """``unknown_device`` / ``device_disabled`` for a message on ``topic``, or None."""
        directory = self._directory
        if directory is None:
            return None
        try:
            address = parse_topic(topic)
        except RejectedPayload:
            return None  # the decoder dead-letters it as bad_topic
        return refusal(directory.device(address.sensor_id), topic)

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="civicpulse-registry", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._interval_s + 1)
