-- The device-identity registry (trust/registry.py): the councils, the devices that publish
-- for them and the platform's service accounts, each device and account with the argon2 hash
-- of its broker secret (storage/registry_store.py; the plain secret is never stored).
-- NOT part of the read contract: civicpulse_reader is never granted these tables (hashes).
CREATE TABLE IF NOT EXISTS councils (
    slug       text        PRIMARY KEY CHECK (slug ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    name       text        NOT NULL CHECK (btrim(name) <> ''),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A device logs in to the broker with its sensor id as user name.
CREATE TABLE IF NOT EXISTS devices (
    sensor_id     text        PRIMARY KEY
                              CHECK (sensor_id ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$'),
    council       text        NOT NULL REFERENCES councils (slug),
    kind          text        NOT NULL CHECK (kind ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    site          text,
    enabled       boolean     NOT NULL DEFAULT true,
    personal_data boolean     NOT NULL DEFAULT false,
    secret_hash   text        NOT NULL CHECK (secret_hash LIKE '$argon2%'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS devices_council_idx ON devices (council, sensor_id);

-- A platform process (the bridge, an engine) logs in with its name.
CREATE TABLE IF NOT EXISTS service_accounts (
    name        text        PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$'),
    role        text        NOT NULL CHECK (role IN ('ingest', 'engine')),
    secret_hash text        NOT NULL CHECK (secret_hash LIKE '$argon2%'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Nobody but the owner reads secret hashes: not PUBLIC, and not the reader role even if a
-- hand-made grant (e.g. GRANT SELECT ON ALL TABLES) ever gave it more than the read contract.
REVOKE ALL ON councils, devices, service_accounts FROM PUBLIC;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'civicpulse_reader') THEN
        REVOKE ALL ON councils, devices, service_accounts FROM civicpulse_reader;
    END IF;
EXCEPTION
    WHEN insufficient_privilege THEN
        RAISE NOTICE 'registry privileges of civicpulse_reader not revoked: %', SQLERRM;
END
$$;
