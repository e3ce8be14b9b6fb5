-- Site metadata the reports group by: which site, ward and building a sensor belongs to, and
-- a per-bin fill threshold. Optional: a sensor without a row is reported under its own id
-- (and bins use the default 80 % threshold). Part of the read contract as `sensor_sites`.
CREATE TABLE IF NOT EXISTS sensor_sites (
    sensor_id     text PRIMARY KEY,
    council       text NOT NULL,
    site          text NOT NULL,
    ward          text,
    building      text,
    threshold_pct double precision CHECK (threshold_pct > 0 AND threshold_pct <= 100)
);

CREATE INDEX IF NOT EXISTS sensor_sites_council_site_idx ON sensor_sites (council, site);
