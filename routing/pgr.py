"""Run the same travel-time questions through pgRouting (the peer the tests and benchmark compare with).

The edges SQL gives pgRouting exactly the router's costs: ``length_m / (speed / 3.6)`` with the
edge's speed or its class speed, and ``reverse_cost = -1`` on oneway edges.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.rows import tuple_row


def edges_sql(conn: psycopg.Connection, road_speed_kmh: dict[str, float], reverse: bool = False) -> str:
    """The pgRouting edges query (text) with the class speeds bound in as a literal.

    ``reverse=True`` flips every arc (source and target swapped), so a search from a point
    gives the times *toward* it, as the router's reverse graph does.
    """
    speeds = json.dumps({k: float(v) for k, v in road_speed_kmh.items()})
    ends = "target AS source, source AS target" if reverse else "source, target"
    q = sql.SQL(
        "SELECT id, " + ends + ", "
        "length_m / (coalesce(speed_kmh, ({speeds}::jsonb ->> road_class)::float8) / 3.6) AS cost, "
        "CASE WHEN oneway THEN -1 ELSE length_m / (coalesce(speed_kmh, ({speeds}::jsonb ->> road_class)::float8)"
        " / 3.6) END AS reverse_cost FROM road_edge").format(speeds=sql.Literal(speeds))
    return q.as_string(conn)


def dijkstra_cost(conn: psycopg.Connection, road_speed_kmh: dict[str, float], sources: Sequence[int],
                  targets: Sequence[int], edges: str | None = None) -> dict[tuple[int, int], float]:
    """``pgr_dijkstraCost`` many-to-many on road_node ids: {(source, target): seconds}."""
    edges = edges or edges_sql(conn, road_speed_kmh)
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute("SELECT start_vid, end_vid, agg_cost FROM pgr_dijkstraCost(%s, %s::bigint[], %s::bigint[], "
                    "directed => true)", [edges, list(sources), list(targets)])
        return {(a, b): c for a, b, c in cur.fetchall()}


def driving_distance(conn: psycopg.Connection, road_speed_kmh: dict[str, float], starts: Sequence[int],
                     distance: float, edges: str | None = None) -> dict[int, tuple[float, Any]]:
    """``pgr_drivingDistance(..., equicost => true)``: {node: (seconds from the nearest start, start)}."""
    edges = edges or edges_sql(conn, road_speed_kmh)
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute("SELECT node, agg_cost, from_v FROM pgr_drivingDistance(%s, %s::bigint[], %s::float8, "
                    "directed => true, equicost => true)", [edges, list(starts), distance])
        return {node: (cost, start) for node, cost, start in cur.fetchall()}


def compose_etas(graph, sources, target, ti: int, node_cost: dict[tuple[int, int], float]) -> np.ndarray:
    """Unit-to-incident times from pgRouting node-to-node costs plus the same partial-edge offsets.

    ``node_cost[(a, b)]`` is the time from road node id a to road node id b (absent: unreachable);
    the seeds and off-road legs are those of :mod:`routing.snap`.
    """
    from .snap import same_edge_time, source_seeds, target_seeds

    te, tf = int(target.edge[ti]), float(target.fraction[ti])
    tseeds = target_seeds(graph, te, tf)
    out = np.full(len(sources), np.inf)
    for i in range(len(sources)):
        e, f = int(sources.edge[i]), float(sources.fraction[i])
        if e < 0:
            continue
        best = same_edge_time(graph, e, f, tf)[0] if e == te else np.inf
        for sn, soff, _ in source_seeds(graph, e, f):
            for tn, toff, _ in tseeds:
                a, b = int(graph.node_id[sn]), int(graph.node_id[tn])
                c = 0.0 if a == b else node_cost.get((a, b), np.inf)
                best = min(best, soff + c + toff)
        out[i] = sources.offroad_s[i] + best + target.offroad_s[ti]
    return out
