"""A deterministic fleet of simulated sensors and the time-ordered MQTT messages they send."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from sensors.codecs import civicpulse_json, senml
from sensors.reading import Sample
from sensors.topics import SensorAddress, topic_for
from simulator.air import AirModel, AirParams
from simulator.bins import BinModel, BinParams
from simulator.energy import MeterModel, MeterParams

KIND_PREFIX = {"air_quality": "aq", "waste_bin": "bin", "energy_meter": "em"}
KIND_SHARE = {"air_quality": 0.4, "waste_bin": 0.4, "energy_meter": 0.2}


class PayloadFormat(StrEnum):
    """How a sensor encodes its messages."""

    CIVICPULSE_JSON = "civicpulse_json"
    SENML = "senml"  # RFC 8428 with RFC 8798 secondary units (ug/m3, kWh, /100)
    SENML_PRIMARY = "senml_primary"  # RFC 8428 primary units only (kg/m3, J, ratios)


@dataclass(frozen=True, slots=True)
class SensorSpec:
    """One simulated device: identity, payload format and model parameters."""

    sensor_id: str
    council: str
    kind: str
    payload_format: PayloadFormat
    params: AirParams | BinParams | MeterParams

    @property
    def address(self) -> SensorAddress:
        """Where the sensor publishes."""
        return SensorAddress(self.council, self.kind, self.sensor_id)


@dataclass(frozen=True, slots=True)
class Emission:
    """One MQTT message and the exact canonical samples it encodes (the test truth)."""

    topic: str
    payload: bytes
    samples: tuple[Sample, ...]
    sensor_id: str
    council: str
    kind: str
    t_offset: float  # seconds after the run starts at which to publish it (i / rate)

    @property
    def time(self) -> datetime:
        """The event time every sample carries."""
        return self.samples[0].time


class _Model(Protocol):
    def values(self, t: datetime) -> dict[str, float] | dict[str, float | bool]: ...


def encode_samples(fmt: PayloadFormat, sensor_id: str, samples: Sequence[Sample]) -> bytes:
    """Encode ``samples`` in ``fmt`` with the project's codecs."""
    if fmt is PayloadFormat.CIVICPULSE_JSON:
        return civicpulse_json.encode(sensor_id, samples)
    return senml.encode_pack(sensor_id, samples, secondary_units=fmt is PayloadFormat.SENML)


def _kind_counts(n: int) -> dict[str, int]:
    if n < 3:
        return dict.fromkeys(list(KIND_SHARE)[:n], 1)
    meters = max(1, round(n * KIND_SHARE["energy_meter"]))
    air = max(1, round(n * KIND_SHARE["air_quality"]))
    return {"air_quality": air, "waste_bin": n - air - meters, "energy_meter": meters}


def _format_for(position: int) -> PayloadFormat:
    # Two of every three JSON; SenML alternates between secondary and primary units.
    if position % 3 != 2:
        return PayloadFormat.CIVICPULSE_JSON
    return PayloadFormat.SENML if (position // 3) % 2 == 0 else PayloadFormat.SENML_PRIMARY


@dataclass(frozen=True, slots=True)
class Fleet:
    """A fixed set of sensors; everything it produces is a pure function of its seed."""

    seed: int
    sensors: tuple[SensorSpec, ...]

    @classmethod
    def build(
        cls, n_sensors: int, seed: int, councils: Sequence[str] = ("aberdeen", "edinburgh")
    ) -> Fleet:
        """``n_sensors`` sensors: ~40 % air, ~40 % bins, ~20 % meters (each kind when n >= 3)."""
        if n_sensors < 0:
            raise ValueError("n_sensors must be >= 0")
        if not councils:
            raise ValueError("at least one council is needed")
        rng = random.Random(f"civicpulse-fleet/{seed}")
        kinds = [k for k, c in _kind_counts(n_sensors).items() for _ in range(c)]
        rng.shuffle(kinds)
        positions = list(range(n_sensors))
        rng.shuffle(positions)
        width = max(4, len(str(n_sensors)))
        sensors = []
        for i, kind in enumerate(kinds):
            params: AirParams | BinParams | MeterParams
            if kind == "air_quality":
                params = AirParams.draw(rng)
            elif kind == "waste_bin":
                params = BinParams.draw(rng)
            else:
                params = MeterParams.draw(rng)
            sensors.append(
                SensorSpec(
                    sensor_id=f"{KIND_PREFIX[kind]}-{i + 1:0{width}d}",
                    council=councils[i % len(councils)],
                    kind=kind,
                    payload_format=_format_for(positions[i]),
                    params=params,
                )
            )
        return cls(seed, tuple(sensors))

    @property
    def addresses(self) -> tuple[SensorAddress, ...]:
        """Every sensor's address, in fleet order."""
        return tuple(s.address for s in self.sensors)

    def _model(self, spec: SensorSpec, start: datetime) -> _Model:
        key = f"civicpulse-sensor/{self.seed}/{spec.sensor_id}"
        rng = random.Random(key)
        p = spec.params
        if isinstance(p, AirParams):
            return AirModel(p, spec.council, rng)
        if isinstance(p, BinParams):
            return BinModel(p, spec.council, rng, key, start)
        return MeterModel(p, rng)

    def emissions(
        self, n_messages: int, start: datetime, rate: float, speed: float = 1.0
    ) -> Iterator[Emission]:
        """``n_messages`` messages in time order; message i is at ``start + i * speed / rate``.

        Sensors take turns in a seeded shuffled round robin. ``t_offset`` is the wall-clock
        offset ``i / rate`` at which a publisher running at ``rate`` sends message i.
        """
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        if rate <= 0 or speed <= 0:
            raise ValueError("rate and speed must be positive")
        if not self.sensors:
            return
        order = list(range(len(self.sensors)))
        random.Random(f"civicpulse-order/{self.seed}").shuffle(order)
        models: dict[int, _Model] = {}
        topics = [topic_for(s.address) for s in self.sensors]
        for i in range(n_messages):
            idx = order[i % len(order)]
            spec = self.sensors[idx]
            model = models.get(idx)
            if model is None:
                model = models[idx] = self._model(spec, start)
            t = start + timedelta(microseconds=round(i * speed * 1_000_000 / rate))
            samples = tuple(Sample(metric=m, value=v, time=t) for m, v in model.values(t).items())
            yield Emission(
                topic=topics[idx],
                payload=encode_samples(spec.payload_format, spec.sensor_id, samples),
                samples=samples,
                sensor_id=spec.sensor_id,
                council=spec.council,
                kind=spec.kind,
                t_offset=i / rate,
            )
