"""Road graph, snapping, travel times, service areas, nearest unit and coverage (never imports Flask).

Use :func:`get_router` to get the process-wide :class:`Router` of the current road network;
it is rebuilt when ``road_network_version.version`` (bumped by a trigger on road_edge) or a
routing setting changes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import psycopg

from . import queries, shared, units
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
            graph = shared.share_graph(graph)  # one copy of the arrays per host (routing.shared)
            router = Router(graph, rs)
            _routers[key] = router
    return router


def nearest_units(conn: psycopg.Connection, settings: Any, lon: float, lat: float, *, k: int = 5,
                  capability: str | Sequence[str] | None = None, organisation_ids: Iterable[int] | None = None,
                  joint_zone_id: int | None = None, statuses: Sequence[str] = ("available",)) -> dict:
    """:meth:`Router.nearest_units` on the current network, in one cheap database round trip.

    Same answer as ``get_router(conn, settings).nearest_units(conn, lon, lat, ...)``. The units
    come from the process's :mod:`routing.units` snapshot, checked against the database (and
    the road network version) with one aggregate statement in the caller's transaction; a
    joint-zone filter costs one more small query.
    """
    caps = [capability] if isinstance(capability, str) else (list(capability) if capability else None)
    orgs = list(organisation_ids) if organisation_ids is not None else None
    stamp = units.read_stamp(conn)
    router = get_router(conn, settings, version=stamp.road_version)
    snap = units.snapshot(conn, stamp)
    sel_orgs = orgs
    if joint_zone_id is not None:
        zone = set(queries.joint_zone_orgs(conn, joint_zone_id))
        sel_orgs = [o for o in (orgs if orgs is not None else zone) if o in zone]
    idx = snap.select(statuses, caps, sel_orgs)

    def labels(chosen: list[int]) -> dict[int, tuple]:
        at = np.searchsorted(snap.ids, chosen)
        return {u: (snap.codes[j], snap.names[j]) for u, j in zip(chosen, at.tolist(), strict=True)}

    return router.nearest_from_arrays(
        snap.ids[idx], snap.org[idx], lambda: snap.snaps(router).take(idx), lon, lat, k=k, labels=labels,
        reason_if_none=lambda: no_unit_reason(conn, statuses, caps, orgs, joint_zone_id))


def clear_cache() -> None:
    """Forget every cached router (tests, memory pressure)."""
    with _lock:
        _routers.clear()
    units.clear_cache()


from . import coverage  # noqa: E402  (uses get_router; import routing gives routing.coverage)
