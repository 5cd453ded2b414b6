"""The replay tests' hand-made world, with every answer computed by hand.

Road line A - B - C - D (lat 36.85, 0.01 degree apart), all edges 36 km/h = 10 m/s with hand-set
lengths: A-B 1000 m (100 s), B-C 1000 m (100 s), C-D 2000 m (200 s). Station S1 has its
headquarters on node A and one patrol car; station S2 on node D with one patrol car; squadron Q
on node D with one traffic car; the accident section on node D. S1's jurisdiction is the
west half (A, B, C), S2's the east; Q's traffic jurisdiction all of it.

Recorded legs (each incident's one primary leg): dispatched 30 s after the report, en route
60 s later, arrived after exactly the road time from the recorded organisation's headquarters,
first feedback 600 s after arriving: so the travel factor is 1, the turnout delay 60 s and the
on-scene time 600 s for every leg, with no randomness.

Incidents (local date 2024-03-01, t from 10:00 Beijing time), thefts for S1:
  1: t=0 at C    S1's car: taken at 30, arrives 30 + 60 + 200 -> arrival 260 s; back at
                 30 + 60 + 200 + 600 + 200 = 1090
  2: t=100 at B  dispatched at 130, S1's car busy until 1090: waits 960 s, arrival
                 960 + 60 + 100 = 1120 s; back at 1090 + 60 + 100 + 600 + 100 = 1950
  3: t=3000 at B S1's car free: arrival 60 + 100 = 160 s
With a joint zone of S1 and S2 (test adds it): incident 2 falls back to S2's car on D:
  drive D -> B = 300 s, arrival 60 + 300 = 360 s, no wait.
Minor accidents (participation test), at C: S1 takes part in traffic only from 2024-03-01 12:00:
  4: t=1 h (11:00): S1 does not take part -> the squadron Q (from D: 200 s)
  5: t=3 h (13:00): S1 takes part -> S1 (needs an accident-qualified car: S1's car has it)
"""

from __future__ import annotations

from datetime import datetime, timedelta

from gisapp.core import db
from support.dispatch import box, make_org, make_unit
from support.routing import insert_network

REPLAY_DB = "gisapp_test_replay"
LAT = 36.85
LON = {"A": 117.70, "B": 117.71, "C": 117.72, "D": 117.73}
EDGES = [("AB", "A", "B", "county", 36.0, False, 1000.0), ("BC", "B", "C", "county", 36.0, False, 1000.0),
         ("CD", "C", "D", "county", 36.0, False, 2000.0)]
T0 = datetime.fromisoformat("2024-03-01T10:00:00+08:00")
PARTICIPATES_FROM = datetime.fromisoformat("2024-03-01T12:00:00+08:00")
PERIOD = {"from": "2024-03-01", "to": "2024-03-01"}
# (t seconds after T0, node, type, severity, recorded organisation key, road time from it)
INCIDENTS = [(0, "C", "theft", "none", "s1", 200.0), (100, "B", "theft", "none", "s1", 100.0),
             (3000, "B", "theft", "none", "s1", 100.0), (3600, "C", "traffic_accident", "minor", "q", 200.0),
             (3 * 3600, "C", "traffic_accident", "minor", "s1", 200.0)]


def pt(node: str) -> tuple[float, float]:
    return (LON[node], LAT)


def build_world(url: str) -> dict:
    """Create the world; return its ids."""
    with db.connect(url) as conn:
        insert_network(conn, {n: pt(n) for n in LON}, EDGES)
        s1 = make_org(conn, "station", "推演甲派出所", *pt("A"))
        s2 = make_org(conn, "station", "推演乙派出所", *pt("D"))
        q = make_org(conn, "squadron", "推演交警中队", *pt("D"))
        acc = make_org(conn, "accident_section", "推演事故科", *pt("D"))
        mid = (LON["C"] + LON["D"]) / 2
        for org, kind, geom in ((s1, "station", box(117.69, 36.84, mid, 36.86)),
                                (s2, "station", box(mid, 36.84, 117.74, 36.86)),
                                (q, "traffic", box(117.69, 36.84, 117.74, 36.86))):
            conn.execute("INSERT INTO jurisdiction (organisation_id, kind, version, geom, valid_from, author, reason) "
                         "VALUES (%s, %s, 1, ST_GeomFromText(%s, 4326), '2020-01-01', 'test', 'test')",
                         [org, kind, geom])
        # S1 takes part in traffic management from PARTICIPATES_FROM on (two versions)
        conn.execute("UPDATE organisation_participation SET valid_to = %s WHERE organisation_id = %s",
                     [PARTICIPATES_FROM, s1])
        conn.execute("INSERT INTO organisation_participation (organisation_id, takes_part_in_traffic, merged, "
                     "valid_from, note) VALUES (%s, true, false, %s, 'test')", [s1, PARTICIPATES_FROM])
        units = {"s1": make_unit(conn, s1, *pt("A"), caps=("accident_qualified",)),
                 "s2": make_unit(conn, s2, *pt("D"), caps=("accident_qualified",)),
                 "q": make_unit(conn, q, *pt("D"), caps=("accident_qualified",), kind="traffic_car")}
        orgs = {"s1": s1, "s2": s2, "q": q, "acc": acc}
        inc_ids = []
        for t, node, itype, sev, rec, drive in INCIDENTS:
            rep = T0 + timedelta(seconds=t)
            owner_station = s1
            iid = conn.execute(
                "INSERT INTO incident (channel, type, severity, geom, reported_at, status, station_org_id, "
                "traffic_org_id) VALUES (%s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s, 'closed', %s, %s) "
                "RETURNING id", ["110" if itype == "theft" else "122", itype, sev, *pt(node), rep, owner_station, q]
            ).fetchone()["id"]
            disp = rep + timedelta(seconds=30)
            enr = disp + timedelta(seconds=60)
            arr = enr + timedelta(seconds=drive)
            ff = arr + timedelta(seconds=600)
            conn.execute(
                "INSERT INTO dispatch_leg (incident_id, organisation_id, unit_id, role, status, dispatched_at, "
                "signed_off_at, en_route_at, arrived_at, first_feedback_at, closed_at) "
                "VALUES (%s, %s, %s, 'primary', 'closed', %s, %s, %s, %s, %s, %s)",
                [iid, orgs[rec], units[rec], disp, disp, enr, arr, ff, ff])
            inc_ids.append(iid)
        conn.commit()
    return {"orgs": orgs, "units": units, "incidents": inc_ids}


def add_joint_zone(conn, orgs: dict) -> int:
    """A joint zone of S1 and S2 (not committed by the caller: roll back after use)."""
    zid = conn.execute("INSERT INTO joint_zone (code, name, centre_org_id, geom, valid_from) VALUES "
                       "('RZ1', '推演联合战区', %s, ST_GeomFromText(%s, 4326), '2020-01-01') RETURNING id",
                       [orgs["s1"], box(117.69, 36.84, 117.74, 36.86)]).fetchone()["id"]
    for key, role in (("s1", "centre"), ("s2", "member")):
        conn.execute("INSERT INTO joint_zone_member (joint_zone_id, organisation_id, role) VALUES (%s, %s, %s)",
                     [zid, orgs[key], role])
    return zid
