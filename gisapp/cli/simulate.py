"""`gisapp simulate-live`: feed the demo with incidents and moving units (gisapp.dispatch.simulate)."""

from __future__ import annotations

import json

import click

from gisapp.core.config import Settings
from gisapp.core.errors import NotFound
from gisapp.dispatch.simulate import Simulator


@click.command("simulate-live")
@click.option("--rate", "rate_per_min", type=float, default=6.0, show_default=True, help="new incidents per minute")
@click.option("--time-scale", type=float, default=10.0, show_default=True,
              help="how much faster than real time units drive and legs progress")
@click.option("--positions-every", "position_interval_s", type=float, default=2.0, show_default=True,
              help="seconds between position reports")
@click.option("--jitter-units", type=int, default=20, show_default=True, help="idle units reporting each round")
@click.option("--duration", "duration_s", type=float, default=0.0, show_default=True,
              help="stop after this many seconds (0: until Ctrl-C)")
@click.option("--seed", type=int, default=None, help="random seed")
def simulate_live(rate_per_min: float, time_scale: float, position_interval_s: float, jitter_units: int,
                  duration_s: float, seed: int | None) -> None:
    """Feed the demo with new incidents and moving units, to watch the dispatcher page work."""
    if rate_per_min < 0 or time_scale <= 0 or position_interval_s <= 0:
        raise click.BadParameter("rate >= 0, time-scale > 0 and positions-every > 0")
    s = Settings.from_env()
    try:
        sim = Simulator(s.database_url, s, rate_per_min, time_scale, seed, jitter_units,
                        log=lambda m: click.echo(m, err=True))
    except NotFound as e:
        raise click.ClickException(e.reason) from None
    try:
        counts = sim.run(duration_s, position_interval_s)
    except KeyboardInterrupt:
        counts = sim.counts
    click.echo(json.dumps(counts))
