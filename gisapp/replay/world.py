"""Load what a replay reads: the period's incidents and recorded legs, organisations, units, zones, grids."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import psycopg

from gisapp.dispatch.participation import History, history


@dataclass
class Org:
    """An organisation as the replay sees it (index ``i`` into the arrays)."""

    id: int
    code: str
    name: str
    name_en: str | None
    kind: str
    lon: float | None
    lat: float | None


@dataclass
class World:
    """The recorded world of one period (times in epoch seconds)."""

    start: datetime
    end: datetime
    inc_id: np.ndarray
    inc_code: list
    inc_type: np.ndarray
    inc_sev: np.ndarray
    inc_channel: np.ndarray
    inc_t: np.ndarray             # reported_at, epoch s
    inc_reported: list            # reported_at as datetimes (participation lookups)
    inc_lonlat: np.ndarray
    inc_station: np.ndarray       # organisation id or -1 (recorded, in force at reported_at)
    inc_traffic: np.ndarray
    inc_zone: np.ndarray          # joint zone id or -1
    inc_grid: np.ndarray          # grid id or -1
    # recorded legs, per (incident, role): index arrays into the incidents
    rec_inc: np.ndarray
    rec_role: np.ndarray
    rec_org: np.ndarray
    rec_disp_off: np.ndarray      # dispatched_at - reported_at (s)
    rec_delay: np.ndarray         # en_route_at - dispatched_at (s; nan when not recorded)
    rec_drive: np.ndarray         # arrived_at - en_route_at (s; nan)
    rec_arrival: np.ndarray       # arrived_at - dispatched_at (s; nan), sla.ARRIVAL_S
    rec_service: np.ndarray       # first_feedback_at - arrived_at (s; nan): on scene
    orgs: list[Org]
    units: list[dict]
    zones: dict                   # zone id -> {"members": [org ids], "from": epoch, "to": epoch|inf}
    org_zones: dict               # org id -> [zone ids]
    grids: dict                   # grid id -> {"code","name","geometry"}
    participation: History

    def org_index(self) -> dict[int, int]:
        return {o.id: i for i, o in enumerate(self.orgs)}


def _epoch(ts: datetime | None) -> float:
    return ts.timestamp() if ts is not None else np.nan


def load_world(conn: psycopg.Connection, start: datetime, end: datetime, *, with_grids: bool = True) -> World:
    """Read everything of [start, end) the replay needs, in a few queries."""
    rows = conn.execute(
        """SELECT i.id, i.code, i.type, i.severity, i.channel, i.reported_at, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat,
                  i.station_org_id, i.traffic_org_id, i.joint_zone_id, i.grid_id
           FROM incident i WHERE i.reported_at >= %s AND i.reported_at < %s AND i.status <> 'cancelled'
             AND i.duplicate_of IS NULL ORDER BY i.reported_at, i.id""", [start, end]).fetchall()
    n = len(rows)
    inc_id = np.array([r["id"] for r in rows], dtype=np.int64)

    def col(name, fill=-1):
        return np.array([r[name] if r[name] is not None else fill for r in rows], dtype=np.int64)

    legs = conn.execute(
        """SELECT l.incident_id, l.role, l.organisation_id, l.dispatched_at, l.en_route_at, l.arrived_at,
                  l.first_feedback_at, i.reported_at
           FROM dispatch_leg l JOIN incident i ON i.id = l.incident_id
           WHERE i.reported_at >= %s AND i.reported_at < %s AND i.status <> 'cancelled' AND i.duplicate_of IS NULL
             AND l.status NOT IN ('cancelled', 'handed_back')
           ORDER BY l.incident_id, l.role, l.id""", [start, end]).fetchall()
    pos = {int(v): k for k, v in enumerate(inc_id)}
    seen: set = set()
    keep = []
    for r in legs:  # one recorded leg per (incident, role): the first one
        k = (r["incident_id"], r["role"])
        if k not in seen:
            seen.add(k)
            keep.append(r)
    rep = np.array([_epoch(r["reported_at"]) for r in keep])
    disp = np.array([_epoch(r["dispatched_at"]) for r in keep])
    enr = np.array([_epoch(r["en_route_at"]) for r in keep])
    arr = np.array([_epoch(r["arrived_at"]) for r in keep])
    ff = np.array([_epoch(r["first_feedback_at"]) for r in keep])
    orgs = [Org(r["id"], r["code"], r["name"], r["name_en"], r["kind"], r["lon"], r["lat"]) for r in conn.execute(
        "SELECT id, code, name, name_en, kind, ST_X(hq) AS lon, ST_Y(hq) AS lat FROM organisation ORDER BY id")]
    units = [dict(r) for r in conn.execute(
        "SELECT id, code, organisation_id, kind, capabilities, crew FROM unit ORDER BY organisation_id, id")]
    zones: dict = {}
    org_zones: dict = {}
    for r in conn.execute(
            """SELECT z.id, z.valid_from, z.valid_to, array_agg(m.organisation_id ORDER BY m.organisation_id) AS members
               FROM joint_zone z JOIN joint_zone_member m ON m.joint_zone_id = z.id GROUP BY z.id"""):
        zones[r["id"]] = {"members": list(r["members"]), "from": r["valid_from"].timestamp(),
                          "to": r["valid_to"].timestamp() if r["valid_to"] else np.inf}
        for m in r["members"]:
            org_zones.setdefault(m, []).append(r["id"])
    grids = {}
    if with_grids:
        for r in conn.execute("SELECT id, code, name, ST_AsGeoJSON(ST_SimplifyPreserveTopology(geom, 0.0002), 6)::json "
                              "AS g FROM grid ORDER BY id"):
            grids[r["id"]] = {"code": r["code"], "name": r["name"], "geometry": r["g"]}
    return World(
        start=start, end=end, inc_id=inc_id, inc_code=[r["code"] for r in rows],
        inc_type=np.array([r["type"] for r in rows], dtype=object),
        inc_sev=np.array([r["severity"] for r in rows], dtype=object),
        inc_channel=np.array([r["channel"] for r in rows], dtype=object),
        inc_t=np.array([r["reported_at"].timestamp() for r in rows], dtype=float),
        inc_reported=[r["reported_at"] for r in rows],
        inc_lonlat=np.array([[r["lon"], r["lat"]] for r in rows], dtype=float).reshape(n, 2),
        inc_station=col("station_org_id"), inc_traffic=col("traffic_org_id"), inc_zone=col("joint_zone_id"),
        inc_grid=col("grid_id"),
        rec_inc=np.array([pos[r["incident_id"]] for r in keep], dtype=np.int64),
        rec_role=np.array([r["role"] for r in keep], dtype=object),
        rec_org=np.array([r["organisation_id"] for r in keep], dtype=np.int64),
        rec_disp_off=np.maximum(disp - rep, 0.0), rec_delay=enr - disp, rec_drive=arr - enr, rec_arrival=arr - disp,
        rec_service=ff - arr, orgs=orgs, units=units, zones=zones, org_zones=org_zones, grids=grids,
        participation=history(conn))
