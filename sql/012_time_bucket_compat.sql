-- Plain PostgreSQL only: time_bucket(interval, timestamptz) with TimescaleDB's default origin
-- (2000-01-03 00:00 UTC), so dashboard SQL (Grafana's $__timeGroup with timescaledb: true)
-- runs unchanged on both databases. Fixed-width intervals only (no months or years).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        CREATE OR REPLACE FUNCTION time_bucket(bucket_width interval, ts timestamptz)
            RETURNS timestamptz
            LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
            RETURN date_bin(bucket_width, ts, TIMESTAMPTZ '2000-01-03 00:00:00+00');
    END IF;
END
$$;
