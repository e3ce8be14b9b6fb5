"""Air quality dashboard: DAQI per site now and over time, pollutant trends, exceedances YTD."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard

from dashboards import panels as p

UID = "civicpulse-air-quality"
KIND = "air_quality"
WHERE = f"kind = '{KIND}' AND council IN ($council) AND sensor_id IN ($site)"
DAQI_COLOURS = [(None, "green"), (4, "orange"), (7, "red"), (10, "purple")]
SITE = "coalesce(loc.site, x.sensor_id)"

# Each pollutant averaged over its DEFRA period ending at the end of the time range.
_LATEST = f"""
WITH x AS (
    SELECT sensor_id, metric, sum(mean * n) / sum(n) AS conc
      FROM readings_1m
     WHERE {WHERE} AND metric IN ('pm2_5', 'pm10', 'no2', 'o3', 'so2')
       AND bucket > $__timeTo()::timestamptz - dash_daqi_window(metric)
       AND bucket <= $__timeTo()::timestamptz
     GROUP BY sensor_id, metric
)"""

DAQI_NOW = (
    _LATEST
    + f"""
SELECT {SITE} || ' (' || x.sensor_id || ')' AS site,
       max(dash_daqi_index(x.metric, x.conc)) AS "DAQI"
  FROM x LEFT JOIN sensor_sites loc USING (sensor_id)
 GROUP BY 1
 ORDER BY 2 DESC, 1
"""
)

DAQI_TABLE = (
    _LATEST
    + f"""
SELECT {SITE} AS site, x.sensor_id AS sensor,
       max(dash_daqi_index(x.metric, x.conc)) AS "DAQI",
       dash_daqi_band(max(dash_daqi_index(x.metric, x.conc))) AS band,
       max(dash_daqi_index(x.metric, x.conc)) FILTER (WHERE x.metric = 'pm2_5') AS "PM2.5",
       max(dash_daqi_index(x.metric, x.conc)) FILTER (WHERE x.metric = 'pm10') AS "PM10",
       max(dash_daqi_index(x.metric, x.conc)) FILTER (WHERE x.metric = 'no2') AS "NO2",
       max(dash_daqi_index(x.metric, x.conc)) FILTER (WHERE x.metric = 'o3') AS "O3",
       max(dash_daqi_index(x.metric, x.conc)) FILTER (WHERE x.metric = 'so2') AS "SO2"
  FROM x LEFT JOIN sensor_sites loc USING (sensor_id)
 GROUP BY 1, 2
 ORDER BY 3 DESC, 1
"""
)

# Hourly: PM 24 h running mean, O3 8 h running mean, NO2 and SO2 the hour's mean.
DAQI_HOURLY = f"""
WITH hourly AS (
    SELECT bucket AS h, sensor_id, metric, sum AS s, n
      FROM readings_1h
     WHERE {WHERE} AND metric IN ('pm2_5', 'pm10', 'no2', 'o3', 'so2')
       AND bucket >= $__timeFrom()::timestamptz - interval '24 hours'
       AND bucket <= $__timeTo()::timestamptz
), running AS (
    SELECT h, sensor_id, metric,
           CASE WHEN metric IN ('no2', 'so2') THEN s / n
                WHEN metric = 'o3' THEN sum(s) OVER w8 / sum(n) OVER w8
                ELSE sum(s) OVER w24 / sum(n) OVER w24 END AS conc
      FROM hourly
    WINDOW w8 AS (PARTITION BY sensor_id, metric ORDER BY h
                  RANGE BETWEEN interval '7 hours' PRECEDING AND CURRENT ROW),
           w24 AS (PARTITION BY sensor_id, metric ORDER BY h
                   RANGE BETWEEN interval '23 hours' PRECEDING AND CURRENT ROW)
)
SELECT h AS time, sensor_id AS metric, max(dash_daqi_index(metric, conc)) AS value
  FROM running
 WHERE h >= $__timeFrom()::timestamptz
 GROUP BY 1, 2
 ORDER BY 1, 2
"""


ROLLUP = {"1h": ("readings_1h", "1 hour"), "1d": ("readings_1d", "1 day")}


def trend(metric: str, period: str) -> str:
    """Mean concentration per site per hour or day, from the rollups."""
    table, width = ROLLUP[period]
    return f"""
SELECT $__timeGroupAlias(bucket, '{period}'), sensor_id AS metric, sum(sum) / sum(n) AS value
  FROM {table}
 WHERE bucket > $__timeFrom()::timestamptz - interval '{width}'
   AND bucket <= $__timeTo()::timestamptz AND {WHERE} AND metric = '{metric}'
 GROUP BY 1, 2
 ORDER BY 1, 2
"""


# DEFRA data capture: an hourly mean needs 75 % of its samples, a daily mean 18 valid hours.
EXCEEDANCES = f"""
WITH hourly AS (
    SELECT sensor_id, metric, bucket AS h, mean AS conc, n
      FROM readings_1h
     WHERE {WHERE} AND metric IN ('no2', 'pm10')
       AND bucket >= date_trunc('year', $__timeTo()::timestamptz AT TIME ZONE 'UTC')
                     AT TIME ZONE 'UTC'
       AND bucket <= $__timeTo()::timestamptz
), valid AS (
    SELECT * FROM hourly WHERE n >= 0.75 * 3600 / dash_expected_interval_s('{KIND}')
), daily AS (
    SELECT sensor_id, date_trunc('day', h) AS d, avg(conc) AS conc
      FROM valid WHERE metric = 'pm10'
     GROUP BY 1, 2 HAVING count(*) >= 18
), x AS (SELECT DISTINCT sensor_id FROM hourly)
SELECT {SITE} AS site, x.sensor_id AS sensor,
       (SELECT count(*) FROM valid v
         WHERE v.sensor_id = x.sensor_id AND v.metric = 'no2' AND v.conc > 200)
           AS "NO2 hours > 200 µg/m³",
       18 AS "NO2 hours allowed",
       (SELECT count(*) FROM daily d WHERE d.sensor_id = x.sensor_id AND d.conc > 50)
           AS "PM10 days > 50 µg/m³",
       35 AS "PM10 days allowed"
  FROM x LEFT JOIN sensor_sites loc USING (sensor_id)
 ORDER BY 3 DESC, 5 DESC, 1
"""


def build() -> dashboard.Dashboard:
    """The Air quality dashboard."""
    daqi = [
        p.bargauge_panel(
            "DAQI now",
            "Overall Daily Air Quality Index per site: the highest "
            "pollutant index, each averaged as DEFRA does (PM 24 h, O3 8 h, NO2 "
            "1 h, SO2 15 min) up to the end of the time range.",
            DAQI_NOW,
            colours=DAQI_COLOURS,
            maximum=10,
            w=10,
            h=9,
        ),
        p.table_panel(
            "DAQI now by pollutant",
            "Index of each pollutant per site and the band "
            "(Low 1-3, Moderate 4-6, High 7-9, Very High 10).",
            DAQI_TABLE,
            colour_by=DAQI_COLOURS,
            w=14,
            h=9,
        ),
        p.timeseries_panel(
            "DAQI over time",
            "Hourly overall index per site (running means "
            "as DEFRA; data capture not applied here).",
            DAQI_HOURLY,
            limits=[(7, "red"), (10, "purple")],
            w=24,
        ),
    ]
    pollutants = [
        p.timeseries_panel(
            "NO2, hourly mean",
            "UK limit: 200 µg/m³ hourly mean (no more "
            "than 18 hours a year); annual mean limit 40 µg/m³.",
            trend("no2", "1h"),
            unit="conµgm3",
            limits=[(40, "orange"), (200, "red")],
        ),
        p.timeseries_panel(
            "PM10, daily mean",
            "UK limit: 50 µg/m³ daily mean (no more than "
            "35 days a year); annual mean limit 40 µg/m³.",
            trend("pm10", "1d"),
            unit="conµgm3",
            limits=[(40, "orange"), (50, "red")],
            bars=True,
        ),
        p.timeseries_panel(
            "PM2.5, daily mean",
            "UK annual mean limit 25 µg/m³; England's 2040 target 10 µg/m³ (annual mean).",
            trend("pm2_5", "1d"),
            unit="conµgm3",
            limits=[(10, "orange"), (25, "red")],
            bars=True,
        ),
        p.timeseries_panel(
            "O3, hourly mean",
            "WHO 2021 guideline 100 µg/m³ (8-hour mean).",
            trend("o3", "1h"),
            unit="conµgm3",
            limits=[(100, "red")],
        ),
    ]
    compliance = [
        p.table_panel(
            "Exceedances this year",
            "Hours with an NO2 hourly mean over 200 µg/m³ "
            "and days with a PM10 daily mean over 50 µg/m³ since 1 January (DEFRA "
            "data capture: 75 % of samples per hour, 18 hours per day).",
            EXCEEDANCES,
            w=24,
            h=8,
        ),
    ]
    return p.build_dashboard(
        UID,
        "civicpulse · Air quality",
        "UK Daily Air Quality Index per site, pollutant trends against legal limits, "
        "exceedances year to date.",
        ["air-quality"],
        p.standard_variables(KIND),
        [("Daily Air Quality Index", daqi), ("Pollutants", pollutants), ("Compliance", compliance)],
        "now-24h",
    )
