-- Plain PostgreSQL only: the store rewrites a 1h row 12 times and a 1d row 288 times a day
-- (5-minute readings). Free space on each page lets those updates stay HOT (no new index
-- entries; none of the updated columns is indexed).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        ALTER TABLE readings_15m SET (fillfactor = 80);
        ALTER TABLE readings_1h SET (fillfactor = 70);
        ALTER TABLE readings_1d SET (fillfactor = 70);
        ALTER TABLE readings_council_1h SET (fillfactor = 70);
        ALTER TABLE readings_council_1d SET (fillfactor = 70);
    END IF;
END
$$;
