"""The live stream: events of incidents, legs and units; fan-out across gunicorn workers; resume after a disconnect."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from support.database import PASSWORD
from support.dispatch import Gunicorn, device_token, make_unit, stream
from support.server import Client

from gisapp.core import db
from gisapp.dispatch.events import emit


def _intake(client, lonlat, type_="dispute", **kw):
    if kw.get("dispatch"):  # these tests place calls close together on purpose
        kw.setdefault("confirm_duplicates", True)
    return client.post("/api/v1/dispatch/incidents", json={
        "channel": "110", "type": type_, "location": {"type": "Point", "coordinates": list(lonlat)}, **kw})


def _not_sla(m) -> bool:
    # SLA sweeps of legs backdated by other tests may come at any time
    return not m.data["type"].startswith("sla.")


def _expected(client, after: int) -> list[int]:
    """The ids of every stored event after ``after`` (the ground truth a stream must deliver)."""
    return [e["id"] for e in client.get(f"/api/v1/stream/events?after={after}").json()["events"]]


def _collect(sse, n: int, deadline_s: float = 30.0, pred=_not_sla) -> list:
    """Read messages until ``n`` matching ones came (a read waits at most the client's timeout)."""
    out = []
    for m in sse.messages(deadline=time.monotonic() + deadline_s):
        if m.id is not None and pred(m):
            out.append(m)
        if len(out) >= n:
            break
    return out


def test_stream_carries_incident_leg_and_unit_changes(dlive, dlogin, world, dconn, dispatch_db):
    disp = dlogin("dispatcher")
    unit = make_unit(dconn, world.station_a, *world.pt_a(), position_at=None)
    sse = stream(dlive.url, dlogin("viewer"))
    try:
        assert sse.status == 200 and sse.headers["Content-Type"].startswith("text/event-stream")
        inc = _intake(disp, world.pt_a(dy=0.011), dispatch=True).json()
        leg = inc["legs"][0]
        assert disp.post(f"/api/v1/dispatch/legs/{leg['id']}/assign", json={"unit_id": unit}).status_code == 200
        token, _ = device_token(dispatch_db, unit)
        r = requests.post(dlive.url + "/api/v1/dispatch/positions", headers={"Authorization": f"Bearer {token}"},
                          json={"positions": [{"lon": 117.63, "lat": 36.93, "at": "2026-01-01T00:00:00Z"}]})
        assert r.status_code == 200, r.text
        msgs = _collect(sse, 4)
        types = [m.data["type"] for m in msgs]
        assert types == ["incident.created", "incident.dispatched", "leg.assigned", "unit.moved"]
        assert [m.id for m in msgs] == sorted(m.id for m in msgs)
        assert msgs[0].data["data"]["incident"]["id"] == inc["id"]
        assert "caller_masked" not in msgs[0].data["data"]["incident"]
        assert msgs[1].data["data"]["legs"][0]["due"]["sign_off"]
        assert msgs[2].data["data"]["unit"]["status"] == "assigned"
        assert msgs[3].data["data"]["units"][0]["id"] == unit
    finally:
        sse.close()


def test_stream_filters_by_kind_and_refuses_bad_parameters(dlive, dlogin, world, dconn):
    viewer = dlogin("viewer")
    sse = stream(dlive.url, viewer, query="?types=unit")
    try:
        disp = dlogin("dispatcher")
        _intake(disp, world.pt_a(dy=0.013))
        unit = make_unit(dconn, world.station_b, *world.pt_b())
        disp.post(f"/api/v1/dispatch/units/{unit}/status", json={"status": "out_of_service"})
        msgs = _collect(sse, 1)
        assert [m.data["type"] for m in msgs] == ["unit.status"]
    finally:
        sse.close()
    bad = stream(dlive.url, viewer, query="?types=gossip")
    assert bad.status == 400 and '"field":"types"' in bad.body().replace(" ", "")
    bad.close()
    bad = stream(dlive.url, viewer, last_event_id="abc")  # type: ignore[arg-type]
    assert bad.status == 400 and "Last-Event-ID" in bad.body()
    bad.close()
    anon = stream(dlive.url, Client(dlive.url))
    assert anon.status == 401
    anon.close()


def test_resume_after_a_disconnect_misses_nothing(dlive, dlogin, world):
    disp = dlogin("dispatcher")
    viewer = dlogin("viewer")
    sse = stream(dlive.url, viewer)
    _intake(disp, world.pt_a(dy=0.015))
    first = _collect(sse, 1)
    sse.close()
    last = first[-1].id
    # while the client is away: incidents, a dispatch, events written by another process
    made = [_intake(disp, world.pt_a(dy=0.016 + i * 0.001)).json()["id"] for i in range(3)]
    disp.post(f"/api/v1/dispatch/incidents/{made[0]}/dispatch", json={})
    expected = _expected(viewer, last)
    assert len(expected) >= 4 and expected == list(range(last + 1, last + 1 + len(expected)))  # contiguous ids
    again = stream(dlive.url, viewer, last_event_id=last)
    try:
        msgs = _collect(again, len(expected), pred=lambda m: True)
        assert [m.id for m in msgs] == expected
        mine = [m for m in msgs if not m.data["type"].startswith("sla.")]
        assert [m.data["type"] for m in mine] == ["incident.created"] * 3 + ["incident.dispatched"]
        assert [m.data["data"]["incident"]["id"] for m in mine[:3]] == made
        # and it goes on live after the replay
        new = _intake(disp, world.pt_a(dy=0.02)).json()["id"]
        live = _collect(again, 1, pred=lambda m: m.data["type"] == "incident.created")
        assert live[0].data["data"]["incident"]["id"] == new and live[0].id > expected[-1]
    finally:
        again.close()
    assert viewer.get(f"/api/v1/stream/events?after={last}").json()["complete"]


def test_resume_from_an_expired_id_asks_for_a_reload(dlive, dlogin, dispatch_db):
    with db.connect(dispatch_db) as conn:
        emit(conn, "stream.test", {})
        conn.commit()
        oldest = conn.execute("SELECT min(id) AS m FROM live_event").fetchone()["m"]
        conn.execute("DELETE FROM live_event WHERE id < %s + 2", [oldest])  # as the retention would
        conn.commit()
    sse = stream(dlive.url, dlogin("viewer"), last_event_id=max(oldest - 1, 0))
    try:
        msgs = _collect(sse, 1)
        assert msgs[0].data["type"] == "stream.reset"
    finally:
        sse.close()


def test_sla_overdue_is_flagged_in_the_stream(dlive, dlogin, world, dconn):
    disp = dlogin("dispatcher")
    inc = _intake(disp, world.pt_a(dy=0.021), "theft", dispatch=True).json()
    sse = stream(dlive.url, dlogin("viewer"), query="?types=sla")
    try:
        dconn.execute("UPDATE dispatch_leg SET dispatched_at = now() - interval '95 seconds' WHERE incident_id = %s",
                      [inc["id"]])
        msgs = _collect(sse, 1, pred=lambda m: m.data["data"].get("incident_id") == inc["id"])
        assert msgs[0].data["type"] == "sla.overdue"
        assert msgs[0].data["data"]["clock"] == "sign_off" and msgs[0].data["data"]["leg_id"] == inc["legs"][0]["id"]
    finally:
        sse.close()
    flags = dconn.execute("SELECT sla_flagged FROM dispatch_leg WHERE incident_id = %s", [inc["id"]]).fetchone()
    assert flags["sla_flagged"] == ["sign_off"]  # raised once, however many workers sweep


@pytest.fixture(scope="module")
def gunicorn(dispatch_db):
    # More threads per worker than the streams a test may open (up to 40, until both workers hold
    # one): an open stream holds its thread, and a worker that accepted them all must still serve
    # the next request. `make run` uses 256.
    g = Gunicorn(dispatch_db, workers=2, threads=64)
    yield g
    g.stop()


def _login(base: str, role: str) -> Client:
    c = Client(base)
    c.headers["Connection"] = "close"  # a new connection per request: requests spread over the workers
    assert c.post("/api/v1/auth/login", json={"username": f"t_{role}", "password": PASSWORD}).status_code == 200
    return c


def test_stream_fans_out_across_two_gunicorn_workers(gunicorn, world, dispatch_db):
    viewer = _login(gunicorn.url, "viewer")
    streams, pids = [], set()
    for _ in range(40):  # open streams until both workers hold one
        s = stream(gunicorn.url, viewer)
        assert s.status == 200
        streams.append(s)
        pids.add(s.headers["X-Gisapp-Worker"])
        if len(pids) == 2:
            break
    try:
        assert len(pids) == 2, "every stream landed on one worker"
        on_a = next(s for s in streams if s.headers["X-Gisapp-Worker"] == min(pids))
        on_b = next(s for s in streams if s.headers["X-Gisapp-Worker"] == max(pids))
        disp = _login(gunicorn.url, "dispatcher")
        writers = set()
        made = []
        for i in range(8):
            r = _intake(disp, world.pt_b(dy=0.01 + i * 0.001))
            assert r.status_code == 201, r.text
            writers.add(r.headers["X-Gisapp-Worker"])
            made.append(r.json()["id"])
        with db.connect(dispatch_db) as conn:  # a third process writes too
            emit(conn, "unit.test", {"from": "outside the server"})
            conn.commit()
        for s in (on_a, on_b):
            msgs = _collect(s, 9)
            assert [m.data["data"]["incident"]["id"] for m in msgs[:8]] == made
            assert msgs[8].data["type"] == "unit.test"
    finally:
        for s in streams:
            s.close()


def test_resume_on_gunicorn_after_a_disconnect(gunicorn, world):
    viewer = _login(gunicorn.url, "viewer")
    disp = _login(gunicorn.url, "dispatcher")
    first = stream(gunicorn.url, viewer)
    _intake(disp, world.pt_b(dy=0.02))
    last = _collect(first, 1)[0].id
    first.close()
    missed = []

    def write() -> None:
        for i in range(5):
            missed.append(_intake(disp, world.pt_b(dy=0.021 + i * 0.001)).json()["id"])

    t = threading.Thread(target=write)
    t.start()
    t.join()
    expected = _expected(viewer, last)
    again = stream(gunicorn.url, viewer, last_event_id=last)
    try:
        msgs = _collect(again, len(expected), pred=lambda m: True)
        assert [m.id for m in msgs] == expected
        assert [m.data["data"]["incident"]["id"] for m in msgs if _not_sla(m)] == missed
    finally:
        again.close()
