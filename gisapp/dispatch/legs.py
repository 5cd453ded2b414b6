"""Legs: plan an incident's legs from the rules, dispatch them, assign units and move legs through their lifecycle."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from gisapp.core import devices, scope
from gisapp.core.catalog import ORGANISATION_ROLES
from gisapp.core.errors import Conflict, Forbidden, NotFound, Text, ValidationError

from .events import emit
from .fitness import Requirements, check_fit
from .outcomes import leg_outcome, status_params, text_value
from .participation import takes_part_at
from .recommend import recommend_units
from .records import (
    ACTIVE_INCIDENT,
    OPEN_LEG,
    UNIT_STATUS_FOR_LEG,
    get_incident_row,
    id_value,
    incident_detail,
    incident_summary,
    log_event,
    queue_event,
)
from .rules import LEG_STATUSES, STATUS_COLUMN, TERMINAL_LEG, LegSpec, load_rules
from .units import unit_event

# The statuses a leg is moved to through POST .../transition (a hand-back has its own endpoint).
TRANSITION_TARGETS = tuple(s for s in LEG_STATUSES if s not in ("dispatched", "handed_back"))

# --- plan and dispatch --------------------------------------------------------------------------

def _org(conn, org_id: int | None) -> dict | None:
    if org_id is None:
        return None
    return conn.execute("SELECT id, code, name, name_en, kind, takes_part_in_traffic, merged FROM organisation "
                        "WHERE id = %s",
                        [org_id]).fetchone()


def _target_org(conn, inc: dict, target: str) -> int | None:
    if target == "station":
        return inc["station_org_id"]
    if target == "squadron":
        return inc["traffic_org_id"]
    row = conn.execute("SELECT id FROM organisation WHERE kind = %s ORDER BY id LIMIT 1", [target]).fetchone()
    return row["id"] if row else None


def _has_available(conn, org_id: int, req: Requirements) -> bool:
    return conn.execute(
        "SELECT EXISTS (SELECT 1 FROM unit WHERE organisation_id = %(org)s AND status = 'available' "
        "AND (%(cap)s::text IS NULL OR %(cap)s::text = ANY(capabilities)) "
        "AND (%(kinds)s::text[] IS NULL OR kind = ANY(%(kinds)s::text[])) "
        "AND (%(crew)s::int IS NULL OR crew >= %(crew)s::int)) AS x",
        {"org": org_id, "cap": req.capability, "kinds": list(req.unit_kinds) if req.unit_kinds else None,
         "crew": req.min_crew}).fetchone()["x"]


def _zone_members(conn, inc: dict, owner_id: int) -> list[int]:
    """Members of the incident's joint zone (else the owner's zones) that may stand in for the owner."""
    zone_ids = [inc["joint_zone_id"]] if inc.get("joint_zone_id") else [r["joint_zone_id"] for r in conn.execute(
        "SELECT m.joint_zone_id FROM joint_zone_member m JOIN joint_zone z ON z.id = m.joint_zone_id "
        "WHERE m.organisation_id = %s AND z.valid_from <= %s AND (z.valid_to IS NULL OR z.valid_to > %s)",
        [owner_id, inc["reported_at"], inc["reported_at"]])]
    if not zone_ids:
        return []
    # Same kind as the owner: a station falls back to a neighbouring station; a squadron to a
    # squadron or a station that takes part in traffic management.
    return [r["organisation_id"] for r in conn.execute(
        "SELECT DISTINCT m.organisation_id FROM joint_zone_member m JOIN organisation o ON o.id = m.organisation_id "
        "JOIN organisation own ON own.id = %(owner)s "
        "WHERE m.joint_zone_id = ANY(%(zones)s) AND m.organisation_id <> own.id AND (o.kind = own.kind "
        "OR (own.kind = 'squadron' AND o.kind = 'station' AND EXISTS (SELECT 1 FROM organisation_participation p "
        "WHERE p.organisation_id = o.id AND p.takes_part_in_traffic AND p.valid_from <= %(at)s "
        "AND (p.valid_to IS NULL OR p.valid_to > %(at)s)))) ORDER BY 1",
        {"zones": zone_ids, "owner": owner_id, "at": inc["reported_at"]})]


def road_class_at(conn: psycopg.Connection, settings, lon: float | None, lat: float | None) -> str | None:
    """The class of the road segment nearest to a place, within ``dispatch_road_snap_m`` (else None)."""
    if lon is None or lat is None:
        return None
    r = conn.execute(
        "WITH p AS (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) AS g) "
        "SELECT e.road_class, ST_Distance(e.geom::geography, p.g::geography) AS d FROM road_edge e, p "
        "ORDER BY e.geom <-> p.g LIMIT 1", {"lon": lon, "lat": lat}).fetchone()
    return r["road_class"] if r and r["d"] <= settings.dispatch_road_snap_m else None


def plan_incident(conn: psycopg.Connection, settings, inc: dict, recommend: bool = True) -> dict[str, Any]:
    """Apply the dispatch rules to an incident: the legs, their organisations and recommended units."""
    rules = load_rules(settings)
    itype = rules.types.get(inc["type"])
    if itype is None:
        raise Conflict(f"type {inc['type']!r} is not in the catalogue version {rules.version}", "type",
                       key="err.dispatch.type_unknown", params={"type": Text.code("itype.", inc["type"]),
                                                                "version": rules.version})
    station = _org(conn, inc["station_org_id"])
    # the station's participation in force when the incident was reported (issue 15)
    traffic = takes_part_at(conn, station["id"], inc["reported_at"]) if station else None
    road = road_class_at(conn, settings, inc.get("lon"), inc.get("lat")) if any(
        r.road_classes for r in rules.rules) else None
    rule = rules.match(itype, inc["severity"], inc["channel"], traffic, road)
    legs = []
    for spec in rule.legs:
        legs.append(_plan_leg(conn, settings, inc, spec, recommend))
    return {"rule": rule.name, "rule_zh": rule.zh, "rule_en": rule.en, "rule_version": rules.version, "legs": legs}


def _plan_leg(conn, settings, inc: dict, spec: LegSpec, recommend: bool) -> dict[str, Any]:
    owner_id = _target_org(conn, inc, spec.target)
    target = spec.target
    if owner_id is None and spec.otherwise:
        owner_id, target = _target_org(conn, inc, spec.otherwise), spec.otherwise
    req = Requirements(spec.capability, spec.unit_kinds, spec.min_crew)
    leg: dict[str, Any] = {"role": spec.role, "target": target, "capability": spec.capability,
                           "unit_kinds": list(spec.unit_kinds) if spec.unit_kinds else None,
                           "min_crew": spec.min_crew,
                           "organisation_id": owner_id, "fallback_from_org_id": None, "reason": None,
                           "reason_code": None}
    if owner_id is None:
        leg["reason"] = f"no {spec.target} owns this place" + (f" and no {spec.otherwise}" if spec.otherwise else "")
        leg["reason_code"] = "no_owner"  # the text a person reads: i18n dp.reason.<code>
        leg["recommendation"] = None
        return leg
    if spec.fallback == "joint_zone" and not _has_available(conn, owner_id, req):
        members = _zone_members(conn, inc, owner_id)
        rec = recommend_units(conn, settings, inc["lon"], inc["lat"], k=settings.recommend_k,
                              requirements=req, organisation_ids=members) if members else None
        if rec and rec["units"]:
            leg["fallback_from_org_id"] = owner_id
            leg["organisation_id"] = owner_id = rec["units"][0]["organisation_id"]
            leg["reason"] = "the owner has no available unit: neighbouring member of the joint war zone"
            leg["reason_code"] = "zone_fallback"
            if recommend:
                leg["recommendation"] = rec
                leg["recommendation"]["units"] = [u for u in rec["units"] if u["organisation_id"] == owner_id]
        else:
            leg["reason"] = "no available unit in the owner or its joint war zone"
            leg["reason_code"] = "no_unit_in_zone"
    if recommend and "recommendation" not in leg:
        leg["recommendation"] = recommend_units(conn, settings, inc["lon"], inc["lat"], requirements=req,
                                                organisation_ids=[owner_id])
    org = _org(conn, owner_id)
    leg["organisation_code"], leg["organisation_name"], leg["organisation_kind"] = org["code"], org["name"], org["kind"]
    leg["organisation_name_en"] = org["name_en"]
    return leg


def dispatch_incident(conn: psycopg.Connection, settings, incident_id: int, actor: str, client: str | None,
                      units: dict[str, int] | None = None, auto_assign: bool = False,
                      pending: list | None = None, override: bool = False) -> dict:
    """Create the legs the rules give for an incident (one per organisation, at the same moment).

    ``units`` maps a leg role to a unit id to assign at once; ``auto_assign`` assigns each leg
    the best recommended unit still available (the recommendations honour the leg's unit
    requirements; a unit of ``units`` that misses them is refused unless ``override``). Raises
    Conflict when the incident already has open legs or is not open.
    """
    inc = get_incident_row(conn, incident_id, lock=True)
    if inc["status"] != "open":
        raise Conflict(f"incident {inc['code']} is {inc['status']}; only an open incident is dispatched", "status",
                       key="err.incident.not_open", params={"code": inc["code"],
                                                            "status": Text.code("dp.status.", inc["status"])})
    if conn.execute("SELECT 1 FROM dispatch_leg WHERE incident_id = %s AND status <> 'cancelled'",
                    [incident_id]).fetchone():
        raise Conflict(f"incident {inc['code']} already has legs", "status",
                       key="err.incident.has_legs", params={"code": inc["code"]})
    units = units or {}
    plan = plan_incident(conn, settings, inc, recommend=auto_assign)
    roles = {leg["role"] for leg in plan["legs"]}
    for role in units:
        if role not in roles:
            raise ValidationError(f"the rule {plan['rule']!r} has no {role!r} leg; legs: {', '.join(sorted(roles))}",
                                  "units", key="err.dispatch.no_such_leg",
                                  params={"role": Text.code("dp.role.", role),
                                          "options": Text.codes("dp.role.", sorted(roles))})
    missing = [leg for leg in plan["legs"] if leg["organisation_id"] is None]
    if missing:
        first = missing[0]
        raise Conflict(f"cannot dispatch the {first['role']} leg: {first['reason']}", "organisation",
                       key="err.dispatch.leg_impossible",
                       params={"role": Text.code("dp.role.", first["role"]),
                               "why": Text(f"dp.reason.{first['reason_code']}", first["reason"])})
    leg_ids = []
    for leg in plan["legs"]:
        row = conn.execute(
            "INSERT INTO dispatch_leg (incident_id, organisation_id, role, capability, unit_kinds, min_crew, "
            "fallback_from_org_id, rule_version) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            [incident_id, leg["organisation_id"], leg["role"], leg["capability"], leg["unit_kinds"], leg["min_crew"],
             leg["fallback_from_org_id"], plan["rule_version"]]).fetchone()
        leg_ids.append(row["id"])
        log_event(conn, incident_id, "dispatched", actor, client, {
            "role": leg["role"], "organisation_id": leg["organisation_id"], "rule": plan["rule"],
            "rule_version": plan["rule_version"], "fallback_from_org_id": leg["fallback_from_org_id"]}, row["id"])
        unit_id = units.get(leg["role"])
        if unit_id is not None:
            uid = id_value(unit_id, f"units.{leg['role']}")
            missing = check_fit(conn, uid, Requirements.of(leg), override)
            _assign(conn, row["id"], incident_id, uid, actor, client, missing)
        elif auto_assign and leg.get("recommendation"):
            for cand in leg["recommendation"]["units"]:
                if try_assign(conn, row["id"], cand["unit_id"]):
                    log_event(conn, incident_id, "assigned", actor, client,
                              {"unit_id": cand["unit_id"], "eta_s": cand["eta_s"], "auto": True}, row["id"])
                    break
    conn.execute("UPDATE incident SET status = 'dispatched', rule_version = %s WHERE id = %s",
                 [plan["rule_version"], incident_id])
    out = incident_detail(conn, settings, incident_id, with_events=False)
    out["rule"] = plan["rule"]
    data = {"incident": incident_summary(out), "legs": [leg_event(x) for x in out["legs"]],
            "units": [unit_event(conn, x["unit_id"]) for x in out["legs"] if x["unit_id"]]}
    queue_event(conn, pending, "incident.dispatched", data, incident_id)
    return out


def leg_event(leg: dict) -> dict:
    """A leg as live events carry it."""
    keys = ("id", "incident_id", "organisation_id", "organisation_code", "organisation_name", "unit_id", "unit_code",
            "role", "status", "dispatched_at", "signed_off_at", "en_route_at", "arrived_at", "first_feedback_at",
            "closed_at", "fallback_from_org_id", "outcome", "outcome_note", "handed_back_at", "hand_back_reason",
            "first_dispatched_at", "redispatch_of")
    out = {k: leg.get(k) for k in keys}
    if "sla" in leg:
        out["due"] = {name: c["due_at"] for name, c in leg["sla"]["clocks"].items()}
        out["overdue"] = leg["sla"]["overdue"]
    return out


def try_assign(conn, leg_id: int, unit_id: int) -> bool:
    """Take a unit for a leg if it is still available (a conditional UPDATE: the row lock decides races)."""
    row = conn.execute(
        "UPDATE unit SET status = 'assigned', current_leg_id = %s, updated_at = now() "
        "WHERE id = %s AND status = 'available' RETURNING id", [leg_id, unit_id]).fetchone()
    if row is None:
        return False
    conn.execute("UPDATE dispatch_leg SET unit_id = %s WHERE id = %s", [unit_id, leg_id])
    return True


def unit_taken(conn, unit_id: int) -> Exception:
    """The error for a unit that could not be taken (404 unknown, else 409 naming its status)."""
    u = conn.execute("SELECT code, status, current_leg_id FROM unit WHERE id = %s", [unit_id]).fetchone()
    if u is None:
        return NotFound(f"no unit {unit_id}", "unit_id", key="err.unit.not_found", params={"id": unit_id})
    taken = f" (on leg {u['current_leg_id']})" if u["current_leg_id"] else ""
    return Conflict(f"unit {u['code']} is {u['status']}{taken}, not available", "unit_id", key="err.unit_taken",
                    params={"unit": u["code"], **status_params(u["status"])})


def _assign(conn, leg_id: int, incident_id: int, unit_id: int, actor: str, client: str | None,
            unfit: list | None = None) -> None:
    if not try_assign(conn, leg_id, unit_id):
        raise unit_taken(conn, unit_id)
    data: dict[str, Any] = {"unit_id": unit_id}
    if unfit:  # the dispatcher overrode the leg's unit requirements
        data.update(override=True, unfit=unfit)
    log_event(conn, incident_id, "assigned", actor, client, data, leg_id)


def lock_leg(conn, leg_id: int) -> tuple[dict, dict]:
    """Lock the leg's incident, then the leg (the global lock order)."""
    row = conn.execute("SELECT incident_id FROM dispatch_leg WHERE id = %s", [leg_id]).fetchone()
    if row is None:
        raise NotFound(f"no leg {leg_id}", "id", key="err.leg.not_found", params={"id": leg_id})
    inc = get_incident_row(conn, row["incident_id"], lock=True)
    leg = conn.execute("SELECT * FROM dispatch_leg WHERE id = %s FOR UPDATE", [leg_id]).fetchone()
    return inc, leg


def may_act_on_leg(conn, user: dict, leg: dict) -> None:
    """Dispatchers act on every leg; a chief or duty officer on their organisation's legs (another
    organisation's leg: 403); a device or gateway on the legs of its own units."""
    role = user["role"]
    if role in ("admin", "dispatcher"):
        return
    if role in devices.DEVICE_ROLES:
        if leg["unit_id"] is not None and leg["unit_id"] in devices.units_of(conn, user):
            return
        raise Forbidden(f"this {role} acts for its own units only", "unit_id", key="err.leg_other_organisation")
    if role in ORGANISATION_ROLES:
        if scope.may_see(user, leg["organisation_id"]):
            return
        raise Forbidden(f"leg {leg['id']} belongs to another organisation", "id", key="err.leg_other_organisation")
    raise Forbidden(f"role {role!r} may not act on this leg", "role", key="err.leg_role_forbidden")


def check_unit_for_leg(conn, user: dict, leg: dict, unit_id: int) -> None:
    """Only a dispatcher (or admin) assigns a unit of another organisation than the leg's (the
    organisation the rules chose, the joint-zone fallback member included)."""
    if user["role"] in ("admin", "dispatcher"):
        return
    row = conn.execute("SELECT organisation_id FROM unit WHERE id = %s", [unit_id]).fetchone()
    if row is None or row["organisation_id"] != leg["organisation_id"]:
        # the same answer for a unit of another organisation and for no unit: nothing is revealed
        raise Forbidden(f"unit {unit_id} is not a unit of the leg's organisation", "unit_id",
                        key="err.unit_other_organisation", params={"unit": unit_id})


def assign_unit(conn: psycopg.Connection, settings, leg_id: int, unit_id: int, user: dict, client: str | None,
                override: bool = False) -> dict:
    """Assign a unit to a leg atomically: of two concurrent requests for one unit, one gets 409.

    A unit that misses the leg's requirements (capability, kinds, crew) is refused with 409
    unless ``override`` (a dispatcher's decision, logged with what the unit misses)."""
    inc, leg = lock_leg(conn, leg_id)
    may_act_on_leg(conn, user, leg)
    check_unit_for_leg(conn, user, leg, unit_id)
    if leg["status"] not in ("dispatched", "signed_off"):
        raise Conflict(f"leg {leg_id} is {leg['status']}; units are assigned before it is en route", "status",
                       key="err.leg_status", params=status_params(leg["status"]))
    if leg["unit_id"] is not None:
        if leg["unit_id"] == unit_id:
            return incident_detail(conn, settings, inc["id"], with_events=False)
        raise Conflict(f"leg {leg_id} already has unit {leg['unit_id']}; reassign it instead", "unit_id",
                       key="err.leg_has_unit")
    missing = check_fit(conn, unit_id, Requirements.of(leg), override)
    _assign(conn, leg_id, inc["id"], unit_id, user["username"], client, missing)
    out = incident_detail(conn, settings, inc["id"], with_events=False)
    new_leg = next(x for x in out["legs"] if x["id"] == leg_id)
    emit(conn, "leg.assigned", {"leg": leg_event(new_leg), "unit": unit_event(conn, unit_id)}, inc["id"])
    return out


def transition_leg(conn: psycopg.Connection, settings, leg_id: int, to: Any, user: dict, client: str | None,
                   note: Any = None, outcome: Any = None) -> dict:
    """Move a leg to its next status; 409 when the lifecycle does not allow it. Closes the incident with its last leg.

    First feedback needs a ``note``; closing needs an ``outcome`` of the rules' list allowed for
    the incident's category and takes a ``note``. Both are stored on the leg and logged.
    """
    rules = load_rules(settings)
    if not isinstance(to, str) or to not in LEG_STATUSES or to in ("dispatched", "handed_back"):
        raise ValidationError(f"must be one of {', '.join(TRANSITION_TARGETS)}", "to", key="err.leg.bad_status",
                              params={"options": Text.codes("dp.leg.", TRANSITION_TARGETS)})
    limit = settings.leg_note_max_chars
    note = text_value(note, "note", limit, required=to == "first_feedback", required_key="err.note_required")
    if to != "closed" and outcome is not None:
        raise ValidationError("an outcome is given only when a leg is closed", "outcome",
                              key="err.outcome_only_when_closing")
    inc, leg = lock_leg(conn, leg_id)
    may_act_on_leg(conn, user, leg)
    allowed = rules.transitions.get(leg["status"], ())
    if to not in allowed:
        raise Conflict(f"leg {leg_id} is {leg['status']}; it may go to {', '.join(allowed) or 'nothing'}, not {to}",
                       "to", current=leg["status"], allowed=list(allowed), key="err.transition_not_allowed",
                       params={**status_params(leg["status"]), **status_params(to, "to")})
    if to in rules.needs_unit and leg["unit_id"] is None:
        raise Conflict(f"assign a unit to leg {leg_id} before it is {to}", "unit_id", key="err.needs_unit",
                       params=status_params(to, "to"))
    chosen = leg_outcome(rules, inc["type"], outcome) if to == "closed" else None
    col = STATUS_COLUMN[to]
    extra = sql.SQL("")
    params: list[Any] = [to]
    if chosen is not None:
        extra = sql.SQL(", outcome = %s, outcome_note = %s")
        params += [chosen.code, note]
    elif to == "first_feedback":
        extra = sql.SQL(", first_feedback_note = %s")
        params.append(note)
    conn.execute(sql.SQL("UPDATE dispatch_leg SET status = %s, {} = now(){} WHERE id = %s").format(
        sql.Identifier(col), extra), [*params, leg_id])
    data: dict[str, Any] = {"from": leg["status"], "to": to}
    if note:
        data["note"] = note
    if chosen is not None:
        data.update(outcome=chosen.code, outcome_zh=chosen.zh, outcome_en=chosen.en)
    log_event(conn, inc["id"], "transition", user["username"], client, data, leg_id)
    unit_status = UNIT_STATUS_FOR_LEG.get(to)
    if leg["unit_id"] is not None and unit_status:
        release = unit_status == "available"
        conn.execute(
            "UPDATE unit SET status = %s, current_leg_id = CASE WHEN %s THEN NULL ELSE current_leg_id END, "
            "updated_at = now() WHERE id = %s AND current_leg_id = %s",
            [unit_status, release, leg["unit_id"], leg_id])
    inc_type = "leg.updated"
    if to in ("closed", "cancelled"):
        inc_type = settle_incident(conn, inc, user["username"], client, leg_id) or inc_type
    out = incident_detail(conn, settings, inc["id"], with_events=False)
    new_leg = next(x for x in out["legs"] if x["id"] == leg_id)
    data = {"leg": leg_event(new_leg), "from": leg["status"], "to": to, "incident": incident_summary(out)}
    if leg["unit_id"] is not None:
        data["unit"] = unit_event(conn, leg["unit_id"])
    emit(conn, inc_type, data, inc["id"])
    return out


def settle_incident(conn: psycopg.Connection, inc: dict, actor: str, client: str | None,
                    by_leg: int | None) -> str | None:
    """After a leg ended: close the incident when every leg has ended and one closed (its outcome:
    the primary leg's), reopen it when none is left open and none closed or it waits for a new
    owner. Returns the live event type, or None when the incident stays as it is."""
    rows = conn.execute("SELECT role, status, outcome, outcome_note, closed_at FROM dispatch_leg "
                        "WHERE incident_id = %s ORDER BY id", [inc["id"]]).fetchall()
    statuses = {r["status"] for r in rows}
    if not statuses <= set(TERMINAL_LEG):
        return None
    needs_owner = conn.execute("SELECT needs_owner FROM incident WHERE id = %s", [inc["id"]]).fetchone()["needs_owner"]
    if "closed" in statuses and not needs_owner:
        closed = [r for r in rows if r["status"] == "closed"]
        main = next((r for r in closed if r["role"] == "primary"), closed[-1])
        conn.execute("UPDATE incident SET status = 'closed', closed_at = now(), outcome = %s, outcome_note = %s "
                     "WHERE id = %s", [main["outcome"], main["outcome_note"], inc["id"]])
        log_event(conn, inc["id"], "closed", actor, client, {"by_leg": by_leg, "outcome": main["outcome"]})
        return "incident.closed"
    if inc["status"] != "open":
        conn.execute("UPDATE incident SET status = 'open' WHERE id = %s", [inc["id"]])
        reason = "a leg was handed back" if needs_owner else "every leg cancelled"
        log_event(conn, inc["id"], "reopened", actor, client, {"reason": reason})
        return "incident.reopened"
    return None


def merge_incident(conn: psycopg.Connection, settings, incident_id: int, into_id: int, actor: str,
                   client: str | None) -> dict:
    """Merge a duplicate into another incident: it is marked merged and its open legs cancelled."""
    if incident_id == into_id:
        raise ValidationError("an incident cannot be merged into itself", "into", key="err.merge.self")
    first, second = sorted((incident_id, into_id))
    rows = {r["id"]: r for r in (get_incident_row(conn, first, lock=True), get_incident_row(conn, second, lock=True))}
    inc, into = rows[incident_id], rows[into_id]
    if inc["status"] not in ACTIVE_INCIDENT:
        raise Conflict(f"incident {inc['code']} is {inc['status']}", "status",
                       key="err.merge.status", params={"code": inc["code"],
                                                       "status": Text.code("dp.status.", inc["status"])})
    if into["status"] in ("merged", "cancelled"):
        raise Conflict(f"incident {into['code']} is {into['status']}; merge into the incident it went to", "into",
                       key="err.merge.into_status", params={"code": into["code"],
                                                            "status": Text.code("dp.status.", into["status"])})
    legs = conn.execute("SELECT id, unit_id FROM dispatch_leg WHERE incident_id = %s AND status = ANY(%s) FOR UPDATE",
                        [incident_id, list(OPEN_LEG)]).fetchall()
    for leg in legs:
        conn.execute("UPDATE dispatch_leg SET status = 'cancelled', cancelled_at = now() WHERE id = %s", [leg["id"]])
        if leg["unit_id"]:
            conn.execute("UPDATE unit SET status = 'available', current_leg_id = NULL, updated_at = now() "
                         "WHERE id = %s AND current_leg_id = %s", [leg["unit_id"], leg["id"]])
    conn.execute("UPDATE incident SET status = 'merged', duplicate_of = %s WHERE id = %s", [into_id, incident_id])
    log_event(conn, incident_id, "merged", actor, client, {"into": into_id, "cancelled_legs": [x["id"] for x in legs]})
    log_event(conn, into_id, "merged_in", actor, client, {"from": incident_id})
    out = incident_detail(conn, settings, incident_id, with_events=False)
    # the units freed by the cancelled legs go with the event: every unit board shows them available at once
    freed = [unit_event(conn, x["unit_id"]) for x in legs if x["unit_id"]]
    out["units"] = freed
    emit(conn, "incident.merged", {"incident": incident_summary(out), "into": into_id, "units": freed}, incident_id)
    return out


# The helpers above were private before issue 13 (desk.py uses them now); the old names stay
# for code written against them on other branches.
_lock_leg, _may_act_on_leg, _leg_event, _try_assign, _check_unit_for_leg = (
    lock_leg, may_act_on_leg, leg_event, try_assign, check_unit_for_leg)
