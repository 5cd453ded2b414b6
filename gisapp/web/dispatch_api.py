"""Serve live dispatch: intake, dispatch, leg lifecycle, units and positions, SLA metrics, the SSE stream.

Routes only parse the request and call the plain functions of gisapp.dispatch, gisapp.sla
and gisapp.stream inside one transaction per request.
"""

from __future__ import annotations

import atexit
import os
import re
import sys

import psycopg
from flask import Blueprint, Flask, Response, jsonify, request

from gisapp.core import scope
from gisapp.core.catalog import UNIT_STATUSES
from gisapp.core.errors import Conflict, Forbidden, GisappError, NotFound, Text, ValidationError
from gisapp.core.features import parse_id
from gisapp.dispatch import records
from gisapp.dispatch.caller import reveal_caller
from gisapp.dispatch.events import (
    KINDS,
    StreamBody,
    events_json,
    get_hub,
    scoped_events_json,
    stop_hubs,
    stream_bounds,
)
from gisapp.dispatch.fitness import Requirements
from gisapp.dispatch.gazetteer import resolve_address, reverse_geocode
from gisapp.dispatch.intake import check_intake, create_incident
from gisapp.dispatch.legs import (
    TRANSITION_TARGETS,
    assign_unit,
    dispatch_incident,
    merge_incident,
    plan_incident,
    transition_leg,
)
from gisapp.dispatch.recommend import recommend_units
from gisapp.dispatch.records import (
    MANUAL_UNIT_STATUSES,
    bool_field,
    flush_events,
    get_incident_row,
    id_value,
    incident_detail,
)
from gisapp.dispatch.rules import load_rules
from gisapp.dispatch.sla import parse_period, sla_metrics
from gisapp.dispatch.units import ingest_positions, set_unit_status, unit_board
from gisapp.web.context import (
    arg_id,
    client_label,
    db_tx,
    json_body,
    json_object,
    pool,
    require_role,
    require_user,
    settings,
)
from gisapp.web.openapi import ID_PARAM, document, param
from gisapp.web.routing_api import poke_live_coverage

bp = Blueprint("dispatch", __name__, url_prefix="/api/v1")

_DISPATCHERS = ("dispatcher",)
_READERS = ("dispatcher", "chief", "duty_officer", "viewer", "planner", "leadership")
_LEG_WORKERS = ("dispatcher", "chief", "duty_officer")


class ServiceUnavailable(GisappError):
    status = 503


def init_app(app: Flask) -> None:
    """Register the dispatch API; the page /map/dispatch (gisapp.pages) includes its panel and script."""
    app.register_blueprint(bp)
    ms = app.extensions["gisapp.settings"].thread_switch_interval_ms
    if ms > 0:
        sys.setswitchinterval(ms / 1000.0)
    atexit.register(stop_hubs)


@bp.after_request
def _worker_header(resp: Response) -> Response:
    resp.headers["X-Gisapp-Worker"] = str(os.getpid())
    if request.method == "POST" and resp.status_code < 400:  # units may have changed
        poke_live_coverage()
    return resp


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


def _client() -> str:
    tag = request.headers.get("X-Client", "")[:40]
    return (f"{tag} " if tag else "") + client_label()


def _reader() -> dict:
    return require_role(*_READERS)


# --- catalogue, intake, incidents -----------------------------------------------------------------

@bp.get("/dispatch/catalogue")
def catalogue():
    require_user()
    s = settings()
    out = load_rules(s).to_json()
    out["sla_s"] = {"sign_off": s.sign_off_sla_s, "first_feedback": s.first_feedback_sla_s, "close": s.close_sla_s}
    out["duplicates"] = {"radius_m": s.duplicate_radius_m, "window_s": s.duplicate_window_s}
    return jsonify(out)


@bp.post("/dispatch/incidents")
def intake():
    user = require_role(*_DISPATCHERS)
    body = json_object()
    key = request.headers.get("Idempotency-Key")
    if key is not None and (not key.strip() or len(key) > 200):
        raise ValidationError("1 to 200 characters", "Idempotency-Key",
                              key="err.length", params={"lo": 1, "hi": 200})
    dispatch_now = bool_field(body, "dispatch")
    auto_assign = bool_field(body, "auto_assign")
    confirmed = bool_field(body, "confirm_duplicates")
    override = bool_field(body, "override")
    units = body.get("units")
    if units is not None and not isinstance(units, dict):
        raise ValidationError("must map a leg role to a unit id", "units", key="err.dispatch.units_map")
    intake_body = {k: v for k, v in body.items()
                   if k not in ("dispatch", "auto_assign", "units", "override", "confirm_duplicates")}
    s = settings()
    def work(conn):
        pending: list = []
        inc, created = create_incident(conn, s, intake_body, user["username"], _client(), key, pending,
                                       refuse_duplicates=dispatch_now and not confirmed)
        if created and dispatch_now:
            out = dispatch_incident(conn, s, inc["id"], user["username"], _client(), units, auto_assign, pending,
                                    override)
            for k in ("geocode", "possible_duplicates", "suggested_merge"):
                out[k] = inc.get(k)
            inc = out
        flush_events(conn, pending)
        return inc, created

    inc, created = _write(work)
    resp = jsonify(inc)
    resp.status_code = 201 if created else 200
    resp.headers["Location"] = f"/api/v1/dispatch/incidents/{inc['id']}"
    return resp


@bp.get("/dispatch/incidents/<iid>")
def incident(iid: str):
    user = _reader()
    iid_i = parse_id(iid)
    with db_tx() as conn:
        scope.check_incident(conn, user, iid_i)
        return jsonify(incident_detail(conn, settings(), iid_i))


@bp.get("/dispatch/incidents/<iid>/caller")
def incident_caller(iid: str):
    """Call-back: the full caller number (dispatcher, the owning duty officer), audited."""
    user = require_user()
    iid_i = parse_id(iid)
    with db_tx() as conn:
        resp = jsonify(reveal_caller(conn, settings(), user, iid_i))
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/dispatch/incidents/<iid>/plan")
def incident_plan(iid: str):
    user = _reader()
    s = settings()
    iid_i = parse_id(iid)
    with db_tx() as conn:
        scope.check_incident(conn, user, iid_i)
        inc = get_incident_row(conn, iid_i)
        return jsonify(plan_incident(conn, s, inc, recommend=True))


@bp.post("/dispatch/incidents/<iid>/dispatch")
def incident_dispatch(iid: str):
    user = require_role(*_DISPATCHERS)
    body = json_body() if request.content_length else {}
    if not isinstance(body, dict):
        raise ValidationError("must be a JSON object", "body", key="err.not_object")
    units = body.get("units")
    if units is not None and not isinstance(units, dict):
        raise ValidationError("must map a leg role to a unit id", "units", key="err.dispatch.units_map")
    auto = bool_field(body, "auto_assign")
    override = bool_field(body, "override")
    return jsonify(_write(lambda conn: dispatch_incident(conn, settings(), parse_id(iid), user["username"],
                                                           _client(), units, auto, override=override)))


@bp.post("/dispatch/incidents/<iid>/merge")
def incident_merge(iid: str):
    user = require_role(*_DISPATCHERS)
    body = json_object()
    into = id_value(body.get("into"), "into")
    with db_tx() as conn:
        return jsonify(merge_incident(conn, settings(), parse_id(iid), into, user["username"], _client()))


@bp.get("/dispatch/board")
def board():
    user = _reader()
    org = arg_id("organisation_id")
    if org is not None:
        scope.require_organisation(user, org)
    with db_tx() as conn:
        return jsonify(records.board(conn, settings(), org, scope.visible_organisations(user)))


@bp.get("/dispatch/geocode")
def geocode():
    _reader()
    q = request.args.get("q", "")
    if not q.strip():
        raise ValidationError("is required", "q", key="err.required")
    with db_tx() as conn:
        hit = resolve_address(conn, q[:300])
    return jsonify({"query": q, "result": hit})


def _coordinate(name: str, low: float, high: float) -> float:
    raw = request.args.get(name)
    if raw is None or raw.strip() == "":
        raise ValidationError("is required", name, key="err.required")
    if len(raw) > 40 or not re.fullmatch(r" *-?[0-9]+(\.[0-9]+)? *", raw):
        raise ValidationError(f"must be a number from {low:g} to {high:g}", name,
                              key="err.range", params={"lo": low, "hi": high})
    val = float(raw)
    if not low <= val <= high:
        raise ValidationError(f"must be a number from {low:g} to {high:g}", name,
                              key="err.range", params={"lo": low, "hi": high})
    return val


@bp.get("/dispatch/intake/check")
def intake_check():
    """Before taking a call: is the point outside the county, which active incidents may it duplicate."""
    require_role(*_DISPATCHERS)
    address = request.args.get("address")
    if request.args.get("lon") is None and request.args.get("lat") is None:
        if not address or not address.strip():
            raise ValidationError("give lon and lat, or an address", "lon", key="err.intake.point_or_address")
        lon = lat = None
    else:
        lon, lat = _coordinate("lon", -180, 180), _coordinate("lat", -90, 90)
    with db_tx() as conn:
        return jsonify(check_intake(conn, settings(), lon, lat, (address or "")[:300]))


@bp.get("/dispatch/reverse_geocode")
def reverse_geocode_point():
    """Name a point picked on the map: nearest village (within a limit), nearest named road, town."""
    _reader()
    lon, lat = _coordinate("lon", -180, 180), _coordinate("lat", -90, 90)
    s = settings()
    with db_tx() as conn:
        return jsonify(reverse_geocode(conn, lon, lat, s.reverse_geocode_village_m, s.reverse_geocode_road_m))


# --- legs ---------------------------------------------------------------------------------------

@bp.post("/dispatch/legs/<lid>/assign")
def leg_assign(lid: str):
    user = require_role(*_LEG_WORKERS)
    body = json_object()
    unit_id = id_value(body.get("unit_id"), "unit_id")
    override = bool_field(body, "override")
    if override and user["role"] not in ("dispatcher", "admin"):
        raise ValidationError("only a dispatcher overrides a leg's unit requirements", "override",
                              key="err.override_dispatcher_only")
    return jsonify(_write(lambda conn: assign_unit(conn, settings(), parse_id(lid), unit_id, user, _client(),
                                                     override)))


@bp.post("/dispatch/legs/<lid>/transition")
def leg_transition(lid: str):
    user = require_role(*_LEG_WORKERS, "device", "gateway")
    body = json_object()
    return jsonify(_write(lambda conn: transition_leg(conn, settings(), parse_id(lid), body.get("to"), user,
                                                        _client(), body.get("note"), body.get("outcome"))))


@bp.get("/dispatch/legs/<lid>/recommendations")
def leg_recommendations(lid: str):
    user = _reader()
    s = settings()
    k = request.args.get("k")
    if k is not None and not re.fullmatch(r"[0-9]{1,2}", k) or (k is not None and not 1 <= int(k) <= 50):
        raise ValidationError("an integer from 1 to 50", "k", key="err.range", params={"lo": 1, "hi": 50})
    any_org = request.args.get("any_organisation") in ("1", "true")
    if any_org and not scope.sees_all(user):
        raise Forbidden("your role sees the units of its own organisation only", "any_organisation",
                        key="err.organisation.own_units_only")
    with db_tx() as conn:
        scope.check_leg(conn, user, parse_id(lid))
        leg = conn.execute("SELECT l.*, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat FROM dispatch_leg l "
                           "JOIN incident i ON i.id = l.incident_id WHERE l.id = %s", [parse_id(lid)]).fetchone()
        if leg is None:
            raise NotFound(f"no leg {lid}", "id", key="err.leg.not_found", params={"id": lid})
        orgs = None if any_org else [leg["organisation_id"]]
        out = recommend_units(conn, s, leg["lon"], leg["lat"], k=int(k) if k else None,
                                requirements=Requirements.of(leg), organisation_ids=orgs)
    return jsonify(out)


# --- units and positions ------------------------------------------------------------------------

@bp.get("/dispatch/units")
def units():
    user = _reader()
    status = request.args.get("status")
    if status is not None and status not in UNIT_STATUSES:
        raise ValidationError(f"must be one of {', '.join(UNIT_STATUSES)}", "status",
                              key="err.one_of", params={"options": Text.codes("unit.", UNIT_STATUSES)})
    org = arg_id("organisation_id")
    if org is not None:
        scope.require_organisation(user, org)
    with db_tx() as conn:
        return jsonify(unit_board(conn, settings(), org, status, scope.visible_organisations(user)))


@bp.post("/dispatch/units/<uid>/status")
def unit_status(uid: str):
    user = require_role(*_LEG_WORKERS)
    body = json_object()
    with db_tx() as conn:
        scope.check_unit(conn, user, parse_id(uid))  # 404 for another organisation's unit
        return jsonify(set_unit_status(conn, parse_id(uid), body.get("status"), user["username"], _client()))


@bp.post("/dispatch/positions")
def positions():
    user = require_role("device", "gateway")
    body = json_body()
    return jsonify(_write(lambda conn: ingest_positions(conn, settings(), body, user)))


# --- metrics ------------------------------------------------------------------------------------

@bp.get("/metrics/sla")
def metrics_sla():
    user = _reader()
    org = request.args.get("organisation") or request.args.get("organisation_id")
    if org is not None and (len(org) > 100 or re.search(r"[\x00-\x1f\x7f]", org)):
        raise ValidationError(f"must be an organisation id or code, got {org!r:.40}",
                              "organisation" if request.args.get("organisation") else "organisation_id",
                              key="err.organisation.bad_id")
    if org is not None and re.fullmatch(r"[0-9]{1,18}", org):
        org = int(org)
    start, end = parse_period(request.args)
    with db_tx() as conn:
        return jsonify(sla_metrics(conn, settings(), start, end, org, orgs=scope.visible_organisations(user)))


# --- stream -------------------------------------------------------------------------------------

def _kinds() -> frozenset[str] | None:
    raw = request.args.get("types")
    if not raw:
        return None
    kinds = frozenset(x.strip() for x in raw.split(",") if x.strip())
    bad = kinds - set(KINDS)
    if bad:
        raise ValidationError(f"unknown event kinds {sorted(bad)}; use {', '.join(KINDS)}", "types",
                              key="err.stream.kinds", params={"options": list(KINDS)})
    return kinds


def _last_event_id() -> int | None:
    raw = request.headers.get("Last-Event-ID")
    field = "Last-Event-ID"
    if raw is None or raw == "":
        raw, field = request.args.get("last_event_id"), "last_event_id"
    if raw is None or raw == "":
        return None
    m = re.fullmatch(r" *([0-9]{1,18}) *", raw)  # not str.strip(): it takes control characters too
    if m is None:
        raise ValidationError("must be a non-negative integer event id", field, key="err.not_event_id")
    return int(m.group(1))


@bp.get("/stream")
def stream():
    user = _reader()
    s = settings()
    lei, kinds = _last_event_id(), _kinds()
    if lei is not None:  # a resume reads the table: while the database is away, 503 now, not a broken stream
        with db_tx() as conn:
            conn.execute("SELECT 1")
    try:
        body = StreamBody(get_hub(s.database_url, s), pool(), s, lei, kinds,
                          scope.visible_organisations(user))
    except RuntimeError as e:
        raise ServiceUnavailable(str(e), "stream", key="err.stream.unavailable") from None
    resp = Response(body, mimetype="text/event-stream")
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["X-Accel-Buffering"] = "no"
    return resp


@bp.get("/stream/events")
def stream_events():
    """Polling alternative to the stream: the stored events after an id."""
    user = _reader()
    after = request.args.get("after", "0")
    if not re.fullmatch(r"[0-9]{1,18}", after):
        raise ValidationError("must be a non-negative integer event id", "after", key="err.not_event_id")
    limit = request.args.get("limit", "1000")
    if not re.fullmatch(r"[0-9]{1,5}", limit) or not 1 <= int(limit) <= 10000:
        raise ValidationError("an integer from 1 to 10000", "limit",
                              key="err.range", params={"lo": 1, "hi": 10000})
    with db_tx() as conn:
        oldest, last = stream_bounds(conn)
        orgs = scope.visible_organisations(user)
        events = (events_json(conn, int(after), int(limit), _kinds()) if orgs is None
                  else scoped_events_json(conn, int(after), int(limit), _kinds(), orgs))
    # The events array comes as JSON text from the database: no decoding and re-encoding here.
    body = (f'{{"after": {int(after)}, "last_id": {last}, "complete": {"true" if int(after) >= oldest else "false"}, '
            f'"events": {events}}}')
    return Response(body, mimetype="application/json")


# --- OpenAPI ------------------------------------------------------------------------------------


_obj = {"type": "object"}
_point = {"type": "object", "description": "GeoJSON Point [lon, lat] (WGS84)"}
_intake = {"type": "object", "required": ["channel", "type"], "properties": {
    "channel": {"enum": ["110", "122"]}, "type": {"type": "string", "description": "a catalogue type code"},
    "severity": {"enum": ["none", "minor", "injury", "fatal"]}, "location": _point,
    "lon": {"type": "number"}, "lat": {"type": "number"},
    "address": {"type": "string", "description": "resolved through the village and road gazetteer"},
    "caller_number": {"type": "string", "description": "shown masked (caller_masked); the full number is kept "
                      "encrypted for call-back (GET dispatch/incidents/{id}/caller)"},
    "caller_masked": {"type": "string"}, "description": {"type": "string"},
    "reported_at": {"type": "string", "format": "date-time"},
    "allow_outside": {"type": "boolean", "description": "take a location outside the county (marked)"},
    "idempotency_key": {"type": "string", "description": "or the Idempotency-Key header"},
    "dispatch": {"type": "boolean", "description": "dispatch the legs of the rules at once (409 with "
                 "`duplicates` when active incidents are near in place and time, unless confirm_duplicates)"},
    "confirm_duplicates": {"type": "boolean", "description": "dispatch at once despite possible duplicates"},
    "auto_assign": {"type": "boolean", "description": "assign each leg its best recommended unit"},
    "units": {"type": "object", "description": "leg role -> unit id to assign"},
    "override": {"type": "boolean", "description": "assign the given units even when they miss a leg's "
                                                   "capability, kinds or crew (logged)"}}}
_period = [param("from", {"type": "string", "format": "date-time"}, "default: 30 days before 'to'"),
           param("to", {"type": "string", "format": "date-time"}, "default: now"),
           param("organisation", {"type": "string"}, "organisation id or code")]

document("/api/v1/dispatch/catalogue", "get", "Incident types, leg lifecycle, dispatch rules and SLA limits",
         tag="dispatch")
document("/api/v1/dispatch/incidents", "post",
         "Take an incident (110 or 122): location or address, owners at reported_at, duplicate flags; "
         "201 created, 200 for an idempotent retry", tag="dispatch", body=_intake,
         params=[{"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"}}])
document("/api/v1/dispatch/incidents/{id}", "get", "One incident with legs, SLA clocks and its event log",
         tag="dispatch", params=[ID_PARAM])
document("/api/v1/dispatch/incidents/{id}/caller", "get",
         "Call-back: the caller's full number, decrypted (a dispatcher, or a duty officer of the incident's "
         "organisations; others 403); every read is in the audit log as view_personal; 503 without the caller key",
         tag="dispatch", params=[ID_PARAM])
document("/api/v1/dispatch/incidents/{id}/plan", "get",
         "The legs the dispatch rules give, with recommended units (ETA, route) and joint-zone fallback",
         tag="dispatch", params=[ID_PARAM])
document("/api/v1/dispatch/incidents/{id}/dispatch", "post",
         "Dispatch an open incident: one leg per organisation of the matching rule (一警双派)", tag="dispatch",
         params=[ID_PARAM], body={"type": "object", "properties": {"units": {"type": "object"},
                                                               "auto_assign": {"type": "boolean"},
                                                               "override": {"type": "boolean"}}})
document("/api/v1/dispatch/incidents/{id}/merge", "post", "Merge a duplicate into another incident",
         tag="dispatch", params=[ID_PARAM], body={"type": "object", "required": ["into"],
                                             "properties": {"into": {"type": "integer"}}})
document("/api/v1/dispatch/board", "get", "Open incidents with legs and SLA clocks, most urgent first",
         tag="dispatch", params=[param("organisation_id", {"type": "integer"})])
document("/api/v1/dispatch/geocode", "get", "Resolve address text through the gazetteer", tag="dispatch",
         params=[param("q", {"type": "string"})])
document("/api/v1/dispatch/intake/check", "get",
         "Before taking a call: outside_county and the possible duplicates (by code) of a point or an address; "
         "nothing is written", tag="dispatch",
         params=[param("lon", {"type": "number"}), param("lat", {"type": "number"}), param("address", {"type": "string"})])
document("/api/v1/dispatch/reverse_geocode", "get",
         "Name a point from the gazetteer: nearest village (reverse_geocode_village_m), nearest named road "
         "(reverse_geocode_road_m), town; label for the address field", tag="dispatch",
         params=[param("lon", {"type": "number"}), param("lat", {"type": "number"})])
document("/api/v1/dispatch/legs/{id}/assign", "post",
         "Assign a unit to a leg (atomic; 409 when taken, or when it misses the leg's capability, kinds or crew "
         "unless a dispatcher sends override: true, which is logged)",
         tag="dispatch", params=[ID_PARAM], body={"type": "object", "required": ["unit_id"],
                                             "properties": {"unit_id": {"type": "integer"},
                                                            "override": {"type": "boolean"}}})
document("/api/v1/dispatch/legs/{id}/transition", "post",
         "Move a leg along its lifecycle (409 when out of order); first_feedback needs a note, closed an outcome "
         "of the catalogue's list", tag="dispatch", params=[ID_PARAM],
         body={"type": "object", "required": ["to"], "properties": {
             "to": {"enum": list(TRANSITION_TARGETS)}, "note": {"type": "string"},
             "outcome": {"type": "string", "description": "a code of the catalogue's outcomes (closing)"}}})
document("/api/v1/dispatch/legs/{id}/recommendations", "get", "Nearest available units for a leg",
         tag="dispatch", params=[ID_PARAM, param("k", {"type": "integer"}), param("any_organisation", {"type": "boolean"})])
document("/api/v1/dispatch/units", "get", "Unit status board", tag="dispatch",
         params=[param("organisation_id", {"type": "integer"}), param("status", {"type": "string"})])
document("/api/v1/dispatch/units/{id}/status", "post", "Set a unit available, off duty or out of service",
         tag="dispatch", params=[ID_PARAM], body={"type": "object", "required": ["status"], "properties": {
             "status": {"enum": list(MANUAL_UNIT_STATUSES)}}})
document("/api/v1/dispatch/positions", "post",
         "Position reports of unit devices (bearer token of a device user; batches; duplicates and late "
         "reports resolved by their timestamps)", tag="dispatch",
         body={"type": "object", "required": ["positions"], "properties": {"positions": {
             "type": "array", "items": {"type": "object", "required": ["lon", "lat", "at"], "properties": {
                 "unit_id": {"type": "integer"}, "lon": {"type": "number"}, "lat": {"type": "number"},
                 "at": {"type": "string", "format": "date-time"}, "speed_kmh": {"type": "number"},
                 "heading_deg": {"type": "number"}}}}}})
document("/api/v1/metrics/sla", "get",
         "Sign-off, first-feedback and closure rates and mean arrival time for a period and organisation",
         tag="dispatch", params=_period)
document("/api/v1/stream", "get",
         "Server-sent events of incident, leg, unit and SLA changes; resume with the Last-Event-ID header",
         tag="dispatch", params=[param("types", {"type": "string"}, "comma-separated kinds: " + ", ".join(KINDS)),
                                 param("last_event_id", {"type": "integer"}, "resume after this id")],
         response={"type": "string", "description": "text/event-stream"})
document("/api/v1/stream/events", "get", "The stored live events after an id (polling)", tag="dispatch",
         params=[param("after", {"type": "integer"}), param("limit", {"type": "integer"}), param("types", {"type": "string"})])
