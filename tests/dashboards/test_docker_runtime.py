"""The compose stack's own files run for real: the secrets check, the registry-sync loop and
the bridge's account, Mosquitto's entrypoint (reloading from the registry), the healthchecks,
and the commands of the migrate, forecaster, alert-delivery and retention services."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docker"))
import healthcheck  # noqa: E402

SERVICES = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
USERS = {
    "MQTT_BRIDGE_USERNAME": "bridge-user",
    "MQTT_BRIDGE_PASSWORD": "bridge-secret",
    "MQTT_DEVICE_USERNAME": "device-user",
    "MQTT_DEVICE_PASSWORD": "device-secret",
}
VENV_PATH = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}:/usr/sbin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eventually(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds} s: {what}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    """End a process started in its own session, and whatever it started."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    with contextlib.suppress(ProcessLookupError):  # its children (a sleep, a sync) too
        os.killpg(proc.pid, signal.SIGKILL)


@dataclass
class Stack:
    """registry-sync.sh and Mosquitto's entrypoint.sh, as compose runs them, on a real registry."""

    db: str
    tmp: Path
    port: int
    env: dict[str, str]
    sync: subprocess.Popen | None = None
    broker: subprocess.Popen | None = None

    @property
    def registry(self) -> Path:  # the mosquitto-auth volume
        return self.tmp / "registry"

    @property
    def auth(self) -> Path:  # the broker's installed copy
        return self.tmp / "auth"

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _spawn(self, name: str, script: str) -> subprocess.Popen:
        with (self.tmp / f"{name}.log").open("a") as log:
            return subprocess.Popen(
                ["sh", str(ROOT / script)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_sync(self) -> None:
        self.sync = self._spawn("registry-sync", "docker/registry-sync.sh")
        eventually(
            lambda: (self.registry / "acl").exists() or self.sync.poll() is not None,
            60,
            "registry-sync writes its files",
        )
        assert self.sync.poll() is None, self.log("registry-sync")

    def start_broker(self) -> None:
        self.broker = self._spawn("mosquitto", "docker/mosquitto/entrypoint.sh")

        def listening() -> bool:
            assert self.broker is not None
            if self.broker.poll() is not None:
                pytest.fail("mosquitto did not start: " + self.log("mosquitto"))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False

        eventually(listening, 15, "mosquitto listens")

    def stop_broker(self) -> None:
        """SIGTERM to the entrypoint alone, as `docker stop` sends it to pid 1."""
        assert self.broker is not None
        self.broker.terminate()
        assert self.broker.wait(10) == 0, self.log("mosquitto")  # passed on: a clean stop
        stop(self.broker)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["civicpulse", *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done


@pytest.fixture
def stack(fresh_db: str, tmp_path: Path) -> Iterator[Stack]:
    """The registry migrated, registry-sync running (1 s passes) and Mosquitto started through
    docker/mosquitto/entrypoint.sh with the compose config (reload checks every 0.5 s)."""
    from storage import migrate

    migrate(fresh_db)
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
        "CIVICPULSE_DATABASE_URL": fresh_db,
        "REGISTRY_SYNC_DIR": str(tmp_path / "registry"),
        "REGISTRY_SYNC_INTERVAL_S": "1",
        "MOSQUITTO_REGISTRY_DIR": str(tmp_path / "registry"),
        "MOSQUITTO_AUTH_DIR": str(tmp_path / "auth"),
        "MOSQUITTO_CONF": str(tmp_path / "mosquitto.conf"),
        "MOSQUITTO_RELOAD_CHECK_S": "0.5",
        "PATH": VENV_PATH,
    }
    s = Stack(fresh_db, tmp_path, port, env)
    try:
        s.start_sync()
        s.start_broker()
        yield s
    finally:
        for proc in (s.broker, s.sync):
            if proc is not None:
                stop(proc)


@pytest.fixture
def broker(stack: Stack) -> int:
    return stack.port


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


# --- check-secrets: the stack refuses to start on example secrets ---------------------------

GOOD = {
    "POSTGRES_USER": "civicpulse",
    "POSTGRES_PASSWORD": "pg-7f3a9c2e51d4",
    "MQTT_BRIDGE_USERNAME": "civicpulse-bridge",
    "MQTT_BRIDGE_PASSWORD": "br-0b8e6d1f27a9",
    "MQTT_DEVICE_USERNAME": "civicpulse-device",
    "MQTT_DEVICE_PASSWORD": "",
    "GRAFANA_ADMIN_PASSWORD": "gf-c41d9e07b3f2",
    "GRAFANA_DB_PASSWORD": "rd-5e2a8f60c1b7",
    "CIVICPULSE_MQTT_URL": "mqtt://civicpulse-bridge:br-0b8e6d1f27a9@mosquitto:1883",
    "CIVICPULSE_DATABASE_URL": (
        "postgresql://civicpulse:pg-7f3a9c2e51d4@timescaledb:5432/civicpulse"
    ),
    "SIM_MQTT_URL": "mqtt://civicpulse-device:@mosquitto:1883",
}


def check_secrets(env: dict[str, str]) -> tuple[int, list[str]]:
    """docker/check-secrets.sh as the check-secrets service runs it: (exit code, stderr lines)."""
    done = subprocess.run(
        ["sh", str(ROOT / "docker/check-secrets.sh")],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.stdout == ""
    return done.returncode, done.stderr.splitlines()


def refusal(env: dict[str, str]) -> str:
    code, lines = check_secrets(env)
    assert code == 1 and len(lines) == 1, (code, lines)
    assert lines[0].startswith("check-secrets: refusing to start: ")
    for name, value in env.items():  # never a secret in the log
        if "PASSWORD" in name and len(value) > 5:
            assert value not in lines[0]
    return lines[0]


def test_check_secrets_refuses_the_stack_as_shipped() -> None:
    from tests.dashboards.test_compose import env_example, resolve

    service = SERVICES["check-secrets"]["environment"]
    for values in (env_example(), {}):  # .env copied unedited, or no .env at all
        env = {name: resolve(str(value), values) for name, value in service.items()}
        assert "POSTGRES_PASSWORD is an example value" in refusal(env)


def test_check_secrets_accepts_real_secrets_and_names_the_example_one() -> None:
    assert check_secrets(GOOD) == (
        0,
        ["check-secrets: the secrets are set and none is an example value"],
    )
    for name, value in (
        ("POSTGRES_PASSWORD", "change-me-db"),
        ("MQTT_BRIDGE_PASSWORD", "change-me-bridge"),
        ("GRAFANA_DB_PASSWORD", "change-me-reader"),
        ("GRAFANA_ADMIN_PASSWORD", "change-me-grafana"),
        ("GRAFANA_ADMIN_PASSWORD", "admin"),  # Grafana's own default
        ("MQTT_DEVICE_PASSWORD", "change-me-device"),
        ("MQTT_BRIDGE_PASSWORD", "my-change-me-2"),
    ):
        line = refusal({**GOOD, name: value})
        assert f": {name} is an example value (.env.example)" in line, line
    for name in ("POSTGRES_PASSWORD", "MQTT_BRIDGE_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        assert f": {name} is empty;" in refusal({**GOOD, name: ""})
        without = {k: v for k, v in GOOD.items() if k != name}
        assert f": {name} is empty;" in refusal(without)


def test_check_secrets_wants_each_url_to_carry_its_accounts_login() -> None:
    for url, value, account in (
        ("CIVICPULSE_MQTT_URL", "mqtt://civicpulse-bridge:other@mosquitto:1883", "MQTT_BRIDGE"),
        ("CIVICPULSE_MQTT_URL", "mqtt://mosquitto:1883", "MQTT_BRIDGE"),
        ("CIVICPULSE_DATABASE_URL", "postgresql://postgres:pg-7f3a9c2e51d4@db/x", "POSTGRES"),
    ):
        line = refusal({**GOOD, url: value})
        assert f": {url} must log in as {account}_" in line, line
    # %-escapes are decoded: a password that needs them still matches.
    tricky = "p@ss/wörd:1"
    env = {
        **GOOD,
        "MQTT_BRIDGE_PASSWORD": tricky,
        "CIVICPULSE_MQTT_URL": "mqtt://civicpulse-bridge:p%40ss%2Fw%C3%B6rd%3A1@mosquitto:1883",
    }
    assert check_secrets(env)[0] == 0
    # The simulator's account is optional; once on, SIM_MQTT_URL must carry it.
    sim = {**GOOD, "MQTT_DEVICE_PASSWORD": "sim-8d2f4a6c9e1b"}
    assert ": SIM_MQTT_URL must log in as MQTT_DEVICE_" in refusal(sim)
    sim["SIM_MQTT_URL"] = "mqtt://civicpulse-device:sim-8d2f4a6c9e1b@mosquitto:1883"
    assert check_secrets(sim)[0] == 0
    assert "must differ" in refusal({**sim, "MQTT_DEVICE_USERNAME": "civicpulse-bridge"})
    same = {**GOOD, "GRAFANA_DB_PASSWORD": GOOD["POSTGRES_PASSWORD"]}
    assert ": GRAFANA_DB_PASSWORD must differ from POSTGRES_PASSWORD" in refusal(same)


# --- Mosquitto's logins and ACL come from the registry --------------------------------------


def test_entrypoint_gives_up_when_registry_sync_never_writes_its_files(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "MQTT_BRIDGE_USERNAME": "bridge-user",
        "MOSQUITTO_REGISTRY_DIR": str(tmp_path / "registry"),
        "MOSQUITTO_AUTH_DIR": str(tmp_path / "auth"),
        "MOSQUITTO_SYNC_WAIT_S": "1",
    }
    done = subprocess.run(
        ["sh", str(ROOT / "docker/mosquitto/entrypoint.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "is registry-sync running?" in done.stderr.splitlines()[-1]
    clash = {**env, "MQTT_DEVICE_USERNAME": "bridge-user", "MQTT_DEVICE_PASSWORD": "x"}
    done = subprocess.run(
        ["sh", str(ROOT / "docker/mosquitto/entrypoint.sh")],
        env=clash,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "differ from MQTT_BRIDGE_USERNAME" in done.stderr


def rules(path: Path) -> list[str]:
    return [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


@pytest.mark.integration
def test_registry_devices_are_accepted_confined_and_survive_a_restart(stack: Stack) -> None:
    """The reported bugs: a device added as docs/full-stack.md says was refused after a
    restart, and `pattern write civicpulse/+/+/%u` let it publish under another council."""
    # Mosquitto's healthcheck, as compose runs it: the bridge's login from the registry.
    check = SERVICES["mosquitto"]["healthcheck"]["test"][1]
    check = check.replace("$$", "$").replace("-p 1883", f"-p {stack.port}")
    run = subprocess.run(["sh", "-c", check], env=stack.env, capture_output=True, timeout=30)
    assert run.returncode == 0, run.stderr
    wrong = {**stack.env, "MQTT_BRIDGE_PASSWORD": "wrong"}
    assert subprocess.run(["sh", "-c", check], env=wrong, capture_output=True).returncode != 0
    assert healthcheck.check(["registry"], stack.env) == []  # registry-sync's healthcheck
    accounts = json.loads(stack.cli("accounts", "list", "--json").stdout)
    assert accounts == [{"name": "bridge-user", "role": "ingest"}]

    stack.cli("councils", "add", "edinburgh", "--name", "City of Edinburgh Council")
    stack.cli("councils", "add", "aberdeen", "--name", "Aberdeen City Council")
    added = stack.cli(
        "devices", "add", "bin-1", "--council", "edinburgh", "--kind", "waste_bin", "--json"
    )
    secret = json.loads(added.stdout)["secret"]
    own = "civicpulse/edinburgh/waste_bin/bin-1"
    eventually(lambda: pub(stack.port, "bin-1", secret, own) == 0, 20, "bin-1 accepted")
    for acl in (stack.registry / "acl", stack.auth / "acl"):  # synced, and installed
        lines = rules(acl)
        assert not [ln for ln in lines if ln.split()[0] == "pattern"], acl
        after = lines[lines.index("user bin-1") + 1 :]  # its rules: its own topic, write only
        assert after[0] == f"topic write {own}", acl
        assert len(after) == 1 or after[1].startswith("user "), acl
    assert "reloaded" in stack.log("mosquitto")

    bridge = subscribe(stack.port, "bridge-user", "bridge-secret", "civicpulse/#")
    assert pub(stack.port, "bin-1", secret, "civicpulse/aberdeen/waste_bin/bin-1") == 0  # dropped
    assert pub(stack.port, "bin-1", secret, "civicpulse/edinburgh/waste_bin/bin-2") == 0  # dropped
    assert pub(stack.port, "bin-1", secret, own) == 0
    assert bridge.messages() == f"{own} x", "a device publishes only to its own topic"

    stack.stop_broker()  # `docker compose restart mosquitto`
    stack.start_broker()
    assert pub(stack.port, "bin-1", secret, own) == 0, "the device must survive a restart"

    stack.cli("devices", "disable", "bin-1")
    eventually(lambda: pub(stack.port, "bin-1", secret, own) != 0, 20, "bin-1 refused")
    added = stack.cli(
        "devices", "add", "bin-2", "--council", "edinburgh", "--kind", "waste_bin", "--json"
    )
    first = json.loads(added.stdout)["secret"]
    bin2 = "civicpulse/edinburgh/waste_bin/bin-2"
    eventually(lambda: pub(stack.port, "bin-2", first, bin2) == 0, 20, "bin-2 accepted")
    new = json.loads(stack.cli("devices", "rotate", "bin-2", "--json").stdout)["secret"]
    eventually(lambda: pub(stack.port, "bin-2", first, bin2) != 0, 20, "old secret refused")
    assert pub(stack.port, "bin-2", new, bin2) == 0
    stack.stop_broker()
    stack.start_broker()
    assert pub(stack.port, "bin-1", secret, own) != 0, "a disabled device stays out"
    assert pub(stack.port, "bin-2", new, bin2) == 0
    assert stack.sync is not None and stack.sync.poll() is None, stack.log("registry-sync")


@pytest.mark.integration
def test_the_bridge_account_follows_the_environment(fresh_db: str) -> None:
    from storage import migrate
    from storage import registry_store as reg
    from trust import Device, ServiceAccount, check_broker_hash

    migrate(fresh_db)

    def run(**env: str) -> tuple[int, str]:
        done = subprocess.run(
            [sys.executable, str(ROOT / "docker/bridge_account.py")],
            env={**os.environ, "CIVICPULSE_DATABASE_URL": fresh_db, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = done.stderr.splitlines()
        assert len(lines) == 1, done.stderr
        return done.returncode, lines[0]

    def broker_hash(name: str) -> str:
        passwd = reg.load_broker_files(fresh_db).passwd.splitlines()
        return next(ln.split(":", 1)[1] for ln in passwd if ln.startswith(f"{name}:"))

    login = {"MQTT_BRIDGE_USERNAME": "bridge-1", "MQTT_BRIDGE_PASSWORD": "first-secret"}
    assert run(**login) == (
        0,
        "bridge_account: registered the ingest account bridge-1 with MQTT_BRIDGE_PASSWORD",
    )
    assert reg.list_service_accounts(fresh_db) == [ServiceAccount("bridge-1", "ingest")]
    kept = broker_hash("bridge-1")
    assert check_broker_hash(kept, "first-secret")
    assert run(**login)[1].endswith("is registered with MQTT_BRIDGE_PASSWORD")
    assert broker_hash("bridge-1") == kept  # nothing rewritten: no reload for nothing
    assert run(**{**login, "MQTT_BRIDGE_PASSWORD": "second-secret"})[1].endswith(
        "has a new secret: MQTT_BRIDGE_PASSWORD"
    )
    assert check_broker_hash(broker_hash("bridge-1"), "second-secret")
    assert not check_broker_hash(broker_hash("bridge-1"), "first-secret")

    reg.add_council(fresh_db, "leeds", "Leeds City Council")
    reg.add_device(fresh_db, Device("aq-1", "leeds", "air_quality"))
    reg.add_service_account(fresh_db, ServiceAccount("engine-1", "engine"))
    for name, problem in (
        ("aq-1", "'aq-1' is a device's sensor id"),
        ("engine-1", "'engine-1' has role engine, not ingest"),
        ("bad name", "must match"),
    ):
        code, line = run(**{**login, "MQTT_BRIDGE_USERNAME": name})
        assert code == 1 and problem in line, line
    code, line = run(MQTT_BRIDGE_USERNAME="bridge-1", MQTT_BRIDGE_PASSWORD="")
    assert code == 1 and "set MQTT_BRIDGE_USERNAME and MQTT_BRIDGE_PASSWORD" in line
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    code, line = run(**login, CIVICPULSE_DATABASE_URL=closed)
    assert code == 1 and "cannot connect to the database" in line


def test_the_registry_healthcheck_wants_fresh_files(tmp_path: Path) -> None:
    env = {"REGISTRY_SYNC_DIR": str(tmp_path), "REGISTRY_SYNC_INTERVAL_S": "30"}
    assert len(healthcheck.check(["registry"], env)) == 2  # nothing synced yet
    for name in ("passwd", "acl"):
        (tmp_path / name).write_text("# synced\n")
    assert healthcheck.check(["registry"], env) == []
    stale = time.time() - 91  # three passes of 30 s
    os.utime(tmp_path / "acl", (stale, stale))
    [problem] = healthcheck.check(["registry"], env)
    assert problem.startswith(f"registry {tmp_path / 'acl'}: last synced 9")


# --- alert delivery and retention -------------------------------------------------------------


class Webhook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        type(self).received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def service_loop(name: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    """A service's `sh -c` command as compose runs it ($$ is compose's escape for $)."""
    shell, flag, script = SERVICES[name]["command"]
    with log.open("w") as out:
        return subprocess.Popen(
            [shell, flag, script.replace("$$", "$")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.mark.integration
def test_alert_delivery_posts_queued_notifications_and_idles_without_a_webhook(
    fresh_db: str, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from sensors.reading import Reading, encode_reading
    from storage import ReadingStore, migrate
    from stream_processors.pipeline import ReadingPipeline

    migrate(fresh_db)
    t = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    full = Reading(
        sensor_id="bin-1",
        council="aberdeen",
        kind="waste_bin",
        metric="fill_level",
        value=99.0,
        unit="%",
        time=t,
        received_at=t,
    )
    ReadingPipeline(ReadingStore(fresh_db)).process([encode_reading(full)])  # queues "opened"
    Webhook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        **os.environ,
        "PATH": VENV_PATH,
        "CIVICPULSE_DATABASE_URL": fresh_db,
        "ALERT_DELIVERY_INTERVAL_S": "0.5",
    }
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        proc = service_loop("alert-delivery", {**env, "ALERT_WEBHOOK_URL": url}, tmp_path / "a")
        try:
            eventually(lambda: bool(Webhook.received) or proc.poll() is not None, 60, "a POST")
            assert proc.poll() is None, (tmp_path / "a").read_text()  # it keeps delivering
            [body] = Webhook.received
            assert (body["event"], body["rule"], body["sensor_id"]) == (
                "opened",
                "bin_collection_needed",
                "bin-1",
            )
        finally:
            stop(proc)
    finally:
        server.shutdown()
    idle = service_loop("alert-delivery", {**env, "ALERT_WEBHOOK_URL": ""}, tmp_path / "b")
    try:
        eventually(lambda: "ALERT_WEBHOOK_URL is empty" in (tmp_path / "b").read_text(), 10, "")
        time.sleep(1)
        assert idle.poll() is None, "it idles (notifications stay queued) rather than restart"
    finally:
        stop(idle)


@pytest.mark.integration
def test_the_retention_service_runs_civicpulse_db_retention_then_sleeps(
    fresh_db: str, tmp_path: Path
) -> None:
    from storage import migrate

    migrate(fresh_db)
    env = {
        **os.environ,
        "PATH": VENV_PATH,
        "CIVICPULSE_DATABASE_URL": fresh_db,
        "RETENTION_INTERVAL_S": "3600",
    }
    proc = service_loop("retention", env, tmp_path / "log")
    try:
        log = tmp_path / "log"
        eventually(lambda: "dead_letters:" in log.read_text() or proc.poll() is not None, 60, "")
        assert re.search(r"^dead_letters: 0 row\(s\) deleted$", log.read_text(), re.M), (
            log.read_text()
        )
        assert "retention failed" not in log.read_text()
        assert proc.poll() is None  # asleep until the next pass
    finally:
        stop(proc)
