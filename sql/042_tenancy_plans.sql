-- Tenant views that keep their indexes' order, and no JIT for tenant roles (sql/040).
--
-- The grant check of each view's shared branch was an EXISTS the planner turned into a hash
-- semi join, which loses the order of an index scan: "the latest reading of a sensor" then
-- sorted every row of it (4.5 ms a probe on 1-minute data) instead of reading one. OFFSET 0
-- keeps the check a per-row filter (the agreements are computed once per query and rewound),
-- so ORDER BY time DESC LIMIT 1 reads one index entry per branch again. JIT compiled these
-- plans for ~0.5 s per query (their cost estimates are high, their work is small): off for the
-- tenant roles and for the API's sessions. Small metadata relations (some of them costly
-- views, like dash_sensor_status) are read in one pass instead of twice.

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
        ELSIF c.shape IN ('meta', 'forecast') THEN
            -- Small relations, some of them views that are costly to compute: one pass.
            EXECUTE format(
                'CREATE VIEW tenant.%I WITH (security_barrier) AS SELECT r.* FROM %I.%I r'
                ' WHERE %s = tenant.viewer()'
                ' OR EXISTS (SELECT 1 FROM tenancy.grants(tenant.viewer()) g'
                ' WHERE g.provider = %s AND %s OFFSET 0)',
                c.rel, base, c.rel, owner_of, owner_of,
                tenancy.shared_condition(c.shape, c.rank, has_kind));
        ELSE
            EXECUTE format(
                'CREATE VIEW tenant.%I WITH (security_barrier) AS %s'
                ' UNION ALL SELECT r.* FROM %I.%I r'
                ' WHERE %s IS DISTINCT FROM tenant.viewer()'
                ' AND EXISTS (SELECT 1 FROM tenancy.grants(tenant.viewer()) g'
                ' WHERE g.provider = %s AND %s OFFSET 0)',
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
    EXECUTE format('ALTER ROLE %I SET jit = off', role_name);
EXCEPTION
    WHEN insufficient_privilege THEN
        RAISE NOTICE 'role % not created or altered (needs CREATEROLE): %', role_name, SQLERRM;
END
$$;

-- A viewer is party to a handful of agreements, not the 1,000 rows assumed of a function.
ALTER FUNCTION tenancy.grants(text) ROWS 5;

DO $$
DECLARE
    r text;
BEGIN
    FOR r IN SELECT rolname FROM pg_roles
              WHERE rolname = 'civicpulse_public' OR rolname LIKE 'civicpulse\_council\_%' LOOP
        EXECUTE format('ALTER ROLE %I SET jit = off', r);
    END LOOP;
EXCEPTION
    WHEN insufficient_privilege THEN
        RAISE NOTICE 'jit not turned off for the tenant roles: %', SQLERRM;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'civicpulse_tenant') THEN
        PERFORM tenancy.refresh_views();
    END IF;
END
$$;
