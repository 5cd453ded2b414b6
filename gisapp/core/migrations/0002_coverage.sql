-- 0002: per-road-segment coverage, written by routing (static: from stations; live: from
-- available units) and read by the coverage maps and vector tiles.
CREATE TABLE road_coverage (
    edge_id            bigint PRIMARY KEY REFERENCES road_edge (id) ON DELETE CASCADE,
    station_time_s     double precision,          -- best travel time from any station (static)
    station_org_id     bigint REFERENCES organisation (id) ON DELETE SET NULL,
    unit_time_s        double precision,          -- best travel time from any available unit (live)
    unit_id            bigint REFERENCES unit (id) ON DELETE SET NULL,
    incidents_past_year integer NOT NULL DEFAULT 0,
    computed_at        timestamptz NOT NULL DEFAULT now(),
    live_computed_at   timestamptz
);

-- A change counter per data area, for cache invalidation (tiles, graphs): bumped by
-- triggers, read by the tile server and the routing graph.
CREATE TABLE data_version (
    area       text PRIMARY KEY,
    version    bigint NOT NULL DEFAULT 1,
    changed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO data_version (area) VALUES ('roads'), ('jurisdictions'), ('grids'), ('coverage'), ('units'),
    ('incidents'), ('villages'), ('joint_zones'), ('organisations');

CREATE FUNCTION bump_data_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE data_version SET version = version + 1, changed_at = now() WHERE area = TG_ARGV[0];
    RETURN NULL;
END $$;

CREATE TRIGGER road_edge_data_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON road_edge
    FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version('roads');
CREATE TRIGGER jurisdiction_data_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON jurisdiction
    FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version('jurisdictions');
CREATE TRIGGER grid_data_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON grid
    FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version('grids');
CREATE TRIGGER road_coverage_data_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON road_coverage
    FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version('coverage');
CREATE TRIGGER village_data_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON village
    FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version('villages');
CREATE TRIGGER joint_zone_data_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON joint_zone
    FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version('joint_zones');
CREATE TRIGGER organisation_data_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON organisation
    FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version('organisations');
