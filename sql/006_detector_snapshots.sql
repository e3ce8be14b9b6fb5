-- Detector state as of event time t (every reading before t), kept for late readings:
-- a reading older than what a detector has seen replays the sensor's stored history from
-- the latest snapshot at or before it. `alerts` holds the latest episode per condition
-- rule at t, so the replayed signals re-derive the episodes that follow.
CREATE TABLE IF NOT EXISTS detector_snapshots (
    sensor_id text             NOT NULL,
    detector  text             NOT NULL,
    t         double precision NOT NULL,  -- event time, epoch seconds
    state     jsonb,                      -- NULL: the detector had seen nothing before t
    alerts    jsonb            NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (sensor_id, detector, t)
);
