"""Generate the demo road network: expressway, national/provincial/county roads, township
roads to every village, village streets and urban street lattices.

The network is planar by construction where it matters: the rural mesh is the Gabriel
graph of all junctions (villages, urban street ends, border gates), main roads are
shortest paths along it, so roads meet only at nodes. The expressway crosses the others
on bridges and is reachable only through its interchanges; the river is crossed only on
bridges. Coordinates are metric (the world's ``Proj``) until the caller transforms them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra, minimum_spanning_tree
from scipy.spatial import Delaunay, cKDTree
from shapely.ops import substring

from .world import Lattice, World

CLASS_RANK = {"village": 0, "urban": 1, "township": 2, "county": 3, "provincial": 4, "national": 5,
              "ramp": 6, "expressway": 7}
MAIN = ("national", "provincial")


@dataclass
class RoadNetwork:
    """Nodes and edges of the generated network (metric geometry)."""

    node_xy: np.ndarray          # (n, 2)
    src: np.ndarray              # (m,) node index
    dst: np.ndarray
    road_class: np.ndarray       # (m,) str
    name: np.ndarray             # (m,) object (str or None)
    oneway: np.ndarray           # (m,) bool
    bridge: np.ndarray           # (m,) bool
    geoms: np.ndarray            # (m,) LineString, metric
    village_node: np.ndarray     # (n_villages,) node index of each village centre
    station_node: np.ndarray     # (n_stations,) node index of each station hq
    river: shapely.LineString
    expressway_km_in_county: float
    interchanges: list[dict]

    @property
    def length_m(self) -> np.ndarray:
        return shapely.length(self.geoms)

    def directed_count(self) -> int:
        return int(np.where(self.oneway, 1, 2).sum())


class _Nodes:
    def __init__(self, xy: np.ndarray):
        self.parts = [np.asarray(xy, float)]
        self.n = len(xy)

    def add(self, xy) -> np.ndarray:
        xy = np.atleast_2d(np.asarray(xy, float))
        idx = np.arange(self.n, self.n + len(xy))
        self.parts.append(xy)
        self.n += len(xy)
        return idx

    def array(self) -> np.ndarray:
        return np.vstack(self.parts)


class _Edges:
    def __init__(self):
        self.rows: list[tuple] = []

    def add(self, s, t, geom, cls, name=None, oneway=False, bridge=False):
        self.rows.append((int(s), int(t), geom, cls, name, bool(oneway), bool(bridge)))


def catmull_rom(points: np.ndarray, per_segment: int = 20) -> np.ndarray:
    """Sample a Catmull-Rom spline through ``points`` (it passes through each of them)."""
    p = np.vstack([2 * points[0] - points[1], points, 2 * points[-1] - points[-2]])
    out = []
    t = np.linspace(0, 1, per_segment, endpoint=False)[:, None]
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * t ** 3))
    out.append(points[-1:])
    return np.vstack(out)


def bent_lines(a: np.ndarray, b: np.ndarray, amp: np.ndarray, amp2: np.ndarray, spacing: float) -> np.ndarray:
    """Curved polylines from ``a`` to ``b``: a sine bend of ``amp`` x length plus a second harmonic."""
    d = b - a
    length = np.hypot(d[:, 0], d[:, 1])
    nseg = np.clip(np.ceil(length / spacing).astype(int), 1, 60)
    nseg = np.where(np.abs(amp) + np.abs(amp2) > 0, np.maximum(nseg, 4), nseg)
    counts = nseg + 1
    idx = np.repeat(np.arange(len(a)), counts)
    start = np.repeat(np.cumsum(counts) - counts, counts)
    t = (np.arange(counts.sum()) - start) / np.repeat(nseg, counts)
    normal = np.column_stack([-d[:, 1], d[:, 0]]) / np.maximum(length, 1e-9)[:, None]
    off = (amp[idx] * np.sin(np.pi * t) + amp2[idx] * np.sin(2 * np.pi * t)) * length[idx]
    pts = a[idx] + d[idx] * t[:, None] + normal[idx] * off[:, None]
    return shapely.linestrings(pts, indices=idx)


def _gates(spec: list[str], world: World) -> dict:
    """Border gates "W:lon,lat": the nearest point just inside the county outline."""
    inner = world.outline_m.buffer(-120.0)
    ring = shapely.get_exterior_ring(shapely.get_parts(inner)[np.argmax(shapely.area(shapely.get_parts(inner)))])
    out = {}
    for item in spec:
        if ":" in item and item not in out:
            lon, lat = (float(v) for v in item.split(":", 1)[1].split(","))
            x, y = world.proj.xy(lon, lat)
            p = ring.interpolate(ring.project(shapely.Point(float(x), float(y))))
            out[item] = (p.x, p.y)
    return out


def build_roads(world: World, rng: np.random.Generator) -> RoadNetwork:
    """Build the whole network for ``world``."""
    rp = world.params["roads"]
    mp = rp["mesh"]
    jn = _junctions(world)
    e, segs = _rural_mesh(world, jn)
    river = _river(world, rp["river"])
    g = _combined_graph(world, jn, e, segs, river, rng)
    _main_routes(g, jn, rp["routes"])
    _county_roads(g, jn, world.stations, mp["county_road_max_m"])
    _thin_township_mesh(g, mp, rng)
    bridge_edges = _river_bridges(g, segs, river, rp["river"]["township_bridges"])
    _reconnect(g, bridge_edges)
    nodes, edges = _Nodes(jn.xy), _Edges()
    _junction_geometry(world, g, jn, river, bridge_edges, nodes, edges, rng)
    km_in_county, interchanges = _expressway(world, g, jn, nodes, edges)
    _village_streets(world, jn, river, nodes, edges, rng)
    net = _network(nodes, edges, jn, world.stations, river, km_in_county, interchanges)
    _fix_strong_connectivity(net)
    return net


@dataclass
class _Junctions:
    """The junctions of the rural mesh: villages, then urban lattice nodes, then border gates."""

    xy: np.ndarray               # (nj, 2)
    nv: int                      # villages come first
    key_node: dict               # station key or gate spec -> junction index
    is_lattice: np.ndarray       # (nj,) bool
    hills: np.ndarray            # (nj,) bool


def _junctions(world: World) -> _Junctions:
    """Collect the junctions (villages, lattice nodes, border gates) and mark lattice and hills."""
    params = world.params
    rp = params["roads"]
    lat = world.lattice
    nv = len(world.village_xy)
    nl = len(lat.xy)
    key_node = {s.key: nv + s.hq_node for s in world.stations}

    gate_spec = [v for r in rp["routes"] for v in r["via"] if ":" in v]
    gates = _gates(gate_spec, world)
    gate_keys = list(gates)
    jxy = np.vstack([world.village_xy, lat.xy, np.array([gates[k] for k in gate_keys]).reshape(-1, 2)])
    for i, k in enumerate(gate_keys):
        key_node[k] = nv + nl + i
    nj = len(jxy)
    is_lattice = np.zeros(nj, bool)
    is_lattice[nv:nv + nl] = True
    hills = np.zeros(nj, bool)
    hills[:nv] = world.village_hills
    _, y_hills = world.proj.xy(117.7, params["villages"]["hills_south_of_lat"])
    hills[nv:] = jxy[nv:, 1] < y_hills
    return _Junctions(xy=jxy, nv=nv, key_node=key_node, is_lattice=is_lattice, hills=hills)


def _rural_mesh(world: World, jn: _Junctions) -> tuple[np.ndarray, np.ndarray]:
    """Build the rural mesh: the Gabriel graph of the junctions, inside the county, around the towns."""
    jxy, is_lattice = jn.xy, jn.is_lattice
    tri = Delaunay(jxy)
    s = tri.simplices
    e = np.vstack([s[:, [0, 1]], s[:, [1, 2]], s[:, [2, 0]]])
    e = np.unique(np.sort(e, axis=1), axis=0)
    e = e[~(is_lattice[e[:, 0]] & is_lattice[e[:, 1]])]
    mid = (jxy[e[:, 0]] + jxy[e[:, 1]]) / 2
    r = np.hypot(*(jxy[e[:, 0]] - jxy[e[:, 1]]).T) / 2
    d, idx = cKDTree(jxy).query(mid, k=4)
    other = (idx != e[:, [0]]) & (idx != e[:, [1]])
    gabriel = ~np.any(other & (d < r[:, None] * (1 - 1e-9)), axis=1)
    e = e[gabriel]
    segs = shapely.linestrings(np.stack([jxy[e[:, 0]], jxy[e[:, 1]]], axis=1))
    inside = shapely.covered_by(segs, world.outline_m)
    # an edge must not cut through an urban lattice (it would cross its streets)
    urban = shapely.union_all(world.urban_areas_m).buffer(-20.0)
    through_urban = shapely.intersects(segs, urban) & ~(is_lattice[e[:, 0]] | is_lattice[e[:, 1]])
    return e[inside & ~through_urban], segs[inside & ~through_urban]


def _river(world: World, river_params: dict) -> shapely.LineString:
    """Trace the river (synthetic course) in metric coordinates."""
    riv = np.array(river_params["points"])
    rx, ry = world.proj.xy(riv[:, 0], riv[:, 1])
    return shapely.LineString(catmull_rom(np.column_stack([rx, ry]), 12))


@dataclass
class _Graph:
    """The junction graph being classified: mesh edges (0..nm-1) then lattice edges (nm..)."""

    ends: np.ndarray             # (m, 2) junction indices
    nm: int                      # number of mesh edges
    nj: int                      # number of junctions
    length: np.ndarray           # (m,) chord length
    cls: np.ndarray              # (m,) road class (object)
    name: np.ndarray             # (m,) road name (object)
    alive: np.ndarray            # (m,) bool, edges kept so far
    base_w: np.ndarray           # (m,) routing weight of the main roads
    cross: np.ndarray            # (m,) bool, a mesh edge whose chord crosses the river
    on_route: np.ndarray         # (m,) bool, on a national, provincial or county road
    eid: dict                    # (a, b) -> edge index, both directions

    def path_edges(self, w: np.ndarray, a: int, b: int) -> list[int]:
        """Return the edges of the shortest path from junction ``a`` to ``b`` over live edges."""
        ok = self.alive & np.isfinite(w)
        g = csr_matrix((w[ok], (self.ends[ok, 0], self.ends[ok, 1])), shape=(self.nj, self.nj))
        _, pred = dijkstra(g, directed=False, indices=a, return_predecessors=True)
        if pred[b] < 0 and a != b:
            raise RuntimeError(f"no path between junctions {a} and {b}")
        out, v = [], b
        while v != a:
            u = pred[v]
            out.append(self.eid[(u, v)])
            v = u
        return out[::-1]


def _combined_graph(world: World, jn: _Junctions, e: np.ndarray, segs: np.ndarray, river: shapely.LineString,
                    rng: np.random.Generator) -> _Graph:
    """Combine the mesh and the lattice streets into one graph with routing weights."""
    jxy, nv = jn.xy, jn.nv
    lat = world.lattice
    mesh_len = shapely.length(segs)
    crosses_river = shapely.intersects(segs, river)
    le = lat.edges + nv
    lat_len = np.hypot(*(jxy[le[:, 0]] - jxy[le[:, 1]]).T)
    lat_river = shapely.intersects(shapely.linestrings(np.stack([jxy[le[:, 0]], jxy[le[:, 1]]], axis=1)), river)
    allE = np.vstack([e, le])
    nm = len(e)
    length = np.concatenate([mesh_len, lat_len])
    cls = np.array(["township"] * nm + ["urban"] * len(le), dtype=object)
    name = np.array([None] * len(allE), dtype=object)
    alive = np.concatenate([np.ones(nm, bool), ~lat_river])
    line_noise = rng.random(int(lat.edge_line.max()) + 1)
    base_w = length.copy()
    base_w[nm:] *= np.where(lat.avenue, 0.8, 1.0 + 0.15 * line_noise[lat.edge_line])
    base_w[:nm] *= np.where(crosses_river, 1.4, 1.0)
    cross = np.zeros(len(allE), bool)
    cross[:nm] = crosses_river

    eid = {}
    for k, (a, b) in enumerate(allE.tolist()):
        eid[(a, b)] = k
        eid[(b, a)] = k
    return _Graph(ends=allE, nm=nm, nj=len(jxy), length=length, cls=cls, name=name, alive=alive, base_w=base_w,
                  cross=cross, on_route=np.zeros(len(allE), bool), eid=eid)


def _main_routes(g: _Graph, jn: _Junctions, routes: list[dict]) -> None:
    """Lay the national and provincial routes along shortest paths through their waypoints."""
    on_route = g.on_route
    for route in routes:
        w = g.base_w * np.where(on_route, 0.85, 1.0)
        via = [jn.key_node[v] for v in route["via"]]
        for a, b in zip(via[:-1], via[1:], strict=True):
            for k in g.path_edges(w, a, b):
                if CLASS_RANK[route["road_class"]] > CLASS_RANK[g.cls[k]]:
                    g.cls[k] = route["road_class"]
                    g.name[k] = route["name"]
                on_route[k] = True


def _county_roads(g: _Graph, jn: _Junctions, stations: list, max_m: float) -> None:
    """Lay county roads between neighbouring town seats not joined by a main route."""
    jxy, on_route = jn.xy, g.on_route
    seat_nodes = np.array([jn.key_node[s.key] for s in stations])
    st = Delaunay(jxy[seat_nodes])
    pairs = np.unique(np.sort(np.vstack([st.simplices[:, [0, 1]], st.simplices[:, [1, 2]],
                                         st.simplices[:, [2, 0]]]), axis=1), axis=0)
    county_no = 0
    for i, j in pairs.tolist():
        a, b = seat_nodes[i], seat_nodes[j]
        if np.hypot(*(jxy[a] - jxy[b])) > max_m:
            continue
        w = g.base_w * np.where(on_route, 3.0, 1.0)
        ks = g.path_edges(w, a, b)
        fresh = [k for k in ks if g.cls[k] in ("township",)]
        if len(fresh) < 2:
            continue
        county_no += 1
        for k in fresh:
            g.cls[k] = "county"
            g.name[k] = f"X{100 + county_no:03d}"
        on_route[ks] = True


def _thin_township_mesh(g: _Graph, mp: dict, rng: np.random.Generator) -> None:
    """Thin the township mesh, keeping a spanning tree."""
    allE, alive, length, nj = g.ends, g.alive, g.length, g.nj
    m = coo_matrix((length[alive] + 1e-6, (allE[alive, 0], allE[alive, 1])), shape=(nj, nj))
    mst = minimum_spanning_tree(m).tocoo()
    in_mst = np.zeros(len(allE), bool)
    for a, b in zip(mst.row.tolist(), mst.col.tolist(), strict=True):
        in_mst[g.eid[(a, b)]] = True
    township = np.arange(len(allE)) < g.nm
    township &= g.cls == "township"
    drop = township & ~in_mst & ((length > mp["max_edge_m"]) | (rng.random(len(allE)) > mp["keep_share"]))
    alive &= ~drop


def _river_bridges(g: _Graph, segs: np.ndarray, river: shapely.LineString, n_township: int) -> set[int]:
    """Let roads cross the river only at bridges; return the bridge edges."""
    cross, alive, cls = g.cross, g.alive, g.cls
    main_cross = cross & alive & (cls != "township")
    twn = np.flatnonzero(cross & alive & (cls == "township"))
    keep_tb = set()
    if len(twn):
        pts = shapely.intersection(segs[twn], river)
        xs = np.array([shapely.get_coordinates(p)[0, 0] for p in pts])
        order = twn[np.argsort(xs)]
        nb = min(n_township, len(order))
        for q in range(nb):
            keep_tb.add(int(order[int((q + 0.5) * len(order) / nb)]))
    for k in twn.tolist():
        if k not in keep_tb:
            alive[k] = False
    return set(np.flatnonzero(main_cross).tolist()) | keep_tb


def _reconnect(g: _Graph, bridge_edges: set[int]) -> None:
    """Reconnect anything the thinning cut off (shortest dropped edges first)."""
    allE, alive, nj = g.ends, g.alive, g.nj
    comp_n, lab = connected_components(
        coo_matrix((np.ones(alive.sum()), (allE[alive, 0], allE[alive, 1])), shape=(nj, nj)), directed=False)
    if comp_n > 1:
        parent = list(range(comp_n))

        def find(x):
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for k in np.argsort(g.length).tolist():
            if alive[k]:
                continue
            ra, rb = find(lab[allE[k, 0]]), find(lab[allE[k, 1]])
            if ra != rb:
                parent[ra] = rb
                alive[k] = True
                if g.cross[k]:
                    bridge_edges.add(k)


def _junction_geometry(world: World, g: _Graph, jn: _Junctions, river: shapely.LineString, bridge_edges: set[int],
                       nodes: _Nodes, edges: _Edges, rng: np.random.Generator) -> None:
    """Bend the live junction edges, pick one-way city streets and add the edges (bridges split out)."""
    params = world.params
    rp = params["roads"]
    mp = rp["mesh"]
    lat = world.lattice
    allE, cls, name, nm = g.ends, g.cls, g.name, g.nm
    jxy = jn.xy
    ks = np.flatnonzero(g.alive)
    a_xy, b_xy = jxy[allE[ks, 0]], jxy[allE[ks, 1]]
    mesh = ks < nm
    hill = jn.hills[allE[ks, 0]] & jn.hills[allE[ks, 1]]
    base_amp = np.where(np.isin(cls[ks], MAIN), mp["bend_main"],
                        np.where(hill, mp["bend_hills"], mp["bend_township"]))
    amp = np.where(mesh, base_amp * rng.uniform(-1, 1, len(ks)), 0.0)
    amp2 = np.where(mesh, base_amp * 0.4 * rng.uniform(-1, 1, len(ks)), 0.0)
    geoms = bent_lines(a_xy, b_xy, amp, amp2, mp["vertex_spacing_m"])
    # a bend must not carry a road across the river where its chord does not cross (no bridge there)
    wet = shapely.intersects(geoms, river) & ~np.isin(ks, list(bridge_edges))
    if wet.any():
        geoms[wet] = shapely.linestrings(np.stack([a_xy[wet], b_xy[wet]], axis=1))
    city_rows, oneway_lines = _oneway_lines(lat, params["urban"]["city_oneway_share"], rng)
    blen = rp["river"]["bridge_length_m"]
    for k, geom in zip(ks.tolist(), geoms, strict=True):
        a, b = int(allE[k, 0]), int(allE[k, 1])
        c = cls[k]
        ow = False
        if k >= nm:
            li = k - nm
            if c == "urban" and city_rows[li] and int(lat.edge_line[li]) in oneway_lines:
                ow = True
                if lat.edge_line[li] % 4 >= 2:  # alternate directions between one-way streets
                    a, b = b, a
                    geom = shapely.reverse(geom)
        if k in bridge_edges:
            _add_bridged(nodes, edges, a, b, geom, river, blen, c, name[k])
        else:
            edges.add(a, b, geom, c, name[k], oneway=ow)


def _oneway_lines(lat: Lattice, share: float, rng: np.random.Generator) -> tuple[np.ndarray, set[int]]:
    """Pick the one-way lines among the city's interior street rows; return the rows mask and the lines."""
    oneway_lines = set()
    city_rows = (lat.area_id[lat.edges[:, 0]] == 0) & lat.interior_row & ~lat.avenue
    for ln in sorted(set(lat.edge_line[city_rows].tolist())):
        if rng.random() < share:
            oneway_lines.add(ln)
    return city_rows, oneway_lines


def _add_bridged(nodes: _Nodes, edges: _Edges, a: int, b: int, geom, river: shapely.LineString, blen: float,
                 c: str, name) -> None:
    """Add an edge crossing the river as approach, bridge of ``blen`` metres, approach."""
    p = shapely.intersection(geom, river)
    at = geom.project(shapely.get_geometry(p, 0) if p.geom_type.startswith("Multi") else p)
    lo, hi = max(at - blen / 2, 1.0), min(at + blen / 2, geom.length - 1.0)
    n1, n2 = nodes.add([shapely.get_coordinates(geom.interpolate(lo))[0],
                        shapely.get_coordinates(geom.interpolate(hi))[0]])
    edges.add(a, n1, substring(geom, 0, lo), c, name)
    edges.add(n1, n2, substring(geom, lo, hi), c, name, bridge=True)
    edges.add(n2, b, substring(geom, hi, geom.length), c, name)


def _expressway(world: World, g: _Graph, jn: _Junctions, nodes: _Nodes, edges: _Edges) -> tuple[float, list[dict]]:
    """Add the G20 expressway; return its length in the county (km) and its interchanges."""
    rp = world.params["roads"]
    ex = np.array(rp["expressway_points"])
    exx, exy = world.proj.xy(ex[:, 0], ex[:, 1])
    centre = shapely.LineString(catmull_rom(np.column_stack([exx, exy]), 30))
    clipped = centre.intersection(world.outline_m.buffer(-60.0))
    parts = shapely.get_parts(clipped)
    centre = parts[np.argmax(shapely.length(parts))]
    km_in_county = float(centre.length / 1000.0)
    off = rp["expressway_carriageway_offset_m"]
    ca, cb = shapely.get_coordinates(centre)[[0, -1]]
    eb = np.vstack([ca, shapely.get_coordinates(shapely.offset_curve(centre, -off))[1:-1], cb])
    wb = np.vstack([cb, shapely.get_coordinates(shapely.offset_curve(centre, off))[::-1][1:-1], ca])
    eb, wb = shapely.LineString(eb), shapely.LineString(wb)
    end_a, end_b = nodes.add([ca, cb])
    main_nodes = np.unique(g.ends[g.alive & np.isin(g.cls, MAIN)].ravel())
    interchanges = []
    cuts_eb, cuts_wb = [], []
    for tk in rp["expressway_interchanges"]:
        ne, nw, ic = _interchange(world, tk, centre, eb, wb, jn.xy, main_nodes, nodes, edges)
        cuts_eb.append(ne)
        cuts_wb.append(nw)
        interchanges.append(ic)
    for line, cuts, first, last in ((eb, cuts_eb, end_a, end_b), (wb, cuts_wb, end_b, end_a)):
        cuts = sorted(cuts)
        pos = [0.0] + [c[0] for c in cuts] + [line.length]
        nds = [first] + [c[1] for c in cuts] + [last]
        for i in range(len(pos) - 1):
            seg = substring(line, pos[i], pos[i + 1])
            coords = shapely.get_coordinates(seg)
            coords[0] = nodes_xy_of(nodes, nds[i])
            coords[-1] = nodes_xy_of(nodes, nds[i + 1])
            edges.add(nds[i], nds[i + 1], shapely.LineString(coords), "expressway", "G20 济青高速", oneway=True)
    return km_in_county, interchanges


def _interchange(world: World, tk: str, centre, eb, wb, jxy: np.ndarray, main_nodes: np.ndarray, nodes: _Nodes,
                 edges: _Edges) -> tuple[tuple, tuple, dict]:
    """Add the interchange of town ``tk`` (hub, link road, ramps); return its cuts of both carriageways."""
    vertex_spacing = world.params["roads"]["mesh"]["vertex_spacing_m"]
    s_ = next(x for x in world.stations if x.key == tk)
    at = centre.project(shapely.Point(s_.hq_x, s_.hq_y))
    at = min(max(at, 800.0), centre.length - 800.0)
    pc = centre.interpolate(at)
    t_eb = eb.project(pc)
    t_wb = wb.project(pc)
    ne, nw = nodes.add([shapely.get_coordinates(eb.interpolate(t_eb))[0],
                        shapely.get_coordinates(wb.interpolate(t_wb))[0]])
    # the interchange hub, on the town's side, and a link road to the nearest main road
    tang = shapely.get_coordinates(centre.interpolate(at + 50))[0] - shapely.get_coordinates(centre.interpolate(at - 50))[0]
    nrm = np.array([-tang[1], tang[0]]) / np.hypot(*tang)
    side = 1.0 if np.dot(np.array([s_.hq_x, s_.hq_y]) - shapely.get_coordinates(pc)[0], nrm) >= 0 else -1.0
    hub_xy = shapely.get_coordinates(pc)[0] + side * nrm * 260.0
    hub = nodes.add([hub_xy])[0]
    dd = np.hypot(*(jxy[main_nodes] - hub_xy).T)
    local = int(main_nodes[np.argmin(dd)])
    link = bent_lines(np.array([hub_xy]), jxy[[local]], np.array([0.03]), np.array([0.0]), vertex_spacing)[0]
    edges.add(hub, local, link, "county", f"{s_.short}互通连接线")
    for cn, (sgn_on) in ((ne, 1), (nw, -1)):
        cxy = nodes_xy_of(nodes, cn)
        ramp_on = bent_lines(np.array([hub_xy]), np.array([cxy]), np.array([0.12 * sgn_on]), np.array([0.0]), 25.0)[0]
        ramp_off = bent_lines(np.array([cxy]), np.array([hub_xy]), np.array([0.12 * sgn_on]), np.array([0.0]), 25.0)[0]
        edges.add(hub, cn, ramp_on, "ramp", f"{s_.short}互通匝道", oneway=True)
        edges.add(cn, hub, ramp_off, "ramp", f"{s_.short}互通匝道", oneway=True)
    return ((t_eb, ne), (t_wb, nw),
            {"town": tk, "name": f"{s_.short}互通", "hub_node": int(hub), "local_node": local})


def _village_bearings(edges: _Edges, nv: int) -> list[list[float]]:
    """Return the bearings of the roads leaving each village centre."""
    bearings: list[list[float]] = [[] for _ in range(nv)]
    for row in edges.rows:
        s0, t0, geom = row[0], row[1], row[2]
        c = shapely.get_coordinates(geom)
        if s0 < nv:
            bearings[s0].append(math.atan2(c[1, 1] - c[0, 1], c[1, 0] - c[0, 0]))
        if t0 < nv:
            bearings[t0].append(math.atan2(c[-2, 1] - c[-1, 1], c[-2, 0] - c[-1, 0]))
    return bearings


def _village_streets(world: World, jn: _Junctions, river: shapely.LineString, nodes: _Nodes, edges: _Edges,
                     rng: np.random.Generator) -> None:
    """Add village streets: a main street across each village's roads, with lanes off it."""
    nv, jxy = jn.nv, jn.xy
    vs = world.params["roads"]["village_streets"]
    pop = world.village_pop
    q1, q2 = np.quantile(pop, vs["segment_quantiles"])
    bearings = _village_bearings(edges, nv)
    cand = np.linspace(0, np.pi, 18, endpoint=False)
    inner = world.outline_m.buffer(-30.0)
    for v in range(nv):
        br = np.array(bearings[v]) if bearings[v] else np.array([0.0])
        diff = np.abs(((cand[:, None] - br[None, :]) + np.pi / 2) % np.pi - np.pi / 2)
        theta = float(cand[np.argmax(diff.min(axis=1))]) + rng.uniform(-0.05, 0.05)
        nseg = vs["segments_min"] + int(pop[v] > q1) + int(pop[v] > q2)
        nseg = min(nseg, vs["segments_max"])
        u = np.array([math.cos(theta), math.sin(theta)])
        perp = np.array([-u[1], u[0]])
        cxy = jxy[v]
        vname = world.village_names[v]
        for sign in (1.0, -1.0):
            prev, prev_xy = v, cxy
            for k in range(1, nseg + 1):
                pxy = cxy + sign * u * vs["segment_m"] * k + perp * rng.normal(0, 6)
                seg = shapely.LineString([prev_xy, pxy])
                if not inner.contains(shapely.Point(pxy)) or seg.intersects(river):
                    break
                n_ = nodes.add([pxy])[0]
                edges.add(prev, n_, seg, "village", f"{vname}大街")
                for side in (1.0, -1.0):
                    ln = rng.uniform(vs["lane_min_m"], vs["lane_max_m"])
                    lxy = pxy + side * perp * ln + u * rng.normal(0, 8)
                    lane = shapely.LineString([pxy, lxy])
                    if inner.contains(shapely.Point(lxy)) and not lane.intersects(river):
                        m_ = nodes.add([lxy])[0]
                        edges.add(n_, m_, lane, "village", None)
                prev, prev_xy = n_, pxy


def _network(nodes: _Nodes, edges: _Edges, jn: _Junctions, stations: list, river: shapely.LineString,
             km_in_county: float, interchanges: list[dict]) -> RoadNetwork:
    """Assemble the node and edge stores into a ``RoadNetwork``."""
    node_xy = nodes.array()
    rows = edges.rows
    return RoadNetwork(
        node_xy=node_xy,
        src=np.array([r[0] for r in rows]), dst=np.array([r[1] for r in rows]),
        road_class=np.array([r[3] for r in rows], dtype=object),
        name=np.array([r[4] for r in rows], dtype=object),
        oneway=np.array([r[5] for r in rows]), bridge=np.array([r[6] for r in rows]),
        geoms=np.array([r[2] for r in rows], dtype=object),
        village_node=np.arange(jn.nv), station_node=np.array([jn.key_node[s.key] for s in stations]),
        river=river, expressway_km_in_county=km_in_county, interchanges=interchanges)


def nodes_xy_of(nodes: _Nodes, i: int) -> np.ndarray:
    """Coordinates of node ``i`` of a node store still being built."""
    base = 0
    for part in nodes.parts:
        if i < base + len(part):
            return part[i - base]
        base += len(part)
    raise IndexError(i)


def directed_graph(net: RoadNetwork, weight: np.ndarray | None = None) -> csr_matrix:
    """The directed graph of ``net`` (a two-way row counts in both directions)."""
    w = np.ones(len(net.src)) if weight is None else weight
    two = ~net.oneway
    rows = np.concatenate([net.src, net.dst[two]])
    cols = np.concatenate([net.dst, net.src[two]])
    data = np.concatenate([w, w[two]])
    n = len(net.node_xy)
    return csr_matrix((data, (rows, cols)), shape=(n, n))


def _fix_strong_connectivity(net: RoadNetwork) -> None:
    """Make one-way streets two-way where they would strand a node outside the main component."""
    for _ in range(10):
        n, lab = connected_components(directed_graph(net), directed=True, connection="strong")
        if n == 1:
            return
        big = np.bincount(lab).argmax()
        bad = lab != big
        touch = net.oneway & (bad[net.src] | bad[net.dst]) & (net.road_class != "expressway") \
            & (net.road_class != "ramp")
        if not touch.any():
            return
        net.oneway[touch] = False
