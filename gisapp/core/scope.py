"""Organisation scoping: which organisations' records a user may see and act on, in one place.

``visible_organisations(user)`` is the one rule: None means every organisation (dispatcher,
admin, viewer, planner, leadership), a set means only those (a chief, a duty officer: their organisation). Every read and
write of dispatch, the layer API's incident, unit and grid layers, the SLA metrics and the map
data go through the helpers below, so a new role or a wider chief scope changes one function.
A single record outside the scope answers 404 when read (its existence is not revealed); acting
on another organisation's leg answers 403 (gisapp.dispatch.legs.may_act_on_leg asks ``may_see``);
a list is filtered; asking for another organisation's list or metrics by id answers 403.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from gisapp.core.catalog import ORGANISATION_ROLES
from gisapp.core.errors import Forbidden, NotFound

# Roles that see every organisation. Any other role (chief; devices and gateways, which read
# nothing of dispatch) is bound to organisations of its own.
# leadership (issue 14): the command centre and bureau leadership read every organisation, write nothing.
ALL_ORGANISATION_ROLES = frozenset({"admin", "dispatcher", "viewer", "planner", "leadership"})


def visible_organisations(user: dict | None) -> frozenset[int] | None:
    """The organisation ids ``user`` may see: None for all, else a (possibly empty) set.

    A chief sees their station (``station_id``); a merged station-squadron is one
    organisation, so that is still one id. No user (anonymous reads, where a deployment allows
    them) is not organisation-bound: whether it may read at all is decided before this.
    """
    if user is None or user.get("role") in ALL_ORGANISATION_ROLES:
        return None
    if user.get("role") in ORGANISATION_ROLES:  # a chief, a duty officer: their one organisation
        return frozenset({user["station_id"]}) if user.get("station_id") is not None else frozenset()
    return frozenset()


def sees_all(user: dict | None) -> bool:
    return visible_organisations(user) is None


def may_see(user: dict | None, organisation_id: int | None) -> bool:
    orgs = visible_organisations(user)
    return orgs is None or (organisation_id is not None and organisation_id in orgs)


def require_organisation(user: dict | None, organisation_id: int | None, field: str = "organisation_id") -> None:
    """403 when ``user`` asks for an organisation outside their scope (a list or metrics by id)."""
    if not may_see(user, organisation_id):
        raise Forbidden(f"organisation {organisation_id} is outside your scope", field,
                        key="err.organisation.outside_scope", params={"id": organisation_id})


def only_organisation(user: dict | None, asked: int | None, field: str = "organisation_id") -> int | None:
    """The organisation a list or metric is restricted to: what was asked (checked), or the user's
    own one when they are bound to exactly one and asked for none."""
    orgs = visible_organisations(user)
    if asked is not None:
        require_organisation(user, asked, field)
        return asked
    if orgs is None:
        return None
    if len(orgs) == 1:
        return next(iter(orgs))
    raise Forbidden("your role sees no organisation", field, key="err.organisation.none")


def incident_organisations(conn, incident_id: int) -> set[int]:
    """The organisations an incident belongs to: its station and traffic owners and its legs'."""
    row = conn.execute(
        "SELECT i.station_org_id, i.traffic_org_id, ARRAY(SELECT l.organisation_id FROM dispatch_leg l "
        "WHERE l.incident_id = i.id) AS legs FROM incident i WHERE i.id = %s", [incident_id]).fetchone()
    if row is None:
        return set()
    return {x for x in (row["station_org_id"], row["traffic_org_id"], *row["legs"]) if x is not None}


def check_incident(conn, user: dict | None, incident_id: int) -> None:
    """404 unless ``user`` may see the incident (exists and belongs to one of their organisations)."""
    orgs = visible_organisations(user)
    if orgs is None:
        return
    if not orgs & incident_organisations(conn, incident_id):
        raise NotFound(f"no incident {incident_id}", "id",
                       key="err.incident.not_found", params={"id": incident_id})


def check_leg(conn, user: dict | None, leg_id: int) -> dict:
    """Return the leg (id, incident_id, organisation_id); 404 unless it exists and ``user`` may see it."""
    leg = conn.execute("SELECT id, incident_id, organisation_id FROM dispatch_leg WHERE id = %s",
                       [leg_id]).fetchone()
    if leg is None or not may_see(user, leg["organisation_id"]):
        raise NotFound(f"no leg {leg_id}", "id", key="err.leg.not_found", params={"id": leg_id})
    return leg


def check_unit(conn, user: dict | None, unit_id: int) -> dict:
    """Return the unit (id, organisation_id); 404 unless it exists and ``user`` may see it."""
    unit = conn.execute("SELECT id, organisation_id FROM unit WHERE id = %s", [unit_id]).fetchone()
    if unit is None or not may_see(user, unit["organisation_id"]):
        raise NotFound(f"no unit {unit_id}", "id", key="err.unit.not_found", params={"id": unit_id})
    return unit


def incident_condition(orgs: frozenset[int] | None, alias: str = "i") -> tuple[sql.Composable, list[Any]]:
    """A SQL condition on incident ``alias``: it belongs to one of ``orgs`` (TRUE for all)."""
    if orgs is None:
        return sql.SQL("TRUE"), []
    a = sql.Identifier(alias)
    ids = sorted(orgs)
    return (sql.SQL("({a}.station_org_id = ANY(%s) OR {a}.traffic_org_id = ANY(%s) OR EXISTS (SELECT 1 FROM "
                    "dispatch_leg sl WHERE sl.incident_id = {a}.id AND sl.organisation_id = ANY(%s)))").format(a=a),
            [ids, ids, ids])


def column_condition(orgs: frozenset[int] | None, alias: str, column: str) -> tuple[sql.Composable, list[Any]]:
    """A SQL condition: ``alias.column`` is one of ``orgs`` (TRUE for all)."""
    if orgs is None:
        return sql.SQL("TRUE"), []
    return sql.SQL("{}.{} = ANY(%s)").format(sql.Identifier(alias), sql.Identifier(column)), [sorted(orgs)]
