"""Generate the organisations, units, the programme's participation versions and the incidents with their dispatch legs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import shapely
from scipy.spatial import cKDTree

from .names import masked_phones
from .roads import RoadNetwork
from .world import World

LOCAL_OFFSET_H = 8  # Asia/Shanghai, no daylight saving

CAPS_ALL = ["accident_qualified", "breathalyser", "camera", "cones", "first_aid", "lights"]

DESCRIPTIONS = {
    "theft": "报警称财物被盗", "fight": "报警称有人打架", "dispute": "报警称发生纠纷",
    "fraud": "报警称遭遇诈骗", "public_order": "报警称有人扰乱公共秩序", "missing_person": "报警称家人走失",
    "fire_assist": "请求协助处置火情", "other_110": "群众求助",
    "traffic_violation": "报称有交通违法行为", "road_obstruction": "报称道路有障碍物", "other_122": "交通求助",
    ("traffic_accident", "minor"): "交通事故，车辆受损，无人员受伤",
    ("traffic_accident", "injury"): "交通事故，有人员受伤",
    ("traffic_accident", "fatal"): "交通事故，有人员死亡",
}
CLASS_ZH = {"expressway": "高速", "national": "国道", "provincial": "省道", "county": "县道", "township": "乡村道路",
            "village": "村内道路", "ramp": "匝道", "urban": "城区道路", "other": "道路"}


@dataclass
class Org:
    """An organisation of the demo (station, squadron, accident section, command centre)."""

    code: str
    name: str
    name_en: str
    kind: str
    merged: bool = False
    traffic: bool = False
    parent: str | None = None
    town_code: str | None = None
    x: float = 0.0
    y: float = 0.0
    phone: str | None = None
    station_index: int | None = None
    stations: list[int] = field(default_factory=list)     # squadrons: the stations they cover


@dataclass
class History:
    """Organisations, units, joint zones, incidents and legs (plain arrays, ready to write)."""

    orgs: list[Org]
    units: list[dict]
    joint_zones: list[dict]
    station_org: np.ndarray          # org index per station index
    squadron_of_station: np.ndarray  # org index of the squadron per station index
    zone_of_station: np.ndarray      # joint-zone index per station index
    incidents: dict
    legs: dict
    as_of: datetime


def _nearest_lattice(world: World, x: float, y: float) -> tuple[float, float]:
    d = np.hypot(world.lattice.xy[:, 0] - x, world.lattice.xy[:, 1] - y)
    return tuple(float(v) for v in world.lattice.xy[int(np.argmin(d))])


def build_orgs(world: World, rng: np.random.Generator) -> tuple[list[Org], np.ndarray, np.ndarray]:
    """Stations, squadrons and the two county-level organisations."""
    p = world.params
    orgs: list[Org] = []
    phones = [f"0543-4{n:06d}"[:13] for n in rng.integers(100000, 999999, 64)]
    station_org = np.zeros(len(world.stations), dtype=np.int64)
    for i, s in enumerate(world.stations):
        station_org[i] = len(orgs)
        orgs.append(Org(code=s.code, name=s.name, name_en=s.name_en, kind="station", merged=s.merged,
                        traffic=s.traffic, town_code=s.town_code, x=s.hq_x, y=s.hq_y, phone=phones[i],
                        station_index=i))
    key_index = {s.key: i for i, s in enumerate(world.stations)}
    squadron_of_station = np.full(len(world.stations), -1, dtype=np.int64)
    for q, sq in enumerate(p["squadrons"]):
        if "merged_with" in sq:
            st = world.stations[key_index[sq["merged_with"]]]
            x, y, merged, parent = st.hq_x, st.hq_y, True, st.code
        else:
            st = world.stations[key_index[sq["seat"]]]
            x, y = _nearest_lattice(world, st.hq_x + 320.0, st.hq_y + 180.0)
            merged, parent = False, None
        idx = len(orgs)
        members = [key_index[k] for k in sq["stations"]]
        orgs.append(Org(code=sq["code"], name=sq["name"], name_en=sq["name_en"], kind="squadron", merged=merged,
                        traffic=True, parent=parent, town_code=st.town_code, x=x, y=y,
                        phone=phones[20 + q], stations=members))
        for m in members:
            if squadron_of_station[m] >= 0:
                raise ValueError(f"station {world.stations[m].code} is in two squadrons")
            squadron_of_station[m] = idx
    if (squadron_of_station < 0).any():
        missing = [world.stations[i].code for i in np.flatnonzero(squadron_of_station < 0)]
        raise ValueError(f"stations without a squadron: {missing}")
    for kind in ("accident_section", "command_centre"):
        c = p["county_units"][kind]
        x, y = world.proj.xy(c["lon"], c["lat"])
        x, y = _nearest_lattice(world, float(x), float(y))
        orgs.append(Org(code=c["code"], name=c["name"], name_en=c["name_en"], kind=kind, traffic=kind != "command_centre",
                        town_code="371681001", x=x, y=y, phone=phones[40 + len(orgs) % 10]))
    return orgs, station_org, squadron_of_station


def build_joint_zones(world: World, orgs: list[Org], station_org: np.ndarray,
                      squadron_of_station: np.ndarray) -> tuple[list[dict], np.ndarray]:
    """Joint war zones: the centre station, its member stations and the squadrons covering them."""
    key_index = {s.key: i for i, s in enumerate(world.stations)}
    zone_of_station = np.full(len(world.stations), -1, dtype=np.int64)
    zones = []
    for z, jz in enumerate(world.params["joint_zones"]):
        st = [key_index[k] for k in jz["stations"]]
        for i in st:
            if zone_of_station[i] >= 0:
                raise ValueError(f"station {world.stations[i].code} is in two joint zones")
            zone_of_station[i] = z
        members = sorted({int(station_org[i]) for i in st} | {int(squadron_of_station[i]) for i in st})
        zones.append({"code": jz["code"], "name": jz["name"], "name_en": jz["name_en"],
                      "centre": int(station_org[key_index[jz["centre"]]]), "members": members, "stations": st})
    if (zone_of_station < 0).any():
        missing = [world.stations[i].code for i in np.flatnonzero(zone_of_station < 0)]
        raise ValueError(f"stations outside every joint zone: {missing}")
    return zones, zone_of_station


def build_units(world: World, orgs: list[Org], rng: np.random.Generator, as_of: datetime) -> list[dict]:
    """About 120 units with capabilities, shifts and positions near their home organisation."""
    up = world.params["units"]
    shifts = list(up["shift_mix"])
    shift_p = np.array([up["shift_mix"][k] for k in shifts], float)
    shift_p /= shift_p.sum()
    units = []

    def add(org_i: int, kind: str, prefix: str, label: str, n: int, caps_fn, crew: int):
        o = orgs[org_i]
        short = o.name.replace("派出所", "").replace("交警中队", "中队").replace("交警大队事故处理科", "事故科") \
            .replace("邹平市公安局指挥中心", "指挥中心")
        for k in range(1, n + 1):
            r = up["position_jitter_m"] * np.sqrt(rng.random())
            a = rng.uniform(0, 2 * np.pi)
            x, y = o.x + r * np.cos(a), o.y + r * np.sin(a)
            lon, lat = world.proj.lonlat(x, y)
            units.append({
                "code": f"{o.code}-{prefix}{k:02d}", "name": f"{short}{label}{k}号", "org": org_i, "kind": kind,
                "capabilities": sorted(caps_fn(k)), "shift": shifts[int(rng.choice(len(shifts), p=shift_p))],
                "crew": crew, "lon": float(lon), "lat": float(lat), "x": x, "y": y,
                "status": "out_of_service" if rng.random() < 0.03 else "available",
                "position_at": as_of,
            })

    for i, o in enumerate(orgs):
        if o.kind == "station":
            n = int(rng.integers(up["station_patrol_cars_min"], up["station_patrol_cars_max"] + 1))
            nq = int(round(n * up["station_accident_qualified_share"])) if o.traffic else 0

            def patrol(k, o=o, nq=nq):
                caps = {"first_aid", "lights"}
                if o.traffic:
                    caps |= {"cones"}
                if k <= nq:
                    caps |= {"accident_qualified", "breathalyser", "camera"}
                return caps

            add(i, "patrol_car", "P", "巡逻车", n, patrol, 2)
            add(i, "motorcycle", "M", "巡逻摩托", up["station_motorcycles"], lambda k: {"lights"}, 1)
        elif o.kind == "squadron":
            add(i, "traffic_car", "T", "警车", up["squadron_traffic_cars"],
                lambda k: {"accident_qualified", "breathalyser", "camera", "cones", "lights", "first_aid"}, 2)
            add(i, "motorcycle", "M", "铁骑", up["squadron_motorcycles"], lambda k: {"breathalyser", "lights"}, 1)
        elif o.kind == "accident_section":
            add(i, "accident_car", "A", "勘查车", up["accident_section_cars"], lambda k: set(CAPS_ALL), 3)
        elif o.kind == "command_centre":
            add(i, "command_car", "C", "指挥车", up["command_centre_cars"], lambda k: {"camera", "lights"}, 2)
    return units


def history_end(params: dict, now: datetime | None = None) -> datetime:
    """The end of the generated history ("now": the current time floored to the hour, UTC)."""
    end = params["history"]["end"]
    if end == "now":
        now = now or datetime.now(UTC)
        return now.replace(minute=0, second=0, microsecond=0)
    dt = datetime.fromisoformat(str(end))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def history_span(hp: dict, end: datetime) -> tuple[datetime, int, int]:
    """The history's start and its days: the demo year (``days``, the counts' span) and the days
    before it back to ``start`` (a local date; none when the parameter is absent or not earlier)."""
    days = int(hp["days"])
    recent_start = end - timedelta(days=days)
    if not hp.get("start"):
        return recent_start, days, 0
    start = local_midnight(str(hp["start"]))
    earlier = max(0, int((recent_start - start).total_seconds() // 86400))
    return recent_start - timedelta(days=earlier), days, earlier


def earlier_counts(hp: dict, end: datetime) -> tuple[int, int, int]:
    """How many 110 calls, 122 accidents and other 122 calls the history holds before the demo
    year: ``earlier_rate`` times the demo year's daily rate."""
    _, days, earlier = history_span(hp, end)
    scale = float(hp.get("earlier_rate", 1.0)) * earlier / days
    return tuple(int(round(int(hp[k]) * scale)) for k in ("incidents_110", "accidents_122", "other_122"))


def local_midnight(day: str) -> datetime:
    """A local date (Asia/Shanghai) as the UTC instant of its midnight."""
    d = datetime.fromisoformat(day)
    return datetime(d.year, d.month, d.day, tzinfo=UTC) - timedelta(hours=LOCAL_OFFSET_H)


def participation_versions(params: dict, orgs: list[Org], start: datetime) -> list[dict]:
    """The programme's participation versions ([programme] steps) of every station and squadron.

    Returns dicts (org index, takes_part_in_traffic, merged, valid_from, valid_to, note), one per
    organisation and change, the first from ``start`` (None: since ever). Squadrons always take part
    in traffic; a squadron is merged from the step that merges its station. The state after the
    last step must be the organisations' own flags (the version in force now).
    """
    prog = params.get("programme") or {}
    steps = sorted(prog.get("steps", []), key=lambda s: str(s["date"]))
    by_key = {}
    for i, o in enumerate(orgs):
        if o.kind == "station":
            by_key[o.code[3:] if o.code.startswith("PS-") else o.code] = i
    merged_squadron = {}
    for i, o in enumerate(orgs):
        if o.kind == "squadron" and o.parent:
            merged_squadron[next(j for j, x in enumerate(orgs) if x.code == o.parent)] = i
    state = {i: [o.kind == "squadron", False] for i, o in enumerate(orgs) if o.kind in ("station", "squadron")}
    if not steps:
        state = {i: [orgs[i].traffic, orgs[i].merged] for i in state}
    out = {i: [{"org": i, "takes_part_in_traffic": v[0], "merged": v[1], "valid_from": start, "valid_to": None,
                "note": "before the programme" if steps else "demo"}] for i, v in state.items()}
    for step in steps:
        at = local_midnight(str(step["date"]))
        changed = {}
        for key in step.get("join", []):
            if key not in by_key:
                raise ValueError(f"programme step {step['date']}: unknown station {key!r}")
            changed[by_key[key]] = (True, None)
        for key in step.get("merge", []):
            if key not in by_key:
                raise ValueError(f"programme step {step['date']}: unknown station {key!r}")
            st = by_key[key]
            changed[st] = (changed.get(st, (None,))[0], True)
            if st in merged_squadron:
                changed[merged_squadron[st]] = (None, True)
        for i, (traffic, merged) in changed.items():
            new = [state[i][0] if traffic is None else traffic, state[i][1] if merged is None else merged]
            if new == state[i]:
                continue
            state[i] = new
            out[i][-1]["valid_to"] = at
            out[i].append({"org": i, "takes_part_in_traffic": new[0], "merged": new[1], "valid_from": at,
                           "valid_to": None, "note": str(step.get("note", ""))})
    for i, (traffic, merged) in state.items():
        if (traffic, merged) != (orgs[i].traffic, orgs[i].merged):
            raise ValueError(f"the programme leaves {orgs[i].code} at takes_part_in_traffic={traffic}, "
                             f"merged={merged}, not its flags ({orgs[i].traffic}, {orgs[i].merged})")
    return [v for i in sorted(out) for v in out[i]]


def _takes_part_at(versions: list[dict], org_of: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Whether each incident's organisation takes part in traffic at its report time (epoch s)."""
    out = np.zeros(len(t), bool)
    for v in versions:
        sel = org_of == v["org"]
        if v["valid_from"] is not None:
            sel &= t >= int(v["valid_from"].timestamp())
        if v["valid_to"] is not None:
            sel &= t < int(v["valid_to"].timestamp())
        out[sel] = v["takes_part_in_traffic"]
    return out


def _choose(rng, keys_probs: dict, n: int) -> np.ndarray:
    keys = list(keys_probs)
    p = np.array([keys_probs[k] for k in keys], float)
    return np.array(keys, dtype=object)[rng.choice(len(keys), size=n, p=p / p.sum())]


def _times(rng, days: int, end: datetime, n: int, hourly, weekday, monthly) -> np.ndarray:
    """``n`` report times (epoch seconds) over the ``days`` before ``end`` with daily/weekly/seasonal rhythm."""
    start = end - timedelta(days=days)
    slots = np.arange(days * 24)
    t0 = int(start.timestamp())
    slot_t = t0 + slots * 3600
    local = slot_t + LOCAL_OFFSET_H * 3600
    hour = (local // 3600) % 24
    dow = ((local // 86400) + 3) % 7            # 1970-01-01 was a Thursday (index 3 with Monday = 0)
    month = np.array([datetime.fromtimestamp(int(t), UTC).month - 1 for t in local[::24]])
    month = np.repeat(month, 24)[: len(slots)]
    day_noise = np.repeat(rng.lognormal(0, 0.12, days), 24)[: len(slots)]
    w = np.asarray(hourly)[hour] * np.asarray(weekday)[dow] * np.asarray(monthly)[month] * day_noise
    pick = rng.choice(len(slots), size=n, p=w / w.sum())
    t = slot_t[pick] + rng.integers(0, 3600, n)
    return np.minimum(t, int(end.timestamp()) - 300)


def build_history(world: World, net: RoadNetwork, orgs: list[Org], station_org: np.ndarray,
                  squadron_of_station: np.ndarray, zones: list[dict], zone_of_station: np.ndarray,
                  units: list[dict], rng: np.random.Generator, end: datetime) -> tuple[dict, dict]:
    """The incidents (110 and 122: the demo year, and the earlier years back to ``history.start``)
    and their dispatch legs with lifecycle timestamps."""
    hp = world.params["history"]
    _, recent, earlier = history_span(hp, end)
    # the demo year first, from the main random stream (the same as a history of the year alone);
    # the earlier years from their own stream, so the demo year's places and times do not move
    parts = [_draws(world, net, hp, rng, recent, end, hp["incidents_110"], hp["accidents_122"], hp["other_122"])]
    if earlier:
        rng_e = np.random.default_rng([int(world.params["seed"]), 15])
        parts.insert(0, _draws(world, net, hp, rng_e, earlier, end - timedelta(days=recent),
                               *earlier_counts(hp, end)))
    type110, type122, sev122, t110, t122, xy110, xy122, e122 = (
        np.concatenate([p[k] for p in parts]) for k in range(8))
    n110, n122 = len(type110), len(type122)
    channel, itype, sev, t_rep, xy, road_edge = _in_report_order(n110, n122, type110, type122, sev122,
                                                                 t110, t122, xy110, xy122, e122)
    lon, lat, grid_of = _grids_of(world, xy)
    st_of = world.grid_station[grid_of]
    station_org_of = station_org[st_of]
    traffic_org_of = squadron_of_station[st_of]
    zone_of = zone_of_station[st_of]
    # the station's participation in force when each incident was reported ([programme])
    versions = participation_versions(world.params, orgs, None)
    traffic_at = _takes_part_at(versions, station_org_of, t_rep)
    keep = set((world.params.get("programme") or {}).get("squadron_road_classes", []))
    squadron_road = np.array([e >= 0 and net.road_class[e] in keep for e in road_edge.tolist()], bool)
    leg_inc, leg_org, leg_role, leg_fb = _legs(hp, orgs, station_org, zones, channel, itype, sev, station_org_of,
                                               traffic_org_of, zone_of, traffic_at, squadron_road, rng)
    is_acc = itype == "traffic_accident"
    leg_unit = _leg_units(units, leg_inc, leg_org, is_acc, rng)
    t_disp, status, stamps = _leg_lifecycle(hp, orgs, itype, t_rep, xy, leg_inc, leg_org, leg_role, rng, end)
    leg_outcome = _leg_outcomes(hp, world.params["seed"], itype, sev, leg_inc, leg_role, status)
    legs = {"incident": leg_inc, "org": leg_org, "unit": leg_unit, "role": leg_role, "status": status,
            "dispatched": t_disp, "fallback": leg_fb, "outcome": leg_outcome, **stamps}
    inc_status, close_t = _incident_status(len(t_rep), leg_inc, stamps["closed"])
    # an incident's outcome: its primary leg's, once the incident is closed
    inc_outcome = np.full(len(t_rep), None, dtype=object)
    prim = leg_role == "primary"
    inc_outcome[leg_inc[prim]] = leg_outcome[prim]
    inc_outcome = np.where(inc_status == "closed", inc_outcome, None)
    address, desc, codes = _incident_texts(world, net, xy, road_edge, itype, sev, t_rep)
    incidents = {
        "code": codes, "channel": channel, "type": itype, "severity": sev, "lon": lon, "lat": lat, "xy": xy,
        "address": address, "caller": masked_phones(rng, len(t_rep)), "description": desc, "reported": t_rep,
        "status": inc_status, "station_org": station_org_of, "traffic_org": traffic_org_of, "grid": grid_of,
        "zone": zone_of, "closed": close_t, "road_edge": road_edge, "outcome": inc_outcome,
    }
    return incidents, legs


def _draws(world: World, net: RoadNetwork, hp: dict, rng: np.random.Generator, days: int, end: datetime,
           n110: int, nacc: int, noth: int) -> tuple:
    """When, what and where of the incidents of the ``days`` before ``end``: the 110 and 122 types,
    the accidents' severities, the report times, the places and the 122 calls' road edges."""
    t110, t122 = _report_times(rng, hp, days, end, n110, nacc + noth)
    type110, type122, sev122 = _incident_types(rng, hp, n110, nacc, noth)
    xy110 = _places_110(world, hp, n110, rng)
    e122, xy122 = _places_122(net, hp, nacc + noth, rng)
    return type110, type122, sev122, t110, t122, xy110, xy122, e122


def _report_times(rng: np.random.Generator, hp: dict, days: int, end: datetime, n110: int,
                  n122: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw when: the report times of the 110 and of the 122 incidents."""
    t110 = _times(rng, days, end, n110, hp["hourly_110"], hp["weekday_110"], hp["monthly_110"])
    t122 = _times(rng, days, end, n122, hp["hourly_122"], hp["weekday_122"], hp["monthly_122"])
    return t110, t122


def _incident_types(rng: np.random.Generator, hp: dict, n110: int, nacc: int,
                    noth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw what: the 110 types, the 122 types (accidents first) and the accidents' severities."""
    type110 = _choose(rng, hp["type_mix_110"], n110)
    type122 = np.concatenate([np.array(["traffic_accident"] * nacc, dtype=object),
                              _choose(rng, hp["type_mix_122_other"], noth)])
    sev122 = np.concatenate([_choose(rng, hp["severity_mix_accident"], nacc), np.array(["none"] * noth, dtype=object)])
    return type110, type122, sev122


def _places_110(world: World, hp: dict, n110: int, rng: np.random.Generator) -> np.ndarray:
    """Draw where the 110 incidents happen: by population of villages and urban communities."""
    n_v = len(world.village_xy)
    atom_pop = np.zeros(len(world.atom_xy))
    atom_pop[:n_v] = world.village_pop
    n_comm = len(world.atom_xy) - n_v
    urban_total = 800000 - world.village_pop.sum()
    atom_pop[n_v:] = max(urban_total, 0) / max(n_comm, 1) * 1.5
    a110 = rng.choice(len(world.atom_xy), size=n110, p=atom_pop / atom_pop.sum())
    r = hp["incident_jitter_m"] * np.sqrt(rng.random(n110))
    ang = rng.uniform(0, 2 * np.pi, n110)
    xy110 = world.atom_xy[a110] + np.column_stack([r * np.cos(ang), r * np.sin(ang)])
    inside = shapely.contains_xy(world.outline_m.buffer(-20.0), xy110[:, 0], xy110[:, 1])
    xy110[~inside] = world.atom_xy[a110[~inside]]
    return xy110


def _places_122(net: RoadNetwork, hp: dict, n122: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw where the 122 incidents happen: on roads, by length and class; return edges and points."""
    L = net.length_m
    cw = np.array([hp["accident_class_weight"].get(c, 1.0) for c in net.road_class])
    e122 = rng.choice(len(L), size=n122, p=(L * cw) / (L * cw).sum())
    pts = shapely.line_interpolate_point(net.geoms[e122], rng.random(n122), normalized=True)
    return e122, shapely.get_coordinates(pts)


def _in_report_order(n110: int, n122: int, type110, type122, sev122, t110, t122, xy110, xy122, e122) -> tuple:
    """Merge the 110 and 122 incidents in report-time order; return channel, type, severity, time, place, edge."""
    channel = np.array(["110"] * n110 + ["122"] * n122, dtype=object)
    itype = np.concatenate([type110, type122])
    sev = np.concatenate([np.array(["none"] * n110, dtype=object), sev122])
    t_rep = np.concatenate([t110, t122])
    xy = np.vstack([xy110, xy122])
    road_edge = np.concatenate([np.full(n110, -1), e122])
    order = np.lexsort((np.arange(len(t_rep)), t_rep))
    return tuple(a[order] for a in (channel, itype, sev, t_rep, xy, road_edge))


def _grids_of(world: World, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Find each incident's grid by containment (EPSG:4326, the stored geometries); return lon, lat, grid."""
    lon, lat = world.proj.lonlat(xy[:, 0], xy[:, 1])
    p4326 = shapely.points(lon, lat)
    grids = np.array(world.grid_geoms, dtype=object)
    tree = shapely.STRtree(grids)
    pi, gi = tree.query(p4326, predicate="intersects")
    grid_of = np.full(len(xy), -1, dtype=np.int64)
    # the lowest grid index wins on a shared boundary
    first = np.lexsort((gi, pi))
    pi, gi = pi[first], gi[first]
    uniq = np.r_[True, pi[1:] != pi[:-1]]
    grid_of[pi[uniq]] = gi[uniq]
    miss = grid_of < 0
    if miss.any():
        grid_of[miss] = tree.query_nearest(p4326[miss], all_matches=False)[1]
    return lon, lat, grid_of


def _legs(hp: dict, orgs: list[Org], station_org: np.ndarray, zones: list[dict], channel: np.ndarray,
          itype: np.ndarray, sev: np.ndarray, station_org_of: np.ndarray, traffic_org_of: np.ndarray,
          zone_of: np.ndarray, traffic_station: np.ndarray, squadron_road: np.ndarray,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Make the legs (incident, organisation, role, fallback-from organisation or -1), sorted by incident.

    The rules of gisapp/dispatch/rules.toml: an accident on a road the squadrons keep goes to the
    squadron (with the accident section when people are hurt); else an injury accident to the
    station and the accident section (一警双派); a minor accident and a traffic call to the station
    when it takes part in traffic at the report time (``traffic_station``), else to the squadron.
    """
    n = len(channel)
    is_acc = itype == "traffic_accident"
    serious = is_acc & np.isin(sev, ["injury", "fatal"])
    to_station = ((channel == "110") | serious | traffic_station) & ~(is_acc & squadron_road)
    primary_org = np.where(to_station, station_org_of, traffic_org_of)
    fallback = np.full(n, -1, dtype=np.int64)
    fb = to_station & (rng.random(n) < hp["fallback_share"])
    zone_stations = [[int(station_org[i]) for i in z["stations"]] for z in zones]
    for i in np.flatnonzero(fb):
        others = [o for o in zone_stations[zone_of[i]] if o != station_org_of[i]]
        if others:
            fallback[i] = station_org_of[i]
            primary_org[i] = others[int(rng.integers(len(others)))]
    acc_org = next(i for i, o in enumerate(orgs) if o.kind == "accident_section")
    leg_inc = np.concatenate([np.arange(n), np.flatnonzero(serious)])
    leg_org = np.concatenate([primary_org, np.full(serious.sum(), acc_org)])
    leg_role = np.array(["primary"] * n + ["specialist"] * int(serious.sum()), dtype=object)
    leg_fb = np.concatenate([fallback, np.full(serious.sum(), -1)])
    order = np.lexsort((leg_role == "specialist", leg_inc))
    return leg_inc[order], leg_org[order], leg_role[order], leg_fb[order]


def _leg_units(units: list[dict], leg_inc: np.ndarray, leg_org: np.ndarray, is_acc: np.ndarray,
               rng: np.random.Generator) -> np.ndarray:
    """Pick a unit per leg: one of the organisation's units (accident-qualified for accidents when it has one)."""
    nl = len(leg_inc)
    units_by_org: dict[tuple[int, bool], list[int]] = {}
    for ui, u in enumerate(units):
        units_by_org.setdefault((u["org"], False), []).append(ui)
        if "accident_qualified" in u["capabilities"]:
            units_by_org.setdefault((u["org"], True), []).append(ui)
    leg_unit = np.zeros(nl, dtype=np.int64)
    pick = rng.random(nl)
    for li in range(nl):
        o = int(leg_org[li])
        pool = units_by_org.get((o, bool(is_acc[leg_inc[li]])), units_by_org[(o, False)])
        leg_unit[li] = pool[int(pick[li] * len(pool))]
    return leg_unit


def _leg_lifecycle(hp: dict, orgs: list[Org], itype: np.ndarray, t_rep: np.ndarray, xy: np.ndarray,
                   leg_inc: np.ndarray, leg_org: np.ndarray, leg_role: np.ndarray, rng: np.random.Generator,
                   end: datetime) -> tuple[np.ndarray, np.ndarray, dict]:
    """Draw the legs' lifecycles; return dispatch times, statuses and milestone stamps (epoch s, -1: not yet)."""
    nl = len(leg_inc)
    # lifecycle (seconds from dispatch)
    t_disp = t_rep[leg_inc] + rng.integers(hp["call_handling_s"][0], hp["call_handling_s"][1], nl)
    ok_sign = rng.random(nl) < hp["sign_off_rate"]
    sign = np.where(ok_sign, 5 + 84 * rng.beta(2.0, 3.0, nl), 91 + np.minimum(rng.exponential(240, nl), 1700))
    spec = leg_role == "specialist"
    enr = sign + np.where(spec, 60 + rng.exponential(150, nl), 10 + rng.exponential(40, nl))
    ox = np.array([orgs[o].x for o in leg_org])
    oy = np.array([orgs[o].y for o in leg_org])
    dist = np.hypot(xy[leg_inc, 0] - ox, xy[leg_inc, 1] - oy)
    drive = np.maximum(60.0, dist * hp["detour_factor"] / (hp["drive_speed_kmh"] / 3.6) * rng.uniform(0.85, 1.3, nl))
    arr = enr + drive
    ff_lim = 5 * 3600
    ok_ff = rng.random(nl) < hp["first_feedback_rate"]
    ff_ok = arr + 120 + np.minimum(rng.exponential(2400, nl), np.maximum(ff_lim - 60 - arr - 120, 0))
    ff_ok = np.minimum(ff_ok, ff_lim - 30)
    ff = np.where(ok_ff, np.maximum(ff_ok, arr + 30), ff_lim + 60 + rng.exponential(3 * 3600, nl))
    cl_lim = 22 * 3600
    ok_cl = rng.random(nl) < hp["close_rate"]
    mean_close = np.where(np.isin(itype[leg_inc], ["theft", "fraud", "missing_person"]), 6 * 3600, 2 * 3600)
    cl_ok = ff + 300 + rng.exponential(1.0, nl) * mean_close
    over = cl_ok >= cl_lim - 60
    cl_ok = np.where(over, ff + (cl_lim - 60 - ff) * rng.random(nl), cl_ok)
    cl = np.where(ok_cl & (ff < cl_lim - 120), cl_ok, np.maximum(cl_lim + 60 + rng.exponential(12 * 3600, nl), ff + 300))
    # a leg's clocks in epoch seconds; milestones after the end of the history have not happened yet
    end_s = int(end.timestamp())
    stamps = {}
    for name_, off in (("signed_off", sign), ("en_route", enr), ("arrived", arr), ("first_feedback", ff),
                       ("closed", cl)):
        s_ = t_disp + np.round(off).astype(np.int64)
        stamps[name_] = np.where(s_ <= end_s, s_, -1)
    status = np.full(nl, "dispatched", dtype=object)
    for name_ in ("signed_off", "en_route", "arrived", "first_feedback", "closed"):
        status = np.where(stamps[name_] >= 0, name_, status)
    return t_disp, status, stamps


def _leg_outcomes(hp: dict, seed: int, itype: np.ndarray, sev: np.ndarray, leg_inc: np.ndarray,
                  leg_role: np.ndarray, status: np.ndarray) -> np.ndarray:
    """How each closed leg ended (an outcome code of the rules file; None while the leg is open).

    Drawn from ``outcome_mix``: per incident type (accidents per severity, the accident
    section's legs as ``specialist``), else ``default``. Its own random stream, so the rest
    of the generated world does not move when the mix changes.
    """
    mix = hp["outcome_mix"]
    rng = np.random.default_rng([int(seed), 13])
    u = rng.random(len(leg_inc))
    out = np.full(len(leg_inc), None, dtype=object)
    keys = np.array([("specialist" if r == "specialist" else
                      f"{itype[i]}_{sev[i]}" if itype[i] == "traffic_accident" else str(itype[i]))
                     for i, r in zip(leg_inc, leg_role, strict=True)], dtype=object)
    for key in np.unique(keys):
        sel = np.flatnonzero(keys == key)
        m = mix.get(key, mix["default"])
        codes = list(m)
        cum = np.cumsum(np.array([m[c] for c in codes], float))
        cum /= cum[-1]
        out[sel] = np.array(codes, dtype=object)[np.searchsorted(cum, u[sel], side="right").clip(0, len(codes) - 1)]
    return np.where(status == "closed", out, None)


def _incident_status(n: int, leg_inc: np.ndarray, leg_closed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Derive each incident's status and closing time (-1: open) from its legs."""
    closed_all = np.ones(n, bool)
    np.logical_and.at(closed_all, leg_inc, leg_closed >= 0)
    close_t = np.full(n, -1, dtype=np.int64)
    np.maximum.at(close_t, leg_inc, leg_closed)
    inc_status = np.where(closed_all, "closed", "dispatched")
    close_t = np.where(closed_all, close_t, -1)
    return inc_status, close_t


def _incident_texts(world: World, net: RoadNetwork, xy: np.ndarray, road_edge: np.ndarray, itype: np.ndarray,
                    sev: np.ndarray, t_rep: np.ndarray) -> tuple[list[str], list[str], list[str]]:
    """Write each incident's address, description and code."""
    vtree = cKDTree(world.village_xy)
    _, near_v = vtree.query(xy)
    town_names = {s.town_code: s.short for s in world.stations if s.town_code}
    address = []
    for i in range(len(xy)):
        v = int(near_v[i])
        town = town_names.get(world.village_town[v], "")
        e = int(road_edge[i])
        if e >= 0:
            rn = net.name[e] or CLASS_ZH.get(net.road_class[e], "道路")
            address.append(f"{town}{world.village_names[v]}附近 {rn}")
        else:
            address.append(f"{town}{world.village_names[v]}附近")
    desc = [DESCRIPTIONS.get((t, s_), DESCRIPTIONS.get(t, "")) for t, s_ in zip(itype, sev, strict=True)]
    local_day = (t_rep + LOCAL_OFFSET_H * 3600)
    codes = [
        "JQ" + datetime.fromtimestamp(int(d), UTC).strftime("%Y%m%d") + f"{i + 1:07d}"
        for i, d in enumerate(local_day)
    ]
    return address, desc, codes
