"""Benchmark the nearest-unit search on a large graph against RoutingKit's CCH and pgRouting.

Run by ``make bench-scale``. The graph comes from ``--source``:

- ``synthetic`` (default until the province generator lands): a perturbed grid of at least
  2,000,000 directed arcs (``--size``) with road classes (expressway every 50th line, national
  every 10th, county and village streets between), 12 % of the village streets one-way and 4 % of
  the streets missing; integer travel times (milliseconds) so every contender's sums are exact;
- ``db``: the road network of a database (``--db-url``, e.g. the province database that
  ``gisapp load-demo --region shandong`` builds), read with :func:`routing.graph.load_graph`.

It places ``--units`` (10,000) available units and ``--incidents`` (1,000) incidents at road
nodes, then times, per incident, the k=5 nearest units:

- ours: :meth:`Router.toward_k` (the sparse search of :mod:`routing.fastsearch`), the ETAs of every
  candidate unit and the top-k order, as :meth:`Router.nearest_from_arrays` does them (snapping and
  route geometry excluded, they are the same for every contender);
- RoutingKit's customizable contraction hierarchies: ``CCHManyToOne`` with the units pinned,
  ``distances_to(incident)`` and the same top-k (inertial-flow nested-dissection order; customisation timed apart);
- pgRouting's ``pgr_dijkstraCost`` from the incident to every unit on the reversed arcs on a sample (``--pgr-queries``),
  on the same arcs in its own database (``gisapp_bench_scale``);
- a full scipy Dijkstra on a sample (the reference).

``identical`` is true when the top-k unit ids, their order and times agree with every peer (to a
relative 1e-9). ``rss_mb_per_worker``: two worker processes map the published graph arrays
(:mod:`routing.shared`) and answer the incidents; the figure is their proportional set size (the
shared graph pages divided between them), their RSS and private memory are printed beside it.
``coverage_update_ms``: the live coverage after one unit moved (the incremental update, checked
against a full recompute). The last line is ``scale: arcs=<n> nearest_p50_ms=<a> nearest_vs_cch=<b> nearest_vs_pgr=<c>
identical=<true|false> coverage_update_ms=<d> rss_mb_per_worker=<e> tiles_warm_rps_vs_tipg=<f>``
(``na``: not measured by this benchmark yet).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import psycopg
from psycopg import sql
from scipy.sparse.csgraph import dijkstra

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gisapp.core.config import Settings  # noqa: E402
from routing import shared  # noqa: E402
from routing.graph import directed_csr  # noqa: E402
from routing.router import Router  # noqa: E402
from routing.snap import Snaps  # noqa: E402

BENCH_DB = "gisapp_bench_scale"
REL = 1e-9
K = 5


def log(msg: str) -> None:
    print(msg, flush=True)


def _with_db(url: str, name: str) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, "/" + name, p.query, p.fragment))


# ------------------------------------------------------------------------------- graphs
def synthetic(size: int, seed: int) -> SimpleNamespace:
    """A perturbed size x size grid with road classes, one-way streets and missing streets."""
    rng = np.random.default_rng(seed)
    ids = np.arange(size * size, dtype=np.int64).reshape(size, size)
    u = np.concatenate([ids[:, :-1].ravel(), ids[:-1, :].ravel()])
    v = np.concatenate([ids[:, 1:].ravel(), ids[1:, :].ravel()])
    line = np.concatenate([np.repeat(np.arange(size), size - 1), np.tile(np.arange(size), size - 1)])
    # class by the grid line: 0 expressway, 1 national, 4 county, 5 village
    cls = np.where(line % 50 == 0, 0, np.where(line % 10 == 0, 1, np.where(line % 3 == 0, 4, 5))).astype(np.int8)
    speed = np.array([100, 80, 60, 60, 50, 30], dtype=np.float64)[cls]  # km/h
    length = rng.uniform(80.0, 160.0, len(u))  # metres, perturbed
    keep = (cls < 2) | (rng.random(len(u)) >= 0.04)
    u, v, cls, speed, length = u[keep], v[keep], cls[keep], speed[keep], length[keep]
    cost = np.maximum(np.rint(length / (speed / 3.6) * 1000.0), 1.0)  # integer milliseconds
    oneway = (cls == 5) & (rng.random(len(u)) < 0.12)
    flip = oneway & (rng.random(len(u)) < 0.5)
    u, v = np.where(flip, v, u), np.where(flip, u, v)
    g = graph_of(size * size, u.astype(np.int32), v.astype(np.int32), cost, oneway)
    g.edge_class = cls
    g.time_unit = 1000.0  # costs in milliseconds
    row, col = np.divmod(np.arange(size * size), size)
    g.node_lonlat = np.column_stack([117.0 + col * 0.0012, 36.0 + row * 0.001])
    return g


def graph_of(n: int, u: np.ndarray, v: np.ndarray, cost: np.ndarray, oneway: np.ndarray) -> SimpleNamespace:
    fwd, rev = directed_csr(n, u, v, cost, oneway)
    return SimpleNamespace(n_nodes=n, edge_u=u, edge_v=v, edge_cost_s=cost, edge_oneway=oneway,
                           edge_length_m=cost, forward=fwd, reverse=rev)


def from_db(url: str) -> SimpleNamespace:
    from routing.graph import load_graph

    settings = Settings.from_env()
    with psycopg.connect(url) as conn:
        g = load_graph(conn, dict(settings.road_speed_kmh), settings.metric_srid)
    return g


# ------------------------------------------------------------------------------- ours
def router_for(g) -> Router:
    """A Router over ``g`` without a snapper (the bench places points on edges itself)."""
    r = Router.__new__(Router)
    r.graph = g
    r.engine = "sparse"
    r._last_cands = None
    return r


def at_nodes(g, edges: np.ndarray) -> Snaps:
    """Points at the source node of each edge (fraction 0, on the road)."""
    n = len(edges)
    return Snaps(np.zeros((n, 2)), np.zeros((n, 2)), edges.astype(np.int64), np.zeros(n), np.zeros(n),
                 np.zeros(n), np.zeros(n, dtype=bool))


def top_k(eta: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((np.arange(len(eta)), eta))[:k]
    order = order[np.isfinite(eta[order])]
    return order, eta[order]


def ours(r: Router, inc: SimpleNamespace, i: int, units: SimpleNamespace) -> tuple[np.ndarray, np.ndarray]:
    tgt = SimpleNamespace(edge=inc.edge[i:i + 1], fraction=inc.fraction[i:i + 1], offroad_s=inc.offroad_s[i:i + 1])
    tree = r.toward_k(tgt, 0, units, K)
    r.last_settled = tree.settled
    eta, _ = r.etas_to(tree, tgt, 0, units)
    return top_k(eta, K)


def same(a_ids, a_t, b_ids, b_t) -> bool:
    return (len(a_ids) == len(b_ids) and bool(np.array_equal(a_ids, b_ids))
            and bool(np.allclose(a_t, b_t, rtol=REL, atol=0.0)))


# ------------------------------------------------------------------------------- peers
def cch_peer(g, unit_nodes: np.ndarray):
    import routingkit_cch as rk

    fwd = g.forward.matrix
    tail = np.repeat(np.arange(g.n_nodes, dtype=np.int64), np.diff(fwd.indptr)).tolist()
    head = fwd.indices.tolist()
    t = time.perf_counter()
    ll = np.asarray(g.node_lonlat)  # nested dissection on the node coordinates (RoutingKit's inertial flow)
    order = rk.compute_order_inertial(g.n_nodes, tail, head, ll[:, 1].tolist(), ll[:, 0].tolist())
    cch = rk.CCH(order, tail, head, False)
    t_order = time.perf_counter() - t
    t = time.perf_counter()
    metric = rk.CCHMetric(cch, fwd.data.astype(np.int64).tolist())
    t_custom = time.perf_counter() - t
    m2o = rk.CCHManyToOne(metric, unit_nodes.tolist())
    return SimpleNamespace(cch=cch, metric=metric, m2o=m2o, t_order=t_order, t_custom=t_custom)


def cch_query(peer, node: int) -> tuple[np.ndarray, np.ndarray]:
    d = peer.m2o.distances_to(int(node))
    eta = np.array([np.inf if x is None else float(x) for x in d])
    return top_k(eta, K)


def pgr_setup(url: str, g) -> str:
    admin = _with_db(url, "postgres")
    burl = _with_db(url, BENCH_DB)
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [BENCH_DB])
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(BENCH_DB)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))
    with psycopg.connect(burl, autocommit=True) as c:
        c.execute("CREATE EXTENSION postgis")
        c.execute("CREATE EXTENSION pgrouting")
        c.execute("CREATE TABLE e (id bigint, source bigint, target bigint, cost float8, reverse_cost float8)")
        buf = io.StringIO()
        rc = np.where(g.edge_oneway, -1.0, g.edge_cost_s)
        for i, (a, b, c1, c2) in enumerate(zip(g.edge_u.tolist(), g.edge_v.tolist(), g.edge_cost_s.tolist(),
                                              rc.tolist(), strict=True)):
            buf.write(f"{i + 1}\t{a}\t{b}\t{c1!r}\t{c2!r}\n")
        with c.cursor().copy("COPY e FROM STDIN") as cp:
            cp.write(buf.getvalue())
        c.execute("ANALYZE e")
    return burl


def pgr_query(conn, unit_nodes: np.ndarray, node: int) -> tuple[np.ndarray, np.ndarray]:
    # one search: from the incident on the reversed arcs to every unit
    rows = conn.execute(
        "SELECT end_vid, agg_cost FROM pgr_dijkstraCost("
        "'SELECT id, target AS source, source AS target, cost, reverse_cost FROM e', %s::bigint, %s::bigint[], "
        "directed => true)",
        [int(node), sorted(set(unit_nodes.tolist()))]).fetchall()
    best = {int(s): float(c) for s, c in rows}
    best[int(node)] = 0.0
    eta = np.array([best.get(int(x), np.inf) for x in unit_nodes])
    return top_k(eta, K)


# ------------------------------------------------------------------------------- workers
WORKER = r"""
import json, sys, time
import numpy as np
from types import SimpleNamespace
sys.path.insert(0, {root!r})
from routing import fastsearch, shared
a = shared.attach({path!r})
mat = SimpleNamespace(indptr=a["indptr"], indices=a["indices"], data=a["data"], shape=(len(a["indptr"]) - 1,) * 2)
csr = SimpleNamespace(matrix=mat)
c = fastsearch.Candidates(a["cand_node"], a["cand_cost"], a["cand_unit"], a["unit_off"])
ts = []
for s in a["incident_nodes"].tolist():
    t = time.perf_counter()
    fastsearch.nearest_search(csr, [(int(s), 0.0)], c, {k}, 0.0)
    ts.append(time.perf_counter() - t)
m = shared.memory_mb()
m["p50_ms"] = float(np.median(ts) * 1e3)
print(json.dumps(m))
"""


def worker_memory(g, cands, inc_nodes: np.ndarray, var: Path, tag: str, n_workers: int = 2) -> list[dict]:
    rev = g.reverse.matrix
    path = shared.publish(var / f"graph-{tag}", {
        "indptr": rev.indptr, "indices": rev.indices, "data": rev.data, "cand_node": cands.node,
        "cand_cost": cands.cost, "cand_unit": cands.unit, "unit_off": cands.unit_off,
        "incident_nodes": inc_nodes.astype(np.int32)})
    code = WORKER.format(root=str(ROOT), path=str(path), k=K)
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
             for _ in range(n_workers)]
    return [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]


# ------------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", choices=("synthetic", "db"), default="synthetic")
    ap.add_argument("--db-url", help="with --source db: the database whose road network is routed")
    ap.add_argument("--size", type=int, default=760, help="synthetic grid side (760: about 2.2M arcs)")
    ap.add_argument("--units", type=int, default=10_000)
    ap.add_argument("--incidents", type=int, default=1_000)
    ap.add_argument("--full-queries", type=int, default=20, help="incidents also answered by a full Dijkstra")
    ap.add_argument("--pgr-queries", type=int, default=3, help="incidents also answered by pgRouting (slow)")
    ap.add_argument("--seed", type=int, default=20261208)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    settings = Settings.from_env()

    t = time.perf_counter()
    if args.source == "db":
        g = from_db(args.db_url or settings.database_url)
        g.time_unit = 1.0
        tag = f"db-{g.version}"
        network = "database road network"
    else:
        g = synthetic(args.size, args.seed)
        tag = f"synthetic-{args.size}-{args.seed}"
        network = f"synthetic {args.size}x{args.size} grid"
    arcs = int(g.forward.matrix.nnz)
    log(f"graph: {network}, {g.forward.matrix.shape[0]:,} nodes, {len(g.edge_u):,} edges, {arcs:,} arcs, "
        f"built in {time.perf_counter() - t:.1f} s")

    # units and incidents at the source nodes of random edges (distinct unit nodes)
    n_edges = len(g.edge_u)
    first_edge = {}
    for e in rng.permutation(n_edges).tolist():
        first_edge.setdefault(int(g.edge_u[e]), e)
        if len(first_edge) >= args.units:
            break
    unit_edges = np.array(list(first_edge.values()), dtype=np.int64)
    units = at_nodes(g, unit_edges)
    unit_nodes = g.edge_u[unit_edges].astype(np.int64)
    inc = at_nodes(g, rng.integers(0, n_edges, args.incidents))
    inc_nodes = g.edge_u[inc.edge].astype(np.int64)
    log(f"{len(unit_edges):,} units, {args.incidents:,} incidents at road nodes")

    r = router_for(g)
    t = time.perf_counter()
    ours(r, inc, 0, units)  # compiles (or loads the cached machine code) and builds the unit index
    log(f"first query (compile or load the compiled search, index the units): {time.perf_counter() - t:.2f} s")
    ts, answers, settled = [], [], []
    for i in range(args.incidents):
        t = time.perf_counter()
        answers.append(ours(r, inc, i, units))
        ts.append(time.perf_counter() - t)
        settled.append(r.last_settled)
    p50 = float(np.median(ts) * 1e3)
    log(f"ours: nearest k={K} p50 {p50:.3f} ms, p90 {np.percentile(ts, 90) * 1e3:.3f} ms; nodes settled p50 "
        f"{np.median(settled):.0f} of {g.forward.matrix.shape[0]:,}")

    identical = True
    # the reference: a full Dijkstra on the reverse graph from the incident node
    for i in range(min(args.full_queries, args.incidents)):
        d = dijkstra(g.reverse.matrix, directed=True, indices=int(inc_nodes[i]))
        ref = top_k(d[unit_nodes], K)
        if not same(*answers[i], *ref):
            identical = False
            log(f"full Dijkstra differs at incident {i}: ours {answers[i]} vs {ref}")
    log(f"full Dijkstra: {min(args.full_queries, args.incidents)} incidents compared, identical so far={identical}")

    vs_cch = "na"
    try:
        peer = cch_peer(g, unit_nodes)
        log(f"CCH: order and contraction {peer.t_order:.1f} s, customisation {peer.t_custom:.2f} s")
        cts, raw = [], []
        for i in range(args.incidents):
            t = time.perf_counter()
            got = cch_query(peer, inc_nodes[i])
            cts.append(time.perf_counter() - t)
            if i < 100:
                t = time.perf_counter()
                peer.m2o.distances_to(int(inc_nodes[i]))
                raw.append(time.perf_counter() - t)
            if not same(*answers[i], *got):
                identical = False
                if i < 5:
                    log(f"CCH differs at incident {i}: ours {answers[i]} vs {got}")
        c50 = float(np.median(cts) * 1e3)
        vs_cch = f"{c50 / p50:.2f}"
        log(f"CCH ManyToOne (units pinned): p50 {c50:.3f} ms per query (distances_to + top-{K}); "
            f"ours is {c50 / p50:.2f}x faster (distances_to alone: p50 {np.median(raw) * 1e3:.3f} ms)")
    except ImportError:
        log("routingkit-cch is not installed (pip install -e '.[bench]')")

    vs_pgr = "na"
    if args.pgr_queries > 0:
        try:
            t = time.perf_counter()
            burl = pgr_setup(settings.database_url, g)
            log(f"pgRouting: edges copied into {BENCH_DB} in {time.perf_counter() - t:.1f} s")
            pts = []
            with psycopg.connect(burl, autocommit=True) as conn:
                for i in range(min(args.pgr_queries, args.incidents)):
                    t = time.perf_counter()
                    got = pgr_query(conn, unit_nodes, inc_nodes[i])
                    pts.append(time.perf_counter() - t)
                    if not same(*answers[i], *got):
                        identical = False
                        log(f"pgRouting differs at incident {i}: ours {answers[i]} vs {got}")
            g50 = float(np.median(pts) * 1e3)
            vs_pgr = f"{g50 / p50:.0f}"
            log(f"pgr_dijkstraCost: {len(pts)} queries, p50 {g50:.0f} ms; ours is {g50 / p50:.0f}x faster")
        except psycopg.Error as exc:
            log(f"pgRouting not measured: {exc}")

    # live coverage after one unit moved: the incremental update (routing.coverage.compute_incremental,
    # what refresh_live runs when the same units moved) against a full multi-source recompute
    from routing import coverage

    targets = coverage.edge_targets_s(g, settings) * g.time_unit
    if not isinstance(getattr(type(g), "n_edges", None), property):  # the synthetic graph's namespace
        g.n_edges = n_edges
    base = at_nodes(g, unit_edges.copy())
    t = time.perf_counter()
    prev = coverage.compute(r, base, targets)
    t_full = time.perf_counter() - t
    ups, touched, cov_ok = [], [], True
    for j in range(10):
        moved = at_nodes(g, base.edge.copy())
        moved.edge[j] = int(rng.integers(0, n_edges))
        t = time.perf_counter()
        inc = coverage.compute_incremental(r, prev, base, moved, targets)
        ups.append(time.perf_counter() - t)
        touched.append(len(inc["edges_recomputed"]))
        if j < 2:
            full = coverage.compute(r, moved, targets)
            cov_ok &= bool(np.allclose(inc["node_time_s"], full["node_time_s"], rtol=REL, atol=0)
                           and np.allclose(inc["time_s"], full["time_s"], rtol=REL, atol=0))
        prev, base = inc, moved
    cov_ms = float(np.median(ups) * 1e3)
    identical &= cov_ok
    log(f"live coverage, {len(unit_edges):,} units: full recompute {t_full * 1e3:.0f} ms; after one unit moved "
        f"(incremental) p50 {cov_ms:.1f} ms, {np.median(touched):.0f} edges re-evaluated of {n_edges:,}; "
        f"equal to a full recompute: {cov_ok}")

    rss = "na"
    try:
        mem = worker_memory(g, r.candidates(units), inc_nodes, ROOT / "var" / "bench_scale", tag)
        for j, m in enumerate(mem):
            log(f"worker {j}: pss {m['pss']:.0f} MB, rss {m['rss']:.0f} MB, private {m['private']:.0f} MB, "
                f"p50 {m['p50_ms']:.3f} ms (graph arrays memory-mapped, shared)")
        rss = f"{max(m['pss'] for m in mem):.0f}"
    except (OSError, ValueError, KeyError) as exc:
        log(f"worker memory not measured: {exc}")

    print(f"scale: arcs={arcs} nearest_p50_ms={p50:.3f} nearest_vs_cch={vs_cch} nearest_vs_pgr={vs_pgr} "
          f"identical={'true' if identical else 'false'} coverage_update_ms={cov_ms:.1f} rss_mb_per_worker={rss} "
          f"tiles_warm_rps_vs_tipg=na", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
