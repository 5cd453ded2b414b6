"""Run the SLA clocks of dispatch legs: per-leg state, overdue events, and the SLA metrics.

Each leg has three clocks, all started at ``dispatched_at``: sign-off (``sign_off_sla_s``),
first feedback (``first_feedback_sla_s``) and closure (``close_sla_s``). A clock is *met*
when its milestone came within the limit, *late* when it came after, *overdue* when it has
not come and the limit has passed, *running* otherwise. The metrics count met / (met + late
+ overdue): the same definition for a leg dispatched a minute ago and for one from last year.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from gisapp.core.errors import Forbidden, NotFound, ValidationError
from gisapp.core.features import parse_time

from .events import emit
from .rules import load_rules

# (clock name, the leg column that stops it, the setting with its limit)
CLOCKS = (
    ("sign_off", "signed_off_at", "sign_off_sla_s"),
    ("first_feedback", "first_feedback_at", "first_feedback_sla_s"),
    ("close", "closed_at", "close_sla_s"),
)


def clock_start(leg: dict[str, Any], clock: str) -> datetime:
    """When a leg's clock started: sign-off from its own dispatch; first feedback and closure from
    the first dispatch of its role (a re-dispatched leg: the caller has been waiting since then)."""
    if clock == "sign_off":
        return leg["dispatched_at"]
    return leg.get("first_dispatched_at") or leg["dispatched_at"]


def leg_clocks(leg: dict[str, Any], settings, now: datetime | None = None) -> dict[str, Any]:
    """Return the state of a leg's three clocks and whether any is overdue.

    A handed-back leg's sign-off clock is *met* when it was signed off within the limit and
    *late* (a miss) otherwise; its other clocks are *handed_back* (the new leg carries them).
    """
    now = now or datetime.now(UTC)
    out: dict[str, Any] = {}
    overdue = []
    for name, col, setting in CLOCKS:
        limit = getattr(settings, setting)
        start = clock_start(leg, name)
        due = start + timedelta(seconds=limit)
        done = leg.get(col)
        if done is not None:
            state = "met" if (done - start).total_seconds() <= limit else "late"
        elif leg.get("status") == "cancelled":
            state = "cancelled"
        elif leg.get("status") == "handed_back":
            state = "late" if name == "sign_off" else "handed_back"
        elif (now - start).total_seconds() > limit:
            state = "overdue"
            overdue.append(name)
        else:
            state = "running"
        out[name] = {
            "limit_s": limit,
            "started_at": start.isoformat(),
            "due_at": due.isoformat(),
            "done_at": done.isoformat() if done else None,
            "state": state,
            "remaining_s": round((due - now).total_seconds(), 1) if state == "running" or state == "overdue"
            else None,
        }
    return {"clocks": out, "overdue": overdue}


def sweep_overdue(conn: psycopg.Connection, settings, limit: int = 500) -> list[dict]:
    """Flag legs whose clock has just run out and emit one ``sla.overdue`` event per leg and clock.

    Idempotent across processes: a clock is flagged once (``dispatch_leg.sla_flagged``), and
    legs locked by a running transaction are left to the next sweep.
    """

    flagged: list[dict] = []
    for name, col, setting in CLOCKS:
        rows = conn.execute(sql.SQL(
            "UPDATE dispatch_leg l SET sla_flagged = l.sla_flagged || %(clock)s::text "
            "WHERE l.id IN (SELECT id FROM dispatch_leg WHERE status NOT IN ('closed', 'cancelled', 'handed_back') "
            "  AND {col} IS NULL AND {start} < now() - make_interval(secs => %(limit)s) "
            "  AND NOT (%(clock)s = ANY(sla_flagged)) ORDER BY dispatched_at LIMIT %(n)s FOR UPDATE SKIP LOCKED) "
            "RETURNING l.id, l.incident_id, l.organisation_id, l.unit_id, l.role, l.status, {start} AS started_at"
        ).format(col=sql.Identifier(col), start=sql.SQL("dispatched_at" if name == "sign_off"
                                                         else "coalesce(first_dispatched_at, dispatched_at)")), {"clock": name, "limit": getattr(settings, setting), "n": limit}).fetchall()
        for r in rows:
            flagged.append({"leg_id": r["id"], "incident_id": r["incident_id"], "organisation_id": r["organisation_id"],
                            "unit_id": r["unit_id"], "role": r["role"], "status": r["status"], "clock": name,
                            "due_at": (r["started_at"] + timedelta(seconds=getattr(settings, setting))).isoformat()})
    for f in flagged:
        emit(conn, "sla.overdue", f, f["incident_id"])
    return flagged


# --- the one definition of the figures (sla_metrics and gisapp.reports use these fragments) --------
#
# The legs counted: dispatched in the period, not cancelled, not after ``as_of``. Parameters:
# %(start)s, %(end)s, %(as_of)s; the leg is ``l``.
LEGS_COUNTED = ("l.dispatched_at >= %(start)s AND l.dispatched_at < %(end)s AND l.status <> 'cancelled' "
                "AND l.dispatched_at <= %(as_of)s")
# Per leg (``l``): the start of its sign-off clock (its dispatch) and of its other clocks (the first
# dispatch of its role), and its milestones. The clock conditions below compare times (no per-row
# arithmetic on seconds: the reports scan years of legs); ARRIVAL_S is the arrival time in seconds.
LEG_MEASURES = """
       l.dispatched_at AS so_start, coalesce(l.first_dispatched_at, l.dispatched_at) AS clock_start,
       l.signed_off_at, l.first_feedback_at, l.closed_at, l.arrived_at"""
ARRIVAL_S = "extract(epoch FROM l.arrived_at - l.dispatched_at)"
# Per clock: met (the milestone came within the limit) and decided (met, late, or overdue at
# ``as_of``; a handed-back leg's sign-off is decided, its other clocks go with the new leg), over
# the columns of LEG_MEASURES plus ``status``. Parameters %(as_of)s, %(so)s, %(ff)s, %(cl)s
# (the limits as intervals: sla_params).
CLOCK_MET = {
    "sign_off": "signed_off_at <= so_start + %(so)s::interval",
    "first_feedback": "first_feedback_at <= clock_start + %(ff)s::interval",
    "close": "closed_at <= clock_start + %(cl)s::interval",
}
CLOCK_DECIDED = {
    "sign_off": "signed_off_at IS NOT NULL OR so_start < %(as_of)s::timestamptz - %(so)s::interval "
                "OR status = 'handed_back'",
    "first_feedback": "first_feedback_at IS NOT NULL OR (clock_start < %(as_of)s::timestamptz - %(ff)s::interval "
                      "AND status <> 'handed_back')",
    "close": "closed_at IS NOT NULL OR (clock_start < %(as_of)s::timestamptz - %(cl)s::interval "
             "AND status <> 'handed_back')",
}
# Open now and past its limit (the overdue list).
OPEN_LEG = "status NOT IN ('closed', 'cancelled', 'handed_back')"
CLOCK_OVERDUE = {
    "sign_off": f"signed_off_at IS NULL AND so_start < %(as_of)s::timestamptz - %(so)s::interval AND {OPEN_LEG}",
    "first_feedback": f"first_feedback_at IS NULL AND clock_start < %(as_of)s::timestamptz - %(ff)s::interval "
                      f"AND {OPEN_LEG}",
    "close": f"closed_at IS NULL AND clock_start < %(as_of)s::timestamptz - %(cl)s::interval AND {OPEN_LEG}",
}
SLA_COUNTS = ",\n".join(
    f"count(*) FILTER (WHERE {CLOCK_MET[c]}) AS {c}_met, count(*) FILTER (WHERE {CLOCK_DECIDED[c]}) AS {c}_decided"
    for c in ("sign_off", "first_feedback", "close")) + ",\ncount(*) FILTER (WHERE status = 'handed_back') AS handed_back"
# The brief's 84%: accident (``type = ANY(%(acc)s)``) primary legs closed with the mediation outcome
# (``%(med)s``) among those closed with any outcome.
MEDIATION_DECIDED = "type = ANY(%(acc)s) AND role = 'primary' AND status = 'closed' AND outcome IS NOT NULL"
MEDIATION_MET = MEDIATION_DECIDED + " AND outcome = %(med)s"


def sla_params(settings, as_of: datetime) -> dict[str, Any]:
    """The parameters of the fragments above: the limits of the three clocks and ``as_of``."""
    return {"as_of": as_of, "so": timedelta(seconds=settings.sign_off_sla_s),
            "ff": timedelta(seconds=settings.first_feedback_sla_s), "cl": timedelta(seconds=settings.close_sla_s)}


def rate(met: int, decided: int) -> float | None:
    """met / decided rounded to 6 places; None when nothing is decided (no division by zero)."""
    return round(met / decided, 6) if decided else None


def _org_id(conn: psycopg.Connection, organisation: int | str | None) -> int | None:

    if organisation is None:
        return None
    if isinstance(organisation, int):
        row = conn.execute("SELECT id FROM organisation WHERE id = %s", [organisation]).fetchone()
    else:
        row = conn.execute("SELECT id FROM organisation WHERE code = %s", [organisation]).fetchone()
    if row is None:
        raise NotFound(f"no organisation {organisation!r}", "organisation",
                       key="err.organisation.not_found", params={"id": str(organisation)[:40]})
    return row["id"]


def sla_metrics(conn: psycopg.Connection, settings, start: datetime, end: datetime,
                organisation: int | str | None = None, as_of: datetime | None = None,
                orgs: frozenset[int] | None = None, channel: str | None = None,
                types: list[str] | None = None, outcomes_only: bool = False) -> dict[str, Any]:
    """Compute the brief's rates and the mean arrival time over the legs dispatched in [start, end).

    Parameters
    ----------
    organisation : int or str, optional
        Organisation id or code: only its legs. Default: every leg.
    as_of : datetime, optional
        The time at which open clocks are judged (default now).
    orgs : frozenset of int, optional
        The organisations the caller may see (gisapp.core.scope.visible_organisations; None:
        all). Another organisation is refused (403); none asked means the caller's own.
    channel, types : optional
        Only incidents taken on this channel / of these types (the reports' filters).
    outcomes_only : bool
        Only the legs counted, the outcomes, mediation and the shares (the reports' outcomes): the
        clock rates, arrivals and incident count are None.

    Returns
    -------
    dict
        ``sign_off_rate``, ``first_feedback_rate``, ``close_rate`` (met / decided, None when
        nothing is decided), the counts behind them, closed legs per ``outcomes``, incidents
        closed without dispatch per outcome, ``mediation_rate`` (accident primary legs closed
        with the mediation outcome / those closed with any outcome), ``mean_arrival_s`` over legs that
        arrived, the same for accident incidents, and the stations' share of accident incidents.
    """
    if orgs is None:
        org_id = _org_id(conn, organisation)
    else:
        try:
            asked = _org_id(conn, organisation)
        except NotFound:  # do not tell a scoped caller which organisations exist
            raise Forbidden(f"organisation {organisation!r} is outside your scope", "organisation",
                            key="err.organisation.outside_scope", params={"id": str(organisation)[:40]}) from None
        if asked is not None and asked not in orgs:
            raise Forbidden(f"organisation {organisation!r} is outside your scope", "organisation",
                            key="err.organisation.outside_scope", params={"id": str(organisation)[:40]})
        if asked is None and len(orgs) != 1:
            raise Forbidden("your role sees no single organisation: name one", "organisation",
                            key="err.organisation.name_one")
        org_id = asked if asked is not None else next(iter(orgs))
    rules = load_rules(settings)
    accident_types = rules.types_of_category("accident")
    as_of = as_of or datetime.now(UTC)
    params = sla_params(settings, as_of)
    kinds = conn.execute("SELECT array_agg(id) FILTER (WHERE kind = 'station') AS st, "
                         "array_agg(id) FILTER (WHERE kind = 'accident_section') AS acc FROM organisation").fetchone()
    params.update({"start": start, "end": end, "org": org_id, "acc": accident_types, "med": rules.mediation_outcome,
                   "channel": channel, "types": types, "stations": kinds["st"] or [], "sections": kinds["acc"] or []})
    row = conn.execute(
        "WITH l AS (SELECT l.incident_id, l.incident_type AS type, l.status, l.role, l.outcome, " + ARRIVAL_S + " AS arr_s, "
        + LEG_MEASURES + """
            FROM dispatch_leg l
            WHERE """ + LEGS_COUNTED + """
              AND (%(org)s::bigint IS NULL OR l.organisation_id = %(org)s::bigint)
              AND (%(channel)s::text IS NULL OR l.incident_channel = %(channel)s::text)
              AND (%(types)s::text[] IS NULL OR l.incident_type = ANY(%(types)s::text[]))
        )
        SELECT count(*) AS legs, """ + ("" if outcomes_only else """count(DISTINCT incident_id) AS incidents,
               """ + SLA_COUNTS + """, count(arr_s) AS arrivals, avg(arr_s) AS mean_arrival_s,
               count(arr_s) FILTER (WHERE type = ANY(%(acc)s)) AS accident_arrivals,
               avg(arr_s) FILTER (WHERE type = ANY(%(acc)s)) AS mean_arrival_s_accidents,""") + """
               count(*) FILTER (WHERE """ + MEDIATION_DECIDED + """) AS accident_closed_with_outcome,
               count(*) FILTER (WHERE """ + MEDIATION_MET + """) AS accident_mediated
        FROM l
        """, params).fetchone()
    # closed legs per outcome (the same legs)
    filtered = channel is not None or types is not None
    row["outcomes"] = {r["outcome"]: r["n"] for r in conn.execute(
        "SELECT l.outcome, count(*) AS n FROM dispatch_leg l "
        + "WHERE " + LEGS_COUNTED
        + """ AND l.status = 'closed' AND l.outcome IS NOT NULL
              AND (%(org)s::bigint IS NULL OR l.organisation_id = %(org)s::bigint)"""
        + (""" AND (%(channel)s::text IS NULL OR l.incident_channel = %(channel)s::text)
              AND (%(types)s::text[] IS NULL OR l.incident_type = ANY(%(types)s::text[]))""" if filtered else "")
        + " GROUP BY 1", params)}
    closed_direct = conn.execute(
        """
        SELECT coalesce(jsonb_object_agg(outcome, n), '{}'::jsonb) AS outcomes, coalesce(sum(n), 0) AS n
        FROM (SELECT i.outcome, count(*) AS n FROM incident i
              WHERE i.status = 'closed' AND i.outcome IS NOT NULL AND i.reported_at >= %(start)s
                AND i.reported_at < %(end)s AND i.reported_at <= %(as_of)s
                AND NOT EXISTS (SELECT 1 FROM dispatch_leg l WHERE l.incident_id = i.id AND l.status = 'closed')
                AND (%(channel)s::text IS NULL OR i.channel = %(channel)s::text)
                AND (%(types)s::text[] IS NULL OR i.type = ANY(%(types)s::text[]))
                AND (%(org)s::bigint IS NULL OR i.station_org_id = %(org)s::bigint
                     OR i.traffic_org_id = %(org)s::bigint)
              GROUP BY i.outcome) o
        """, params).fetchone()
    share = conn.execute(
        """
        SELECT count(*) AS accident_incidents,
               count(*) FILTER (WHERE EXISTS (SELECT 1 FROM dispatch_leg l WHERE l.incident_id = i.id
                   AND l.organisation_id = ANY(%(stations)s) AND l.status <> 'cancelled'
                   AND (%(org)s::bigint IS NULL OR l.organisation_id = %(org)s::bigint))) AS accident_incidents_station,
               count(*) FILTER (WHERE EXISTS (SELECT 1 FROM dispatch_leg l WHERE l.incident_id = i.id
                   AND l.organisation_id = ANY(%(sections)s) AND l.status <> 'cancelled'))
                   AS accident_incidents_section
        FROM incident i
        WHERE i.type = ANY(%(acc)s) AND i.reported_at >= %(start)s AND i.reported_at < %(end)s
          AND i.status NOT IN ('merged', 'cancelled')
          AND (%(channel)s::text IS NULL OR i.channel = %(channel)s::text)
          AND (%(types)s::text[] IS NULL OR i.type = ANY(%(types)s::text[]))
        """, params).fetchone()

    def secs(v) -> float | None:
        return round(float(v), 1) if v is not None else None

    return {
        "period": {"from": start.isoformat(), "to": end.isoformat(), "as_of": as_of.isoformat()},
        "organisation_id": org_id,
        "targets_s": {"sign_off": settings.sign_off_sla_s, "first_feedback": settings.first_feedback_sla_s,
                      "close": settings.close_sla_s},
        "legs": row["legs"],
        "incidents": row.get("incidents"),
        "sign_off_rate": rate(row.get("sign_off_met"), row.get("sign_off_decided")),
        "first_feedback_rate": rate(row.get("first_feedback_met"), row.get("first_feedback_decided")),
        "close_rate": rate(row.get("close_met"), row.get("close_decided")),
        "counts": {k: row.get(k) for k in ("sign_off_met", "sign_off_decided", "first_feedback_met",
                                           "first_feedback_decided", "close_met", "close_decided", "arrivals",
                                           "accident_arrivals", "handed_back", "accident_closed_with_outcome",
                                           "accident_mediated")},
        # closed legs per outcome; incidents closed without dispatch per outcome
        "outcomes": dict(sorted(row["outcomes"].items())),
        "incidents_closed_without_dispatch": dict(sorted(closed_direct["outcomes"].items())),
        # the brief's 84%: accident primary legs closed with the mediation outcome among those closed
        # with an outcome (None when none is)
        "mediation_rate": rate(row["accident_mediated"], row["accident_closed_with_outcome"]),
        "mean_arrival_s": secs(row.get("mean_arrival_s")),
        "mean_arrival_s_accidents": secs(row.get("mean_arrival_s_accidents")),
        "accident_incidents": share["accident_incidents"],
        "accident_incidents_station": share["accident_incidents_station"],
        "station_share_of_accidents": rate(share["accident_incidents_station"], share["accident_incidents"]),
        "accident_incidents_section": share["accident_incidents_section"],
        "accident_section_share": rate(share["accident_incidents_section"], share["accident_incidents"]),
    }


def parse_period(args: dict, now: datetime | None = None) -> tuple[datetime, datetime]:
    """Read ``from`` / ``to`` (ISO times; default: the last 30 days)."""
    now = now or datetime.now(UTC)
    end = parse_time(args["to"], "to") if args.get("to") else now
    start = parse_time(args["from"], "from") if args.get("from") else end - timedelta(days=30)
    if start >= end:
        raise ValidationError("must be before 'to'", "from", key="err.period.order")
    return start, end
