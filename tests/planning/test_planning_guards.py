"""Guards around published boundaries (issue 12, items 10 and 11): an empty plan never validates,
publish and rollback at the same moment do not deadlock, the county outline is replaced, never
deleted, and a boundary edit through the layer API gets the plan's validation."""

from __future__ import annotations

import threading

from support.planning import box_geojson


def _new_plan(c, kind: str, name: str, empty: bool = False) -> int:
    r = c.post("/api/v1/plans", json={"name": name, "kind": kind, "empty": empty})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_an_empty_plan_never_validates_nor_publishes(plan_login, plan_conn):
    c = plan_login("planner")
    for kind in ("station", "traffic", "joint_zone"):
        pid = _new_plan(c, kind, f"empty {kind}", empty=True)
        r = c.get(f"/api/v1/plans/{pid}/validation")
        assert r.status_code == 200, r.text
        v = r.json()
        assert v["valid"] is False and v["counts"]["gap"] >= 1, v
        r = c.post(f"/api/v1/plans/{pid}/publish", json={"reason": "empty"})
        assert r.status_code == 409, r.text
        assert r.json()["field"] == "plan" and r.json()["reason"]
    # nothing ended
    assert plan_conn.execute("SELECT count(*) AS n FROM jurisdiction WHERE valid_to IS NOT NULL").fetchone()["n"] == 0


def test_publish_and_rollback_at_the_same_moment(plan_login, plan_conn):
    c = plan_login("planner")
    base = _new_plan(c, "traffic", "base")
    r = c.post(f"/api/v1/plans/{base}/publish", json={"reason": "base"})
    assert r.status_code == 200, r.text
    for i in range(6):
        draft = _new_plan(c, "traffic", f"race {i}")
        clients = [plan_login("planner"), plan_login("planner")]
        results: dict[str, object] = {}
        barrier = threading.Barrier(2)

        def go(name, client, url, reason, results=results, barrier=barrier):
            barrier.wait()
            try:
                results[name] = client.post(url, json={"reason": reason}, timeout=60)
            except Exception as e:  # noqa: BLE001 - reported below
                results[name] = e

        threads = [threading.Thread(target=go, args=("publish", clients[0], f"/api/v1/plans/{draft}/publish", "p")),
                   threading.Thread(target=go, args=("rollback", clients[1], f"/api/v1/plans/{base}/rollback", "r"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        codes = {k: getattr(v, "status_code", v) for k, v in results.items()}
        assert set(codes.values()) <= {200, 409}, {k: getattr(v, "text", v) for k, v in results.items()}
        assert 200 in codes.values(), codes
    # the traffic layout in force is still one whole version per organisation
    n = plan_conn.execute("SELECT count(*) AS n FROM jurisdiction WHERE kind = 'traffic' AND valid_from <= now() "
                          "AND (valid_to IS NULL OR valid_to > now())").fetchone()["n"]
    assert n == 1


def test_boundary_edit_through_the_layer_api_is_validated(plan_login, plan_conn, ids):
    admin = plan_login("admin")
    ja = plan_conn.execute("SELECT id FROM jurisdiction WHERE organisation_id = %s AND kind = 'station' "
                           "AND valid_to IS NULL", [ids["A"]]).fetchone()["id"]
    before = plan_conn.execute("SELECT count(*) AS n FROM jurisdiction").fetchone()["n"]
    # A's area as a square reaching 3 km into B's: refused, naming the overlap
    r = admin.patch(f"/api/v1/jurisdictions/{ja}", json={
        "geometry": box_geojson(plan_conn, 0, 0, 13, 10), "properties": {"reason": "bigger"}})
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["field"] == "geometry" and "overlap" in body["reason"], body
    assert any(i["code"] == "overlap" for i in body["issues"])
    # shrinking it leaves a gap: refused too
    r = admin.patch(f"/api/v1/jurisdictions/{ja}", json={
        "geometry": box_geojson(plan_conn, 0, 0, 8, 10), "properties": {"reason": "smaller"}})
    assert r.status_code == 409 and "gap" in r.json()["reason"], r.text
    # retiring it leaves a gap
    r = admin.delete(f"/api/v1/jurisdictions/{ja}", params={"reason": "gone"})
    assert r.status_code == 409, r.text
    # a joint zone too
    zid = plan_conn.execute("SELECT id FROM joint_zone WHERE valid_to IS NULL").fetchone()["id"]
    r = admin.patch(f"/api/v1/joint_zones/{zid}", json={
        "geometry": box_geojson(plan_conn, 0, 0, 15, 10), "properties": {"reason": "smaller"}})
    assert r.status_code == 409, r.text
    assert plan_conn.execute("SELECT count(*) AS n FROM jurisdiction").fetchone()["n"] == before
    # an edit that keeps the tiling (the name only, or the same area) goes through
    r = admin.patch(f"/api/v1/jurisdictions/{ja}", json={"properties": {"name": "甲辖区", "reason": "name"}})
    assert r.status_code == 200, r.text


def test_the_county_outline_is_replaced_not_deleted(plan_login, plan_conn):
    admin = plan_login("admin")
    county = plan_conn.execute("SELECT id FROM county").fetchone()["id"]
    r = admin.delete(f"/api/v1/county/{county}", params={"reason": "oops"})
    assert r.status_code == 409, r.text
    assert r.json()["field"] == "id" and "replace" in r.json()["reason"]
    assert plan_conn.execute("SELECT count(*) AS n FROM county").fetchone()["n"] == 1
    # replacing it (PUT / PATCH) is allowed
    r = admin.put(f"/api/v1/county/{county}", json={"properties": {"name_en": "Test county"}})
    assert r.status_code == 200, r.text


def test_without_the_county_outline_nothing_validates(plan_login, plan_conn):
    c = plan_login("planner")
    pid = _new_plan(c, "station", "copy without county")
    assert c.get(f"/api/v1/plans/{pid}/validation").json()["valid"] is True
    saved = plan_conn.execute("SELECT * FROM county").fetchall()
    ended = plan_conn.execute("SELECT count(*) AS n FROM jurisdiction WHERE valid_to IS NOT NULL").fetchone()["n"]
    plan_conn.execute("DELETE FROM county")
    try:
        for kind in ("station", "traffic"):
            for empty in (False, True):
                p = _new_plan(c, kind, f"no county {kind} {empty}", empty=empty)
                v = c.get(f"/api/v1/plans/{p}/validation").json()
                assert v["valid"] is False, v
                assert v["counts"]["no_county"] == 1
                issue = next(i for i in v["issues"] if i["code"] == "no_county")
                assert "county" in issue["message_en"]
                r = c.post(f"/api/v1/plans/{p}/publish", json={"reason": "no county"})
                assert r.status_code == 409, r.text
    finally:
        for row in saved:
            plan_conn.execute("INSERT INTO county (id, adcode, name, name_en, geom) VALUES (%s, %s, %s, %s, %s)",
                              [row["id"], row["adcode"], row["name"], row["name_en"], row["geom"]])
    # no publish went through: nothing ended
    assert plan_conn.execute("SELECT count(*) AS n FROM jurisdiction WHERE valid_to IS NOT NULL").fetchone()[
        "n"] == ended
