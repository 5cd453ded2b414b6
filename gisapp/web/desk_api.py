"""Serve the legs' owners and the dispatcher's ownership decisions: the desk's list of legs, a leg's
timeline, hand-back, re-dispatch, closing an incident without dispatch, reassigning a leg's unit.

Routes only parse the request and call gisapp.dispatch.desk inside one transaction per request.
"""

from __future__ import annotations

import re

import psycopg
from flask import Blueprint, Flask, Response, jsonify, request

from gisapp.core import scope
from gisapp.core.errors import Conflict, ValidationError
from gisapp.core.features import parse_id
from gisapp.dispatch.desk import (
    DESK_STATES,
    LEG_ROLES,
    close_incident,
    desk_legs,
    hand_back_leg,
    leg_timeline,
    reassign_leg,
    redispatch_incident,
)
from gisapp.dispatch.records import bool_field, id_value
from gisapp.web.context import arg_id, client_label, db_tx, json_object, require_role, settings
from gisapp.web.openapi import ID_PARAM, document, param
from gisapp.web.routing_api import poke_live_coverage

bp = Blueprint("desk", __name__, url_prefix="/api/v1")

# Who works legs: the owning organisation's duty officer and chief, and the dispatcher (admin always).
_LEG_WORKERS = ("dispatcher", "chief", "duty_officer")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.after_request
def _units_changed(resp: Response) -> Response:
    if request.method == "POST" and resp.status_code < 400:  # a unit may be free or taken now
        poke_live_coverage()
    return resp


def _client() -> str:
    tag = request.headers.get("X-Client", "")[:40]
    return (f"{tag} " if tag else "") + client_label()


def _write(fn):
    """Run ``fn(conn)`` in one transaction; retry when PostgreSQL broke a deadlock by aborting it."""
    for attempt in range(3):
        try:
            with db_tx() as conn:
                return fn(conn)
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
            if attempt == 2:
                raise Conflict("the database stayed busy with conflicting changes; retry", "body",
                               key="err.busy") from None


# --- the desk -----------------------------------------------------------------------------------

@bp.get("/desk/legs")
def legs():
    user = require_role(*_LEG_WORKERS)
    org = scope.only_organisation(user, arg_id("organisation_id"))
    if org is None:
        raise ValidationError("a dispatcher names the organisation: organisation_id", "organisation_id",
                              key="err.organisation_required")
    state = request.args.get("state", "open")
    if state not in DESK_STATES:
        raise ValidationError(f"must be one of {', '.join(DESK_STATES)}", "state",
                              key="err.one_of", params={"options": list(DESK_STATES)})
    s = settings()
    raw = request.args.get("limit", "50")
    if not re.fullmatch(r"[0-9]{1,4}", raw) or not 1 <= int(raw) <= s.desk_page_max:
        raise ValidationError(f"an integer from 1 to {s.desk_page_max}", "limit",
                              key="err.range", params={"lo": 1, "hi": s.desk_page_max})
    after = arg_id("after")
    with db_tx() as conn:
        return jsonify(desk_legs(conn, s, user, org, state, int(raw), after))


@bp.get("/dispatch/legs/<lid>/timeline")
def timeline(lid: str):
    user = require_role(*_LEG_WORKERS, "viewer", "leadership")
    leg_id = parse_id(lid)
    with db_tx() as conn:
        scope.check_leg(conn, user, leg_id)  # reading another organisation's leg: 404 (not revealed)
        return jsonify(leg_timeline(conn, settings(), leg_id))


# --- ownership ----------------------------------------------------------------------------------

@bp.post("/dispatch/legs/<lid>/hand_back")
def hand_back(lid: str):
    user = require_role(*_LEG_WORKERS)
    body = json_object()
    return jsonify(_write(lambda conn: hand_back_leg(conn, settings(), parse_id(lid), body.get("reason"), user,
                                                       _client())))


@bp.post("/dispatch/incidents/<iid>/redispatch")
def redispatch(iid: str):
    user = require_role("dispatcher")
    body = json_object()
    return jsonify(_write(lambda conn: redispatch_incident(conn, settings(), parse_id(iid), body.get("role"),
                                                             body.get("organisation_id"), user["username"],
                                                             _client())))


@bp.post("/dispatch/incidents/<iid>/close")
def close(iid: str):
    user = require_role("dispatcher")
    body = json_object()
    return jsonify(_write(lambda conn: close_incident(conn, settings(), parse_id(iid), body.get("outcome"),
                                                        body.get("note"), user["username"], _client())))


@bp.post("/dispatch/legs/<lid>/reassign")
def reassign(lid: str):
    user = require_role(*_LEG_WORKERS)
    body = json_object()
    unit_id = id_value(body.get("unit_id"), "unit_id")
    override = bool_field(body, "override")
    if override and user["role"] not in ("dispatcher", "admin"):
        raise ValidationError("only a dispatcher overrides a leg's unit requirements", "override",
                              key="err.override_dispatcher_only")
    return jsonify(_write(lambda conn: reassign_leg(conn, settings(), parse_id(lid), unit_id, body.get("reason"),
                                                      user, _client(), override)))


# --- OpenAPI ------------------------------------------------------------------------------------

_text = {"type": "string"}
document("/api/v1/desk/legs", "get",
         "The legs of the caller's organisation (duty officer, chief; a dispatcher names organisation_id), "
         "newest first, with clocks, what may be done next and whether the leg may be handed back",
         tag="dispatch", params=[param("organisation_id", {"type": "integer"}),
                                 param("state", {"enum": list(DESK_STATES)}, "open (default), closed or all"),
                                 param("limit", {"type": "integer"}, "default 50"),
                                 param("after", {"type": "integer"}, "continue after this leg id")])
document("/api/v1/dispatch/legs/{id}/timeline", "get",
         "Every event of a leg and its incident, oldest first: who (username, display name), when, which client",
         tag="dispatch", params=[ID_PARAM])
document("/api/v1/dispatch/legs/{id}/hand_back", "post",
         "Hand a dispatched or signed-off leg back to the dispatcher with a reason (wrong owner): the leg ends "
         "handed_back, the incident waits in the queue flagged needs_owner", tag="dispatch", params=[ID_PARAM],
         body={"type": "object", "required": ["reason"], "properties": {"reason": _text}})
document("/api/v1/dispatch/incidents/{id}/redispatch", "post",
         "Re-dispatch a handed-back leg's role to an organisation (dispatcher); the new leg's feedback and "
         "closure clocks run from the role's first dispatch", tag="dispatch", params=[ID_PARAM],
         body={"type": "object", "required": ["role", "organisation_id"], "properties": {
             "role": {"enum": list(LEG_ROLES)}, "organisation_id": {"type": "integer"}}})
document("/api/v1/dispatch/incidents/{id}/close", "post",
         "Close an open incident without dispatch (false alarm, duplicate, advice by phone, ...) with an outcome",
         tag="dispatch", params=[ID_PARAM], body={"type": "object", "required": ["outcome"], "properties": {
             "outcome": _text, "note": _text}})
document("/api/v1/dispatch/legs/{id}/reassign", "post",
         "Give a leg another unit before it has arrived; the old unit is free again (409 when the new one is "
         "taken or misses the leg's requirements without override)", tag="dispatch", params=[ID_PARAM],
         body={"type": "object", "required": ["unit_id"], "properties": {
             "unit_id": {"type": "integer"}, "reason": _text, "override": {"type": "boolean"}}})
