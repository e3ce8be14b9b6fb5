"""A quick TCP look at a service before a long-running command commits to waiting on it."""

from __future__ import annotations

import socket


def unreachable(bootstrap: str, timeout_s: float = 3.0) -> str | None:
    """``None`` if any ``host:port`` of a comma-separated list accepts a TCP connection,
    else why not (the last error)."""
    why = f"no servers in {bootstrap!r}"
    for server in (s.strip() for s in bootstrap.split(",")):
        if not server:
            continue
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or server, int(port)), timeout_s):
                return None
        except ValueError:
            why = f"{server!r} is not host:port"
        except OSError as exc:
            why = f"{server}: {exc.strerror or exc}"
    return why
