"""The broker auth switch: when anonymous clients may connect (like Mosquitto 2's default)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from enum import StrEnum


class AuthMode(StrEnum):
    """``auto``: anonymous only while every listener is on loopback; ``required``; ``off``."""

    AUTO = "auto"
    REQUIRED = "required"
    OFF = "off"


def is_loopback(host: str) -> bool:
    """Whether a listener bound to ``host`` is reachable only from this machine."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def anonymous_allowed(mode: AuthMode, listener_hosts: Iterable[str]) -> bool:
    """Whether clients without credentials are let in, given where the broker listens.

    ``off`` always (asked for explicitly, and printed as a warning by the caller);
    ``required`` never; ``auto`` only when there is at least one listener and every one is
    bound to a loopback address (``0.0.0.0`` and ``::`` listen everywhere: not loopback).
    """
    if mode is AuthMode.OFF:
        return True
    if mode is AuthMode.REQUIRED:
        return False
    hosts = list(listener_hosts)
    return bool(hosts) and all(is_loopback(h) for h in hosts)
