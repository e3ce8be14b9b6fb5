"""``civicpulse api``: serve the open-data API (SensorThings, aggregates, the public page)."""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterator
from types import FrameType
from typing import Annotated, Any

import psycopg
import typer
import uvicorn

from civicpulse.cli.console import console, fail
from civicpulse.cli.errors import first_line
from civicpulse.cli.options import DatabaseUrl
from civicpulse.cli.signals import stop_deadline
from civicpulse.settings import Settings
from civicpulse.wiring import api_public_url, build_api_app, configure_logging

GRACEFUL_S = 3  # open requests get this long after SIGINT/SIGTERM; the deadline exits at 4 s


class _Server(uvicorn.Server):
    """uvicorn, saying where it listens once it does, and never outliving a stop signal."""

    def __init__(self, config: uvicorn.Config, public_url: str) -> None:
        super().__init__(config)
        self.public_url = public_url

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            url = self.public_url
            console.print(
                f"civicpulse API on {url}/ — SensorThings {url}/v1.1, OpenAPI {url}/docs",
                soft_wrap=True,
            )

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            # uvicorn re-raises the stop signal on the way out; a requested stop exits 0.
            captured = getattr(self, "_captured_signals", None)
            if isinstance(captured, list):
                captured.clear()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        stop_deadline(sig)
        super().handle_exit(sig, frame)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise fail(f"port {port} on {host} is in use — choose another with --port") from exc
        raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def _check_database(url: str) -> None:
    """One line if the database cannot be reached or is not migrated (before listening)."""
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute("SELECT to_regclass('tenant.readings') IS NOT NULL").fetchone()
    except psycopg.Error as exc:
        raise fail(
            f"database unreachable: {first_line(exc)} — check --database-url"
            " (env CIVICPULSE_DATABASE_URL) and that PostgreSQL is running"
        ) from exc
    if not row or not row[0]:
        raise fail("the database has no tenancy views yet — run `civicpulse db migrate` first")


def api(
    database_url: DatabaseUrl = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Listen address (env CIVICPULSE_API_HOST)")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Listen port (env CIVICPULSE_API_PORT)")
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="Base URL links are built from, exactly as clients reach the API"
            " (env CIVICPULSE_API_PUBLIC_URL; default http://HOST:PORT)",
        ),
    ] = None,
) -> None:
    """Serve the open-data API: SensorThings at /v1.1, /api/v1 aggregates, the page at /."""
    settings = Settings.load(
        database_url=database_url, api_host=host, api_port=port, api_public_url=public_url
    )
    configure_logging(settings)
    _check_database(settings.database_url)
    sock = _listen(settings.api_host, settings.api_port)
    bound = sock.getsockname()[1]
    app: Any = build_api_app(settings, settings.database_url, bound)
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_S,
    )
    server = _Server(config, api_public_url(settings, bound))
    try:
        server.run(sockets=[sock])
    finally:
        with contextlib.suppress(OSError):
            sock.close()
    if not server.started:
        raise fail("the API did not start — see the log above")


def register(app: typer.Typer) -> None:
    """Add ``api`` to the root ``civicpulse`` app."""
    app.command("api")(api)


if __name__ == "__main__":  # python -m civicpulse.cli.api: the command on its own
    _alone = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(_alone)
    _alone()
