"""Load the Zouping demo world: the real reference data plus the generated layers.

``generate()`` builds the whole world in memory (deterministic for a seed and a history
end); ``load_demo()`` replaces the previous demo in the database with it, in the
caller's transaction, using COPY. geodata/README.md describes the generator.
"""

from __future__ import annotations

import hashlib
import json
import time
import tomllib
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import shapely
from psycopg import sql

from gisapp.core.config import Settings

from .history import (
    History,
    build_history,
    build_joint_zones,
    build_orgs,
    build_units,
    history_end,
    history_span,
    participation_versions,
)
from .names import masked_phones, person_names
from .reference import load_reference
from .roads import RoadNetwork, build_roads
from .world import World, as_multipolygon, build_world

PARAMS_PATH = Path(__file__).parent / "demo_params.toml"
AUTHOR = "demo-generator"
RULE_VERSION = "demo-1"
SERVICES = [
    "户籍业务", "机动车登记", "机动车检验合格标志核发", "补换领机动车号牌", "补换领行驶证",
    "机动车抵押登记", "驾驶证补换证", "驾驶证审验", "驾驶人体检信息备案", "交通违法处理",
    "交通事故快处快赔", "电动自行车登记", "临时号牌核发", "驾驶证期满换证",
]
# Tables the generator fills, dependents first; organisations and units are upserted by code.
GENERATED_TABLES = [
    "incident_event", "dispatch_leg", "incident", "unit_position", "patrol_watermark", "patrol_edge_day",
    "road_coverage", "road_edge", "road_node",
    "grid_staff", "grid", "joint_zone_member", "joint_zone", "jurisdiction", "village", "service_point",
]
SYNTHETIC_ATTRIBUTION = "合成示意数据，非真实 / synthetic demo data, not real"


def load_params(path: str | Path | None = None, seed: int | None = None) -> dict:
    """Read the generator parameters (default ``geodata/demo_params.toml``); ``seed`` overrides."""
    with open(path or PARAMS_PATH, "rb") as fh:
        params = tomllib.load(fh)
    if seed is not None:
        params["seed"] = int(seed)
    return params


@dataclass
class Demo:
    """The generated world, ready to be written."""

    params: dict
    world: World
    net: RoadNetwork
    history: History
    speeds: dict[str, float]
    timings: dict[str, float]


def generate(params: dict, settings=None, end: datetime | None = None) -> Demo:
    """Generate the demo world in memory from ``params`` (and the settings' speeds and CRS)."""
    if settings is None:
        settings = Settings.from_env()
    timings = {}
    t = time.perf_counter()
    rng = np.random.default_rng(int(params["seed"]))
    world = build_world(params, rng, settings.metric_srid)
    timings["world_s"] = time.perf_counter() - t
    t = time.perf_counter()
    net = build_roads(world, rng)
    timings["roads_s"] = time.perf_counter() - t
    t = time.perf_counter()
    as_of = end or history_end(params)
    orgs, station_org, squadron_of_station = build_orgs(world, rng)
    zones, zone_of_station = build_joint_zones(world, orgs, station_org, squadron_of_station)
    units = build_units(world, orgs, rng, as_of)
    incidents, legs = build_history(world, net, orgs, station_org, squadron_of_station, zones, zone_of_station,
                                    units, rng, as_of)
    hist = History(orgs=orgs, units=units, joint_zones=zones, station_org=station_org,
                   squadron_of_station=squadron_of_station, zone_of_station=zone_of_station,
                   incidents=incidents, legs=legs, as_of=as_of)
    timings["history_s"] = time.perf_counter() - t
    return Demo(params=params, world=world, net=net, history=hist, speeds=dict(settings.road_speed_kmh),
                timings=timings)


def is_loaded(conn: psycopg.Connection) -> bool:
    """Return True when the demo (at least the county outline) is in the database."""
    return conn.execute("SELECT count(*) AS n FROM county").fetchone()["n"] > 0


def load_demo(conn: psycopg.Connection, seed: int | None = None, params_path=None, settings=None,
              log: Callable[[str], None] = print, end: datetime | None = None) -> dict:
    """Replace the demo in ``conn`` (inside the caller's transaction) and return a summary.

    Parameters
    ----------
    conn : psycopg.Connection
        A connection with a dict row factory; the caller commits.
    seed : int, optional
        Generator seed (default: the parameter file's).
    params_path : path, optional
        Parameter file (default ``geodata/demo_params.toml``).
    settings : gisapp.config.Settings, optional
        Road speeds by class and the metric CRS.
    log : callable
        Progress messages.
    end : datetime, optional
        End of the generated history (default: the parameter file's ``history.end``).

    Returns
    -------
    dict
        Counts, the SLA rates of the generated history, timings.
    """
    t0 = time.perf_counter()
    summary = load_reference(conn)
    log(f"loaded the real county outline and {summary['towns']} towns")
    params = load_params(params_path, seed)
    demo = generate(params, settings, end)
    tm = demo.timings
    log(f"generated the world in {sum(tm.values()):.1f} s (world {tm['world_s']:.1f}, roads {tm['roads_s']:.1f}, "
        f"history {tm['history_s']:.1f})")
    t = time.perf_counter()
    clear_generated(conn)
    counts = write_demo(conn, demo)
    demo.timings["write_s"] = time.perf_counter() - t
    log(f"wrote the demo in {demo.timings['write_s']:.1f} s")
    t = time.perf_counter()
    summary.update(_patrols(conn, settings, params, demo.history.as_of))
    log(f"generated {summary['patrol_reports']} patrol position reports, {summary['patrolled_edges']} road "
        f"segments patrolled, in {time.perf_counter() - t:.1f} s")
    # Planner statistics for the freshly written tables: without them the first queries on a
    # new demo (SLA metrics, coverage joins) pick nested loops and take a minute.
    conn.execute("ANALYZE")
    rates = sla_rates(demo)
    summary.update(counts)
    summary["sla_rates"] = rates
    summary["seed"] = params["seed"]
    summary["history_end"] = demo.history.as_of.isoformat()
    summary["expressway_km_in_county"] = round(demo.net.expressway_km_in_county, 2)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    return summary


def foreign_keys(conn: psycopg.Connection) -> list[dict]:
    """Every foreign key: name, child and parent tables, child columns and its definition."""
    return conn.execute(
        "SELECT c.conname AS name, c.conrelid::regclass::text AS child, c.confrelid::regclass::text AS parent, "
        "pg_get_constraintdef(c.oid) AS def, ARRAY(SELECT a.attname::text FROM unnest(c.conkey) k "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k) AS cols "
        "FROM pg_constraint c WHERE c.contype = 'f' ORDER BY c.conrelid::regclass::text, c.conname").fetchall()


@contextmanager
def without_foreign_keys(conn: psycopg.Connection, fks: list[dict]):
    """Drop foreign keys for the block and add them back after it (one validating scan each).

    Inside one transaction this is atomic, and much faster than a trigger per row for bulk
    loads and truncation; the definitions come from the catalogue, so other areas' keys
    come back as they were.
    """
    for fk in fks:
        conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
            sql.Identifier(fk["child"]), sql.Identifier(fk["name"])))
    yield
    for fk in fks:
        conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(
            sql.Identifier(fk["child"]), sql.Identifier(fk["name"])) + sql.SQL(fk["def"]))  # catalogue text


def _patrols(conn: psycopg.Connection, settings, params: dict, as_of: datetime) -> dict:
    """Patrol-car tracks of the last days and the patrol coverage derived from them."""
    from routing import patrol

    from .patrols import generate_patrols

    if settings is None:
        settings = Settings.from_env()
    n = generate_patrols(conn, settings, params, as_of, np.random.default_rng(int(params["seed"]) + 7))
    patrol.ingest(conn, settings, settle_s=0.0)
    edges = conn.execute("SELECT count(DISTINCT edge_id) AS n FROM patrol_edge_day").fetchone()["n"]
    return {"patrol_reports": n, "patrolled_edges": edges}


def clear_generated(conn: psycopg.Connection) -> None:
    """Remove the previous demo's generated rows.

    A generated table is truncated when every table referring to it is generated too, or
    refers to it only through columns that are all NULL (such keys are dropped for the
    truncation and added back); the others are emptied with DELETE.
    """
    conn.execute("UPDATE unit SET current_leg_id = NULL WHERE current_leg_id IS NOT NULL")
    fks = foreign_keys(conn)
    gen = set(GENERATED_TABLES)
    suspend = []
    for fk in fks:
        if fk["parent"] in gen and fk["child"] not in gen:
            cond = sql.SQL(" OR ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in fk["cols"])
            used = conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE ").format(sql.Identifier(fk["child"]))
                                + cond + sql.SQL(") AS x")).fetchone()["x"]
            if not used:
                suspend.append(fk)
    blocked = {(fk["child"], fk["parent"]) for fk in fks if fk not in suspend}
    trunc = set(GENERATED_TABLES)
    changed = True
    while changed:
        changed = False
        for child, parent in blocked:
            if parent in trunc and child not in trunc and child != parent:
                trunc.discard(parent)
                changed = True
    ordered = [t for t in GENERATED_TABLES if t in trunc]
    needed = [fk for fk in suspend if fk["parent"] in trunc]
    with without_foreign_keys(conn, needed):
        conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY").format(sql.SQL(", ").join(map(sql.Identifier, ordered))))
    for t in GENERATED_TABLES:
        if t not in trunc and t != "incident_event":  # the event log goes with its incidents (cascade)
            conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(t)))


def ewkb_list(geoms) -> list[str]:
    g = shapely.set_srid(np.asarray(geoms, dtype=object), 4326)
    return list(shapely.to_wkb(g, hex=True, include_srid=True))


def _ts(epoch: np.ndarray) -> list[str | None]:
    arr = np.asarray(epoch, dtype=np.int64)
    s = np.datetime_as_string(arr.astype("datetime64[s]"), unit="s")
    return [None if e < 0 else v + "+00" for e, v in zip(arr.tolist(), s.tolist(), strict=True)]


def copy_rows(conn: psycopg.Connection, table: str, cols: list[str], rows) -> int:
    n = 0
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table),
                                                     sql.SQL(", ").join(map(sql.Identifier, cols)))
    with conn.cursor() as cur, cur.copy(stmt) as cp:
        for row in rows:
            cp.write_row(row)
            n += 1
    return n


def set_sequence(conn: psycopg.Connection, table: str) -> None:
    conn.execute(sql.SQL("SELECT setval(pg_get_serial_sequence(%s, 'id'), "
                         "GREATEST((SELECT max(id) FROM {}), 1))").format(sql.Identifier(table)), [table])


def write_demo(conn: psycopg.Connection, demo: Demo) -> dict:
    """Write the generated layers (the tables must be clear); return counts."""
    w, net, h, p = demo.world, demo.net, demo.history, demo.params
    proj = w.proj
    counts: dict[str, Any] = {}
    valid_from = history_span(p["history"], h.as_of)[0] - timedelta(days=1)
    valid_from = valid_from.replace(hour=0)

    # organisations: upsert by code so users linked to a station or unit keep their link; their
    # participation versions are the programme's (written below, so the sync trigger is off)
    sync = conn.execute("SELECT current_setting('gisapp.participation_sync', true) AS v").fetchone()["v"]
    conn.execute("SELECT set_config('gisapp.participation_sync', 'off', true)")
    org_ids: list[int] = []
    for o in h.orgs:
        lon, lat = proj.lonlat(o.x, o.y)
        row = conn.execute(
            "INSERT INTO organisation (code, name, name_en, kind, merged, takes_part_in_traffic, town_code, phone, hq,"
            " synthetic) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326), true) "
            "ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, name_en = EXCLUDED.name_en, kind = EXCLUDED.kind,"
            " merged = EXCLUDED.merged, takes_part_in_traffic = EXCLUDED.takes_part_in_traffic,"
            " town_code = EXCLUDED.town_code, phone = EXCLUDED.phone, hq = EXCLUDED.hq, synthetic = true,"
            " parent_id = NULL, updated_at = now() RETURNING id",
            [o.code, o.name, o.name_en, o.kind, o.merged, o.traffic, o.town_code, o.phone, float(lon), float(lat)],
        ).fetchone()
        org_ids.append(row["id"])
    code_id = {o.code: org_ids[i] for i, o in enumerate(h.orgs)}
    for i, o in enumerate(h.orgs):
        if o.parent:
            conn.execute("UPDATE organisation SET parent_id = %s WHERE id = %s", [code_id[o.parent], org_ids[i]])
    counts["participation_versions"] = _write_participation(conn, demo, org_ids)
    conn.execute("SELECT set_config('gisapp.participation_sync', %s, true)", [sync or ""])

    # units: upsert by code, remove generated units the new demo does not have
    unit_ids: list[int] = []
    for u in h.units:
        row = conn.execute(
            "INSERT INTO unit (code, name, organisation_id, kind, capabilities, status, shift, crew, last_position,"
            " last_position_at, current_leg_id, synthetic) VALUES (%s, %s, %s, %s, %s, %s, %s, %s,"
            " ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s, NULL, true) ON CONFLICT (code) DO UPDATE SET"
            " name = EXCLUDED.name, organisation_id = EXCLUDED.organisation_id, kind = EXCLUDED.kind,"
            " capabilities = EXCLUDED.capabilities, status = EXCLUDED.status, shift = EXCLUDED.shift,"
            " crew = EXCLUDED.crew, last_position = EXCLUDED.last_position,"
            " last_position_at = EXCLUDED.last_position_at, current_leg_id = NULL, synthetic = true,"
            " updated_at = now() RETURNING id",
            [u["code"], u["name"], org_ids[u["org"]], u["kind"], u["capabilities"], u["status"], u["shift"],
             u["crew"], u["lon"], u["lat"], u["position_at"]],
        ).fetchone()
        unit_ids.append(row["id"])
    conn.execute("DELETE FROM unit WHERE synthetic AND NOT (code = ANY(%s))", [[u["code"] for u in h.units]])
    conn.execute("DELETE FROM organisation o WHERE synthetic AND NOT (code = ANY(%s)) AND NOT EXISTS "
                 "(SELECT 1 FROM unit u WHERE u.organisation_id = o.id)", [[o.code for o in h.orgs]])

    counts.update({"organisations": len(h.orgs), "units": len(h.units)})

    # jurisdictions: one station jurisdiction per station, one traffic jurisdiction per squadron
    jur_rows, jur_of_station = [], {}
    st_geoms = w.jurisdictions
    for i, s in enumerate(w.stations):
        jur_of_station[i] = len(jur_rows) + 1
        jur_rows.append((len(jur_rows) + 1, org_ids[h.station_org[i]], "station", f"{s.name}辖区", st_geoms[i]))
    jur_of_org = {int(h.station_org[i]): j for i, j in jur_of_station.items()}
    for oi, o in enumerate(h.orgs):
        if o.kind == "squadron":
            g = as_multipolygon(shapely.union_all([st_geoms[i] for i in o.stations]))
            jur_of_org[oi] = len(jur_rows) + 1
            jur_rows.append((len(jur_rows) + 1, org_ids[oi], "traffic", f"{o.name}辖区", g))
    ewkb = ewkb_list([r[4] for r in jur_rows])
    counts["jurisdictions"] = copy_rows(conn, "jurisdiction",
                                    ["id", "organisation_id", "kind", "version", "name", "geom", "valid_from",
                                     "author", "reason"],
                                    ((r[0], r[1], r[2], 1, r[3], g, valid_from, AUTHOR, "demo world (synthetic)")
                                     for r, g in zip(jur_rows, ewkb, strict=True)))
    set_sequence(conn, "jurisdiction")

    # joint war zones and their members
    zone_geoms = [as_multipolygon(shapely.union_all([st_geoms[i] for i in z["stations"]])) for z in h.joint_zones]
    copy_rows(conn, "joint_zone", ["id", "code", "name", "name_en", "centre_org_id", "version", "geom", "valid_from",
                               "author", "reason"],
          ((k + 1, z["code"], z["name"], z["name_en"], org_ids[z["centre"]], 1, g, valid_from, AUTHOR,
            "demo world (synthetic)") for k, (z, g) in enumerate(zip(h.joint_zones, ewkb_list(zone_geoms), strict=True))))
    set_sequence(conn, "joint_zone")
    copy_rows(conn, "joint_zone_member", ["joint_zone_id", "organisation_id", "role"],
          ((k + 1, org_ids[m], "centre" if m == z["centre"] else "member")
           for k, z in enumerate(h.joint_zones) for m in z["members"]))
    counts["joint_zones"] = len(h.joint_zones)

    # grids and their staff
    rng = np.random.default_rng(int(p["seed"]) + 1)
    gp = p["grids"]
    ng = len(w.grid_geoms)
    grid_codes = []
    seq: dict[int, int] = {}
    for g in range(ng):
        si = int(w.grid_station[g])
        seq[si] = seq.get(si, 0) + 1
        grid_codes.append(f"G-{w.stations[si].key}-{seq[si]:02d}")
    copy_rows(conn, "grid", ["id", "code", "name", "organisation_id", "jurisdiction_id", "geom", "synthetic"],
          ((g + 1, grid_codes[g], w.grid_names[g], org_ids[h.station_org[w.grid_station[g]]],
            jur_of_station[int(w.grid_station[g])], e, True) for g, e in enumerate(ewkb_list(w.grid_geoms))))
    set_sequence(conn, "grid")
    staff = []
    n_workers = rng.integers(gp["grid_workers_min"], gp["grid_workers_max"] + 1, ng)
    names = person_names(rng, int(ng * 2 + n_workers.sum()))
    phones = masked_phones(rng, len(names))
    k = 0
    for g in range(ng):
        si = int(w.grid_station[g])
        st_id = org_ids[h.station_org[si]]
        sq_id = org_ids[h.squadron_of_station[si]]
        for role, org in [("traffic_officer", sq_id), ("station_officer", st_id)] + \
                [("grid_worker", None)] * int(n_workers[g]):
            staff.append((g + 1, names[k], role, org, phones[k]))
            k += 1
    counts["grid_staff"] = copy_rows(conn, "grid_staff", ["grid_id", "person_name", "role", "organisation_id",
                                                      "phone_masked"], staff)
    counts["grids"] = ng

    # villages
    vlon, vlat = proj.lonlat(w.village_xy[:, 0], w.village_xy[:, 1])
    vcodes, vseq = [], {}
    for t in w.village_town:
        vseq[t] = vseq.get(t, 0) + 1
        vcodes.append(f"{t}{vseq[t]:03d}")
    counts["villages"] = copy_rows(conn, "village", ["id", "code", "name", "town_code", "population", "geom",
                                                 "synthetic"],
                               ((i + 1, vcodes[i], w.village_names[i], w.village_town[i], int(w.village_pop[i]), g,
                                 True) for i, g in enumerate(ewkb_list(shapely.points(vlon, vlat)))))
    set_sequence(conn, "village")

    # road network
    nlon, nlat = proj.lonlat(net.node_xy[:, 0], net.node_xy[:, 1])
    counts["road_nodes"] = copy_rows(conn, "road_node", ["id", "geom"],
                                 ((i + 1, g) for i, g in enumerate(ewkb_list(shapely.points(nlon, nlat)))))
    set_sequence(conn, "road_node")
    lengths = net.length_m
    egeoms = proj.to_lonlat(net.geoms)
    counts["road_edges"] = copy_rows(
        conn, "road_edge",
        ["id", "source", "target", "road_class", "name", "speed_kmh", "oneway", "bridge", "length_m", "geom",
         "synthetic"],
        ((i + 1, int(net.src[i]) + 1, int(net.dst[i]) + 1, net.road_class[i], net.name[i],
          float(demo.speeds[net.road_class[i]]), bool(net.oneway[i]), bool(net.bridge[i]),
          round(float(lengths[i]), 3), g, True) for i, g in enumerate(ewkb_list(egeoms))))
    set_sequence(conn, "road_edge")
    counts["directed_edges"] = net.directed_count()

    # service points (一窗通办) at the stations
    sp_rows = []
    for i, s in enumerate(w.stations):
        lon, lat = proj.lonlat(s.hq_x + 12.0, s.hq_y + 8.0)
        sp_rows.append((i + 1, f"SP-{s.key}", f"{s.short}派出所一窗通办服务点", org_ids[h.station_org[i]],
                        SERVICES, "周一至周五 08:30-12:00, 13:30-17:30；周六 09:00-12:00",
                        shapely.Point(float(lon), float(lat))))
    counts["service_points"] = copy_rows(conn, "service_point", ["id", "code", "name", "organisation_id", "services",
                                                             "opening_hours", "geom", "synthetic"],
                                     ((*r[:6], g, True) for r, g in zip(sp_rows, ewkb_list([r[6] for r in sp_rows]),
                                                                        strict=True)))
    set_sequence(conn, "service_point")

    # incidents and dispatch legs
    # incidents and dispatch legs: bulk-loaded with their foreign keys checked once at the end
    bulk = [fk for fk in foreign_keys(conn) if fk["child"] in ("incident", "dispatch_leg")]
    with without_foreign_keys(conn, bulk):
        _write_history(conn, demo, org_ids, unit_ids, jur_of_org, counts)
    _write_meta(conn, demo)
    return counts


def _write_participation(conn: psycopg.Connection, demo: Demo, org_ids: list[int]) -> int:
    """The programme's participation versions of the demo's stations and squadrons (replacing theirs)."""
    versions = participation_versions(demo.params, demo.history.orgs, None)
    ids = sorted({org_ids[v["org"]] for v in versions})
    conn.execute("DELETE FROM organisation_participation WHERE organisation_id = ANY(%s)", [ids])
    return copy_rows(conn, "organisation_participation",
                 ["organisation_id", "takes_part_in_traffic", "merged", "valid_from", "valid_to", "note",
                  "created_by"],
                 ((org_ids[v["org"]], v["takes_part_in_traffic"], v["merged"],
                   v["valid_from"] or "1900-01-01 00:00+00", v["valid_to"], v["note"], AUTHOR) for v in versions))


def _write_history(conn: psycopg.Connection, demo: Demo, org_ids: list[int], unit_ids: list[int],
                   jur_of_org: dict[int, int], counts: dict) -> None:
    h = demo.history
    inc, legs = h.incidents, h.legs
    n = len(inc["code"])
    cols = {r["column_name"] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'incident'")}
    # columns added by the live-dispatch migration, filled when they exist
    extra = [c for c in ("station_jurisdiction_id", "traffic_jurisdiction_id", "rule_version", "outcome") if c in cols]
    leg_extra = ["outcome"] if "outcome" in extra else []  # outcomes (issue 13) when the columns exist
    rep = _ts(inc["reported"])
    closed = _ts(inc["closed"])
    zone_ids = [int(z) + 1 for z in inc["zone"]]
    counts["incidents"] = copy_rows(
        conn, "incident",
        ["id", "code", "channel", "type", "severity", "geom", "address", "caller_masked", "description",
         "reported_at", "status", "station_org_id", "traffic_org_id", "grid_id", "joint_zone_id", "outside_county",
         "closed_at", "synthetic", "created_by", "created_at", *extra],
        ((i + 1, inc["code"][i], inc["channel"][i], inc["type"][i], inc["severity"][i], g, inc["address"][i],
          inc["caller"][i], inc["description"][i], rep[i], inc["status"][i], org_ids[inc["station_org"][i]],
          org_ids[inc["traffic_org"][i]], int(inc["grid"][i]) + 1, zone_ids[i], False, closed[i], True, AUTHOR,
          rep[i], *[{"station_jurisdiction_id": jur_of_org.get(int(inc["station_org"][i])),
                     "traffic_jurisdiction_id": jur_of_org.get(int(inc["traffic_org"][i])),
                     "rule_version": RULE_VERSION, "outcome": inc["outcome"][i]}[c] for c in extra])
         for i, g in enumerate(ewkb_list(shapely.points(inc["lon"], inc["lat"])))))
    set_sequence(conn, "incident")
    conn.execute("SELECT setval('incident_code_seq', %s)", [n])
    stamps = {k: _ts(legs[k]) for k in ("dispatched", "signed_off", "en_route", "arrived", "first_feedback",
                                       "closed")}
    counts["dispatch_legs"] = copy_rows(
        conn, "dispatch_leg",
        ["id", "incident_id", "organisation_id", "unit_id", "role", "status", "dispatched_at", "signed_off_at",
         "en_route_at", "arrived_at", "first_feedback_at", "closed_at", "fallback_from_org_id", "rule_version",
         *leg_extra],
        ((i + 1, int(legs["incident"][i]) + 1, org_ids[legs["org"][i]], unit_ids[legs["unit"][i]], legs["role"][i],
          legs["status"][i], stamps["dispatched"][i], stamps["signed_off"][i], stamps["en_route"][i],
          stamps["arrived"][i], stamps["first_feedback"][i], stamps["closed"][i],
          org_ids[legs["fallback"][i]] if legs["fallback"][i] >= 0 else None, RULE_VERSION,
          *([legs["outcome"][i]] if leg_extra else []))
         for i in range(len(legs["incident"]))))
    set_sequence(conn, "dispatch_leg")
    ch = inc["channel"]
    counts["incidents_110"] = int((ch == "110").sum())
    counts["incidents_122"] = int((ch == "122").sum())
    counts["accidents_122"] = int((inc["type"] == "traffic_accident").sum())


def _write_meta(conn: psycopg.Connection, demo: Demo) -> None:
    p = demo.params
    base = {"generator": "geodata.demo", "generator_version": p.get("generator_version"), "seed": p["seed"],
            "history_end": demo.history.as_of.isoformat(), "metric_srid": demo.world.proj.metric_srid}
    layers = {
        "organisations": "stations, squadrons, accident section, command centre; names after the real towns, "
                         "sites and structure generated",
        "jurisdictions": "station and traffic jurisdictions: unions of Voronoi cells of generated villages, "
                         "clipped to the real county outline",
        "joint_zones": "five joint war zones (魏桥, 青阳, 长山, 好生, 韩店) as in the brief; members generated",
        "grids": "patrol grids: clusters of village cells inside each station jurisdiction, with generated staff",
        "villages": "858 generated villages (the real count); names, places and populations invented",
        "road_nodes": "generated road network junctions",
        "road_edges": "generated road network (G20 corridor, national/provincial/county/township roads, "
                      "village streets); not a survey of real roads",
        "units": "generated units with capabilities and shifts",
        "incidents": "generated 110 and 122 incidents with daily, weekly and seasonal rhythm: the demo year, and "
                     "before it, at a lower rate, back to before the programme's pilot (July 2021)",
        "dispatch_legs": "generated dispatch legs with lifecycle timestamps matching the brief's SLA rates",
        "service_points": "one-window service points (一窗通办) at the generated stations",
    }
    for layer, source in layers.items():
        params = dict(base)
        if layer in ("road_edges", "road_nodes"):
            params["road_speed_kmh"] = demo.speeds
            params["expressway_km_in_county"] = round(demo.net.expressway_km_in_county, 3)
        params["parameters"] = p
        conn.execute(
            "INSERT INTO dataset_meta (layer, source, synthetic, licence, attribution, params) "
            "VALUES (%s, %s, true, %s, %s, %s) ON CONFLICT (layer) DO UPDATE SET source = EXCLUDED.source, "
            "synthetic = true, licence = EXCLUDED.licence, attribution = EXCLUDED.attribution, "
            "params = EXCLUDED.params, loaded_at = now()",
            [layer, "synthetic: " + source, "generated by this project (MIT)", SYNTHETIC_ATTRIBUTION,
             json.dumps(params, ensure_ascii=False, default=str)],
        )


def sla_rates(demo: Demo) -> dict[str, float]:
    """Sign-off, first-feedback and closure rates of the generated legs (per leg, from dispatch).

    Only legs dispatched at least 22 h before the end of the history count (the others'
    clocks are still running).
    """
    legs = demo.history.legs
    end = int(demo.history.as_of.timestamp())
    done = legs["dispatched"] <= end - 22 * 3600
    d = legs["dispatched"][done]
    out = {}
    for key, stamp, lim in (("sign_off_90s", "signed_off", 90), ("first_feedback_5h", "first_feedback", 5 * 3600),
                            ("closed_22h", "closed", 22 * 3600)):
        s = legs[stamp][done]
        out[key] = round(float(((s >= 0) & (s - d <= lim)).mean()), 4)
    return out


def content_hash(conn: psycopg.Connection) -> str:
    """Hash the generated content in the database (codes instead of serial ids of organisations)."""
    h = hashlib.sha256()
    queries = [
        "SELECT code, name, kind, merged, takes_part_in_traffic, town_code, ST_AsEWKB(hq) AS g FROM organisation "
        "ORDER BY code",
        "SELECT o.code, j.kind, j.version, j.valid_from, ST_AsEWKB(j.geom) AS g FROM jurisdiction j "
        "JOIN organisation o ON o.id = j.organisation_id ORDER BY j.id",
        "SELECT z.code, o.code AS centre, ST_AsEWKB(z.geom) AS g FROM joint_zone z JOIN organisation o "
        "ON o.id = z.centre_org_id ORDER BY z.code",
        "SELECT code, name, ST_AsEWKB(geom) AS g FROM grid ORDER BY code",
        "SELECT g.code, s.person_name, s.role, s.phone_masked FROM grid_staff s JOIN grid g ON g.id = s.grid_id "
        "ORDER BY s.id",
        "SELECT code, name, town_code, population, ST_AsEWKB(geom) AS g FROM village ORDER BY code",
        "SELECT id, ST_AsEWKB(geom) AS g FROM road_node ORDER BY id",
        "SELECT id, source, target, road_class, name, speed_kmh, oneway, bridge, length_m, ST_AsEWKB(geom) AS g "
        "FROM road_edge ORDER BY id",
        "SELECT u.code, u.name, o.code AS org, u.kind, u.capabilities, u.status, u.shift, u.crew, "
        "ST_AsEWKB(u.last_position) AS g FROM unit u JOIN organisation o ON o.id = u.organisation_id ORDER BY u.code",
        "SELECT i.code, i.channel, i.type, i.severity, ST_AsEWKB(i.geom) AS g, i.address, i.caller_masked, "
        "i.description, i.reported_at, i.status, i.closed_at, s.code AS st, t.code AS tr, g.code AS grid "
        "FROM incident i "
        "JOIN organisation s ON s.id = i.station_org_id JOIN organisation t ON t.id = i.traffic_org_id "
        "JOIN grid g ON g.id = i.grid_id ORDER BY i.code",
        "SELECT i.code, o.code AS org, l.role, l.status, l.dispatched_at, l.signed_off_at, l.en_route_at, "
        "l.arrived_at, l.first_feedback_at, l.closed_at, u.code AS unit FROM dispatch_leg l "
        "JOIN incident i ON i.id = l.incident_id JOIN organisation o ON o.id = l.organisation_id "
        "LEFT JOIN unit u ON u.id = l.unit_id ORDER BY l.id",
        "SELECT code, name, services, ST_AsEWKB(geom) AS g FROM service_point ORDER BY code",
    ]
    with conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
        for q in queries:
            cur.execute(q)
            for row in cur:
                h.update(repr(row).encode())
    return h.hexdigest()
