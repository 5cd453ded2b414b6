"""Fixtures of the reports tests: their own database with a small world of known legs, the
service over real HTTP, logged-in clients; the demo service for the pandas recomputation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from support.database import TEST_DB, create_test_database, make_users
from support.dispatch import TEST_CALLER_KEY
from support.server import LiveServer, login_factory

from gisapp.core import db
from gisapp.web import create_app

REPORTS_DB = TEST_DB + "_reports"
# Two places, each next to one road: an urban street and a village road.
URBAN = (117.70, 36.90)
RURAL = (117.80, 36.95)
T0 = datetime(2025, 3, 10, 2, 0, tzinfo=UTC)  # Monday 10 March 2025, 10:00 Beijing time


def _org(conn, code: str, kind: str, name: str, name_en: str) -> int:
    return conn.execute("INSERT INTO organisation (code, name, name_en, kind, hq) VALUES (%s, %s, %s, %s, "
                        "ST_SetSRID(ST_MakePoint(117.7, 36.9), 4326)) RETURNING id",
                        [code, name, name_en, kind]).fetchone()["id"]


def _road(conn, road_class: str, lon: float, lat: float) -> None:
    a = conn.execute("INSERT INTO road_node (geom) VALUES (ST_SetSRID(ST_MakePoint(%s, %s), 4326)) RETURNING id",
                     [lon - 0.001, lat + 0.0005]).fetchone()["id"]
    b = conn.execute("INSERT INTO road_node (geom) VALUES (ST_SetSRID(ST_MakePoint(%s, %s), 4326)) RETURNING id",
                     [lon + 0.001, lat + 0.0005]).fetchone()["id"]
    conn.execute("INSERT INTO road_edge (source, target, road_class, length_m, geom) VALUES (%s, %s, %s, 180, "
                 "ST_MakeLine((SELECT geom FROM road_node WHERE id = %s), (SELECT geom FROM road_node WHERE id = %s)))",
                 [a, b, road_class, a, b])


def leg(conn, org: int, at: datetime, where: tuple[float, float], type_: str, channel: str, *,
        so: float | None, arr: float | None = None, ff: float | None = None, cl: float | None = None,
        outcome: str | None = None, role: str = "primary", status: str | None = None, incident: int | None = None,
        severity: str = "none", grid: int | None = None) -> tuple[int, int]:
    """An incident (reported a minute before ``at``) and its leg with milestones ``so``, ``arr``,
    ``ff``, ``cl`` seconds after the dispatch; returns (incident id, leg id)."""
    def after(s):
        return at + timedelta(seconds=s) if s is not None else None

    if status is None:
        status = "closed" if cl is not None else ("signed_off" if so is not None else "dispatched")
    if incident is None:
        incident = conn.execute(
            "INSERT INTO incident (channel, type, severity, geom, reported_at, status, station_org_id, grid_id, "
            "outcome, synthetic) VALUES (%s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s, %s, %s, %s, %s, "
            "true) RETURNING id",
            [channel, type_, severity, where[0], where[1], at - timedelta(minutes=1),
             "closed" if cl is not None else "dispatched", org, grid, outcome if role == "primary" else None]
        ).fetchone()["id"]
    lid = conn.execute(
        "INSERT INTO dispatch_leg (incident_id, organisation_id, role, status, dispatched_at, signed_off_at, "
        "arrived_at, first_feedback_at, closed_at, outcome, cancelled_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, "
        "%s, %s, %s) RETURNING id",
        [incident, org, role, status, at, after(so), after(arr), after(ff), after(cl),
         outcome if status == "closed" else None, at if status == "cancelled" else None]).fetchone()["id"]
    return incident, lid


class SmallWorld:
    """The organisations and legs the tests know by heart (see make_small_world)."""

    station_a: int
    station_b: int
    section: int
    grid_a: int
    legs: dict[str, int]
    incidents: dict[str, int]


def make_small_world(conn) -> SmallWorld:
    from geodata.reference import load_reference

    load_reference(conn)
    w = SmallWorld()
    w.station_a = _org(conn, "R-A-ST", "station", "甲派出所", "Station A")  # the chief's (first station by code)
    w.station_b = _org(conn, "R-B-ST", "station", "乙派出所", "Station B")
    w.section = _org(conn, "R-AS", "accident_section", "事故科", "Accident section")
    _road(conn, "urban", *URBAN)
    _road(conn, "village", *RURAL)
    w.grid_a = conn.execute(
        "INSERT INTO grid (code, name, organisation_id, geom) VALUES ('R-G1', '甲一格', %s, "
        "ST_Multi(ST_Buffer(ST_SetSRID(ST_MakePoint(117.70, 36.90), 4326), 0.01))) RETURNING id",
        [w.station_a]).fetchone()["id"]
    h = timedelta(hours=1)
    legs, incs = {}, {}

    def add(name, *a, **k):
        incs[name], legs[name] = leg(conn, *a, **k)

    # March 2025, station A: all met / sign-off and closure late / feedback late / never signed off
    add("A1", w.station_a, T0, URBAN, "theft", "110", so=60, arr=600, ff=3600, cl=7200,
        outcome="to_criminal_investigation", grid=w.grid_a)
    add("A2", w.station_a, T0 + h, RURAL, "theft", "110", so=120, arr=1200, ff=4 * 3600, cl=23 * 3600, outcome="other")
    add("A3", w.station_a, T0 + 2 * h, RURAL, "traffic_accident", "122", so=30, arr=900, ff=6 * 3600, cl=20 * 3600,
        outcome="mediation", severity="minor")
    add("A4", w.station_a, T0 + 3 * h, URBAN, "fight", "110", so=None, grid=w.grid_a)
    # station B: an injury accident, dual dispatch with the accident section; a cancelled leg
    add("B1", w.station_b, T0 + 4 * h, URBAN, "traffic_accident", "122", so=50, arr=300, ff=3600, cl=7200,
        outcome="to_accident_section", severity="injury")
    incs["S1"], legs["S1"] = leg(conn, w.section, T0 + 4 * h + timedelta(minutes=2), URBAN, "traffic_accident", "122",
                                 so=80, arr=1500, ff=7200, cl=36000, outcome="summary_procedure", role="specialist",
                                 incident=incs["B1"])
    add("B2", w.station_b, T0 + 5 * h, RURAL, "dispute", "110", so=None, status="cancelled")
    # February 2025 (last month of the ranking): A all met, B's sign-off late
    feb = datetime(2025, 2, 12, 2, 0, tzinfo=UTC)
    add("F1", w.station_a, feb, URBAN, "theft", "110", so=30, arr=300, ff=3600, cl=7200, outcome="other")
    add("F2", w.station_b, feb, URBAN, "theft", "110", so=200, arr=300, ff=3600, cl=7200, outcome="other")
    w.legs, w.incidents = legs, incs
    return w


@pytest.fixture(scope="session")
def reports_db(server_url) -> str:
    url = create_test_database(server_url, REPORTS_DB)
    with db.connect(url) as conn:
        make_small_world(conn)
        conn.commit()
    make_users(url)
    return url


@pytest.fixture(scope="session")
def small_world(reports_db) -> SmallWorld:
    with db.connect(reports_db) as conn:
        w = SmallWorld()
        ids = {r["code"]: r["id"] for r in conn.execute("SELECT id, code FROM organisation")}
        w.station_a, w.station_b, w.section = ids["R-A-ST"], ids["R-B-ST"], ids["R-AS"]
        w.grid_a = conn.execute("SELECT id FROM grid WHERE code = 'R-G1'").fetchone()["id"]
        return w


@pytest.fixture(scope="session")
def rapp(reports_db):
    return create_app({"database_url": reports_db, "secret_key": "test-secret", "pool_max_size": 10,
                       "caller_key": TEST_CALLER_KEY, "sla_sweep_interval_s": 0, "maintenance_interval_s": 0})


@pytest.fixture(scope="session")
def rlive(rapp):
    srv = LiveServer(rapp)
    yield srv
    srv.stop()


@pytest.fixture
def rlogin(rlive, reports_db):
    fn, made = login_factory(rlive)
    yield fn
    for c in made:
        c.close()


@pytest.fixture
def rconn(reports_db):
    with db.connect(reports_db, autocommit=True) as c:
        yield c


@pytest.fixture
def demo_login(demo_live, demo_users):
    fn, made = login_factory(demo_live)
    yield fn
    for c in made:
        c.close()


@pytest.fixture
def make_leg():
    """``leg`` (an incident and its leg with known milestones) for a test's own rows."""
    return leg
