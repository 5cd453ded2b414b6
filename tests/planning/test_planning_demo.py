"""Planning on the full demo world: published layouts validate, and each proposal beats the
demo's current layout on its own stated objective."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def planner(demo_live, demo_users):
    from support.database import PASSWORD
    from support.server import Client

    c = Client(demo_live.url)
    assert c.post("/api/v1/auth/login", json={"username": "t_planner", "password": PASSWORD}).status_code == 200
    yield c
    c.close()


@pytest.mark.parametrize("kind", ["station", "traffic", "joint_zone"])
def test_published_layouts_validate(planner, kind):
    r = planner.post("/api/v1/plans", json={"name": f"demo {kind}", "kind": kind})
    assert r.status_code == 201, r.text
    assert len(r.json()["areas"]["features"]) >= 5
    v = planner.get(f"/api/v1/plans/{r.json()['id']}/validation").json()
    assert v["valid"], v["issues"][:3]


def _propose(planner, body):
    r = planner.post("/api/v1/plans/proposals", json=body)
    assert r.status_code == 201, r.text
    plan = r.json()
    v = planner.get(f"/api/v1/plans/{plan['id']}/validation").json()
    assert v["valid"], v["issues"][:3]
    return plan


def test_voronoi_beats_the_demo_on_travel_time(planner):
    plan = _propose(planner, {"method": "voronoi", "kind": "station"})
    obj = plan["objective"]
    assert obj["proposal"]["mean_incident_time_s"] < obj["published"]["mean_incident_time_s"]
    assert obj["units_moved"] > 0


def test_balanced_beats_the_demo_on_its_objective(planner, demo_conn):
    plan = _propose(planner, {"method": "balanced", "kind": "station"})
    obj = plan["objective"]
    assert obj["proposal"]["balanced_objective"] < obj["published"]["balanced_objective"]
    assert obj["proposal"]["workload_cv"] < obj["published"]["workload_cv"]
    # Contiguous: no area has more separate pieces than the organisation's published jurisdiction.
    # Three demo grids are in two parts themselves (a detached fragment of about a hectare where
    # the grid was cut by a boundary); contiguity is decided on grids, so a fragment can end up
    # apart from the rest of its new area: pieces under 0.1 km2 are not counted.
    rows = demo_conn.execute(
        """WITH big AS (SELECT 'draft' AS src, a.organisation_id, count(*) AS n FROM plan_area a,
                             LATERAL ST_Dump(a.geom) d
                        WHERE a.plan_id = %(p)s AND ST_Area(ST_Transform(d.geom, 32650)) >= 100000 GROUP BY 1, 2
                        UNION ALL
                        SELECT 'pub', j.organisation_id, count(*) FROM jurisdiction j, LATERAL ST_Dump(j.geom) d
                        WHERE j.kind = 'station' AND j.valid_to IS NULL
                          AND ST_Area(ST_Transform(d.geom, 32650)) >= 100000 GROUP BY 1, 2)
           SELECT d.organisation_id, d.n AS n_draft, p.n AS n_pub
           FROM big d JOIN big p ON p.organisation_id = d.organisation_id AND p.src = 'pub'
           WHERE d.src = 'draft'""", {"p": plan["id"]}).fetchall()
    assert rows and all(r["n_draft"] <= r["n_pub"] for r in rows)
    comp = planner.get(f"/api/v1/plans/{plan['id']}/comparison?incidents=false").json()
    pub, draft = comp["summary"]["published"], comp["summary"]["draft"]
    assert draft["workload_cv"] < pub["workload_cv"]
    assert comp["changed_incidents"]["count"] > 0
    print(f"\nbalanced proposal vs demo: incident travel time p90 {pub['incident_time_s']['p90']} s -> "
          f"{draft['incident_time_s']['p90']} s, road p90 {pub['road_time_s']['p90']} s -> "
          f"{draft['road_time_s']['p90']} s, workload CV {pub['workload_cv']} -> {draft['workload_cv']}")


def test_patrol_posts_beat_cars_at_headquarters(planner, demo_conn):
    zones = [r["code"] for r in demo_conn.execute(
        "SELECT code FROM joint_zone WHERE valid_to IS NULL ORDER BY code").fetchall()]
    assert len(zones) == 5
    for code in zones:
        r = planner.post("/api/v1/plans/proposals", json={"method": "mclp", "zone_code": code, "cars": 3})
        assert r.status_code == 201, r.text
        obj = r.json()["objective"]
        # Stated objective: past incidents covered within the target, against 3 cars waiting at
        # the members' stations; never less in any period, more in total.
        assert obj["proposal"]["covered"] > obj["published"]["covered"], (code, obj)
        for p in obj["periods"]:
            assert p["covered"] >= p["baseline_covered"]
        assert len(r.json()["posts"]["features"]) == 3 * len(obj["periods"])
