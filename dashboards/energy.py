"""Energy & Net Zero dashboard: kWh and kg CO2e per site and month vs baseline, solar, target."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.models import dashboard as models

from dashboards import panels as p

UID = "civicpulse-energy"
KIND = "energy_meter"
WHERE = f"kind = '{KIND}' AND council IN ($council) AND sensor_id IN ($site)"
LOCAL = "'Europe/London'"
SITE = "coalesce(loc.site, k.sensor_id)"

# Monthly consumption per meter from the cumulative import register (hourly rollup, so UK
# months are exact): this month's highest
# read minus last month's (or this month's lowest when last month has no reads). A register
# that went backwards (reset) gives no figure for that month.
KWH = f"""
WITH monthly AS (
    SELECT sensor_id, date_trunc('month', bucket AT TIME ZONE {LOCAL}) AS month,
           max(max) AS top, min(min) AS bottom
      FROM readings_1h
     WHERE {WHERE} AND metric = 'energy_import'
       AND bucket >= least(make_date($baseline_year, 1, 1)::timestamp AT TIME ZONE {LOCAL},
                           $__timeFrom()::timestamptz - interval '1 month')
       AND bucket <= $__timeTo()::timestamptz
     GROUP BY 1, 2
), deltas AS (
    SELECT sensor_id, month,
           top - CASE WHEN lag(month) OVER w = month - interval '1 month' THEN lag(top) OVER w
                      ELSE bottom END AS delta
      FROM monthly
    WINDOW w AS (PARTITION BY sensor_id ORDER BY month)
), kwh AS (
    SELECT d.sensor_id, d.month, CASE WHEN d.delta >= 0 THEN d.delta END AS kwh,
           f.factor_year, f.generation, f.td_losses
      FROM deltas d
      LEFT JOIN LATERAL dash_grid_factors(extract(year FROM d.month)::int) f ON true
)"""
IN_RANGE = f"k.month >= date_trunc('month', $__timeFrom()::timestamptz AT TIME ZONE {LOCAL})"
BASELINE_JOIN = (
    "LEFT JOIN kwh b ON b.sensor_id = k.sensor_id"
    " AND b.month = make_date($baseline_year, extract(month FROM k.month)::int, 1)"
)

MONTHLY_TABLE = (
    KWH
    + f"""
SELECT to_char(k.month, 'YYYY-MM') AS month, {SITE} AS site, k.sensor_id AS meter,
       round(k.kwh::numeric, 1) AS "kWh",
       round((k.kwh * k.generation)::numeric, 1) AS "kg CO2e Scope 2",
       round((k.kwh * k.td_losses)::numeric, 1) AS "kg CO2e Scope 3 T&D",
       k.factor_year AS "DESNZ factors",
       round(b.kwh::numeric, 1) AS "baseline kWh",
       round((100 * (k.kwh - b.kwh) / nullif(b.kwh, 0))::numeric, 1) AS "change %"
  FROM kwh k
  {BASELINE_JOIN}
  LEFT JOIN sensor_sites loc ON loc.sensor_id = k.sensor_id
 WHERE {IN_RANGE}
 ORDER BY 1 DESC, 2
"""
)

CARBON_VS_BASELINE = (
    KWH
    + f"""
SELECT k.month AT TIME ZONE {LOCAL} AS time,
       sum(k.kwh * (k.generation + k.td_losses)) AS "kg CO2e",
       sum(b.kwh * (b.generation + b.td_losses)) AS "baseline kg CO2e ($baseline_year)"
  FROM kwh k
  {BASELINE_JOIN}
 WHERE {IN_RANGE}
 GROUP BY 1
 ORDER BY 1
"""
)

KWH_BY_SITE = (
    KWH
    + f"""
SELECT k.month AT TIME ZONE {LOCAL} AS time, {SITE} AS metric, k.kwh AS value
  FROM kwh k LEFT JOIN sensor_sites loc ON loc.sensor_id = k.sensor_id
 WHERE {IN_RANGE}
 ORDER BY 1, 2, 3
"""
)

# Year to date against the same months of the baseline year, each month with its own
# year's DESNZ factors (location-based Scope 2 + Scope 3 T&D).
PROGRESS = (
    KWH
    + f""",
to_date AS (
    SELECT sum(kwh * (generation + td_losses)) FILTER (
               WHERE month >= date_trunc('year', $__timeTo()::timestamptz AT TIME ZONE {LOCAL}))
               AS current_kg,
           sum(kwh * (generation + td_losses)) FILTER (
               WHERE extract(year FROM month) = $baseline_year
                 AND extract(month FROM month)
                     <= extract(month FROM $__timeTo()::timestamptz AT TIME ZONE {LOCAL}))
               AS baseline_kg
      FROM kwh
)
SELECT round(current_kg::numeric) AS "kg CO2e this year",
       round(baseline_kg::numeric) AS "kg CO2e same months $baseline_year",
       round((100 * (baseline_kg - current_kg) / nullif(baseline_kg, 0))::numeric, 1)
           AS "reduction %",
       round((100 * (baseline_kg - current_kg) / nullif(baseline_kg, 0)
              / nullif($target_pct, 0) * 100)::numeric, 1) AS "progress to target %"
  FROM to_date
"""
)

SOLAR_POWER = f"""
SELECT $__timeGroupAlias(bucket, $__interval), sensor_id AS metric,
       avg(greatest(-mean, 0)) / 1000 AS value
  FROM readings_1m
 WHERE $__timeFilter(bucket) AND {WHERE} AND metric = 'power'
 GROUP BY 1, 2
 ORDER BY 1, 2
"""

SOLAR_MONTH = f"""
SELECT coalesce(loc.site, r.sensor_id) AS site, max(r.max) - min(r.min) AS "kWh exported"
  FROM readings_1m r LEFT JOIN sensor_sites loc ON loc.sensor_id = r.sensor_id
 WHERE r.kind = '{KIND}' AND r.council IN ($council) AND r.sensor_id IN ($site)
   AND r.metric = 'energy_export'
   AND r.bucket >= date_trunc('month', $__timeTo()::timestamptz AT TIME ZONE {LOCAL})
                   AT TIME ZONE {LOCAL}
   AND r.bucket <= $__timeTo()::timestamptz
 GROUP BY 1
 ORDER BY 2 DESC, 1
"""


def _custom(name: str, label: str, values: list[str], default: str) -> dashboard.CustomVariable:
    return (
        dashboard.CustomVariable(name)
        .label(label)
        .values(",".join(values))
        .current(models.VariableOption(selected=True, text=default, value=default))
        .options([models.VariableOption(selected=v == default, text=v, value=v) for v in values])
    )


def build() -> dashboard.Dashboard:
    """The Energy & Net Zero dashboard."""
    variables = [
        *p.standard_variables(KIND),
        _custom("baseline_year", "Baseline year", ["2024", "2025", "2026"], "2025"),
        _custom("target_pct", "Target reduction %", ["25", "50", "68", "78", "100"], "50"),
    ]
    carbon = [
        p.stat_panel(
            "Progress to target",
            "Carbon this year against the same months of the "
            "baseline year, and how far that is towards the target reduction.",
            PROGRESS,
            unit="none",
            w=24,
            h=5,
            colours=[(None, "blue")],
        ),
        p.timeseries_panel(
            "kg CO2e per month vs baseline",
            "All selected sites; DESNZ factors of each month's year (Scope 2 + Scope 3 T&D).",
            CARBON_VS_BASELINE,
            unit="masskg",
            bars=True,
        ),
        p.timeseries_panel(
            "Electricity per month by site",
            "kWh from the import register.",
            KWH_BY_SITE,
            unit="kwatth",
            bars=True,
        ),
        p.table_panel(
            "Consumption and carbon per site and month",
            "Each month's kWh and kg "
            "CO2e with the DESNZ factor year used, against the same month of the "
            "baseline year.",
            MONTHLY_TABLE,
            w=24,
            h=9,
        ),
    ]
    solar = [
        p.timeseries_panel(
            "Solar export", "Average power exported to the grid (kW).", SOLAR_POWER, unit="kwatt"
        ),
        p.bargauge_panel(
            "Solar exported this month",
            "kWh on the export register since the 1st (UK time).",
            SOLAR_MONTH,
            unit="kwatth",
            colours=[(None, "green")],
        ),
    ]
    return p.build_dashboard(
        UID,
        "civicpulse · Energy & Net Zero",
        "Electricity and carbon per site and month "
        "against a baseline year, solar generation, and progress to the reduction target.",
        ["energy", "net-zero"],
        variables,
        [("Carbon", carbon), ("Solar", solar)],
        "now-1y",
    )
