-- Which out-of-range dead letters the alert tick has turned into sensor-health alerts.
-- A flag per row rather than a last-seen id: ids are drawn before commit, so with several
-- writers a lower id can become visible after a higher one and a watermark would skip it.
ALTER TABLE dead_letters ADD COLUMN IF NOT EXISTS alerted_at timestamptz;

UPDATE dead_letters SET alerted_at = now()
 WHERE reason = 'out_of_range'
   AND id <= COALESCE(
       (SELECT value FROM detection_cursor WHERE name = 'dead_letters.out_of_range'), 0);

CREATE INDEX IF NOT EXISTS dead_letters_unalerted_idx ON dead_letters (id)
    WHERE reason = 'out_of_range' AND alerted_at IS NULL;
