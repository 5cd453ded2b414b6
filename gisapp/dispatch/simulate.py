"""Feed the demo with live work: new incidents at a chosen rate, dispatched by the rules, units that
drive their road route to the scene, legs that move through their lifecycle, idle units that jitter.

Everything goes through the same functions as the API (gisapp.dispatch), each step in its own
transaction, so the dispatcher page, the stream and the SLA clocks see ordinary live data.
Times on the road can be compressed (``time_scale``) so a demo shows whole lifecycles quickly.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from shapely.geometry import shape

from gisapp.core import db
from gisapp.core.config import Settings
from gisapp.core.errors import Conflict, GisappError, NotFound

from .intake import create_incident
from .legs import dispatch_incident, transition_leg
from .recommend import travel_route
from .records import flush_events
from .rules import load_rules
from .units import ingest_positions

ACTOR = {"username": "simulator", "role": "admin", "unit_id": None, "station_id": None}
CLIENT = "simulate-live"
# Share of each type among simulated calls.
TYPE_WEIGHTS = {"dispute": 18, "theft": 12, "fight": 6, "fraud": 6, "public_order": 5, "missing_person": 2,
                "fire_assist": 1, "other_110": 5, "traffic_accident": 22, "traffic_violation": 12,
                "road_obstruction": 6, "other_122": 5}


@dataclass
class LegRun:
    """A simulated leg: its route (once en route) and when its next step is due (monotonic seconds)."""

    leg_id: int
    incident_id: int
    unit_id: int | None
    target: tuple[float, float]
    next_at: float
    route: object | None = None
    depart_at: float = 0.0
    drive_s: float = 0.0
    done: bool = False
    steps: list[str] = field(default_factory=list)


class Simulator:
    """The state of one simulate-live run."""

    def __init__(self, url: str, settings: Settings, rate_per_min: float, time_scale: float, seed: int | None,
                 jitter_units: int, log: Callable[[str], None]):
        self.url, self.settings, self.rate, self.scale = url, settings, rate_per_min, time_scale
        self.rnd = random.Random(seed)
        self.jitter_units = jitter_units
        self.log = log
        self.legs: dict[int, LegRun] = {}
        self.places: list[tuple[float, float, str | None]] = []
        self.counts = {"incidents": 0, "transitions": 0, "positions": 0, "errors": 0}

    def _conn(self) -> psycopg.Connection:
        return db.connect(self.url)

    def load_places(self) -> None:
        """Villages (with names, so some calls come as address text) or points in jurisdictions."""
        with self._conn() as conn:
            rows = conn.execute("SELECT ST_X(geom) AS lon, ST_Y(geom) AS lat, name FROM village").fetchall()
            if not rows:
                rows = conn.execute(
                    "SELECT ST_X(p) AS lon, ST_Y(p) AS lat, NULL AS name FROM (SELECT (ST_Dump(ST_GeneratePoints("
                    "geom, 20, 1))).geom AS p FROM jurisdiction WHERE kind = 'station' AND valid_from <= now() "
                    "AND (valid_to IS NULL OR valid_to > now())) s"
                ).fetchall()
        self.places = [(r["lon"], r["lat"], r["name"]) for r in rows]
        if not self.places:
            raise NotFound("no villages and no station jurisdictions: load the demo first (make run)",
                           key="err.simulate.no_world")

    def new_incident(self) -> None:
        rules_types = list(TYPE_WEIGHTS)
        itype = self.rnd.choices(rules_types, weights=[TYPE_WEIGHTS[t] for t in rules_types])[0]
        t = load_rules(self.settings).types[itype]
        lon, lat, name = self.rnd.choice(self.places)
        body = {"channel": t.channels[0], "type": itype, "severity": self.rnd.choice(t.severities),
                "caller_number": f"13{self.rnd.randint(100000000, 999999999)}", "synthetic": True,
                "description": f"模拟警情 / simulated ({t.zh})"}
        if name and self.rnd.random() < 0.3:
            body["address"] = f"{name}附近"
        else:
            body["location"] = {"type": "Point", "coordinates": [lon + self.rnd.uniform(-0.004, 0.004),
                                                                 lat + self.rnd.uniform(-0.003, 0.003)]}
        with self._conn() as conn:
            pending: list = []
            inc, _ = create_incident(conn, self.settings, body, ACTOR["username"], CLIENT, pending=pending)
            try:
                inc = dispatch_incident(conn, self.settings, inc["id"], ACTOR["username"], CLIENT,
                                          auto_assign=True, pending=pending)
            except Conflict as e:  # nobody owns the place: left open for a dispatcher
                self.log(f"  {inc['code']} left open: {e.reason}")
            flush_events(conn, pending)
            conn.commit()
        self.counts["incidents"] += 1
        now = time.monotonic()
        for leg in inc.get("legs", []):
            self.legs[leg["id"]] = LegRun(leg["id"], inc["id"], leg["unit_id"], (inc["lon"], inc["lat"]),
                                          now + self.rnd.uniform(5, 60) / self.scale)
        self.log(f"+ {inc['code']} {itype} {inc['severity']} -> {len(inc.get('legs', []))} leg(s)")

    def _go(self, conn, run: LegRun, to: str) -> None:
        note = outcome = None
        if to == "first_feedback":
            note = "已到达现场，情况已反馈（模拟）"
        elif to == "closed":
            itype = conn.execute("SELECT i.type FROM incident i JOIN dispatch_leg l ON l.incident_id = i.id "
                                 "WHERE l.id = %s", [run.leg_id]).fetchone()["type"]
            outcome, note = self._outcome(itype), "处置完毕（模拟）"
        transition_leg(conn, self.settings, run.leg_id, to, ACTOR, CLIENT, note, outcome)
        run.steps.append(to)
        self.counts["transitions"] += 1

    def _outcome(self, itype: str) -> str:
        """A plausible outcome: mostly the first of the list that applies to the type's category."""
        rules = load_rules(self.settings)
        cat = rules.types[itype].category if itype in rules.types else None
        fits = [o.code for o in rules.outcomes.values() if o.leg and o.applies_to(cat)]
        return fits[0] if self.rnd.random() < 0.85 or len(fits) == 1 else self.rnd.choice(fits[1:])

    def step_leg(self, run: LegRun, now: float) -> None:
        """Advance a leg whose next step is due."""
        with self._conn() as conn:
            leg = conn.execute("SELECT status, unit_id FROM dispatch_leg WHERE id = %s", [run.leg_id]).fetchone()
            if leg is None or leg["status"] in ("closed", "cancelled"):
                run.done = True
                return
            run.unit_id = leg["unit_id"]
            status = leg["status"]
            if status == "dispatched":
                self._go(conn, run, "signed_off")
                run.next_at = now + self.rnd.uniform(5, 30) / self.scale
            elif status == "signed_off":
                if run.unit_id is None:  # no unit could be assigned: the station handles it by phone
                    self._go(conn, run, "cancelled")
                    run.done = True
                else:
                    u = conn.execute("SELECT ST_X(last_position) AS lon, ST_Y(last_position) AS lat FROM unit "
                                     "WHERE id = %s", [run.unit_id]).fetchone()
                    start = (u["lon"], u["lat"]) if u["lon"] is not None else run.target
                    tt = travel_route(conn, self.settings, start, run.target)
                    run.route = shape(tt["route"])
                    run.drive_s = max(1.0, float(tt["eta_s"] or 60.0)) / self.scale
                    run.depart_at = now
                    self._go(conn, run, "en_route")
                    run.next_at = now + run.drive_s
            elif status == "en_route":
                self._go(conn, run, "arrived")
                run.next_at = now + self.rnd.uniform(60, 600) / self.scale
            elif status == "arrived":
                self._go(conn, run, "first_feedback")
                run.next_at = now + self.rnd.uniform(300, 3600) / self.scale
            elif status == "first_feedback":
                self._go(conn, run, "closed")
                run.done = True
            conn.commit()

    def move_units(self, now: float) -> None:
        """Report positions: units en route along their route, a few idle units jittering."""
        reports = []
        at = datetime.now(UTC).isoformat()
        for run in self.legs.values():
            if run.route is not None and run.unit_id and not run.done and run.steps and run.steps[-1] == "en_route":
                frac = min(1.0, (now - run.depart_at) / run.drive_s)
                p = run.route.interpolate(frac, normalized=True)
                reports.append({"unit_id": run.unit_id, "lon": p.x, "lat": p.y, "at": at})
        with self._conn() as conn:
            idle = conn.execute(
                "SELECT id, ST_X(last_position) AS lon, ST_Y(last_position) AS lat FROM unit "
                "WHERE status = 'available' AND last_position IS NOT NULL ORDER BY random() LIMIT %s",
                [self.jitter_units]).fetchall()
            x0, y0, x1, y1 = self.settings.service_extent
            for u in idle:
                lon = min(max(u["lon"] + self.rnd.uniform(-0.0008, 0.0008), x0), x1)
                lat = min(max(u["lat"] + self.rnd.uniform(-0.0006, 0.0006), y0), y1)
                reports.append({"unit_id": u["id"], "lon": lon, "lat": lat, "at": at})
            if reports:
                out = ingest_positions(conn, self.settings, {"positions": reports}, ACTOR,
                                       units=frozenset(r["unit_id"] for r in reports))
                conn.commit()
                self.counts["positions"] += out["stored"]

    def run(self, duration_s: float, position_interval_s: float) -> dict:
        self.load_places()
        start = time.monotonic()
        next_incident = start
        next_move = start
        while duration_s <= 0 or time.monotonic() - start < duration_s:
            now = time.monotonic()
            try:
                if self.rate > 0 and now >= next_incident:
                    self.new_incident()
                    next_incident = now + self.rnd.expovariate(self.rate / 60.0)
                for run in list(self.legs.values()):
                    if not run.done and now >= run.next_at:
                        self.step_leg(run, now)
                self.legs = {k: v for k, v in self.legs.items() if not v.done}
                if now >= next_move:
                    self.move_units(now)
                    next_move = now + position_interval_s
            except (GisappError, psycopg.Error) as e:
                self.counts["errors"] += 1
                self.log(f"! {e}")
            time.sleep(0.2)
        return self.counts
