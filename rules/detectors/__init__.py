"""The pure detectors, and the default set both stream engines run."""

from rules.detectors.air import AirDetector
from rules.detectors.base import Detector, JsonDict, Params
from rules.detectors.energy import EnergyDetector
from rules.detectors.health import HealthDetector, stale_signals
from rules.detectors.runner import StateKey, run_detectors
from rules.detectors.statistical import StatisticalDetector, robust_z
from rules.detectors.waste import WasteDetector


def default_detectors() -> tuple[Detector, ...]:
    """Every detector, in a fixed order."""
    return (
        HealthDetector(),
        WasteDetector(),
        EnergyDetector(),
        StatisticalDetector(),
        AirDetector(),
    )


__all__ = [
    "AirDetector",
    "Detector",
    "EnergyDetector",
    "HealthDetector",
    "JsonDict",
    "Params",
    "StateKey",
    "StatisticalDetector",
    "WasteDetector",
    "default_detectors",
    "robust_z",
    "run_detectors",
    "stale_signals",
]
