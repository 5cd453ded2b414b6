"""Fixtures of the live-dispatch tests: their own database, the service over HTTP, logged-in
clients, a small world per module, and log-in on the demo service."""

from __future__ import annotations

import pytest
from support.database import create_test_database, make_users
from support.dispatch import DISPATCH_DB, TEST_CALLER_KEY, World, make_org, make_world
from support.server import LiveServer, login_factory

from gisapp.core import db
from gisapp.web import create_app


@pytest.fixture(scope="session")
def dispatch_db(server_url) -> str:
    """The live-dispatch tests' own database (isolated from the other areas' test rows)."""
    return _make_dispatch_db(server_url)


def _make_dispatch_db(server_url: str) -> str:
    from geodata.reference import load_reference

    url = create_test_database(server_url, DISPATCH_DB)
    with db.connect(url) as conn:
        load_reference(conn)
        make_org(conn, "station", "测试首派出所", 117.7, 36.88)  # the chief's station (first by code)
        make_org(conn, "accident_section", "测试事故科", 117.73, 36.88)
        make_org(conn, "command_centre", "测试指挥中心", 117.73, 36.875)
        conn.commit()
    make_users(url)
    return url


@pytest.fixture(scope="session")
def accident_section(dispatch_db) -> int:
    with db.connect(dispatch_db) as conn:
        return conn.execute("SELECT id FROM organisation WHERE kind = 'accident_section'").fetchone()["id"]


@pytest.fixture(scope="session")
def dapp(dispatch_db):
    """The service on the dispatch test database (short stream heartbeat, quick SLA sweeps)."""
    return create_app({"database_url": dispatch_db, "secret_key": "test-secret", "pool_max_size": 30,
                       "stream_heartbeat_s": 1.0, "sla_sweep_interval_s": 1.0, "caller_key": TEST_CALLER_KEY})


@pytest.fixture(scope="session")
def dlive(dapp):
    srv = LiveServer(dapp)
    yield srv
    srv.stop()


@pytest.fixture
def dlogin(dlive, dispatch_db):
    fn, made = login_factory(dlive)
    yield fn
    for c in made:
        c.close()


@pytest.fixture
def dconn(dispatch_db):
    with db.connect(dispatch_db, autocommit=True) as c:
        yield c


_world_boxes = iter([(117.60, 36.90), (117.45, 36.98), (117.62, 36.98), (117.78, 36.90), (117.62, 36.82)])


@pytest.fixture(scope="module")
def world(dispatch_db) -> World:
    """A fresh world for each test module (each in its own part of the county)."""
    lon0, lat0 = next(_world_boxes)
    with db.connect(dispatch_db) as conn:
        w = make_world(conn, lon0, lat0)
        conn.commit()
    return w


@pytest.fixture
def demo_login(demo_live, demo_users):
    """Like ``dlogin``, on the demo service."""
    fn, made = login_factory(demo_live)
    yield fn
    for c in made:
        c.close()
