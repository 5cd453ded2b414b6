"""Fixtures of the planning tests: the hand-made world of ``support.planning``, built once per
session into a template database and copied for each test module, with the service on the copy."""

from __future__ import annotations

import psycopg
import pytest
from support.database import create_test_database, make_users, with_dbname
from support.planning import TEMPLATE, build_world
from support.server import LiveServer, login_factory

from gisapp.core import db
from gisapp.web import create_app

_ids: dict = {}


@pytest.fixture(scope="session")
def plan_template(server_url) -> str:
    """The hand-made world, built once per session into a template database."""
    url = create_test_database(server_url, TEMPLATE)
    _ids.update(build_world(url))
    make_users(url)
    with psycopg.connect(with_dbname(server_url, "postgres"), autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [TEMPLATE])
    return TEMPLATE


@pytest.fixture(scope="module")
def plan_db(server_url, plan_template, request) -> str:
    """A fresh copy of the hand-made world for one test module."""
    name = "gisapp_test_plan_" + request.module.__name__.rsplit(".", 1)[-1].replace("test_", "")[:30]
    with psycopg.connect(with_dbname(server_url, "postgres"), autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])
        conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {}").format(psycopg.sql.Identifier(name)))
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            psycopg.sql.Identifier(name), psycopg.sql.Identifier(plan_template)))
    return with_dbname(server_url, name)


@pytest.fixture(scope="module")
def ids(plan_template) -> dict:
    """Ids of the hand-made world's rows (organisations A, B, T, C; jurisdictions JA, JB, JT; grids G1-G8)."""
    return dict(_ids)


@pytest.fixture(scope="module")
def plan_live(plan_db):
    # A 10-minute target on rural roads, so that the hand-made roads fall on both sides of it.
    application = create_app({"database_url": plan_db, "secret_key": "test-secret", "rural_road_target_min": 10.0})
    srv = LiveServer(application)
    yield srv
    srv.stop()


@pytest.fixture
def plan_login(plan_live):
    fn, made = login_factory(plan_live)
    yield fn
    for c in made:
        c.close()


@pytest.fixture
def plan_conn(plan_db):
    with db.connect(plan_db, autocommit=True) as c:
        yield c
