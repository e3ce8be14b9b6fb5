-- One-minute aggregates per sensor and metric: the read contract's `readings_1m`.
-- Maintained by the stream processors, which recompute every touched minute from the
-- stored raw readings in the same transaction as the raw insert: the aggregate is a pure
-- function of `readings`, so replays, late readings and crashes cannot skew it.
CREATE TABLE IF NOT EXISTS readings_1m (
    bucket    timestamptz      NOT NULL,
    council   text             NOT NULL,
    sensor_id text             NOT NULL,
    kind      text             NOT NULL,
    metric    text             NOT NULL,
    n         integer          NOT NULL,
    min       double precision NOT NULL,
    max       double precision NOT NULL,
    mean      double precision NOT NULL,
    last      double precision NOT NULL,
    last_time timestamptz      NOT NULL,
    PRIMARY KEY (sensor_id, metric, bucket)
);

CREATE INDEX IF NOT EXISTS readings_1m_bucket_idx ON readings_1m (bucket DESC);
CREATE INDEX IF NOT EXISTS readings_1m_council_kind_bucket_idx
    ON readings_1m (council, kind, bucket DESC);
