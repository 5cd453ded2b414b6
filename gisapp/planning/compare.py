"""Compare a draft with the published layout, per jurisdiction, on real workload and travel times.

For each jurisdiction (an organisation's area, or a joint zone) of the draft and of the
layout in force now: area, road km by class, villages and their population, the past
year's incidents by type and by hour, travel times from the owner's headquarters (the
centre station for a joint zone) to each of its incidents and to each of its roads
(p50, p90, max; road percentiles weighted by length), the share of road km within the
target (``main_road_classes`` within ``main_road_target_min``, the others within
``rural_road_target_min``), and
across jurisdictions the workload balance (coefficient of variation of incident counts).
The past incidents that would change owner are listed and mapped.

Conventions: a point belongs to the first area (by key) that contains it; a road segment
belongs to the area holding its midpoint and its travel time is the time to that midpoint.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
import shapely
from shapely import wkb

from .drafts import get_plan_row
from .network import PlanNetwork, subset

HOURS = 24


@dataclass
class Layout:
    """Areas keyed by organisation id (station / traffic) or zone code (joint zones)."""

    keys: list
    geoms: dict
    names: dict
    codes: dict
    hq: dict  # key -> (lon, lat) or None
    area_km2: dict
    area_ids: dict = field(default_factory=dict)


@dataclass
class History:
    """The inputs every evaluation shares: past incidents, roads, villages, the network."""

    net: PlanNetwork
    inc_id: np.ndarray
    inc_code: list
    inc_type: np.ndarray
    inc_hour: np.ndarray
    inc_lonlat: np.ndarray
    inc_reported: list
    inc_snap: Any
    vil_lonlat: np.ndarray
    vil_pop: np.ndarray
    window: dict
    main_class: np.ndarray  # per edge: held to the main-road target


def _key_sql(kind: str) -> str:
    return "zone_code" if kind == "joint_zone" else "organisation_id"


def published_layout(conn: psycopg.Connection, kind: str, srid: int, at: datetime | None = None) -> Layout:
    """Return the layout of ``kind`` in force at ``at`` (default now)."""
    if kind == "joint_zone":
        rows = conn.execute(
            """SELECT z.code AS key, z.code, z.name, ST_AsBinary(z.geom) AS g,
                      ST_X(o.hq) AS lon, ST_Y(o.hq) AS lat, ST_Area(plan_metric(z.geom, %(srid)s)) / 1e6 AS km2
               FROM joint_zone z JOIN organisation o ON o.id = z.centre_org_id
               WHERE z.valid_from <= coalesce(%(at)s, now()) AND (z.valid_to IS NULL OR z.valid_to > coalesce(%(at)s, now()))
               ORDER BY z.code""", {"srid": srid, "at": at}).fetchall()
    else:
        rows = conn.execute(
            """SELECT j.organisation_id AS key, o.code, o.name, ST_AsBinary(j.geom) AS g,
                      ST_X(o.hq) AS lon, ST_Y(o.hq) AS lat, ST_Area(plan_metric(j.geom, %(srid)s)) / 1e6 AS km2
               FROM jurisdiction j JOIN organisation o ON o.id = j.organisation_id
               WHERE j.kind = %(kind)s AND j.valid_from <= coalesce(%(at)s, now())
                 AND (j.valid_to IS NULL OR j.valid_to > coalesce(%(at)s, now()))
               ORDER BY o.code""", {"srid": srid, "at": at, "kind": kind}).fetchall()
    return _layout(rows)


def draft_layout(conn: psycopg.Connection, plan_id: int, srid: int) -> Layout:
    """Return a plan's areas as a layout (geometry made valid for point-in-area tests)."""
    plan = get_plan_row(conn, plan_id)
    if plan["kind"] == "joint_zone":
        rows = conn.execute(
            """SELECT a.id AS area_id, a.zone_code AS key, a.zone_code AS code, a.name,
                      ST_AsBinary(ST_MakeValid(a.geom)) AS g, ST_X(o.hq) AS lon, ST_Y(o.hq) AS lat,
                      coalesce(ST_Area(plan_metric(a.geom, %(srid)s)) / 1e6, 0) AS km2
               FROM plan_area a JOIN organisation o ON o.id = a.centre_org_id
               WHERE a.plan_id = %(p)s ORDER BY a.zone_code""", {"srid": srid, "p": plan_id}).fetchall()
    else:
        rows = conn.execute(
            """SELECT a.id AS area_id, a.organisation_id AS key, o.code, coalesce(a.name, o.name) AS name,
                      ST_AsBinary(ST_MakeValid(a.geom)) AS g, ST_X(o.hq) AS lon, ST_Y(o.hq) AS lat,
                      coalesce(ST_Area(plan_metric(a.geom, %(srid)s)) / 1e6, 0) AS km2
               FROM plan_area a JOIN organisation o ON o.id = a.organisation_id
               WHERE a.plan_id = %(p)s ORDER BY o.code""", {"srid": srid, "p": plan_id}).fetchall()
    return _layout(rows)


def _layout(rows: list[dict]) -> Layout:
    lay = Layout([], {}, {}, {}, {}, {})
    for r in rows:
        k = r["key"]
        lay.keys.append(k)
        g = wkb.loads(bytes(r["g"])) if r["g"] is not None else None
        if g is not None:
            shapely.prepare(g)
        lay.geoms[k] = g
        lay.names[k] = r["name"]
        lay.codes[k] = r["code"]
        lay.hq[k] = (r["lon"], r["lat"]) if r["lon"] is not None else None
        lay.area_km2[k] = float(r["km2"] or 0.0)
        if "area_id" in r:
            lay.area_ids[k] = r["area_id"]
    return lay


def assign(layout: Layout, lonlat: np.ndarray) -> np.ndarray:
    """Index into ``layout.keys`` of the area holding each point (-1: none; the first area wins)."""
    out = np.full(len(lonlat), -1, dtype=np.int64)
    idx = [i for i, k in enumerate(layout.keys) if layout.geoms[k] is not None and not layout.geoms[k].is_empty]
    if len(lonlat) == 0 or not idx:
        return out
    tree = shapely.STRtree([layout.geoms[layout.keys[i]] for i in idx])
    pi, gi = tree.query(shapely.points(np.asarray(lonlat, dtype=float)), predicate="within")
    if len(pi):
        area = np.asarray(idx, dtype=np.int64)[gi]
        order = np.lexsort((area, pi))
        pi, area = pi[order], area[order]
        first = np.ones(len(pi), dtype=bool)
        first[1:] = pi[1:] != pi[:-1]
        out[pi[first]] = area[first]
    return out


_history_cache: dict[tuple, History] = {}
_history_lock = threading.Lock()


def load_history(conn: psycopg.Connection, settings) -> History:
    """Return the past incidents of the workload window, the villages, and the road network.

    Kept per process while the road network, the incidents, the villages and the hour stay
    the same (a comparison or a proposal then starts at once).
    """
    net = PlanNetwork.load(conn, settings)
    fp = conn.execute(
        """SELECT count(*) AS n, coalesce(max(id), 0) AS last,
                  count(*) FILTER (WHERE status = 'cancelled' OR duplicate_of IS NOT NULL) AS dropped,
                  (SELECT version FROM data_version WHERE area = 'villages') AS villages,
                  date_trunc('hour', now()) AS hour FROM incident""").fetchone()
    info = conn.info
    key = (info.host, info.port, info.dbname, net.version, id(net), settings.plan_workload_days,
           tuple(settings.main_road_classes), fp["n"], fp["last"], fp["dropped"], fp["villages"], fp["hour"])
    with _history_lock:
        hit = _history_cache.get(key)
    if hit is not None:
        return hit
    h = _load_history(conn, settings, net)
    with _history_lock:
        if len(_history_cache) > 4:
            _history_cache.clear()
        _history_cache[key] = h
    return h


def _load_history(conn: psycopg.Connection, settings, net: PlanNetwork) -> History:
    win = conn.execute("SELECT now() - make_interval(days => %s) AS t0, now() AS t1",
                       [settings.plan_workload_days]).fetchone()
    rows = conn.execute(
        """SELECT id, code, type, reported_at, ST_X(geom) AS lon, ST_Y(geom) AS lat,
                  extract(hour FROM reported_at AT TIME ZONE 'Asia/Shanghai')::int AS hour
           FROM incident WHERE reported_at >= %s AND reported_at <= %s AND status <> 'cancelled'
             AND duplicate_of IS NULL
           ORDER BY id""", [win["t0"], win["t1"]]).fetchall()
    lonlat = np.array([[r["lon"], r["lat"]] for r in rows], dtype=float).reshape(-1, 2)
    vil = conn.execute("SELECT ST_X(geom) AS lon, ST_Y(geom) AS lat, population FROM village ORDER BY id").fetchall()
    main = set(settings.main_road_classes)
    return History(
        net=net,
        inc_id=np.array([r["id"] for r in rows], dtype=np.int64),
        inc_code=[r["code"] for r in rows],
        inc_type=np.array([r["type"] for r in rows], dtype=object),
        inc_hour=np.array([r["hour"] for r in rows], dtype=np.int64),
        inc_lonlat=lonlat,
        inc_reported=[r["reported_at"] for r in rows],
        inc_snap=net.snap(lonlat),
        vil_lonlat=np.array([[r["lon"], r["lat"]] for r in vil], dtype=float).reshape(-1, 2),
        vil_pop=np.array([r["population"] for r in vil], dtype=float),
        window={"from": win["t0"].isoformat(), "to": win["t1"].isoformat(), "days": settings.plan_workload_days},
        main_class=np.array([c in main for c in net.road_class], dtype=bool),
    )


def _pct(values: np.ndarray, weights: np.ndarray | None = None) -> dict:
    """p50, p90 and max of finite values (weighted when ``weights`` is given), in seconds."""
    v = np.asarray(values, dtype=float)
    fin = np.isfinite(v)
    out: dict[str, Any] = {"n": int(len(v)), "unreachable": int((~fin).sum())}
    if not fin.any():
        return {**out, "p50": None, "p90": None, "max": None, "mean": None}
    v = v[fin]
    if weights is None:
        p50, p90 = np.percentile(v, [50, 90])
        mean = float(v.mean())
    else:
        w = np.asarray(weights, dtype=float)[fin]
        order = np.argsort(v)
        cw = np.cumsum(w[order])
        total = cw[-1]
        if total <= 0:
            p50 = p90 = float(np.max(v))
            mean = float(v.mean())
        else:
            p50 = v[order][np.searchsorted(cw, 0.5 * total)]
            p90 = v[order][min(np.searchsorted(cw, 0.9 * total), len(v) - 1)]
            mean = float((v * w).sum() / total)
    return {**out, "p50": round(float(p50), 1), "p90": round(float(p90), 1), "max": round(float(v.max()), 1),
            "mean": round(mean, 1)}


def cv(counts: list[float]) -> float | None:
    """Coefficient of variation (population standard deviation / mean) of workload counts."""
    a = np.asarray(counts, dtype=float)
    if len(a) == 0 or a.mean() == 0:
        return None
    return round(float(a.std() / a.mean()), 4)


def source_times(h: History, layout_hq: dict) -> tuple[list, np.ndarray]:
    """Node travel times from every headquarters of the layouts: (keys, array keys x nodes)."""
    keys = [k for k, v in layout_hq.items() if v is not None]
    if not keys:
        return [], np.zeros((0, h.net.n_nodes))
    return keys, h.net.node_times_from(np.array([layout_hq[k] for k in keys], dtype=float))


def evaluate(layout: Layout, h: History, settings, hq_keys: list, node_t: np.ndarray) -> dict:
    """Return {"per": {key: metrics}, "summary": {...}, "owner": incident owner index array}."""
    net = h.net
    inc_owner = assign(layout, h.inc_lonlat)
    edge_owner = assign(layout, net.mid_lonlat)
    vil_owner = assign(layout, h.vil_lonlat)
    row_of = {k: i for i, k in enumerate(hq_keys)}
    inc_t_all = np.full(len(h.inc_id), np.inf)
    edge_t_all = np.full(len(net.edge_id), np.inf)
    main_s, rural_s = settings.main_road_target_min * 60.0, settings.rural_road_target_min * 60.0
    types, type_code = np.unique(h.inc_type.astype(str), return_inverse=True)
    types = [str(t) for t in types]
    per: dict = {}
    for i, k in enumerate(layout.keys):
        inc = inc_owner == i
        edges = edge_owner == i
        vil = vil_owner == i
        if k in row_of and (inc.any() or edges.any()):
            nt = node_t[row_of[k]: row_of[k] + 1]
            if inc.any():
                sub = subset(h.inc_snap, inc)
                inc_t_all[inc] = net.point_times(nt, sub)[0]
            if edges.any():
                edge_t_all[edges] = net.edge_mid_times(nt)[0][edges]
        lengths = net.length_m[edges]
        et = edge_t_all[edges]
        target = np.where(h.main_class[edges], main_s, rural_s)
        within = et <= target
        main_e = h.main_class[edges]
        by_class: dict[str, float] = {}
        for c in sorted(set(net.road_class[edges].tolist())):
            by_class[c] = round(float(lengths[net.road_class[edges] == c].sum()) / 1000.0, 3)
        by_type = dict(zip(types, np.bincount(type_code[inc], minlength=len(types)).tolist(), strict=True))
        per[k] = {
            "area_km2": round(layout.area_km2.get(k, 0.0), 3),
            "road_km": round(float(lengths.sum()) / 1000.0, 3),
            "road_km_by_class": by_class,
            "villages": int(vil.sum()),
            "population": int(h.vil_pop[vil].sum()),
            "incidents": int(inc.sum()),
            "incidents_by_type": {t: n for t, n in by_type.items() if n},
            "incidents_by_hour": np.bincount(h.inc_hour[inc], minlength=HOURS).astype(int).tolist(),
            "incident_time_s": _pct(inc_t_all[inc]),
            "road_time_s": _pct(et, lengths),
            "road_km_within_target": {
                "share": _share(lengths, within),
                "main_share": _share(lengths[main_e], within[main_e]),
                "rural_share": _share(lengths[~main_e], within[~main_e]),
            },
        }
    owned = inc_owner >= 0
    all_edges = edge_owner >= 0
    target_all = np.where(h.main_class, main_s, rural_s)
    summary = {
        "jurisdictions": len(layout.keys),
        "area_km2": round(sum(layout.area_km2.values()), 3),
        "incidents": int(owned.sum()),
        "incidents_without_owner": int((~owned).sum()),
        "incident_time_s": _pct(inc_t_all[owned]),
        "road_time_s": _pct(edge_t_all[all_edges], net.length_m[all_edges]),
        "road_km_within_target_share": _share(net.length_m[all_edges], (edge_t_all <= target_all)[all_edges]),
        "workload_cv": cv([per[k]["incidents"] for k in layout.keys]),
    }
    return {"per": per, "summary": summary, "owner": inc_owner, "inc_t": inc_t_all}


def _share(lengths: np.ndarray, ok: np.ndarray) -> float | None:
    total = float(lengths.sum())
    return None if total == 0 else round(float(lengths[ok].sum()) / total, 4)


def compare_layouts(draft: Layout, published: Layout, h: History, settings, listed_max: int) -> dict:
    """Compare two layouts of one kind (see the module docstring)."""
    hq = {**published.hq, **draft.hq}
    keys, node_t = source_times(h, hq)
    ev_d = evaluate(draft, h, settings, keys, node_t)
    ev_p = evaluate(published, h, settings, keys, node_t)
    rows = []
    for k in sorted(set(draft.keys) | set(published.keys), key=lambda k: str(draft.codes.get(k)
                                                                             or published.codes.get(k))):
        rows.append({
            "key": k, "code": draft.codes.get(k) or published.codes.get(k),
            "name": draft.names.get(k) or published.names.get(k),
            "area_id": draft.area_ids.get(k),
            "published": ev_p["per"].get(k), "draft": ev_d["per"].get(k),
        })
    pk = np.array([published.keys[i] if i >= 0 else None for i in ev_p["owner"]], dtype=object)
    dk = np.array([draft.keys[i] if i >= 0 else None for i in ev_d["owner"]], dtype=object)
    changed = np.flatnonzero(pk != dk)
    items, feats = [], []
    for i in changed[:listed_max]:
        item = {"id": int(h.inc_id[i]), "code": h.inc_code[i], "type": h.inc_type[i],
                "reported_at": h.inc_reported[i].isoformat(),
                "from_key": pk[i], "from_code": published.codes.get(pk[i]),
                "to_key": dk[i], "to_code": draft.codes.get(dk[i]),
                "time_before_s": _finite(ev_p["inc_t"][i]), "time_after_s": _finite(ev_d["inc_t"][i])}
        items.append(item)
        feats.append({"type": "Feature", "id": item["id"],
                      "geometry": {"type": "Point", "coordinates": [float(h.inc_lonlat[i, 0]),
                                                                    float(h.inc_lonlat[i, 1])]},
                      "properties": item})
    return {
        "window": h.window,
        "targets_min": {"main": settings.main_road_target_min, "rural": settings.rural_road_target_min,
                        "main_road_classes": list(settings.main_road_classes)},
        "summary": {"published": ev_p["summary"], "draft": ev_d["summary"]},
        "jurisdictions": rows,
        "changed_areas": changed_areas(draft, published),
        "changed_incidents": {"count": int(len(changed)), "listed": len(items), "items": items,
                              "geojson": {"type": "FeatureCollection", "features": feats}},
    }


def changed_areas(draft: Layout, published: Layout, min_km2: float = 0.001) -> dict:
    """Where the owner changes: each piece of a published area that the draft gives to another
    owner, as GeoJSON (from/to code and name, km² on the sphere's scale at its latitude)."""
    feats = []
    for dk in draft.keys:
        dg = draft.geoms.get(dk)
        if dg is None or dg.is_empty:
            continue
        for pk in published.keys:
            pg = published.geoms.get(pk)
            if pk == dk or pg is None or pg.is_empty or not dg.intersects(pg):
                continue
            piece = shapely.intersection(dg, pg)
            piece = shapely.make_valid(shapely.simplify(piece, 0.00003, preserve_topology=True))
            polys = [g for g in getattr(piece, "geoms", [piece]) if g.geom_type in ("Polygon", "MultiPolygon")]
            if not polys:
                continue
            piece = shapely.union_all(polys)
            lat = piece.centroid.y
            km2 = piece.area * (111.32 ** 2) * float(np.cos(np.radians(lat)))
            if km2 < min_km2:
                continue
            feats.append({"type": "Feature", "geometry": shapely.geometry.mapping(piece), "properties": {
                "from_key": pk, "from_code": published.codes.get(pk), "from_name": published.names.get(pk),
                "to_key": dk, "to_code": draft.codes.get(dk), "to_name": draft.names.get(dk),
                "area_km2": round(km2, 3)}})
    return {"type": "FeatureCollection", "features": feats}


def _finite(x: float) -> float | None:
    return round(float(x), 1) if np.isfinite(x) else None


def compare_plan(conn: psycopg.Connection, plan_id: int, settings, history: History | None = None) -> dict:
    """Compare a plan with the layout of its kind in force now."""
    plan = get_plan_row(conn, plan_id)
    h = history or load_history(conn, settings)
    out = compare_layouts(draft_layout(conn, plan_id, settings.metric_srid),
                          published_layout(conn, plan["kind"], settings.metric_srid), h, settings,
                          settings.plan_changed_incidents_max)
    return {"plan_id": plan_id, "kind": plan["kind"], "name": plan["name"], "objective": plan["objective"], **out}
