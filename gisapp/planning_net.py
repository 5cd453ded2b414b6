"""Travel times for planning: from a few sources (stations, patrol posts) to many points and roads.

Planning asks one-to-many questions (a station to every incident and road of its area,
hundreds of candidate posts to every past incident within a target), so it works on whole
travel-time arrays: a Dijkstra tree per source over the road graph, then the time to any
point snapped onto an edge at its exact split point (partial edge cost, plus the off-road
leg at ``offroad_speed_kmh``), respecting oneway edges. The network is the one routing uses
(``road_edge`` with speeds by class from the settings); it is cached per database and road
network version.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import psycopg
import shapely
from pyproj import Transformer
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra


@dataclass
class Snapped:
    """Points snapped onto edges: edge index, fraction along it, off-road time in seconds."""

    edge: np.ndarray
    fraction: np.ndarray
    offroad_s: np.ndarray
    distance_m: np.ndarray


class PlanNetwork:
    """The road graph as arrays, with snapping and one-to-many travel times."""

    def __init__(self, rows: list[dict], settings, version: int):
        self.version = version
        self.srid = settings.metric_srid
        self.offroad_mps = settings.offroad_speed_kmh / 3.6  # km/h to m/s
        n = len(rows)
        self.edge_id = np.fromiter((r["id"] for r in rows), dtype=np.int64, count=n)
        self.road_class = np.array([r["road_class"] for r in rows], dtype=object)
        self.length_m = np.fromiter((r["length_m"] for r in rows), dtype=float, count=n)
        speeds = settings.road_speed_kmh
        kmh = np.fromiter(((r["speed_kmh"] or speeds.get(r["road_class"]) or speeds.get("other", 25.0))
                           for r in rows), dtype=float, count=n)
        self.cost_s = self.length_m / (kmh / 3.6)  # m / (m/s)
        self.oneway = np.fromiter((bool(r["oneway"]) for r in rows), dtype=bool, count=n)
        node_ids = np.unique(np.concatenate([[r["source"] for r in rows], [r["target"] for r in rows]])
                             if n else np.array([], dtype=np.int64))
        self.node_ids = node_ids
        self.src = np.searchsorted(node_ids, np.fromiter((r["source"] for r in rows), dtype=np.int64, count=n))
        self.tgt = np.searchsorted(node_ids, np.fromiter((r["target"] for r in rows), dtype=np.int64, count=n))
        self.n_nodes = len(node_ids)
        self.geom_m = shapely.from_wkb([bytes(r["wkb_m"]) for r in rows]) if n else np.array([])
        self.mid_lonlat = np.array([[r["mid_lon"], r["mid_lat"]] for r in rows], dtype=float).reshape(-1, 2)
        self.node_xy = np.zeros((self.n_nodes, 2))
        if n:  # every edge is a LineString from its source to its target
            self.node_xy[self.src] = shapely.get_coordinates(shapely.get_point(self.geom_m, 0))
            self.node_xy[self.tgt] = shapely.get_coordinates(shapely.get_point(self.geom_m, -1))
        self.tree = shapely.STRtree(self.geom_m) if n else None
        self._to_metric = Transformer.from_crs(4326, self.srid, always_xy=True)
        # Arcs: every edge forward, two-way edges backward too. Parallel arcs keep the cheapest.
        two = ~self.oneway
        a = np.concatenate([self.src, self.tgt[two]])
        b = np.concatenate([self.tgt, self.src[two]])
        w = np.concatenate([self.cost_s, self.cost_s[two]])
        w = np.maximum(w, 1e-9)  # csgraph treats explicit zeros as missing arcs
        order = np.lexsort((w, b, a))
        a, b, w = a[order], b[order], w[order]
        keep = np.ones(len(a), dtype=bool)
        keep[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
        self.arcs = (a[keep], b[keep], w[keep])

    # --- loading ---
    @classmethod
    def load(cls, conn: psycopg.Connection, settings) -> PlanNetwork:
        """Return the cached network of this database, rebuilt when the roads changed."""
        version = conn.execute("SELECT version FROM road_network_version").fetchone()["version"]
        info = conn.info
        key = (info.host, info.port, info.dbname, settings.metric_srid, settings.offroad_speed_kmh,
               tuple(sorted(settings.road_speed_kmh.items())))
        with _lock:
            net = _cache.get(key)
            if net is not None and net.version == version:
                return net
        rows = conn.execute(
            """SELECT id, source, target, road_class, speed_kmh, oneway, length_m,
                      ST_AsBinary(ST_Transform(geom, %s)) AS wkb_m,
                      ST_X(ST_LineInterpolatePoint(geom, 0.5)) AS mid_lon,
                      ST_Y(ST_LineInterpolatePoint(geom, 0.5)) AS mid_lat
               FROM road_edge ORDER BY id""", [settings.metric_srid]).fetchall()
        net = cls(rows, settings, version)
        with _lock:
            _cache[key] = net
        return net

    # --- snapping ---
    def metric(self, lonlat: np.ndarray) -> np.ndarray:
        lonlat = np.asarray(lonlat, dtype=float).reshape(-1, 2)
        x, y = self._to_metric.transform(lonlat[:, 0], lonlat[:, 1])
        return np.column_stack([x, y])

    def snap(self, lonlat: np.ndarray) -> Snapped:
        """Snap points (lon, lat) to their nearest edges."""
        xy = self.metric(lonlat)
        m = len(xy)
        if m == 0 or self.tree is None:
            z = np.zeros(m)
            return Snapped(np.zeros(m, dtype=np.int64), z, np.full(m, np.inf), np.full(m, np.inf))
        pts = shapely.points(xy)
        idx, dist = self.tree.query_nearest(pts, return_distance=True, all_matches=False)
        edge = np.empty(m, dtype=np.int64)
        d = np.empty(m)
        edge[idx[0]] = idx[1]
        d[idx[0]] = dist
        frac = shapely.line_locate_point(self.geom_m[edge], pts, normalized=True)
        return Snapped(edge, np.nan_to_num(frac), d / self.offroad_mps, d)

    # --- travel times ---
    def _graph(self, seeds: list[list[tuple[int, float]]]) -> tuple[csr_matrix, list[int]]:
        """The graph plus one virtual node per source, linked to its seed nodes at seed cost."""
        a, b, w = self.arcs
        n = self.n_nodes
        va, vb, vw, virt = [], [], [], []
        for k, seed in enumerate(seeds):
            v = n + k
            virt.append(v)
            for node, cost in seed:
                va.append(v)
                vb.append(node)
                vw.append(max(cost, 1e-9))
        size = n + len(seeds)
        g = csr_matrix((np.concatenate([w, vw]), (np.concatenate([a, va]).astype(np.int64),
                                                  np.concatenate([b, vb]).astype(np.int64))), shape=(size, size))
        return g, virt

    def _seeds(self, snapped: Snapped) -> list[list[tuple[int, float]]]:
        """For each snapped source point, the nodes it reaches directly along its edge."""
        out = []
        for e, f, off in zip(snapped.edge, snapped.fraction, snapped.offroad_s, strict=True):
            c = self.cost_s[e]
            seed = [(int(self.tgt[e]), off + (1 - f) * c)]
            if not self.oneway[e]:
                seed.append((int(self.src[e]), off + f * c))
            out.append(seed)
        return out

    def node_times_from(self, lonlat: np.ndarray, limit: float = np.inf) -> np.ndarray:
        """Seconds from each source point to every node: array (sources, nodes)."""
        snapped = self.snap(lonlat)
        g, virt = self._graph(self._seeds(snapped))
        if not virt:
            return np.zeros((0, self.n_nodes))
        dist = dijkstra(g, directed=True, indices=virt, limit=limit)
        return dist[:, : self.n_nodes]

    def node_times_from_nodes(self, nodes: np.ndarray, limit: float = np.inf) -> np.ndarray:
        """Seconds from each of ``nodes`` (indices) to every node: array (len(nodes), nodes)."""
        a, b, w = self.arcs
        g = csr_matrix((w, (a, b)), shape=(self.n_nodes, self.n_nodes))
        return dijkstra(g, directed=True, indices=np.asarray(nodes, dtype=np.int64), limit=limit)

    def point_times(self, node_times: np.ndarray, targets: Snapped) -> np.ndarray:
        """Seconds from each source (rows of ``node_times``) to each snapped target point."""
        e, f = targets.edge, targets.fraction
        c = self.cost_s[e]
        t = node_times[:, self.src[e]] + f * c
        back = node_times[:, self.tgt[e]] + (1 - f) * c
        back[:, self.oneway[e]] = np.inf
        return np.minimum(t, back) + targets.offroad_s

    def edge_mid_times(self, node_times: np.ndarray) -> np.ndarray:
        """Seconds from each source to the middle of every edge."""
        half = 0.5 * self.cost_s
        t = node_times[:, self.src] + half
        back = node_times[:, self.tgt] + half
        back[:, self.oneway] = np.inf
        return np.minimum(t, back)


_cache: dict[tuple, PlanNetwork] = {}
_lock = threading.Lock()
