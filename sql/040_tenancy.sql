-- Tenancy: each council's roles see only their council's rows plus what sharing agreements
-- grant them, in every relation of the read contract (docs/security.md, "Tenancy").
--
-- How: the schema `tenant` holds one security-barrier view per read-contract relation, with
-- the same name and columns. Council roles (civicpulse_council_<slug>) and the public role
-- (civicpulse_public) may read only `tenant` (their search_path), never the base relations.
-- Each view returns the viewer's own rows UNION ALL the rows an agreement in force grants it.
-- Views rather than PostgreSQL policies, because policies cannot be attached to views or to
-- TimescaleDB continuous aggregates (readings_15m … are such on TimescaleDB): one mechanism
-- for every relation, on both databases. The writers (the table owner) never pass through
-- `tenant`, so the write path is unchanged. The pure statement of the rule, which the tests
-- compare the database with, is trust/agreements.py `covers`.

-- --- sharing agreements (trust/agreements.py; OGC 26-055 STAplus Agreement) ------------------
CREATE TABLE IF NOT EXISTS agreements (
    id               bigserial   PRIMARY KEY,
    provider         text        NOT NULL REFERENCES councils (slug),
    recipient        text        NOT NULL,  -- a council slug, or 'public' (open data)
    kinds            text[]      NOT NULL DEFAULT '{}',  -- empty: every kind
    metrics          text[]      NOT NULL DEFAULT '{}',  -- empty: every metric
    sites            text[]      NOT NULL DEFAULT '{}',  -- empty: every site
    sensors          text[]      NOT NULL DEFAULT '{}',  -- empty: every sensor
    resolution       text        NOT NULL CHECK (resolution IN ('raw', '15m', '1h', '1d')),
    purpose          text        NOT NULL CHECK (btrim(purpose) <> ''),
    legal_basis      text        NOT NULL,
    legal_basis_text text        NOT NULL,
    operations       text[]      NOT NULL DEFAULT '{read}',
    min_contributors integer     NOT NULL DEFAULT 5 CHECK (min_contributors >= 1),
    starts_at        timestamptz NOT NULL,
    expires_at       timestamptz CHECK (expires_at IS NULL OR expires_at > starts_at),
    status           text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'withdrawn')),
    granted_at       timestamptz NOT NULL DEFAULT now(),
    withdrawn_at     timestamptz,
    CHECK (provider <> recipient),
    CHECK ((status = 'withdrawn') = (withdrawn_at IS NOT NULL))
);

CREATE INDEX IF NOT EXISTS agreements_recipient_idx ON agreements (recipient, provider);

-- A recipient other than 'public' must be a registered council (a conditional foreign key).
CREATE OR REPLACE FUNCTION agreements_check_recipient() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.recipient <> 'public'
       AND NOT EXISTS (SELECT 1 FROM councils WHERE slug = NEW.recipient) THEN
        RAISE foreign_key_violation USING MESSAGE =
            format('recipient: no council %L is registered', NEW.recipient);
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS agreements_check_recipient ON agreements;
CREATE TRIGGER agreements_check_recipient BEFORE INSERT OR UPDATE ON agreements
    FOR EACH ROW EXECUTE FUNCTION agreements_check_recipient();

-- --- API keys (issue 19): a partner council's key, argon2-hashed like device secrets --------
CREATE TABLE IF NOT EXISTS api_keys (
    id              bigserial   PRIMARY KEY,
    council         text        NOT NULL REFERENCES councils (slug),
    name            text        NOT NULL CHECK (btrim(name) <> ''),
    secret_hash     text        NOT NULL CHECK (secret_hash LIKE '$argon2%'),
    rate_per_minute integer     NOT NULL DEFAULT 600 CHECK (rate_per_minute > 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);

-- --- the access log: one row per API read, append-only ---------------------------------------
CREATE TABLE IF NOT EXISTS access_log (
    id            bigserial   PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    recipient     text        NOT NULL,  -- the reading council, or 'public'
    key_id        bigint,                -- the API key used (NULL: public)
    agreement_ids bigint[]    NOT NULL DEFAULT '{}',  -- agreements in force for the read
    providers     text[]      NOT NULL DEFAULT '{}',  -- their providers
    what          text        NOT NULL,  -- the request (path and query)
    rows          bigint      NOT NULL CHECK (rows >= 0)
);

CREATE INDEX IF NOT EXISTS access_log_recipient_idx ON access_log (recipient, at DESC);
CREATE INDEX IF NOT EXISTS access_log_providers_idx ON access_log USING gin (providers);

CREATE OR REPLACE FUNCTION access_log_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE insufficient_privilege USING MESSAGE = 'access_log is append-only';
END
$$;

DROP TRIGGER IF EXISTS access_log_no_update ON access_log;
CREATE TRIGGER access_log_no_update BEFORE UPDATE OR DELETE ON access_log
    FOR EACH ROW EXECUTE FUNCTION access_log_append_only();
DROP TRIGGER IF EXISTS access_log_no_truncate ON access_log;
CREATE TRIGGER access_log_no_truncate BEFORE TRUNCATE ON access_log
    FOR EACH STATEMENT EXECUTE FUNCTION access_log_append_only();

REVOKE ALL ON agreements, api_keys, access_log FROM PUBLIC;

-- --- the schemas ----------------------------------------------------------------------------
CREATE SCHEMA IF NOT EXISTS tenant;    -- what council and public roles read
CREATE SCHEMA IF NOT EXISTS tenancy;   -- private helpers of the tenant views
REVOKE ALL ON SCHEMA tenancy FROM PUBLIC;
REVOKE CREATE ON SCHEMA tenant FROM PUBLIC;

-- The schema of the base relations (public on PostgreSQL; wherever the migrations put them).
CREATE OR REPLACE FUNCTION tenancy.base_schema() RETURNS name
    LANGUAGE sql STABLE
    RETURN (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relname = 'agreements' AND c.relkind = 'r' AND n.nspname <> 'tenant'
             ORDER BY n.nspname = 'public' DESC LIMIT 1);

-- Who is reading: the council whose role is current (a council role, or a login role named
-- after it), 'public' for the public role, NULL for anyone else (who then sees nothing).
CREATE OR REPLACE FUNCTION tenant.viewer() RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN CASE
        WHEN current_user = 'civicpulse_public' THEN 'public'
        WHEN left(current_user, 19) = 'civicpulse_council_' THEN substr(current_user, 20)
    END;

-- Every known sensor's council, kind, site and personal_data flag: the registry first, then
-- sensor_sites (a sensor in neither is owned only through its rows' council column).
CREATE OR REPLACE VIEW tenancy.sensors AS
SELECT COALESCE(d.sensor_id, s.sensor_id) AS sensor_id,
       COALESCE(d.council, s.council)     AS council,
       d.kind,
       COALESCE(d.site, s.site)           AS site,
       COALESCE(d.personal_data, false)   AS personal_data
  FROM devices d
  FULL JOIN sensor_sites s ON s.sensor_id = d.sensor_id;

-- The agreements in force for `viewer` (as recipient, or open data), with their scope
-- resolved: `sensors` NULL means every sensor of the provider (no site or sensor limit);
-- `personal` the provider's personal_data sensors; `personal_kinds` their kinds. `rank`
-- orders resolutions: raw 0, 15m 1, 1h 2, 1d 3 (a relation of rank R is granted by an
-- agreement of rank <= R). A function, so that each query computes it once; it runs as its
-- owner (it reads the registry), and only the tenant views can call it: council roles have
-- no USAGE on the schema `tenancy`, so they cannot name it with another viewer.
CREATE OR REPLACE FUNCTION tenancy.grants(viewer text)
    RETURNS TABLE (id bigint, provider text, rank integer, kinds text[], metrics text[],
                   sensors text[], personal text[], personal_kinds text[],
                   min_contributors integer)
    LANGUAGE sql STABLE SECURITY DEFINER
    AS $$
SELECT a.id,
       a.provider,
       array_position(ARRAY['raw', '15m', '1h', '1d'], a.resolution) - 1,
       a.kinds,
       a.metrics,
       CASE
           WHEN cardinality(a.sites) = 0 AND cardinality(a.sensors) = 0 THEN NULL
           WHEN cardinality(a.sites) = 0 THEN a.sensors
           ELSE ARRAY(SELECT o.sensor_id FROM tenancy.sensors o
                       WHERE o.council = a.provider AND o.site = ANY (a.sites)
                         AND (cardinality(a.sensors) = 0 OR o.sensor_id = ANY (a.sensors)))
       END,
       ARRAY(SELECT o.sensor_id FROM tenancy.sensors o
              WHERE o.council = a.provider AND o.personal_data),
       ARRAY(SELECT DISTINCT o.kind FROM tenancy.sensors o
              WHERE o.council = a.provider AND o.personal_data AND o.kind IS NOT NULL),
       a.min_contributors
  FROM agreements a
 WHERE viewer IS NOT NULL
   AND a.status = 'active'
   AND a.starts_at <= now()
   AND (a.expires_at IS NULL OR now() < a.expires_at)
   AND 'read' = ANY (a.operations)
   AND a.recipient IN (viewer, 'public')
   AND a.provider <> viewer
$$;

-- The read contract and how each relation is shared:
--   sensor   per-sensor rows (council, sensor_id, kind, metric) at a resolution rank
--   council  per-council rollups (council, kind, metric, sensors) at a resolution rank
--   meta     per-sensor metadata (council, sensor_id[, kind]): shared with any agreement that
--            covers the sensor, never for personal_data sensors (a home's location)
--   forecast bin forecasts (council, sensor_id): waste_bin fill_level at rank 2 (hourly)
--   own      operational records (alerts, notifications, dead letters): never shared
CREATE TABLE IF NOT EXISTS tenancy.contract (
    rel   text    PRIMARY KEY,
    shape text    NOT NULL CHECK (shape IN ('sensor', 'council', 'meta', 'forecast', 'own')),
    rank  integer NOT NULL DEFAULT 0
);

INSERT INTO tenancy.contract (rel, shape, rank) VALUES
    ('readings', 'sensor', 0),
    ('readings_1m', 'sensor', 0),
    ('readings_15m', 'sensor', 1),
    ('readings_1h', 'sensor', 2),
    ('readings_1d', 'sensor', 3),
    ('readings_council_1h', 'council', 2),
    ('readings_council_1d', 'council', 3),
    ('sensor_sites', 'meta', 0),
    ('sensor_locations', 'meta', 0),
    ('dash_sensor_status', 'meta', 0),
    ('bin_forecasts', 'forecast', 2),
    ('bin_forecasts_latest', 'forecast', 2),
    ('alerts', 'own', 0),
    ('alert_notifications', 'own', 0),
    ('dead_letters', 'own', 0)
ON CONFLICT (rel) DO UPDATE SET shape = EXCLUDED.shape, rank = EXCLUDED.rank;

-- The condition under which a row `r` of a relation is shared with the viewer.
CREATE OR REPLACE FUNCTION tenancy.shared_condition(shape text, rank integer, has_kind boolean)
    RETURNS text
    LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    kinds text := CASE WHEN has_kind
        THEN '(cardinality(g.kinds) = 0 OR r.kind = ANY (g.kinds))'
        ELSE '(cardinality(g.kinds) = 0 OR (SELECT o.kind FROM tenancy.sensors o'
             ' WHERE o.sensor_id = r.sensor_id) = ANY (g.kinds))' END;
BEGIN
    RETURN CASE shape
    WHEN 'sensor' THEN format(
        'g.rank <= %s AND %s'
        ' AND (cardinality(g.metrics) = 0 OR r.metric = ANY (g.metrics))'
        ' AND (g.sensors IS NULL OR r.sensor_id = ANY (g.sensors))'
        ' AND (NOT r.sensor_id = ANY (g.personal) OR (%s > 0 AND g.min_contributors <= 1))',
        rank, kinds, rank)
    WHEN 'council' THEN format(
        'g.rank <= %s AND g.sensors IS NULL AND %s'
        ' AND (cardinality(g.metrics) = 0 OR r.metric = ANY (g.metrics))'
        ' AND (NOT r.kind = ANY (g.personal_kinds) OR r.sensors >= g.min_contributors)',
        rank, kinds)
    WHEN 'meta' THEN format(
        '%s AND (g.sensors IS NULL OR r.sensor_id = ANY (g.sensors))'
        ' AND NOT r.sensor_id = ANY (g.personal)', kinds)
    WHEN 'forecast' THEN format(
        'g.rank <= %s'
        ' AND (cardinality(g.kinds) = 0 OR ''waste_bin'' = ANY (g.kinds))'
        ' AND (cardinality(g.metrics) = 0 OR ''fill_level'' = ANY (g.metrics))'
        ' AND (g.sensors IS NULL OR r.sensor_id = ANY (g.sensors))'
        ' AND NOT r.sensor_id = ANY (g.personal)', rank)
    END;
END
$$;

-- (Re)creates every tenant view from the base relations as they are now, and grants them.
-- Later migrations that change a read-contract relation call it again; so does the
-- migration runner after applying migrations (storage/migrations.py).
CREATE OR REPLACE FUNCTION tenancy.refresh_views() RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    base name := tenancy.base_schema();
    c record;
    owner_of text;
    own text;
    made integer := 0;
    has_kind boolean;
BEGIN
    FOR c IN SELECT * FROM tenancy.contract ORDER BY rel LOOP
        EXECUTE format('DROP VIEW IF EXISTS tenant.%I', c.rel);
        IF to_regclass(format('%I.%I', base, c.rel)) IS NULL THEN
            CONTINUE;
        END IF;
        has_kind := EXISTS (SELECT 1 FROM pg_attribute
                             WHERE attrelid = format('%I.%I', base, c.rel)::regclass
                               AND attname = 'kind' AND NOT attisdropped);
        owner_of := CASE c.rel
            WHEN 'sensor_locations' THEN
                '(SELECT o.council FROM tenancy.sensors o WHERE o.sensor_id = r.sensor_id)'
            WHEN 'alert_notifications' THEN
                format('(SELECT a.council FROM %I.alerts a WHERE a.id = r.alert_id)', base)
            WHEN 'dead_letters' THEN
                'CASE WHEN r.mqtt_topic LIKE ''civicpulse/%/%'' '
                'THEN split_part(r.mqtt_topic, ''/'', 2) END'
            ELSE 'r.council'
        END;
        own := format('SELECT r.* FROM %I.%I r WHERE %s = tenant.viewer()', base, c.rel, owner_of);
        IF c.shape = 'own' THEN
            EXECUTE format('CREATE VIEW tenant.%I WITH (security_barrier) AS %s', c.rel, own);
        ELSE
            EXECUTE format(
                'CREATE VIEW tenant.%I WITH (security_barrier) AS %s'
                ' UNION ALL SELECT r.* FROM %I.%I r'
                ' WHERE %s IS DISTINCT FROM tenant.viewer()'
                ' AND EXISTS (SELECT 1 FROM tenancy.grants(tenant.viewer()) g'
                ' WHERE g.provider = %s AND %s)',
                c.rel, own, base, c.rel, owner_of, owner_of,
                tenancy.shared_condition(c.shape, c.rank, has_kind));
        END IF;
        EXECUTE format('GRANT SELECT ON tenant.%I TO civicpulse_tenant', c.rel);
        made := made + 1;
    END LOOP;

    -- The agreements a viewer is party to, and the access log rows about it.
    DROP VIEW IF EXISTS tenant.agreements;
    EXECUTE format(
        'CREATE VIEW tenant.agreements WITH (security_barrier) AS'
        ' SELECT id, provider, recipient, kinds, metrics, sites, sensors, resolution, purpose,'
        ' legal_basis, legal_basis_text, operations, min_contributors, starts_at,'
        ' expires_at, status, granted_at, withdrawn_at'
        ' FROM %I.agreements'
        ' WHERE tenant.viewer() IN (provider, recipient)'
        ' OR (recipient = ''public'' AND tenant.viewer() IS NOT NULL)', base);
    GRANT SELECT ON tenant.agreements TO civicpulse_tenant;

    DROP VIEW IF EXISTS tenant.access_log;
    EXECUTE format(
        'CREATE VIEW tenant.access_log WITH (security_barrier) AS'
        ' SELECT id, at, recipient, key_id, agreement_ids, providers, what, rows'
        ' FROM %I.access_log'
        ' WHERE recipient = tenant.viewer() OR tenant.viewer() = ANY (providers)', base);
    GRANT SELECT ON tenant.access_log TO civicpulse_tenant;

    -- Writing a log row goes through this view (INSERT only); the trigger fills in who.
    DROP VIEW IF EXISTS tenant.access_log_entries;
    EXECUTE format(
        'CREATE VIEW tenant.access_log_entries AS'
        ' SELECT key_id, providers, what, rows FROM %I.access_log', base);
    GRANT INSERT ON tenant.access_log_entries TO civicpulse_tenant;
    EXECUTE format('GRANT USAGE ON SEQUENCE %I.access_log_id_seq TO civicpulse_tenant', base);
    RETURN made;
END
$$;

-- Who wrote a log row is the database's word, not the writer's: recipient, time and the
-- agreements in force are filled in here, as the inserting role.
CREATE OR REPLACE FUNCTION tenancy.access_log_stamp() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.at := now();
    NEW.recipient := COALESCE(tenant.viewer(), current_user::text);
    SELECT COALESCE(array_agg(a.id ORDER BY a.id), '{}'),
           COALESCE(array_agg(DISTINCT a.provider), '{}')
      INTO NEW.agreement_ids, NEW.providers
      FROM tenant.agreements a
     WHERE a.recipient = NEW.recipient
       AND a.status = 'active' AND a.starts_at <= now()
       AND (a.expires_at IS NULL OR now() < a.expires_at)
       AND (cardinality(COALESCE(NEW.providers, '{}')) = 0 OR a.provider = ANY (NEW.providers));
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS access_log_stamp ON access_log;
CREATE TRIGGER access_log_stamp BEFORE INSERT ON access_log
    FOR EACH ROW EXECUTE FUNCTION tenancy.access_log_stamp();

-- --- roles ----------------------------------------------------------------------------------
-- civicpulse_tenant: the group every council role and the public role belong to (USAGE on
-- `tenant`, SELECT on its views). civicpulse_api: the API's login (given LOGIN by
-- `civicpulse api-keys grant-login`), a member of each council role and of the public role
-- so that it can SET ROLE per request, and nothing else.
CREATE OR REPLACE FUNCTION tenancy.ensure_role(role_name text, member_of text) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
        END IF;
    EXCEPTION
        WHEN duplicate_object OR unique_violation THEN
            NULL;  -- another database on this server made it at the same moment
    END;
    IF member_of IS NOT NULL THEN
        EXECUTE format('GRANT %I TO %I', member_of, role_name);
    END IF;
    EXECUTE format('ALTER ROLE %I SET search_path = tenant, public, pg_catalog', role_name);
    EXECUTE format('ALTER ROLE %I SET statement_timeout = %L', role_name, '30s');
EXCEPTION
    WHEN insufficient_privilege THEN
        RAISE NOTICE 'role % not created or altered (needs CREATEROLE): %', role_name, SQLERRM;
END
$$;

CREATE OR REPLACE FUNCTION tenancy.ensure_council_role(slug text) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tenancy.ensure_role('civicpulse_council_' || slug, 'civicpulse_tenant');
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'civicpulse_api') THEN
        EXECUTE format('GRANT %I TO civicpulse_api', 'civicpulse_council_' || slug);
    END IF;
EXCEPTION
    WHEN insufficient_privilege THEN
        RAISE NOTICE 'council role for % not granted: %', slug, SQLERRM;
END
$$;

DO $$
BEGIN
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'civicpulse_tenant') THEN
            CREATE ROLE civicpulse_tenant NOLOGIN;
        END IF;
    EXCEPTION
        WHEN duplicate_object OR unique_violation THEN
            NULL;
    END;
    PERFORM tenancy.ensure_role('civicpulse_public', 'civicpulse_tenant');
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'civicpulse_api') THEN
            CREATE ROLE civicpulse_api NOLOGIN NOINHERIT;
        END IF;
    EXCEPTION
        WHEN duplicate_object OR unique_violation THEN
            NULL;
    END;
    GRANT civicpulse_public TO civicpulse_api;
EXCEPTION
    WHEN insufficient_privilege THEN
        RAISE NOTICE 'tenancy roles not created (needs CREATEROLE): %', SQLERRM;
END
$$;

CREATE OR REPLACE FUNCTION tenancy.council_added() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tenancy.ensure_council_role(NEW.slug);
    RETURN NEW;
EXCEPTION
    WHEN insufficient_privilege OR undefined_object THEN
        RAISE NOTICE 'council role for % not made: %', NEW.slug, SQLERRM;
        RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS councils_role ON councils;
CREATE TRIGGER councils_role AFTER INSERT ON councils
    FOR EACH ROW EXECUTE FUNCTION tenancy.council_added();

DO $$
DECLARE
    slug text;
BEGIN
    FOR slug IN SELECT c.slug FROM councils c LOOP
        PERFORM tenancy.ensure_council_role(slug);
    END LOOP;
EXCEPTION
    WHEN insufficient_privilege OR undefined_object THEN
        RAISE NOTICE 'council roles not made: %', SQLERRM;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'civicpulse_tenant') THEN
        GRANT USAGE ON SCHEMA tenant TO civicpulse_tenant;
        PERFORM tenancy.refresh_views();
    END IF;
END
$$;

-- Pin the search path of the functions that name base relations unqualified.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION tenancy.grants(text) SET search_path = %I, pg_catalog',
                   tenancy.base_schema());
    EXECUTE format('ALTER FUNCTION agreements_check_recipient() SET search_path = %I, pg_catalog',
                   tenancy.base_schema());
    -- dash_sensor_status calls dash_rule (sql/037), which reads rule_settings: thresholds are
    -- not council data worth hiding, so it runs as its owner for council roles too.
    EXECUTE format('ALTER FUNCTION dash_rule(text, text, text) SECURITY DEFINER'
                   ' SET search_path = %I, pg_catalog', tenancy.base_schema());
END
$$;
