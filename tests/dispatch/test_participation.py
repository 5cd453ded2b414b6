"""Participation in force at a time (issue 15): a hand-written history where a station joins traffic
management on a date; the rules and the joint-zone fallback read the version in force at the
incident's reported_at; the planner's API to read and record dated changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from support.dispatch import box, make_org, make_unit

from gisapp.core.config import Settings
from gisapp.dispatch import participation
from gisapp.dispatch.legs import plan_incident

NOW = datetime.now(UTC).replace(microsecond=0)
JOIN_S = NOW - timedelta(days=30)    # station S joins traffic management
JOIN_T = NOW - timedelta(days=60)    # station T joins earlier


@pytest.fixture(scope="module")
def hw(dispatch_db):
    """Stations S and T (neither taking part when made), squadron Q, one joint zone of the three."""
    from gisapp.core import db

    lon0, lat0 = 117.35, 37.06
    with db.connect(dispatch_db) as conn:
        s = make_org(conn, "station", "测试参与甲派出所", lon0 + 0.02, lat0 + 0.02)
        t = make_org(conn, "station", "测试参与乙派出所", lon0 + 0.06, lat0 + 0.02)
        q = make_org(conn, "squadron", "测试参与交警中队", lon0 + 0.04, lat0 + 0.03, traffic=True)
        z = conn.execute(
            "INSERT INTO joint_zone (code, name, centre_org_id, geom, valid_from) VALUES "
            "('T15-JZ', '测试参与战区', %s, ST_GeomFromText(%s, 4326), '2020-01-01') RETURNING id",
            [s, box(lon0, lat0, lon0 + 0.08, lat0 + 0.04)]).fetchone()["id"]
        for org in (s, t, q):
            conn.execute("INSERT INTO joint_zone_member (joint_zone_id, organisation_id, role) VALUES (%s, %s, %s)",
                         [z, org, "centre" if org == s else "member"])
        make_unit(conn, s, lon0 + 0.021, lat0 + 0.02, caps=("accident_qualified",))
        make_unit(conn, t, lon0 + 0.061, lat0 + 0.02, caps=("accident_qualified",))
        # the squadron's only car is busy: its legs fall back within the joint zone
        make_unit(conn, q, lon0 + 0.041, lat0 + 0.03, caps=("accident_qualified",), status="assigned")
        conn.commit()
        codes = {o: conn.execute("SELECT code FROM organisation WHERE id = %s", [o]).fetchone()["code"]
                 for o in (s, t, q)}
    return {"s": s, "t": t, "q": q, "zone": z, "lon": lon0 + 0.025, "lat": lat0 + 0.015, "codes": codes}


def _inc(hw, at: datetime, severity: str = "minor") -> dict:
    return {"type": "traffic_accident", "severity": severity, "channel": "122", "station_org_id": hw["s"],
            "traffic_org_id": hw["q"], "joint_zone_id": hw["zone"], "reported_at": at, "lon": hw["lon"],
            "lat": hw["lat"]}


def test_dated_changes_through_the_api(dlogin, hw, dconn):
    planner = dlogin("planner")
    for org, at, note in ((hw["t"], JOIN_T, "乙所参与交通管理"), (hw["s"], JOIN_S, "甲所参与交通管理")):
        r = planner.post("/api/v1/participation", json={"organisation": org, "valid_from": at.isoformat(),
                                                         "takes_part_in_traffic": True, "note": note})
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["version"]["takes_part_in_traffic"] is True and body["version"]["valid_to"] is None
        first, second = body["organisation"]["versions"]
        assert first["valid_from"] is None and first["takes_part_in_traffic"] is False
        assert datetime.fromisoformat(first["valid_to"]) == at == datetime.fromisoformat(second["valid_from"])
        # already in force: the organisation's own flags follow
        assert body["organisation"]["takes_part_in_traffic"] is True
    assert dconn.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'participation_change' "
                         "AND entity_id = %s", [str(hw["s"])]).fetchone()["n"] == 1
    listed = planner.get("/api/v1/participation", params={"organisation": hw["codes"][hw["s"]]}).json()
    assert [o["id"] for o in listed["organisations"]] == [hw["s"]]
    assert len(listed["organisations"][0]["versions"]) == 2
    everyone = dlogin("viewer").get("/api/v1/participation").json()["organisations"]
    assert {hw["s"], hw["t"], hw["q"]} <= {o["id"] for o in everyone}


def test_participation_in_force_at_a_time(hw, dconn):
    h = participation.history(dconn)
    assert not h.takes_part(hw["s"], JOIN_S - timedelta(seconds=1))
    assert h.takes_part(hw["s"], JOIN_S) and h.takes_part(hw["s"], NOW)
    assert h.at(hw["s"], JOIN_S).valid_from == JOIN_S
    assert participation.takes_part_at(dconn, hw["s"], JOIN_S - timedelta(days=1)) is False
    assert participation.takes_part_at(dconn, hw["s"], JOIN_S + timedelta(days=1)) is True
    assert h.takes_part(hw["q"], JOIN_T - timedelta(days=365))   # a squadron always does


def test_rules_read_the_participation_at_reported_at(hw, dconn):
    settings = Settings()
    before = plan_incident(dconn, settings, _inc(hw, JOIN_S - timedelta(days=1)), recommend=False)
    after = plan_incident(dconn, settings, _inc(hw, JOIN_S + timedelta(days=1)), recommend=False)
    assert before["rule"] == "minor_accident_squadron"
    assert after["rule"] == "minor_accident_traffic_station"
    assert after["legs"][0]["organisation_id"] == hw["s"] and after["legs"][0]["fallback_from_org_id"] is None


def test_the_joint_zone_fallback_reads_the_participation_at_reported_at(hw, dconn):
    settings = Settings()
    # before T joined: the squadron's leg (its car busy) finds no station of the zone taking part
    early = plan_incident(dconn, settings, _inc(hw, JOIN_T - timedelta(days=1)), recommend=False)
    leg = early["legs"][0]
    assert early["rule"] == "minor_accident_squadron" and leg["reason_code"] == "no_unit_in_zone"
    assert leg["organisation_id"] == hw["q"]
    # after T joined (S not yet): the leg falls back to T
    mid = plan_incident(dconn, settings, _inc(hw, JOIN_T + timedelta(days=1)), recommend=False)
    leg = mid["legs"][0]
    assert mid["rule"] == "minor_accident_squadron" and leg["reason_code"] == "zone_fallback"
    assert leg["fallback_from_org_id"] == hw["q"] and leg["organisation_id"] == hw["t"]


@pytest.mark.parametrize("body,status,field,key", [
    ({"valid_from": "2026-01-01T00:00:00Z", "takes_part_in_traffic": True}, 400, "organisation", "err.required"),
    ({"organisation": "NO-SUCH-ORG", "valid_from": "2026-01-01T00:00:00Z", "takes_part_in_traffic": True}, 404,
     "organisation", "err.organisation.not_found"),
    ({"organisation": "S", "takes_part_in_traffic": True}, 400, "valid_from", "err.required"),
    ({"organisation": "S", "valid_from": "yesterday", "takes_part_in_traffic": True}, 400, "valid_from",
     "err.not_time"),
    ({"organisation": "S", "valid_from": "2099-01-01T00:00:00Z"}, 400, "takes_part_in_traffic", "err.required"),
    ({"organisation": "S", "valid_from": "2099-01-01T00:00:00Z", "takes_part_in_traffic": "yes"}, 400,
     "takes_part_in_traffic", "err.not_bool"),
    # before (or at) the last change: versions are not rewritten
    ({"organisation": "S", "valid_from": "2021-01-01T00:00:00Z", "takes_part_in_traffic": False}, 409, "valid_from",
     "err.participation.before_last"),
    ({"organisation": "S", "valid_from": "2099-01-01T00:00:00Z", "takes_part_in_traffic": True}, 400,
     "takes_part_in_traffic", "err.participation.unchanged"),
    ({"organisation": "Q", "valid_from": "2099-01-01T00:00:00Z", "takes_part_in_traffic": False}, 400,
     "takes_part_in_traffic", "err.participation.squadron"),
    ({"organisation": "S", "valid_from": "2099-01-01T00:00:00Z", "merged": True, "note": "x" * 501}, 400, "note",
     "err.participation.note"),
])
def test_bad_changes_are_refused_with_a_key(dlogin, hw, dconn, body, status, field, key):
    body = dict(body)
    if body.get("organisation") in ("S", "Q"):
        body["organisation"] = hw["codes"][hw[body["organisation"].lower()]]
    n = dconn.execute("SELECT count(*) AS n FROM organisation_participation").fetchone()["n"]
    r = dlogin("planner").post("/api/v1/participation", json=body)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field and r.json()["key"] == key
    assert dconn.execute("SELECT count(*) AS n FROM organisation_participation").fetchone()["n"] == n


def test_only_planners_change_participation(dlogin, hw, dconn):
    r = dlogin("viewer").post("/api/v1/participation", json={"organisation": hw["s"],
                                                             "valid_from": "2099-01-01T00:00:00Z", "merged": True})
    assert r.status_code == 403
    acc = dconn.execute("SELECT code FROM organisation WHERE kind = 'accident_section' LIMIT 1").fetchone()["code"]
    r = dlogin("planner").post("/api/v1/participation", json={"organisation": acc,
                                                              "valid_from": "2099-01-01T00:00:00Z", "merged": True})
    assert r.status_code == 400 and r.json()["key"] == "err.participation.kind"


def test_a_change_dated_later_comes_into_force_then(dlogin, hw, dconn):
    later = NOW + timedelta(days=10)
    r = dlogin("planner").post("/api/v1/participation", json={"organisation": hw["t"], "valid_from": later.isoformat(),
                                                              "takes_part_in_traffic": False})
    assert r.status_code == 201, r.text
    # not yet in force: the organisation still takes part now, and the rules read the dates
    assert r.json()["organisation"]["takes_part_in_traffic"] is True
    h = participation.history(dconn)
    assert h.takes_part(hw["t"], NOW) and not h.takes_part(hw["t"], later)


def test_the_plan_page_shows_the_programme_history(demo_login):
    """The demo's programme on /map/plan: 14 stations join, 4 stations and 4 squadrons merge; zh and en."""
    planner = demo_login("planner")
    zh = planner.get("/map/plan", params={"lang": "zh"})
    assert zh.status_code == 200
    html = zh.text
    assert 'data-testid="plan-participation-table"' in html
    assert html.count("参与交通管理</td>") == 14 and html.count("交所合一（所长兼任中队长）</td>") == 8
    assert "2021-07-01" in html and "2022-03-01" in html and "2022-11-01" in html
    en = planner.get("/map/plan", params={"lang": "en"}).text
    assert en.count("joins traffic management</td>") == 14 and "Participation history" in en
    listed = planner.get("/api/v1/participation").json()["organisations"]
    assert len([o for o in listed if o["kind"] == "station"]) == 17


def test_the_squadrons_keep_the_trunk_roads(demo_conn):
    """Rules 2026.1 on the demo: a minor accident on a national road of a station taking part goes
    to the squadron, one on a township road of the same station to the station; an injury
    accident on the national road to the squadron and the accident section."""
    settings = Settings()
    st = demo_conn.execute("SELECT id FROM organisation WHERE code = 'PS-371681105'").fetchone()["id"]  # 韩店
    sq = demo_conn.execute("SELECT id FROM organisation WHERE code = 'SQ-HD'").fetchone()["id"]
    places = {}
    for cls in ("national", "township"):
        r = demo_conn.execute(
            "SELECT ST_X(ST_LineInterpolatePoint(e.geom, 0.5)) AS lon, ST_Y(ST_LineInterpolatePoint(e.geom, 0.5)) AS lat "
            "FROM road_edge e JOIN jurisdiction j ON j.organisation_id = %s AND j.kind = 'station' AND j.valid_to IS NULL "
            "WHERE e.road_class = %s AND ST_Within(e.geom, j.geom) AND e.length_m > 300 ORDER BY e.id LIMIT 1",
            [st, cls]).fetchone()
        places[cls] = (r["lon"], r["lat"])
    from gisapp.dispatch.legs import road_class_at

    assert road_class_at(demo_conn, settings, *places["national"]) == "national"
    assert road_class_at(demo_conn, settings, 117.0, 36.0) is None      # far from every road

    def plan(cls, severity="minor"):
        lon, lat = places[cls]
        return plan_incident(demo_conn, settings, {
            "type": "traffic_accident", "severity": severity, "channel": "122", "station_org_id": st,
            "traffic_org_id": sq, "joint_zone_id": None, "reported_at": NOW, "lon": lon, "lat": lat}, recommend=False)

    national, township, injury = plan("national"), plan("township"), plan("national", "injury")
    assert national["rule"] == "trunk_road_accident_squadron"
    # the squadron, or a zone member standing in when other tests keep its cars busy
    assert sq in (national["legs"][0]["organisation_id"], national["legs"][0]["fallback_from_org_id"])
    assert township["rule"] == "minor_accident_traffic_station"
    assert injury["rule"] == "trunk_road_injury_accident"
    assert [leg["target"] for leg in injury["legs"]] == ["squadron", "accident_section"]
