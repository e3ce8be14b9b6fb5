"""A PostgreSQL query target for grafana-foundation-sdk panels (the SDK ships no SQL builder)."""

from __future__ import annotations

from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard as dashboard_models

DATASOURCE_TYPE = "grafana-postgresql-datasource"
DATASOURCE_UID = "civicpulse-pg"
Format = Literal["time_series", "table"]


def datasource_ref() -> dashboard_models.DataSourceRef:
    """The provisioned civicpulse PostgreSQL/TimescaleDB datasource."""
    return dashboard_models.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)


class PostgresDataquery(cogvariants.Dataquery):
    """One raw-SQL query of Grafana's PostgreSQL datasource (code editor mode)."""

    def __init__(self, ref_id: str = "A", raw_sql: str = "", fmt: Format = "table") -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.format = fmt

    def to_json(self) -> dict[str, Any]:
        """The target as Grafana stores it in a dashboard."""
        return {
            "refId": self.ref_id,
            "rawSql": self.raw_sql,
            "format": self.format,
            "rawQuery": True,
            "editorMode": "code",
            "datasource": {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """Parse a stored target (the SDK calls this when it reads a dashboard)."""
        return cls(
            str(data.get("refId", "A")),
            str(data.get("rawSql", "")),
            "time_series" if data.get("format") == "time_series" else "table",
        )


class SQL(cogbuilder.Builder[PostgresDataquery]):
    """Builder: ``SQL("SELECT …").time_series()`` as a panel target."""

    def __init__(self, raw_sql: str, ref_id: str = "A") -> None:
        self._internal = PostgresDataquery(ref_id, raw_sql.strip(), "table")

    def time_series(self) -> Self:
        """Return rows as time series (needs a ``time`` column, sorted ascending)."""
        self._internal.format = "time_series"
        return self

    def build(self) -> PostgresDataquery:
        """The query model."""
        return self._internal


cogruntime.register_dataquery_variant(
    cogruntime.DataqueryConfig(
        identifier=DATASOURCE_TYPE, from_json_hook=PostgresDataquery.from_json
    )
)
