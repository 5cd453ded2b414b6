"""Live dispatch through HTTP: intake, ownership, rules (dual dispatch, fallback), lifecycle, units, positions."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from support.dispatch import device_token, make_unit

from gisapp.core import db


def _err(r, status: int, field: str | None = None) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) >= {"error", "field", "reason"} and body["reason"]
    if field is not None:
        assert body["field"] == field, body
    return body


def _intake(client, lonlat, type_="theft", channel="110", **kw):
    body = {"channel": channel, "type": type_, "location": {"type": "Point", "coordinates": list(lonlat)}, **kw}
    if body.get("dispatch"):  # these tests place calls close together on purpose
        body.setdefault("confirm_duplicates", True)
    return client.post("/api/v1/dispatch/incidents", json=body)


def _leg(inc: dict, role: str = "primary") -> dict:
    return next(leg for leg in inc["legs"] if leg["role"] == role)


def _go(client, leg_id: int, to: str):
    # first feedback carries a note, closing an outcome (issue 13)
    extra = {"first_feedback": {"note": "现场已处置"}, "closed": {"outcome": "other"}}.get(to, {})
    return client.post(f"/api/v1/dispatch/legs/{leg_id}/transition", json={"to": to, **extra})


def test_catalogue_is_served_from_the_rules_file(dlogin):
    r = dlogin("viewer").get("/api/v1/dispatch/catalogue")
    assert r.status_code == 200
    cat = r.json()
    codes = {t["code"] for t in cat["types"]}
    assert {"theft", "fight", "dispute", "fraud", "public_order", "missing_person", "fire_assist", "other_110",
            "traffic_accident", "traffic_violation", "road_obstruction", "other_122"} <= codes
    assert cat["version"] and cat["sla_s"] == {"sign_off": 90, "first_feedback": 18000, "close": 79200}
    assert cat["lifecycle"]["transitions"]["dispatched"] == ["signed_off", "cancelled"]
    # the squadrons keep the trunk roads (issue 15), then 一警双派
    names = [r["name"] for r in cat["rules"]]
    assert names[:3] == ["trunk_road_injury_accident", "trunk_road_accident_squadron", "injury_accident_dual_dispatch"]
    assert cat["rules"][0]["when"]["road_classes"] == ["expressway", "ramp", "national", "provincial", "urban"]


def test_intake_stores_owners_and_logs_who_when_what_client(dlogin, world, dconn):
    disp = dlogin("dispatcher")
    r = disp.post(
        "/api/v1/dispatch/incidents", headers={"X-Client": "desk-3"},
        json={"channel": "110", "type": "theft", "location": {"type": "Point", "coordinates": list(world.pt_a())},
              "description": "电动车被盗", "caller_number": "138 1234 5678"})
    assert r.status_code == 201, r.text
    inc = r.json()
    assert inc["status"] == "open" and inc["code"].startswith("JQ")
    assert inc["station_org_id"] == world.station_a
    assert inc["traffic_org_id"] == world.squadron
    assert inc["grid_id"] == world.grid_a
    assert inc["joint_zone_id"] == world.joint_zone
    assert inc["station_jurisdiction_id"] == world.jur_a and inc["traffic_jurisdiction_id"] == world.jur_t
    assert inc["caller_masked"] == "138****5678" and not inc["outside_county"]
    stored = dconn.execute("SELECT caller_masked, severity FROM incident WHERE id = %s", [inc["id"]]).fetchone()
    assert stored == {"caller_masked": "138****5678", "severity": "none"}
    ev = disp.get(f"/api/v1/dispatch/incidents/{inc['id']}").json()["events"]
    assert [e["kind"] for e in ev] == ["created"]
    assert ev[0]["actor"] == "t_dispatcher" and ev[0]["client"].startswith("desk-3 127.0.0.1") and ev[0]["at"]


def test_ownership_follows_the_versions_in_force_at_reported_at(dlogin, world, dconn):
    """In 2023 station A's jurisdiction reached over a place that is station B's since 2024-01-01."""
    lon, lat = world.pt_b(dx=-0.02)  # in B's jurisdiction today
    square = [lon - 0.01, lat - 0.01, lon + 0.01, lat + 0.01]

    def version(org: int, n: int, geom_sql: str, args: list, start: str, end: str | None) -> int:
        return dconn.execute(
            "INSERT INTO jurisdiction (organisation_id, kind, version, geom, valid_from, valid_to, author, reason) "
            f"VALUES (%s, 'station', %s, {geom_sql}, %s, %s, 'test', 'boundary change') RETURNING id",
            [org, n, *args, start, end]).fetchone()["id"]

    with dconn.transaction():  # versions follow one another without overlap, as a published plan does
        west = dconn.execute("SELECT geom FROM jurisdiction WHERE id = %s", [world.jur_a]).fetchone()["geom"]
        dconn.execute("UPDATE jurisdiction SET valid_to = '2023-01-01' WHERE id = %s", [world.jur_a])
        old_a = version(world.station_a, 2, "ST_Multi(ST_Union(%s::geometry, ST_MakeEnvelope(%s, %s, %s, %s, 4326)))",
                        [west, *square], "2023-01-01", "2024-01-01")
        new_a = version(world.station_a, 3, "%s::geometry", [west], "2024-01-01", None)
        dconn.execute("UPDATE jurisdiction SET valid_to = '2024-01-01' WHERE id = %s", [world.jur_b])
        new_b = dconn.execute(
            "INSERT INTO jurisdiction (organisation_id, kind, version, geom, valid_from, author, reason) "
            "SELECT organisation_id, kind, 2, geom, '2024-01-01', 'test', 'redrawn' FROM jurisdiction WHERE id = %s "
            "RETURNING id", [world.jur_b]).fetchone()["id"]
    disp = dlogin("dispatcher")
    then = _intake(disp, (lon, lat), reported_at="2023-06-01T10:00:00+08:00").json()
    now = _intake(disp, (lon, lat)).json()
    assert then["station_org_id"] == world.station_a and then["station_jurisdiction_id"] == old_a
    assert now["station_org_id"] == world.station_b and now["station_jurisdiction_id"] == new_b
    world.jur_a, world.jur_b = new_a, new_b


def test_address_resolved_through_the_village_gazetteer(dlogin, world, dconn):
    lon, lat = world.pt_a(dx=0.01)
    dconn.execute("INSERT INTO village (code, name, town_code, geom) VALUES "
                  "('T5V1', '测甲庄村', '371681004', ST_SetSRID(ST_MakePoint(%s, %s), 4326))", [lon, lat])
    disp = dlogin("dispatcher")
    r = disp.post("/api/v1/dispatch/incidents", json={"channel": "110", "type": "dispute",
                                                       "address": "好生街道测甲庄村东头小卖部"})
    assert r.status_code == 201, r.text
    inc = r.json()
    assert inc["location_source"] == "village" and inc["geocode"]["name"] == "测甲庄村"
    assert (inc["lon"], inc["lat"]) == pytest.approx((lon, lat))
    assert inc["station_org_id"] == world.station_a
    n = dconn.execute("SELECT count(*) AS n FROM incident").fetchone()["n"]
    _err(disp.post("/api/v1/dispatch/incidents", json={"channel": "110", "type": "dispute",
                                                        "address": "不存在的地方"}), 422, "address")
    assert dconn.execute("SELECT count(*) AS n FROM incident").fetchone()["n"] == n


def test_gazetteer_roads_and_crossings(dispatch_db):
    """Named roads and their crossing (checked in a rolled-back transaction: roads would switch on routing)."""
    from gisapp.dispatch.gazetteer import resolve_address

    with db.connect(dispatch_db) as conn:
        for name, wkt in (("测试东西路", "LINESTRING(117.50 37.00, 117.52 37.00)"),
                          ("测试南北路", "LINESTRING(117.51 36.99, 117.51 37.01)")):
            conn.execute("INSERT INTO road_node (geom) VALUES (ST_StartPoint(ST_GeomFromText(%s, 4326))), "
                         "(ST_EndPoint(ST_GeomFromText(%s, 4326)))", [wkt, wkt])
            conn.execute(
                "INSERT INTO road_edge (source, target, road_class, name, length_m, geom) "
                "SELECT (SELECT max(id) - 1 FROM road_node), (SELECT max(id) FROM road_node), 'county', %s, 2000, "
                "ST_GeomFromText(%s, 4326)", [name, wkt])
        hit = resolve_address(conn, "测试东西路与测试南北路交叉口")
        assert hit["source"] == "road_intersection" and (hit["lon"], hit["lat"]) == pytest.approx((117.51, 37.0))
        hit = resolve_address(conn, "测试东西路上有障碍物")
        assert hit["source"] == "road" and hit["lat"] == pytest.approx(37.0)
        hit = resolve_address(conn, "码头镇政府门口")
        assert hit["source"] == "town" and hit["name"] == "码头镇"
        assert resolve_address(conn, "无名之地") is None
        conn.rollback()


def test_idempotent_retry_returns_the_first_incident(dlogin, world, dconn):
    disp = dlogin("dispatcher")
    n0 = dconn.execute("SELECT count(*) AS n FROM incident").fetchone()["n"]
    body = {"channel": "122", "type": "road_obstruction", "location": {"type": "Point",
                                                                       "coordinates": list(world.pt_b())}}
    first = disp.post("/api/v1/dispatch/incidents", json=body, headers={"Idempotency-Key": "call-0001"})
    again = disp.post("/api/v1/dispatch/incidents", json=body, headers={"Idempotency-Key": "call-0001"})
    assert first.status_code == 201 and again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"] and again.json()["idempotent_replay"]
    # the same key with another request is refused
    other = dict(body, type="traffic_violation", severity="none")
    _err(disp.post("/api/v1/dispatch/incidents", json=other, headers={"Idempotency-Key": "call-0001"}), 409,
         "idempotency_key")
    # retries racing each other: still one incident
    results = []
    barrier = threading.Barrier(6)

    def post():
        c = dlogin("dispatcher")
        barrier.wait()
        results.append(c.post("/api/v1/dispatch/incidents", json=dict(body, idempotency_key="call-0002")))

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in results) == [200] * 5 + [201]
    assert len({r.json()["id"] for r in results}) == 1
    assert dconn.execute("SELECT count(*) AS n FROM incident").fetchone()["n"] == n0 + 2


def test_possible_duplicates_are_flagged_with_a_merge_suggestion(dlogin, world, dconn):
    disp = dlogin("dispatcher")
    lon, lat = world.pt_b(dy=0.02)
    a = _intake(disp, (lon, lat), "fight").json()
    assert a["possible_duplicates"] == [] and a["suggested_merge"] is None
    b = _intake(disp, (lon + 0.001, lat), "fight", reported_at=(datetime.now(UTC) - timedelta(minutes=3)).isoformat())
    b = b.json()
    assert [d["id"] for d in b["possible_duplicates"]] == [a["id"]]
    assert 50 < b["possible_duplicates"][0]["distance_m"] < 150
    assert b["suggested_merge"] == {"into": a["id"], "code": a["code"]}
    far = _intake(disp, (lon + 0.004, lat), "fight").json()  # ~360 m away
    assert far["possible_duplicates"] == []
    late = _intake(disp, (lon, lat), "fight", reported_at=(datetime.now(UTC) - timedelta(minutes=15)).isoformat())
    assert late.json()["possible_duplicates"] == []
    m = disp.post(f"/api/v1/dispatch/incidents/{b['id']}/merge", json={"into": a["id"]})
    assert m.status_code == 200 and m.json()["status"] == "merged" and m.json()["duplicate_of"] == a["id"]
    _err(disp.post(f"/api/v1/dispatch/incidents/{b['id']}/merge", json={"into": a["id"]}), 409, "status")
    kinds = [e["kind"] for e in disp.get(f"/api/v1/dispatch/incidents/{b['id']}").json()["events"]]
    assert kinds == ["created", "duplicate_flagged", "merged"]


def test_whole_lifecycle_of_one_leg(dlogin, world, dconn):
    disp = dlogin("dispatcher")
    unit = make_unit(dconn, world.station_a, *world.pt_a(dx=0.005))
    inc = _intake(disp, world.pt_a(dy=0.01), "theft").json()
    plan = disp.get(f"/api/v1/dispatch/incidents/{inc['id']}/plan").json()
    assert plan["rule"] == "police_station" and len(plan["legs"]) == 1
    rec = plan["legs"][0]["recommendation"]
    assert plan["legs"][0]["organisation_id"] == world.station_a
    assert rec["units"] and rec["units"][0]["unit_id"] == unit and rec["units"][0]["eta_s"] > 0
    assert rec["units"][0]["route"]["type"] == "LineString"
    r = disp.post(f"/api/v1/dispatch/incidents/{inc['id']}/dispatch", json={})
    assert r.status_code == 200, r.text
    inc = r.json()
    leg = _leg(inc)
    assert inc["status"] == "dispatched" and leg["status"] == "dispatched" and leg["unit_id"] is None
    assert leg["sla"]["clocks"]["sign_off"]["state"] == "running"
    _err(disp.post(f"/api/v1/dispatch/incidents/{inc['id']}/dispatch", json={}), 409, "status")
    # out of order: nothing changes
    body = _err(_go(disp, leg["id"], "arrived"), 409, "to")
    assert body["current"] == "dispatched" and body["allowed"] == ["signed_off", "cancelled"]
    assert _go(disp, leg["id"], "signed_off").status_code == 200
    _err(_go(disp, leg["id"], "en_route"), 409, "unit_id")  # needs a unit
    a = disp.post(f"/api/v1/dispatch/legs/{leg['id']}/assign", json={"unit_id": unit})
    assert a.status_code == 200, a.text
    assert dconn.execute("SELECT status, current_leg_id FROM unit WHERE id = %s", [unit]).fetchone() == {
        "status": "assigned", "current_leg_id": leg["id"]}
    for step, unit_status in (("en_route", "en_route"), ("arrived", "on_scene"), ("first_feedback", "on_scene")):
        r = _go(disp, leg["id"], step)
        assert r.status_code == 200, r.text
        assert dconn.execute("SELECT status FROM unit WHERE id = %s", [unit]).fetchone()["status"] == unit_status
    _err(_go(disp, leg["id"], "signed_off"), 409, "to")
    done = _go(disp, leg["id"], "closed").json()
    assert done["status"] == "closed" and done["closed_at"]
    clocks = _leg(done)["sla"]["clocks"]
    assert {c["state"] for c in clocks.values()} == {"met"}
    assert dconn.execute("SELECT status, current_leg_id FROM unit WHERE id = %s", [unit]).fetchone() == {
        "status": "available", "current_leg_id": None}
    _err(_go(disp, leg["id"], "closed"), 409, "to")
    _err(_go(disp, leg["id"], "teleported"), 400, "to")
    events = disp.get(f"/api/v1/dispatch/incidents/{inc['id']}").json()["events"]
    assert [(e["kind"], e["data"].get("to")) for e in events] == [
        ("created", None), ("dispatched", None), ("transition", "signed_off"), ("assigned", None),
        ("transition", "en_route"), ("transition", "arrived"), ("transition", "first_feedback"),
        ("transition", "closed"), ("closed", None)]
    assert all(e["actor"] == "t_dispatcher" for e in events)
    # the log is append-only, in the database too
    with pytest.raises(Exception, match="append-only"):
        dconn.execute("UPDATE incident_event SET actor = 'x' WHERE incident_id = %s", [inc["id"]])


def test_injury_accident_goes_to_station_and_accident_section_with_own_clocks(dlogin, world, dconn,
                                                                              accident_section):
    disp = dlogin("dispatcher")
    u_st = make_unit(dconn, world.station_a, *world.pt_a(dx=0.003))
    u_acc = make_unit(dconn, accident_section, *world.pt_a(dx=0.03), caps=("accident_qualified",),
                      kind="accident_car")
    r = _intake(disp, world.pt_a(), "traffic_accident", "122", severity="injury", dispatch=True, auto_assign=True)
    assert r.status_code == 201, r.text
    inc = r.json()
    assert inc["rule"] == "injury_accident_dual_dispatch" and len(inc["legs"]) == 2
    primary, specialist = _leg(inc), _leg(inc, "specialist")
    assert primary["organisation_id"] == world.station_a and specialist["organisation_id"] == accident_section
    assert primary["dispatched_at"] == specialist["dispatched_at"]  # at the same time (一警双派)
    assert primary["unit_id"] == u_st and specialist["unit_id"] == u_acc
    assert _go(disp, specialist["id"], "signed_off").status_code == 200
    inc = disp.get(f"/api/v1/dispatch/incidents/{inc['id']}").json()
    assert _leg(inc, "specialist")["sla"]["clocks"]["sign_off"]["state"] == "met"
    assert _leg(inc)["sla"]["clocks"]["sign_off"]["state"] == "running"
    for to in ("signed_off", "en_route", "arrived", "first_feedback", "closed"):
        assert _go(disp, primary["id"], to).status_code == 200
    inc = disp.get(f"/api/v1/dispatch/incidents/{inc['id']}").json()
    assert inc["status"] == "dispatched"  # the accident section's leg is still open
    for to in ("en_route", "arrived", "first_feedback", "closed"):
        assert _go(disp, specialist["id"], to).status_code == 200
    assert disp.get(f"/api/v1/dispatch/incidents/{inc['id']}").json()["status"] == "closed"


def test_minor_accident_goes_to_a_traffic_station_else_to_the_squadron(dlogin, world, dconn):
    disp = dlogin("dispatcher")
    make_unit(dconn, world.station_a, *world.pt_a(), caps=("accident_qualified",))
    make_unit(dconn, world.squadron, *world.pt_b(), kind="traffic_car")
    in_a = _intake(disp, world.pt_a(dy=-0.01), "traffic_accident", "122", severity="minor", dispatch=True).json()
    in_b = _intake(disp, world.pt_b(dy=-0.01), "traffic_accident", "122", severity="minor", dispatch=True).json()
    assert in_a["rule"] == "minor_accident_traffic_station" and _leg(in_a)["organisation_id"] == world.station_a
    assert _leg(in_a)["capability"] == "accident_qualified"
    assert in_b["rule"] == "minor_accident_squadron" and _leg(in_b)["organisation_id"] == world.squadron
    assert [len(in_a["legs"]), len(in_b["legs"])] == [1, 1]


def test_owner_without_available_unit_falls_back_to_its_joint_zone(dlogin, world, dconn):
    disp = dlogin("dispatcher")
    dconn.execute("UPDATE unit SET status = 'off_duty' WHERE organisation_id = %s AND status = 'available'",
                  [world.station_b])
    helper = make_unit(dconn, world.station_a, *world.pt_b(dx=-0.04))
    inc = _intake(disp, world.pt_b(dy=0.01), "fight", dispatch=True, auto_assign=True).json()
    leg = _leg(inc)
    assert leg["organisation_id"] == world.station_a and leg["fallback_from_org_id"] == world.station_b
    assert leg["unit_id"] is not None
    assert leg["unit_id"] == helper
    ev = [e for e in disp.get(f"/api/v1/dispatch/incidents/{inc['id']}").json()["events"] if e["kind"] == "dispatched"]
    assert ev[0]["data"]["fallback_from_org_id"] == world.station_b


def test_concurrent_assignment_of_one_unit_exactly_one_wins(dlogin, world, dconn):
    for _ in range(4):
        unit = make_unit(dconn, world.station_a, *world.pt_a())
        legs = []
        for _ in range(2):
            inc = _intake(dlogin("dispatcher"), world.pt_a(dx=0.001), "dispute", dispatch=True).json()
            legs.append(_leg(inc)["id"])
        clients = [dlogin("dispatcher"), dlogin("dispatcher")]
        barrier = threading.Barrier(2)
        out = [None, None]

        def go(i: int, legs=legs, unit=unit, clients=clients, barrier=barrier, out=out) -> None:
            barrier.wait()
            out[i] = clients[i].post(f"/api/v1/dispatch/legs/{legs[i]}/assign", json={"unit_id": unit})

        ts = [threading.Thread(target=go, args=(i,)) for i in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert sorted(r.status_code for r in out) == [200, 409], [r.text for r in out]
        loser = next(r for r in out if r.status_code == 409).json()
        assert loser["field"] == "unit_id" and "not available" in loser["reason"]
        rows = dconn.execute("SELECT id, unit_id FROM dispatch_leg WHERE id = ANY(%s)", [legs]).fetchall()
        assert sorted(r["unit_id"] is not None for r in rows) == [False, True]
        owner = dconn.execute("SELECT current_leg_id FROM unit WHERE id = %s", [unit]).fetchone()["current_leg_id"]
        assert owner == next(r["id"] for r in rows if r["unit_id"] == unit)


def test_unit_board_and_manual_status(dlogin, world, dconn):
    disp = dlogin("dispatcher")
    unit = make_unit(dconn, world.squadron, *world.pt_b())
    board = disp.get(f"/api/v1/dispatch/units?organisation_id={world.squadron}").json()
    row = next(u for u in board["units"] if u["id"] == unit)
    assert row["status"] == "available" and row["position_stale"] is False and row["lon"] == world.pt_b()[0]
    r = disp.post(f"/api/v1/dispatch/units/{unit}/status", json={"status": "off_duty"})
    assert r.status_code == 200 and r.json()["status"] == "off_duty"
    _err(disp.post(f"/api/v1/dispatch/units/{unit}/status", json={"status": "on_scene"}), 400, "status")
    _err(dlogin("viewer").post(f"/api/v1/dispatch/units/{unit}/status", json={"status": "available"}), 403)


def test_position_ingest_orders_by_timestamp(dlive, dispatch_db, world, dconn):
    import requests

    unit = make_unit(dconn, world.station_b, *world.pt_b(), position_at=None)
    token, token_id = device_token(dispatch_db, unit)
    h = {"Authorization": f"Bearer {token}"}
    t0 = datetime.now(UTC) - timedelta(minutes=5)

    def rep(i: int, lon: float) -> dict:
        return {"lon": lon, "lat": world.pt_b()[1], "at": (t0 + timedelta(seconds=10 * i)).isoformat()}

    url = dlive.url + "/api/v1/dispatch/positions"
    r = requests.post(url, headers=h, json={"positions": [rep(2, 117.852), rep(0, 117.850), rep(1, 117.851)]})
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == 3 and r.json()["duplicates"] == 0 and r.json()["moved_units"] == [unit]
    # a late report (older than the newest) and a duplicate: history only, the unit does not move back
    r = requests.post(url, headers=h, json={"positions": [rep(1, 117.851), rep(-1, 117.840)]})
    assert r.json() == {"received": 2, "stored": 1, "duplicates": 1, "moved_units": [], "history_only": 1}
    pos = dconn.execute("SELECT ST_X(last_position) AS lon, last_position_at FROM unit WHERE id = %s",
                        [unit]).fetchone()
    assert pos["lon"] == pytest.approx(117.852) and pos["last_position_at"] == t0 + timedelta(seconds=20)
    n = dconn.execute("SELECT count(*) AS n FROM unit_position WHERE unit_id = %s", [unit]).fetchone()["n"]
    assert n == 4
    # a report from the future beyond the tolerance: 422, nothing written
    future = {"lon": 117.86, "lat": world.pt_b()[1], "at": (datetime.now(UTC) + timedelta(minutes=10)).isoformat()}
    body = _err(requests.post(url, headers=h, json={"positions": [rep(3, 117.853), future]}), 422, "positions[1].at")
    assert "future" in body["reason"]
    # another unit's report with a token bound to this unit: 403
    other = make_unit(dconn, world.station_b, *world.pt_b())
    _err(requests.post(url, headers=h, json={"positions": [dict(rep(4, 117.85), unit_id=other)]}), 403,
         "positions[0].unit_id")
    # out of the county's service area / malformed
    _err(requests.post(url, headers=h, json={"positions": [{"lon": 36.9, "lat": 117.8, "at": t0.isoformat()}]}),
         422, "positions[0].lon")
    _err(requests.post(url, headers=h, json={"positions": [{"lon": 117.8, "lat": 36.9}]}), 400, "positions[0].at")
    _err(requests.post(url, headers=h, json={"positions": []}), 400, "positions")
    # a revoked token: 401, nothing written
    with db.connect(dispatch_db) as c:
        c.execute("UPDATE api_token SET revoked_at = now() WHERE id = %s", [token_id])
        c.commit()
    body = _err(requests.post(url, headers=h, json={"positions": [rep(5, 117.855)]}), 401, "Authorization")
    assert "revoked" in body["reason"]
    assert dconn.execute("SELECT count(*) AS n FROM unit_position WHERE unit_id = %s", [unit]).fetchone()["n"] == n
    # a dispatcher's session is not a device
    _err(requests.post(url, json={"positions": [rep(6, 117.85)]}), 401)


def test_gateway_device_reports_for_many_units(dlive, dispatch_db, world, dconn):
    import requests

    units = [make_unit(dconn, world.squadron, *world.pt_b(), position_at="2024-01-01") for _ in range(3)]
    token, _ = device_token(dispatch_db, gateway_units=units)
    now = datetime.now(UTC)
    batch = [{"unit_id": u, "lon": 117.85 + i * 0.001, "lat": 36.93, "at": now.isoformat()} for i, u in enumerate(units)]
    r = requests.post(dlive.url + "/api/v1/dispatch/positions", headers={"Authorization": f"Bearer {token}"},
                      json={"positions": batch})
    assert r.status_code == 200 and sorted(r.json()["moved_units"]) == sorted(units)
    _err(requests.post(dlive.url + "/api/v1/dispatch/positions", headers={"Authorization": f"Bearer {token}"},
                       json={"positions": [dict(batch[0], unit_id=999999)]}), 403, "positions[0].unit_id")


@pytest.mark.parametrize("body, status, field", [
    ({"channel": "119", "type": "theft"}, 400, "channel"),
    ({"channel": "110", "type": "alien_landing"}, 400, "type"),
    ({"channel": "122", "type": "theft"}, 400, "type"),
    ({"channel": "122", "type": "traffic_accident", "severity": "none"}, 400, "severity"),
    ({"channel": "110", "type": "theft"}, 400, "location"),
    ({"channel": "110", "type": "theft", "location": {"type": "Point", "coordinates": [36.9, 117.7]}}, 422,
     "location"),
    ({"channel": "110", "type": "theft", "location": {"type": "Point", "coordinates": [117.7, 36.9]},
      "reported_at": "2999-01-01T00:00:00Z"}, 422, "reported_at"),
    ({"channel": "110", "type": "theft", "location": {"type": "Point", "coordinates": [117.7, 36.9]},
      "caller_number": "not-a-number"}, 400, "caller_number"),
    ({"channel": "110", "type": "theft", "location": {"type": "Point", "coordinates": [117.7, 36.9]},
      "allow_outside": "yes"}, 400, "allow_outside"),
    ([1, 2], 400, "body"),
])
def test_bad_intake_is_refused_and_writes_nothing(dlogin, dconn, body, status, field):
    n = dconn.execute("SELECT count(*) AS n FROM incident").fetchone()["n"]
    # the SLA sweeper may emit sla.* events of legs backdated by other tests at any time
    q = "SELECT count(*) AS n FROM live_event WHERE type NOT LIKE 'sla.%'"
    e = dconn.execute(q).fetchone()["n"]
    _err(dlogin("dispatcher").post("/api/v1/dispatch/incidents", json=body), status, field)
    assert dconn.execute("SELECT count(*) AS n FROM incident").fetchone()["n"] == n
    assert dconn.execute(q).fetchone()["n"] == e


def test_outside_the_county_only_with_the_flag_and_marked(dlogin, dconn):
    disp = dlogin("dispatcher")
    outside = {"type": "Point", "coordinates": [117.25, 36.62]}  # in the service extent, outside the county
    n = dconn.execute("SELECT count(*) AS n FROM incident").fetchone()["n"]
    body = _err(disp.post("/api/v1/dispatch/incidents", json={"channel": "110", "type": "fraud",
                                                               "location": outside}), 422, "location")
    assert "allow_outside" in body["reason"]
    assert dconn.execute("SELECT count(*) AS n FROM incident").fetchone()["n"] == n
    r = disp.post("/api/v1/dispatch/incidents", json={"channel": "110", "type": "fraud", "location": outside,
                                                       "allow_outside": True})
    assert r.status_code == 201 and r.json()["outside_county"] is True and r.json()["station_org_id"] is None


def test_roles(dlogin, world):
    _err(dlogin("viewer").post("/api/v1/dispatch/incidents", json={"channel": "110", "type": "theft"}), 403, "role")
    assert dlogin("viewer").get("/api/v1/dispatch/board").status_code == 200
    _err(dlogin("device").get("/api/v1/dispatch/board"), 403, "role")


def test_board_lists_open_incidents_most_urgent_first(dlogin, world, dconn):
    disp = dlogin("dispatcher")
    inc = _intake(disp, world.pt_a(dx=0.012), "public_order", dispatch=True).json()
    dconn.execute("UPDATE dispatch_leg SET dispatched_at = now() - interval '100 seconds' WHERE incident_id = %s",
                  [inc["id"]])
    board = disp.get("/api/v1/dispatch/board").json()
    item = next(i for i in board["incidents"] if i["id"] == inc["id"])
    assert item["overdue"] == ["sign_off"]
    assert item["legs"][0]["sla"]["clocks"]["sign_off"]["state"] == "overdue"
    assert item["legs"][0]["sla"]["clocks"]["sign_off"]["remaining_s"] < 0
    dispatched = [i for i in board["incidents"] if i["legs"]]
    rem = [min(c["remaining_s"] for leg in i["legs"] for c in leg["sla"]["clocks"].values()
               if c["remaining_s"] is not None) for i in dispatched if any(
        c["remaining_s"] is not None for leg in i["legs"] for c in leg["sla"]["clocks"].values())]
    assert rem == sorted(rem)
    assert board["last_event_id"] > 0


def test_simulate_live_feeds_incidents_legs_and_positions(dispatch_db, world, dconn, monkeypatch):
    from click.testing import CliRunner

    from gisapp.cli import main

    make_unit(dconn, world.station_a, *world.pt_a(dx=0.01))
    before = dconn.execute("SELECT coalesce(max(id), 0) AS m FROM incident").fetchone()["m"]
    monkeypatch.setenv("GISAPP_DATABASE_URL", dispatch_db)
    r = CliRunner().invoke(main, ["simulate-live", "--rate", "240", "--time-scale", "2000", "--duration", "6",
                                  "--positions-every", "0.5", "--seed", "3"])
    assert r.exit_code == 0, r.output
    counts = __import__("json").loads(r.output.strip().splitlines()[-1])
    assert counts["incidents"] >= 3 and counts["transitions"] >= 3 and counts["positions"] >= 1
    assert counts["errors"] == 0
    made = dconn.execute("SELECT count(*) AS n FROM incident WHERE id > %s AND created_by = 'simulator' "
                         "AND synthetic", [before]).fetchone()["n"]
    assert made == counts["incidents"]
    kinds = {r["kind"] for r in dconn.execute(
        "SELECT DISTINCT e.kind FROM incident_event e WHERE e.incident_id > %s AND e.client = 'simulate-live'",
        [before])}
    assert {"created", "dispatched", "transition"} <= kinds
