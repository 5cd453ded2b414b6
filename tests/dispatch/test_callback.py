"""Call-back (issue 13, item 4): the caller's full number is kept encrypted at rest (the key from
settings, never in the database), read only by dispatchers and a duty officer of the incident's
organisation, each read in the audit log; everyone else sees the masked form. The number is in
no event, stream message, export or log line."""

from __future__ import annotations

import hashlib
import json
import logging
import re

import pytest
from support.database import PASSWORD
from support.dispatch import TEST_CALLER_KEY, make_world
from support.server import Client, LiveServer, expect_error
from werkzeug.security import generate_password_hash

from gisapp.core import callerkey, db
from gisapp.core.config import Settings
from gisapp.web import create_app

_HAN = re.compile(r"[\u4e00-\u9fff]")
NUMBER = "139 8765 4321"
DIGITS = "13987654321"


@pytest.fixture(scope="module")
def cworld(dispatch_db):
    """This module's own small world (its own part of the county)."""
    with db.connect(dispatch_db) as conn:
        w = make_world(conn, 117.60, 36.80)
        conn.commit()
    return w


def _duty_officer(dispatch_db, name: str, org: int, role: str = "duty_officer") -> None:
    # the role of the station desk (issue 13), bound to one organisation like a chief
    with db.connect(dispatch_db) as conn:
        conn.execute("INSERT INTO role (name, description) VALUES ('duty_officer', 'a station desk (issue 13)') "
                     "ON CONFLICT (name) DO NOTHING")
        conn.execute("INSERT INTO app_user (username, password_hash, role, station_id) VALUES (%s, %s, "
                     "%s, %s) ON CONFLICT (username) DO NOTHING",
                     [name, generate_password_hash(PASSWORD), role, org])
        conn.commit()


def _login_as(srv, name: str) -> Client:
    c = Client(srv.url)
    r = c.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return c


def _take(client, w, **kw) -> dict:
    r = client.post("/api/v1/dispatch/incidents", json={
        "channel": "110", "type": "dispute", "location": {"type": "Point", "coordinates": list(w.pt_a())},
        "caller_number": NUMBER, **kw})
    assert r.status_code == 201, r.text
    return r.json()


def test_stored_bytes_are_not_the_number_and_a_dispatcher_reads_it_audited(dlogin, cworld, dconn):
    disp = dlogin("dispatcher")
    inc = _take(disp, cworld)
    assert inc["caller_masked"] == "139****4321"
    assert "caller_number" not in inc and "caller_encrypted" not in inc
    stored = dconn.execute("SELECT caller_encrypted, caller_masked FROM incident WHERE id = %s",
                           [inc["id"]]).fetchone()
    blob = bytes(stored["caller_encrypted"])
    assert len(blob) > len(DIGITS) and DIGITS.encode() not in blob and b"8765" not in blob
    assert DIGITS not in blob.hex() and DIGITS.encode().hex() not in blob.hex()
    # the key is not in the database either
    key = callerkey.parse_key(TEST_CALLER_KEY)
    assert key not in blob and TEST_CALLER_KEY.encode() not in blob

    r = disp.get(f"/api/v1/dispatch/incidents/{inc['id']}/caller")
    assert r.status_code == 200, r.text
    assert r.json()["caller_number"] == DIGITS and r.headers["Cache-Control"] == "no-store"
    disp.get(f"/api/v1/dispatch/incidents/{inc['id']}/caller")
    views = dconn.execute("SELECT actor, entity, detail FROM audit_log WHERE action = 'view_personal' "
                          "AND entity_id = %s ORDER BY id", [str(inc["id"])]).fetchall()
    assert len(views) == 2 and {v["actor"] for v in views} == {"t_dispatcher"}
    assert views[0]["entity"] == "incident" and views[0]["detail"]["incident_code"] == inc["code"]
    assert DIGITS not in json.dumps(views, default=str)
    # the audit page's view shows the read too
    admin = dlogin("admin")
    entries = admin.get(f"/api/v1/audit?action=view_personal&entity_id={inc['id']}").json()
    assert len(entries["entries"] if isinstance(entries, dict) else entries) == 2


def test_chief_viewer_planner_and_other_organisations_get_403_and_the_masked_form(dlive, dlogin, cworld, dconn,
                                                                                   dispatch_db):
    disp = dlogin("dispatcher")
    inc = _take(disp, cworld)
    before = dconn.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'view_personal'").fetchone()["n"]
    for role in ("chief", "viewer", "planner", "admin", "device"):
        c = dlogin(role)
        body = expect_error(c.get(f"/api/v1/dispatch/incidents/{inc['id']}/caller"), 403)
        assert _HAN.search(body["message"]) and DIGITS not in json.dumps(body), (role, body)
    viewer = dlogin("viewer")
    seen = viewer.get(f"/api/v1/dispatch/incidents/{inc['id']}").json()
    assert seen["caller_masked"] == "139****4321" and DIGITS not in json.dumps(seen)
    en = expect_error(viewer.get(f"/api/v1/dispatch/incidents/{inc['id']}/caller?lang=en"), 403)
    assert not _HAN.search(en["message"])
    # the chief of the incident's own station and a planner see the incident, masked, and no number
    _duty_officer(dispatch_db, "t_chief_cb_a", cworld.station_a, role="chief")
    chief = _login_as(dlive, "t_chief_cb_a")
    for c in (chief, dlogin("planner")):
        seen = c.get(f"/api/v1/dispatch/incidents/{inc['id']}")
        assert seen.status_code == 200 and seen.json()["caller_masked"] == "139****4321", seen.text
        assert DIGITS not in seen.text
        expect_error(c.get(f"/api/v1/dispatch/incidents/{inc['id']}/caller"), 403, "role")
    chief.close()
    # a duty officer of the incident's station reads it; one of another station does not
    _duty_officer(dispatch_db, "t_duty_cb_a", cworld.station_a)
    _duty_officer(dispatch_db, "t_duty_cb_b", cworld.station_b)
    own = _login_as(dlive, "t_duty_cb_a")
    r = own.get(f"/api/v1/dispatch/incidents/{inc['id']}/caller")
    assert r.status_code == 200 and r.json()["caller_number"] == DIGITS, r.text
    other = _login_as(dlive, "t_duty_cb_b")
    body = expect_error(other.get(f"/api/v1/dispatch/incidents/{inc['id']}/caller"), 403, "id")
    assert DIGITS not in json.dumps(body)
    expect_error(own.get("/api/v1/dispatch/incidents/99999999/caller"), 404)
    views = dconn.execute("SELECT actor FROM audit_log WHERE action = 'view_personal' AND entity_id = %s",
                          [str(inc["id"])]).fetchall()
    assert [v["actor"] for v in views] == ["t_duty_cb_a"]
    after = dconn.execute("SELECT count(*) AS n FROM audit_log WHERE action = 'view_personal'").fetchone()["n"]
    assert after == before + 1
    own.close()
    other.close()


def test_the_number_is_in_no_event_stream_export_or_log(dlogin, cworld, dconn, dispatch_db, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    disp = dlogin("dispatcher")
    after = disp.get("/api/v1/stream/events?after=0&limit=1").json()
    last = max([e["id"] for e in after["events"]] + [after.get("last_id") or 0])
    inc = _take(disp, cworld, idempotency_key="cb-no-leak-1")
    disp.post(f"/api/v1/dispatch/incidents/{inc['id']}/dispatch", json={})
    assert disp.get(f"/api/v1/dispatch/incidents/{inc['id']}/caller").json()["caller_number"] == DIGITS
    texts = {
        "incident json": disp.get(f"/api/v1/dispatch/incidents/{inc['id']}").text,
        "board": disp.get("/api/v1/dispatch/board").text,
        "stream events": disp.get(f"/api/v1/stream/events?after={last}").text,
        "layer api": disp.get(f"/api/v1/incidents/{inc['id']}").text,
        "event log": json.dumps(dconn.execute("SELECT * FROM incident_event WHERE incident_id = %s",
                                              [inc["id"]]).fetchall(), default=str),
        "live events": json.dumps(dconn.execute("SELECT data FROM live_event WHERE incident_id = %s",
                                                [inc["id"]]).fetchall(), default=str),
        "audit": json.dumps(dconn.execute("SELECT * FROM audit_log WHERE entity_id = %s",
                                          [str(inc["id"])]).fetchall(), default=str),
        "logs": caplog.text,
    }
    from geodata.io import export_layer

    with db.connect(dispatch_db) as conn:
        export_layer(conn, "incidents", tmp_path / "incidents.geojson")
    texts["export"] = (tmp_path / "incidents.geojson").read_text()
    assert inc["code"] in texts["stream events"] and inc["code"] in texts["export"]
    for where, text in texts.items():
        assert DIGITS not in text and "8765 4321" not in text, where
    # the idempotency fingerprint of the request is keyed: trying every number does not find it
    stored = dconn.execute("SELECT idempotency_hash FROM incident WHERE id = %s", [inc["id"]]).fetchone()
    body = {"channel": "110", "type": "dispute", "location": {"type": "Point", "coordinates": list(cworld.pt_a())},
            "caller_number": NUMBER}
    plain = hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()
    assert stored["idempotency_hash"] and stored["idempotency_hash"] != plain
    # and a retry with the same key and number still replays
    again = disp.post("/api/v1/dispatch/incidents", json={**body, "idempotency_key": "cb-no-leak-1"})
    assert again.status_code == 200 and again.json()["id"] == inc["id"]


def test_without_a_key_intake_keeps_the_masked_number_and_reveal_answers_503(dispatch_db, cworld, dconn, caplog,
                                                                              tmp_path):
    app = create_app({"database_url": dispatch_db, "secret_key": "test-secret", "pool_max_size": 4,
                      "caller_key": "", "caller_key_file": str(tmp_path / "no_such_key")})
    srv = LiveServer(app)
    try:
        c = _login_as(srv, "t_dispatcher")
        caplog.set_level(logging.WARNING)
        inc = _take(c, cworld)
        assert inc["caller_masked"] == "139****4321"
        row = dconn.execute("SELECT caller_encrypted, caller_masked FROM incident WHERE id = %s",
                            [inc["id"]]).fetchone()
        assert row == {"caller_encrypted": None, "caller_masked": "139****4321"}
        assert "caller key" in caplog.text and DIGITS not in caplog.text
        # an incident taken with the key: the number is there, but this server cannot read it
        r = c.get(f"/api/v1/dispatch/incidents/{inc['id']}/caller")
        expect_error(r, 404, "caller_number")
        keyed = dconn.execute("SELECT id FROM incident WHERE caller_encrypted IS NOT NULL LIMIT 1").fetchone()
        body = expect_error(c.get(f"/api/v1/dispatch/incidents/{keyed['id']}/caller"), 503, "caller_key")
        assert "caller_key" in body["reason"] and _HAN.search(body["message"])
        c.close()
    finally:
        srv.stop()


def test_rotation_reencrypts_every_number_under_a_new_key(dispatch_db, dlogin, cworld, tmp_path):
    disp = dlogin("dispatcher")
    inc = _take(disp, cworld)
    key_file = tmp_path / "caller_key"
    callerkey.write_key_file(key_file, TEST_CALLER_KEY)
    s = Settings.from_env({"database_url": dispatch_db, "caller_key": "", "caller_key_file": str(key_file)})
    with db.connect(dispatch_db) as conn:
        n = callerkey.rotate(conn, s)
        assert n >= 1
        new = callerkey.current_key(s)
        assert new != callerkey.parse_key(TEST_CALLER_KEY)
        assert (tmp_path / "caller_key.previous").read_text().strip() == TEST_CALLER_KEY
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        rows = conn.execute("SELECT id, caller_encrypted FROM incident WHERE caller_encrypted IS NOT NULL").fetchall()
        assert rows and all(callerkey.stored_key_id(bytes(r["caller_encrypted"])) == callerkey.key_id(new)
                            for r in rows)
        blob = next(bytes(r["caller_encrypted"]) for r in rows if r["id"] == inc["id"])
        assert callerkey.decrypt([new], blob, inc["id"]) == DIGITS
        # a ciphertext moved onto another incident does not decrypt
        with pytest.raises(callerkey.CallerKeyError):
            callerkey.decrypt([new], blob, inc["id"] + 1)
        conn.rollback()  # the service of the other tests keeps the test key


def test_caller_key_init_makes_an_owner_only_key_file_once(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from gisapp.cli import main

    path = tmp_path / "var" / "caller_key"
    monkeypatch.setenv("GISAPP_CALLER_KEY_FILE", str(path))
    monkeypatch.delenv("GISAPP_CALLER_KEY", raising=False)
    assert CliRunner().invoke(main, ["caller-key", "init"]).exit_code == 0
    first = path.read_text()
    assert len(callerkey.parse_key(first)) == 32 and oct(path.stat().st_mode & 0o777) == "0o600"
    assert CliRunner().invoke(main, ["caller-key", "init"]).exit_code == 0
    assert path.read_text() == first
    with pytest.raises(callerkey.CallerKeyError):
        create_app({"caller_key": "too-short"})
