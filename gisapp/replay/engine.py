"""Replay a period of recorded incidents under a scenario: a discrete-event simulation (SimPy).

Each incident comes at its recorded time and place. The dispatch rules (gisapp.dispatch.rules)
decide its legs from the scenario's participation; each leg goes to the owner the scenario's
boundaries give. A leg takes the nearest free unit of its owner that meets the leg's
requirements (capability, kinds, crew); when the owner has none free and the rule says
``fallback = "joint_zone"``, the nearest free fitting unit of a member of the joint zone
(same kind as the owner, or a station taking part in traffic for a squadron: as
gisapp.dispatch.legs._zone_members); else the leg waits, first come first served, for a unit
of its owner. A unit is busy from the moment it is taken until it is back at its base:
turnout delay, the drive out, on-scene time, the drive back.

Times: the dispatch offset and the turnout delay (dispatched -> en route) of each leg are the
recorded ones for the same incident and role (drawn from the recorded legs of that role when
the record has none); the drive is the exact road time from the unit's base (routing's graph
and speeds, one shortest-path tree per base, then a table lookup per leg) times a travel
factor calibrated on the period's record (recorded drives over the road times from the
recorded organisation); the on-scene time (arrived -> first feedback) is drawn per incident
type from the record (seeded). Arrival = wait + turnout delay + drive (sla.ARRIVAL_S: arrived
- dispatched).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import simpy

from gisapp.dispatch.rules import LegSpec

SERVICE_CAP_S = 4 * 3600.0     # an on-scene time drawn from the record is cut at 4 h
MIN_DRIVE_S = 60.0              # a drive takes at least a minute (the demo's recorded floor too)
LOCAL_OFFSET_S = 8 * 3600       # Asia/Shanghai, no daylight saving


@dataclass
class Unit:
    """One unit of the roster: its organisation index, requirements data and base per local hour."""

    idx: int
    org: int
    kind: str
    caps: frozenset
    crew: int
    bases: np.ndarray           # base index per local hour (24)
    busy_s: float = 0.0


@dataclass
class LegJob:
    """One leg to replay (inputs), filled with its outcome by the simulation."""

    inc: int
    role: str
    owner: int                  # organisation index, -1: none
    spec: LegSpec
    t_disp: float               # seconds from the period's start
    delay_s: float
    service_s: float
    owner_kind: str = ""
    org: int = -1               # who served it
    fallback_from: int = -1
    wait_s: float = np.nan
    drive_s: float = np.nan
    arrival_s: float = np.nan
    relaxed: bool = False


def fits(u: Unit, spec: LegSpec) -> bool:
    """Whether a unit meets a leg's requirements (gisapp.dispatch.fitness)."""
    if spec.capability is not None and spec.capability not in u.caps:
        return False
    if spec.unit_kinds and u.kind not in spec.unit_kinds:
        return False
    return not (spec.min_crew is not None and u.crew < spec.min_crew)


class Simulation:
    """The event loop over the legs of one scenario: units, queues, the travel table."""

    def __init__(self, units: list[Unit], n_orgs: int, travel: np.ndarray, travel_factor: float,
                 inc_hour: np.ndarray, zone_members: Callable[[LegJob], list[int]]):
        self.env = simpy.Environment()
        self.units = units
        self.free: list[list[Unit]] = [[] for _ in range(n_orgs)]
        self.roster: list[list[Unit]] = [[] for _ in range(n_orgs)]
        for u in units:
            self.free[u.org].append(u)
            self.roster[u.org].append(u)
        self.queue: list[list] = [[] for _ in range(n_orgs)]
        self.travel = travel
        self.factor = travel_factor
        self.inc_hour = inc_hour
        self.zone_members = zone_members

    def drive(self, u: Unit, inc: int) -> float:
        t = self.travel[u.bases[self.inc_hour[inc]], inc]
        return max(MIN_DRIVE_S, float(t) * self.factor) if np.isfinite(t) else np.inf

    def _nearest_free(self, orgs: list[int], job: LegJob, relax: bool = False) -> Unit | None:
        best, best_t = None, np.inf
        for o in orgs:
            for u in self.free[o]:
                if relax or fits(u, job.spec):
                    t = self.drive(u, job.inc)
                    if t < best_t or best is None:
                        best, best_t = u, t
        return best

    def leg(self, job: LegJob):
        env = self.env
        yield env.timeout(job.t_disp)
        owner = job.owner
        if owner < 0:
            return
        # as gisapp.dispatch.legs._plan_leg: the owner's nearest free fitting unit, else (fallback
        # "joint_zone") the nearest free fitting unit of a zone member, else the owner's next one.
        # An owner with no fitting unit at all is asked for any of its units once no member can help.
        relax = not any(fits(u, job.spec) for u in self.roster[owner])
        u = None if relax else self._nearest_free([owner], job)
        if u is None and job.spec.fallback == "joint_zone":
            members = self.zone_members(job)
            if members:
                u = self._nearest_free(members, job)
                if u is not None:
                    job.fallback_from = owner
        if u is None and relax:
            u = self._nearest_free([owner], job, relax=True)
        job.relaxed = relax and job.fallback_from < 0
        if u is None:
            if not self.roster[owner]:
                return
            ev = env.event()
            self.queue[owner].append((ev, job, relax))
            u = yield ev
        else:
            self.free[u.org].remove(u)
        taken = env.now
        job.org = u.org
        job.wait_s = taken - job.t_disp
        d = self.drive(u, job.inc)
        if not np.isfinite(d):
            d = 3600.0  # an unreachable place: an hour, counted as it is (rare: off the network)
        job.drive_s = d
        job.arrival_s = job.wait_s + job.delay_s + d
        yield env.timeout(job.delay_s + d + job.service_s + d)
        u.busy_s += env.now - taken
        self._release(u)

    def _release(self, u: Unit) -> None:
        q = self.queue[u.org]
        for k, (ev, job, relax) in enumerate(q):
            if relax or fits(u, job.spec):
                del q[k]
                ev.succeed(u)
                return
        self.free[u.org].append(u)

    def run(self, jobs: list[LegJob], until: float, progress: Callable[[float, str], None] | None = None) -> None:
        for job in jobs:
            self.env.process(self.leg(job))
        if progress is not None:
            self.env.process(self._progress(until, progress))
        self.env.run()

    def _progress(self, until: float, progress: Callable[[float, str], None]):
        step = max(until / 50.0, 1.0)
        t = 0.0
        while t < until:
            yield self.env.timeout(step)
            t += step
            progress(min(t / until, 1.0), "simulating")

