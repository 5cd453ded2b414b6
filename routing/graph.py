"""Build the road graph: edges from PostGIS into compact CSR arrays with travel times.

The graph is directed: every road edge gives an arc ``source -> target`` and, unless it is
oneway, an arc ``target -> source``; both cost ``length_m / speed`` seconds, where speed is
the edge's ``speed_kmh`` or else its class speed from the settings. Parallel arcs keep the
cheapest. The reverse graph (arcs flipped) gives travel times *toward* a point.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

import numpy as np
import psycopg
import pyproj
import shapely
from scipy.sparse import csr_matrix

from . import queries

ROAD_CLASSES = ("expressway", "national", "provincial", "county", "township", "village", "ramp", "urban", "other")


class RoutingDataError(ValueError):
    """The road data cannot be made into a graph (missing speeds, bad references)."""


@dataclass
class Csr:
    """One direction of the graph: a scipy CSR matrix and, per stored arc, its edge and direction."""

    matrix: csr_matrix
    arc_edge: np.ndarray  # int32: index into the edge arrays
    arc_forward: np.ndarray  # bool: arc runs source -> target of its edge

    def arc_between(self, a: int, b: int) -> int:
        """Return the position of arc ``a -> b`` in the CSR arrays (-1 when absent)."""
        lo, hi = self.matrix.indptr[a], self.matrix.indptr[a + 1]
        row = self.matrix.indices[lo:hi]
        i = int(np.searchsorted(row, b))
        if i < len(row) and row[i] == b:
            return int(lo + i)
        return -1

    def arcs_between(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Positions of arcs ``a[i] -> b[i]`` (each must exist), vectorised over the sorted CSR keys."""
        keys = self.__dict__.get("_keys")
        if keys is None:
            m = self.matrix
            rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
            keys = rows * m.shape[0] + m.indices
            self.__dict__["_keys"] = keys
        return np.searchsorted(keys, a.astype(np.int64) * self.matrix.shape[0] + b)

    def nbytes(self) -> int:
        m = self.matrix
        return m.data.nbytes + m.indices.nbytes + m.indptr.nbytes + self.arc_edge.nbytes + self.arc_forward.nbytes


@dataclass
class RoadGraph:
    """The road network as arrays (one row per road edge) plus the forward and reverse CSR graphs.

    Node indices run 0..n_nodes-1; ``node_id[i]`` is the ``road_node.id`` of node ``i``.
    """

    version: int
    edge_id: np.ndarray  # int64 road_edge.id
    edge_u: np.ndarray  # int32 node index of source
    edge_v: np.ndarray  # int32 node index of target
    edge_cost_s: np.ndarray  # float64 seconds to travel the whole edge
    edge_length_m: np.ndarray  # float64
    edge_oneway: np.ndarray  # bool
    edge_class: np.ndarray  # int8 index into ROAD_CLASSES
    geom_lonlat: np.ndarray  # shapely LineStrings, EPSG:4326
    geom_metric: np.ndarray  # shapely LineStrings, metric CRS
    metric_length: np.ndarray  # float64 length of geom_metric (CRS units)
    node_id: np.ndarray  # int64 road_node.id per node index
    node_lonlat: np.ndarray  # (n, 2) float64
    forward: Csr
    reverse: Csr
    metric_srid: int
    to_metric: pyproj.Transformer = field(repr=False)
    to_lonlat: pyproj.Transformer = field(repr=False)
    edge_index_by_id: dict[int, int] = field(repr=False, default_factory=dict)
    # Metric coordinates of every edge, flat: edge e has rows coord_start[e]:coord_start[e+1] of
    # coord_xy, and coord_cum holds the distance of each vertex from the edge's start.
    coord_xy: np.ndarray = field(repr=False, default_factory=lambda: np.empty((0, 2)))
    coord_start: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(1, dtype=np.int64))
    coord_cum: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))
    coord_ll: np.ndarray = field(repr=False, default_factory=lambda: np.empty((0, 2)))  # same vertices, lon/lat

    def edge_xy(self, e: int) -> np.ndarray:
        """Metric coordinates of edge ``e`` (a view)."""
        return self.coord_xy[self.coord_start[e]:self.coord_start[e + 1]]

    def edge_ll(self, e: int) -> np.ndarray:
        """Lon/lat coordinates of edge ``e`` (a view)."""
        return self.coord_ll[self.coord_start[e]:self.coord_start[e + 1]]

    def _lists(self) -> tuple[list, list, list]:
        """Lon/lat vertices (tuples rounded to 7 decimals, as routes are given), edge starts and
        cumulative distances as Python lists (fast for short paths; tuples of floats are not
        tracked by the garbage collector, so they cost nothing at collections)."""
        cached = self.__dict__.get("_py")
        if cached is None:
            ll = [(round(x, 7), round(y, 7)) for x, y in self.coord_ll.tolist()]
            cached = (ll, self.coord_start.tolist(), self.coord_cum.tolist())
            self.__dict__["_py"] = cached
        return cached

    def edge_ll_list(self, e: int, forward: bool = True) -> list:
        """Lon/lat vertices of edge ``e`` as a list of (lon, lat), 7 decimals (reversed when not ``forward``)."""
        ll, start, _ = self._lists()
        seg = ll[start[e]:start[e + 1]]
        return seg if forward else seg[::-1]

    def partial_ll(self, e: int, f0: float, f1: float) -> list:
        """Lon/lat vertices of edge ``e`` from fraction ``f0`` to ``f1`` of its metric length (reversed when
        f0 > f1); the cut points are interpolated on the vertices around them; (lon, lat) tuples, 7 decimals."""
        ll, start, cumall = self._lists()
        lo, hi = start[e], start[e + 1]
        cum = cumall[lo:hi]
        pts = ll[lo:hi]
        total = cum[-1]
        a, b = (f0, f1) if f0 <= f1 else (f1, f0)
        da, db = a * total, b * total

        def at(d: float) -> tuple:
            i = min(max(bisect_right(cum, d) - 1, 0), len(cum) - 2)
            seg = cum[i + 1] - cum[i]
            t = (d - cum[i]) / seg if seg > 0 else 0.0
            (x0, y0), (x1, y1) = pts[i], pts[i + 1]
            return (round(x0 + t * (x1 - x0), 7), round(y0 + t * (y1 - y0), 7))

        out = [at(da)] + [pts[i] for i in range(len(cum)) if da < cum[i] < db] + [at(db)]
        return out if f0 <= f1 else out[::-1]

    def partial_xy(self, e: int, f0: float, f1: float, lonlat: bool = False) -> np.ndarray:
        """Coordinates of edge ``e`` from fraction ``f0`` to ``f1`` of its metric length (reversed when
        f0 > f1), metric or (``lonlat``) lon/lat interpolated on the same vertices."""
        lo, hi = self.coord_start[e], self.coord_start[e + 1]
        xy, cum = (self.coord_ll if lonlat else self.coord_xy)[lo:hi], self.coord_cum[lo:hi]
        total = cum[-1]
        a, b = (f0, f1) if f0 <= f1 else (f1, f0)
        da, db = a * total, b * total
        inner = (cum > da) & (cum < db)

        def at(d: float) -> np.ndarray:
            i = int(np.searchsorted(cum, d, side="right")) - 1
            i = min(max(i, 0), len(cum) - 2)
            seg = cum[i + 1] - cum[i]
            t = (d - cum[i]) / seg if seg > 0 else 0.0
            return xy[i] + t * (xy[i + 1] - xy[i])

        out = np.vstack([at(da), xy[inner], at(db)])
        return out if f0 <= f1 else out[::-1]

    @property
    def n_nodes(self) -> int:
        return len(self.node_id)

    @property
    def n_edges(self) -> int:
        return len(self.edge_id)

    def node_index(self, road_node_id: int) -> int:
        """Return the node index of a ``road_node.id`` (KeyError when it is not in the graph)."""
        i = int(np.searchsorted(self.node_id, road_node_id))
        if i >= len(self.node_id) or self.node_id[i] != road_node_id:
            raise KeyError(road_node_id)
        return i

    def memory_bytes(self) -> dict[str, int]:
        """Report the memory the graph holds, by part, in bytes (geometries estimated from coordinates)."""
        arrays = sum(a.nbytes for a in (self.edge_id, self.edge_u, self.edge_v, self.edge_cost_s,
                                        self.edge_length_m, self.edge_oneway, self.edge_class,
                                        self.metric_length, self.node_id, self.node_lonlat, self.coord_xy, self.coord_ll,
                                        self.coord_start, self.coord_cum))
        n_coords = int(shapely.get_num_coordinates(self.geom_lonlat).sum())
        geoms = 2 * (n_coords * 16 + self.n_edges * 100)  # two copies (lon/lat and metric), GEOS overhead
        csr = self.forward.nbytes() + self.reverse.nbytes()
        return {"csr": csr, "edge_arrays": arrays, "geometries": geoms, "total": csr + arrays + geoms}

    def summary(self) -> dict:
        return {"version": self.version, "nodes": self.n_nodes, "edges": self.n_edges,
                "arcs": int(self.forward.matrix.nnz), "memory_bytes": self.memory_bytes()}


def class_speeds_mps(road_speed_kmh: dict[str, float]) -> np.ndarray:
    """Return the class speeds in m/s in ROAD_CLASSES order; refuse a missing or non-positive one."""
    out = np.empty(len(ROAD_CLASSES))
    for i, c in enumerate(ROAD_CLASSES):
        v = road_speed_kmh.get(c)
        if v is None or not float(v) > 0:
            raise RoutingDataError(f"setting road_speed_kmh has no positive speed for road class {c!r}")
        out[i] = float(v) / 3.6  # km/h to m/s
    return out


def edge_costs_s(length_m: np.ndarray, speed_kmh: np.ndarray, edge_class: np.ndarray,
                 road_speed_kmh: dict[str, float]) -> np.ndarray:
    """Travel time of each edge in seconds: length / (edge speed, else class speed)."""
    class_kmh = class_speeds_mps(road_speed_kmh) * 3.6
    kmh = np.where(np.isnan(speed_kmh), class_kmh[edge_class], speed_kmh)
    return length_m / (kmh / 3.6)  # km/h to m/s; same expression as the pgRouting cost SQL


def build_csr(n_nodes: int, src: np.ndarray, dst: np.ndarray, cost: np.ndarray, edge: np.ndarray,
              forward: np.ndarray) -> Csr:
    """Build a CSR graph from arcs, keeping the cheapest of parallel arcs (explicit zeros are kept)."""
    keep = src != dst  # self-loops never shorten a path
    src, dst, cost, edge, forward = src[keep], dst[keep], cost[keep], edge[keep], forward[keep]
    order = np.lexsort((edge, cost, dst, src))
    src, dst, cost, edge, forward = src[order], dst[order], cost[order], edge[order], forward[order]
    first = np.ones(len(src), dtype=bool)
    first[1:] = (src[1:] != src[:-1]) | (dst[1:] != dst[:-1])
    src, dst, cost, edge, forward = src[first], dst[first], cost[first], edge[first], forward[first]
    indptr = np.zeros(n_nodes + 1, dtype=np.int32)
    np.add.at(indptr, src + 1, 1)
    indptr = np.cumsum(indptr, dtype=np.int32)
    m = csr_matrix((cost.astype(np.float64), dst.astype(np.int32), indptr), shape=(n_nodes, n_nodes))
    return Csr(m, edge.astype(np.int32), forward.astype(bool))


def directed_csr(n_nodes: int, u: np.ndarray, v: np.ndarray, cost: np.ndarray, oneway: np.ndarray):
    """The forward and reverse CSR of edges ``u -> v`` (each two-way edge also ``v -> u``, its arc
    marked not forward), with the edge index of every arc."""
    m = len(u)
    idx = np.arange(m, dtype=np.int32)
    two = ~oneway
    a_src = np.concatenate([u, v[two]])
    a_dst = np.concatenate([v, u[two]])
    a_cost = np.concatenate([cost, cost[two]])
    a_edge = np.concatenate([idx, idx[two]])
    a_fwd = np.concatenate([np.ones(m, dtype=bool), np.zeros(int(two.sum()), dtype=bool)])
    return (build_csr(n_nodes, a_src, a_dst, a_cost, a_edge, a_fwd),
            build_csr(n_nodes, a_dst, a_src, a_cost, a_edge, a_fwd))


def load_graph(conn: psycopg.Connection, road_speed_kmh: dict[str, float], metric_srid: int) -> RoadGraph:
    """Read road_edge (and the version stamp) and build the graph.

    Parameters
    ----------
    conn : psycopg.Connection
        Any connection to the database (rows as dicts or tuples).
    road_speed_kmh : dict
        Class speeds in km/h, used where an edge has no ``speed_kmh``.
    metric_srid : int
        EPSG code of the metric CRS for snapping and geometry work.
    """
    version = queries.network_version(conn)
    rows = queries.road_edges(conn)
    n = len(rows)
    edge_id = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
    src_id = np.fromiter((r[1] for r in rows), dtype=np.int64, count=n)
    dst_id = np.fromiter((r[2] for r in rows), dtype=np.int64, count=n)
    cls_index = {c: i for i, c in enumerate(ROAD_CLASSES)}
    edge_class = np.fromiter((cls_index.get(r[3], len(ROAD_CLASSES) - 1) for r in rows), dtype=np.int8, count=n)
    speed = np.fromiter((np.nan if r[4] is None else r[4] for r in rows), dtype=np.float64, count=n)
    oneway = np.fromiter((bool(r[5]) for r in rows), dtype=bool, count=n)
    length_m = np.fromiter((r[6] for r in rows), dtype=np.float64, count=n)
    geom_lonlat = shapely.from_wkb([bytes(r[7]) for r in rows]) if n else np.empty(0, dtype=object)

    node_id, inverse = np.unique(np.concatenate([src_id, dst_id]), return_inverse=True)
    u = inverse[:n].astype(np.int32)
    v = inverse[n:].astype(np.int32)
    cost = edge_costs_s(length_m, speed, edge_class, road_speed_kmh)

    to_metric = pyproj.Transformer.from_crs(4326, metric_srid, always_xy=True)
    to_lonlat = pyproj.Transformer.from_crs(metric_srid, 4326, always_xy=True)
    geom_metric = shapely.transform(geom_lonlat, lambda xy: np.column_stack(
        to_metric.transform(xy[:, 0], xy[:, 1]))) if n else np.empty(0, dtype=object)
    metric_length = shapely.length(geom_metric) if n else np.empty(0)

    node_lonlat = np.zeros((len(node_id), 2))
    if n:
        starts = shapely.get_coordinates(shapely.get_point(geom_lonlat, 0))
        ends = shapely.get_coordinates(shapely.get_point(geom_lonlat, -1))
        node_lonlat[u] = starts
        node_lonlat[v] = ends

    coord_xy = shapely.get_coordinates(geom_metric) if n else np.empty((0, 2))
    counts = shapely.get_num_coordinates(geom_metric) if n else np.empty(0, dtype=np.int64)
    coord_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    step = np.zeros(len(coord_xy))
    if len(coord_xy) > 1:
        step[1:] = np.hypot(*np.diff(coord_xy, axis=0).T)
        step[coord_start[:-1]] = 0.0  # each edge starts at 0
    cum = np.cumsum(step)
    coord_cum = cum - np.repeat(cum[coord_start[:-1]], counts) if n else cum

    forward, reverse = directed_csr(len(node_id), u, v, cost, oneway)
    return RoadGraph(
        version=version, edge_id=edge_id, edge_u=u, edge_v=v, edge_cost_s=cost, edge_length_m=length_m,
        edge_oneway=oneway, edge_class=edge_class, geom_lonlat=geom_lonlat, geom_metric=geom_metric,
        metric_length=metric_length, node_id=node_id, node_lonlat=node_lonlat, forward=forward,
        reverse=reverse, metric_srid=metric_srid, to_metric=to_metric, to_lonlat=to_lonlat,
        edge_index_by_id={int(e): i for i, e in enumerate(edge_id)},
        coord_xy=coord_xy, coord_start=coord_start, coord_cum=coord_cum,
        coord_ll=shapely.get_coordinates(geom_lonlat) if n else np.empty((0, 2)),
    )
