"""Operations dashboard: open alerts, alert timeline, sensors by status, message and DLQ rates."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from dashboards import panels as p

UID = "civicpulse-operations"
FILTER = "council IN ($council) AND kind IN ($kind) AND sensor_id IN ($site)"
SEVERITY_LEVEL = "CASE severity WHEN 'critical' THEN 3 WHEN 'warning' THEN 2 ELSE 1 END"
SEVERITY_COLOURS = [(None, "transparent"), (1, "blue"), (2, "orange"), (3, "red")]

OPEN_COUNTS = f"""
SELECT count(*) FILTER (WHERE severity = 'critical') AS "Critical",
       count(*) FILTER (WHERE severity = 'warning') AS "Warning",
       count(*) FILTER (WHERE severity = 'info') AS "Info"
  FROM alerts
 WHERE state <> 'resolved' AND {FILTER}
"""

OPEN_ALERTS = f"""
SELECT severity, sensor_id AS sensor, site, rule, state, opened_at AS since,
       last_seen_at AS "last seen", count
  FROM alerts
 WHERE state <> 'resolved' AND {FILTER}
 ORDER BY {SEVERITY_LEVEL} DESC, opened_at, sensor_id, rule
"""

# Each alert episode is a state from when it opened until it resolved (0 = no alert).
TIMELINE = f"""
SELECT time, metric, value FROM (
    SELECT greatest(opened_at, $__timeFrom()::timestamptz) AS time,
           sensor_id || ' · ' || rule AS metric, {SEVERITY_LEVEL} AS value
      FROM alerts
     WHERE opened_at <= $__timeTo()::timestamptz
       AND (resolved_at IS NULL OR resolved_at >= $__timeFrom()::timestamptz) AND {FILTER}
    UNION ALL
    SELECT resolved_at, sensor_id || ' · ' || rule, 0
      FROM alerts
     WHERE $__timeFilter(resolved_at) AND {FILTER}
) episodes
ORDER BY time, metric, value
"""

UNDELIVERED = f"""
SELECT CASE WHEN n.dead_at IS NOT NULL THEN 'given up' ELSE 'pending' END AS delivery,
       n.event, a.severity, a.sensor_id AS sensor, a.rule, n.created_at AS queued, n.attempts,
       n.next_attempt_at AS "next try", n.last_error AS "last error"
  FROM alert_notifications n
  JOIN alerts a ON a.id = n.alert_id
 WHERE n.delivered_at IS NULL
   AND (n.dead_at IS NULL OR n.dead_at >= $__timeFrom()::timestamptz)
   AND a.{FILTER.replace(" AND ", " AND a.")}
 ORDER BY n.dead_at IS NULL, n.id
 LIMIT 50
"""

SENSOR_MAP = f"""
SELECT sensor_id, site, kind, status, status_level, latitude, longitude, last_seen
  FROM dash_sensor_status
 WHERE latitude IS NOT NULL AND {FILTER}
"""

BY_STATUS = f"""
SELECT status, count(*) AS sensors
  FROM dash_sensor_status
 WHERE {FILTER}
 GROUP BY status, status_level
 ORDER BY status_level DESC, status
"""

# A device message carries one reading per metric at one time: per sensor and minute, the
# most readings of any metric is the number of messages.
READING_RATE = f"""
SELECT time, metric, value FROM (
    SELECT $__timeGroupAlias(bucket, $__interval), kind || ' messages' AS metric,
           sum(messages) / ($__interval_ms / 1000.0) AS value
      FROM (SELECT bucket, sensor_id, kind, max(n) AS messages FROM readings_1m
             WHERE $__timeFilter(bucket) AND {FILTER}
             GROUP BY bucket, sensor_id, kind) per_sensor
     GROUP BY 1, 2
    UNION ALL
    SELECT $__timeGroupAlias(bucket, $__interval), 'readings (all kinds)',
           sum(n) / ($__interval_ms / 1000.0)
      FROM readings_1m
     WHERE $__timeFilter(bucket) AND {FILTER}
     GROUP BY 1, 2
) rates
ORDER BY 1, 2
"""

DEAD_LETTER_RATE = """
SELECT $__timeGroupAlias(received_at, $__interval), reason AS metric,
       count(*) * 60000.0 / $__interval_ms AS value
  FROM dead_letters
 WHERE $__timeFilter(received_at)
 GROUP BY 1, 2
 ORDER BY 1, 2
"""

DEAD_LETTER_REASONS = """
SELECT reason, count(*) AS messages, max(received_at) AS "latest",
       (array_agg(mqtt_topic ORDER BY received_at DESC))[1] AS "latest topic",
       (array_agg(detail ORDER BY received_at DESC))[1] AS "latest detail"
  FROM dead_letters
 WHERE $__timeFilter(received_at)
 GROUP BY reason
 ORDER BY messages DESC, reason
"""


def build() -> dashboard.Dashboard:
    """The Operations dashboard."""
    alerts = [
        p.stat_panel(
            "Alerts by severity",
            "Live (open or acknowledged) alerts by severity.",
            OPEN_COUNTS,
            w=6,
            h=8,
            colours=[(None, "green"), (1, "orange")],
        ),
        p.table_panel(
            "Open alerts",
            "Every live alert, worst first: what is wrong, where and "
            "since when. Acknowledge with `civicpulse alerts ack`.",
            OPEN_ALERTS,
            w=18,
            h=8,
        ),
        p.state_timeline_panel(
            "Alert timeline",
            "Alert episodes in the time range, one row per sensor and rule.",
            TIMELINE,
            colours=SEVERITY_COLOURS,
            mappings=p.value_text(
                {
                    0: ("clear", "transparent"),
                    1: ("info", "blue"),
                    2: ("warning", "orange"),
                    3: ("critical", "red"),
                }
            ),
        ),
        p.table_panel(
            "Alert notifications not delivered",
            "Webhook notifications waiting "
            "for `civicpulse alerts deliver`, and those given up on after the last "
            "retry (with the receiver's error).",
            UNDELIVERED,
            w=24,
            h=6,
        ),
    ]
    sensors = [
        p.geomap_panel(
            "Sensors by status",
            "Each sensor with a position (sensor_locations), "
            "coloured green ok, yellow warning, red critical alert, purple stale.",
            SENSOR_MAP,
            colour_field="status_level",
            colours=p.STATUS_COLOURS,
            w=16,
            h=12,
        ),
        p.bargauge_panel(
            "Sensors per status",
            "How many sensors are ok, alerting or stale.",
            BY_STATUS,
            w=8,
            h=12,
            colours=[(None, "blue")],
        ),
    ]
    flow = [
        p.timeseries_panel(
            "Messages and readings per second",
            "Device messages stored per "
            "second by kind, and the canonical readings they carried (one per "
            "metric), from readings_1m.",
            READING_RATE,
            unit="reqps",
        ),
        p.timeseries_panel(
            "Dead letters per minute",
            "Rejected messages by reason (all councils: a bad message may not name a valid one).",
            DEAD_LETTER_RATE,
            unit="short",
            bars=True,
        ),
        p.table_panel(
            "Dead letters by reason",
            "What was rejected in the time range, and the latest example of each reason.",
            DEAD_LETTER_REASONS,
            w=24,
            h=7,
        ),
    ]
    return p.build_dashboard(
        UID,
        "civicpulse · Operations",
        "What needs attention now: live alerts, sensors by status, the flow of readings.",
        ["operations"],
        p.standard_variables(None),
        [("Alerts", alerts), ("Sensors", sensors), ("Message flow", flow)],
        "now-6h",
    )
