"""The replay on the demo: calibration against the recorded arrivals, the sweep on a local Dask
cluster and in local processes, the CLI."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner

from gisapp import replay
from gisapp.core import db
from gisapp.replay.sweep import sweep


def _last_days(conn, days: int) -> dict:
    last = conn.execute("SELECT max(reported_at AT TIME ZONE 'Asia/Shanghai')::date AS d FROM incident").fetchone()["d"]
    return {"from": (last - timedelta(days=days - 1)).isoformat(), "to": last.isoformat()}


@pytest.mark.slow
def test_the_baseline_reproduces_the_recorded_arrivals(demo_database_url, demo_settings):
    with db.connect(demo_database_url) as conn:
        period = _last_days(conn, 90)
        start, end = replay.parse_period(conn, period)
        res = replay.run(conn, demo_settings, replay.parse_scenario(conn, {"name": "baseline"}), start, end)
    out = res.to_json()
    cal = out["calibration"]
    assert cal["legs"] > 8000
    assert cal["daily_mae_pct"] <= 5.0, cal
    assert cal["by_org_mae_pct"] <= 5.0, cal
    assert abs(cal["mean_bias_pct"]) <= 5.0, cal
    assert out["unserved_legs"] == 0
    assert out["arrival_s"]["accident"]["n"] > 1000
    assert 0 < out["within_target"]["share"] <= 1
    assert "AS-ZP" in {r["code"] for r in out["arrival_s"]["by_org"]}


@pytest.mark.slow
def test_a_sweep_on_a_local_dask_cluster(demo_database_url, demo_settings):
    from distributed import Client, LocalCluster

    with db.connect(demo_database_url) as conn:
        period = _last_days(conn, 14)
    scenarios = [{"name": "half the cars", "roster": {"kind": "recorded", "cars_scale": 0.5}},
                 {"name": "squadrons alone", "participation": {"kind": "squadrons_alone"}},
                 {"name": "bad", "participation": {"kind": "stations", "stations": ["NO-SUCH"]}}]
    from dataclasses import replace

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        # the scheduler's address as the setting dask_scheduler (GISAPP_DASK_SCHEDULER) gives it
        out = sweep(replace(demo_settings, dask_scheduler=cluster.scheduler_address), period, scenarios, n_boot=200)
        with Client(cluster) as client:
            again = sweep(demo_settings, period, scenarios[:1], client=client, n_boot=200)
    assert again["runner"] == "dask" and again["results"][0]["delta"] == out["results"][0]["delta"]
    assert out["runner"] == "dask"
    half, alone, bad = out["results"]
    assert half["name"] == "half the cars" and alone["name"] == "squadrons alone"
    # fewer cars: more legs fall back to a neighbour of the joint zone (or wait), never sooner on average
    assert half["fallbacks"] + half["waited_legs"] > out["baseline"]["fallbacks"]
    assert half["delta"]["mean_arrival_s"]["value"] >= 0
    # squadrons alone: accidents later (the demo's squadrons sit further from the accidents)
    assert alone["delta"]["accident_mean_arrival_s"]["value"] > 0
    assert alone["changed_owner"] > 0
    assert bad["error"]["key"] == "err.replay.unknown_org"


@pytest.mark.slow
def test_a_sweep_in_local_processes_and_the_cli(demo_database_url, demo_settings, tmp_path, monkeypatch):
    with db.connect(demo_database_url) as conn:
        period = _last_days(conn, 7)
    out = sweep(demo_settings, period, [{"name": "all stations", "participation": {"kind": "all_stations"}}],
                workers=2, scheduler="", n_boot=100)
    assert out["runner"] == "processes" and "error" not in out["results"][0]
    from gisapp.cli import main

    monkeypatch.setenv("GISAPP_DATABASE_URL", demo_database_url)
    sc = tmp_path / "sc.json"
    sc.write_text(json.dumps({"name": "squadrons alone", "participation": {"kind": "squadrons_alone"}}))
    res = tmp_path / "out.json"
    r = CliRunner().invoke(main, ["replay", "--from", period["from"], "--to", period["to"], "--scenario", str(sc),
                                  "--out", str(res)])
    assert r.exit_code == 0, r.output
    assert "delta accident arrival" in r.output
    body = json.loads(res.read_text())
    assert body["delta"]["accident_mean_arrival_s"]["value"] is not None
    assert body["per_grid"]["type"] == "FeatureCollection" and body["per_grid"]["features"]
    assert body["changed_owner"]["areas"]["features"]
    r = CliRunner().invoke(main, ["replay", "--from", "1990-01-01", "--to", "1990-01-02", "--scenario", str(sc)])
    assert r.exit_code != 0 and "No incident to replay" in r.output
