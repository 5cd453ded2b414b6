"""Resolve address text to a point through the village and road gazetteer (and the town seats).

Order of preference: the crossing of two named roads ("黄河路与梁邹路交叉口"), a village
(disambiguated by the town named in the text), a named road (the point of it nearest the
named town's seat, or its middle), a town seat. Names match as substrings of the text, the
longest first, so "张家村" wins over "张家".
"""

from __future__ import annotations

from typing import Any

import psycopg

MIN_NAME_CHARS = 2


def resolve_address(conn: psycopg.Connection, text: str) -> dict[str, Any] | None:
    """Return ``{"lon", "lat", "source", "name", ...}`` for ``text``, or None when nothing matches."""
    text = (text or "").strip()
    if len(text) < MIN_NAME_CHARS:
        return None
    town = conn.execute(
        "SELECT code, name, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM town "
        "WHERE strpos(%s, name) > 0 OR (length(name) > 2 AND strpos(%s, left(name, length(name) - 1)) > 0) "
        "ORDER BY length(name) DESC LIMIT 1", [text, text]).fetchone()
    roads = conn.execute(
        "SELECT name, min(strpos(%s, name)) AS pos FROM road_edge "
        "WHERE name IS NOT NULL AND length(name) >= %s AND strpos(%s, name) > 0 "
        "GROUP BY name ORDER BY length(name) DESC, name LIMIT 4", [text, MIN_NAME_CHARS, text]).fetchall()
    roads = _drop_contained([r["name"] for r in roads])
    if len(roads) >= 2:
        row = conn.execute(
            """
            WITH a AS (SELECT ST_Union(geom) AS g FROM road_edge WHERE name = %s),
                 b AS (SELECT ST_Union(geom) AS g FROM road_edge WHERE name = %s),
                 x AS (SELECT ST_Intersection(a.g, b.g) AS g FROM a, b)
            SELECT ST_X(p) AS lon, ST_Y(p) AS lat FROM (
                SELECT ST_GeometryN(ST_CollectionExtract(x.g, 1), 1) AS p FROM x) s WHERE p IS NOT NULL
            """, [roads[0], roads[1]]).fetchone()
        if row and row["lon"] is not None:
            return {"lon": row["lon"], "lat": row["lat"], "source": "road_intersection",
                    "name": f"{roads[0]} × {roads[1]}"}
    village = conn.execute(
        "SELECT v.code, v.name, v.town_code, ST_X(v.geom) AS lon, ST_Y(v.geom) AS lat FROM village v "
        "WHERE length(v.name) >= %s AND strpos(%s, v.name) > 0 "
        "ORDER BY (v.town_code IS NOT DISTINCT FROM %s) DESC, length(v.name) DESC, v.code LIMIT 1",
        [MIN_NAME_CHARS, text, town["code"] if town else None]).fetchone()
    if village:
        return {"lon": village["lon"], "lat": village["lat"], "source": "village", "name": village["name"],
                "code": village["code"]}
    if roads:
        near = (town["lon"], town["lat"]) if town and town["lon"] is not None else None
        row = conn.execute(
            """
            WITH r AS (SELECT ST_Union(geom) AS g FROM road_edge WHERE name = %(name)s)
            SELECT ST_X(p) AS lon, ST_Y(p) AS lat FROM (
                SELECT ST_ClosestPoint(r.g, COALESCE(ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4326),
                                                     ST_Centroid(r.g))) AS p FROM r) s
            """, {"name": roads[0], "x": near[0] if near else None, "y": near[1] if near else None}).fetchone()
        if row and row["lon"] is not None:
            return {"lon": row["lon"], "lat": row["lat"], "source": "road", "name": roads[0]}
    if town and town["lon"] is not None:
        return {"lon": town["lon"], "lat": town["lat"], "source": "town", "name": town["name"], "code": town["code"]}
    return None


def _drop_contained(names: list[str]) -> list[str]:
    """Keep the longest names: "梁邹路" hides "邹路" when both match the same text."""
    out: list[str] = []
    for n in names:  # longest first
        if not any(n in kept for kept in out):
            out.append(n)
    return out


def reverse_geocode(conn: psycopg.Connection, lon: float, lat: float, village_limit_m: float,
                    road_limit_m: float) -> dict[str, Any]:
    """Name a point from the gazetteer: the nearest village within ``village_limit_m``, the nearest
    named road within ``road_limit_m`` and the town (the village's, else the nearest town seat).

    Returns ``{"village", "road", "town", "label", "distance_m", ...}``; ``label`` is the address text
    for the intake form ("黛溪街道张家村（梁邹路）"), ``distance_m`` the distance to the named village
    (else to the road), None when nothing is near.
    """
    p = {"lon": lon, "lat": lat}
    village = conn.execute(
        """
        WITH p AS (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS g)
        SELECT v.code, v.name, v.town_code, ST_Distance(v.geom::geography, p.g::geography) AS d
        FROM village v, p ORDER BY v.geom <-> p.g, v.code LIMIT 1
        """, p).fetchone()
    if village is not None and village["d"] > village_limit_m:
        village = None
    road = conn.execute(
        """
        WITH p AS (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS g)
        SELECT r.name, ST_Distance(r.geom::geography, p.g::geography) AS d
        FROM (SELECT name, geom FROM road_edge, p WHERE name IS NOT NULL AND name <> ''
              ORDER BY geom <-> p.g LIMIT 8) r, p
        ORDER BY d, r.name LIMIT 1
        """, p).fetchone()
    if road is not None and road["d"] > road_limit_m:
        road = None
    town = None
    if village is not None and village["town_code"]:
        town = conn.execute("SELECT code, name, name_en FROM town WHERE code = %s", [village["town_code"]]).fetchone()
    if town is None:
        town = conn.execute(
            "SELECT code, name, name_en FROM town WHERE geom IS NOT NULL "
            "ORDER BY geom <-> ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326), code LIMIT 1", p).fetchone()
    label = (town["name"] if town else "") + (village["name"] if village else "")
    if road is not None:
        label = f"{label}（{road['name']}）" if label else road["name"]
    near = village or road
    return {"village": village["name"] if village else None, "village_code": village["code"] if village else None,
            "road": road["name"] if road else None, "town": town["name"] if town else None,
            "town_en": town["name_en"] if town else None, "town_code": town["code"] if town else None,
            "label": label or None, "distance_m": round(near["d"], 1) if near else None,
            "road_distance_m": round(road["d"], 1) if road else None}
