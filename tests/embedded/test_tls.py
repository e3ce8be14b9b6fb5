"""TLS listeners on both brokers (MQTT over TLS, as on port 8883), with a throwaway CA.

The CA and the server certificate (for 127.0.0.1) are made by ``openssl`` per test session.
A client that trusts the CA connects, logs in as a registered device and publishes; its
reading is stored (embedded) or delivered (Mosquitto). A client that does not trust the CA,
or speaks plain MQTT to the TLS port, gets no session.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from embedded import EmbeddedConfig, EmbeddedEngine
from embedded.broker import TlsListener
from sensors.validation import DEFAULT_LIMITS
from tests.embedded.test_auth_broker import AQ, HOST, OWN, Running, free_port, reading, registry
from trust import AuthMode, Device, ServiceAccount
from trust.mosquitto import broker_hash, render

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it; a second CA."""
    d = tmp_path_factory.mktemp("pki")
    os.chmod(d, 0o755)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    for ca in ("ca", "other-ca"):
        run(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{ca}.key",
            "-out",
            f"{ca}.crt",
            "-days",
            "1",
            "-subj",
            f"/CN=civicpulse test {ca}",
        )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "1",
        "-extfile",
        "san.ext",
    )
    for f in d.iterdir():
        os.chmod(f, 0o644)
    return {n: d / f"{n}" for n in ("ca.crt", "other-ca.crt", "server.crt", "server.key")}


class TlsClient:
    """A paho client over TLS; records CONNACK and PUBACKs, and messages if it subscribes."""

    def __init__(self, port: int, ca: Path, user: str, secret: str) -> None:
        self.connected = threading.Event()
        self.rc: Any = None
        self.acked: set[int] = set()
        self.messages: list[bytes] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"tls-{user}")
        self.client.tls_set(ca_certs=str(ca), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.client.username_pw_set(user, secret)
        self.client.on_connect = self._on_connect
        self.client.on_publish = lambda _c, _u, mid, _rc, _p: self.acked.add(mid)
        self.client.on_message = lambda _c, _u, m: self.messages.append(m.payload)
        self.client.connect(HOST, port)
        self.client.loop_start()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self.rc = rc
        self.connected.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def handshake_fails(port: int, ca: Path) -> bool:
    """Whether a TLS handshake that trusts only ``ca`` is refused (certificate not trusted)."""
    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection((HOST, port), timeout=5) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=HOST):
                return False
        except ssl.SSLCertVerificationError:
            return True


def plain_mqtt_gets_no_connack(port: int) -> bool:
    body = b"\x00\x04MQTT\x04\x02\x00\x0a\x00\x05plain"
    with socket.create_connection((HOST, port), timeout=5) as s:
        s.sendall(bytes([0x10, len(body)]) + body)
        try:
            return s.recv(4) != b"\x20\x02\x00\x00"
        except OSError:
            return True


def test_embedded_broker_serves_tls_with_device_credentials(
    fresh_db: str, pki: dict[str, Path]
) -> None:
    from storage import migrate

    migrate(fresh_db)
    running = Running(fresh_db, AuthMode.REQUIRED, registry(AQ))
    tls_port = free_port()
    tls = TlsListener(tls_port, str(pki["server.crt"]), str(pki["server.key"]))
    running.engine = EmbeddedEngine(
        EmbeddedConfig(
            mqtt_host=HOST,
            mqtt_port=running.port,
            data_dir=Path("/tmp"),
            limits=DEFAULT_LIMITS,
            database_url=fresh_db,
            auth=AuthMode.REQUIRED,
            tls=tls,
        ),
        directory_loader=running._load,
    )
    with running:
        assert handshake_fails(tls_port, pki["other-ca.crt"])
        assert plain_mqtt_gets_no_connack(tls_port)
        bad = TlsClient(tls_port, pki["ca.crt"], AQ.sensor_id, "wrong")
        assert bad.connected.wait(10) and bad.rc.is_failure
        bad.close()
        client = TlsClient(tls_port, pki["ca.crt"], AQ.sensor_id, "s3cret")
        assert client.connected.wait(10) and not client.rc.is_failure
        info = client.client.publish(OWN, reading(AQ.sensor_id, 41.5), qos=1)
        deadline = time.monotonic() + 10
        while info.mid not in client.acked and time.monotonic() < deadline:
            time.sleep(0.05)
        client.close()
        assert info.mid in client.acked
        rows = running.rows("SELECT sensor_id, metric, value FROM readings")
        assert rows == [(AQ.sensor_id, "pm10", 41.5)]


def test_tls_settings_say_what_is_missing(tmp_path: Path) -> None:
    assert TlsListener.from_settings(0, "", "") is None
    with pytest.raises(ValueError, match="needs CIVICPULSE_TLS_CERTFILE"):
        TlsListener.from_settings(8883, "", "")
    with pytest.raises(ValueError, match=r"CIVICPULSE_TLS_KEYFILE=.*: no such file"):
        cert = tmp_path / "c.pem"
        cert.write_text("x")
        TlsListener.from_settings(8883, str(cert), str(tmp_path / "missing.pem"))


@pytest.fixture
def mosquitto_tls(tmp_path: Path, pki: dict[str, Path]) -> Iterator[tuple[int, str, str]]:
    """Mosquitto with only a TLS listener, the registry's passwd and ACL: (port, device
    secret, bridge secret)."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    device_secret, bridge_secret = "dev-secret-1", "bridge-secret-1"
    files = render(
        [AQ, Device("aq-auth-2", "camden", "air_quality")],
        [ServiceAccount("bridge-1", "ingest")],
        {
            AQ.sensor_id: broker_hash(device_secret, b"salt-one-123"),
            "aq-auth-2": broker_hash("x", b"salt-two-123"),
            "bridge-1": broker_hash(bridge_secret, b"salt-three12"),
        },
    )
    (tmp_path / "passwd").write_text(files.passwd)
    (tmp_path / "acl").write_text(files.acl)
    port = free_port()
    lines = [
        f"listener {port} {HOST}",
        f"cafile {pki['ca.crt']}",
        f"certfile {pki['server.crt']}",
        f"keyfile {pki['server.key']}",
        "allow_anonymous false",
        f"password_file {tmp_path / 'passwd'}",
        f"acl_file {tmp_path / 'acl'}",
        "persistence false",
        f"log_dest file {tmp_path / 'mosquitto.log'}",
    ]
    if os.geteuid() == 0:
        lines.append("user root")
    (tmp_path / "mosquitto.conf").write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen(
        [exe, "-c", str(tmp_path / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port, device_secret, bridge_secret
    finally:
        proc.terminate()
        proc.wait(10)


def test_mosquitto_serves_tls_with_the_registry_files(
    mosquitto_tls: tuple[int, str, str], pki: dict[str, Path]
) -> None:
    port, device_secret, bridge_secret = mosquitto_tls
    assert handshake_fails(port, pki["other-ca.crt"])
    assert plain_mqtt_gets_no_connack(port)
    bridge = TlsClient(port, pki["ca.crt"], "bridge-1", bridge_secret)
    assert bridge.connected.wait(10) and not bridge.rc.is_failure
    bridge.client.subscribe("civicpulse/#", qos=1)
    time.sleep(0.5)
    device = TlsClient(port, pki["ca.crt"], AQ.sensor_id, device_secret)
    assert device.connected.wait(10) and not device.rc.is_failure
    device.client.publish(OWN, b"mine", qos=1)
    device.client.publish("civicpulse/camden/air_quality/aq-auth-2", b"not mine", qos=1)
    deadline = time.monotonic() + 5
    while not bridge.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    assert bridge.messages == [b"mine"]
    wrong = TlsClient(port, pki["ca.crt"], AQ.sensor_id, "wrong")
    assert wrong.connected.wait(10) and wrong.rc.is_failure
    for c in (bridge, device, wrong):
        c.close()
