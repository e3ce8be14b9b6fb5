"""``civicpulse alerts list|ack|resolve|deliver`` (and the ``bench`` group, for now)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from civicpulse.cli.bench_detect import DETECT_BENCH as DETECT_BENCH  # moved there
from civicpulse.cli.bench_detect import register_bench_detect
from civicpulse.cli.console import fail
from civicpulse.cli.options import Council, DatabaseUrl, JsonOutput
from civicpulse.settings import Settings

console = Console(stderr=True)
By = Annotated[str, typer.Option("--by", help="Who is acting (recorded on the alert)")]
_STATES = {
    "open": ["open"],
    "acknowledged": ["acknowledged"],
    "resolved": ["resolved"],
    "live": ["open", "acknowledged"],
    "all": ["open", "acknowledged", "resolved"],
}


def _row(alert: Any) -> dict[str, Any]:
    """An alert as the JSON the CLI prints (its ``alert_events`` columns)."""
    from rules.alerts import alert_to_json

    return alert_to_json(alert)


def _with_cursor(database_url: str | None, work: Any) -> Any:
    from storage import StoreUnavailable
    from storage.connection import connect

    url = Settings.load(database_url=database_url).database_url
    try:
        with connect(url) as conn, conn.transaction(), conn.cursor() as cur:
            return work(cur)
    except StoreUnavailable as exc:
        raise fail(
            f"{exc} — is PostgreSQL running? `civicpulse run` starts one; --database-url or CIVICPULSE_DATABASE_URL says where"
        ) from exc


def list_alerts(
    state: Annotated[str, typer.Option(help="open, acknowledged, resolved, live or all")] = "live",
    council: Council = None,
    sensor: Annotated[str | None, typer.Option(help="Only this sensor id")] = None,
    rule: Annotated[str | None, typer.Option(help="Only this rule")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first")] = 100,
    database_url: DatabaseUrl = None,
    as_json: JsonOutput = False,
) -> None:
    """List alerts (default: open and acknowledged), newest first."""
    from storage import alerts_store as db

    if state not in _STATES:
        raise fail(f"--state must be one of {', '.join(_STATES)}, not {state!r}")
    alerts = _with_cursor(
        database_url,
        lambda cur: db.list_alerts(
            cur, states=_STATES[state], council=council, sensor_id=sensor, rule=rule, limit=limit
        ),
    )
    if as_json:
        print(json.dumps([_row(a) for a in alerts]))
        return
    out = Console()
    out.print(alerts_table(alerts, out.width) if alerts else "no alerts")


_STATE_WORDS = {"acknowledged": "acked"}  # `alerts ack`: keeps the table within 80 columns


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def alerts_table(alerts: list[Any], width: int = 80) -> Table:
    """Alerts one line each within ``width`` columns (rule and sensor cut with … if need be)."""
    rows = [
        [
            str(a.id),
            f"{a.opened_at:%m-%d %H:%M}",
            a.severity.value,
            _STATE_WORDS.get(a.state.value, a.state.value),
            a.rule,
            a.sensor_id,
            str(a.count),
            f"{a.last_seen_at:%H:%M}",
        ]
        for a in alerts
    ]
    headers = ["id", "opened", "severity", "state", "rule", "sensor", "n", "last"]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    spare = width - sum(widths) - len(widths)  # one space after each column
    if spare < 0:  # give way: the sensor down to 8, then the rule down to 10
        for i, least in ((5, 8), (4, 10)):
            cut = min(-spare, max(widths[i] - least, 0))
            widths[i] -= cut
            spare += cut
    table = Table(
        box=None,
        padding=(0, 1, 0, 0),
        header_style="bold underline",
        caption="times UTC; --json for every field",
    )
    for header, w in zip(headers, widths, strict=True):
        table.add_column(header, no_wrap=True, width=w)
    for row in rows:
        table.add_row(*(_cut(cell, w) for cell, w in zip(row, widths, strict=True)))
    return table


def _act(alert_id: int, by: str, database_url: str | None, as_json: bool, verb: str) -> None:
    from rules import alerts as core
    from storage import alerts_store as db

    def work(cur: Any) -> Any:
        db.lock_exclusive(cur)  # never interleaves with a batch updating the same alert
        alert = db.get_alert(cur, alert_id)
        if alert is None:
            raise fail(f"no alert with id {alert_id} (see `civicpulse alerts list`)")
        now = datetime.now(UTC)
        try:
            if verb == "ack":
                changed = core.acknowledge(alert, now)
            else:
                changed = core.resolve(alert, now, by)
        except ValueError as exc:
            raise fail(str(exc)) from exc
        if verb == "ack":
            cur.execute(
                "UPDATE alert_events SET acknowledged_by = %s WHERE id = %s", (by, alert_id)
            )
        return db.save_alerts(cur, [changed])[0]

    saved = _with_cursor(database_url, work)
    if as_json:
        print(json.dumps(_row(saved)))
    else:
        console.print(
            f"alert {saved.id} ({saved.rule}, {saved.sensor_id}) is now {saved.state.value}"
        )


def ack(
    alert_id: Annotated[int, typer.Argument(help="Alert id")],
    by: By = "operator",
    database_url: DatabaseUrl = None,
    as_json: JsonOutput = False,
) -> None:
    """Acknowledge an open alert (it keeps counting repeats and still auto-resolves)."""
    _act(alert_id, by, database_url, as_json, "ack")


def resolve(
    alert_id: Annotated[int, typer.Argument(help="Alert id")],
    by: By = "operator",
    database_url: DatabaseUrl = None,
    as_json: JsonOutput = False,
) -> None:
    """Resolve an alert by hand; the next violation opens a new one."""
    _act(alert_id, by, database_url, as_json, "resolve")


def post_json(url: str, timeout_s: float = 10.0) -> Any:
    """A poster for :func:`deliver_due`: POST the JSON body, raise unless the reply is 2xx."""
    import urllib.request

    def post(body: dict[str, Any]) -> None:
        request = urllib.request.Request(  # noqa: S310  # the operator's own webhook URL
            url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "civicpulse-alerts"},
        )
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:  # noqa: S310
            if not 200 <= reply.status < 300:
                raise RuntimeError(f"webhook answered HTTP {reply.status}")

    return post


def deliver(
    url: Annotated[str, typer.Option("--url", help="Webhook URL that receives alert JSON")],
    once: Annotated[bool, typer.Option("--once", help="Deliver what is due, then exit")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between passes")] = 2.0,
    database_url: DatabaseUrl = None,
) -> None:
    """Post queued alert notifications to a webhook, retrying with backoff.

    A notification that keeps failing is dead-lettered (``alert_notifications.dead_at``).
    """
    import time

    from storage import StoreUnavailable, alerts_store
    from storage.connection import connect

    db_url = Settings.load(database_url=database_url).database_url
    post = post_json(url)
    while True:
        try:
            with connect(db_url) as conn:
                done, retry, dead = alerts_store.deliver_due(conn, post, datetime.now(UTC))
        except StoreUnavailable as exc:
            raise fail(
                f"{exc} — is PostgreSQL running? `civicpulse run` starts one; --database-url or CIVICPULSE_DATABASE_URL says where"
            ) from exc
        if done or retry or dead:
            console.print(f"delivered {done}, will retry {retry}, dead-lettered {dead}")
        if once:
            return
        time.sleep(interval)


def register(app: typer.Typer) -> None:
    """Add ``alerts list|ack|resolve`` and ``bench detect`` to the command line."""
    alerts = typer.Typer(help="Alerts: list, acknowledge, resolve.", no_args_is_help=True)
    alerts.command("list")(list_alerts)
    alerts.command("ack")(ack)
    alerts.command("resolve")(resolve)
    alerts.command("deliver")(deliver)
    app.add_typer(alerts, name="alerts")
    bench = typer.Typer(help="Benchmarks that print measured figures.", no_args_is_help=True)
    register_bench_detect(bench)
    from civicpulse.cli import chaos as chaos_cli

    chaos_cli.register(bench)
    from civicpulse.cli import bench_throughput

    bench_throughput.register_bench(bench)
    app.add_typer(bench, name="bench")
