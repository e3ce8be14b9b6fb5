"""Unit normalisation: every accepted unit spelling to the catalogue's canonical unit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Conversion:
    """``canonical = value * scale + offset``."""

    canonical: str
    scale: float
    offset: float = 0.0

    def apply(self, value: float) -> float:
        """Convert ``value`` into the canonical unit."""
        if self.offset == 0.0:
            return value * self.scale if self.scale != 1.0 else value
        return value * self.scale + self.offset


def _c(canonical: str, scale: float = 1.0, offset: float = 0.0) -> Conversion:
    return Conversion(canonical, scale, offset)


# Unit names with one meaning whatever the payload format. Format-specific spellings
# (SenML "%" is a 0..1 ratio; civicpulse JSON "%" is a percentage) are mapped onto these
# by each codec before lookup.
# SenML names and scales: RFC 8428 section 12.1 and RFC 8798 (secondary units:
# ug/m3 = kg/m3 x 1e-9, kWh = J x 3.6e6, /100 = percent).
CONVERSIONS: Final[dict[str, Conversion]] = {
    # mass concentration -> ug/m3
    "ug/m3": _c("ug/m3"),
    "µg/m3": _c("ug/m3"),
    "µg/m³": _c("ug/m3"),
    "mg/m3": _c("ug/m3", 1e3),
    "kg/m3": _c("ug/m3", 1e9),
    # temperature -> Cel
    "Cel": _c("Cel"),
    "°C": _c("Cel"),
    "degC": _c("Cel"),
    "K": _c("Cel", 1.0, -273.15),
    "degF": _c("Cel", 5.0 / 9.0, -32.0 * 5.0 / 9.0),
    # relative humidity -> %RH
    "%RH": _c("%RH"),
    # percentages -> %
    "percent": _c("%"),
    "/100": _c("%"),
    "%EL": _c("%"),
    "ratio": _c("%", 100.0),
    # energy -> kWh
    "kWh": _c("kWh"),
    "Wh": _c("kWh", 1e-3),
    "MWh": _c("kWh", 1e3),
    "J": _c("kWh", 1.0 / 3.6e6),
    "kJ": _c("kWh", 1.0 / 3.6e3),
    "MJ": _c("kWh", 1.0 / 3.6),
    # power -> W
    "W": _c("W"),
    "kW": _c("W", 1e3),
    "MW": _c("W", 1e6),
    # flags
    "bool": _c("bool"),
}

# What "%RH"-measured metrics may also be sent as (a percentage or ratio of saturation).
_COMPATIBLE: Final[dict[str, frozenset[str]]] = {
    "%RH": frozenset({"%"}),
}


def conversion_for(unit: str, canonical: str) -> Conversion | None:
    """Conversion from ``unit`` to ``canonical``; ``None`` if they measure different things."""
    conv = CONVERSIONS.get(unit)
    if conv is None:
        return None
    if conv.canonical == canonical:
        return conv
    if conv.canonical in _COMPATIBLE.get(canonical, frozenset()):
        return Conversion(canonical, conv.scale, conv.offset)
    return None
