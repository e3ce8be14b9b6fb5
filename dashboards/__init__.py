"""civicpulse Grafana dashboards as code: builders, generated JSON and provisioning."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards import air_quality, energy, fleet_health, operations, waste
from dashboards.panels import BUILTIN_ANNOTATIONS

__all__ = ["BUILDERS", "JSON_DIR", "PROVISIONING_DIR", "export", "render", "render_all"]

PACKAGE_DIR = Path(__file__).resolve().parent
JSON_DIR = PACKAGE_DIR / "json"
PROVISIONING_DIR = PACKAGE_DIR / "provisioning"

# uid → builder; the uid is also the JSON file name, so links and provisioning stay stable.
BUILDERS: dict[str, Callable[[], dashboard.Dashboard]] = {
    operations.UID: operations.build,
    air_quality.UID: air_quality.build,
    waste.UID: waste.build,
    energy.UID: energy.build,
    fleet_health.UID: fleet_health.build,
}


def render(uid: str) -> dict[str, Any]:
    """The dashboard model of ``uid`` as Grafana's JSON (a plain dict)."""
    model = BUILDERS[uid]().build()
    data: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
    for annotation in data["annotations"]["list"]:
        if annotation["name"] == BUILTIN_ANNOTATIONS:
            annotation["builtIn"] = 1  # Grafana's marker; absent from the SDK's model
    return data


def render_all() -> dict[str, dict[str, Any]]:
    """Every dashboard, by uid."""
    return {uid: render(uid) for uid in BUILDERS}


def to_text(data: dict[str, Any]) -> str:
    """Stable JSON text (sorted keys) so regenerating changes nothing unless code changed."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export(directory: Path = JSON_DIR) -> list[Path]:
    """Write ``<uid>.json`` for every dashboard into ``directory``; returns the files."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for uid, data in render_all().items():
        path = directory / f"{uid}.json"
        path.write_text(to_text(data), encoding="utf-8")
        written.append(path)
    return written
