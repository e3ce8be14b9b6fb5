-- Notifications operators can rely on (docs/alerts.md, "Notifications"): what the last
-- notification told about each alert episode, the flap streak that decides when automatic
-- resolutions are held back, and a history of every transition of every episode.
ALTER TABLE alert_events
    ADD COLUMN IF NOT EXISTS notified text CHECK (notified IN ('open', 'resolved')),
    ADD COLUMN IF NOT EXISTS flap_streak integer NOT NULL DEFAULT 0 CHECK (flap_streak >= 0);
-- Resolved automatically but not yet notified (flapping): the tick settles these.
CREATE INDEX IF NOT EXISTS alert_events_held_idx ON alert_events (sensor_id)
    WHERE state = 'resolved' AND notified = 'open';

-- One row per transition: opened, escalated, resolved, reopened, settled (a held-back
-- resolution notified once final), withdrawn, acknowledged; `at` is when it happened
-- (event time), `event` the notification it queued (NULL: none, e.g. held back).
CREATE TABLE IF NOT EXISTS alert_transitions (
    id          bigserial   PRIMARY KEY,
    alert_id    bigint      NOT NULL REFERENCES alert_events (id) ON DELETE CASCADE,
    transition  text        NOT NULL CHECK (transition IN ('opened', 'escalated', 'resolved',
                                'reopened', 'settled', 'withdrawn', 'acknowledged')),
    at          timestamptz NOT NULL,
    state       text        NOT NULL,
    severity    text        NOT NULL,
    flaps       integer     NOT NULL,
    actor       text,                -- 'auto', 'withdrawn' or the operator
    event       text,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS alert_transitions_alert_idx ON alert_transitions (alert_id, id);

-- Operators act through `civicpulse alerts ack|resolve`: their transitions are logged here,
-- whatever code path updated the row (detection logs its own with the event it queued).
CREATE OR REPLACE FUNCTION alert_transitions_operator() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.acknowledged_at IS NULL AND NEW.acknowledged_at IS NOT NULL
       AND NEW.state = 'acknowledged' THEN
        INSERT INTO alert_transitions (alert_id, transition, at, state, severity, flaps, actor)
        VALUES (NEW.id, 'acknowledged', NEW.acknowledged_at, NEW.state, NEW.severity,
                NEW.flaps, NEW.acknowledged_by);
    END IF;
    IF OLD.state <> 'resolved' AND NEW.state = 'resolved'
       AND NEW.resolved_by IS NOT NULL AND NEW.resolved_by NOT IN ('auto', 'withdrawn') THEN
        INSERT INTO alert_transitions (alert_id, transition, at, state, severity, flaps, actor)
        VALUES (NEW.id, 'resolved', NEW.resolved_at, NEW.state, NEW.severity, NEW.flaps,
                NEW.resolved_by);
    END IF;
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS alert_events_operator_transitions ON alert_events;
CREATE TRIGGER alert_events_operator_transitions
    AFTER UPDATE ON alert_events
    FOR EACH ROW EXECUTE FUNCTION alert_transitions_operator();
