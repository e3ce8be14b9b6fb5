"""The demo's display: a live view on a terminal, a plain line every few seconds when piped."""

from __future__ import annotations

import asyncio
import logging
import sys
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.live import Live

from civicpulse.cli.console import cli_name
from civicpulse.cli.demo_view import Snapshot, plain_line, view

if TYPE_CHECKING:
    from embedded import EmbeddedEngine

_ALERTS = """
SELECT opened_at, sensor_id, rule, severity, state FROM alerts
 ORDER BY opened_at DESC LIMIT 6
"""


def latest_alerts(url: str, previous: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """The newest alerts (anomalies, DAQI bands, stale sensors); the last answer on error."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            return conn.execute(_ALERTS).fetchall()
    except psycopg.Error:
        return previous


class LiveView:
    """``with LiveView(...) as v: await v.refresh(now)`` once a second."""

    def __init__(
        self,
        engine: EmbeddedEngine,
        bad_every: int,
        console: Console,
        plain_every_s: float = 10.0,
        api_url: str = "",
    ) -> None:
        self._engine = engine
        self._api_url = api_url
        self._bad_every = bad_every
        self._console = console
        self._plain_every_s = plain_every_s
        self._cli = cli_name()
        self._alerts: list[tuple[object, ...]] = []
        self._last: tuple[int, float] | None = None
        self._printed_at: float | None = None
        self._live: Live | None = None
        self._streams: list[tuple[logging.StreamHandler[TextIO], TextIO]] = []

    @property
    def interactive(self) -> bool:
        """A live view on a terminal; plain lines otherwise."""
        return self._console.is_terminal

    def snapshot(self, now: float) -> Snapshot:
        """The engine's figures now (the rate since the previous snapshot)."""
        c = self._engine.committer.stats
        p = self._engine.committer.pipeline.stats
        per_s = 0.0
        if self._last is not None and now > self._last[1]:
            per_s = (p.stored - self._last[0]) / (now - self._last[1])
        self._last = (p.stored, now)
        return Snapshot(
            mqtt_url=self._engine.mqtt_url,
            database_url=self._engine.database_url,
            messages=c.messages,
            stored=p.stored,
            per_s=per_s,
            duplicates=p.duplicates,
            rejected=c.rejected.copy(),
            commits=c.batches,
            last_commit_ms=c.last_commit_s * 1000,
            alerts=self._alerts,
            bad_every=self._bad_every,
            cli=self._cli,
            api_url=self._api_url,
        )

    async def refresh(self, now: float) -> None:
        """Read the figures and the newest alerts; redraw, or print a line when one is due."""
        url = self._engine.database_url
        self._alerts = await asyncio.to_thread(latest_alerts, url, self._alerts)
        snap = self.snapshot(now)
        if self._live is not None:
            self._live.update(view(snap))
        elif self._printed_at is None or now - self._printed_at >= self._plain_every_s:
            print(plain_line(snap), flush=True)
            self._printed_at = now

    def __enter__(self) -> LiveView:
        if self.interactive:
            self._live = Live(
                view(self.snapshot(0.0)),
                console=self._console,
                refresh_per_second=2,
                vertical_overflow="crop",
            )
            self._live.start()
            # Log lines go above the view (through Live's stderr proxy), never through it.
            for handler in logging.getLogger().handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream in (
                    sys.__stderr__,
                    sys.__stdout__,
                ):
                    self._streams.append((handler, handler.stream))
                    handler.setStream(sys.stderr)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for handler, stream in self._streams:
            handler.setStream(stream)
        if self._live is not None:
            self._live.stop()
