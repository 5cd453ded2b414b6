"""Migrations from empty, the recorded versions, and constraints that live in the database."""

from __future__ import annotations

import psycopg
import pytest
from support.database import create_test_database

from gisapp.core import db


def test_migrations_from_empty(server_url):
    url = create_test_database(server_url, "gisapp_test_migrations")
    with db.connect(url) as conn:
        versions = [r["version"] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == [v for v, _, _ in db.migration_files()]
        tables = {r["t"] for r in conn.execute(
            "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public'")}
        for t in ("organisation", "jurisdiction", "joint_zone", "joint_zone_member", "grid", "grid_staff",
                  "road_node", "road_edge", "village", "unit", "unit_position", "incident", "incident_event",
                  "dispatch_leg", "service_point", "app_user", "role", "api_token", "audit_log", "dataset_meta"):
            assert t in tables, t
        gix = conn.execute(
            "SELECT count(*) AS n FROM geometry_columns g WHERE NOT EXISTS (SELECT 1 FROM pg_indexes i WHERE "
            "i.tablename = g.f_table_name AND i.indexdef ILIKE '%gist%' AND i.indexdef LIKE '%' || g.f_geometry_column || '%')"
        ).fetchone()["n"]
        assert gix == 0, "every geometry column has a GiST index"
        srids = {r["srid"] for r in conn.execute("SELECT DISTINCT srid FROM geometry_columns")}
        assert srids == {4326}
    assert db.upgrade(url, log=lambda m: None) == []  # idempotent
    with psycopg.connect(server_url.replace("/gisapp?", "/postgres?") if "/gisapp?" in server_url else server_url,
                         autocommit=True) as c:
        c.execute("DROP DATABASE IF EXISTS gisapp_test_migrations")


def test_event_log_is_append_only(conn):
    inc = conn.execute("INSERT INTO incident (code, channel, type, geom, reported_at) VALUES "
                       "('T-APPEND', '110', 'dispute', ST_SetSRID(ST_MakePoint(117.7, 36.9), 4326), now()) "
                       "RETURNING id").fetchone()["id"]
    ev = conn.execute("INSERT INTO incident_event (incident_id, actor, kind) VALUES (%s, 'test', 'created') "
                      "RETURNING id", [inc]).fetchone()["id"]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("UPDATE incident_event SET kind = 'x' WHERE id = %s", [ev])
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM incident_event WHERE id = %s", [ev])


def test_road_network_version_bumps(conn):
    v0 = conn.execute("SELECT version FROM road_network_version").fetchone()["version"]
    n = conn.execute("INSERT INTO road_node (geom) VALUES (ST_SetSRID(ST_MakePoint(117.7, 36.9), 4326)) "
                     "RETURNING id").fetchone()["id"]
    conn.execute("INSERT INTO road_edge (source, target, road_class, length_m, geom) VALUES (%s, %s, 'village', 0, "
                 "ST_GeomFromText('LINESTRING(117.7 36.9, 117.7 36.9001)', 4326))", [n, n])
    assert conn.execute("SELECT version FROM road_network_version").fetchone()["version"] > v0
