"""The service's periodic upkeep, run by a thread in each web worker (no cron needed).

Every ``maintenance_interval_s`` it applies the grid ownership changes of published plans
whose effective time has come (``planning.apply_due``), raises the SLA overdue events of legs
whose clock ran out (``sla.sweep_overdue``), drops expired live events, and takes the new
position reports into the patrol coverage (``routing.patrol.ingest``). All are idempotent or
locked, so workers running them at the same time do no harm; ``gisapp plan apply-due`` does
the first from the command line.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from routing.periodic import Periodic


class Maintenance(Periodic):
    thread_name = "gisapp-maintenance"

    def __init__(self, url: str, settings: Any, interval_s: float, log=None):
        super().__init__(interval_s, min_gap_s=min(1.0, interval_s), log=log)
        self.url, self.settings = url, settings

    def task(self) -> dict:
        from routing import patrol

        from .planning import apply_due
        from .sla import sweep_overdue
        from .stream import prune_events

        with psycopg.connect(self.url, row_factory=dict_row, application_name="gisapp-maintenance") as conn:
            out = {"grid_changes_applied": apply_due(conn),
                   "overdue_events": len(sweep_overdue(conn, self.settings)),
                   "events_pruned": prune_events(conn, self.settings)}
            conn.commit()
            got = patrol.ingest(conn, self.settings)
            conn.commit()
        out["patrol_reports_matched"] = got["matched"] if got else 0
        return out

    def report(self, out: dict) -> str | None:
        if not any(out.values()):
            return None
        return "maintenance: " + ", ".join(f"{k} {v}" for k, v in out.items())
