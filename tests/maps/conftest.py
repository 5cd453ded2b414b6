"""Fixtures of the map tests: the small hand-made world of ``support.maps`` in its own database
(independent of the demo), the service on it over real HTTP, users per role."""

from __future__ import annotations

import pytest
from support.database import PASSWORD, create_test_database, make_users
from support.maps import MAPS_DB, build_small_world
from support.server import Client, LiveServer

from gisapp.core import db
from gisapp.web import create_app


@pytest.fixture(scope="session")
def maps_database_url(server_url: str) -> str:
    """A fresh database with the real outline and towns plus the small world."""
    from geodata.reference import load_reference
    from gisapp.core.config import Settings
    from routing import coverage

    url = create_test_database(server_url, MAPS_DB)
    with db.connect(url) as conn:
        load_reference(conn)
        build_small_world(conn)
        conn.commit()
        settings = Settings.from_env({"database_url": url})
        coverage.refresh_static(conn, settings)
        coverage.refresh_live(conn, settings)
        conn.commit()
    return url


@pytest.fixture(scope="session")
def maps_users(maps_database_url: str) -> dict[str, dict]:
    users = make_users(maps_database_url)
    with db.connect(maps_database_url) as conn:  # the chief heads 好生 (ST-HS)
        conn.execute("UPDATE app_user SET station_id = (SELECT id FROM organisation WHERE code = 'ST-HS') "
                     "WHERE username = 't_chief'")
        conn.commit()
    return users


@pytest.fixture(scope="session")
def maps_app(maps_database_url: str):
    return create_app({"database_url": maps_database_url, "secret_key": "test-secret", "pool_max_size": 20})


@pytest.fixture(scope="session")
def maps_live(maps_app):
    srv = LiveServer(maps_app)
    yield srv
    srv.stop()


@pytest.fixture
def maps_conn(maps_database_url: str):
    with db.connect(maps_database_url, autocommit=True) as c:
        yield c


@pytest.fixture
def maps_http(maps_live) -> Client:
    c = Client(maps_live.url)
    yield c
    c.close()


@pytest.fixture
def maps_login(maps_live, maps_users):
    """Return a function giving a client logged in through the HTML form as a role."""
    made = []

    def _login(role: str) -> Client:
        c = Client(maps_live.url)
        r = c.post("/login", data={"username": f"t_{role}", "password": PASSWORD}, allow_redirects=False)
        assert r.status_code == 302, r.text
        made.append(c)
        return c

    yield _login
    for c in made:
        c.close()


@pytest.fixture
def maps_reader(maps_login) -> Client:
    """A client logged in as a viewer (tiles, like every read, need a log-in)."""
    return maps_login("viewer")
