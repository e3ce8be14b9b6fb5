"""``civicpulse dashboards``: export the JSON, push to a Grafana, grant the reader, check SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from civicpulse.cli.console import console, fail
from civicpulse.cli.options import DatabaseUrl

dashboards_app = typer.Typer(
    help="Grafana dashboards: export, push, read-only role, query check.", no_args_is_help=True
)

Out = Annotated[
    Path | None, typer.Option("--out", help="Directory (default: dashboards/json in the package)")
]
GrafanaUrl = Annotated[str, typer.Option("--grafana-url", help="e.g. https://grafana.example.org")]
Token = Annotated[
    str,
    typer.Option(
        "--token", envvar="GRAFANA_TOKEN", help="Service-account token [env GRAFANA_TOKEN]"
    ),
]
DbHost = Annotated[
    str | None,
    typer.Option(
        "--db-host", help="Also create the datasource: host:port of the database as Grafana sees it"
    ),
]
DbName = Annotated[str, typer.Option("--db-name", help="Database name for the datasource")]
ReaderPassword = Annotated[
    str | None,
    typer.Option(
        "--db-password",
        "--password",
        envvar="GRAFANA_DB_PASSWORD",
        help="civicpulse_reader's password [env GRAFANA_DB_PASSWORD]",
    ),
]
SslMode = Annotated[str, typer.Option("--sslmode", help="disable, require, verify-full")]
Hours = Annotated[float, typer.Option("--hours", min=0.1, help="Time range: the last N hours")]
TimescaleMacros = Annotated[
    bool,
    typer.Option(
        "--timescaledb/--no-timescaledb",
        help="Expand $__timeGroup as time_bucket (as the provisioned datasource does)",
    ),
]


@dashboards_app.command("export")
def export_cmd(
    out: Out = None,
) -> None:
    """Regenerate the dashboard JSON files (stable uids) from the builders."""
    from dashboards import JSON_DIR, export

    for path in export(out or JSON_DIR):
        print(path)


@dashboards_app.command("push")
def push_cmd(
    grafana_url: GrafanaUrl,
    token: Token,
    db_host: DbHost = None,
    db_name: DbName = "civicpulse",
    db_password: ReaderPassword = None,
    sslmode: SslMode = "require",
) -> None:
    """Install the dashboards into a Grafana that is not file-provisioned (grafana-client)."""
    from grafana_client.api import GrafanaApi
    from grafana_client.client import GrafanaException

    from dashboards.install import Datasource, push

    source = None
    if db_host:
        if not db_password:
            raise fail("--db-host needs --db-password (or GRAFANA_DB_PASSWORD)", code=2)
        source = Datasource(db_host, db_name, db_password, sslmode)
    try:
        pushed = push(GrafanaApi.from_url(grafana_url, credential=token), source)
    except (GrafanaException, OSError) as exc:
        raise fail(f"{exc} — check --grafana-url and the token's rights") from exc
    for uid in pushed:
        print(f"{grafana_url.rstrip('/')}/d/{uid}")


@dashboards_app.command("grant-reader")
def grant_reader_cmd(
    database_url: DatabaseUrl = None,
    password: ReaderPassword = None,
) -> None:
    """Give the read-only role SELECT on the read contract (and a login), idempotently.

    Connect as the database owner: --database-url is the owner's URL.
    """
    import psycopg

    from civicpulse.settings import Settings
    from dashboards.install import grant_reader

    settings = Settings.load(database_url=database_url)
    try:
        n = grant_reader(settings.database_url, password)
    except psycopg.Error as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise fail(f"{first} — run `civicpulse db migrate` first?") from exc
    console.print(
        f"civicpulse_reader can read {n} read-contract relations"
        + (" and log in" if password else "")
    )


@dashboards_app.command("check")
def check_cmd(
    database_url: DatabaseUrl = None,
    hours: Hours = 24.0,
    timescaledb: TimescaleMacros = True,
) -> None:
    """Run every panel and variable query as Grafana would (as civicpulse_reader)."""
    import psycopg

    from civicpulse.settings import Settings
    from dashboards import querycheck as q
    from dashboards import render_all
    from dashboards.macros import QueryContext

    now = datetime.now(UTC)
    ctx = QueryContext(now - timedelta(hours=hours), now, timedelta(minutes=5), timescaledb)
    bad = 0
    with psycopg.connect(Settings.load(database_url=database_url).database_url) as conn:
        for board in render_all().values():
            values = q.resolve_variables(conn, board, ctx)
            for query in q.panel_queries(board):
                try:
                    result = q.run(conn, q.expand(query.raw_sql, values, q.multi_names(board), ctx))
                    problems = q.shape_problems(query, result)
                    note = ", ".join(problems) or f"{len(result.rows)} rows"
                except psycopg.Error as exc:
                    problems, note = ["error"], str(exc).splitlines()[0]
                bad += bool(problems)
                print(f"{'FAIL' if problems else 'ok  '} {query.dashboard}: {query.title} — {note}")
    if bad:
        raise typer.Exit(1)


@dashboards_app.command("locations")
def locations_cmd(
    csv_file: Annotated[Path, typer.Argument(help="CSV with columns sensor_id,latitude,longitude")],
    database_url: DatabaseUrl = None,
) -> None:
    """Import sensor positions for the maps (upsert into sensor_locations)."""
    import csv

    import psycopg

    from civicpulse.settings import Settings
    from dashboards.install import import_locations

    try:
        with csv_file.open(newline="", encoding="utf-8") as f:
            n = import_locations(
                Settings.load(database_url=database_url).database_url, list(csv.DictReader(f))
            )
    except (OSError, ValueError, psycopg.Error) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise fail(f"{csv_file}: {first}") from exc
    console.print(f"{n} sensor position(s) stored")


def register(app: typer.Typer) -> None:
    """Add ``civicpulse dashboards …`` to the main command line."""
    app.add_typer(dashboards_app, name="dashboards")
