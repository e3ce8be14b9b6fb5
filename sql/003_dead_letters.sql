-- Dead letters kept in the database: what was rejected, why, from where, when.
-- The embedded engine writes here directly; in the distributed path a Faust agent sinks
-- the Kafka dead-letter topic here too, so both paths show rejects the same way.
CREATE TABLE IF NOT EXISTS dead_letters (
    id           bigserial   PRIMARY KEY,
    received_at  timestamptz NOT NULL,
    stage        text        NOT NULL,
    reason       text        NOT NULL,
    detail       text        NOT NULL,
    mqtt_topic   text        NOT NULL,
    payload      bytea       NOT NULL,
    payload_size integer     NOT NULL,
    source_ref   text        UNIQUE
);
CREATE INDEX IF NOT EXISTS dead_letters_received_idx ON dead_letters (received_at DESC);
CREATE INDEX IF NOT EXISTS dead_letters_reason_idx ON dead_letters (reason, received_at DESC);
