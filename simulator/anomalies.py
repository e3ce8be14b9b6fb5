"""Labelled anomaly scenarios: a small fleet for days with a fault injected for each alert rule."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sensors.catalogue import KINDS
from sensors.reading import Sample
from sensors.topics import SensorAddress, topic_for
from simulator.air import AirModel, AirParams
from simulator.anomaly_labels import Label
from simulator.bins import BinModel, BinParams
from simulator.energy import MeterModel, MeterParams
from simulator.fleet import PayloadFormat, encode_samples
from simulator.truth import derived_labels

H = 3600.0
# anomaly -> (kind, slots it occupies, rules it must raise, how long it lasts in seconds)
ANOMALIES: dict[str, tuple[str, int, tuple[str, ...], float]] = {
    "pm_episode": ("air_quality", 7, ("daqi_high",), 30 * H),
    "no2_high": ("air_quality", 1, ("daqi_high",), 3 * H),
    "no2_very_high": ("air_quality", 1, ("daqi_high", "daqi_very_high"), 3 * H),
    "flatline": ("air_quality", 1, ("sensor_flatline",), 3 * H),
    "statistical": ("air_quality", 1, ("statistical_outlier",), 2 * 150.0),
    "stale": ("air_quality", 1, ("sensor_stale",), 5 * H),
    "impossible": ("air_quality", 1, ("sensor_impossible_value",), 1.0),
    "fire": ("waste_bin", 1, ("bin_fire_risk",), 1 * H),
    "fire_flag": ("waste_bin", 1, ("bin_fire_risk",), 1 * H),
    "tilt": ("waste_bin", 1, ("bin_tilted",), 4 * H),
    "low_battery": ("waste_bin", 1, ("sensor_low_battery",), 8 * H),
    "fill_drop": ("waste_bin", 1, ("bin_fill_drop_review",), 0.0),
    "bin_stale": ("waste_bin", 1, ("sensor_stale",), 8 * H),
    "bin_impossible": ("waste_bin", 1, ("sensor_impossible_value",), 1.0),
    "out_of_hours": ("energy_meter", 1, ("energy_out_of_hours",), 3 * H),
    "spike": ("energy_meter", 1, ("energy_spike",), 1.0),
    "register_reset": ("energy_meter", 1, ("energy_register_reset",), 1.0),
    # 8 x base load for 20 minutes out of hours (issue 20): on meters reporting every 15 min
    # or faster, where 20 minutes is more than one reading
    "long_spike": ("energy_meter", 1, ("energy_spike",), 20 * 60.0),
    # a device (or its gateway) offline for 2 h, buffering, then uploading the backlog within
    # ``ScenarioSpec.upload_s``: nothing arrives for 2 h (stale), then old readings arrive
    "backlog": ("air_quality", 1, ("sensor_stale", "sensor_data_delayed"), 2 * H),
    "meter_backlog": ("energy_meter", 1, ("sensor_stale", "sensor_data_delayed"), 2 * H),
    # a gateway whose uplink is congested for 6 h (it forwards one reading per 2.5 intervals,
    # so the backlog grows to hours), then drains it at 30 readings per interval: something
    # arrives all along, so nothing is stale, but the readings arrive hours late
    "gateway_lag": ("air_quality", 1, ("sensor_data_delayed",), 6 * H),
    "meter_gateway_lag": ("energy_meter", 1, ("sensor_data_delayed",), 6 * H),
    # flapping: a radio link that drops for 6 intervals and comes back for 2, 6 times over
    # (one stale episode per drop), and a bin whose tilt flag toggles at every reading for 6
    # rounds (one tilted episode per round); labels: one per episode
    "link_flap": ("air_quality", 1, ("sensor_stale",), 6 * 8 * 150.0),
    "tilt_flap": ("waste_bin", 1, ("bin_tilted",), 6 * 2 * 900.0),
}
_BACKLOGS = ("backlog", "meter_backlog")
_GATEWAYS = ("gateway_lag", "meter_gateway_lag")
_FLAPS = ("link_flap", "tilt_flap")
FLAP_ROUNDS = 6
LINK_FLAP_DOWN, LINK_FLAP_UP = 6, 2  # intervals silent, intervals sending, per round
GATEWAY_SLOW, GATEWAY_FAST = 2.5, 1 / 30  # uplink gap between readings, in intervals
_IMPOSSIBLE = {
    "air_quality": ("pm2_5", 5000.0),
    "waste_bin": ("fill_level", 250.0),
    "energy_meter": ("power", 5e7),
}
_SLOT_H = {"air_quality": 8.0, "waste_bin": 24.0, "energy_meter": 24.0}
_WARMUP_SLOTS = {"air_quality": 1, "waste_bin": 2, "energy_meter": 2}
_PREFIX = {"air_quality": "aq", "waste_bin": "bin", "energy_meter": "em"}


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    """Fleet size, duration per kind and how many of each anomaly to inject."""

    seed: int = 1
    start: datetime = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, GMT
    sensors: dict[str, int] = field(
        default_factory=lambda: {"air_quality": 11, "waste_bin": 16, "energy_meter": 14}
    )
    days: dict[str, int] = field(
        default_factory=lambda: {"air_quality": 4, "waste_bin": 9, "energy_meter": 9}
    )
    # extra energy meters that report at their own interval: {interval_s: how many}; the
    # kind's catalogue interval (half-hourly) is used for the ``sensors`` count
    meters_every: dict[int, int] = field(default_factory=dict)
    upload_s: float = 60.0  # how long a backlog upload takes once the device is back
    counts: dict[str, int] = field(
        default_factory=lambda: {
            "pm_episode": 5,
            "no2_high": 8,
            "no2_very_high": 8,
            "flatline": 20,
            "statistical": 20,
            "stale": 10,
            "impossible": 10,
            "fire": 10,
            "fire_flag": 10,
            "tilt": 20,
            "low_battery": 15,
            "fill_drop": 12,
            "bin_stale": 10,
            "bin_impossible": 10,
            "register_reset": 14,
            "out_of_hours": 25,
            "spike": 25,
        }
    )


def bench_spec(seed: int = 1) -> ScenarioSpec:
    """The detection bench's scenario: the default fleet plus meters reporting every minute
    and every 15 minutes, 20-minute spikes on those, and backlog uploads (issue 20)."""
    base = ScenarioSpec(seed=seed)
    counts = {k: v for k, v in base.counts.items() if k not in ("out_of_hours", "spike")}
    counts.pop("register_reset")
    # placed first: they need the fast meters (long spikes) or a whole slot
    counts = {
        **counts,
        "backlog": 3,
        "long_spike": 8,
        "meter_backlog": 4,
        "gateway_lag": 2,
        "meter_gateway_lag": 3,
        "link_flap": 3,
        "tilt_flap": 3,
        "register_reset": 14,
        "out_of_hours": 28,
        "spike": 28,
    }
    return ScenarioSpec(seed=seed, meters_every={60: 3, 900: 3}, counts=counts)


def small_bench_spec(seed: int = 1) -> ScenarioSpec:
    """A few sensors for a smoke test of the bench: meters at 1, 15 and 30 min, a device
    backlog, a congested gateway and both flaps, on 3 air monitors, 3 bins and 4 meters."""
    return ScenarioSpec(
        seed=seed,
        sensors={"air_quality": 3, "waste_bin": 3, "energy_meter": 2},
        days={"air_quality": 2, "waste_bin": 3, "energy_meter": 4},
        meters_every={60: 1, 900: 1},
        counts={
            "long_spike": 1,
            "meter_backlog": 1,
            "meter_gateway_lag": 1,
            "backlog": 1,
            "gateway_lag": 1,
            "link_flap": 1,
            "tilt_flap": 1,
            "stale": 1,
            "no2_very_high": 1,
            "fire": 1,
            "tilt": 1,
            "spike": 2,
            "out_of_hours": 2,
            "register_reset": 1,
        },
    )


@dataclass(frozen=True, slots=True)
class ScenarioMessage:
    """One MQTT message of the scenario; ``t`` is seconds from the scenario start.

    ``arrival`` is when the platform receives it when that is not its event time (a backlog
    upload); None: it arrives when it is measured.
    """

    topic: str
    payload: bytes
    t: float
    sensor_id: str
    time: datetime
    samples: tuple[Sample, ...]
    arrival: datetime | None = None


@dataclass(frozen=True, slots=True)
class Injection:
    """One planned anomaly on one sensor (epoch seconds)."""

    sensor_id: str
    anomaly: str
    start: float
    end: float
    magnitude: float


@dataclass(frozen=True, slots=True)
class Upload:
    """A backlog upload: from its first to its last late reading's arrival, ``sensor_stale``
    must not open for the sensor (it is arriving, however old its readings)."""

    sensor_id: str
    start: datetime
    end: datetime


@dataclass(slots=True)
class Scenario:
    """Messages in time order, labels, and which sensors of which kind ran for how long."""

    spec: ScenarioSpec
    messages: list[ScenarioMessage]
    labels: list[Label]
    sensors: dict[str, str]  # sensor id -> kind
    intervals: dict[str, float] = field(default_factory=dict)  # sensor id -> reporting interval
    uploads: list[Upload] = field(default_factory=list)  # backlog uploads and congested gateways


def _sensor_ids(spec: ScenarioSpec) -> tuple[dict[str, list[str]], dict[str, float]]:
    """Sensor ids per kind (extra meters included) and each sensor's reporting interval."""
    ids = {k: [f"{_PREFIX[k]}-{i + 1:03d}" for i in range(n)] for k, n in spec.sensors.items()}
    intervals = {s: float(KINDS[k].expected_interval_s) for k, ss in ids.items() for s in ss}
    for every, n in sorted(spec.meters_every.items()):
        extra = [f"em{every // 60}m-{i + 1:03d}" for i in range(n)]
        ids.setdefault("energy_meter", []).extend(extra)
        intervals.update(dict.fromkeys(extra, float(every)))
    return ids, intervals


def _eligible(kind: str, anomaly: str, slot_start: float, interval: float) -> bool:
    day = datetime.fromtimestamp(slot_start, tz=UTC)
    if anomaly == "long_spike" and interval > 900:
        return False  # 20 minutes on a half-hourly meter is one reading or none
    if kind == "energy_meter":
        return day.weekday() < 5  # weekend baselines are not learnt yet in a 9-day run
    return anomaly != "fill_drop"  # placed by _place_fill_drop instead


def _plan(
    spec: ScenarioSpec,
    ids: dict[str, list[str]],
    rng: random.Random,
    bins: dict[str, BinModel],
    intervals: dict[str, float],
) -> list[Injection]:
    t0 = spec.start.timestamp()
    free: dict[str, list[int]] = {}
    for kind, sensors in ids.items():
        n = int(spec.days[kind] * 24 / _SLOT_H[kind])
        for sid in sensors:
            free[sid] = list(range(_WARMUP_SLOTS[kind], n))
    plans: list[Injection] = []
    once: set[tuple[str, str]] = set()
    for anomaly, count in spec.counts.items():
        kind, need, _, duration = ANOMALIES[anomaly]
        slot_s = _SLOT_H[kind] * H
        for _ in range(count):
            if anomaly == "fill_drop":
                inj = _place_fill_drop(spec, ids[kind], free, bins, rng)
                if inj is not None:
                    plans.append(inj)
                continue
            options = [
                (sid, s)
                for sid in ids[kind]
                for s in free[sid]
                if all(s + k in free[sid] for k in range(need))
                and (sid, anomaly) not in once
                and _eligible(kind, anomaly, t0 + s * slot_s, intervals[sid])
            ]
            if not options:
                raise ValueError(f"no room for another {anomaly!r}: enlarge the scenario")
            sid, s = options[rng.randrange(len(options))]
            for k in range(need):
                free[sid].remove(s + k)
            if anomaly == "register_reset":
                once.add((sid, anomaly))  # one new register per meter keeps the maths simple
            begin = t0 + s * slot_s + _offset(anomaly, rng)
            plans.append(Injection(sid, anomaly, begin, begin + duration, rng.random()))
    return plans


def _offset(anomaly: str, rng: random.Random) -> float:
    if anomaly == "out_of_hours":
        return rng.uniform(0.5, 2.0) * H  # 00:30-02:00 local (GMT in January)
    if anomaly == "spike":
        return rng.choice([rng.uniform(4.5, 6.5), rng.uniform(19.0, 22.0)]) * H  # dark hours
    if anomaly == "long_spike":
        return rng.choice([rng.uniform(1.0, 5.5), rng.uniform(19.5, 23.0)]) * H  # night
    if anomaly in ("no2_high", "no2_very_high"):
        return float(rng.randrange(1, 4)) * H  # on the hour: hourly means see it whole
    return rng.uniform(1.0, 2.0) * H


def _place_fill_drop(
    spec: ScenarioSpec,
    sensors: list[str],
    free: dict[str, list[int]],
    bins: dict[str, BinModel],
    rng: random.Random,
) -> Injection | None:
    t0 = spec.start.timestamp()
    for _ in range(200):
        sid = sensors[rng.randrange(len(sensors))]
        model = bins[sid]
        k = model.cycle(t0) + rng.randrange(3, 12)  # after two collections were seen
        a, b = model.collection_time(k), model.collection_time(k + 1)
        t = a + rng.uniform(0.3, 0.7) * (b - a)
        slot = int((t - t0) // (_SLOT_H["waste_bin"] * H))
        end_slot = int((b - t0) // (_SLOT_H["waste_bin"] * H))
        if (
            t > t0 + spec.days["waste_bin"] * 86400 - 6 * H
            or model.fill(t) < 30.0
            or b - a > 80 * H
            or not all(s in free[sid] for s in range(slot, end_slot + 1))
        ):
            continue
        for s in range(slot, end_slot + 1):
            free[sid].remove(s)
        return Injection(sid, "fill_drop", t, b, model.fill(t))
    return None


def _apply(
    inj: Injection,
    t: float,
    v: dict[str, float | bool],
    memo: dict[str, float],
    interval: float,
    base_w: float,
) -> None:
    """Mutate ``v`` (the sensor's values at ``t``) for an injection active at ``t``."""
    a, k = inj.anomaly, round((t - inj.start) / interval)
    if a == "pm_episode":
        v["pm2_5"], v["pm10"] = 58 + 6 * ((k * 0.37) % 1), 60 + 10 * ((k * 0.61) % 1)
    elif a in ("no2_high", "no2_very_high"):
        v["no2"] = (420 if a == "no2_high" else 620) + 90 * ((k * 0.43) % 1)
    elif a == "flatline":
        v["pm10"] = memo.setdefault("stuck", float(v["pm10"]))
    elif a == "statistical":
        v["temperature"] = float(v["temperature"]) + 12.0
    elif a == "fire":
        v["temperature"] = 62.0 + 8.0 * k + 3 * inj.magnitude
    elif a == "fire_flag":
        v["fire"] = True
    elif a == "tilt":
        v["tilt"] = True
    elif a == "low_battery":
        v["battery"] = round(14.5 - 0.01 * k, 2)
    elif a == "fill_drop":
        v["fill_level"] = round(max(0.5, float(v["fill_level"]) - inj.magnitude + 0.5), 1)
    elif a == "out_of_hours":
        v["power"] = float(v["power"]) + (1.0 + 0.4 * inj.magnitude) * base_w
    elif a == "spike":
        v["power"] = float(v["power"]) + (3.5 + 1.5 * inj.magnitude) * base_w
    elif a == "long_spike":
        v["power"] = float(v["power"]) + 7.0 * base_w  # 8 x the base load
    elif a == "register_reset":
        offset = memo.setdefault("reset", float(v["energy_import"]) - 5.0 * inj.magnitude)
        v["energy_import"] = round(float(v["energy_import"]) - offset, 4)


def _persistent(inj: Injection, t: float) -> bool:
    """Injections whose effect outlasts their window (a replaced battery, a new register)."""
    return inj.anomaly in ("register_reset",) and t >= inj.start


def build_scenario(spec: ScenarioSpec | None = None) -> Scenario:
    """Generate the scenario: deterministic for a given spec."""
    spec = spec or ScenarioSpec()
    rng = random.Random(f"civicpulse-anomalies/{spec.seed}")
    t0 = spec.start.timestamp()
    ids, intervals = _sensor_ids(spec)
    models: dict[str, AirModel | BinModel | MeterModel] = {}
    bins: dict[str, BinModel] = {}
    for kind, sensors in ids.items():
        for sid in sensors:
            r = random.Random(f"civicpulse-anomalies/{spec.seed}/{sid}")
            if kind == "air_quality":
                models[sid] = AirModel(AirParams.draw(r), "aberdeen", r)
            elif kind == "waste_bin":
                models[sid] = bins[sid] = BinModel(
                    BinParams.draw(r), "aberdeen", r, sid, spec.start
                )
            else:
                models[sid] = MeterModel(MeterParams.draw(r), r)
    plans = _plan(spec, ids, rng, bins, intervals)
    by_sensor: dict[str, list[Injection]] = {}
    for inj in plans:
        by_sensor.setdefault(inj.sensor_id, []).append(inj)
    messages: list[ScenarioMessage] = []
    labels: list[Label] = []
    uploads: list[Upload] = []
    for kind, sensors in ids.items():
        for sid in sensors:
            interval = intervals[sid]
            msgs = _emit(
                sid,
                kind,
                models[sid],
                by_sensor.get(sid, []),
                t0,
                spec.days[kind] * 86400.0,
                interval,
                rng.uniform(0, interval),
                labels,
                spec.upload_s,
                uploads,
            )
            messages.extend(msgs)
    messages.sort(key=lambda m: (m.t, m.sensor_id))
    for lb in derived_labels(messages, ids):
        twin = [
            x
            for x in labels
            if (x.sensor_id, x.rule) == (lb.sensor_id, lb.rule)
            and x.anomaly != "derived"
            and x.start <= lb.start <= x.end
        ]
        if not twin:  # natural episodes only: an injected one is already labelled
            labels.append(lb)
    labels.sort(key=lambda lb: (lb.start, lb.sensor_id, lb.rule))
    return Scenario(
        spec,
        messages,
        labels,
        {s: k for k, ss in ids.items() for s in ss},
        intervals,
        sorted(uploads, key=lambda u: (u.start, u.sensor_id)),
    )


def _emit(
    sid: str,
    kind: str,
    model: AirModel | BinModel | MeterModel,
    injections: list[Injection],
    t0: float,
    span: float,
    interval: float,
    phase: float,
    labels: list[Label],
    upload_s: float = 60.0,
    uploads: list[Upload] | None = None,
) -> list[ScenarioMessage]:
    address = SensorAddress("aberdeen", kind, sid)
    topic = topic_for(address)
    base_w = model.p.base_w if isinstance(model, MeterModel) else 0.0
    memos: dict[int, dict[str, float]] = {id(i): {} for i in injections}
    first_seen: dict[int, float] = {}
    first_held: dict[int, float] = {}  # a backlog's first buffered reading
    episodes: dict[int, list[list[float]]] = {}  # flap episodes, gateway (event, arrival)
    gate_free: dict[int, float] = {}  # when a congested gateway can forward the next reading
    uploads = [] if uploads is None else uploads
    last_sent = t0
    out: list[ScenarioMessage] = []
    k = 0
    while (t := t0 + round(phase) + k * interval) < t0 + span:
        k += 1
        when = datetime.fromtimestamp(t, tz=UTC)
        values: dict[str, float | bool] = dict(model.values(when))
        active = [
            i
            for i in injections
            if i.start <= t < max(i.end, i.start + interval) or _persistent(i, t)
        ]
        if any(i.anomaly in ("stale", "bin_stale") for i in active):
            for i in active:
                first_seen.setdefault(id(i), last_sent)
            continue
        if _flap(t, interval, active, values, last_sent, episodes):
            continue  # a link flap's silent part
        arrival = None
        for inj in active:
            if inj.anomaly in _FLAPS or inj.anomaly in _GATEWAYS:
                continue  # _flap and _gateway
            if inj.anomaly in _BACKLOGS:  # buffered: uploaded in order within upload_s
                first_seen.setdefault(id(inj), last_sent)
                first_held.setdefault(id(inj), t)
                share = (t - inj.start) / (inj.end - inj.start)
                arrival = datetime.fromtimestamp(inj.end, tz=UTC) + timedelta(
                    seconds=upload_s * share
                )
                continue
            first_seen.setdefault(id(inj), t)
            if inj.anomaly in ("impossible", "bin_impossible"):
                metric, value = _IMPOSSIBLE[kind]
                values[metric] = value
            else:
                _apply(inj, t, values, memos[id(inj)], interval, base_w)
        arrival = _gateway(t, interval, injections, gate_free, episodes) or arrival
        if (
            isinstance(model, BinModel)
            and not any(i.anomaly == "low_battery" for i in active)
            and any(i.anomaly == "low_battery" and t >= i.end for i in injections)
        ):
            values["battery"] = 99.0  # replaced after the low-battery episode
        samples = tuple(Sample(metric=m, value=v, time=when) for m, v in values.items())
        payload = encode_samples(PayloadFormat.CIVICPULSE_JSON, sid, samples)
        out.append(ScenarioMessage(topic, payload, t - t0, sid, when, samples, arrival))
        last_sent = t
    for inj in injections:
        if inj.anomaly in _FLAPS or inj.anomaly in _GATEWAYS:
            labels.extend(_episode_labels(sid, kind, inj, episodes.get(id(inj), []), uploads))
            continue
        start = first_seen.get(id(inj))
        if start is None:
            continue
        _, _, rules, _ = ANOMALIES[inj.anomaly]
        grace = {"pm_episode": 24 * H, "no2_high": H, "no2_very_high": H}.get(inj.anomaly, 0.0)
        end = max(inj.end, start + 60.0) + grace
        window = (
            24 * H if inj.anomaly == "pm_episode" else (H if inj.anomaly.startswith("no2") else 0.0)
        )
        for rule in rules:
            begin, until = start, end
            if inj.anomaly in _BACKLOGS:  # silent until the upload, then old readings arrive
                until = inj.end
                if rule == "sensor_data_delayed":
                    begin, until = first_held[id(inj)], inj.end + upload_s
            labels.append(
                Label(
                    sid,
                    kind,
                    rule,
                    inj.anomaly,
                    datetime.fromtimestamp(begin, tz=UTC),
                    datetime.fromtimestamp(until, tz=UTC),
                    window,
                )
            )
        if inj.anomaly in _BACKLOGS and inj.end < t0 + span:
            uploads.append(Upload(sid, _at(inj.end), _at(inj.end + upload_s)))
    return out


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)


def _flap(
    t: float,
    interval: float,
    active: list[Injection],
    values: dict[str, float | bool],
    last_sent: float,
    episodes: dict[int, list[list[float]]],
) -> bool:
    """Apply a flap active at ``t``; True: the reading is not sent (a link flap's drop).

    ``episodes[id(inj)]`` collects each flap episode as ``[start, end]`` (event time).
    """
    for inj in active:
        if inj.anomaly not in _FLAPS:
            continue
        step = int((t - inj.start) // interval)
        eps = episodes.setdefault(id(inj), [])
        if inj.anomaly == "link_flap":
            if step % (LINK_FLAP_DOWN + LINK_FLAP_UP) < LINK_FLAP_DOWN:
                if not eps or len(eps[-1]) == 2:
                    eps.append([last_sent])  # silent since the last reading sent
                return True
            if eps and len(eps[-1]) == 1:
                eps[-1].append(t)  # back: this reading ends the drop
        else:  # tilt_flap: tilted at even steps, upright at odd ones
            values["tilt"] = step % 2 == 0
            if values["tilt"]:
                eps.append([t])
            elif eps and len(eps[-1]) == 1:
                eps[-1].append(t)
    return False


def _gateway(
    t: float,
    interval: float,
    injections: list[Injection],
    free: dict[int, float],
    episodes: dict[int, list[list[float]]],
) -> datetime | None:
    """The arrival of the reading measured at ``t`` behind a congested gateway (a FIFO
    uplink: one reading per ``GATEWAY_SLOW`` intervals while congested, then one per
    ``GATEWAY_FAST``); None when it is not queued. Records ``[event, arrival]`` pairs."""
    for inj in injections:
        if inj.anomaly not in _GATEWAYS or t < inj.start:
            continue
        if t >= inj.end and free.get(id(inj), t) <= t:
            continue  # drained
        at = max(t, free.get(id(inj), t))
        free[id(inj)] = at + (GATEWAY_SLOW if at < inj.end else GATEWAY_FAST) * interval
        episodes.setdefault(id(inj), []).append([t, at])
        return _at(at) if at > t else None
    return None


def _episode_labels(
    sid: str, kind: str, inj: Injection, episodes: list[list[float]], uploads: list[Upload]
) -> list[Label]:
    """Labels of a flap (one per episode) or a congested gateway (its delayed readings)."""
    _, _, (rule,), _ = ANOMALIES[inj.anomaly]
    if inj.anomaly in _FLAPS:
        return [
            Label(sid, kind, rule, inj.anomaly, _at(e[0]), _at(e[1]))
            for e in episodes
            if len(e) == 2
        ]
    late = [(t, at) for t, at in episodes if at > t]
    if not late:
        return []
    uploads.append(Upload(sid, _at(late[0][1]), _at(late[-1][1])))
    # the rule's own definition of "delayed" (received over 2 of the kind's intervals late):
    # the label follows from the queue's arrival times, not from what the rule did
    limit = 2.0 * KINDS[kind].expected_interval_s
    over = [(t, at) for t, at in late if at - t > limit]
    if not over:
        return []
    return [Label(sid, kind, rule, inj.anomaly, _at(over[0][0]), _at(late[-1][1]))]
