-- Late readings can withdraw an alert episode they no longer support (docs/alerts.md,
-- "Late readings"): the webhook outbox accepts that event too.
ALTER TABLE alert_notifications DROP CONSTRAINT IF EXISTS alert_notifications_event_check;
ALTER TABLE alert_notifications ADD CONSTRAINT alert_notifications_event_check
    CHECK (event IN ('opened', 'reopened', 'escalated', 'resolved', 'withdrawn'));
