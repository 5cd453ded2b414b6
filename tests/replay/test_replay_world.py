"""The replay on a hand-made world: arrival times, waiting, fallback and owners computed by hand
(support.replay's docstring has the arithmetic)."""

from __future__ import annotations

import numpy as np
import pytest
from support.replay import PERIOD, add_joint_zone

from gisapp import replay
from gisapp.core import db


def _run(conn, settings, body: dict | None = None):
    sc = replay.parse_scenario(conn, body or {"name": "baseline"})
    start, end = replay.parse_period(conn, PERIOD)
    return replay.run(conn, settings, sc, start, end)


def _arrivals(res) -> list[float]:
    order = np.argsort(res.leg_inc, kind="stable")
    return [float(x) for x in res.leg_arrival[order]]


def test_arrival_and_waiting_match_the_hand_computation(replay_world):
    with db.connect(replay_world["url"]) as conn:
        res = _run(conn, replay_world["settings"])
    # incidents 1..5: 260 (S1 from A to C), 1120 (waits 960 s for S1's car), 160, 260 (squadron
    # from D to C), 260 (S1, taking part by then)
    assert _arrivals(res) == pytest.approx([260.0, 1120.0, 160.0, 260.0, 260.0], abs=1e-6)
    waits = res.leg_wait[np.argsort(res.leg_inc, kind="stable")]
    assert waits == pytest.approx([0.0, 960.0, 0.0, 0.0, 0.0], abs=1e-6)
    out = res.to_json()
    assert out["waited"] == {"legs": 1, "mean_wait_s": 960.0}
    assert out["fallbacks"] == 0
    assert out["incidents"] == 5 and out["legs"] == 5
    assert res.travel_factor == pytest.approx(1.0, abs=1e-12)
    # S1's car was busy 1060 s (incident 1) + 860 s (2) + 860 s (3) + 1060 s (5) in the day
    s1 = replay_world["orgs"]["s1"]
    util = {u["organisation_id"]: u["share"] for u in out["utilisation"]}
    assert util[s1] == pytest.approx(round((1060 + 860 + 860 + 1060) / 86400, 4))
    work = {w["organisation_id"]: w["legs"] for w in out["workload"]}
    assert work[s1] == 4 and work[replay_world["orgs"]["q"]] == 1
    # the baseline reproduces the recorded arrivals except incident 2's wait (the record has none)
    cal = out["calibration"]
    assert cal["legs"] == 5 and cal["recorded_mean_s"] == pytest.approx((260 + 160 + 160 + 260 + 260) / 5)
    assert cal["replayed_mean_s"] == pytest.approx((260 + 1120 + 160 + 260 + 260) / 5)


def test_joint_zone_fallback_takes_the_neighbours_car(replay_world):
    with db.connect(replay_world["url"]) as conn:
        add_joint_zone(conn, replay_world["orgs"])
        res = _run(conn, replay_world["settings"])
        conn.rollback()
    # incident 2: S1's car is out, S2 (same kind, same zone) sends its car from D: 60 + 300 s
    assert _arrivals(res) == pytest.approx([260.0, 360.0, 160.0, 260.0, 260.0], abs=1e-6)
    out = res.to_json()
    assert out["fallbacks"] == 1 and out["waited"]["legs"] == 0
    order = np.argsort(res.leg_inc, kind="stable")
    assert res.leg_org[order][1] == replay_world["orgs"]["s2"]
    assert res.inc_owner[1] == replay_world["orgs"]["s1"]  # the owner stays S1 (the leg fell back)


def test_participation_in_force_at_the_time_decides_the_owner(replay_world):
    orgs = replay_world["orgs"]
    with db.connect(replay_world["url"]) as conn:
        recorded = _run(conn, replay_world["settings"])
        alone = _run(conn, replay_world["settings"], {"name": "alone", "participation": {"kind": "squadrons_alone"}})
        every = _run(conn, replay_world["settings"], {"name": "all", "participation": {"kind": "all_stations"}})
    # minor accidents: at 11:00 S1 does not take part yet (squadron), at 13:00 it does (S1)
    assert recorded.inc_owner[3] == orgs["q"] and recorded.inc_owner[4] == orgs["s1"]
    assert alone.inc_owner[3] == orgs["q"] and alone.inc_owner[4] == orgs["q"]
    assert every.inc_owner[3] == orgs["s1"] and every.inc_owner[4] == orgs["s1"]
    # the thefts stay with the station whatever the participation
    assert list(alone.inc_owner[:3]) == [orgs["s1"]] * 3
    c = replay.compare(recorded, alone, n_boot=200)
    assert c["changed_owner"]["count"] == 1
    assert c["changed_owner"]["incidents"][0]["id"] == replay_world["incidents"][4]
    # squadron from D to C is as far as S1 from A to C: the same arrival; incident 5 is served by Q
    assert _arrivals(alone)[4] == pytest.approx(260.0, abs=1e-6)
    assert {w["code"]: w["delta"] for w in c["workload"]}  # per organisation, baseline vs scenario


def test_boundaries_of_a_draft_plan_and_at_a_date(replay_world):
    from support.dispatch import box

    from gisapp.planning.drafts import create_plan

    orgs = replay_world["orgs"]
    with db.connect(replay_world["url"]) as conn:
        plan = create_plan(conn, {"username": "t_planner", "role": "planner"}, name="S2 takes all", kind="station",
                           empty=True)
        conn.execute("INSERT INTO plan_area (plan_id, organisation_id, geom) VALUES (%s, %s, ST_GeomFromText(%s, 4326))",
                     [plan["id"], orgs["s2"], box(117.69, 36.84, 117.74, 36.86)])
        base = _run(conn, replay_world["settings"])
        at = _run(conn, replay_world["settings"], {"name": "at", "boundaries": {"kind": "at", "date": "2024-03-01"}})
        drawn = _run(conn, replay_world["settings"], {"name": "plan", "boundaries": {"kind": "plan", "plan_id": plan["id"]}})
        conn.rollback()
    assert list(at.inc_owner) == list(base.inc_owner)
    # under the draft S2 owns the thefts; the 11:00 accident stays the squadron's (S2 does not take part)
    assert list(drawn.inc_owner) == [orgs["s2"]] * 3 + [orgs["q"], orgs["q"]]
    # S2's one car from D: incident 1 at C: 60 + 200; incident 2 at B waits for it: back at
    # 30 + 60 + 200 + 600 + 200 = 1090, waits 960, drives 300: 1320; incident 3 at B: 60 + 300
    assert _arrivals(drawn)[:3] == pytest.approx([260.0, 1320.0, 360.0], abs=1e-6)
    c = replay.compare(base, drawn, n_boot=100)
    assert c["changed_owner"]["count"] == 4
    code = {m["organisation_id"]: m["code"] for m in base.org_meta}
    assert {(i["from_org"], i["to_org"]) for i in c["changed_owner"]["incidents"]} == {
        (code[orgs["s1"]], code[orgs["s2"]]), (code[orgs["s1"]], code[orgs["q"]])}


def test_a_joint_zone_plan_gives_its_members_for_the_fallback(replay_world):
    from support.dispatch import box

    from gisapp.planning.drafts import create_plan

    orgs = replay_world["orgs"]
    with db.connect(replay_world["url"]) as conn:
        plan = create_plan(conn, {"username": "t_planner", "role": "planner"}, name="one zone", kind="joint_zone",
                           empty=True)
        conn.execute("INSERT INTO plan_area (plan_id, zone_code, name, centre_org_id, member_ids, geom) "
                     "VALUES (%s, 'RZP', '推演方案战区', %s, %s, ST_GeomFromText(%s, 4326))",
                     [plan["id"], orgs["s1"], [orgs["s2"]], box(117.69, 36.84, 117.74, 36.86)])
        res = _run(conn, replay_world["settings"], {"name": "zone", "boundaries": {"kind": "plan", "plan_id": plan["id"]}})
        conn.rollback()
    # as with the recorded zone: incident 2 falls back to S2's car (60 + 300 s)
    assert _arrivals(res) == pytest.approx([260.0, 360.0, 160.0, 260.0, 260.0], abs=1e-6)
    assert res.to_json()["fallbacks"] == 1


def test_progress_is_reported_and_the_comparison_is_plain_json(replay_world):
    import json

    seen: list[tuple[float, str]] = []
    with db.connect(replay_world["url"]) as conn:
        sc = replay.parse_scenario(conn, {"name": "baseline"})
        start, end = replay.parse_period(conn, PERIOD)
        a = replay.run(conn, replay_world["settings"], sc, start, end, progress=lambda f, m: seen.append((f, m)))
        b = replay.run(conn, replay_world["settings"], replay.parse_scenario(
            conn, {"name": "half", "roster": {"kind": "recorded", "cars_scale": 0.5}}), start, end)
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert {m for _, m in seen} >= {"loading", "simulating", "done"}
    out = replay.compare(a, b, n_boot=50)
    assert json.loads(json.dumps(out, allow_nan=False)) == out
    assert set(out) >= {"baseline", "scenario", "delta", "per_grid", "changed_owner", "workload"}
    assert set(out["delta"]) >= {"mean_arrival_s", "accident_mean_arrival_s", "within_target_share"}
    # every organisation keeps at least one unit: the same arrivals here
    assert out["delta"]["mean_arrival_s"]["value"] == 0.0
