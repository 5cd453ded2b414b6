"""Accounts and roles: sessions for pages, bearer tokens for devices and scripts."""

from __future__ import annotations

from support.samples import make, square


def test_login_me_logout(login, http):
    c = login("dispatcher")
    me = c.get("/api/v1/auth/me").json()
    assert me["username"] == "t_dispatcher" and me["role"] == "dispatcher"
    assert "password_hash" not in me
    c.post("/api/v1/auth/logout")
    assert c.get("/api/v1/auth/me").status_code == 401
    bad = http.post("/api/v1/auth/login", json={"username": "t_dispatcher", "password": "wrong-password"})
    assert bad.status_code == 401 and bad.json()["field"] == "password"


def test_bearer_token_and_revocation(login, http, users):
    planner = login("planner")
    tok = planner.post("/api/v1/auth/tokens", json={"name": "script"}).json()
    h = {"Authorization": f"Bearer {tok['token']}"}
    assert http.get("/api/v1/auth/me", headers=h).json()["username"] == "t_planner"
    r = http.post("/api/v1/villages", headers=h, json=make("villages", users["chief"]["station_id"]))
    assert r.status_code == 201
    assert planner.delete(f"/api/v1/auth/tokens/{tok['id']}").status_code == 200
    r = http.get("/api/v1/auth/me", headers=h)
    assert r.status_code == 401 and r.json()["reason"] == "token revoked"
    r = http.get("/api/v1/auth/me", headers={"Authorization": "Bearer nonsense"})
    assert r.status_code == 401 and r.json()["field"] == "Authorization"


def test_chief_is_scoped_to_own_station(login, users):
    chief = login("chief")
    admin = login("admin")
    own = users["chief"]["station_id"]
    other = admin.post("/api/v1/organisations", json=make("organisations", own)).json()["id"]
    g = make("grids", own)
    assert chief.post("/api/v1/grids", json=g).status_code == 201
    g2 = make("grids", other)
    r = chief.post("/api/v1/grids", json=g2)
    assert r.status_code == 403 and r.json()["field"] == "organisation_id"
    gid = admin.post("/api/v1/grids", json=make("grids", other)).json()["id"]
    assert chief.patch(f"/api/v1/grids/{gid}", json={"geometry": square(117.61, 36.91)}).status_code == 403
    # chiefs cannot redraw jurisdictions
    assert chief.post("/api/v1/jurisdictions", json=make("jurisdictions", own)).status_code == 403


def test_admin_manages_users(login):
    admin = login("admin")
    r = admin.post("/api/v1/users", json={"username": "newviewer", "password": "long-enough-1", "role": "viewer"})
    assert r.status_code == 201, r.text
    uid = r.json()["id"]
    assert admin.post("/api/v1/users", json={"username": "newviewer", "password": "long-enough-1",
                                             "role": "viewer"}).status_code == 409
    assert admin.post("/api/v1/users", json={"username": "c2", "password": "long-enough-1",
                                             "role": "chief"}).json()["field"] == "station_id"
    assert admin.post("/api/v1/users", json={"username": "c3", "password": "short",
                                             "role": "viewer"}).json()["field"] == "password"
    assert admin.patch(f"/api/v1/users/{uid}", json={"active": False}).json()["active"] is False
    assert login("viewer").get("/api/v1/users").status_code == 403


def test_cli_user_create(database_url, tmp_path):
    import os
    import subprocess
    import sys

    env = dict(os.environ, GISAPP_DATABASE_URL=database_url)
    r = subprocess.run([sys.executable, "-m", "gisapp.cli", "user", "create", "cliuser", "--role", "planner",
                        "--password", "cli-password-1"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "created cliuser" in r.stdout
    r = subprocess.run([sys.executable, "-m", "gisapp.cli", "user", "create", "cliuser", "--role", "planner",
                        "--password", "cli-password-1"], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "exists" in r.stderr
