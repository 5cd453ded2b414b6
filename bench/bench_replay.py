"""Benchmark the replay (issue 15): the demo year under the baseline and "squadrons alone".

Run by ``make bench-replay`` on the ordinary demo database of this checkout (loaded by
``gisapp load-demo --if-empty`` first). Period: the last 365 local days of the recorded
history. It replays the year under the baseline (the layout, participation and roster in
force) and under ``squadrons_alone`` (no station takes part in traffic; the accident legs
go to the squadrons), each timed from loading the period to the summary, and compares them
(95% bootstrap over days).

``year_s``: the mean wall time of the two scenario-years; ``baseline_error_pct``: the mean
over days of |replayed - recorded| daily mean arrival time, in percent of the recorded
(gisapp.replay.results.Result.calibration, which also prints the per-organisation and per-leg
errors); ``accident_arrival_delta_min``: squadrons alone minus baseline, mean first arrival at
the accident incidents, in minutes. Last line:
``replay: year_s=<a> incidents=<n> baseline_error_pct=<b> accident_arrival_delta_min=<c>``.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gisapp import replay  # noqa: E402
from gisapp.core import db  # noqa: E402
from gisapp.core.config import Settings  # noqa: E402


def main() -> None:
    s = Settings.from_env()
    print(f"machine: {os.cpu_count()} cores, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with db.connect(s.database_url) as conn:
        last = conn.execute("SELECT max(reported_at AT TIME ZONE 'Asia/Shanghai')::date AS d FROM incident "
                            "WHERE status <> 'cancelled'").fetchone()["d"]
        period = {"from": (last - timedelta(days=364)).isoformat(), "to": last.isoformat()}
        start, end = replay.parse_period(conn, period)
        base_sc = replay.parse_scenario(conn, {"name": "baseline"})
        alone_sc = replay.parse_scenario(conn, {"name": "squadrons alone", "participation": {"kind": "squadrons_alone"}})
        times = []
        results = []
        for sc in (base_sc, alone_sc):
            t = time.perf_counter()
            r = replay.run(conn, s, sc, start, end)
            r.to_json()
            times.append(time.perf_counter() - t)
            results.append(r)
            print(f"{sc.name}: {times[-1]:.1f} s")
    c = replay.compare(*results)
    b, a, d = c["baseline"], c["scenario"], c["delta"]
    cal = b["calibration"]
    print(f"period {period['from']} .. {period['to']}: {b['incidents']} incidents, {b['legs']} legs")
    print(f"calibration: daily mean error {cal['daily_mae_pct']}%, per organisation {cal['by_org_mae_pct']}%, "
          f"per leg {cal['leg_mae_pct']}%, bias {cal['mean_bias_pct']}%, county travel factor {cal['travel_factor']}")
    for label, r in (("baseline", b), ("squadrons alone", a)):
        print(f"{label}: arrival mean {r['arrival_s']['all']['mean']} s, accidents {r['arrival_s']['accident']['mean']} s, "
              f"within {r['within_target']['target_s'] / 60:.0f} min {r['within_target']['share']}, waited "
              f"{r['waited']['legs']} legs, fallbacks {r['fallbacks']}, stations' share of accidents "
              f"{r['station_share_of_accidents']}, stations taking part {r['stations_in_traffic_share']}")
    da = d["accident_mean_arrival_s"]
    print(f"accident arrival delta: {da['value'] / 60:+.2f} min (95% CI {da['ci_low'] / 60:+.2f} .. "
          f"{da['ci_high'] / 60:+.2f}); mean arrival delta {d['mean_arrival_s']['value'] / 60:+.2f} min; "
          f"incidents changing owner {c['changed_owner']['count']}")
    print(f"machine after: load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"replay: year_s={sum(times) / len(times):.1f} incidents={b['incidents']} "
          f"baseline_error_pct={cal['daily_mae_pct']:.2f} accident_arrival_delta_min={da['value'] / 60:.2f}")


if __name__ == "__main__":
    main()
