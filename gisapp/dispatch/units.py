"""Units: the status board, manual status changes and position reports from devices."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from gisapp.core import devices, scope
from gisapp.core.errors import Conflict, Forbidden, GeometryError, NotFound, Text, ValidationError
from gisapp.core.features import parse_time

from .events import emit
from .records import MANUAL_UNIT_STATUSES, db_now, id_value, jsonable

# --- units --------------------------------------------------------------------------------------

UNIT_COLS = sql.SQL(
    "u.id, u.code, u.name, u.organisation_id, o.code AS organisation_code, o.name AS organisation_name, "
    "o.name_en AS organisation_name_en, u.kind, "
    "u.capabilities, u.status, u.shift, u.crew, ST_X(u.last_position) AS lon, ST_Y(u.last_position) AS lat, "
    "u.last_position_at, u.current_leg_id, l.incident_id AS current_incident_id, u.updated_at")


def unit_event(conn, unit_id: int) -> dict:
    row = conn.execute(sql.SQL(
        "SELECT {} FROM unit u JOIN organisation o ON o.id = u.organisation_id "
        "LEFT JOIN dispatch_leg l ON l.id = u.current_leg_id WHERE u.id = %s").format(UNIT_COLS), [unit_id]).fetchone()
    return jsonable(row) if row else {"id": unit_id}


def unit_board(conn: psycopg.Connection, settings, organisation_id: int | None = None,
               status: str | None = None, orgs: frozenset[int] | None = None) -> dict:
    """The unit status board: every unit with status, position, position age and current incident
    (of ``orgs`` only when given: gisapp.core.scope.visible_organisations)."""
    now = db_now(conn)
    in_scope, scope_params = scope.column_condition(orgs, "u", "organisation_id")
    rows = conn.execute(sql.SQL(
        "SELECT {} FROM unit u JOIN organisation o ON o.id = u.organisation_id "
        "LEFT JOIN dispatch_leg l ON l.id = u.current_leg_id "
        "WHERE (%s::bigint IS NULL OR u.organisation_id = %s::bigint) AND (%s::text IS NULL OR u.status = %s::text) "
        "AND {} ORDER BY o.code, u.code").format(UNIT_COLS, in_scope),
        [organisation_id, organisation_id, status, status, *scope_params]).fetchall()
    units = []
    for r in rows:
        u = jsonable(r)
        age = (now - r["last_position_at"]).total_seconds() if r["last_position_at"] else None
        u["position_age_s"] = round(age, 1) if age is not None else None
        u["position_stale"] = age is None or age > settings.position_stale_s
        units.append(u)
    counts: dict[str, int] = {}
    for u in units:
        counts[u["status"]] = counts.get(u["status"], 0) + 1
    return {"now": now.isoformat(), "counts": counts, "units": units}


def set_unit_status(conn: psycopg.Connection, unit_id: int, status: Any, actor: str, client: str | None) -> dict:
    """Set a unit available, off duty or out of service; 409 while it works on a leg."""
    if status not in MANUAL_UNIT_STATUSES:
        raise ValidationError(f"must be one of {', '.join(MANUAL_UNIT_STATUSES)} (the others follow the legs)",
                              "status",
                              key="err.unit.manual_status",
                              params={"options": Text.codes("unit.", MANUAL_UNIT_STATUSES)})
    u = conn.execute("SELECT id, code, status, current_leg_id FROM unit WHERE id = %s FOR UPDATE", [unit_id]).fetchone()
    if u is None:
        raise NotFound(f"no unit {unit_id}", "id", key="err.unit.not_found", params={"id": unit_id})
    if u["current_leg_id"] is not None:
        raise Conflict(f"unit {u['code']} works on leg {u['current_leg_id']}; close or cancel the leg first", "status",
                       key="err.unit.busy", params={"unit": u["code"]})
    conn.execute("UPDATE unit SET status = %s, updated_at = now() WHERE id = %s", [status, unit_id])
    conn.execute("INSERT INTO audit_log (actor, action, entity, entity_id, client, detail) "
                 "VALUES (%s, 'unit_status', 'unit', %s, %s, %s)",
                 [actor, str(unit_id), client, json.dumps({"from": u["status"], "to": status})])
    ev = unit_event(conn, unit_id)
    emit(conn, "unit.status", {"unit": ev, "from": u["status"]})
    return ev


def parse_positions(body: Any, settings, now: datetime, user: dict, allowed: frozenset[int]) -> list[dict]:
    """Check a batch of position reports; raise a 4xx naming ``positions[i].<field>``.

    ``allowed`` are the units the caller reports for (gisapp.core.devices.units_of): a device
    its own unit (the default of a report without ``unit_id``), a gateway its list."""
    reports = body.get("positions") if isinstance(body, dict) else body
    if not isinstance(reports, list) or not reports:
        raise ValidationError("send {\"positions\": [{\"lon\", \"lat\", \"at\"}, ...]}", "positions",
                              key="err.positions.body")
    if len(reports) > settings.position_batch_max:
        raise ValidationError(f"at most {settings.position_batch_max} reports per batch", "positions", status=413,
                              key="err.positions.too_many", params={"limit": settings.position_batch_max})
    x0, y0, x1, y1 = settings.service_extent
    own_unit = user.get("unit_id") if user.get("role") == "device" else None
    if not allowed:
        raise Forbidden("this account reports for no unit (a device names its unit, a gateway lists its units)",
                        "positions", key="err.positions.no_unit")
    out = []
    for i, r in enumerate(reports):
        f = f"positions[{i}]"
        if not isinstance(r, dict):
            raise ValidationError("must be an object", f, key="err.not_object")
        unit_id = r.get("unit_id")
        if unit_id is None:
            unit_id = own_unit
            if unit_id is None:
                raise ValidationError("is required (this token is not bound to a unit)", f + ".unit_id",
                                      key="err.required")
        unit_id = id_value(unit_id, f + ".unit_id")
        if unit_id not in allowed:
            only = f"unit {own_unit} only" if own_unit is not None else "the units of its list only"
            raise Forbidden(f"this account reports for {only}", f + ".unit_id",
                            key="err.positions.other_unit")
        lon, lat = r.get("lon"), r.get("lat")
        for name, v in (("lon", lon), ("lat", lat)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValidationError("must be a finite number", f"{f}.{name}", key="err.not_finite")
        if not (x0 <= lon <= x1 and y0 <= lat <= y1):
            swapped = x0 <= lat <= x1 and y0 <= lon <= y1
            raise GeometryError("outside the service area" + ("; lon and lat look swapped" if swapped else ""),
                                f + ".lon", status=422, key="err.geom.outside_area_short")
        if r.get("at") is None:
            raise ValidationError("is required (the device's time of the fix)", f + ".at",
                                  key="err.required")
        at = parse_time(r["at"], f + ".at")
        if (at - now).total_seconds() > settings.future_tolerance_s:
            raise ValidationError(f"{at.isoformat()} is more than {settings.future_tolerance_s} s in the future",
                                  f + ".at", status=422,
                                  key="err.future_time", params={"tolerance": settings.future_tolerance_s})
        rec = {"unit_id": unit_id, "lon": float(lon), "lat": float(lat), "at": at}
        for name, lo, hi in (("speed_kmh", 0, 400), ("heading_deg", 0, 360)):
            v = r.get(name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi):
                raise ValidationError(f"must be a number in [{lo}, {hi}]", f"{f}.{name}",
                                      key="err.range", params={"lo": lo, "hi": hi})
            rec[name] = v
        out.append(rec)
    return out


def ingest_positions(conn: psycopg.Connection, settings, body: Any, user: dict,
                     units: frozenset[int] | None = None) -> dict:
    """Store a batch of position reports; the newest report of each unit moves it.

    ``units``: the units the caller reports for, by default those of its account
    (gisapp.core.devices.units_of); the live simulator, which is no account, names them.

    Duplicates (same unit and time) are ignored, older reports are kept in the history
    without moving the unit, so out-of-order delivery ends in the same state as in-order.
    """
    now = db_now(conn)
    reports = parse_positions(body, settings, now, user, devices.units_of(conn, user) if units is None else units)
    ids = sorted({r["unit_id"] for r in reports})
    # Lock the units in id order: two batches for the same units queue up instead of deadlocking.
    known = {r["id"] for r in conn.execute("SELECT id FROM unit WHERE id = ANY(%s) ORDER BY id FOR NO KEY UPDATE",
                                           [ids])}
    for i, r in enumerate(reports):
        if r["unit_id"] not in known:
            raise NotFound(f"no unit {r['unit_id']}", f"positions[{i}].unit_id", status=422,
                           key="err.unit.not_found", params={"id": r["unit_id"]})
    cols = {k: [r[k] for r in reports] for k in ("unit_id", "lon", "lat", "at", "speed_kmh", "heading_deg")}
    moved = conn.execute(
        """
        WITH ins AS (
            INSERT INTO unit_position (unit_id, geom, reported_at, speed_kmh, heading_deg)
            SELECT u, ST_SetSRID(ST_MakePoint(x, y), 4326), t, s, h
            FROM unnest(%(unit_id)s::bigint[], %(lon)s::float8[], %(lat)s::float8[], %(at)s::timestamptz[],
                        %(speed_kmh)s::float8[], %(heading_deg)s::float8[]) AS r(u, x, y, t, s, h)
            ON CONFLICT (unit_id, reported_at) DO NOTHING
            RETURNING unit_id, geom, reported_at
        ), newest AS (
            SELECT DISTINCT ON (unit_id) unit_id, geom, reported_at FROM ins ORDER BY unit_id, reported_at DESC
        ), upd AS (
            UPDATE unit u SET last_position = n.geom, last_position_at = n.reported_at, updated_at = now()
            FROM newest n WHERE u.id = n.unit_id AND (u.last_position_at IS NULL OR u.last_position_at < n.reported_at)
            RETURNING u.id, u.code, u.status, u.organisation_id, ST_X(u.last_position) AS lon,
                      ST_Y(u.last_position) AS lat, u.last_position_at
        )
        SELECT (SELECT count(*) FROM ins) AS stored, (SELECT json_agg(upd ORDER BY id) FROM upd) AS moved
        """, cols).fetchone()
    stored = moved["stored"]
    units = moved["moved"] or []
    if units:
        emit(conn, "unit.moved", {"units": units})
    return {"received": len(reports), "stored": stored, "duplicates": len(reports) - stored,
            "moved_units": [u["id"] for u in units],
            "history_only": stored - len(units)}
