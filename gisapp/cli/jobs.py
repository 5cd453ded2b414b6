"""The `gisapp jobs` commands: a runner of background jobs (replays), the queue's state, the sweep."""

from __future__ import annotations

import json
import logging

import click

from gisapp.core import db


@click.group("jobs")
def jobs_group() -> None:
    """Background jobs (replays): runner processes beside the web workers."""


@jobs_group.command("worker")
@click.option("--exit-when-idle", is_flag=True,
              help="exit after jobs_idle_exit_s without work (how the service spawns runners on demand)")
def jobs_worker(exit_when_idle: bool) -> None:
    """Run queued jobs, one at a time, while a runner slot (jobs_max_runners) is free."""
    from gisapp.core.jobs import Runner, runner_settings
    from gisapp.jobkinds import HANDLERS

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    s = runner_settings()
    n = Runner(s.database_url, s, HANDLERS, exit_when_idle=exit_when_idle).run()
    click.echo(f"jobs: {n} jobs ended")


@jobs_group.command("status")
def jobs_status() -> None:
    """Jobs by status and the runners holding a slot."""
    from gisapp.core import jobs
    from gisapp.core.jobs import runner_settings

    s = runner_settings()
    with db.connect(s.database_url) as conn:
        click.echo(json.dumps({"jobs": jobs.counts(conn), "runners": jobs.runners(conn),
                               "max_runners": s.jobs_max_runners}))


@jobs_group.command("sweep")
def jobs_sweep() -> None:
    """Fail the running jobs whose runner stopped beating (what the maintenance sweep does)."""
    from gisapp.core import jobs
    from gisapp.core.jobs import runner_settings

    s = runner_settings()
    with db.connect(s.database_url) as conn:
        n = jobs.sweep_stale(conn, s.jobs_stale_after_s)
        conn.commit()
    click.echo(f"{n} stale jobs failed")
