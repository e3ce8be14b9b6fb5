"""Detector thresholds: built-in defaults overridden per council, site and sensor (TOML)."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from rules.alerts import Sites, site_of
from sensors.errors import CivicPulseError

# Every parameter, with its default. Sources for the numbers are in config/thresholds.example.toml.
DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        # waste bins
        "waste.fill_threshold_pct": 80.0,  # collection needed at fill >= this
        "waste.fill_clear_pct": 50.0,  # ... and cleared once fill is back below this
        "waste.fire_temp_c": 60.0,  # fire risk at temperature >= this
        "waste.fire_clear_c": 45.0,  # ... cleared below this (and no fire flag)
        "waste.fire_rise_c": 15.0,  # or a rise of this many degrees ...
        "waste.fire_rise_window_s": 1800.0,  # ... within this many seconds
        "waste.fill_drop_pct": 15.0,  # a drop of this many points is a collection or a review
        "waste.collection_tolerance_s": 7200.0,  # how far from the learned round a drop may be
        "waste.min_collections": 2,  # collections seen before drops can be judged
        # energy meters
        "energy.timezone": "Europe/London",
        "energy.open_hour": 7,  # working hours open_hour..close_hour, Mon-Fri
        "energy.close_hour": 19,
        "energy.ooh_factor": 1.5,  # out of hours: excess over baseline > (f-1) x base load
        "energy.ooh_min_w": 500.0,  # ... and > this many watts
        "energy.ooh_dev_k": 3.0,  # ... and > k x the hour's typical deviation
        "energy.ooh_readings": 2,  # ... for this many readings running ...
        "energy.ooh_hold_s": 1800.0,  # ... spanning at least this long (any meter interval)
        "energy.spike_factor": 3.0,  # spike: excess > (f-1) x base load ...
        "energy.spike_dev_k": 6.0,  # ... and > k x the hour's typical deviation
        "energy.spike_min_w": 2000.0,
        "energy.baseline_alpha": 0.25,  # EWMA weight of a new hourly mean in its bucket
        "energy.warmup_per_bucket": 2,  # hourly means in a bucket before it is trusted
        "energy.register_tolerance_kwh": 0.001,
        # sensor health, every kind
        "health.stale_factor": 3.0,  # stale after this many expected intervals with no arrival
        "health.delayed_factor": 2.0,  # data delayed: received > this many intervals after
        "health.delayed_clear_factor": 1.0,  # ... its event time; clear at <= this many
        "health.flatline_count": 12,  # same value this many readings running
        "health.flatline_metrics": [
            "pm2_5",
            "pm10",
            "no2",
            "o3",
            "temperature",
            "humidity",
            "power",
        ],
        "health.low_battery_pct": 15.0,
        "health.battery_clear_pct": 20.0,
        # statistical: robust rolling z-score (median / MAD)
        "statistical.window": 96,
        "statistical.warmup": 24,
        "statistical.min_scale": 0.5,  # floor of the robust spread, in the metric's unit
        "statistical.humidity_min_scale": 2.0,  # ... for humidity, %RH: a sensor's accuracy
        "statistical.z": 8.0,  # sensitivity: lower finds more, with more noise
        "statistical.clear_z": 3.0,
        "statistical.metrics": ["temperature", "humidity"],
        # air quality
        "air.daqi_high": 7,
        "air.daqi_very_high": 10,
        "air.no2_hourly_limit": 200.0,  # Air Quality Standards Regulations 2010
        "air.pm10_daily_limit": 50.0,
    }
)


class ThresholdError(CivicPulseError):
    """The thresholds file is not valid: names the key and what is wrong."""


def _check(where: str, table: Any) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ThresholdError(f"{where}: expected a table of parameters")
    flat: dict[str, Any] = {}
    for section, values in table.items():
        if not isinstance(values, dict):
            raise ThresholdError(f"{where}.{section}: expected a table such as [{where}.waste]")
        for name, value in values.items():
            key = f"{section}.{name}"
            if key not in DEFAULTS:
                raise ThresholdError(f"{where}.{key}: unknown parameter")
            default = DEFAULTS[key]
            if (
                isinstance(default, float)
                and isinstance(value, int)
                and not isinstance(value, bool)
            ):
                value = float(value)
            if type(value) is not type(default):
                raise ThresholdError(
                    f"{where}.{key}: expected {type(default).__name__}, got {value!r}"
                )
            flat[key] = value
    return flat


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Parameters per sensor: defaults < council < site < sensor."""

    defaults: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULTS))
    councils: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    sites: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    sensors: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def for_sensor(
        self, council: str, sensor_id: str, sites: Sites | None = None
    ) -> Mapping[str, Any]:
        """The merged parameters for one sensor.

        Layers, later wins: defaults, council, the sensor's site (from ``sites``; a sensor
        not in it is its own site), a bin's own fill threshold in the site registry, sensor.
        """
        own = sites.get(sensor_id) if sites else None
        bin_layer = None
        if own is not None and own.fill_threshold_pct is not None:
            bin_layer = {"waste.fill_threshold_pct": own.fill_threshold_pct}
        over = (
            self.councils.get(council),
            self.sites.get(site_of(sensor_id, sites)),
            bin_layer,
            self.sensors.get(sensor_id),
        )
        if not any(over):
            return self.defaults
        merged = dict(self.defaults)
        for layer in over:
            if layer:
                merged.update(layer)
        if bin_layer is not None:  # keep the hysteresis below a lowered threshold
            merged["waste.fill_clear_pct"] = min(
                float(merged["waste.fill_clear_pct"]),
                max(0.0, float(merged["waste.fill_threshold_pct"]) - 30.0),
            )
        return merged


def parse_thresholds(text: str, source: str = "thresholds") -> Thresholds:
    """Parse the TOML file's text; raises :class:`ThresholdError` on any unknown or bad key."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ThresholdError(f"{source}: not valid TOML: {exc}") from exc
    unknown = set(doc) - {"defaults", "councils", "sites", "sensors"}
    if unknown:
        raise ThresholdError(f"{source}: unknown top-level table(s) {sorted(unknown)}")
    defaults = dict(DEFAULTS)
    defaults.update(_check("defaults", doc.get("defaults", {})))
    layers = {}
    for level in ("councils", "sites", "sensors"):
        table = doc.get(level, {})
        if not isinstance(table, dict):
            raise ThresholdError(f"{source}: [{level}] must be a table")
        layers[level] = {name: _check(f"{level}.{name}", t) for name, t in table.items()}
    return Thresholds(defaults, layers["councils"], layers["sites"], layers["sensors"])
