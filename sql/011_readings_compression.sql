-- TimescaleDB only: raw readings compress per sensor (segmentby sensor_id), newest first.
-- The natural key's `metric` must be a segmenting or ordering column, so it follows time.
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
