"""`gisapp replay` and `gisapp replay-sweep`: replay recorded incidents under a scenario (issue 15)."""

from __future__ import annotations

import json
import sys

import click

from gisapp.core import db
from gisapp.core.config import Settings


def _read_json(path: str | None, default):
    if path is None:
        return default
    with open(path, encoding="utf-8") as fh:
        try:
            return json.load(fh)
        except json.JSONDecodeError as e:
            raise click.ClickException(f"{path}: not JSON ({e})") from None


def _fmt_delta(d: dict, scale: float = 1.0, unit: str = "") -> str:
    if d["value"] is None:
        return "-"
    return f"{d['value'] / scale:+.2f}{unit} (95% CI {d['ci_low'] / scale:+.2f} .. {d['ci_high'] / scale:+.2f})"


def _summary_lines(c: dict) -> list[str]:
    b, s, d = c["baseline"], c["scenario"], c["delta"]
    lines = [f"period {b['period']['start']} .. {b['period']['end']}: {b['incidents']} incidents, {b['legs']} legs"]
    for label, r in (("baseline", b), ("scenario", s)):
        a, acc = r["arrival_s"]["all"], r["arrival_s"]["accident"]
        lines.append(f"{label:9s} {r['scenario']['name']}: arrival mean {a['mean'] / 60:.1f} min "
                     f"(p90 {a['p90'] / 60:.1f}), accidents {acc['mean'] / 60:.1f} min, within "
                     f"{r['within_target']['target_s'] / 60:.0f} min {r['within_target']['share']:.1%}, "
                     f"waited {r['waited']['legs']}, fallbacks {r['fallbacks']}, "
                     f"stations' share of accidents {r['station_share_of_accidents']:.1%}")
    cal = b["calibration"]
    if cal.get("legs"):
        lines.append(f"calibration (baseline against the record): daily mean error {cal['daily_mae_pct']:.2f}%, "
                     f"per organisation {cal['by_org_mae_pct']:.2f}%, per leg {cal['leg_mae_pct']:.2f}%, "
                     f"bias {cal['mean_bias_pct']:+.2f}%")
    lines.append("delta mean arrival: " + _fmt_delta(d["mean_arrival_s"], 60, " min"))
    lines.append("delta accident arrival: " + _fmt_delta(d["accident_mean_arrival_s"], 60, " min"))
    lines.append("delta share within target: " + _fmt_delta(d["within_target_share"]))
    lines.append(f"incidents changing owner: {c['changed_owner']['count']}")
    return lines


@click.command("replay")
@click.option("--from", "date_from", required=True, help="first local (Beijing) date, YYYY-MM-DD")
@click.option("--to", "date_to", required=True, help="last local date, YYYY-MM-DD (inclusive)")
@click.option("--scenario", "scenario_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="scenario JSON file")
@click.option("--baseline", "baseline_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="baseline scenario JSON file (default: the recorded layout, participation and roster)")
@click.option("--out", default=None, type=click.Path(dir_okay=False, writable=True),
              help="write the comparison JSON here")
@click.option("--seed", default=0, type=int, help="seed of the drawn on-scene times and the bootstrap")
def replay_cmd(date_from: str, date_to: str, scenario_file: str, baseline_file: str | None, out: str | None,
               seed: int) -> None:
    """Replay a period under a baseline and a scenario; print the summary and the differences."""
    from gisapp import replay
    from gisapp.core.errors import GisappError

    s = Settings.from_env()
    body = _read_json(scenario_file, None)
    base_body = _read_json(baseline_file, {"name": "baseline"})
    with db.connect(s.database_url) as conn:
        try:
            start, end = replay.parse_period(conn, {"from": date_from, "to": date_to})
            base_sc = replay.parse_scenario(conn, base_body, "baseline")
            sc = replay.parse_scenario(conn, body, "scenario")
        except GisappError as e:
            raise click.ClickException(f"{e.field}: {e.message('en')}") from None

        def say(f: float, m: str) -> None:
            click.echo(f"\r{m} {f:.0%}   ", nl=False, err=True)

        base = replay.run(conn, s, base_sc, start, end, progress=say, seed=seed)
        res = replay.run(conn, s, sc, start, end, progress=say, seed=seed)
        click.echo("", err=True)
    c = replay.compare(base, res, seed=seed)
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            json.dump(c, fh, ensure_ascii=False)
    for line in _summary_lines(c):
        click.echo(line)


@click.command("replay-sweep")
@click.option("--from", "date_from", required=True, help="first local (Beijing) date, YYYY-MM-DD")
@click.option("--to", "date_to", required=True, help="last local date, YYYY-MM-DD (inclusive)")
@click.option("--scenarios", "scenarios_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="JSON file with a list of scenarios")
@click.option("--baseline", "baseline_file", default=None, type=click.Path(exists=True, dir_okay=False))
@click.option("--workers", default=None, type=int, help="local processes (default: setting replay_workers)")
@click.option("--scheduler", default=None,
              help="Dask scheduler address (default: setting dask_scheduler; empty: local processes)")
@click.option("--out", default=None, type=click.Path(dir_okay=False, writable=True))
def replay_sweep_cmd(date_from: str, date_to: str, scenarios_file: str, baseline_file: str | None,
                     workers: int | None, scheduler: str | None, out: str | None) -> None:
    """Replay many scenarios in parallel (local processes or a Dask cluster); print one line each."""
    from gisapp.replay.sweep import sweep

    s = Settings.from_env()
    scenarios = _read_json(scenarios_file, [])
    if not isinstance(scenarios, list) or not scenarios:
        raise click.ClickException(f"{scenarios_file}: a non-empty JSON list of scenarios is required")
    result = sweep(s, {"from": date_from, "to": date_to}, scenarios, baseline=_read_json(baseline_file, None),
                   workers=workers, scheduler=scheduler)
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            json.dump(result, fh, ensure_ascii=False)
    if "error" in result["baseline"]:
        raise click.ClickException(json.dumps(result["baseline"]["error"], ensure_ascii=False))
    click.echo(f"runner: {result['runner']}")
    for r in result["results"]:
        if "error" in r:
            click.echo(f"{r['scenario'].get('name', '?')}: error {r['error'].get('key')}: {r['error']['message']}",
                       err=True)
            continue
        d = r["delta"]
        click.echo(f"{r['name']}: arrival {r['mean_arrival_s'] / 60:.1f} min ({_fmt_delta(d['mean_arrival_s'], 60)}), "
                   f"accidents {r['accident_mean_arrival_s'] / 60:.1f} min "
                   f"({_fmt_delta(d['accident_mean_arrival_s'], 60)}), waited {r['waited_legs']}, "
                   f"fallbacks {r['fallbacks']}")
    sys.stdout.flush()
