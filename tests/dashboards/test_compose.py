"""docker-compose.yml, .env.example and Dockerfile: schema-valid, pinned, consistent, scalable,
wired to the device registry, closed by default (loopback ports, no example secrets)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from civicpulse.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]
ONE_SHOT = {"check-secrets", "migrate", "simulator"}
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+]([^}]*))?\}")


def env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"not KEY=value: {line!r}"
            values[key.strip()] = value
    return values


def resolve(text: str, values: dict[str, str]) -> str:
    """``text`` with its ${VAR:-default} interpolated from ``values`` (as `.env` would)."""
    return INTERPOLATION.sub(lambda m: values.get(m.group(1)) or m.group(2) or "", text)


def interpolations(text: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for name, default in INTERPOLATION.findall(text):
        found.setdefault(name, set()).add(default)
    return found


def test_compose_file_is_valid_against_the_compose_spec_schema() -> None:
    schema = json.loads((ROOT / "tests/dashboards/schemas/compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(COMPOSE), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_schema_check_rejects_a_broken_compose_file() -> None:
    schema = json.loads((ROOT / "tests/dashboards/schemas/compose-spec.json").read_text())
    broken = {"services": {"x": {"image": "a:1", "depends_on": {"y": {"condition": "later"}}}}}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def test_the_whole_stack_is_there() -> None:
    assert set(SERVICES) == {
        "mosquitto",
        "kafka",
        "timescaledb",
        "grafana",
        "migrate",
        "ingest",
        "worker",
        "forecaster",
        "simulator",
        "check-secrets",
        "registry-sync",
        "api",
        "alert-delivery",
        "retention",
    }
    assert SERVICES["simulator"]["profiles"] == ["sim"]
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")
    assert "KRaft" in (ROOT / "docker-compose.yml").read_text()
    assert SERVICES["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert SERVICES["timescaledb"]["image"].startswith("timescale/timescaledb:")


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_images_are_pinned(name: str) -> None:
    image = SERVICES[name]["image"]
    repo, _, tag = image.rpartition(":")
    assert repo and tag and tag != "latest" and re.search(r"\d+\.\d+", tag), image


@pytest.mark.parametrize("name", sorted(set(SERVICES) - ONE_SHOT))
def test_long_running_services_have_healthchecks_and_restart(name: str) -> None:
    check = SERVICES[name]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) > 1
    assert {"interval", "timeout", "retries"} <= set(check)
    assert SERVICES[name]["restart"] == "unless-stopped"


def test_dependencies_wait_for_health_or_completion() -> None:
    for name, service in SERVICES.items():
        for dep, spec in service.get("depends_on", {}).items():
            assert dep in SERVICES, f"{name} depends on unknown {dep}"
            if dep in ONE_SHOT:
                assert spec["condition"] == "service_completed_successfully", (name, dep)
            elif "healthcheck" in SERVICES[dep] and name != "simulator":
                assert spec["condition"] == "service_healthy", (name, dep)
    assert SERVICES["worker"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )


def test_worker_is_scalable() -> None:
    worker = SERVICES["worker"]
    for key in ("container_name", "ports", "hostname"):
        assert key not in worker, f"`{key}` stops `docker compose up --scale worker=N`"
    assert worker["command"][:2] == ["civicpulse", "process"]


def test_named_volumes_are_declared_and_bind_mounts_exist() -> None:
    declared = set(COMPOSE["volumes"])
    used = set()
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"bind mount source {source} is missing"
            else:
                assert source in declared
                used.add(source)
    assert used == declared


def test_every_variable_is_in_env_example_and_nothing_else_is() -> None:
    example = env_example()
    used = interpolations((ROOT / "docker-compose.yml").read_text())
    missing = sorted(set(used) - set(example))
    assert not missing, f"used in docker-compose.yml, missing from .env.example: {missing}"
    unused = sorted(set(example) - set(used))
    assert not unused, f"in .env.example but docker-compose.yml never reads them: {unused}"
    settings_vars = {row[0] for row in Settings.documented()}
    assert settings_vars <= set(example), sorted(settings_vars - set(example))


def test_compose_defaults_equal_env_example_values() -> None:
    example = env_example()
    for name, defaults in interpolations((ROOT / "docker-compose.yml").read_text()).items():
        for default in defaults:
            assert default == example[name], f"{name}: compose {default!r} vs {example[name]!r}"


def test_every_civicpulse_setting_reaches_the_civicpulse_services() -> None:
    anchor = COMPOSE["x-civicpulse-env"]
    assert set(anchor) == {row[0] for row in Settings.documented()}
    for key, value in anchor.items():
        assert value.startswith("${" + key + ":-"), f"{key} must come from the environment"
    for name in (
        "migrate",
        "ingest",
        "worker",
        "forecaster",
        "registry-sync",
        "alert-delivery",
        "retention",
    ):
        assert set(anchor) <= set(SERVICES[name]["environment"])


def test_credentials_in_urls_match_the_accounts() -> None:
    e = env_example()
    bridge, device, db = (
        urlsplit(e[k]) for k in ("CIVICPULSE_MQTT_URL", "SIM_MQTT_URL", "CIVICPULSE_DATABASE_URL")
    )
    assert (bridge.username, bridge.password) == (
        e["MQTT_BRIDGE_USERNAME"],
        e["MQTT_BRIDGE_PASSWORD"],
    )
    assert (device.username, device.password) == (
        e["MQTT_DEVICE_USERNAME"],
        e["MQTT_DEVICE_PASSWORD"],
    )
    assert (db.username, db.password, db.path) == (
        e["POSTGRES_USER"],
        e["POSTGRES_PASSWORD"],
        "/" + e["POSTGRES_DB"],
    )
    assert {bridge.hostname, db.hostname} <= set(SERVICES)


def test_grafana_mounts_the_provisioning_and_the_dashboards() -> None:
    mounts = {v.split(":")[1]: v.split(":")[0] for v in SERVICES["grafana"]["volumes"]}
    assert mounts["/etc/grafana/provisioning"] == "./dashboards/provisioning"
    assert mounts["/var/lib/grafana/dashboards"] == "./dashboards/json"
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "dashboards/json" / Path(home).name).is_file()


def test_dockerfile_installs_the_package_from_a_pinned_python_311_slim() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    base = next(line.split()[1] for line in lines if line.startswith("FROM "))
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base), base
    for line in lines:
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"COPY source {source} is missing"
    assert any("pip install ." in line for line in lines)
    copied = {line.split()[1] for line in lines if line.startswith("COPY ")}
    for pattern in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]:
        package = pattern.rstrip("*")  # the image must hold every package the CLI imports
        assert package in copied, f"the image lacks the {package} package: COPY {package}"
    assert any(line.startswith("USER ") and "root" not in line for line in lines)
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".git" in ignored and ".venv" in ignored


def dependencies(name: str) -> set[str]:
    """Every service ``name`` waits for, directly or not."""
    found: set[str] = set()
    todo = [name]
    while todo:
        for dep in SERVICES[todo.pop()].get("depends_on", {}):
            if dep not in found:
                found.add(dep)
                todo.append(dep)
    return found


def test_nothing_starts_before_the_secrets_are_checked() -> None:
    check = SERVICES["check-secrets"]
    assert check["restart"] == "no" and check["command"] == [
        "sh",
        "/opt/civicpulse/check-secrets.sh",
    ]
    for name in set(SERVICES) - {"check-secrets"}:
        assert "check-secrets" in dependencies(name), f"{name} starts before check-secrets"
    # It sees every password it judges and every URL that carries one.
    assert {
        "POSTGRES_PASSWORD",
        "MQTT_BRIDGE_PASSWORD",
        "MQTT_DEVICE_PASSWORD",
        "GRAFANA_ADMIN_PASSWORD",
        "GRAFANA_DB_PASSWORD",
        "CIVICPULSE_MQTT_URL",
        "CIVICPULSE_DATABASE_URL",
        "SIM_MQTT_URL",
    } <= set(check["environment"])
    script = (ROOT / "docker/check-secrets.sh").read_text()
    for name in check["environment"]:
        assert name in script, f"check-secrets is given {name} but never reads it"


def test_the_example_secrets_are_example_values() -> None:
    """What check-secrets refuses (tests/dashboards/test_docker_runtime.py runs it)."""
    example = env_example()
    for name in ("POSTGRES_PASSWORD", "MQTT_BRIDGE_PASSWORD", "GRAFANA_DB_PASSWORD"):
        assert example[name].startswith("change-me"), name
    assert example["GRAFANA_ADMIN_PASSWORD"].startswith("change-me")
    assert "admin" not in SERVICES["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert example["MQTT_DEVICE_PASSWORD"] == "", "the simulator's account is off by default"


def test_published_ports_are_on_loopback_unless_widened() -> None:
    example = env_example()
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert isinstance(port, str), (name, port)  # HOST_IP:HOST_PORT:CONTAINER_PORT
            assert resolve(port, example).count(":") == 2, (name, port)
            assert resolve(port, example).startswith("127.0.0.1:"), (name, port)
            assert resolve(port, {}).startswith("127.0.0.1:"), (name, port)  # no .env at all
    # MQTT (devices) and Grafana (people) can be widened, each by its own variable.
    mqtt, grafana = SERVICES["mosquitto"]["ports"], SERVICES["grafana"]["ports"]
    assert mqtt == ["${MQTT_BIND_ADDRESS:-127.0.0.1}:${MQTT_PORT:-1883}:1883"]
    assert grafana == ["${GRAFANA_BIND_ADDRESS:-127.0.0.1}:${GRAFANA_PORT:-3000}:3000"]
    widened = {**example, "MQTT_BIND_ADDRESS": "0.0.0.0"}
    assert resolve(mqtt[0], widened) == "0.0.0.0:1883:1883"
    assert resolve(grafana[0], widened) == "127.0.0.1:3000:3000"


def mounts(service: str) -> dict[str, str]:
    """Mount target → source (with ``:ro`` kept on the source when read-only)."""
    found = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target, *mode = volume.split(":")
        found[target] = source + (":ro" if mode == ["ro"] else "")
    return found


def test_mosquitto_reads_the_registry_not_the_environment() -> None:
    sync, broker = SERVICES["registry-sync"], SERVICES["mosquitto"]
    assert sync["command"] == ["sh", "/opt/civicpulse/registry-sync.sh"]
    out = sync["environment"]["REGISTRY_SYNC_DIR"]
    assert mounts("registry-sync")[out] == "mosquitto-auth"  # writes it
    entrypoint = (ROOT / "docker/mosquitto/entrypoint.sh").read_text()
    registry_dir = re.search(r'MOSQUITTO_REGISTRY_DIR:-([^}"]+)', entrypoint)
    assert registry_dir, "the entrypoint must say where it reads the registry's files"
    assert mounts("mosquitto")[registry_dir.group(1)] == "mosquitto-auth:ro"  # only reads it
    assert broker["depends_on"]["registry-sync"]["condition"] == "service_healthy"
    assert sync["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert sync["healthcheck"]["test"][-1] == "registry"
    # The bridge's account is the registry's (registry-sync registers it from MQTT_BRIDGE_*):
    # the broker's entrypoint never makes a login from a password in the environment...
    assert "MQTT_BRIDGE_PASSWORD" not in entrypoint
    assert {"MQTT_BRIDGE_USERNAME", "MQTT_BRIDGE_PASSWORD"} <= set(sync["environment"])
    # ...and no ACL rule of ours is a pattern (%u let a device write under any council).
    for path in ("docker/mosquitto/entrypoint.sh", "docker/registry-sync.sh"):
        code = [ln for ln in (ROOT / path).read_text().splitlines() if not ln.startswith("#")]
        assert not [ln for ln in code if re.search(r"\bpattern\b", ln)], path
    # Its healthcheck logs in as the bridge, whose ACL reads civicpulse/# only (no $SYS).
    check = broker["healthcheck"]["test"][1]
    assert "$$SYS" not in check and "MQTT_BRIDGE_USERNAME" in check and " -E" in check


def test_the_image_has_what_the_compose_helpers_need() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    helpers = [line for line in lines if line.startswith("COPY docker/")]
    copied = {Path(source).name for line in helpers for source in line.split()[1:-1]}
    assert copied >= {
        "healthcheck.py",
        "check-secrets.sh",
        "registry-sync.sh",
        "bridge_account.py",
    }
    assert all(line.split()[-1] == "/opt/civicpulse/" for line in helpers)
    # A new mosquitto-auth volume takes the owner of the image's directory it is mounted on.
    out = SERVICES["registry-sync"]["environment"]["REGISTRY_SYNC_DIR"]
    assert any(f"-o civicpulse -g civicpulse {out}" in line for line in lines)


def shell_command(service: str) -> str:
    command = SERVICES[service]["command"]
    assert command[:2] == ["sh", "-c"] and len(command) == 3, command
    return str(command[2])


def test_alert_delivery_and_retention_run_as_services() -> None:
    deliver = shell_command("alert-delivery")
    # `alerts deliver` loops by itself (--interval); `db retention` runs once, so it is looped.
    assert re.search(
        r'exec civicpulse alerts deliver --url "\$\$\{ALERT_WEBHOOK_URL\}"'
        r' --interval "\$\$\{ALERT_DELIVERY_INTERVAL_S\}"$',
        deliver,
    ), deliver
    assert "--once" not in deliver
    retention = shell_command("retention")
    assert retention.startswith("while true; do if civicpulse db retention; then sleep")
    assert '"$${RETENTION_INTERVAL_S}"' in retention
    for name in ("alert-delivery", "retention", "forecaster", "registry-sync"):
        service = SERVICES[name]
        assert service["init"] is True, f"{name}: a shell loop as pid 1 ignores SIGTERM"
        assert service["depends_on"]["migrate"]["condition"] == ("service_completed_successfully")
    example = env_example()
    assert example["ALERT_WEBHOOK_URL"] == "" and example["RETENTION_INTERVAL_S"] == "86400"


def test_the_full_stack_docs_describe_every_service() -> None:
    docs = (ROOT / "docs/full-stack.md").read_text()
    for name in SERVICES:
        assert f"| `{name}` |" in docs, f"docs/full-stack.md's table lacks {name}"
    out = SERVICES["registry-sync"]["environment"]["REGISTRY_SYNC_DIR"]
    assert f"civicpulse devices sync --out {out}" in docs  # the documented sync-now command
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Full stack (Docker Compose)")[1].split("\n## ")[0]
    for name in ("check-secrets", "registry-sync", "alert-delivery", "retention"):
        assert f"`{name}`" in section, f"README's Full stack section lacks {name}"
