"""Replay recorded incidents under another layout, participation or posting (推演, issue 15).

A discrete-event simulation (SimPy) of a period's recorded incidents under a scenario, its
results, and the comparison of two scenarios with bootstrap intervals over days. No Flask:
the web layer and the CLI call these functions.

    parse_scenario(conn, body, field="scenario") -> Scenario
    parse_period(conn, body, field="period") -> (start, end)
    run(conn, settings, scenario, start, end, *, progress=None, seed=0) -> Result
    compare(baseline, scenario, *, n_boot=1000, seed=0) -> dict
    Result.to_json() -> dict
"""

from __future__ import annotations

from .results import Result, compare
from .runner import run
from .scenario import Scenario, parse_period, parse_scenario

__all__ = ["Result", "Scenario", "compare", "parse_period", "parse_scenario", "run"]
