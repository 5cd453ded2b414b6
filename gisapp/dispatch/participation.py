"""Participation: a station's part in traffic management and a station-squadron merger (交所合一)
as versioned facts (table ``organisation_participation``, migration 0110).

The dispatch rules read the version in force at an incident's ``reported_at``; the replay
(gisapp.replay) reads the whole history once and asks it per incident. ``organisation``'s own
``takes_part_in_traffic`` / ``merged`` columns are the version in force now.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime

import psycopg


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
