"""Dispatch ownership follows a publish from its effective time: incidents taken through the
dispatch intake before and after a published redraw get the owner in force at their time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from support.planning import lonlat


def _intake(c, at: datetime | None = None) -> dict:
    lon, lat = lonlat(12.5, 2)   # in grid G3, station B's until the publish
    body = {"channel": "110", "type": "theft", "lon": lon, "lat": lat}
    if at is not None:
        body["reported_at"] = at.isoformat()
    r = c.post("/api/v1/dispatch/incidents", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def test_ownership_follows_the_published_version(plan_login, ids):
    dispatcher, planner = plan_login("dispatcher"), plan_login("planner")
    before = datetime.now(UTC) - timedelta(seconds=30)
    assert _intake(dispatcher)["station_org_id"] == ids["B"]
    pid = planner.post("/api/v1/plans", json={"name": "G3 to A", "kind": "station"}).json()["id"]
    assert planner.post(f"/api/v1/plans/{pid}/move-grid",
                        json={"grid_id": ids["G3"], "to_organisation_id": ids["A"]}).status_code == 200
    r = planner.post(f"/api/v1/plans/{pid}/publish", json={"reason": "G3 to A"})
    assert r.status_code == 200, r.text
    # Taken now: the new owner. Reported (late) for a time before the publish: the old owner.
    assert _intake(dispatcher)["station_org_id"] == ids["A"]
    assert _intake(dispatcher, before)["station_org_id"] == ids["B"]
