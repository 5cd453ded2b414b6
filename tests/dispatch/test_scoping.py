"""Organisation scoping (issue 12, item 5): a chief sees and acts on their own station only.

Each test logs in a chief of the world's station A and asks for station B's records: single
records read answer 404 (their existence is not revealed), acting on B's leg answers 403, lists are filtered, another
organisation's list or metrics by id answer 403. Dispatchers and viewers still see everything.
"""

from __future__ import annotations

import itertools
import time

import pytest
from support.database import PASSWORD
from support.dispatch import make_unit
from support.server import Client

from gisapp.core import db
from gisapp.core.accounts import create_user

_names = itertools.count(1)


def _err(r, status: int, field: str | None = None) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    if field is not None:
        assert body["field"] == field, body
    return body


def _intake(client, lonlat, type_="theft", **kw) -> dict:
    body = {"channel": "110", "type": type_, "location": {"type": "Point", "coordinates": list(lonlat)}, **kw}
    if body.get("dispatch"):  # these tests place calls close together on purpose
        body.setdefault("confirm_duplicates", True)
    r = client.post("/api/v1/dispatch/incidents", json=body)
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(scope="module")
def scene(dispatch_db, dapp, world):
    """Units of A and B, and two dispatched incidents: one in A's jurisdiction, one in B's."""
    with db.connect(dispatch_db) as conn:
        units = {"a": make_unit(conn, world.station_a, *world.pt_a(dx=0.005)),
                 "b": make_unit(conn, world.station_b, *world.pt_b(dx=0.005))}
        name = f"chief_a{next(_names)}"
        create_user(conn, name, PASSWORD, "chief", world.station_a)
        conn.commit()
    return {"units": units, "chief": name}


@pytest.fixture
def chief_a(dlive, scene):
    c = Client(dlive.url)
    r = c.post("/api/v1/auth/login", json={"username": scene["chief"], "password": PASSWORD})
    assert r.status_code == 200, r.text
    yield c
    c.close()


@pytest.fixture
def incidents(dlogin, world, scene, dconn):
    # both stations have an available unit, so that no leg falls back to a joint-zone neighbour
    dconn.execute("UPDATE unit SET status = 'available', current_leg_id = NULL WHERE id = ANY(%s)",
                  [list(scene["units"].values())])
    disp = dlogin("dispatcher")
    a = _intake(disp, world.pt_a(dx=0.01), dispatch=True)
    b = _intake(disp, world.pt_b(dx=0.01), dispatch=True)
    leg_a = next(x for x in a["legs"] if x["organisation_id"] == world.station_a)
    leg_b = next(x for x in b["legs"] if x["organisation_id"] == world.station_b)
    assert not any(x["organisation_id"] == world.station_a for x in b["legs"])
    return {"a": a, "b": b, "leg_a": leg_a, "leg_b": leg_b}


def test_chief_cannot_assign_another_stations_unit(chief_a, incidents, scene, dconn):
    leg = incidents["leg_a"]["id"]
    body = _err(chief_a.post(f"/api/v1/dispatch/legs/{leg}/assign", json={"unit_id": scene["units"]["b"]}),
                403, "unit_id")
    assert "organisation" in body["reason"]
    row = dconn.execute("SELECT unit_id FROM dispatch_leg WHERE id = %s", [leg]).fetchone()
    assert row["unit_id"] is None
    assert dconn.execute("SELECT status FROM unit WHERE id = %s", [scene["units"]["b"]]).fetchone()["status"] \
        == "available"
    # an unknown unit gets the same answer (nothing about other stations' units is revealed)
    _err(chief_a.post(f"/api/v1/dispatch/legs/{leg}/assign", json={"unit_id": 999999}), 403, "unit_id")
    # their own unit: assigned
    r = chief_a.post(f"/api/v1/dispatch/legs/{leg}/assign", json={"unit_id": scene["units"]["a"]})
    assert r.status_code == 200, r.text


def test_chief_does_not_read_or_act_on_another_stations_incident(chief_a, incidents, dlogin):
    b, leg_b = incidents["b"], incidents["leg_b"]["id"]
    _err(chief_a.get(f"/api/v1/dispatch/incidents/{b['id']}"), 404, "id")
    _err(chief_a.get(f"/api/v1/dispatch/incidents/{b['id']}/plan"), 404, "id")
    _err(chief_a.get(f"/api/v1/dispatch/legs/{leg_b}/recommendations"), 404, "id")
    _err(chief_a.get(f"/api/v1/dispatch/legs/{incidents['leg_a']['id']}/recommendations?any_organisation=true"),
         403, "any_organisation")
    # acting on another organisation's leg: 403 (issue 13); reading it stays 404 (not revealed)
    _err(chief_a.post(f"/api/v1/dispatch/legs/{leg_b}/transition", json={"to": "signed_off"}), 403, "id")
    # their own incident, and a dispatcher's view of B's, are there
    assert chief_a.get(f"/api/v1/dispatch/incidents/{incidents['a']['id']}").status_code == 200
    assert chief_a.get(f"/api/v1/dispatch/legs/{incidents['leg_a']['id']}/recommendations").status_code == 200
    assert dlogin("dispatcher").get(f"/api/v1/dispatch/incidents/{b['id']}").status_code == 200


def test_chief_board_and_unit_board_are_their_own(chief_a, incidents, scene, world, dlogin):
    board = chief_a.get("/api/v1/dispatch/board").json()
    ids = {i["id"] for i in board["incidents"]}
    assert incidents["a"]["id"] in ids and incidents["b"]["id"] not in ids
    _err(chief_a.get(f"/api/v1/dispatch/board?organisation_id={world.station_b}"), 403, "organisation_id")
    units = chief_a.get("/api/v1/dispatch/units").json()["units"]
    assert units and {u["organisation_id"] for u in units} == {world.station_a}
    _err(chief_a.get(f"/api/v1/dispatch/units?organisation_id={world.station_b}"), 403, "organisation_id")
    _err(chief_a.post(f"/api/v1/dispatch/units/{scene['units']['b']}/status", json={"status": "off_duty"}),
         404, "id")
    # a viewer still sees every station
    viewer = dlogin("viewer").get("/api/v1/dispatch/board").json()
    assert {incidents["a"]["id"], incidents["b"]["id"]} <= {i["id"] for i in viewer["incidents"]}


def test_chief_metrics_are_their_own(chief_a, incidents, world, dlogin):
    _err(chief_a.get(f"/api/v1/metrics/sla?organisation={world.station_b}"), 403, "organisation")
    _err(chief_a.get("/api/v1/metrics/sla?organisation=NO-SUCH-ORG"), 403, "organisation")
    r = chief_a.get("/api/v1/metrics/sla")
    assert r.status_code == 200 and r.json()["organisation_id"] == world.station_a
    assert dlogin("dispatcher").get(f"/api/v1/metrics/sla?organisation={world.station_b}").status_code == 200


def test_layer_api_incidents_units_grids_are_scoped(chief_a, incidents, scene, world, dlogin):
    feats = chief_a.get("/api/v1/incidents?limit=10000").json()["features"]
    ids = {f["id"] for f in feats}
    assert incidents["a"]["id"] in ids and incidents["b"]["id"] not in ids
    _err(chief_a.get(f"/api/v1/incidents/{incidents['b']['id']}"), 404, "id")
    assert chief_a.get(f"/api/v1/incidents/{incidents['a']['id']}").status_code == 200
    units = chief_a.get("/api/v1/units?limit=10000").json()["features"]
    assert units and {f["properties"]["organisation_id"] for f in units} == {world.station_a}
    _err(chief_a.get(f"/api/v1/units/{scene['units']['b']}"), 404, "id")
    _err(chief_a.get(f"/api/v1/units?organisation_id={world.station_b}"), 403, "organisation_id")
    grids = chief_a.get("/api/v1/grids?limit=10000").json()["features"]
    assert {f["properties"]["organisation_id"] for f in grids} == {world.station_a}
    # a dispatcher reads them all
    assert dlogin("dispatcher").get(f"/api/v1/incidents/{incidents['b']['id']}").status_code == 200


def test_map_data_units_of_another_station_is_refused(chief_a, scene, world):
    _err(chief_a.get(f"/map/data/units?station={world.station_b}"), 403, "station")
    feats = chief_a.get("/map/data/units").json()["features"]
    assert feats and scene["units"]["b"] not in {f.get("id", f["properties"].get("id")) for f in feats}


def test_chief_stream_carries_their_own_station_only(chief_a, incidents, scene, world, dconn):
    """The live stream and its polling form: a chief gets the events of their station, not B's."""
    after = dconn.execute("SELECT min(id) - 1 AS n FROM live_event WHERE incident_id = ANY(%s)",
                          [[incidents["a"]["id"], incidents["b"]["id"]]]).fetchone()["n"]
    got = chief_a.get(f"/api/v1/stream/events?after={after}").json()["events"]
    ids = {e["data"].get("incident", {}).get("id") for e in got}
    assert incidents["a"]["id"] in ids
    assert incidents["b"]["id"] not in ids
    # the same on the server-sent-event stream, resumed from the same point
    want = f'"code": "{incidents["a"]["code"]}"'
    text, deadline = "", time.monotonic() + 20
    with chief_a.get("/api/v1/stream?types=incident", headers={"Last-Event-ID": str(after)}, stream=True,
                     timeout=10) as r:
        assert r.status_code == 200
        for line in r.iter_lines(decode_unicode=True):
            text += (line or "") + "\n"
            if want in text or time.monotonic() > deadline:
                break
    assert want in text, text[-2000:]
    assert incidents["b"]["code"] not in text


def test_chief_routing_reads_reveal_no_other_station_units(demo_login, demo_users, demo_database_url):
    """Nearest units and service areas on the demo's roads: a chief finds their station's units only."""
    own = demo_users["chief"]["station_id"]
    with db.connect(demo_database_url, autocommit=True) as conn:
        other = conn.execute(
            "SELECT u.id, u.organisation_id, ST_X(u.last_position) AS lon, ST_Y(u.last_position) AS lat FROM unit u "
            "JOIN organisation o ON o.id = u.organisation_id WHERE o.kind = 'station' AND u.organisation_id <> %s "
            "AND u.status = 'available' AND u.last_position IS NOT NULL ORDER BY u.id LIMIT 1", [own]).fetchone()
    chief = demo_login("chief")
    near = {"lon": other["lon"], "lat": other["lat"], "k": 50}  # right at another station's unit
    r = chief.get("/api/v1/routing/nearest-units", params=near)
    assert r.status_code == 200, r.text
    feats = r.json()["features"]
    assert feats and {f["properties"]["organisation_id"] for f in feats} == {own}
    everyone = demo_login("dispatcher").get("/api/v1/routing/nearest-units", params=near).json()["features"]
    assert other["id"] in {f["id"] for f in everyone}  # the unit is there for a dispatcher
    _err(chief.get("/api/v1/routing/nearest-units", params={**near, "organisation_id": other["organisation_id"]}),
         403, "organisation_id")
    _err(chief.get("/api/v1/routing/service-areas", params={"unit_id": other["id"]}), 404)
    _err(chief.get("/api/v1/routing/service-areas", params={"organisation_id": other["organisation_id"]}), 403,
         "organisation_id")
