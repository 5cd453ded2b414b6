"""Proposals on the hand-made world: Voronoi, balanced and patrol posts, with known answers."""

from __future__ import annotations


def _owners(plan: dict) -> dict:
    return {f["properties"]["organisation_code"]: round(f["properties"]["area_km2"], 3)
            for f in plan["areas"]["features"]}


def test_voronoi_keeps_the_fastest_owner(plan_login):
    c = plan_login("planner")
    r = c.post("/api/v1/plans/proposals", json={"method": "voronoi", "kind": "station"})
    assert r.status_code == 201, r.text
    plan = r.json()
    assert plan["origin"] == "voronoi" and plan["status"] == "draft"
    # Every grid's incidents are reached fastest from the station that owns it already.
    assert _owners(plan) == {"A": 100.0, "B": 100.0}
    obj = plan["objective"]
    assert obj["proposal"]["mean_incident_time_s"] <= obj["published"]["mean_incident_time_s"]
    assert c.get(f"/api/v1/plans/{plan['id']}/validation").json()["valid"]


def test_balanced_moves_g7_to_a(plan_login, ids):
    c = plan_login("planner")
    r = c.post("/api/v1/plans/proposals", json={"method": "balanced", "kind": "station", "weight": 1.0})
    assert r.status_code == 201, r.text
    plan = r.json()
    obj = plan["objective"]
    # Published: loads 3 and 5 (CV 0.25), mean time 2772 s / 8 = 346.5 s: objective 1.25.
    assert obj["published"] == {"mean_incident_time_s": 346.5, "workload_cv": 0.25, "balanced_objective": 1.25}
    # G7 (one incident, 900 s from B, 1260 s from A) to A: loads 4 and 4, mean time 391.5 s.
    assert obj["proposal"] == {"mean_incident_time_s": 391.5, "workload_cv": 0.0,
                               "balanced_objective": round(391.5 / 346.5, 4)}
    assert obj["units_moved"] == 1 and "contiguous" in obj["statement"]
    assert _owners(plan) == {"A": 125.0, "B": 75.0}
    v = c.get(f"/api/v1/plans/{plan['id']}/validation").json()
    assert v["valid"], v["issues"]
    comp = c.get(f"/api/v1/plans/{plan['id']}/comparison").json()
    assert comp["summary"]["draft"]["workload_cv"] == 0.0 and comp["summary"]["published"]["workload_cv"] == 0.25
    r = c.post("/api/v1/plans/proposals", json={"method": "balanced", "weight": -1})
    assert r.status_code == 400 and r.json()["field"] == "weight"


def test_patrol_posts(plan_login):
    c = plan_login("planner")
    r = c.post("/api/v1/plans/proposals", json={"method": "mclp", "zone_code": "Z1", "cars": 1})
    assert r.status_code == 201, r.text
    plan = r.json()
    obj = plan["objective"]
    periods = {p["period"]: p for p in obj["periods"]}
    assert sum(p["incidents"] for p in obj["periods"]) == 8
    # 06-12: incidents at 1.25, 2.5 and 12.5 km along the road: one car between them covers all three.
    assert periods["06-12"]["incidents"] == 3 and periods["06-12"]["covered"] == 3
    for p in obj["periods"]:
        assert p["covered"] >= p["baseline_covered"]
    posts = plan["posts"]["features"]
    assert len(posts) == 4 and {f["properties"]["period"] for f in posts} == set(periods)
    r = c.post("/api/v1/plans/proposals", json={"method": "mclp", "zone_code": "nope"})
    assert r.status_code == 422 and r.json()["field"] == "zone_code"
    r = c.post("/api/v1/plans/proposals", json={"method": "magic"})
    assert r.status_code == 400 and r.json()["field"] == "method"
