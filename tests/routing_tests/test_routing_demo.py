"""Routing on the Zouping demo network: exact against pgRouting, coverage and the API end to end."""

from __future__ import annotations

import numpy as np
import pytest
from support import routing as rf

import routing
from gisapp.core import db
from gisapp.core.config import Settings
from routing import coverage, pgr
from routing.snap import source_seeds, target_seeds

SETTINGS = Settings.from_env()


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


@pytest.fixture
def dconn(demo_database_url):
    """A connection whose writes are rolled back (the demo copy is shared by the session)."""
    with db.connect(demo_database_url) as c:
        yield c
        c.rollback()


def test_demo_graph_is_county_sized(dconn):
    g = routing.get_router(dconn, SETTINGS).graph
    assert 10_000 < g.n_edges and g.forward.matrix.nnz >= 25_000
    assert g.memory_bytes()["total"] < 200 * 2**20


def test_demo_travel_times_equal_pgr_dijkstra_cost(dconn):
    # every station reaches every village: the network is connected
    assert rf.compare_node_times_with_pgr(dconn, SETTINGS, 20, seed=11) >= 300


def test_demo_nearest_units_equal_pgrouting(dconn):
    """The demo's units and random incident points: every unit's ETA equals pgRouting's."""
    router = routing.get_router(dconn, SETTINGS)
    g = router.graph
    rows = routing.queries.units(dconn, ("available", "assigned", "en_route", "on_scene", "off_duty"),
                                 None, None, None)
    assert len(rows) >= 50
    src = router.snap(np.array([(r[2], r[3]) for r in rows]))
    seeds = sorted({int(g.node_id[n]) for i in range(len(src))
                    for n, _, _ in source_seeds(g, int(src.edge[i]), float(src.fraction[i]))})
    rev = pgr.edges_sql(dconn, SETTINGS.road_speed_kmh, reverse=True)
    rng = np.random.default_rng(5)
    lo, hi = g.node_lonlat.min(axis=0), g.node_lonlat.max(axis=0)
    for lon, lat in rng.uniform(lo, hi, (4, 2)):
        tgt = router.snap(np.array([[lon, lat]]))
        tnodes = [int(g.node_id[n]) for n, _, _ in target_seeds(g, int(tgt.edge[0]), float(tgt.fraction[0]))]
        back = pgr.dijkstra_cost(dconn, SETTINGS.road_speed_kmh, tnodes, seeds, edges=rev)
        expect = pgr.compose_etas(g, src, tgt, 0, {(b, a): c for (a, b), c in back.items()})
        ans = router.nearest_from_rows(rows, float(lon), float(lat), k=len(rows))
        got = {u["unit_id"]: u["eta_s"] for u in ans["units"]}
        assert len(got) == int(np.isfinite(expect).sum())
        for i, r in enumerate(rows):
            if np.isfinite(expect[i]):
                assert rel(got[r[0]], expect[i]) < 1e-9


def test_demo_nearest_accident_qualified_in_a_joint_zone(dconn):
    zone = dconn.execute("SELECT id FROM joint_zone WHERE valid_to IS NULL ORDER BY code LIMIT 1").fetchone()["id"]
    town = dconn.execute("SELECT ST_X(geom) AS x, ST_Y(geom) AS y FROM town WHERE geom IS NOT NULL "
                         "ORDER BY code LIMIT 1").fetchone()
    router = routing.get_router(dconn, SETTINGS)
    ans = router.nearest_units(dconn, town["x"], town["y"], k=3, capability="accident_qualified",
                               joint_zone_id=zone, statuses=("available", "off_duty", "assigned", "en_route",
                                                             "on_scene"))
    members = {r["organisation_id"] for r in dconn.execute(
        "SELECT organisation_id FROM joint_zone_member WHERE joint_zone_id = %s UNION "
        "SELECT centre_org_id FROM joint_zone WHERE id = %s", [zone, zone])}
    assert ans["units"], ans["reason"]
    etas = [u["eta_s"] for u in ans["units"]]
    assert etas == sorted(etas)
    for u in ans["units"]:
        assert u["organisation_id"] in members
        caps = dconn.execute("SELECT capabilities FROM unit WHERE id = %s", [u["unit_id"]]).fetchone()["capabilities"]
        assert "accident_qualified" in caps
        assert u["route"]["type"] == "LineString" and u["distance_m"] > 0


def test_demo_coverage_radius_and_gaps(dconn):
    out = coverage.refresh_static(dconn, SETTINGS)
    assert out["stations"] >= 16 and 0.3 < out["within_target_share"] <= 1.0
    items = coverage.by_area(dconn, SETTINGS, "station")
    assert len(items) >= 16
    total = sum(i["road_km"] for i in items)
    km = dconn.execute("SELECT sum(length_m) / 1000 AS km FROM road_edge").fetchone()["km"]
    assert total == pytest.approx(km, rel=0.02)  # the jurisdictions tile the county
    assert all(0 <= i["share"] <= 1 for i in items if i["share"] is not None)
    radius = coverage.response_radius(dconn, SETTINGS)
    assert len(radius) >= 16
    for r in radius:
        if r["p50_s"] is not None:
            assert 0 <= r["p50_s"] <= r["p90_s"] <= r["max_s"]
    gaps = coverage.gaps(dconn, SETTINGS, limit=20)
    scores = [g["score"] for g in gaps]
    assert scores == sorted(scores, reverse=True)
    live = coverage.refresh_live(dconn, SETTINGS)
    # every edge has its live values (written now, or already by a worker's background refresh)
    assert live["units"] > 0 and 0 <= live["written"] <= live["edges"]
    assert dconn.execute("SELECT count(*) AS n FROM road_coverage WHERE unit_within_m IS NOT NULL"
                         ).fetchone()["n"] == live["edges"]
    assert coverage.refresh_live(dconn, SETTINGS)["written"] == 0


def test_demo_api(demo_http, demo_conn):
    inc = demo_conn.execute("SELECT id FROM incident ORDER BY id DESC LIMIT 1").fetchone()["id"]
    r = demo_http.get("/api/v1/routing/nearest-units", params={"incident_id": inc, "k": 5,
                                                                "status": "available,off_duty"})
    assert r.status_code == 200, r.text
    fc = r.json()
    assert 1 <= len(fc["features"]) <= 5
    etas = [f["properties"]["eta_s"] for f in fc["features"]]
    assert etas == sorted(etas)
    st = demo_conn.execute("SELECT id FROM organisation WHERE kind = 'station' AND hq IS NOT NULL "
                           "ORDER BY code LIMIT 1").fetchone()["id"]
    r = demo_http.get("/api/v1/routing/service-areas", params={"organisation_id": st, "budgets": "5,10",
                                                                "segments": "false"})
    assert r.status_code == 200, r.text
    areas = r.json()["features"]
    assert [a["properties"]["budget_min"] for a in areas] == [10, 5]
    assert areas[0]["properties"]["reached_km"] > areas[1]["properties"]["reached_km"] > 0
    r = demo_http.get("/api/v1/routing/response-radius")
    assert r.status_code == 200 and len(r.json()["items"]) >= 16


def test_demo_unit_snapshot_is_exact(dconn):
    """On the county demo, the in-memory units answer as reading the table does."""
    router = routing.get_router(dconn, SETTINGS)
    rng = np.random.default_rng(9)
    g = router.graph
    statuses = ("available", "assigned", "en_route", "on_scene", "off_duty")
    zone = dconn.execute("SELECT id FROM joint_zone ORDER BY id LIMIT 1").fetchone()["id"]
    for e in rng.choice(g.n_edges, 25):
        lon, lat = g.geom_lonlat[e].interpolate(0.3, normalized=True).coords[0]
        for k in (1, 5):
            assert routing.nearest_units(dconn, SETTINGS, lon, lat, k=k, statuses=statuses) == \
                router.nearest_units(dconn, lon, lat, k=k, statuses=statuses)
        assert routing.nearest_units(dconn, SETTINGS, lon, lat, joint_zone_id=zone, capability="accident_qualified") \
            == router.nearest_units(dconn, lon, lat, joint_zone_id=zone, capability="accident_qualified")


def test_demo_patrol_coverage(dconn):
    """The demo's patrol-car tracks give a patrol coverage: roads near the stations driven, remote
    rural roads often not (the chief's patrol gaps)."""
    from routing import patrol

    items = patrol.by_area(dconn, SETTINGS, "station", SETTINGS.patrol_days)
    assert len(items) >= 16
    road = sum(i["road_km"] for i in items)
    done = sum(i["patrolled_km"] for i in items)
    assert 0.05 < done / road < 0.9
    assert all(i["patrolled_km"] > 0 for i in items if i["road_km"] > 0)
    assert sum(i["rural"]["patrolled_km"] for i in items) / sum(i["rural"]["road_km"] for i in items) < done / road
