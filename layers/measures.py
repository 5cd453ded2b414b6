"""The chief's grid and village measures (issue 14): what separates a good grid from a bad one.

Per patrol grid of a station, over a patrol window the user picks (``Window``: 7 / 30 / 90
days or from-to, Beijing-local days, ``to`` inclusive):

- ``drive_time_s``: road travel time (the routing engine's graph, off-road legs included) from
  the station's headquarters, or with ``source='units'`` from the nearest of the headquarters
  and the station's available units, to the grid's farthest village; a grid without villages
  (a town's community grids) gets the time by which its farthest road segment is wholly
  reached instead (``drive_to``: ``village`` or ``road``; None: unreachable or no road);
- ``patrol_share``: share of the grid's road km (segments whose midpoint lies in the grid, as
  everywhere on the maps) driven by a unit on at least one day of the window;
  ``patrol_share_prev`` the same over the window of the same length just before, and
  ``patrol_trend`` their difference (share points, positive = more patrolled now);
- ``incidents``: incidents of the grid reported in the window; ``incidents_per_patrolled_km``
  those per patrolled km (None when nothing was patrolled).

Per village (``villages``): its grid, drive time, whether that is within the target of the road
it lies on (main-road or rural-road target, as the coverage maps), and the patrol share of its
roads (segments whose midpoint lies within ``chief_village_road_m``).

Plain functions of a connection and plain arguments: no Flask here (the web layer checks scope).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import psycopg

from gisapp.core.config import Settings
from gisapp.core.errors import Text, ValidationError

MEASURES = ("drive_time", "patrol_share", "patrol_trend", "incidents_per_km")
SOURCES = ("station", "units")


# --- the patrol window -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Window:
    """A patrol window of Beijing-local days, ``start`` and ``end`` inclusive; ``preset`` the days
    of a preset (7, 30, 90) or None for a from-to window."""

    start: date
    end: date
    preset: int | None = None

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Window:
        """The window of the same length just before this one."""
        return Window(self.start - timedelta(days=self.days), self.start - timedelta(days=1), None)

    def utc_bounds(self, tz: str) -> tuple[datetime, datetime]:
        """[start, end) of the window as UTC instants (local midnights)."""
        z = ZoneInfo(tz)
        a = datetime.combine(self.start, time(0), z).astimezone(UTC)
        b = datetime.combine(self.end + timedelta(days=1), time(0), z).astimezone(UTC)
        return a, b

    def query(self) -> dict[str, str]:
        """The URL parameters that name this window (kept in the page's links)."""
        if self.preset is not None:
            return {"window": str(self.preset)}
        return {"from": self.start.isoformat(), "to": self.end.isoformat()}

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.start.isoformat(), "to": self.end.isoformat(), "days": self.days,
                "preset": self.preset}


def local_today(settings: Settings) -> date:
    return datetime.now(ZoneInfo(settings.local_timezone)).date()


def _date(raw: str, name: str) -> date:
    try:
        if len(raw) != 10:
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        label = Text.pair("开始日期（from）", "The start date (from)") if name == "from" else \
            Text.pair("结束日期（to）", "The end date (to)")
        raise ValidationError(f"{name} must be a date YYYY-MM-DD, not {raw!r}", name, key="err.window.date",
                              params={"value": raw[:40], "name": label}) from None


def parse_window(args: Mapping[str, str], settings: Settings, today: date | None = None) -> Window:
    """Read the patrol window from request parameters: ``window`` (a preset number of days, ending
    today) or ``from`` and ``to`` (dates; ``to`` defaults to today). Bad input raises
    ValidationError naming the field (nothing else is read)."""
    today = today or local_today(settings)
    presets = [int(p) for p in settings.chief_window_presets]
    raw_from = (args.get("from") or "").strip()
    raw_to = (args.get("to") or "").strip()
    raw_win = (args.get("window") or "").strip()
    if raw_from or raw_to:
        if not raw_from:
            raise ValidationError("from is required with to", "from", key="err.window.from_required")
        start = _date(raw_from, "from")
        end = _date(raw_to, "to") if raw_to else today
        if end < start:
            raise ValidationError("to is before from", "to", key="err.window.reversed")
        if end > today:
            raise ValidationError("to is in the future", "to", key="err.window.future",
                                  params={"today": today.isoformat()})
        n = (end - start).days + 1
        if n > settings.chief_window_max_days:
            raise ValidationError(f"the window is longer than {settings.chief_window_max_days} days", "from",
                                  key="err.window.too_long", params={"max": settings.chief_window_max_days})
        return Window(start, end, None)
    if raw_win:
        if not raw_win.isdigit() or int(raw_win) not in presets:
            raise ValidationError(f"window must be one of {presets}", "window", key="err.window.preset",
                                  params={"allowed": ", ".join(str(p) for p in presets)})
        n = int(raw_win)
    else:
        n = presets[0]
    return Window(today - timedelta(days=n - 1), today, n)


def parse_measure(raw: str | None) -> str:
    if not raw:
        return MEASURES[0]
    if raw not in MEASURES:
        raise ValidationError(f"measure must be one of {', '.join(MEASURES)}", "measure", key="err.measure.unknown",
                              params={"allowed": ", ".join(MEASURES)})
    return raw


def parse_source(raw: str | None) -> str:
    if not raw:
        return SOURCES[0]
    if raw not in SOURCES:
        raise ValidationError(f"source must be one of {', '.join(SOURCES)}", "source", key="err.source.unknown",
                              params={"allowed": ", ".join(SOURCES)})
    return raw


# --- drive times -----------------------------------------------------------------------------------

def _station_sources(conn: psycopg.Connection, station_id: int, source: str) -> list[tuple[float, float]]:
    row = conn.execute("SELECT ST_X(hq) AS lon, ST_Y(hq) AS lat FROM organisation WHERE id = %s AND hq IS NOT NULL",
                       [station_id]).fetchone()
    pts = [(row["lon"], row["lat"])] if row else []
    if source == "units":
        pts += [(r["lon"], r["lat"]) for r in conn.execute(
            """SELECT ST_X(last_position) AS lon, ST_Y(last_position) AS lat FROM unit
                WHERE organisation_id = %s AND status = 'available' AND last_position IS NOT NULL ORDER BY id""",
            [station_id])]
    return pts


def farthest_road_times(conn: psycopg.Connection, settings: Settings, station_id: int,
                        edge_sets: dict[int, list[int]], source: str = "station") -> dict[int, float | None]:
    """Per key of ``edge_sets`` (road edge ids): the time (s) by which every one of those road
    segments is wholly reached from the station (or its nearest available unit); None: some never is."""
    import routing
    from routing.reach import full_times

    if not edge_sets:
        return {}
    src = _station_sources(conn, station_id, source)
    router = routing.get_router(conn, settings)
    g = router.graph
    if not src or g.n_edges == 0:
        return {k: None for k in edge_sets}
    sources = router.snap(np.array(src, dtype=np.float64).reshape(-1, 2))
    t = full_times(g, router.from_points(sources, with_sources=False).dist, sources)
    out: dict[int, float | None] = {}
    for k, ids in edge_sets.items():
        idx = [g.edge_index_by_id[i] for i in ids if i in g.edge_index_by_id]
        worst = float(t[idx].max()) if idx else np.inf
        out[k] = worst if idx and np.isfinite(worst) else None
    return out


def drive_times(conn: psycopg.Connection, settings: Settings, station_id: int, points: list[tuple[float, float]],
                source: str = "station") -> tuple[list[float | None], list[int]]:
    """Road travel time (s) from the station (or its nearest available unit) to each point, None when
    unreachable, and the snapped edge index of each point (-1: no road)."""
    import routing

    if not points:
        return [], []
    src = _station_sources(conn, station_id, source)
    router = routing.get_router(conn, settings)
    targets = router.snap(np.array(points, dtype=np.float64).reshape(-1, 2))
    if not src or router.graph.n_edges == 0:
        return [None] * len(points), [int(e) for e in targets.edge]
    sources = router.snap(np.array(src, dtype=np.float64).reshape(-1, 2))
    times = router.times_to(sources, targets)
    return [float(t) if np.isfinite(t) else None for t in times], [int(e) for e in targets.edge]


# --- grids -----------------------------------------------------------------------------------------

_GRID_SQL = """
WITH g AS (SELECT id, code, name, organisation_id, geom FROM grid WHERE organisation_id = %(org)s),
     e AS (SELECT g.id AS grid_id, e.id AS edge_id, e.length_m
             FROM g JOIN road_edge e ON e.geom && g.geom AND ST_Intersects(g.geom, ST_LineInterpolatePoint(e.geom, 0.5))),
     roads AS (
        SELECT e.grid_id, sum(e.length_m) AS length_m,
               coalesce(sum(e.length_m) FILTER (WHERE EXISTS (
                   SELECT 1 FROM patrol_edge_day p WHERE p.edge_id = e.edge_id AND p.day BETWEEN %(s)s AND %(e)s)), 0)
                   AS cur_m,
               coalesce(sum(e.length_m) FILTER (WHERE EXISTS (
                   SELECT 1 FROM patrol_edge_day p WHERE p.edge_id = e.edge_id AND p.day BETWEEN %(ps)s AND %(pe)s)), 0)
                   AS prev_m
          FROM e GROUP BY e.grid_id),
     inc AS (SELECT i.grid_id, count(*) AS n FROM incident i
              WHERE i.grid_id IN (SELECT id FROM g) AND i.reported_at >= %(t0)s AND i.reported_at < %(t1)s
              GROUP BY i.grid_id)
SELECT g.id, g.code, g.name, g.organisation_id, o.name AS org_name, o.name_en AS org_name_en,
       coalesce(roads.length_m, 0)::float AS length_m, coalesce(roads.cur_m, 0)::float AS cur_m,
       coalesce(roads.prev_m, 0)::float AS prev_m, coalesce(inc.n, 0)::int AS incidents,
       ST_AsGeoJSON(g.geom, 6)::json AS geometry
  FROM g JOIN organisation o ON o.id = g.organisation_id
  LEFT JOIN roads ON roads.grid_id = g.id LEFT JOIN inc ON inc.grid_id = g.id
 ORDER BY g.code
"""


def station_villages(conn: psycopg.Connection, station_id: int) -> list[dict]:
    """The villages of a station: inside its grids, else inside its current jurisdiction (no grid)."""
    return conn.execute(
        """WITH j AS (SELECT geom FROM jurisdiction WHERE organisation_id = %(org)s AND kind = 'station'
                        AND valid_from <= now() AND (valid_to IS NULL OR valid_to > now()))
           SELECT v.id, v.code, v.name, v.population, ST_X(v.geom) AS lon, ST_Y(v.geom) AS lat,
                  gr.id AS grid_id, gr.code AS grid_code, gr.name AS grid_name
             FROM village v
             LEFT JOIN LATERAL (SELECT g.id, g.code, g.name FROM grid g
                                 WHERE g.organisation_id = %(org)s AND ST_Contains(g.geom, v.geom)
                                 ORDER BY g.code LIMIT 1) gr ON true
            WHERE gr.id IS NOT NULL OR EXISTS (SELECT 1 FROM j WHERE ST_Contains(j.geom, v.geom))
            ORDER BY v.code""", {"org": station_id}).fetchall()


def _share(done: float, total: float) -> float | None:
    return round(done / total, 4) if total > 0 else None


def grid_measures(conn: psycopg.Connection, settings: Settings, station_id: int, window: Window,
                  source: str = "station") -> dict:
    """The station's grids with every measure over ``window``, as a GeoJSON FeatureCollection."""
    prev = window.previous()
    t0, t1 = window.utc_bounds(settings.local_timezone)
    rows = conn.execute(_GRID_SQL, {"org": station_id, "s": window.start, "e": window.end, "ps": prev.start,
                                    "pe": prev.end, "t0": t0, "t1": t1}).fetchall()
    vills = station_villages(conn, station_id)
    times, _ = drive_times(conn, settings, station_id, [(v["lon"], v["lat"]) for v in vills], source)
    far: dict[int, tuple[float | None, str, int]] = {}
    for v, tm in zip(vills, times, strict=True):
        if v["grid_id"] is None:
            continue
        cur = far.get(v["grid_id"])
        n = (cur[2] if cur else 0) + 1
        worse = cur is None or (tm is None and cur[0] is not None) or (
            tm is not None and cur[0] is not None and tm > cur[0])
        far[v["grid_id"]] = (tm, v["name"], n) if worse else (cur[0], cur[1], n)
    # a grid without a village (a town's community grids): the time to its farthest road instead
    bare = [r["id"] for r in rows if r["id"] not in far]
    road_t: dict[int, float | None] = {}
    if bare:
        edge_sets = {r["grid_id"]: r["edges"] for r in conn.execute(
            """SELECT g.id AS grid_id, array_agg(e.id ORDER BY e.id) AS edges
                 FROM grid g JOIN road_edge e ON e.geom && g.geom
                                             AND ST_Intersects(g.geom, ST_LineInterpolatePoint(e.geom, 0.5))
                WHERE g.id = ANY(%s) GROUP BY g.id""", [bare])}
        road_t = farthest_road_times(conn, settings, station_id, edge_sets, source)
    feats = []
    for r in rows:
        geom = r.pop("geometry")
        length, cur_m, prev_m = r.pop("length_m"), r.pop("cur_m"), r.pop("prev_m")
        share, share_prev = _share(cur_m, length), _share(prev_m, length)
        f = far.get(r["id"])
        if f is None and road_t.get(r["id"]) is not None:
            f = (road_t[r["id"]], None, 0)
        props = {**r, "road_km": round(length / 1000, 3), "patrolled_km": round(cur_m / 1000, 3),
                 "patrol_share": share, "patrol_share_prev": share_prev,
                 "patrol_trend": round(share - share_prev, 4) if share is not None and share_prev is not None
                 else None,
                 "incidents_per_km": round(r["incidents"] / (cur_m / 1000), 3) if cur_m > 0 else None,
                 "drive_time_s": round(f[0], 1) if f and f[0] is not None else None,
                 "drive_time_min": round(f[0] / 60, 1) if f and f[0] is not None else None,
                 "farthest_village": f[1] if f else None, "villages": f[2] if f else 0,
                 "drive_to": ("village" if f[1] is not None else "road") if f else None,
                 "window_from": window.start.isoformat(), "window_to": window.end.isoformat(),
                 "window_days": window.days}
        feats.append({"type": "Feature", "id": r["id"], "geometry": geom, "properties": props})
    return {"type": "FeatureCollection", "features": feats, "window": window.to_dict(),
            "previous": prev.to_dict(), "source": source}


# --- villages --------------------------------------------------------------------------------------

def villages(conn: psycopg.Connection, settings: Settings, station_id: int, window: Window,
             source: str = "station") -> list[dict]:
    """The station's villages: grid, drive time, within target or not, patrol share of its roads."""
    from .data import target_min

    vills = station_villages(conn, station_id)
    times, edges = drive_times(conn, settings, station_id, [(v["lon"], v["lat"]) for v in vills], source)
    classes: dict[int, str] = {}
    if vills:
        import routing
        from routing.graph import ROAD_CLASSES

        g = routing.get_router(conn, settings).graph
        classes = {e: ROAD_CLASSES[g.edge_class[e]] for e in set(edges) if e >= 0}
    roads = {r["id"]: r for r in conn.execute(
        """SELECT v.id, coalesce(sum(e.length_m), 0)::float AS length_m,
                  coalesce(sum(e.length_m) FILTER (WHERE EXISTS (
                      SELECT 1 FROM patrol_edge_day p WHERE p.edge_id = e.id AND p.day BETWEEN %(s)s AND %(e)s)),
                      0)::float AS cur_m
             FROM village v
             LEFT JOIN road_edge e ON ST_DWithin(v.geom::geography, ST_LineInterpolatePoint(e.geom, 0.5)::geography,
                                                 %(r)s)
            WHERE v.id = ANY(%(ids)s) GROUP BY v.id""",
        {"s": window.start, "e": window.end, "r": settings.chief_village_road_m,
         "ids": [v["id"] for v in vills]})}
    out = []
    for v, tm, e in zip(vills, times, edges, strict=True):
        target_s = target_min(classes[e], settings) * 60 if e >= 0 else settings.rural_road_target_min * 60
        rd = roads.get(v["id"], {"length_m": 0.0, "cur_m": 0.0})
        out.append({"id": v["id"], "code": v["code"], "name": v["name"], "population": v["population"],
                    "lon": round(v["lon"], 6), "lat": round(v["lat"], 6), "grid_id": v["grid_id"],
                    "grid_code": v["grid_code"], "grid_name": v["grid_name"],
                    "drive_time_s": round(tm, 1) if tm is not None else None,
                    "drive_time_min": round(tm / 60, 1) if tm is not None else None,
                    "target_min": round(target_s / 60, 1), "within_target": tm is not None and tm <= target_s,
                    "road_km": round(rd["length_m"] / 1000, 3), "patrolled_km": round(rd["cur_m"] / 1000, 3),
                    "patrol_share": _share(rd["cur_m"], rd["length_m"])})
    return out


# --- classes for the map ---------------------------------------------------------------------------

def quantile_breaks(values: list[float | None], n: int = 5) -> list[float]:
    """Increasing class breaks (at most ``n - 1``) so grids fall into different classes: every
    distinct value its own class when there are at most ``n`` of them, else quantiles; a value
    belongs to the first class whose break is above it."""
    vals = sorted({float(v) for v in values if v is not None})
    if len(vals) <= 1:
        return []
    if len(vals) <= n:
        return vals[1:]
    allv = sorted(float(v) for v in values if v is not None)
    out: list[float] = []
    for i in range(1, n):
        q = allv[min(len(allv) - 1, int(len(allv) * i / n))]
        if (not out or q > out[-1]) and q > allv[0]:
            out.append(q)
    return out


def class_of(value: float | None, breaks: list[float]) -> int | None:
    """The class index of ``value`` (0 .. len(breaks)); None for no value."""
    if value is None:
        return None
    for i, b in enumerate(breaks):
        if value < b:
            return i
    return len(breaks)
