"""Drafts through the API: copy, edit, move a grid or a village, split, merge; validation cases."""

from __future__ import annotations

import pytest
from support.planning import box_geojson, lonlat


def _areas(plan: dict) -> dict:
    return {f["properties"]["organisation_code"] or f["properties"]["zone_code"]: f
            for f in plan["areas"]["features"]}


def _km2(plan: dict) -> dict:
    return {k: round(f["properties"]["area_km2"], 3) for k, f in _areas(plan).items()}


@pytest.fixture
def planner(plan_login):
    return plan_login("planner")


def _empty_draft(c, name: str) -> int:
    r = c.post("/api/v1/plans", json={"name": name, "kind": "station", "empty": True})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _add(c, pid: int, org_id: int, geometry: dict) -> None:
    r = c.post(f"/api/v1/plans/{pid}/areas", json={"organisation_id": org_id, "geometry": geometry})
    assert r.status_code == 201, r.text


def _validate(c, pid: int) -> dict:
    r = c.get(f"/api/v1/plans/{pid}/validation")
    assert r.status_code == 200, r.text
    return r.json()


def test_copy_of_published_layout_validates(planner):
    r = planner.post("/api/v1/plans", json={"name": "2026 调整", "kind": "station"})
    assert r.status_code == 201, r.text
    plan = r.json()
    assert plan["status"] == "draft" and plan["kind"] == "station" and plan["origin"] == "copy"
    assert _km2(plan) == {"A": 100.0, "B": 100.0}
    v = _validate(planner, plan["id"])
    assert v["valid"] is True and v["issues"] == []
    listed = planner.get("/api/v1/plans?kind=station").json()
    assert plan["id"] in [p["id"] for p in listed]


def test_move_grid_reshapes_both_areas(planner, ids):
    pid = planner.post("/api/v1/plans", json={"name": "move grid", "kind": "station"}).json()["id"]
    r = planner.post(f"/api/v1/plans/{pid}/move-grid", json={"grid_id": ids["G3"], "to_organisation_id": ids["A"]})
    assert r.status_code == 200, r.text
    assert _km2(r.json()["plan"]) == {"A": 125.0, "B": 75.0}
    v = _validate(planner, pid)
    # G7 (the grid above G3) stays with B, so nothing is cut and the county is still tiled.
    assert v["valid"] is True, v["issues"]
    r = planner.post(f"/api/v1/plans/{pid}/move-grid", json={"grid_id": 999999, "to_organisation_id": ids["A"]})
    assert r.status_code == 422 and r.json()["field"] == "grid_id"
    r = planner.post(f"/api/v1/plans/{pid}/move-grid", json={"grid_id": ids["G3"], "to_organisation_id": "A"})
    assert r.status_code == 400 and r.json()["field"] == "to_organisation_id"


def test_move_village_moves_its_cell(planner, plan_conn, ids):
    pid = planner.post("/api/v1/plans", json={"name": "move village", "kind": "station"}).json()["id"]
    v3 = plan_conn.execute("SELECT id FROM village WHERE code = 'V3'").fetchone()["id"]
    r = planner.post(f"/api/v1/plans/{pid}/move-village", json={"village_id": v3, "to_organisation_id": ids["A"]})
    assert r.status_code == 200, r.text
    km2 = _km2(r.json()["plan"])
    assert km2["A"] > 100 and km2["B"] < 100 and km2["A"] + km2["B"] == pytest.approx(200, abs=1e-3)
    inside = plan_conn.execute(
        "SELECT o.code FROM plan_area a JOIN organisation o ON o.id = a.organisation_id, village v "
        "WHERE a.plan_id = %s AND v.code = 'V3' AND ST_Intersects(a.geom, v.geom)", [pid]).fetchall()
    assert [r["code"] for r in inside] == ["A"]
    assert _validate(planner, pid)["counts"]["gap"] == 0
    # The same move again: the village already lies in A.
    r = planner.post(f"/api/v1/plans/{pid}/move-village", json={"village_id": v3, "to_organisation_id": ids["A"]})
    assert r.status_code == 409


def test_reassign_a_drawn_polygon(planner, plan_conn, ids):
    pid = planner.post("/api/v1/plans", json={"name": "draw", "kind": "station"}).json()["id"]
    # The eastern 5 km of B's lower half (grid G4) drawn as a rectangle and given to C.
    r = planner.post(f"/api/v1/plans/{pid}/reassign",
                     json={"geometry": box_geojson(plan_conn, 15, 0, 20, 5), "to_organisation_id": ids["C"]})
    assert r.status_code == 200, r.text
    assert _km2(r.json()["plan"]) == {"A": 100.0, "B": 75.0, "C": 25.0}
    assert _validate(planner, pid)["valid"]


def test_split_then_merge(planner, ids):
    plan = planner.post("/api/v1/plans", json={"name": "split", "kind": "station"}).json()
    pid, b = plan["id"], _areas(plan)["B"]["id"]
    line = {"type": "LineString", "coordinates": [lonlat(17.5, -0.5), lonlat(17.5, 10.5)]}
    r = planner.post(f"/api/v1/plans/areas/{b}/split", json={"line": line, "to_organisation_id": ids["C"]})
    assert r.status_code == 200, r.text
    # B keeps the piece with its station (x = 15 km); C gets the rest.
    assert _km2(r.json()["plan"]) == {"A": 100.0, "B": 75.0, "C": 25.0}
    v = _validate(planner, pid)
    # The line runs through grids G4 and G8: the county is still tiled, but both grids are cut.
    assert sorted((i["code"], i["grid_id"]) for i in v["issues"]) == [("grid_cut", ids["G4"]), ("grid_cut", ids["G8"])]
    c_area = _areas(r.json()["plan"])["C"]["id"]
    r = planner.post(f"/api/v1/plans/areas/{b}/merge", json={"other_area_id": c_area})
    assert r.status_code == 200, r.text
    assert _km2(r.json()["plan"]) == {"A": 100.0, "B": 100.0}
    # A line that does not cross the area.
    short = {"type": "LineString", "coordinates": [lonlat(16, 4), lonlat(16.5, 4)]}
    r = planner.post(f"/api/v1/plans/areas/{b}/split", json={"line": short, "to_organisation_id": ids["C"]})
    assert r.status_code == 422 and r.json()["field"] == "line"


def test_structural_checks_only_on_input(planner, ids, plan_conn):
    pid = _empty_draft(planner, "structure")
    bad = [
        ({"type": "Polygon", "coordinates": [[lonlat(0, 0), lonlat(1, 0), lonlat(1, 1)]]}, 422),  # 3 positions
        ({"type": "Polygon", "coordinates": [[lonlat(0, 0), lonlat(1, 0), lonlat(1, 1), lonlat(0, 1)]]}, 422),
        ({"type": "Polygon", "coordinates": [[["a", 1], [2, 3], [4, 5], ["a", 1]]]}, 400),
        ({"type": "Point", "coordinates": lonlat(1, 1)}, 422),
        ({"type": "Polygon", "coordinates": [[[10, 10], [11, 10], [11, 11], [10, 10]]]}, 422),  # outside extent
    ]
    for geom, status in bad:
        r = planner.post(f"/api/v1/plans/{pid}/areas", json={"organisation_id": ids["A"], "geometry": geom})
        assert r.status_code == status, (geom, r.text)
        assert r.json()["field"] == "geometry"
    # A self-intersecting ring is accepted while editing, and reported by validation.
    bowtie = {"type": "Polygon", "coordinates": [[lonlat(0, 0), lonlat(10, 10), lonlat(10, 0), lonlat(0, 10),
                                                  lonlat(0, 0)]]}
    _add(planner, pid, ids["A"], bowtie)
    v = _validate(planner, pid)
    inv = [i for i in v["issues"] if i["code"] == "invalid"]
    assert len(inv) == 1 and inv[0]["geometry"]["type"] == "Point"
    assert "Self-intersection" in inv[0]["message_en"] and "几何图形无效" in inv[0]["message_zh"]
    assert v["valid"] is False


@pytest.mark.parametrize("case", ["gap", "overlap", "sliver_gap", "sliver_part", "outside", "grid_cut", "invalid"])
def test_validation_case(planner, plan_conn, ids, case):
    pid = _empty_draft(planner, f"validation {case}")
    a_box, b_box = (0, 0, 10, 10), (10, 0, 20, 10)
    if case == "overlap":
        a_box = (0, 0, 11, 10)
    elif case == "sliver_gap":
        b_box = (10.0005, 0, 20, 10)
    elif case == "outside":
        a_box = (-1, 0, 10, 10)
    elif case == "grid_cut":
        a_box, b_box = (0, 0, 12, 10), (12, 0, 20, 10)
    a = box_geojson(plan_conn, *a_box)
    b = box_geojson(plan_conn, *b_box)
    if case == "gap":  # a 1 km x 1 km hole in B
        b["coordinates"][0].append(list(reversed(box_geojson(plan_conn, 14, 4, 15, 5)["coordinates"][0][0])))
    if case == "sliver_part":  # an 8 m x 8 m square of B given to A as a detached part
        hole = box_geojson(plan_conn, 19.992, 9.992, 20, 10)["coordinates"][0]
        b = plan_conn.execute(
            "SELECT ST_AsGeoJSON(ST_Difference(ST_GeomFromGeoJSON(%s), ST_GeomFromGeoJSON(%s)), 12)::json AS g",
            [_dump(b), _dump({"type": "Polygon", "coordinates": hole})]).fetchone()["g"]
        a["coordinates"].append(hole)
    if case == "invalid":  # a spike: B's ring runs back over itself
        ring = b["coordinates"][0][0]
        ring.insert(2, lonlat(25, 5))
        ring.insert(3, ring[1])
    _add(planner, pid, ids["A"], a)
    _add(planner, pid, ids["B"], b)
    v = _validate(planner, pid)
    codes = [i["code"] for i in v["issues"]]
    assert v["valid"] is False
    for i in v["issues"]:
        assert i["message_zh"] and i["message_en"] and i["severity"] == "error"
    if case == "gap":
        assert codes == ["gap"]
        assert v["issues"][0]["m2"] == pytest.approx(1e6, rel=1e-6)
        assert v["issues"][0]["geometry"]["type"] == "Polygon"
    elif case == "overlap":
        assert sorted(set(codes)) == ["grid_cut", "overlap"]  # G3 and G7 lie in both
        assert v["issues"][0]["m2"] == pytest.approx(1e7, rel=1e-6)
        assert sorted(v["issues"][0]["area_ids"]) == sorted(
            f["id"] for f in planner.get(f"/api/v1/plans/{pid}").json()["areas"]["features"])
    elif case == "sliver_gap":
        assert codes == ["sliver"] and v["issues"][0]["detail"] == "gap"
        assert v["issues"][0]["m2"] == pytest.approx(5000, rel=1e-3)
    elif case == "sliver_part":
        assert codes == ["sliver"] and v["issues"][0]["detail"] == "part", v["issues"]
        assert v["issues"][0]["m2"] == pytest.approx(64, rel=1e-3)
    elif case == "outside":
        assert codes == ["outside"]
        assert v["issues"][0]["m2"] == pytest.approx(1e7, rel=1e-6)
        assert "超出县界" in v["issues"][0]["message_zh"]
    elif case == "grid_cut":
        cut = sorted(i["grid_id"] for i in v["issues"])
        assert codes == ["grid_cut", "grid_cut"] and cut == sorted([ids["G3"], ids["G7"]])
        assert v["issues"][0]["geometry"]["type"] in ("LineString", "MultiLineString")
    elif case == "invalid":
        assert "invalid" in codes
    # A draft that does not validate cannot be published.
    r = planner.post(f"/api/v1/plans/{pid}/publish", json={"reason": "test"})
    assert r.status_code == 409 and r.json()["issues"]


def _dump(g: dict) -> str:
    import json

    return json.dumps(g)


def test_roles_and_archive(plan_login, plan_live):
    import requests

    viewer = plan_login("viewer")
    r = viewer.post("/api/v1/plans", json={"name": "x", "kind": "station"})
    assert r.status_code == 403
    assert viewer.get("/api/v1/plans").status_code == 200
    assert requests.get(plan_live.url + "/api/v1/plans", timeout=10).status_code == 401
    planner = plan_login("planner")
    r = planner.post("/api/v1/plans", json={"name": "", "kind": "station"})
    assert r.status_code == 400 and r.json()["field"] == "name"
    r = planner.post("/api/v1/plans", json={"name": "x", "kind": "county"})
    assert r.status_code == 400 and r.json()["field"] == "kind"
    pid = planner.post("/api/v1/plans", json={"name": "x", "kind": "traffic"}).json()["id"]
    assert planner.delete(f"/api/v1/plans/{pid}").json()["status"] == "archived"
    aid = planner.get(f"/api/v1/plans/{pid}").json()["areas"]["features"][0]["id"]
    r = planner.patch(f"/api/v1/plans/areas/{aid}", json={"name": "y"})
    assert r.status_code == 409 and r.json()["field"] == "status"
    assert planner.get("/api/v1/plans/999999").status_code == 404


def test_joint_zone_draft(planner, ids):
    plan = planner.post("/api/v1/plans", json={"name": "zones", "kind": "joint_zone"}).json()
    z = _areas(plan)["Z1"]
    assert z["properties"]["member_ids"] == sorted([ids["A"], ids["B"], ids["T"]])
    r = planner.patch(f"/api/v1/plans/areas/{z['id']}", json={"member_ids": [ids["B"]]})
    assert r.status_code == 200, r.text
    assert _areas(r.json())["Z1"]["properties"]["member_ids"] == sorted([ids["A"], ids["B"]])
    assert _validate(planner, plan["id"])["valid"]
