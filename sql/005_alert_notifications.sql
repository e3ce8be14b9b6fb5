-- Webhook outbox: one row per alert notification, written in the same transaction as the
-- alert change (so none is lost or invented by a crash); `civicpulse alerts deliver` posts
-- them with retries. dead_at set = gave up after the last attempt (the delivery dead letter).
CREATE TABLE IF NOT EXISTS alert_notifications (
    id              bigserial   PRIMARY KEY,
    alert_id        bigint      NOT NULL REFERENCES alert_events (id),
    event           text        NOT NULL
                    CHECK (event IN ('opened', 'reopened', 'escalated', 'resolved')),
    payload         jsonb       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    dead_at         timestamptz,
    last_error      text
);
CREATE INDEX IF NOT EXISTS alert_notifications_due_idx
    ON alert_notifications (next_attempt_at) WHERE delivered_at IS NULL AND dead_at IS NULL;
