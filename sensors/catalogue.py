"""The sensor catalogue: kinds, their metrics, canonical units, possible ranges, intervals."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


@dataclass(frozen=True, slots=True)
class Metric:
    """One quantity a kind of sensor measures, in its canonical unit.

    ``low``/``high`` bound what is physically possible for the device: a value outside is
    a sensor fault (dead-lettered as ``out_of_range``), not pollution or a full bin.
    """

    name: str
    unit: str
    low: float
    high: float
    description: str
    is_flag: bool = False


@dataclass(frozen=True, slots=True)
class SensorKind:
    """A kind of device: what it measures and how often it is expected to report."""

    name: str
    description: str
    expected_interval_s: int
    metrics: MappingProxyType[str, Metric]

    def metric(self, name: str) -> Metric | None:
        """The metric called ``name`` or ``None`` when this kind does not measure it."""
        return self.metrics.get(name)


def _kind(name: str, description: str, interval_s: int, *metrics: Metric) -> SensorKind:
    return SensorKind(name, description, interval_s, MappingProxyType({m.name: m for m in metrics}))


# Canonical units (our own vocabulary, documented in README "Units"):
#   ug/m3  micrograms per cubic metre      Cel  degrees Celsius (SenML name)
#   %RH    relative humidity, percent      %    percent 0..100 (NOT the SenML ratio)
#   kWh    kilowatt-hours                  W    watts
#   bool   a flag, 1.0 true / 0.0 false
# Ranges: SDS011 particulate sensors report 0-999.9 ug/m3 (Nova Fitness datasheet); the
# other bounds are generous physical limits past which a reading is a fault.
AIR_QUALITY: Final = _kind(
    "air_quality",
    "Street air-quality monitor (particulates, NO2, O3, SO2, temperature, humidity)",
    150,  # Sensor.Community SDS011 nodes report about every 150 s (shared/data/aberdeen-air)
    Metric("pm2_5", "ug/m3", 0.0, 1000.0, "PM2.5 mass concentration"),
    Metric("pm10", "ug/m3", 0.0, 2000.0, "PM10 mass concentration"),
    Metric("no2", "ug/m3", 0.0, 2000.0, "Nitrogen dioxide"),
    Metric("o3", "ug/m3", 0.0, 1000.0, "Ozone"),
    Metric("so2", "ug/m3", 0.0, 3000.0, "Sulphur dioxide"),
    Metric("temperature", "Cel", -40.0, 60.0, "Air temperature"),
    Metric("humidity", "%RH", 0.0, 100.0, "Relative humidity"),
)

WASTE_BIN: Final = _kind(
    "waste_bin",
    "Litter or communal bin with an ultrasonic fill sensor",
    900,  # ultrasonic bin sensors report every 15-60 min (domain.md section 4)
    Metric("fill_level", "%", 0.0, 100.0, "Fill level, percent of usable depth"),
    Metric("temperature", "Cel", -40.0, 200.0, "Temperature inside the bin (fire watch)"),
    Metric("battery", "%", 0.0, 100.0, "Battery remaining, percent"),
    Metric("tilt", "bool", 0.0, 1.0, "Tilted or knocked over", is_flag=True),
    Metric("fire", "bool", 0.0, 1.0, "Device fire alarm", is_flag=True),
)

ENERGY_METER: Final = _kind(
    "energy_meter",
    "Building electricity meter with optional solar export register",
    1800,  # smart meters report half-hourly (domain.md section 4)
    Metric("energy_import", "kWh", 0.0, 1e10, "Cumulative import register"),
    Metric("power", "W", -1e7, 1e7, "Instantaneous active power (negative when exporting)"),
    Metric("energy_export", "kWh", 0.0, 1e10, "Cumulative export (solar) register"),
)

KINDS: Final[MappingProxyType[str, SensorKind]] = MappingProxyType(
    {k.name: k for k in (AIR_QUALITY, WASTE_BIN, ENERGY_METER)}
)


def kind_named(name: str) -> SensorKind | None:
    """The kind called ``name`` or ``None`` when the catalogue has no such kind."""
    return KINDS.get(name)
