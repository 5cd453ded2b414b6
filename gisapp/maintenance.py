"""The service's periodic upkeep, run by a thread in each web worker (no cron needed).

The one owner of the service's periodic tasks. Every ``sla_sweep_interval_s`` it raises the
SLA overdue events of legs whose clock ran out (``dispatch.sla.sweep_overdue``); every
``maintenance_interval_s`` it also applies the grid ownership changes of published plans
whose effective time has come (``planning.publish.apply_due``), brings organisation's
participation flags to the version in force (``dispatch.participation.sync_flags``), drops
expired live events, takes the new position reports into the patrol coverage
(``routing.patrol.ingest``), fails the background jobs whose runner stopped beating and starts
runners for queued jobs (``gisapp.core.jobs``). All
are idempotent or locked, so workers running them at the same time do no harm; ``gisapp plan
apply-due`` does the first from the command line.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg.rows import dict_row

from gisapp.core import jobs
from gisapp.dispatch.events import prune_events
from gisapp.dispatch.participation import sync_flags
from gisapp.dispatch.sla import sweep_overdue
from gisapp.planning.publish import apply_due
from routing import patrol
from routing.periodic import Periodic


def intervals(settings: Any) -> tuple[float, float]:
    """Return (SLA sweep, upkeep) intervals in seconds; 0 turns a task off."""
    return max(settings.sla_sweep_interval_s, 0.0), max(settings.maintenance_interval_s, 0.0)


class Maintenance(Periodic):
    thread_name = "gisapp-maintenance"

    def __init__(self, url: str, settings: Any, log=None):
        self.sweep_s, self.upkeep_s = intervals(settings)
        tick = min(s for s in (self.sweep_s, self.upkeep_s) if s > 0)
        super().__init__(tick, min_gap_s=min(1.0, tick), log=log)
        self.url, self.settings = url, settings
        self._next_upkeep = 0.0

    def task(self) -> dict:
        """Run every task now (``run_once``, ``gisapp`` tests and tools)."""
        return self._run(upkeep=self.upkeep_s > 0)

    def tick(self) -> dict:
        """The thread's run: the SLA sweep each time, the upkeep when its interval has passed."""
        out = self._run(upkeep=self.upkeep_s > 0 and time.monotonic() >= self._next_upkeep)
        self.runs += 1
        return out

    def _run(self, upkeep: bool) -> dict:
        out: dict[str, int] = {}
        with psycopg.connect(self.url, row_factory=dict_row, application_name="gisapp-maintenance",
                             connect_timeout=max(2, int(getattr(self.settings, "db_connect_timeout_s", 5) or 5))) as conn:
            if self.sweep_s > 0:
                out["overdue_events"] = len(sweep_overdue(conn, self.settings))
                conn.commit()
            if upkeep:
                self._next_upkeep = time.monotonic() + self.upkeep_s
                out["grid_changes_applied"] = apply_due(conn)
                out["participation_flags_synced"] = sync_flags(conn)  # dated changes come due (issue 15)
                out["events_pruned"] = prune_events(conn, self.settings)
                conn.commit()
                # background jobs: fail those whose runner died, start runners for waiting ones
                # (a service restarted with jobs still queued)
                out["stale_jobs_failed"] = jobs.sweep_stale(conn, self.settings.jobs_stale_after_s)
                conn.commit()
                out["job_runners_started"] = jobs.ensure_runners(conn, self.settings)
                got = patrol.ingest(conn, self.settings)
                conn.commit()
                out["patrol_reports_matched"] = got["matched"] if got else 0
        return out

    def report(self, out: dict) -> str | None:
        if not any(out.values()):
            return None
        return "maintenance: " + ", ".join(f"{k} {v}" for k, v in out.items())
