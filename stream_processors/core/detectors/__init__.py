"""The pure detectors, and the default set both stream engines run."""

from stream_processors.core.detectors.air import AirDetector
from stream_processors.core.detectors.base import Detector, JsonDict, Params
from stream_processors.core.detectors.energy import EnergyDetector
from stream_processors.core.detectors.health import HealthDetector, stale_signals
from stream_processors.core.detectors.runner import StateKey, run_detectors
from stream_processors.core.detectors.statistical import StatisticalDetector, robust_z
from stream_processors.core.detectors.waste import WasteDetector


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
