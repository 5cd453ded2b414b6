"""Device and gateway accounts: which units a terminal may report positions and act for.

A ``device`` account is one unit's terminal: it names its unit (``app_user.unit_id``) and acts
for that unit only. A ``gateway`` reports for several units: an explicit list in
``gateway_unit`` (migration 0081), set by an admin, and for no other unit. Any other role acts
for no unit through these paths.
"""

from __future__ import annotations

from typing import Any

import psycopg

from gisapp.core.errors import NotFound, ValidationError

DEVICE_ROLES = ("device", "gateway")
MAX_GATEWAY_UNITS = 1000


def _unit_id(raw: Any, field: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
        raise ValidationError("must be a positive integer unit id", field)
    return raw


def check_device_unit(conn: psycopg.Connection, role: str, unit_id: Any) -> int | None:
    """The unit a new account is bound to: required (and existing) for a device, None otherwise."""
    if role != "device":
        if unit_id is not None:
            raise ValidationError("only a device account is bound to one unit (a gateway takes unit_ids)",
                                  "unit_id", status=422)
        return None
    if unit_id is None:
        raise ValidationError("a device account names its unit: give unit_id", "unit_id", status=422)
    uid = _unit_id(unit_id, "unit_id")
    if conn.execute("SELECT 1 FROM unit WHERE id = %s", [uid]).fetchone() is None:
        raise ValidationError(f"no unit with id {uid}", "unit_id", status=422)
    return uid


def check_unit_list(conn: psycopg.Connection, unit_ids: Any, field: str = "unit_ids") -> list[int]:
    """A gateway's list of units: distinct existing unit ids (may be empty)."""
    if not isinstance(unit_ids, list):
        raise ValidationError("must be a list of unit ids", field)
    if len(unit_ids) > MAX_GATEWAY_UNITS:
        raise ValidationError(f"at most {MAX_GATEWAY_UNITS} units", field)
    ids = [_unit_id(v, f"{field}[{i}]") for i, v in enumerate(unit_ids)]
    known = {r["id"] for r in conn.execute("SELECT id FROM unit WHERE id = ANY(%s)", [ids])}
    for i, v in enumerate(ids):
        if v not in known:
            raise ValidationError(f"no unit with id {v}", f"{field}[{i}]", status=422)
    return sorted(set(ids))


def set_gateway_units(conn: psycopg.Connection, user_id: int, unit_ids: Any) -> list[int]:
    """Replace the list of units gateway ``user_id`` reports for; return it."""
    row = conn.execute("SELECT role FROM app_user WHERE id = %s FOR UPDATE", [user_id]).fetchone()
    if row is None:
        raise NotFound(f"no user {user_id}", "id")
    if row["role"] != "gateway":
        raise ValidationError(f"user {user_id} is a {row['role']}, not a gateway", "role", status=422)
    ids = check_unit_list(conn, unit_ids)
    conn.execute("DELETE FROM gateway_unit WHERE user_id = %s", [user_id])
    conn.execute("INSERT INTO gateway_unit (user_id, unit_id) SELECT %s, unnest(%s::bigint[])", [user_id, ids])
    return ids


def gateway_units(conn: psycopg.Connection, user_id: int) -> list[int]:
    return [r["unit_id"] for r in conn.execute(
        "SELECT unit_id FROM gateway_unit WHERE user_id = %s ORDER BY unit_id", [user_id])]


def units_of(conn: psycopg.Connection, user: dict) -> frozenset[int]:
    """The units ``user`` may report positions and act for (empty for every other role)."""
    if user.get("role") == "device":
        return frozenset({user["unit_id"]}) if user.get("unit_id") is not None else frozenset()
    if user.get("role") == "gateway":
        return frozenset(gateway_units(conn, user["id"]))
    return frozenset()
