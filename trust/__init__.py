"""Pure trust policy: who may publish where, whom to let in, and what is shared with whom."""

from trust.agreements import (
    LEGAL_BASES,
    PUBLIC,
    Agreement,
    AgreementError,
    Resolution,
    Scope,
    SharedRow,
    covers,
    parse_agreement,
    to_staplus,
)
from trust.auth_policy import AuthMode, anonymous_allowed, is_loopback
from trust.directory import Directory, StaticDirectory, Verify
from trust.mosquitto import BrokerFiles, broker_hash, check_broker_hash, is_broker_hash
from trust.registry import (
    Council,
    Device,
    Principal,
    RegistryError,
    ServiceAccount,
    check_council_slug,
    device_topic,
    may_publish,
    may_subscribe,
    refusal,
)

__all__ = [
    "LEGAL_BASES",
    "PUBLIC",
    "Agreement",
    "AgreementError",
    "AuthMode",
    "BrokerFiles",
    "Council",
    "Device",
    "Directory",
    "Principal",
    "RegistryError",
    "Resolution",
    "Scope",
    "ServiceAccount",
    "SharedRow",
    "StaticDirectory",
    "Verify",
    "anonymous_allowed",
    "broker_hash",
    "check_broker_hash",
    "check_council_slug",
    "covers",
    "device_topic",
    "is_broker_hash",
    "is_loopback",
    "may_publish",
    "may_subscribe",
    "parse_agreement",
    "refusal",
    "to_staplus",
]
