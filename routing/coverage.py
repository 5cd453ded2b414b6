"""Calculate road coverage: best times from stations (static) and available units (live), area
shares within target, gap segments, and each station's response radius (出警半径).

Per road edge, ``road_coverage`` holds the time by which the *whole* edge is reached
(``station_time_s``, ``unit_time_s``), who reaches it first, the edge's target (main roads:
``main_road_target_min``; the others, rural roads: ``rural_road_target_min``), and the metres
of the edge reached within that target (``station_within_m``, ``unit_within_m``), so that
area shares count partly covered edges exactly.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import psycopg
import shapely
from psycopg import sql
from psycopg.rows import tuple_row

from . import get_router, queries, units
from .engine import search_each
from .graph import ROAD_CLASSES, RoadGraph
from .periodic import Periodic
from .reach import full_and_within, full_times, sources_on_edges, within_fraction
from .router import Router
from .snap import Snaps, source_seeds

AREA_KINDS = ("station", "traffic", "grid", "joint_zone")


def edge_targets_s(graph: RoadGraph, settings: Any) -> np.ndarray:
    """The coverage target of each edge in seconds (main-road or rural-road target by class)."""
    main = np.array([c in set(settings.main_road_classes) for c in ROAD_CLASSES])
    return np.where(main[graph.edge_class], settings.main_road_target_min * 60.0,
                    settings.rural_road_target_min * 60.0)


def compute(router: Router, sources: Snaps, targets_s: np.ndarray) -> dict[str, np.ndarray]:
    """Multi-source coverage of every edge from the source points.

    Returns arrays per edge: ``time_s`` (whole edge reached; inf: never), ``source`` (index of
    the first source to reach it, -1: none), ``within_m`` (metres within the edge's target), and
    per node ``node_time_s`` and ``node_source``.
    """
    g = router.graph
    tree = router.from_points(sources, predecessors=False, with_sources=True)
    node_src = np.where(np.isfinite(tree.dist), tree.source, -1).astype(np.int64)
    out = _edge_results(g, tree.dist, node_src, sources, targets_s)
    out.update(node_time_s=tree.dist, node_source=node_src)
    return out


def _edge_results(g, dist: np.ndarray, node_src: np.ndarray, sources: Snaps,
                  targets_s: np.ndarray) -> dict[str, np.ndarray]:
    """Per-edge results of a multi-source search (``g`` may be a view of some edges)."""
    on_edges = sources_on_edges(g, sources)
    t, frac = full_and_within(g, dist, targets_s, on_edges)
    within = frac * g.edge_length_m
    a = dist[g.edge_u]
    b = np.where(g.edge_oneway, np.inf, dist[g.edge_v])
    src = np.where(a <= b, node_src[g.edge_u], node_src[g.edge_v])
    src = np.where(np.isfinite(np.minimum(a, b)), src, -1)
    better = on_edges.offset < np.minimum(a[on_edges.edge], b[on_edges.edge])
    src[on_edges.edge[better]] = on_edges.index[better]
    for e, pts in on_edges.multi.items():
        _, o, i = min(pts, key=lambda p: p[1])
        if o < min(a[e], b[e]):
            src[e] = i
    return {"time_s": t, "source": src.astype(np.int64), "within_m": within}


def _seeds(g, sources: Snaps, which: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The seed nodes, start times and owners of the sources ``which`` (as Router.from_points)."""
    ok = which[(sources.edge[which] >= 0) & np.isfinite(sources.offroad_s[which])]
    e, f, off = sources.edge[ok], sources.fraction[ok], sources.offroad_s[ok]
    c = g.edge_cost_s[e]
    back = (~g.edge_oneway[e]) | (f == 0.0)
    return (np.concatenate([g.edge_v[e], g.edge_u[e][back]]),
            np.concatenate([off + (1.0 - f) * c, (off + f * c)[back]]),
            np.concatenate([ok, ok[back]]))


def compute_incremental(router: Router, prev: dict, prev_sources: Snaps, sources: Snaps,
                        targets_s: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`compute` after some sources moved (same sources, same order), recomputing only the
    area the moved sources' old and new reach touch: the nodes they reached are re-entered from
    their neighbours, their new seeds added, and only the edges around changed nodes (and the
    edges they stood on) are evaluated again. Falls back to :func:`compute` when the source list
    is not the same length. Node times equal a full recompute; where two sources tie exactly for
    a node, the one already recorded keeps it."""
    from dataclasses import replace

    from .fastsearch import repair

    g = router.graph
    if len(prev_sources) != len(sources) or "node_source" not in prev:
        return compute(router, sources, targets_s)
    moved = np.flatnonzero((prev_sources.edge != sources.edge) | (prev_sources.fraction != sources.fraction)
                           | (prev_sources.offroad_s != sources.offroad_s))
    out = {k: v.copy() for k, v in prev.items()}
    if len(moved) == 0:
        return out
    changed = np.zeros(len(sources), dtype=bool)
    changed[moved] = True
    dist, node_src = out["node_time_s"], out["node_source"]
    # every source's seeds: the moved ones' new seeds, and the others' where a moved source had
    # beaten them (skipped at once where the kept time is not later)
    sn, so, ss = _seeds(g, sources, np.arange(len(sources)))
    edges = repair(g, dist, node_src, changed, sn, so, ss)
    stood = np.concatenate([prev_sources.edge[moved], sources.edge[moved]])
    edges = np.union1d(edges, stood[stood >= 0])
    # a view of those edges, with the sources on them renumbered to the view
    pos = np.full(g.n_edges if hasattr(g, "n_edges") else len(g.edge_u), -1, dtype=np.int64)
    pos[edges] = np.arange(len(edges))
    se = np.where(sources.edge >= 0, pos[np.maximum(sources.edge, 0)], -1)
    view = _EdgeView(g, edges)
    res = _edge_results(view, dist, node_src, replace(sources, edge=se), targets_s[edges])
    for k in ("time_s", "source", "within_m"):
        out[k][edges] = res[k]
    out["edges_recomputed"] = edges
    return out


class _EdgeView:
    """Some edges of a graph, as the per-edge arrays the coverage functions read."""

    def __init__(self, g, edges: np.ndarray):
        self.edge_u, self.edge_v = g.edge_u[edges], g.edge_v[edges]
        self.edge_cost_s, self.edge_oneway = g.edge_cost_s[edges], g.edge_oneway[edges]
        self.edge_length_m = g.edge_length_m[edges]


def _incident_counts(conn: psycopg.Connection, router: Router, window_days: int) -> np.ndarray:
    """Incidents of the last ``window_days`` (before the latest one) per edge, snapped to the nearest road."""
    pts = queries.incident_points_window(conn, window_days)
    counts = np.zeros(router.graph.n_edges, dtype=np.int64)
    if pts and router.graph.n_edges:
        s = router.snap(np.array(pts, dtype=np.float64))
        ok = (s.edge >= 0) & ~s.flagged
        counts += np.bincount(s.edge[ok], minlength=router.graph.n_edges)
    return counts


def _copy_rows(conn: psycopg.Connection, columns: list[tuple[str, str]], rows, upsert: str) -> None:
    """Write rows through a temporary table and one INSERT ... ON CONFLICT statement."""
    with conn.transaction():
        conn.execute(sql.SQL("CREATE TEMP TABLE _coverage_in ({}) ON COMMIT DROP").format(
            sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in columns)))
        with conn.cursor().copy(sql.SQL("COPY _coverage_in ({}) FROM STDIN").format(
                sql.SQL(", ").join(sql.Identifier(n) for n, _ in columns))) as cp:
            for r in rows:
                cp.write_row(r)
        conn.execute(upsert)
        conn.execute("DROP TABLE _coverage_in")


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def refresh_static(conn: psycopg.Connection, settings: Any) -> dict:
    """Recompute the static coverage (from every station's headquarters) into ``road_coverage``.

    Also counts each edge's incidents of the past year (the ``gap_incident_window_days`` before
    the latest incident) for the gap ranking. Returns a summary.
    """
    t0 = time.perf_counter()
    router = get_router(conn, settings)
    g = router.graph
    st = queries.stations(conn)
    snaps = router.snap(np.array([[r[3], r[4]] for r in st], dtype=np.float64).reshape(-1, 2))
    targets = edge_targets_s(g, settings)
    res = compute(router, snaps, targets)
    counts = _incident_counts(conn, router, settings.gap_incident_window_days)
    org = [r[0] for r in st]
    rows = ((int(g.edge_id[e]), _num(res["time_s"][e]), org[res["source"][e]] if res["source"][e] >= 0 else None,
             int(counts[e]), float(targets[e]), float(res["within_m"][e])) for e in range(g.n_edges))
    _copy_rows(conn, [("edge_id", "bigint"), ("station_time_s", "float8"), ("station_org_id", "bigint"),
                      ("incidents_past_year", "int"), ("target_s", "float8"), ("station_within_m", "float8")], rows,
               """INSERT INTO road_coverage AS c (edge_id, station_time_s, station_org_id, incidents_past_year,
                                                   target_s, station_within_m, computed_at)
                  SELECT edge_id, station_time_s, station_org_id, incidents_past_year, target_s, station_within_m,
                         now() FROM _coverage_in
                  ON CONFLICT (edge_id) DO UPDATE SET station_time_s = EXCLUDED.station_time_s,
                      station_org_id = EXCLUDED.station_org_id, incidents_past_year = EXCLUDED.incidents_past_year,
                      target_s = EXCLUDED.target_s, station_within_m = EXCLUDED.station_within_m,
                      computed_at = now()""")
    total = float(g.edge_length_m.sum())
    return {"edges": g.n_edges, "stations": len(st), "road_km": round(total / 1000, 3),
            "within_target_share": round(float(res["within_m"].sum()) / total, 6) if total else None,
            "incidents_counted": int(counts.sum()), "seconds": round(time.perf_counter() - t0, 3)}


def coverage_version(conn: psycopg.Connection) -> int:
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute("SELECT version FROM data_version WHERE area = 'coverage'").fetchone()
    return int(row[0]) if row else 0


def compute_live(conn: psycopg.Connection, router: Router, settings: Any) -> tuple[np.ndarray, dict]:
    """Live coverage from the available units with a position: (their unit ids, compute() arrays)."""
    snap = units.snapshot(conn)
    idx = snap.select(("available",))
    sources = snap.snaps(router).take(idx) if len(idx) else router.snap(np.empty((0, 2)))
    ids = snap.ids[idx]
    targets = edge_targets_s(router.graph, settings)
    prev = getattr(router, "live_prev", None)  # (unit ids, their snaps, targets, result) of the last run
    if (prev is not None and len(ids) and np.array_equal(prev[0], ids) and np.array_equal(prev[2], targets)):
        res = compute_incremental(router, prev[3], prev[1], sources, targets)  # the same units, some moved
    else:
        res = compute(router, sources, targets)
    router.live_prev = (ids, sources, targets, res)
    return ids, res


def _live_in_table(conn: psycopg.Connection, g: RoadGraph) -> dict[str, np.ndarray]:
    """The live columns of road_coverage as arrays by edge index (what another writer left)."""
    n = g.n_edges
    out = {"time_s": np.full(n, np.nan), "unit_id": np.full(n, -1, dtype=np.int64), "within_m": np.full(n, np.nan)}
    with conn.cursor(row_factory=tuple_row, binary=True) as cur:
        for eid, t, uid, w in cur.execute("SELECT edge_id, unit_time_s, unit_id, unit_within_m FROM road_coverage"):
            e = g.edge_index_by_id.get(eid)
            if e is not None and w is not None:
                out["time_s"][e] = -1.0 if t is None else t
                out["unit_id"][e] = uid or 0
                out["within_m"][e] = w
    return out


def refresh_live(conn: psycopg.Connection, settings: Any) -> dict:
    """Recompute the live coverage (from every available unit) into ``road_coverage``.

    One multi-source search; only the edges whose values changed are written: against this
    process's last refresh, or against the table when another writer touched it in between.
    The units and road network it was computed from are recorded in ``live_coverage_state``.
    """
    t0 = time.perf_counter()
    stamp = units.read_stamp(conn)
    router = get_router(conn, settings)
    g = router.graph
    unit_ids, res = compute_live(conn, router, settings)
    t_compute = time.perf_counter() - t0
    ids0 = np.append(unit_ids, 0)
    uid = np.where(res["source"] >= 0, ids0[res["source"]], 0)
    time_s = np.where(np.isfinite(res["time_s"]), res["time_s"], -1.0)
    within = res["within_m"]
    state = router.live_state
    if not (state.get("coverage_version") == coverage_version(conn) and len(state.get("time_s", ())) == g.n_edges):
        state = _live_in_table(conn, g)
    changed = np.flatnonzero((state["time_s"] != time_s) | (state["unit_id"] != uid) | (state["within_m"] != within))
    targets = edge_targets_s(g, settings)
    out = ((int(g.edge_id[e]), _num(res["time_s"][e]), int(uid[e]) or None, float(targets[e]), float(within[e]))
           for e in changed.tolist())
    if len(changed):
        _copy_rows(conn, [("edge_id", "bigint"), ("unit_time_s", "float8"), ("unit_id", "bigint"),
                          ("target_s", "float8"), ("unit_within_m", "float8")], out,
                   """INSERT INTO road_coverage AS c (edge_id, unit_time_s, unit_id, target_s, unit_within_m,
                                                       live_computed_at)
                      SELECT edge_id, unit_time_s, unit_id, target_s, unit_within_m, now() FROM _coverage_in
                      ON CONFLICT (edge_id) DO UPDATE SET unit_time_s = EXCLUDED.unit_time_s,
                          unit_id = EXCLUDED.unit_id, target_s = EXCLUDED.target_s,
                          unit_within_m = EXCLUDED.unit_within_m, live_computed_at = now()""")
    conn.execute("""INSERT INTO live_coverage_state (road_version, unit_count, unit_hash) VALUES (%s, %s, %s)
                    ON CONFLICT (singleton) DO UPDATE SET road_version = EXCLUDED.road_version,
                        unit_count = EXCLUDED.unit_count, unit_hash = EXCLUDED.unit_hash, computed_at = now()""",
                 [stamp.road_version, stamp.count, stamp.hash])
    router.live_state = {"coverage_version": coverage_version(conn), "time_s": time_s, "unit_id": uid,
                         "within_m": within}
    total = float(g.edge_length_m.sum())
    return {"edges": g.n_edges, "units": len(unit_ids), "written": int(len(changed)),
            "within_target_share": round(float(within.sum()) / total, 6) if total else None,
            "compute_seconds": round(t_compute, 4), "seconds": round(time.perf_counter() - t0, 4)}


LIVE_LOCK_KEY = 0x67697361_6C697665  # pg advisory lock of live refreshes ("gisalive")


def refresh_live_if_stale(conn: psycopg.Connection, settings: Any) -> dict | None:
    """Recompute the live coverage when the units or the road network changed since it was last
    computed (``live_coverage_state``); None when it is current or another session is refreshing.

    Call it in a transaction (the advisory lock is held until its end); one cheap statement
    when nothing changed.
    """
    st = units.read_stamp(conn)

    def current() -> bool:
        with conn.cursor(row_factory=tuple_row) as cur:
            row = cur.execute("SELECT road_version, unit_count, unit_hash FROM live_coverage_state").fetchone()
        return row is not None and tuple(row) == (st.road_version, st.count, st.hash)

    if current():
        return None
    with conn.cursor(row_factory=tuple_row) as cur:
        if not cur.execute("SELECT pg_try_advisory_xact_lock(%s)", [LIVE_LOCK_KEY]).fetchone()[0]:
            return None
    if current():  # refreshed by the session that held the lock
        return None
    return refresh_live(conn, settings)


class LiveRefresher(Periodic):
    """A daemon thread that keeps the live coverage current for one database.

    Every ``interval_s`` (sooner after :meth:`poke`, but never twice within ``min_gap_s``) it
    runs :func:`refresh_live_if_stale` on a connection of its own, opened for that run only.
    Several processes may each run one: the advisory lock and the stored stamp make one of them
    do the work once per change.
    """

    thread_name = "gisapp-live-coverage"

    def __init__(self, url: str, settings: Any, interval_s: float, min_gap_s: float = 1.0, log=None):
        super().__init__(interval_s, min_gap_s, log)
        self.url, self.settings = url, settings
        self.refreshes = 0

    def task(self) -> dict | None:
        timeout = max(2, int(getattr(self.settings, "db_connect_timeout_s", 5) or 5))
        with psycopg.connect(self.url, connect_timeout=timeout, application_name="gisapp-live-coverage") as conn:
            out = refresh_live_if_stale(conn, self.settings)
            conn.commit()
        self.refreshes += out is not None
        return out

    def report(self, out: dict | None) -> str | None:
        if out is None:
            return None
        return f"live coverage refreshed: {out['written']} edges written in {out['seconds']} s"


# ------------------------------------------------------------------------------- read side
def current_areas(conn: psycopg.Connection, kind: str) -> list[tuple]:
    """(id, name, organisation_id, geom wkb) of the current areas of one kind."""
    if kind in ("station", "traffic"):
        q = """SELECT j.id, coalesce(j.name, o.name), j.organisation_id, ST_AsBinary(j.geom)
               FROM jurisdiction j JOIN organisation o ON o.id = j.organisation_id
               WHERE j.valid_from <= now() AND (j.valid_to IS NULL OR j.valid_to > now()) AND j.kind = %s ORDER BY j.id"""
        params: list = [kind]
    elif kind == "grid":
        q = "SELECT id, name, organisation_id, ST_AsBinary(geom) FROM grid ORDER BY id"
        params = []
    elif kind == "joint_zone":
        q = """SELECT z.id, z.name, z.centre_org_id, ST_AsBinary(coalesce(z.geom, (
                   SELECT ST_Multi(ST_Union(j.geom)) FROM jurisdiction j
                   JOIN joint_zone_member m ON m.organisation_id = j.organisation_id
                   WHERE m.joint_zone_id = z.id AND j.valid_from <= now() AND (j.valid_to IS NULL OR j.valid_to > now()) AND j.kind = 'station')))
               FROM joint_zone z WHERE z.valid_from <= now() AND (z.valid_to IS NULL OR z.valid_to > now()) ORDER BY z.id"""
        params = []
    else:
        raise ValueError(f"area kind must be one of {', '.join(AREA_KINDS)}")
    with conn.cursor(row_factory=tuple_row) as cur:
        return [r for r in cur.execute(q, params).fetchall() if r[3] is not None]


def _midpoints(router: Router) -> np.ndarray:
    cache = router.__dict__.setdefault("_static", {})
    if "midpoints" not in cache:
        cache["midpoints"] = shapely.line_interpolate_point(router.graph.geom_lonlat, 0.5, normalized=True)
    return cache["midpoints"]


def assign_edges(router: Router, areas: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
    """(edge index, area index) pairs: each edge goes to the areas containing its midpoint."""
    if not areas or router.graph.n_edges == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    tree = shapely.STRtree(shapely.from_wkb([bytes(a[3]) for a in areas]))
    ei, ai = tree.query(_midpoints(router), predicate="within")
    return ei, ai


def _coverage_arrays(conn: psycopg.Connection, router: Router, source: str) -> dict[str, np.ndarray]:
    g = router.graph
    col_t, col_w = ("station_time_s", "station_within_m") if source == "static" else ("unit_time_s", "unit_within_m")
    n = g.n_edges
    out = {"time_s": np.full(n, np.nan), "within_m": np.zeros(n), "target_s": np.full(n, np.nan),
           "incidents": np.zeros(n, dtype=np.int64), "known": np.zeros(n, dtype=bool)}
    q = sql.SQL("SELECT edge_id, {}, {}, target_s, incidents_past_year FROM road_coverage").format(
        sql.Identifier(col_t), sql.Identifier(col_w))
    with conn.cursor(row_factory=tuple_row) as cur:
        for eid, t, w, tgt, inc in cur.execute(q):
            e = g.edge_index_by_id.get(eid)
            if e is None:
                continue
            out["time_s"][e] = np.inf if t is None else t
            out["within_m"][e] = w or 0.0
            out["target_s"][e] = np.nan if tgt is None else tgt
            out["incidents"][e] = inc
            out["known"][e] = w is not None
    return out


def by_area(conn: psycopg.Connection, settings: Any, kind: str, source: str = "static") -> list[dict]:
    """Share of road km within target per area of ``kind`` (station/traffic jurisdictions, grids,
    joint zones), overall, for main and rural roads, and by road class."""
    router = get_router(conn, settings)
    g = router.graph
    areas = current_areas(conn, kind)
    cov = _coverage_arrays(conn, router, source)
    ei, ai = assign_edges(router, areas)
    main = set(settings.main_road_classes)
    out = []
    for k, (aid, name, org, wkb) in enumerate(areas):
        edges = ei[ai == k]
        length = g.edge_length_m[edges]
        within = cov["within_m"][edges]
        cls = g.edge_class[edges]

        def share(mask, length=length, within=within):
            tot = float(length[mask].sum())
            w = float(within[mask].sum())
            return {"road_km": round(tot / 1000, 3), "within_km": round(w / 1000, 3),
                    "share": round(w / tot, 6) if tot > 0 else None}

        main_mask = np.array([ROAD_CLASSES[c] in main for c in cls], dtype=bool)
        out.append({"area_kind": kind, "area_id": aid, "name": name, "organisation_id": org,
                    "computed": bool(cov["known"][edges].all()) if len(edges) else False,
                    **share(np.ones(len(edges), dtype=bool)),
                    "main": share(main_mask), "rural": share(~main_mask),
                    "by_class": {ROAD_CLASSES[c]: share(cls == c) for c in sorted(set(cls.tolist()))},
                    "geometry": shapely.from_wkb(bytes(wkb))})
    return out


def gaps(conn: psycopg.Connection, settings: Any, source: str = "static", *, limit: int = 100,
         road_class: str | None = None, area_kind: str | None = None, area_id: int | None = None) -> list[dict]:
    """Edges not wholly reached within their target, ranked by uncovered km x incidents of the past year
    (then by uncovered length)."""
    router = get_router(conn, settings)
    g = router.graph
    cov = _coverage_arrays(conn, router, source)
    mask = cov["known"] & ~(cov["time_s"] <= cov["target_s"])
    if road_class is not None:
        mask &= g.edge_class == ROAD_CLASSES.index(road_class)
    if area_kind is not None:
        areas = [a for a in current_areas(conn, area_kind) if a[0] == area_id]
        ei, _ = assign_edges(router, areas)
        inside = np.zeros(g.n_edges, dtype=bool)
        inside[ei] = True
        mask &= inside
    idx = np.flatnonzero(mask)
    uncovered = np.maximum(g.edge_length_m[idx] - cov["within_m"][idx], 0.0)
    score = uncovered / 1000.0 * cov["incidents"][idx]
    order = np.lexsort((g.edge_id[idx], -uncovered, -score))[:limit]
    out = []
    for rank, j in enumerate(order, 1):
        e = int(idx[j])
        t = cov["time_s"][e]
        out.append({"rank": rank, "edge_id": int(g.edge_id[e]), "road_class": ROAD_CLASSES[g.edge_class[e]],
                    "length_m": float(g.edge_length_m[e]), "uncovered_m": float(uncovered[j]),
                    "time_s": _num(t), "target_s": float(cov["target_s"][e]),
                    "incidents_past_year": int(cov["incidents"][e]), "score": float(score[j]),
                    "geometry": g.geom_lonlat[e]})
    return out


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cum = np.cumsum(w)
    if cum[-1] <= 0:
        return float("nan")
    i = int(np.searchsorted(cum, q * cum[-1], side="left"))
    return float(v[min(i, len(v) - 1)])


def response_radius(conn: psycopg.Connection, settings: Any) -> list[dict]:
    """Per current station jurisdiction: p50, p90 and max time (s) from its station to its roads.

    The time of a road edge is when the whole edge is reached from the station's headquarters;
    the percentiles weight edges by length. ``unreachable_km`` counts roads never reached.
    """
    router = get_router(conn, settings)
    g = router.graph
    rows = queries.station_jurisdictions(conn)
    areas = [(r[0], r[3], r[1], r[6]) for r in rows]
    ei, ai = assign_edges(router, areas)
    with_hq = [k for k, r in enumerate(rows) if r[4] is not None]
    snaps = router.snap(np.array([[rows[k][4], rows[k][5]] for k in with_hq], dtype=np.float64).reshape(-1, 2))
    seeds = []
    for i in range(len(with_hq)):
        e = int(snaps.edge[i])
        seeds.append([(n, float(snaps.offroad_s[i]) + t) for n, t, _ in source_seeds(g, e, float(snaps.fraction[i]))]
                     if e >= 0 else [])
    dist = search_each(g.forward, seeds)
    targets = edge_targets_s(g, settings)
    out = []
    for i, k in enumerate(with_hq):
        r = rows[k]
        edges = ei[ai == k]
        one = Snaps(snaps.lonlat[i:i + 1], snaps.xy[i:i + 1], snaps.edge[i:i + 1], snaps.fraction[i:i + 1],
                    snaps.distance_m[i:i + 1], snaps.offroad_s[i:i + 1], snaps.flagged[i:i + 1])
        t_all = full_times(g, dist[i], one)
        t = t_all[edges]
        w = g.edge_length_m[edges]
        reach = np.isfinite(t)
        within = within_fraction(g, dist[i], targets, one)[edges] * w
        item = {"jurisdiction_id": r[0], "organisation_id": r[1], "code": r[2], "name": r[3],
                "station_snap": one.info(0, g), "road_km": round(float(w.sum()) / 1000, 3),
                "unreachable_km": round(float(w[~reach].sum()) / 1000, 3),
                "within_target_share": round(float(within.sum() / w.sum()), 6) if w.sum() > 0 else None}
        for name, q in (("p50_s", 0.5), ("p90_s", 0.9)):
            val = _weighted_quantile(np.where(reach, t, np.inf), w, q) if len(t) else float("nan")
            item[name] = _num(val) if not np.isnan(val) else None
        item["max_s"] = _num(float(t.max())) if len(t) else None
        out.append(item)
    for r in rows:
        if r[4] is None:
            out.append({"jurisdiction_id": r[0], "organisation_id": r[1], "code": r[2], "name": r[3],
                        "station_snap": None, "road_km": None, "unreachable_km": None, "within_target_share": None,
                        "p50_s": None, "p90_s": None, "max_s": None, "reason": "the station has no headquarters point"})
    return out
