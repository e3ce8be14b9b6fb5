-- Bin fill forecasts written by `civicpulse waste forecast` (stream_processors/core/forecast.py),
-- for dashboards: when each bin reaches its threshold, as of its last fill read.
-- One row per (bin, last read used): re-running for the same reads upserts, never duplicates.
CREATE TABLE IF NOT EXISTS bin_forecasts (
    sensor_id      text             NOT NULL,
    as_of          timestamptz      NOT NULL,  -- time of the last fill read the forecast used
    council        text             NOT NULL,
    fill_pct       double precision NOT NULL,
    threshold_pct  double precision NOT NULL,
    rate_pct_per_h double precision,
    full_at        timestamptz,                -- NULL: nothing rising to extrapolate
    method         text             NOT NULL CHECK (method IN ('full', 'fit', 'history', 'none')),
    cycle_start    timestamptz      NOT NULL,  -- first read after the last collection
    computed_at    timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (sensor_id, as_of)
);

CREATE INDEX IF NOT EXISTS bin_forecasts_council_full_at_idx ON bin_forecasts (council, full_at);

-- The newest forecast of each bin: what a "bins due" panel reads.
CREATE OR REPLACE VIEW bin_forecasts_latest AS
SELECT DISTINCT ON (sensor_id) *
  FROM bin_forecasts
 ORDER BY sensor_id, as_of DESC;
