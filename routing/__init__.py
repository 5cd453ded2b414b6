"""Road graph, snapping, travel times, service areas, nearest unit and coverage (never imports Flask).

Use :func:`get_router` to get the process-wide :class:`Router` of the current road network;
it is rebuilt when ``road_network_version.version`` (bumped by a trigger on road_edge) or a
routing setting changes.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg

from . import queries
from .graph import RoadGraph, RoutingDataError, load_graph
from .router import Router, RouterSettings

__all__ = ["Router", "RoadGraph", "RoutingDataError", "get_router", "clear_cache"]

_routers: dict[tuple, Router] = {}
_lock = threading.Lock()


def _db_key(conn: psycopg.Connection) -> tuple:
    info = conn.info
    return (info.host, info.port, info.dbname)


def get_router(conn: psycopg.Connection, settings: Any) -> Router:
    """Return the process-wide router for the database of ``conn`` and the current road network.

    Parameters
    ----------
    conn : psycopg.Connection
        A connection to the database; the version stamp is read on every call (one cheap query)
        and the graph is rebuilt from ``road_edge`` when it changed.
    settings : gisapp.config.Settings or any object with ``road_speed_kmh``, ``metric_srid``,
        ``offroad_speed_kmh`` and ``snap_max_distance_m``.
    """
    rs = RouterSettings.of(settings)
    key = (_db_key(conn), rs)
    version = queries.network_version(conn)
    router = _routers.get(key)
    if router is not None and router.version == version:
        return router
    with _lock:
        router = _routers.get(key)
        if router is None or router.version != version:
            graph = load_graph(conn, dict(rs.road_speed_kmh), rs.metric_srid)
            router = Router(graph, rs)
            _routers[key] = router
    return router


def clear_cache() -> None:
    """Forget every cached router (tests, memory pressure)."""
    with _lock:
        _routers.clear()
