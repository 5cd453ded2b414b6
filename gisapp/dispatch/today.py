"""Today's figures for the home pages of a station chief and the bureau's leadership (issue 14).

Open legs, the SLA clocks overdue right now (the same per-leg rule as the desk and the sweep:
``sla.leg_clocks``), incidents reported today and legs dispatched today, for one organisation or
the whole county. "Today" is the Beijing-local day (``local_timezone``). The month's rates and
the ranking come from the reports API (``/api/v1/reports/*``); these are the live counts beside them.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from .rules import TERMINAL_LEG
from .sla import leg_clocks


def local_day_start(now: datetime, tz_name: str) -> datetime:
    """Midnight of ``now``'s local day in ``tz_name``, as an aware datetime."""
    tz = ZoneInfo(tz_name)
    return datetime.combine(now.astimezone(tz).date(), time(0), tz)


def today_figures(conn: psycopg.Connection, settings, organisation_id: int | None = None,
                  now: datetime | None = None) -> dict[str, Any]:
    """Return the live counts of ``organisation_id`` (None: the county).

    Returns
    -------
    dict
        ``open_legs`` (legs not closed, cancelled or handed back), ``overdue_legs`` (open legs with
        at least one clock overdue), ``overdue_clocks`` (leg x clock pairs overdue now: the rows of
        ``/api/v1/reports/overdue``), ``overdue_by_clock``, ``incidents_today`` (reported since local
        midnight, not merged or cancelled; an organisation's: its station or traffic owner or a leg
        of it), ``legs_today`` (dispatched since local midnight), ``day`` and ``as_of``.
    """
    now = now or conn.execute("SELECT now() AS now").fetchone()["now"]
    start = local_day_start(now, settings.local_timezone)
    legs = conn.execute(
        "SELECT id, status, dispatched_at, first_dispatched_at, signed_off_at, first_feedback_at, closed_at "
        "FROM dispatch_leg WHERE status <> ALL(%(terminal)s) AND dispatched_at <= %(now)s "
        "AND (%(org)s::bigint IS NULL OR organisation_id = %(org)s::bigint)",
        {"terminal": list(TERMINAL_LEG), "org": organisation_id, "now": now}).fetchall()
    by_clock = {"sign_off": 0, "first_feedback": 0, "close": 0}
    overdue_legs = 0
    for leg in legs:
        late = leg_clocks(leg, settings, now)["overdue"]
        overdue_legs += bool(late)
        for c in late:
            by_clock[c] += 1
    row = conn.execute(
        """
        SELECT (SELECT count(*) FROM incident i
                 WHERE i.reported_at >= %(start)s AND i.reported_at <= %(now)s
                   AND i.status NOT IN ('merged', 'cancelled')
                   AND (%(org)s::bigint IS NULL OR i.station_org_id = %(org)s::bigint
                        OR i.traffic_org_id = %(org)s::bigint
                        OR EXISTS (SELECT 1 FROM dispatch_leg l WHERE l.incident_id = i.id
                                   AND l.organisation_id = %(org)s::bigint))) AS incidents_today,
               (SELECT count(*) FROM dispatch_leg l
                 WHERE l.dispatched_at >= %(start)s AND l.dispatched_at <= %(now)s AND l.status <> 'cancelled'
                   AND (%(org)s::bigint IS NULL OR l.organisation_id = %(org)s::bigint)) AS legs_today
        """, {"start": start, "now": now, "org": organisation_id}).fetchone()
    return {
        "organisation_id": organisation_id,
        "day": start.date().isoformat(),
        "as_of": now.isoformat(),
        "open_legs": len(legs),
        "overdue_legs": overdue_legs,
        "overdue_clocks": sum(by_clock.values()),
        "overdue_by_clock": by_clock,
        "incidents_today": row["incidents_today"],
        "legs_today": row["legs_today"],
    }
