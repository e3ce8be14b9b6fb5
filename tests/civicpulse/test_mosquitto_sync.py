"""`civicpulse devices sync` against a real Mosquitto 2.0 and real paho MQTT v5 clients.

The registry (a real PostgreSQL) → `devices sync` → Mosquitto's password file and ACL →
a mosquitto of our own on a free loopback port, reloaded with SIGHUP by `--reload-pid`.
What Mosquitto 2.0.11 (Debian) was seen to do, and these tests pin:
- a refused login (no credentials, a wrong secret, a user not in the password file) is a
  CONNACK with reason code 0x87 (135, "Not authorized");
- its acl_file never checks SUBSCRIBE: any filter is granted (SUBACK QoS 1, a device's too);
  ``read`` is checked when a message is delivered, against the message's topic. So
  ``topic read civicpulse/#`` is what ``$share/<group>/civicpulse/#`` needs, and a device
  (no read rule) is sent nothing;
- a QoS 1 PUBLISH the ACL refuses gets a PUBACK with reason code 0x87 (135, "Not
  authorized") and is not delivered to anyone;
- on SIGHUP it reloads both files and disconnects the connected clients whose user name and
  password no longer match the password file.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from click.testing import Result
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from typer.testing import CliRunner

from civicpulse.cli import app
from ingest import mqtt_session
from ingest.mqtt_session import SessionConfig
from storage import migrate
from storage import registry_store as reg
from trust import Device, ServiceAccount, check_broker_hash

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
SUCCESS = 0
NOT_AUTHORIZED = 0x87  # CONNACK refusals and refused QoS 1 publishes alike (2.0.11)
BIN1 = Device("bin-1", "edinburgh", "waste_bin", site="Leith Walk")
BIN2 = Device("bin-2", "edinburgh", "waste_bin")
BIN3 = Device("bin-3", "edinburgh", "waste_bin")
TOPIC1 = "civicpulse/edinburgh/waste_bin/bin-1"
TOPIC2 = "civicpulse/edinburgh/waste_bin/bin-2"


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


# --- a mosquitto of our own ---------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class Broker:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@contextmanager
def mosquitto(tmp_path: Path, auth: Path) -> Iterator[Broker]:
    """A mosquitto on a free loopback port with ``auth``'s passwd and acl; stopped after."""
    assert os.path.exists(MOSQUITTO), "mosquitto is not installed (run scripts/bootstrap.sh)"
    broker: Broker | None = None
    for attempt in range(3):  # the port may be taken between choosing and binding it
        port = _free_port()
        log = tmp_path / f"mosquitto-{attempt}.log"
        lines = [
            f"listener {port} {HOST}",
            "allow_anonymous false",
            f"password_file {auth / 'passwd'}",
            f"acl_file {auth / 'acl'}",
            "persistence false",
            f"log_dest file {log}",
            "log_type all",
            "connection_messages true",
        ]
        if os.geteuid() == 0:
            # As root, mosquitto would switch to the `mosquitto` user, which cannot read the
            # 0600 files in our 0700 directory (nor write the log): keep root.
            lines.append("user root")
        conf = tmp_path / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
        proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline and not _listening(port):
            time.sleep(0.05)
        if proc.poll() is None and _listening(port):
            broker = Broker(port, proc, log)
            break
        _stop(proc)
    if broker is None:
        pytest.fail(f"mosquitto did not start: {log.read_text(errors='replace')[-2000:]}")
    try:
        yield broker
    finally:
        _stop(broker.proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# --- paho clients ---------------------------------------------------------------------------


def _client(user: str | None, secret: str | None) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:12]}", protocol=mqtt.MQTTv5
    )
    if user is not None:
        client.username_pw_set(user, secret)
    return client


def login(broker: Broker, user: str | None, secret: str | None) -> int:
    """The CONNACK reason code for a fresh connection as ``user`` (then disconnects)."""
    client = _client(user, secret)
    codes: list[ReasonCode] = []
    client.on_connect = lambda _c, _u, _f, rc, _p: codes.append(rc)
    client.connect(HOST, broker.port, keepalive=10)
    deadline = time.monotonic() + 5
    while not codes and time.monotonic() < deadline:
        client.loop(timeout=0.1)
    client.disconnect()
    assert codes, f"no CONNACK for {user!r}"
    return int(codes[0].value)


def refused_within(broker: Broker, user: str, secret: str, seconds: float = 5.0) -> bool:
    """Whether a new login as ``user`` is refused within ``seconds`` (the reload is async)."""
    deadline = time.monotonic() + seconds
    while True:
        if login(broker, user, secret) == NOT_AUTHORIZED:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


@dataclass
class Session:
    """A connected client (its network loop in a thread) and what it was sent."""

    client: mqtt.Client
    messages: queue.Queue[tuple[str, bytes]] = field(default_factory=queue.Queue)
    acks: dict[int, int] = field(default_factory=dict)
    granted: queue.Queue[list[int]] = field(default_factory=queue.Queue)
    dropped: threading.Event = field(default_factory=threading.Event)
    _acked: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda _c, _u, _m, codes, _p: self.granted.put(
            [int(c.value) for c in codes]
        )
        self.client.on_disconnect = lambda *_: self.dropped.set()

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        with self._acked:
            self.acks[mid] = int(rc.value)
            self._acked.notify_all()

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.messages.put((msg.topic, msg.payload))
        if client._manual_ack:
            client.ack(msg.mid, msg.qos)

    def publish(self, topic: str, payload: bytes) -> int:
        """Publish at QoS 1; the PUBACK's reason code."""
        info = self.client.publish(topic, payload, qos=1)
        with self._acked:
            assert self._acked.wait_for(lambda: info.mid in self.acks, timeout=5), topic
            return self.acks[info.mid]

    def subscribe(self, topic_filter: str) -> list[int]:
        self.client.subscribe(topic_filter, options=SubscribeOptions(qos=1))
        return self.granted.get(timeout=5)

    def received(self, timeout: float) -> tuple[str, bytes]:
        return self.messages.get(timeout=timeout)


@contextmanager
def session(broker: Broker, user: str, secret: str, *, client: mqtt.Client | None = None,
            subscribe: str | None = None) -> Iterator[Session]:  # fmt: skip
    """A logged-in client (``client`` if given), subscribed to ``subscribe`` if given."""
    connected = threading.Event()
    codes: list[int] = []
    if client is None:
        client = _client(user, secret)
    s = Session(client)

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        codes.append(int(rc.value))
        connected.set()

    client.on_connect = on_connect
    client.connect(HOST, broker.port, keepalive=10)
    client.loop_start()
    try:
        assert connected.wait(5) and codes[0] == SUCCESS, (user, codes)
        if subscribe is not None:
            assert s.subscribe(subscribe) == [1]
        yield s
    finally:
        client.disconnect()
        client.loop_stop()


# --- the test -----------------------------------------------------------------------------


@pytest.fixture
def db(fresh_db: str) -> str:
    migrate(fresh_db)
    reg.add_council(fresh_db, "edinburgh", "City of Edinburgh Council")
    reg.add_council(fresh_db, "aberdeen", "Aberdeen City Council")
    return fresh_db


def sync(url: str, auth: Path, *more: str) -> dict[str, Any]:
    r = cli("devices", "sync", "--out", str(auth), "--json", "--database-url", url, *more)
    assert r.exit_code == 0, r.output
    result: dict[str, Any] = json.loads(r.stdout)
    return result


def test_mosquitto_enforces_the_registry(db: str, tmp_path: Path) -> None:
    secret1 = reg.add_device(db, BIN1)
    secret2 = reg.add_device(db, BIN2)
    secret3 = reg.add_device(db, BIN3)
    reg.disable_device(db, "bin-3")
    bridge = reg.add_service_account(db, ServiceAccount("bridge-1", "ingest"))
    auth = tmp_path / "auth"

    synced = sync(db, auth)
    assert synced == {
        "passwd": str(auth / "passwd"),
        "acl": str(auth / "acl"),
        "devices": ["bin-1", "bin-2"],
        "accounts": ["bridge-1"],
        "disabled": ["bin-3"],
        "without_hash": [],
        "bad_names": [],
        "reloaded_pid": None,
    }
    for name in ("passwd", "acl"):
        assert stat.S_IMODE((auth / name).stat().st_mode) == 0o600
    assert not [p for p in auth.iterdir() if p.name not in {"passwd", "acl"}]  # no temp left
    passwd = dict(
        line.split(":", 1)
        for line in (auth / "passwd").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert set(passwd) == {"bin-1", "bin-2", "bridge-1"}
    assert check_broker_hash(passwd["bin-1"], secret1)
    assert check_broker_hash(passwd["bridge-1"], bridge)
    text = (auth / "passwd").read_text() + (auth / "acl").read_text()
    assert not [s for s in (secret1, secret2, secret3, bridge) if s in text]
    acl_lines = (auth / "acl").read_text().splitlines()
    assert not [line for line in acl_lines if line.startswith("pattern")]

    with mosquitto(tmp_path, auth) as broker:
        try:
            assert login(broker, None, None) == NOT_AUTHORIZED
            assert login(broker, "bin-1", secret2) == NOT_AUTHORIZED  # another's secret
            assert login(broker, "bin-1", secret1 + "x") == NOT_AUTHORIZED
            assert login(broker, "bin-3", secret3) == NOT_AUTHORIZED  # disabled
            assert login(broker, "bin-1", secret1) == SUCCESS
            _publish_and_subscribe(broker, db, auth, (secret1, secret2, bridge))
            _rotate(broker, db, auth, secret1)
        except BaseException:
            print(broker.log_tail())
            raise


def _publish_and_subscribe(broker: Broker, db: str, auth: Path, secrets: tuple[str, ...]) -> None:
    secret1, secret2, bridge = secrets
    # The ingest account subscribes exactly as the bridge does (ingest.mqtt_session).
    config = SessionConfig(f"mqtt://bridge-1:{bridge}@{HOST}:{broker.port}", "bridge-1", "g", 60)
    with (
        session(broker, "bridge-1", bridge, client=mqtt_session.make_client(config),
                subscribe=config.topic) as ingest,
        session(broker, "bin-1", secret1) as bin1,
        session(broker, "bin-2", secret2, subscribe="civicpulse/#") as bin2,  # granted, yet...
    ):  # fmt: skip
        assert config.topic == "$share/g/civicpulse/#"
        assert bin1.publish(TOPIC2, b"as bin-2") == NOT_AUTHORIZED
        assert bin1.publish("civicpulse/aberdeen/waste_bin/bin-1", b"other council") == (
            NOT_AUTHORIZED
        )
        assert bin1.publish("civicpulse/edinburgh/air_quality/bin-1", b"kind") == NOT_AUTHORIZED
        assert ingest.publish(TOPIC1, b"the bridge") == NOT_AUTHORIZED  # accounts only read
        assert bin1.publish(TOPIC1, b"own topic") == SUCCESS
        # One publisher's messages arrive in order: the refused ones, sent first, never came.
        assert ingest.received(timeout=5) == (TOPIC1, b"own topic")
        time.sleep(0.3)
        assert ingest.messages.empty()
        assert bin2.messages.empty()  # ...a device reads nothing, not even civicpulse/#

        # Disable bin-2 and sync, reloading by a pid file.
        r = cli("devices", "disable", "bin-2", "--database-url", db)
        assert r.exit_code == 0, r.output
        pid_file = auth.parent / "mosquitto.pid"
        pid_file.write_text(f"{broker.proc.pid}\n", encoding="utf-8")
        synced = sync(db, auth, "--reload-pid", str(pid_file))
        assert (synced["devices"], synced["disabled"]) == (["bin-1"], ["bin-2", "bin-3"])
        assert synced["reloaded_pid"] == broker.proc.pid
        assert refused_within(broker, "bin-2", secret2, 5.0)
        # 2.0.11 also drops bin-2's open connection at the reload (its password is gone).
        assert bin2.dropped.wait(5)
        # Everyone else carries on: bin-1's session survived the reload.
        assert not bin1.dropped.is_set() and not ingest.dropped.is_set()
        assert bin1.publish(TOPIC1, b"after reload") == SUCCESS
        assert ingest.received(timeout=5) == (TOPIC1, b"after reload")


def _rotate(broker: Broker, db: str, auth: Path, old: str) -> None:
    r = cli("devices", "rotate", "bin-1", "--json", "--database-url", db)
    assert r.exit_code == 0, r.output
    new = json.loads(r.stdout)["secret"]
    assert login(broker, "bin-1", old) == SUCCESS  # until Mosquitto reloads
    synced = sync(db, auth, "--reload-pid", str(broker.proc.pid))
    assert synced["reloaded_pid"] == broker.proc.pid
    assert refused_within(broker, "bin-1", old, 5.0)
    assert login(broker, "bin-1", new) == SUCCESS


def test_sync_refuses_a_bad_reload_target_in_one_line(db: str, tmp_path: Path) -> None:
    auth = tmp_path / "auth"
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        for target, message in (
            (str(sleeper.pid), f"process {sleeper.pid} is 'sleep', not mosquitto"),
            ("0", "0 is not a process id"),
            (str(tmp_path / "missing.pid"), "cannot read the pid file"),
        ):
            r = cli("devices", "sync", "--out", str(auth), "--reload-pid", target,
                    "--database-url", db)  # fmt: skip
            assert r.exit_code == 1, r.output
            [line] = r.output.strip().splitlines()
            assert line.startswith("error: --reload-pid: ") and message in line, line
        assert sleeper.poll() is None  # never signalled
        assert not auth.exists()  # nothing written either
    finally:
        sleeper.kill()
        sleeper.wait()

    r = cli("devices", "sync", "--out", str(auth), "--database-url", db)
    assert r.exit_code == 0, r.output
    assert r.stderr.strip() == (
        f"wrote {auth / 'passwd'} and {auth / 'acl'}: 0 device(s), 0 service account(s)"
    )
