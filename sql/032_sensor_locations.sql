-- Where each sensor is, for the dashboards' maps: one row per located sensor, from the
-- council's asset register (site, ward and building live in sensor_sites, sql/020).
CREATE TABLE IF NOT EXISTS sensor_locations (
    sensor_id  text             PRIMARY KEY,
    latitude   double precision NOT NULL CHECK (latitude BETWEEN 49 AND 61),   -- the UK
    longitude  double precision NOT NULL CHECK (longitude BETWEEN -9 AND 2.5),
    updated_at timestamptz      NOT NULL DEFAULT now()
);

SELECT civicpulse_grant_reader();
