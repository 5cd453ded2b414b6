"""Benchmark the reports (issue 14) on three years of county history.

Its own database (gisapp_bench_reports on the private cluster, or on GISAPP_DATABASE_URL's server):
the Zouping demo generator with a history of 3 x 365 days and three times the yearly volume
(90,000 110 calls, 27,000 accidents and 3,000 other 122 calls: 120,000 incidents). The database
is kept between runs and reloaded only when its history is not that one (BENCH_REPORTS_RELOAD=1
forces it).

Timed in-process through the Flask test client (the whole request: routing, log-in session,
parameter checks, SQL, JSON; no network), as the leadership role (every organisation):
  - a *report* = the five tables of the report (the same as the XLSX sheets): sla, overdue,
    arrivals, outcomes and ranking, for the last whole month (month) and the last 12 whole months
    (year); p50 over BENCH_REPORTS_RUNS runs (default 15) after one warm-up;
  - the XLSX export of the year (seconds, median of 3);
  - identical: the month's and the year's sla / arrivals / outcomes answers against the
    independent pandas recomputation of tests/support/reports_pandas.py.

Last line: reports: month_p50_ms=<a> year_p50_ms=<b> xlsx_s=<c> identical=<true|false>
Targets: month_p50_ms <= 150, year_p50_ms <= 600, identical=true.
"""

from __future__ import annotations

import os
import re
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from gisapp.core import db  # noqa: E402
from gisapp.core.config import Settings, private_cluster_url  # noqa: E402

DB_NAME = "gisapp_bench_reports"
RUNS = int(os.environ.get("BENCH_REPORTS_RUNS", 15))
YEARS = 3
PASSWORD = "bench-password-1"
TABLES = ("sla", "overdue", "arrivals", "outcomes", "ranking")


def _with_db(url: str, name: str) -> str:
    return re.sub(r"/[^/?]*\?", f"/{name}?", url, count=1) if "?" in url else url.rsplit("/", 1)[0] + "/" + name


def _params() -> dict:
    from geodata import demo

    p = demo.load_params()
    h = p["history"]
    h["days"] = 365 * YEARS
    h.pop("start", None)  # three years at the full rate, nothing before them (issue 15's earlier years)
    for k in ("incidents_110", "accidents_122", "other_122"):
        h[k] = int(h[k]) * YEARS
    return p


def make_database(log=print) -> str:
    """The bench database with three years of history (kept when it already holds them)."""
    from geodata import demo

    server = os.environ.get("GISAPP_DATABASE_URL") or private_cluster_url()
    url = _with_db(server, DB_NAME)
    with psycopg.connect(_with_db(server, "postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone()
        if not exists:
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(DB_NAME)))
    db.upgrade(url, log=lambda m: None)
    params = _params()
    want = sum(int(params["history"][k]) for k in ("incidents_110", "accidents_122", "other_122"))
    with db.connect(url) as conn:
        n = conn.execute("SELECT count(*) AS n FROM incident").fetchone()["n"]
        span = conn.execute("SELECT max(reported_at) AS b FROM incident").fetchone()["b"]
        fresh = span is not None and datetime.now(UTC) - span < timedelta(days=20)
        if n == want and fresh and os.environ.get("BENCH_REPORTS_RELOAD") != "1":
            log(f"bench database {DB_NAME}: {n} incidents already loaded")
        else:
            t = time.perf_counter()
            original = demo.load_params
            demo.load_params = lambda path=None, seed=None: params  # three years, three times the volume
            try:
                summary = demo.load_demo(conn, log=lambda m: log("  " + m))
            finally:
                demo.load_params = original
            conn.commit()
            log(f"loaded {summary['incidents']} incidents, {summary['dispatch_legs']} legs over {YEARS} years "
                f"in {time.perf_counter() - t:.0f} s")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE dispatch_leg")
        conn.execute("VACUUM ANALYZE incident")
        from gisapp.core.accounts import create_user

        conn.row_factory = psycopg.rows.dict_row
        if not conn.execute("SELECT 1 FROM app_user WHERE username = 'bench_leader'").fetchone():
            create_user(conn, "bench_leader", PASSWORD, "leadership")
    return url


def _p50(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> None:
    from support import reports_pandas as rp

    from gisapp.dispatch.rules import load_rules
    from gisapp.web import create_app

    url = make_database()
    app = create_app({"database_url": url, "secret_key": "bench", "sla_sweep_interval_s": 0,
                      "maintenance_interval_s": 0})
    s: Settings = app.extensions["gisapp.settings"]
    c = app.test_client()
    r = c.post("/api/v1/auth/login", json={"username": "bench_leader", "password": PASSWORD})
    assert r.status_code == 200, r.get_data(as_text=True)
    with db.connect(url) as conn:
        last = conn.execute("SELECT max(dispatched_at) AS b FROM dispatch_leg").fetchone()["b"]
        counts = conn.execute("SELECT (SELECT count(*) FROM incident) AS i, (SELECT count(*) FROM dispatch_leg) AS l"
                              ).fetchone()
    from zoneinfo import ZoneInfo

    local_last = last.astimezone(ZoneInfo(s.local_timezone)).date()
    month_end = local_last.replace(day=1) - timedelta(days=1)
    month = f"{month_end.year:04d}-{month_end.month:02d}"
    year_start = date(month_end.year - 1, month_end.month, 1) + timedelta(days=31)
    year_start = year_start.replace(day=1)
    periods = {"month": f"month={month}",
               "year": f"from={year_start.isoformat()}&to={month_end.isoformat()}"}
    print(f"history: {counts['i']} incidents, {counts['l']} legs; month {month}, year {year_start} .. {month_end}")
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} (1, 5, 15 min)")

    def report(q: str) -> tuple[float, dict]:
        out, per = {}, {}
        t0 = time.perf_counter()
        for name in TABLES:
            t = time.perf_counter()
            qq = q if name != "ranking" else f"month={month}"
            resp = c.get(f"/api/v1/reports/{name}?{qq}")
            assert resp.status_code == 200, (name, resp.get_data(as_text=True)[:300])
            out[name] = resp.get_json()
            per[name] = (time.perf_counter() - t) * 1000
        return (time.perf_counter() - t0) * 1000, {"bodies": out, "per": per}

    results = {}
    for label, q in periods.items():
        report(q)  # warm-up
        totals, per = [], {n: [] for n in TABLES}
        for _ in range(RUNS):
            ms, info = report(q)
            totals.append(ms)
            for n in TABLES:
                per[n].append(info["per"][n])
        results[label] = (_p50(totals), info["bodies"])
        print(f"{label}: report p50 {_p50(totals):.0f} ms over {RUNS} runs ("
              + ", ".join(f"{n} {_p50(per[n]):.0f}" for n in TABLES) + " ms)")
    xs = []
    for _ in range(3):
        t = time.perf_counter()
        resp = c.get(f"/api/v1/reports/export.xlsx?{periods['year']}")
        assert resp.status_code == 200
        xs.append(time.perf_counter() - t)
    print(f"xlsx of the year: {len(resp.data)} bytes, median {statistics.median(xs):.2f} s")

    rules = load_rules(s)
    identical = True
    with db.connect(url) as conn:
        for label, (_, bodies) in results.items():
            p = bodies["sla"]["period"]
            t = time.perf_counter()
            want = rp.recompute(conn, datetime.fromisoformat(p["start"]), datetime.fromisoformat(p["end"]),
                                datetime.fromisoformat(p["as_of"]), s.local_timezone,
                                {"sign_off": s.sign_off_sla_s, "first_feedback": s.first_feedback_sla_s,
                                 "close": s.close_sla_s}, rules.types_of_category("accident"), rules.mediation_outcome)
            diff = rp.differences(bodies, want)
            print(f"{label}: pandas recomputation in {time.perf_counter() - t:.1f} s: "
                  + ("identical" if not diff else f"{len(diff)} differences: " + "; ".join(diff[:5])))
            identical = identical and not diff
            county = bodies["sla"]["county"]
            o = bodies["outcomes"]
            print(f"{label}: legs {county['legs']}, sign-off {county['sign_off_rate']}, first feedback "
                  f"{county['first_feedback_rate']}, closure {county['close_rate']}, stations' share of accidents "
                  f"{o['station_share']}, mediation {o['mediation_rate']}")
    print(f"machine after: load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"reports: month_p50_ms={results['month'][0]:.0f} year_p50_ms={results['year'][0]:.0f} "
          f"xlsx_s={statistics.median(xs):.2f} identical={'true' if identical else 'false'}")


if __name__ == "__main__":
    main()
