"""docker-compose.yml, .env.example and Dockerfile: schema-valid, pinned, consistent, scalable."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from civicpulse.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]
ONE_SHOT = {"migrate", "simulator"}
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+]([^}]*))?\}")


def env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"not KEY=value: {line!r}"
            values[key.strip()] = value
    return values


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
    for name in ("migrate", "ingest", "worker", "forecaster"):
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
    assert any(line.startswith("USER ") and "root" not in line for line in lines)
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".git" in ignored and ".venv" in ignored
