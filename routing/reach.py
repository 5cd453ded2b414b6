"""Calculate when each point of each road edge is reached, from node times and points on edges.

A point at fraction x of edge (u -> v, cost c) is reached at
``min(t_u + x c, t_v + (1 - x) c [two-way only], o_j + |x - f_j| c [sources on the edge])``.
From that envelope: the time by which the whole edge is reached, the metres reached within a
budget, and the reached sub-intervals (for service-area geometry). Edges without a source
on them use closed forms, vectorised; the few edges holding a source are done exactly one by one.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .graph import RoadGraph
from .snap import Snaps


def end_times(graph: RoadGraph, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a, b): time at each edge's source node, and at its target node where the edge may be
    entered backwards (inf on oneway edges)."""
    a = dist[graph.edge_u]
    b = np.where(graph.edge_oneway, np.inf, dist[graph.edge_v])
    return a, b


def sources_on_edges(graph: RoadGraph, sources: Snaps | None) -> dict[int, list[tuple[float, float, int]]]:
    """{edge: [(fraction, start time, source index)]} for the source points (off-road legs included)."""
    out: dict[int, list[tuple[float, float, int]]] = defaultdict(list)
    if sources is None:
        return out
    for i in range(len(sources)):
        e = int(sources.edge[i])
        if e >= 0 and np.isfinite(sources.offroad_s[i]):
            out[e].append((float(sources.fraction[i]), float(sources.offroad_s[i]), i))
    return out


def _pieces(a: float, b: float, c: float, oneway: bool, pts: list[tuple[float, float, int]]):
    """Linear pieces (x0, x1, t0, t1) of the reach envelope on [0, 1] for one edge."""
    inc = [(0.0, a, 0.0)]  # (origin, time at origin, domain start) increasing with x
    dec = [(1.0, b, 1.0)]  # decreasing with x; domain end
    for f, o, _ in pts:
        inc.append((f, o, f))
        if not oneway or f == 0.0:
            dec.append((f, o, f))
    xs = {0.0, 1.0}
    xs.update(f for f, _, _ in pts)
    if c > 0:
        for p, tp, _ in inc:
            for q, tq, _ in dec:
                if np.isfinite(tp) and np.isfinite(tq):
                    x = (tq - tp + (p + q) * c) / (2 * c)
                    if 0.0 < x < 1.0:
                        xs.add(float(x))
    xs = sorted(xs)

    def val(piece, x, increasing):
        origin, t, dom = piece
        if increasing:
            return t + (x - origin) * c if x >= dom - 1e-15 else np.inf
        return t + (origin - x) * c if x <= dom + 1e-15 else np.inf

    out = []
    for x0, x1 in zip(xs[:-1], xs[1:], strict=True):
        mid = 0.5 * (x0 + x1)
        best, bt = None, np.inf
        for piece in inc:
            v = val(piece, mid, True)
            if v < bt:
                best, bt = (piece, True), v
        for piece in dec:
            v = val(piece, mid, False)
            if v < bt:
                best, bt = (piece, False), v
        if best is None:
            out.append((x0, x1, np.inf, np.inf))
            continue
        piece, up = best
        origin, t, _ = piece
        if up:
            out.append((x0, x1, t + (x0 - origin) * c, t + (x1 - origin) * c))
        else:
            out.append((x0, x1, t + (origin - x0) * c, t + (origin - x1) * c))
    return out


def _within(pieces, budget: float) -> list[tuple[float, float]]:
    """Sub-intervals of [0, 1] where the envelope is within ``budget`` (merged)."""
    out: list[list[float]] = []
    for x0, x1, t0, t1 in pieces:
        if t0 <= budget and t1 <= budget:
            lo, hi = x0, x1
        elif t0 > budget and t1 > budget:
            continue
        else:
            xm = x0 + (budget - t0) / (t1 - t0) * (x1 - x0)
            lo, hi = (x0, xm) if t0 <= budget else (xm, x1)
        if out and abs(out[-1][1] - lo) < 1e-12:
            out[-1][1] = hi
        else:
            out.append([lo, hi])
    return [(lo, hi) for lo, hi in out if hi > lo]


def full_times(graph: RoadGraph, dist: np.ndarray, sources: Snaps | None = None,
               on_edges: dict | None = None) -> np.ndarray:
    """Time (s) by which every point of each edge is reached (inf: some part never is)."""
    a, b = end_times(graph, dist)
    c = graph.edge_cost_s
    with np.errstate(invalid="ignore"):
        t = np.minimum(np.minimum(a + c, b + c), (a + b + c) / 2)
    t = np.where(np.isnan(t), np.inf, t)
    on_edges = sources_on_edges(graph, sources) if on_edges is None else on_edges
    for e, pts in on_edges.items():
        pcs = _pieces(a[e], b[e], c[e], bool(graph.edge_oneway[e]), pts)
        t[e] = max(max(p[2], p[3]) for p in pcs)
    return t


def within_fraction(graph: RoadGraph, dist: np.ndarray, budget_s: np.ndarray | float,
                    sources: Snaps | None = None, on_edges: dict | None = None) -> np.ndarray:
    """Share (0..1) of each edge's length reached within ``budget_s`` (a number or one per edge)."""
    a, b = end_times(graph, dist)
    c = graph.edge_cost_s
    budget = np.broadcast_to(np.asarray(budget_s, dtype=np.float64), a.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        fu = np.clip((budget - a) / c, 0.0, 1.0)
        fv = np.clip((budget - b) / c, 0.0, 1.0)
    frac = np.minimum(1.0, np.nan_to_num(fu, nan=0.0) + np.nan_to_num(fv, nan=0.0))
    zero = c == 0
    frac[zero] = (np.minimum(a, b)[zero] <= budget[zero]).astype(float)
    on_edges = sources_on_edges(graph, sources) if on_edges is None else on_edges
    for e, pts in on_edges.items():
        pcs = _pieces(a[e], b[e], c[e], bool(graph.edge_oneway[e]), pts)
        frac[e] = min(1.0, sum(hi - lo for lo, hi in _within(pcs, float(budget[e]))))
    return frac


def reached_intervals(graph: RoadGraph, dist: np.ndarray, budget_s: float, sources: Snaps | None = None,
                      on_edges: dict | None = None) -> dict[int, list[tuple[float, float]]]:
    """{edge: [(x0, x1), ...]} parts of edges reached within ``budget_s`` (edges with nothing reached omitted)."""
    a, b = end_times(graph, dist)
    c = graph.edge_cost_s
    on_edges = sources_on_edges(graph, sources) if on_edges is None else on_edges
    out: dict[int, list[tuple[float, float]]] = {}
    cand = np.flatnonzero((a <= budget_s) | (b <= budget_s))
    with np.errstate(invalid="ignore", divide="ignore"):
        fu = np.clip((budget_s - a[cand]) / c[cand], 0.0, 1.0)
        fv = np.clip((budget_s - b[cand]) / c[cand], 0.0, 1.0)
    fu = np.nan_to_num(fu, nan=1.0)
    fv = np.nan_to_num(fv, nan=1.0)
    for e, x_u, x_v in zip(cand.tolist(), fu.tolist(), fv.tolist(), strict=True):
        if e in on_edges:
            continue
        if x_u + x_v >= 1.0:
            out[e] = [(0.0, 1.0)]
        else:
            parts = []
            if x_u > 0:
                parts.append((0.0, x_u))
            if x_v > 0:
                parts.append((1.0 - x_v, 1.0))
            if parts:
                out[e] = parts
    for e, pts in on_edges.items():
        pcs = _pieces(a[e], b[e], c[e], bool(graph.edge_oneway[e]), pts)
        parts = _within(pcs, budget_s)
        if parts:
            out[e] = parts
    return out
