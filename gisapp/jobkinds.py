"""The kinds of background job and their handlers (issue 15): the registry the runner processes
(``gisapp jobs worker``, gisapp.core.jobs.Runner) work with.

It sits above the packages its handlers call (gisapp.replay), below the web layer and the CLI
(pyproject [tool.importlinter]). A handler is ``handler(conn, settings, params, progress) -> dict``:
``conn`` is a transaction that is rolled back afterwards (a handler writes nothing; its result is
stored by the runner in one statement), ``progress(fraction, message)`` reports how far it got and
raises ``Cancelled`` when the job was cancelled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg

from gisapp.core.errors import GisappError

REPLAY = "replay"


def _engine():
    try:
        from gisapp import replay
    except ImportError as e:  # the engine is not installed in this build: the job says so
        raise GisappError(f"the replay engine is not available: {e}", None, 503, key="err.job.engine_missing") from None
    return replay


def replay_params(conn: psycopg.Connection, body: dict) -> dict:
    """Check a replay request (keyed 4xx from the engine's parsers) and return the job's params."""
    engine = _engine()
    period = body.get("period")
    engine.parse_period(conn, period, "period")
    baseline = body.get("baseline") if body.get("baseline") is not None else {"name": "baseline"}
    base = engine.parse_scenario(conn, baseline, "baseline")
    scen = engine.parse_scenario(conn, body.get("scenario"), "scenario")
    # the bodies as posted (they parse; the runner parses them again against the data of its time)
    return {"period": {"from": period["from"], "to": period["to"]}, "baseline": baseline,
            "scenario": body["scenario"], "seed": 0,
            "names": {"baseline": base.name, "scenario": scen.name}}


def run_replay(conn: psycopg.Connection, settings: Any, params: dict, progress: Callable[[float, str], None]) -> dict:
    """Replay the period under the baseline and the scenario and compare them (the contract's JSON)."""
    engine = _engine()
    start, end = engine.parse_period(conn, params.get("period"), "period")
    base = engine.parse_scenario(conn, params.get("baseline"), "baseline")
    scen = engine.parse_scenario(conn, params.get("scenario"), "scenario")
    seed = int(params.get("seed") or 0)
    progress(0.01, "baseline")
    rb = engine.run(conn, settings, base, start, end, seed=seed,
                    progress=lambda f, m: progress(0.02 + 0.45 * f, f"baseline: {m}"))
    progress(0.48, "scenario")
    rs = engine.run(conn, settings, scen, start, end, seed=seed,
                    progress=lambda f, m: progress(0.5 + 0.45 * f, f"scenario: {m}"))
    progress(0.96, "comparing")
    return engine.compare(rb, rs, seed=seed)


HANDLERS: dict[str, Callable[..., dict]] = {REPLAY: run_replay}
