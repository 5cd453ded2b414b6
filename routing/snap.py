"""Snap points to the nearest road edge at the exact split point, with partial edge costs.

A point snaps to the nearest edge (STRtree over the edges in the metric CRS); the split point
divides the edge at ``fraction`` of its length, so the two parts cost ``fraction * cost`` and
``(1 - fraction) * cost``. The straight leg from the point to the road costs time at the
off-road speed. A point further from every road than ``snap_max_distance_m`` is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from .graph import RoadGraph

# A split point closer than this to an end of its edge IS that end (fraction exactly 0 or 1). The
# projection of a point lying on a node comes out a few 1e-14 off the end; seeded there, a point at
# the end of a one-way edge could then only leave along that edge (source_seeds / target_seeds
# test the ends exactly).
END_TOLERANCE_M = 1e-6


def exact_fraction(along: np.ndarray, length: np.ndarray) -> np.ndarray:
    """The split point's position along its edge, 0..1, from the distance ``along`` it (metres)
    and the edge's ``length``; exactly 0 or 1 within END_TOLERANCE_M of an end."""
    along = np.asarray(along, dtype=np.float64)
    length = np.asarray(length, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(length > 0, along / length, 0.0)
    f = np.clip(f, 0.0, 1.0)
    f[along <= END_TOLERANCE_M] = 0.0
    f[(length - along <= END_TOLERANCE_M) & (length > END_TOLERANCE_M)] = 1.0
    return f


@dataclass
class Snaps:
    """Snap results for n points (arrays of length n)."""

    lonlat: np.ndarray  # (n, 2) the original points
    xy: np.ndarray  # (n, 2) the points in the metric CRS
    edge: np.ndarray  # int64 edge index (-1: no road at all)
    fraction: np.ndarray  # float64 position of the split point along the edge, 0..1
    distance_m: np.ndarray  # float64 straight distance point -> split point
    offroad_s: np.ndarray  # float64 time of the off-road leg
    flagged: np.ndarray  # bool: further than snap_max_distance_m from any road

    def __len__(self) -> int:
        return len(self.edge)

    def take(self, idx: np.ndarray) -> Snaps:
        """The snaps of points ``idx`` (an index array), in that order."""
        return Snaps(self.lonlat[idx], self.xy[idx], self.edge[idx], self.fraction[idx], self.distance_m[idx],
                     self.offroad_s[idx], self.flagged[idx])

    def info(self, i: int, graph: RoadGraph) -> dict:
        """The snap of point ``i`` as the API reports it."""
        e = int(self.edge[i])
        return {"edge_id": int(graph.edge_id[e]) if e >= 0 else None,
                "fraction": round(float(self.fraction[i]), 9) if e >= 0 else None,
                "distance_m": round(float(self.distance_m[i]), 3) if e >= 0 else None,
                "flagged": bool(self.flagged[i])}


class Snapper:
    """Nearest-edge lookups over one graph's edges (STRtree in the metric CRS)."""

    def __init__(self, graph: RoadGraph, offroad_speed_kmh: float, snap_max_distance_m: float):
        if not offroad_speed_kmh > 0:
            raise ValueError("offroad_speed_kmh must be positive")
        self.graph = graph
        self.tree = shapely.STRtree(graph.geom_metric)
        self.offroad_mps = offroad_speed_kmh / 3.6  # km/h to m/s
        self.max_distance_m = snap_max_distance_m

    def snap(self, lonlat: np.ndarray) -> Snaps:
        """Snap points given as an (n, 2) array of lon, lat."""
        g = self.graph
        lonlat = np.asarray(lonlat, dtype=np.float64).reshape(-1, 2)
        n = len(lonlat)
        if n == 1 and g.n_edges:
            return self._snap_one(lonlat)
        x, y = g.to_metric.transform(lonlat[:, 0], lonlat[:, 1])
        xy = np.column_stack([np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)])
        edge = np.full(n, -1, dtype=np.int64)
        fraction = np.zeros(n)
        dist = np.full(n, np.inf)
        if n and g.n_edges:
            pts = shapely.points(xy)
            # Bounded first (fast), then unbounded for the points with no road that close.
            (pi, ei), d = self.tree.query_nearest(pts, max_distance=max(self.max_distance_m, 1.0),
                                                  return_distance=True, all_matches=True)
            found = np.zeros(n, dtype=bool)
            found[pi] = True
            far = np.flatnonzero(~found)
            if len(far):
                (pf, ef), df = self.tree.query_nearest(pts[far], return_distance=True, all_matches=True)
                pi, ei, d = np.concatenate([pi, far[pf]]), np.concatenate([ei, ef]), np.concatenate([d, df])
            # Ties (a point equally near several edges, e.g. at a node): take the lowest edge index.
            order = np.lexsort((ei, pi))
            pi, ei, d = pi[order], ei[order], d[order]
            first = np.ones(len(pi), dtype=bool)
            first[1:] = pi[1:] != pi[:-1]
            pi, ei, d = pi[first], ei[first], d[first]
            edge[pi] = ei
            dist[pi] = d
            lines = g.geom_metric[ei]
            along = shapely.line_locate_point(lines, pts[pi])
            fraction[pi] = exact_fraction(along, g.metric_length[ei])
        offroad = np.where(np.isfinite(dist), dist / self.offroad_mps, np.inf)
        flagged = ~(dist <= self.max_distance_m)
        return Snaps(lonlat, xy, edge, fraction, dist, offroad, flagged)


    def _snap_one(self, lonlat: np.ndarray) -> Snaps:
        """:meth:`snap` for one point (the incident of every query) without the array machinery."""
        g = self.graph
        x, y = g.to_metric.transform(float(lonlat[0, 0]), float(lonlat[0, 1]))
        pt = shapely.Point(x, y)
        ei, d = self.tree.query_nearest(pt, max_distance=max(self.max_distance_m, 1.0), return_distance=True,
                                        all_matches=True)
        if len(ei) == 0:
            ei, d = self.tree.query_nearest(pt, return_distance=True, all_matches=True)
        j = int(np.argmin(ei))  # ties (equally near edges): the lowest edge index
        e, dist = int(ei[j]), float(d[j])
        f = float(exact_fraction(np.array([g.geom_metric[e].project(pt)]), g.metric_length[e:e + 1])[0])
        return Snaps(lonlat, np.array([[x, y]], dtype=np.float64), np.array([e], dtype=np.int64), np.array([f]),
                     np.array([dist]), np.array([dist / self.offroad_mps]),
                     np.array([not dist <= self.max_distance_m]))


def source_seeds(graph: RoadGraph, edge: int, fraction: float) -> list[tuple[int, float, float]]:
    """Nodes reachable from a point on ``edge`` at ``fraction``: (node, time s, distance m).

    Forward to the target is always allowed; back to the source only on a two-way edge (or
    when the point is exactly at the source node).
    """
    c = graph.edge_cost_s[edge]
    length = graph.edge_length_m[edge]
    out = [(int(graph.edge_v[edge]), (1.0 - fraction) * c, (1.0 - fraction) * length)]
    if not graph.edge_oneway[edge] or fraction == 0.0:
        out.append((int(graph.edge_u[edge]), fraction * c, fraction * length))
    return out


def target_seeds(graph: RoadGraph, edge: int, fraction: float) -> list[tuple[int, float, float]]:
    """Nodes from which a point on ``edge`` at ``fraction`` is reached: (node, time s, distance m).

    From the source node forward is always allowed; from the target node backward only on a
    two-way edge (or when the point is exactly at the target node).
    """
    c = graph.edge_cost_s[edge]
    length = graph.edge_length_m[edge]
    out = [(int(graph.edge_u[edge]), fraction * c, fraction * length)]
    if not graph.edge_oneway[edge] or fraction == 1.0:
        out.append((int(graph.edge_v[edge]), (1.0 - fraction) * c, (1.0 - fraction) * length))
    return out


def same_edge_time(graph: RoadGraph, edge: int, f_from: float, f_to: float) -> tuple[float, float]:
    """Time and distance from one point to another on the same edge without leaving it (inf if not allowed)."""
    c = graph.edge_cost_s[edge]
    length = graph.edge_length_m[edge]
    if f_to >= f_from:
        return (f_to - f_from) * c, (f_to - f_from) * length
    if not graph.edge_oneway[edge]:
        return (f_from - f_to) * c, (f_from - f_to) * length
    return np.inf, np.inf
