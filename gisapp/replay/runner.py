"""Run one scenario over one period: owners, rules, roster, travel table, then the simulation."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

import numpy as np
import psycopg

from gisapp.dispatch.rules import load_rules
from gisapp.planning.compare import assign, draft_layout, published_layout
from gisapp.planning.network import PlanNetwork

from .engine import LOCAL_OFFSET_S, SERVICE_CAP_S, LegJob, Simulation, Unit
from .results import Result
from .scenario import Scenario, local_day_start
from .world import World, load_world

PLAN_ZONE_BASE = 10**12  # keys of a plan's joint zones among the recorded zones' ids


def _owners(conn: psycopg.Connection, settings, w: World, sc: Scenario) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Station owner, traffic owner and joint zone id of each incident under the scenario's boundaries."""
    station, traffic, zone = w.inc_station.copy(), w.inc_traffic.copy(), w.inc_zone.copy()
    if sc.boundaries == "in_force":
        return station, traffic, zone
    srid = settings.metric_srid
    if sc.boundaries == "at":
        at = local_day_start(sc.boundaries_date)
        layouts = {k: published_layout(conn, k, srid, at) for k in ("station", "traffic", "joint_zone")}
    else:
        layouts = {sc.plan_kind: draft_layout(conn, sc.plan_id, srid)}
        at = None
    for kind, lay in layouts.items():
        idx = assign(lay, w.inc_lonlat)
        keys = np.array(lay.keys + [None], dtype=object)[idx]
        ok = idx >= 0
        if kind == "station":
            station[ok] = keys[ok].astype(np.int64)
        elif kind == "traffic":
            traffic[ok] = keys[ok].astype(np.int64)
        elif sc.boundaries == "plan":  # the plan's zones with the plan's members
            for area_id in lay.area_ids.values():
                r = conn.execute("SELECT centre_org_id, member_ids FROM plan_area WHERE id = %s", [area_id]).fetchone()
                members = sorted({*(r["member_ids"] or []), *([r["centre_org_id"]] if r["centre_org_id"] else [])})
                w.zones[PLAN_ZONE_BASE + area_id] = {"members": members, "from": -np.inf, "to": np.inf}
            zid = np.array([PLAN_ZONE_BASE + lay.area_ids[k] if k in lay.area_ids else -1 for k in keys[ok]],
                           dtype=np.int64)
            zone[ok] = zid
        else:  # zone codes -> the zone version in force at the date
            ids = {r["code"]: r["id"] for r in conn.execute(
                "SELECT DISTINCT ON (code) id, code FROM joint_zone WHERE valid_from <= coalesce(%(at)s, now()) "
                "AND (valid_to IS NULL OR valid_to > coalesce(%(at)s, now())) ORDER BY code, valid_from DESC",
                {"at": at})}
            zone[ok] = np.array([ids.get(k, -1) for k in keys[ok]], dtype=np.int64)
    return station, traffic, zone


def _roster(conn: psycopg.Connection, w: World, sc: Scenario, base_of_org: dict[int, int], oi: dict[int, int],
            post_base0: int) -> tuple[list[Unit], list[tuple[float, float]]]:
    """The units and where each waits per local hour; extra bases (posts) as lon/lat."""
    by_org: dict[int, list[dict]] = {}
    for u in w.units:
        if u["organisation_id"] in base_of_org:
            by_org.setdefault(u["organisation_id"], []).append(u)
    units: list[Unit] = []
    for org_id, us in by_org.items():
        n = max(1, int(round(len(us) * sc.cars_scale)))
        for k in range(n):
            u = us[k % len(us)]
            units.append(Unit(len(units), oi[org_id], u["kind"], frozenset(u["capabilities"] or ()), int(u["crew"]),
                              np.full(24, base_of_org[org_id], dtype=np.int64)))
    extra: list[tuple[float, float]] = []
    if sc.roster == "posts":
        posts = conn.execute(
            """SELECT pp.zone_code, pp.start_hour, pp.end_hour, pp.rank, ST_X(pp.geom) AS lon, ST_Y(pp.geom) AS lat,
                      ARRAY(SELECT m.organisation_id FROM joint_zone z JOIN joint_zone_member m ON m.joint_zone_id = z.id
                            WHERE z.code = pp.zone_code AND z.valid_from <= now()
                              AND (z.valid_to IS NULL OR z.valid_to > now())) AS members
               FROM plan_post pp WHERE pp.plan_id = %s ORDER BY pp.start_hour, pp.rank""", [sc.proposal_id]).fetchall()
        taken: dict[tuple[int, int], set] = {}
        for p in posts:
            hours = list(range(p["start_hour"], p["end_hour"]))
            cands = [u for u in units if w.orgs[u.org].id in p["members"] and w.orgs[u.org].kind == "station"
                     and u.kind == "patrol_car" and u.idx not in taken.setdefault((p["start_hour"], 0), set())]
            if not cands:
                continue
            org_ll = {u.org: (w.orgs[u.org].lon, w.orgs[u.org].lat) for u in cands}
            u = min(cands, key=lambda u: (org_ll[u.org][0] - p["lon"]) ** 2 + (org_ll[u.org][1] - p["lat"]) ** 2)
            taken[(p["start_hour"], 0)].add(u.idx)
            u.bases[hours] = post_base0 + len(extra)
            extra.append((p["lon"], p["lat"]))
    return units, extra


def _pick(rng: np.random.Generator, pool: np.ndarray, n: int, default: float) -> np.ndarray:
    return rng.choice(pool, size=n) if len(pool) else np.full(n, default)


def run(conn: psycopg.Connection, settings, scenario: Scenario, start: datetime, end: datetime, *,
        progress: Callable[[float, str], None] | None = None, seed: int = 0) -> Result:
    """Replay the incidents of [start, end) under ``scenario``; return its Result."""
    t0 = time.perf_counter()
    say = progress or (lambda f, m: None)
    say(0.0, "loading")
    w = load_world(conn, start, end)
    rules = load_rules(settings)
    n_inc = len(w.inc_id)
    oi = w.org_index()
    station, traffic, zone = _owners(conn, settings, w, scenario)
    # participation of each incident's station, as the scenario says
    part = w.participation
    kind = scenario.participation
    chosen = set(scenario.stations)

    def takes_part(org_id: int, i: int) -> bool:
        if kind == "recorded":
            return part.takes_part(org_id, w.inc_reported[i])
        if kind == "squadrons_alone":
            return False
        if kind == "all_stations":
            return True
        return org_id in chosen

    alone = kind == "squadrons_alone"
    county = {}
    for o in w.orgs:
        county.setdefault(o.kind, o.id)
    say(0.05, "rules")
    net = PlanNetwork.load(conn, settings)
    snaps = net.snap(w.inc_lonlat)
    road = _road_classes(rules, net, snaps, settings)
    jobs: list[LegJob] = []
    match_cache: dict = {}
    stt = np.zeros(n_inc, dtype=bool)
    for i in range(n_inc):
        itype = rules.types.get(w.inc_type[i])
        if itype is None:
            continue
        st = int(station[i])
        traffic_flag = takes_part(st, i) if st >= 0 else None
        stt[i] = bool(traffic_flag)
        key = (itype.code, w.inc_sev[i], w.inc_channel[i], traffic_flag, road[i])
        rule = match_cache.get(key)
        if rule is None:
            args = (itype, w.inc_sev[i], w.inc_channel[i], traffic_flag) + ((road[i],) if road is not NO_ROADS else ())
            rule = match_cache[key] = rules.match(*args)
        for spec in rule.legs:
            target = spec.target
            if alone and target == "station" and itype.category == "accident":
                target = "squadron"  # before the programme the squadron took every accident
            owner = _target(target, st, int(traffic[i]), county)
            if owner < 0 and spec.otherwise:
                owner = _target(spec.otherwise, st, int(traffic[i]), county)
            jobs.append(LegJob(i, spec.role, oi.get(owner, -1), spec, 0.0, 0.0, 0.0))
    # recorded times per (incident, role); drawn per role where the record has none
    rng = np.random.default_rng([seed, 15])
    rec = {(int(i), r): k for k, (i, r) in enumerate(zip(w.rec_inc, w.rec_role, strict=True))}
    ok_delay = np.isfinite(w.rec_delay) & (w.rec_delay >= 0)
    delay_pool = {r: w.rec_delay[ok_delay & (w.rec_role == r)] for r in ("primary", "specialist")}
    disp_pool = w.rec_disp_off[np.isfinite(w.rec_disp_off)]
    ok_srv = np.isfinite(w.rec_service) & (w.rec_service > 0)
    srv_type = w.inc_type[w.rec_inc]
    service_pool = {t: np.minimum(w.rec_service[ok_srv & (srv_type == t)], SERVICE_CAP_S) for t in set(w.inc_type)}
    all_srv = np.minimum(w.rec_service[ok_srv], SERVICE_CAP_S)
    u_draw = rng.random((len(jobs), 3))
    t_start = start.timestamp()
    for j, job in enumerate(jobs):
        k = rec.get((job.inc, job.role))
        if k is None:
            k = rec.get((job.inc, "primary"))
        off = w.rec_disp_off[k] if k is not None and np.isfinite(w.rec_disp_off[k]) else (
            disp_pool[int(u_draw[j, 0] * len(disp_pool))] if len(disp_pool) else 0.0)
        job.t_disp = w.inc_t[job.inc] - t_start + float(off)
        pool = delay_pool.get(job.role, delay_pool["primary"])
        if k is not None and ok_delay[k] and w.rec_role[k] == job.role:
            job.delay_s = float(w.rec_delay[k])
        elif len(pool):
            job.delay_s = float(pool[int(u_draw[j, 1] * len(pool))])
        sp = service_pool.get(w.inc_type[job.inc])
        sp = sp if sp is not None and len(sp) else all_srv
        job.service_s = float(sp[int(u_draw[j, 2] * len(sp))]) if len(sp) else 1800.0
        job.owner_kind = w.orgs[job.owner].kind if job.owner >= 0 else ""
    say(0.1, "travel times")
    # bases: every organisation's headquarters (and the posts of the roster)
    base_of_org = {o.id: b for b, o in enumerate([o for o in w.orgs if o.lon is not None])}
    base_ll = [(o.lon, o.lat) for o in w.orgs if o.lon is not None]
    units, extra = _roster(conn, w, scenario, base_of_org, oi, len(base_ll))
    base_ll += extra
    node_t = net.node_times_from(np.array(base_ll, dtype=float))
    travel = net.point_times(node_t, snaps)
    factors, factor = _travel_factors(w, travel, base_of_org)
    travel = travel * factors[:, None]
    inc_hour = (((w.inc_t + LOCAL_OFFSET_S) // 3600) % 24).astype(np.int64)
    say(0.2, "simulating")
    org_kind = [o.kind for o in w.orgs]
    zone_ids = zone
    zones = w.zones
    org_zones = w.org_zones

    def zone_members(job: LegJob) -> list[int]:
        owner_id = w.orgs[job.owner].id
        t = w.inc_t[job.inc]
        zid = int(zone_ids[job.inc])
        zs = [zid] if zid >= 0 else [z for z in org_zones.get(owner_id, []) if zones[z]["from"] <= t < zones[z]["to"]]
        out = set()
        own_kind = job.owner_kind
        for z in zs:
            for m in zones.get(z, {"members": []})["members"]:
                if m == owner_id or m not in oi:
                    continue
                mk = org_kind[oi[m]]
                if mk == own_kind or (own_kind == "squadron" and mk == "station" and takes_part(m, job.inc)):
                    out.add(oi[m])
        return sorted(out)

    sim = Simulation(units, len(w.orgs), travel, 1.0, inc_hour, zone_members)
    until = end.timestamp() - t_start
    sim.run(jobs, until, (lambda f, m: say(0.2 + 0.75 * f, m)) if progress else None)
    say(0.97, "summarising")
    res = Result.build(scenario, w, jobs, units, settings, factor=factor, station=station, stt=stt,
                       seconds=time.perf_counter() - t0)
    say(1.0, "done")
    return res


class _NoRoads(list):
    """The rules name no road classes: every incident's road class is None (not asked)."""

    def __getitem__(self, i):
        return None


NO_ROADS = _NoRoads()


def _road_classes(rules, net: PlanNetwork, snaps, settings) -> list:
    """Each incident's road class for rules that name road classes (the nearest road segment within
    ``dispatch_road_snap_m``, as the live rules read it; None: on no road), else NO_ROADS."""
    if not any(getattr(r, "road_classes", None) for r in rules.rules):
        return NO_ROADS
    limit = float(getattr(settings, "dispatch_road_snap_m", 50.0))
    ok = (snaps.edge >= 0) & (snaps.distance_m <= limit)
    cls = net.road_class[np.where(ok, snaps.edge, 0)] if len(net.road_class) else np.full(len(ok), None)
    return [str(c) if k else None for c, k in zip(cls, ok, strict=True)]


def _target(target: str, station: int, traffic: int, county: dict) -> int:
    if target == "station":
        return station
    if target == "squadron":
        return traffic
    return county.get(target, -1)


def _travel_factors(w: World, travel: np.ndarray, base_of_org: dict[int, int],
                    prior_legs: float = 50.0) -> tuple[np.ndarray, float]:
    """Per base: recorded drives over the road times from the recorded organisation's base.

    The county-wide factor is the sum of recorded drives over the sum of road times; each
    base's own ratio is shrunk towards it by its number of legs (``n / (n + prior_legs)``),
    so a base with few recorded legs keeps the county's factor. Bases without a record (posts)
    take the county's factor. Returns (factor per base, county factor).
    """
    k = travel.shape[0]
    ok = np.isfinite(w.rec_drive) & (w.rec_drive > 0)
    rows = np.array([base_of_org.get(int(o), -1) for o in w.rec_org], dtype=np.int64)
    ok &= rows >= 0
    t = np.full(len(rows), np.nan)
    t[ok] = travel[rows[ok], w.rec_inc[ok]]
    ok &= np.isfinite(t) & (t > 0)
    if not ok.any():
        return np.ones(k), 1.0
    county = float(w.rec_drive[ok].sum() / t[ok].sum())
    n = np.bincount(rows[ok], minlength=k).astype(float)
    sd = np.bincount(rows[ok], weights=w.rec_drive[ok], minlength=k)
    st = np.bincount(rows[ok], weights=t[ok], minlength=k)
    own = np.divide(sd, st, out=np.full(k, county), where=st > 0)
    wgt = n / (n + prior_legs)
    return wgt * own + (1 - wgt) * county, county
