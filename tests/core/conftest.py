"""Fixtures of the platform tests (accounts, schema, layer API, bad input, OpenAPI): a fresh
test database with the real reference data, the service on it over real HTTP, users per role."""

from __future__ import annotations

import pytest
from support.database import TEST_DB, create_test_database, make_users
from support.server import Client, LiveServer, login_factory

from gisapp.core import db
from gisapp.web import create_app


@pytest.fixture(scope="session")
def database_url(server_url: str) -> str:
    """A fresh, migrated test database with the real reference data (county, towns)."""
    from geodata.reference import load_reference

    url = create_test_database(server_url, TEST_DB)
    with db.connect(url) as conn:
        load_reference(conn)
        conn.commit()
    return url


@pytest.fixture(scope="session")
def app(database_url: str):
    application = create_app({"database_url": database_url, "secret_key": "test-secret",
                              "pool_max_size": 30})
    yield application
    db.close_pools()


@pytest.fixture(scope="session")
def live(app) -> LiveServer:
    srv = LiveServer(app)
    yield srv
    srv.stop()


@pytest.fixture
def http(live) -> Client:
    """An anonymous HTTP client."""
    c = Client(live.url)
    yield c
    c.close()


@pytest.fixture(scope="session")
def users(database_url) -> dict[str, dict]:
    """One user per role in the test database."""
    return make_users(database_url)


@pytest.fixture
def login(live, users):
    """Return a function that gives an HTTP client logged in with a role."""
    fn, made = login_factory(live)
    yield fn
    for c in made:
        c.close()


@pytest.fixture
def conn(database_url):
    """A direct autocommit connection to the test database, for checking what was written."""
    with db.connect(database_url, autocommit=True) as c:
        yield c


@pytest.fixture
def reader(login):
    """A client logged in as a viewer (nothing is read without a log-in)."""
    return login("viewer")
