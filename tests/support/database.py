"""The test databases: names, creation (PostGIS, pgRouting, migrations), users per role."""

from __future__ import annotations

import hashlib
import os
from urllib.parse import urlsplit, urlunsplit

import psycopg

from gisapp.core import db
from gisapp.core.config import ROOT

TEST_DB = os.environ.get("GISAPP_TEST_DB", "gisapp_test")
PASSWORD = "test-password-1"


def with_dbname(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` on the same server."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def create_test_database(server_url: str, name: str) -> str:
    """Drop and create database ``name`` with PostGIS and pgRouting, migrate it, return its URL."""
    with psycopg.connect(with_dbname(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {}").format(psycopg.sql.Identifier(name)))
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    url = with_dbname(server_url, name)
    db.upgrade(url, log=lambda m: None)
    return url


def demo_fingerprint() -> str:
    """Hash of everything that shapes the demo database: migrations and the generator."""
    h = hashlib.sha256()
    for folder, pattern in ((ROOT / "gisapp" / "core" / "migrations", "*.sql"), (ROOT / "geodata", "*.py"),
                            (ROOT / "geodata", "*.toml"), (ROOT / "geodata" / "data", "*")):
        for p in sorted(folder.glob(pattern)):
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def make_users(url: str) -> dict[str, dict]:
    """Create one user per role in the database at ``url`` (the chief and the duty officer get a station)."""
    from gisapp.core.accounts import create_user

    out = {}
    with db.connect(url) as conn:
        st = conn.execute("SELECT id FROM organisation WHERE kind = 'station' ORDER BY code LIMIT 1").fetchone()
        if st is None:
            st = conn.execute(
                "INSERT INTO organisation (code, name, kind, hq) VALUES ('T-CHIEF-ST', '测试派出所', 'station', "
                "ST_SetSRID(ST_MakePoint(117.7, 36.9), 4326)) RETURNING id").fetchone()
        # the device's unit: the first unit when there are some (the demo), else one of its own, off
        # duty and never reported, so that no test's dispatch or coverage sees it
        unit = conn.execute("SELECT id FROM unit ORDER BY code LIMIT 1").fetchone() or conn.execute(
            "INSERT INTO unit (code, name, organisation_id, kind, status, synthetic) VALUES ('T-DEVICE-UNIT', "
            "'测试终端车', %s, 'patrol_car', 'off_duty', false) RETURNING id", [st["id"]]).fetchone()
        for role in ("admin", "dispatcher", "planner", "chief", "duty_officer", "viewer", "device", "leadership"):
            name = f"t_{role}"
            row = conn.execute("SELECT id, username, role, station_id, unit_id FROM app_user WHERE username = %s",
                               [name]).fetchone()
            if row is None:  # the chief and the duty officer: the same station
                row = create_user(conn, name, PASSWORD, role, st["id"] if role in ("chief", "duty_officer") else None,
                                  unit_id=unit["id"] if role == "device" else None)
            out[role] = dict(row)
        conn.commit()
    return out


def count(conn, table: str) -> int:
    """Number of rows of ``table``."""
    return conn.execute(psycopg.sql.SQL("SELECT count(*) AS n FROM {}").format(psycopg.sql.Identifier(table))
                        ).fetchone()["n"]


def copy_database(server_url: str, template: str, name: str) -> str:
    """Drop database ``name`` and create it again as a copy of ``template``; return its URL."""
    admin = with_dbname(server_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname IN (%s, %s) "
                     "AND pid <> pg_backend_pid()", [name, template])
        conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {}").format(psycopg.sql.Identifier(name)))
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            psycopg.sql.Identifier(name), psycopg.sql.Identifier(template)))
    return with_dbname(server_url, name)
