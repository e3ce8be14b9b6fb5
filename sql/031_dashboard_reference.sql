-- Reference numbers the dashboards compute with, as SQL functions. Each mirrors a data file of
-- the pure core, and tests/dashboards/test_reference_sql.py proves they agree:
--   DAQI bands    stream_processors/core/data/daqi_breakpoints.json (daqi.index_for)
--   DESNZ factors stream_processors/core/data/ghg_factors_uk.json   (carbon.load_factors)
--   intervals     sensors/catalogue.py (expected_interval_s of each kind)

-- DAQI index 1..10 of an averaged concentration (µg/m³), rounded halves up before look-up.
CREATE OR REPLACE FUNCTION dash_daqi_index(metric text, conc double precision)
    RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN (
        SELECT count(*)::integer
          FROM unnest(CASE metric
                  WHEN 'pm2_5' THEN ARRAY[0, 12, 24, 36, 42, 48, 54, 59, 65, 71]
                  WHEN 'pm10'  THEN ARRAY[0, 17, 34, 51, 59, 67, 76, 84, 92, 101]
                  WHEN 'no2'   THEN ARRAY[0, 68, 135, 201, 268, 335, 401, 468, 535, 601]
                  WHEN 'o3'    THEN ARRAY[0, 34, 67, 101, 121, 141, 161, 188, 214, 241]
                  WHEN 'so2'   THEN ARRAY[0, 89, 178, 267, 355, 444, 533, 711, 888, 1065]
               END) AS low
         WHERE low <= floor(conc) + CASE WHEN conc - floor(conc) >= 0.5 THEN 1 ELSE 0 END
    );

-- DEFRA band name of a DAQI index.
CREATE OR REPLACE FUNCTION dash_daqi_band(idx integer)
    RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN idx IS NULL THEN NULL WHEN idx <= 3 THEN 'Low' WHEN idx <= 6 THEN 'Moderate'
                WHEN idx <= 9 THEN 'High' ELSE 'Very High' END;

-- DEFRA averaging period of each DAQI pollutant.
CREATE OR REPLACE FUNCTION dash_daqi_window(metric text)
    RETURNS interval LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE metric WHEN 'pm2_5' THEN interval '24 hours' WHEN 'pm10' THEN interval '24 hours'
                       WHEN 'no2' THEN interval '1 hour' WHEN 'o3' THEN interval '8 hours'
                       WHEN 'so2' THEN interval '15 minutes' END;

-- DESNZ UK grid electricity factors (kg CO2e/kWh) used for a reporting year: that year's own,
-- else the latest earlier set (as carbon.py does); no rows before the first factor year.
CREATE OR REPLACE FUNCTION dash_grid_factors(reporting_year integer)
    RETURNS TABLE (factor_year integer, generation double precision, td_losses double precision)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT f.y, f.g, f.t
          FROM (VALUES (2024, 0.20705::float8, 0.0183::float8),
                       (2025, 0.177::float8, 0.01853::float8)) AS f (y, g, t)
         WHERE f.y <= reporting_year
         ORDER BY f.y DESC
         LIMIT 1
    $$;

-- How often a kind of sensor is expected to report (seconds); stale after 3x this.
CREATE OR REPLACE FUNCTION dash_expected_interval_s(kind text)
    RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE kind WHEN 'air_quality' THEN 150 WHEN 'waste_bin' THEN 900
                     WHEN 'energy_meter' THEN 1800 END;
