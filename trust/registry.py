"""Councils, devices and service accounts, and what each may publish or subscribe to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sensors.catalogue import KINDS
from sensors.errors import CivicPulseError, RejectedPayload
from sensors.topics import (
    COUNCIL_PATTERN,
    SENSOR_ID_PATTERN,
    SUBSCRIPTION_FILTER,
    SensorAddress,
    parse_topic,
    topic_for,
)

ServiceRole = Literal["ingest", "engine"]


class RegistryError(CivicPulseError):
    """A registry entry that cannot be: names what is wrong in one line."""


@dataclass(frozen=True, slots=True)
class Council:
    """A council: its slug (the topic level) and its display name."""

    slug: str
    name: str


@dataclass(frozen=True, slots=True)
class Device:
    """A sensor or edge device allowed to publish readings for one sensor id."""

    sensor_id: str
    council: str
    kind: str
    site: str | None = None
    enabled: bool = True
    personal_data: bool = False  # e.g. a domestic meter: never shared at raw resolution

    def __post_init__(self) -> None:
        check_council_slug(self.council)
        if self.kind not in KINDS:
            known = ", ".join(sorted(KINDS))
            raise RegistryError(f"kind {self.kind!r} is not in the catalogue (known: {known})")
        if SENSOR_ID_PATTERN.fullmatch(self.sensor_id) is None:
            raise RegistryError(
                f"sensor id {self.sensor_id!r} must match {SENSOR_ID_PATTERN.pattern}"
            )


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    """A platform process (bridge, engine) that logs in to the broker."""

    name: str
    role: ServiceRole


Principal = Device | ServiceAccount


def check_council_slug(slug: str) -> str:
    """``slug`` if it can be a topic level, else :class:`RegistryError`."""
    if COUNCIL_PATTERN.fullmatch(slug) is None:
        raise RegistryError(f"council {slug!r} must match {COUNCIL_PATTERN.pattern}")
    return slug


def device_topic(device: Device) -> str:
    """The one topic a device may publish to: ``civicpulse/{council}/{kind}/{sensor_id}``."""
    return topic_for(SensorAddress(device.council, device.kind, device.sensor_id))


def may_publish(principal: Principal | None, topic: str) -> bool:
    """A device publishes only to its own topic, and only while enabled; nobody else does."""
    if not isinstance(principal, Device) or not principal.enabled:
        return False
    return topic == device_topic(principal)


def may_subscribe(principal: Principal | None, topic_filter: str) -> bool:
    """Only the ingest and engine accounts subscribe: to every sensor topic, shared or not."""
    if not isinstance(principal, ServiceAccount):
        return False
    if topic_filter == SUBSCRIPTION_FILTER:
        return True
    parts = topic_filter.split("/", 2)  # $share/<group>/<filter>
    return (
        len(parts) == 3
        and parts[0] == "$share"
        and bool(parts[1])
        and (parts[2] == SUBSCRIPTION_FILTER)
    )


def refusal(principal: Principal | None, topic: str) -> str | None:
    """Why a message on ``topic`` from ``principal`` is refused (a dead-letter reason), or None.

    For messages that reach ingest anyway (an open broker): ``unknown_device`` when no
    enabled-or-not device owns the topic's sensor id, ``device_disabled`` when it is
    disabled. A topic that does not parse is left to the decoder (``bad_topic``).
    """
    try:
        address = parse_topic(topic)
    except RejectedPayload:
        return None
    if not isinstance(principal, Device) or principal.sensor_id != address.sensor_id:
        return "unknown_device"
    if principal.council != address.council or principal.kind != address.kind:
        return "unknown_device"
    if not principal.enabled:
        return "device_disabled"
    return None
