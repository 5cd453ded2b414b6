"""A small hand-made world for the map tests, in its own database (independent of the demo).

Four stations at real town seats with Voronoi jurisdictions clipped to the real outline,
two traffic squadrons, one joint zone, grids, a lattice road network of every class (with
coverage computed by routing), villages, units of every status, incidents and service
points. Everything is marked synthetic.
"""

from __future__ import annotations

import psycopg

MAPS_DB = "gisapp_test_maps"

SMALL_WORLD_SQL = """
-- stations at town seats (the last two at the seats of 魏桥镇 and 码头镇)
INSERT INTO organisation (code, name, name_en, kind, merged, takes_part_in_traffic, town_code, hq, phone)
SELECT s.code, s.name, s.name_en, 'station', s.merged, true, t.code, t.geom, '0543-0000000'
  FROM (VALUES ('ST-DX', '黛溪街道', '黛溪派出所', 'Daixi station', false),
               ('ST-HS', '好生街道', '好生派出所', 'Haosheng station', true),
               ('ST-WQ', '魏桥镇', '魏桥派出所', 'Weiqiao station', true),
               ('ST-MT', '码头镇', '码头派出所', 'Matou station', false)) s(code, town, name, name_en, merged)
  JOIN town t ON t.name = s.town;
INSERT INTO organisation (code, name, name_en, kind, hq) VALUES
    ('SQ-E', '城东交警中队', 'East squadron', 'squadron', ST_SetSRID(ST_MakePoint(117.80, 36.90), 4326)),
    ('SQ-W', '城西交警中队', 'West squadron', 'squadron', ST_SetSRID(ST_MakePoint(117.55, 36.95), 4326)),
    ('AS', '事故科', 'Accident section', 'accident_section', ST_SetSRID(ST_MakePoint(117.735, 36.872), 4326)),
    ('CC', '指挥中心', 'Command centre', 'command_centre', ST_SetSRID(ST_MakePoint(117.728, 36.88), 4326));

-- station jurisdictions: Voronoi cells of the stations clipped to the county
INSERT INTO jurisdiction (organisation_id, kind, version, name, geom, author, reason)
SELECT o.id, 'station', 1, o.name, ST_Multi(ST_CollectionExtract(ST_Intersection(v.cell, c.geom), 3)), 'test', 'small world'
  FROM (SELECT (ST_Dump(ST_VoronoiPolygons(ST_Collect(hq), 0, ST_Expand(ST_Collect(hq), 1)))).geom AS cell
          FROM organisation WHERE kind = 'station') v
  JOIN organisation o ON o.kind = 'station' AND ST_Contains(v.cell, o.hq)
 CROSS JOIN county c;
-- traffic jurisdictions: east and west of 117.68
INSERT INTO jurisdiction (organisation_id, kind, version, name, geom, author, reason)
SELECT o.id, 'traffic', 1, o.name,
       ST_Multi(ST_CollectionExtract(ST_Intersection(c.geom, CASE WHEN o.code = 'SQ-E'
            THEN ST_MakeEnvelope(117.68, 36.5, 118.2, 37.3, 4326) ELSE ST_MakeEnvelope(117.2, 36.5, 117.68, 37.3, 4326) END), 3)),
       'test', 'small world'
  FROM organisation o CROSS JOIN county c WHERE o.kind = 'squadron';
-- one joint zone led by 魏桥 with 码头
INSERT INTO joint_zone (code, name, name_en, centre_org_id, geom)
SELECT 'JZ-WQ', '魏桥联合战区', 'Weiqiao joint zone', w.id,
       (SELECT ST_Multi(ST_Union(j.geom)) FROM jurisdiction j JOIN organisation o ON o.id = j.organisation_id
         WHERE o.code IN ('ST-WQ', 'ST-MT') AND j.kind = 'station')
  FROM organisation w WHERE w.code = 'ST-WQ';
INSERT INTO joint_zone_member (joint_zone_id, organisation_id, role)
SELECT z.id, o.id, CASE WHEN o.code = 'ST-WQ' THEN 'centre' ELSE 'member' END
  FROM joint_zone z, organisation o WHERE z.code = 'JZ-WQ' AND o.code IN ('ST-WQ', 'ST-MT', 'SQ-W');

-- grids: each jurisdiction cut by a 0.06 degree lattice
INSERT INTO grid (code, name, organisation_id, jurisdiction_id, geom)
SELECT o.code || '-G' || lpad(row_number() OVER (PARTITION BY o.id ORDER BY gx, gy)::text, 2, '0'),
       o.name || '第' || row_number() OVER (PARTITION BY o.id ORDER BY gx, gy) || '警格', o.id, j.id, cell
  FROM (SELECT j.id AS jid, gx, gy,
               ST_Multi(ST_CollectionExtract(ST_Intersection(j.geom,
                   ST_MakeEnvelope(gx, gy, gx + 0.06, gy + 0.06, 4326)), 3)) AS cell
          FROM jurisdiction j,
               generate_series(117.30, 117.96, 0.06) gx, generate_series(36.68, 37.15, 0.06) gy
         WHERE j.kind = 'station' AND ST_Intersects(j.geom, ST_MakeEnvelope(gx, gy, gx + 0.06, gy + 0.06, 4326))) s
  JOIN jurisdiction j ON j.id = s.jid JOIN organisation o ON o.id = j.organisation_id
 WHERE NOT ST_IsEmpty(cell) AND ST_Area(cell) > 1e-5;
INSERT INTO grid_staff (grid_id, person_name, role, organisation_id)
SELECT g.id, '网格员' || g.id, 'grid_worker', g.organisation_id FROM grid g;

-- road lattice: nodes every 0.02 degrees inside the county, edges to the east and north neighbours
CREATE TEMP TABLE lattice AS
SELECT i, k, ST_SetSRID(ST_MakePoint(117.30 + i * 0.02, 36.68 + k * 0.02), 4326) AS geom
  FROM generate_series(0, 33) i, generate_series(0, 24) k;
DELETE FROM lattice l USING county c WHERE NOT ST_Contains(c.geom, l.geom);
ALTER TABLE lattice ADD COLUMN node_id bigint;
WITH ins AS (INSERT INTO road_node (geom, osm_id) SELECT geom, i * 100 + k FROM lattice RETURNING id, osm_id)
UPDATE lattice l SET node_id = ins.id FROM ins WHERE ins.osm_id = l.i * 100 + l.k;
INSERT INTO road_edge (source, target, road_class, name, oneway, length_m, geom)
SELECT a.node_id, b.node_id,
       CASE WHEN a.k = b.k AND a.k = 10 THEN 'expressway'
            WHEN a.i = b.i AND a.i % 12 = 0 THEN 'national'
            WHEN a.k = b.k AND a.k % 8 = 0 THEN 'provincial'
            WHEN a.i = b.i AND a.i % 4 = 0 THEN 'county'
            WHEN a.k = b.k AND a.k % 2 = 0 THEN 'township'
            WHEN a.i BETWEEN 20 AND 23 AND a.k BETWEEN 9 AND 11 THEN 'urban'
            ELSE 'village' END,
       CASE WHEN a.k = b.k AND a.k = 10 THEN 'G20 济青高速' ELSE NULL END,
       false,
       ST_Length(ST_Transform(ST_MakeLine(a.geom, b.geom), 4548)), ST_MakeLine(a.geom, b.geom)
  FROM lattice a JOIN lattice b ON (b.i = a.i + 1 AND b.k = a.k) OR (b.i = a.i AND b.k = a.k + 1);

-- villages, units, incidents, service points
INSERT INTO village (code, name, town_code, population, geom)
SELECT 'V' || lpad(n::text, 3, '0'), '测试村' || n, (SELECT code FROM town ORDER BY code OFFSET (n % 16) LIMIT 1),
       300 + n * 7, l.geom
  FROM (SELECT row_number() OVER (ORDER BY i, k) AS n, ST_Translate(geom, 0.007, 0.005) AS geom FROM lattice
         WHERE (i * 7 + k * 3) % 9 = 0) l;
INSERT INTO unit (code, name, organisation_id, kind, capabilities, status, last_position, last_position_at)
SELECT 'U' || n, '警车' || n, (SELECT id FROM organisation WHERE kind = 'station' ORDER BY code OFFSET (n % 4) LIMIT 1),
       (ARRAY['patrol_car', 'traffic_car', 'motorcycle', 'accident_car', 'command_car'])[1 + n % 5],
       ARRAY['lights', 'cones'],
       (ARRAY['available', 'assigned', 'en_route', 'on_scene', 'off_duty', 'out_of_service'])[1 + n % 6],
       ST_SetSRID(ST_MakePoint(117.55 + (n % 6) * 0.05, 36.80 + (n / 6) * 0.06), 4326), now() - interval '2 minutes'
  FROM generate_series(1, 12) n;
INSERT INTO incident (channel, type, severity, geom, address, reported_at, status, station_org_id, grid_id, synthetic)
SELECT CASE WHEN n % 3 = 0 THEN '122' ELSE '110' END,
       CASE WHEN n % 3 = 0 THEN 'traffic_accident' ELSE (ARRAY['theft', 'dispute', 'fight'])[1 + n % 3] END,
       CASE WHEN n % 3 = 0 THEN (ARRAY['minor', 'injury', 'fatal'])[1 + n % 3] ELSE 'none' END,
       p.geom, '测试地址' || n, now() - (n || ' hours')::interval * 29,
       CASE WHEN n <= 6 THEN 'open' WHEN n <= 9 THEN 'dispatched' ELSE 'closed' END,
       (SELECT j.organisation_id FROM jurisdiction j WHERE j.kind = 'station' AND ST_Contains(j.geom, p.geom) LIMIT 1),
       (SELECT g.id FROM grid g WHERE ST_Contains(g.geom, p.geom) LIMIT 1), true
  FROM (SELECT n, ST_SetSRID(ST_MakePoint(117.45 + ((n * 37) % 100) / 220.0, 36.75 + ((n * 53) % 100) / 290.0), 4326) AS geom
          FROM generate_series(1, 300) n) p
  JOIN county c ON ST_Contains(c.geom, p.geom);
INSERT INTO service_point (code, name, organisation_id, services, opening_hours, geom)
SELECT 'SP-' || o.code, o.name || '一窗通办', o.id, ARRAY['驾驶证补换', '车辆年检预约'], '08:30-17:30',
       ST_Translate(o.hq, 0.003, 0.002)
  FROM organisation o WHERE o.kind = 'station';
INSERT INTO dataset_meta (layer, source, synthetic, attribution) VALUES
    ('organisations', 'test small world', true, 'synthetic demo data / 合成演示数据'),
    ('jurisdictions', 'test small world', true, 'synthetic demo data / 合成演示数据'),
    ('road_edges', 'test small world', true, 'synthetic demo data / 合成演示数据'),
    ('units', 'test small world', true, 'synthetic demo data / 合成演示数据'),
    ('incidents', 'test small world', true, 'synthetic demo data / 合成演示数据')
ON CONFLICT (layer) DO NOTHING;
"""


def build_small_world(conn: psycopg.Connection) -> None:
    """Insert the small world into a database that has the reference data (county, towns)."""
    conn.execute(SMALL_WORLD_SQL)
