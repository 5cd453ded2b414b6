"""Run the same travel-time questions through pgRouting (the peer the tests and benchmark compare with).

The edges SQL gives pgRouting exactly the router's costs: ``length_m / (speed / 3.6)`` with the
edge's speed or its class speed, and ``reverse_cost = -1`` on oneway edges.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row


def edges_sql(conn: psycopg.Connection, road_speed_kmh: dict[str, float]) -> str:
    """The pgRouting edges query (text) with the class speeds bound in as a literal."""
    speeds = json.dumps({k: float(v) for k, v in road_speed_kmh.items()})
    q = sql.SQL(
        "SELECT id, source, target, "
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
