"""Serve planning under /api/v1/plans: drafts, edits, validation, comparison, proposals, publish.

Routes only parse the request and call :mod:`gisapp.planning` (and its comparison and
proposal modules) inside one transaction.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from gisapp.core.errors import ValidationError
from gisapp.core.features import parse_id, parse_time
from gisapp.planning import drafts, reshape
from gisapp.planning import publish as publishing
from gisapp.planning import validation as validating
from gisapp.planning.compare import compare_plan
from gisapp.planning.proposals import propose
from gisapp.web.context import arg_float, db_tx, geojson, json_object, require_role, settings
from gisapp.web.openapi import ID_PARAM, document, param

bp = Blueprint("planning_api", __name__, url_prefix="/api/v1/plans")

_WRITERS = ("planner",)
_READERS = ("planner", "viewer", "chief", "duty_officer", "dispatcher", "leadership")
_TAG = "planning"


def _opt_time(raw: Any, name: str):
    return None if raw is None else parse_time(raw, name)


def _plan_out(conn, pid: int, status: int = 200) -> Response:
    resp = jsonify(drafts.get_plan(conn, pid, settings().metric_srid))
    resp.status_code = status
    return resp


_obj = {"type": "object"}
_geom = {"type": "object", "description": "GeoJSON Polygon or MultiPolygon, WGS84 [lon, lat]"}


@bp.get("")
def list_plans():
    require_role(*_READERS)
    with db_tx() as conn:
        publishing.apply_due(conn)
        return jsonify(drafts.list_plans(conn, request.args.get("kind"), request.args.get("status")))


document("/api/v1/plans", "get", "List plans (drafts, published, archived)", tag=_TAG,
         params=[param("kind", {"enum": list(drafts.KINDS)}), param("status", {"enum": list(drafts.STATUSES)})])


@bp.post("")
def create_plan():
    user = require_role(*_WRITERS)
    body = json_object()
    with db_tx() as conn:
        row = drafts.create_plan(
            conn, user, name=body.get("name"), kind=body.get("kind"),
            copy_at=_opt_time(body.get("copy_at"), "copy_at"), description=body.get("description") or "",
            empty=bool(body.get("empty", False)))
        return _plan_out(conn, row["id"], 201)


document("/api/v1/plans", "post", "Create a named draft: a copy of the published layout (at copy_at) or empty",
         tag=_TAG, body={"type": "object", "required": ["name", "kind"], "properties": {
             "name": {"type": "string"}, "kind": {"enum": list(drafts.KINDS)},
             "description": {"type": "string"}, "copy_at": {"type": "string", "format": "date-time"},
             "empty": {"type": "boolean"}}})


@bp.get("/<pid>")
def get_plan(pid: str):
    require_role(*_READERS)
    with db_tx() as conn:
        publishing.apply_due(conn)
        return _plan_out(conn, parse_id(pid))


document("/api/v1/plans/{id}", "get", "A plan with its areas (GeoJSON) and patrol posts", tag=_TAG, params=[ID_PARAM])


@bp.delete("/<pid>")
def archive_plan(pid: str):
    user = require_role(*_WRITERS)
    with db_tx() as conn:
        return jsonify(drafts.archive_plan(conn, user, parse_id(pid)))


document("/api/v1/plans/{id}", "delete", "Set a draft aside (archived)", tag=_TAG, params=[ID_PARAM])


@bp.post("/<pid>/copy")
def copy_plan(pid: str):
    user = require_role(*_WRITERS)
    body = json_object()
    with db_tx() as conn:
        row = drafts.copy_plan(conn, user, parse_id(pid), body.get("name"))
        return _plan_out(conn, row["id"], 201)


document("/api/v1/plans/{id}/copy", "post", "Copy any plan into a new draft", tag=_TAG, params=[ID_PARAM],
         body={"type": "object", "properties": {"name": {"type": "string"}}})


@bp.post("/<pid>/areas")
def add_area(pid: str):
    user = require_role(*_WRITERS)
    body = json_object()
    p = parse_id(pid)
    with db_tx() as conn:
        drafts.add_area(conn, user, p, body, settings().service_extent)
        return _plan_out(conn, p, 201)


document("/api/v1/plans/{id}/areas", "post", "Add an area: an organisation's jurisdiction or a joint zone",
         tag=_TAG, params=[ID_PARAM], body={"type": "object", "properties": {
             "organisation_id": {"type": "integer"}, "zone_code": {"type": "string"}, "name": {"type": "string"},
             "centre_org_id": {"type": "integer"}, "member_ids": {"type": "array", "items": {"type": "integer"}},
             "geometry": _geom}})


@bp.route("/areas/<aid>", methods=["PATCH", "PUT"])
def update_area(aid: str):
    user = require_role(*_WRITERS)
    body = json_object()
    a = parse_id(aid)
    with db_tx() as conn:
        p = drafts.plan_of_area(conn, a)
        drafts.update_area(conn, user, p, a, body, settings().service_extent)
        return _plan_out(conn, p)


_area_body = {"type": "object", "properties": {
    "geometry": _geom, "name": {"type": "string"}, "centre_org_id": {"type": "integer"},
    "member_ids": {"type": "array", "items": {"type": "integer"}}},
    "description": "geometry as drawn: only its structure is checked; validity is reported by validation"}
document("/api/v1/plans/areas/{id}", "patch", "Edit a draft area's geometry, name or zone members (returns the plan)",
         tag=_TAG, params=[ID_PARAM], body=_area_body)
document("/api/v1/plans/areas/{id}", "put", "Edit a draft area's geometry, name or zone members (returns the plan)",
         tag=_TAG, params=[ID_PARAM], body=_area_body)


@bp.delete("/areas/<aid>")
def delete_area(aid: str):
    user = require_role(*_WRITERS)
    a = parse_id(aid)
    with db_tx() as conn:
        return jsonify(drafts.delete_area(conn, user, drafts.plan_of_area(conn, a), a))


document("/api/v1/plans/areas/{id}", "delete", "Remove an area from its draft", tag=_TAG, params=[ID_PARAM])


def _edit(fn, *, plan_id: str | None = None, area_id: str | None = None):
    """A planner's edit of a draft: ``fn(conn, user, plan id, area id, body)`` in one transaction,
    answered with its result and the whole plan (the plan of the area when an area is named)."""
    user = require_role(*_WRITERS)
    body = json_object()
    a = parse_id(area_id) if area_id is not None else None
    with db_tx() as conn:
        p = parse_id(plan_id) if plan_id is not None else drafts.plan_of_area(conn, a)
        out = fn(conn, user, p, a, body)
        return jsonify({**out, "plan": drafts.get_plan(conn, p, settings().metric_srid)})


def _required(body: dict, key: str, what: str):
    if key not in body:
        raise ValidationError(f"is required: {what}", key, key="err.required")
    return body[key]


@bp.post("/<pid>/move-grid")
def move_grid(pid: str):
    return _edit(lambda conn, user, p, _a, body: reshape.move_grid(
        conn, user, p, body.get("grid_id"), body.get("to_organisation_id"), settings()), plan_id=pid)


document("/api/v1/plans/{id}/move-grid", "post", "Move a patrol grid to another organisation (reshapes both areas)",
         tag=_TAG, params=[ID_PARAM], body={"type": "object", "required": ["grid_id", "to_organisation_id"],
                                       "properties": {"grid_id": {"oneOf": [{"type": "integer"}, {"type": "string"}],
                                                                  "description": "the grid's id, code or name"},
                                                      "to_organisation_id": {"type": "integer"}}})


@bp.get("/grids")
def grid_search():
    require_role(*_READERS)
    limit = arg_float("limit") if request.args.get("limit") else 20
    with db_tx() as conn:
        return jsonify({"grids": reshape.find_grids(conn, request.args.get("q"), int(limit))})


document("/api/v1/plans/grids", "get", "Find patrol grids by code or name (part of either), for the move tool",
         tag=_TAG, params=[param("q", {"type": "string", "maxLength": 100}, required=True),
                           param("limit", {"type": "integer", "minimum": 1, "maximum": 100})])


@bp.post("/<pid>/reassign")
def reassign(pid: str):
    return _edit(lambda conn, user, p, _a, body: reshape.reassign_polygon(
        conn, user, p, _required(body, "geometry", "the drawn polygon"), body.get("to_organisation_id"),
        settings()), plan_id=pid)


document("/api/v1/plans/{id}/reassign", "post",
         "Give a drawn polygon to an organisation (it joins that area and leaves the others)", tag=_TAG,
         params=[ID_PARAM], body={"type": "object", "required": ["geometry", "to_organisation_id"],
                             "properties": {"geometry": _geom, "to_organisation_id": {"type": "integer"}}})


@bp.post("/<pid>/move-village")
def move_village(pid: str):
    return _edit(lambda conn, user, p, _a, body: reshape.move_village(
        conn, user, p, body.get("village_id"), body.get("to_organisation_id"), settings()), plan_id=pid)


document("/api/v1/plans/{id}/move-village", "post",
         "Move a village (its Voronoi cell among its area's villages) to another organisation", tag=_TAG,
         params=[ID_PARAM], body={"type": "object", "required": ["village_id", "to_organisation_id"],
                             "properties": {"village_id": {"type": "integer"},
                                            "to_organisation_id": {"type": "integer"}}})


@bp.post("/areas/<aid>/split")
def split_area(aid: str):
    return _edit(lambda conn, user, p, a, body: reshape.split_area(
        conn, user, p, a, _required(body, "line", "a GeoJSON LineString drawn across the area"), body, settings()),
        area_id=aid)


document("/api/v1/plans/areas/{id}/split", "post",
         "Split a draft area along a line; the pieces away from its seat go to another owner", tag=_TAG,
         params=[ID_PARAM], body={"type": "object", "required": ["line"], "properties": {
             "line": {"type": "object", "description": "GeoJSON LineString"},
             "to_organisation_id": {"type": "integer"}, "to_zone_code": {"type": "string"},
             "name": {"type": "string"}, "centre_org_id": {"type": "integer"},
             "keep_point": {"type": "array", "items": {"type": "number"}}}})


@bp.post("/areas/<aid>/merge")
def merge_areas(aid: str):
    return _edit(lambda conn, user, p, a, body: reshape.merge_areas(
        conn, user, p, a, body.get("other_area_id"), settings()), area_id=aid)


document("/api/v1/plans/areas/{id}/merge", "post", "Merge another area of the same draft into this one",
         tag=_TAG, params=[ID_PARAM], body={"type": "object", "required": ["other_area_id"],
                                    "properties": {"other_area_id": {"type": "integer"}}})


@bp.get("/<pid>/validation")
def validation(pid: str):
    require_role(*_READERS)
    with db_tx() as conn:
        return jsonify(validating.validate_plan(conn, parse_id(pid), settings()))


document("/api/v1/plans/{id}/validation", "get",
         "Validate a draft: gaps, overlaps, slivers, invalid geometry, parts outside the county, cut grids",
         tag=_TAG, params=[ID_PARAM])


def _publishing(fn, pid: str):
    """Publish (``publishing.publish_plan``) or publish again (``publishing.rollback``) plan ``pid``
    with the body's effective time and reason, in one transaction."""
    user = require_role(*_WRITERS)
    body = json_object()
    with db_tx() as conn:
        return jsonify(fn(conn, user, parse_id(pid), _opt_time(body.get("effective_from"), "effective_from"),
                          body.get("reason"), settings()))


@bp.post("/<pid>/publish")
def publish(pid: str):
    return _publishing(publishing.publish_plan, pid)


_publish_body = {"type": "object", "required": ["reason"], "properties": {
    "effective_from": {"type": "string", "format": "date-time", "description": "default now"},
    "reason": {"type": "string"}}}
document("/api/v1/plans/{id}/publish", "post", "Publish a draft that validates, in force from effective_from",
         tag=_TAG, params=[ID_PARAM], body=_publish_body)


@bp.post("/<pid>/rollback")
def rollback(pid: str):
    return _publishing(publishing.rollback, pid)


document("/api/v1/plans/{id}/rollback", "post", "Publish an earlier published plan's layout again", tag=_TAG,
         params=[ID_PARAM], body=_publish_body)


@bp.get("/ownership")
def ownership():
    require_role(*_READERS)
    lon, lat = arg_float("lon"), arg_float("lat")
    at = _opt_time(request.args.get("at"), "at")
    with db_tx() as conn:
        return jsonify(publishing.owner_at(conn, lon, lat, at))


document("/api/v1/plans/ownership", "get",
         "Which station, traffic owner and joint zone held a point at a time (versions in force then)", tag=_TAG,
         params=[param("lon", {"type": "number"}, required=True), param("lat", {"type": "number"}, required=True),
                 param("at", {"type": "string", "format": "date-time"}, "default now")])


def _comparison(pid: int) -> dict:
    with db_tx() as conn:
        return compare_plan(conn, pid, settings())


@bp.get("/<pid>/comparison")
def comparison(pid: str):
    require_role(*_READERS)
    out = _comparison(parse_id(pid))
    if request.args.get("incidents", "true").lower() in ("0", "false"):
        out["changed_incidents"].pop("items")
        out["changed_incidents"].pop("geojson")
    return jsonify(out)


document("/api/v1/plans/{id}/comparison", "get",
         "Compare a plan with the published layout per jurisdiction: area, road km, villages, workload, "
         "travel times, share of roads within target, workload balance, incidents that change owner",
         tag=_TAG, params=[ID_PARAM, param("incidents", {"type": "boolean"}, "list the incidents that change owner")])


@bp.get("/<pid>/changed-incidents")
def changed_incidents(pid: str):
    require_role(*_READERS)
    return geojson(_comparison(parse_id(pid))["changed_incidents"]["geojson"])


document("/api/v1/plans/{id}/changed-incidents", "get",
         "The past year's incidents that would change owner under this plan (GeoJSON points)", tag=_TAG,
         params=[ID_PARAM])


@bp.post("/proposals")
def proposals():
    user = require_role(*_WRITERS)
    body = json_object()
    with db_tx() as conn:
        row = propose(conn, user, body, settings())
        return _plan_out(conn, row["id"], 201)


document("/api/v1/plans/proposals", "post",
         "Make a proposal draft: network Voronoi, balanced (travel time against workload balance, contiguous), "
         "or patrol-car posts for a joint zone by time of day (MCLP)", tag=_TAG,
         body={"type": "object", "required": ["method"], "properties": {
             "method": {"enum": ["voronoi", "balanced", "mclp"]}, "kind": {"enum": ["station", "traffic"]},
             "unit": {"enum": ["grid", "village"]}, "weight": {"type": "number"},
             "zone_code": {"type": "string"}, "cars": {"type": "integer"}, "name": {"type": "string"}}})


def init_app(app) -> None:
    app.register_blueprint(bp)
