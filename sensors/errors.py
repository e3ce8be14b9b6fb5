"""The one exception family for decoding and validating sensor payloads."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RejectReason(StrEnum):
    """Why a message was dead-lettered: stable codes that dashboards and operators read."""

    INVALID_UTF8 = "invalid_utf8"
    MALFORMED_JSON = "malformed_json"
    NON_FINITE_VALUE = "non_finite_value"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    BAD_TOPIC = "bad_topic"
    UNKNOWN_KIND = "unknown_kind"
    UNKNOWN_METRIC = "unknown_metric"
    UNKNOWN_UNIT = "unknown_unit"
    WRONG_TYPE = "wrong_type"
    MISSING_FIELD = "missing_field"
    SENSOR_MISMATCH = "sensor_mismatch"
    OUT_OF_RANGE = "out_of_range"
    TIME_OUT_OF_RANGE = "time_out_of_range"
    SENML_INVALID = "senml_invalid"
    SENML_MUST_UNDERSTAND = "senml_must_understand"
    EMPTY = "empty"
    INTERNAL_ERROR = "internal_error"  # a decoder bug: the message is kept, never dropped
    UNKNOWN_DEVICE = "unknown_device"  # auth on: no registered device owns the topic
    DEVICE_DISABLED = "device_disabled"  # auth on: the topic's device is disabled


class CivicPulseError(Exception):
    """Root of every error civicpulse raises on purpose."""


class RejectedPayload(CivicPulseError):
    """A payload that cannot become canonical readings; carries a stable reason code."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """One record of a message rejected on its own (the message's other records are kept).

    ``index`` is the record's position in the message as sent (``readings[i]`` of a
    civicpulse JSON batch, record ``i`` of a SenML pack); ``record`` is that record as JSON.
    """

    index: int
    reason: str
    detail: str
    record: bytes = b""

    @classmethod
    def of(cls, index: int, error: RejectedPayload, record: bytes) -> RejectedRecord:
        """The rejection ``error`` of record ``index``."""
        return cls(index, error.reason.value, error.detail, record)
