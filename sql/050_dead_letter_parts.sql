-- Partial acceptance (docs/ingest.md): a batch or SenML pack with some records rejected
-- stores the others and dead-letters each rejected record on its own row of dead_letters,
-- with its reason, detail and index; the message itself is kept ONCE, in
-- dead_letter_messages, and referenced (dead_letters.message_id). Bounded payloads: a dead
-- letter keeps at most the first 4 KiB of a payload, with its original length and SHA-256.
--
-- dead_letters keeps every column and its meaning: one row per rejection; `payload` holds
-- what was rejected (the message, or for a record rejected alone that record as JSON), cut
-- to 4 KiB; `payload_size` is the length of the original.
CREATE TABLE IF NOT EXISTS dead_letter_messages (
    id                bigserial   PRIMARY KEY,
    received_at       timestamptz NOT NULL,
    stage             text        NOT NULL,
    mqtt_topic        text        NOT NULL,
    payload           bytea       NOT NULL,  -- the message's first 4 KiB
    payload_size      integer     NOT NULL,  -- its original length
    payload_sha256    text        NOT NULL,  -- of the original, hex
    readings_accepted integer     NOT NULL,  -- its records that were stored
    records_rejected  integer     NOT NULL,  -- its rows in dead_letters
    source_ref        text        UNIQUE
);
CREATE INDEX IF NOT EXISTS dead_letter_messages_received_idx
    ON dead_letter_messages (received_at DESC);

ALTER TABLE dead_letters
    ADD COLUMN IF NOT EXISTS message_id bigint
        REFERENCES dead_letter_messages (id) ON DELETE CASCADE,  -- NULL: rejected whole
    ADD COLUMN IF NOT EXISTS part_index integer,  -- the record's index in the message
    ADD COLUMN IF NOT EXISTS payload_sha256 text,  -- of the original payload, hex
    ADD COLUMN IF NOT EXISTS payload_truncated boolean NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS dead_letters_message_idx
    ON dead_letters (message_id) WHERE message_id IS NOT NULL;

-- Retention deletes dead_letters rows by age; a message none of them refers to goes with them.
CREATE OR REPLACE FUNCTION dead_letter_messages_prune() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM dead_letter_messages m
     WHERE m.id IN (SELECT DISTINCT message_id FROM gone WHERE message_id IS NOT NULL)
       AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.message_id = m.id);
    RETURN NULL;
END
$$;
DROP TRIGGER IF EXISTS dead_letters_prune_messages ON dead_letters;
CREATE TRIGGER dead_letters_prune_messages
    AFTER DELETE ON dead_letters REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION dead_letter_messages_prune();
