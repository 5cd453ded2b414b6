"""The chief's map measures as JSON (issue 14): grids and villages of a station over a patrol window.

``GET /api/v1/maps/grid-measures`` (GeoJSON of the station's grids with every measure) and
``GET /api/v1/maps/villages`` (the villages table), both with ``station`` (id or code),
``window`` (7 / 30 / 90) or ``from``/``to`` (Beijing-local dates, ``to`` inclusive) and
``source`` (``station`` or ``units``). A chief or duty officer gets their own station (another
one: 403); county roles name a station, or get every station's (the county) without one.
Definitions: ``layers.measures``.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from gisapp.core import scope
from gisapp.core.errors import NotFound
from layers import measures as M

from .context import db_tx, geojson, require_role, settings
from .openapi import document, param

bp = Blueprint("chief_maps_api", __name__, url_prefix="/api/v1/maps")

# the roles of /map/grids (leadership: the read-only role of issue 14, when it exists)
ROLES = ("planner", "chief", "duty_officer", "viewer", "leadership")


def init_app(app) -> None:
    app.register_blueprint(bp)


def resolve_station(conn, raw: str | None) -> dict | None:
    """The station named by id or code, or None when ``raw`` is empty; unknown: 404 (field station)."""
    raw = (raw or "").strip()
    if not raw:
        return None
    row = conn.execute(
        "SELECT id, code, name, name_en FROM organisation WHERE kind = 'station' AND (code = %s OR id::text = %s)",
        [raw, raw]).fetchone()
    if row is None:
        raise NotFound(f"no station {raw!r}", "station", key="err.organisation.not_found", params={"id": raw[:40]})
    return row


def stations_in_scope(conn, user: dict, raw: str | None) -> list[dict]:
    """The stations a request covers: the asked one (checked against the user's scope), the user's own,
    or every station for a county role that asked for none."""
    asked = resolve_station(conn, raw)
    if asked is not None:
        scope.require_organisation(user, asked["id"], "station")
        return [asked]
    own = scope.only_organisation(user, None, "station")
    if own is not None:
        return [r for r in [conn.execute("SELECT id, code, name, name_en FROM organisation WHERE id = %s",
                                         [own]).fetchone()] if r is not None]
    return conn.execute("SELECT id, code, name, name_en FROM organisation WHERE kind = 'station' ORDER BY code"
                        ).fetchall()


def _params():
    s = settings()
    return s, M.parse_window(request.args, s), M.parse_source(request.args.get("source"))


_PARAMS = [param("station", {"type": "string"}, "station id or code (a chief: their own; county roles: all without it)"),
           param("window", {"enum": [7, 30, 90]}, "the last 7 (default), 30 or 90 Beijing-local days"),
           param("from", {"type": "string", "format": "date"}, "first day of a from-to window (Beijing-local)"),
           param("to", {"type": "string", "format": "date"}, "last day, inclusive (default today)"),
           param("source", {"enum": list(M.SOURCES)}, "drive times from the station (default) or also its available units")]
document("/api/v1/maps/grid-measures", "get",
         "A station's grids with drive time to the farthest village, patrol share and its trend, incidents per "
         "patrolled km over a patrol window (GeoJSON)", tag="maps", params=_PARAMS)
document("/api/v1/maps/villages", "get",
         "A station's villages with grid, drive time, within target or not and patrol share of their roads",
         tag="maps", params=_PARAMS)


@bp.get("/grid-measures")
def grid_measures():
    """The grids of the station(s) with drive time, patrol share and trend, incidents per patrolled km."""
    user = require_role(*ROLES)
    s, window, source = _params()
    with db_tx() as conn:
        stations = stations_in_scope(conn, user, request.args.get("station"))
        feats: list[dict] = []
        out: dict = {}
        for st in stations:
            out = M.grid_measures(conn, s, st["id"], window, source)
            feats += out["features"]
    return geojson({"type": "FeatureCollection", "features": feats, "window": window.to_dict(),
                    "previous": window.previous().to_dict(), "source": source,
                    "stations": [dict(st) for st in stations]})


@bp.get("/villages")
def villages():
    """The villages of the station(s): grid, drive time, within target, patrol share of its roads."""
    user = require_role(*ROLES)
    s, window, source = _params()
    with db_tx() as conn:
        stations = stations_in_scope(conn, user, request.args.get("station"))
        rows = []
        for st in stations:
            for v in M.villages(conn, s, st["id"], window, source):
                rows.append({**v, "station_id": st["id"], "station_code": st["code"]})
    return jsonify({"window": window.to_dict(), "source": source, "stations": [dict(st) for st in stations],
                    "rows": rows})
