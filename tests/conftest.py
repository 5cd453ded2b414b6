"""Fixtures shared by several areas: the PostgreSQL server, the demo database and the demo
service over real HTTP. Each area's own fixtures are in its folder's conftest.py; helpers
(no fixtures) are in the ``support`` package."""

from __future__ import annotations

import os
import subprocess

import psycopg
import pytest
from support.database import TEST_DB, copy_database, create_test_database, demo_fingerprint, make_users, with_dbname
from support.server import Client, LiveServer

from gisapp.core import db
from gisapp.core.config import ROOT, private_cluster_url
from gisapp.web import create_app


@pytest.fixture(scope="session")
def server_url() -> str:
    """URL of the PostgreSQL server the tests use; the private cluster is started when needed."""
    external = os.environ.get("GISAPP_DATABASE_URL")
    if external:
        return external
    subprocess.run([str(ROOT / "scripts" / "pgcluster.sh"), "ensure"], check=True)
    return private_cluster_url()


@pytest.fixture(scope="session")
def demo_template(server_url: str) -> str:
    """The name of a template database holding the full Zouping demo world (seeded).

    The demo is generated once into a template named after a fingerprint of the migrations and
    the generator (older templates are dropped); test databases are quick copies of it.
    """
    from geodata import demo

    template = f"gisapp_tpl_{demo_fingerprint()}"
    admin = with_dbname(server_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [template]).fetchone()
        old = [r[0] for r in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'gisapp\\_tpl\\_%%' AND datname <> %s", [template])]
        for name in old:
            conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {}").format(psycopg.sql.Identifier(name)))
    if not exists:
        url = create_test_database(server_url, template + "_build")
        with db.connect(url) as conn:
            demo.load_demo(conn, seed=None, log=lambda m: None)
            conn.commit()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                psycopg.sql.Identifier(template + "_build"), psycopg.sql.Identifier(template)))
    return template


@pytest.fixture(scope="session")
def demo_database_url(server_url: str, demo_template: str) -> str:
    """A fresh copy of the full Zouping demo world, for tests that need it."""
    return copy_database(server_url, demo_template, TEST_DB + "_demo")


@pytest.fixture(scope="session")
def demo_app(demo_database_url: str):
    """The service on the demo database."""
    from support.dispatch import TEST_CALLER_KEY

    application = create_app({"database_url": demo_database_url, "secret_key": "test-secret",
                              "pool_max_size": 30, "caller_key": TEST_CALLER_KEY})
    yield application


@pytest.fixture(scope="session")
def demo_live(demo_app):
    """The demo service over real HTTP."""
    srv = LiveServer(demo_app)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def demo_users(demo_database_url) -> dict[str, dict]:
    """One user per role in the demo database (the chief heads the first station)."""
    return make_users(demo_database_url)


@pytest.fixture
def demo_http(demo_live, demo_users) -> Client:
    """A client of the demo service logged in as a viewer (nothing is read without a log-in)."""
    from support.database import PASSWORD

    c = Client(demo_live.url)
    r = c.post("/api/v1/auth/login", json={"username": "t_viewer", "password": PASSWORD})
    assert r.status_code == 200, r.text
    yield c
    c.close()


@pytest.fixture
def demo_conn(demo_database_url):
    with db.connect(demo_database_url, autocommit=True) as c:
        yield c


@pytest.fixture(scope="session", autouse=True)
def no_job_runner_left():
    """The job runners the services spawned (gisapp.core.jobs) end with the session: they exit when
    idle; those still busy are stopped, so no process outlives the tests."""
    yield
    from gisapp.core import jobs

    for p in list(jobs._children):
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)
