"""Device and gateway accounts (issue 12, item 2): a device is bound to its unit, a gateway to a list.

A device account names its unit (API and CLI; 422 naming ``unit_id`` otherwise) and reports
positions for that unit only; a gateway reports for the units of its explicit list, and a
batch naming any other unit is refused whole (403 naming ``positions[i].unit_id``).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
import requests
from support.server import Client

from gisapp.core import db

_n = itertools.count(1)
PW = "long-enough-1"


def _err(r, status: int, field: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.json()["field"] == field, r.json()
    return r.json()


@pytest.fixture(scope="module")
def units(database_url, users) -> list[dict]:
    """Three units of the chief's station."""
    out = []
    with db.connect(database_url) as conn:
        for _ in range(3):
            code = f"DEV-T{next(_n):03d}"
            out.append(conn.execute(
                "INSERT INTO unit (code, name, organisation_id, kind, status, synthetic) "
                "VALUES (%s, %s, %s, 'patrol_car', 'off_duty', false) RETURNING id, code",
                [code, code, users["chief"]["station_id"]]).fetchone())
        conn.commit()
    return out


def _token(live, username: str) -> dict:
    c = Client(live.url)
    assert c.post(live.url + "/api/v1/auth/login", json={"username": username, "password": PW}).status_code == 200
    tok = c.post(live.url + "/api/v1/auth/tokens", json={"name": "t"}).json()["token"]
    c.close()
    return {"Authorization": f"Bearer {tok}"}


def _report(unit_id: int | None = None) -> dict:
    r = {"lon": 117.70, "lat": 36.90, "at": datetime.now(UTC).isoformat()}
    if unit_id is not None:
        r["unit_id"] = unit_id
    return r


def _positions(conn, unit_id: int) -> int:
    return conn.execute("SELECT count(*) AS n FROM unit_position WHERE unit_id = %s", [unit_id]).fetchone()["n"]


def test_api_device_account_names_an_existing_unit(login, units):
    admin = login("admin")
    _err(admin.post("/api/v1/users", json={"username": f"dev{next(_n)}", "password": PW, "role": "device"}),
         422, "unit_id")
    _err(admin.post("/api/v1/users", json={"username": f"dev{next(_n)}", "password": PW, "role": "device",
                                           "unit_id": 99999999}), 422, "unit_id")
    r = admin.post("/api/v1/users", json={"username": f"dev{next(_n)}", "password": PW, "role": "device",
                                          "unit_id": units[0]["id"]})
    assert r.status_code == 201, r.text
    assert r.json()["unit_id"] == units[0]["id"]


def test_api_device_reports_and_acts_for_its_unit_only(login, live, units, conn):
    name = f"dev{next(_n)}"
    assert login("admin").post("/api/v1/users", json={"username": name, "password": PW, "role": "device",
                                                      "unit_id": units[0]["id"]}).status_code == 201
    h = _token(live, name)
    url = live.url + "/api/v1/dispatch/positions"
    before = _positions(conn, units[1]["id"])
    _err(requests.post(url, headers=h, json={"positions": [_report(), _report(units[1]["id"])]}), 403,
         "positions[1].unit_id")
    assert _positions(conn, units[1]["id"]) == before
    r = requests.post(url, headers=h, json={"positions": [_report()]})
    assert r.status_code == 200 and r.json()["moved_units"] == [units[0]["id"]], r.text


def test_gateway_reports_for_its_list_only(login, live, units, conn):
    admin = login("admin")
    name = f"gw{next(_n)}"
    r = admin.post("/api/v1/users", json={"username": name, "password": PW, "role": "gateway",
                                          "unit_ids": [units[0]["id"], units[1]["id"]]})
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    assert admin.get(f"/api/v1/users/{uid}/units").json()["unit_ids"] == sorted([units[0]["id"], units[1]["id"]])
    h = _token(live, name)
    url = live.url + "/api/v1/dispatch/positions"
    n0, n2 = _positions(conn, units[0]["id"]), _positions(conn, units[2]["id"])
    _err(requests.post(url, headers=h, json={"positions": [_report(units[0]["id"]), _report(units[2]["id"])]}),
         403, "positions[1].unit_id")
    assert (_positions(conn, units[0]["id"]), _positions(conn, units[2]["id"])) == (n0, n2)  # nothing written
    # the admin widens the list: now it reports for the third unit too
    _err(admin.put(f"/api/v1/users/{uid}/units", json={"unit_ids": [units[2]["id"], 99999999]}), 422,
         "unit_ids[1]")
    r = admin.put(f"/api/v1/users/{uid}/units", json={"unit_ids": [u["id"] for u in units]})
    assert r.status_code == 200 and r.json()["unit_ids"] == sorted(u["id"] for u in units)
    r = requests.post(url, headers=h, json={"positions": [_report(units[2]["id"])]})
    assert r.status_code == 200 and r.json()["stored"] == 1, r.text
    # an account that is not a gateway has no list to set
    _err(admin.put(f"/api/v1/users/{login('admin').get('/api/v1/auth/me').json()['id']}/units",
                   json={"unit_ids": []}), 422, "role")


def _cli(database_url, *args):
    env = dict(os.environ, GISAPP_DATABASE_URL=database_url)
    return subprocess.run([sys.executable, "-m", "gisapp.cli", "user", "create", *args, "--password", PW],
                          env=env, capture_output=True, text=True)


def test_cli_device_and_gateway_name_their_units(database_url, units, conn):
    name = f"clidev{next(_n)}"
    r = _cli(database_url, name, "--role", "device")
    assert r.returncode != 0 and "unit" in r.stderr
    r = _cli(database_url, name, "--role", "device", "--unit", units[1]["code"])
    assert r.returncode == 0, r.stderr
    assert conn.execute("SELECT unit_id FROM app_user WHERE username = %s", [name]).fetchone()["unit_id"] \
        == units[1]["id"]
    gw = f"cligw{next(_n)}"
    r = _cli(database_url, gw, "--role", "gateway", "--unit", units[0]["code"], "--unit", str(units[2]["id"]))
    assert r.returncode == 0, r.stderr
    rows = conn.execute("SELECT g.unit_id FROM gateway_unit g JOIN app_user u ON u.id = g.user_id "
                        "WHERE u.username = %s ORDER BY 1", [gw]).fetchall()
    assert [x["unit_id"] for x in rows] == sorted([units[0]["id"], units[2]["id"]])
