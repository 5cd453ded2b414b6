"""Read what the maps show from PostGIS: small layers as GeoJSON, coverage figures, gaps.

Named query functions with bound parameters; each takes a connection (inside the caller's
transaction) and plain arguments and returns plain data, so the page views, the map
builders in ``layers/`` and the tests share them. Nothing here imports Flask.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from gisapp.core.config import Settings


def target_min(road_class: str, settings: Settings) -> float:
    """Return the coverage target (minutes) of a road class (``main_road_classes`` get the stricter one)."""
    main = road_class in settings.main_road_classes
    return settings.main_road_target_min if main else settings.rural_road_target_min


def _fc(rows: list[dict], geom_key: str = "geometry") -> dict:
    feats = []
    for r in rows:
        geom = r.pop(geom_key)
        feats.append({"type": "Feature", "id": r.get("id"), "geometry": geom, "properties": r})
    return {"type": "FeatureCollection", "features": feats}


def _iso(rows: list[dict], *keys: str) -> list[dict]:
    for r in rows:
        for k in keys:
            if isinstance(r.get(k), datetime):
                r[k] = r[k].isoformat(timespec="seconds")
    return rows


def data_versions(conn: psycopg.Connection) -> dict[str, int]:
    """Return the change counter of every data area (``data_version``)."""
    return {r["area"]: r["version"] for r in conn.execute("SELECT area, version FROM data_version")}


def dataset_meta(conn: psycopg.Connection) -> dict[str, dict]:
    """Return the provenance rows of ``dataset_meta`` by layer."""
    return {r["layer"]: r for r in conn.execute(
        "SELECT layer, source, synthetic, licence, attribution FROM dataset_meta ORDER BY layer")}


def layer_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Return feature counts of the main layers (for the index page)."""
    row = conn.execute(
        """SELECT (SELECT count(*) FROM organisation WHERE kind = 'station') AS stations,
                  (SELECT count(*) FROM jurisdiction WHERE valid_from <= now() AND (valid_to IS NULL OR valid_to > now()))
                      AS jurisdictions,
                  (SELECT count(*) FROM joint_zone WHERE valid_from <= now() AND (valid_to IS NULL OR valid_to > now()))
                      AS joint_zones,
                  (SELECT count(*) FROM grid) AS grids,
                  (SELECT count(*) FROM road_edge) AS road_edges,
                  (SELECT coalesce(round(sum(length_m)::numeric / 1000, 0), 0)::int FROM road_edge) AS road_km,
                  (SELECT count(*) FROM village) AS villages,
                  (SELECT count(*) FROM unit) AS units,
                  (SELECT count(*) FROM incident) AS incidents,
                  (SELECT count(*) FROM service_point) AS service_points""").fetchone()
    return dict(row)


def county(conn: psycopg.Connection) -> dict:
    """Return the county outline(s) as a FeatureCollection."""
    rows = conn.execute(
        "SELECT id, adcode, name, name_en, ST_AsGeoJSON(geom, 6)::json AS geometry FROM county ORDER BY adcode"
    ).fetchall()
    return _fc(rows)


def county_bounds(conn: psycopg.Connection, settings: Settings) -> list[list[float]]:
    """Return [[south, west], [north, east]] of the county, else of the service extent."""
    row = conn.execute("SELECT ST_XMin(e) AS x0, ST_YMin(e) AS y0, ST_XMax(e) AS x1, ST_YMax(e) AS y1 "
                       "FROM (SELECT ST_Extent(geom) AS e FROM county) s").fetchone()
    if row is None or row["x0"] is None:
        x0, y0, x1, y1 = settings.service_extent
        return [[y0, x0], [y1, x1]]
    return [[row["y0"], row["x0"]], [row["y1"], row["x1"]]]


def towns(conn: psycopg.Connection) -> dict:
    """Return the town seats (hand-placed, synthetic locations) as a FeatureCollection."""
    rows = conn.execute(
        "SELECT id, code, name, name_en, kind, ST_AsGeoJSON(geom, 6)::json AS geometry FROM town "
        "WHERE geom IS NOT NULL ORDER BY code").fetchall()
    return _fc(rows)


def jurisdictions(conn: psycopg.Connection, kind: str, simplify_m: float, metric_srid: int,
                  organisation_id: int | None = None) -> dict:
    """Return the jurisdictions of ``kind`` in force, simplified by ``simplify_m`` metres for display."""
    rows = conn.execute(
        """SELECT j.id, j.organisation_id, o.code AS org_code, o.name AS org_name, o.name_en AS org_name_en,
                  o.kind AS org_kind, o.merged, j.kind, j.version, j.valid_from,
                  round((ST_Area(ST_Transform(j.geom, %(srid)s)) / 1e6)::numeric, 1)::float AS area_km2,
                  ST_AsGeoJSON(ST_Transform(ST_SimplifyPreserveTopology(ST_Transform(j.geom, %(srid)s), %(tol)s),
                               4326), 6)::json AS geometry
             FROM jurisdiction j JOIN organisation o ON o.id = j.organisation_id
            WHERE j.valid_from <= now() AND (j.valid_to IS NULL OR j.valid_to > now()) AND j.kind = %(kind)s
              AND (%(org)s::bigint IS NULL OR j.organisation_id = %(org)s)
            ORDER BY o.code""",
        {"srid": metric_srid, "tol": simplify_m, "kind": kind, "org": organisation_id}).fetchall()
    return _fc(_iso(rows, "valid_from"))


def joint_zones(conn: psycopg.Connection, simplify_m: float, metric_srid: int) -> dict:
    """Return the joint war zones in force with their centre and member names."""
    rows = conn.execute(
        """SELECT z.id, z.code, z.name, z.name_en, z.version, z.valid_from,
                  c.name AS centre_name, c.name_en AS centre_name_en,
                  ARRAY(SELECT o.name FROM joint_zone_member m JOIN organisation o ON o.id = m.organisation_id
                         WHERE m.joint_zone_id = z.id ORDER BY m.role, o.code) AS members,
                  ARRAY(SELECT coalesce(o.name_en, o.name) FROM joint_zone_member m
                         JOIN organisation o ON o.id = m.organisation_id
                         WHERE m.joint_zone_id = z.id ORDER BY m.role, o.code) AS members_en,
                  ST_AsGeoJSON(ST_Transform(ST_SimplifyPreserveTopology(ST_Transform(z.geom, %(srid)s), %(tol)s),
                               4326), 6)::json AS geometry
             FROM joint_zone z JOIN organisation c ON c.id = z.centre_org_id
            WHERE z.valid_from <= now() AND (z.valid_to IS NULL OR z.valid_to > now()) AND z.geom IS NOT NULL
            ORDER BY z.code""",
        {"srid": metric_srid, "tol": simplify_m}).fetchall()
    return _fc(_iso(rows, "valid_from"))


def grids(conn: psycopg.Connection, settings: Settings, organisation_id: int | None = None,
          since: datetime | None = None) -> dict:
    """Return grids with incident counts since ``since``, their road coverage by the targets and
    ``patrol_share``, the share of their road km patrolled in the last ``patrol_days`` days.

    ``share_within`` is the share of the grid's road km (edges whose midpoint lies in the
    grid) reached from a station within the target of the edge's class; None without
    computed coverage.
    """
    since = since or datetime.now(UTC) - timedelta(days=365)
    rows = conn.execute(
        """WITH g AS (
               SELECT g.* FROM grid g WHERE (%(org)s::bigint IS NULL OR g.organisation_id = %(org)s)),
           roads AS (
               SELECT g.id AS grid_id, sum(e.length_m) AS length_m, sum(c.station_within_m) AS within_m,
                      count(c.station_within_m) AS computed,
                      sum(e.length_m) FILTER (WHERE EXISTS (
                          SELECT 1 FROM patrol_edge_day p WHERE p.edge_id = e.id
                             AND p.day > (now() AT TIME ZONE %(tz)s)::date - %(days)s)) AS patrolled_m
                 FROM g JOIN road_edge e ON e.geom && g.geom
                                         AND ST_Intersects(g.geom, ST_LineInterpolatePoint(e.geom, 0.5))
                 LEFT JOIN road_coverage c ON c.edge_id = e.id
                GROUP BY g.id),
           inc AS (
               SELECT i.grid_id, count(*) AS n FROM incident i
                WHERE i.reported_at >= %(since)s AND i.grid_id IN (SELECT id FROM g) GROUP BY i.grid_id),
           staff AS (
               SELECT s.grid_id, count(*) AS n FROM grid_staff s WHERE s.grid_id IN (SELECT id FROM g)
                GROUP BY s.grid_id)
           SELECT g.id, g.code, g.name, g.organisation_id, o.name AS org_name, o.name_en AS org_name_en,
                  coalesce(inc.n, 0)::int AS incidents, coalesce(staff.n, 0)::int AS staff,
                  round((coalesce(roads.length_m, 0) / 1000)::numeric, 1)::float AS road_km,
                  CASE WHEN coalesce(roads.computed, 0) = 0 THEN NULL
                       ELSE roads.within_m / nullif(roads.length_m, 0) END AS share_within,
                  round((coalesce(roads.patrolled_m, 0) / nullif(roads.length_m, 0))::numeric, 3)::float
                      AS patrol_share,
                  round((ST_Area(ST_Transform(g.geom, %(srid)s)) / 1e6)::numeric, 2)::float AS area_km2,
                  ST_AsGeoJSON(g.geom, 6)::json AS geometry
             FROM g JOIN organisation o ON o.id = g.organisation_id
             LEFT JOIN roads ON roads.grid_id = g.id LEFT JOIN inc ON inc.grid_id = g.id
             LEFT JOIN staff ON staff.grid_id = g.id
            ORDER BY g.code""",
        {"org": organisation_id, "since": since, "srid": settings.metric_srid, "tz": settings.local_timezone,
         "days": settings.patrol_days}).fetchall()
    for r in rows:
        if r["share_within"] is not None:
            r["share_within"] = round(float(r["share_within"] or 0), 3)
    return _fc(rows)


def organisations(conn: psycopg.Connection, kinds: tuple[str, ...] = ("station", "squadron", "accident_section",
                                                                     "command_centre")) -> dict:
    """Return organisations with a headquarters point (stations, squadrons, ...)."""
    rows = conn.execute(
        """SELECT o.id, o.code, o.name, o.name_en, o.kind, o.merged, o.takes_part_in_traffic, o.phone,
                  o.town_code, t.name AS town_name, ST_AsGeoJSON(o.hq, 6)::json AS geometry
             FROM organisation o LEFT JOIN town t ON t.code = o.town_code
            WHERE o.hq IS NOT NULL AND o.kind = ANY(%s)
            ORDER BY o.kind, o.code""", [list(kinds)]).fetchall()
    return _fc(rows)


def stations_list(conn: psycopg.Connection) -> list[dict]:
    """Return the stations (id, code, name, name_en), for pickers."""
    return conn.execute("SELECT id, code, name, name_en FROM organisation WHERE kind = 'station' ORDER BY code"
                        ).fetchall()


def villages(conn: psycopg.Connection) -> dict:
    """Return the villages as a FeatureCollection."""
    rows = conn.execute(
        """SELECT v.id, v.code, v.name, v.population, t.name AS town_name, t.name_en AS town_name_en,
                  ST_AsGeoJSON(v.geom, 6)::json AS geometry
             FROM village v LEFT JOIN town t ON t.code = v.town_code ORDER BY v.code""").fetchall()
    return _fc(rows)


def units(conn: psycopg.Connection, organisation_id: int | None = None) -> dict:
    """Return the units that have a known position, with their organisation's name."""
    rows = conn.execute(
        """SELECT u.id, u.code, u.name, u.kind, u.status, u.capabilities, u.crew, u.shift,
                  u.organisation_id, o.name AS org_name, o.name_en AS org_name_en, u.last_position_at,
                  ST_AsGeoJSON(u.last_position, 6)::json AS geometry
             FROM unit u JOIN organisation o ON o.id = u.organisation_id
            WHERE u.last_position IS NOT NULL AND (%(org)s::bigint IS NULL OR u.organisation_id = %(org)s)
            ORDER BY u.code""", {"org": organisation_id}).fetchall()
    return _fc(_iso(rows, "last_position_at"))


def incidents(conn: psycopg.Connection, since: datetime | None = None, statuses: tuple[str, ...] | None = None,
              limit: int = 5000, station_id: int | None = None) -> dict:
    """Return incidents reported since ``since`` (and of ``statuses``), newest first, at most ``limit``."""
    rows = conn.execute(
        """SELECT i.id, i.code, i.channel, i.type, i.severity, i.status, i.address, i.reported_at,
                  o.name AS station_name, o.name_en AS station_name_en, ST_AsGeoJSON(i.geom, 6)::json AS geometry
             FROM incident i LEFT JOIN organisation o ON o.id = i.station_org_id
            WHERE (%(since)s::timestamptz IS NULL OR i.reported_at >= %(since)s)
              AND (%(st)s::text[] IS NULL OR i.status = ANY(%(st)s))
              AND (%(org)s::bigint IS NULL OR i.station_org_id = %(org)s)
            ORDER BY i.reported_at DESC, i.id DESC LIMIT %(limit)s""",
        {"since": since, "st": list(statuses) if statuses else None, "limit": limit, "org": station_id}).fetchall()
    return _fc(_iso(rows, "reported_at"))


def incident_heat(conn: psycopg.Connection, since: datetime, cell_m: float, metric_srid: int,
                  station_id: int | None = None) -> list[list[float]]:
    """Return incidents since ``since`` binned into cells of about ``cell_m``: [[lat, lon, count], ...].

    Cells are a degree grid sized for the county's latitude (no reprojection of every incident);
    each cell is placed at the mean of its incidents.
    """
    rows = conn.execute(
        """WITH p AS (SELECT coalesce((SELECT ST_Y(ST_Centroid(geom)) FROM county LIMIT 1), 36.9) AS lat0),
                c AS (SELECT %(cell)s / 111320.0 / cos(radians(p.lat0)) AS dx, %(cell)s / 110540.0 AS dy FROM p)
           SELECT avg(ST_Y(i.geom)) AS lat, avg(ST_X(i.geom)) AS lon, count(*) AS n
             FROM incident i, c
            WHERE i.reported_at >= %(since)s AND (%(org)s::bigint IS NULL OR i.station_org_id = %(org)s)
            GROUP BY floor(ST_X(i.geom) / c.dx), floor(ST_Y(i.geom) / c.dy)""",
        {"since": since, "cell": cell_m, "org": station_id}).fetchall()
    return [[round(r["lat"], 5), round(r["lon"], 5), int(r["n"])] for r in rows]


def service_points(conn: psycopg.Connection) -> dict:
    """Return the one-window service points."""
    rows = conn.execute(
        """SELECT s.id, s.code, s.name, s.services, s.opening_hours, o.name AS org_name, o.name_en AS org_name_en,
                  ST_AsGeoJSON(s.geom, 6)::json AS geometry
             FROM service_point s LEFT JOIN organisation o ON o.id = s.organisation_id ORDER BY s.code""").fetchall()
    return _fc(rows)


def coverage_roads_gdf(conn: psycopg.Connection):
    """Return every road segment with its static coverage as a GeoDataFrame (EPSG:4326)."""
    import geopandas as gpd
    import shapely

    rows = conn.execute(
        """SELECT e.id, e.road_class, e.name, e.oneway, e.length_m, c.station_time_s, c.target_s,
                  c.incidents_past_year, ST_AsBinary(e.geom) AS wkb
             FROM road_edge e LEFT JOIN road_coverage c ON c.edge_id = e.id ORDER BY e.id""").fetchall()
    geoms = shapely.from_wkb([bytes(r.pop("wkb")) for r in rows])
    return gpd.GeoDataFrame(rows, geometry=geoms, crs="EPSG:4326")


def road_edges(conn: psycopg.Connection, classes: tuple[str, ...] | None = None) -> dict:
    """Return road segments as one FeatureCollection (the heavy way; the maps use vector tiles)."""
    rows = conn.execute(
        """SELECT id, road_class, name, oneway, ST_AsGeoJSON(geom, 6)::json AS geometry FROM road_edge
            WHERE %(cl)s::text[] IS NULL OR road_class = ANY(%(cl)s) ORDER BY id""",
        {"cl": list(classes) if classes else None}).fetchall()
    return _fc(rows)


def coverage_summary(conn: psycopg.Connection, settings: Settings) -> dict:
    """Return county-wide road km, km reached within target (partial edges count in part, as routing
    computes them), km unreachable from any station, and whether coverage was computed."""
    row = conn.execute(
        """SELECT coalesce(sum(e.length_m), 0) / 1000 AS km,
                  coalesce(sum(c.station_within_m), 0) / 1000 AS km_within,
                  coalesce(sum(e.length_m) FILTER (WHERE c.edge_id IS NOT NULL AND c.station_time_s IS NULL), 0)
                      / 1000 AS km_unreachable,
                  count(c.station_within_m) AS computed
             FROM road_edge e LEFT JOIN road_coverage c ON c.edge_id = e.id""").fetchone()
    km = float(row["km"])
    computed = row["computed"] > 0
    return {"road_km": round(km, 1), "km_within": round(float(row["km_within"]), 1),
            "km_unreachable": round(float(row["km_unreachable"]), 1),
            "share_within": round(float(row["km_within"]) / km, 3) if km and computed else None,
            "computed": computed}


def _org_names(conn: psycopg.Connection, ids: list[int]) -> dict[int, dict]:
    return {r["id"]: r for r in conn.execute("SELECT id, name, name_en FROM organisation WHERE id = ANY(%s)",
                                             [ids])}


def coverage_gaps(conn: psycopg.Connection, settings: Settings, limit: int, station_id: int | None = None) -> dict:
    """Return routing's coverage gaps (edges not wholly reached within target, ranked by uncovered km x
    past-year incidents) as a FeatureCollection with road names and the nearest station; with
    ``station_id`` only the gaps inside that station's current jurisdiction (a chief's own)."""
    import routing.coverage

    if conn.execute("SELECT count(station_within_m) AS n FROM road_coverage").fetchone()["n"] == 0:
        return {"type": "FeatureCollection", "features": []}
    if station_id is None:
        items = routing.coverage.gaps(conn, settings, "static", limit=limit)
    else:
        jid = conn.execute(
            """SELECT id FROM jurisdiction WHERE organisation_id = %s AND kind = 'station' AND valid_from <= now()
                  AND (valid_to IS NULL OR valid_to > now()) ORDER BY valid_from DESC LIMIT 1""",
            [station_id]).fetchone()
        if jid is None:
            return {"type": "FeatureCollection", "features": []}
        items = routing.coverage.gaps(conn, settings, "static", limit=limit, area_kind="station",
                                      area_id=jid["id"])
    ids = [it["edge_id"] for it in items]
    extra = {r["id"]: r for r in conn.execute(
        """SELECT e.id, e.name, c.station_org_id, o.name AS station_name, o.name_en AS station_name_en
             FROM road_edge e LEFT JOIN road_coverage c ON c.edge_id = e.id
             LEFT JOIN organisation o ON o.id = c.station_org_id WHERE e.id = ANY(%s)""", [ids])}
    feats = []
    for it in items:
        x = extra.get(it["edge_id"], {})
        props = {"id": it["edge_id"], "rank": it["rank"], "road_class": it["road_class"], "name": x.get("name"),
                 "length_m": round(it["length_m"]), "uncovered_m": round(it["uncovered_m"]),
                 "time_min": round(it["time_s"] / 60, 1) if it["time_s"] is not None else None,
                 "target_min": round(it["target_s"] / 60, 1), "incidents": it["incidents_past_year"],
                 "score": round(it["score"], 3), "station_name": x.get("station_name"),
                 "station_name_en": x.get("station_name_en")}
        geom = it["geometry"]
        feats.append({"type": "Feature", "id": it["edge_id"], "properties": props,
                      "geometry": {"type": "LineString", "coordinates": [[round(float(a), 6), round(float(b), 6)]
                                                                         for a, b in geom.coords]}})
    return {"type": "FeatureCollection", "features": feats}


def coverage_by_jurisdiction(conn: psycopg.Connection, settings: Settings) -> list[dict]:
    """Per station jurisdiction in force: road km, share within target, p50/p90/max minutes (出警半径),
    from routing's response radius."""
    import routing.coverage

    if conn.execute("SELECT count(*) AS n FROM road_edge").fetchone()["n"] == 0:
        return []
    items = routing.coverage.response_radius(conn, settings)
    names = _org_names(conn, [it["organisation_id"] for it in items])

    def minutes(v: float | None) -> float | None:
        return round(v / 60, 1) if v is not None else None

    return [{"organisation_id": it["organisation_id"], "code": it["code"], "name": it["name"],
             "name_en": names.get(it["organisation_id"], {}).get("name_en"), "road_km": it["road_km"],
             "share_within": round(it["within_target_share"], 3) if it["within_target_share"] is not None else None,
             "unreachable_km": it["unreachable_km"], "p50_min": minutes(it["p50_s"]),
             "p90_min": minutes(it["p90_s"]), "max_min": minutes(it["max_s"])} for it in items]


def station_org(conn: psycopg.Connection, organisation_id: int) -> dict[str, Any] | None:
    """Return one organisation's id, code, names and kind, or None."""
    return conn.execute("SELECT id, code, name, name_en, kind FROM organisation WHERE id = %s",
                        [organisation_id]).fetchone()


def organisations_of_kinds(conn: psycopg.Connection, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    """Return the organisations of ``kinds`` (id, code, names, kind) by kind and code, for pickers."""
    return conn.execute("SELECT id, code, name, name_en, kind FROM organisation WHERE kind = ANY(%s) "
                        "ORDER BY array_position(%s, kind), code", [list(kinds), list(kinds)]).fetchall()


def organisation_hq(conn: psycopg.Connection, organisation_id: int) -> list[float] | None:
    """Return an organisation's headquarters as [lon, lat], or None."""
    row = conn.execute("SELECT ST_X(hq) AS lon, ST_Y(hq) AS lat FROM organisation WHERE id = %s AND hq IS NOT NULL",
                       [organisation_id]).fetchone()
    return [row["lon"], row["lat"]] if row else None


def unpatrolled_roads(conn: psycopg.Connection, settings: Settings, organisation_id: int, window: Any = None) -> dict:
    """The road segments of a station's jurisdiction (by midpoint) that no unit drove along in
    the patrol window (``layers.measures.Window``; default: the last ``patrol_days`` days), with
    the day of their last patrol if any (routing.patrol)."""
    if window is None:
        today = datetime.now(ZoneInfo(settings.local_timezone)).date()
        start, end = today - timedelta(days=settings.patrol_days - 1), today
    else:
        start, end = window.start, window.end
    rows = conn.execute(
        """WITH j AS (SELECT geom FROM jurisdiction WHERE organisation_id = %(org)s AND kind = 'station'
                        AND valid_from <= now() AND (valid_to IS NULL OR valid_to > now()))
           SELECT e.id, e.road_class, e.name, round(e.length_m::numeric, 1)::float AS length_m,
                  (SELECT max(p.day) FROM patrol_edge_day p WHERE p.edge_id = e.id AND p.day <= %(end)s)::text
                      AS last_patrol_day,
                  ST_AsGeoJSON(e.geom, 6)::json AS geometry
             FROM road_edge e JOIN j ON e.geom && j.geom AND ST_Intersects(j.geom, ST_LineInterpolatePoint(e.geom, 0.5))
            WHERE NOT EXISTS (SELECT 1 FROM patrol_edge_day p WHERE p.edge_id = e.id
                                AND p.day BETWEEN %(start)s AND %(end)s)
            ORDER BY e.id""",
        {"org": organisation_id, "start": start, "end": end}).fetchall()
    return _fc(rows)
