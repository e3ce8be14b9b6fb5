-- The read-only role Grafana (and any SQL reader) uses: SELECT on the read contract, nothing
-- else. Idempotent. The role is created NOLOGIN; `civicpulse dashboards grant-reader` gives it
-- LOGIN and a password (docker-compose runs it after the migrations) and re-applies the grants.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'civicpulse_reader') THEN
        CREATE ROLE civicpulse_reader NOLOGIN;
    END IF;
    ALTER ROLE civicpulse_reader SET default_transaction_read_only = on;
    ALTER ROLE civicpulse_reader SET statement_timeout = '30s';
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN
        NULL;  -- another database on this server created it at the same moment
    WHEN insufficient_privilege THEN
        RAISE NOTICE 'civicpulse_reader not created or altered (needs CREATEROLE): %', SQLERRM;
END
$$;

-- Every relation of the read contract; grants SELECT on those that exist now. Called by each
-- later migration that adds a relation, and by `civicpulse dashboards grant-reader`.
CREATE OR REPLACE FUNCTION civicpulse_read_contract() RETURNS text[]
    LANGUAGE sql IMMUTABLE
    RETURN ARRAY[
        'readings', 'readings_1m', 'dead_letters', 'alerts',
        'readings_15m', 'readings_1h', 'readings_1d', 'readings_council_1h', 'readings_council_1d',
        'sensor_sites', 'sensor_locations', 'dash_sensor_status'
    ];

CREATE OR REPLACE FUNCTION civicpulse_grant_reader() RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    rel text;
    granted integer := 0;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'civicpulse_reader') THEN
        RETURN 0;
    END IF;
    EXECUTE 'GRANT USAGE ON SCHEMA public TO civicpulse_reader';
    FOREACH rel IN ARRAY civicpulse_read_contract() LOOP
        IF to_regclass(rel) IS NOT NULL THEN
            EXECUTE format('GRANT SELECT ON %I TO civicpulse_reader', rel);
            granted := granted + 1;
        END IF;
    END LOOP;
    RETURN granted;
END
$$;

SELECT civicpulse_grant_reader();
