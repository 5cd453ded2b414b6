"""Compose the role pages' maps from the layer builders (coverage, grids, plan, dispatch).

Each function reads what its map shows through ``gisapp.mapdata`` (inside the caller's
transaction), builds the layers and returns the ``MapComposer`` (not yet rendered, so a
page can add more: the planning issue adds ``folium.plugins.Draw`` to the plan map) with
the side-panel data.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from gisapp.core.config import Settings
from gisapp.core.i18n import t

from . import builders as B
from . import data as mapdata
from .compose import Basemap, MapComposer
from .plan_tools import add_planning_tools
from .tiles import TILE_LAYERS

# dataset_meta layers that each map layer key draws from (for the attribution).
_META_OF = {
    "county": "county", "towns": "towns", "station_jurisdictions": "jurisdictions",
    "traffic_jurisdictions": "jurisdictions", "joint_zones": "joint_zones", "grids": "grids",
    "grids_coverage": "grids", "grids_incidents": "grids", "roads": "road_edges", "coverage": "road_edges",
    "coverage_live": "units", "gaps": "road_edges", "villages": "villages", "stations": "organisations",
    "units": "units", "incidents": "incidents", "incidents_open": "incidents", "heatmap": "incidents",
    "service_areas": "road_edges", "service_points": "service_points",
}
# Layers whose positions are synthetic even when their names are real (town seats are hand-placed).
_ALWAYS_SYNTHETIC = {"towns"}


@dataclass
class PageMap:
    """A page's map (still open for additions) and the data its side panel shows."""

    composer: MapComposer
    panel: dict[str, Any] = field(default_factory=dict)


def basemap_from(settings: Settings) -> Basemap | None:
    """Return the configured raster basemap, or None (the default: no external tiles)."""
    url = (settings.basemap_url or "").strip()
    if not url or url.lower() == "none":
        return None
    return Basemap(url, settings.basemap_attribution, settings.basemap_gcj02)


def attributions(meta: dict[str, dict], keys: list[str], lang: str) -> list[str]:
    """Return the attribution texts for the layers ``keys``: the real outline source and, when any
    layer holds generated data (or has no provenance record), the synthetic-data label."""
    out = [t("map.attribution_real", lang)]
    synthetic = False
    for k in keys:
        if k == "county":
            continue
        row = meta.get(_META_OF.get(k, k))
        if k in _ALWAYS_SYNTHETIC or row is None or row.get("synthetic"):
            synthetic = True
    if synthetic:
        out.append(t("map.attribution_synthetic", lang))
    return out


def tile_url(layer: str, versions: dict[str, int], areas: tuple[str, ...]) -> str:
    """Return the vector-tile URL template of ``layer``, versioned so browsers may cache tiles."""
    v = ".".join(str(versions.get(a, 0)) for a in areas)
    return f"/tiles/{layer}/{{z}}/{{x}}/{{y}}.mvt?v={v}"


def lazy_url(key: str, **params: Any) -> str:
    """Return the URL a hidden layer fetches its features from when first shown (``/map/data/<key>``)."""
    qs = "&".join(f"{k}={v}" for k, v in params.items() if v is not None)
    return f"/map/data/{key}" + (f"?{qs}" if qs else "")


def lazy_data(conn: psycopg.Connection, settings: Settings, lang: str, key: str,
              station_id: int | None = None) -> dict:
    """Return the data of a lazily loaded layer, prepared by the same builder as an embedded one."""
    if key == "villages":
        return B.villages(mapdata.villages(conn), lang).element.data
    if key == "units":
        return B.units(mapdata.units(conn, organisation_id=station_id), lang).element.data
    if key == "service_points":
        return B.service_points(mapdata.service_points(conn), lang).element.data
    if key in ("station_jurisdictions", "traffic_jurisdictions"):
        kind = key.split("_")[0]
        versions = mapdata.data_versions(conn)
        build = B.station_jurisdictions if kind == "station" else B.traffic_jurisdictions
        return build(_jurisdictions(conn, settings, versions, kind), lang).element.data
    if key == "joint_zones":
        return B.joint_zones(_joint_zones(conn, settings, mapdata.data_versions(conn)), lang).element.data
    if key == "heatmap":
        since = datetime.now(UTC) - timedelta(days=settings.map_heat_days)
        points = mapdata.incident_heat(conn, since, settings.map_heat_cell_m, settings.metric_srid,
                                       station_id=station_id)
        return {"points": points, "max": B.heat_max(points)}
    raise KeyError(key)


_EMPTY: dict = {"type": "FeatureCollection", "features": []}



_MEMO: dict[tuple, Any] = {}
_MEMO_LOCK = threading.Lock()
_MEMO_MAX = 64


def _memo(settings: Settings, versions: dict[str, int], areas: tuple[str, ...], name: str, fn, *args: Any) -> Any:
    """Return ``fn(*args)``, cached per database and per the data versions of ``areas`` (builders copy
    what they change, so a cached value is shared safely)."""
    key = (settings.database_url, name, args, tuple(versions.get(a, 0) for a in areas))
    with _MEMO_LOCK:
        if key in _MEMO:
            return _MEMO[key]
    val = fn()
    with _MEMO_LOCK:
        if len(_MEMO) >= _MEMO_MAX:
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[key] = val
    return val


def _jurisdictions(conn: psycopg.Connection, settings: Settings, versions: dict[str, int], kind: str) -> dict:
    return _memo(settings, versions, ("jurisdictions", "organisations"), "jurisdictions",
                 lambda: mapdata.jurisdictions(conn, kind, settings.map_simplify_m, settings.metric_srid), kind)


def _joint_zones(conn: psycopg.Connection, settings: Settings, versions: dict[str, int]) -> dict:
    return _memo(settings, versions, ("joint_zones", "organisations"), "joint_zones",
                 lambda: mapdata.joint_zones(conn, settings.map_simplify_m, settings.metric_srid))


def _composer(conn: psycopg.Connection, settings: Settings, lang: str, config: dict | None = None) -> MapComposer:
    bounds = mapdata.county_bounds(conn, settings)
    basemap = basemap_from(settings)
    # every time the scripts show is in local_timezone (gisapp.time in gisapp-map.js)
    return MapComposer(lang, bounds, basemap, attributions=[], config={"tz": settings.local_timezone, **(config or {})})


def _finish_attribution(c: MapComposer, conn: psycopg.Connection) -> None:
    c.attributions = attributions(mapdata.dataset_meta(conn), [lyr.key for lyr in c.layers], c.lang)


def _base(c: MapComposer, conn: psycopg.Connection, settings: Settings, lang: str) -> None:
    c.add(B.county_outline(mapdata.county(conn), lang, land_fill=c.basemap is None))


def coverage_map(conn: psycopg.Connection, settings: Settings, lang: str, roads: str = "tiles",
                 service_areas_endpoint: str | None = None, chief_station_id: int | None = None) -> PageMap:
    """The coverage page: roads by best response time (tiles, or one GeoJSON with ``roads='geojson'``),
    the gap list, per-jurisdiction table, stations, units and response radius on demand."""
    versions = mapdata.data_versions(conn)
    budgets = list(settings.service_area_budgets_min)
    c = _composer(conn, settings, lang, {"endpoints": {"serviceAreas": service_areas_endpoint or ""},
                                         "serviceAreaBudgets": budgets})
    _base(c, conn, settings, lang)
    c.add(B.station_jurisdictions(_jurisdictions(conn, settings, versions, "station"), lang, show=False,
                                  lazy_url=lazy_url("station_jurisdictions")))
    c.add(B.joint_zones(_joint_zones(conn, settings, versions), lang, show=False, lazy_url=lazy_url("joint_zones")))
    summary = mapdata.coverage_summary(conn, settings)
    if roads == "geojson":
        c.add(B.coverage_geojson(mapdata.coverage_roads_gdf(conn), lang, show=True))
    else:
        c.add(B.roads_tiles(tile_url("roads", versions, TILE_LAYERS["roads"].areas), lang, show=not summary["computed"]))
        c.add(B.coverage_tiles(tile_url("coverage", versions, TILE_LAYERS["coverage"].areas), lang,
                               settings.main_road_target_min, settings.rural_road_target_min,
                               show=summary["computed"]))
        c.add(B.coverage_tiles(tile_url("coverage", versions, TILE_LAYERS["coverage"].areas), lang,
                               settings.main_road_target_min, settings.rural_road_target_min, live=True,
                               show=False))
    # a chief's gap list is their station's (issue 14); county roles see the county's
    gaps = _memo(settings, versions, ("roads", "coverage", "jurisdictions"), "gaps",
                 lambda: mapdata.coverage_gaps(conn, settings, settings.map_gap_list_limit,
                                               station_id=chief_station_id), chief_station_id)
    c.add(B.coverage_gaps(gaps, lang, show=bool(gaps["features"])))
    # 出警半径 is empty until the user asks for a station's or unit's radius (then gisapp.loadServiceAreas
    # fills and switches it on): not ticked when it has nothing to show (issue 14)
    c.add(B.service_areas(None, lang, tuple(budgets), show=False))
    c.add(B.villages(_EMPTY, lang, show=False, lazy_url=lazy_url("villages")))
    c.add(B.towns(mapdata.towns(conn), lang))
    c.add(B.stations(mapdata.organisations(conn), lang))
    units_fc = mapdata.units(conn)
    c.add(B.units(_EMPTY, lang, show=False, lazy_url=lazy_url("units")))
    _finish_attribution(c, conn)
    panel = {
        "units": [f["properties"] for f in units_fc["features"]
                  if f["properties"]["status"] not in ("off_duty", "out_of_service")][:300],
        "summary": summary,
        "gaps": [f["properties"] for f in gaps["features"]],
        "by_jurisdiction": _memo(settings, versions, ("roads", "coverage", "jurisdictions", "organisations"),
                                 "by_jurisdiction", lambda: mapdata.coverage_by_jurisdiction(conn, settings)),
        "stations": mapdata.stations_list(conn),
        "budgets": budgets,
        "mine": chief_station_id,
        "gaps_station": mapdata.station_org(conn, chief_station_id) if chief_station_id else None,
        "targets": {"main": settings.main_road_target_min, "rural": settings.rural_road_target_min},
    }
    return PageMap(c, panel)


def grids_map(conn: psycopg.Connection, settings: Settings, lang: str, station_id: int,
              window: Any = None, measure: str = "drive_time", source: str = "station") -> PageMap:
    """The station chief's page: their station's grids coloured by a chosen measure (drive time to
    the farthest village, patrol share and its trend, incidents per patrolled km, over ``window``:
    ``layers.measures``), by response coverage and by incidents; the villages table."""
    from . import measures as M

    window = window or M.parse_window({}, settings)
    versions = mapdata.data_versions(conn)
    c = _composer(conn, settings, lang)
    _base(c, conn, settings, lang)
    since = datetime.now(UTC) - timedelta(days=settings.map_heat_days)
    fc = mapdata.grids(conn, settings, organisation_id=station_id, since=since)
    mfc = M.grid_measures(conn, settings, station_id, window, source)
    vills = M.villages(conn, settings, station_id, window, source)
    juris = mapdata.jurisdictions(conn, "station", settings.map_simplify_m, settings.metric_srid,
                                  organisation_id=station_id)
    c.add(B.roads_tiles(tile_url("roads", versions, TILE_LAYERS["roads"].areas), lang))
    c.add(B.grid_measures(mfc, lang, measure, show=True))
    c.add(B.grids(fc, lang, color_by="coverage", show=False))
    c.add(B.grids(fc, lang, color_by="incidents", show=False))
    unpatrolled = mapdata.unpatrolled_roads(conn, settings, station_id, window=window)
    c.add(B.unpatrolled_roads(unpatrolled, lang, window.days, show=True))
    c.add(B.station_jurisdictions(juris, lang, show=True))
    c.add(B.incidents_heatmap(None, lang, show=False, lazy_url=lazy_url("heatmap", station=station_id)))
    recent = datetime.now(UTC) - timedelta(days=settings.map_incident_days)
    c.add(B.incidents_cluster(mapdata.incidents(conn, since=recent, limit=settings.map_incident_limit,
                                                station_id=station_id), lang, show=False))
    c.add(B.villages(mapdata.villages(conn), lang, show=True))
    c.add(B.stations(mapdata.organisations(conn), lang))
    c.add(B.units(mapdata.units(conn, organisation_id=station_id), lang, show=True))
    c.add(B.service_points(_EMPTY, lang, show=False, lazy_url=lazy_url("service_points")))
    if juris["features"]:
        xs, ys = [], []
        _coords(juris["features"][0]["geometry"]["coordinates"], xs, ys)
        c.bounds = [[min(ys), min(xs)], [max(ys), max(xs)]]
    _finish_attribution(c, conn)
    cov = {f["properties"]["id"]: f["properties"] for f in fc["features"]}
    rows = []
    for f in mfc["features"]:
        p = dict(f["properties"])
        p["share_within"] = cov.get(p["id"], {}).get("share_within")
        p["staff"] = cov.get(p["id"], {}).get("staff")
        rows.append(p)
    return PageMap(c, {"grids": rows, "villages": vills, "patrol_days": window.days, "window": window,
                       "measure": measure, "measures": M.MEASURES, "source": source, "sources": M.SOURCES,
                       "presets": [int(p) for p in settings.chief_window_presets]})


def _coords(obj: Any, xs: list[float], ys: list[float]) -> None:
    if isinstance(obj, list) and obj and isinstance(obj[0], (int, float)):
        xs.append(obj[0])
        ys.append(obj[1])
    elif isinstance(obj, list):
        for o in obj:
            _coords(o, xs, ys)


def plan_map(conn: psycopg.Connection, settings: Settings, lang: str) -> PageMap:
    """The planner's base map: jurisdictions (station and traffic), joint zones, grids, roads, villages."""
    versions = mapdata.data_versions(conn)
    c = _composer(conn, settings, lang)
    _base(c, conn, settings, lang)
    c.add(B.roads_tiles(tile_url("roads", versions, TILE_LAYERS["roads"].areas), lang))
    c.add(B.grid_tiles(tile_url("grids", versions, TILE_LAYERS["grids"].areas), lang, show=False))
    st = _jurisdictions(conn, settings, versions, "station")
    c.add(B.station_jurisdictions(st, lang, show=True))
    c.add(B.traffic_jurisdictions(_jurisdictions(conn, settings, versions, "traffic"), lang, show=False))
    c.add(B.joint_zones(_joint_zones(conn, settings, versions), lang, show=False))
    since = datetime.now(UTC) - timedelta(days=settings.map_heat_days)
    c.add(B.incidents_heatmap(mapdata.incident_heat(conn, since, settings.map_heat_cell_m, settings.metric_srid),
                              lang, show=False))
    c.add(B.villages(mapdata.villages(conn), lang, show=False))
    c.add(B.towns(mapdata.towns(conn), lang))
    c.add(B.stations(mapdata.organisations(conn), lang))
    c.add(B.service_points(mapdata.service_points(conn), lang, show=False))
    _finish_attribution(c, conn)
    add_planning_tools(c.map, c.lang)
    return PageMap(c, {"jurisdictions": [f["properties"] for f in st["features"]]})


def dispatch_map(conn: psycopg.Connection, settings: Settings, lang: str) -> PageMap:
    """The dispatcher's live map: open incidents, units by status, stations, jurisdictions, roads."""
    versions = mapdata.data_versions(conn)
    c = _composer(conn, settings, lang)
    _base(c, conn, settings, lang)
    c.add(B.roads_tiles(tile_url("roads", versions, TILE_LAYERS["roads"].areas), lang))
    c.add(B.station_jurisdictions(_jurisdictions(conn, settings, versions, "station"), lang, show=False,
                                  lazy_url=lazy_url("station_jurisdictions")))
    c.add(B.traffic_jurisdictions(_jurisdictions(conn, settings, versions, "traffic"), lang, show=False,
                                  lazy_url=lazy_url("traffic_jurisdictions")))
    c.add(B.joint_zones(_joint_zones(conn, settings, versions), lang, show=False, lazy_url=lazy_url("joint_zones")))
    c.add(B.towns(mapdata.towns(conn), lang))
    c.add(B.stations(mapdata.organisations(conn), lang))
    open_inc = mapdata.incidents(conn, statuses=("open", "dispatched"), limit=settings.map_incident_limit)
    c.add(B.incidents_cluster(open_inc, lang, name_key="layer.incidents_open", key="incidents"))
    c.add(B.units(mapdata.units(conn), lang))
    c.add(B.service_areas(None, lang, tuple(settings.service_area_budgets_min), show=True))
    _finish_attribution(c, conn)
    units = mapdata.units(conn)
    by_status: dict[str, int] = {}
    for f in units["features"]:
        by_status[f["properties"]["status"]] = by_status.get(f["properties"]["status"], 0) + 1
    return PageMap(c, {"open_incidents": [f["properties"] for f in open_inc["features"]][:200],
                       "units_by_status": by_status})
