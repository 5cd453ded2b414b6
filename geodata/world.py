"""Generate the places and areas of the demo world: stations, villages, cells, jurisdictions, grids.

Everything is computed in the metric CRS (``Proj``), then areas are transformed to
EPSG:4326 and clipped with the real county outline there, so the station and traffic
jurisdictions tile the stored county exactly (they are unions of one set of cells).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np
import shapely
from pyproj import Transformer
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from .names import village_names
from .reference import TOWN_NAMES_EN, county_outline, towns


class Proj:
    """Transform coordinates and geometries between EPSG:4326 and the metric CRS."""

    def __init__(self, metric_srid: int):
        self.metric_srid = metric_srid
        self._fwd = Transformer.from_crs(4326, metric_srid, always_xy=True)
        self._inv = Transformer.from_crs(metric_srid, 4326, always_xy=True)

    def xy(self, lon, lat) -> tuple[np.ndarray, np.ndarray]:
        """Longitude/latitude (degrees) to metric x/y (metres)."""
        x, y = self._fwd.transform(np.asarray(lon, float), np.asarray(lat, float))
        return np.asarray(x), np.asarray(y)

    def lonlat(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Metric x/y (metres) to longitude/latitude (degrees)."""
        lon, lat = self._inv.transform(np.asarray(x, float), np.asarray(y, float))
        return np.asarray(lon), np.asarray(lat)

    def to_metric(self, geoms):
        """Transform shapely geometries (scalar or array) from EPSG:4326 to the metric CRS."""
        return shapely.transform(geoms, lambda c: np.column_stack(self._fwd.transform(c[:, 0], c[:, 1])))

    def to_lonlat(self, geoms):
        """Transform shapely geometries (scalar or array) from the metric CRS to EPSG:4326."""
        return shapely.transform(geoms, lambda c: np.column_stack(self._inv.transform(c[:, 0], c[:, 1])))


def as_multipolygon(g) -> shapely.MultiPolygon:
    """Return the polygonal parts of ``g`` as one MultiPolygon."""
    return shapely.MultiPolygon([p for p in shapely.get_parts(g) if p.geom_type == "Polygon" and not p.is_empty])


@dataclass
class Station:
    """A police station (派出所) of the demo: one per town plus the development zone."""

    key: str
    code: str
    name: str
    name_en: str
    short: str
    town_code: str | None
    seat_x: float
    seat_y: float
    merged: bool
    traffic: bool
    urban: bool
    hq_node: int = -1           # index into the lattice nodes
    hq_x: float = 0.0
    hq_y: float = 0.0


@dataclass
class Lattice:
    """Urban street lattices: nodes, edges between neighbours, street-line ids and areas."""

    xy: np.ndarray                    # (n, 2) metric
    area_id: np.ndarray               # (n,) index of the urban area (0 = the city)
    edges: np.ndarray                 # (m, 2) node indices
    edge_line: np.ndarray             # (m,) street-line id (global)
    edge_row: np.ndarray              # (m,) True for a row (x-direction) edge
    avenue: np.ndarray                # (m,) True on an avenue line
    interior_row: np.ndarray          # (m,) row edge whose both ends have column edges


@dataclass
class World:
    """The generated places and areas (metric arrays and EPSG:4326 geometries)."""

    params: dict
    proj: Proj
    outline: shapely.MultiPolygon              # EPSG:4326, real
    outline_m: shapely.Geometry                # metric
    stations: list[Station]
    lattice: Lattice
    urban_areas_m: list                        # metric polygons, 0 = city
    village_xy: np.ndarray
    village_pop: np.ndarray
    village_names: list[str]
    village_hills: np.ndarray
    atom_xy: np.ndarray                        # villages first, then communities
    atom_kind: np.ndarray                      # 0 village, 1 community
    cells: np.ndarray                          # EPSG:4326 MultiPolygons per atom
    atom_station: np.ndarray                   # station index per atom
    atom_grid: np.ndarray                      # grid index per atom
    village_town: list[str]
    grid_station: np.ndarray
    jurisdictions: list                        # EPSG:4326 MultiPolygon per station
    grid_geoms: list
    grid_names: list[str]
    adjacency: list = field(default_factory=list)


def _seats(params: dict, proj: Proj) -> list[Station]:
    sp = params["stations"]
    dz = sp["development_zone"]
    out = []
    for t in towns():
        short = t["name"].removesuffix("街道").removesuffix("镇") or t["name"]
        if t["name"] == "孙镇":
            short = "孙镇"
        x, y = proj.xy(t["lon"], t["lat"])
        key = t["code"]
        out.append(Station(
            key=key, code=f"PS-{key}", name=f"{short}派出所", name_en=f"{TOWN_NAMES_EN[t['name']]} Police Station",
            short=short, town_code=t["code"], seat_x=float(x), seat_y=float(y),
            merged=key in sp["merged"], traffic=key not in sp["not_in_traffic"],
            urban=key in params["urban"]["city_seats"]))
    x, y = proj.xy(dz["lon"], dz["lat"])
    out.append(Station(
        key=dz["key"], code=f"PS-{dz['key']}", name=dz["name"], name_en=dz["name_en"], short="开发区",
        town_code=None, seat_x=float(x), seat_y=float(y), merged=dz["key"] in sp["merged"],
        traffic=dz["key"] not in sp["not_in_traffic"], urban=dz["key"] in params["urban"]["city_seats"]))
    return out


def _lattice_of(area, spacing: float, rot_deg: float, origin: tuple[float, float]):
    """Street lattice inside ``area``: nodes, (i, j) indices, neighbour edges (largest component)."""
    x0, y0, x1, y1 = area.bounds
    r = math.hypot(x1 - x0, y1 - y0)
    n = int(r / spacing) + 2
    th = math.radians(rot_deg)
    ux, uy = np.array([math.cos(th), math.sin(th)]), np.array([-math.sin(th), math.cos(th)])
    ii, jj = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    ii, jj = ii.ravel(), jj.ravel()
    pts = np.asarray(origin) + spacing * (ii[:, None] * ux + jj[:, None] * uy)
    inside = shapely.contains_xy(area, pts[:, 0], pts[:, 1])
    pts, ii, jj = pts[inside], ii[inside], jj[inside]
    index = {(a, b): k for k, (a, b) in enumerate(zip(ii.tolist(), jj.tolist(), strict=True))}
    edges, rows = [], []
    for k, (a, b) in enumerate(zip(ii.tolist(), jj.tolist(), strict=True)):
        for da, db, row in ((1, 0, True), (0, 1, False)):
            m = index.get((a + da, b + db))
            if m is not None:
                edges.append((k, m))
                rows.append(row)
    edges = np.array(edges, dtype=np.int64).reshape(-1, 2)
    rows = np.array(rows, dtype=bool)
    g = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(len(pts), len(pts)))
    _, lab = connected_components(g, directed=False)
    big = np.bincount(lab).argmax()
    keep = lab == big
    remap = -np.ones(len(pts), dtype=np.int64)
    remap[keep] = np.arange(keep.sum())
    ek = keep[edges[:, 0]] & keep[edges[:, 1]]
    return pts[keep], ii[keep], jj[keep], remap[edges[ek]], rows[ek]


def build_lattice(params: dict, stations: list[Station], outline_m) -> tuple[Lattice, list]:
    """Build the city lattice and one small lattice per other town seat."""
    up = params["urban"]
    inner = outline_m.buffer(-150.0)
    city_seats = [s for s in stations if s.urban]
    # the city: the hull of its seats, widened (one contiguous built-up area)
    city = shapely.multipoints([[s.seat_x, s.seat_y] for s in city_seats]).convex_hull.buffer(up["city_radius_m"], 32)
    city = city.intersection(inner)
    areas = [(city, up["city_spacing_m"], up["city_rotation_deg"], (city_seats[0].seat_x, city_seats[0].seat_y))]
    for s in stations:
        if not s.urban:
            disc = shapely.Point(s.seat_x, s.seat_y).buffer(up["town_radius_m"], 24).intersection(inner)
            rot = (hash_angle(s.key) % 40) - 20.0
            areas.append((disc, up["town_spacing_m"], rot, (s.seat_x, s.seat_y)))
    xy, aid, edges, line, row, avenue, interior = [], [], [], [], [], [], []
    base, line_base = 0, 0
    for a, (area, spacing, rot, origin) in enumerate(areas):
        pts, ii, jj, e, rows = _lattice_of(area, spacing, rot, origin)
        xy.append(pts)
        aid.append(np.full(len(pts), a))
        edges.append(e + base)
        # a street line: a row j (row edges) or a column i (column edges)
        li = np.where(rows, jj[e[:, 0]], ii[e[:, 0]])
        lo = li.min() if len(li) else 0
        line.append(line_base + (li - lo) * 2 + (~rows).astype(int))
        line_base += int((li.max() - lo + 1) * 2 + 2) if len(li) else 2
        row.append(rows)
        avenue.append((li % 4) == 0)
        has_col = np.zeros(len(pts), dtype=bool)
        has_col[e[~rows].ravel()] = True
        interior.append(rows & has_col[e[:, 0]] & has_col[e[:, 1]])
        base += len(pts)
    lat = Lattice(np.vstack(xy), np.concatenate(aid), np.vstack(edges), np.concatenate(line),
                  np.concatenate(row), np.concatenate(avenue), np.concatenate(interior))
    return lat, [a[0] for a in areas]


def hash_angle(key: str) -> int:
    """A stable small integer from a string (Python's hash() is salted per process)."""
    return sum((i + 1) * ord(c) for i, c in enumerate(key))


def _sample_villages(rng, params, proj, outline_m, urban_union, stations):
    vp = params["villages"]
    n = vp["count"]
    inner = outline_m.buffer(-vp["border_margin_m"])
    blocked = urban_union.buffer(vp["urban_margin_m"])
    x0, y0, x1, y1 = outline_m.bounds
    _, y_hills = proj.xy(117.7, vp["hills_south_of_lat"])
    seats = np.array([[s.seat_x, s.seat_y] for s in stations])
    chosen: list[tuple[float, float]] = []
    cell = vp["min_spacing_m"]
    buckets: dict[tuple[int, int], list[int]] = {}
    spacing = vp["min_spacing_m"]
    for _round in range(40):
        m = 20000
        cx = rng.uniform(x0, x1, m)
        cy = rng.uniform(y0, y1, m)
        t = (cy - y0) / (y1 - y0)
        dens = 1.0 + vp["north_gain"] * t
        dens = np.where(cy < y_hills, dens * vp["hills_density"], dens)
        dmin = cKDTree(seats).query(np.column_stack([cx, cy]))[0]
        dens = dens * (1.0 + vp["town_boost"] * np.exp(-dmin / vp["town_boost_radius_m"]))
        u = rng.random(m) * dens.max()
        ok = (u < dens) & shapely.contains_xy(inner, cx, cy) & ~shapely.contains_xy(blocked, cx, cy)
        for x, y in zip(cx[ok], cy[ok], strict=True):
            bx, by = int(x // cell), int(y // cell)
            near = False
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    for k in buckets.get((bx + dx, by + dy), ()):
                        px, py = chosen[k]
                        if (px - x) ** 2 + (py - y) ** 2 < spacing * spacing:
                            near = True
                            break
                    if near:
                        break
                if near:
                    break
            if near:
                continue
            buckets.setdefault((bx, by), []).append(len(chosen))
            chosen.append((x, y))
            if len(chosen) == n:
                return np.array(chosen), y_hills
        spacing *= 0.96
    raise RuntimeError(f"could place only {len(chosen)} of {n} villages; lower villages.min_spacing_m")


def _populations(rng, params, xy, stations) -> np.ndarray:
    vp = params["villages"]
    seats = np.array([[s.seat_x, s.seat_y] for s in stations])
    d = cKDTree(seats).query(xy)[0]
    raw = rng.lognormal(0.0, vp["population_sigma"], len(xy)) * (1.0 + 0.8 * np.exp(-d / 4000.0))
    pop = raw / raw.sum() * vp["population_total"]
    return np.maximum(80, np.round(pop)).astype(np.int64)


def grow(n: int, adj: list[list[tuple[int, float]]], sources: list[tuple[int, int, float]],
         allowed: np.ndarray | None = None) -> np.ndarray:
    """Label nodes by the source that reaches them first (multi-source Dijkstra).

    Parameters
    ----------
    n : int
        Number of nodes.
    adj : list of lists of (neighbour, weight)
        Undirected adjacency.
    sources : list of (node, label, start distance)
    allowed : bool array or None
        Restrict the growth to these nodes.

    Returns
    -------
    numpy.ndarray
        Label per node (-1 where not reached). Each label's nodes are connected.
    """
    dist = np.full(n, np.inf)
    lab = np.full(n, -1, dtype=np.int64)
    heap = []
    for node, label, d0 in sources:
        heap.append((d0, node, label))
    heapq.heapify(heap)
    while heap:
        d, u, label = heapq.heappop(heap)
        if lab[u] >= 0:
            continue
        lab[u] = label
        dist[u] = d
        for v, w in adj[u]:
            if lab[v] < 0 and (allowed is None or allowed[v]):
                heapq.heappush(heap, (d + w, v, label))
    return lab


def build_world(params: dict, rng: np.random.Generator, metric_srid: int) -> World:
    """Generate stations, urban lattices, villages, cells, jurisdictions and grids."""
    proj = Proj(metric_srid)
    outline = county_outline()
    outline_m = proj.to_metric(outline)
    stations = _seats(params, proj)
    lat, urban_areas = build_lattice(params, stations, outline_m)
    tree = cKDTree(lat.xy)
    for s in stations:
        s.hq_node = int(tree.query([s.seat_x, s.seat_y])[1])
        s.hq_x, s.hq_y = (float(v) for v in lat.xy[s.hq_node])
    urban_union = shapely.union_all(urban_areas)

    vxy, y_hills = _sample_villages(rng, params, proj, outline_m, urban_union, stations)
    # villages in a stable order: north to south, then west to east
    order = np.lexsort((vxy[:, 0], -np.round(vxy[:, 1], -2)))
    vxy = vxy[order]
    hills = vxy[:, 1] < y_hills
    pop = _populations(rng, params, vxy, stations)
    vnames = village_names(rng, hills)

    # urban communities: the seats, plus a coarse lattice inside the city
    up = params["urban"]
    comm = [[s.hq_x, s.hq_y] for s in stations]
    city = urban_areas[0]
    x0, y0, x1, y1 = city.bounds
    sp = up["community_spacing_m"]
    gx, gy = np.meshgrid(np.arange(x0 + sp / 2, x1, sp), np.arange(y0 + sp / 2, y1, sp), indexing="ij")
    gx, gy = gx.ravel(), gy.ravel()
    ok = shapely.contains_xy(city, gx, gy)
    cand = np.column_stack([gx[ok], gy[ok]])
    d = cKDTree(np.array(comm)).query(cand)[0]
    comm = np.vstack([np.array(comm), cand[d > sp * 0.5]])
    atom_xy = np.vstack([vxy, comm])
    atom_kind = np.concatenate([np.zeros(len(vxy), int), np.ones(len(comm), int)])
    n_atoms = len(atom_xy)
    station_atom = {i: len(vxy) + i for i in range(len(stations))}

    # cells: Voronoi of the atoms, transformed to EPSG:4326, clipped with the real outline
    x0, y0, x1, y1 = outline_m.bounds
    frame = shapely.box(x0 - 20000, y0 - 20000, x1 + 20000, y1 + 20000)
    vor = shapely.voronoi_polygons(shapely.multipoints(atom_xy), extend_to=frame, ordered=True)
    cells_m = np.array(shapely.get_parts(vor))
    assert len(cells_m) == n_atoms
    cells = shapely.intersection(proj.to_lonlat(cells_m), outline)
    cells = np.array([as_multipolygon(c) for c in cells], dtype=object)

    # adjacency of cells sharing an edge
    stree = shapely.STRtree(cells)
    a, b = stree.query(cells, predicate="intersects")
    keep = a < b
    a, b = a[keep], b[keep]
    shared = shapely.length(shapely.intersection(cells[a], cells[b])) > 1e-7
    a, b = a[shared], b[shared]
    dist = np.hypot(*(atom_xy[a] - atom_xy[b]).T)
    noise = 1.0 + params["stations"]["boundary_noise"] * rng.random(len(a))
    w = dist * noise
    adj: list[list[tuple[int, float]]] = [[] for _ in range(n_atoms)]
    for i, j, ww in zip(a.tolist(), b.tolist(), w.tolist(), strict=True):
        adj[i].append((j, ww))
        adj[j].append((i, ww))

    handicap = params["stations"]["urban_handicap_m"]
    src = [(station_atom[i], i, handicap if s.urban else 0.0) for i, s in enumerate(stations)]
    atom_station = grow(n_atoms, adj, src)
    if (atom_station < 0).any():
        raise RuntimeError("some cells are not connected to any station")

    # grids: contiguous clusters of atoms inside each station
    target = params["grids"]["target_count"]
    per_grid = n_atoms / target
    atom_grid = np.full(n_atoms, -1, dtype=np.int64)
    grid_station: list[int] = []
    for si, _s in enumerate(stations):
        members = np.flatnonzero(atom_station == si)
        k = max(1, int(round(len(members) / per_grid)))
        seeds = [station_atom[si]]
        dmin = np.hypot(*(atom_xy[members] - atom_xy[seeds[0]]).T)
        while len(seeds) < k:
            nxt = int(members[int(np.argmax(dmin))])
            seeds.append(nxt)
            dmin = np.minimum(dmin, np.hypot(*(atom_xy[members] - atom_xy[nxt]).T))
        allowed = atom_station == si
        base = len(grid_station)
        lab = grow(n_atoms, adj, [(sd, base + q, 0.0) for q, sd in enumerate(seeds)], allowed=allowed)
        atom_grid[members] = lab[members]
        grid_station.extend([si] * k)
    grid_station = np.array(grid_station)

    jurisdictions = [as_multipolygon(shapely.union_all(cells[atom_station == i])) for i in range(len(stations))]
    grid_geoms = [as_multipolygon(shapely.union_all(cells[atom_grid == g])) for g in range(len(grid_station))]

    # a grid is named after its most populous village (or its station's community)
    grid_names = []
    counters: dict[int, int] = {}
    for g in range(len(grid_station)):
        members = np.flatnonzero((atom_grid == g) & (atom_kind == 0))
        st = stations[grid_station[g]]
        counters[grid_station[g]] = counters.get(grid_station[g], 0) + 1
        if len(members):
            top = members[np.argmax(pop[members])]
            grid_names.append(f"{st.short}{vnames[top]}警格")
        else:
            grid_names.append(f"{st.short}社区第{counters[grid_station[g]]}警格")

    # the town of each village: its station's town (development zone: the nearest town seat)
    town_seats = [(s.town_code, s.seat_x, s.seat_y) for s in stations if s.town_code]
    tx = np.array([[x, y] for _, x, y in town_seats])
    village_town = []
    for v in range(len(vxy)):
        st = stations[atom_station[v]]
        if st.town_code:
            village_town.append(st.town_code)
        else:
            village_town.append(town_seats[int(cKDTree(tx).query(vxy[v])[1])][0])

    return World(params=params, proj=proj, outline=outline, outline_m=outline_m, stations=stations,
                 lattice=lat, urban_areas_m=urban_areas, village_xy=vxy, village_pop=pop,
                 village_names=vnames, village_hills=hills, atom_xy=atom_xy, atom_kind=atom_kind,
                 cells=cells, atom_station=atom_station, atom_grid=atom_grid, village_town=village_town,
                 grid_station=grid_station, jurisdictions=jurisdictions, grid_geoms=grid_geoms,
                 grid_names=grid_names, adjacency=adj)
