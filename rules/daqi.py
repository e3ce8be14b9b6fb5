"""UK Daily Air Quality Index (DAQI): breakpoints, DEFRA averaging and data capture, state."""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from importlib import resources
from types import MappingProxyType
from typing import Any, Final

# Breakpoints and bands: DEFRA UK-AIR DAQI page (COMEAP scheme) and DEFRA "Update on
# Implementation of the Daily Air Quality Index" (April 2013); full provenance in the
# "_source" field of data/daqi_breakpoints.json (a copy of shared/reference).
_DATA: Final[dict[str, Any]] = json.loads(
    resources.files("rules.data").joinpath("daqi_breakpoints.json").read_text("utf-8")
)
SOURCE: Final[str] = _DATA["_source"]

POLLUTANTS: Final = ("pm2_5", "pm10", "no2", "o3", "so2")
_SOURCE_NAMES: Final = {"pm2_5": "PM2.5", "pm10": "PM10", "no2": "NO2", "o3": "O3", "so2": "SO2"}

HOUR: Final = timedelta(hours=1)
QUARTER_HOUR: Final = timedelta(minutes=15)
_US: Final = timedelta(microseconds=1)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _lows(pollutant: str) -> tuple[int, ...]:
    bands = _DATA["breakpoints_ug_m3"][_SOURCE_NAMES[pollutant]]
    lows = tuple(int(lo) for lo, _ in bands)
    his = [hi for _, hi in bands]
    # After rounding to integers the bands must tile 0..inf with no gap or overlap.
    tiled = all(hi + 1 == nxt for hi, nxt in zip(his[:-1], lows[1:], strict=True))
    if len(bands) != 10 or lows[0] != 0 or his[-1] is not None or not tiled:
        raise ValueError(f"daqi_breakpoints.json: bad {pollutant} bands {bands!r}")
    return lows


_LOWS: Final = MappingProxyType({p: _lows(p) for p in POLLUTANTS})


@dataclass(frozen=True, slots=True)
class Averaging:
    """How DEFRA averages one pollutant: a mean of ``span`` base means of length ``base``.

    The mean is reported only when at least ``min_valid`` of those base means are valid, and
    a base mean is valid only when it holds >= 75 % of its expected samples (domain.md §1).
    """

    description: str
    base: timedelta
    span: int
    min_valid: int

    @property
    def window(self) -> timedelta:
        """The whole averaging period."""
        return self.base * self.span


_PM: Final = Averaging("24-hour running mean of hourly means (>= 18 valid hours)", HOUR, 24, 18)
AVERAGING: Final[Mapping[str, Averaging]] = MappingProxyType(
    {
        "pm2_5": _PM,
        "pm10": _PM,
        "no2": Averaging("1-hour mean (latest complete hour, >= 75 % capture)", HOUR, 1, 1),
        "o3": Averaging("8-hour running mean of hourly means (>= 6 valid hours)", HOUR, 8, 6),
        "so2": Averaging("15-minute mean (latest complete quarter hour)", QUARTER_HOUR, 1, 1),
    }
)
#: ``prune(t - LONGEST_WINDOW)`` keeps all that ``evaluate(at)`` needs for every ``at >= t``.
LONGEST_WINDOW: Final = max(a.window for a in AVERAGING.values())


def round_concentration(x: float) -> int:
    """Round to the nearest integer µg/m³, halves up (35.5 -> 36), before the band look-up."""
    if not math.isfinite(x) or x < 0:
        raise ValueError(f"concentration must be finite and >= 0, got {x!r}")
    whole = math.floor(x)
    return whole + 1 if x - whole >= 0.5 else whole  # x - whole is exact: no 0.49999… trap


def _averaging(pollutant: str) -> Averaging:
    try:
        return AVERAGING[pollutant]
    except KeyError:
        raise ValueError(f"not a DAQI pollutant: {pollutant!r} (one of {POLLUTANTS})") from None


def index_for(pollutant: str, concentration: float) -> int:
    """DAQI index 1..10 of an averaged concentration in µg/m³ (rounded before look-up)."""
    _averaging(pollutant)
    return bisect_right(_LOWS[pollutant], round_concentration(concentration))


def band_for(index: int) -> str:
    """The band of an index: "Low" (1-3), "Moderate" (4-6), "High" (7-9), "Very High" (10)."""
    if not 1 <= index <= 10:
        raise ValueError(f"DAQI index must be 1..10, got {index!r}")
    return str(_DATA["bands"][str(index)])


def site_index(indices: Mapping[str, int]) -> int | None:
    """A site's overall index: the highest pollutant index, ``None`` when there is none."""
    return max(indices.values(), default=None)


@dataclass(frozen=True, slots=True)
class DaqiResult:
    """The DAQI at one instant: overall index and band, and (concentration, index) per pollutant.

    ``per_pollutant`` lists only pollutants whose averaging had enough data.
    """

    site_index: int | None
    band: str | None
    per_pollutant: dict[str, tuple[float, int]] = field(default_factory=dict)


# Every finite double is a whole number of 2**-1074 (the smallest subnormal), so a sum of
# samples is kept exactly as an integer count of those units: one shift and one integer add
# per sample, where a Fraction sum normalised (two gcds) on every add.
_UNIT_BITS: Final = 1074


def _units(value: float) -> int:
    """``value`` in units of 2**-1074, exactly."""
    numerator, denominator = value.as_integer_ratio()  # the denominator is a power of two
    return numerator << (_UNIT_BITS + 1 - denominator.bit_length())


@dataclass(slots=True)
class _Bucket:
    """One period's exact sum (so any add order gives the same mean) and its sample count.

    A bucket read from JSON keeps its "n/d" text and parses it only when it is added to or
    averaged: a state is loaded and saved with every batch, and most buckets of a 24-hour
    window are only carried from one batch to the next.
    """

    units: int | None = 0  # the exact sum in 2**-1074 units; None: not parsed from ``text``
    n: int = 0
    seen: set[int] | None = None  # sample offsets (µs) in the bucket, when repeats are dropped
    text: str | None = None  # the sum as an exact "n/d" string, while it is known

    @classmethod
    def parsed(cls, text: str, n: int) -> _Bucket:
        """A bucket from its stored sum (``to_text`` output) and sample count."""
        return cls(None, n, None, text)

    def add(self, value: float) -> None:
        """Add one sample's value."""
        self.units = self.sum_units() + _units(value)
        self.n += 1
        self.text = None

    def sum_units(self) -> int:
        """The exact sum in 2**-1074 units."""
        if self.units is None:
            self.units = _units_of_text(str(self.text))
        return self.units

    def to_text(self) -> str:
        """The exact sum as a reduced "n/d" string (what ``str(Fraction)`` writes)."""
        if self.text is None:
            self.text = _text_of_units(self.sum_units())
        return self.text

    def mean(self) -> float:
        """The exact mean, rounded once to the nearest double (int / int is correctly rounded)."""
        return self.sum_units() / (self.n << _UNIT_BITS)


def _text_of_units(units: int) -> str:
    """``str(Fraction(units, 2**1074))`` without a gcd: the denominator is a power of two,
    so reducing is dropping the numerator's trailing zero bits."""
    if units == 0:
        return "0"
    shift = min((units & -units).bit_length() - 1, _UNIT_BITS)
    numerator, denominator = units >> shift, 1 << (_UNIT_BITS - shift)
    return str(numerator) if denominator == 1 else f"{numerator}/{denominator}"


def _units_of_text(text: str) -> int:
    """The inverse of :func:`_text_of_units` (any exact fraction text whose denominator
    divides 2**1074; e.g. a state written with ``str(Fraction)``)."""
    numerator, _, denominator = text.partition("/")
    try:
        n, d = int(numerator), int(denominator or 1)
    except ValueError:
        total = Fraction(text)  # another exact form Fraction reads ("1.5", "3e-2")
        n, d = total.numerator, total.denominator
    scale, rest = divmod(1 << _UNIT_BITS, d) if d > 0 else (0, 1)
    if rest:
        raise ValueError(f"not a sum of doubles: {text!r}")
    return n * scale


def _micros(t: datetime) -> int:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"naive datetime not allowed: {t!r}")
    return (t - _EPOCH) // _US


def _at(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _add(
    buckets: dict[int, _Bucket], size_us: int, us: int, value: float, *, dedupe: bool = True
) -> bool:
    if not math.isfinite(value):
        raise ValueError(f"sample value must be finite, got {value!r}")
    start, offset = us - us % size_us, us % size_us
    bucket = buckets.get(start)
    if bucket is None:
        bucket = buckets[start] = _Bucket(seen=set() if dedupe else None)
    if bucket.seen is not None:
        if offset in bucket.seen:  # same instant again: a redelivered reading, first one wins
            return False
        bucket.seen.add(offset)
    bucket.add(value)
    return True


def _collect(samples: Iterable[tuple[datetime, float]], size: timedelta) -> dict[int, _Bucket]:
    buckets: dict[int, _Bucket] = {}
    for t, value in samples:
        _add(buckets, size // _US, _micros(t), value)
    return buckets


def _mean(bucket: _Bucket | None, expected: int) -> float | None:
    """Exact mean of a bucket, ``None`` below 75 % data capture (4·n >= 3·expected)."""
    if bucket is None or 4 * bucket.n < 3 * expected:
        return None
    return bucket.mean()


def _means(buckets: dict[int, _Bucket], expected: int) -> dict[datetime, float]:
    if expected < 1:
        raise ValueError(f"expected samples per period must be >= 1, got {expected!r}")
    out = {_at(s): _mean(b, expected) for s, b in sorted(buckets.items())}
    return {t: m for t, m in out.items() if m is not None}


def _expected_per(base: timedelta, expected_interval_s: int) -> int:
    """Samples expected in one base period from the sensor's interval (at least one)."""
    if expected_interval_s <= 0:
        raise ValueError(f"expected_interval_s must be > 0, got {expected_interval_s!r}")
    return max(1, int(base.total_seconds()) // expected_interval_s)


def hourly_means(
    samples: Iterable[tuple[datetime, float]], expected_per_hour: int
) -> dict[datetime, float]:
    """Hourly means keyed by the hour's START in UTC (10:00 covers [10:00, 11:00)).

    An hour gets a mean only with >= 75 % of ``expected_per_hour`` samples; a repeated
    timestamp counts once (the first value wins).
    """
    return _means(_collect(samples, HOUR), expected_per_hour)


def fifteen_minute_means(
    samples: Iterable[tuple[datetime, float]], expected_per_15min: int
) -> dict[datetime, float]:
    """15-minute means keyed by the period's START in UTC, with the same 75 % rule."""
    return _means(_collect(samples, QUARTER_HOUR), expected_per_15min)


def _window_mean(
    means: Mapping[datetime, float], end: datetime, base: timedelta, span: int, min_valid: int
) -> float | None:
    if not 1 <= min_valid <= span:
        raise ValueError(f"need 1 <= min_valid <= span, got {min_valid}, {span}")
    if _micros(end) % (base // _US):
        raise ValueError(f"window end {end!r} is not on a {base} boundary")
    values = [means[t] for k in range(1, span + 1) if (t := end - k * base) in means]
    return math.fsum(values) / len(values) if len(values) >= min_valid else None


def running_mean(
    hourly: Mapping[datetime, float], end_hour: datetime, hours: int, min_hours: int
) -> float | None:
    """Mean of the hourly means in [end_hour - hours, end_hour) (keys are hour starts).

    ``end_hour`` is the instant the window ends, on the hour: the 8-hour mean "ending
    14:00" averages the hours starting 06:00 … 13:00. ``None`` with < ``min_hours`` values.
    """
    return _window_mean(hourly, end_hour, HOUR, hours, min_hours)


def _floor(us: int, size: timedelta) -> int:
    return us - us % (size // _US)


def _concentration(
    avg: Averaging, buckets: dict[int, _Bucket], expected: int, at: datetime
) -> float | None:
    size_us = avg.base // _US
    end = _floor(_micros(at), avg.base)
    starts = (end - k * size_us for k in range(1, avg.span + 1))
    window = {_at(s): _mean(buckets.get(s), expected) for s in starts}
    means = {t: m for t, m in window.items() if m is not None}
    return _window_mean(means, _at(end), avg.base, avg.span, avg.min_valid)


def pollutant_concentration(
    pollutant: str,
    samples: Iterable[tuple[datetime, float]],
    at: datetime,
    expected_interval_s: int,
) -> float | None:
    """The averaged concentration DEFRA's rule gives at ``at`` from complete periods only.

    NO2: mean of the latest complete hour; PM2.5/PM10: 24-hour running mean; O3: 8-hour
    running mean; SO2: latest complete 15-minute mean. ``None`` when data capture fails.
    """
    avg = _averaging(pollutant)
    expected = _expected_per(avg.base, expected_interval_s)
    return _concentration(avg, _collect(samples, avg.base), expected, at)


def _result(concentrations: Mapping[str, float | None]) -> DaqiResult:
    per = {p: (c, index_for(p, c)) for p, c in concentrations.items() if c is not None}
    overall = site_index({p: i for p, (_, i) in per.items()})
    return DaqiResult(overall, None if overall is None else band_for(overall), per)


def daqi_at(
    samples_by_pollutant: Mapping[str, Iterable[tuple[datetime, float]]],
    at: datetime,
    expected_interval_s: int,
) -> DaqiResult:
    """The site's DAQI at ``at`` from raw samples per pollutant (keys from ``POLLUTANTS``)."""
    for p in samples_by_pollutant:
        _averaging(p)
    return _result(
        {
            p: pollutant_concentration(p, samples_by_pollutant[p], at, expected_interval_s)
            for p in POLLUTANTS
            if p in samples_by_pollutant
        }
    )


class DaqiState:
    """Incremental, JSON-serialisable DAQI state for one site; equals ``daqi_at`` exactly.

    Holds per pollutant one exact partial sum and sample count per hour (15 min for SO2),
    never raw values, so its size is bounded by the buckets of the longest window whatever
    the sensor's cadence. Call ``prune(t - LONGEST_WINDOW)`` to bound memory; samples before
    the pruned horizon are then ignored.

    Each sample must be added once. The pipeline guarantees it: detectors see only the
    readings the store inserted (each (sensor, metric, time) once), and a late reading's
    replay starts from a snapshot that holds only older ones. (Version 1 kept every
    sample's offset to drop repeats itself: 8,640 per pollutant and day at a 10-second
    cadence, parsed and re-serialised with every batch; ``from_json`` still reads it.)
    """

    def __init__(self, expected_interval_s: int) -> None:
        self.expected_interval_s = expected_interval_s
        self._expected = {
            p: _expected_per(a.base, expected_interval_s) for p, a in AVERAGING.items()
        }
        self._buckets: dict[str, dict[int, _Bucket]] = {p: {} for p in POLLUTANTS}
        self._horizon: int | None = None  # epoch µs, on the hour

    def add(self, pollutant: str, time: datetime, value: float) -> bool:
        """Add one sample (once: see the class); ``False`` when older than the horizon."""
        avg = _averaging(pollutant)
        us = _micros(time)
        if self._horizon is not None and us < self._horizon:
            return False
        return _add(self._buckets[pollutant], avg.base // _US, us, value, dedupe=False)

    def evaluate(self, at: datetime) -> DaqiResult:
        """The DAQI at ``at``; pollutants never added are absent, as in ``daqi_at``."""
        return _result(
            {
                p: _concentration(AVERAGING[p], buckets, self._expected[p], at)
                for p, buckets in self._buckets.items()
                if buckets
            }
        )

    def prune(self, before: datetime) -> None:
        """Forget everything before the hour containing ``before``."""
        horizon = _floor(_micros(before), HOUR)
        if self._horizon is not None and horizon <= self._horizon:
            return
        self._horizon = horizon
        for buckets in self._buckets.values():
            for start in [s for s in buckets if s < horizon]:
                del buckets[start]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready snapshot (sums as exact "n/d" strings, then sample counts)."""
        return {
            "version": 2,
            "expected_interval_s": self.expected_interval_s,
            "horizon_us": self._horizon,
            "buckets": {
                p: [[s, b.to_text(), b.n] for s, b in sorted(buckets.items())]
                for p, buckets in self._buckets.items()
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DaqiState:
        """Rebuild a state from ``to_json`` output (version 2, or 1: offsets, counted)."""
        version = data.get("version")
        if version not in (1, 2):
            raise ValueError(f"unsupported DaqiState version: {version!r}")
        state = cls(int(data["expected_interval_s"]))
        horizon = data["horizon_us"]
        state._horizon = None if horizon is None else int(horizon)
        for p, rows in data["buckets"].items():
            _averaging(p)
            state._buckets[p] = {
                int(s): _Bucket.parsed(str(total), len(set(n)) if version == 1 else int(n))
                for s, total, n in rows
            }
        return state
