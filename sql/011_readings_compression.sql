-- TimescaleDB only: raw readings compress per sensor (segmentby sensor_id), newest first.
-- `metric` follows time in the ordering so each compressed batch is sorted on the whole
-- natural key (sensor_id, metric, time) that late inserts check for conflicts.
-- When compression happens is a policy (retention.py apply_policies, compress_after).
-- Plain PostgreSQL has no compression: this file does nothing there.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        ALTER TABLE readings SET (
            timescaledb.compress,
            timescaledb.compress_segmentby = 'sensor_id',
            timescaledb.compress_orderby = 'time DESC, metric'
        );
    END IF;
END
$$;
