"""Participation: a station's part in traffic management and a station-squadron merger (交所合一)
as versioned facts (table ``organisation_participation``, migration 0110).

The dispatch rules read the version in force at an incident's ``reported_at``; the replay
(gisapp.replay) reads the whole history once and asks it per incident. ``organisation``'s own
``takes_part_in_traffic`` / ``merged`` columns are the version in force now.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from gisapp.core.audit import audit
from gisapp.core.errors import Conflict, NotFound, ValidationError


@dataclass(frozen=True)
class Participation:
    """One version of an organisation's participation, valid in [valid_from, valid_to)."""

    organisation_id: int
    takes_part_in_traffic: bool
    merged: bool
    valid_from: datetime
    valid_to: datetime | None


def in_force(conn: psycopg.Connection, organisation_id: int, at: datetime) -> Participation | None:
    """The version in force for ``organisation_id`` at ``at`` (None: the organisation has none)."""
    r = conn.execute(
        "SELECT organisation_id, takes_part_in_traffic, merged, valid_from, valid_to FROM organisation_participation "
        "WHERE organisation_id = %s AND valid_from <= %s AND (valid_to IS NULL OR valid_to > %s)",
        [organisation_id, at, at]).fetchone()
    return Participation(**r) if r else None


def takes_part_at(conn: psycopg.Connection, organisation_id: int, at: datetime) -> bool:
    """Whether the station takes part in traffic management at ``at`` (False when no version)."""
    p = in_force(conn, organisation_id, at)
    return bool(p and p.takes_part_in_traffic)


class History:
    """Every organisation's versions, asked per instant without a query (for the replay)."""

    def __init__(self, versions: list[Participation]):
        self._by_org: dict[int, list[Participation]] = {}
        for v in sorted(versions, key=lambda v: (v.organisation_id, v.valid_from)):
            self._by_org.setdefault(v.organisation_id, []).append(v)
        self._starts = {o: [v.valid_from for v in vs] for o, vs in self._by_org.items()}

    def at(self, organisation_id: int, when: datetime) -> Participation | None:
        vs = self._by_org.get(organisation_id)
        if not vs:
            return None
        i = bisect.bisect_right(self._starts[organisation_id], when) - 1
        if i < 0:
            return None
        v = vs[i]
        return v if v.valid_to is None or when < v.valid_to else None

    def takes_part(self, organisation_id: int, when: datetime) -> bool:
        v = self.at(organisation_id, when)
        return bool(v and v.takes_part_in_traffic)

    def organisations(self) -> list[int]:
        return sorted(self._by_org)


def history(conn: psycopg.Connection) -> History:
    rows = conn.execute("SELECT organisation_id, takes_part_in_traffic, merged, valid_from, valid_to "
                        "FROM organisation_participation").fetchall()
    return History([Participation(**r) for r in rows])


# --- reading and changing the versions (the planner's API) -------------------------------------

_KINDS = ("station", "squadron")
_COLS = ("id, takes_part_in_traffic, merged, valid_from, valid_to, note, created_by, created_at")


def _organisation(conn: psycopg.Connection, organisation: int | str, lock: bool = False) -> dict:
    """The station or squadron named by id or code (NotFound / ValidationError naming ``organisation``)."""
    if isinstance(organisation, bool) or not isinstance(organisation, int | str) or organisation == "":
        raise ValidationError("must be an organisation id or code", "organisation", key="err.required")
    col = "id" if isinstance(organisation, int) or str(organisation).isdigit() else "code"
    value = int(organisation) if col == "id" else str(organisation)
    if col == "id" and not 0 < value < 2**63:
        raise NotFound(f"no organisation {organisation!r}", "organisation", key="err.organisation.not_found",
                       params={"id": str(organisation)[:40]})
    row = conn.execute(f"SELECT id, code, name, name_en, kind, takes_part_in_traffic, merged FROM organisation "
                       f"WHERE {col} = %s" + (" FOR UPDATE" if lock else ""), [value]).fetchone()
    if row is None:
        raise NotFound(f"no organisation {organisation!r}", "organisation", key="err.organisation.not_found",
                       params={"id": str(organisation)[:40]})
    if row["kind"] not in _KINDS:
        raise ValidationError(f"{row['code']} is a {row['kind']}: only stations and squadrons have a participation",
                              "organisation", key="err.participation.kind", params={"code": row["code"]})
    return row


def sync_flags(conn: psycopg.Connection) -> int:
    """Bring organisation's own flags to the version in force now (a dated change has come due)."""
    with conn.transaction():  # the setting is local to a transaction (a savepoint in the caller's)
        conn.execute("SELECT set_config('gisapp.participation_sync', 'off', true)")
        n = conn.execute(
            "UPDATE organisation o SET takes_part_in_traffic = p.takes_part_in_traffic, merged = p.merged, "
            "updated_at = now() FROM organisation_participation p WHERE p.organisation_id = o.id "
            "AND p.valid_from <= now() AND (p.valid_to IS NULL OR p.valid_to > now()) "
            "AND (o.takes_part_in_traffic, o.merged) IS DISTINCT FROM (p.takes_part_in_traffic, p.merged)").rowcount
        conn.execute("SELECT set_config('gisapp.participation_sync', '', true)")
    return n


def list_versions(conn: psycopg.Connection, organisation: int | str | None = None) -> list[dict[str, Any]]:
    """Every station and squadron (or the one named) with its versions, oldest first."""
    org_id = _organisation(conn, organisation)["id"] if organisation is not None else None
    orgs = conn.execute(
        "SELECT id, code, name, name_en, kind, takes_part_in_traffic, merged FROM organisation "
        "WHERE kind = ANY(%s) AND (%s::bigint IS NULL OR id = %s::bigint) ORDER BY kind DESC, code",
        [list(_KINDS), org_id, org_id]).fetchall()
    versions: dict[int, list[dict]] = {}
    for r in conn.execute(f"SELECT organisation_id, {_COLS} FROM organisation_participation "
                          "WHERE organisation_id = ANY(%s) ORDER BY organisation_id, valid_from",
                          [[o["id"] for o in orgs]]):
        versions.setdefault(r.pop("organisation_id"), []).append(_version_json(r))
    return [{**o, "versions": versions.get(o["id"], [])} for o in orgs]


def _version_json(r: dict) -> dict[str, Any]:
    out = dict(r)
    for k in ("valid_from", "valid_to", "created_at"):
        v = out.get(k)
        # the back-filled first version holds since ever (stored as 1900-01-01)
        out[k] = None if v is None or (k == "valid_from" and v.year <= 1900) else v.isoformat()
    return out


def change(conn: psycopg.Connection, user: dict | None, organisation: int | str, valid_from: datetime, *,
           takes_part_in_traffic: Any = None, merged: Any = None, note: Any = None) -> dict[str, Any]:
    """A dated change: close the version in force at ``valid_from`` and open a new one.

    A flag left out keeps its value. The change must come after the organisation's last change
    (versions are never rewritten: 409 ``err.participation.before_last``) and change something
    (``err.participation.unchanged``); a squadron always takes part in traffic. When the change
    is already in force, organisation's own flags follow it. Audited.
    """
    for name, v in (("takes_part_in_traffic", takes_part_in_traffic), ("merged", merged)):
        if v is not None and not isinstance(v, bool):
            raise ValidationError("must be true or false", name, key="err.not_bool")
    if note is not None and (not isinstance(note, str) or len(note) > 500):
        raise ValidationError("must be text of at most 500 characters", "note", key="err.participation.note")
    if not datetime(1901, 1, 1, tzinfo=UTC) < valid_from < datetime(2200, 1, 1, tzinfo=UTC):
        raise ValidationError("out of range", "valid_from", key="err.participation.valid_from")
    with conn.transaction():  # all or nothing, also on an autocommit connection
        return _change(conn, user, organisation, valid_from, takes_part_in_traffic, merged, note)


def _change(conn, user, organisation, valid_from, takes_part_in_traffic, merged, note) -> dict[str, Any]:
    org = _organisation(conn, organisation, lock=True)
    last = conn.execute(f"SELECT {_COLS} FROM organisation_participation WHERE organisation_id = %s "
                        "ORDER BY valid_from DESC LIMIT 1", [org["id"]]).fetchone()
    if last is not None and valid_from <= last["valid_from"]:
        raise Conflict(f"a change must come after the last one ({last['valid_from'].isoformat()})", "valid_from",
                       key="err.participation.before_last", params={"at": last["valid_from"].isoformat()})
    current = last or {"takes_part_in_traffic": org["takes_part_in_traffic"], "merged": org["merged"]}
    new_traffic = current["takes_part_in_traffic"] if takes_part_in_traffic is None else takes_part_in_traffic
    new_merged = current["merged"] if merged is None else merged
    if org["kind"] == "squadron" and not new_traffic:
        raise ValidationError("a squadron always takes part in traffic", "takes_part_in_traffic",
                              key="err.participation.squadron")
    if last is not None and (new_traffic, new_merged) == (last["takes_part_in_traffic"], last["merged"]):
        raise ValidationError("the change changes nothing", "takes_part_in_traffic",
                              key="err.participation.unchanged")
    conn.execute("SELECT set_config('gisapp.participation_sync', 'off', true)")
    if last is not None:
        conn.execute("UPDATE organisation_participation SET valid_to = %s WHERE id = %s", [valid_from, last["id"]])
    row = conn.execute(
        "INSERT INTO organisation_participation (organisation_id, takes_part_in_traffic, merged, valid_from, note, "
        f"created_by) VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_COLS}",
        [org["id"], new_traffic, new_merged, valid_from, note or None, (user or {}).get("username")]).fetchone()
    conn.execute("SELECT set_config('gisapp.participation_sync', '', true)")
    sync_flags(conn)
    audit(conn, user, "participation_change", "organisation", org["id"],
          {"code": org["code"], "valid_from": valid_from.isoformat(), "takes_part_in_traffic": new_traffic,
           "merged": new_merged, "before": None if last is None else
           {"takes_part_in_traffic": last["takes_part_in_traffic"], "merged": last["merged"]}, "note": note})
    return {"organisation": list_versions(conn, org["id"])[0], "version": _version_json(row)}
