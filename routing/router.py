"""Calculate travel times, the nearest available units, and routes on one road graph."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg

from . import fastsearch, queries
from .engine import Tree, path_nodes, search, search_arrays, search_one
from .graph import RoadGraph
from .snap import Snapper, Snaps, same_edge_time, target_seeds

# Successive search limits (seconds) for point-to-point queries: most answers are found in the
# first, small search; the last one is unbounded so the answer is always exact.
SEARCH_LIMITS_S = (240.0, 900.0, 3600.0, np.inf)
# Nearest units: the first limit is guessed from the k-th straight-line distance (as if driving
# this slowly, in m/s, along a detour), then widened; the last search is unbounded.
GUESS_SPEED_MPS = 6.0


@dataclass(frozen=True)
class RouterSettings:
    """The settings a router depends on (a graph is rebuilt when they change)."""

    road_speed_kmh: tuple[tuple[str, float], ...]
    metric_srid: int
    offroad_speed_kmh: float
    snap_max_distance_m: float

    @classmethod
    def of(cls, settings: Any) -> RouterSettings:
        return cls(tuple(sorted((str(k), float(v)) for k, v in settings.road_speed_kmh.items())),
                   int(settings.metric_srid), float(settings.offroad_speed_kmh),
                   float(settings.snap_max_distance_m))


class Router:
    """Travel-time queries on one version of the road network (thread-safe, read-only)."""

    def __init__(self, graph: RoadGraph, rs: RouterSettings):
        self.graph = graph
        self.settings = rs
        self.version = graph.version
        self.snapper = Snapper(graph, rs.offroad_speed_kmh, rs.snap_max_distance_m)
        # Snaps of positions seen before: position (lon + 1j * lat) -> row of (edge, fraction,
        # distance, x, y) in _snap_store (which only grows; a new array each time, so readers are safe).
        self._snap_index: dict[complex, int] = {}
        self._snap_store = np.empty((0, 5))
        self._snap_lock = threading.Lock()
        self._last_snaps: tuple[bytes, Snaps] | None = None  # the last unit set (read-only arrays)
        self.live_state: dict[str, Any] = {}  # the last live coverage, kept by routing.coverage
        # "sparse": nearest units and travel times by routing.fastsearch (work follows the nodes
        # settled); "scipy": the bounded whole-graph searches (the reference the tests compare with)
        self.engine = os.environ.get("GISAPP_ROUTING_ENGINE", "sparse")
        self._last_cands: tuple[tuple, fastsearch.Candidates] | None = None

    # ---------------------------------------------------------------- snapping
    def snap(self, lonlat: np.ndarray) -> Snaps:
        """Snap points (n, 2) lon/lat to the network."""
        return self.snapper.snap(lonlat)

    def snap_cached(self, lonlat: np.ndarray) -> Snaps:
        """Snap points, remembering the answers for positions seen before (units that do not move)."""
        lonlat = np.ascontiguousarray(lonlat, dtype=np.float64).reshape(-1, 2)
        blob = lonlat.tobytes()
        last = self._last_snaps
        if last is not None and last[0] == blob:
            return last[1]
        keys = lonlat.view(np.complex128).ravel().tolist()  # one hashable number per position
        index = self._snap_index
        idx = np.fromiter((index.get(key, -1) for key in keys), dtype=np.int64, count=len(keys))
        miss = np.flatnonzero(idx < 0)
        if len(miss):
            s = self.snapper.snap(lonlat[miss])
            new = np.column_stack([s.edge.astype(np.float64), s.fraction, s.distance_m, s.xy])
            with self._snap_lock:
                if len(self._snap_index) > 200_000:
                    self._snap_index, self._snap_store = {}, np.empty((0, 5))
                base = len(self._snap_store)
                self._snap_store = np.concatenate([self._snap_store, new])
                for j, i in enumerate(miss.tolist()):
                    self._snap_index[keys[i]] = base + j
                idx[miss] = base + np.arange(len(miss))
                store = self._snap_store
        else:
            store = self._snap_store
        rows = store[idx]
        dist = rows[:, 2]
        snaps = Snaps(lonlat, rows[:, 3:5], rows[:, 0].astype(np.int64), rows[:, 1], dist,
                      np.where(np.isfinite(dist), dist / self.snapper.offroad_mps, np.inf),
                      ~(dist <= self.snapper.max_distance_m))
        self._last_snaps = (blob, snaps)
        return snaps

    # ---------------------------------------------------------------- searches
    def toward(self, target: Snaps, i: int = 0, limit: float = np.inf) -> Tree:
        """Search the reverse graph from point ``i`` of ``target``: times from every node to it."""
        e = int(target.edge[i])
        if e < 0:
            return search(self.graph.reverse, [], limit=limit)
        seeds = [(node, t) for node, t, _ in target_seeds(self.graph, e, float(target.fraction[i]))]
        return search_one(self.graph.reverse, seeds, limit=limit)

    def candidates(self, sources: Snaps) -> fastsearch.Candidates:
        """Where the points of ``sources`` join the graph (the last unit set's answer is kept)."""
        key = (sources.edge.tobytes(), sources.fraction.tobytes(), sources.offroad_s.tobytes())
        last = self._last_cands
        if last is not None and last[0] == key:
            return last[1]
        c = fastsearch.candidates(self.graph, sources)
        self._last_cands = (key, c)
        return c

    def toward_k(self, target: Snaps, i: int, sources: Snaps, k: int):
        """Search the reverse graph from point ``i`` of ``target`` until the ``k`` points of
        ``sources`` nearest to it in time are proved (a :class:`fastsearch.SparseTree`)."""
        e = int(target.edge[i])
        seeds = [] if e < 0 else [(node, t) for node, t, _ in target_seeds(self.graph, e, float(target.fraction[i]))]
        return fastsearch.nearest_search(self.graph.reverse, seeds, self.candidates(sources), k,
                                         float(target.offroad_s[i]))

    def from_points(self, sources: Snaps, limit: float = np.inf, predecessors: bool = False,
                    with_sources: bool = True) -> Tree:
        """Multi-source search of the forward graph from every point of ``sources`` (off-road legs included)."""
        g = self.graph
        ok = np.flatnonzero((sources.edge >= 0) & np.isfinite(sources.offroad_s))
        e = sources.edge[ok]
        f = sources.fraction[ok]
        off = sources.offroad_s[ok]
        c = g.edge_cost_s[e]
        back = (~g.edge_oneway[e]) | (f == 0.0)
        owner = np.concatenate([ok, ok[back]])
        nodes = np.concatenate([g.edge_v[e], g.edge_u[e][back]])
        offs = np.concatenate([off + (1.0 - f) * c, (off + f * c)[back]])
        order = np.argsort(owner, kind="stable")
        return search_arrays(g.forward, len(sources), owner[order], nodes[order], offs[order], limit=limit,
                             predecessors=predecessors, sources=with_sources)

    def times_to(self, sources: Snaps, targets: Snaps) -> np.ndarray:
        """Best time (s) from the nearest of ``sources`` to each point of ``targets`` (off-road legs
        at both ends included; inf: unreachable or no road): one multi-source search."""
        g = self.graph
        n = len(targets)
        out = np.full(n, np.inf)
        if n == 0 or len(sources) == 0 or g.n_edges == 0:
            return out
        d = self.from_points(sources, with_sources=False).dist
        te = targets.edge
        ok = te >= 0
        ec = np.where(ok, te, 0)
        f = targets.fraction
        c = g.edge_cost_s[ec]
        via_u = d[g.edge_u[ec]] + f * c
        back_ok = (~g.edge_oneway[ec]) | (f == 1.0)
        via_v = np.where(back_ok, d[g.edge_v[ec]] + (1.0 - f) * c, np.inf)
        best = np.minimum(via_u, via_v)
        for si in np.flatnonzero((sources.edge >= 0) & np.isfinite(sources.offroad_s)):
            se = int(sources.edge[si])
            for ti in np.flatnonzero(ok & (te == se)):  # source and target on the same edge
                t = sources.offroad_s[si] + same_edge_time(g, se, float(sources.fraction[si]), float(f[ti]))[0]
                best[ti] = min(best[ti], t)
        out = np.where(ok, best + targets.offroad_s, np.inf)
        return np.where(np.isfinite(out), out, np.inf)

    def etas_to(self, tree: Tree, target: Snaps, ti: int, sources: Snaps) -> tuple[np.ndarray, np.ndarray]:
        """Times from each source point to target point ``ti`` given the reverse search ``tree``.

        Returns (eta_s, branch) where branch is 0 (leave the source edge at its target node),
        1 (at its source node) or 2 (stay on the shared edge); eta is inf when unreachable.
        """
        g = self.graph
        e = sources.edge
        ok = e >= 0
        ec = np.where(ok, e, 0)
        f = sources.fraction
        c = g.edge_cost_s[ec]
        d = tree.dist
        via_v = (1.0 - f) * c + d[g.edge_v[ec]]
        back_ok = (~g.edge_oneway[ec]) | (f == 0.0)
        via_u = np.where(back_ok, f * c + d[g.edge_u[ec]], np.inf)
        direct = np.full(len(e), np.inf)
        te = int(target.edge[ti])
        same = np.flatnonzero(ok & (e == te))
        for j in same:
            direct[j] = same_edge_time(g, te, float(f[j]), float(target.fraction[ti]))[0]
        cand = np.column_stack([via_v, via_u, direct])
        branch = np.argmin(cand, axis=1)
        network = cand[np.arange(len(e)), branch]
        eta = sources.offroad_s + network + target.offroad_s[ti]
        eta = np.where(ok & np.isfinite(eta), eta, np.inf)
        return eta, branch

    # ---------------------------------------------------------------- routes
    def route(self, tree: Tree, target: Snaps, ti: int, sources: Snaps, si: int, branch: int) -> tuple[dict, float]:
        """Rebuild the route from source ``si`` to target ``ti`` as a GeoJSON LineString (and its metres)."""
        g = self.graph
        se, sf = int(sources.edge[si]), float(sources.fraction[si])
        te, tf = int(target.edge[ti]), float(target.fraction[ti])
        pts: list = [_r7(sources.lonlat[si])]
        metres = float(sources.distance_m[si]) + float(target.distance_m[ti])
        if branch == 2:
            pts += g.partial_ll(se, sf, tf)
            metres += same_edge_time(g, se, sf, tf)[1]
        else:
            start = int(g.edge_v[se]) if branch == 0 else int(g.edge_u[se])
            pts += g.partial_ll(se, sf, 1.0 if branch == 0 else 0.0)
            metres += g.edge_length_m[se] * ((1.0 - sf) if branch == 0 else sf)
            nodes = path_nodes(tree, start)
            fwd = g.forward
            if len(nodes) > 1:
                arcs = fwd.arcs_between(np.array(nodes[:-1]), np.array(nodes[1:]))
                edges = fwd.arc_edge[arcs]
                metres += float(g.edge_length_m[edges].sum())
                for edge, forward in zip(edges.tolist(), fwd.arc_forward[arcs].tolist(), strict=True):
                    pts += g.edge_ll_list(edge, forward)
            last = nodes[-1]
            # Which seed of the target edge the path ends at: its source node (forward) or target node.
            if last == int(g.edge_u[te]) and (tree.dist[last] == tf * g.edge_cost_s[te] or last != int(g.edge_v[te])):
                pts += g.partial_ll(te, 0.0, tf)
                metres += tf * g.edge_length_m[te]
            else:
                pts += g.partial_ll(te, 1.0, tf)
                metres += (1.0 - tf) * g.edge_length_m[te]
        pts.append(_r7(target.lonlat[ti]))
        return self.linestring(pts), metres

    @staticmethod
    def linestring(pts: list) -> dict:
        """A GeoJSON LineString from (lon, lat) pairs rounded to 7 decimals (repeated points dropped)."""
        out: list = []
        last = None
        for p in pts:  # plain Python: routes are short, and numpy's set-up costs more than the loop
            if p != last:
                out.append([p[0], p[1]])
                last = p
        if len(out) == 1:
            out.append(list(out[0]))
        return {"type": "LineString", "coordinates": out}

    # ---------------------------------------------------------------- public queries
    def nearest_units(self, conn: psycopg.Connection, lon: float, lat: float, *, k: int = 5,
                      capability: str | Sequence[str] | None = None,
                      organisation_ids: Iterable[int] | None = None, joint_zone_id: int | None = None,
                      statuses: Sequence[str] = ("available",)) -> dict:
        """Return the ``k`` units with the shortest road travel time toward (lon, lat).

        Units qualify by status, capability tags (all required), organisation and joint-zone
        membership, and must have a position. Each answer gives the ETA (seconds), the route
        distance and geometry, the straight-line distance and the rank by straight line among
        the qualifying units. ``reason`` explains an empty answer.
        """
        caps = [capability] if isinstance(capability, str) else (list(capability) if capability else None)
        orgs = list(organisation_ids) if organisation_ids is not None else None
        rows = queries.units(conn, statuses, caps, orgs, joint_zone_id)
        return self.nearest_from_rows(rows, lon, lat, k=k, reason_if_none=lambda: no_unit_reason(conn, statuses, caps, orgs,
                                                                             joint_zone_id))

    def nearest_from_rows(self, rows: list[tuple], lon: float, lat: float, *, k: int = 5,
                          labels=None, reason_if_none=None) -> dict:
        """The core of :meth:`nearest_units` for given unit rows (id, organisation id, lon, lat, code,
        name; the last two optional, else ``labels(ids)`` gives {id: (code, name)})."""
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        orgs = np.array([r[1] for r in rows], dtype=np.int64)
        pos = np.array([(r[2], r[3]) for r in rows], dtype=np.float64).reshape(-1, 2)
        if labels is None:
            by_id = {r[0]: (r[4], r[5]) for r in rows if len(r) > 5}

            def labels(chosen, by_id=by_id):
                return {i: by_id.get(i, (None, None)) for i in chosen}
        return self.nearest_from_arrays(ids, orgs, lambda: self.snap_cached(pos), lon, lat, k=k, labels=labels,
                                        reason_if_none=reason_if_none)

    def nearest_from_arrays(self, ids: np.ndarray, orgs: np.ndarray, sources, lon: float, lat: float, *,
                            k: int = 5, labels=None, reason_if_none=None) -> dict:
        """Nearest units among the qualifying units given as arrays: unit ids (int64), organisation
        ids, and their snaps (or a function returning them, called only when there are units);
        ``labels(ids)`` gives {unit id: (code, name)} for the chosen units."""
        target = self.snap(np.array([[lon, lat]]))
        answer: dict[str, Any] = {"incident": {"lon": lon, "lat": lat, "snap": target.info(0, self.graph)},
                                  "units": [], "reason": None}
        if self.graph.n_edges == 0:
            answer["reason"] = "the road network is empty"
            return answer
        if len(ids) == 0:
            answer["reason"] = reason_if_none() if reason_if_none else "no unit qualifies"
            return answer
        if callable(sources):
            sources = sources()
        straight = np.hypot(sources.xy[:, 0] - target.xy[0, 0], sources.xy[:, 1] - target.xy[0, 1])
        n = len(ids)
        want = min(k, n)
        if self.engine == "sparse":
            tree = self.toward_k(target, 0, sources, want)
            eta, branch = self.etas_to(tree, target, 0, sources)
        else:
            first = float(np.partition(straight, want - 1)[want - 1]) / GUESS_SPEED_MPS + 60.0 \
                + float(target.offroad_s[0]) + float(np.min(sources.offroad_s))
            for limit in (first, 3 * first, 10 * first, np.inf):
                tree = self.toward(target, 0, limit)
                eta, branch = self.etas_to(tree, target, 0, sources)
                # Every unit whose true time is within the limit has been found exactly.
                if np.count_nonzero(eta <= limit) >= want or not np.isfinite(limit):
                    break
        order = np.lexsort((ids, eta))
        chosen = [int(i) for i in order[:want] if np.isfinite(eta[i])]
        if chosen:
            # rank by straight line among the qualifying units (ties: lower unit id first)
            s_ch = straight[chosen]
            id_ch = ids[chosen]
            closer = (straight[None, :] < s_ch[:, None]) | ((straight[None, :] == s_ch[:, None])
                                                            & (ids[None, :] < id_ch[:, None]))
            ranks = closer.sum(axis=1) + 1
            names = labels([int(ids[i]) for i in chosen]) if labels else {}
        for j, i in enumerate(chosen):
            geom, metres = self.route(tree, target, 0, sources, i, int(branch[i]))
            uid = int(ids[i])
            code, name = names.get(uid, (None, None))
            answer["units"].append({
                "unit_id": uid, "code": code, "name": name, "organisation_id": int(orgs[i]),
                "eta_s": float(eta[i]), "distance_m": float(metres),
                "straight_line_m": float(straight[i]), "straight_line_rank": int(ranks[j]),
                "route": geom, "snap": sources.info(i, self.graph)})
        if not chosen:
            answer["reason"] = (f"none of the {n} qualifying units can reach the point by road "
                                "(one-way streets or a disconnected network)")
        return answer

    def travel_time(self, conn: psycopg.Connection | None, from_lonlat: Sequence[float],
                    to_lonlat: Sequence[float]) -> dict:
        """Road travel time from one point to another: ``{"eta_s", "distance_m", "route", ...}``.

        ``eta_s`` is None (and ``reason`` says why) when the target cannot be reached.
        """
        src = self.snap(np.array([from_lonlat], dtype=np.float64))
        tgt = self.snap(np.array([to_lonlat], dtype=np.float64))
        out: dict[str, Any] = {"eta_s": None, "distance_m": None, "route": None,
                               "from_snap": src.info(0, self.graph), "to_snap": tgt.info(0, self.graph),
                               "reason": None}
        if self.graph.n_edges == 0:
            out["reason"] = "the road network is empty"
            return out
        if self.engine == "sparse":
            tree = self.toward_k(tgt, 0, src, 1)
            eta, branch = self.etas_to(tree, tgt, 0, src)
        else:
            for limit in SEARCH_LIMITS_S:
                tree = self.toward(tgt, 0, limit)
                eta, branch = self.etas_to(tree, tgt, 0, src)
                if eta[0] <= limit:
                    break
        if not np.isfinite(eta[0]):
            out["reason"] = "the destination cannot be reached by road from the origin"
            return out
        geom, metres = self.route(tree, tgt, 0, src, 0, int(branch[0]))
        out.update(eta_s=float(eta[0]), distance_m=float(metres), route=geom)
        return out

    def node_times(self, from_node_ids: Sequence[int], toward: bool = False) -> np.ndarray:
        """Times (s) from the given road nodes (min over them) to every node, or toward them."""
        g = self.graph
        seeds = [[(g.node_index(int(n)), 0.0)] for n in from_node_ids]
        return search(g.reverse if toward else g.forward, seeds, predecessors=False).dist


def _r7(lonlat) -> tuple[float, float]:
    """A point as a (lon, lat) tuple rounded to 7 decimals (about 1 cm), as routes are given."""
    return (round(float(lonlat[0]), 7), round(float(lonlat[1]), 7))


def no_unit_reason(conn: psycopg.Connection, statuses: Sequence[str], caps: list[str] | None,
                    orgs: list[int] | None, joint_zone_id: int | None) -> str:
    if joint_zone_id is not None and not queries.joint_zone_exists(conn, joint_zone_id):
        return f"joint zone {joint_zone_id} does not exist"
    n_status = queries.count_units(conn, statuses)
    if n_status == 0:
        return f"no unit has status {', '.join(statuses)}"
    if queries.count_units(conn, statuses, with_position=True) == 0:
        return f"no unit with status {', '.join(statuses)} has reported a position"
    filters = []
    if caps:
        filters.append("capability " + ", ".join(caps))
    if orgs is not None:
        filters.append("organisation " + ", ".join(str(o) for o in orgs))
    if joint_zone_id is not None:
        filters.append(f"joint zone {joint_zone_id}")
    return (f"no unit with status {', '.join(statuses)} and a position matches "
            + (" and ".join(filters) if filters else "the filters"))
