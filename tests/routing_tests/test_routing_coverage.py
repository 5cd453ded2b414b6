"""Coverage, gaps, response radius and service areas on the hand-made network (known answers),
and the routing API over real HTTP (answers and bad input)."""

from __future__ import annotations

import pytest
import shapely
from shapely.geometry import shape
from support.routing import lonlat

import routing
from gisapp.core import db
from gisapp.core.config import Settings
from gisapp.web import create_app
from routing import coverage
from routing.areas import service_areas

# Tight targets so that edges are partly covered: main roads 90 s, rural roads 240 s.
SETTINGS = Settings.from_env({"main_road_target_min": 1.5, "rural_road_target_min": 4.0})
BOX = [[117.702, 36.845], [117.725, 36.845], [117.725, 36.865], [117.702, 36.865], [117.702, 36.845]]


def _mid(a: str, b: str, f: float = 0.5) -> tuple[float, float]:
    (x0, y0), (x1, y1) = lonlat(a), lonlat(b)
    return (x0 + f * (x1 - x0), y0 + f * (y1 - y0))


@pytest.fixture(scope="module")
def world(hand_network):
    """A station at A with a jurisdiction around A-B-C-D, a grid, a joint zone, incidents, one unit."""
    url, nodes, edges = hand_network
    with db.connect(url, autocommit=True) as c:
        org = c.execute("INSERT INTO organisation (code, name, kind, hq) VALUES ('C-ST', '覆盖所', 'station', "
                        "ST_SetSRID(ST_MakePoint(%s, %s), 4326)) RETURNING id", list(lonlat("A"))).fetchone()["id"]
        poly = {"type": "Polygon", "coordinates": [BOX]}
        jid = c.execute("INSERT INTO jurisdiction (organisation_id, kind, version, geom, author, reason) VALUES "
                        "(%s, 'station', 1, ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON(%s), 4326)), 't', 't') "
                        "RETURNING id", [org, __import__("json").dumps(poly)]).fetchone()["id"]
        gid = c.execute("INSERT INTO grid (code, name, organisation_id, geom) VALUES ('C-G1', '警格', %s, "
                        "ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON(%s), 4326))) RETURNING id",
                        [org, __import__("json").dumps(poly)]).fetchone()["id"]
        zid = c.execute("INSERT INTO joint_zone (code, name, centre_org_id) VALUES ('C-Z', '战区', %s) RETURNING id",
                        [org]).fetchone()["id"]
        c.execute("INSERT INTO joint_zone_member (joint_zone_id, organisation_id, role) VALUES (%s, %s, 'centre')",
                  [zid, org])
        for (lon, lat), n in ((_mid("E", "F"), 3), (_mid("A", "D", 0.9), 1)):
            for i in range(n):
                c.execute("INSERT INTO incident (channel, type, geom, reported_at) VALUES ('110', 'theft', "
                          "ST_SetSRID(ST_MakePoint(%s, %s), 4326), '2025-06-01'::timestamptz + %s * interval '1 day')",
                          [lon, lat, i])
        uid = c.execute("INSERT INTO unit (code, name, organisation_id, kind, status, last_position) VALUES "
                        "('C-U1', '巡逻车', %s, 'patrol_car', 'available', ST_SetSRID(ST_MakePoint(%s, %s), 4326)) "
                        "RETURNING id", [org, *lonlat("B")]).fetchone()["id"]
    yield {"url": url, "org": org, "jurisdiction": jid, "grid": gid, "zone": zid, "unit": uid, "edges": edges}
    with db.connect(url, autocommit=True) as c:
        c.execute("DELETE FROM road_coverage")
        c.execute("DELETE FROM unit WHERE code = 'C-U1'")
        c.execute("DELETE FROM incident")
        c.execute("DELETE FROM grid WHERE code = 'C-G1'")
        c.execute("DELETE FROM joint_zone WHERE code = 'C-Z'")
        c.execute("DELETE FROM jurisdiction WHERE organisation_id = %s", [org])
        c.execute("DELETE FROM organisation WHERE code = 'C-ST'")


@pytest.fixture
def cconn(world):
    with db.connect(world["url"], autocommit=True) as c:
        yield c


def _cov(cconn, world):
    rows = cconn.execute("SELECT * FROM road_coverage").fetchall()
    by_name = {v: k for k, v in world["edges"].items()}
    return {by_name[r["edge_id"]]: r for r in rows}


def test_static_coverage_known_answers(cconn, world):
    out = coverage.refresh_static(cconn, SETTINGS)
    assert out["stations"] == 1 and out["incidents_counted"] == 4
    cov = _cov(cconn, world)
    t = {k: r["station_time_s"] for k, r in cov.items()}
    assert t["AB"] == pytest.approx(72) and t["BC"] == pytest.approx(108)
    assert t["AD"] == pytest.approx(270) and t["DC"] == pytest.approx(252)  # fronts meet inside the edge
    assert t["EF"] is None and t["GA"] is None                                # unreachable (GA is G -> A only)
    w = {k: r["station_within_m"] for k, r in cov.items()}
    assert w["AB"] == pytest.approx(1000) and w["BC"] == pytest.approx(500)
    assert w["AD"] == pytest.approx(2000 * 240 / 288) and w["DC"] == pytest.approx(1000 * (240 - 108) / 144)
    assert w["EF"] == 0 and w["GA"] == 0
    assert cov["AB"]["target_s"] == 90 and cov["AD"]["target_s"] == 240
    assert cov["AB"]["station_org_id"] == world["org"]
    assert cov["EF"]["incidents_past_year"] == 3 and cov["AD"]["incidents_past_year"] == 1


def test_coverage_by_area_and_gaps(cconn, world):
    coverage.refresh_static(cconn, SETTINGS)
    for kind, aid in (("station", world["jurisdiction"]), ("grid", world["grid"]), ("joint_zone", world["zone"])):
        items = {i["area_id"]: i for i in coverage.by_area(cconn, SETTINGS, kind)}
        it = items[aid]
        within = 1000 + 500 + 2000 * 240 / 288 + 1000 * 132 / 144
        assert it["road_km"] == pytest.approx(5.0) and it["within_km"] == pytest.approx(within / 1000, abs=1e-3)
        assert it["main"]["road_km"] == pytest.approx(2.0) and it["main"]["share"] == pytest.approx(0.75)
        assert set(it["by_class"]) == {"county", "national", "village"}
    gaps = coverage.gaps(cconn, SETTINGS)
    names = {v: k for k, v in world["edges"].items()}
    assert [names[g["edge_id"]] for g in gaps] == ["EF", "AD", "GA", "BC", "DC"]
    assert gaps[0]["score"] == pytest.approx(0.5 * 3) and gaps[0]["uncovered_m"] == pytest.approx(500)
    only = coverage.gaps(cconn, SETTINGS, area_kind="station", area_id=world["jurisdiction"], road_class="village")
    assert [names[g["edge_id"]] for g in only] == ["AD", "DC"]


def test_live_coverage_and_cheap_update(cconn, world):
    first = coverage.refresh_live(cconn, SETTINGS)
    assert first["units"] == 1 and first["written"] == 6
    cov = _cov(cconn, world)
    assert cov["AB"]["unit_time_s"] == pytest.approx(72) and cov["AB"]["unit_id"] == world["unit"]
    assert cov["BC"]["unit_time_s"] == pytest.approx(36)
    again = coverage.refresh_live(cconn, SETTINGS)
    assert again["written"] == 0  # nothing moved: nothing written
    cconn.execute("UPDATE unit SET last_position = ST_SetSRID(ST_MakePoint(%s, %s), 4326) WHERE id = %s",
                  [*lonlat("C"), world["unit"]])
    moved = coverage.refresh_live(cconn, SETTINGS)
    assert 0 < moved["written"] <= 6
    cov = _cov(cconn, world)
    assert cov["DC"]["unit_time_s"] == pytest.approx(144) and cov["BC"]["unit_time_s"] == pytest.approx(144 + 288 + 72 + 36)
    cconn.execute("UPDATE unit SET status = 'on_scene' WHERE id = %s", [world["unit"]])
    gone = coverage.refresh_live(cconn, SETTINGS)
    assert gone["units"] == 0
    assert all(r["unit_time_s"] is None for r in _cov(cconn, world).values())
    cconn.execute("UPDATE unit SET status = 'available', last_position = ST_SetSRID(ST_MakePoint(%s, %s), 4326) "
                  "WHERE id = %s", [*lonlat("B"), world["unit"]])


def test_live_coverage_is_recomputed_when_units_change(cconn, world):
    """refresh_live_if_stale recomputes only after a unit's status or position changed, and the
    background refresher (as each web worker runs it) picks a change up by itself."""
    import time

    def dc_time():
        return _cov(cconn, world)["DC"]["unit_time_s"]

    with cconn.transaction():
        coverage.refresh_live(cconn, SETTINGS)
    with cconn.transaction():
        assert coverage.refresh_live_if_stale(cconn, SETTINGS) is None  # current: one cheap statement
    cconn.execute("UPDATE unit SET last_position = ST_SetSRID(ST_MakePoint(%s, %s), 4326) WHERE id = %s",
                  [*lonlat("C"), world["unit"]])
    with cconn.transaction():
        out = coverage.refresh_live_if_stale(cconn, SETTINGS)
    assert out is not None and 0 < out["written"] <= 6 and dc_time() == pytest.approx(144)
    with cconn.transaction():
        assert coverage.refresh_live_if_stale(cconn, SETTINGS) is None

    refresher = coverage.LiveRefresher(world["url"], SETTINGS, interval_s=0.2, min_gap_s=0.1).start()
    try:
        cconn.execute("UPDATE unit SET status = 'on_scene' WHERE id = %s", [world["unit"]])
        deadline = time.monotonic() + 60
        while dc_time() is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert dc_time() is None and refresher.last_error is None  # no available unit any more
        cconn.execute("UPDATE unit SET status = 'available', last_position = ST_SetSRID(ST_MakePoint(%s, %s), 4326) "
                      "WHERE id = %s", [*lonlat("B"), world["unit"]])
        refresher.poke()
        while dc_time() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert dc_time() == pytest.approx(36 + 144)  # B -> C -> D... the whole of DC, reached from B
    finally:
        refresher.stop()
    assert refresher.refreshes >= 2


def test_live_coverage_matches_pgr_driving_distance(cconn, world, hand_network):
    from routing import pgr

    _, nodes, _ = hand_network
    router = routing.get_router(cconn, SETTINGS)
    starts = [nodes["A"], nodes["E"]]
    peer = pgr.driving_distance(cconn, SETTINGS.road_speed_kmh, starts, 1e9)
    ours = router.node_times(starts)
    for nid, (cost, _) in peer.items():
        assert abs(ours[router.graph.node_index(nid)] - cost) <= 1e-9 * max(1.0, cost)
    reached = {router.graph.node_index(n) for n in peer}
    assert all(ours[i] == float("inf") for i in range(router.graph.n_nodes) if i not in reached)


def test_response_radius(cconn, world):
    items = {i["jurisdiction_id"]: i for i in coverage.response_radius(cconn, SETTINGS)}
    it = items[world["jurisdiction"]]
    assert it["road_km"] == pytest.approx(5.0)
    assert it["p50_s"] == pytest.approx(252) and it["p90_s"] == pytest.approx(270) and it["max_s"] == pytest.approx(270)
    assert it["unreachable_km"] == 0


def test_service_areas_follow_the_network(cconn, world):
    router = routing.get_router(cconn, SETTINGS)
    src = router.snap([lonlat("A")])
    res = service_areas(router, src, [60.0, 120.0], buffer_m=50, simplify_m=0)
    a60, a120 = res["areas"]
    assert a60["reached_km"] == pytest.approx((1000 * 60 / 72 + 2000 * 60 / 288) / 1000, abs=1e-3)
    assert a120["reached_km"] == pytest.approx((1000 + 1000 + 2000 * 120 / 288 + 1000 * 12 / 144) / 1000, abs=1e-3)
    poly = a120["geometry"]
    assert poly.contains(shapely.Point(lonlat("B"))) and not poly.contains(shapely.Point(lonlat("D")))
    assert poly.contains(shapely.Point(_mid("B", "C"))) and not poly.contains(shapely.Point(lonlat("E")))
    # it follows the roads: the point halfway between B and D, off every road, is outside
    assert not poly.contains(shapely.Point(_mid("B", "D")))
    segs = {s["edge_id"]: s for s in res["segments"]}
    names = {v: k for k, v in world["edges"].items()}
    assert {names[e] for e in segs} == {"AB", "BC", "AD", "DC"}
    ab = segs[world["edges"]["AB"]]
    assert ab["time_from_s"] == 0 and ab["time_full_s"] == pytest.approx(72) and ab["whole_within_budget_s"] == 120
    assert segs[world["edges"]["AD"]]["time_full_s"] is None


# ------------------------------------------------------------------------------- over HTTP
@pytest.fixture(scope="module")
def rlive(world):
    from support.server import LiveServer

    app = create_app({"database_url": world["url"], "secret_key": "t", "main_road_target_min": 1.5,
                      "rural_road_target_min": 4.0})
    srv = LiveServer(app)
    yield srv
    srv.stop()


@pytest.fixture
def rhttp(rlive, world):
    """A client logged in as a viewer (nothing is read without a log-in)."""
    from support.database import PASSWORD
    from support.server import Client

    from gisapp.core import db
    from gisapp.core.accounts import create_user

    with db.connect(world["url"]) as conn:
        if not conn.execute("SELECT 1 FROM app_user WHERE username = 't_viewer'").fetchone():
            create_user(conn, "t_viewer", PASSWORD, "viewer")
        conn.commit()
    c = Client(rlive.url)
    assert c.post("/api/v1/auth/login", json={"username": "t_viewer", "password": PASSWORD}).status_code == 200
    yield c
    c.close()


def test_api_nearest_units_and_travel_time(rhttp, world):
    r = rhttp.get("/api/v1/routing/nearest-units", params={"lon": lonlat("C")[0], "lat": lonlat("C")[1], "k": 3})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/geo+json")
    fc = r.json()
    assert fc["type"] == "FeatureCollection" and fc["reason"] is None
    f = fc["features"][0]
    assert f["geometry"]["type"] == "LineString" and f["properties"]["unit_id"] == world["unit"]
    assert f["properties"]["eta_s"] == pytest.approx(36)
    r = rhttp.get("/api/v1/routing/nearest-units", params={"lon": lonlat("C")[0], "lat": lonlat("C")[1],
                                                             "capability": "accident_qualified"})
    assert r.status_code == 200 and r.json()["features"] == [] and "accident_qualified" in r.json()["reason"]
    r = rhttp.get("/api/v1/routing/travel-time", params={"from": "{},{}".format(*lonlat("A")), "to": "{},{}".format(*lonlat("C"))})
    assert r.status_code == 200 and r.json()["properties"]["eta_s"] == pytest.approx(108)
    assert r.json()["geometry"]["type"] == "LineString"


def test_api_incident_service_areas_coverage(rhttp, world, cconn):
    inc = cconn.execute("SELECT id FROM incident ORDER BY id LIMIT 1").fetchone()["id"]
    r = rhttp.get("/api/v1/routing/nearest-units", params={"incident_id": inc})
    assert r.status_code == 200 and r.json()["incident_id"] == inc
    r = rhttp.get("/api/v1/routing/service-areas", params={"organisation_id": world["org"], "budgets": "1,2"})
    assert r.status_code == 200, r.text
    fc = r.json()
    areas = [f for f in fc["features"] if f["properties"]["kind"] == "area"]
    assert [a["properties"]["budget_min"] for a in areas] == [2, 1]
    assert shape(areas[0]["geometry"]).contains(shapely.Point(lonlat("B")))
    assert any(f["properties"]["kind"] == "segment" for f in fc["features"])
    r = rhttp.get("/api/v1/routing/service-areas", params={"unit_id": world["unit"], "budgets": "1",
                                                            "segments": "false"})
    assert r.status_code == 200 and len(r.json()["features"]) == 1
    r = rhttp.get("/api/v1/routing/response-radius")
    assert r.status_code == 200 and any(i["jurisdiction_id"] == world["jurisdiction"] for i in r.json()["items"])
    coverage.refresh_static(cconn, SETTINGS)
    r = rhttp.get("/api/v1/routing/coverage", params={"area": "grid"})
    assert r.status_code == 200
    feat = [f for f in r.json()["features"] if f["id"] == world["grid"]][0]
    assert feat["geometry"]["type"] == "MultiPolygon" and feat["properties"]["road_km"] == pytest.approx(5.0)
    r = rhttp.get("/api/v1/routing/gaps", params={"limit": 2})
    assert r.status_code == 200 and len(r.json()["features"]) == 2
    assert r.json()["features"][0]["properties"]["rank"] == 1
    r = rhttp.get("/api/v1/routing/graph")
    assert r.status_code == 200 and r.json()["memory_bytes"]["total"] > 0


def test_api_refresh_needs_a_role(rhttp, rlive, world):
    from support.server import Client

    r = Client(rlive.url).post("/api/v1/routing/coverage/refresh", json={"static": True})
    assert r.status_code == 401
    r = rhttp.post("/api/v1/routing/coverage/refresh", json={"static": True})
    assert r.status_code == 403


@pytest.mark.parametrize("path,params,status,field", [
    ("/api/v1/routing/nearest-units", {"lon": "200", "lat": "36.9"}, 400, "lon"),
    ("/api/v1/routing/nearest-units", {"lon": "117.7", "lat": "-91"}, 400, "lat"),
    ("/api/v1/routing/nearest-units", {"lon": "abc", "lat": "36.9"}, 400, "lon"),
    ("/api/v1/routing/nearest-units", {"lon": "116.0", "lat": "36.9"}, 422, "lon,lat"),
    ("/api/v1/routing/nearest-units", {"lon": "36.9", "lat": "117.7"}, 400, "lat"),
    ("/api/v1/routing/nearest-units", {"lat": "36.9"}, 400, "lon"),
    ("/api/v1/routing/nearest-units", {"lon": "117.7", "lat": "36.9", "k": "0"}, 400, "k"),
    ("/api/v1/routing/nearest-units", {"lon": "117.7", "lat": "36.9", "k": "x"}, 400, "k"),
    ("/api/v1/routing/nearest-units", {"lon": "117.7", "lat": "36.9", "status": "flying"}, 400, "status"),
    ("/api/v1/routing/nearest-units", {"lon": "117.7", "lat": "36.9", "organisation_id": "99999"}, 404,
     "organisation_id"),
    ("/api/v1/routing/nearest-units", {"lon": "117.7", "lat": "36.9", "joint_zone_id": "99999"}, 404,
     "joint_zone_id"),
    ("/api/v1/routing/nearest-units", {"lon": "117.7", "lat": "36.9", "capability": "Bad Tag"}, 400, "capability"),
    ("/api/v1/routing/nearest-units", {"incident_id": "99999"}, 404, "incident_id"),
    ("/api/v1/routing/nearest-units", {"lon": "117.7", "lat": "36.9", "colour": "red"}, 400, "colour"),
    ("/api/v1/routing/travel-time", {"from": "117.7", "to": "117.7,36.9"}, 400, "from"),
    ("/api/v1/routing/travel-time", {"from": "117.7,36.9"}, 400, "to"),
    ("/api/v1/routing/travel-time", {"from": "117.7,36.9", "to": "120.0,36.9"}, 422, "to"),
    ("/api/v1/routing/service-areas", {"budgets": "5"}, 400, "organisation_id"),
    ("/api/v1/routing/service-areas", {"lon": "117.7", "lat": "36.9", "budgets": "1,2,3,4,5,6,7"}, 400, "budgets"),
    ("/api/v1/routing/service-areas", {"lon": "117.7", "lat": "36.9", "budgets": "0"}, 400, "budgets"),
    ("/api/v1/routing/service-areas", {"lon": "117.7", "lat": "36.9", "budgets": "ten"}, 400, "budgets"),
    ("/api/v1/routing/service-areas", {"unit_id": "99999"}, 404, "unit_id"),
    ("/api/v1/routing/service-areas", {"organisation_id": "x"}, 400, "organisation_id"),
    ("/api/v1/routing/coverage", {"area": "county"}, 400, "area"),
    ("/api/v1/routing/coverage", {"source": "both"}, 400, "source"),
    ("/api/v1/routing/gaps", {"limit": "0"}, 400, "limit"),
    ("/api/v1/routing/gaps", {"road_class": "motorway"}, 400, "road_class"),
    ("/api/v1/routing/gaps", {"area": "station", "area_id": "99999"}, 404, "area_id"),
    ("/api/v1/routing/gaps", {"area_id": "1"}, 400, "area"),
])
def test_api_bad_input_names_the_field(rhttp, world, path, params, status, field):
    r = rhttp.get(path, params=params)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["field"] == field and body["reason"] and body["error"]


def test_api_live_coverage_follows_the_units_at_once(rhttp, world, cconn):
    """A read of the live coverage recomputes it first when a unit changed since."""
    def grid_within_km() -> float:
        r = rhttp.get("/api/v1/routing/coverage", params={"area": "grid", "source": "live", "geometry": "false"})
        assert r.status_code == 200, r.text
        return [f for f in r.json()["features"] if f["id"] == world["grid"]][0]["properties"]["within_km"]

    assert grid_within_km() > 0
    cconn.execute("UPDATE unit SET status = 'on_scene' WHERE id = %s", [world["unit"]])
    try:
        assert grid_within_km() == 0
        r = rhttp.get("/api/v1/routing/gaps", params={"source": "live", "limit": 10})
        assert r.status_code == 200 and all(f["properties"]["time_s"] is None for f in r.json()["features"])
    finally:
        cconn.execute("UPDATE unit SET status = 'available' WHERE id = %s", [world["unit"]])
    assert grid_within_km() > 0


def test_patrol_coverage_from_position_reports(cconn, world, rhttp):
    """Reports on a road and moving count as patrol of that segment, once; far or parked ones do not."""
    import time

    from routing import patrol

    cconn.execute("DELETE FROM patrol_edge_day")
    cconn.execute("DELETE FROM patrol_watermark")
    cconn.execute("DELETE FROM unit_position")
    u = world["unit"]
    lon_ab, lat_ab = _mid("A", "B", 0.4)
    for i, (lon, lat, speed) in enumerate([(lon_ab, lat_ab, 35.0),        # on AB, moving: patrol
                                           (lon_ab, lat_ab + 0.01, 35.0),  # about 1 km off every road
                                           (*_mid("B", "C", 0.5), 0.0),   # on BC but parked
                                           (*_mid("D", "C", 0.5), None)]):  # on DC, no speed reported
        cconn.execute("INSERT INTO unit_position (unit_id, geom, reported_at, speed_kmh) VALUES "
                      "(%s, ST_SetSRID(ST_MakePoint(%s, %s), 4326), now() - %s * interval '1 minute', %s)",
                      [u, lon, lat, i + 1, speed])
    def ingest() -> dict:
        for _ in range(100):  # the live server's maintenance thread may hold the lock for a moment
            with cconn.transaction():
                out = patrol.ingest(cconn, SETTINGS, settle_s=0.0)
            if out is not None:
                return out
            time.sleep(0.05)
        raise AssertionError("the patrol ingestion lock stayed taken")

    out = ingest()
    assert out["read"] == 4 and out["matched"] == 2
    got = {r["edge_id"]: r["hits"] for r in cconn.execute("SELECT edge_id, hits FROM patrol_edge_day").fetchall()}
    assert got == {world["edges"]["AB"]: 1, world["edges"]["DC"]: 1}
    assert ingest()["read"] == 0  # nothing counted twice
    # per area: AB (1 km) and DC (1 km) of the grid's 5 km of roads
    it = {i["area_id"]: i for i in patrol.by_area(cconn, SETTINGS, "grid", 7)}[world["grid"]]
    assert it["road_km"] == pytest.approx(5.0) and it["patrolled_km"] == pytest.approx(2.0)
    assert it["share"] == pytest.approx(0.4)
    r = rhttp.get("/api/v1/routing/patrol", params={"area": "grid", "days": 7})
    assert r.status_code == 200, r.text
    feat = [f for f in r.json()["features"] if f["id"] == world["grid"]][0]
    assert feat["properties"]["share"] == pytest.approx(0.4) and feat["geometry"] is None
    r = rhttp.get("/api/v1/routing/patrol", params={"area": "grid", "geometry": "true"})
    feat = [f for f in r.json()["features"] if f["id"] == world["grid"]][0]
    assert feat["geometry"]["type"] == "MultiPolygon" and "geometry" not in feat["properties"]
    for bad, field in (({"days": 0}, "days"), ({"days": "x"}, "days"), ({"area": "planet"}, "area"),
                       ({"nope": 1}, "nope")):
        r = rhttp.get("/api/v1/routing/patrol", params=bad)
        assert r.status_code == 400 and r.json()["field"] == field, (bad, r.text)
