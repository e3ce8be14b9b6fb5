"""The open-data API served inside another command's event loop (``run``, ``demo``)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Iterator

import uvicorn

log = logging.getLogger("civicpulse.api")


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the command that runs it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiTask:
    """The API on ``host:port`` as a task of the running loop; ``start`` says why it did not."""

    def __init__(self, app: object, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.server = EmbeddedServer(
            uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")  # type: ignore[arg-type]
        )
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> str | None:
        """Serve; None when up, else one line saying why not (the platform runs on without)."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                return f"port {self.port} is in use — set CIVICPULSE_API_PORT or --api-port"
            return f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
        self.task = asyncio.ensure_future(self.server.serve(sockets=[sock]))
        while not self.server.started:
            if self.task.done():
                failure = self.task.exception()
                return f"did not start: {failure}" if failure else "did not start"
            await asyncio.sleep(0.02)
        return None

    async def stop(self) -> None:
        if self.task is None:
            return
        self.server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 5)
