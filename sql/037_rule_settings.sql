-- The alert rules' thresholds as the running engine uses them, so the dashboards' SQL reads
-- the same numbers instead of copies. Detection.tick publishes every layer of its Thresholds
-- (rules/thresholds.py: DEFAULTS and the TOML file's [defaults], [councils.X], [sites.X],
-- [sensors.X]) with storage.rule_settings.publish_thresholds, replacing the table's rows.
-- Until an engine has ticked once the table is empty and dash_rule() returns NULL.
CREATE TABLE IF NOT EXISTS rule_settings (
    scope        text NOT NULL CHECK (scope IN ('default', 'council', 'site', 'sensor')),
    name         text NOT NULL,  -- the council, site or sensor id; '' for the defaults
    key          text NOT NULL,  -- e.g. 'waste.fill_threshold_pct'
    value        jsonb NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, name, key),
    CHECK ((scope = 'default') = (name = ''))
);

-- A numeric rule parameter for one sensor, with the precedence of Thresholds.for_sensor
-- (later wins): default < council < site (the sensor's sensor_sites.site, else the sensor id
-- itself: rules.alerts.site_of) < a bin's own sensor_sites.threshold_pct (for
-- 'waste.fill_threshold_pct') < sensor. As there, a bin with its own threshold keeps
-- 'waste.fill_clear_pct' at most 30 points below its merged fill threshold. NULL when the
-- key is not published or not a number.
CREATE OR REPLACE FUNCTION dash_rule(p_key text, p_council text, p_sensor text)
    RETURNS double precision LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH reg AS (
        SELECT coalesce((SELECT s.site FROM sensor_sites s WHERE s.sensor_id = p_sensor),
                        p_sensor) AS site,
               (SELECT s.threshold_pct FROM sensor_sites s
                 WHERE s.sensor_id = p_sensor) AS bin_pct
    ), layers AS (
        SELECT 4 AS rank, r.key, r.value FROM rule_settings r
         WHERE r.scope = 'sensor' AND r.name = p_sensor
        UNION ALL
        SELECT 3, 'waste.fill_threshold_pct', to_jsonb(reg.bin_pct) FROM reg
         WHERE reg.bin_pct IS NOT NULL
        UNION ALL
        SELECT 2, r.key, r.value FROM rule_settings r JOIN reg ON r.name = reg.site
         WHERE r.scope = 'site'
        UNION ALL
        SELECT 1, r.key, r.value FROM rule_settings r
         WHERE r.scope = 'council' AND r.name = p_council
        UNION ALL
        SELECT 0, r.key, r.value FROM rule_settings r
         WHERE r.scope = 'default' AND r.name = ''
    ), merged AS (
        SELECT DISTINCT ON (l.key) l.key,
               CASE WHEN jsonb_typeof(l.value) = 'number'
                    THEN (l.value #>> '{}')::double precision END AS v
          FROM layers l
         WHERE l.key IN (p_key, 'waste.fill_threshold_pct')
         ORDER BY l.key, l.rank DESC
    )
    SELECT CASE WHEN p_key = 'waste.fill_clear_pct' AND reg.bin_pct IS NOT NULL
                THEN least(m.v, greatest(0, t.v - 30))
                ELSE m.v END
      FROM reg
      LEFT JOIN merged m ON m.key = p_key
      LEFT JOIN merged t ON t.key = 'waste.fill_threshold_pct'
$$;

-- sql/035's view, with the bin threshold and staleness from the published rules
-- ('waste.fill_threshold_pct', 'health.stale_factor') instead of copies of their defaults.
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
           dash_rule('waste.fill_threshold_pct', seen.council, seen.sensor_id) AS threshold_pct,
           loc.latitude, loc.longitude,
           now() - seen.last_seen > dash_rule('health.stale_factor', seen.council, seen.sensor_id)
               * dash_expected_interval_s(seen.kind) * interval '1 second'
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

-- The read contract grows: dash_rule() runs with the reader's rights, so it must read
-- rule_settings (thresholds are not secret).
CREATE OR REPLACE FUNCTION civicpulse_read_contract() RETURNS text[]
    LANGUAGE sql IMMUTABLE
    RETURN ARRAY[
        'readings', 'readings_1m', 'dead_letters', 'alerts', 'alert_notifications',
        'readings_15m', 'readings_1h', 'readings_1d', 'readings_council_1h', 'readings_council_1d',
        'sensor_sites', 'sensor_locations', 'dash_sensor_status',
        'bin_forecasts', 'bin_forecasts_latest', 'rule_settings'
    ];

SELECT civicpulse_grant_reader();
