"""Publish with an effective time, time travel, rollback, ownership before and after, audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from support.planning import lonlat


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


def _station_km2(c, at: datetime | None = None) -> dict:
    url = "/api/v1/jurisdictions?kind=station" + (f"&at={_iso(at)}".replace("+", "%2B") if at else "")
    fc = c.get(url).json()
    out = {}
    for f in fc["features"]:
        out[f["properties"]["organisation_id"]] = f["properties"]["version"]
    return out


def _owner(c, x_km: float, y_km: float, at: datetime) -> int:
    lon, lat = lonlat(x_km, y_km)
    r = c.get("/api/v1/plans/ownership", params={"lon": lon, "lat": lat, "at": _iso(at)})
    assert r.status_code == 200, r.text
    return r.json()["station_org_id"]


def test_publish_schedule_time_travel_and_rollback(plan_login, plan_conn, ids):
    c = plan_login("planner")
    t0 = datetime.now(UTC)
    # 1. Publish now: grid G3 goes from B to A.
    p1 = c.post("/api/v1/plans", json={"name": "P1 G3 to A", "kind": "station"}).json()["id"]
    assert c.post(f"/api/v1/plans/{p1}/move-grid", json={"grid_id": ids["G3"],
                                                         "to_organisation_id": ids["A"]}).status_code == 200
    r = c.post(f"/api/v1/plans/{p1}/publish", json={"reason": "G3 is closer to A"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "published" and len(out["created_version_ids"]) == 2 and len(out["ended_version_ids"]) == 2
    assert out["grid_changes"] == 1 and out["grid_changes_applied"] == 1
    t1 = datetime.fromisoformat(out["effective_from"])
    assert plan_conn.execute("SELECT organisation_id FROM grid WHERE id = %s", [ids["G3"]]).fetchone()[
        "organisation_id"] == ids["A"]
    assert _station_km2(c) == {ids["A"]: 2, ids["B"]: 2}
    # A published plan is no longer editable.
    r = c.post(f"/api/v1/plans/{p1}/move-grid", json={"grid_id": ids["G3"], "to_organisation_id": ids["B"]})
    assert r.status_code == 409

    # 2. Schedule a return to the original layout (a copy of what was in force before P1) in an hour.
    p2 = c.post("/api/v1/plans", json={"name": "P2 back", "kind": "station", "copy_at": _iso(t0 - timedelta(seconds=1))}
                ).json()["id"]
    t2 = t1 + timedelta(hours=1)
    r = c.post(f"/api/v1/plans/{p2}/publish", json={"reason": "trial over", "effective_from": _iso(t2)})
    assert r.status_code == 200, r.text
    assert r.json()["grid_changes"] == 1 and r.json()["grid_changes_applied"] == 0   # not yet in force
    # Now: still P1's versions; later: P2's; earlier: the original ones.
    assert _station_km2(c) == {ids["A"]: 2, ids["B"]: 2}
    assert _station_km2(c, t2 + timedelta(minutes=1)) == {ids["A"]: 3, ids["B"]: 3}
    assert _station_km2(c, t0 - timedelta(seconds=1)) == {ids["A"]: 1, ids["B"]: 1}
    # The grid moves back only when P2 takes effect.
    assert plan_conn.execute("SELECT organisation_id FROM grid WHERE id = %s", [ids["G3"]]).fetchone()[
        "organisation_id"] == ids["A"]
    # A scheduled version cannot be changed through the layer API.
    future = plan_conn.execute("SELECT id FROM jurisdiction WHERE plan_id = %s LIMIT 1", [p2]).fetchone()["id"]
    admin = plan_login("admin")
    r = admin.patch(f"/api/v1/jurisdictions/{future}", json={"properties": {"name": "x", "reason": "x"}})
    assert r.status_code == 409

    # 3. Ownership follows the version in force at each time (12.5 km, 2 km lies in G3).
    assert _owner(c, 12.5, 2, t0 - timedelta(seconds=1)) == ids["B"]
    assert _owner(c, 12.5, 2, t1 + timedelta(seconds=1)) == ids["A"]
    assert _owner(c, 12.5, 2, t2 + timedelta(seconds=1)) == ids["B"]
    assert _owner(c, 2.5, 2, t2 + timedelta(seconds=1)) == ids["A"]
    # Incidents take the owner in force at their reported time (the dispatch rule), not today's.
    for when, want in ((t1 + timedelta(minutes=5), ids["A"]), (t2 + timedelta(minutes=5), ids["B"])):
        row = plan_conn.execute(
            "INSERT INTO incident (channel, type, geom, reported_at) VALUES ('110', 'theft', "
            "ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s) "
            "RETURNING jurisdiction_owner_at('station', geom, reported_at) AS owner", [*lonlat(12.5, 2), when]
        ).fetchone()
        assert row["owner"] == want

    # 4. History cannot be rewritten: a publish before the latest effective time is refused.
    p3 = c.post("/api/v1/plans", json={"name": "P3", "kind": "station"}).json()["id"]
    r = c.post(f"/api/v1/plans/{p3}/publish", json={"reason": "x", "effective_from": _iso(t2 - timedelta(minutes=1))})
    assert r.status_code == 409 and r.json()["field"] == "effective_from"
    r = c.post(f"/api/v1/plans/{p3}/publish", json={"reason": "x", "effective_from": "2020-01-01T00:00:00Z"})
    assert r.status_code == 400 and r.json()["field"] == "effective_from"
    r = c.post(f"/api/v1/plans/{p3}/publish", json={"effective_from": _iso(t2 + timedelta(hours=1))})
    assert r.status_code == 400 and r.json()["field"] == "reason"

    # 5. Rollback: publish P1's layout again, two hours later.
    t3 = t2 + timedelta(hours=1)
    r = c.post(f"/api/v1/plans/{p1}/rollback", json={"reason": "back to P1", "effective_from": _iso(t3)})
    assert r.status_code == 200, r.text
    assert r.json()["rolled_back_to_plan_id"] == p1
    assert _station_km2(c, t3 + timedelta(minutes=1)) == {ids["A"]: 4, ids["B"]: 4}
    assert _owner(c, 12.5, 2, t3 + timedelta(seconds=1)) == ids["A"]
    hist = c.get(f"/api/v1/jurisdictions?kind=station&organisation_id={ids['A']}&history=true").json()
    periods = sorted((f["properties"]["version"], f["properties"]["valid_from"], f["properties"]["valid_to"])
                     for f in hist["features"])
    assert [p[0] for p in periods] == [1, 2, 3, 4]
    for (_, _, end), (_, start, _) in zip(periods, periods[1:], strict=False):
        assert end == start   # contiguous, never overlapping
    assert periods[-1][2] is None

    # 6. Every step is in the audit log.
    log = admin.get("/api/v1/audit?entity=plan&limit=1000").json()
    actions = {(r["action"], r["entity_id"]) for r in log}
    assert {("create", str(p1)), ("move_grid", str(p1)), ("publish", str(p1)), ("publish", str(p2)),
            ("rollback", str(r.json()["plan_id"]))} <= actions
    plans = {p["id"]: p for p in c.get("/api/v1/plans?kind=station").json()}
    assert plans[p1]["status"] == "published" and plans[p1]["superseded_by"] == p2


def test_versions_never_overlap_in_the_database(plan_conn, ids):
    with pytest.raises(psycopg.errors.ExclusionViolation):
        plan_conn.execute(
            "INSERT INTO jurisdiction (organisation_id, kind, version, geom, valid_from, author, reason) "
            "SELECT organisation_id, kind, 99, geom, valid_from + interval '1 second', 'x', 'x' FROM jurisdiction "
            "WHERE organisation_id = %s AND kind = 'traffic'", [ids["T"]])


def test_joint_zone_publish(plan_login, ids):
    c = plan_login("planner")
    plan = c.post("/api/v1/plans", json={"name": "zones", "kind": "joint_zone"}).json()
    z = plan["areas"]["features"][0]
    r = c.patch(f"/api/v1/plans/areas/{z['id']}", json={"member_ids": [ids["A"], ids["B"]]})
    assert r.status_code == 200
    r = c.post(f"/api/v1/plans/{plan['id']}/publish", json={"reason": "T leaves the zone"})
    assert r.status_code == 200, r.text
    zones = c.get("/api/v1/joint_zones").json()["features"]
    assert len(zones) == 1 and zones[0]["properties"]["member_ids"] == sorted([ids["A"], ids["B"]])
    assert zones[0]["properties"]["version"] == 2
