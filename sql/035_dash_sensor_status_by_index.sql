-- dash_sensor_status without reading a sensor's whole history: its last reading is found by
-- one index probe (readings_1m primary key) per catalogue metric. Same columns as sql/033.

-- Every metric of the sensor catalogue (sensors/catalogue.py; a test keeps them equal).
CREATE OR REPLACE FUNCTION dash_catalogue_metrics() RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ARRAY['pm2_5', 'pm10', 'no2', 'o3', 'so2', 'temperature', 'humidity',
                 'fill_level', 'battery', 'tilt', 'fire', 'energy_import', 'power',
                 'energy_export'];

CREATE OR REPLACE VIEW dash_sensor_status AS
WITH RECURSIVE ids AS (
    (SELECT sensor_id FROM readings_1m ORDER BY sensor_id LIMIT 1)
    UNION ALL
    SELECT (SELECT r.sensor_id FROM readings_1m r
             WHERE r.sensor_id > ids.sensor_id ORDER BY r.sensor_id LIMIT 1)
      FROM ids
     WHERE ids.sensor_id IS NOT NULL
), seen AS (
    SELECT s.council, ids.sensor_id, s.kind, s.last_seen
      FROM ids
     CROSS JOIN LATERAL (
           SELECT latest.council, latest.kind, latest.last_time AS last_seen
             FROM unnest(dash_catalogue_metrics()) AS m (metric)
            CROSS JOIN LATERAL (
                  SELECT r.council, r.kind, r.last_time FROM readings_1m r
                   WHERE r.sensor_id = ids.sensor_id AND r.metric = m.metric
                   ORDER BY r.bucket DESC LIMIT 1) latest
            ORDER BY latest.last_time DESC
            LIMIT 1) s
     WHERE ids.sensor_id IS NOT NULL
), health AS (
    SELECT seen.*,
           coalesce(site.site, seen.sensor_id) AS site,
           coalesce(site.ward, '') AS ward,
           coalesce(site.threshold_pct, 80) AS threshold_pct,
           loc.latitude, loc.longitude,
           now() - seen.last_seen > 3 * dash_expected_interval_s(seen.kind) * interval '1 second'
               AS stale,
           (SELECT b.last FROM readings_1m b
             WHERE b.sensor_id = seen.sensor_id AND b.metric = 'battery'
             ORDER BY b.bucket DESC LIMIT 1) AS battery_pct,
           (SELECT max(CASE a.severity WHEN 'critical' THEN 3 WHEN 'warning' THEN 2 ELSE 1 END)
              FROM alerts a
             WHERE a.sensor_id = seen.sensor_id AND a.state <> 'resolved') AS worst_alert,
           (SELECT count(*) FROM alerts a
             WHERE a.sensor_id = seen.sensor_id AND a.state <> 'resolved') AS open_alerts
      FROM seen
      LEFT JOIN sensor_sites site ON site.sensor_id = seen.sensor_id
      LEFT JOIN sensor_locations loc ON loc.sensor_id = seen.sensor_id
)
SELECT council, sensor_id, kind, site, ward, threshold_pct, latitude, longitude, last_seen,
       extract(epoch FROM now() - last_seen)::bigint AS seconds_since_seen,
       stale, battery_pct, open_alerts,
       CASE WHEN stale THEN 'stale' WHEN worst_alert = 3 THEN 'critical'
            WHEN worst_alert = 2 THEN 'warning' ELSE 'ok' END AS status,
       -- 0 ok, 1 warning, 2 critical, 3 stale: the maps colour by this
       CASE WHEN stale THEN 3 WHEN worst_alert = 3 THEN 2 WHEN worst_alert = 2 THEN 1 ELSE 0 END
           AS status_level
  FROM health;

SELECT civicpulse_grant_reader();
