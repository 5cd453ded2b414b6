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


class SourceEdges:
    """Source points grouped by edge: edges with one source as arrays, edges with several as a dict."""

    def __init__(self, graph: RoadGraph, sources: Snaps | None):
        if sources is None or len(sources) == 0:
            ok = np.empty(0, dtype=np.int64)
        else:
            ok = np.flatnonzero((sources.edge >= 0) & np.isfinite(sources.offroad_s))
        e = sources.edge[ok] if len(ok) else np.empty(0, dtype=np.int64)
        uniq, inv, counts = np.unique(e, return_inverse=True, return_counts=True)
        one = counts[inv] == 1
        self.edge = e[one]
        self.fraction = sources.fraction[ok][one] if len(ok) else np.empty(0)
        self.offset = sources.offroad_s[ok][one] if len(ok) else np.empty(0)
        self.index = ok[one]
        self.multi: dict[int, list[tuple[float, float, int]]] = defaultdict(list)
        for j in np.flatnonzero(~one).tolist():
            i = int(ok[j])
            self.multi[int(e[j])].append((float(sources.fraction[i]), float(sources.offroad_s[i]), i))

    def items(self):
        """Every source edge as (edge, [(fraction, start time, source index)]) (slow path)."""
        for e, f, o, i in zip(self.edge.tolist(), self.fraction.tolist(), self.offset.tolist(),
                              self.index.tolist(), strict=True):
            yield e, [(f, o, i)]
        yield from self.multi.items()

    def __contains__(self, e: int) -> bool:
        return self.get(e) is not None

    def get(self, e: int, default=None):
        if e in self.multi:
            return self.multi[e]
        where = self.__dict__.get("_where")
        if where is None:
            where = self._where = {int(x): j for j, x in enumerate(self.edge.tolist())}
        j = where.get(e)
        if j is not None:
            return [(float(self.fraction[j]), float(self.offset[j]), int(self.index[j]))]
        return default


def sources_on_edges(graph: RoadGraph, sources: Snaps | None) -> SourceEdges:
    """Group the source points (off-road legs included in their start times) by edge."""
    return SourceEdges(graph, sources)


def _single_source_halves(graph: RoadGraph, a: np.ndarray, b: np.ndarray, se: SourceEdges):
    """For edges holding one source: the two sub-intervals [0, f] and [f, 1] as (p, q, length) where
    p is the time of the increasing front at the start and q of the decreasing front at the end."""
    e, f, o = se.edge, se.fraction, se.offset
    c = graph.edge_cost_s[e]
    back = (~graph.edge_oneway[e]) | (f == 0.0)
    d1 = np.minimum(b[e] + (1.0 - f) * c, np.where(back, o, np.inf))  # decreasing front value at f
    i2 = np.minimum(a[e] + f * c, o)  # increasing front value at f
    return (a[e], d1, f), (i2, b[e], 1.0 - f), c


def interval_max(p, q, length, c):
    with np.errstate(invalid="ignore"):
        t = np.minimum(np.minimum(p + length * c, q + length * c), (p + q + length * c) / 2)
    return np.where(np.isnan(t), np.inf, t)


def interval_within(p, q, length, c, budget):
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.clip((budget - p) / c, 0.0, length) + np.clip((budget - q) / c, 0.0, length)
    x = np.nan_to_num(x, nan=0.0, posinf=0.0)
    zero = c == 0
    x = np.where(zero, np.where(np.minimum(p, q) <= budget, length, 0.0), x)
    return np.minimum(length, x)


def envelope_pieces(a: float, b: float, c: float, oneway: bool, pts: list[tuple[float, float, int]]):
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


def intervals_within(pcs, budget: float) -> list[tuple[float, float]]:
    """Sub-intervals of [0, 1] where the envelope is within ``budget`` (merged)."""
    out: list[list[float]] = []
    for x0, x1, t0, t1 in pcs:
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
               on_edges: SourceEdges | None = None) -> np.ndarray:
    """Time (s) by which every point of each edge is reached (inf: some part never is)."""
    a, b = end_times(graph, dist)
    c = graph.edge_cost_s
    t = interval_max(a, b, 1.0, c)
    se = sources_on_edges(graph, sources) if on_edges is None else on_edges
    if len(se.edge):
        (p1, q1, l1), (p2, q2, l2), ce = _single_source_halves(graph, a, b, se)
        t[se.edge] = np.maximum(interval_max(p1, q1, l1, ce), interval_max(p2, q2, l2, ce))
    for e, pts in se.multi.items():
        pcs = envelope_pieces(a[e], b[e], c[e], bool(graph.edge_oneway[e]), pts)
        t[e] = max(max(p[2], p[3]) for p in pcs)
    return t


def full_and_within(graph: RoadGraph, dist: np.ndarray, budget_s: np.ndarray | float,
                    on_edges: SourceEdges) -> tuple[np.ndarray, np.ndarray]:
    """:func:`full_times` and :func:`within_fraction` together (the envelope of each edge holding
    several sources is built once)."""
    a, b = end_times(graph, dist)
    c = graph.edge_cost_s
    budget = np.broadcast_to(np.asarray(budget_s, dtype=np.float64), a.shape)
    t = interval_max(a, b, 1.0, c)
    frac = interval_within(a, b, 1.0, c, budget)
    se = on_edges
    if len(se.edge):
        (p1, q1, l1), (p2, q2, l2), ce = _single_source_halves(graph, a, b, se)
        t[se.edge] = np.maximum(interval_max(p1, q1, l1, ce), interval_max(p2, q2, l2, ce))
        bud = budget[se.edge]
        frac[se.edge] = np.minimum(1.0, interval_within(p1, q1, l1, ce, bud) + interval_within(p2, q2, l2, ce, bud))
    for e, pts in se.multi.items():
        pcs = envelope_pieces(a[e], b[e], c[e], bool(graph.edge_oneway[e]), pts)
        t[e] = max(max(p[2], p[3]) for p in pcs)
        frac[e] = min(1.0, sum(hi - lo for lo, hi in intervals_within(pcs, float(budget[e]))))
    return t, frac


def within_fraction(graph: RoadGraph, dist: np.ndarray, budget_s: np.ndarray | float,
                    sources: Snaps | None = None, on_edges: SourceEdges | None = None) -> np.ndarray:
    """Share (0..1) of each edge's length reached within ``budget_s`` (a number or one per edge)."""
    a, b = end_times(graph, dist)
    c = graph.edge_cost_s
    budget = np.broadcast_to(np.asarray(budget_s, dtype=np.float64), a.shape)
    frac = interval_within(a, b, 1.0, c, budget)
    se = sources_on_edges(graph, sources) if on_edges is None else on_edges
    if len(se.edge):
        (p1, q1, l1), (p2, q2, l2), ce = _single_source_halves(graph, a, b, se)
        bud = budget[se.edge]
        frac[se.edge] = np.minimum(1.0, interval_within(p1, q1, l1, ce, bud) + interval_within(p2, q2, l2, ce, bud))
    for e, pts in se.multi.items():
        pcs = envelope_pieces(a[e], b[e], c[e], bool(graph.edge_oneway[e]), pts)
        frac[e] = min(1.0, sum(hi - lo for lo, hi in intervals_within(pcs, float(budget[e]))))
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
        pcs = envelope_pieces(a[e], b[e], c[e], bool(graph.edge_oneway[e]), pts)
        parts = intervals_within(pcs, budget_s)
        out.pop(e, None)
        if parts:
            out[e] = parts
    return out
