"""Calculate service areas (出警半径): the roads reached within several time budgets, as reached
segments with their times and as polygons that follow the reached network (not circles)."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.ops import substring

from .reach import full_times, reached_intervals, sources_on_edges
from .router import Router
from .snap import Snaps


def service_areas(router: Router, sources: Snaps, budgets_s: list[float], *, buffer_m: float,
                  simplify_m: float, segments: bool = True) -> dict:
    """Service areas of the source points for each budget (seconds).

    Returns a GeoJSON-ready dict: ``areas`` (one polygon per budget: the cells of a ``buffer_m``
    lattice that the reached roads cross, merged and simplified by ``simplify_m``, with the
    reached km) and,
    when ``segments``, the road segments reached within the largest budget, each with the time
    it is first entered (``time_from_s``), the time it is wholly reached (``time_full_s``, None
    when not within the budget) and the smallest budget that reaches it whole.
    """
    g = router.graph
    budgets = sorted(float(b) for b in budgets_s)
    top = budgets[-1]
    tree = router.from_points(sources, limit=top, predecessors=False, with_sources=False)
    on_edges = sources_on_edges(g, sources)
    full = full_times(g, tree.dist, sources, on_edges)
    areas = []
    reached_top: dict[int, list[tuple[float, float]]] = {}
    for b in budgets:
        parts = reached_intervals(g, tree.dist, b, sources, on_edges)
        if b == top:
            reached_top = parts
        lines = []
        metres = 0.0
        for e, ivs in parts.items():
            for x0, x1 in ivs:
                metres += (x1 - x0) * g.edge_length_m[e]
                lines.append(g.geom_metric[e] if (x0 == 0.0 and x1 == 1.0)
                             else substring(g.geom_metric[e], x0, x1, normalized=True))
        pts = sources.xy[np.isfinite(sources.offroad_s)]
        geom = network_polygon(np.array(lines, dtype=object), pts, buffer_m, simplify_m)
        areas.append({"budget_s": b, "reached_km": round(metres / 1000, 3), "geometry": _to_lonlat(router, geom)})
    segs = []
    if segments:
        a = tree.dist[g.edge_u]
        bb = np.where(g.edge_oneway, np.inf, tree.dist[g.edge_v])
        for e, ivs in sorted(reached_top.items()):
            t_from = float(min(a[e], bb[e], *(o for _, o, _ in on_edges.get(e, []) or [])))
            t_full = float(full[e])
            whole = next((b for b in budgets if t_full <= b), None)
            geom = g.geom_lonlat[e] if ivs == [(0.0, 1.0)] else _to_lonlat(router, shapely.MultiLineString(
                [substring(g.geom_metric[e], x0, x1, normalized=True) for x0, x1 in ivs]))
            segs.append({"edge_id": int(g.edge_id[e]), "time_from_s": t_from,
                         "time_full_s": t_full if t_full <= top else None, "whole_within_budget_s": whole,
                         "reached_fraction": round(sum(x1 - x0 for x0, x1 in ivs), 6), "geometry": geom})
    return {"areas": areas, "segments": segs}


def network_polygon(lines: np.ndarray, points: np.ndarray, cell_m: float, simplify_m: float):
    """The area around reached roads: the cells of a ``cell_m`` lattice (metric CRS) that the lines
    and points fall in, merged (the cells form a coverage, so the union is fast and exact), then
    simplified. Follows the network at the cell's resolution, unlike a circle or a convex hull."""
    coords = [shapely.get_coordinates(shapely.segmentize(lines, cell_m / 2))] if len(lines) else []
    coords.append(np.asarray(points, dtype=np.float64).reshape(-1, 2))
    xy = np.concatenate(coords)
    if len(xy) == 0:
        return shapely.Polygon()
    ij = np.floor(xy / cell_m).astype(np.int64)
    lo = ij.min(axis=0)
    ij -= lo
    width = int(ij[:, 1].max()) + 1
    key = np.unique(ij[:, 0] * width + ij[:, 1])
    i, j = (key // width + lo[0]).astype(np.float64), (key % width + lo[1]).astype(np.float64)
    boxes = shapely.box(i * cell_m, j * cell_m, (i + 1) * cell_m, (j + 1) * cell_m)
    geom = shapely.coverage_union_all(boxes)
    if simplify_m > 0:
        simple = shapely.simplify(geom, simplify_m, preserve_topology=False)
        geom = simple if simple.is_valid and not simple.is_empty else shapely.make_valid(simple)
    return geom


def _to_lonlat(router: Router, geom):
    tr = router.graph.to_lonlat
    return shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
