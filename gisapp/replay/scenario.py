"""Read a replay scenario and a period from JSON, with a keyed 4xx naming the field for bad input.

Participation kinds: ``recorded`` (each station's version in force at the incident's
reported_at, gisapp.dispatch.participation), ``all_stations`` / ``stations`` (every station,
or the listed ones, take part throughout), ``squadrons_alone`` (no station takes part, and
the accident legs the rules give a station go to the place's squadron instead: the county
before the programme, when stations took no accidents at all).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from gisapp.core.errors import NotFound, Text, ValidationError

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
BOUNDARY_KINDS = ("in_force", "at", "plan")
PARTICIPATION_KINDS = ("recorded", "squadrons_alone", "all_stations", "stations")
ROSTER_KINDS = ("recorded", "posts")
CARS_SCALE = (0.5, 2.0)
MAX_PERIOD_YEARS = 3


@dataclass(frozen=True)
class Scenario:
    """What the replay changes: boundaries, participation, roster (see the README's Replay section)."""

    name: str = "baseline"
    boundaries: str = "in_force"
    boundaries_date: date | None = None
    plan_id: int | None = None
    plan_kind: str | None = None
    participation: str = "recorded"
    stations: tuple[int, ...] = ()
    station_codes: tuple[str, ...] = ()
    roster: str = "recorded"
    proposal_id: int | None = None
    cars_scale: float = 1.0
    extra: dict = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The scenario as parsed (the shape the page posts)."""
        b: dict[str, Any] = {"kind": self.boundaries}
        if self.boundaries == "at":
            b["date"] = self.boundaries_date.isoformat()
        elif self.boundaries == "plan":
            b["plan_id"], b["plan_kind"] = self.plan_id, self.plan_kind
        p: dict[str, Any] = {"kind": self.participation}
        if self.participation == "stations":
            p["stations"] = list(self.station_codes)
        r: dict[str, Any] = {"kind": self.roster, "cars_scale": self.cars_scale}
        if self.roster == "posts":
            r["proposal_id"] = self.proposal_id
        return {"name": self.name, "boundaries": b, "participation": p, "roster": r}


def _obj(v: Any, where: str, required: bool = False) -> dict:
    if v is None and not required:
        return {}
    if not isinstance(v, dict):
        raise ValidationError("must be a JSON object", where, key="err.not_object")
    return v


def _kind(d: dict, where: str, options: tuple[str, ...], default: str) -> str:
    k = d.get("kind", default)
    if not isinstance(k, str) or k not in options:
        raise ValidationError(f"must be one of {', '.join(options)}", f"{where}.kind", key="err.one_of",
                              params={"options": ", ".join(options)})
    return k


def _int_id(v: Any, where: str) -> int:
    if v is None:
        raise ValidationError("is required", where, key="err.required")
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValidationError("must be a positive integer id", where, key="err.not_id")
    return v


def _date(v: Any, where: str) -> date:
    if v is None:
        raise ValidationError("is required", where, key="err.required")
    if not isinstance(v, str):
        raise ValidationError("must be a date YYYY-MM-DD", where, key="err.replay.not_date")
    try:
        return date.fromisoformat(v)
    except ValueError:
        raise ValidationError("must be a date YYYY-MM-DD", where, key="err.replay.not_date") from None


def parse_scenario(conn: psycopg.Connection, body: dict, field: str = "scenario") -> Scenario:
    """Check a scenario JSON object against the database and return it parsed.

    Raises ValidationError (400) for wrong types or values and NotFound (404) for an unknown
    plan, organisation or post proposal; a roster without units is a 422.
    """
    body = _obj(body, field, required=True)
    name = body.get("name", "scenario")
    if not isinstance(name, str):
        raise ValidationError("must be text", f"{field}.name", key="err.not_string")
    if len(name) > 200:
        raise ValidationError("at most 200 characters", f"{field}.name", key="err.too_long", params={"limit": 200})
    kw: dict[str, Any] = {"name": name or "scenario"}
    b = _obj(body.get("boundaries"), f"{field}.boundaries")
    kw["boundaries"] = _kind(b, f"{field}.boundaries", BOUNDARY_KINDS, "in_force")
    if kw["boundaries"] == "at":
        kw["boundaries_date"] = _date(b.get("date"), f"{field}.boundaries.date")
    elif kw["boundaries"] == "plan":
        pid = _int_id(b.get("plan_id"), f"{field}.boundaries.plan_id")
        row = conn.execute("SELECT id, kind, origin FROM plan WHERE id = %s", [pid]).fetchone()
        if row is None or row["origin"] == "mclp":
            raise NotFound(f"no plan {pid} with areas", f"{field}.boundaries.plan_id", key="err.replay.unknown_plan",
                           params={"id": pid})
        kw["plan_id"], kw["plan_kind"] = pid, row["kind"]
    p = _obj(body.get("participation"), f"{field}.participation")
    kw["participation"] = _kind(p, f"{field}.participation", PARTICIPATION_KINDS, "recorded")
    if kw["participation"] == "stations":
        codes = p.get("stations")
        where = f"{field}.participation.stations"
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise ValidationError("must be a list of organisation codes", where, key="err.not_array")
        rows = {r["code"]: r["id"] for r in conn.execute(
            "SELECT id, code FROM organisation WHERE code = ANY(%s) AND kind = 'station'", [codes]).fetchall()}
        unknown = [c for c in codes if c not in rows]
        if unknown:
            raise NotFound(f"no station {', '.join(unknown[:5])}", where, key="err.replay.unknown_org",
                           params={"codes": Text.pair("、".join(unknown[:5]), ", ".join(unknown[:5]))})
        kw["stations"] = tuple(sorted({rows[c] for c in codes}))
        kw["station_codes"] = tuple(sorted(set(codes)))
    r = _obj(body.get("roster"), f"{field}.roster")
    kw["roster"] = _kind(r, f"{field}.roster", ROSTER_KINDS, "recorded")
    scale = r.get("cars_scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise ValidationError("must be a number", f"{field}.roster.cars_scale", key="err.not_number")
    if not CARS_SCALE[0] <= scale <= CARS_SCALE[1]:
        raise ValidationError(f"must be between {CARS_SCALE[0]} and {CARS_SCALE[1]}", f"{field}.roster.cars_scale",
                              key="err.range", params={"lo": CARS_SCALE[0], "hi": CARS_SCALE[1]})
    kw["cars_scale"] = float(scale)
    if kw["roster"] == "posts":
        pid = _int_id(r.get("proposal_id"), f"{field}.roster.proposal_id")
        row = conn.execute("SELECT p.id FROM plan p WHERE p.id = %s AND p.origin = 'mclp' "
                           "AND EXISTS (SELECT 1 FROM plan_post pp WHERE pp.plan_id = p.id)", [pid]).fetchone()
        if row is None:
            raise NotFound(f"no patrol-post proposal {pid}", f"{field}.roster.proposal_id",
                           key="err.replay.unknown_proposal", params={"id": pid})
        kw["proposal_id"] = pid
    n = conn.execute("SELECT count(*) AS n FROM unit u JOIN organisation o ON o.id = u.organisation_id "
                     "WHERE o.hq IS NOT NULL").fetchone()["n"]
    if n == 0:
        raise ValidationError("the roster has no units (no unit of an organisation with headquarters)",
                              f"{field}.roster", status=422, key="err.replay.no_units")
    return Scenario(**kw)


def local_day_start(d: date) -> datetime:
    """Midnight of a local (Asia/Shanghai) date."""
    return datetime.combine(d, time(0), tzinfo=LOCAL_TZ)


def parse_period(conn: psycopg.Connection, body: dict, field: str = "period") -> tuple[datetime, datetime]:
    """``{"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}`` local dates, inclusive, as [start, end).

    Keyed 4xx when a date is missing or malformed, reversed, the period is longer than three
    years, or it holds no incident.
    """
    body = _obj(body, field, required=True)
    d0 = _date(body.get("from"), f"{field}.from")
    d1 = _date(body.get("to"), f"{field}.to")
    if d1 < d0:
        raise ValidationError("the period ends before it starts", f"{field}.to", key="err.replay.period_reversed")
    try:
        limit = d0.replace(year=d0.year + MAX_PERIOD_YEARS)
    except ValueError:  # 29 February
        limit = d0.replace(year=d0.year + MAX_PERIOD_YEARS, day=28)
    if d1 >= limit:
        raise ValidationError(f"at most {MAX_PERIOD_YEARS} years", f"{field}.to", key="err.replay.period_too_long",
                              params={"years": MAX_PERIOD_YEARS})
    start, end = local_day_start(d0), local_day_start(d1 + timedelta(days=1))
    n = conn.execute("SELECT EXISTS (SELECT 1 FROM incident WHERE reported_at >= %s AND reported_at < %s "
                     "AND status <> 'cancelled' AND duplicate_of IS NULL) AS x", [start, end]).fetchone()["x"]
    if not n:
        raise ValidationError("no incident in the period", field, status=422, key="err.replay.no_incidents",
                              params={"from": d0.isoformat(), "to": d1.isoformat()})
    return start, end
