"""The `gisapp plan` commands: list plans, compare, propose, apply grid changes now due."""

from __future__ import annotations

import json

import click

from gisapp.core import db
from gisapp.core.config import Settings

_SYSTEM = {"username": "cli"}


@click.group("plan")
def plan_group() -> None:
    """Planning: drafts of jurisdictions and joint war zones."""


@plan_group.command("list")
@click.option("--kind", type=click.Choice(["station", "traffic", "joint_zone"]), default=None)
def plan_list(kind: str | None) -> None:
    """List the plans."""
    from gisapp.planning.drafts import list_plans

    with db.connect(Settings.from_env().database_url) as conn:
        for p in list_plans(conn, kind):
            click.echo(f"{p['id']:>5}  {p['kind']:<10} {p['status']:<9} {p['origin']:<8} {p['name']}")


@plan_group.command("apply-due")
def plan_apply_due() -> None:
    """Apply the grid ownership changes of published station plans whose time has come (cron)."""
    from gisapp.planning.publish import apply_due

    with db.connect(Settings.from_env().database_url) as conn:
        n = apply_due(conn, _SYSTEM)
        conn.commit()
    click.echo(f"{n} grid changes applied")


@plan_group.command("propose")
@click.argument("method", type=click.Choice(["voronoi", "balanced", "mclp"]))
@click.option("--kind", type=click.Choice(["station", "traffic"]), default="station")
@click.option("--unit", type=click.Choice(["grid", "village"]), default="grid")
@click.option("--weight", type=float, default=None, help="balanced: weight of the workload CV")
@click.option("--zone", "zone_code", default=None, help="mclp: the joint zone's code")
@click.option("--cars", type=int, default=3, help="mclp: patrol cars per period")
def plan_propose(method: str, kind: str, unit: str, weight: float | None, zone_code: str | None, cars: int) -> None:
    """Make a proposal draft and print its objective."""
    from gisapp.planning.proposals import propose

    s = Settings.from_env()
    body = {"method": method, "kind": kind, "unit": unit, "zone_code": zone_code, "cars": cars}
    if weight is not None:
        body["weight"] = weight
    with db.connect(s.database_url) as conn:
        try:
            row = propose(conn, _SYSTEM, body, s)
        except Exception as e:  # GisappError carries field and reason
            raise click.ClickException(getattr(e, "reason", str(e))) from None
        conn.commit()
    click.echo(json.dumps({"plan_id": row["id"], "objective": row["objective"]}, ensure_ascii=False, indent=2))


@plan_group.command("compare")
@click.argument("plan_id", type=int)
def plan_compare(plan_id: int) -> None:
    """Print a plan's comparison with the published layout (summary and per jurisdiction)."""
    from gisapp.planning.compare import compare_plan

    s = Settings.from_env()
    with db.connect(s.database_url) as conn:
        out = compare_plan(conn, plan_id, s)
    for side in ("published", "draft"):
        sm = out["summary"][side]
        click.echo(f"{side:<9} incidents p50/p90/max {sm['incident_time_s']['p50']}/{sm['incident_time_s']['p90']}/"
                   f"{sm['incident_time_s']['max']} s  roads within target {sm['road_km_within_target_share']}  "
                   f"workload CV {sm['workload_cv']}")
    for r in out["jurisdictions"]:
        p, d = r["published"] or {}, r["draft"] or {}
        click.echo(f"  {r['code']:<12} incidents {p.get('incidents', 0):>6} -> {d.get('incidents', 0):>6}   "
                   f"p90 {(p.get('incident_time_s') or {}).get('p90')} -> {(d.get('incident_time_s') or {}).get('p90')} s")
    click.echo(f"incidents changing owner: {out['changed_incidents']['count']}")
