"""The small hand-made world of the planning tests, with answers known by construction.

Built in the metric CRS (EPSG:4548, metres) and stored in WGS84, in a database of its own
(copied from a template per test module by tests/planning/conftest.py, so publishing in one module
never shows in another):

    y=10 km +---------+---------+---------+---------+
            |  G5     |  G6     |  G7  N  |  G8     |      county: 20 km x 10 km
            |         |         |      |  |         |      station A (west half), B (east half)
     y=5 km +---------+---------+------|--+---------+      grids: 5 km squares
     y=4 km o----o----A----o----o----o-X--B----o----o      road W-E at y=4 km (county, 50 km/h),
            |  G1     |  G2     |  G3  |  |  G4     |        nodes every 2.5 km
     y=0    +---------+---------+------S--+---------+      road N-S at x=12.5 km (village, 25 km/h)
           x=0       5 km     10 km    15 km     20 km     squadron T: the whole county

Station A stands at (5, 4) km, B at (15, 4) km, both on the W-E road.
"""

from __future__ import annotations

from pyproj import Transformer

from gisapp.core import db

KM = 1000.0
# The south-west corner in EPSG:4548 (near 117.55 E, 36.80 N, inside the service extent).
_T = Transformer.from_crs(4326, 4548, always_xy=True)
X0, Y0 = (round(v, -3) for v in _T.transform(117.55, 36.80))
TEMPLATE = "gisapp_test_plan_tpl"


def xy(x_km: float, y_km: float) -> tuple[float, float]:
    """Metric coordinates of a point given in km from the south-west corner."""
    return X0 + x_km * KM, Y0 + y_km * KM


def lonlat(x_km: float, y_km: float) -> list[float]:
    """[lon, lat] of a point given in km from the south-west corner."""
    lon, lat = Transformer.from_crs(4548, 4326, always_xy=True).transform(*xy(x_km, y_km))
    return [lon, lat]


def box_sql(x0: float, y0: float, x1: float, y1: float) -> tuple[str, list[float]]:
    """SQL and parameters of a WGS84 MultiPolygon for a box given in km."""
    return ("ST_Multi(ST_Transform(ST_Segmentize(ST_MakeEnvelope(%s, %s, %s, %s, 4548), 50), 4326))",
            [*xy(x0, y0), *xy(x1, y1)])


def box_geojson(conn, x0: float, y0: float, x1: float, y1: float) -> dict:
    q, params = box_sql(x0, y0, x1, y1)
    return conn.execute(f"SELECT ST_AsGeoJSON({q}, 12)::json AS g", params).fetchone()["g"]


# Incidents: (x_km, y_km, type, channel, hour local) -- all on road nodes.
INCIDENTS = [
    (2.5, 4, "theft", "110", 9),                # A: 2.5 km from A (180 s)
    (7.5, 4, "fight", "110", 21),               # A: 2.5 km (180 s)
    (1.25, 4, "theft", "110", 9),               # A: 3.75 km (270 s)
    (12.5, 4, "traffic_accident", "122", 8),    # B (G3): 2.5 km from B (180 s), 7.5 km from A (540 s)
    (12.5, 9, "dispute", "110", 14),            # B (G7): 180 s + 5 km of village road (720 s)
    (12.5, 1, "theft", "110", 14),              # B (G3): 180 s + 3 km of village road (432 s)
    (17.5, 4, "traffic_accident", "122", 18),   # B: 180 s
    (18.75, 4, "fight", "110", 23),             # B: 3.75 km (270 s)
]


def build_world(url: str) -> dict:
    """Build the hand-made world into the (migrated, empty) database at ``url``; return the rows' ids."""
    with db.connect(url) as conn:
        conn.execute("DELETE FROM county")
        q, p = box_sql(0, 0, 20, 10)
        conn.execute(f"INSERT INTO county (adcode, name, geom) VALUES ('371681', '测试县', {q})", p)
        ids = {}
        for code, name, kind, x in (("A", "甲派出所", "station", 5), ("B", "乙派出所", "station", 15),
                                    ("T", "丙中队", "squadron", 10), ("C", "丁派出所", "station", 20)):
            ids[code] = conn.execute(
                "INSERT INTO organisation (code, name, kind, hq) VALUES (%s, %s, %s, "
                "ST_Transform(ST_SetSRID(ST_MakePoint(%s, %s), 4548), 4326)) RETURNING id",
                [code, name, kind, *xy(x, 4)]).fetchone()["id"]
        for code, kind, box in (("A", "station", (0, 0, 10, 10)), ("B", "station", (10, 0, 20, 10)),
                                ("T", "traffic", (0, 0, 20, 10))):
            q, p = box_sql(*box)
            ids["J" + code] = conn.execute(
                f"INSERT INTO jurisdiction (organisation_id, kind, version, name, geom, valid_from, author, reason) "
                f"VALUES (%s, %s, 1, NULL, {q}, '2025-01-01T00:00:00Z', 'test', 'initial') RETURNING id",
                [ids[code], kind, *p]).fetchone()["id"]
        q, p = box_sql(0, 0, 20, 10)
        zid = conn.execute(
            f"INSERT INTO joint_zone (code, name, centre_org_id, geom, valid_from) VALUES ('Z1', '测试战区', %s, {q}, "
            "'2025-01-01T00:00:00Z') RETURNING id", [ids["A"], *p]).fetchone()["id"]
        for o in ("A", "B", "T"):
            conn.execute("INSERT INTO joint_zone_member VALUES (%s, %s, %s)",
                         [zid, ids[o], "centre" if o == "A" else "member"])
        for n in range(8):
            col, row = n % 4, n // 4
            q, p = box_sql(col * 5, row * 5, col * 5 + 5, row * 5 + 5)
            org = "A" if col < 2 else "B"
            ids[f"G{n + 1}"] = conn.execute(
                f"INSERT INTO grid (code, name, organisation_id, jurisdiction_id, geom) VALUES (%s, %s, %s, %s, {q}) "
                "RETURNING id", [f"G{n + 1}", f"警格{n + 1}", ids[org], ids["J" + org], *p]).fetchone()["id"]
        nodes = {}

        def node(x, y):
            if (x, y) not in nodes:
                nodes[(x, y)] = conn.execute(
                    "INSERT INTO road_node (geom) VALUES (ST_Transform(ST_SetSRID(ST_MakePoint(%s, %s), 4548), 4326)) "
                    "RETURNING id", list(xy(x, y))).fetchone()["id"]
            return nodes[(x, y)]

        def edge(a, b, cls):
            conn.execute(
                "INSERT INTO road_edge (source, target, road_class, length_m, geom) VALUES (%s, %s, %s, %s, "
                "ST_Transform(ST_SetSRID(ST_MakeLine(ST_MakePoint(%s, %s), ST_MakePoint(%s, %s)), 4548), 4326))",
                [node(*a), node(*b), cls, ((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5 * KM, *xy(*a), *xy(*b)])

        for i in range(8):
            edge((i * 2.5, 4), (i * 2.5 + 2.5, 4), "county")
        edge((12.5, 4), (12.5, 10), "village")
        edge((12.5, 4), (12.5, 0), "village")
        for code, x, y, pop in (("V1", 2.5, 2.5, 1000), ("V2", 7.5, 7.5, 500), ("V3", 12.0, 7.5, 800),
                                ("V4", 13.0, 2.5, 300), ("V5", 17.5, 7.5, 700)):
            conn.execute("INSERT INTO village (code, name, population, geom) VALUES (%s, %s, %s, "
                         "ST_Transform(ST_SetSRID(ST_MakePoint(%s, %s), 4548), 4326))",
                         [code, code + "村", pop, *xy(x, y)])
        for i, (x, y, typ, ch, hour) in enumerate(INCIDENTS):
            sev = "minor" if ch == "122" else "none"
            conn.execute(
                "INSERT INTO incident (code, channel, type, severity, geom, reported_at, status, synthetic) "
                "VALUES (%s, %s, %s, %s, ST_Transform(ST_SetSRID(ST_MakePoint(%s, %s), 4548), 4326), "
                "(((now() - interval '10 days') AT TIME ZONE 'Asia/Shanghai')::date + make_interval(hours => %s)) "
                "AT TIME ZONE 'Asia/Shanghai', "
                "'closed', true)",
                [f"T{i:03d}", ch, typ, sev, *xy(x, y), hour])
        conn.commit()
        return ids
