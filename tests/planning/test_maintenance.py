"""The service's periodic upkeep (gisapp.maintenance): a plan published for a later time
changes the grids' owners when that time comes, with no request and no cron job."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from support.planning import lonlat

from gisapp.core.config import Settings
from gisapp.maintenance import Maintenance


def test_due_grid_changes_are_applied_in_the_background(plan_login, plan_conn, ids, plan_db):
    c = plan_login("planner")
    p = c.post("/api/v1/plans", json={"name": "G3 to A soon", "kind": "station"}).json()["id"]
    assert c.post(f"/api/v1/plans/{p}/move-grid", json={"grid_id": ids["G3"],
                                                        "to_organisation_id": ids["A"]}).status_code == 200
    at = datetime.now(UTC) + timedelta(seconds=3)
    r = c.post(f"/api/v1/plans/{p}/publish", json={"reason": "from the next shift", "effective_from": at.isoformat()})
    assert r.status_code == 200, r.text
    assert r.json()["grid_changes"] == 1 and r.json()["grid_changes_applied"] == 0

    def owner() -> int:
        return plan_conn.execute("SELECT organisation_id FROM grid WHERE id = %s", [ids["G3"]]).fetchone()[
            "organisation_id"]

    assert owner() == ids["B"]
    m = Maintenance(plan_db, Settings.from_env({"database_url": plan_db, "maintenance_interval_s": 0.3})).start()
    try:
        deadline = time.monotonic() + 60
        while owner() != ids["A"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert owner() == ids["A"]
        assert datetime.now(UTC) >= at  # not before its time
        assert m.runs >= 1 and m.last_error is None
    finally:
        m.stop()
    assert plan_conn.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'apply_grid_changes'"
                             ).fetchone()["n"] >= 1


def test_maintenance_takes_position_reports_into_patrol_coverage(plan_conn, ids, plan_db):
    """A unit's report on a road (settled for a few seconds) becomes patrol of that segment."""
    unit = plan_conn.execute("INSERT INTO unit (code, name, organisation_id, kind) VALUES ('M-U1', '巡逻车', %s, "
                             "'patrol_car') RETURNING id", [ids["A"]]).fetchone()["id"]
    lon, lat = lonlat(1.25, 4)  # on the county road (0, 4) - (2.5, 4)
    plan_conn.execute("INSERT INTO unit_position (unit_id, geom, reported_at, received_at, speed_kmh) VALUES "
                      "(%s, ST_SetSRID(ST_MakePoint(%s, %s), 4326), now() - interval '1 minute', "
                      "now() - interval '1 minute', 40)", [unit, lon, lat])
    # (the live server's own maintenance thread may take the report first: either way it counts once)
    m = Maintenance(plan_db, Settings.from_env({"database_url": plan_db, "maintenance_interval_s": 60}))
    m.run_once()
    row = plan_conn.execute("SELECT e.road_class, p.hits FROM patrol_edge_day p JOIN road_edge e ON e.id = p.edge_id"
                            ).fetchall()
    assert [(r["road_class"], r["hits"]) for r in row] == [("county", 1)]
    assert m.run_once()["patrol_reports_matched"] == 0  # counted once
    assert plan_conn.execute("SELECT hits FROM patrol_edge_day").fetchone()["hits"] == 1


def test_a_dated_participation_change_reaches_the_organisation_when_due(plan_conn, ids, plan_db):
    """Issue 15: a change recorded for a later time leaves organisation's flags alone until then;
    the upkeep brings them to the version in force once it has come."""
    from gisapp.dispatch.participation import change

    org = ids["A"]
    before = plan_conn.execute("SELECT takes_part_in_traffic AS t FROM organisation WHERE id = %s", [org]).fetchone()["t"]
    at = datetime.now(UTC) + timedelta(seconds=2)
    change(plan_conn, None, org, at, takes_part_in_traffic=not before, note="test")
    assert plan_conn.execute("SELECT takes_part_in_traffic AS t FROM organisation WHERE id = %s",
                             [org]).fetchone()["t"] == before
    while datetime.now(UTC) < at + timedelta(milliseconds=200):
        time.sleep(0.1)
    m = Maintenance(plan_db, Settings.from_env({"database_url": plan_db, "maintenance_interval_s": 60}))
    m.run_once()   # (or the live server's own maintenance thread first)
    assert plan_conn.execute("SELECT takes_part_in_traffic AS t FROM organisation WHERE id = %s",
                             [org]).fetchone()["t"] == (not before)
