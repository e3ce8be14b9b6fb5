-- Alerts and detector state: the read contract's `alerts` view, and what detectors remember.
-- Both are written in the SAME transaction as the readings batch that caused them, so a
-- crash (kill -9) at any moment leaves alerts and detector state consistent with `readings`.

-- One row per alert episode. state: open -> acknowledged -> resolved (or open -> resolved).
CREATE TABLE IF NOT EXISTS alert_events (
    id              bigserial   PRIMARY KEY,
    council         text        NOT NULL,
    sensor_id       text        NOT NULL,
    site            text        NOT NULL,
    kind            text        NOT NULL,
    rule            text        NOT NULL,
    severity        text        NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    state           text        NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    opened_at       timestamptz NOT NULL,
    acknowledged_at timestamptz,
    acknowledged_by text,
    resolved_at     timestamptz,
    resolved_by     text,            -- 'auto' (condition cleared / quiet) or the operator
    last_seen_at    timestamptz NOT NULL,
    count           integer     NOT NULL DEFAULT 1 CHECK (count >= 1),
    flaps           integer     NOT NULL DEFAULT 0 CHECK (flaps >= 0),
    details         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- At most one live (open or acknowledged) alert per sensor and rule: repeats update it.
CREATE UNIQUE INDEX IF NOT EXISTS alert_events_one_live_idx
    ON alert_events (sensor_id, rule) WHERE state <> 'resolved';
CREATE INDEX IF NOT EXISTS alert_events_sensor_rule_idx
    ON alert_events (sensor_id, rule, opened_at DESC);
CREATE INDEX IF NOT EXISTS alert_events_state_idx ON alert_events (state, opened_at DESC);

-- The read contract: Grafana, the API and operators read `alerts`, never alert_events.
CREATE OR REPLACE VIEW alerts AS
SELECT id, council, sensor_id, site, kind, rule, severity, state, opened_at,
       acknowledged_at, resolved_at, last_seen_at, count, details
  FROM alert_events;

-- Detector state per sensor and detector (JSON), restored when a worker starts.
CREATE TABLE IF NOT EXISTS detector_state (
    sensor_id  text        NOT NULL,
    detector   text        NOT NULL,
    state      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sensor_id, detector)
);

-- Watermarks of the periodic tick (e.g. the last dead letter turned into a health alert).
CREATE TABLE IF NOT EXISTS detection_cursor (
    name  text   PRIMARY KEY,
    value bigint NOT NULL
);
