"""Road graph, snapping, travel times, service areas, nearest unit and coverage (never imports Flask).

Use :func:`get_router` to get the process-wide :class:`Router` of the current road network;
it is rebuilt when ``road_network_version.version`` (bumped by a trigger on road_edge) or a
routing setting changes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from . import queries
from .graph import RoadGraph, RoutingDataError, load_graph
from .router import Router, RouterSettings, no_unit_reason

__all__ = ["Router", "RoadGraph", "RoutingDataError", "coverage", "get_router", "nearest_units", "clear_cache"]

_routers: dict[tuple, Router] = {}
_lock = threading.Lock()


def _db_key(conn: psycopg.Connection) -> tuple:
    info = conn.info
    return (info.host, info.port, info.dbname)


def get_router(conn: psycopg.Connection, settings: Any, version: int | None = None) -> Router:
    """Return the process-wide router for the database of ``conn`` and the current road network.

    Parameters
    ----------
    conn : psycopg.Connection
        A connection to the database; the version stamp is read on every call (one cheap query)
        and the graph is rebuilt from ``road_edge`` when it changed.
    settings : gisapp.config.Settings or any object with ``road_speed_kmh``, ``metric_srid``,
        ``offroad_speed_kmh`` and ``snap_max_distance_m``.
    version : int, optional
        The version stamp when the caller has just read it (saves the query).
    """
    rs = RouterSettings.of(settings)
    key = (_db_key(conn), rs)
    if version is None:
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


def nearest_units(conn: psycopg.Connection, settings: Any, lon: float, lat: float, *, k: int = 5,
                  capability: str | Sequence[str] | None = None, organisation_ids: Iterable[int] | None = None,
                  joint_zone_id: int | None = None, statuses: Sequence[str] = ("available",)) -> dict:
    """:meth:`Router.nearest_units` on the current network, usually in one database round trip.

    Same answer as ``get_router(conn, settings).nearest_units(conn, lon, lat, ...)``. The version
    stamp comes with the units, and only the ``nearest_units_candidates`` units nearest in a
    straight line are read first: when even the nearest unit left out could not arrive before
    the k-th found (straight distance / the network's top speed), the answer is proven exact;
    otherwise every qualifying unit is read and the search repeated.
    """
    caps = [capability] if isinstance(capability, str) else (list(capability) if capability else None)
    orgs = list(organisation_ids) if organisation_ids is not None else None
    n = int(getattr(settings, "nearest_units_candidates", 0) or 0)
    rows = queries.units(conn, statuses, caps, orgs, joint_zone_id, with_version=True,
                         near=(lon, lat) if n else None, limit=n or None)
    router = get_router(conn, settings, version=int(rows[0][0]) if rows else None)
    units = [r[1:] for r in rows if r[1] is not None]

    def reason():
        return no_unit_reason(conn, statuses, caps, orgs, joint_zone_id)

    ans = router.nearest_from_rows(units, lon, lat, k=k, reason_if_none=reason)
    if not n or len(units) < n or router.proves_nearest(ans, units, lon, lat, k):
        return ans
    rows = queries.units(conn, statuses, caps, orgs, joint_zone_id)
    return router.nearest_from_rows(rows, lon, lat, k=k, reason_if_none=reason)


def clear_cache() -> None:
    """Forget every cached router (tests, memory pressure)."""
    with _lock:
        _routers.clear()


from . import coverage  # noqa: E402  (uses get_router; import routing gives routing.coverage)
