"""Serve the vector tiles of ``layers.tiles`` under ``/tiles/<layer>/<z>/<x>/<y>.mvt`` with ETags and caching."""

from __future__ import annotations

import hashlib

from flask import Blueprint, Response, request

from gisapp.core.config import Settings
from gisapp.core.errors import NotFound, ValidationError
from layers.tiles import MVT_MIME, TILE_LAYERS, TILE_SCHEMA, TileLayer, cached_tile, memory_cache, versions_of

from .context import db_tx, require_read, settings

bp = Blueprint("tiles", __name__, url_prefix="/tiles")


def init_app(app) -> None:
    app.register_blueprint(bp)


def _check(layer: str, z: int, x: int, y: int, s: Settings) -> TileLayer:
    spec = TILE_LAYERS.get(layer)
    if spec is None:
        raise NotFound(f"no tile layer {layer!r}; layers are {', '.join(TILE_LAYERS)}", "layer")
    if not s.tile_min_zoom <= z <= s.tile_max_zoom:
        raise ValidationError(f"zoom must be between {s.tile_min_zoom} and {s.tile_max_zoom}", "z")
    n = 2**z
    if not 0 <= x < n:
        raise ValidationError(f"must be between 0 and {n - 1} at zoom {z}", "x")
    if not 0 <= y < n:
        raise ValidationError(f"must be between 0 and {n - 1} at zoom {z}", "y")
    return spec


@bp.get("/<layer>/<int:z>/<int:x>/<int:y>.mvt")
def tile(layer: str, z: int, x: int, y: int) -> Response:
    """One vector tile of ``layer`` (roads, coverage, grids)."""
    s = settings()
    require_read()
    spec = _check(layer, z, x, y, s)
    with db_tx() as conn:
        version = versions_of(conn, spec.areas)
        etag = hashlib.sha1(f"{TILE_SCHEMA}/{layer}/{z}/{x}/{y}@{version}".encode()).hexdigest()[:24]
        if etag in request.if_none_match:
            resp = Response(status=304)
        else:
            key = f"{layer}/{z}/{x}/{y}@{version}"
            data = memory_cache.get(key)
            if data is None:
                data = cached_tile(conn, layer, z, x, y, version, s)
                memory_cache.put(key, data, s.tile_memory_cache_entries)
            resp = Response(data, mimetype=MVT_MIME)
    resp.set_etag(etag)
    if request.args.get("v") == version:
        resp.headers["Cache-Control"] = f"public, max-age={s.tile_cache_max_age_s}, immutable"
    else:
        resp.headers["Cache-Control"] = "no-cache"
    resp.headers["X-Data-Version"] = version
    return resp
