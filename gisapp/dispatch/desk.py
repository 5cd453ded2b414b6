"""The desk of an organisation and the dispatcher's ownership decisions: a leg's list and timeline,
hand-back and re-dispatch, closing an incident without dispatch, reassigning a leg's unit.

Every function takes an open connection (the caller's one transaction), checks everything
before its first write, logs each write in the incident's event log (actor, client) and emits
its live event last.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from gisapp.core import scope
from gisapp.core.errors import Conflict, ValidationError

from .events import emit
from .fitness import Requirements, check_fit
from .legs import (
    check_unit_for_leg,
    leg_event,
    lock_leg,
    may_act_on_leg,
    settle_incident,
    unit_taken,
)
from .outcomes import incident_outcome, status_params, text_value
from .records import (
    OPEN_LEG,
    UNIT_STATUS_FOR_LEG,
    db_now,
    get_incident_row,
    incident_detail,
    incident_summary,
    jsonable,
    log_event,
)
from .rules import TERMINAL_LEG, load_rules
from .sla import leg_clocks
from .units import unit_event

LEG_ROLES = ("primary", "specialist")
# Before it has arrived a leg's unit may be exchanged for another.
REASSIGN_FROM = ("dispatched", "signed_off", "en_route")


def _leg_out(conn, settings, leg_id: int) -> tuple[dict, dict]:
    out = incident_detail(conn, settings, get_leg_incident(conn, leg_id), with_events=False)
    return out, next(x for x in out["legs"] if x["id"] == leg_id)


def get_leg_incident(conn, leg_id: int) -> int:
    return conn.execute("SELECT incident_id FROM dispatch_leg WHERE id = %s", [leg_id]).fetchone()["incident_id"]


# --- hand-back and re-dispatch ------------------------------------------------------------------

def hand_back_leg(conn: psycopg.Connection, settings, leg_id: int, reason: Any, user: dict,
                  client: str | None) -> dict:
    """Hand a leg back to the dispatcher (wrong owner): the leg ends as ``handed_back`` with the
    reason, its unit is free again, and the incident waits in the dispatcher's queue flagged
    ``needs_owner`` until it is re-dispatched (or closed)."""
    rules = load_rules(settings)
    reason = text_value(reason, "reason", settings.hand_back_reason_max_chars, required=True,
                        required_key="err.reason_required")
    inc, leg = lock_leg(conn, leg_id)
    may_act_on_leg(conn, user, leg)
    if leg["status"] not in rules.hand_back_from:
        raise Conflict(f"leg {leg_id} is {leg['status']}; only a leg that is {' or '.join(rules.hand_back_from)} "
                       "is handed back", "status", key="err.hand_back_status", params=status_params(leg["status"]))
    conn.execute("UPDATE dispatch_leg SET status = 'handed_back', handed_back_at = now(), hand_back_reason = %s "
                 "WHERE id = %s", [reason, leg_id])
    if leg["unit_id"] is not None:
        conn.execute("UPDATE unit SET status = 'available', current_leg_id = NULL, updated_at = now() "
                     "WHERE id = %s AND current_leg_id = %s", [leg["unit_id"], leg_id])
    conn.execute("UPDATE incident SET needs_owner = true, needs_owner_reason = %s WHERE id = %s", [reason, inc["id"]])
    log_event(conn, inc["id"], "handed_back", user["username"], client,
              {"from": leg["status"], "reason": reason, "role": leg["role"], "organisation_id": leg["organisation_id"],
               "unit_id": leg["unit_id"]}, leg_id)
    settle_incident(conn, inc, user["username"], client, leg_id)
    out, new_leg = _leg_out(conn, settings, leg_id)
    data = {"leg": leg_event(new_leg), "from": leg["status"], "to": "handed_back", "reason": reason,
            "incident": incident_summary(out)}
    if leg["unit_id"] is not None:
        data["unit"] = unit_event(conn, leg["unit_id"])
    emit(conn, "leg.handed_back", data, inc["id"])
    return out


def redispatch_incident(conn: psycopg.Connection, settings, incident_id: int, role: Any, organisation_id: Any,
                        actor: str, client: str | None) -> dict:
    """The dispatcher's new ownership decision for a handed-back leg: a new leg of ``role`` for
    ``organisation_id``. Its sign-off clock starts now; its first-feedback and closure clocks
    keep the first dispatch of the role (the caller has been waiting since then)."""
    if role not in LEG_ROLES:
        raise ValidationError("must be primary or specialist", "role", key="err.role_unknown")
    if isinstance(organisation_id, bool) or not isinstance(organisation_id, int) or organisation_id <= 0:
        raise ValidationError("must be a positive integer id", "organisation_id", key="err.organisation_unknown",
                              params={"id": str(organisation_id)[:40]})
    org = conn.execute("SELECT id, name FROM organisation WHERE id = %s", [organisation_id]).fetchone()
    if org is None:
        raise ValidationError(f"no organisation {organisation_id}", "organisation_id", status=422,
                              key="err.organisation_unknown", params={"id": organisation_id})
    rules = load_rules(settings)
    inc = get_incident_row(conn, incident_id, lock=True)
    legs = conn.execute("SELECT * FROM dispatch_leg WHERE incident_id = %s AND role = %s ORDER BY id FOR UPDATE",
                        [incident_id, role]).fetchall()
    last = legs[-1] if legs else None
    if inc["status"] not in ("open", "dispatched") or last is None or last["status"] != "handed_back":
        raise Conflict(f"incident {inc['code']} has no handed-back {role} leg waiting for an owner", "role",
                       key="err.redispatch_nothing", params={"role": role})
    first = last["first_dispatched_at"] or last["dispatched_at"]
    row = conn.execute(
        "INSERT INTO dispatch_leg (incident_id, organisation_id, role, capability, unit_kinds, min_crew, "
        "rule_version, first_dispatched_at, redispatch_of) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        [incident_id, organisation_id, role, last["capability"], last["unit_kinds"], last["min_crew"],
         rules.version, first, last["id"]]).fetchone()
    waiting = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM dispatch_leg l WHERE l.incident_id = %s AND l.status = 'handed_back' "
        "AND NOT EXISTS (SELECT 1 FROM dispatch_leg n WHERE n.redispatch_of = l.id)) AS w", [incident_id]
    ).fetchone()["w"]
    conn.execute("UPDATE incident SET status = 'dispatched', needs_owner = %s, "
                 "needs_owner_reason = CASE WHEN %s THEN needs_owner_reason END WHERE id = %s",
                 [waiting, waiting, incident_id])
    log_event(conn, incident_id, "dispatched", actor, client,
              {"role": role, "organisation_id": organisation_id, "redispatch_of": last["id"],
               "handed_back_by_org_id": last["organisation_id"], "reason": last["hand_back_reason"],
               "first_dispatched_at": first, "rule_version": rules.version}, row["id"])
    out = incident_detail(conn, settings, incident_id, with_events=False)
    new_leg = next(x for x in out["legs"] if x["id"] == row["id"])
    emit(conn, "incident.dispatched", {"incident": incident_summary(out), "legs": [leg_event(new_leg)],
                                       "units": [], "redispatch_of": last["id"]}, incident_id)
    return out


# --- closing without dispatch -------------------------------------------------------------------

def close_incident(conn: psycopg.Connection, settings, incident_id: int, outcome: Any, note: Any, actor: str,
                   client: str | None) -> dict:
    """Close an open incident that has no open leg (false alarm, duplicate, advice by phone, ...)."""
    rules = load_rules(settings)
    note = text_value(note, "note", settings.leg_note_max_chars)
    inc = get_incident_row(conn, incident_id, lock=True)
    chosen = incident_outcome(rules, inc["type"], outcome)
    if inc["status"] != "open":
        raise Conflict(f"incident {inc['code']} is {inc['status']}; only an open incident is closed without dispatch",
                       "status", key="err.incident_not_open", params={"code": inc["code"], **status_params(inc["status"])})
    if conn.execute("SELECT 1 FROM dispatch_leg WHERE incident_id = %s AND status = ANY(%s)",
                    [incident_id, list(OPEN_LEG)]).fetchone():
        raise Conflict(f"incident {inc['code']} still has open legs", "status", key="err.incident_has_open_legs",
                       params={"code": inc["code"]})
    conn.execute("UPDATE incident SET status = 'closed', closed_at = now(), outcome = %s, outcome_note = %s, "
                 "needs_owner = false, needs_owner_reason = NULL WHERE id = %s", [chosen.code, note, incident_id])
    log_event(conn, incident_id, "closed", actor, client,
              {"outcome": chosen.code, "outcome_zh": chosen.zh, "outcome_en": chosen.en, "without_dispatch": True,
               **({"note": note} if note else {})})
    out = incident_detail(conn, settings, incident_id, with_events=False)
    emit(conn, "incident.closed", {"incident": incident_summary(out), "outcome": chosen.code,
                                   "without_dispatch": True}, incident_id)
    return out


# --- reassignment -------------------------------------------------------------------------------

def reassign_leg(conn: psycopg.Connection, settings, leg_id: int, unit_id: int, reason: Any, user: dict,
                 client: str | None, override: bool = False) -> dict:
    """Give a leg another unit before it has arrived: the old unit is free again, the new one takes
    the leg's state (assigned, or en route). Of two requests for one unit, one gets 409."""
    reason = text_value(reason, "reason", settings.leg_note_max_chars)
    inc, leg = lock_leg(conn, leg_id)
    may_act_on_leg(conn, user, leg)
    check_unit_for_leg(conn, user, leg, unit_id)
    if leg["status"] not in REASSIGN_FROM:
        raise Conflict(f"leg {leg_id} is {leg['status']}; a leg is reassigned before it has arrived", "status",
                       key="err.reassign_status", params=status_params(leg["status"]))
    old = leg["unit_id"]
    if old is None:
        raise Conflict(f"leg {leg_id} has no unit yet: assign one", "unit_id", key="err.reassign_no_unit")
    if old == unit_id:
        code = conn.execute("SELECT code FROM unit WHERE id = %s", [unit_id]).fetchone()["code"]
        raise Conflict(f"leg {leg_id} already has unit {code}", "unit_id", key="err.unit_same", params={"unit": code})
    missing = check_fit(conn, unit_id, Requirements.of(leg), override)
    new_status = UNIT_STATUS_FOR_LEG.get(leg["status"], "assigned")
    took = conn.execute("UPDATE unit SET status = %s, current_leg_id = %s, updated_at = now() "
                        "WHERE id = %s AND status = 'available' RETURNING id", [new_status, leg_id, unit_id]).fetchone()
    if took is None:
        raise unit_taken(conn, unit_id)
    conn.execute("UPDATE unit SET status = 'available', current_leg_id = NULL, updated_at = now() "
                 "WHERE id = %s AND current_leg_id = %s", [old, leg_id])
    conn.execute("UPDATE dispatch_leg SET unit_id = %s WHERE id = %s", [unit_id, leg_id])
    data: dict[str, Any] = {"from_unit_id": old, "unit_id": unit_id}
    if reason:
        data["reason"] = reason
    if missing:
        data.update(override=True, unfit=missing)
    log_event(conn, inc["id"], "reassigned", user["username"], client, data, leg_id)
    out, new_leg = _leg_out(conn, settings, leg_id)
    emit(conn, "leg.reassigned", {"leg": leg_event(new_leg), "unit": unit_event(conn, unit_id),
                                  "old_unit": unit_event(conn, old), **({"reason": reason} if reason else {})},
         inc["id"])
    return out


# --- the desk: an organisation's legs, a leg's timeline -----------------------------------------

DESK_STATES = {"open": list(OPEN_LEG), "closed": list(TERMINAL_LEG), "all": None}


def desk_legs(conn: psycopg.Connection, settings, user: dict, organisation_id: int, state: str = "open",
              limit: int = 50, after: int | None = None) -> dict:
    """The legs of one organisation, newest first, with what the desk shows and may do next.

    ``after`` continues a list: the legs that come after that leg id in this order (older ones).
    """
    rules = load_rules(settings)
    if state not in DESK_STATES:
        raise ValidationError(f"must be one of {', '.join(DESK_STATES)}", "state",
                              key="err.one_of", params={"options": list(DESK_STATES)})
    now = db_now(conn)
    rows = conn.execute(sql.SQL(
        "SELECT l.*, o.name AS organisation_name, o.code AS organisation_code, u.code AS unit_code, "
        "u.name AS unit_name, i.code AS incident_code, i.channel, i.type, i.severity, i.address, "
        "ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, i.description, i.caller_masked, i.reported_at, "
        "i.status AS incident_status FROM dispatch_leg l JOIN incident i ON i.id = l.incident_id "
        "JOIN organisation o ON o.id = l.organisation_id LEFT JOIN unit u ON u.id = l.unit_id "
        "WHERE l.organisation_id = %(org)s AND (%(st)s::text[] IS NULL OR l.status = ANY(%(st)s::text[])) "
        "AND (%(after)s::bigint IS NULL OR l.id < %(after)s::bigint) ORDER BY l.id DESC LIMIT %(n)s"),
        {"org": organisation_id, "st": DESK_STATES[state], "after": after, "n": limit + 1}).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    items = []
    for r in rows:
        sla = leg_clocks(r, settings, now)
        acts = _actions(rules, user, r)
        t = rules.types.get(r["type"])
        item = jsonable({k: r[k] for k in (
            "id", "incident_id", "incident_code", "channel", "type", "severity", "address", "lon", "lat",
            "description", "caller_masked", "reported_at", "role", "status", "unit_id", "unit_code", "unit_name",
            "organisation_id", "organisation_code", "organisation_name", "capability", "unit_kinds", "min_crew",
            "dispatched_at", "first_dispatched_at", "signed_off_at", "en_route_at", "arrived_at",
            "first_feedback_at", "first_feedback_note", "closed_at", "cancelled_at", "handed_back_at",
            "hand_back_reason", "outcome", "outcome_note", "redispatch_of", "fallback_from_org_id",
            "incident_status")})
        item.update(type_zh=t.zh if t else None, type_en=t.en if t else None, category=t.category if t else None,
                    due={name: c["due_at"] for name, c in sla["clocks"].items()}, overdue=sla["overdue"], sla=sla,
                    **acts)
        items.append(item)
    return {"now": now.isoformat(), "organisation_id": organisation_id, "state": state, "legs": items,
            "next_after": rows[-1]["id"] if more and rows else None}


def _actions(rules, user: dict, leg: dict) -> dict[str, Any]:
    """What ``user`` may do next with the leg: the statuses it may move to, hand it back."""
    if not scope.may_see(user, leg["organisation_id"]):
        return {"allowed": [], "may_hand_back": False}
    allowed = [s for s in rules.transitions.get(leg["status"], ())
               if not (s in rules.needs_unit and leg["unit_id"] is None)]
    return {"allowed": allowed, "may_hand_back": leg["status"] in rules.hand_back_from}


def leg_timeline(conn: psycopg.Connection, settings, leg_id: int) -> dict:
    """Every event of a leg and of its incident, oldest first: who (username and display name), when,
    from which client, what. A re-dispatched leg's timeline includes the legs it replaced."""
    chain = [r["id"] for r in conn.execute(
        "WITH RECURSIVE c(id, prev) AS (SELECT id, redispatch_of FROM dispatch_leg WHERE id = %s "
        "UNION ALL SELECT l.id, l.redispatch_of FROM dispatch_leg l JOIN c ON l.id = c.prev) SELECT id FROM c",
        [leg_id])]
    incident_id = get_leg_incident(conn, leg_id)
    detail = incident_detail(conn, settings, incident_id, with_events=False)
    leg = next(x for x in detail["legs"] if x["id"] == leg_id)
    events = conn.execute(
        "SELECT e.id, e.at, e.kind, e.actor, coalesce(nullif(u.display_name, ''), e.actor) AS actor_name, "
        "e.client, e.leg_id, e.data FROM incident_event e LEFT JOIN app_user u ON u.username = e.actor "
        "WHERE e.incident_id = %s AND (e.leg_id IS NULL OR e.leg_id = ANY(%s)) ORDER BY e.id",
        [incident_id, chain]).fetchall()
    return {"leg": leg, "incident": incident_summary(detail), "events": [jsonable(e) for e in events]}
