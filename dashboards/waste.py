"""Waste dashboard: bins on a map by fill, bins due today/tomorrow, fill trends, fire alerts."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from dashboards import panels as p
from rules.thresholds import DEFAULTS

UID = "civicpulse-waste"
KIND = "waste_bin"
WHERE = f"kind = '{KIND}' AND council IN ($council) AND sensor_id IN ($site)"
# Static display settings: the rules' defaults (thresholds.py). A council's, site's or bin's
# own collection threshold is in dash_sensor_status.threshold_pct (dash_rule, sql/037).
THRESHOLD_PCT = float(DEFAULTS["waste.fill_threshold_pct"])
FIRE_TEMP_C = float(DEFAULTS["waste.fire_temp_c"])
FILL_COLOURS = [(None, "green"), (50, "yellow"), (THRESHOLD_PCT, "orange"), (95, "red")]

BIN_MAP = f"""
SELECT s.sensor_id AS bin, s.site, s.ward, f.fill AS "fill %", s.latitude, s.longitude,
       f.at AS measured, s.status
  FROM dash_sensor_status s
 CROSS JOIN LATERAL (
       SELECT r.last AS fill, r.last_time AS at FROM readings_1m r
        WHERE r.sensor_id = s.sensor_id AND r.metric = 'fill_level'
        ORDER BY r.bucket DESC LIMIT 1) f
 WHERE s.kind = '{KIND}' AND s.latitude IS NOT NULL
   AND s.council IN ($council) AND s.sensor_id IN ($site)
"""

# The newest forecast of each bin (`civicpulse waste forecast`, run on a timer, writes them
# with rules/forecast.py): due today if it is (or will be) at its threshold
# before midnight UK time, tomorrow if before the next midnight.
DUE = """
WITH d AS (
    SELECT date_trunc('day', $__timeTo()::timestamptz AT TIME ZONE 'Europe/London') AS today
)
SELECT CASE WHEN f.full_at < (d.today + interval '1 day') AT TIME ZONE 'Europe/London'
            THEN 'today' ELSE 'tomorrow' END AS due,
       coalesce(ss.site, f.sensor_id) AS site, f.sensor_id AS bin,
       round(f.fill_pct::numeric, 1) AS "fill %",
       round((f.rate_pct_per_h * 24)::numeric, 1) AS "% per day",
       f.threshold_pct AS "threshold %", date_trunc('minute', f.full_at) AS "reaches threshold",
       f.method, f.as_of AS "last read"
  FROM bin_forecasts_latest f
 CROSS JOIN d
  LEFT JOIN sensor_sites ss ON ss.sensor_id = f.sensor_id
 WHERE f.council IN ($council) AND f.sensor_id IN ($site)
   AND f.full_at < (d.today + interval '2 days') AT TIME ZONE 'Europe/London'
 ORDER BY f.full_at, 2
"""

FILL_TREND = f"""
SELECT $__timeGroupAlias(bucket, $__interval), sensor_id AS metric, max(max) AS value
  FROM readings_1m
 WHERE $__timeFilter(bucket) AND {WHERE} AND metric = 'fill_level'
 GROUP BY 1, 2
 ORDER BY 1, 2
"""

TEMPERATURE = f"""
SELECT $__timeGroupAlias(bucket, $__interval), sensor_id AS metric, max(max) AS value
  FROM readings_1m
 WHERE $__timeFilter(bucket) AND {WHERE} AND metric = 'temperature'
 GROUP BY 1, 2
 ORDER BY 1, 2
"""

FIRE_ALERTS = """
SELECT severity, state, sensor_id AS bin, site, opened_at AS since, resolved_at AS resolved,
       last_seen_at AS "last seen", details::text AS details
  FROM alerts
 WHERE rule = 'bin_fire_risk' AND council IN ($council) AND sensor_id IN ($site)
   AND (state <> 'resolved' OR resolved_at >= $__timeFrom()::timestamptz)
 ORDER BY state = 'resolved', opened_at DESC, sensor_id
"""


def build() -> dashboard.Dashboard:
    """The Waste dashboard."""
    now = [
        p.geomap_panel(
            "Bins by fill",
            "Latest fill level of each located bin: green < 50 %, "
            f"yellow, orange ≥ {THRESHOLD_PCT:g} % (collect), red ≥ 95 %.",
            BIN_MAP,
            colour_field="fill %",
            colours=FILL_COLOURS,
            w=14,
            h=13,
        ),
        p.table_panel(
            "Due today and tomorrow",
            "Bins at or forecast to reach their "
            f"threshold (sensor_sites, default {THRESHOLD_PCT:g} %) by the end of tomorrow, UK "
            "time, from the latest bin forecasts (`civicpulse waste forecast`).",
            DUE,
            w=10,
            h=13,
        ),
    ]
    trends = [
        p.timeseries_panel(
            "Fill level",
            "Highest fill per bin and interval; the line is the collection threshold.",
            FILL_TREND,
            unit="percent",
            limits=[(THRESHOLD_PCT, "orange")],
        ),
        p.timeseries_panel(
            "Bin temperature (fire watch)",
            f"Highest temperature per bin; fire risk at {FIRE_TEMP_C:g} °C or a fast rise.",
            TEMPERATURE,
            unit="celsius",
            limits=[(FIRE_TEMP_C, "red")],
        ),
    ]
    fire = [
        p.table_panel(
            "Fire alerts",
            "Live fire-risk alerts and those resolved in the time "
            "range (critical: sent to the on-call contact point).",
            FIRE_ALERTS,
            w=24,
            h=7,
        ),
    ]
    return p.build_dashboard(
        UID,
        "civicpulse · Waste",
        "Where the full bins are, what to collect today and tomorrow, fill trends and fire risk.",
        ["waste"],
        p.standard_variables(KIND),
        [("Collections", now), ("Trends", trends), ("Fire", fire)],
        "now-24h",
    )
