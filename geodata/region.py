"""Regions of several counties on their real outlines (issue 16): Binzhou (7) and Shandong (136).

Each county of ``data/shandong_counties.geojson`` gets, on its real outline, a road mesh (a
jittered lattice clipped to the outline; county and provincial roads along every n-th line,
urban streets around the county seat), stations, squadrons, joint zones, grids and units
scaled from Zouping by area. Counties are joined by national roads across every shared border
and by expressways between county seats, so the region's network is one strongly connected
graph. Counties are generated in parallel processes; everything is written with COPY in the
caller's transaction (``load_region``). No incident history (see geodata/README.md).

The Zouping demo (``geodata.demo``) is untouched: without a region, ``gisapp load-demo``
loads exactly the county demo.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import shapely
from psycopg import sql
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree
from scipy.spatial import cKDTree
from shapely.geometry import shape

from gisapp.core.config import Settings
from gisapp.core.errors import ValidationError

from .world import Proj, as_multipolygon

DATA = Path(__file__).parent / "data"
COUNTIES_PATH = DATA / "shandong_counties.geojson"
PARAMS_PATH = Path(__file__).parent / "region_params.toml"
AUTHOR = "region-generator"
# region name -> the city whose counties it holds (None: the whole province)
REGIONS: dict[str, str | None] = {"binzhou": "滨州市", "shandong": None}
SYNTHETIC_ATTRIBUTION = "合成示意数据，非真实 / synthetic demo data, not real"


def load_region_params(path: str | Path | None = None, **overrides) -> dict:
    """Read ``region_params.toml``; ``overrides`` as ``section__key=value`` (e.g. ``roads__lattice_m=2000``)."""
    with open(path or PARAMS_PATH, "rb") as fh:
        params = tomllib.load(fh)
    for k, v in overrides.items():
        if "__" in k:
            sec, key = k.split("__", 1)
            params.setdefault(sec, {})[key] = v
        else:
            params[k] = v
    return params


@dataclass
class CountySpec:
    """A county of the file: codes, names, the real outline (EPSG:4326) and its label point."""

    adcode: str
    name: str
    city: str
    outline: Any
    label: tuple[float, float]


def region_counties(region: str, path: str | Path | None = None) -> list[CountySpec]:
    """The counties of ``region`` with their outlines, checked (keyed 400 on a bad name or outline)."""
    if region not in REGIONS:
        raise ValidationError(f"unknown region {region!r}; valid regions: {', '.join(sorted(REGIONS))}",
                              field="region", key="region.unknown",
                              params={"region": region, "valid": ", ".join(sorted(REGIONS))})
    fc = json.loads(Path(path or COUNTIES_PATH).read_text(encoding="utf-8"))
    city = REGIONS[region]
    out = []
    for f in fc["features"]:
        p = f["properties"]
        if city is not None and p.get("city_name") != city:
            continue
        name = str(p.get("district_name") or p.get("district_adcode"))
        try:
            g = shape(f["geometry"]) if f.get("geometry") else None
        except Exception:  # noqa: BLE001 - any unreadable geometry is the same bad outline
            g = None
        if g is None or g.is_empty or g.geom_type not in ("Polygon", "MultiPolygon") or not g.is_valid:
            why = "missing or empty" if g is None or g.is_empty else (
                f"a {g.geom_type}, not a polygon" if g.geom_type not in ("Polygon", "MultiPolygon")
                else shapely.is_valid_reason(g))
            raise ValidationError(f"the outline of county {name} ({p.get('district_adcode')}) is not a valid "
                                  f"polygon: {why}", field="outline", key="region.bad_outline",
                                  params={"county": name, "reason": why})
        out.append(CountySpec(adcode=str(p["district_adcode"]), name=name, city=str(p.get("city_name", "")),
                              outline=as_multipolygon(g), label=(float(p["lon"]), float(p["lat"]))))
    return out


@dataclass
class CountyWorld:
    """One county's generated layers; node indices are local to the county."""

    spec: CountySpec
    node_xy: np.ndarray
    edge_u: np.ndarray
    edge_v: np.ndarray
    edge_class: np.ndarray
    seat_node: int
    orgs: list[dict] = field(default_factory=list)        # code, name, name_en, kind, x, y, parent
    station_geoms: list = field(default_factory=list)     # MultiPolygon 4326 per station (orgs order)
    squadrons: list[list[int]] = field(default_factory=list)  # station indices per squadron
    zones: list[dict] = field(default_factory=list)        # centre station index, station indices
    grid_geoms: list = field(default_factory=list)
    grid_station: list[int] = field(default_factory=list)
    units: list[dict] = field(default_factory=list)
    station_org: list[int] = field(default_factory=list)   # org index of each station
    squadron_org: list[int] = field(default_factory=list)


def _kmeans(pts: np.ndarray, k: int, rng, fixed: np.ndarray | None = None, iters: int = 10) -> np.ndarray:
    """k centres over ``pts`` (first ones fixed when given), a few Lloyd steps."""
    k = min(k, len(pts))
    nf = 0 if fixed is None else len(fixed)
    init = pts[rng.choice(len(pts), k - nf, replace=False)] if k > nf else np.empty((0, 2))
    c = np.vstack([fixed, init]) if nf else init
    for _ in range(iters):
        lab = cKDTree(c).query(pts)[1]
        for j in range(nf, len(c)):
            m = lab == j
            if m.any():
                c[j] = pts[m].mean(axis=0)
    return c


def _cells(points_xy: np.ndarray, clip_ll, proj: Proj) -> list:
    """Voronoi cells of ``points_xy`` (metric) in EPSG:4326, clipped to ``clip_ll``; one per point, in order."""
    if len(points_xy) == 1:
        return [as_multipolygon(clip_ll)]
    mp = shapely.multipoints(points_xy)
    x0, y0, x1, y1 = shapely.bounds(proj.to_metric(clip_ll))
    env = shapely.box(x0 - 5e4, y0 - 5e4, x1 + 5e4, y1 + 5e4)
    vor = shapely.get_parts(shapely.voronoi_polygons(mp, extend_to=env, ordered=True))
    vor = shapely.segmentize(vor, 2000.0)
    cells = shapely.intersection(proj.to_lonlat(vor), clip_ll)
    return [as_multipolygon(shapely.make_valid(c)) for c in cells]


def build_county(spec: CountySpec, params: dict, metric_srid: int, seed: int) -> CountyWorld:
    """Generate one county (deterministic for the seed and the county code)."""
    rp, cp, up = params["roads"], params["county"], params["units"]
    proj = Proj(metric_srid)
    rng = np.random.default_rng([seed, int(spec.adcode)])
    outline = proj.to_metric(spec.outline)
    shapely.prepare(outline)
    s = float(rp["lattice_m"])
    x0, y0, x1, y1 = outline.bounds
    ix = np.arange(np.floor(x0 / s), np.ceil(x1 / s) + 1)
    iy = np.arange(np.floor(y0 / s), np.ceil(y1 / s) + 1)
    gx, gy = np.meshgrid(ix, iy)
    jit = rng.uniform(-rp["jitter"], rp["jitter"], (2, *gx.shape)) * s
    px, py = gx * s + jit[0], gy * s + jit[1]
    inside = shapely.contains_xy(outline, px, py)
    idx = np.full(gx.shape, -1, dtype=np.int64)
    idx[inside] = np.arange(int(inside.sum()))
    xy = np.column_stack([px[inside], py[inside]])
    us, vs, cls = [], [], []
    for a, b, line in ((idx[:, :-1], idx[:, 1:], gy[:, :-1]), (idx[:-1, :], idx[1:, :], gx[:-1, :])):
        ok = (a >= 0) & (b >= 0)
        u, v, ln = a[ok], b[ok], line[ok].astype(np.int64)
        mid = (xy[u] + xy[v]) / 2
        keep = shapely.contains_xy(outline, mid[:, 0], mid[:, 1])
        main = ln % int(rp["county_every"]) == 0
        keep &= main | (rng.random(len(u)) >= rp["drop_share"])
        c = np.where(ln % int(rp["provincial_every"]) == 0, "provincial", np.where(main, "county", "township"))
        us.append(u[keep])
        vs.append(v[keep])
        cls.append(c[keep])
    u, v, ecls = np.concatenate(us), np.concatenate(vs), np.concatenate(cls).astype(object)
    n = len(xy)
    if n < 2 or len(u) == 0:
        raise ValidationError(f"county {spec.name} is too small for a {s:.0f} m road lattice", field="outline",
                              key="region.bad_outline", params={"county": spec.name, "reason": "too small"})
    # keep the largest connected part (so each county is connected on its own)
    _, lab = connected_components(coo_matrix((np.ones(len(u)), (u, v)), shape=(n, n)), directed=False)
    big = np.bincount(lab).argmax()
    keep_n = lab == big
    remap = np.full(n, -1, dtype=np.int64)
    remap[keep_n] = np.arange(int(keep_n.sum()))
    ke = keep_n[u]
    xy, u, v, ecls = xy[keep_n], remap[u[ke]], remap[v[ke]], ecls[ke]
    tree = cKDTree(xy)
    # the county seat (the file's label point) and urban streets around it
    sx, sy = proj.xy(*spec.label)
    seat = int(tree.query([float(sx), float(sy)])[1])
    d = np.hypot(*(((xy[u] + xy[v]) / 2) - xy[seat]).T)
    ecls[(d < rp["urban_radius_m"]) & (ecls == "township")] = "urban"

    # stations: seats on junctions well inside the outline, spread by k-means, the first at the county seat
    ratio = shapely.area(outline) / 1e6 / params["reference_area_km2"]
    inner = outline.buffer(-cp["seat_inset_m"])
    ok = shapely.contains_xy(inner, xy[:, 0], xy[:, 1]) if not inner.is_empty else np.ones(len(xy), bool)
    cand = xy[ok] if ok.sum() >= 2 else xy
    cand_idx = np.flatnonzero(ok) if ok.sum() >= 2 else np.arange(len(xy))
    n_st = max(int(cp["stations_min"]), round(cp["stations"] * ratio))
    n_st = min(n_st, len(cand))
    sample = cand[rng.choice(len(cand), min(len(cand), 4000), replace=False)]
    centres = _kmeans(sample, n_st, rng, fixed=xy[[seat]])
    st_node = cand_idx[cKDTree(cand).query(centres)[1]]
    st_node[0] = seat
    st_node = list(dict.fromkeys(int(x) for x in st_node))  # distinct junctions, seat first
    n_st = len(st_node)
    st_xy = xy[st_node]
    cw = CountyWorld(spec=spec, node_xy=xy, edge_u=u, edge_v=v, edge_class=ecls, seat_node=seat)
    cw.station_geoms = _cells(st_xy, spec.outline, proj)
    ad = spec.adcode
    for k in range(n_st):
        name = f"{spec.name}城关派出所" if k == 0 else f"{spec.name}第{k + 1}派出所"
        cw.station_org.append(len(cw.orgs))
        cw.orgs.append({"code": f"R{ad}-PS{k + 1:02d}", "name": name, "name_en": f"{ad} police station {k + 1}",
                        "kind": "station", "x": st_xy[k, 0], "y": st_xy[k, 1], "traffic": k % 3 != 2})
    # squadrons and joint zones: clusters of stations
    n_sq = max(1, min(n_st, round(cp["squadrons"] * ratio)))
    lab = cKDTree(_kmeans(st_xy.copy(), n_sq, rng)).query(st_xy)[1]
    cw.squadrons = [list(map(int, np.flatnonzero(lab == j))) for j in range(n_sq) if (lab == j).any()]
    for j, members in enumerate(cw.squadrons):
        hq = members[int(np.argmin(np.hypot(*(st_xy[members] - st_xy[members].mean(0)).T)))]
        cw.squadron_org.append(len(cw.orgs))
        cw.orgs.append({"code": f"R{ad}-SQ{j + 1:02d}", "name": f"{spec.name}交警{j + 1}中队",
                        "name_en": f"{ad} traffic squadron {j + 1}", "kind": "squadron",
                        "x": st_xy[hq, 0] + 15.0, "y": st_xy[hq, 1], "traffic": True})
    sq_of_station = {s_: j for j, m in enumerate(cw.squadrons) for s_ in m}
    n_jz = max(1, min(n_st, round(cp["joint_zones"] * ratio)))
    lab = cKDTree(_kmeans(st_xy.copy(), n_jz, rng)).query(st_xy)[1]
    for j in range(n_jz):
        members = list(map(int, np.flatnonzero(lab == j)))
        if members:
            centre = members[int(np.argmin(np.hypot(*(st_xy[members] - st_xy[members].mean(0)).T)))]
            cw.zones.append({"code": f"R{ad}-JZ{j + 1:02d}", "name": f"{spec.name}第{j + 1}联合战区",
                             "name_en": f"{ad} joint zone {j + 1}", "centre": centre, "stations": members,
                             "squadrons": sorted({sq_of_station[m] for m in members})})
    for kind, label, en in (("accident_section", "交警事故处理中队", "accident section"),
                            ("command_centre", "公安局指挥中心", "command centre")):
        cw.orgs.append({"code": f"R{ad}-{'AS' if kind == 'accident_section' else 'CC'}",
                        "name": f"{spec.name}{label}", "name_en": f"{ad} {en}", "kind": kind,
                        "x": st_xy[0, 0] + (30.0 if kind == "command_centre" else -30.0), "y": st_xy[0, 1] + 20.0,
                        "traffic": False})
    # grids: Voronoi cells of junctions inside each station's jurisdiction
    st_of_node = cKDTree(st_xy).query(xy)[1]
    n_grids = max(n_st, round(cp["grids"] * ratio))
    for k in range(n_st):
        pts = xy[st_of_node == k]
        g = max(1, min(len(pts), round(n_grids / n_st)))
        seeds = _kmeans(pts, g, rng, fixed=st_xy[[k]], iters=4) if len(pts) > 1 else st_xy[[k]]
        _, first = np.unique(np.round(seeds, 1), axis=0, return_index=True)
        seeds = seeds[np.sort(first)]
        for c in _cells(seeds, cw.station_geoms[k], proj):
            if not c.is_empty:
                cw.grid_geoms.append(c)
                cw.grid_station.append(k)
    # units
    shifts = ("day", "night", "all_day")
    plan = {"station": [("patrol_car", up["station_patrol_cars"], ["lights", "first_aid", "breathalyser"]),
                        ("motorcycle", up["station_motorcycles"], ["lights"])],
            "squadron": [("traffic_car", up["squadron_traffic_cars"], ["lights", "cones", "breathalyser", "camera"]),
                         ("motorcycle", up["squadron_motorcycles"], ["lights", "camera"])],
            "accident_section": [("accident_car", up["accident_section_cars"],
                                  ["accident_qualified", "camera", "cones", "first_aid", "lights"])],
            "command_centre": [("command_car", up["command_centre_cars"], ["lights", "camera"])]}
    for oi, o in enumerate(cw.orgs):
        k = 0
        for kind, count, caps in plan[o["kind"]]:
            for _ in range(int(count)):
                k += 1
                cap = list(caps) + (["accident_qualified"] if kind == "traffic_car" and k % 2 else [])
                jx, jy = rng.normal(0, up["position_jitter_m"], 2)
                cw.units.append({"code": f"{o['code']}-{k:02d}", "name": f"{o['name']}{k}号车", "org": oi,
                                 "kind": kind, "capabilities": sorted(set(cap)), "shift": shifts[k % 3],
                                 "x": o["x"] + jx, "y": o["y"] + jy})
    return cw


def _build_one(args) -> CountyWorld:
    return build_county(*args)


@dataclass
class Region:
    """A generated region: its counties and the joined road network (global node indices)."""

    name: str
    params: dict
    counties: list[CountyWorld]
    node_xy: np.ndarray
    edge_u: np.ndarray
    edge_v: np.ndarray
    edge_class: np.ndarray
    edge_geom: np.ndarray          # LineStrings, metric
    edge_name: np.ndarray
    timings: dict[str, float]
    metric_srid: int

    def directed_count(self) -> int:
        """Arcs as routing's graph counts them (all region edges are two-way)."""
        return 2 * len(self.edge_u)


def generate_region(region: str, params: dict | None = None, settings=None, processes: int | None = None,
                    counties_path=None, log: Callable[[str], None] = print) -> Region:
    """Generate ``region`` in memory (counties in ``processes`` parallel processes)."""
    settings = settings or Settings.from_env()
    params = params or load_region_params()
    specs = region_counties(region, counties_path)
    t = time.perf_counter()
    args = [(s, params, settings.metric_srid, int(params["seed"])) for s in specs]
    procs = processes if processes is not None else min(len(specs), os.cpu_count() or 1)
    if procs > 1:
        with get_context("fork").Pool(procs) as pool:
            counties = pool.map(_build_one, args, chunksize=1)
    else:
        counties = [_build_one(a) for a in args]
    timings = {"counties_s": time.perf_counter() - t}
    log(f"generated {len(counties)} counties in {timings['counties_s']:.1f} s")
    t = time.perf_counter()
    proj = Proj(settings.metric_srid)
    offs = np.cumsum([0] + [len(c.node_xy) for c in counties])
    node_xy = np.vstack([c.node_xy for c in counties])
    u = [c.edge_u + offs[i] for i, c in enumerate(counties)]
    v = [c.edge_v + offs[i] for i, c in enumerate(counties)]
    cls = [c.edge_class for c in counties]
    extra_nodes: list[np.ndarray] = []
    rp = params["roads"]
    trees = [cKDTree(c.node_xy) for c in counties]
    # national roads across every shared border: a link from the nearest junction on each side
    outlines = [proj.to_metric(c.spec.outline) for c in counties]
    str_tree = shapely.STRtree(outlines)
    pa, pb = str_tree.query(outlines, predicate="dwithin", distance=100.0)
    nat_u, nat_v, nat_mid = [], [], []
    for a, b in zip(pa.tolist(), pb.tolist(), strict=True):
        if a >= b:
            continue
        border = shapely.intersection(shapely.boundary(outlines[a]), shapely.buffer(outlines[b], 100.0))
        length = shapely.length(border)
        if length <= 0:
            continue
        k = max(1, int(length // rp["national_per_border_m"]))
        parts = shapely.get_parts(shapely.line_merge(border))
        parts = sorted(parts, key=lambda g: -g.length)
        for j in range(k):
            part = parts[j % len(parts)]
            p = shapely.line_interpolate_point(part, (j // len(parts) + 0.5) / max(1, -(-k // len(parts))),
                                               normalized=True)
            pxy = np.array([p.x, p.y])
            na = int(trees[a].query(pxy)[1]) + offs[a]
            nb = int(trees[b].query(pxy)[1]) + offs[b]
            nat_u.append(na)
            nat_v.append(nb)
            nat_mid.append(pxy)
    # expressways between county seats: minimum spanning tree plus close Delaunay neighbours
    seats = np.array([offs[i] + c.seat_node for i, c in enumerate(counties)])
    sxy = node_xy[seats]
    pairs = set()
    if len(counties) > 1:
        dist = np.hypot(*(sxy[:, None, :] - sxy[None, :, :]).transpose(2, 0, 1))
        mst = minimum_spanning_tree(dist + 1e-9).tocoo()
        pairs |= {(min(a, b), max(a, b)) for a, b in zip(mst.row.tolist(), mst.col.tolist(), strict=True)}
        if len(counties) > 2:
            tri = shapely.get_parts(shapely.delaunay_triangles(shapely.multipoints(sxy), only_edges=True))
            ends = shapely.get_coordinates(tri).reshape(-1, 2, 2)
            seat_tree = cKDTree(sxy)
            ia = seat_tree.query(ends[:, 0])[1]
            ib = seat_tree.query(ends[:, 1])[1]
            for a, b in zip(ia.tolist(), ib.tolist(), strict=True):
                if a != b and dist[a, b] <= rp["expressway_max_m"]:
                    pairs.add((min(a, b), max(a, b)))
    all_tree = cKDTree(node_xy)
    next_node = len(node_xy)
    ex_u, ex_v, ex_cls = [], [], []
    for a, b in sorted(pairs):
        d = float(np.hypot(*(sxy[b] - sxy[a])))
        m = max(1, int(round(d / rp["interchange_m"])))
        t_ = np.linspace(0, 1, m + 1)[1:-1]
        mids = sxy[a] + t_[:, None] * (sxy[b] - sxy[a])
        chain = [int(seats[a])]
        for q in mids:
            new = next_node
            next_node += 1
            extra_nodes.append(q)
            ex_u.append(new)
            ex_v.append(int(all_tree.query(q)[1]))
            ex_cls.append("ramp")
            chain.append(new)
        chain.append(int(seats[b]))
        ex_u += chain[:-1]
        ex_v += chain[1:]
        ex_cls += ["expressway"] * (len(chain) - 1)
    node_xy = np.vstack([node_xy, np.asarray(extra_nodes).reshape(-1, 2)])
    eu = np.concatenate(u + [np.asarray(nat_u, dtype=np.int64), np.asarray(ex_u, dtype=np.int64)])
    ev = np.concatenate(v + [np.asarray(nat_v, dtype=np.int64), np.asarray(ex_v, dtype=np.int64)])
    ecls = np.concatenate(cls + [np.array(["national"] * len(nat_u), dtype=object),
                                 np.array(ex_cls, dtype=object)]).astype(object)
    ne = len(eu)
    geoms = shapely.linestrings(np.stack([node_xy[eu], node_xy[ev]], axis=1))
    n_nat0 = ne - len(ex_u) - len(nat_u)
    if nat_u:  # the national links bend through their border point
        coords = np.stack([node_xy[nat_u], np.asarray(nat_mid), node_xy[nat_v]], axis=1)
        geoms[n_nat0:n_nat0 + len(nat_u)] = shapely.linestrings(coords)
    names = np.full(ne, None, dtype=object)
    names[n_nat0:n_nat0 + len(nat_u)] = "国道（合成）"
    names[ne - len(ex_u):] = np.where(np.asarray(ex_cls, dtype=object) == "expressway", "高速公路（合成）", None)
    # one edge per pair of junctions (routing keeps the cheapest of parallel arcs: count as it does)
    lo, hi = np.minimum(eu, ev), np.maximum(eu, ev)
    _, first = np.unique(lo * len(node_xy) + hi, return_index=True)
    keep = np.zeros(ne, dtype=bool)
    keep[first] = True
    eu, ev, ecls, geoms, names = eu[keep], ev[keep], ecls[keep], geoms[keep], names[keep]
    timings["join_s"] = time.perf_counter() - t
    return Region(name=region, params=params, counties=counties, node_xy=node_xy, edge_u=eu, edge_v=ev,
                  edge_class=ecls, edge_geom=geoms, edge_name=names, timings=timings,
                  metric_srid=settings.metric_srid)


def fingerprint(region: str, params: dict) -> str:
    """Hash of what shapes a region's database: region, parameters, generator, data, migrations."""
    from gisapp.core.db import migration_files

    h = hashlib.sha256()
    h.update(region.encode())
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    for p in (Path(__file__), Path(__file__).parent / "world.py", COUNTIES_PATH):
        h.update(p.read_bytes())
    for num, name, _ in migration_files():
        h.update(f"{num}:{name}".encode())
    return h.hexdigest()[:16]


def load_region(conn: psycopg.Connection, region: str, params: dict | None = None, settings=None,
                processes: int | None = None, counties_path=None, history: bool = False,
                log: Callable[[str], None] = print) -> dict:
    """Replace the demo in ``conn`` by ``region`` (inside the caller's transaction); return a summary.

    Nothing is written before every outline has been checked and the region generated, and all
    writes go through ``conn``'s one transaction, so a failure leaves the database as it was.
    """
    if history:
        raise ValidationError("incident history is not generated for regions (use --no-history)",
                              field="history", key="region.no_history")
    settings = settings or Settings.from_env()
    params = params or load_region_params()
    t0 = time.perf_counter()
    reg = generate_region(region, params, settings, processes, counties_path, log)
    t = time.perf_counter()
    counts = write_region(conn, reg, settings)
    reg.timings["write_s"] = time.perf_counter() - t
    log(f"wrote the region in {reg.timings['write_s']:.1f} s")
    conn.execute("ANALYZE")
    counts.update({"region": region, "fingerprint": fingerprint(region, params),
                   "timings": {k: round(v, 2) for k, v in reg.timings.items()},
                   "seconds": round(time.perf_counter() - t0, 2)})
    return counts


def write_region(conn: psycopg.Connection, reg: Region, settings) -> dict:
    """Write the region's layers (clearing the previous demo or region); return counts."""
    from .demo import clear_generated, copy_rows, ewkb_list, foreign_keys, set_sequence, without_foreign_keys

    proj = Proj(reg.metric_srid)
    clear_generated(conn)
    counts: dict[str, Any] = {"counties": len(reg.counties)}
    codes = [c.spec.adcode for c in reg.counties]
    conn.execute("DELETE FROM county WHERE NOT (adcode = ANY(%s))", [codes])
    for c, g in zip(reg.counties, ewkb_list([c.spec.outline for c in reg.counties]), strict=True):
        conn.execute("INSERT INTO county (adcode, name, geom) VALUES (%s, %s, %s::geometry) ON CONFLICT (adcode) "
                     "DO UPDATE SET name = EXCLUDED.name, geom = EXCLUDED.geom", [c.spec.adcode, c.spec.name, g])

    # organisations and units: upserted by code through a staging table
    orgs, units = [], []
    org_base = []
    for c in reg.counties:
        org_base.append(len(orgs))
        for o in c.orgs:
            lon, lat = proj.lonlat(o["x"], o["y"])
            orgs.append((o["code"], o["name"], o["name_en"], o["kind"], bool(o["traffic"]), float(lon), float(lat)))
        for uu in c.units:
            lon, lat = proj.lonlat(uu["x"], uu["y"])
            units.append((uu["code"], uu["name"], orgs[org_base[-1] + uu["org"]][0], uu["kind"], uu["capabilities"],
                          uu["shift"], float(lon), float(lat)))
    conn.execute("CREATE TEMP TABLE _org_in (code text, name text, name_en text, kind text, traffic boolean, "
                 "lon float8, lat float8) ON COMMIT DROP")
    copy_rows(conn, "_org_in", ["code", "name", "name_en", "kind", "traffic", "lon", "lat"], orgs)
    conn.execute(
        "INSERT INTO organisation (code, name, name_en, kind, merged, takes_part_in_traffic, hq, synthetic) "
        "SELECT code, name, name_en, kind, false, traffic, ST_SetSRID(ST_MakePoint(lon, lat), 4326), true "
        "FROM _org_in ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, name_en = EXCLUDED.name_en, "
        "kind = EXCLUDED.kind, merged = false, takes_part_in_traffic = EXCLUDED.takes_part_in_traffic, "
        "town_code = NULL, phone = NULL, hq = EXCLUDED.hq, synthetic = true, parent_id = NULL, updated_at = now()")
    org_id = {r["code"]: r["id"] for r in conn.execute(
        "SELECT o.id, o.code FROM organisation o JOIN _org_in i USING (code)")}
    conn.execute("CREATE TEMP TABLE _unit_in (code text, name text, org text, kind text, caps text[], shift text, "
                 "lon float8, lat float8) ON COMMIT DROP")
    copy_rows(conn, "_unit_in", ["code", "name", "org", "kind", "caps", "shift", "lon", "lat"], units)
    conn.execute("UPDATE unit SET current_leg_id = NULL WHERE current_leg_id IS NOT NULL")
    conn.execute(
        "INSERT INTO unit (code, name, organisation_id, kind, capabilities, status, shift, crew, last_position, "
        "last_position_at, synthetic) SELECT i.code, i.name, o.id, i.kind, i.caps, 'available', i.shift, 2, "
        "ST_SetSRID(ST_MakePoint(i.lon, i.lat), 4326), now(), true FROM _unit_in i JOIN organisation o "
        "ON o.code = i.org ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, "
        "organisation_id = EXCLUDED.organisation_id, kind = EXCLUDED.kind, capabilities = EXCLUDED.capabilities, "
        "status = 'available', shift = EXCLUDED.shift, crew = EXCLUDED.crew, last_position = EXCLUDED.last_position,"
        " last_position_at = EXCLUDED.last_position_at, current_leg_id = NULL, synthetic = true, updated_at = now()")
    conn.execute("DELETE FROM unit u WHERE synthetic AND NOT EXISTS (SELECT 1 FROM _unit_in i WHERE i.code = u.code)")
    conn.execute("DELETE FROM organisation o WHERE synthetic AND NOT EXISTS (SELECT 1 FROM _org_in i "
                 "WHERE i.code = o.code) AND NOT EXISTS (SELECT 1 FROM unit u WHERE u.organisation_id = o.id)")
    counts["organisations"] = len(orgs)
    counts["stations"] = sum(o[3] == "station" for o in orgs)
    counts["squadrons"] = sum(o[3] == "squadron" for o in orgs)
    counts["units"] = len(units)

    # jurisdictions, joint zones, grids
    jur, zones, zmembers, grids = [], [], [], []
    jur_of_station: dict[tuple[int, int], int] = {}
    for ci, c in enumerate(reg.counties):
        ids = [org_id[o["code"]] for o in c.orgs]
        for k, g in enumerate(c.station_geoms):
            jur.append((ids[c.station_org[k]], "station", c.orgs[c.station_org[k]]["name"], g))
            jur_of_station[(ci, k)] = len(jur)
        for j, members in enumerate(c.squadrons):
            g = as_multipolygon(shapely.union_all([c.station_geoms[m] for m in members]))
            jur.append((ids[c.squadron_org[j]], "traffic", c.orgs[c.squadron_org[j]]["name"], g))
        for z in c.zones:
            g = as_multipolygon(shapely.union_all([c.station_geoms[m] for m in z["stations"]]))
            zones.append((z["code"], z["name"], z["name_en"], ids[c.station_org[z["centre"]]], g))
            members = [(ids[c.station_org[m]], "centre" if m == z["centre"] else "member") for m in z["stations"]]
            members += [(ids[c.squadron_org[q]], "member") for q in z["squadrons"]]
            zmembers += [(len(zones), o, r) for o, r in members]
        seq: dict[int, int] = {}
        for g, k in zip(c.grid_geoms, c.grid_station, strict=True):
            seq[k] = seq.get(k, 0) + 1
            code = f"{c.orgs[c.station_org[k]]['code']}-G{seq[k]:02d}"
            grids.append((code, f"{c.orgs[c.station_org[k]]['name']}第{seq[k]}警格", ids[c.station_org[k]],
                          jur_of_station[(ci, k)], g))
    valid_from = "2020-01-01 00:00+08"
    copy_rows(conn, "jurisdiction", ["id", "organisation_id", "kind", "version", "name", "geom", "valid_from", "author",
                                 "reason"],
          ((i + 1, r[0], r[1], 1, r[2], g, valid_from, AUTHOR, "region world (synthetic)")
           for i, (r, g) in enumerate(zip(jur, ewkb_list([r[3] for r in jur]), strict=True))))
    set_sequence(conn, "jurisdiction")
    copy_rows(conn, "joint_zone", ["id", "code", "name", "name_en", "centre_org_id", "version", "geom", "valid_from",
                               "author", "reason"],
          ((i + 1, *r[:4], 1, g, valid_from, AUTHOR, "region world (synthetic)")
           for i, (r, g) in enumerate(zip(zones, ewkb_list([r[4] for r in zones]), strict=True))))
    set_sequence(conn, "joint_zone")
    copy_rows(conn, "joint_zone_member", ["joint_zone_id", "organisation_id", "role"], zmembers)
    copy_rows(conn, "grid", ["id", "code", "name", "organisation_id", "jurisdiction_id", "geom", "synthetic"],
          ((i + 1, *r[:4], g, True) for i, (r, g) in enumerate(zip(grids, ewkb_list([r[4] for r in grids]),
                                                                     strict=True))))
    set_sequence(conn, "grid")
    counts.update({"jurisdictions": len(jur), "joint_zones": len(zones), "grids": len(grids)})

    # the road network, its foreign keys checked once at the end
    lon, lat = proj.lonlat(reg.node_xy[:, 0], reg.node_xy[:, 1])
    speeds = dict(settings.road_speed_kmh)
    fks = [fk for fk in foreign_keys(conn) if fk["child"] == "road_edge" and fk["parent"] == "road_node"]
    with without_foreign_keys(conn, fks):
        counts["road_nodes"] = copy_rows(conn, "road_node", ["id", "geom"],
                                     ((i + 1, g) for i, g in enumerate(ewkb_list(shapely.points(lon, lat)))))
        set_sequence(conn, "road_node")
        length = shapely.length(reg.edge_geom)
        egeoms = proj.to_lonlat(reg.edge_geom)
        n = len(reg.edge_u)
        step = 200_000
        for a in range(0, n, step):
            b = min(n, a + step)
            ew = ewkb_list(egeoms[a:b])
            copy_rows(conn, "road_edge", ["id", "source", "target", "road_class", "name", "speed_kmh", "oneway", "bridge",
                                      "length_m", "geom", "synthetic"],
                  ((i + 1, int(reg.edge_u[i]) + 1, int(reg.edge_v[i]) + 1, reg.edge_class[i], reg.edge_name[i],
                    float(speeds[reg.edge_class[i]]), False, False, round(float(length[i]), 3), ew[i - a], True)
                   for i in range(a, b)))
        set_sequence(conn, "road_edge")
    counts["road_edges"] = len(reg.edge_u)
    counts["directed_arcs"] = reg.directed_count()
    meta = {"generator": "geodata.region", "region": reg.name, "counties": [c.spec.adcode for c in reg.counties],
            "fingerprint": fingerprint(reg.name, reg.params), "parameters": reg.params,
            "metric_srid": reg.metric_srid, "road_speed_kmh": speeds}
    layers = {"region": "multi-county region world on the real county outlines (geodata/region.py)",
              "organisations": "stations, squadrons, accident sections, command centres per county; generated",
              "jurisdictions": "Voronoi cells of generated station seats clipped to the real county outlines",
              "joint_zones": "joint war zones: clusters of generated stations", "grids": "generated patrol grids",
              "road_nodes": "generated road junctions", "units": "generated units",
              "road_edges": "generated road mesh per county, national roads across borders, expressways "
                            "between county seats; not a survey of real roads"}
    conn.execute("DELETE FROM dataset_meta WHERE layer IN ('villages', 'incidents', 'dispatch_legs', "
                 "'service_points')")
    for layer, source in layers.items():
        conn.execute(
            "INSERT INTO dataset_meta (layer, source, synthetic, licence, attribution, params) "
            "VALUES (%s, %s, true, %s, %s, %s) ON CONFLICT (layer) DO UPDATE SET source = EXCLUDED.source, "
            "synthetic = true, licence = EXCLUDED.licence, attribution = EXCLUDED.attribution, "
            "params = EXCLUDED.params, loaded_at = now()",
            [layer, "synthetic: " + source, "generated by this project (MIT)", SYNTHETIC_ATTRIBUTION,
             json.dumps(meta, ensure_ascii=False, default=str)])
    return counts


def region_fingerprint_in(conn: psycopg.Connection) -> str | None:
    """The fingerprint of the region loaded in ``conn`` (None: none)."""
    row = conn.execute("SELECT params->>'fingerprint' AS f FROM dataset_meta WHERE layer = 'region'").fetchone()
    return row["f"] if row else None


def ensure_region_database(server_url: str, region: str, dbname: str | None = None, params: dict | None = None,
                           settings=None, processes: int | None = None,
                           log: Callable[[str], None] = print) -> tuple[str, dict | None]:
    """The URL of a database holding ``region`` without history, built unless its fingerprint matches.

    ``dbname`` defaults to ``gisapp_region_<region>`` on the server of ``server_url``. Returns
    ``(url, summary)``; ``summary`` is None when the cached database was reused.
    """
    from urllib.parse import urlsplit, urlunsplit

    from gisapp.core import db

    region_counties(region)  # the name is checked before anything is created
    params = params or load_region_params()
    name = dbname or f"gisapp_region_{region}"
    parts = urlsplit(server_url)
    url = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
    admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, parts.fragment))
    want = fingerprint(region, params)
    with psycopg.connect(admin, autocommit=True) as c:
        exists = c.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None
    if exists:
        try:
            with db.connect(url) as conn:
                if region_fingerprint_in(conn) == want:
                    log(f"database {name} holds region {region} (fingerprint {want}): reused")
                    return url, None
        except psycopg.Error:
            pass
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                  "AND pid <> pg_backend_pid()", [name])
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    db.upgrade(url, log=lambda m: None)
    with db.connect(url) as conn:
        summary = load_region(conn, region, params, settings, processes, log=log)
        conn.commit()
    return url, summary
