-- Mosquitto (2.0, the distributed deployment's broker) cannot check argon2 hashes: it reads
-- its own password file. So each device and service account also keeps a *broker hash* of
-- the same secret in Mosquitto's format, made with it (storage/registry_store.py, the only
-- moment the plain secret exists): '$7$<iterations>$<base64 salt>$<base64 hash>',
-- PBKDF2-HMAC-SHA512 (trust/mosquitto.py). `civicpulse devices sync` writes the password
-- file and ACL from these. NULL for rows made before this migration: a new secret (devices
-- rotate, accounts rotate) gives them one; until then they cannot log in to Mosquitto.
-- Like secret_hash, never part of the read contract (sql/038 revoked these tables).
ALTER TABLE devices
    ADD COLUMN IF NOT EXISTS broker_hash text
        CONSTRAINT devices_broker_hash_format
        CHECK (broker_hash ~ '^\$7\$[1-9][0-9]{0,8}\$[A-Za-z0-9+/]+={0,2}\$[A-Za-z0-9+/]+={0,2}$');

ALTER TABLE service_accounts
    ADD COLUMN IF NOT EXISTS broker_hash text
        CONSTRAINT service_accounts_broker_hash_format
        CHECK (broker_hash ~ '^\$7\$[1-9][0-9]{0,8}\$[A-Za-z0-9+/]+={0,2}\$[A-Za-z0-9+/]+={0,2}$');

COMMENT ON COLUMN devices.broker_hash IS
    'The broker secret hashed for Mosquitto''s password file ($7$: PBKDF2-HMAC-SHA512); NULL before 039';
COMMENT ON COLUMN service_accounts.broker_hash IS
    'The broker secret hashed for Mosquitto''s password file ($7$: PBKDF2-HMAC-SHA512); NULL before 039';
