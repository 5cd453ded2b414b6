"""Serve participation versions under /api/v1/participation (issue 15): a station's part in traffic
management and a station-squadron merger (交所合一), with valid-from/valid-to like jurisdictions.

GET lists every station and squadron with its versions; POST records a dated change (planners and
admins; audited). The rules live in :mod:`gisapp.dispatch.participation`.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from gisapp.core.errors import ValidationError
from gisapp.core.features import parse_time
from gisapp.dispatch import participation
from gisapp.web.context import db_tx, json_object, require_role
from gisapp.web.openapi import document, param

bp = Blueprint("participation_api", __name__, url_prefix="/api/v1/participation")

_WRITERS = ("planner",)
_READERS = ("planner", "viewer", "chief", "duty_officer", "dispatcher", "leadership")
_TAG = "planning"

_VERSION = {"type": "object", "properties": {
    "id": {"type": "integer"}, "takes_part_in_traffic": {"type": "boolean"}, "merged": {"type": "boolean"},
    "valid_from": {"type": ["string", "null"], "format": "date-time", "description": "null: since ever"},
    "valid_to": {"type": ["string", "null"], "format": "date-time"}, "note": {"type": ["string", "null"]},
    "created_by": {"type": ["string", "null"]}, "created_at": {"type": "string", "format": "date-time"}}}
_ORG = {"type": "object", "properties": {
    "id": {"type": "integer"}, "code": {"type": "string"}, "name": {"type": "string"},
    "name_en": {"type": ["string", "null"]}, "kind": {"enum": ["station", "squadron"]},
    "takes_part_in_traffic": {"type": "boolean"}, "merged": {"type": "boolean"},
    "versions": {"type": "array", "items": _VERSION}}}


def init_app(app) -> None:
    app.register_blueprint(bp)


@bp.get("")
def list_participation():
    require_role(*_READERS)
    org = request.args.get("organisation")
    with db_tx() as conn:
        participation.sync_flags(conn)
        return jsonify({"organisations": participation.list_versions(conn, org or None)})


document("/api/v1/participation", "get",
         "Stations and squadrons with their participation versions (traffic management, 交所合一)", tag=_TAG,
         params=[param("organisation", {"type": "string"}, "an organisation id or code (default: all)")],
         response={"type": "object", "properties": {"organisations": {"type": "array", "items": _ORG}}})


@bp.post("")
def change_participation():
    user = require_role(*_WRITERS)
    body = json_object()
    if body.get("organisation") is None:
        raise ValidationError("required", "organisation", key="err.required")
    if body.get("valid_from") is None:
        raise ValidationError("required", "valid_from", key="err.required")
    if body.get("takes_part_in_traffic") is None and body.get("merged") is None:
        raise ValidationError("give takes_part_in_traffic or merged", "takes_part_in_traffic", key="err.required")
    valid_from = parse_time(body["valid_from"], "valid_from")
    with db_tx() as conn:
        out = participation.change(conn, user, body["organisation"], valid_from,
                                   takes_part_in_traffic=body.get("takes_part_in_traffic"),
                                   merged=body.get("merged"), note=body.get("note"))
    resp = jsonify(out)
    resp.status_code = 201
    return resp


document("/api/v1/participation", "post",
         "Record a dated participation change: closes the version in force at valid_from and opens a new one "
         "(after the organisation's last change only)", tag=_TAG,
         body={"type": "object", "required": ["organisation", "valid_from"], "properties": {
             "organisation": {"type": ["integer", "string"], "description": "id or code"},
             "valid_from": {"type": "string", "format": "date-time"},
             "takes_part_in_traffic": {"type": "boolean"}, "merged": {"type": "boolean"},
             "note": {"type": "string", "maxLength": 500}}},
         response={"type": "object", "properties": {"organisation": _ORG, "version": _VERSION}})
