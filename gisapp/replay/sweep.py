"""Run a sweep of scenarios over one period: in local processes, or on a Dask distributed cluster.

Every task opens its own database connection, parses its scenario and period (so a bad one
fails alone, with its keyed error), replays and returns the Result; the caller compares each
with the baseline. Local: ``concurrent.futures.ProcessPoolExecutor`` with ``workers``
processes (setting ``replay_workers``). Dask: ``distributed.Client(scheduler)`` (setting
``dask_scheduler``, e.g. ``tcp://host:8786``) maps the same task over the cluster's workers;
the workers need this package and access to the database.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

from gisapp.core import db
from gisapp.core.errors import GisappError

from .results import Result, compare
from .runner import run
from .scenario import parse_period, parse_scenario


def replay_task(settings, period: dict, scenario: dict, seed: int = 0) -> Result | dict:
    """Replay one scenario in this process with its own connection; a keyed error comes back as a dict."""
    with db.connect(settings.database_url) as conn:
        try:
            sc = parse_scenario(conn, scenario)
            start, end = parse_period(conn, period)
            return run(conn, settings, sc, start, end, seed=seed)
        except GisappError as e:
            return {"error": e.to_dict("en"), "scenario": scenario}


def _summary(name: str, c: dict) -> dict[str, Any]:
    d = c["delta"]
    s = c["scenario"]
    return {"name": name, "scenario": s["scenario"], "mean_arrival_s": s["arrival_s"]["all"]["mean"],
            "accident_mean_arrival_s": s["arrival_s"]["accident"]["mean"],
            "within_target_share": s["within_target"]["share"], "fallbacks": s["fallbacks"],
            "waited_legs": s["waited"]["legs"], "delta": {k: d[k] for k in (
                "mean_arrival_s", "accident_mean_arrival_s", "within_target_share")},
            "changed_owner": c["changed_owner"]["count"]}


def sweep(settings, period: dict, scenarios: list[dict], *, baseline: dict | None = None,
          workers: int | None = None, scheduler: str | None = None, seed: int = 0,
          n_boot: int = 1000, client=None) -> dict[str, Any]:
    """Replay the baseline and every scenario of ``scenarios`` over ``period``; compare each with the baseline.

    ``client``: a ``distributed.Client`` to use (tests: a LocalCluster's); else one is opened on
    ``scheduler`` (default the setting ``dask_scheduler``) when set; else local processes.
    Returns {"runner", "baseline": summary json, "results": [per scenario summary | error]}.
    """
    base_body = baseline or {"name": "baseline"}
    bodies = [base_body, *scenarios]
    scheduler = settings.dask_scheduler if scheduler is None else scheduler
    settings = replace(settings)
    if client is not None or scheduler:
        runner = "dask"
        own = None
        if client is None:
            from distributed import Client

            client = own = Client(scheduler)
        try:
            futures = client.map(replay_task, [settings] * len(bodies), [period] * len(bodies), bodies,
                                 [seed] * len(bodies), pure=False)
            out = client.gather(futures)
        finally:
            if own is not None:
                own.close()
    else:
        runner = "processes"
        n = max(1, min(workers or settings.replay_workers, len(bodies)))
        ctx = multiprocessing.get_context("spawn")  # no forked database connections or threads
        with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
            out = list(pool.map(replay_task, [settings] * len(bodies), [period] * len(bodies), bodies,
                                [seed] * len(bodies)))
    base = out[0]
    if isinstance(base, dict):
        return {"runner": runner, "baseline": base, "results": []}
    results = []
    for body, res in zip(scenarios, out[1:], strict=True):
        if isinstance(res, dict):
            results.append(res)
        else:
            results.append(_summary(body.get("name", "scenario"), compare(base, res, n_boot=n_boot, seed=seed)))
    bj = base.to_json()
    return {"runner": runner, "baseline": {"scenario": bj["scenario"], "arrival_s": bj["arrival_s"]["all"],
                                           "accident_arrival_s": bj["arrival_s"]["accident"],
                                           "fallbacks": bj["fallbacks"], "waited_legs": bj["waited"]["legs"],
                                           "calibration": bj["calibration"]},
            "results": results}
