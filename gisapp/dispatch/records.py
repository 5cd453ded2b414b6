"""Incident and leg records: the vocabulary, small parsers, event helpers and reads shared by the dispatch modules.

Every function takes an open connection (inside the caller's transaction) and plain
arguments; none imports Flask. Locks are always taken in the order incident -> leg -> unit,
and live events are emitted last, so concurrent requests neither deadlock nor publish
anything that is rolled back.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from gisapp.core import scope
from gisapp.core.errors import NotFound, ValidationError

from .events import emit
from .rules import Rules, load_rules
from .sla import leg_clocks

ACTIVE_INCIDENT = ("open", "dispatched")
OPEN_LEG = ("dispatched", "signed_off", "en_route", "arrived", "first_feedback")
# What a unit's status becomes when its leg enters a status (None: leave it).
UNIT_STATUS_FOR_LEG = {"en_route": "en_route", "arrived": "on_scene", "closed": "available", "cancelled": "available",
                       "handed_back": "available"}
# The unit statuses a person sets; the others follow the legs (core.catalog.UNIT_STATUSES has them all).
MANUAL_UNIT_STATUSES = ("available", "off_duty", "out_of_service")
MAX_TEXT = {"description": 4000, "address": 300, "idempotency_key": 200}


# --- small parsers ------------------------------------------------------------------------------

def mask_phone(number: str) -> str:
    """Mask a caller's number: keep the first 3 and last 4 digits (138****5678)."""
    digits = re.sub(r"[\s\-+()]", "", number)
    if not re.fullmatch(r"[0-9]{5,20}", digits):
        raise ValidationError("a phone number of 5 to 20 digits", "caller_number", key="err.phone")
    if len(digits) <= 7:
        return digits[:1] + "*" * (len(digits) - 3) + digits[-2:]
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def text_field(body: dict, key: str, required: bool = False) -> str | None:
    val = body.get(key)
    if val is None:
        if required:
            raise ValidationError("is required", key, key="err.required")
        return None
    if not isinstance(val, str):
        raise ValidationError("must be a string", key, key="err.not_string")
    val = val.strip()
    if required and not val:
        raise ValidationError("is required", key, key="err.required")
    limit = MAX_TEXT.get(key, 200)
    if len(val) > limit:
        raise ValidationError(f"at most {limit} characters", key,
                              key="err.too_long", params={"limit": limit})
    return val or None


def bool_field(body: dict, key: str) -> bool:
    val = body.get(key, False)
    if not isinstance(val, bool):
        raise ValidationError("must be true or false", key, key="err.not_bool")
    return val


def id_value(val: Any, field: str) -> int:
    if isinstance(val, bool) or not isinstance(val, int) or val <= 0:
        raise ValidationError("must be a positive integer id", field, key="err.not_id")
    return val


def db_now(conn: psycopg.Connection) -> datetime:
    return conn.execute("SELECT now() AS t").fetchone()["t"]


def queue_event(conn: psycopg.Connection, pending: list | None, type_: str, data: dict,
                incident_id: int | None = None) -> None:
    """Emit a live event now, or keep it in ``pending`` for :func:`flush_events` at the end of the transaction."""
    if pending is None:
        emit(conn, type_, data, incident_id)
    else:
        pending.append((type_, data, incident_id))


def flush_events(conn: psycopg.Connection, pending: list) -> None:
    """Emit the kept events in order (the last statements of the transaction)."""
    for type_, data, incident_id in pending:
        emit(conn, type_, data, incident_id)
    pending.clear()


def log_event(conn: psycopg.Connection, incident_id: int, kind: str, actor: str, client: str | None,
              data: dict[str, Any] | None = None, leg_id: int | None = None) -> None:
    """Append one row to the incident's event log (rows are never changed)."""
    conn.execute(
        "INSERT INTO incident_event (incident_id, leg_id, actor, client, kind, data) VALUES (%s, %s, %s, %s, %s, %s)",
        [incident_id, leg_id, actor, client, kind, json.dumps(data or {}, default=str, ensure_ascii=False)])


# --- reading ------------------------------------------------------------------------------------

INCIDENT_COLS = sql.SQL(
    "i.id, i.code, i.channel, i.type, i.severity, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, i.address, "
    "i.location_source, i.caller_masked, i.description, i.reported_at, i.status, i.station_org_id, "
    "i.traffic_org_id, i.grid_id, i.joint_zone_id, i.station_jurisdiction_id, i.traffic_jurisdiction_id, "
    "i.outside_county, i.duplicate_of, i.duplicate_candidates, i.closed_at, i.created_by, i.created_at, "
    "i.rule_version, i.synthetic, i.outcome, i.outcome_note, i.needs_owner, i.needs_owner_reason")
LEG_COLS = sql.SQL(
    "l.id, l.incident_id, l.organisation_id, o.code AS organisation_code, o.name AS organisation_name, "
    "o.name_en AS organisation_name_en, "
    "o.kind AS organisation_kind, l.unit_id, u.code AS unit_code, u.name AS unit_name, l.role, l.status, "
    "l.capability, l.dispatched_at, l.signed_off_at, l.en_route_at, l.arrived_at, l.first_feedback_at, "
    "l.closed_at, l.cancelled_at, l.fallback_from_org_id, l.rule_version, l.sla_flagged, l.outcome, l.outcome_note, "
    "l.first_feedback_note, l.handed_back_at, l.hand_back_reason, l.first_dispatched_at, l.redispatch_of, "
    "l.unit_kinds, l.min_crew")


def jsonable(row: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def get_incident_row(conn: psycopg.Connection, incident_id: int, lock: bool = False) -> dict:
    q = sql.SQL("SELECT {} FROM incident i WHERE i.id = %s").format(INCIDENT_COLS)
    if lock:
        q = q + sql.SQL(" FOR UPDATE")
    row = conn.execute(q, [incident_id]).fetchone()
    if row is None:
        raise NotFound(f"no incident {incident_id}", "id",
                       key="err.incident.not_found", params={"id": incident_id})
    return row


def legs_of(conn: psycopg.Connection, incident_ids: list[int]) -> list[dict]:
    return conn.execute(sql.SQL(
        "SELECT {} FROM dispatch_leg l JOIN organisation o ON o.id = l.organisation_id "
        "LEFT JOIN unit u ON u.id = l.unit_id WHERE l.incident_id = ANY(%s) ORDER BY l.incident_id, l.id"
    ).format(LEG_COLS), [incident_ids]).fetchall()


def leg_json(leg: dict, settings, now: datetime) -> dict:
    out = jsonable(leg)
    out["sla"] = leg_clocks(leg, settings, now)
    return out


def duplicate_refs(conn: psycopg.Connection, incidents: list[dict]) -> dict[int, dict]:
    """The incidents named as duplicate candidates or as the merge target: id -> {id, code, status}."""
    ids = sorted({i for inc in incidents for i in (inc.get("duplicate_candidates") or [])} |
                 {inc["duplicate_of"] for inc in incidents if inc.get("duplicate_of")})
    if not ids:
        return {}
    return {r["id"]: r for r in conn.execute("SELECT id, code, status FROM incident WHERE id = ANY(%s)", [ids])}


def incident_json(inc: dict, legs: list[dict], settings, now: datetime, rules: Rules | None = None,
                  refs: dict[int, dict] | None = None) -> dict:
    """An incident with its legs and their SLA clocks, as the API and the stream carry it.

    ``refs`` (duplicate_refs) names the duplicate candidates by their code (``duplicates``)."""
    out = jsonable(inc)
    out["duplicate_candidates"] = list(inc.get("duplicate_candidates") or [])
    if refs is not None:
        out["duplicates"] = [dict(refs[i]) for i in out["duplicate_candidates"] if i in refs]
        out["duplicate_of_code"] = refs[inc["duplicate_of"]]["code"] if inc.get("duplicate_of") in refs else None
    if rules is not None and inc["type"] in rules.types:
        t = rules.types[inc["type"]]
        out["type_zh"], out["type_en"], out["category"] = t.zh, t.en, t.category
    out["legs"] = [leg_json(leg, settings, now) for leg in legs]
    out["overdue"] = sorted({c for leg in out["legs"] for c in leg["sla"]["overdue"]})
    return out


def incident_detail(conn: psycopg.Connection, settings, incident_id: int, with_events: bool = True) -> dict:
    """Return one incident with its legs, clocks, duplicate candidates and event log."""
    inc = get_incident_row(conn, incident_id)
    now = db_now(conn)
    out = incident_json(inc, legs_of(conn, [incident_id]), settings, now, load_rules(settings),
                        duplicate_refs(conn, [inc]))
    if with_events:
        out["events"] = [jsonable(r) for r in conn.execute(
            "SELECT id, leg_id, at, actor, client, kind, data FROM incident_event WHERE incident_id = %s ORDER BY id",
            [incident_id])]
    return out


def board(conn: psycopg.Connection, settings, organisation_id: int | None = None,
          orgs: frozenset[int] | None = None) -> dict:
    """The dispatcher's queue: open incidents with their legs and clocks, most urgent first; unit counts.

    ``organisation_id`` keeps one organisation's incidents (a leg of it, or it owns the place);
    ``orgs`` (gisapp.core.scope.visible_organisations) keeps those of the caller's organisations.
    """
    rules = load_rules(settings)
    now = db_now(conn)
    in_scope, scope_params = scope.incident_condition(orgs)
    incs = conn.execute(sql.SQL(
        "SELECT {} FROM incident i WHERE i.status = ANY(%s) "
        "AND (%s::bigint IS NULL OR EXISTS (SELECT 1 FROM dispatch_leg l WHERE l.incident_id = i.id "
        "AND l.organisation_id = %s::bigint) OR i.station_org_id = %s::bigint) AND {} "
        "ORDER BY i.reported_at LIMIT 2000").format(INCIDENT_COLS, in_scope),
        [list(ACTIVE_INCIDENT), organisation_id, organisation_id, organisation_id, *scope_params]).fetchall()
    legs: dict[int, list[dict]] = {}
    for leg in legs_of(conn, [i["id"] for i in incs]):
        legs.setdefault(leg["incident_id"], []).append(leg)
    refs = duplicate_refs(conn, incs)
    items = [incident_json(i, legs.get(i["id"], []), settings, now, rules, refs) for i in incs]

    def urgency(item: dict) -> float:
        rem = [c["remaining_s"] for leg in item["legs"] for c in leg["sla"]["clocks"].values()
               if c["remaining_s"] is not None]
        if item.get("needs_owner"):  # handed back: the dispatcher decides a new owner first
            return -2e12
        return min(rem) if rem else -1e12  # not yet dispatched: first
    items.sort(key=urgency)
    unit_scope, unit_params = scope.column_condition(orgs, "unit", "organisation_id")
    counts = {r["status"]: r["n"] for r in conn.execute(sql.SQL(
        "SELECT status, count(*) AS n FROM unit WHERE (%s::bigint IS NULL OR organisation_id = %s::bigint) "
        "AND {} GROUP BY status").format(unit_scope), [organisation_id, organisation_id, *unit_params])}
    last = conn.execute("SELECT last_id FROM live_event_counter").fetchone()["last_id"]
    return {"now": now.isoformat(), "last_event_id": last, "rules_version": rules.version,
            "incidents": items, "unit_status_counts": counts}


def incident_summary(inc: dict) -> dict:
    """The fields of an incident the stream carries (no caller number, no description)."""
    keys = ("id", "code", "channel", "type", "severity", "lon", "lat", "address", "status", "reported_at",
            "station_org_id", "traffic_org_id", "grid_id", "joint_zone_id", "outside_county", "duplicate_of",
            "duplicate_candidates", "closed_at", "outcome", "outcome_note", "needs_owner", "needs_owner_reason")
    return {k: (inc[k].isoformat() if isinstance(inc.get(k), datetime) else inc.get(k)) for k in keys}
