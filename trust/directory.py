"""Who is who at the broker: a snapshot of the registry that answers logins and lookups."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from trust.registry import Device, Principal, ServiceAccount

Verify = Callable[[str, str], bool]
"""(stored hash, presented secret) → whether they match; the adapter supplies argon2's."""


class Directory(Protocol):
    """What the brokers and ingest ask of the registry."""

    def authenticate(self, username: str, secret: str) -> Principal | None:
        """The principal if ``secret`` is right for ``username`` (and it is enabled)."""
        ...

    def device(self, sensor_id: str) -> Device | None:
        """The registered device with this sensor id (enabled or not), or None."""
        ...


@dataclass(frozen=True, slots=True)
class StaticDirectory:
    """An immutable snapshot of the registry. A device logs in with its sensor id as user
    name, a service account with its name; ``hashes`` holds each one's secret hash."""

    devices: Mapping[str, Device] = field(default_factory=dict)
    accounts: Mapping[str, ServiceAccount] = field(default_factory=dict)
    hashes: Mapping[str, str] = field(default_factory=dict)
    verify: Verify = field(default=lambda _hash, _secret: False)

    def authenticate(self, username: str, secret: str) -> Principal | None:
        principal: Principal | None = self.devices.get(username) or self.accounts.get(username)
        stored = self.hashes.get(username)
        if principal is None or stored is None or not secret:
            return None
        if isinstance(principal, Device) and not principal.enabled:
            return None
        return principal if self.verify(stored, secret) else None

    def device(self, sensor_id: str) -> Device | None:
        return self.devices.get(sensor_id)
