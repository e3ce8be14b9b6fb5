"""Parse ``mqtt://[user[:password]@]host[:port]`` broker URLs (``mqtts://`` for TLS)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    """Where an MQTT broker listens and how to log in (default port 1883, 8883 for TLS)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @staticmethod
    def parse(url: str) -> BrokerUrl:
        """Parse a broker URL; ``ValueError`` for other schemes or a missing host."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp", "mqtts") or not parts.hostname:
            raise ValueError(f"not an mqtt:// URL (want mqtt://host:port): {url!r}")
        tls = parts.scheme == "mqtts"
        return BrokerUrl(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username is not None else None,
            password=unquote(parts.password) if parts.password is not None else None,
            tls=tls,
        )
