"""Routing on a hand-made network with known answers: costs, oneway, partial edges, snapping, units."""

from __future__ import annotations

import itertools
import math

import numpy as np
import psycopg
import pytest
from support.routing import EDGES, NODES, lonlat

import routing
from gisapp.core import db
from gisapp.core.config import Settings
from routing import pgr

SETTINGS = Settings.from_env()


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


@pytest.fixture
def hconn(hand_network):
    url, _, _ = hand_network
    with db.connect(url, autocommit=True) as c:
        yield c


@pytest.fixture
def router(hconn):
    return routing.get_router(hconn, SETTINGS)


def test_graph_shape_and_memory(router):
    g = router.graph
    assert g.n_edges == len(EDGES)
    assert g.n_nodes == len(NODES)
    # two-way edges give two arcs, oneway edges one
    assert g.forward.matrix.nnz == sum(1 if e[5] else 2 for e in EDGES)
    mem = g.memory_bytes()
    assert mem["total"] == mem["csr"] + mem["edge_arrays"] + mem["geometries"] > 0


def test_known_node_to_node_times(router, hand_network):
    _, nodes, _ = hand_network
    t = router.node_times([nodes["A"]])
    at = {name: t[router.graph.node_index(nid)] for name, nid in nodes.items()}
    assert at["A"] == 0
    assert at["B"] == pytest.approx(72.0, rel=1e-12)
    assert at["C"] == pytest.approx(108.0, rel=1e-12)        # A -> B -> C (oneway, 100 km/h)
    assert at["D"] == pytest.approx(252.0, rel=1e-12)        # A -> B -> C -> D beats A -> D (288)
    assert math.isinf(at["E"]) and math.isinf(at["F"])      # another component
    assert math.isinf(at["G"])                              # G -> A is oneway
    back = router.node_times([nodes["C"]])
    assert back[router.graph.node_index(nodes["B"])] == pytest.approx(144 + 288 + 72, rel=1e-12)  # C-D-A-B
    toward_a = router.node_times([nodes["A"]], toward=True)
    assert toward_a[router.graph.node_index(nodes["G"])] == pytest.approx(72.0, rel=1e-12)


def test_equals_pgr_dijkstra_cost_on_hand_graph(router, hconn, hand_network):
    _, nodes, _ = hand_network
    ids = list(nodes.values())
    peer = pgr.dijkstra_cost(hconn, SETTINGS.road_speed_kmh, ids, ids)
    for s in ids:
        ours = router.node_times([s])
        for t in ids:
            mine = ours[router.graph.node_index(t)]
            if s == t:
                assert mine == 0
            elif (s, t) in peer:
                assert rel(mine, peer[(s, t)]) < 1e-9
            else:
                assert math.isinf(mine), (s, t)


def _mid(a: str, b: str, f: float = 0.5) -> tuple[float, float]:
    (x0, y0), (x1, y1) = lonlat(a), lonlat(b)
    return (x0 + f * (x1 - x0), y0 + f * (y1 - y0))


def test_travel_time_partial_edges_and_oneway(router, hconn):
    # On AB a quarter of the way from A, to the middle of BC: 0.75*72 + 0.5*36
    r = router.travel_time(hconn, _mid("A", "B", 0.25), _mid("B", "C", 0.5))
    assert r["eta_s"] == pytest.approx(0.75 * 72 + 18, abs=0.05)
    assert r["distance_m"] == pytest.approx(750 + 500, abs=0.5)
    assert r["from_snap"]["distance_m"] < 0.01 and not r["from_snap"]["flagged"]
    assert r["route"]["type"] == "LineString"
    assert r["route"]["coordinates"][0] == pytest.approx(list(_mid("A", "B", 0.25)), abs=1e-6)
    assert r["route"]["coordinates"][-1] == pytest.approx(list(_mid("B", "C", 0.5)), abs=1e-6)
    # Back against the oneway: middle of BC to A must go on to C, then C-D-A.
    r = router.travel_time(hconn, _mid("B", "C", 0.5), lonlat("A"))
    assert r["eta_s"] == pytest.approx(18 + 144 + 288, abs=0.05)
    # Same edge, with and against a oneway.
    r = router.travel_time(hconn, _mid("B", "C", 0.2), _mid("B", "C", 0.7))
    assert r["eta_s"] == pytest.approx(0.5 * 36, abs=0.05)
    r = router.travel_time(hconn, _mid("B", "C", 0.7), _mid("B", "C", 0.2))
    assert r["eta_s"] == pytest.approx(0.3 * 36 + 144 + 288 + 72 + 0.2 * 36, abs=0.05)
    # Two-way edge, backwards along it.
    r = router.travel_time(hconn, _mid("A", "B", 0.8), _mid("A", "B", 0.3))
    assert r["eta_s"] == pytest.approx(0.5 * 72, abs=0.05)


def test_unreachable(router, hconn):
    r = router.travel_time(hconn, lonlat("A"), _mid("E", "F"))
    assert r["eta_s"] is None and "cannot be reached" in r["reason"]


def test_far_off_road_point_is_flagged_and_costs_offroad_time(router, hconn):
    # 0.01 degree north of the middle of DC: ~1.1 km from any road (more than snap_max_distance_m).
    lon, lat = _mid("D", "C")
    far = (lon + 0.005, lat + 0.008)
    r = router.travel_time(hconn, lonlat("A"), far)
    snap = r["to_snap"]
    assert snap["flagged"] is True and snap["distance_m"] > SETTINGS.snap_max_distance_m
    offroad_s = snap["distance_m"] / (SETTINGS.offroad_speed_kmh / 3.6)
    assert r["eta_s"] > offroad_s
    # A point close to the road is not flagged, and pays its short off-road leg.
    near = router.travel_time(hconn, lonlat("A"), (lonlat("B")[0], lonlat("B")[1] + 0.001))
    assert near["to_snap"]["flagged"] is False
    assert near["eta_s"] == pytest.approx(72 + near["to_snap"]["distance_m"] / (SETTINGS.offroad_speed_kmh / 3.6),
                                          abs=0.05)


def test_rebuilds_when_the_network_changes(hconn, hand_network):
    r1 = routing.get_router(hconn, SETTINGS)
    assert routing.get_router(hconn, SETTINGS) is r1
    _, _, edges = hand_network
    with hconn.transaction():
        hconn.execute("UPDATE road_edge SET speed_kmh = 50 WHERE id = %s", [edges["AD"]])
        r2 = routing.get_router(hconn, SETTINGS)
        assert r2 is not r1 and r2.version > r1.version
        assert r2.travel_time(hconn, lonlat("A"), lonlat("D"))["eta_s"] == pytest.approx(144.0, rel=1e-9)
        hconn.execute("UPDATE road_edge SET speed_kmh = NULL WHERE id = %s", [edges["AD"]])


@pytest.fixture
def units(hconn):
    """Three units of a fresh station on the hand network; removed afterwards."""
    org = hconn.execute("INSERT INTO organisation (code, name, kind, hq) VALUES ('R-ST', '路测所', 'station', "
                        "ST_SetSRID(ST_MakePoint(%s, %s), 4326)) RETURNING id", list(lonlat("A"))).fetchone()["id"]
    org2 = hconn.execute("INSERT INTO organisation (code, name, kind) VALUES ('R-SQ', '路测中队', 'squadron') "
                         "RETURNING id").fetchone()["id"]
    spec = [  # code, org, position, capabilities, status
        ("U1", org, lonlat("A"), ["accident_qualified"], "available"),
        ("U2", org, _mid("D", "C", 0.5), [], "available"),
        ("U3", org2, lonlat("B"), ["accident_qualified", "breathalyser"], "available"),
        ("U4", org, lonlat("C"), ["accident_qualified"], "on_scene"),
        ("U5", org, lonlat("E"), [], "available"),
    ]
    ids = {}
    for code, o, (lon, lat), caps, status in spec:
        ids[code] = hconn.execute(
            "INSERT INTO unit (code, name, organisation_id, kind, capabilities, status, last_position) "
            "VALUES (%s, %s, %s, 'patrol_car', %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326)) RETURNING id",
            [code, code, o, caps, status, lon, lat]).fetchone()["id"]
    yield ids, org, org2
    hconn.execute("DELETE FROM unit WHERE code LIKE 'U_'")
    hconn.execute("DELETE FROM organisation WHERE code IN ('R-ST', 'R-SQ')")


def test_nearest_units_contract_and_answers(router, hconn, units):
    ids, org, org2 = units
    target = lonlat("C")
    ans = router.nearest_units(hconn, *target, k=5)
    assert set(ans) == {"incident", "units", "reason"}
    assert set(ans["incident"]) == {"lon", "lat", "snap"}
    assert set(ans["incident"]["snap"]) >= {"edge_id", "distance_m", "flagged"}
    got = [(u["code"], u["eta_s"]) for u in ans["units"]]
    # U3 at B: 36 s; U2 in the middle of DC: 72 s; U1 at A: 108 s; U4 is on scene; U5 cannot reach C.
    assert [c for c, _ in got] == ["U3", "U2", "U1"]
    assert [t for _, t in got] == pytest.approx([36.0, 72.0, 108.0], abs=0.05)  # U2: cm off the road
    u = ans["units"][0]
    assert set(u) >= {"unit_id", "code", "name", "organisation_id", "eta_s", "distance_m", "straight_line_m",
                      "straight_line_rank", "route"}
    assert u["unit_id"] == ids["U3"] and u["organisation_id"] == org2 and u["distance_m"] == pytest.approx(1000)
    assert u["route"]["type"] == "LineString" and len(u["route"]["coordinates"]) >= 2
    # straight-line ranks among the 4 qualifying units: U2 (~560 m) 1st, U3 (~890 m) 2nd, U1 3rd, U5 4th
    assert {x["code"]: x["straight_line_rank"] for x in ans["units"]} == {"U2": 1, "U3": 2, "U1": 3}
    assert ans["reason"] is None
    assert [x["code"] for x in router.nearest_units(hconn, *target, k=1)["units"]] == ["U3"]


def test_nearest_units_filters_and_reasons(router, hconn, units):
    ids, org, org2 = units
    target = lonlat("C")
    acc = router.nearest_units(hconn, *target, capability="accident_qualified")
    assert [u["code"] for u in acc["units"]] == ["U3", "U1"]
    both = router.nearest_units(hconn, *target, capability=["accident_qualified", "breathalyser"])
    assert [u["code"] for u in both["units"]] == ["U3"]
    mine = router.nearest_units(hconn, *target, organisation_ids=[org])
    assert [u["code"] for u in mine["units"]] == ["U2", "U1"]
    busy = router.nearest_units(hconn, *target, statuses=("available", "on_scene"))
    assert busy["units"][0]["code"] == "U4" and busy["units"][0]["eta_s"] == 0
    none = router.nearest_units(hconn, *target, capability="no_such_tag")
    assert none["units"] == [] and "no_such_tag" in none["reason"]
    stuck = router.nearest_units(hconn, *target, organisation_ids=[org], capability=None, k=5,
                                 joint_zone_id=None, statuses=("available",))
    assert all(u["code"] != "U5" for u in stuck["units"])
    iso = router.nearest_units(hconn, *_mid("E", "F", 0.5))
    assert [u["code"] for u in iso["units"]] == ["U5"]
    nz = router.nearest_units(hconn, *target, joint_zone_id=987654)
    assert nz["units"] == [] and "987654" in nz["reason"]
    # Only the unit that cannot reach: a clear reason.
    unreachable = router.nearest_units(hconn, *_mid("E", "F", 0.5), organisation_ids=[org2])
    assert unreachable["units"] == [] and "reach" in unreachable["reason"]


def test_nearest_units_agree_with_pgrouting(router, hconn, hand_network, units):
    """Unit ETAs equal pgRouting's node costs composed with the same partial-edge offsets."""
    _, nodes, _ = hand_network
    ids = list(nodes.values())
    peer = pgr.dijkstra_cost(hconn, SETTINGS.road_speed_kmh, ids, ids)
    for name in ("A", "B", "C", "D"):
        ans = router.nearest_units(hconn, *lonlat(name), k=10)
        for u in ans["units"]:
            start = [k for k, v in NODES.items() if lonlat(k) == tuple(
                hconn.execute("SELECT ST_X(last_position) x, ST_Y(last_position) y FROM unit WHERE id = %s",
                              [u["unit_id"]]).fetchone().values())]
            if not start:
                continue  # U2 sits inside an edge (checked by the known-answer test)
            s, t = nodes[start[0]], nodes[name]
            expect = 0.0 if s == t else peer[(s, t)]
            assert rel(u["eta_s"], expect) < 1e-9 or u["eta_s"] == expect == 0


def test_many_random_points_match_brute_force(router, hconn):
    """Random points: ETAs from the reverse search equal forward searches point by point."""
    rng = np.random.default_rng(7)
    pts = np.column_stack([rng.uniform(117.695, 117.725, 12), rng.uniform(36.845, 36.875, 12)])
    for a, b in itertools.product(range(6), range(6, 12)):
        r = router.travel_time(hconn, tuple(pts[a]), tuple(pts[b]))
        src = router.snap(pts[a:a + 1])
        tree = router.from_points(src, predecessors=False, with_sources=False)
        tgt = router.snap(pts[b:b + 1])
        # forward: time to the target's seed nodes plus the partial edge, or along the shared edge
        g = router.graph
        e, f = int(tgt.edge[0]), float(tgt.fraction[0])
        best = tree.dist[g.edge_u[e]] + f * g.edge_cost_s[e]
        if not g.edge_oneway[e]:
            best = min(best, tree.dist[g.edge_v[e]] + (1 - f) * g.edge_cost_s[e])
        if int(src.edge[0]) == e:
            from routing.snap import same_edge_time
            best = min(best, src.offroad_s[0] + same_edge_time(g, e, float(src.fraction[0]), f)[0])
        best += tgt.offroad_s[0]
        if math.isinf(best):
            assert r["eta_s"] is None
        else:
            assert rel(r["eta_s"], best) < 1e-9


def test_one_round_trip_nearest_units_equals_router(router, hconn, units):
    a = routing.nearest_units(hconn, SETTINGS, *lonlat("C"), k=5)
    b = router.nearest_units(hconn, *lonlat("C"), k=5)
    assert a == b and [u["code"] for u in a["units"]] == ["U3", "U2", "U1"]
    none = routing.nearest_units(hconn, SETTINGS, *lonlat("C"), capability="no_such_tag")
    assert none["units"] == [] and "no_such_tag" in none["reason"]


def test_single_source_closed_form_matches_the_piecewise_envelope():
    """Edges holding one source use closed forms; they equal the general piecewise envelope."""
    from routing.reach import envelope_pieces, interval_max, interval_within, intervals_within

    rng = np.random.default_rng(1)
    for _ in range(3000):
        c = float(rng.choice([0.0, rng.uniform(1, 100)], p=[0.05, 0.95]))
        a = float(rng.choice([np.inf, rng.uniform(0, 300)], p=[0.2, 0.8]))
        b = float(rng.choice([np.inf, rng.uniform(0, 300)], p=[0.2, 0.8]))
        f = float(rng.choice([0.0, 1.0, rng.uniform()], p=[0.1, 0.1, 0.8]))
        o = float(rng.uniform(0, 200))
        oneway = bool(rng.random() < 0.4)
        b_eff = np.inf if oneway else b
        budget = float(rng.uniform(0, 400))
        pcs = envelope_pieces(a, b_eff, c, oneway, [(f, o, 0)])
        want_max = max(max(p[2], p[3]) for p in pcs)
        want_within = min(1.0, sum(hi - lo for lo, hi in intervals_within(pcs, budget)))
        back = (not oneway) or f == 0.0
        d1 = min(b_eff + (1 - f) * c, o if back else np.inf)
        i2 = min(a + f * c, o)
        got_max = max(interval_max(np.array([a]), np.array([d1]), f, np.array([c]))[0],
                      interval_max(np.array([i2]), np.array([b_eff]), 1 - f, np.array([c]))[0])
        got_within = min(1.0, interval_within(np.array([a]), np.array([d1]), f, np.array([c]), budget)[0]
                         + interval_within(np.array([i2]), np.array([b_eff]), 1 - f, np.array([c]), budget)[0])
        if c > 0:
            assert got_max == pytest.approx(want_max, rel=1e-12, abs=1e-9)
            assert got_within == pytest.approx(want_within, abs=1e-9)


def test_unit_snapshot_equals_reading_the_table_and_follows_every_change(router, hconn, units):
    """The in-memory units give the same answers as reading the table, for every filter, and a
    change is seen at once: committed, uncommitted in the caller's transaction, a second update
    of the same row in that transaction, and a rollback."""
    ids, org, org2 = units
    filters = [{}, {"capability": "accident_qualified"}, {"capability": ["accident_qualified", "breathalyser"]},
               {"organisation_ids": [org2]}, {"organisation_ids": []},
               {"statuses": ("available", "on_scene")}, {"capability": "no_such_tag"}]

    def check():
        for name in ("A", "B", "C", "D", "E"):
            for f in filters:
                for k in (1, 2, 4):
                    assert routing.nearest_units(hconn, SETTINGS, *lonlat(name), k=k, **f) == \
                        router.nearest_units(hconn, *lonlat(name), k=k, **f), (name, f, k)

    def codes():
        return [u["code"] for u in routing.nearest_units(hconn, SETTINGS, *lonlat("C"), k=5)["units"]]

    check()
    assert codes() == ["U3", "U2", "U1"]
    hconn.execute("UPDATE unit SET status = 'on_scene' WHERE id = %s", [ids["U3"]])  # autocommit
    assert codes() == ["U2", "U1"]
    check()
    with hconn.transaction() as tx:
        hconn.execute("UPDATE unit SET status = 'available' WHERE id = %s", [ids["U3"]])
        assert codes() == ["U3", "U2", "U1"]
        hconn.execute("UPDATE unit SET last_position = ST_SetSRID(ST_MakePoint(%s, %s), 4326) WHERE id = %s",
                      [*lonlat("A"), ids["U3"]])  # the same row again, in the same transaction
        assert codes()[0] == "U2"
        raise psycopg.Rollback(tx)
    assert codes() == ["U2", "U1"]
    hconn.execute("UPDATE unit SET status = 'available' WHERE id = %s", [ids["U3"]])
    check()


def test_a_point_exactly_on_a_node_snaps_to_an_end_of_its_edge(router, hconn, hand_network):
    """Issue 16, item 6: a point on a road node where several edges tie snaps to the lowest-numbered
    edge at fraction exactly 0 or 1 (the split point's arithmetic gave 1.9e-14 on OSM data, and the
    point could then only leave along a one-way edge), so every node-to-node time from or to the
    node's own position equals the node-to-node time."""
    for name in NODES:
        s = router.snapper.snap(np.array([lonlat(name)]))
        assert float(s.fraction[0]) in (0.0, 1.0), (name, float(s.fraction[0]))
        many = router.snapper.snap(np.array([lonlat(name), lonlat(name)]))  # the array path too
        assert set(many.fraction.tolist()) <= {0.0, 1.0}, (name, many.fraction.tolist())
    # C is the end of the one-way BC (the lowest-numbered edge at C): reached from D by DC
    assert router.travel_time(hconn, lonlat("D"), lonlat("C"))["eta_s"] == pytest.approx(144, abs=1e-6)
    # A: GA (one-way, into A) also ends there; the point leaves along AB
    assert router.travel_time(hconn, lonlat("A"), lonlat("D"))["eta_s"] == pytest.approx(72 + 36 + 144, abs=1e-6)  # A-B-C-D


def test_the_split_fraction_is_exact_at_the_ends():
    from routing.snap import exact_fraction

    assert exact_fraction(np.array([1.9e-11, 500.0, 1000.0 - 2e-11]), np.array([1000.0] * 3)).tolist() == [
        0.0, 0.5, 1.0]
    assert exact_fraction(np.array([0.0]), np.array([0.0])).tolist() == [0.0]  # a zero-length edge
