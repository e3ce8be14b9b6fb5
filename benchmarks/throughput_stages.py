"""Shared parts of the throughput benchmarks (``civicpulse bench embedded|pipeline``).

The load (simulator fleet, regrouped into messages of 1, 6 or 50 readings), the publisher
(QoS 1, one connection per group of devices, closed-loop or paced), the raw stage probes
(each stage alone, on the same machine and load), process sampling (peak RSS, CPU seconds)
and the report (a dict; ``render`` prints it as tables). The engine modules
(``throughput_embedded``, ``throughput_pipeline``) run the end-to-end phases.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sensors.intake import route_message  # noqa: E402
from sensors.reading import Reading, Sample, decode_reading, pack_encoded  # noqa: E402
from sensors.topics import topic_for  # noqa: E402
from sensors.validation import DEFAULT_LIMITS  # noqa: E402
from simulator.fleet import Fleet, encode_samples  # noqa: E402
from stream_processors.batch import DEFAULT_BATCH_READINGS  # noqa: E402

SHAPES = (1, 6, 50)
EMIT_EVERY_S = 10.0  # event time between two emissions of one simulated device
Step = Callable[[str], None]  # progress: a short description of what runs now


def no_step(_what: str) -> None:
    """Progress sink that shows nothing."""


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0-1) of ``values`` (nearest rank), None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the load ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT message of the load: the key of its first reading finds it in the database."""

    topic: str
    payload: bytes
    readings: int
    first_key: tuple[str, str, datetime]
    client: int  # the publishing connection (a device always uses the same one)


class Load:
    """The fleet's readings, in event-time order per device, handed out phase by phase.

    Event time runs on from one phase to the next (and from one shape to the next), so no
    reading is ever late for its device; it starts two days ago, ten seconds per emission.
    """

    def __init__(
        self, sensors: int, clients: int, seed: int = 1, after: datetime | None = None
    ) -> None:
        """``after``: the newest event time already stored (a reused database): start past it."""
        self.fleet = Fleet.build(sensors, seed=seed)
        self.clients = clients
        self._client_of = {s.sensor_id: i % clients for i, s in enumerate(self.fleet.sensors)}
        self._specs = {s.sensor_id: s for s in self.fleet.sensors}
        self._topics = {s.sensor_id: topic_for(s.address) for s in self.fleet.sensors}
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
        if after is not None and after >= start:
            start = after + timedelta(seconds=1)
        rate = len(self.fleet.sensors) / EMIT_EVERY_S
        self._emissions = self.fleet.emissions(10**9, start=start, rate=rate)

    def messages(self, shape: int, readings: int) -> list[Message]:
        """At least ``readings`` readings in messages of ``shape`` readings of one device."""
        out: list[Message] = []
        pending: dict[str, list[Sample]] = {}
        total = 0
        while total < readings:
            emission = next(self._emissions)
            buf = pending.setdefault(emission.sensor_id, [])
            # in the order detectors see them (time, then metric): a device that splits one
            # emission over two messages sends no reading "late" for its own detectors
            for sample in sorted(emission.samples, key=lambda x: x.metric):
                buf.append(sample)
                if len(buf) == shape:
                    out.append(self._message(emission.sensor_id, buf))
                    total += shape
                    buf = pending[emission.sensor_id] = []
        return out  # what is left in ``pending`` is never sent: a gap, never a late reading

    def _message(self, sensor_id: str, samples: list[Sample]) -> Message:
        spec = self._specs[sensor_id]
        first = samples[0]
        return Message(
            topic=self._topics[sensor_id],
            payload=encode_samples(spec.payload_format, sensor_id, samples),
            readings=len(samples),
            first_key=(sensor_id, first.metric, first.time),
            client=self._client_of[sensor_id],
        )


def routed_readings(messages: Sequence[Message]) -> list[Reading]:
    """The canonical readings the load decodes to (for the detection and storage probes)."""
    now = datetime.now(UTC)
    return [
        decode_reading(value)
        for m in messages
        for _key, value in route_message(m.topic, m.payload, now, DEFAULT_LIMITS).readings
    ]


# -- publishing ----------------------------------------------------------------------------


@dataclass(slots=True)
class Published:
    """Send and acknowledgement wall times (``time.time()``) of each message, by index."""

    sent: dict[int, float] = field(default_factory=dict)
    acked: dict[int, float] = field(default_factory=dict)

    @property
    def elapsed(self) -> float:
        """First send → last acknowledgement, seconds."""
        if not self.acked:
            return float("nan")
        return max(self.acked.values()) - min(self.sent.values())


def publish(
    port: int,
    messages: Sequence[Message],
    clients: int,
    *,
    rate: float | None = None,
    window: int = 64,
    timeout_s: float = 300.0,
    stop_after_s: float | None = None,
) -> Published:
    """Publish ``messages`` QoS 1: at ``rate`` messages/s, or as fast as acknowledgements
    allow (``rate`` None) with at most ``window`` unacknowledged messages per connection;
    ``stop_after_s``: send no more after that long (the rest are not sent)."""
    out = Published()
    lock = threading.Lock()
    index: list[dict[int, int]] = [{} for _ in range(clients)]
    early: list[dict[int, float]] = [{} for _ in range(clients)]
    slots = [threading.BoundedSemaphore(window) for _ in range(clients)]
    all_acked = threading.Event()
    run = uuid.uuid4().hex[:6]
    conns: list[mqtt.Client] = []
    expected = [len(messages)]

    def acked(c: int, mid: int, at: float) -> None:
        out.acked[index[c].pop(mid)] = at
        slots[c].release()
        if len(out.acked) == expected[0]:
            all_acked.set()

    for c in range(clients):
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"tp-{run}-{c}", userdata=c)
        client.max_inflight_messages_set(window)
        client.max_queued_messages_set(0)

        def on_publish(_cl: object, c: int, mid: int, _rc: object, _p: object) -> None:
            at = time.time()
            with lock:  # never held around a paho call: no deadlock with paho's own locks
                if mid in index[c]:
                    acked(c, mid, at)
                else:
                    early[c][mid] = at  # PUBACK raced ahead of publish() returning

        client.on_publish = on_publish
        client.connect("127.0.0.1", port)
        client.loop_start()
        conns.append(client)
    try:
        t0 = time.monotonic()
        for i, m in enumerate(messages):
            if stop_after_s is not None and time.monotonic() - t0 > stop_after_s:
                break
            if rate is not None and (wait := t0 + i / rate - time.monotonic()) > 0:
                time.sleep(wait)
            if not slots[m.client].acquire(timeout=timeout_s):
                break
            out.sent[i] = time.time()
            mid = conns[m.client].publish(m.topic, m.payload, qos=1).mid
            with lock:
                index[m.client][mid] = i
                if (at := early[m.client].pop(mid, None)) is not None:
                    acked(m.client, mid, at)
        with lock:
            expected[0] = len(out.sent)
            if len(out.acked) == expected[0]:
                all_acked.set()
        all_acked.wait(timeout_s)
    finally:
        for client in conns:
            client.disconnect()
            client.loop_stop()
    return out


def subscribe_count(
    port: int, expected: int, timeout_s: float, topic: str = "civicpulse/#"
) -> Callable[[], tuple[int, float]]:
    """A QoS 1 subscriber to ``topic`` on its own thread (``loop_forever``).

    Returns ``finish()``: waits until ``expected`` messages arrived (or the timeout), then
    (messages received, seconds from the first to the last).
    """
    got = [0]
    first = [0.0]
    last = [0.0]
    done = threading.Event()
    ready = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"tp-sub-{uuid.uuid4().hex[:6]}")

    def on_connect(c: mqtt.Client, *_a: Any) -> None:
        c.subscribe(topic, qos=1)

    def on_subscribe(*_a: Any) -> None:
        ready.set()

    def on_message(_c: Any, _u: Any, _m: Any) -> None:
        now = time.monotonic()
        if not got[0]:
            first[0] = now
        got[0] += 1
        last[0] = now
        if got[0] >= expected:
            done.set()

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.connect("127.0.0.1", port)
    thread = threading.Thread(target=client.loop_forever, daemon=True)
    thread.start()
    ready.wait(10)

    def finish() -> tuple[int, float]:
        deadline = time.monotonic() + timeout_s
        while not done.wait(0.5) and time.monotonic() < deadline:
            if got[0] and time.monotonic() - last[0] > 3.0:
                break  # nothing more for 3 s: the broker dropped the rest (counted as lost)
        client.disconnect()
        thread.join(10)
        return got[0], last[0] - first[0]

    return finish


# -- processes: peak RSS and CPU seconds ---------------------------------------------------


class Sampler:
    """Polls named groups of processes: peak RSS of each group, CPU seconds between marks.

    A group is a function returning its current processes (e.g. a PostgreSQL server's
    postmaster and backends). CPU seconds of processes that exit between two polls are lost,
    so groups should be long-lived (they are: servers, engines, connections).
    """

    def __init__(self, groups: dict[str, Callable[[], list[psutil.Process]]]) -> None:
        self.groups = groups
        self.peak_rss: dict[str, int] = dict.fromkeys(groups, 0)
        self._cpu: dict[tuple[str, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="tp-sampler")

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.poll()

    def poll(self) -> None:
        for name, group in self.groups.items():
            rss = 0
            try:
                members = group()
            except psutil.Error:  # a process went away while its group was listed
                continue
            for p in members:
                try:
                    rss += p.memory_info().rss
                    t = p.cpu_times()
                    self._cpu[(name, p.pid)] = t.user + t.system
                except psutil.Error:
                    continue
            self.peak_rss[name] = max(self.peak_rss[name], rss)

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by each group (as of now)."""
        self.poll()
        out = dict.fromkeys(self.groups, 0.0)
        for (name, _pid), seconds in self._cpu.items():
            out[name] += seconds
        return out

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def pid_group(pid: int, children: bool = True) -> Callable[[], list[psutil.Process]]:
    """A process (and its descendants)."""

    def members() -> list[psutil.Process]:
        try:
            p = psutil.Process(pid)
            return [p, *p.children(recursive=True)] if children else [p]
        except psutil.Error:
            return []

    return members


def cmdline_group(needle: str, name: str = "postgres") -> Callable[[], list[psutil.Process]]:
    """Processes named ``name`` whose command line (or their parent's) mentions ``needle``."""
    cache: dict[int, psutil.Process] = {}

    def members() -> list[psutil.Process]:
        roots = [
            p
            for p in psutil.process_iter(["name", "cmdline"])
            if p.info["name"] == name and needle in " ".join(p.info["cmdline"] or ())
        ]
        for root in roots:
            try:
                family = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for p in family:
                cache.setdefault(p.pid, p)
        return [p for p in cache.values() if p.is_running()]

    return members


def self_group() -> Callable[[], list[psutil.Process]]:
    """This benchmark process (publisher, subscriber, in-process probes)."""
    me = psutil.Process()
    return lambda: [me]


def per_1k(cpu: dict[str, float], readings: int) -> dict[str, float]:
    """CPU seconds per 1,000 readings, by process group."""
    return {k: round(v * 1000 / readings, 4) for k, v in cpu.items()} if readings else {}


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after}


# -- raw stage probes ----------------------------------------------------------------------


def stage(
    name: str,
    readings: int,
    messages: int,
    seconds: float,
    cpu: dict[str, float],
    on_path: bool = True,
    note: str = "",
) -> dict[str, Any]:
    """One stage's figures."""
    return {
        "stage": name,
        "readings_per_s": round(readings / seconds) if seconds > 0 else None,
        "messages_per_s": round(messages / seconds) if seconds > 0 else None,
        "readings": readings,
        "seconds": round(seconds, 3),
        "cpu_s_per_1k_readings": per_1k(cpu, readings),
        "on_path": on_path,
        "note": note,
    }


def probe_publish(
    sampler: Sampler, broker: str, port: int, messages: Sequence[Message], clients: int
) -> dict[str, Any]:
    """MQTT publish QoS 1 alone: a broker that acknowledges without storing anything."""
    before = sampler.cpu()
    pub = publish(port, messages, clients)
    cpu = cpu_delta(before, sampler.cpu())
    n = sum(messages[i].readings for i in pub.acked)
    return stage(
        "mqtt_publish_qos1",
        n,
        len(pub.acked),
        pub.elapsed,
        {"publisher": cpu["bench"], broker: cpu[broker]},
        note=f"{broker}, {clients} connections, closed loop",
    )


def probe_deliver(
    sampler: Sampler,
    broker: str,
    port: int,
    messages: Sequence[Message],
    clients: int,
    on_path: bool = True,
    topic: str = "civicpulse/#",
) -> dict[str, Any]:
    """Broker → subscriber: one QoS 1 subscriber (``loop_forever``, as the bridge's) to
    ``topic`` while publishers flood."""
    finish = subscribe_count(port, len(messages), timeout_s=120, topic=topic)
    before = sampler.cpu()
    publish(port, messages, clients)
    got, seconds = finish()
    cpu = cpu_delta(before, sampler.cpu())
    per_msg = sum(m.readings for m in messages) / max(1, len(messages))
    return stage(
        "broker_to_subscriber",
        round(got * per_msg),
        got,
        seconds,
        {"publisher+subscriber": cpu["bench"], broker: cpu[broker]},
        on_path=on_path,
        note=f"{broker} → one paho subscriber" + ("" if on_path else " (not on this path)"),
    )


def probe_decode(messages: Sequence[Message]) -> dict[str, Any]:
    """Decode + validate (``sensors.intake.route_message``), one thread."""
    now = datetime.now(UTC)
    cpu0, t0 = time.process_time(), time.perf_counter()
    n = 0
    for m in messages:
        n += len(route_message(m.topic, m.payload, now, DEFAULT_LIMITS).readings)
    seconds = time.perf_counter() - t0
    return stage(
        "decode_validate", n, len(messages), seconds, {"bench": time.process_time() - cpu0}
    )


def probe_detection(
    readings: Sequence[Reading], batch: int = DEFAULT_BATCH_READINGS
) -> dict[str, Any]:
    """The detectors alone (pure, states kept in memory), in batches like the engines'."""
    from rules.detectors import default_detectors, run_detectors
    from rules.thresholds import Thresholds

    detectors, thresholds = default_detectors(), Thresholds()
    states: dict[Any, Any] = {}
    now = datetime.now(UTC)
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(0, len(readings), batch):
        run = run_detectors(detectors, states, readings[i : i + batch], thresholds, now, sites={})
        states.update(run.states)
    seconds = time.perf_counter() - t0
    return stage(
        "detection",
        len(readings),
        0,
        seconds,
        {"bench": time.process_time() - cpu0},
        note="pure detectors, states in memory",
    )


def scratch_database(url: str, prefix: str) -> str:
    """A new, migrated database beside ``url``'s; returns its URL."""
    from storage import migrate

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    new = _with_dbname(url, name)
    migrate(new)
    return new


def _with_dbname(url: str, name: str) -> str:
    base, sep, query = url.partition("?")
    return base.rsplit("/", 1)[0] + f"/{name}" + (sep + query if sep else "")


def probe_store(
    sampler: Sampler,
    db_group: str,
    url: str,
    readings: Sequence[Reading],
    batch: int = DEFAULT_BATCH_READINGS,
) -> dict[str, Any]:
    """Store + aggregates alone: ``ReadingStore.write`` (COPY, insert, 1m and rollups),
    batches of ``batch``, into a fresh database, no detection."""
    from storage import ReadingStore

    store = ReadingStore(scratch_database(url, "tp_store"))
    try:
        store.write(readings[:1])  # connect and prepare outside the timing
        before = sampler.cpu()
        t0 = time.perf_counter()
        for i in range(1, len(readings), batch):
            store.write(readings[i : i + batch])
        seconds = time.perf_counter() - t0
        cpu = cpu_delta(before, sampler.cpu())
    finally:
        store.close()
    return stage(
        "store_aggregates",
        len(readings) - 1,
        0,
        seconds,
        {"bench": cpu["bench"], db_group: cpu[db_group]},
        note=f"ReadingStore.write, batches of {batch}",
    )


def probe_kafka(
    sampler: Sampler, bootstrap: str, messages: Sequence[Message]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Kafka produce (the bridge's producer settings) and consume (aiokafka, like Faust)
    of the load's canonical readings, on a fresh topic."""
    from ingest.kafka_acks import make_producer
    from ingest.kafka_topics import ensure_topics

    now = datetime.now(UTC)
    from ingest.record_batcher import pack_by_partition, partition_of

    routed = [route_message(m.topic, m.payload, now, DEFAULT_LIMITS) for m in messages]
    readings = sum(len(r.readings) for r in routed)
    # what the bridge sends: the readings of the messages arriving in one linger (here 100
    # messages at a time), packed into one record per partition of the bench's topic
    values: list[tuple[bytes | None, bytes, int]] = []
    for i in range(0, len(routed), _PROBE_MESSAGES_PER_FLUSH):
        chunk = [r.readings for r in routed[i : i + _PROBE_MESSAGES_PER_FLUSH]]
        packs, _ = pack_by_partition(chunk, lambda key: partition_of(key, _PROBE_PARTITIONS))
        values += [(None, pack_encoded(v), part) for part, v in packs.items()]
    topic = f"tp.{uuid.uuid4().hex[:8]}"
    producer = make_producer(bootstrap, "tp-probe", 30.0)
    try:
        ensure_topics(
            bootstrap, topic, f"{topic}.dead", partitions=_PROBE_PARTITIONS, replication=1
        )
        producer.send(topic, b"warm-up", partition=0).get(30)  # metadata known
        before = sampler.cpu()
        t0 = time.perf_counter()
        for key, value, part in values:
            producer.send(topic, value, key=key, partition=part)
        producer.flush(120)
        seconds = time.perf_counter() - t0
        cpu = cpu_delta(before, sampler.cpu())
    finally:
        producer.close(10)
    produce = stage(
        "kafka_produce",
        readings,
        len(values),
        seconds,
        {"bench": cpu["bench"], "kafka": cpu["kafka"]},
        note=f"kafka-python, the bridge's settings; {len(values)} records (packed as the bridge)",
    )
    before = sampler.cpu()
    got, seconds = asyncio.run(_consume(bootstrap, topic, len(values) + 1))
    cpu = cpu_delta(before, sampler.cpu())
    consume = stage(
        "kafka_consume",
        readings if got == len(values) else 0,
        got,
        seconds,
        {"bench": cpu["bench"], "kafka": cpu["kafka"]},
        note=f"aiokafka getmany (Faust's client); {got} of {len(values)} records",
    )
    return produce, consume


_PROBE_MESSAGES_PER_FLUSH = 100
_PROBE_PARTITIONS = 6


async def _consume(bootstrap: str, topic: str, expected: int) -> tuple[int, float]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    try:
        # every record is already in the topic: the clock runs from the first fetch request
        # (starting it at the first record seen measured nothing when one fetch got them all)
        got, t0, deadline = 0, time.perf_counter(), time.monotonic() + 120
        while got < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for records in batches.values():
                got += len(records)
        return got - 1, time.perf_counter() - t0  # minus the warm-up record
    finally:
        await consumer.stop()


# -- an amqtt broker alone (the embedded engine's library, no storage) ---------------------

_AMQTT_ALONE = """
import asyncio, sys
sys.path.insert(0, sys.argv[2])
from amqtt.broker import Broker
from embedded.auth import Gate
from embedded.broker import broker_config
from trust import AuthMode

async def main():
    gate = Gate(AuthMode.AUTO, ["127.0.0.1"])
    broker = Broker(broker_config("127.0.0.1", int(sys.argv[1]), gate))
    await broker.start()
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def start_amqtt_alone(port: int) -> subprocess.Popen[str]:
    """A plain amqtt broker (the embedded engine's auth plugins, nothing stored)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _AMQTT_ALONE, str(port), str(REPO)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError("the amqtt broker did not start")
    return proc


def stop(proc: subprocess.Popen[Any] | None, timeout: float = 30.0) -> None:
    """SIGTERM, then SIGKILL, one process we started."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


# -- the report ----------------------------------------------------------------------------


def summarise_shape(
    shape: int,
    stages: list[dict[str, Any]],
    end_to_end: dict[str, Any],
    latency: dict[str, Any],
    cpu: dict[str, float],
    peak_rss: dict[str, int],
) -> dict[str, Any]:
    """One load shape's section of the report, with the end-to-end ÷ slowest-stage ratio."""
    on_path = [s for s in stages if s["on_path"] and s["readings_per_s"]]
    slowest = min(on_path, key=lambda s: s["readings_per_s"]) if on_path else None
    e2e = end_to_end.get("readings_per_s")
    return {
        "readings_per_message": shape,
        "stages": stages,
        "slowest_stage": slowest["stage"] if slowest else None,
        "end_to_end": end_to_end,
        "latency": latency,
        "cpu_s_per_1k_readings": per_1k(cpu, end_to_end.get("stored", 0)),
        "peak_rss_mb": {k: round(v / 2**20, 1) for k, v in peak_rss.items()},
        "ratio_end_to_end_to_slowest_stage": (
            round(e2e / slowest["readings_per_s"], 3) if slowest and e2e else None
        ),
    }


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """SIGTERM raises SystemExit in the main thread, so a run's ``finally`` stops every
    service and process it started (by default SIGTERM ends Python without running it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, leave)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "load_average_at_start": [round(x, 2) for x in load],
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render(report: dict[str, Any], print_: Callable[[Any], None]) -> None:
    """The report as rich tables (``print_`` is a rich console's ``print``)."""
    from rich.table import Table

    m = report["machine"]
    print_(
        f"[bold]{report['engine']}[/] engine — {m['cpus']} CPUs, Python {m['python']}, "
        f"load average at start {m['load_average_at_start']}, {report['sensors']} sensors, "
        f"{report['clients']} publishing connections"
        + (f", {report['window']} messages in flight each" if "window" in report else "")
    )
    for shape in report["shapes"]:
        n = shape["readings_per_message"]
        table = Table(title=f"{n} reading(s) per message — raw ceiling of each stage alone")
        for col in ("stage", "readings/s", "messages/s", "CPU s / 1k readings", "note"):
            table.add_column(col, justify="right" if "/" in col else "left")
        for s in shape["stages"]:
            cpu = ", ".join(f"{k} {v:.3f}" for k, v in s["cpu_s_per_1k_readings"].items())
            name = s["stage"] + ("" if s["on_path"] else " *")
            table.add_row(
                name, _fmt(s["readings_per_s"]), _fmt(s["messages_per_s"] or None), cpu, s["note"]
            )
        print_(table)
        e2e = shape["end_to_end"]
        print_(
            f"end to end: [bold]{_fmt(e2e.get('readings_per_s'))} readings/s[/] sustained "
            f"({_fmt(e2e.get('messages_per_s'))} messages/s; {_fmt(e2e.get('stored'))} of "
            f"{_fmt(e2e.get('expected'))} readings stored) — slowest raw stage "
            f"{shape['slowest_stage']}; ratio end-to-end ÷ slowest stage "
            f"[bold]{_fmt(shape['ratio_end_to_end_to_slowest_stage'])}[/]"
        )
        for label, lat in shape["latency"].items():
            print_(
                f"  at {label} of capacity ({_fmt(lat.get('offered_readings_per_s'))} readings/s "
                f"offered): {lat.get('basis')} p50 {_fmt(lat.get('p50_ms'))} ms, "
                f"p95 {_fmt(lat.get('p95_ms'))} ms, p99 {_fmt(lat.get('p99_ms'))} ms"
                + (f"; {lat['extra']}" if lat.get("extra") else "")
            )
        cpu = ", ".join(f"{k} {v:.3f}" for k, v in shape["cpu_s_per_1k_readings"].items())
        rss = ", ".join(f"{k} {v:,.0f} MB" for k, v in shape["peak_rss_mb"].items())
        print_(f"  CPU s per 1,000 readings end to end: {cpu}")
        print_(f"  peak RSS: {rss}")
    print_("* not on this engine's path: shown for comparison, not in the ratio")
    if "scale_out" in report:
        render_scale_out(report["scale_out"], print_)


def render_scale_out(so: dict[str, Any], print_: Callable[[Any], None]) -> None:
    """Per-process counts over the whole run and the acknowledged-readings ledger."""
    from rich.table import Table

    table = Table(title="scale-out: per process, whole run (warm-up and every phase)")
    for col in ("process", "partitions", "messages", "readings", "records committed"):
        table.add_column(col, justify="left" if col in ("process", "partitions") else "right")
    for name, t in so["bridges"].items():
        if t is None:
            table.add_row(name, "", "no totals logged", "", "")
        else:
            table.add_row(name, "", _fmt(t["messages"]), _fmt(t["readings"]), "")
    for name, w in so["workers"].items():
        parts = ",".join(str(p) for p in w["partitions"])
        table.add_row(
            name, parts, "", _fmt(w["readings_stored"]) + " stored", _fmt(w["records_committed"])
        )
    print_(table)
    verdict = "[bold green]OK[/]" if so["ok"] else "[bold red]FAILED[/]"
    print_(
        f"ledger {verdict}: {_fmt(so['readings_acknowledged'])} readings acknowledged to the "
        f"publishers ({_fmt(so['messages_acknowledged_to_publishers'])} messages; "
        f"{_fmt(so['messages_bridged'])} bridged, {_fmt(so['mqtt_redeliveries'])} redelivered), "
        f"{_fmt(so['readings_stored'])} stored; missing {_fmt(so['missing'])}, stored twice "
        f"{_fmt(so['stored_twice'])}, stored but not acknowledged "
        f"{_fmt(so['stored_not_acknowledged'])}"
    )


def latency_summary(
    values_ms: Iterable[float], offered: float, basis: str, extra: str = ""
) -> dict[str, Any]:
    """p50/p95/p99 of one paced phase."""
    values = list(values_ms)
    out: dict[str, Any] = {
        "offered_readings_per_s": round(offered),
        "basis": basis,
        "messages": len(values),
    }
    for q in (50, 95, 99):
        v = pct(values, q / 100)
        out[f"p{q}_ms"] = None if v is None else round(v, 1)
    if extra:
        out["extra"] = extra
    return out


def stored_at(url: str, messages: Sequence[Message]) -> dict[tuple[str, str, datetime], float]:
    """``stored_at`` (epoch s, the storing transaction's start) of each message's first
    reading that is in the database."""
    if not messages:
        return {}
    lo = min(m.first_key[2] for m in messages)
    hi = max(m.first_key[2] for m in messages)
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT sensor_id, metric, time, extract(epoch FROM stored_at)::float8 FROM readings"
            " WHERE time BETWEEN %s AND %s",
            (lo, hi),
        ).fetchall()
    return {(s, m, t): at for s, m, t, at in rows}


def newest_reading(url: str) -> datetime | None:
    """The newest event time stored (a reused database), or None."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT max(time) FROM readings").fetchone()
    return row[0] if row else None


def count_between(url: str, messages: Sequence[Message]) -> int:
    """Readings in the database from the first event time of ``messages`` on (phases are
    published one after the other, in event-time order)."""
    lo = min(m.first_key[2] for m in messages)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM readings WHERE time >= %s", (lo,)).fetchone()
    return int(row[0]) if row else 0
