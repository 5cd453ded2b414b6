"""The sparse search (routing.fastsearch) against a full Dijkstra, road and unit changes, the shared graph."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import routing
from gisapp.core import db
from gisapp.core.config import Settings
from routing import fastsearch, shared
from routing.graph import build_csr
from routing.router import Router

SETTINGS = Settings.from_env()
ROOT = Path(__file__).resolve().parents[2]


def generated_graph(size: int, seed: int) -> SimpleNamespace:
    """A perturbed grid with float travel times, one-way streets and missing streets."""
    rng = np.random.default_rng(seed)
    ids = np.arange(size * size, dtype=np.int64).reshape(size, size)
    u = np.concatenate([ids[:, :-1].ravel(), ids[:-1, :].ravel()])
    v = np.concatenate([ids[:, 1:].ravel(), ids[1:, :].ravel()])
    keep = rng.random(len(u)) >= 0.05
    u, v = u[keep], v[keep]
    cost = rng.uniform(3.0, 40.0, len(u)) * np.where(rng.random(len(u)) < 0.1, 0.3, 1.0)
    oneway = rng.random(len(u)) < 0.15
    flip = oneway & (rng.random(len(u)) < 0.5)
    u, v = np.where(flip, v, u).astype(np.int32), np.where(flip, u, v).astype(np.int32)
    m = len(u)
    idx = np.arange(m, dtype=np.int32)
    two = ~oneway
    a_src, a_dst = np.concatenate([u, v[two]]), np.concatenate([v, u[two]])
    a_cost, a_edge = np.concatenate([cost, cost[two]]), np.concatenate([idx, idx[two]])
    a_fwd = np.concatenate([np.ones(m, dtype=bool), np.zeros(int(two.sum()), dtype=bool)])
    n = size * size
    return SimpleNamespace(edge_u=u, edge_v=v, edge_cost_s=cost, edge_oneway=oneway, edge_length_m=cost * 10,
                           forward=build_csr(n, a_src, a_dst, a_cost, a_edge, a_fwd),
                           reverse=build_csr(n, a_dst, a_src, a_cost, a_edge, a_fwd))


def points(g, rng, n: int) -> SimpleNamespace:
    """Random points on random edges (some exactly at an end), with random off-road legs."""
    e = rng.integers(0, len(g.edge_u), n)
    f = rng.random(n)
    f[rng.random(n) < 0.1] = 0.0
    f[rng.random(n) < 0.1] = 1.0
    return SimpleNamespace(edge=e.astype(np.int64), fraction=f, offroad_s=rng.uniform(0.0, 30.0, n),
                           distance_m=np.zeros(n))


def bare_router(g) -> Router:
    r = Router.__new__(Router)
    r.graph, r.engine, r._last_cands = g, "sparse", None
    return r


def top(eta: np.ndarray, k: int) -> tuple[list[int], np.ndarray]:
    order = [int(i) for i in np.lexsort((np.arange(len(eta)), eta))[:k] if np.isfinite(eta[i])]
    return order, eta[order]


@pytest.mark.parametrize("k", [1, 5, 40])
def test_sparse_search_equals_full_dijkstra_on_a_generated_graph(k):
    g = generated_graph(90, seed=k)
    rng = np.random.default_rng(100 + k)
    r = bare_router(g)
    units = points(g, rng, 300)
    units.edge[:3] = -1  # units without a road never qualify
    settled = []
    for _ in range(60):
        tgt = points(g, rng, 1)
        full = r.toward(tgt, 0, np.inf)  # scipy, whole graph, no limit
        want = top(r.etas_to(full, tgt, 0, units)[0], k)
        tree = r.toward_k(tgt, 0, units, k)
        got = top(r.etas_to(tree, tgt, 0, units)[0], k)
        assert got[0] == want[0]
        assert np.array_equal(got[1], want[1])
        settled.append(tree.settled)
    assert np.median(settled) < 90 * 90 / 4  # it stops early: far fewer nodes than the graph's


def test_sparse_search_does_not_allocate_over_the_graph():
    """The settled map holds only what was reached: a query near a unit settles a handful of nodes."""
    g = generated_graph(200, seed=3)
    r = bare_router(g)
    units = SimpleNamespace(edge=np.array([0], dtype=np.int64), fraction=np.array([0.5]), offroad_s=np.array([0.0]),
                            distance_m=np.zeros(1))
    tgt = SimpleNamespace(edge=np.array([0], dtype=np.int64), fraction=np.array([0.6]), offroad_s=np.array([0.0]))
    tree = r.toward_k(tgt, 0, units, 1)
    assert tree.settled < 50
    assert len(tree.dist.keys) == tree.settled


def test_travel_time_equals_full_dijkstra_on_a_generated_graph():
    g = generated_graph(70, seed=9)
    rng = np.random.default_rng(9)
    r = bare_router(g)
    for _ in range(80):
        src, tgt = points(g, rng, 1), points(g, rng, 1)
        full = r.etas_to(r.toward(tgt, 0, np.inf), tgt, 0, src)[0]
        got = r.etas_to(r.toward_k(tgt, 0, src, 1), tgt, 0, src)[0]
        assert got[0] == full[0] or (np.isinf(got[0]) and np.isinf(full[0]))


@pytest.fixture
def dconn(demo_database_url):
    with db.connect(demo_database_url) as c:
        yield c
        c.rollback()


def _answer(ans: dict) -> list[tuple[int, float, float]]:
    return [(u["unit_id"], u["eta_s"], u["distance_m"]) for u in ans["units"]]


def test_demo_nearest_and_travel_time_equal_the_full_search(dconn):
    """County demo: random incidents, k=5 and k=all, sparse engine == scipy engine (ids, order, times,
    route lengths), and travel times between random points."""
    router = routing.get_router(dconn, SETTINGS)
    g = router.graph
    rng = np.random.default_rng(16)
    lo, hi = g.node_lonlat.min(axis=0), g.node_lonlat.max(axis=0)
    try:
        for lon, lat in rng.uniform(lo, hi, (25, 2)):
            out = {}
            for engine in ("sparse", "scipy"):
                router.engine = engine
                out[engine] = (_answer(routing.nearest_units(dconn, SETTINGS, float(lon), float(lat), k=5)),
                               _answer(routing.nearest_units(dconn, SETTINGS, float(lon), float(lat), k=1000)))
            for a, b in zip(out["sparse"], out["scipy"], strict=True):
                assert [x[0] for x in a] == [x[0] for x in b]
                assert np.allclose([x[1] for x in a], [x[1] for x in b], rtol=1e-9, atol=0)
                assert np.allclose([x[2] for x in a], [x[2] for x in b], rtol=1e-9, atol=0)
        for (lon1, lat1), (lon2, lat2) in rng.uniform(lo, hi, (20, 2, 2)):
            res = {}
            for engine in ("sparse", "scipy"):
                router.engine = engine
                res[engine] = router.travel_time(None, (lon1, lat1), (lon2, lat2))
            assert (res["sparse"]["eta_s"] is None) == (res["scipy"]["eta_s"] is None)
            if res["scipy"]["eta_s"] is not None:
                assert res["sparse"]["eta_s"] == pytest.approx(res["scipy"]["eta_s"], rel=1e-9)
                assert res["sparse"]["distance_m"] == pytest.approx(res["scipy"]["distance_m"], rel=1e-9)
    finally:
        router.engine = "sparse"


def test_demo_closure_speed_change_and_unit_move_reach_the_next_answer(dconn):
    """A closed road, a slower road and a moved unit are in the very next answer (same transaction)."""
    g = routing.get_router(dconn, SETTINGS).graph
    lon, lat = (float(x) for x in g.node_lonlat[g.n_nodes // 2])
    first = routing.nearest_units(dconn, SETTINGS, lon, lat, k=1)["units"][0]
    # close every road the first unit's route uses
    route = first["route"]["coordinates"]
    mid = route[len(route) // 2]
    closed = dconn.execute("SELECT id FROM road_edge ORDER BY geom <-> ST_SetSRID(ST_MakePoint(%s, %s), 4326) "
                           "LIMIT 1", mid).fetchone()["id"]
    dconn.execute("UPDATE road_edge SET speed_kmh = 1 WHERE id = %s", [closed])
    slower = routing.nearest_units(dconn, SETTINGS, lon, lat, k=1)["units"][0]
    assert (slower["unit_id"], slower["eta_s"]) != (first["unit_id"], first["eta_s"])
    dconn.execute("DELETE FROM road_edge WHERE id = %s", [closed])
    after = routing.nearest_units(dconn, SETTINGS, lon, lat, k=1)["units"][0]
    assert routing.get_router(dconn, SETTINGS).graph.n_edges == g.n_edges - 1
    assert after["eta_s"] >= first["eta_s"]
    # the nearest unit drives away: the next answer no longer names it first
    far = g.node_lonlat.min(axis=0)
    dconn.execute("UPDATE unit SET last_position = ST_SetSRID(ST_MakePoint(%s, %s), 4326) WHERE id = %s",
                  [float(far[0]), float(far[1]), after["unit_id"]])
    moved = routing.nearest_units(dconn, SETTINGS, lon, lat, k=1)["units"][0]
    assert moved["unit_id"] != after["unit_id"] or moved["eta_s"] > after["eta_s"]


WORKER = r"""
import json, sys
from types import SimpleNamespace
import numpy as np
sys.path.insert(0, {root!r})
from routing import fastsearch, shared
a = shared.attach({path!r})
assert not a["indices"].flags.writeable  # mapped read-only, not copied
mat = SimpleNamespace(indptr=a["indptr"], indices=a["indices"], data=a["data"], shape=(len(a["indptr"]) - 1,) * 2)
c = fastsearch.Candidates(a["cand_node"], a["cand_cost"], a["cand_unit"], a["unit_off"])
out = []
for s in a["targets"].tolist():
    t = fastsearch.nearest_search(SimpleNamespace(matrix=mat), [(int(s), 0.0)], c, 3, 0.0)
    out.append(t.dist[a["cand_node"]].tolist())
print(json.dumps(out))
"""


def test_shared_graph_is_read_by_two_processes(tmp_path):
    g = generated_graph(60, seed=4)
    rng = np.random.default_rng(4)
    units = points(g, rng, 50)
    units.offroad_s[:] = 0.0
    r = bare_router(g)
    cands = r.candidates(units)
    targets = rng.integers(0, 3600, 10).astype(np.int32)
    rev = g.reverse.matrix
    arrays = {"indptr": rev.indptr, "indices": rev.indices, "data": rev.data, "cand_node": cands.node,
              "cand_cost": cands.cost, "cand_unit": cands.unit, "unit_off": cands.unit_off, "targets": targets}
    path = shared.publish(tmp_path / "graph-v1", arrays)
    assert shared.publish(tmp_path / "graph-v1", {}) == path  # written once per version
    code = WORKER.format(root=str(ROOT), path=str(path))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=300)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    expect = []
    for s in targets.tolist():
        t = fastsearch.nearest_search(g.reverse, [(int(s), 0.0)], cands, 3, 0.0)
        expect.append(t.dist[cands.node].tolist())
    assert outs[0] == expect and outs[1] == expect
    assert shared.attach(tmp_path / "missing") == {}


def test_router_graph_arrays_are_shared(dconn):
    """The router's graph arrays are mapped from one published directory (read-only), found again
    by a process that loads the same network (here: after the router cache is dropped)."""
    g = routing.get_router(dconn, SETTINGS).graph
    assert g.shared_dir and Path(g.shared_dir).is_dir()
    assert not g.reverse.matrix.indices.flags.writeable and not g.coord_xy.flags.writeable
    routing.clear_cache()
    again = routing.get_router(dconn, SETTINGS).graph
    assert again is not g and again.shared_dir == g.shared_dir


def _snaps(g, rng, n: int):
    from routing.snap import Snaps

    p = points(g, rng, n)
    return Snaps(np.zeros((n, 2)), np.zeros((n, 2)), p.edge, p.fraction, np.zeros(n), p.offroad_s,
                 np.zeros(n, dtype=bool))


@pytest.mark.parametrize("n_moved", [1, 4])
def test_live_coverage_update_after_moves_equals_a_full_recompute(n_moved):
    from dataclasses import replace

    from routing import coverage

    g = generated_graph(80, seed=20 + n_moved)
    g.n_edges = len(g.edge_u)
    rng = np.random.default_rng(n_moved)
    r = bare_router(g)
    srcs = _snaps(g, rng, 120)
    targets = rng.uniform(20.0, 200.0, len(g.edge_u))
    prev = coverage.compute(r, srcs, targets)
    for _ in range(8):
        new = _snaps(g, rng, 120)
        who = rng.choice(120, n_moved, replace=False)
        moved = replace(srcs, edge=srcs.edge.copy(), fraction=srcs.fraction.copy(), offroad_s=srcs.offroad_s.copy())
        moved.edge[who], moved.fraction[who], moved.offroad_s[who] = new.edge[who], new.fraction[who], new.offroad_s[who]
        inc = coverage.compute_incremental(r, prev, srcs, moved, targets)
        full = coverage.compute(r, moved, targets)
        assert np.allclose(inc["node_time_s"], full["node_time_s"], rtol=1e-12, atol=0)
        assert np.allclose(inc["time_s"], full["time_s"], rtol=1e-9, atol=0)
        assert np.allclose(inc["within_m"], full["within_m"], rtol=1e-9, atol=1e-9)
        assert len(inc["edges_recomputed"]) < len(g.edge_u) / 2  # only the area the moves touch
        same_src = inc["source"] == full["source"]
        assert same_src.mean() > 0.99  # the rest: exact ties between two units
        prev, srcs = inc, moved
