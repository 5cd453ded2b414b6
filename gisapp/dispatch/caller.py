"""Call-back (issue 13): reveal an incident's full caller number to those who may call back.

Only a dispatcher, and a duty officer of an organisation the incident belongs to (its station or
traffic owner, or one of its legs' organisations), read it; every read is written to the audit
log as ``view_personal``. Everyone else gets 403 and keeps the masked form of the incident JSON.
The number is decrypted here and nowhere else (gisapp.core.callerkey); it goes into no event,
no stream message, no export and no log line.
"""

from __future__ import annotations

import logging

import psycopg

from gisapp.core import callerkey, scope
from gisapp.core.audit import audit
from gisapp.core.errors import Forbidden, GisappError, NotFound

log = logging.getLogger("gisapp.dispatch")

# who may read a full number: every dispatcher; a duty officer of the incident's organisations
REVEAL_ALL_ROLES = frozenset({"dispatcher"})
REVEAL_OWN_ROLES = frozenset({"duty_officer"})


def may_reveal(conn: psycopg.Connection, user: dict, incident_id: int) -> bool:
    role = user.get("role")
    if role in REVEAL_ALL_ROLES:
        return True
    if role in REVEAL_OWN_ROLES:
        return user.get("station_id") is not None and \
            user["station_id"] in scope.incident_organisations(conn, incident_id)
    return False


def reveal_caller(conn: psycopg.Connection, settings, user: dict, incident_id: int) -> dict:
    """``{incident_id, code, caller_number, caller_masked}``; audited. 403 for anyone else, 404
    for no incident or no kept number, 503 when the key is missing or not the one used."""
    if user.get("role") not in REVEAL_ALL_ROLES | REVEAL_OWN_ROLES:
        raise Forbidden("only a dispatcher or the owning organisation's duty officer sees the caller's number",
                        "role", key="err.caller.forbidden")
    row = conn.execute("SELECT id, code, caller_masked, caller_encrypted FROM incident WHERE id = %s",
                       [incident_id]).fetchone()
    if row is None:
        raise NotFound(f"no incident {incident_id}", "id", key="err.incident.not_found", params={"id": incident_id})
    if not may_reveal(conn, user, incident_id):
        raise Forbidden("this incident is not one of your organisation's", "id", key="err.caller.other_org")
    if row["caller_encrypted"] is None:
        raise NotFound("no full number is kept for this incident (taken without one, or while the caller key "
                       "was missing)", "caller_number", key="err.caller.none_kept")
    try:
        keys = callerkey.keys(settings)
    except callerkey.CallerKeyError as e:
        log.error("caller key: %s", e)
        raise GisappError(f"the caller key is malformed: {e}", "caller_key", status=503,
                          key="err.caller.no_key") from None
    if not keys:
        raise GisappError("no caller key is configured: set caller_key (GISAPP_CALLER_KEY) or caller_key_file",
                          "caller_key", status=503, key="err.caller.no_key")
    try:
        number = callerkey.decrypt(keys, row["caller_encrypted"], incident_id)
    except callerkey.CallerKeyError as e:
        log.error("incident %s: caller number not readable: %s", incident_id, e)
        raise GisappError(f"the caller number cannot be read: {e}", "caller_key", status=503,
                          key="err.caller.no_key") from None
    audit(conn, user, "view_personal", "incident", incident_id,
          {"incident_code": row["code"], "field": "caller_number"})
    return {"incident_id": incident_id, "code": row["code"], "caller_number": number,
            "caller_masked": row["caller_masked"]}
