"""The compose stack's own files run for real: Mosquitto's auth entrypoint and the healthcheck."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docker"))
import healthcheck  # noqa: E402

USERS = {
    "MQTT_BRIDGE_USERNAME": "bridge-user",
    "MQTT_BRIDGE_PASSWORD": "bridge-secret",
    "MQTT_DEVICE_USERNAME": "device-user",
    "MQTT_DEVICE_PASSWORD": "device-secret",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[int]:
    """Mosquitto started through docker/mosquitto/entrypoint.sh with the compose config."""
    port = free_port()
    conf = (ROOT / "docker/mosquitto/mosquitto.conf").read_text()
    conf = conf.replace("/mosquitto/auth", str(tmp_path / "auth"))
    conf = conf.replace("/mosquitto/data/", f"{tmp_path}/data/")
    conf = conf.replace("listener 1883", f"listener {port} 127.0.0.1")
    if os.geteuid() == 0:
        conf += "user root\n"  # tmp_path is not the mosquitto user's
    (tmp_path / "data").mkdir()
    (tmp_path / "mosquitto.conf").write_text(conf)
    env = {
        **os.environ,
        **USERS,
        "MOSQUITTO_AUTH_DIR": str(tmp_path / "auth"),
        "MOSQUITTO_CONF": str(tmp_path / "mosquitto.conf"),
        "PATH": os.environ.get("PATH", "") + ":/usr/sbin",
    }
    log = (tmp_path / "log").open("w")
    proc = subprocess.Popen(
        ["sh", str(ROOT / "docker/mosquitto/entrypoint.sh")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("mosquitto did not start: " + (tmp_path / "log").read_text())
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def pub(port: int, user: str | None, password: str | None, topic: str) -> int:
    auth = ["-u", user, "-P", password] if user and password else []
    cmd = ["mosquitto_pub", "-p", str(port), *auth, "-t", topic, "-m", "x", "-q", "1"]
    return subprocess.run(cmd, capture_output=True, timeout=10).returncode


class Subscriber:
    """mosquitto_sub in debug mode, created once the broker has acknowledged the subscription."""

    def __init__(self, port: int, user: str, password: str, topic: str) -> None:
        # stdbuf: line-buffered stdout, or the SUBACK line only shows up when it exits
        cmd = [
            "stdbuf",
            "-oL",
            "mosquitto_sub",
            "-d",
            "-p",
            str(port),
            "-u",
            user,
            "-P",
            password,
            "-t",
            topic,
            "-C",
            "1",
            "-W",
            "4",
            "-v",
        ]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + 10
        while not any("SUBACK" in line for line in self.lines):
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"no SUBACK for {user} on {topic}: {self.lines}")
            time.sleep(0.05)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def messages(self) -> str:
        """The "topic payload" lines it printed (debug chatter left out)."""
        self.proc.wait(timeout=15)
        self.reader.join(timeout=5)
        return "\n".join(
            line
            for line in self.lines
            if not line.startswith(("Client ", "Subscribed", "Timed out"))
        )


def subscribe(port: int, user: str, password: str, topic: str) -> Subscriber:
    return Subscriber(port, user, password, topic)


@pytest.mark.integration
def test_mosquitto_requires_a_login_and_enforces_the_acl(broker: int) -> None:
    topic = "civicpulse/aberdeen/air_quality/aq-0001"
    assert pub(broker, None, None, topic) != 0, "anonymous publish must be refused"
    assert pub(broker, "device-user", "wrong", topic) != 0, "a wrong password must be refused"

    shared = "$share/civicpulse-ingest/civicpulse/#"
    bridge = subscribe(broker, "bridge-user", "bridge-secret", shared)
    assert pub(broker, "device-user", "device-secret", topic) == 0
    assert bridge.messages() == f"{topic} x", "the bridge must receive device messages"

    device_reader = subscribe(broker, "device-user", "device-secret", "civicpulse/#")
    assert pub(broker, "bridge-user", "bridge-secret", topic) == 0  # accepted, then dropped
    assert pub(broker, "device-user", "device-secret", topic) == 0
    assert device_reader.messages() == "", "devices must not read other devices' messages"

    bridge = subscribe(broker, "bridge-user", "bridge-secret", "civicpulse/#")
    assert pub(broker, "bridge-user", "bridge-secret", topic) == 0
    assert bridge.messages() == "", "the bridge account must not be able to publish readings"


def test_entrypoint_refuses_to_start_without_passwords(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "MOSQUITTO_AUTH_DIR": str(tmp_path)}
    result = subprocess.run(
        ["sh", str(ROOT / "docker/mosquitto/entrypoint.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode != 0 and "MQTT_BRIDGE_USERNAME" in result.stderr


def test_healthcheck_endpoints_come_from_the_settings_variables() -> None:
    env = {
        "CIVICPULSE_KAFKA_BOOTSTRAP": "kafka:9092,kafka2",
        "CIVICPULSE_MQTT_URL": "mqtt://u:p@mosquitto",
        "CIVICPULSE_DATABASE_URL": "postgresql://a:b@db:6543/x",
    }
    assert healthcheck.endpoints("kafka", env) == [("kafka", 9092), ("kafka2", 9092)]
    assert healthcheck.endpoints("mqtt", env) == [("mosquitto", 1883)]
    assert healthcheck.endpoints("database", env) == [("db", 6543)]


def test_healthcheck_passes_on_an_open_port_and_fails_on_a_closed_one() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        env = {"CIVICPULSE_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}"}
        assert healthcheck.check(["kafka"], env) == []
    closed = {"CIVICPULSE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}
    assert healthcheck.check(["kafka"], closed, timeout=1)


@pytest.mark.integration
def test_the_migrate_and_forecaster_commands_of_the_compose_file_run(fresh_db: str) -> None:
    import yaml

    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    shell, flag, script = services["migrate"]["command"]
    env = {
        **os.environ,
        "CIVICPULSE_DATABASE_URL": fresh_db,
        "GRAFANA_DB_PASSWORD": "pw",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    done = subprocess.run(
        [shell, flag, script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "civicpulse_reader can read" in done.stderr and "log in" in done.stderr
    loop = services["forecaster"]["command"][2]
    once = loop.split("while true; do ")[1].split(";")[0].split(" ||")[0]
    assert once == "civicpulse waste forecast"
    forecast = subprocess.run(
        ["sh", "-c", once], env=env, capture_output=True, text=True, timeout=300
    )
    assert forecast.returncode == 0, forecast.stderr
