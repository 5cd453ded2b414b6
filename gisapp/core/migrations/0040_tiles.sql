-- 0040 (maps, issue 6): Mapbox Vector Tile functions for the large layers, and a shared tile
-- cache invalidated through data_version.
--
-- Each tile function takes the tile address, the MVT extent and buffer (tile units) and a
-- simplification tolerance (metres in EPSG:3857); roads and coverage also take the road
-- classes drawn at that zoom. Geometry stays in EPSG:4326 in the tables; tiles are made in
-- EPSG:3857 (the web map's CRS).

CREATE FUNCTION gisapp_tile_roads(z integer, x integer, y integer, classes text[], tol_m double precision,
                                  extent integer DEFAULT 4096, buffer integer DEFAULT 64)
RETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH b AS (
        SELECT ST_TileEnvelope(z, x, y) AS env,
               ST_Transform(ST_TileEnvelope(z, x, y, margin => buffer::double precision / extent), 4326) AS env4326)
    SELECT coalesce((
        SELECT ST_AsMVT(r, 'roads', extent, 'geom', 'id') FROM (
            SELECT e.id, e.road_class AS class, e.name, e.oneway,
                   ST_AsMVTGeom(ST_Simplify(ST_Transform(e.geom, 3857), tol_m), b.env, extent, buffer, true) AS geom
              FROM road_edge e, b
             WHERE e.geom && b.env4326 AND e.road_class = ANY(classes)) r
          WHERE r.geom IS NOT NULL), ''::bytea)
$$;

-- Roads with their coverage: t = best time from a station (s), u = best time from an available
-- unit (s), target = the class's target (s), inc = incidents in the past year. A missing t is
-- an unreachable (or not yet computed) segment.
CREATE FUNCTION gisapp_tile_coverage(z integer, x integer, y integer, classes text[], tol_m double precision,
                                     main_classes text[], main_target_s double precision,
                                     rural_target_s double precision,
                                     extent integer DEFAULT 4096, buffer integer DEFAULT 64)
RETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH b AS (
        SELECT ST_TileEnvelope(z, x, y) AS env,
               ST_Transform(ST_TileEnvelope(z, x, y, margin => buffer::double precision / extent), 4326) AS env4326)
    SELECT coalesce((
        SELECT ST_AsMVT(r, 'coverage', extent, 'geom', 'id') FROM (
            SELECT e.id, e.road_class AS class, e.name,
                   round(c.station_time_s)::integer AS t,
                   round(c.unit_time_s)::integer AS u,
                   (CASE WHEN e.road_class = ANY(main_classes) THEN main_target_s ELSE rural_target_s END)::integer
                       AS target,
                   c.incidents_past_year AS inc,
                   ST_AsMVTGeom(ST_Simplify(ST_Transform(e.geom, 3857), tol_m), b.env, extent, buffer, true) AS geom
              FROM road_edge e CROSS JOIN b
              LEFT JOIN road_coverage c ON c.edge_id = e.id
             WHERE e.geom && b.env4326 AND e.road_class = ANY(classes)) r
          WHERE r.geom IS NOT NULL), ''::bytea)
$$;

CREATE FUNCTION gisapp_tile_grids(z integer, x integer, y integer, tol_m double precision,
                                  extent integer DEFAULT 4096, buffer integer DEFAULT 64)
RETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH b AS (
        SELECT ST_TileEnvelope(z, x, y) AS env,
               ST_Transform(ST_TileEnvelope(z, x, y, margin => buffer::double precision / extent), 4326) AS env4326)
    SELECT coalesce((
        SELECT ST_AsMVT(r, 'grids', extent, 'geom', 'id') FROM (
            SELECT g.id, g.code, g.name, g.organisation_id AS org, o.name AS org_name,
                   ST_AsMVTGeom(ST_SimplifyPreserveTopology(ST_Transform(g.geom, 3857), tol_m), b.env, extent,
                                buffer, true) AS geom
              FROM grid g CROSS JOIN b
              JOIN organisation o ON o.id = g.organisation_id
             WHERE g.geom && b.env4326) r
          WHERE r.geom IS NOT NULL), ''::bytea)
$$;

-- Encoded tiles shared by all server processes. A row is valid only for the data version it
-- was made from (the server looks it up by version), and a change of data deletes the rows of
-- the layers that depend on it.
CREATE UNLOGGED TABLE tile_cache (
    layer      text NOT NULL,
    z          integer NOT NULL,
    x          integer NOT NULL,
    y          integer NOT NULL,
    version    text NOT NULL,
    data       bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (layer, z, x, y)
);

-- Which tile layers each data area feeds.
CREATE TABLE tile_layer_source (
    area  text NOT NULL,
    layer text NOT NULL,
    PRIMARY KEY (area, layer)
);
INSERT INTO tile_layer_source (area, layer) VALUES
    ('roads', 'roads'), ('roads', 'coverage'), ('coverage', 'coverage'),
    ('grids', 'grids'), ('organisations', 'grids');

CREATE FUNCTION purge_tile_cache() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tile_cache c USING tile_layer_source s
     WHERE s.area = NEW.area AND c.layer = s.layer;
    RETURN NULL;
END $$;

CREATE TRIGGER data_version_purge_tiles AFTER UPDATE OF version ON data_version
    FOR EACH ROW WHEN (NEW.version IS DISTINCT FROM OLD.version) EXECUTE FUNCTION purge_tile_cache();
