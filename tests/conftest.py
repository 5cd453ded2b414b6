"""Fixtures: a real PostGIS test database (started when missing) and the service over real HTTP."""

from __future__ import annotations

import os
import subprocess
import threading
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import requests
from werkzeug.serving import make_server

from gisapp import create_app, db
from gisapp.config import ROOT, private_cluster_url

TEST_DB = os.environ.get("GISAPP_TEST_DB", "gisapp_test")
PASSWORD = "test-password-1"


def _with_dbname(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@pytest.fixture(scope="session")
def server_url() -> str:
    """URL of the PostgreSQL server the tests use; the private cluster is started when needed."""
    external = os.environ.get("GISAPP_DATABASE_URL")
    if external:
        return external
    subprocess.run([str(ROOT / "scripts" / "pgcluster.sh"), "ensure"], check=True)
    return private_cluster_url()


def create_test_database(server_url: str, name: str) -> str:
    """Drop and create database ``name`` with PostGIS and pgRouting, migrate it, return its URL."""
    with psycopg.connect(_with_dbname(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {}").format(psycopg.sql.Identifier(name)))
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    url = _with_dbname(server_url, name)
    db.upgrade(url, log=lambda m: None)
    return url


@pytest.fixture(scope="session")
def database_url(server_url: str) -> str:
    """A fresh, migrated test database with the real reference data (county, towns)."""
    from geodata.reference import load_reference

    url = create_test_database(server_url, TEST_DB)
    with db.connect(url) as conn:
        load_reference(conn)
        conn.commit()
    return url


def _demo_fingerprint() -> str:
    """Hash of everything that shapes the demo database: migrations and the generator."""
    import hashlib

    h = hashlib.sha256()
    for folder, pattern in ((ROOT / "gisapp" / "migrations", "*.sql"), (ROOT / "geodata", "*.py"),
                            (ROOT / "geodata", "*.toml"), (ROOT / "geodata" / "data", "*")):
        for p in sorted(folder.glob(pattern)):
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def demo_database_url(server_url: str) -> str:
    """A fresh copy of the full Zouping demo world (seeded), for tests that need it.

    The demo is generated once into a template database named after a fingerprint of the
    migrations and the generator, and each test session gets a quick copy of it.
    """
    from geodata import demo

    template = f"gisapp_tpl_{_demo_fingerprint()}"
    admin = _with_dbname(server_url, "postgres")
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
    name = TEST_DB + "_demo"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname IN (%s, %s) "
                     "AND pid <> pg_backend_pid()", [name, template])
        conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {}").format(psycopg.sql.Identifier(name)))
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            psycopg.sql.Identifier(name), psycopg.sql.Identifier(template)))
    return _with_dbname(server_url, name)


@pytest.fixture(scope="session")
def demo_app(demo_database_url: str):
    """The service on the demo database."""
    application = create_app({"database_url": demo_database_url, "secret_key": "test-secret",
                              "pool_max_size": 30})
    yield application


@pytest.fixture(scope="session")
def demo_live(demo_app):
    """The demo service over real HTTP."""
    srv = LiveServer(demo_app)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def app(database_url: str):
    application = create_app({"database_url": database_url, "secret_key": "test-secret",
                              "pool_max_size": 30})
    yield application
    db.close_pools()


class LiveServer:
    """The app served over real HTTP on a loopback port, in a thread of the test process."""

    def __init__(self, app):
        self.httpd = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()


@pytest.fixture(scope="session")
def live(app) -> LiveServer:
    srv = LiveServer(app)
    yield srv
    srv.stop()


class Client(requests.Session):
    """A requests session bound to the live server's base URL."""

    def __init__(self, base: str):
        super().__init__()
        self.base = base

    def request(self, method, url, *a, **kw):  # noqa: D401
        if url.startswith("/"):
            url = self.base + url
        kw.setdefault("timeout", 60)
        return super().request(method, url, *a, **kw)


@pytest.fixture
def http(live) -> Client:
    """An anonymous HTTP client."""
    c = Client(live.url)
    yield c
    c.close()


def make_users(url: str) -> dict[str, dict]:
    """Create one user per role in the database at ``url`` (the chief gets a station)."""
    from gisapp.auth import create_user

    out = {}
    with db.connect(url) as conn:
        st = conn.execute("SELECT id FROM organisation WHERE kind = 'station' ORDER BY code LIMIT 1").fetchone()
        if st is None:
            st = conn.execute(
                "INSERT INTO organisation (code, name, kind, hq) VALUES ('T-CHIEF-ST', '测试派出所', 'station', "
                "ST_SetSRID(ST_MakePoint(117.7, 36.9), 4326)) RETURNING id").fetchone()
        for role in ("admin", "dispatcher", "planner", "chief", "viewer", "device"):
            name = f"t_{role}"
            row = conn.execute("SELECT id, username, role, station_id FROM app_user WHERE username = %s",
                               [name]).fetchone()
            if row is None:
                row = create_user(conn, name, PASSWORD, role, st["id"] if role == "chief" else None)
            out[role] = dict(row)
        conn.commit()
    return out


def _login_factory(srv: LiveServer):
    made = []

    def _login(role: str) -> Client:
        c = Client(srv.url)
        r = c.post("/api/v1/auth/login", json={"username": f"t_{role}", "password": PASSWORD})
        assert r.status_code == 200, r.text
        made.append(c)
        return c

    return _login, made


@pytest.fixture(scope="session")
def users(database_url) -> dict[str, dict]:
    """One user per role in the test database."""
    return make_users(database_url)


@pytest.fixture
def login(live, users):
    """Return a function that gives an HTTP client logged in with a role."""
    fn, made = _login_factory(live)
    yield fn
    for c in made:
        c.close()


@pytest.fixture(scope="session")
def demo_users(demo_database_url) -> dict[str, dict]:
    """One user per role in the demo database (the chief heads the first station)."""
    return make_users(demo_database_url)


@pytest.fixture
def demo_login(demo_live, demo_users):
    """Like ``login``, on the demo service."""
    fn, made = _login_factory(demo_live)
    yield fn
    for c in made:
        c.close()


@pytest.fixture
def demo_http(demo_live) -> Client:
    c = Client(demo_live.url)
    yield c
    c.close()


@pytest.fixture
def demo_conn(demo_database_url):
    with db.connect(demo_database_url, autocommit=True) as c:
        yield c


@pytest.fixture
def conn(database_url):
    """A direct autocommit connection to the test database, for checking what was written."""
    with db.connect(database_url, autocommit=True) as c:
        yield c


def count(conn, table: str) -> int:
    return conn.execute(psycopg.sql.SQL("SELECT count(*) AS n FROM {}").format(psycopg.sql.Identifier(table))
                        ).fetchone()["n"]


