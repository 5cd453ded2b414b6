"""Serve Mapbox Vector Tiles of the large layers (roads, coverage, grids) from PostGIS ST_AsMVT.

``GET /tiles/<layer>/<z>/<x>/<y>.mvt``. Road classes are filtered by zoom
(``tile_road_min_zoom``) and geometry is simplified to ``tile_simplify_px`` screen pixels.
Tiles are cached per process (LRU) and across processes (table ``tile_cache``), both keyed
by the ``data_version`` counters of the areas a layer depends on, so a change of data
invalidates them at once. Responses carry an ETag (``If-None-Match`` gives 304); a URL
with ``?v=<current version>`` (as the map pages write it) may be cached by browsers.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import psycopg

from gisapp.core.config import Settings
from gisapp.core.errors import NotFound

MVT_MIME = "application/vnd.mapbox-vector-tile"
# Bump when the tile SQL changes so that ETags and cached tiles of the old schema are not reused.
TILE_SCHEMA = "2"
WEB_MERCATOR_WORLD_M = 2 * math.pi * 6378137.0


@dataclass(frozen=True)
class TileLayer:
    """A tile layer: the data areas it depends on (data_version) and its zoom-dependent filters."""

    name: str
    areas: tuple[str, ...]
    road_classes_by_zoom: bool


TILE_LAYERS: dict[str, TileLayer] = {
    "roads": TileLayer("roads", ("roads",), True),
    "coverage": TileLayer("coverage", ("roads", "coverage"), True),
    "grids": TileLayer("grids", ("grids", "organisations"), False),
}


def classes_at_zoom(z: int, s: Settings) -> list[str]:
    """Return the road classes drawn at zoom ``z``."""
    return sorted(c for c, zmin in s.tile_road_min_zoom.items() if z >= int(zmin))


def tolerance_m(z: int, s: Settings) -> float:
    """Return the simplification tolerance (EPSG:3857 metres) of ``tile_simplify_px`` pixels at zoom ``z``."""
    return s.tile_simplify_px * WEB_MERCATOR_WORLD_M / (256 * 2**z)


def versions_of(conn: psycopg.Connection, areas: tuple[str, ...]) -> str:
    """Return the version stamp of a layer: its areas' data_version counters joined by dots."""
    rows = {r["area"]: r["version"] for r in conn.execute(
        "SELECT area, version FROM data_version WHERE area = ANY(%s)", [list(areas)])}
    return ".".join(str(rows.get(a, 0)) for a in areas)


def make_tile(conn: psycopg.Connection, layer: str, z: int, x: int, y: int, s: Settings) -> bytes:
    """Encode one tile with the layer's SQL function (migration 0040)."""
    tol = tolerance_m(z, s)
    if layer == "roads":
        row = conn.execute("SELECT gisapp_tile_roads(%s, %s, %s, %s, %s, %s, %s) AS mvt",
                           [z, x, y, classes_at_zoom(z, s), tol, s.tile_extent, s.tile_buffer]).fetchone()
    elif layer == "coverage":
        row = conn.execute("SELECT gisapp_tile_coverage(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) AS mvt",
                           [z, x, y, classes_at_zoom(z, s), tol, list(s.main_road_classes),
                            s.main_road_target_min * 60, s.rural_road_target_min * 60, s.tile_extent,
                            s.tile_buffer]).fetchone()
    elif layer == "grids":
        row = conn.execute("SELECT gisapp_tile_grids(%s, %s, %s, %s, %s, %s) AS mvt",
                           [z, x, y, tol, s.tile_extent, s.tile_buffer]).fetchone()
    else:
        raise NotFound(f"no tile layer {layer!r}; layers are {', '.join(TILE_LAYERS)}", "layer")
    return bytes(row["mvt"] or b"")


def cached_tile(conn: psycopg.Connection, layer: str, z: int, x: int, y: int, version: str, s: Settings) -> bytes:
    """Return a tile from ``tile_cache`` for ``version``, making and storing it when missing."""
    row = conn.execute("SELECT data FROM tile_cache WHERE layer = %s AND z = %s AND x = %s AND y = %s "
                       "AND version = %s", [layer, z, x, y, version]).fetchone()
    if row is not None:
        return bytes(row["data"])
    data = make_tile(conn, layer, z, x, y, s)
    conn.execute(
        "INSERT INTO tile_cache (layer, z, x, y, version, data) VALUES (%s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (layer, z, x, y) DO UPDATE SET version = EXCLUDED.version, data = EXCLUDED.data, "
        "created_at = now()", [layer, z, x, y, version, data])
    return data


class _LRU:
    """A small thread-safe LRU of encoded tiles for one process."""

    def __init__(self) -> None:
        self._d: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            val = self._d.get(key)
            if val is not None:
                self._d.move_to_end(key)
            return val

    def put(self, key: str, val: bytes, limit: int) -> None:
        if limit <= 0:
            return
        with self._lock:
            self._d[key] = val
            self._d.move_to_end(key)
            while len(self._d) > limit:
                self._d.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()


memory_cache = _LRU()
