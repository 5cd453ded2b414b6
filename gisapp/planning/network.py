"""Travel times for planning, through routing: from a few sources to many points and roads.

Planning asks one-to-many questions (a station to every incident and road of its area,
hundreds of candidate posts to every past incident within a target), so it works on whole
travel-time arrays over routing's road graph (``routing.get_router``): one Dijkstra search
per source from its exact split point on its edge (routing's snapping, with the off-road
leg), then the time to any snapped point from the two ends of its edge with the partial edge
cost, respecting oneway edges, exactly as routing computes an ETA.
"""

from __future__ import annotations

import threading

import numpy as np
import psycopg
import shapely

import routing
from routing.engine import search_each
from routing.graph import ROAD_CLASSES
from routing.snap import Snaps, source_seeds


def subset(s: Snaps, mask: np.ndarray) -> Snaps:
    """The snaps of the points selected by ``mask``."""
    return Snaps(s.lonlat[mask], s.xy[mask], s.edge[mask], s.fraction[mask], s.distance_m[mask],
                 s.offroad_s[mask], s.flagged[mask])


class PlanNetwork:
    """Routing's road graph seen as arrays, with one-to-many travel times."""

    def __init__(self, router):
        g = router.graph
        self.router = router
        self.graph = g
        self.version = g.version
        self.srid = g.metric_srid
        self.edge_id = g.edge_id
        self.road_class = np.array(ROAD_CLASSES, dtype=object)[g.edge_class] if len(g.edge_id) else \
            np.array([], dtype=object)
        self.length_m = g.edge_length_m
        self.cost_s = g.edge_cost_s
        self.oneway = g.edge_oneway
        self.src = g.edge_u.astype(np.int64)
        self.tgt = g.edge_v.astype(np.int64)
        self.node_ids = g.node_id
        self.n_nodes = len(g.node_id)
        if self.n_nodes:
            x, y = g.to_metric.transform(g.node_lonlat[:, 0], g.node_lonlat[:, 1])
            self.node_xy = np.column_stack([np.asarray(x), np.asarray(y)])
            self.node_lonlat = np.asarray(g.node_lonlat, dtype=float)
        else:
            self.node_xy = self.node_lonlat = np.zeros((0, 2))
        mids = shapely.line_interpolate_point(g.geom_lonlat, 0.5, normalized=True) if len(g.edge_id) else []
        self.mid_lonlat = shapely.get_coordinates(mids).reshape(-1, 2)

    @classmethod
    def load(cls, conn: psycopg.Connection, settings) -> PlanNetwork:
        """Return the network of routing's current router (rebuilt when the roads change)."""
        router = routing.get_router(conn, settings)
        with _lock:
            net = _cache.get(id(router))
            if net is None or net.router is not router:
                if len(_cache) > 8:
                    _cache.clear()
                net = _cache[id(router)] = cls(router)
        return net

    def snap(self, lonlat: np.ndarray) -> Snaps:
        """Snap points (lon, lat) to the network (routing's snapping)."""
        return self.router.snap(np.asarray(lonlat, dtype=float).reshape(-1, 2))

    def node_times_from(self, lonlat: np.ndarray, limit: float = np.inf) -> np.ndarray:
        """Seconds from each source point to every node: array (sources, nodes)."""
        s = self.snap(lonlat)
        seeds = []
        for e, f, off in zip(s.edge, s.fraction, s.offroad_s, strict=True):
            seeds.append([] if e < 0 else [(node, off + t) for node, t, _ in source_seeds(self.graph, int(e), float(f))])
        return search_each(self.graph.forward, seeds, limit=limit)

    def node_times_from_nodes(self, nodes: np.ndarray, limit: float = np.inf) -> np.ndarray:
        """Seconds from each of ``nodes`` (node indices) to every node: array (len(nodes), nodes)."""
        return search_each(self.graph.forward, [[(int(n), 0.0)] for n in nodes], limit=limit)

    def point_times(self, node_times: np.ndarray, targets: Snaps) -> np.ndarray:
        """Seconds from each source (rows of ``node_times``) to each snapped target point."""
        ok = targets.edge >= 0
        e = np.where(ok, targets.edge, 0)
        f = targets.fraction
        c = self.cost_s[e]
        t = node_times[:, self.src[e]] + f * c
        back = node_times[:, self.tgt[e]] + (1 - f) * c
        back[:, self.oneway[e] & (f != 1.0)] = np.inf
        out = np.minimum(t, back) + targets.offroad_s
        out[:, ~ok] = np.inf
        return out

    def edge_mid_times(self, node_times: np.ndarray) -> np.ndarray:
        """Seconds from each source to the middle of every edge."""
        half = 0.5 * self.cost_s
        t = node_times[:, self.src] + half
        back = node_times[:, self.tgt] + half
        back[:, self.oneway] = np.inf
        return np.minimum(t, back)


_cache: dict[int, PlanNetwork] = {}
_lock = threading.Lock()
