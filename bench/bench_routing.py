"""Benchmark routing against its peers (pgRouting, networkx) on the Zouping demo network.

Run by ``make bench-routing``. In a scratch copy of the demo database (``gisapp_bench_routing``)
it makes 500 available units at random points along the roads and 1,000 random incidents
near the roads, then measures:

- nearest unit (k=5): latency of ``router.nearest_units`` in-process and over HTTP (a real
  gunicorn server), against one ``pgr_dijkstraCost`` query per incident (from the incident's
  edge ends to every unit's edge ends, on the reversed graph) and networkx's Dijkstra;
- a full live-coverage recompute (``routing.coverage.compute_live``) against
  ``pgr_drivingDistance(..., equicost => true)`` and networkx multi-source Dijkstra;
- the graph's build time and memory.

``identical`` is true when every unit ETA (for every compared incident) equals pgRouting's
(node costs composed with the same partial-edge offsets) and networkx's to a relative 1e-9,
the top-5 units are the same, every HTTP answer was 200, and the coverage node times equal
networkx's on every node and pgr_dijkstraCost's best start on sampled nodes, and are never
above pgr_drivingDistance's (which, in pgRouting 3.4, is above the optimum on some nodes).
The last line is ``routing: nearest_unit_speedup=<x> coverage_speedup=<y> identical=<b> http_p50_ms=<z>``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import networkx as nx
import numpy as np
import psycopg
import requests
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import routing  # noqa: E402
from gisapp.core import db  # noqa: E402
from gisapp.core.config import Settings  # noqa: E402
from routing import coverage, pgr  # noqa: E402
from routing.snap import source_seeds, target_seeds  # noqa: E402

BENCH_DB = "gisapp_bench_routing"
REL = 1e-9


def _with_db(url: str, name: str) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, "/" + name, p.query, p.fragment))


def pct(xs, q) -> float:
    return float(np.percentile(np.asarray(xs), q))


def log(msg: str) -> None:
    print(msg, flush=True)


# ------------------------------------------------------------------------------- set-up
def scratch_demo(settings: Settings) -> str:
    """Create the scratch database with the demo world (copied from the test template when present)."""
    admin = _with_db(settings.database_url, "postgres")
    url = _with_db(settings.database_url, BENCH_DB)
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [BENCH_DB])
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(BENCH_DB)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))
    db.upgrade(url, log=lambda m: None)
    from geodata import demo

    t = time.perf_counter()
    with db.connect(url) as conn:
        demo.load_demo(conn, seed=None, log=lambda m: None)
        conn.commit()
    log(f"demo world loaded into {BENCH_DB} in {time.perf_counter() - t:.1f} s")
    return url


def synthetic_grid(conn: psycopg.Connection, n: int = 170, step_deg: float = 0.0022) -> None:
    """A county-sized synthetic grid (for development before the demo has roads): n x n nodes."""
    rng = np.random.default_rng(1)
    lon0, lat0 = 117.55, 36.70
    ids = conn.execute("SELECT nextval(pg_get_serial_sequence('road_node','id')) AS id FROM generate_series(1, %s)",
                       [n * n]).fetchall()
    nid = np.array([r["id"] for r in ids]).reshape(n, n)
    xy = np.stack(np.meshgrid(np.arange(n) * step_deg + lon0, np.arange(n) * step_deg * 0.8 + lat0,
                              indexing="ij"), axis=-1)
    xy += rng.uniform(-0.0003, 0.0003, xy.shape)
    with conn.cursor().copy("COPY road_node (id, geom) FROM STDIN") as cp:
        for i in range(n):
            for j in range(n):
                cp.write_row((int(nid[i, j]), f"SRID=4326;POINT({float(xy[i, j, 0])!r} {float(xy[i, j, 1])!r})"))
    classes = ["village", "township", "county", "provincial", "national"]
    with conn.cursor().copy("COPY road_edge (source, target, road_class, oneway, length_m, geom) FROM STDIN") as cp:
        for i in range(n):
            for j in range(n):
                for di, dj in ((1, 0), (0, 1)):
                    a, b = i + di, j + dj
                    if a >= n or b >= n or rng.random() < 0.05:
                        continue
                    cls = classes[4] if (i % 40 == 0 or j % 40 == 0) else classes[int(rng.integers(0, 4))]
                    (x0, y0), (x1, y1) = map(float, xy[i, j]), map(float, xy[a, b])
                    length = float(np.hypot((x1 - x0) * 89000, (y1 - y0) * 111000))
                    cp.write_row((int(nid[i, j]), int(nid[a, b]), cls, bool(rng.random() < 0.03), length,
                                  f"SRID=4326;LINESTRING({x0!r} {y0!r},{x1!r} {y1!r})"))


def make_units_and_incidents(conn: psycopg.Connection, router, n_units: int, n_incidents: int,
                             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Put n_units available units at random points along the roads (others off duty); random incident points."""
    g = router.graph

    def along_roads(n: int, jitter_m: float) -> np.ndarray:
        p = g.edge_length_m / g.edge_length_m.sum()
        edges = rng.choice(g.n_edges, n, p=p)
        pts = np.array([g.geom_metric[e].interpolate(rng.random(), normalized=True).coords[0] for e in edges])
        pts += rng.normal(0, jitter_m, pts.shape)
        lon, lat = g.to_lonlat.transform(pts[:, 0], pts[:, 1])
        return np.column_stack([lon, lat])

    units = along_roads(n_units, 15.0)
    incidents = along_roads(n_incidents, 40.0)
    conn.execute("UPDATE unit SET status = 'off_duty'")
    org = conn.execute("INSERT INTO organisation (code, name, kind) VALUES ('BENCH', '基准测试', 'station') "
                       "RETURNING id").fetchone()["id"]
    caps = ["accident_qualified", "breathalyser", "camera", "cones", "first_aid", "lights"]
    with conn.cursor().copy("COPY unit (code, name, organisation_id, kind, capabilities, status, last_position) "
                            "FROM STDIN") as cp:
        for i, (x, y) in enumerate(units.tolist()):
            tags = [c for c in caps if rng.random() < 0.5]
            cp.write_row((f"BENCH-{i:04d}", f"基准车{i}", org, "patrol_car", tags, "available",
                          f"SRID=4326;POINT({x!r} {y!r})"))
    conn.commit()
    return units, incidents


# ------------------------------------------------------------------------------- peers
def nx_reverse_graph(router) -> nx.DiGraph:
    """The router's reverse graph as networkx (same arcs and costs)."""
    m = router.graph.reverse.matrix.tocoo()
    G = nx.DiGraph()
    G.add_nodes_from(range(router.graph.n_nodes))
    G.add_weighted_edges_from(zip(m.row.tolist(), m.col.tolist(), m.data.tolist(), strict=True))
    return G


def nx_forward_graph(router) -> nx.DiGraph:
    m = router.graph.forward.matrix.tocoo()
    G = nx.DiGraph()
    G.add_nodes_from(range(router.graph.n_nodes))
    G.add_weighted_edges_from(zip(m.row.tolist(), m.col.tolist(), m.data.tolist(), strict=True))
    return G


def nx_etas(G: nx.DiGraph, router, tgt, src) -> np.ndarray:
    """ETAs with networkx: Dijkstra on the reverse graph from a virtual node at the incident."""
    g = router.graph
    v = "incident"
    for node, off, _ in target_seeds(g, int(tgt.edge[0]), float(tgt.fraction[0])):
        if not G.has_edge(v, node) or G[v][node]["weight"] > off:
            G.add_edge(v, node, weight=off)
    try:
        d = nx.single_source_dijkstra_path_length(G, v)
    finally:
        G.remove_node(v)
    return compose(router, src, tgt, lambda n: d.get(n, np.inf))


def compose(router, src, tgt, node_time) -> np.ndarray:
    """ETA per unit from a function giving the time from a node to the incident (its seeds included)."""
    g = router.graph
    out = np.full(len(src), np.inf)
    te, tf = int(tgt.edge[0]), float(tgt.fraction[0])
    from routing.snap import same_edge_time

    for i in range(len(src)):
        e, f = int(src.edge[i]), float(src.fraction[i])
        best = same_edge_time(g, e, f, tf)[0] if e == te else np.inf
        for n, off, _ in source_seeds(g, e, f):
            best = min(best, off + node_time(n))
        out[i] = src.offroad_s[i] + best + tgt.offroad_s[0]
    return out


def same(a: np.ndarray, b: np.ndarray) -> bool:
    fa, fb = np.isfinite(a), np.isfinite(b)
    if not np.array_equal(fa, fb):
        return False
    return bool(np.all(np.abs(a[fa] - b[fb]) <= REL * np.maximum(np.abs(a[fa]), 1e-12)))


# ------------------------------------------------------------------------------- HTTP
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def viewer_token(url: str) -> str:
    """A bearer token of a viewer account in the benchmark database (made once)."""
    from gisapp.core.accounts import create_token, create_user

    with db.connect(url) as conn:
        row = conn.execute("SELECT id FROM app_user WHERE username = 'bench_viewer'").fetchone()
        uid = row["id"] if row else create_user(conn, "bench_viewer", secrets.token_hex(12), "viewer")["id"]
        token = create_token(conn, uid, "bench-routing")["token"]
        conn.commit()
    return token


def http_latencies(url: str, incidents: np.ndarray, threads: int) -> tuple[list[float], int]:
    port = int(os.environ.get("GISAPP_BENCH_PORT", "0")) or free_port()
    env = dict(os.environ, GISAPP_DATABASE_URL=url, GISAPP_SECRET_KEY="bench")
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "gunicorn"), "--bind", f"127.0.0.1:{port}",
                             "--workers", "1", "--threads", str(threads), "--worker-class", "gthread",
                             "--log-level", "warning", "wsgi:app"], cwd=str(ROOT), env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {viewer_token(url)}"  # nothing is read without a log-in
        for _ in range(300):
            try:
                if s.get(base + "/healthz", timeout=10).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.2)
        lon, lat = incidents[0]
        s.get(base + "/api/v1/routing/nearest-units", params={"lon": lon, "lat": lat}, timeout=120)  # builds graph
        lat_ms, errors = [], 0
        for lon, lat in incidents:
            t = time.perf_counter()
            r = s.get(base + "/api/v1/routing/nearest-units", params={"lon": repr(float(lon)), "lat": repr(float(lat)),
                                                                        "k": 5}, timeout=60)
            lat_ms.append((time.perf_counter() - t) * 1000)
            errors += r.status_code != 200
        return lat_ms, errors
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ------------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--units", type=int, default=500)
    ap.add_argument("--incidents", type=int, default=1000)
    ap.add_argument("--peer-incidents", type=int, default=100,
                    help="incidents also answered by pgRouting and networkx (they are slow)")
    ap.add_argument("--synthetic-if-no-roads", action="store_true",
                    help="development only: use a synthetic grid when the demo has no roads yet")
    ap.add_argument("--seed", type=int, default=20261129)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    settings = Settings.from_env()
    url = scratch_demo(settings)
    with db.connect(url, autocommit=True) as conn:  # one round trip per query, for every contender
        n_edges = conn.execute("SELECT count(*) AS n FROM road_edge").fetchone()["n"]
        network = "Zouping demo"
        if n_edges == 0:
            if not args.synthetic_if_no_roads:
                log("the demo world has no roads yet (issue 3); rerun with --synthetic-if-no-roads for development")
                return 2
            synthetic_grid(conn)
            conn.commit()
            network = "SYNTHETIC GRID (demo has no roads yet)"
        routing.clear_cache()
        t = time.perf_counter()
        router = routing.get_router(conn, settings)
        build_s = time.perf_counter() - t
        g = router.graph
        mem = g.memory_bytes()
        log(f"network: {network}: {g.n_nodes} nodes, {g.n_edges} edges, {g.forward.matrix.nnz} arcs; "
            f"graph built in {build_s:.2f} s; memory {mem['total'] / 2**20:.1f} MiB "
            f"(CSR {mem['csr'] / 2**20:.1f}, arrays {mem['edge_arrays'] / 2**20:.1f}, "
            f"geometries {mem['geometries'] / 2**20:.1f})")
        units, incidents = make_units_and_incidents(conn, router, args.units, args.incidents, rng)
        router = routing.get_router(conn, settings)

        # ---- nearest unit: ours in-process for every incident; pgRouting and networkx on the first
        # --peer-incidents (their answers are compared with ours).
        rows = routing.queries.units(conn, ("available",), None, None, None)
        unit_ids = [r[0] for r in rows]
        src = router.snap_cached(np.array([(r[2], r[3]) for r in rows]))
        seed_nodes = sorted({int(g.node_id[n]) for i in range(len(src))
                             for n, _, _ in source_seeds(g, int(src.edge[i]), float(src.fraction[i]))})
        rev_sql = pgr.edges_sql(conn, settings.road_speed_kmh, reverse=True)
        G = nx_reverse_graph(router)
        routing.nearest_units(conn, settings, *incidents[0])  # warm the unit snap cache
        ours_ms, pgr_ms, nx_ms = [], [], []
        identical, mismatches, flagged = True, 0, 0
        n_peer = min(args.peer_incidents, len(incidents))
        # Blocks: ours on 100 incidents, then the peers on a tenth of their incidents, and so on, so
        # that every contender is measured across the whole run (the machine's load drifts).
        n_blocks = 10
        ours_blocks = np.array_split(np.arange(len(incidents)), n_blocks)
        peer_blocks = np.array_split(np.arange(n_peer), n_blocks)
        answers: dict[int, dict] = {}
        for ob, pb in zip(ours_blocks, peer_blocks, strict=True):
            for j in ob.tolist():
                lon, lat = incidents[j]
                t = time.perf_counter()  # as a caller does it: version stamp + units (one query), search, routes
                ans = routing.nearest_units(conn, settings, float(lon), float(lat), k=5)
                ours_ms.append((time.perf_counter() - t) * 1000)
                flagged += ans["incident"]["snap"]["flagged"]
                answers[j] = ans
            for j in pb.tolist():
                lon, lat = incidents[j]
                tgt = router.snap(np.array([[lon, lat]]))
                tnodes = [int(g.node_id[n]) for n, _, _ in target_seeds(g, int(tgt.edge[0]), float(tgt.fraction[0]))]
                t = time.perf_counter()
                back = pgr.dijkstra_cost(conn, settings.road_speed_kmh, tnodes, seed_nodes, edges=rev_sql)
                pgr_ms.append((time.perf_counter() - t) * 1000)
                peer = pgr.compose_etas(g, src, tgt, 0, {(b, a): c for (a, b), c in back.items()})
                t = time.perf_counter()
                nxe = nx_etas(G, router, tgt, src)
                nx_ms.append((time.perf_counter() - t) * 1000)
                tree = router.toward(tgt, 0)
                mine, _ = router.etas_to(tree, tgt, 0, src)
                top_peer = [unit_ids[i] for i in np.lexsort((np.arange(len(peer)), peer))[:5]
                            if np.isfinite(peer[i])]
                top_ours = [u["unit_id"] for u in answers[j]["units"]]
                ok = same(mine, peer) and same(mine, nxe) and top_peer == top_ours
                mismatches += not ok
                identical &= ok
        ours_peer_ms = ours_ms  # the speedups compare p50s over the interleaved run
        log(f"nearest unit in-process ({len(incidents)} incidents, {args.units} units, k=5): "
            f"p50 {pct(ours_ms, 50):.2f} ms, p99 {pct(ours_ms, 99):.2f} ms ({flagged} incidents flagged off-road)")
        log(f"pgr_dijkstraCost per incident ({len(pgr_ms)} incidents, to {len(seed_nodes)} unit edge ends): "
            f"p50 {pct(pgr_ms, 50):.1f} ms, p99 {pct(pgr_ms, 99):.1f} ms")
        log(f"networkx Dijkstra per incident: p50 {pct(nx_ms, 50):.1f} ms, p99 {pct(nx_ms, 99):.1f} ms")
        log(f"ETAs of all {len(rows)} units identical to pgRouting and networkx, top-5 equal: "
            f"{len(pgr_ms) - mismatches}/{len(pgr_ms)} incidents")

        # ---- live coverage: ours (full compute: units query, snapping, multi-source search, per-edge
        # times and metres within target) and the peers alternately, so they share the machine's load.
        starts = seed_nodes
        fwd_sql = pgr.edges_sql(conn, settings.road_speed_kmh)
        Gf = nx_forward_graph(router)
        start_idx = [g.node_index(s) for s in starts]
        cov_ms, pgr_cov_ms, nx_cov_ms = [], [], []
        for _ in range(3):
            for _ in range(3):
                router.live_prev = None  # a full recompute (not the incremental update of moved units)
                t = time.perf_counter()
                coverage.compute_live(conn, router, settings)
                cov_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            dd = pgr.driving_distance(conn, settings.road_speed_kmh, starts, 1e12, edges=fwd_sql)
            pgr_cov_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            nd = nx.multi_source_dijkstra_path_length(Gf, start_idx)
            nx_cov_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        out = coverage.refresh_live(conn, settings)
        full_write_ms = (time.perf_counter() - t) * 1000
        conn.execute("UPDATE unit SET last_position = ST_Translate(last_position, 0.0005, 0) "
                     "WHERE id = %s", [unit_ids[0]])
        t = time.perf_counter()
        out2 = coverage.refresh_live(conn, settings)
        one_move_ms = (time.perf_counter() - t) * 1000
        ours_nodes = router.node_times(starts)
        peer_nodes = np.full(g.n_nodes, np.inf)
        for node, (cost, _) in dd.items():
            peer_nodes[g.node_index(node)] = cost
        nx_nodes = np.full(g.n_nodes, np.inf)
        for node, cost in nd.items():
            nx_nodes[node] = cost
        # pgr_drivingDistance(equicost) is not exact in pgRouting 3.4 (some nodes get a cost larger
        # than the best start's): check ours against pgr_dijkstraCost (best of all starts, on the
        # reversed graph) on sampled nodes, against networkx on every node, and never above pgr_dd.
        sample = [int(x) for x in g.node_id[rng.choice(g.n_nodes, min(60, g.n_nodes), replace=False)]]
        exact = pgr.dijkstra_cost(conn, settings.road_speed_kmh, sample, starts, edges=rev_sql)
        best = {n: min((c for (a, _), c in exact.items() if a == n), default=np.inf) for n in sample}
        best = np.array([0.0 if n in set(starts) else best[n] for n in sample])
        sample_ok = same(ours_nodes[[g.node_index(n) for n in sample]], best)
        fin = np.isfinite(peer_nodes)
        dd_worse = int(np.count_nonzero(peer_nodes[fin] > ours_nodes[fin] * (1 + REL) + 1e-9))
        dd_better = int(np.count_nonzero(peer_nodes[fin] < ours_nodes[fin] * (1 - REL) - 1e-9))
        cov_identical = sample_ok and same(ours_nodes, nx_nodes) and dd_better == 0 \
            and np.array_equal(fin, np.isfinite(ours_nodes))
        identical &= cov_identical
        log(f"live coverage from {out['units']} units over {g.n_edges} edges: compute p50 {pct(cov_ms, 50):.1f} ms; "
            f"first refresh with writes {full_write_ms:.0f} ms ({out['written']} rows); after one unit moved "
            f"{one_move_ms:.0f} ms ({out2['written']} rows)")
        log(f"pgr_drivingDistance(equicost, {len(starts)} starts): p50 {pct(pgr_cov_ms, 50):.0f} ms; networkx "
            f"multi-source: p50 {pct(nx_cov_ms, 50):.0f} ms")
        log(f"coverage node times: equal to networkx on all {g.n_nodes} nodes: {same(ours_nodes, nx_nodes)}; "
            f"equal to pgr_dijkstraCost (best start) on {len(sample)} sampled nodes: {sample_ok}; "
            f"pgr_drivingDistance(equicost) larger than the optimum on {dd_worse} nodes, smaller on {dd_better}")

    http_ms, errors = http_latencies(url, incidents, threads=4)
    log(f"nearest unit over HTTP (gunicorn, 1 worker, sequential keep-alive requests): p50 {pct(http_ms, 50):.2f} ms, "
        f"p99 {pct(http_ms, 99):.2f} ms, errors {errors}")
    identical &= errors == 0
    nu_speed = pct(pgr_ms, 50) / pct(ours_peer_ms, 50)
    cov_speed = pct(pgr_cov_ms, 50) / pct(cov_ms, 50)
    log(f"speedups vs pgRouting: nearest unit {nu_speed:.1f}x (networkx {pct(nx_ms, 50) / pct(ours_peer_ms, 50):.1f}x); "
        f"coverage {cov_speed:.1f}x (networkx {pct(nx_cov_ms, 50) / pct(cov_ms, 50):.1f}x)")
    print(f"routing: nearest_unit_speedup={nu_speed:.1f} coverage_speedup={cov_speed:.1f} "
          f"identical={'true' if identical else 'false'} http_p50_ms={pct(http_ms, 50):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
