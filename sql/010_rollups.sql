-- Rollups of the read contract: readings_15m, readings_1h, readings_1d per sensor and metric,
-- and readings_council_1h, readings_council_1d per council, kind and metric.
--
-- Same names and columns on both databases:
--   bucket, council, sensor_id, kind, metric, n, sum, min, max, mean, last, last_time
--   (council rollups: bucket, council, kind, metric, sensors, n, sum, min, max, mean)
-- `sum` is stored so that means of means are exact: mean = sum / n at every level.
-- Buckets are UTC and aligned like time_bucket() (origin 2000-01-03 00:00 UTC).
--
-- TimescaleDB: continuous aggregates, hierarchical (15m on raw readings, 1h on 15m, 1d on
-- 1h, council rollups on the per-sensor level of the same width), real-time
-- (materialized_only = false). Refresh, compression and retention policies are set by
-- stream_processors/storage/retention.py (apply_policies) from a StoragePolicy.
-- Plain PostgreSQL: tables that the readings store keeps exact in the same transaction as
-- each raw insert (stream_processors/storage/rollups.py), same formulas.

-- Council rollups make sense only where a mean (or sum) over several sensors means
-- something: concentrations, temperatures, fill levels, power, flags (share of time set).
-- Cumulative meter registers do not: adding two buildings' meter readings is meaningless.
CREATE OR REPLACE FUNCTION council_rollup_metric(metric text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN metric NOT IN ('energy_import', 'energy_export');

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        EXECUTE $q$
        CREATE MATERIALIZED VIEW readings_15m
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket(INTERVAL '15 minutes', time) AS bucket,
               council, sensor_id, kind, metric,
               count(*) AS n, sum(value) AS sum, min(value) AS min, max(value) AS max,
               sum(value) / count(*) AS mean,
               last(value, time) AS last, max(time) AS last_time
          FROM readings
         GROUP BY 1, council, sensor_id, kind, metric
        WITH NO DATA $q$;
        EXECUTE $q$
        CREATE MATERIALIZED VIEW readings_1h
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket(INTERVAL '1 hour', bucket) AS bucket,
               council, sensor_id, kind, metric,
               sum(n)::bigint AS n, sum(sum) AS sum, min(min) AS min, max(max) AS max,
               sum(sum) / sum(n) AS mean,
               last(last, last_time) AS last, max(last_time) AS last_time
          FROM readings_15m
         GROUP BY 1, council, sensor_id, kind, metric
        WITH NO DATA $q$;
        EXECUTE $q$
        CREATE MATERIALIZED VIEW readings_1d
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket(INTERVAL '1 day', bucket) AS bucket,
               council, sensor_id, kind, metric,
               sum(n)::bigint AS n, sum(sum) AS sum, min(min) AS min, max(max) AS max,
               sum(sum) / sum(n) AS mean,
               last(last, last_time) AS last, max(last_time) AS last_time
          FROM readings_1h
         GROUP BY 1, council, sensor_id, kind, metric
        WITH NO DATA $q$;
        EXECUTE $q$
        CREATE MATERIALIZED VIEW readings_council_1h
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket(INTERVAL '1 hour', bucket) AS bucket, council, kind, metric,
               count(*) AS sensors, sum(n)::bigint AS n, sum(sum) AS sum,
               min(min) AS min, max(max) AS max, sum(sum) / sum(n) AS mean
          FROM readings_1h
         WHERE council_rollup_metric(metric)
         GROUP BY 1, council, kind, metric
        WITH NO DATA $q$;
        EXECUTE $q$
        CREATE MATERIALIZED VIEW readings_council_1d
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT time_bucket(INTERVAL '1 day', bucket) AS bucket, council, kind, metric,
               count(*) AS sensors, sum(n)::bigint AS n, sum(sum) AS sum,
               min(min) AS min, max(max) AS max, sum(sum) / sum(n) AS mean
          FROM readings_1d
         WHERE council_rollup_metric(metric)
         GROUP BY 1, council, kind, metric
        WITH NO DATA $q$;
    ELSE
        CREATE TABLE readings_15m (
            bucket    timestamptz      NOT NULL,
            council   text             NOT NULL,
            sensor_id text             NOT NULL,
            kind      text             NOT NULL,
            metric    text             NOT NULL,
            n         bigint           NOT NULL,
            sum       double precision NOT NULL,
            min       double precision NOT NULL,
            max       double precision NOT NULL,
            mean      double precision NOT NULL,
            last      double precision NOT NULL,
            last_time timestamptz      NOT NULL,
            PRIMARY KEY (sensor_id, metric, bucket, council, kind)
        );
        CREATE TABLE readings_1h (LIKE readings_15m INCLUDING ALL);
        CREATE TABLE readings_1d (LIKE readings_15m INCLUDING ALL);
        CREATE TABLE readings_council_1h (
            bucket    timestamptz      NOT NULL,
            council   text             NOT NULL,
            kind      text             NOT NULL,
            metric    text             NOT NULL,
            sensors   bigint           NOT NULL,
            n         bigint           NOT NULL,
            sum       double precision NOT NULL,
            min       double precision NOT NULL,
            max       double precision NOT NULL,
            mean      double precision NOT NULL,
            PRIMARY KEY (council, kind, metric, bucket)
        );
        CREATE TABLE readings_council_1d (LIKE readings_council_1h INCLUDING ALL);
    END IF;
END
$$;

-- Indexes for the dashboards' access paths (on TimescaleDB they go on the continuous
-- aggregate's materialization; the unique key above is implicit there).
CREATE INDEX IF NOT EXISTS readings_15m_council_kind_bucket_idx
    ON readings_15m (council, kind, metric, bucket DESC);
CREATE INDEX IF NOT EXISTS readings_1h_council_kind_bucket_idx
    ON readings_1h (council, kind, metric, bucket DESC);
CREATE INDEX IF NOT EXISTS readings_1d_council_kind_bucket_idx
    ON readings_1d (council, kind, metric, bucket DESC);
CREATE INDEX IF NOT EXISTS readings_15m_bucket_idx ON readings_15m (bucket DESC);
CREATE INDEX IF NOT EXISTS readings_1h_bucket_idx ON readings_1h (bucket DESC);
CREATE INDEX IF NOT EXISTS readings_1d_bucket_idx ON readings_1d (bucket DESC);
