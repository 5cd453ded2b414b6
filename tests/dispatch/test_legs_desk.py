"""Issue 13, the legs' server side: the duty officer, outcomes, hand-back and re-dispatch, closing
without dispatch, reassignment, unit requirements per leg, the desk's list and a leg's timeline.

Every refusal is checked for its status, its keyed message in the user's language (zh by
default, en on ?lang=en) and for having written nothing (the leg row and the event log).
"""

from __future__ import annotations

import csv
import itertools
import threading
import time

import psycopg
import pytest
from support.database import PASSWORD
from support.dispatch import make_unit
from support.server import Client

from geodata.io import export_layer
from gisapp.core import db
from gisapp.core.accounts import create_user
from gisapp.core.errors import ValidationError

_names = itertools.count(1)


def _err(r, status: int, field: str | None = None, key: str | None = None) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["reason"] and body["message"]
    if field is not None:
        assert body["field"] == field, body
    if key is not None:
        assert body.get("key") == key, body
    return body


def _intake(client, lonlat, type_="theft", channel="110", **kw) -> dict:
    body = {"channel": channel, "type": type_, "location": {"type": "Point", "coordinates": list(lonlat)}, **kw}
    if kw.get("dispatch"):  # these tests place calls close together on purpose: not duplicates
        body.setdefault("confirm_duplicates", True)
    r = client.post("/api/v1/dispatch/incidents", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _leg(inc: dict, role: str = "primary") -> dict:
    return next(leg for leg in inc["legs"] if leg["role"] == role)


def _go(client, leg_id: int, to: str, **body):
    return client.post(f"/api/v1/dispatch/legs/{leg_id}/transition", json={"to": to, **body})


def _snapshot(conn, leg_id: int) -> tuple:
    """The leg row and the number of its incident's events: a refused request changes neither."""
    leg = conn.execute("SELECT * FROM dispatch_leg WHERE id = %s", [leg_id]).fetchone()
    leg.pop("sla_flagged")  # the SLA sweeper's mark, written in the background
    n = conn.execute("SELECT count(*) AS n FROM incident_event WHERE incident_id = %s",
                     [leg["incident_id"]]).fetchone()["n"]
    inc = conn.execute("SELECT status, outcome, needs_owner FROM incident WHERE id = %s",
                       [leg["incident_id"]]).fetchone()
    return leg, n, inc


def _events_after(client, after: int) -> list[dict]:
    r = client.get(f"/api/v1/stream/events?after={after}")
    assert r.status_code == 200, r.text
    return r.json()["events"]


def _last_event(client) -> int:
    return client.get("/api/v1/dispatch/board").json()["last_event_id"]


@pytest.fixture(scope="module")
def desk(dispatch_db, dapp, world):
    """Duty officers of the world's stations A and B, and a unit of each that stays available."""
    with db.connect(dispatch_db) as conn:
        names = {}
        for key, org in (("a", world.station_a), ("b", world.station_b)):
            names[key] = f"duty_{key}{next(_names)}"
            create_user(conn, names[key], PASSWORD, "duty_officer", org, display_name=f"值班民警{key.upper()}")
        conn.commit()
    return names


@pytest.fixture
def duty(dlive, desk):
    made = []

    def _login(key: str) -> Client:
        c = Client(dlive.url)
        r = c.post("/api/v1/auth/login", json={"username": desk[key], "password": PASSWORD})
        assert r.status_code == 200, r.text
        made.append(c)
        return c
    yield _login
    for c in made:
        c.close()


@pytest.fixture
def fresh(dconn, world):
    """Every unit of the world's stations off duty, so each test places the units it needs."""
    dconn.execute("UPDATE unit SET status = 'off_duty', current_leg_id = NULL WHERE organisation_id = ANY(%s)",
                  [[world.station_a, world.station_b, world.squadron]])


# --- the role -----------------------------------------------------------------------------------

def test_duty_officer_is_bound_to_one_organisation(dispatch_db, dconn, dlogin):
    with db.connect(dispatch_db) as conn:
        with pytest.raises(ValidationError) as e:
            create_user(conn, "t_duty_nobody", PASSWORD, "duty_officer")
        assert e.value.field == "station_id" and e.value.key == "err.role_needs_organisation"
    # the database refuses it too
    with pytest.raises(psycopg.errors.CheckViolation):
        dconn.execute("INSERT INTO app_user (username, password_hash, role) VALUES ('t_duty_raw', 'x', 'duty_officer')")
    duty = dlogin("duty_officer")
    me = duty.get("/api/v1/auth/me").json()
    chief_station = dconn.execute("SELECT station_id FROM app_user WHERE username = 't_chief'").fetchone()
    assert me["role"] == "duty_officer" and me["station_id"] == chief_station["station_id"]
    # a duty officer opens what a chief opens
    for page in ("/", "/map/coverage"):
        assert duty.get(page).status_code == 200, page
    assert duty.get("/map/dispatch").status_code == 403


def test_duty_officer_works_own_legs_and_gets_403_on_anothers(duty, dlogin, world, dconn, fresh):
    disp = dlogin("dispatcher")
    ua = make_unit(dconn, world.station_a, *world.pt_a(dx=0.004))
    ub = make_unit(dconn, world.station_b, *world.pt_b(dx=0.004))
    a = _intake(disp, world.pt_a(dy=0.004), "dispute", dispatch=True)
    b = _intake(disp, world.pt_b(dy=0.004), "dispute", dispatch=True)
    leg_a, leg_b = _leg(a), _leg(b)
    assert leg_b["organisation_id"] == world.station_b
    da = duty("a")
    before = _snapshot(dconn, leg_b["id"])
    body = _err(_go(da, leg_b["id"], "signed_off"), 403, "id", "err.leg_other_organisation")
    assert body["message"] == "这是其他单位的警单，无权操作"
    body = _err(da.post(f"/api/v1/dispatch/legs/{leg_b['id']}/transition?lang=en", json={"to": "signed_off"}),
                403, "id", "err.leg_other_organisation")
    assert body["message"].startswith("This leg belongs to another organisation")
    _err(da.post(f"/api/v1/dispatch/legs/{leg_b['id']}/hand_back", json={"reason": "不是我们的"}), 403, "id")
    _err(da.post(f"/api/v1/dispatch/legs/{leg_b['id']}/assign", json={"unit_id": ub}), 403)
    # reading another organisation's leg stays 404 (its existence is not revealed)
    _err(da.get(f"/api/v1/dispatch/legs/{leg_b['id']}/timeline"), 404, "id")
    _err(da.get(f"/api/v1/desk/legs?organisation_id={world.station_b}"), 403, "organisation_id")
    assert _snapshot(dconn, leg_b["id"]) == before
    # their own leg: signed off, unit assigned, feedback, closed with an outcome
    assert _go(da, leg_a["id"], "signed_off").status_code == 200
    assert da.post(f"/api/v1/dispatch/legs/{leg_a['id']}/assign", json={"unit_id": ua}).status_code == 200
    for to in ("en_route", "arrived"):
        assert _go(da, leg_a["id"], to).status_code == 200
    assert _go(da, leg_a["id"], "first_feedback", note="双方情绪稳定").status_code == 200
    r = _go(da, leg_a["id"], "closed", outcome="mediation", note="双方达成协议")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "closed" and r.json()["outcome"] == "mediation"


# --- outcomes -----------------------------------------------------------------------------------

def test_catalogue_lists_outcomes_and_leg_transitions(dlogin):
    cat = dlogin("duty_officer").get("/api/v1/dispatch/catalogue").json()
    codes = {o["code"]: o for o in cat["outcomes"]}
    assert {"mediation", "summary_procedure", "to_accident_section", "to_criminal_investigation", "false_alarm",
            "no_police_matter", "other", "duplicate", "phone_advice"} <= set(codes)
    assert codes["mediation"]["zh"] == "现场调解" and codes["mediation"]["incident"] is False
    assert codes["to_accident_section"]["categories"] == ["accident"]
    assert codes["duplicate"]["incident"] is True and codes["duplicate"]["leg"] is False
    assert codes["other"]["categories"] is None
    lt = cat["leg_transitions"]
    assert lt["hand_back_from"] == ["dispatched", "signed_off"] and "handed_back" in lt["terminal"]


def test_closing_needs_an_outcome_of_the_list_and_feedback_a_note(dlogin, world, dconn, fresh, dapp):
    disp = dlogin("dispatcher")
    unit = make_unit(dconn, world.station_a, *world.pt_a(dx=0.006))
    inc = _intake(disp, world.pt_a(dy=-0.006), "theft", dispatch=True, units={"primary": unit})
    leg = _leg(inc)["id"]
    for to in ("signed_off", "en_route", "arrived"):
        assert _go(disp, leg, to).status_code == 200
    before = _snapshot(dconn, leg)
    _err(_go(disp, leg, "first_feedback"), 400, "note", "err.note_required")
    body = _err(_go(disp, leg, "first_feedback", note="   "), 400, "note", "err.note_required")
    assert body["message"] == "首次反馈须填写反馈内容"
    limit = dapp.extensions["gisapp.settings"].leg_note_max_chars
    body = _err(disp.post(f"/api/v1/dispatch/legs/{leg}/transition?lang=en",
                          json={"to": "first_feedback", "note": "x" * (limit + 1)}), 400, "note", "err.note_too_long")
    assert body["message"] == f"Too long: at most {limit} characters"
    assert _snapshot(dconn, leg) == before
    assert _go(disp, leg, "first_feedback", note="已到现场，正在调查").status_code == 200
    before = _snapshot(dconn, leg)
    _err(_go(disp, leg, "closed"), 400, "outcome", "err.outcome_required")
    body = _err(_go(disp, leg, "closed", outcome="teleported"), 400, "outcome", "err.outcome_unknown")
    assert body["message"] == "处置结果“teleported”不在列表中"
    # an outcome of the list that does not fit a theft, and one that only closes incidents
    _err(_go(disp, leg, "closed", outcome="to_accident_section"), 400, "outcome", "err.outcome_not_for_category")
    _err(_go(disp, leg, "closed", outcome="duplicate"), 400, "outcome", "err.outcome_not_for_leg")
    _err(_go(disp, leg, "closed", outcome="to_criminal_investigation", note="y" * (limit + 1)), 400, "note",
         "err.note_too_long")
    assert _snapshot(dconn, leg) == before
    after = _last_event(disp)
    r = _go(disp, leg, "closed", outcome="to_criminal_investigation", note="移交刑侦大队")
    assert r.status_code == 200, r.text
    row = dconn.execute("SELECT status, outcome, outcome_note, first_feedback_note FROM dispatch_leg WHERE id = %s",
                        [leg]).fetchone()
    assert row == {"status": "closed", "outcome": "to_criminal_investigation", "outcome_note": "移交刑侦大队",
                   "first_feedback_note": "已到现场，正在调查"}
    detail = disp.get(f"/api/v1/dispatch/incidents/{inc['id']}").json()
    assert detail["outcome"] == "to_criminal_investigation" and _leg(detail)["outcome"] == "to_criminal_investigation"
    closing = [e for e in detail["events"] if e["kind"] == "transition" and e["data"]["to"] == "closed"][0]
    assert closing["data"]["outcome"] == "to_criminal_investigation" and closing["data"]["note"] == "移交刑侦大队"
    live = [e for e in _events_after(disp, after) if e["data"].get("leg", {}).get("id") == leg]
    assert live and live[-1]["type"] == "incident.closed"
    assert live[-1]["data"]["leg"]["outcome"] == "to_criminal_investigation"
    assert live[-1]["data"]["incident"]["outcome"] == "to_criminal_investigation"


def test_metrics_count_outcomes_and_the_mediation_rate(dlogin, world, dconn, fresh):
    disp = dlogin("dispatcher")
    start = dconn.execute("SELECT clock_timestamp() AS t").fetchone()["t"]
    for outcome in ("mediation", "mediation", "mediation", "summary_procedure"):
        unit = make_unit(dconn, world.station_a, *world.pt_a(dx=0.002), caps=("accident_qualified",))
        inc = _intake(disp, world.pt_a(dy=0.012), "traffic_accident", "122", severity="minor", dispatch=True,
                      units={"primary": unit}, idempotency_key=f"med-{next(_names)}")
        leg = _leg(inc)["id"]
        for to in ("signed_off", "en_route", "arrived"):
            assert _go(disp, leg, to).status_code == 200
        assert _go(disp, leg, "first_feedback", note="ok").status_code == 200
        assert _go(disp, leg, "closed", outcome=outcome).status_code == 200
    end = dconn.execute("SELECT now() + interval '1 second' AS t").fetchone()["t"]
    q = {"from": start.isoformat(), "to": end.isoformat(), "organisation": world.station_a}
    m = disp.get("/api/v1/metrics/sla", params=q).json()
    assert m["outcomes"] == {"mediation": 3, "summary_procedure": 1}
    assert m["mediation_rate"] == pytest.approx(0.75)
    assert m["counts"]["accident_closed_with_outcome"] == 4 and m["counts"]["accident_mediated"] == 3


# --- hand-back and re-dispatch ------------------------------------------------------------------

def test_hand_back_returns_the_leg_to_the_dispatcher_and_redispatch_keeps_the_clocks(duty, dlogin, world, dconn,
                                                                                      fresh, dapp):
    disp = dlogin("dispatcher")
    ua = make_unit(dconn, world.station_a, *world.pt_a(dx=0.008))
    inc = _intake(disp, world.pt_a(dy=0.008), "fight", dispatch=True, units={"primary": ua})
    leg = _leg(inc)["id"]
    # the leg was dispatched two minutes ago and not signed off: its sign-off is a miss
    dconn.execute("UPDATE dispatch_leg SET dispatched_at = dispatched_at - interval '120 seconds' WHERE id = %s",
                  [leg])
    da = duty("a")
    before = _snapshot(dconn, leg)
    body = _err(da.post(f"/api/v1/dispatch/legs/{leg}/hand_back", json={}), 400, "reason", "err.reason_required")
    assert body["message"] == "退回须填写原因"
    _err(da.post(f"/api/v1/dispatch/legs/{leg}/hand_back?lang=en", json={"reason": " "}), 400, "reason",
         "err.reason_required")
    limit = dapp.extensions["gisapp.settings"].hand_back_reason_max_chars
    _err(da.post(f"/api/v1/dispatch/legs/{leg}/hand_back", json={"reason": "长" * (limit + 1)}), 400, "reason",
         "err.note_too_long")
    assert _snapshot(dconn, leg) == before
    after = _last_event(disp)
    r = da.post(f"/api/v1/dispatch/legs/{leg}/hand_back", headers={"X-Client": "desk-a"},
                json={"reason": "地点在乙派出所辖区"})
    assert r.status_code == 200, r.text
    row = dconn.execute("SELECT status, handed_back_at, hand_back_reason FROM dispatch_leg WHERE id = %s",
                        [leg]).fetchone()
    assert row["status"] == "handed_back" and row["handed_back_at"] and row["hand_back_reason"] == "地点在乙派出所辖区"
    assert dconn.execute("SELECT status, current_leg_id FROM unit WHERE id = %s", [ua]).fetchone() == {
        "status": "available", "current_leg_id": None}
    inc_row = dconn.execute("SELECT status, needs_owner, needs_owner_reason FROM incident WHERE id = %s",
                            [inc["id"]]).fetchone()
    assert inc_row == {"status": "open", "needs_owner": True, "needs_owner_reason": "地点在乙派出所辖区"}
    board = disp.get("/api/v1/dispatch/board").json()["incidents"]
    assert board[0]["id"] == inc["id"] and board[0]["needs_owner"] is True  # first in the queue
    assert board[0]["needs_owner_reason"] == "地点在乙派出所辖区"
    live = _events_after(disp, after)
    hb = [e for e in live if e["type"] == "leg.handed_back"]
    assert hb and hb[0]["data"]["leg"]["handed_back_at"] and hb[0]["data"]["reason"] == "地点在乙派出所辖区"
    # a terminal leg: no second hand-back, no transition
    _err(da.post(f"/api/v1/dispatch/legs/{leg}/hand_back", json={"reason": "again"}), 409, "status",
         "err.hand_back_status")
    _err(_go(da, leg, "signed_off"), 409, "to")
    # the dispatcher decides a new owner; bad input first, nothing written
    n_legs = dconn.execute("SELECT count(*) AS n FROM dispatch_leg WHERE incident_id = %s", [inc["id"]]).fetchone()["n"]
    _err(da.post(f"/api/v1/dispatch/incidents/{inc['id']}/redispatch",
                 json={"role": "primary", "organisation_id": world.station_b}), 403, "role")
    body = _err(disp.post(f"/api/v1/dispatch/incidents/{inc['id']}/redispatch",
                          json={"role": "primary", "organisation_id": 987654}), 422, "organisation_id",
                "err.organisation_unknown")
    assert body["message"] == "单位 987654 不存在"
    _err(disp.post(f"/api/v1/dispatch/incidents/{inc['id']}/redispatch?lang=en",
                   json={"role": "boss", "organisation_id": world.station_b}), 400, "role", "err.role_unknown")
    _err(disp.post(f"/api/v1/dispatch/incidents/{inc['id']}/redispatch",
                   json={"role": "specialist", "organisation_id": world.station_b}), 409, "role",
         "err.redispatch_nothing")
    assert dconn.execute("SELECT count(*) AS n FROM dispatch_leg WHERE incident_id = %s",
                         [inc["id"]]).fetchone()["n"] == n_legs
    r = disp.post(f"/api/v1/dispatch/incidents/{inc['id']}/redispatch",
                  json={"role": "primary", "organisation_id": world.station_b})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "dispatched" and out["needs_owner"] is False
    new = next(x for x in out["legs"] if x["status"] == "dispatched")
    old = next(x for x in out["legs"] if x["id"] == leg)
    assert new["organisation_id"] == world.station_b and new["redispatch_of"] == leg
    # the new leg's sign-off clock runs from the re-dispatch, its feedback and closure clocks from the first dispatch
    clocks = new["sla"]["clocks"]
    assert clocks["sign_off"]["started_at"] == new["dispatched_at"]
    assert clocks["first_feedback"]["started_at"] == old["dispatched_at"] == clocks["close"]["started_at"]
    assert old["sla"]["clocks"]["sign_off"]["state"] == "late"
    assert old["sla"]["clocks"]["close"]["state"] == "handed_back"
    # station A's sign-off figure counts the handed-back leg as a miss, its closure figure does not count it
    q = {"from": (dconn.execute("SELECT now() - interval '1 hour' AS t").fetchone()["t"]).isoformat(),
         "organisation": world.station_a}
    m = disp.get("/api/v1/metrics/sla", params=q).json()
    assert m["counts"]["handed_back"] >= 1
    mine = dconn.execute(
        "SELECT count(*) FILTER (WHERE status = 'handed_back') AS hb, count(*) FILTER (WHERE signed_off_at - "
        "dispatched_at <= interval '90 seconds') AS met FROM dispatch_leg WHERE organisation_id = %s AND "
        "status <> 'cancelled' AND dispatched_at >= %s", [world.station_a, q["from"]]).fetchone()
    assert m["counts"]["sign_off_met"] == mine["met"] and m["counts"]["sign_off_decided"] >= mine["hb"] + mine["met"]
    # the live stream, scoped: station B's duty officer gets the re-dispatch (its new leg), not the
    # hand-back at station A
    seen_b = {e["type"] for e in _events_after(duty("b"), after)}
    assert "incident.dispatched" in seen_b and "leg.handed_back" not in seen_b
    seen_a = {e["type"] for e in _events_after(da, after)}
    assert {"leg.handed_back", "incident.dispatched"} <= seen_a
    # station B's duty officer sees the new leg on the desk and may hand it back again
    desk = duty("b").get("/api/v1/desk/legs").json()
    mine_b = next(x for x in desk["legs"] if x["id"] == new["id"])
    assert mine_b["may_hand_back"] is True and mine_b["allowed"] == ["signed_off", "cancelled"]
    assert mine_b["due"]["first_feedback"] == clocks["first_feedback"]["due_at"]
    # the timeline of the new leg tells the whole story
    tl = duty("b").get(f"/api/v1/dispatch/legs/{new['id']}/timeline").json()
    kinds = [e["kind"] for e in tl["events"]]
    assert kinds[0] == "created" and "handed_back" in kinds and kinds[-1] == "dispatched"
    handed = next(e for e in tl["events"] if e["kind"] == "handed_back")
    assert handed["actor"].startswith("duty_a") and handed["actor_name"] == "值班民警A"
    assert handed["client"].startswith("desk-a") and handed["data"]["reason"] == "地点在乙派出所辖区"


def test_hand_back_only_before_the_unit_is_on_its_way(dlogin, world, dconn, fresh):
    disp = dlogin("dispatcher")
    unit = make_unit(dconn, world.station_a, *world.pt_a(dx=0.009))
    inc = _intake(disp, world.pt_a(dy=0.009, dx=0.003), "theft", dispatch=True, units={"primary": unit})
    leg = _leg(inc)["id"]
    for to in ("signed_off", "en_route"):
        assert _go(disp, leg, to).status_code == 200
    before = _snapshot(dconn, leg)
    body = _err(disp.post(f"/api/v1/dispatch/legs/{leg}/hand_back?lang=en", json={"reason": "wrong"}), 409, "status",
                "err.hand_back_status")
    assert body["message"].startswith("The leg is en route")
    assert _snapshot(dconn, leg) == before


# --- closing without dispatch -------------------------------------------------------------------

def test_dispatcher_closes_an_incident_without_dispatch(dlogin, world, dconn, fresh, dispatch_db, tmp_path):
    disp = dlogin("dispatcher")
    inc = _intake(disp, world.pt_a(dy=0.015), "dispute")
    n0 = dconn.execute("SELECT count(*) AS n FROM incident_event WHERE incident_id = %s", [inc["id"]]).fetchone()["n"]
    url = f"/api/v1/dispatch/incidents/{inc['id']}/close"
    _err(disp.post(url, json={}), 400, "outcome", "err.outcome_required")
    _err(disp.post(url, json={"outcome": "nonsense"}), 400, "outcome", "err.outcome_unknown")
    body = _err(disp.post(url + "?lang=en", json={"outcome": "mediation"}), 400, "outcome",
                "err.outcome_not_for_incident")
    assert body["message"] == "Outcome 'mediation' cannot close an incident without dispatch"
    _err(disp.post(url, json={"outcome": "duplicate", "note": "z" * 5000}), 400, "note", "err.note_too_long")
    _err(dlogin("duty_officer").post(url, json={"outcome": "duplicate"}), 403, "role")
    assert dconn.execute("SELECT status, outcome FROM incident WHERE id = %s", [inc["id"]]).fetchone() == {
        "status": "open", "outcome": None}
    assert dconn.execute("SELECT count(*) AS n FROM incident_event WHERE incident_id = %s",
                         [inc["id"]]).fetchone()["n"] == n0
    after = _last_event(disp)
    start = dconn.execute("SELECT now() - interval '1 minute' AS t").fetchone()["t"]
    r = disp.post(url, json={"outcome": "phone_advice", "note": "已电话告知报警人"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "closed" and out["outcome"] == "phone_advice" and out["outcome_note"] == "已电话告知报警人"
    ev = disp.get(f"/api/v1/dispatch/incidents/{inc['id']}").json()["events"][-1]
    assert ev["kind"] == "closed" and ev["data"]["outcome"] == "phone_advice" and ev["data"]["without_dispatch"]
    live = [e for e in _events_after(disp, after) if e["type"] == "incident.closed"]
    assert live and live[0]["data"]["outcome"] == "phone_advice"
    m = disp.get("/api/v1/metrics/sla", params={"from": start.isoformat(), "organisation": world.station_a}).json()
    assert m["incidents_closed_without_dispatch"].get("phone_advice", 0) >= 1
    # in the exports: the incidents layer (GeoJSON API) and `gisapp export` (CSV)
    feat = disp.get(f"/api/v1/incidents/{inc['id']}").json()
    assert feat["properties"]["outcome"] == "phone_advice" and feat["properties"]["outcome_note"] == "已电话告知报警人"
    csv_path = tmp_path / "incidents.csv"
    with db.connect(dispatch_db) as conn:
        export_layer(conn, "incidents", csv_path)
    with csv_path.open(encoding="utf-8") as fh:
        rows = {r["code"]: r for r in csv.DictReader(fh)}
    assert rows[inc["code"]]["outcome"] == "phone_advice"
    # a closed or dispatched incident is not closed this way
    _err(disp.post(url, json={"outcome": "duplicate"}), 409, "status", "err.incident_not_open")
    unit = make_unit(dconn, world.station_a, *world.pt_a(dx=0.01))
    other = _intake(disp, world.pt_a(dy=0.02), "theft", dispatch=True, units={"primary": unit})
    _err(disp.post(f"/api/v1/dispatch/incidents/{other['id']}/close", json={"outcome": "false_alarm"}), 409, "status")


# --- reassignment -------------------------------------------------------------------------------

def test_reassign_frees_the_old_unit_and_races_give_409(dlogin, world, dconn, fresh):
    disp = dlogin("dispatcher")
    u1 = make_unit(dconn, world.station_a, *world.pt_a(dx=0.003, dy=0.02))
    u2 = make_unit(dconn, world.station_a, *world.pt_a(dx=0.006, dy=0.02))
    inc = _intake(disp, world.pt_a(dy=0.021), "theft", dispatch=True, units={"primary": u1})
    leg = _leg(inc)["id"]
    assert _go(disp, leg, "signed_off").status_code == 200
    assert _go(disp, leg, "en_route").status_code == 200
    before = _snapshot(dconn, leg)
    _err(disp.post(f"/api/v1/dispatch/legs/{leg}/reassign", json={"unit_id": u1}), 409, "unit_id", "err.unit_same")
    _err(disp.post(f"/api/v1/dispatch/legs/{leg}/reassign", json={"unit_id": u2, "reason": "r" * 5000}), 400,
         "reason", "err.note_too_long")
    assert _snapshot(dconn, leg) == before
    after = _last_event(disp)
    r = disp.post(f"/api/v1/dispatch/legs/{leg}/reassign", json={"unit_id": u2, "reason": "原车故障"})
    assert r.status_code == 200, r.text
    assert _leg(r.json())["unit_id"] == u2
    units = {x["id"]: x for x in dconn.execute("SELECT id, status, current_leg_id FROM unit WHERE id = ANY(%s)",
                                              [[u1, u2]])}
    assert units[u1]["status"] == "available" and units[u1]["current_leg_id"] is None
    assert units[u2]["status"] == "en_route" and units[u2]["current_leg_id"] == leg
    ev = disp.get(f"/api/v1/dispatch/incidents/{inc['id']}").json()["events"][-1]
    assert ev["kind"] == "reassigned" and ev["data"] == {"from_unit_id": u1, "unit_id": u2, "reason": "原车故障"}
    live = [e for e in _events_after(disp, after) if e["type"] == "leg.reassigned"]
    assert live and live[0]["data"]["leg"]["unit_id"] == u2 and live[0]["data"]["old_unit"]["id"] == u1
    # after arrival: too late
    assert _go(disp, leg, "arrived").status_code == 200
    _err(disp.post(f"/api/v1/dispatch/legs/{leg}/reassign", json={"unit_id": u1}), 409, "status",
         "err.reassign_status")
    # two legs, one free unit: exactly one reassignment wins, the other gets 409 and changes nothing
    for _ in range(3):
        spare = make_unit(dconn, world.station_a, *world.pt_a(dy=0.025))
        pair = []
        for k in range(2):
            u = make_unit(dconn, world.station_a, *world.pt_a(dx=0.002 * k, dy=0.025))
            i = _intake(disp, world.pt_a(dx=0.004 * k, dy=0.026), "theft", dispatch=True, units={"primary": u},
                        idempotency_key=f"race-{next(_names)}")
            pair.append((_leg(i)["id"], u))
        results = {}

        def go(lid, c, unit, out):
            out[lid] = c.post(f"/api/v1/dispatch/legs/{lid}/reassign", json={"unit_id": unit})
        clients = [dlogin("dispatcher"), dlogin("dispatcher")]
        threads = [threading.Thread(target=go, args=(lid, c, spare, results))
                   for (lid, _), c in zip(pair, clients, strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(r.status_code for r in results.values())
        assert codes == [200, 409], [r.text for r in results.values()]
        lost = next(lid for lid, r in results.items() if r.status_code == 409)
        assert results[lost].json()["key"] == "err.unit_taken"
        own = dict(pair)[lost]
        assert dconn.execute("SELECT unit_id FROM dispatch_leg WHERE id = %s", [lost]).fetchone()["unit_id"] == own
        assert dconn.execute("SELECT status FROM unit WHERE id = %s", [own]).fetchone()["status"] == "assigned"


# --- unit requirements per leg ------------------------------------------------------------------

def test_injury_accident_station_leg_needs_a_car_with_two_officers(dlogin, world, dconn, fresh, accident_section):
    disp = dlogin("dispatcher")
    moto = make_unit(dconn, world.station_b, *world.pt_b(dx=0.001), kind="motorcycle", crew=1, caps=("lights",))
    car = make_unit(dconn, world.station_b, *world.pt_b(dx=0.02), kind="patrol_car", crew=2)
    inc = _intake(disp, world.pt_b(), "traffic_accident", "122", severity="injury")
    plan = disp.get(f"/api/v1/dispatch/incidents/{inc['id']}/plan").json()
    primary = next(x for x in plan["legs"] if x["role"] == "primary")
    assert primary["unit_kinds"] == ["patrol_car", "traffic_car"] and primary["min_crew"] == 2
    rec = primary["recommendation"]
    assert [u["unit_id"] for u in rec["units"]] == [car]  # the nearer motorcycle is not recommended
    why = rec["units"][0]["why"]
    assert why["fit"] and why["kind_met"] and why["crew_met"] and why["status"] == "available"
    assert why["eta_s"] == rec["units"][0]["eta_s"] and why["crew"] == 2
    assert rec["requirements"] == {"capability": None, "unit_kinds": ["patrol_car", "traffic_car"], "min_crew": 2}
    r = disp.post(f"/api/v1/dispatch/incidents/{inc['id']}/dispatch", json={"auto_assign": True})
    assert r.status_code == 200, r.text
    leg = _leg(r.json())
    assert leg["unit_id"] == car and leg["min_crew"] == 2
    spec = _leg(r.json(), "specialist")
    assert spec["organisation_id"] == accident_section and spec["capability"] == "accident_qualified"
    # the leg's recommendations say why too
    recs = disp.get(f"/api/v1/dispatch/legs/{leg['id']}/recommendations").json()
    assert all(u["why"]["fit"] for u in recs["units"]) and moto not in [u["unit_id"] for u in recs["units"]]
    # manual assignment of the motorcycle to another injury accident: 409, unless overridden (logged)
    inc2 = _intake(disp, world.pt_b(dy=0.01), "traffic_accident", "122", severity="injury", dispatch=True)
    leg2 = _leg(inc2)["id"]
    before = _snapshot(dconn, leg2)
    body = _err(disp.post(f"/api/v1/dispatch/legs/{leg2}/assign?lang=en", json={"unit_id": moto}), 409, "unit_id",
                "err.unit_unfit")
    assert "kind motorcycle" in body["message"] and "crew 1 below 2" in body["message"]
    assert {m["code"] for m in body["unfit"]} == {"kind", "crew"}
    body = _err(disp.post(f"/api/v1/dispatch/legs/{leg2}/assign", json={"unit_id": moto}), 409, "unit_id")
    assert "人数 1 少于 2" in body["message"]
    assert _snapshot(dconn, leg2) == before
    assert dconn.execute("SELECT status FROM unit WHERE id = %s", [moto]).fetchone()["status"] == "available"
    r = disp.post(f"/api/v1/dispatch/legs/{leg2}/assign", json={"unit_id": moto, "override": True})
    assert r.status_code == 200, r.text
    ev = disp.get(f"/api/v1/dispatch/incidents/{inc2['id']}").json()["events"][-1]
    assert ev["kind"] == "assigned" and ev["data"]["override"] is True and ev["data"]["unit_id"] == moto
    assert {m["code"] for m in ev["data"]["unfit"]} == {"kind", "crew"}


# --- the desk -----------------------------------------------------------------------------------

def test_desk_lists_the_organisations_legs_newest_first(duty, dlogin, world, dconn, fresh):
    disp = dlogin("dispatcher")
    made = [_intake(disp, world.pt_a(dx=0.001 * k, dy=-0.02), "dispute", dispatch=True,
                    idempotency_key=f"desk-{next(_names)}") for k in range(3)]
    ids = [_leg(i)["id"] for i in made]
    da = duty("a")
    out = da.get("/api/v1/desk/legs?limit=2").json()
    assert out["organisation_id"] == world.station_a and [x["id"] for x in out["legs"]] == ids[::-1][:2]
    first = out["legs"][0]
    for key in ("id", "incident_id", "incident_code", "channel", "type", "severity", "address", "lon", "lat",
                "description", "caller_masked", "reported_at", "role", "status", "unit_id", "unit_code",
                "organisation_id", "organisation_name", "dispatched_at", "signed_off_at", "en_route_at", "arrived_at",
                "first_feedback_at", "closed_at", "handed_back_at", "outcome", "outcome_note", "due", "overdue",
                "allowed", "may_hand_back"):
        assert key in first, key
    assert first["incident_code"] == made[-1]["code"] and first["status"] == "dispatched"
    assert set(first["due"]) == {"sign_off", "first_feedback", "close"} and first["due"]["sign_off"].endswith("+00:00")
    assert first["allowed"] == ["signed_off", "cancelled"] and first["may_hand_back"] is True
    nxt = da.get(f"/api/v1/desk/legs?limit=2&after={out['next_after']}").json()
    assert nxt["legs"][0]["id"] == ids[0]
    assert {x["organisation_id"] for x in da.get("/api/v1/desk/legs?state=all&limit=200").json()["legs"]} == {
        world.station_a}
    closed = da.get("/api/v1/desk/legs?state=closed&limit=200").json()["legs"]
    assert all(x["status"] in ("closed", "cancelled", "handed_back") for x in closed)
    # a dispatcher names the organisation; bad parameters are 400 with a field
    _err(disp.get("/api/v1/desk/legs"), 400, "organisation_id", "err.organisation_required")
    assert disp.get(f"/api/v1/desk/legs?organisation_id={world.station_a}").json()["legs"][0]["id"] == ids[-1]
    _err(da.get("/api/v1/desk/legs?state=bogus"), 400, "state")
    _err(da.get("/api/v1/desk/legs?limit=0"), 400, "limit")
    _err(dlogin("viewer").get("/api/v1/desk/legs"), 403, "role")
    # the timeline: who, when, from which client
    tl = da.get(f"/api/v1/dispatch/legs/{ids[0]}/timeline").json()
    assert tl["leg"]["id"] == ids[0]
    assert [e["kind"] for e in tl["events"]] == ["created", "dispatched"]
    assert all(set(e) >= {"id", "at", "kind", "actor", "actor_name", "client", "data"} for e in tl["events"])
    assert tl["events"][0]["actor"] == "t_dispatcher" and tl["events"][0]["at"].endswith("+00:00")


def test_live_leg_events_carry_outcome_and_handed_back_at(dlogin, world, dconn, fresh):
    disp = dlogin("dispatcher")
    after = _last_event(disp)
    inc = _intake(disp, world.pt_a(dy=-0.025), "fight", dispatch=True)
    ev = [e for e in _events_after(disp, after) if e["type"] == "incident.dispatched"]
    leg = ev[0]["data"]["legs"][0]
    assert {"outcome", "handed_back_at", "organisation_name"} <= set(leg) and leg["id"] == _leg(inc)["id"]


def test_demo_accounts_include_the_two_duty_officers(server_url, demo_template, monkeypatch):
    from click.testing import CliRunner
    from support.database import copy_database

    from gisapp.cli import main

    url = copy_database(server_url, demo_template, "gisapp_test_demo_accounts")
    monkeypatch.setenv("GISAPP_DATABASE_URL", url)
    r = CliRunner().invoke(main, ["user", "demo-accounts"])
    assert r.exit_code == 0, r.output
    with db.connect(url) as conn:
        rows = {x["username"]: x for x in conn.execute(
            "SELECT u.username, u.role, o.name, o.kind FROM app_user u JOIN organisation o ON o.id = u.station_id "
            "WHERE u.username IN ('chief', 'duty', 'duty_accident')")}
    assert rows["duty"]["role"] == "duty_officer" and rows["duty"]["name"] == rows["chief"]["name"] == "黛溪派出所"
    assert rows["duty_accident"]["role"] == "duty_officer" and rows["duty_accident"]["kind"] == "accident_section"
    assert "duty_accident" in r.output


def test_a_redispatched_legs_feedback_clock_runs_from_the_first_dispatch(duty, dlogin, world, dconn, fresh,
                                                                          dispatch_db, dapp):
    from gisapp.dispatch.sla import sweep_overdue

    disp = dlogin("dispatcher")
    inc = _intake(disp, world.pt_a(dy=0.028), "dispute", dispatch=True)
    old = _leg(inc)["id"]
    assert duty("a").post(f"/api/v1/dispatch/legs/{old}/hand_back", json={"reason": "乙所辖区"}).status_code == 200
    r = disp.post(f"/api/v1/dispatch/incidents/{inc['id']}/redispatch",
                  json={"role": "primary", "organisation_id": world.station_b})
    new = next(x for x in r.json()["legs"] if x["redispatch_of"] == old)["id"]
    # the caller has waited six hours since the first dispatch; the new owner got the leg a minute ago
    dconn.execute("UPDATE dispatch_leg SET first_dispatched_at = now() - interval '6 hours', "
                  "dispatched_at = now() - interval '60 seconds' WHERE id = %s", [new])
    # the service's own sweeper may hold the row (it skips locked rows, and so does this sweep)
    # with a snapshot from before the update: sweep again until one sweep has seen it
    for _ in range(100):
        with db.connect(dispatch_db) as conn:
            sweep_overdue(conn, dapp.extensions["gisapp.settings"])
            conn.commit()
        flagged = dconn.execute("SELECT sla_flagged FROM dispatch_leg WHERE id = %s", [new]).fetchone()["sla_flagged"]
        if flagged:
            break
        time.sleep(0.1)
    assert "first_feedback" in flagged and "close" not in flagged and "sign_off" not in flagged
    clocks = next(x for x in disp.get(f"/api/v1/dispatch/incidents/{inc['id']}").json()["legs"]
                  if x["id"] == new)["sla"]["clocks"]
    assert clocks["first_feedback"]["state"] == "overdue" and clocks["sign_off"]["state"] == "running"
    assert clocks["close"]["state"] == "running"
