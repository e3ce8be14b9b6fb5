"""Fleet health dashboard: stale, flatlined and low-battery sensors, last seen, ingest lag."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from dashboards import panels as p
from rules.thresholds import DEFAULTS

UID = "civicpulse-fleet-health"
FILTER = "council IN ($council) AND kind IN ($kind) AND sensor_id IN ($site)"
# The rules' defaults (thresholds.py); staleness follows the published rules (dash_rule).
LOW_BATTERY_PCT = float(DEFAULTS["health.low_battery_pct"])
FLATLINE_COUNT = int(DEFAULTS["health.flatline_count"])
FLATLINE_METRICS = tuple(DEFAULTS["health.flatline_metrics"])

COUNTS = f"""
SELECT count(*) AS "Sensors",
       count(*) FILTER (WHERE NOT stale) AS "Reporting",
       count(*) FILTER (WHERE stale) AS "Stale",
       count(*) FILTER (WHERE battery_pct < {LOW_BATTERY_PCT:g}) AS "Low battery"
  FROM dash_sensor_status
 WHERE {FILTER}
"""

STALE = f"""
SELECT sensor_id AS sensor, site, kind, council, last_seen AS "last seen",
       seconds_since_seen AS "silent (s)",
       dash_rule('health.stale_factor', council, sensor_id) * dash_expected_interval_s(kind)
           AS "stale after (s)"
  FROM dash_sensor_status
 WHERE stale AND {FILTER}
 ORDER BY last_seen, sensor_id
"""

_METRICS = ", ".join(f"'{m}'" for m in FLATLINE_METRICS)
FLATLINED = f"""
WITH recent AS (
    SELECT sensor_id, kind, metric, value, time,
           row_number() OVER (PARTITION BY sensor_id, metric ORDER BY time DESC) AS nth
      FROM readings
     WHERE time > $__timeTo()::timestamptz - interval '6 hours'
       AND time <= $__timeTo()::timestamptz
       AND metric IN ({_METRICS}) AND {FILTER}
)
SELECT sensor_id AS sensor, kind, metric, min(value) AS value, min(time) AS "same since",
       count(*) AS readings
  FROM recent
 WHERE nth <= {FLATLINE_COUNT}
 GROUP BY 1, 2, 3
HAVING count(*) = {FLATLINE_COUNT} AND min(value) = max(value)
 ORDER BY 1, 3
"""

BATTERY = f"""
SELECT site || ' (' || sensor_id || ')' AS sensor, battery_pct AS "battery %"
  FROM dash_sensor_status
 WHERE battery_pct IS NOT NULL AND {FILTER}
 ORDER BY battery_pct, 1
 LIMIT 20
"""

LAST_SEEN = f"""
SELECT sensor_id AS sensor, site, ward, kind, council, status, status_level,
       last_seen AS "last seen", seconds_since_seen AS "silent (s)",
       battery_pct AS "battery %", open_alerts AS "open alerts"
  FROM dash_sensor_status
 WHERE {FILTER}
 ORDER BY status_level DESC, last_seen, sensor_id
"""

# received_at: when the bridge took the message from MQTT; stored_at: when it was committed.
INGEST_LAG = f"""
SELECT $__timeGroupAlias(time, $__interval),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM received_at - time))
           AS "device → bridge p50",
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM received_at - time))
           AS "device → bridge p95",
       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM stored_at - received_at))
           AS "bridge → database p95"
  FROM readings
 WHERE $__timeFilter(time) AND {FILTER}
 GROUP BY 1
 ORDER BY 1
"""


def build() -> dashboard.Dashboard:
    """The Fleet health dashboard."""
    summary = [
        p.stat_panel(
            "Fleet",
            "Sensors that ever reported, reporting now, stale (silent for longer than the "
            "alert rule's stale factor times their interval) and below "
            f"{LOW_BATTERY_PCT:g} % battery.",
            COUNTS,
            w=24,
            h=4,
            colours=[(None, "blue")],
        ),
    ]
    problems = [
        p.table_panel(
            "Stale sensors",
            "No reading for the alert rule's stale factor (health.stale_factor, per council, "
            "site or sensor) times the kind's expected interval.",
            STALE,
        ),
        p.table_panel(
            "Flatlined sensors",
            f"The same value {FLATLINE_COUNT} readings running (up to the end of the time range).",
            FLATLINED,
        ),
        p.bargauge_panel(
            "Lowest batteries",
            f"Red below {LOW_BATTERY_PCT:g} %.",
            BATTERY,
            unit="percent",
            maximum=100,
            colours=[(None, "red"), (LOW_BATTERY_PCT, "orange"), (30, "green")],
        ),
        p.timeseries_panel(
            "Ingest lag",
            "Seconds from a reading's time to the bridge, and from the bridge to the database.",
            INGEST_LAG,
            unit="s",
        ),
    ]
    every = [
        p.table_panel(
            "Last seen",
            "Every sensor: status (ok, warning, critical, stale), "
            "silence, battery and live alerts.",
            LAST_SEEN,
            w=24,
            h=10,
            colour_by=p.STATUS_COLOURS,
        ),
    ]
    return p.build_dashboard(
        UID,
        "civicpulse · Fleet health",
        "Which sensors are silent, stuck or running flat, and how fresh the data is.",
        ["fleet", "health"],
        p.standard_variables(None),
        [("Summary", summary), ("Problems", problems), ("All sensors", every)],
        "now-24h",
    )
