"""The server side of the dispatcher's fixes of issue 13 (their pages are walked in
test_dispatcher_fixes_browser.py): duplicates checked before a dispatch-at-once, the units a merge
frees in its live event, reverse geocoding, the pre-intake check, organisation names in both
languages, and why a unit is recommended."""

from __future__ import annotations

from support.server import expect_error


def _village(conn, n: int) -> dict:
    return conn.execute("SELECT v.code, v.name, v.town_code, t.name AS town, ST_X(v.geom) AS lon, "
                        "ST_Y(v.geom) AS lat FROM village v LEFT JOIN town t ON t.code = v.town_code "
                        "ORDER BY v.code OFFSET %s LIMIT 1", [n]).fetchone()


def _count(conn, sql: str, params=()) -> int:
    return conn.execute(sql, params).fetchone()["n"]


def test_dispatch_at_once_refuses_a_duplicate_before_writing(demo_login, demo_conn):
    v = _village(demo_conn, 61)
    c = demo_login("dispatcher")
    call = {"channel": "110", "type": "dispute", "lon": v["lon"], "lat": v["lat"], "dispatch": True,
            "auto_assign": True}
    first = c.post("/api/v1/dispatch/incidents", json=call)
    assert first.status_code == 201, first.text
    first = first.json()
    n_inc = _count(demo_conn, "SELECT count(*) AS n FROM incident")
    n_busy = _count(demo_conn, "SELECT count(*) AS n FROM unit WHERE status <> 'available'")
    # a second call at almost the same place: 409 naming the first by its code; nothing written
    again = {**call, "lon": v["lon"] + 0.0005}
    r = c.post("/api/v1/dispatch/incidents", json=again)
    body = expect_error(r, 409, "confirm_duplicates")
    assert [d["code"] for d in body["duplicates"]] == [first["code"]]
    assert first["code"] in body["message"]
    assert _count(demo_conn, "SELECT count(*) AS n FROM incident") == n_inc
    assert _count(demo_conn, "SELECT count(*) AS n FROM unit WHERE status <> 'available'") == n_busy
    # the same check in Chinese and English
    zh = c.post("/api/v1/dispatch/incidents", json=again, headers={"Accept-Language": "zh-CN"}).json()
    assert "疑似重复" in zh["message"] and first["code"] in zh["message"]
    # taken without dispatch: created and flagged, no unit tied up
    r = c.post("/api/v1/dispatch/incidents", json={k: v for k, v in again.items() if k not in ("dispatch",
                                                                                                "auto_assign")})
    assert r.status_code == 201, r.text
    taken = r.json()
    assert taken["status"] == "open" and taken["legs"] == []
    assert [d["code"] for d in taken["duplicates"]] == [first["code"]]
    assert taken["suggested_merge"]["code"] == first["code"]
    # confirmed: dispatched at once
    r = c.post("/api/v1/dispatch/incidents", json={**again, "lon": v["lon"] - 0.0005, "confirm_duplicates": True})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "dispatched"


def test_merge_event_carries_the_freed_units(demo_login, demo_conn):
    v = _village(demo_conn, 71)
    c = demo_login("dispatcher")
    call = {"channel": "110", "type": "dispute", "lon": v["lon"], "lat": v["lat"], "dispatch": True,
            "auto_assign": True}
    a = c.post("/api/v1/dispatch/incidents", json=call).json()
    b = c.post("/api/v1/dispatch/incidents", json={**call, "confirm_duplicates": True}).json()
    freed = [leg["unit_id"] for leg in b["legs"] if leg["unit_id"]]
    assert freed
    after = c.get("/api/v1/stream/events?after=0&limit=1").json()["last_id"]
    r = c.post(f"/api/v1/dispatch/incidents/{b['id']}/merge", json={"into": a["id"]})
    assert r.status_code == 200, r.text
    assert sorted(u["id"] for u in r.json()["units"]) == sorted(freed)
    assert all(u["status"] == "available" for u in r.json()["units"])
    r = c.get(f"/api/v1/stream/events?after={after}&types=incident")
    assert r.status_code == 200, r.text
    events = r.json()["events"]
    ev = [e for e in events if e["type"] == "incident.merged" and e["data"]["incident"]["id"] == b["id"]]
    assert len(ev) == 1
    assert sorted(u["id"] for u in ev[0]["data"]["units"]) == sorted(freed)
    assert all(u["status"] == "available" and u["current_leg_id"] is None for u in ev[0]["data"]["units"])


def test_reverse_geocode_names_village_road_and_town(demo_login, demo_conn, demo_live):
    v = _village(demo_conn, 5)
    c = demo_login("dispatcher")
    r = c.get(f"/api/v1/dispatch/reverse_geocode?lon={v['lon'] + 0.001}&lat={v['lat']}")
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out) >= {"village", "road", "town", "label", "distance_m"}
    near = demo_conn.execute(
        "SELECT name FROM village ORDER BY geom <-> ST_SetSRID(ST_MakePoint(%s, %s), 4326) LIMIT 1",
        [v["lon"] + 0.001, v["lat"]]).fetchone()["name"]
    assert out["village"] == near
    assert 0 < out["distance_m"] < 1500
    assert near in out["label"]
    if out["road"]:
        assert out["road"] in out["label"] and out["road_distance_m"] <= 300
    assert out["town"] and out["label"].startswith(out["town"]) or out["town"] is None
    # far from every village and road (in the sea east of the county): no names, no error
    far = c.get("/api/v1/dispatch/reverse_geocode?lon=122.9&lat=36.9").json()
    assert far["village"] is None and far["road"] is None and far["distance_m"] is None
    # bad input: 400 naming the field; a log-in is needed
    expect_error(c.get("/api/v1/dispatch/reverse_geocode?lon=abc&lat=36.9"), 400, "lon")
    expect_error(c.get("/api/v1/dispatch/reverse_geocode?lon=117.7"), 400, "lat")
    expect_error(c.get("/api/v1/dispatch/reverse_geocode?lon=117.7&lat=95"), 400, "lat")
    from support.server import Client
    anon = Client(demo_live.url)
    try:
        assert anon.get("/api/v1/dispatch/reverse_geocode?lon=117.7&lat=36.9").status_code == 401
    finally:
        anon.close()


def test_intake_check_tells_outside_and_duplicates_without_writing(demo_login, demo_conn):
    v = _village(demo_conn, 81)
    c = demo_login("dispatcher")
    inc = c.post("/api/v1/dispatch/incidents", json={"channel": "110", "type": "dispute", "lon": v["lon"],
                                                     "lat": v["lat"]}).json()
    n = _count(demo_conn, "SELECT count(*) AS n FROM incident")
    r = c.get(f"/api/v1/dispatch/intake/check?lon={v['lon'] + 0.0004}&lat={v['lat']}")
    assert r.status_code == 200, r.text
    assert r.json()["outside_county"] is False
    assert inc["code"] in [d["code"] for d in r.json()["duplicates"]]
    out = demo_conn.execute(
        "SELECT ST_X(p) AS lon, ST_Y(p) AS lat FROM (SELECT ST_PointN(ST_ExteriorRing(ST_GeometryN("
        "ST_Buffer(geom::geography, 700)::geometry, 1)), 1) AS p FROM county LIMIT 1) s").fetchone()
    r = c.get(f"/api/v1/dispatch/intake/check?lon={out['lon']}&lat={out['lat']}")
    assert r.json()["outside_county"] is True
    assert _count(demo_conn, "SELECT count(*) AS n FROM incident") == n
    expect_error(c.get("/api/v1/dispatch/intake/check"), 400, "lon")
    assert demo_login("viewer").get(f"/api/v1/dispatch/intake/check?lon={v['lon']}&lat={v['lat']}").status_code == 403


def test_organisation_names_in_both_languages_and_why_a_unit(demo_login, demo_conn):
    v = _village(demo_conn, 91)
    c = demo_login("dispatcher")
    inc = c.post("/api/v1/dispatch/incidents", json={"channel": "122", "type": "traffic_accident",
                                                     "severity": "injury", "lon": v["lon"], "lat": v["lat"]}).json()
    plan = c.get(f"/api/v1/dispatch/incidents/{inc['id']}/plan").json()
    names = {r["id"]: r for r in demo_conn.execute("SELECT id, name, name_en FROM organisation")}
    for leg in plan["legs"]:
        assert leg["organisation_name_en"] == names[leg["organisation_id"]]["name_en"]
        rec = leg["recommendation"]
        assert "capability" in rec
        for u in rec["units"]:
            assert u["status"] == "available"
            assert isinstance(u["capabilities"], list) and u["kind"] and u["crew"] is not None
            assert u["organisation_name_en"] == names[u["organisation_id"]]["name_en"]
            if rec["capability"]:
                assert rec["capability"] in u["capabilities"]
    d = c.post(f"/api/v1/dispatch/incidents/{inc['id']}/dispatch", json={"auto_assign": True}).json()
    for leg in d["legs"]:
        assert leg["organisation_name_en"] == names[leg["organisation_id"]]["name_en"]
    board = c.get("/api/v1/dispatch/board").json()
    mine = next(i for i in board["incidents"] if i["id"] == inc["id"])
    assert all(leg["organisation_name_en"] for leg in mine["legs"])
    units = c.get("/api/v1/dispatch/units").json()["units"]
    assert all(u["organisation_name_en"] == names[u["organisation_id"]]["name_en"] for u in units)
