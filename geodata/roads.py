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

from .world import World

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
    params = world.params
    rp = params["roads"]
    mp = rp["mesh"]
    lat = world.lattice
    nv = len(world.village_xy)
    nl = len(lat.xy)
    stations = world.stations
    key_node = {s.key: nv + s.hq_node for s in stations}

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

    # --- the rural mesh: Gabriel graph of the junctions -----------------------------------
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
    e, segs = e[inside & ~through_urban], segs[inside & ~through_urban]
    mesh_len = shapely.length(segs)

    # river (synthetic course) in metric coordinates
    riv = np.array(rp["river"]["points"])
    rx, ry = world.proj.xy(riv[:, 0], riv[:, 1])
    river = shapely.LineString(catmull_rom(np.column_stack([rx, ry]), 12))
    crosses_river = shapely.intersects(segs, river)

    # combined graph: mesh edges (0..nm-1) then lattice edges (nm..)
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

    eid = {}
    for k, (a, b) in enumerate(allE.tolist()):
        eid[(a, b)] = k
        eid[(b, a)] = k

    def path_edges(w: np.ndarray, a: int, b: int) -> list[int]:
        ok = alive & np.isfinite(w)
        g = csr_matrix((w[ok], (allE[ok, 0], allE[ok, 1])), shape=(nj, nj))
        _, pred = dijkstra(g, directed=False, indices=a, return_predecessors=True)
        if pred[b] < 0 and a != b:
            raise RuntimeError(f"no path between junctions {a} and {b}")
        out, v = [], b
        while v != a:
            u = pred[v]
            out.append(eid[(u, v)])
            v = u
        return out[::-1]

    def rank(c):
        return CLASS_RANK[c]

    # --- national and provincial routes ----------------------------------------------------
    on_route = np.zeros(len(allE), bool)
    for route in rp["routes"]:
        w = base_w * np.where(on_route, 0.85, 1.0)
        via = [key_node[v] for v in route["via"]]
        for a, b in zip(via[:-1], via[1:], strict=True):
            for k in path_edges(w, a, b):
                if rank(route["road_class"]) > rank(cls[k]):
                    cls[k] = route["road_class"]
                    name[k] = route["name"]
                on_route[k] = True

    # --- county roads between neighbouring town seats not joined by a main route -----------
    seat_nodes = np.array([key_node[s.key] for s in stations])
    st = Delaunay(jxy[seat_nodes])
    pairs = np.unique(np.sort(np.vstack([st.simplices[:, [0, 1]], st.simplices[:, [1, 2]],
                                         st.simplices[:, [2, 0]]]), axis=1), axis=0)
    county_no = 0
    for i, j in pairs.tolist():
        a, b = seat_nodes[i], seat_nodes[j]
        if np.hypot(*(jxy[a] - jxy[b])) > mp["county_road_max_m"]:
            continue
        w = base_w * np.where(on_route, 3.0, 1.0)
        ks = path_edges(w, a, b)
        fresh = [k for k in ks if cls[k] in ("township",)]
        if len(fresh) < 2:
            continue
        county_no += 1
        for k in fresh:
            cls[k] = "county"
            name[k] = f"X{100 + county_no:03d}"
        on_route[ks] = True

    # --- thin the township mesh, keeping a spanning tree ------------------------------------
    g = coo_matrix((length[alive] + 1e-6, (allE[alive, 0], allE[alive, 1])), shape=(nj, nj))
    mst = minimum_spanning_tree(g).tocoo()
    in_mst = np.zeros(len(allE), bool)
    for a, b in zip(mst.row.tolist(), mst.col.tolist(), strict=True):
        in_mst[eid[(a, b)]] = True
    township = np.arange(len(allE)) < nm
    township &= cls == "township"
    drop = township & ~in_mst & ((length > mp["max_edge_m"]) | (rng.random(len(allE)) > mp["keep_share"]))
    alive &= ~drop

    # --- river crossings only at bridges ----------------------------------------------------
    cross = np.zeros(len(allE), bool)
    cross[:nm] = crosses_river
    main_cross = cross & alive & (cls != "township")
    twn = np.flatnonzero(cross & alive & (cls == "township"))
    keep_tb = set()
    if len(twn):
        pts = shapely.intersection(segs[twn], river)
        xs = np.array([shapely.get_coordinates(p)[0, 0] for p in pts])
        order = twn[np.argsort(xs)]
        nb = min(rp["river"]["township_bridges"], len(order))
        for q in range(nb):
            keep_tb.add(int(order[int((q + 0.5) * len(order) / nb)]))
    for k in twn.tolist():
        if k not in keep_tb:
            alive[k] = False
    bridge_edges = set(np.flatnonzero(main_cross).tolist()) | keep_tb

    # reconnect anything the thinning cut off (shortest dropped edges first)
    comp_n, lab = connected_components(
        coo_matrix((np.ones(alive.sum()), (allE[alive, 0], allE[alive, 1])), shape=(nj, nj)), directed=False)
    if comp_n > 1:
        parent = list(range(comp_n))

        def find(x):
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for k in np.argsort(length).tolist():
            if alive[k]:
                continue
            ra, rb = find(lab[allE[k, 0]]), find(lab[allE[k, 1]])
            if ra != rb:
                parent[ra] = rb
                alive[k] = True
                if cross[k]:
                    bridge_edges.add(k)

    # --- geometry of the junction graph ------------------------------------------------------
    nodes = _Nodes(jxy)
    edges = _Edges()
    ks = np.flatnonzero(alive)
    a_xy, b_xy = jxy[allE[ks, 0]], jxy[allE[ks, 1]]
    mesh = ks < nm
    hill = hills[allE[ks, 0]] & hills[allE[ks, 1]]
    base_amp = np.where(np.isin(cls[ks], MAIN), mp["bend_main"],
                        np.where(hill, mp["bend_hills"], mp["bend_township"]))
    amp = np.where(mesh, base_amp * rng.uniform(-1, 1, len(ks)), 0.0)
    amp2 = np.where(mesh, base_amp * 0.4 * rng.uniform(-1, 1, len(ks)), 0.0)
    geoms = bent_lines(a_xy, b_xy, amp, amp2, mp["vertex_spacing_m"])
    # a bend must not carry a road across the river where its chord does not cross (no bridge there)
    wet = shapely.intersects(geoms, river) & ~np.isin(ks, list(bridge_edges))
    if wet.any():
        geoms[wet] = shapely.linestrings(np.stack([a_xy[wet], b_xy[wet]], axis=1))
    oneway_lines = set()
    city_rows = (lat.area_id[lat.edges[:, 0]] == 0) & lat.interior_row & ~lat.avenue
    for ln in sorted(set(lat.edge_line[city_rows].tolist())):
        if rng.random() < params["urban"]["city_oneway_share"]:
            oneway_lines.add(ln)
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
            p = shapely.intersection(geom, river)
            at = geom.project(shapely.get_geometry(p, 0) if p.geom_type.startswith("Multi") else p)
            lo, hi = max(at - blen / 2, 1.0), min(at + blen / 2, geom.length - 1.0)
            n1, n2 = nodes.add([shapely.get_coordinates(geom.interpolate(lo))[0],
                                shapely.get_coordinates(geom.interpolate(hi))[0]])
            edges.add(a, n1, substring(geom, 0, lo), c, name[k])
            edges.add(n1, n2, substring(geom, lo, hi), c, name[k], bridge=True)
            edges.add(n2, b, substring(geom, hi, geom.length), c, name[k])
        else:
            edges.add(a, b, geom, c, name[k], oneway=ow)

    # --- the G20 expressway ------------------------------------------------------------------
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
    main_nodes = np.unique(allE[alive & np.isin(cls, MAIN)].ravel())
    interchanges = []
    cuts_eb, cuts_wb = [], []
    for tk in rp["expressway_interchanges"]:
        s_ = next(x for x in stations if x.key == tk)
        at = centre.project(shapely.Point(s_.hq_x, s_.hq_y))
        at = min(max(at, 800.0), centre.length - 800.0)
        pc = centre.interpolate(at)
        t_eb = eb.project(pc)
        t_wb = wb.project(pc)
        ne, nw = nodes.add([shapely.get_coordinates(eb.interpolate(t_eb))[0],
                            shapely.get_coordinates(wb.interpolate(t_wb))[0]])
        cuts_eb.append((t_eb, ne))
        cuts_wb.append((t_wb, nw))
        # the interchange hub, on the town's side, and a link road to the nearest main road
        tang = shapely.get_coordinates(centre.interpolate(at + 50))[0] - shapely.get_coordinates(centre.interpolate(at - 50))[0]
        nrm = np.array([-tang[1], tang[0]]) / np.hypot(*tang)
        side = 1.0 if np.dot(np.array([s_.hq_x, s_.hq_y]) - shapely.get_coordinates(pc)[0], nrm) >= 0 else -1.0
        hub_xy = shapely.get_coordinates(pc)[0] + side * nrm * 260.0
        hub = nodes.add([hub_xy])[0]
        dd = np.hypot(*(jxy[main_nodes] - hub_xy).T)
        local = int(main_nodes[np.argmin(dd)])
        link = bent_lines(np.array([hub_xy]), jxy[[local]], np.array([0.03]), np.array([0.0]), mp["vertex_spacing_m"])[0]
        edges.add(hub, local, link, "county", f"{s_.short}互通连接线")
        for cn, (sgn_on) in ((ne, 1), (nw, -1)):
            cxy = nodes_xy_of(nodes, cn)
            ramp_on = bent_lines(np.array([hub_xy]), np.array([cxy]), np.array([0.12 * sgn_on]), np.array([0.0]), 25.0)[0]
            ramp_off = bent_lines(np.array([cxy]), np.array([hub_xy]), np.array([0.12 * sgn_on]), np.array([0.0]), 25.0)[0]
            edges.add(hub, cn, ramp_on, "ramp", f"{s_.short}互通匝道", oneway=True)
            edges.add(cn, hub, ramp_off, "ramp", f"{s_.short}互通匝道", oneway=True)
        interchanges.append({"town": tk, "name": f"{s_.short}互通", "hub_node": int(hub), "local_node": local})
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

    # --- village streets -------------------------------------------------------------------------
    vs = rp["village_streets"]
    pop = world.village_pop
    q1, q2 = np.quantile(pop, vs["segment_quantiles"])
    bearings: list[list[float]] = [[] for _ in range(nv)]
    for row in edges.rows:
        s0, t0, geom = row[0], row[1], row[2]
        c = shapely.get_coordinates(geom)
        if s0 < nv:
            bearings[s0].append(math.atan2(c[1, 1] - c[0, 1], c[1, 0] - c[0, 0]))
        if t0 < nv:
            bearings[t0].append(math.atan2(c[-2, 1] - c[-1, 1], c[-2, 0] - c[-1, 0]))
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

    node_xy = nodes.array()
    rows = edges.rows
    net = RoadNetwork(
        node_xy=node_xy,
        src=np.array([r[0] for r in rows]), dst=np.array([r[1] for r in rows]),
        road_class=np.array([r[3] for r in rows], dtype=object),
        name=np.array([r[4] for r in rows], dtype=object),
        oneway=np.array([r[5] for r in rows]), bridge=np.array([r[6] for r in rows]),
        geoms=np.array([r[2] for r in rows], dtype=object),
        village_node=np.arange(nv), station_node=np.array([key_node[s.key] for s in stations]),
        river=river, expressway_km_in_county=km_in_county, interchanges=interchanges)
    _fix_strong_connectivity(net)
    return net


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
