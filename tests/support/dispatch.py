"""Helpers of the live-dispatch tests: small worlds, units, device tokens, an SSE reader, a real gunicorn."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import psycopg

from gisapp.core import db
from gisapp.core.accounts import create_token, create_user
from gisapp.core.config import ROOT
from support.database import PASSWORD, TEST_DB
from support.server import Client
from support.sseclient import SSEClient

DISPATCH_DB = TEST_DB + "_dispatch"
# the key of caller numbers in the dispatch tests' service (call-back; gisapp.core.callerkey)
TEST_CALLER_KEY = "dGVzdC1jYWxsZXIta2V5LTMyLWJ5dGVzLWxvbmctLS0="
_codes = itertools.count(1)


def box(lon0: float, lat0: float, lon1: float, lat1: float) -> str:
    return f"MULTIPOLYGON((({lon0} {lat0},{lon1} {lat0},{lon1} {lat1},{lon0} {lat1},{lon0} {lat0})))"


@dataclass
class World:
    """A small synthetic area: two stations (A takes part in traffic, B does not), a squadron, a joint zone."""

    lon0: float
    lat0: float
    station_a: int = 0
    station_b: int = 0
    squadron: int = 0
    joint_zone: int = 0
    grid_a: int = 0
    jur_a: int = 0
    jur_b: int = 0
    jur_t: int = 0
    units: dict[str, int] = field(default_factory=dict)

    def pt_a(self, dx: float = 0.0, dy: float = 0.0) -> tuple[float, float]:
        """A point in station A's jurisdiction (and its grid)."""
        return (round(self.lon0 + 0.02 + dx, 6), round(self.lat0 + 0.03 + dy, 6))

    def pt_b(self, dx: float = 0.0, dy: float = 0.0) -> tuple[float, float]:
        """A point in station B's jurisdiction."""
        return (round(self.lon0 + 0.09 + dx, 6), round(self.lat0 + 0.03 + dy, 6))


def make_org(conn, kind: str, name: str, lon: float, lat: float, traffic: bool = False) -> int:
    code = f"T5-{kind[:3].upper()}-{next(_codes):04d}"
    return conn.execute(
        "INSERT INTO organisation (code, name, kind, takes_part_in_traffic, hq) "
        "VALUES (%s, %s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326)) RETURNING id",
        [code, name, kind, traffic, lon, lat]).fetchone()["id"]


def make_unit(conn, org_id: int, lon: float, lat: float, caps: tuple[str, ...] = (), kind: str = "patrol_car",
              status: str = "available", position_at: str | None = "now", crew: int = 2) -> int:
    """Create a unit at (lon, lat); its position time is now, or ``position_at`` (None: never reported)."""
    code = f"T5U{next(_codes):05d}"
    return conn.execute(
        "INSERT INTO unit (code, name, organisation_id, kind, capabilities, status, crew, last_position, "
        "last_position_at) VALUES (%s, %s, %s, %s, %s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326), "
        "%s::timestamptz) RETURNING id",
        [code, f"测试车 {code}", org_id, kind, list(caps), status, crew, lon, lat, position_at]).fetchone()["id"]


def make_world(conn, lon0: float, lat0: float) -> World:
    """Create a world in the box (lon0, lat0) .. (lon0 + 0.12, lat0 + 0.06): A west, B east."""
    w = World(lon0, lat0)
    lon1, lat1, mid = lon0 + 0.12, lat0 + 0.06, lon0 + 0.06
    w.station_a = make_org(conn, "station", "测试甲派出所", lon0 + 0.03, lat0 + 0.03, traffic=True)
    w.station_b = make_org(conn, "station", "测试乙派出所", lon0 + 0.09, lat0 + 0.03, traffic=False)
    w.squadron = make_org(conn, "squadron", "测试交警中队", mid, lat0 + 0.05)

    def jur(org: int, kind: str, geom: str) -> int:
        return conn.execute(
            "INSERT INTO jurisdiction (organisation_id, kind, version, geom, valid_from, author, reason) "
            "VALUES (%s, %s, 1, ST_GeomFromText(%s, 4326), '2020-01-01', 'test', 'test') RETURNING id",
            [org, kind, geom]).fetchone()["id"]

    w.jur_a = jur(w.station_a, "station", box(lon0, lat0, mid, lat1))
    w.jur_b = jur(w.station_b, "station", box(mid, lat0, lon1, lat1))
    w.jur_t = jur(w.squadron, "traffic", box(lon0, lat0, lon1, lat1))
    w.grid_a = conn.execute(
        "INSERT INTO grid (code, name, organisation_id, jurisdiction_id, geom) "
        "VALUES (%s, '测试警格', %s, %s, ST_GeomFromText(%s, 4326)) RETURNING id",
        [f"T5G{next(_codes):04d}", w.station_a, w.jur_a, box(lon0, lat0, mid, lat1)]).fetchone()["id"]
    w.joint_zone = conn.execute(
        "INSERT INTO joint_zone (code, name, centre_org_id, geom, valid_from) "
        "VALUES (%s, '测试联合战区', %s, ST_GeomFromText(%s, 4326), '2020-01-01') RETURNING id",
        [f"T5Z{next(_codes):04d}", w.station_a, box(lon0, lat0, lon1, lat1)]).fetchone()["id"]
    for org, role in ((w.station_a, "centre"), (w.station_b, "member"), (w.squadron, "member")):
        conn.execute("INSERT INTO joint_zone_member (joint_zone_id, organisation_id, role) VALUES (%s, %s, %s)",
                     [w.joint_zone, org, role])
    return w


def device_token(url: str, unit_id: int | None = None, gateway_units: list[int] | None = None) -> tuple[str, int]:
    """Create a device user bound to ``unit_id`` (or a gateway for ``gateway_units``) and return (token, token id)."""
    with db.connect(url) as conn:
        if gateway_units is not None:
            u = create_user(conn, f"t5gw{next(_codes)}", PASSWORD, "gateway", unit_ids=gateway_units)
        else:
            u = create_user(conn, f"t5dev{next(_codes)}", PASSWORD, "device", unit_id=unit_id)
        tok = create_token(conn, u["id"], "test")
        conn.commit()
    return tok["token"], tok["id"]


def stream(base: str, client: Client, last_event_id: int | None = None, query: str = "",
           timeout: float = 30) -> SSEClient:
    """Open the SSE stream with the session cookie of a logged-in client."""
    headers = {"Cookie": "; ".join(f"{c.name}={c.value}" for c in client.cookies)}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    return SSEClient(base, "/api/v1/stream" + query, headers=headers, timeout=timeout)


class Gunicorn:
    """A real gunicorn (gthread) serving the app on a free loopback port, in its own process group."""

    def __init__(self, database_url: str, workers: int = 2, threads: int = 16):
        env = dict(os.environ, GISAPP_DATABASE_URL=database_url, GISAPP_SECRET_KEY="test-secret",
                   GISAPP_STREAM_HEARTBEAT_S="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "--workers", str(workers), "--threads",
             str(threads), "--worker-class", "gthread", "--graceful-timeout", "2", "--log-level", "info",
             "wsgi:app"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)
        self.log: list[str] = []
        self.url = None
        booted = threading.Event()

        def _read() -> None:
            for raw in self.proc.stderr:
                line = raw.decode(errors="replace")
                self.log.append(line)
                m = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", line)
                if m:
                    self.url = m.group(1)
                if len([x for x in self.log if "Booting worker" in x]) >= workers:
                    booted.set()

        threading.Thread(target=_read, daemon=True).start()
        if not booted.wait(60) or self.url is None:
            self.stop()
            raise RuntimeError("gunicorn did not start:\n" + "".join(self.log[-30:]))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                import requests

                if requests.get(self.url + "/healthz", timeout=5).status_code == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("gunicorn does not answer /healthz")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()


def count_rows(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(psycopg.sql.SQL("SELECT count(*) FROM {}").format(psycopg.sql.Identifier(table))
                            ).fetchone()[0]



def off_trunk_points(conn, org_id: int, n: int = 1, clearance_m: float = 80.0) -> list[tuple[float, float]]:
    """Points inside the station's jurisdiction in force, away from the roads whose accidents the
    squadrons keep (rules 2026.1, issue 15): an accident there follows the station's rules."""
    from gisapp.dispatch.rules import load_rules

    classes = sorted({c for r in load_rules(None).rules for c in (r.road_classes or ())})
    rows = conn.execute(
        "SELECT ST_X(x.p) AS lon, ST_Y(x.p) AS lat FROM (SELECT (ST_Dump(ST_GeneratePoints("
        "ST_Buffer(geom::geography, -300)::geometry, 120, 13))).geom AS p FROM jurisdiction WHERE organisation_id = %s "
        "AND kind = 'station' AND valid_from <= now() AND (valid_to IS NULL OR valid_to > now())) x "
        "WHERE NOT EXISTS (SELECT 1 FROM road_edge e WHERE e.road_class = ANY(%s) "
        "AND ST_DWithin(e.geom::geography, x.p::geography, %s)) LIMIT %s",
        [org_id, classes, clearance_m, n]).fetchall()
    assert len(rows) == n, f"only {len(rows)} points off the trunk roads in organisation {org_id}"
    return [(r["lon"], r["lat"]) for r in rows]
