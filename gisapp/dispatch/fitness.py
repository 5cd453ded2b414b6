"""Whether a unit fits a leg: the capability, unit kinds and minimum crew the rules give the leg.

The recommendations, auto-assignment and manual assignment all ask :func:`unfit`; a manual
assignment of an unfit unit is refused (409, keyed message) unless the dispatcher overrides,
which the event log records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from gisapp.core.errors import Conflict, NotFound, Text


@dataclass(frozen=True)
class Requirements:
    """What a leg asks of its unit (None: no requirement)."""

    capability: str | None = None
    unit_kinds: tuple[str, ...] | None = None
    min_crew: int | None = None

    @classmethod
    def of(cls, leg: dict[str, Any]) -> Requirements:
        """The requirements of a leg row or a planned leg (keys capability, unit_kinds, min_crew)."""
        kinds = leg.get("unit_kinds")
        return cls(leg.get("capability"), tuple(kinds) if kinds else None, leg.get("min_crew"))

    @property
    def filters_beyond_capability(self) -> bool:
        return bool(self.unit_kinds) or self.min_crew is not None

    def to_json(self) -> dict[str, Any]:
        return {"capability": self.capability, "unit_kinds": list(self.unit_kinds) if self.unit_kinds else None,
                "min_crew": self.min_crew}


def unfit(unit: dict[str, Any], req: Requirements) -> list[dict[str, Any]]:
    """The requirements ``unit`` (kind, crew, capabilities) misses; empty when it fits."""
    out: list[dict[str, Any]] = []
    if req.capability and req.capability not in (unit.get("capabilities") or []):
        out.append({"code": "capability", "capability": req.capability})
    if req.unit_kinds and unit.get("kind") not in req.unit_kinds:
        out.append({"code": "kind", "kind": unit.get("kind"), "kinds": "/".join(req.unit_kinds)})
    if req.min_crew is not None and (unit.get("crew") or 0) < req.min_crew:
        out.append({"code": "crew", "crew": unit.get("crew"), "min_crew": req.min_crew})
    return out


def why(unit: dict[str, Any], req: Requirements, eta_s: float | None) -> dict[str, Any]:
    """Why a unit is (or is not) recommended: its ETA, status, kind, crew, and each requirement met."""
    missing = {m["code"] for m in unfit(unit, req)}
    return {"eta_s": eta_s, "status": unit.get("status"), "kind": unit.get("kind"), "crew": unit.get("crew"),
            "capabilities": list(unit.get("capabilities") or []), "requirements": req.to_json(),
            "capability_met": "capability" not in missing, "kind_met": "kind" not in missing,
            "crew_met": "crew" not in missing, "fit": not missing}


def units_by_id(conn: psycopg.Connection, unit_ids: list[int]) -> dict[int, dict[str, Any]]:
    rows = conn.execute("SELECT id, code, kind, crew, capabilities, status, organisation_id FROM unit "
                        "WHERE id = ANY(%s)", [unit_ids]).fetchall()
    return {r["id"]: r for r in rows}


def describe(missing: list[dict[str, Any]], lang: str = "en") -> str:
    from gisapp.core.i18n import t

    return "; ".join(t(f"unfit.{m['code']}", lang, **{k: v for k, v in m.items() if k != "code"}) for m in missing)


def check_fit(conn: psycopg.Connection, unit_id: int, req: Requirements, override: bool) -> list[dict[str, Any]]:
    """Refuse (409) a unit that misses the leg's requirements unless ``override``; return what it misses."""
    unit = units_by_id(conn, [unit_id]).get(unit_id)
    if unit is None:
        raise NotFound(f"no unit {unit_id}", "unit_id", key="err.unit.not_found", params={"id": unit_id})
    missing = unfit(unit, req)
    if missing and not override:
        raise Conflict(f"unit {unit['code']} does not meet the leg's requirements: {describe(missing)}; "
                       "send override: true to assign it anyway", "unit_id", key="err.unit_unfit",
                       params={"unit": unit["code"], "why": Text.pair(describe(missing, "zh"), describe(missing))},
                       unfit=missing)
    return missing
