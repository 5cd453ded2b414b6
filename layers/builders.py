"""Build each kind of map layer: one function per layer kind, each with its style, legend and popups.

Every builder takes plain data (GeoJSON FeatureCollections from ``gisapp.mapdata``, or a
tile URL) and the UI language, and returns a ``MapLayer``: the folium layer (named for the
layer control), its legend section, and the key under which browser scripts find it
(``gisapp.layers[key]``). Styles come from ``layers.style``; texts from ``gisapp.i18n``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import folium
from folium.plugins import HeatMap, MarkerCluster
from folium.template import Template
from folium.utilities import JsCode

from gisapp.core.i18n import t

from . import style as S
from .elements import LegendEntry, LegendSection, VectorTileLayer


@dataclass
class MapLayer:
    """A built layer: the folium element, its legend section and its registry key."""

    key: str
    element: folium.map.Layer
    legend: LegendSection | None = None


def _bind(kind: str) -> JsCode:
    return JsCode(f"function (f, l) {{ gisapp.bindFeature(l, f, {kind!r}); }}")


LAZY_KEYS = ("villages", "units", "service_points", "heatmap", "station_jurisdictions", "traffic_jurisdictions",
             "joint_zones")


def _with_style(fc: dict, fn) -> dict:
    """Return a copy of ``fc`` with ``properties.style`` set by ``fn(properties)``."""
    out = copy.deepcopy(fc)
    for f in out["features"]:
        f["properties"]["style"] = fn(f["properties"])
    return out


class GeoLayer(folium.map.Layer):
    """GeoJSON features styled by ``properties.style``, points drawn by ``gisapp.marker(kind, ...)``,
    tooltips and popups by ``gisapp.bindFeature``; embedded, or fetched from ``lazy_url`` the first
    time the layer is switched on (hidden layers cost the page nothing)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.geoJson({{ (none if this.lazy_url else this.data)|tojson }}, {
            style: function (f) { return (f.properties && f.properties.style) || {}; },
            pointToLayer: function (f, latlng) { return gisapp.marker({{ this.kind|tojson }}, f, latlng); },
            onEachFeature: function (f, l) {
                gisapp.bindFeature(l, f, {{ this.kind|tojson }}, {{ this.highlight|tojson }});
            }
        });
        {%- if this.lazy_url %}
        gisapp.lazy({{ this.get_name() }}, {{ this.lazy_url|tojson }});
        {%- endif %}
        {% endmacro %}
        """
    )

    def __init__(self, data: dict, kind: str, name: str, show: bool = True, control: bool = True,
                 highlight: dict | None = None, lazy_url: str | None = None):
        super().__init__(name=name, overlay=True, control=control, show=show)
        self._name = "GeoLayer"
        self.data = data
        self.kind = kind
        self.highlight = highlight
        self.lazy_url = lazy_url


PointLayer = GeoLayer


def _escaped_detail() -> str:
    """folium's GeoJsonTooltip/GeoJsonPopup script with every value and alias HTML-escaped
    (folium puts feature properties into ``innerHTML`` as they are)."""
    src = folium.features.GeoJsonDetail.base_template
    esc_fn = ("let esc = s => String(s).replace(/[&<>\"']/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', "
              "'\"': '&quot;', \"'\": '&#39;'})[c]);\n    let handleObject = feature => {")
    out = src.replace("let handleObject = feature => {", esc_fn, 1)
    out = out.replace("return JSON.stringify(feature);", "return esc(JSON.stringify(feature));", 1)
    out = out.replace("            return feature;\n", "            return esc(feature);\n", 1)
    out = out.replace("<th>${aliases[i]", "<th>${esc(aliases[i])", 1)
    assert out.count("esc(") == 3, "folium's GeoJsonDetail template changed: check the escaping"
    return out


class EscapedGeoJsonTooltip(folium.GeoJsonTooltip):
    """``folium.GeoJsonTooltip`` that escapes the feature's values (road names are user-written)."""

    _template = Template(
        "{% macro script(this, kwargs) %}\n{{ this._parent.get_name() }}.bindTooltip("
        + _escaped_detail()
        + ",{{ this.tooltip_options | tojavascript }});\n{% endmacro %}\n"
    )


class LabelLayer(folium.map.Layer):
    """Permanent text labels at points (town names), drawn as Leaflet tooltips."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.geoJson({{ this.data|tojson }}, {
            pointToLayer: function (f, latlng) {
                return L.marker(latlng, {icon: L.divIcon({className: 'town-seat', iconSize: [6, 6]}),
                                         interactive: false, keyboard: false})
                    .bindTooltip(gisapp.esc(f.properties.label), {permanent: true, direction: 'right',
                                                      className: 'town-label', offset: [4, 0]});
            }
        });
        {% endmacro %}
        """
    )

    def __init__(self, data: dict, name: str, show: bool = True):
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "LabelLayer"
        self.data = data


def _name(props: dict, lang: str, key: str = "name") -> str:
    return (props.get(f"{key}_en") or props.get(key) or "") if lang == "en" else (props.get(key) or "")


# --- boundaries ---------------------------------------------------------------------------------

def county_outline(fc: dict, lang: str, land_fill: bool = True) -> MapLayer:
    """The county outline; without a basemap its land is filled so it reads as the base map."""

    def st(_p: dict) -> dict:
        return {"color": S.COUNTY_LINE, "weight": 2.5, "fill": land_fill, "fillColor": S.LAND_FILL,
                "fillOpacity": 1.0 if land_fill else 0.0, "interactive": False}

    layer = folium.GeoJson(_with_style(fc, st), name=t("layer.county", lang), control=True, show=True,
                           on_each_feature=_bind("county"), pane="land", interactive=False)
    legend = LegendSection(t("layer.county", lang), [LegendEntry(t("layer.county", lang), S.COUNTY_LINE, "outline")],
                           note=t("map.attribution_real", lang))
    return MapLayer("county", layer, legend)


def towns(fc: dict, lang: str, show: bool = True) -> MapLayer:
    """Town and sub-district seats as labels (hand-placed: synthetic locations)."""
    data = copy.deepcopy(fc)
    for f in data["features"]:
        f["properties"]["label"] = _name(f["properties"], lang)
    return MapLayer("towns", LabelLayer(data, t("layer.towns", lang), show=show))


def station_jurisdictions(fc: dict, lang: str, show: bool = True, lazy_url: str | None = None) -> MapLayer:
    """Station jurisdictions in force: one pastel fill per station, labelled in the tooltip."""
    order = {f["properties"]["organisation_id"]: i for i, f in enumerate(fc["features"])}

    def st(p: dict) -> dict:
        col = S.JURISDICTION_PALETTE[order[p["organisation_id"]] % len(S.JURISDICTION_PALETTE)]
        return {"color": S.JURISDICTION_LINE, "weight": 1.4, "opacity": 0.9, "fillColor": col, "fillOpacity": 0.28}

    data = _with_style(fc, st)
    for f in data["features"]:
        f["properties"]["label"] = _name(f["properties"], lang, "org_name")
    layer = GeoLayer(data, "jurisdiction", t("layer.station_jurisdictions", lang), show=show,
                     highlight={"weight": 3, "fillOpacity": 0.45}, lazy_url=lazy_url)
    entries = [LegendEntry(f["properties"]["label"], f["properties"]["style"]["fillColor"])
               for f in data["features"][:16]]
    return MapLayer("station_jurisdictions", layer, LegendSection(t("layer.station_jurisdictions", lang), entries))


def traffic_jurisdictions(fc: dict, lang: str, show: bool = False, lazy_url: str | None = None) -> MapLayer:
    """Traffic-squadron jurisdictions in force: dashed teal outlines."""
    data = _with_style(fc, lambda p: {"color": S.TRAFFIC_LINE, "weight": 2.2, "dashArray": "6 4", "fill": True,
                                      "fillOpacity": 0.02})
    for f in data["features"]:
        f["properties"]["label"] = _name(f["properties"], lang, "org_name")
    layer = GeoLayer(data, "jurisdiction", t("layer.traffic_jurisdictions", lang), show=show,
                     highlight={"weight": 3.5}, lazy_url=lazy_url)
    legend = LegendSection(t("layer.traffic_jurisdictions", lang),
                           [LegendEntry(t("org.squadron", lang), S.TRAFFIC_LINE, "outline", extra={"dashed": True})])
    return MapLayer("traffic_jurisdictions", layer, legend)


def joint_zones(fc: dict, lang: str, show: bool = False, lazy_url: str | None = None) -> MapLayer:
    """Joint war zones: a strong outline per zone, its centre and members in the popup."""
    idx = {f["properties"]["id"]: i for i, f in enumerate(fc["features"])}

    def st(p: dict) -> dict:
        col = S.JOINT_ZONE_PALETTE[idx[p["id"]] % len(S.JOINT_ZONE_PALETTE)]
        return {"color": col, "weight": 3.2, "opacity": 0.9, "fillColor": col, "fillOpacity": 0.07}

    data = _with_style(fc, st)
    for f in data["features"]:
        p = f["properties"]
        p["label"] = _name(p, lang)
        p["centre"] = _name(p, lang, "centre_name")
        p["member_list"] = "、".join(p.get("members_en" if lang == "en" else "members") or [])
    layer = GeoLayer(data, "joint_zone", t("layer.joint_zones", lang), show=show,
                     highlight={"weight": 5, "fillOpacity": 0.15}, lazy_url=lazy_url)
    entries = [LegendEntry(f["properties"]["label"], f["properties"]["style"]["color"], "outline")
               for f in data["features"]]
    return MapLayer("joint_zones", layer, LegendSection(t("layer.joint_zones", lang), entries))


def grids(fc: dict, lang: str, color_by: str | None = None, show: bool = True) -> MapLayer:
    """Patrol grids; ``color_by`` 'coverage' (share of road km within target) or 'incidents'."""
    key, title = "grids", t("layer.grids", lang)
    entries: list[LegendEntry]
    if color_by == "coverage":
        key, title = "grids_coverage", t("layer.grids_coverage", lang)

        def st(p: dict) -> dict:
            return {"color": S.GRID_LINE, "weight": 1.2, "fillColor": S.share_color(p.get("share_within")),
                    "fillOpacity": 0.55}

        labels = ["< 50%", "50–70%", "70–85%", "85–95%", "≥ 95%"]
        entries = [LegendEntry(lab, col) for lab, col in zip(labels, S.SHARE_COLORS, strict=True)]
        entries.append(LegendEntry(t("common.none", lang), S.NO_DATA_COLOR))
    elif color_by == "incidents":
        key, title = "grids_incidents", t("layer.grids_incidents", lang)
        breaks = S.class_breaks([f["properties"].get("incidents") or 0 for f in fc["features"]])

        def st(p: dict) -> dict:
            return {"color": S.GRID_LINE, "weight": 1.2,
                    "fillColor": S.binned_color(p.get("incidents") or 0, breaks, S.INCIDENT_COLORS),
                    "fillOpacity": 0.6}

        lows = [0, *breaks]
        highs = [*breaks, None]
        entries = [LegendEntry(f"{int(lo)}–{int(hi) - 1}" if hi is not None else f"≥ {int(lo)}", col)
                   for lo, hi, col in zip(lows, highs, S.INCIDENT_COLORS, strict=True)]
    else:

        def st(p: dict) -> dict:
            return {"color": S.GRID_LINE, "weight": 1.0, "dashArray": "3 3", "fillOpacity": 0.0, "fill": True}

        entries = [LegendEntry(t("layer.grids", lang), S.GRID_LINE, "outline", extra={"dashed": True})]
    data = _with_style(fc, st)
    for f in data["features"]:
        f["properties"]["label"] = f"{f['properties'].get('name', '')}"
        f["properties"]["org_label"] = _name(f["properties"], lang, "org_name")
    layer = GeoLayer(data, "grid", title, show=show, highlight={"weight": 3, "color": "#0f172a"})
    return MapLayer(key, layer, LegendSection(title, entries))


# The chief's grid measures (issue 14): property coloured, palette from good to bad or low to high,
# whether a higher value is better, and how the legend prints a break.
MEASURE_STYLE: dict[str, dict[str, Any]] = {
    "drive_time": {"prop": "drive_time_min", "palette": "bad_high", "fmt": "{:.1f}′"},
    "patrol_share": {"prop": "patrol_share", "palette": "good_high", "fmt": "pct"},
    "patrol_trend": {"prop": "patrol_trend", "palette": "good_high", "fmt": "signed_pct"},
    "incidents_per_km": {"prop": "incidents_per_km", "palette": "bad_high", "fmt": "{:.2f}"},
}


def _fmt_break(v: float, fmt: str) -> str:
    if fmt == "pct":
        return f"{v * 100:.0f}%"
    if fmt == "signed_pct":
        return f"{v * 100:+.0f}%"
    return fmt.format(v)


def grid_measures(fc: dict, lang: str, measure: str, show: bool = True) -> MapLayer:
    """The chief's grids coloured by one measure (``layers.measures``) in quantile classes (each
    distinct value its own class when there are few), with every measure in the popup."""
    from .measures import class_of, quantile_breaks

    spec = MEASURE_STYLE[measure]
    prop = spec["prop"]
    breaks = quantile_breaks([f["properties"].get(prop) for f in fc["features"]], len(S.MEASURE_COLORS))
    k = len(breaks) + 1
    # spread the classes over the palette (ordered good -> bad)
    picks = [S.MEASURE_COLORS[round(i * (len(S.MEASURE_COLORS) - 1) / (k - 1))] if k > 1 else S.MEASURE_COLORS[0]
             for i in range(k)]
    if spec["palette"] == "good_high":
        picks = picks[::-1]

    def st(p: dict) -> dict:
        ci = class_of(p.get(prop), breaks)
        return {"color": S.GRID_LINE, "weight": 1.2, "fillColor": S.NO_DATA_COLOR if ci is None else picks[ci],
                "fillOpacity": 0.65}

    data = _with_style(fc, st)
    for f in data["features"]:
        p = f["properties"]
        p["label"] = p.get("name") or ""
        p["org_label"] = _name(p, lang, "org_name")
        p["measure_class"] = class_of(p.get(prop), breaks)
        p["window_label"] = f"{p.get('window_from')} – {p.get('window_to')}"
    mname = t(f"chief.measure.{measure}", lang)
    title = t("layer.grids_measure", lang, measure=mname)
    lows: list[float | None] = [None, *breaks]
    highs: list[float | None] = [*breaks, None]
    entries = []
    for lo, hi, col in zip(lows, highs, picks, strict=True):
        if lo is None and hi is None:
            vals = [f["properties"].get(prop) for f in fc["features"] if f["properties"].get(prop) is not None]
            lab = _fmt_break(vals[0], spec["fmt"]) if vals else t("common.none", lang)
        elif lo is None:
            lab = f"< {_fmt_break(hi, spec['fmt'])}"
        elif hi is None:
            lab = f"≥ {_fmt_break(lo, spec['fmt'])}"
        else:
            lab = f"{_fmt_break(lo, spec['fmt'])} – {_fmt_break(hi, spec['fmt'])}"
        entries.append(LegendEntry(lab, col))
    entries.append(LegendEntry(t("common.none", lang), S.NO_DATA_COLOR))
    layer = GeoLayer(data, "grid_measure", title, show=show, highlight={"weight": 3, "color": "#0f172a"})
    win = fc.get("window") or {}
    note = f"{win.get('from')} – {win.get('to')}" if win else ""
    return MapLayer("grids_measure", layer, LegendSection(title, entries, note=note))


# --- roads and coverage (vector tiles) -------------------------------------------------------------

def _road_entries(lang: str) -> list[LegendEntry]:
    return [LegendEntry(t(f"road.{c}", lang), S.ROAD_STYLE[c]["color"], "line",
                        extra={"weight": max(1, round(S.ROAD_STYLE[c]["weight"]))})
            for c in S.ROAD_CLASS_ORDER if c not in ("ramp", "other")]


def roads_tiles(url: str, lang: str, show: bool = True) -> MapLayer:
    """Roads by class from vector tiles (``/tiles/roads/...``); local classes appear as you zoom in."""
    layer = VectorTileLayer(url, t("layer.roads", lang), "roads", "roads",
                            "function (p, z) { return gisapp.roadStyle(p, z); }", show=show)
    return MapLayer("roads", layer, LegendSection(t("layer.roads", lang), _road_entries(lang),
                                                  note=t("map.tiles_hint", lang)))


def coverage_geojson(gdf, lang: str, show: bool = True) -> MapLayer:
    """Roads coloured by best response time as one ``folium.GeoJson`` of a GeoDataFrame, the way a
    folium map usually draws a layer (style and highlight functions, a GeoJsonTooltip): the
    comparison the benchmark runs against the vector tiles, and fine for small networks."""

    def st(f: dict) -> dict:
        p = f["properties"]
        t = p.get("station_time_s")
        gap = t is None or (p.get("target_s") is not None and t > p["target_s"])
        return {"color": S.time_color(t), "weight": S.ROAD_STYLE[p["road_class"]]["weight"] + (2 if gap else 0),
                "opacity": 0.95}

    title = t("layer.coverage", lang)
    layer = folium.GeoJson(
        gdf, name=title, show=show, style_function=st,
        highlight_function=lambda f: {"weight": 6, "color": "#0f172a"},
        tooltip=EscapedGeoJsonTooltip(fields=["name", "road_class", "station_time_s", "target_s"],
                                      aliases=[t("prop.name", lang), t("prop.road_class", lang),
                                               t("prop.time_min", lang) + " (s)", t("prop.target_min", lang) + " (s)"]),
    )
    return MapLayer("coverage", layer, LegendSection(title, _time_entries(lang)))


def _time_entries(lang: str) -> list[LegendEntry]:
    lows = [0, *S.TIME_BREAKS_MIN]
    entries = [LegendEntry(t("legend.minutes", lang, a=a, b=b), col, "line", extra={"weight": 4})
               for a, b, col in zip(lows, S.TIME_BREAKS_MIN, S.TIME_COLORS, strict=False)]
    entries.append(LegendEntry(t("legend.over", lang, a=S.TIME_BREAKS_MIN[-1]), S.TIME_COLORS[-1], "line",
                               extra={"weight": 4}))
    entries.append(LegendEntry(t("legend.unreachable", lang), S.UNREACHABLE_COLOR, "line",
                               extra={"weight": 3, "dashed": True}))
    return entries


def coverage_tiles(url: str, lang: str, main_min: float, rural_min: float, live: bool = False,
                   show: bool = True) -> MapLayer:
    """Roads coloured by the best response time (static from stations, or live from units); gaps haloed."""
    field = "u" if live else "t"
    key = "coverage_live" if live else "coverage"
    title = t(f"layer.{key}", lang)
    layer = VectorTileLayer(url, title, key, "coverage",
                            f"function (p, z) {{ return gisapp.coverageStyle(p, z, {field!r}); }}", show=show)
    entries = _time_entries(lang)
    entries.append(LegendEntry(t("legend.gap", lang), S.GAP_HALO["color"], "line",
                               extra={"weight": 2, "halo": S.GAP_HALO["color"]}))
    return MapLayer(key, layer, LegendSection(title, entries,
                                              note=t("coverage.targets", lang, main=f"{main_min:g}",
                                                     rural=f"{rural_min:g}")))


def grid_tiles(url: str, lang: str, show: bool = False) -> MapLayer:
    """Patrol grids from vector tiles (county-wide views)."""
    layer = VectorTileLayer(url, t("layer.grids", lang), "grids", "grids",
                            "function (p, z) { return gisapp.gridStyle(p, z); }", show=show)
    return MapLayer("grids", layer, LegendSection(t("layer.grids", lang), [
        LegendEntry(t("layer.grids", lang), S.GRID_LINE, "outline", extra={"dashed": True})]))


def coverage_gaps(fc: dict, lang: str, show: bool = True) -> MapLayer:
    """The top coverage gaps (ranked road segments) as a highlighted, clickable overlay."""
    data = _with_style(fc, lambda p: {"color": S.GAP_HALO["color"], "weight": 7, "opacity": 0.55,
                                      "lineCap": "round"})
    for i, f in enumerate(data["features"], 1):
        p = f["properties"]
        p["rank"] = i
        p["class_label"] = t(f"road.{p['road_class']}", lang)
        p["station_label"] = _name(p, lang, "station_name")
    title = t("layer.gaps", lang, n=len(data["features"]))
    layer = GeoLayer(data, "gap", title, show=show, highlight={"weight": 11, "opacity": 0.85})
    return MapLayer("gaps", layer, LegendSection(title, [
        LegendEntry(t("legend.gap", lang), S.GAP_HALO["color"], "line", extra={"weight": 6})]))


def unpatrolled_roads(fc: dict, lang: str, days: int, show: bool = True) -> MapLayer:
    """A station's road segments that no unit drove along in the last ``days`` days (patrol gaps)."""
    data = _with_style(fc, lambda p: {"color": S.PATROL_GAP["color"], "weight": S.PATROL_GAP["weight"],
                                      "opacity": 0.8, "dashArray": "4 4"})
    for f in data["features"]:
        p = f["properties"]
        p["class_label"] = t(f"road.{p['road_class']}", lang)
        p["last_patrol"] = p.get("last_patrol_day") or t("common.never", lang)
    title = t("layer.unpatrolled", lang, days=days)
    layer = GeoLayer(data, "unpatrolled", title, show=show, highlight={"weight": 6, "opacity": 1.0})
    return MapLayer("unpatrolled", layer, LegendSection(title, [
        LegendEntry(t("legend.unpatrolled", lang, days=days), S.PATROL_GAP["color"], "line",
                    extra={"weight": 3, "dashed": True})]))


# --- points -----------------------------------------------------------------------------------------

def villages(fc: dict, lang: str, show: bool = False, lazy_url: str | None = None) -> MapLayer:
    """Villages as small dots, name in the tooltip, population in the popup."""
    data = copy.deepcopy(fc)
    for f in data["features"]:
        f["properties"]["town_label"] = _name(f["properties"], lang, "town_name")
    layer = GeoLayer(data, "village", t("layer.villages", lang), show=show, lazy_url=lazy_url)
    return MapLayer("villages", layer, LegendSection(t("layer.villages", lang), [
        LegendEntry(t("layer.villages", lang), S.VILLAGE["color"], "dot")]))


def stations(fc: dict, lang: str, show: bool = True) -> MapLayer:
    """Stations, squadrons, the accident section and the command centre, by kind; merged ones ringed."""
    data = copy.deepcopy(fc)
    kinds = []
    for f in data["features"]:
        p = f["properties"]
        p["label"] = _name(p, lang)
        if p["kind"] not in kinds:
            kinds.append(p["kind"])
    layer = PointLayer(data, "organisation", t("layer.stations", lang), show=show)
    entries = [LegendEntry(t(f"org.{k}", lang), S.ORG_STYLE[k]["color"], "icon", icon=S.ORG_STYLE[k]["icon"])
               for k in S.ORG_STYLE if k in kinds or not kinds]
    if any(f["properties"].get("merged") for f in data["features"]):
        entries.append(LegendEntry(t("legend.merged", lang), S.ORG_STYLE["station"]["color"], "icon",
                                   icon=S.ORG_STYLE["station"]["icon"], extra={"ring": S.MERGED_RING}))
    return MapLayer("stations", layer, LegendSection(t("layer.stations", lang), entries))


def units(fc: dict, lang: str, show: bool = True, lazy_url: str | None = None) -> MapLayer:
    """Units at their last position, coloured by status, icon by kind."""
    data = copy.deepcopy(fc)
    for f in data["features"]:
        f["properties"]["org_label"] = _name(f["properties"], lang, "org_name")
    layer = GeoLayer(data, "unit", t("layer.units", lang), show=show, lazy_url=lazy_url)
    entries = [LegendEntry(t(f"unit.{s}", lang), c, "icon", icon="fa-car-side")
               for s, c in S.UNIT_STATUS_COLORS.items()]
    return MapLayer("units", layer, LegendSection(t("layer.units", lang), entries))


def incidents_cluster(fc: dict, lang: str, name_key: str = "layer.incidents", show: bool = True,
                      key: str = "incidents") -> MapLayer:
    """Incidents as markers (110 blue, 122 orange, injury/fatal ringed red), clustered when zoomed out."""
    data = copy.deepcopy(fc)
    for f in data["features"]:
        f["properties"]["station_label"] = _name(f["properties"], lang, "station_name")
    cluster = MarkerCluster(name=t(name_key, lang), show=show,
                            options={"showCoverageOnHover": False, "maxClusterRadius": 45,
                                     "chunkedLoading": True, "spiderfyOnMaxZoom": True})
    PointLayer(data, "incident", t(name_key, lang), control=False).add_to(cluster)
    entries = [LegendEntry(t(f"legend.channel_{c}", lang), s["color"], "icon", icon=s["icon"])
               for c, s in S.CHANNEL_STYLE.items()]
    return MapLayer(key, cluster, LegendSection(t(name_key, lang), entries))


class LazyHeatMap(HeatMap):
    """folium.plugins.HeatMap whose points are fetched the first time it is switched on."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = L.heatLayer([], {{ this.options|tojavascript }});
            gisapp.lazyHeat({{ this.get_name() }}, {{ this.lazy_url|tojson }});
        {% endmacro %}
        """
    )


def incidents_heatmap(points: list[list[float]] | None, lang: str, show: bool = False,
                      lazy_url: str | None = None) -> MapLayer:
    """Past-year incidents as a heat map (points pre-binned into cells: [lat, lon, count]); with
    ``lazy_url`` the points are fetched from there (``{"points": [...], "max": n}``) when shown."""
    # Leaflet's layer control disables an overlay's checkbox above the layer's options.maxZoom, and
    # Leaflet.heat reads maxZoom as the zoom of full intensity: use the map's maximum (19), so the
    # checkbox works at every zoom (folium's Leaflet.heat scales intensity to the busiest cell shown).
    opts = {"name": t("layer.heatmap", lang), "show": show, "radius": 16, "blur": 14, "min_opacity": 0.25,
            "max_zoom": 19, "gradient": S.HEAT_GRADIENT}
    if lazy_url:
        layer = LazyHeatMap([[0.0, 0.0, 0.0]], **opts)
        layer.lazy_url = lazy_url
    else:
        points = points or []
        layer = HeatMap(points or [[0.0, 0.0, 0.0]], **opts)
        layer.options["max"] = heat_max(points)
    entries = [LegendEntry(f"{t('legend.low', lang)} → {t('legend.high', lang)}", kind="ramp",
                           extra={"colors": list(S.HEAT_GRADIENT.values())})]
    return MapLayer("heatmap", layer, LegendSection(t("layer.heatmap", lang), entries))


def heat_max(points: list[list[float]]) -> float:
    """The count that saturates the heat map's colours (60% of the busiest cell)."""
    return float(max((p[2] for p in points), default=1)) * 0.6


def service_areas(fc: dict | None, lang: str, budgets_min: tuple[float, ...], show: bool = True) -> MapLayer:
    """Response-radius polygons by time budget (largest drawn first); filled later on demand when empty."""
    data = copy.deepcopy(fc) if fc else {"type": "FeatureCollection", "features": []}
    data["features"].sort(key=lambda f: -(f["properties"].get("budget_min") or 0))
    layer = PointLayer(data, "service_area", t("layer.service_areas", lang), show=show)
    layer._template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.geoJson({{ this.data|tojson }}, {
            style: function (f) { return gisapp.serviceAreaStyle(f.properties); },
            onEachFeature: function (f, l) { gisapp.bindFeature(l, f, 'service_area'); }
        });
        {% endmacro %}
        """
    )
    cols = S.SERVICE_AREA_COLORS
    lows = [0, *budgets_min[:-1]]
    entries = [LegendEntry(t("legend.minutes", lang, a=f"{a:g}", b=f"{b:g}"), cols[min(i, len(cols) - 1)])
               for i, (a, b) in enumerate(zip(lows, budgets_min, strict=True))]
    return MapLayer("service_areas", layer, LegendSection(t("layer.service_areas", lang), entries))


def service_points(fc: dict, lang: str, show: bool = False, lazy_url: str | None = None) -> MapLayer:
    """One-window service points (一窗通办)."""
    data = copy.deepcopy(fc)
    for f in data["features"]:
        f["properties"]["org_label"] = _name(f["properties"], lang, "org_name")
    layer = GeoLayer(data, "service_point", t("layer.service_points", lang), show=show, lazy_url=lazy_url)
    return MapLayer("service_points", layer, LegendSection(t("layer.service_points", lang), [
        LegendEntry(t("layer.service_points", lang), S.SERVICE_POINT["color"], "icon", icon=S.SERVICE_POINT["icon"])]))


def popup_specs(lang: str) -> dict[str, Any]:
    """Return the tooltip and popup layout of every feature kind (labels in ``lang``).

    Each spec: ``tooltip`` (property shown on hover), ``title`` (property heading the popup),
    ``fields``: [label, property, format] with format one of text, int, num, pct, min_s, min,
    km, m, time, list, bool, or ``enum:<prefix>`` (translated through the i18n catalogue).
    """

    def f(label: str, prop: str, fmt: str = "text") -> list[str]:
        return [t(label, lang), prop, fmt]

    return {
        "county": {"tooltip": "name_en" if lang == "en" else "name", "title": "name", "fields": [
            f("prop.code", "adcode")]},
        "jurisdiction": {"tooltip": "label", "title": "label", "fields": [
            f("prop.kind", "kind", "enum:jkind."), f("prop.code", "org_code"), f("prop.version", "version", "int"),
            f("prop.valid_from", "valid_from", "time"), f("prop.area_km2", "area_km2", "num")]},
        "joint_zone": {"tooltip": "label", "title": "label", "fields": [
            f("prop.centre", "centre"), f("prop.members", "member_list"), f("prop.version", "version", "int"),
            f("prop.valid_from", "valid_from", "time")]},
        "grid": {"tooltip": "label", "title": "label", "fields": [
            f("prop.code", "code"), f("prop.organisation", "org_label"),
            f("prop.share_within", "share_within", "pct"), f("prop.patrol_share", "patrol_share", "pct"),
            f("prop.incidents_year", "incidents", "int"),
            f("prop.road_km", "road_km", "num"), f("prop.staff", "staff", "int"),
            f("prop.area_km2", "area_km2", "num")]},
        "grid_measure": {"tooltip": "label", "title": "label", "fields": [
            f("prop.code", "code"), f("prop.organisation", "org_label"),
            f("prop.drive_time_min", "drive_time_min", "min"), f("prop.farthest_village", "farthest_village"),
            f("prop.drive_to", "drive_to", "enum:legend.drive_to_"),
            f("prop.patrol_share", "patrol_share", "pct"), f("prop.patrol_share_prev", "patrol_share_prev", "pct"),
            f("prop.patrol_trend", "patrol_trend", "pct"), f("prop.incidents_window", "incidents", "int"),
            f("prop.incidents_per_km", "incidents_per_km", "num"), f("prop.patrolled_km", "patrolled_km", "num"),
            f("prop.road_km", "road_km", "num"), f("prop.villages", "villages", "int"),
            f("prop.window", "window_label")]},
        "road": {"tooltip": "name", "title": "name", "fields": [
            f("prop.road_class", "road_class", "enum:road."), f("prop.oneway", "oneway", "bool")]},
        "roads": {"tooltip": "name", "title": "name", "fields": [
            f("prop.road_class", "class", "enum:road."), f("prop.oneway", "oneway", "bool")]},
        "coverage": {"tooltip": "name", "title": "name", "fields": [
            f("prop.road_class", "class", "enum:road."), f("prop.time_min", "t", "min_s"),
            f("prop.target_min", "target", "min_s"), f("prop.incidents_year", "inc", "int")]},
        "coverage_live": {"tooltip": "name", "title": "name", "fields": [
            f("prop.road_class", "class", "enum:road."), f("prop.time_min", "u", "min_s"),
            f("prop.target_min", "target", "min_s")]},
        "gap": {"tooltip": "class_label", "title": "class_label", "fields": [
            f("prop.name", "name"), f("prop.time_min", "time_min", "num"), f("prop.target_min", "target_min", "num"),
            f("prop.length_km", "length_m", "km"), f("prop.incidents_year", "incidents", "int"),
            f("prop.from_station", "station_label")]},
        "unpatrolled": {"tooltip": "class_label", "title": "class_label", "fields": [
            f("prop.name", "name"), f("prop.length_km", "length_m", "km"), f("prop.last_patrol", "last_patrol")]},
        "village": {"tooltip": "name", "title": "name", "fields": [
            f("prop.town", "town_label"), f("prop.population", "population", "int")]},
        "organisation": {"tooltip": "label", "title": "label", "fields": [
            f("prop.kind", "kind", "enum:org."), f("prop.code", "code"), f("legend.merged", "merged", "bool"),
            f("prop.town", "town_name"), f("prop.phone", "phone")]},
        "unit": {"tooltip": "code", "title": "name", "fields": [
            f("prop.code", "code"), f("prop.status", "status", "enum:unit."), f("prop.organisation", "org_label"),
            f("prop.capabilities", "capabilities", "list"), f("prop.crew", "crew", "int"),
            f("prop.last_seen", "last_position_at", "time")]},
        "incident": {"tooltip": "code", "title": "code", "fields": [
            f("prop.channel", "channel"), f("prop.type", "type", "enum:itype."),
            f("prop.severity", "severity", "enum:severity."), f("prop.status", "status", "enum:incident."),
            f("prop.reported_at", "reported_at", "time"), f("prop.address", "address"),
            f("prop.organisation", "station_label")]},
        "service_area": {"tooltip": "label", "title": "label", "fields": [
            f("prop.budget_min", "budget_min", "num")]},
        "service_point": {"tooltip": "name", "title": "name", "fields": [
            f("prop.organisation", "org_label"), f("prop.services", "services", "list"),
            f("prop.hours", "opening_hours")]},
        "grids": {"tooltip": "name", "title": "name", "fields": [
            f("prop.code", "code"), f("prop.organisation", "org_name")]},
    }
