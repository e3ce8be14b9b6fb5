"""The reporting commands: ``waste due``, ``report netzero``, ``report air-quality``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from civicpulse.cli.console import console, fail
from civicpulse.cli.options import Council, DatabaseUrl, JsonOutput
from civicpulse.settings import Settings

out = Console()

Year = Annotated[int, typer.Option("--year", min=1990, max=2100, help="Calendar year (UTC)")]


@contextmanager
def _db(database_url: str | None) -> Iterator[psycopg.Connection]:
    from storage import StoreUnavailable, connect

    url = Settings.load(database_url=database_url).database_url
    try:
        with connect(url) as conn:
            yield conn
    except StoreUnavailable as exc:
        raise fail(
            f"{exc} — is PostgreSQL running? `civicpulse run` starts one; --database-url or CIVICPULSE_DATABASE_URL says where"
        ) from exc
    except psycopg.errors.UndefinedTable as exc:
        raise fail(f"{exc.diag.message_primary} — run `civicpulse db migrate` first") from exc


def waste_due(
    day: Annotated[str, typer.Option("--date", help="Collection day, YYYY-MM-DD (Europe/London)")],
    council: Council = None,
    as_json: JsonOutput = False,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            min=1,
            max=100,
            help="Fill % that makes a bin due (default: per bin, else 80)",
        ),
    ] = None,
    as_of: Annotated[
        datetime | None,
        typer.Option("--as-of", help="Use reads before this UTC time (default: the day's start)"),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Bins forecast to be at or over their fill threshold by the end of DATE."""
    from civicpulse.reports.waste import due_list, to_json

    try:
        when = date.fromisoformat(day)
    except ValueError as exc:
        raise fail(f"--date must be YYYY-MM-DD, got {day!r}") from exc
    cutoff = as_of.replace(tzinfo=UTC) if as_of and as_of.tzinfo is None else as_of
    with _db(database_url) as conn:
        report = due_list(conn, when, council=council, as_of=cutoff, threshold=threshold)
    if as_json:
        print(json.dumps(to_json(report), indent=2))
        return
    table = Table(
        title=f"Bins due {when.isoformat()} (reads before {report.as_of:%Y-%m-%d %H:%M} UTC)"
    )
    for col in ("sensor", "site", "council", "fill %", "full at (UTC)", "method"):
        table.add_column(col)
    for f in report.due:
        full = f"{f.full_at:%Y-%m-%d %H:%M}" if f.full_at else ""
        table.add_row(
            f.sensor_id, report.sites[f.sensor_id], f.council, f"{f.fill:.0f}", full, f.method
        )
    out.print(table)
    out.print(f"{len(report.due)} due, {len(report.not_due)} not due")


def waste_forecast(
    council: Council = None,
    as_of: Annotated[
        datetime | None,
        typer.Option("--as-of", help="Use reads before this UTC time (default: now)"),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Forecast every bin now and store it in `bin_forecasts` (for dashboards; run on a timer)."""
    from civicpulse.reports.waste import forecast_all, store_forecasts

    cutoff = as_of.replace(tzinfo=UTC) if as_of and as_of.tzinfo is None else as_of
    with _db(database_url) as conn:
        found, _ = forecast_all(conn, cutoff or datetime.now(UTC), council=council)
        stored = store_forecasts(conn, found)
    console.print(f"stored {stored} bin forecast(s)")


def _check_out_dir(out_dir: Path) -> None:
    """Fail before any work if ``out_dir`` cannot be the report's directory."""
    if out_dir.exists() and not out_dir.is_dir():
        raise fail(f"--out {out_dir} is a file: give a directory for the CSVs and the PDF", code=2)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise fail(f"--out {out_dir}: cannot create the directory ({why})", code=2) from exc
    if not os.access(out_dir, os.W_OK):
        raise fail(f"--out {out_dir}: directory is not writable", code=2)


def report_netzero(
    period: Annotated[str, typer.Option("--period", help="YYYY-MM (a month) or YYYY (a year)")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for the CSVs and the PDF")],
    baseline_year: Annotated[
        int | None,
        typer.Option("--baseline-year", help="Year to compare against (default: the year before)"),
    ] = None,
    council: Council = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Net Zero electricity report: CSVs and a PDF (each year with its DESNZ factors)."""
    from civicpulse.reports.netzero import (
        NetZeroRequestError,
        Period,
        build_netzero,
        check_request,
    )
    from civicpulse.reports.netzero_out import write_csvs
    from civicpulse.reports.netzero_pdf import write_pdf
    from rules.carbon import CarbonError

    try:  # an impossible request is one usage line (exit 2) before any work
        p = Period.parse(period)
        base = baseline_year if baseline_year is not None else p.year - 1
        now = datetime.now(UTC)
        check_request(p, base, now)
        _check_out_dir(out_dir)
        with _db(database_url) as conn:
            report = build_netzero(conn, p, base, council=council, now=now)
    except NetZeroRequestError as exc:
        raise typer.BadParameter(str(exc), param_hint=f"'{exc.option}'") from exc
    except CarbonError as exc:
        raise fail(f"{exc} — add that year's DESNZ factors to the factor file") from exc
    files = write_csvs(report, out_dir)
    files.append(write_pdf(report, out_dir / f"netzero_{p.label}.pdf"))
    pt = report.period_total
    done = "" if pt.completeness is None else f", {pt.completeness:.1%} of half-hours read"
    console.print(
        f"{report.council_name}, {p.name}: {pt.meters} meter(s){done}",
        highlight=False,
        soft_wrap=True,
    )
    for note in report.notes:
        console.print(note, highlight=False, soft_wrap=True)
    for f in files:
        print(f)


def report_air_quality(
    year: Year,
    council: Council = None,
    as_json: JsonOutput = False,
    interval: Annotated[
        int | None,
        typer.Option(
            "--expected-interval-s",
            min=1,
            help="Seconds between a sensor's reads, for the 75 % hourly capture rule "
            "(default: the catalogue's 150 s; 3600 for hourly reference monitors)",
        ),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Annual means against UK limits and the 2040 PM2.5 target, with exceedance counts."""
    from civicpulse.reports.air import AIR_TABLE_LEGEND, compliance, table_cells, to_json
    from sensors.catalogue import AIR_QUALITY
    from storage.report_queries import council_is_known

    if year > datetime.now(UTC).year:
        raise typer.BadParameter(f"{year} has not started yet", param_hint="'--year'")
    every = interval or AIR_QUALITY.expected_interval_s
    with _db(database_url) as conn:
        if council is not None and not council_is_known(conn, council):
            raise typer.BadParameter(f"unknown council {council!r}", param_hint="'--council'")
        sites = compliance(conn, year, council=council, expected_interval_s=every)
    if not sites:  # one line, not an empty table
        of = f" of {council}" if council else ""
        raise typer.BadParameter(f"no air-quality readings{of} in {year}", param_hint="'--year'")
    if as_json:
        print(json.dumps(to_json(year, sites), indent=2))
        return
    table = Table(title=f"Air-quality compliance {year} (AQSR 2010; PM2.5 2040 target SI 2023/96)")
    for col in (
        "site",
        "metric",
        "capture",
        "annual mean",
        "limit",
        "exceedances",
        "passes",
        "2040 target",
    ):
        table.add_column(col)
    for s in sites:
        for r in s.rows:
            table.add_row(s.site, *table_cells(r))
    out.print(table)
    out.print(AIR_TABLE_LEGEND)


def report_energy_baseline(
    year: Year,
    council: Council = None,
    as_json: JsonOutput = False,
    csv_out: Annotated[
        Path | None, typer.Option("--out", help="Also write the profiles to this CSV file")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Each meter's hour-of-week power baseline for a year (the energy alert rules' learner)."""
    import csv

    from civicpulse.reports.energy_baseline import energy_baselines
    from civicpulse.wiring import build_detection

    thresholds = build_detection(Settings.load()).thresholds
    with _db(database_url) as conn:
        meters = energy_baselines(conn, year, thresholds, council=council)
    rows = [
        (m.council, m.sensor_id, how, round(watts, 3), n)
        for m in meters
        for how, (watts, n) in m.profile.items()
    ]
    if csv_out is not None:
        with csv_out.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["council", "sensor_id", "hour_of_week", "baseline_w", "values"])
            writer.writerows(rows)
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "council": m.council,
                        "sensor_id": m.sensor_id,
                        "timezone": m.timezone,
                        "hour_of_week_w": {str(h): w for h, (w, _n) in m.profile.items()},
                    }
                    for m in meters
                ]
            )
        )
        return
    table = Table(title=f"Hour-of-week power baseline {year} (W; Monday 00:00 local = 0)")
    for col in ("council", "meter", "weekday 09-17 mean", "night 00-05 mean", "hours learnt"):
        table.add_column(col)
    for m in meters:
        day = [w for h, (w, _n) in m.profile.items() if h % 24 in range(9, 17) and h < 120]
        night = [w for h, (w, _n) in m.profile.items() if h % 24 in range(0, 5)]
        table.add_row(
            m.council,
            m.sensor_id,
            f"{sum(day) / len(day):.0f}" if day else "",
            f"{sum(night) / len(night):.0f}" if night else "",
            str(len(m.profile)),
        )
    out.print(table)


def register(app: typer.Typer) -> None:
    """Add ``waste`` and ``report`` command groups to the ``civicpulse`` app."""
    waste = typer.Typer(
        help="Waste collection planning from bin fill forecasts.", no_args_is_help=True
    )
    waste.command("due")(waste_due)
    waste.command("forecast")(waste_forecast)
    reports = typer.Typer(
        help="Reports: Net Zero carbon and air-quality compliance.", no_args_is_help=True
    )
    reports.command("netzero")(report_netzero)
    reports.command("air-quality")(report_air_quality)
    reports.command("energy-baseline")(report_energy_baseline)
    app.add_typer(waste, name="waste")
    app.add_typer(reports, name="report")
