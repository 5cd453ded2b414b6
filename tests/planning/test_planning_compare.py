"""Comparison figures on the hand-made world, whose answers are known by construction.

Draft: grid G3 (x 10-15 km, y 0-5 km) moves from B to A. With speeds 50 km/h (county road)
and 25 km/h (village road) every time below is a distance over a speed (see support/planning.py).
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def comparison(plan_live, ids):
    from support.database import PASSWORD
    from support.server import Client

    c = Client(plan_live.url)
    assert c.post("/api/v1/auth/login", json={"username": "t_planner", "password": PASSWORD}).status_code == 200
    pid = c.post("/api/v1/plans", json={"name": "G3 to A", "kind": "station"}).json()["id"]
    assert c.post(f"/api/v1/plans/{pid}/move-grid", json={"grid_id": ids["G3"],
                                                          "to_organisation_id": ids["A"]}).status_code == 200
    r = c.get(f"/api/v1/plans/{pid}/comparison")
    assert r.status_code == 200, r.text
    gj = c.get(f"/api/v1/plans/{pid}/changed-incidents")
    yield r.json(), gj
    c.close()


def _row(comp, code):
    return next(r for r in comp["jurisdictions"] if r["code"] == code)


def test_area_roads_villages(comparison):
    comp, _ = comparison
    a, b = _row(comp, "A"), _row(comp, "B")
    assert (a["published"]["area_km2"], a["draft"]["area_km2"]) == (100.0, 125.0)
    assert (b["published"]["area_km2"], b["draft"]["area_km2"]) == (100.0, 75.0)
    assert a["published"]["road_km_by_class"] == {"county": 10.0}
    assert a["draft"]["road_km_by_class"] == {"county": 15.0, "village": 4.0}
    assert b["published"]["road_km_by_class"] == {"county": 10.0, "village": 10.0}
    assert b["draft"]["road_km_by_class"] == {"county": 5.0, "village": 6.0}
    assert (a["published"]["villages"], a["published"]["population"]) == (2, 1500)
    assert (a["draft"]["villages"], a["draft"]["population"]) == (3, 1800)
    assert (b["draft"]["villages"], b["draft"]["population"]) == (2, 1500)


def test_workload(comparison):
    comp, _ = comparison
    a, b = _row(comp, "A"), _row(comp, "B")
    assert a["published"]["incidents"] == 3 and b["published"]["incidents"] == 5
    assert a["draft"]["incidents"] == 5 and b["draft"]["incidents"] == 3
    assert a["published"]["incidents_by_type"] == {"fight": 1, "theft": 2}
    assert a["draft"]["incidents_by_type"] == {"fight": 1, "theft": 3, "traffic_accident": 1}
    hours = a["published"]["incidents_by_hour"]
    assert len(hours) == 24 and hours[9] == 2 and hours[21] == 1 and sum(hours) == 3
    assert b["draft"]["incidents_by_hour"][14] == 1 and b["draft"]["incidents_by_hour"][23] == 1
    # Workload balance: counts (3, 5) then (5, 3): standard deviation 1, mean 4.
    assert comp["summary"]["published"]["workload_cv"] == 0.25
    assert comp["summary"]["draft"]["workload_cv"] == 0.25


def test_travel_times(comparison):
    comp, _ = comparison
    a, b = _row(comp, "A"), _row(comp, "B")
    t = a["published"]["incident_time_s"]
    assert (t["p50"], t["p90"], t["max"]) == (180.0, 252.0, 270.0)          # 180, 180, 270
    t = b["published"]["incident_time_s"]
    assert (t["p50"], t["p90"], t["max"]) == (270.0, 784.8, 900.0)          # 180, 180, 270, 612, 900
    t = a["draft"]["incident_time_s"]
    assert (t["p50"], t["p90"], t["max"]) == (270.0, 799.2, 972.0)          # 180, 180, 270, 540, 972
    t = b["draft"]["incident_time_s"]
    assert (t["p50"], t["p90"], t["max"]) == (270.0, 774.0, 900.0)          # 180, 270, 900
    # Roads (length-weighted, time to each segment's middle): A's four 2.5 km segments at 90 s or 270 s.
    r = a["published"]["road_time_s"]
    assert (r["p50"], r["p90"], r["max"]) == (90.0, 270.0, 270.0)
    assert b["draft"]["road_time_s"]["max"] == 612.0                       # 180 s + 3 km at 25 km/h


def test_share_within_target(comparison):
    comp, _ = comparison
    a, b = _row(comp, "A"), _row(comp, "B")
    # Both targets are 10 min here (fixture): B's northern village road (middle at 612 s) misses it.
    assert a["published"]["road_km_within_target"]["share"] == 1.0
    assert b["published"]["road_km_within_target"]["share"] == 0.7              # 14 of 20 km
    assert a["draft"]["road_km_within_target"]["share"] == round(12.5 / 19, 4)  # 13.75 km middle: 630 s
    assert b["draft"]["road_km_within_target"]["share"] == round(5 / 11, 4)
    # County roads are main roads (main_road_classes), village roads rural.
    assert a["draft"]["road_km_within_target"]["main_share"] == round(12.5 / 15, 4)
    assert a["draft"]["road_km_within_target"]["rural_share"] == 0.0             # middle at 828 s


def test_changed_incidents(comparison):
    comp, gj = comparison
    ch = comp["changed_incidents"]
    assert ch["count"] == 2 and ch["listed"] == 2
    assert sorted(i["code"] for i in ch["items"]) == ["T003", "T005"]
    for i in ch["items"]:
        assert i["from_code"] == "B" and i["to_code"] == "A"
    assert {i["code"]: (i["time_before_s"], i["time_after_s"]) for i in ch["items"]} == {
        "T003": (180.0, 540.0), "T005": (612.0, 972.0)}
    assert gj.status_code == 200 and gj.headers["Content-Type"].startswith("application/geo+json")
    assert len(gj.json()["features"]) == 2 and gj.json()["features"][0]["geometry"]["type"] == "Point"
