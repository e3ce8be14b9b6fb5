"""Install the dashboards into a running Grafana (API), and give the reader role its login."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError
from psycopg import sql

from dashboards import render_all
from dashboards.dataquery import DATASOURCE_TYPE, DATASOURCE_UID

FOLDER_UID = "civicpulse"
READER_ROLE = "civicpulse_reader"


@dataclass(frozen=True, slots=True)
class Datasource:
    """Where Grafana reaches the database as the read-only role (for a non-provisioned Grafana)."""

    host: str  # host:port as Grafana sees it
    database: str
    password: str
    sslmode: str = "require"

    def model(self) -> dict[str, Any]:
        """The datasource as Grafana's API takes it (same uid the dashboards use)."""
        return {
            "name": "civicpulse",
            "uid": DATASOURCE_UID,
            "type": DATASOURCE_TYPE,
            "access": "proxy",
            "url": self.host,
            "user": READER_ROLE,
            "isDefault": False,
            "jsonData": {
                "database": self.database,
                "sslmode": self.sslmode,
                "postgresVersion": 1500,
                "timescaledb": True,
            },
            "secureJsonData": {"password": self.password},
        }


def push(
    api: GrafanaApi, datasource: Datasource | None = None, folder_uid: str = FOLDER_UID
) -> list[str]:
    """Create the folder (and datasource) if missing, then create or overwrite each dashboard."""
    folders: Any = api.folder  # grafana-client's element classes are untyped
    sources: Any = api.datasource
    boards: Any = api.dashboard
    try:
        folders.get_folder(folder_uid)
    except GrafanaClientError as exc:
        if exc.status_code != 404:
            raise
        folders.create_folder("civicpulse", uid=folder_uid)
    if datasource is not None:
        try:
            sources.get_datasource_by_uid(DATASOURCE_UID)
            sources.update_datasource_by_uid(DATASOURCE_UID, datasource.model())
        except GrafanaClientError as exc:
            if exc.status_code != 404:
                raise
            sources.create_datasource(datasource.model())
    pushed = []
    for uid, board in render_all().items():
        boards.update_dashboard(
            {
                "dashboard": board,
                "folderUid": folder_uid,
                "overwrite": True,
                "message": "civicpulse dashboards push",
            }
        )
        pushed.append(uid)
    return pushed


def grant_reader(conninfo: str, password: str | None) -> int:
    """Re-grant SELECT on the read contract; with ``password``, let the role log in with it.

    Returns how many read-contract relations the role can read.
    """
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if password:
            conn.execute(
                sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(READER_ROLE), sql.Literal(password)
                )
            )
        row = conn.execute("SELECT civicpulse_grant_reader()").fetchone()
    return int(row[0]) if row else 0


def import_locations(conninfo: str, rows: list[dict[str, str]]) -> int:
    """Upsert sensor positions (``sensor_id``, ``latitude``, ``longitude``) for the maps."""
    values = []
    for n, row in enumerate(rows, start=2):  # line 1 is the header
        try:
            values.append(
                (row["sensor_id"].strip(), float(row["latitude"]), float(row["longitude"]))
            )
        except (KeyError, ValueError, AttributeError) as exc:
            raise ValueError(f"line {n}: need sensor_id, latitude, longitude ({exc})") from exc
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO sensor_locations (sensor_id, latitude, longitude) VALUES (%s, %s, %s)"
            " ON CONFLICT (sensor_id) DO UPDATE SET latitude = EXCLUDED.latitude,"
            " longitude = EXCLUDED.longitude, updated_at = now()",
            values,
        )
    return len(values)
