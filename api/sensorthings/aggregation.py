"""The aggregation extension's vocabulary: intervals, functions, component types (pure)."""

from __future__ import annotations

from typing import Final

from api.opendata.aggregates import FUNCTIONS, WIDTHS
from rules.daqi import POLLUTANTS
from sensors.catalogue import KINDS

OM: Final = "http://www.opengis.net/def/observationType/OGC-OM/2.0/"
COMPLEX: Final = OM + "OM_ComplexObservation"
#: ISO 8601 duration of each rollup resolution (the MultiDatastream's aggregateInterval).
DURATIONS: Final = {"15m": "PT15M", "1h": "PT1H", "1d": "P1D"}
#: The observation type of each function's result component.
FUNCTION_TYPES: Final = {
    "min": OM + "OM_Measurement",
    "max": OM + "OM_Measurement",
    "mean": OM + "OM_Measurement",
    "count": OM + "OM_CountObservation",
}
FUNCTION_WORDS: Final = {"min": "minimum", "max": "maximum", "mean": "mean", "count": "count"}
COUNT_UNIT: Final = {"name": "number of readings", "symbol": "{readings}"}
#: The DAQI series: its components, their types and units (rules/daqi.py).
DAQI_FUNCTIONS: Final = ("index", "band")
DAQI_TYPES: Final = (OM + "OM_CountObservation", OM + "OM_CategoryObservation")
DAQI_UNITS: Final = (
    {"name": "DAQI index (1 to 10)", "symbol": "1"},
    {"name": "DAQI band (Low, Moderate, High, Very High)", "symbol": None},
)
DAQI_POLLUTANTS: Final = tuple(POLLUTANTS)
AGGREGATE_GROUP: Final = "@aggregate"  # ObservedProperty group key suffix
DAQI_GROUP: Final = "daqi@daqi"


def component_properties() -> list[tuple[str, str, str, str, int]]:
    """ObservedProperty rows of the components: (key, name, description, group, order)."""
    rows: list[tuple[str, str, str, str, int]] = []
    metrics = sorted({m.name for k in KINDS.values() for m in k.metrics.values()})
    for metric in metrics:
        for i, fn in enumerate(FUNCTIONS, start=1):
            rows.append(
                (
                    f"{metric}:{fn}",
                    f"{metric} {fn}",
                    f"The {FUNCTION_WORDS[fn]} of {metric} over each interval",
                    metric + AGGREGATE_GROUP,
                    i,
                )
            )
    rows.append(
        ("daqi:index", "daqi index", "Daily Air Quality Index (DEFRA), 1 to 10", DAQI_GROUP, 1)
    )
    rows.append(
        ("daqi:band", "daqi band", "DAQI band: Low, Moderate, High or Very High", DAQI_GROUP, 2)
    )
    return rows


__all__ = ["DURATIONS", "FUNCTIONS", "WIDTHS", "component_properties"]
