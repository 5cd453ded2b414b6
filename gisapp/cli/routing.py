"""`gisapp import-osm` and `gisapp routing ...`: OpenStreetMap roads in, coverage refresh, graph facts."""

from __future__ import annotations

import json

import click

from gisapp.core import db
from gisapp.core.config import Settings


@click.command("import-osm")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--replace", is_flag=True, help="drop the existing road network (and its coverage) first")
def import_osm_command(path: str, replace: bool) -> None:
    """Import the roads of an OpenStreetMap .osm.pbf file (intersections become nodes)."""
    from geodata.osm import OsmImportError, import_osm

    s = Settings.from_env()
    with db.connect(s.database_url) as conn:
        try:
            summary = import_osm(conn, path, s, replace=replace, log=lambda m: click.echo(m, err=True))
        except OsmImportError as e:
            raise click.ClickException(str(e)) from None
        conn.commit()
    click.echo(json.dumps(summary, ensure_ascii=False))


@click.group("routing")
def routing_group() -> None:
    """Road graph and coverage."""


@routing_group.command("graph")
def routing_graph() -> None:
    """Build the road graph and print its size and memory."""
    import routing

    s = Settings.from_env()
    with db.connect(s.database_url) as conn:
        click.echo(json.dumps(routing.get_router(conn, s).graph.summary()))


@routing_group.command("coverage")
@click.option("--live/--no-live", default=True, help="also recompute the live coverage from available units")
def routing_coverage(live: bool) -> None:
    """Recompute road coverage from stations (static) and from available units (live)."""
    from routing import coverage

    s = Settings.from_env()
    with db.connect(s.database_url) as conn:
        out = {"static": coverage.refresh_static(conn, s)}
        if live:
            out["live"] = coverage.refresh_live(conn, s)
        conn.commit()
    click.echo(json.dumps(out))
