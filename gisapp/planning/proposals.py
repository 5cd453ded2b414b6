"""Propose layouts: network Voronoi, a balanced layout, and patrol-car posts for a joint zone.

Each proposal becomes a draft plan that can be validated, compared and published like any
other, with its objective and the objective's value for the published layout and for the
proposal recorded in ``plan.objective``.

Building blocks are *units*: patrol grids (or, with ``unit="village"``, the villages'
Voronoi cells clipped to the county). A layout gives each unit whole to one organisation;
an organisation's area is the union of its units.

(a) **Network Voronoi** gives each unit to the organisation whose headquarters reaches it
    fastest by road. Objective: the mean travel time from the owner's headquarters to the
    past year's incidents (to the unit's centre point for a unit without incidents). Each
    unit's choice is independent, so the per-unit minimum is the optimum of that objective.
(b) **Balanced** minimises ``T / T0 + weight * CV``: ``T`` the mean incident travel time from
    the owner (``T0`` its value for the published layout), ``CV`` the coefficient of variation
    of the incident counts across organisations, ``weight`` the setting
    ``plan_balance_weight``. A steepest-descent local search over single-unit moves between
    neighbouring organisations on the unit adjacency graph (units sharing a boundary), from
    the published layout, that never increases the number of connected pieces of an area,
    never empties one and never moves the unit holding an organisation's headquarters. Why
    this and not spopt: the objective is exactly the trade-off asked for, contiguity is a
    hard constraint checked on the graph, it needs no solver, and each move is evaluated
    incrementally (an organisation's time and load), so the county's ~300 grids take
    a second; spopt's regionalisers (max-p, SKATER, AZP) optimise attribute homogeneity, not
    travel time against balance, and a capacitated p-median needs a MILP solver and does not
    keep areas contiguous.
(c) **Patrol posts (MCLP)** for a joint zone: for each time-of-day period, ``cars`` posts
    among road nodes of the zone covering the most past incidents of that period within
    ``plan_patrol_target_min``. Greedy maximal covering: each step adds the post covering the
    most still-uncovered incidents; coverage is submodular, so greedy is within a factor
    (1 - 1/e) ~ 63% of the optimum (Nemhauser, Wolsey & Fisher 1978). Candidates are road
    nodes thinned evenly over the zone, the nodes nearest the most incidents, and the
    members' headquarters; a 1-swap local search then starts from the better of the greedy
    answer and the baseline (the cars waiting at the members' headquarters), so the result
    keeps the greedy guarantee and never covers less than the baseline.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import shapely
from shapely import wkb

from gisapp.core.audit import audit
from gisapp.core.errors import Text, ValidationError

from .compare import History, Layout, assign, cv, load_history, published_layout
from .drafts import create_plan, get_plan_row
from .network import subset

METHODS = ("voronoi", "balanced", "mclp")


@dataclass
class Units:
    """Building blocks of a layout, with what the objectives need."""

    ids: list
    codes: list
    geoms: list            # shapely, WGS84
    rep_lonlat: np.ndarray  # a point on each unit
    neighbours: list       # list of sets of unit indices
    owner0: np.ndarray     # index into org_keys of the published owner (-1: none)
    org_keys: list         # organisation ids
    load: np.ndarray       # past incidents per unit
    time_sum: np.ndarray   # (orgs, units): sum of incident times from each org, or the rep point time
    anchor: dict           # org index -> unit index holding its headquarters


def load_units(conn: psycopg.Connection, settings, kind: str, unit: str, h: History) -> Units:
    """Build the units of ``kind`` layouts (grids, or village cells) with their workload and times."""
    srid = settings.metric_srid
    if unit == "grid":
        rows = conn.execute("SELECT id, code, ST_AsBinary(geom) AS g FROM grid ORDER BY id").fetchall()
    elif unit == "village":
        rows = conn.execute(
            """WITH c AS (SELECT ST_Union(geom) AS g FROM county WHERE adcode = %(ad)s),
                    v AS (SELECT ST_Collect(ST_Transform(geom, %(srid)s)) AS pts FROM village),
                    cells AS (SELECT (ST_Dump(ST_VoronoiPolygons(v.pts, 0,
                                 ST_Expand(ST_Transform(c.g, %(srid)s), 5000)))).geom AS cell FROM v, c)
               SELECT vi.id, vi.code,
                      ST_AsBinary(ST_Multi(ST_CollectionExtract(ST_Intersection(c.g, ST_Transform(cells.cell, 4326)), 3)))
                      AS g
               FROM cells JOIN village vi ON ST_Intersects(cells.cell, ST_Transform(vi.geom, %(srid)s)), c
               ORDER BY vi.id""", {"ad": settings.county_adcode, "srid": srid}).fetchall()
    else:
        raise ValidationError("must be grid or village", "unit",
                              key="err.one_of", params={"options": Text.codes("pl.unit.", ("grid", "village"))})
    rows = [r for r in rows if r["g"] is not None]
    if len(rows) < 2:
        raise ValidationError(f"needs at least two {unit}s to build a layout from", "unit", status=422,
                              key="err.proposal.too_few_units", params={"unit": Text.code("pl.unit.", unit)})
    geoms = [wkb.loads(bytes(r["g"])) for r in rows]
    rep = np.array([[p.x, p.y] for p in shapely.point_on_surface(geoms)], dtype=float)
    # Adjacency: units sharing a boundary longer than a metre (not just a corner).
    idx = {r["id"]: i for i, r in enumerate(rows)}
    nb: list[set] = [set() for _ in rows]
    table = "grid" if unit == "grid" else None
    if table:
        pairs = conn.execute(
            """SELECT a.id AS a, b.id AS b FROM grid a JOIN grid b ON a.id < b.id AND ST_Intersects(a.geom, b.geom)
               WHERE ST_Length(ST_Transform(ST_CollectionExtract(ST_Intersection(a.geom, b.geom), 2), %s)) > 1
                  OR ST_Area(ST_Transform(ST_Intersection(a.geom, b.geom), %s)) > 1""", [srid, srid]).fetchall()
        for p in pairs:
            nb[idx[p["a"]]].add(idx[p["b"]])
            nb[idx[p["b"]]].add(idx[p["a"]])
    else:
        tree = shapely.STRtree(geoms)
        left, right = tree.query(geoms, predicate="intersects")
        for i, j in zip(left, right, strict=True):
            if i < j and shapely.intersection(geoms[i], geoms[j]).length > 1e-5:  # about a metre, in degrees
                nb[i].add(j)
                nb[j].add(i)
    pub = published_layout(conn, kind, srid)
    orgs = [k for k in pub.keys if pub.hq.get(k) is not None]
    if len(orgs) < 2:
        raise ValidationError(f"the published {kind} layout needs at least two organisations with headquarters",
                              "kind", status=422,
                              key="err.proposal.too_few_orgs", params={"kind": Text.code("jkind.", kind)})
    # The published owner of a unit: the area holding its representative point.
    lay = Layout(orgs, {k: pub.geoms[k] for k in orgs}, {}, {}, {}, {})
    owner0 = assign(lay, rep)
    # Incidents by unit, and their travel times from every organisation.
    unit_lay = Layout(list(range(len(geoms))), dict(enumerate(geoms)), {}, {}, {}, {})
    for g in geoms:
        shapely.prepare(g)
    inc_unit = assign(unit_lay, h.inc_lonlat)
    load = np.bincount(inc_unit[inc_unit >= 0], minlength=len(geoms)).astype(float)
    node_t = h.net.node_times_from(np.array([pub.hq[k] for k in orgs], dtype=float))
    ok = inc_unit >= 0
    inc_t = h.net.point_times(node_t, subset(h.inc_snap, ok))  # (orgs, incidents in some unit)
    inc_t = np.where(np.isfinite(inc_t), inc_t, 1e7)   # unreachable: a very large penalty
    time_sum = np.zeros((len(orgs), len(geoms)))
    for o in range(len(orgs)):
        np.add.at(time_sum[o], inc_unit[ok], inc_t[o])
    rep_t = h.net.point_times(node_t, h.net.snap(rep))
    rep_t = np.where(np.isfinite(rep_t), rep_t, 1e7)
    empty = load == 0
    time_sum[:, empty] = rep_t[:, empty] * 1e-6  # a tie-breaker only: such units carry no workload
    hq_unit = assign(unit_lay, np.array([pub.hq[k] for k in orgs], dtype=float))
    anchor = {o: int(u) for o, u in enumerate(hq_unit) if u >= 0}
    return Units([r["id"] for r in rows], [r.get("code") for r in rows], geoms, rep, nb, owner0, orgs, load,
                 time_sum, anchor)


def objective_values(u: Units, owner: np.ndarray, weight: float, t0: float | None = None) -> dict:
    """Mean incident travel time (s), workload CV and the balanced objective of an assignment."""
    total = u.load.sum()
    t = float(u.time_sum[owner, np.arange(len(owner))].sum())
    mean_t = t / total if total else 0.0
    loads = np.bincount(owner, weights=u.load, minlength=len(u.org_keys))
    c = cv(loads.tolist()) or 0.0
    base = t0 if t0 else mean_t
    return {"mean_incident_time_s": round(mean_t, 2), "workload_cv": round(c, 4),
            "balanced_objective": round((mean_t / base if base else 0.0) + weight * c, 4)}


def voronoi_assignment(u: Units) -> np.ndarray:
    """Each unit to the organisation that reaches its incidents (or its centre) fastest."""
    owner = np.argmin(u.time_sum, axis=0)
    for o, unit in u.anchor.items():  # a headquarters' own unit stays with it
        owner[unit] = o
    return owner


def _pieces(members: set, nb: list) -> int:
    seen: set = set()
    n = 0
    for s in members:
        if s in seen:
            continue
        n += 1
        q = deque([s])
        seen.add(s)
        while q:
            x = q.popleft()
            for y in nb[x]:
                if y in members and y not in seen:
                    seen.add(y)
                    q.append(y)
    return n


def balanced_assignment(u: Units, weight: float, max_moves: int) -> tuple[np.ndarray, int]:
    """Steepest-descent local search from the published layout (see the module docstring)."""
    owner = u.owner0.copy()
    # Units the published layout left without an owner go to their fastest organisation.
    fill = owner < 0
    owner[fill] = np.argmin(u.time_sum[:, fill], axis=0)
    n_org = len(u.org_keys)
    members = [set(np.flatnonzero(owner == o).tolist()) for o in range(n_org)]
    pieces = [_pieces(members[o], u.neighbours) for o in range(n_org)]
    loads = np.bincount(owner, weights=u.load, minlength=n_org)
    total_load = u.load.sum()
    tsum = float(u.time_sum[owner, np.arange(len(owner))].sum())
    t0 = tsum / total_load if total_load else 1.0
    anchors = set(u.anchor.values())

    def obj(t: float, ld: np.ndarray) -> float:
        m = ld.mean()
        return (t / total_load) / t0 + weight * (ld.std() / m if m else 0.0)

    current = obj(tsum, loads)
    moves = 0
    while moves < max_moves:
        cands = []
        for g in range(len(owner)):
            s = owner[g]
            if g in anchors or len(members[s]) <= 1:
                continue
            for d in {owner[x] for x in u.neighbours[g]} - {s}:
                ld = loads.copy()
                ld[s] -= u.load[g]
                ld[d] += u.load[g]
                t = tsum - u.time_sum[s, g] + u.time_sum[d, g]
                val = obj(t, ld)
                if val < current - 1e-12:
                    cands.append((val, g, int(d), t, ld))
        if not cands:
            break
        cands.sort(key=lambda c: (c[0], c[1], c[2]))
        done = False
        for val, g, d, t, ld in cands:
            s = owner[g]
            rest = members[s] - {g}
            if _pieces(rest, u.neighbours) > pieces[s]:
                continue  # the move would break the donor apart
            members[s] = rest
            members[d].add(g)
            pieces[s] = _pieces(rest, u.neighbours)
            pieces[d] = _pieces(members[d], u.neighbours)
            owner[g] = d
            loads, tsum, current = ld, t, val
            moves += 1
            done = True
            break
        if not done:
            break
    return owner, moves


def _draft_from_assignment(conn: psycopg.Connection, user: dict, u: Units, owner: np.ndarray, *, kind: str,
                           name: str, origin: str, objective: dict, unit: str, settings) -> dict:
    """Create a draft whose areas are the unions of each organisation's units."""
    plan = create_plan(conn, user, name=name, kind=kind, empty=True, origin=origin, objective=objective)
    for o, key in enumerate(u.org_keys):
        parts = [u.geoms[g] for g in np.flatnonzero(owner == o)]
        if not parts:
            continue
        geom = shapely.union_all(parts, grid_size=None)
        conn.execute(
            "INSERT INTO plan_area (plan_id, organisation_id, geom) "
            "VALUES (%s, %s, plan_clean_area(ST_GeomFromWKB(%s, 4326), %s, %s))",
            [plan["id"], key, geom.wkb, settings.metric_srid, settings.plan_tolerance_m2])
    audit(conn, user, "propose", "plan", plan["id"], {"method": origin, "unit": unit, "objective": objective})
    return get_plan_row(conn, plan["id"])


def propose(conn: psycopg.Connection, user: dict, body: dict, settings) -> dict:
    """Make a proposal draft (``method``: voronoi | balanced | mclp); return the plan row."""
    method = body.get("method")
    if method not in METHODS:
        raise ValidationError(f"must be one of {', '.join(METHODS)}", "method",
                              key="err.one_of", params={"options": list(METHODS)})
    if method == "mclp":
        return propose_posts(conn, user, body, settings)
    kind = body.get("kind", "station")
    if kind not in ("station", "traffic"):
        raise ValidationError("must be station or traffic", "kind",
                              key="err.one_of", params={"options": Text.codes("jkind.", ("station", "traffic"))})
    unit = body.get("unit", "grid")
    weight = body.get("weight", settings.plan_balance_weight)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 100:
        raise ValidationError("must be a number from 0 to 100", "weight",
                              key="err.range", params={"lo": 0, "hi": 100})
    h = load_history(conn, settings)
    u = load_units(conn, settings, kind, unit, h)
    base_owner = u.owner0.copy()
    base_owner[base_owner < 0] = np.argmin(u.time_sum[:, base_owner < 0], axis=0)
    before = objective_values(u, base_owner, weight)
    t0 = before["mean_incident_time_s"]
    if method == "voronoi":
        owner = voronoi_assignment(u)
        moves = int((owner != base_owner).sum())
        stated = ("minimise the mean travel time from the owning organisation's headquarters to the past "
                  "year's incidents; each unit goes whole to the organisation that reaches it fastest")
        stated_zh = "使各单位驻地到近一年警情的平均路网到达时间最短：每个警格整体划给到达最快的单位"
        key = "mean_incident_time_s"
    else:
        owner, moves = balanced_assignment(u, float(weight), settings.plan_balance_max_moves)
        stated = (f"minimise T/T0 + {weight:g} * CV: T the mean incident travel time from the owner, T0 its "
                  "value for the published layout, CV the coefficient of variation of the workload; every "
                  "area stays contiguous on the unit adjacency graph")
        stated_zh = (f"最小化 T/T0 + {weight:g}×CV：T 为辖区单位到警情的平均到达时间，T0 为现行方案的值，"
                     "CV 为各单位工作量的变异系数；各辖区在警格相邻关系上保持连片")
        key = "balanced_objective"
    after = objective_values(u, owner, weight, t0)
    before = objective_values(u, base_owner, weight, t0)
    objective = {"method": method, "unit": unit, "statement": stated, "statement_zh": stated_zh, "key": key,
                 "weight": weight,
                 "published": before, "proposal": after, "units_moved": int((owner != base_owner).sum()),
                 "moves": moves}
    name = body.get("name") or {"voronoi": "路网泰森多边形方案", "balanced": "均衡方案"}[method]
    return _draft_from_assignment(conn, user, u, owner, kind=kind, name=name, origin=method,
                                  objective=objective, unit=unit, settings=settings)


# --- patrol posts (MCLP) ----------------------------------------------------------------------

def _periods(spec: str) -> list[tuple[int, int]]:
    out = []
    for part in spec.split(","):
        a, _, b = part.strip().partition("-")
        out.append((int(a), int(b)))
    return out


def candidate_nodes(h: History, zone, max_n: int) -> np.ndarray:
    """Road nodes inside the zone, thinned evenly on a square mesh to at most ``max_n``."""
    net = h.net
    lonlat = _node_lonlat(net)
    inside = np.flatnonzero(shapely.contains_xy(zone, lonlat[:, 0], lonlat[:, 1]))
    if len(inside) <= max_n:
        return inside
    xy = net.node_xy[inside]
    span = np.ptp(xy, axis=0).max() or 1.0
    deg = np.bincount(np.concatenate([net.src, net.tgt]), minlength=net.n_nodes)[inside]
    # The mesh size: the largest with at most max_n occupied cells (bisection on a log scale).
    lo, hi = span / (4 * np.sqrt(max_n)), span
    for _ in range(40):
        cell = np.sqrt(lo * hi)
        if _cells(xy, cell, max_n):
            hi = cell
        else:
            lo = cell
    cell = hi
    cx = np.floor((xy[:, 0] - xy[:, 0].min()) / cell).astype(np.int64)
    cy = np.floor((xy[:, 1] - xy[:, 1].min()) / cell).astype(np.int64)
    cid = cx * 1_000_003 + cy
    # In each mesh cell, the node with the most road connections (then the lowest index).
    order = np.lexsort((inside, -deg, cid))
    first = np.ones(len(order), dtype=bool)
    first[1:] = cid[order][1:] != cid[order][:-1]
    return np.sort(inside[order][first])


def _cells(xy: np.ndarray, cell: float, max_n: int) -> bool:
    """True when a square mesh of side ``cell`` has at most ``max_n`` occupied cells."""
    cx = np.floor((xy[:, 0] - xy[:, 0].min()) / cell).astype(np.int64)
    cy = np.floor((xy[:, 1] - xy[:, 1].min()) / cell).astype(np.int64)
    return len(np.unique(cx * 1_000_003 + cy)) <= max_n


def _node_lonlat(net) -> np.ndarray:
    return net.node_lonlat


def greedy_cover(cover: np.ndarray, n: int, start: list[int] | None = None) -> tuple[list[int], list[int]]:
    """Greedy maximal covering on a boolean (candidates, incidents) matrix: chosen rows and gains.

    Each step adds the row covering the most incidents not yet covered (after ``start``);
    coverage is submodular, so the result is within 1 - 1/e of the best ``n`` rows.
    """
    uncovered = np.ones(cover.shape[1], dtype=bool)
    chosen = list(start or [])
    for r in chosen:
        uncovered &= ~cover[r]
    gains = []
    while len(chosen) < min(n, cover.shape[0]):
        g = cover[:, uncovered].sum(axis=1)
        g[chosen] = -1
        best = int(np.argmax(g))
        if g[best] <= 0 and chosen:
            break
        chosen.append(best)
        gains.append(int(max(g[best], 0)))
        uncovered &= ~cover[best]
    return chosen, gains


def _covered(cover: np.ndarray, rows: list[int]) -> int:
    return int(cover[rows].any(axis=0).sum()) if rows else 0


def _gains(cover: np.ndarray, rows: list[int]) -> list[tuple[int, int]]:
    """Each chosen row with the incidents it adds, in order of decreasing gain."""
    out, left, uncovered = [], list(rows), np.ones(cover.shape[1], dtype=bool)
    while left:
        g = [int(cover[r, uncovered].sum()) for r in left]
        i = int(np.argmax(g))
        out.append((left[i], g[i]))
        uncovered &= ~cover[left[i]]
        left.pop(i)
    return out


def swap_improve(cover: np.ndarray, chosen: list[int], max_rounds: int = 100) -> list[int]:
    """Replace one chosen row by another while that covers more incidents (1-swap local search)."""
    chosen = list(chosen)
    cf = cover.astype(np.int32)
    for _ in range(max_rounds):
        count = cf[chosen].sum(axis=0) if chosen else np.zeros(cover.shape[1], dtype=np.int32)
        unc = count == 0
        gain_new = cf[:, unc].sum(axis=1)  # what each row would add
        best = (0, None, None)
        for k, s in enumerate(chosen):
            only = cover[s] & (count == 1)  # lost when s leaves, unless the new row covers them too
            delta = gain_new + cf[:, only].sum(axis=1) - int(only.sum())
            delta[chosen] = -1
            j = int(np.argmax(delta))
            if delta[j] > best[0]:
                best = (int(delta[j]), k, j)
        if best[1] is None:
            break
        chosen[best[1]] = best[2]
    return chosen


def hot_nodes(net, snaps, n: int) -> np.ndarray:
    """The ``n`` road nodes nearest the most incidents (each incident counts for its edge's nearer end)."""
    ok = snaps.edge >= 0
    e = snaps.edge[ok]
    near = np.where(snaps.fraction[ok] < 0.5, net.src[e], net.tgt[e])
    counts = np.bincount(near, minlength=net.n_nodes)
    order = np.argsort(-counts, kind="stable")[:n]
    return np.sort(order[counts[order] > 0])


def propose_posts(conn: psycopg.Connection, user: dict, body: dict, settings) -> dict:
    """Where to post ``cars`` patrol cars in joint zone ``zone_code`` by time of day (MCLP)."""
    code = body.get("zone_code")
    if not isinstance(code, str) or not code:
        raise ValidationError("is required: the joint zone's code", "zone_code", key="err.required")
    cars = body.get("cars", 3)
    if isinstance(cars, bool) or not isinstance(cars, int) or not 1 <= cars <= 50:
        raise ValidationError("must be an integer from 1 to 50", "cars",
                              key="err.range", params={"lo": 1, "hi": 50})
    zone = conn.execute(
        """SELECT z.code, z.name, ST_AsBinary(z.geom) AS g,
                  ARRAY(SELECT m.organisation_id FROM joint_zone_member m WHERE m.joint_zone_id = z.id) AS members
           FROM joint_zone z WHERE z.code = %s AND z.valid_from <= now() AND (z.valid_to IS NULL OR z.valid_to > now())""",
        [code]).fetchone()
    if zone is None or zone["g"] is None:
        raise ValidationError(f"no joint zone {code!r} with an area in force", "zone_code", status=422,
                              key="err.proposal.no_zone", params={"code": str(code)[:40]})
    zg = wkb.loads(bytes(zone["g"]))
    shapely.prepare(zg)
    h = load_history(conn, settings)
    net = h.net
    in_zone = shapely.contains_xy(zg, h.inc_lonlat[:, 0], h.inc_lonlat[:, 1])
    snaps = subset(h.inc_snap, in_zone)
    hours = h.inc_hour[in_zone]
    target_s = settings.plan_patrol_target_min * 60.0
    # Candidates: road nodes thinned evenly over the zone, the nodes nearest the most incidents,
    # and the members' headquarters themselves (where the cars wait today: the baseline).
    half = max(1, settings.plan_patrol_candidates_max // 2)
    cands = np.union1d(candidate_nodes(h, zg, half), hot_nodes(net, snaps, half))
    if len(cands) == 0:
        raise ValidationError(f"joint zone {code} has no road node", "zone_code", status=422,
                              key="err.proposal.zone_no_roads", params={"code": code})
    hq = conn.execute("SELECT id, ST_X(hq) AS lon, ST_Y(hq) AS lat FROM organisation WHERE id = ANY(%s) "
                      "AND hq IS NOT NULL ORDER BY id", [list(zone["members"])]).fetchall()
    rows = []
    for i in range(0, len(cands), 50):  # chunks keep the time arrays small
        nt = net.node_times_from_nodes(cands[i:i + 50], limit=target_s)
        rows.append(net.point_times(nt, snaps) <= target_s)
    hq_ll = np.array([[r["lon"], r["lat"]] for r in hq], dtype=float).reshape(-1, 2)
    if len(hq_ll):
        rows.append(net.point_times(net.node_times_from(hq_ll, limit=target_s), snaps) <= target_s)
    cover = np.vstack(rows)
    n_nodes = len(cands)
    base_rows = list(range(n_nodes, n_nodes + min(cars, len(hq_ll))))
    periods = []
    posts = []
    for a, b in _periods(settings.plan_patrol_periods_h):
        sel = (hours >= a) & (hours < b)
        sub = cover[:, sel]
        chosen, _ = greedy_cover(sub, cars)
        base = _covered(sub, base_rows)
        # Improve by swaps from the better of greedy and the baseline (filled up greedily), so
        # the answer never covers less than either.
        start = base_rows + [r for r in greedy_cover(sub, cars, start=base_rows)[0] if r not in base_rows]
        best = max((chosen, start[:cars]), key=lambda c: _covered(sub, c))
        chosen = swap_improve(sub, list(best))
        covered = _covered(sub, chosen)
        n = int(sel.sum())
        periods.append({"period": f"{a:02d}-{b:02d}", "incidents": n, "covered": covered,
                        "share": round(covered / n, 4) if n else None, "baseline_covered": base,
                        "baseline_share": round(base / n, 4) if n else None})
        for rank, (c, gain) in enumerate(_gains(sub, chosen), start=1):
            if c < n_nodes:
                node = int(cands[c])
                node_id, ll = int(net.node_ids[node]), net.node_lonlat[node]
            else:  # a member's headquarters
                node_id, ll = None, hq_ll[c - n_nodes]
            posts.append((f"{a:02d}-{b:02d}", a, b, rank, node_id, ll, gain))
    total = sum(p["incidents"] for p in periods)
    objective = {
        "method": "mclp", "zone_code": code, "cars": cars, "target_min": settings.plan_patrol_target_min,
        "statement": (f"for each period, post {cars} cars on road nodes of zone {code} to cover the most past "
                      f"incidents within {settings.plan_patrol_target_min:g} min (greedy maximal covering, "
                      "within (1 - 1/e) of the optimum, improved by swaps; never below the baseline)"),
        "statement_zh": (f"每个时段在战区 {code} 的路网节点上布设 {cars} 辆巡逻车，使 "
                         f"{settings.plan_patrol_target_min:g} 分钟内可到达的历史警情最多（贪心最大覆盖，"
                         "不低于最优解的 1-1/e，再经交换改进；不低于基准）"),
        "key": "covered", "candidates": int(len(cands) + len(hq_ll)), "periods": periods,
        "proposal": {"covered": sum(p["covered"] for p in periods), "incidents": total},
        "published": {"covered": sum(p["baseline_covered"] for p in periods), "incidents": total,
                      "baseline": f"{min(cars, len(hq))} cars at the members' headquarters"},
    }
    name = body.get("name") or f"{zone['name']} 巡逻布点（{cars} 车）"
    plan = create_plan(conn, user, name=name, kind="joint_zone", origin="mclp", objective=objective)
    for period, a, b, rank, node_id, ll, gain in posts:
        conn.execute(
            "INSERT INTO plan_post (plan_id, zone_code, period, start_hour, end_hour, rank, road_node_id, geom, "
            "covered_incidents) VALUES (%s, %s, %s, %s, %s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s)",
            [plan["id"], code, period, a, b, rank, node_id, float(ll[0]), float(ll[1]), gain])
    audit(conn, user, "propose", "plan", plan["id"], {"method": "mclp", "objective": objective})
    return get_plan_row(conn, plan["id"])


def proposal_summary(plan: dict[str, Any]) -> dict:
    """The stated objective of a proposal plan with its value before and after."""
    return plan.get("objective") or {}
