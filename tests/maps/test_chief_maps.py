"""The chief's own maps (issue 14, item 6): grid and village measures on a tiny world with known
numbers (exact values), the patrol window (presets, from-to, bad input in both languages),
scope (a chief sees their own station's villages and gaps only; another station's: 403), and
the /map/grids and /map/coverage pages of the small map world over real HTTP.

The tiny world: station A's headquarters at a road node; a straight township road of three
1000 m segments east of it and one west (40 km/h: 90 s each); grid A1 holds segment 1 and village V1 at its
end, grid A2 segments 2 and 3 with villages V2 and V3 at their ends; station B next door with
one village; grid A3 west of the station has a road but no village. Patrol days, incidents and one available unit are placed relative to today.
"""

from __future__ import annotations

from datetime import date

import pytest
from support.database import PASSWORD, create_test_database, make_users
from support.server import Client, LiveServer

from gisapp.core import db
from gisapp.core.config import Settings
from gisapp.core.errors import ValidationError
from gisapp.web import create_app
from layers import measures as M

TINY_DB = "gisapp_test_chief_tiny"
SEG_S = 1000 / (40 / 3.6)  # one 1000 m township segment at 40 km/h: 90 s

TINY_SQL = """
INSERT INTO organisation (code, name, name_en, kind, hq) VALUES
  ('ST-A', '甲派出所', 'Station A', 'station', ST_SetSRID(ST_MakePoint(117.70, 36.90), 4326)),
  ('ST-B', '乙派出所', 'Station B', 'station', ST_SetSRID(ST_MakePoint(117.80, 36.90), 4326));
INSERT INTO jurisdiction (organisation_id, kind, version, name, geom, author, reason)
SELECT id, 'station', 1, name, ST_Multi(CASE WHEN code = 'ST-A' THEN ST_MakeEnvelope(117.65, 36.85, 117.75, 36.95, 4326)
                                         ELSE ST_MakeEnvelope(117.75, 36.85, 117.85, 36.95, 4326) END), 'test', 'tiny'
  FROM organisation;
INSERT INTO grid (code, name, organisation_id, geom)
SELECT g.code, g.name, o.id, ST_Multi(ST_MakeEnvelope(g.x0, 36.85, g.x1, 36.95, 4326))
  FROM (VALUES ('A1', '甲一警格', 'ST-A', 117.699, 117.712), ('A2', '甲二警格', 'ST-A', 117.712, 117.75),
               ('A3', '甲三警格', 'ST-A', 117.65, 117.699),
               ('B1', '乙一警格', 'ST-B', 117.75, 117.85)) g(code, name, org, x0, x1)
  JOIN organisation o ON o.code = g.org;
INSERT INTO road_node (geom, osm_id)
SELECT ST_SetSRID(ST_MakePoint(117.70 + i * 0.01, 36.90), 4326), i FROM generate_series(-1, 3) i;
INSERT INTO road_edge (source, target, road_class, name, oneway, length_m, geom)
SELECT a.id, b.id, 'township', '测试路' || a.osm_id, false, 1000.0, ST_MakeLine(a.geom, b.geom)
  FROM road_node a JOIN road_node b ON b.osm_id = a.osm_id + 1;
INSERT INTO village (code, name, population, geom) VALUES
  ('V1', '一村', 100, ST_SetSRID(ST_MakePoint(117.71, 36.90), 4326)),
  ('V2', '二村', 200, ST_SetSRID(ST_MakePoint(117.72, 36.90), 4326)),
  ('V3', '三村', 300, ST_SetSRID(ST_MakePoint(117.73, 36.90), 4326)),
  ('V9', '乙村', 900, ST_SetSRID(ST_MakePoint(117.80, 36.91), 4326));
-- patrols: segment 1 today; segment 3 yesterday; segments 2 and 3 ten days ago (the previous 7 days)
INSERT INTO patrol_edge_day (edge_id, day, hits, last_at)
SELECT e.id, d.day, 1, now() FROM road_edge e
  JOIN (VALUES (0, %(today)s::date), (2, %(today)s::date - 1), (1, %(today)s::date - 10), (2, %(today)s::date - 10)) d(k, day)
    ON e.name = '测试路' || d.k;
-- incidents: A1 one an hour ago; A2 three an hour ago and one 20 days ago; B1 one
INSERT INTO incident (channel, type, geom, reported_at, status, station_org_id, grid_id, synthetic)
SELECT '110', 'theft', ST_SetSRID(ST_MakePoint(117.70, 36.90), 4326), now() - i.ago, 'closed', g.organisation_id, g.id, true
  FROM (VALUES ('A1', interval '1 hour'), ('A2', interval '1 hour'), ('A2', interval '2 hours'),
               ('A2', interval '3 hours'), ('A2', interval '20 days'), ('B1', interval '1 hour')) i(grid, ago)
  JOIN grid g ON g.code = i.grid;
INSERT INTO unit (code, name, organisation_id, kind, status, last_position, last_position_at)
SELECT 'UA1', '甲巡逻车', id, 'patrol_car', 'available', ST_SetSRID(ST_MakePoint(117.72, 36.90), 4326), now()
  FROM organisation WHERE code = 'ST-A';
"""


@pytest.fixture(scope="module")
def tiny_url(server_url: str) -> str:
    url = create_test_database(server_url, TINY_DB)
    with db.connect(url) as conn:
        today = M.local_today(Settings()).isoformat()  # a date: safe to write into the script
        conn.execute(TINY_SQL.replace("%(today)s", f"'{today}'"))
        conn.commit()
    return url


@pytest.fixture(scope="module")
def tiny_settings(tiny_url: str) -> Settings:
    # rural target 4 min: V1 (1.5) and V2 (3.0) are within it, V3 (4.5) is not
    return Settings.from_env({"database_url": tiny_url, "rural_road_target_min": 4.0, "chief_village_road_m": 600.0})


@pytest.fixture
def tiny_conn(tiny_url: str):
    with db.connect(tiny_url, autocommit=True) as c:
        yield c


def _org(conn, code: str) -> int:
    return conn.execute("SELECT id FROM organisation WHERE code = %s", [code]).fetchone()["id"]


def _by_code(fc: dict) -> dict[str, dict]:
    return {f["properties"]["code"]: f["properties"] for f in fc["features"]}


# --- the window ----------------------------------------------------------------------------------

def test_window_presets_from_to_and_bad_input():
    s = Settings()
    today = date(2026, 12, 8)
    w = M.parse_window({}, s, today)
    assert (w.start, w.end, w.days, w.preset) == (date(2026, 12, 2), today, 7, 7)
    assert M.parse_window({"window": "30"}, s, today).start == date(2026, 11, 9)
    assert M.parse_window({"window": "90"}, s, today).days == 90
    w = M.parse_window({"from": "2026-11-01", "to": "2026-11-30"}, s, today)
    assert (w.days, w.preset, w.query()) == (30, None, {"from": "2026-11-01", "to": "2026-11-30"})
    assert w.previous().to_dict() == {"from": "2026-10-02", "to": "2026-10-31", "days": 30, "preset": None}
    assert M.parse_window({"from": "2026-12-01"}, s, today).end == today
    bad = [({"window": "8"}, "window", "err.window.preset"), ({"window": "x"}, "window", "err.window.preset"),
           ({"from": "2026-13-01"}, "from", "err.window.date"), ({"from": "2026-12-1"}, "from", "err.window.date"),
           ({"to": "2026-12-01"}, "from", "err.window.from_required"),
           ({"from": "2026-12-05", "to": "2026-12-01"}, "to", "err.window.reversed"),
           ({"from": "2026-12-05", "to": "2026-12-09"}, "to", "err.window.future"),
           ({"from": "2025-01-01", "to": "2026-12-01"}, "from", "err.window.too_long")]
    for args, field, key in bad:
        with pytest.raises(ValidationError) as e:
            M.parse_window(args, s, today)
        assert (e.value.field, e.value.key) == (field, key), args
        assert e.value.message("zh") != e.value.message("en")


def test_quantile_breaks_make_grids_differ():
    assert M.quantile_breaks([1.0, 1.0, 1.0]) == []
    assert M.quantile_breaks([3.0, 1.0, 2.0]) == [2.0, 3.0]
    assert [M.class_of(v, [2.0, 3.0]) for v in (1.0, 2.0, 3.0, None)] == [0, 1, 2, None]
    br = M.quantile_breaks([float(i) for i in range(100)], 5)
    assert br == [20.0, 40.0, 60.0, 80.0]


# --- measures on the tiny world ------------------------------------------------------------------

def test_grid_measures_exact(tiny_conn, tiny_settings):
    a = _org(tiny_conn, "ST-A")
    w7 = M.parse_window({"window": "7"}, tiny_settings)
    g = _by_code(M.grid_measures(tiny_conn, tiny_settings, a, w7))
    assert set(g) == {"A1", "A2", "A3"}
    a1, a2 = g["A1"], g["A2"]
    assert (a1["road_km"], a1["patrolled_km"], a1["patrol_share"], a1["patrol_share_prev"], a1["patrol_trend"]) == \
        (1.0, 1.0, 1.0, 0.0, 1.0)
    assert (a2["road_km"], a2["patrolled_km"], a2["patrol_share"], a2["patrol_share_prev"], a2["patrol_trend"]) == \
        (2.0, 1.0, 0.5, 1.0, -0.5)
    assert (a1["incidents"], a1["incidents_per_km"]) == (1, 1.0)
    assert (a2["incidents"], a2["incidents_per_km"]) == (3, 3.0)
    assert (a1["drive_time_s"], a1["farthest_village"], a1["villages"]) == (round(SEG_S, 1), "一村", 1)
    assert (a2["drive_time_s"], a2["farthest_village"], a2["villages"]) == (round(3 * SEG_S, 1), "三村", 2)
    assert a2["drive_time_min"] == 4.5
    # A3 has no village: the time by which its farthest road (the segment west of the station) is reached
    a3 = g["A3"]
    assert (a3["drive_time_s"], a3["drive_to"], a3["farthest_village"], a3["villages"]) == (round(SEG_S, 1), "road",
                                                                                            None, 0)
    assert (a3["road_km"], a3["patrol_share"], a3["patrol_trend"], a3["incidents"], a3["incidents_per_km"]) == \
        (1.0, 0.0, 0.0, 0, None)
    assert a1["drive_to"] == a2["drive_to"] == "village"

    # 30 days: the patrol of ten days ago and the incident of 20 days ago count; nothing before
    w30 = M.parse_window({"window": "30"}, tiny_settings)
    g = _by_code(M.grid_measures(tiny_conn, tiny_settings, a, w30))
    assert (g["A2"]["patrol_share"], g["A2"]["patrol_share_prev"], g["A2"]["patrol_trend"]) == (1.0, 0.0, 1.0)
    assert (g["A2"]["incidents"], g["A2"]["incidents_per_km"]) == (4, 2.0)

    # from the nearest of the station and its available unit (at V2): V3 is one segment away
    g = _by_code(M.grid_measures(tiny_conn, tiny_settings, a, w7, source="units"))
    assert (g["A2"]["drive_time_s"], g["A2"]["farthest_village"]) == (round(SEG_S, 1), "三村")
    assert g["A1"]["drive_time_s"] == round(SEG_S, 1)

    # a window with no patrol at all: shares 0, incidents per patrolled km undefined (None, not a division by 0)
    old = M.Window(date(2020, 1, 1), date(2020, 1, 7))
    g = _by_code(M.grid_measures(tiny_conn, tiny_settings, a, old))
    assert (g["A1"]["patrol_share"], g["A1"]["incidents"], g["A1"]["incidents_per_km"]) == (0.0, 0, None)


def test_villages_exact(tiny_conn, tiny_settings):
    a = _org(tiny_conn, "ST-A")
    rows = {v["code"]: v for v in M.villages(tiny_conn, tiny_settings, a, M.parse_window({}, tiny_settings))}
    assert set(rows) == {"V1", "V2", "V3"}  # not station B's V9
    assert [(rows[c]["grid_code"], rows[c]["drive_time_s"], rows[c]["within_target"], rows[c]["patrol_share"])
            for c in ("V1", "V2", "V3")] == [("A1", round(SEG_S, 1), True, 0.5), ("A2", round(2 * SEG_S, 1), True, 0.5),
                                             ("A2", round(3 * SEG_S, 1), False, 1.0)]
    assert rows["V3"]["target_min"] == 4.0


# --- the API: scope and bad input ----------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_live(tiny_url):
    app = create_app({"database_url": tiny_url, "secret_key": "test-secret", "pool_max_size": 8,
                      "rural_road_target_min": 4.0, "chief_village_road_m": 600.0})
    make_users(tiny_url)  # the chief heads the first station: ST-A
    srv = LiveServer(app)
    yield srv
    srv.stop()


def _api(live, role: str) -> Client:
    c = Client(live.url)
    r = c.post("/api/v1/auth/login", json={"username": f"t_{role}", "password": PASSWORD})
    assert r.status_code == 200, r.text
    return c


def test_api_scope_chief_sees_own_station_only(tiny_live, tiny_conn):
    c = _api(tiny_live, "chief")
    r = c.get("/api/v1/maps/villages")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [v["code"] for v in body["rows"]] == ["V1", "V2", "V3"]
    assert body["window"]["days"] == 7
    r = c.get("/api/v1/maps/grid-measures", params={"window": "30"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/geo+json")
    assert sorted(f["properties"]["code"] for f in r.json()["features"]) == ["A1", "A2", "A3"]
    for path in ("/api/v1/maps/villages", "/api/v1/maps/grid-measures"):
        for other in ("ST-B", str(_org(tiny_conn, "ST-B"))):
            r = c.get(path, params={"station": other})
            assert r.status_code == 403, r.text
            assert r.json()["key"] == "err.organisation.outside_scope"
        r = c.get(path, params={"station": "NOPE"})
        assert r.status_code == 404 and r.json()["field"] == "station"
    c.close()


def test_api_county_roles_see_every_station(tiny_live):
    c = _api(tiny_live, "planner")
    rows = c.get("/api/v1/maps/villages").json()["rows"]
    assert sorted(v["code"] for v in rows) == ["V1", "V2", "V3", "V9"]
    assert [v["code"] for v in c.get("/api/v1/maps/villages", params={"station": "ST-B"}).json()["rows"]] == ["V9"]
    c.close()
    d = _api(tiny_live, "dispatcher")  # not a role of the grids page
    assert d.get("/api/v1/maps/villages").status_code == 403
    d.close()


@pytest.mark.parametrize(("params", "field"), [({"window": "14"}, "window"), ({"from": "2026-02-30"}, "from"),
                                               ({"from": "2026-12-01", "to": "2026-11-01"}, "to"),
                                               ({"source": "drone"}, "source")])
def test_api_bad_window_is_4xx_in_the_users_language(tiny_live, params, field):
    c = _api(tiny_live, "chief")
    r = c.get("/api/v1/maps/villages", params=params)
    assert r.status_code == 400 and r.json()["field"] == field, r.text
    zh = r.json()["message"]
    en = c.get("/api/v1/maps/villages", params={**params, "lang": "en"}).json()["message"]
    assert zh != en and any("\u4e00" <= ch <= "\u9fff" for ch in zh) and en.isascii()
    c.close()


# --- the pages on the small map world ------------------------------------------------------------

def test_grids_page_measures_villages_and_window(maps_login, maps_conn):
    c = maps_login("chief")  # heads 好生 (ST-HS)
    r = c.get("/map/grids")
    assert r.status_code == 200
    html = r.text
    assert 'data-testid="village-table"' in html and 'data-testid="grid-table"' in html
    assert "grids_measure" in html
    hs_villages = {r["name"] for r in maps_conn.execute(
        """SELECT v.name FROM village v JOIN jurisdiction j ON ST_Contains(j.geom, v.geom)
             JOIN organisation o ON o.id = j.organisation_id WHERE o.code = 'ST-HS' AND j.kind = 'station'""")}
    other = {r["name"] for r in maps_conn.execute(
        """SELECT v.name FROM village v JOIN jurisdiction j ON ST_Contains(j.geom, v.geom)
             JOIN organisation o ON o.id = j.organisation_id WHERE o.code = 'ST-DX' AND j.kind = 'station'""")}
    table = html.split('data-testid="village-table"', 1)[1].split("</table>", 1)[0]
    assert hs_villages and all(f"<td>{n}</td>" in table for n in hs_villages)
    assert not any(f"<td>{n}</td>" in table for n in other)
    assert "近7天" in html and 'value="30"' in html
    r = c.get("/map/grids", params={"window": "90", "measure": "patrol_share"})
    assert r.status_code == 200 and "近90天" in r.text
    r = c.get("/map/grids", params={"from": "2026-13-01"})
    assert r.status_code == 400 and 'data-field="from"' in r.text and "YYYY-MM-DD" in r.text
    r = c.get("/map/grids", params={"window": "5", "lang": "en"})
    assert r.status_code == 400 and "The patrol window (window) must be 7, 30, 90 days" in r.text
    r = c.get("/map/grids", params={"measure": "colour"})
    assert r.status_code == 400 and 'data-field="measure"' in r.text


def test_coverage_gap_list_is_the_chiefs_station(maps_login, maps_conn):
    chief = maps_login("chief").get("/map/coverage")
    admin = maps_login("admin").get("/map/coverage")
    assert chief.status_code == admin.status_code == 200
    assert "好生派出所覆盖缺口" in chief.text and "全县覆盖缺口" in admin.text

    def gap_ids(html: str) -> set[int]:
        import re
        return {int(x) for x in re.findall(r'data-gap="(\d+)"', html)}

    mine, county = gap_ids(chief.text), gap_ids(admin.text)
    assert mine and county and mine != county
    inside = {r["id"] for r in maps_conn.execute(
        """SELECT e.id FROM road_edge e JOIN jurisdiction j ON ST_Intersects(j.geom, ST_LineInterpolatePoint(e.geom, 0.5))
             JOIN organisation o ON o.id = j.organisation_id WHERE o.code = 'ST-HS' AND j.kind = 'station'
              AND e.id = ANY(%s)""", [sorted(mine)])}
    assert inside == mine
