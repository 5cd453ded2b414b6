"""The layer API over real HTTP: a round trip for every layer, paging, filters, history."""

from __future__ import annotations

import pytest
from support.database import count
from support.samples import UPDATES, make, square

from gisapp.core.catalog import LAYERS


@pytest.fixture(scope="module")
def station_id(users) -> int:
    return users["chief"]["station_id"]


# Where the boundary layers' samples go: inside the real county outline, apart from each other.
_INSIDE = {"jurisdictions": (117.72, 36.95), "joint_zones": (117.70, 36.95)}


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_round_trip(layer, login, reader, conn, station_id):
    admin = login("admin")
    table = LAYERS[layer].table
    before = count(conn, table)
    feat = make(layer, station_id)
    if layer in _INSIDE:  # boundaries are checked as a plan is: no part outside the county
        feat["geometry"] = square(*_INSIDE[layer])
    r = admin.post(f"/api/v1/{layer}", json=feat)
    assert r.status_code == 201, r.text
    assert r.headers["Content-Type"].startswith("application/geo+json")
    created = r.json()
    fid = created["id"]
    assert created["type"] == "Feature"
    for k, v in feat["properties"].items():
        if k == "staff":
            assert [(s["person_name"], s["role"]) for s in created["properties"][k]] == [
                (s["person_name"], s["role"]) for s in v]
        elif k != "reported_at":
            assert created["properties"][k] == v, k
    assert created["geometry"]["type"].replace("Multi", "") == feat["geometry"]["type"]
    assert count(conn, table) == before + 1
    assert r.headers["Location"].endswith(f"/api/v1/{layer}/{fid}")

    got = reader.get(f"/api/v1/{layer}/{fid}")
    assert got.status_code == 200
    assert got.json() == created

    # listed through a bbox around it, with the FeatureCollection bbox
    x, y = feat["geometry"]["coordinates"][0] if feat["geometry"]["type"] == "LineString" else (
        feat["geometry"]["coordinates"] if feat["geometry"]["type"] == "Point"
        else feat["geometry"]["coordinates"][0][0])
    lst = reader.get(f"/api/v1/{layer}", params={"bbox": f"{x - 0.001},{y - 0.001},{x + 0.02},{y + 0.02}",
                                                "limit": 10000})
    assert lst.status_code == 200
    fc = lst.json()
    assert fc["type"] == "FeatureCollection"
    assert fid in [f["id"] for f in fc["features"]]
    assert len(fc["bbox"]) == 4 and fc["bbox"][0] <= x <= fc["bbox"][2]

    key, value = UPDATES[layer]
    up = admin.patch(f"/api/v1/{layer}/{fid}", json={"properties": {key: value, **(
        {"reason": "test update"} if LAYERS[layer].versioned else {})}})
    assert up.status_code == 200, up.text
    assert up.json()["properties"][key] == value
    new_id = up.json()["id"]
    if LAYERS[layer].versioned:
        assert new_id != fid and up.json()["properties"]["version"] == created["properties"]["version"] + 1
        old = reader.get(f"/api/v1/{layer}/{fid}").json()
        assert old["properties"]["valid_to"] is not None  # history kept, never overwritten
        assert old["properties"].get("name") == created["properties"].get("name")
    else:
        assert new_id == fid

    d = admin.delete(f"/api/v1/{layer}/{new_id}", params={"reason": "test"})
    if layer in ("county", "jurisdictions", "joint_zones"):
        # the county outline is replaced, never deleted; retiring a boundary would leave a gap
        assert d.status_code == 409, d.text
        assert d.json()["field"] in ("id", "geometry") and d.json()["reason"]
        assert reader.get(f"/api/v1/{layer}/{new_id}").json()["properties"].get("valid_to") is None
        return
    assert d.status_code == 200, d.text
    if LAYERS[layer].versioned:
        assert reader.get(f"/api/v1/{layer}/{new_id}").json()["properties"]["valid_to"] is not None
    else:
        assert reader.get(f"/api/v1/{layer}/{new_id}").status_code == 404
        assert count(conn, table) == before
    audit = conn.execute("SELECT action FROM audit_log WHERE entity = %s AND entity_id IN (%s, %s) ORDER BY id",
                         [layer, str(fid), str(new_id)]).fetchall()
    assert [a["action"] for a in audit][0] == "create"


def test_paging_and_filters(login, reader, station_id):
    admin = login("admin")
    ids = []
    for _i in range(5):
        f = make("villages", station_id)
        f["properties"]["town_code"] = "371681102"
        ids.append(admin.post("/api/v1/villages", json=f).json()["id"])
    r1 = reader.get("/api/v1/villages", params={"town_code": "371681102", "limit": 2, "offset": 0}).json()
    r2 = reader.get("/api/v1/villages", params={"town_code": "371681102", "limit": 2, "offset": 2}).json()
    assert r1["numberReturned"] == 2 and r2["numberReturned"] == 2
    assert r1["numberMatched"] >= 5
    assert not {f["id"] for f in r1["features"]} & {f["id"] for f in r2["features"]}
    assert all(f["properties"]["town_code"] == "371681102" for f in r1["features"] + r2["features"])
    bad = reader.get("/api/v1/villages", params={"colour": "red"})
    assert bad.status_code == 400 and bad.json()["field"] == "colour"
    bad = reader.get("/api/v1/villages", params={"limit": "many"})
    assert bad.status_code == 400 and bad.json()["field"] == "limit"
    bad = reader.get("/api/v1/villages", params={"bbox": "1,2,3"})
    assert bad.status_code == 400 and bad.json()["field"] == "bbox"


def test_jurisdiction_history_and_time_travel(login, reader, station_id):
    planner = login("planner")
    org = planner.post("/api/v1/organisations", json=make("organisations", station_id)).json()["id"]
    v1 = planner.post("/api/v1/jurisdictions", json={"type": "Feature", "geometry": square(117.6, 36.9), "properties": {
        "organisation_id": org, "kind": "station", "reason": "initial"}}).json()
    dup = planner.post("/api/v1/jurisdictions", json={"type": "Feature", "geometry": square(117.6, 36.9),
                                                        "properties": {"organisation_id": org, "kind": "station",
                                                                       "reason": "again"}})
    assert dup.status_code == 409
    v2 = planner.patch(f"/api/v1/jurisdictions/{v1['id']}", json={
        "geometry": square(117.6, 36.9, 0.02), "properties": {"reason": "grew"}}).json()
    assert v2["properties"]["version"] == 2 and v2["properties"]["author"] == "t_planner"
    again = planner.patch(f"/api/v1/jurisdictions/{v1['id']}", json={"properties": {"reason": "stale"}})
    assert again.status_code == 409
    at = v1["properties"]["valid_from"]
    past = reader.get("/api/v1/jurisdictions", params={"organisation_id": org, "at": at}).json()
    assert [f["id"] for f in past["features"]] == [v1["id"]]
    now = reader.get("/api/v1/jurisdictions", params={"organisation_id": org}).json()
    assert [f["id"] for f in now["features"]] == [v2["id"]]
    allv = reader.get("/api/v1/jurisdictions", params={"organisation_id": org, "history": "true"}).json()
    assert sorted(f["properties"]["version"] for f in allv["features"]) == [1, 2]


def test_layers_catalogue_and_metadata(reader):
    names = [x["name"] for x in reader.get("/api/v1/layers").json()]
    assert set(names) == set(LAYERS)
    meta = {m["layer"]: m for m in reader.get("/api/v1/metadata").json()}
    assert meta["county"]["synthetic"] is False and "Tianditu" in meta["county"]["source"]


def test_health_reports_versions(http):
    r = http.get("/healthz")
    assert r.status_code == 200, r.text
    h = r.json()
    assert h["status"] == "ok"
    assert h["postgresql"].startswith("15") and h["postgis"].startswith("3")
    assert h["pgrouting"] and h["schema_version"] == h["schema_latest"]
