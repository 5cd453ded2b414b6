"""Serve routing under /api/v1/routing: nearest units, travel time, service areas, response
radius, coverage by area and coverage gaps (GeoJSON out). The work is done by ``routing``."""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg
import shapely
from flask import Blueprint, jsonify, request
from shapely.geometry import mapping

import routing
from gisapp.core import scope
from gisapp.core.catalog import UNIT_STATUSES
from gisapp.core.errors import GeometryError, NotFound, Text, ValidationError
from gisapp.core.features import parse_id
from gisapp.core.geometry import check_extent
from gisapp.web.context import (
    arg_bool,
    arg_choice,
    arg_float,
    arg_ids,
    arg_int,
    current_user,
    db_tx,
    geojson,
    json_body,
    only_params,
    pool,
    require_read,
    require_role,
    settings,
    start_on_first_request,
)
from gisapp.web.openapi import document, param
from routing import coverage, patrol
from routing.areas import service_areas

bp = Blueprint("routing_api", __name__, url_prefix="/api/v1/routing")


def init_app(app) -> None:
    """Register the routing API and, when ``live_coverage_interval_s`` > 0, start the process's
    live-coverage refresher on the first request."""
    app.register_blueprint(bp)
    s = app.extensions["gisapp.settings"]
    if s.live_coverage_interval_s > 0:
        start_on_first_request(app, "gisapp.live_refresher", lambda: coverage.LiveRefresher(
            s.database_url, s, s.live_coverage_interval_s, log=app.logger.info))


def poke_live_coverage() -> None:
    """Units changed (status, position, assignment): ask the refresher to run soon."""
    from flask import current_app

    refresher = current_app.extensions.get("gisapp.live_refresher")
    if refresher is not None:
        refresher.poke()

_TAG = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


# ------------------------------------------------------------------------------- input parsing


def _point(lon: float, lat: float, field: str) -> tuple[float, float]:
    """Check a lon/lat pair: ranges, then inside the service extent (swapped axes are named)."""
    if not -180 <= lon <= 180:
        raise ValidationError(f"longitude {lon} out of range [-180, 180]", field if field != "point" else "lon",
                              key="err.geom.position_range")
    if not -90 <= lat <= 90:
        raise ValidationError(f"latitude {lat} out of range [-90, 90]", field if field != "point" else "lat",
                              key="err.geom.position_range")
    check_extent(shapely.Point(lon, lat), settings().service_extent, field)
    return lon, lat


def _lonlat_args() -> tuple[float, float]:
    lon, lat = arg_float("lon"), arg_float("lat")
    try:
        return _point(lon, lat, "point")
    except GeometryError as e:
        raise GeometryError(e.reason, "lon,lat", key="err.geom.outside_area") from None


def _pair(name: str) -> tuple[float, float]:
    raw = request.args.get(name)
    if not raw:
        raise ValidationError("is required, as lon,lat", name, key="err.lonlat")
    parts = raw.split(",")
    if len(parts) != 2:
        raise ValidationError(f"must be lon,lat, got {raw!r:.60}", name, key="err.lonlat")
    return _point(arg_float(name, parts[0]), arg_float(name, parts[1]), name)


def _must_exist(conn, table: str, ids: list[int] | None, field: str) -> None:
    if not ids:
        return
    missing = sorted(set(ids) - routing.queries.existing_ids(conn, table, ids))
    if missing:
        raise NotFound(f"no {table.replace('_', ' ')} with id {', '.join(map(str, missing))}", field,
                       key="err.ids_not_found", params={"ids": ", ".join(map(str, missing))})


def _feature(geom, props: dict, fid: Any = None) -> dict:
    f = {"type": "Feature", "geometry": geom if (geom is None or isinstance(geom, dict)) else mapping(geom),
         "properties": props}
    if fid is not None:
        f["id"] = fid
    return f


def _router(conn):
    return routing.get_router(conn, settings())


@contextmanager
def _read_only():
    """A pooled connection in autocommit, for the hot read-only endpoints: each statement is its own
    snapshot and costs one round trip (no BEGIN/COMMIT); nothing is written through it."""
    with pool().connection() as conn:
        conn.autocommit = True
        try:
            yield conn
        finally:
            try:
                conn.autocommit = False
            except psycopg.Error:  # a broken connection: the pool discards it
                pass


# ------------------------------------------------------------------------------- nearest units
@bp.get("/nearest-units")
def nearest_units():
    """Nearest units by road travel time toward a point or an incident."""
    require_read()
    s = settings()
    only_params("lon", "lat", "incident_id", "k", "capability", "organisation_id", "joint_zone_id", "status")
    k = arg_int("k", 5, 1, s.nearest_units_max_k)
    caps = None
    if request.args.get("capability"):
        caps = [c.strip() for c in request.args["capability"].split(",") if c.strip()]
        for c in caps:
            if not _TAG.match(c):
                raise ValidationError(f"capability tags are lower-case words, got {c!r:.40}", "capability",
                                      key="err.capability_tag")
    statuses = tuple(x.strip() for x in request.args.get("status", "available").split(",") if x.strip())
    if not statuses or any(x not in UNIT_STATUSES for x in statuses):
        raise ValidationError(f"must be a comma-separated list of {', '.join(UNIT_STATUSES)}", "status",
                              key="err.one_of", params={"options": Text.codes("unit.", UNIT_STATUSES)})
    orgs = _scoped_organisations(arg_ids("organisation_id"))
    jz = arg_ids("joint_zone_id")
    if jz is not None and len(jz) != 1:
        raise ValidationError("one joint zone id", "joint_zone_id", key="err.one_id")
    inc = arg_ids("incident_id")
    with _read_only() as conn:
        if inc is not None:
            if len(inc) != 1 or "lon" in request.args or "lat" in request.args:
                raise ValidationError("give one incident_id, or lon and lat", "incident_id",
                                      key="err.routing.incident_or_point")
            pt = routing.queries.incident_point(conn, inc[0])
            if pt is None:
                raise NotFound(f"no incident with id {inc[0]}", "incident_id",
                               key="err.incident.not_found", params={"id": inc[0]})
            lon, lat = pt
        else:
            lon, lat = _lonlat_args()
        _must_exist(conn, "organisation", orgs, "organisation_id")
        _must_exist(conn, "joint_zone", jz, "joint_zone_id")
        ans = routing.nearest_units(conn, settings(), lon, lat, k=k, capability=caps, organisation_ids=orgs,
                                    joint_zone_id=jz[0] if jz else None, statuses=statuses)
    feats = []
    for u in ans["units"]:
        props = {key: v for key, v in u.items() if key != "route"}
        feats.append(_feature(u["route"], props, u["unit_id"]))
    return geojson({"type": "FeatureCollection", "features": feats, "incident": ans["incident"],
                     "incident_id": inc[0] if inc else None, "reason": ans["reason"]})


def _scoped_organisations(asked: list[int] | None) -> list[int] | None:
    """The organisations whose units a caller may look for: what was asked (each checked), or all
    of their own when they are organisation-bound (a chief: their station)."""
    visible = scope.visible_organisations(current_user())
    if asked is not None:
        for o in asked:
            scope.require_organisation(current_user(), o)
        return asked
    return None if visible is None else sorted(visible)


# ------------------------------------------------------------------------------- travel time
@bp.get("/travel-time")
def travel_time():
    """Road travel time and route between two points."""
    require_read()
    only_params("from", "to")
    a, b = _pair("from"), _pair("to")
    with _read_only() as conn:
        r = _router(conn).travel_time(conn, a, b)
    return geojson(_feature(r["route"], {k: v for k, v in r.items() if k != "route"}))


# ------------------------------------------------------------------------------- service areas
def _budgets() -> list[float]:
    s = settings()
    raw = request.args.get("budgets", "5,10,15,20,30")
    vals = [x.strip() for x in raw.split(",") if x.strip()]
    if not vals:
        raise ValidationError("give one or more budgets in minutes, e.g. 5,10,15", "budgets",
                              key="err.budgets.none")
    if len(vals) > s.service_area_max_budgets:
        raise ValidationError(f"at most {s.service_area_max_budgets} budgets", "budgets",
                              key="err.budgets.many", params={"most": s.service_area_max_budgets})
    out = []
    for v in vals:
        m = arg_float("budgets", v)
        if not 0 < m <= s.service_area_max_budget_min:
            raise ValidationError(f"each budget must be > 0 and <= {s.service_area_max_budget_min:g} minutes",
                                  "budgets",
                                  key="err.budgets.range", params={"most": f"{s.service_area_max_budget_min:g}"})
        out.append(m)
    if len(set(out)) != len(out):
        raise ValidationError("budgets must differ", "budgets", key="err.budgets.differ")
    return sorted(out)


@bp.get("/service-areas")
def service_areas_route():
    """Service areas (polygons following the roads, and reached segments) at several budgets."""
    require_read()
    s = settings()
    only_params("organisation_id", "unit_id", "lon", "lat", "budgets", "segments")
    budgets = _budgets()
    segments = arg_bool("segments", True)
    orgs, units = arg_ids("organisation_id"), arg_ids("unit_id")
    for o in orgs or ():
        scope.require_organisation(current_user(), o)
    points: list[tuple[float, float]] = []
    labels: list[dict] = []
    with db_tx() as conn:
        if "lon" in request.args or "lat" in request.args:
            points.append(_lonlat_args())
            labels.append({"kind": "point"})
        if orgs:
            _must_exist(conn, "organisation", orgs, "organisation_id")
            rows = routing.queries.organisations_with_hq(conn, orgs)
            no_hq = sorted(set(orgs) - {r[0] for r in rows})
            if no_hq:
                raise ValidationError(f"organisation {', '.join(map(str, no_hq))} has no headquarters point",
                                      "organisation_id", status=422,
                                      key="err.routing.no_hq", params={"ids": ", ".join(map(str, no_hq))})
            points += [(r[3], r[4]) for r in rows]
            labels += [{"kind": "organisation", "id": r[0], "code": r[1], "name": r[2]} for r in rows]
        if units:
            _must_exist(conn, "unit", units, "unit_id")
            for uid in units:  # another organisation's unit is not revealed
                scope.check_unit(conn, current_user(), uid)
            rows = routing.queries.units_by_id(conn, units)
            no_pos = sorted(set(units) - {r[0] for r in rows})
            if no_pos:
                raise ValidationError(f"unit {', '.join(map(str, no_pos))} has no position", "unit_id", status=422,
                                      key="err.routing.no_position", params={"ids": ", ".join(map(str, no_pos))})
            points += [(r[4], r[5]) for r in rows]
            labels += [{"kind": "unit", "id": r[0], "code": r[1], "name": r[2]} for r in rows]
        if not points:
            raise ValidationError("give organisation_id, unit_id, or lon and lat", "organisation_id",
                                  key="err.routing.what")
        router = _router(conn)
    snaps = router.snap(np.array(points, dtype=np.float64))
    res = service_areas(router, snaps, [b * 60.0 for b in budgets], buffer_m=s.service_area_buffer_m,
                        simplify_m=s.service_area_simplify_m, segments=segments)
    feats = [_feature(a["geometry"], {"kind": "area", "budget_min": a["budget_s"] / 60.0,
                                      "reached_km": a["reached_km"]}) for a in reversed(res["areas"])]
    feats += [_feature(seg["geometry"], {"kind": "segment", **{k: v for k, v in seg.items() if k != "geometry"}},
                       seg["edge_id"]) for seg in res["segments"]]
    sources = [{**lab, "lon": p[0], "lat": p[1], "snap": snaps.info(i, router.graph)}
               for i, (lab, p) in enumerate(zip(labels, points, strict=True))]
    return geojson({"type": "FeatureCollection", "features": feats, "budgets_min": budgets, "sources": sources})


# ------------------------------------------------------------------------------- response radius
@bp.get("/response-radius")
def response_radius():
    """Per station jurisdiction: p50, p90 and max travel time from the station to its roads."""
    require_read()
    only_params()
    with db_tx() as conn:
        items = coverage.response_radius(conn, settings())
    return jsonify({"items": items, "time_unit": "s"})


# ------------------------------------------------------------------------------- coverage
@bp.get("/coverage")
def coverage_by_area():
    """Share of road km within target per jurisdiction, grid or joint zone, by road class."""
    require_read()
    only_params("area", "source", "geometry")
    kind = arg_choice("area", coverage.AREA_KINDS, "station")
    source = arg_choice("source", ("static", "live"), "static")
    with_geom = arg_bool("geometry", True)
    s = settings()
    with db_tx() as conn:
        if source == "live":
            coverage.refresh_live_if_stale(conn, s)
        items = coverage.by_area(conn, s, kind, source)
    feats = [_feature(it.pop("geometry") if with_geom else None,
                      {**{k: v for k, v in it.items() if k != "geometry"}}, it["area_id"]) for it in items]
    return geojson({"type": "FeatureCollection", "features": feats, "source": source,
                     "targets_min": {"main": s.main_road_target_min, "rural": s.rural_road_target_min},
                     "main_road_classes": list(s.main_road_classes)})


@bp.get("/patrol")
def patrol_by_area():
    """Share of road km patrolled (driven along by a unit) in the last days, per area."""
    require_read()
    only_params("area", "days", "geometry")
    kind = arg_choice("area", coverage.AREA_KINDS, "grid")
    days = arg_int("days", settings().patrol_days, 1, 90)
    with_geom = arg_bool("geometry", False)
    with db_tx() as conn:
        items = patrol.by_area(conn, settings(), kind, days)
    feats = [_feature(geom if with_geom else None, it, it["area_id"])
             for it in items for geom in [it.pop("geometry")]]
    return geojson({"type": "FeatureCollection", "features": feats, "days": days})


@bp.get("/gaps")
def coverage_gaps():
    """Road segments not reached within target, ranked by uncovered km x incidents of the past year."""
    require_read()
    only_params("source", "limit", "road_class", "area", "area_id")
    source = arg_choice("source", ("static", "live"), "static")
    limit = arg_int("limit", 100, 1, 5000)
    road_class = request.args.get("road_class")
    if road_class is not None and road_class not in routing.graph.ROAD_CLASSES:
        raise ValidationError(f"must be one of {', '.join(routing.graph.ROAD_CLASSES)}", "road_class",
                              key="err.one_of", params={"options": Text.codes("road.", routing.graph.ROAD_CLASSES)})
    area, area_id = request.args.get("area"), None
    if area is not None:
        area = arg_choice("area", coverage.AREA_KINDS, "station")
        area_id = parse_id(request.args.get("area_id", ""), "area_id")
    elif "area_id" in request.args:
        raise ValidationError("give area (station, traffic, grid or joint_zone) with area_id", "area",
                              key="err.routing.area")
    with db_tx() as conn:
        if area is not None:
            table = {"station": "jurisdiction", "traffic": "jurisdiction", "grid": None,
                     "joint_zone": "joint_zone"}[area]
            if table:
                _must_exist(conn, table, [area_id], "area_id")
        if source == "live":
            coverage.refresh_live_if_stale(conn, settings())
        items = coverage.gaps(conn, settings(), source, limit=limit, road_class=road_class,
                              area_kind=area, area_id=area_id)
    feats = [_feature(it.pop("geometry"), it, it["edge_id"]) for it in items]
    return geojson({"type": "FeatureCollection", "features": feats, "source": source})


@bp.post("/coverage/refresh")
def coverage_refresh():
    """Recompute static and/or live coverage now (dispatcher, planner, admin)."""
    require_role("dispatcher", "planner")
    body = json_body() if request.content_length else {}
    if not isinstance(body, dict):
        raise ValidationError("must be a JSON object", "body", key="err.not_object")
    for key in body:
        if key not in ("static", "live"):
            raise ValidationError("unknown field; use static, live", key, key="err.unknown_property")
        if not isinstance(body[key], bool):
            raise ValidationError("must be true or false", key, key="err.not_bool")
    out = {}
    with db_tx() as conn:
        if body.get("static", True):
            out["static"] = coverage.refresh_static(conn, settings())
        if body.get("live", True):
            out["live"] = coverage.refresh_live(conn, settings())
    return jsonify(out)


@bp.get("/graph")
def graph_info():
    """The road graph in memory: version, nodes, edges, arcs and memory in bytes."""
    require_read()
    only_params()
    with db_tx() as conn:
        return jsonify(_router(conn).graph.summary())


# ------------------------------------------------------------------------------- OpenAPI


_LON = param("lon", {"type": "number"}, "longitude (WGS84)")
_LAT = param("lat", {"type": "number"}, "latitude (WGS84)")
_FC = {"type": "object", "properties": {"type": {"const": "FeatureCollection"}, "features": {"type": "array"}}}
_AUTH = True  # every read needs a log-in (issue 12)

document("/api/v1/routing/nearest-units", "get",
         "The k nearest units by road travel time toward a point or incident (routes as LineStrings)",
         tag="routing", auth=_AUTH, response=_FC, params=[
             _LON, _LAT, param("incident_id", {"type": "integer"}, "instead of lon/lat"),
             param("k", {"type": "integer", "minimum": 1}, "how many units (default 5)"),
             param("capability", {"type": "string"}, "comma-separated tags every unit must have"),
             param("organisation_id", {"type": "string"}, "comma-separated organisation ids"),
             param("joint_zone_id", {"type": "integer"}),
             param("status", {"type": "string"}, "comma-separated unit statuses (default available)")])
document("/api/v1/routing/travel-time", "get", "Road travel time and route between two points", tag="routing",
         auth=_AUTH, params=[param("from", {"type": "string"}, "lon,lat", True), param("to", {"type": "string"}, "lon,lat", True)])
document("/api/v1/routing/service-areas", "get",
         "Service areas at several budgets: polygons following the reached roads and reached segments",
         tag="routing", auth=_AUTH, response=_FC, params=[
             param("organisation_id", {"type": "string"}, "comma-separated organisations (their headquarters)"),
             param("unit_id", {"type": "string"}, "comma-separated units (their positions)"), _LON, _LAT,
             param("budgets", {"type": "string"}, "comma-separated minutes (default 5,10,15,20,30)"),
             param("segments", {"type": "boolean"}, "include the reached road segments (default true)")])
document("/api/v1/routing/response-radius", "get",
         "Response radius (出警半径): p50/p90/max seconds from each station to its jurisdiction's roads",
         tag="routing", auth=_AUTH)
document("/api/v1/routing/coverage", "get", "Share of road km within target per area, by road class",
         tag="routing", auth=_AUTH, response=_FC, params=[
             param("area", {"enum": list(coverage.AREA_KINDS)}), param("source", {"enum": ["static", "live"]}),
             param("geometry", {"type": "boolean"})])
document("/api/v1/routing/patrol", "get",
         "Share of road km driven along by a unit in the last days (patrol coverage) per area, main and rural roads",
         tag="routing", auth=_AUTH, response=_FC, params=[
             param("area", {"enum": list(coverage.AREA_KINDS)}, "default grid"),
             param("days", {"type": "integer", "minimum": 1, "maximum": 90}, "default patrol_days (7)"),
             param("geometry", {"type": "boolean"}, "include the area polygons (default false)")])
document("/api/v1/routing/gaps", "get", "Coverage gaps ranked by uncovered km x incidents of the past year",
         tag="routing", auth=_AUTH, response=_FC, params=[
             param("source", {"enum": ["static", "live"]}), param("limit", {"type": "integer"}),
             param("road_class", {"type": "string"}), param("area", {"enum": list(coverage.AREA_KINDS)}),
             param("area_id", {"type": "integer"})])
document("/api/v1/routing/coverage/refresh", "post", "Recompute static and/or live coverage now", tag="routing",
         body={"type": "object", "properties": {"static": {"type": "boolean"}, "live": {"type": "boolean"}}})
document("/api/v1/routing/graph", "get", "The road graph in memory (size, version, memory)", tag="routing",
         auth=_AUTH)
