-- 0041 (maps, issue 6): coverage tiles carry the target routing stored with each edge
-- (road_coverage.target_s, migration 0020), falling back to the class rule when it is missing,
-- and the metres reached within target (w), so the map's gaps are routing's gaps.
CREATE OR REPLACE FUNCTION gisapp_tile_coverage(z integer, x integer, y integer, classes text[], tol_m double precision,
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
                   round(coalesce(c.target_s, CASE WHEN e.road_class = ANY(main_classes) THEN main_target_s
                                                   ELSE rural_target_s END))::integer AS target,
                   round(c.station_within_m)::integer AS w,
                   c.incidents_past_year AS inc,
                   ST_AsMVTGeom(ST_Simplify(ST_Transform(e.geom, 3857), tol_m), b.env, extent, buffer, true) AS geom
              FROM road_edge e CROSS JOIN b
              LEFT JOIN road_coverage c ON c.edge_id = e.id
             WHERE e.geom && b.env4326 AND e.road_class = ANY(classes)) r
         WHERE r.geom IS NOT NULL), ''::bytea)
$$;
