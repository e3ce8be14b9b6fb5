-- Raw canonical readings: the read contract's `readings` relation.
-- Natural key (sensor_id, metric, time): every writer upserts on it, so at-least-once
-- replays never duplicate a row.
CREATE TABLE IF NOT EXISTS readings (
    time        timestamptz      NOT NULL,
    council     text             NOT NULL,
    sensor_id   text             NOT NULL,
    kind        text             NOT NULL,
    metric      text             NOT NULL,
    value       double precision NOT NULL,
    unit        text             NOT NULL,
    received_at timestamptz      NOT NULL,
    stored_at   timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (sensor_id, metric, time)
);

CREATE INDEX IF NOT EXISTS readings_time_idx ON readings (time DESC);
CREATE INDEX IF NOT EXISTS readings_council_kind_time_idx ON readings (council, kind, time DESC);

-- With TimescaleDB present, raw readings are a hypertable (1-day chunks); on plain
-- PostgreSQL this block does nothing and everything else works the same.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        PERFORM create_hypertable('readings', 'time',
                                  chunk_time_interval => INTERVAL '1 day',
                                  if_not_exists => TRUE, migrate_data => TRUE);
    END IF;
END
$$;
