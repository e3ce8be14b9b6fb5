-- The read contract grows: the alert webhook outbox (sql/005), so Operations can show
-- notifications that are waiting or were given up on.
CREATE OR REPLACE FUNCTION civicpulse_read_contract() RETURNS text[]
    LANGUAGE sql IMMUTABLE
    RETURN ARRAY[
        'readings', 'readings_1m', 'dead_letters', 'alerts', 'alert_notifications',
        'readings_15m', 'readings_1h', 'readings_1d', 'readings_council_1h', 'readings_council_1d',
        'sensor_sites', 'sensor_locations', 'dash_sensor_status',
        'bin_forecasts', 'bin_forecasts_latest'
    ];

SELECT civicpulse_grant_reader();
