"""The chief's own maps (issue 14, item 6) in headless chromium on the demo world, in Chinese and
English, with the default layers on: /map/grids colours 黛溪's grids by a measure so that they
differ, lists 黛溪's villages (sortable; a click zooms to the village), the patrol window switch
changes the figures and stays in the URL; /map/coverage lists 黛溪's gaps under a heading naming
the station, and the empty response-radius layer is not switched on. Zero console errors, zero
requests to other hosts. Screenshots: var/screenshots/grids-chief-zh.png, coverage-chief-zh.png."""

from __future__ import annotations

import pytest
from support.browser import launch, login, new_context, wait_for_js, wait_map_idle, watch
from support.database import PASSWORD

from gisapp.core.config import ROOT

SHOTS = ROOT / "var" / "screenshots"
VIEWPORT = {"width": 1600, "height": 900}


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
def daixi(demo_users, demo_database_url) -> dict:
    """The chief's station (黛溪, the first station by code) and its villages as layers.measures counts them."""
    from gisapp.core import db
    from gisapp.core.config import Settings
    from layers.data import coverage_gaps
    from layers.measures import station_villages

    with db.connect(demo_database_url) as conn:
        org = conn.execute("SELECT id, name, name_en FROM organisation WHERE id = %s",
                           [demo_users["chief"]["station_id"]]).fetchone()
        names = sorted(v["name"] for v in station_villages(conn, org["id"]))
        s = Settings.from_env({"database_url": demo_database_url})
        gaps = [f["id"] for f in coverage_gaps(conn, s, s.map_gap_list_limit, station_id=org["id"])["features"]]
        county = [f["id"] for f in coverage_gaps(conn, s, s.map_gap_list_limit)["features"]]
    assert "黛溪" in org["name"], org
    assert county and set(gaps) != set(county)  # the county has gaps that are not 黛溪's
    return {**org, "villages": names, "gaps": gaps}


def _goto(page, base: str, path: str):
    rec = watch(page, base)
    resp = page.goto(base + path, wait_until="domcontentloaded")
    wait_map_idle(page, rec=rec)
    return resp, rec


def _figures(page) -> dict:
    return page.evaluate("""() => ({
        range: document.querySelector('[data-testid=window-range]').textContent,
        incidents: document.querySelector('[data-testid=window-incidents]').textContent,
        rows: Array.from(document.querySelectorAll('[data-testid=grid-table] tbody tr')).map(r => r.textContent)})""")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_chief_grids_and_coverage(lang, browser, demo_live, daixi):
    ctx = new_context(browser, viewport=VIEWPORT, locale="zh-CN" if lang == "zh" else "en-GB")
    page = ctx.new_page()
    login(page, demo_live.url, "t_chief", PASSWORD)
    recs = []
    try:
        resp, rec = _goto(page, demo_live.url, f"/map/grids?lang={lang}")
        recs.append(rec)
        assert resp.status == 200
        name = daixi["name"] if lang == "zh" or not daixi["name_en"] else daixi["name_en"]
        assert page.inner_text("[data-testid=station-name]").strip() == name
        # the measure layer is on by default, and its grids are not all one colour
        colours = page.evaluate("""() => {
            const l = gisapp.layers.grids_measure;
            return {on: gisapp.map.hasLayer(l), fills: l.getLayers().map(x => x.options.fillColor)}; }""")
        assert colours["on"] and len(colours["fills"]) >= 2
        assert len(set(colours["fills"])) >= 2, colours
        assert page.evaluate("gisapp.map.hasLayer(gisapp.layers.unpatrolled)")
        legend = page.inner_text(".leaflet-control-layers")
        assert ("到最远村庄车程" if lang == "zh" else "Drive time to farthest village") in legend
        # the villages table: every one of 黛溪's villages, no other
        listed = sorted(page.eval_on_selector_all("[data-testid=village-table] tbody tr td:first-child",
                                                  "els => els.map(e => e.textContent)"))
        assert listed == daixi["villages"]
        # sortable: drive time ascending
        page.click("[data-testid=village-table] th:nth-child(3)")
        vals = page.eval_on_selector_all("[data-testid=village-table] tbody tr td:nth-child(3)",
                                         "els => els.map(e => e.getAttribute('data-v'))")
        nums = [float(v) for v in vals if v]
        assert nums == sorted(nums) and len(nums) >= 2
        # a click zooms to the village and opens its popup
        page.evaluate("() => { gisapp.map.setZoom(11, {animate: false}); }")
        page.click("[data-testid=village-table] tbody tr:first-child")
        wait_for_js(page, "gisapp.map.getZoom() >= 14 && document.querySelector('.leaflet-popup')")
        first = page.inner_text("[data-testid=village-table] tbody tr:first-child td:first-child")
        assert first in page.inner_text(".leaflet-popup")
        # a grid popup shows every measure
        page.evaluate("""() => { gisapp.map.closePopup(); const l = gisapp.layers.grids_measure.getLayers()[0];
                                 gisapp.map.fitBounds(l.getBounds(), {animate: false});
                                 l.openPopup(l.getBounds().getCenter()); }""")
        wait_for_js(page, "document.querySelectorAll('.leaflet-popup').length === 1")
        popup = page.inner_text(".leaflet-popup")
        for label in (("到最远村庄车程", "巡逻覆盖率", "巡逻覆盖率变化", "每巡逻公里警情") if lang == "zh" else
                      ("Drive to farthest village", "Patrolled share", "Patrolled share trend",
                       "Incidents per patrolled km")):
            assert label in popup, popup
        if lang == "zh":
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.evaluate("() => { gisapp.map.closePopup(); }")
            page.evaluate("() => { gisapp.map.fitBounds(gisapp.layers.grids_measure.getBounds()); }")
            page.evaluate("() => { document.querySelector('[data-testid=side-panel]').scrollTop = 0; }")
            wait_map_idle(page, rec=rec)
            page.screenshot(path=str(SHOTS / "grids-chief-zh.png"))
        before = _figures(page)

        # the window switch: 90 days reloads with other figures, kept in the URL
        rec.stop(page)
        rec = watch(page, demo_live.url)
        recs.append(rec)
        with page.expect_navigation():
            page.select_option("[data-testid=window-picker]", "90")
        wait_map_idle(page, rec=rec)
        assert "window=90" in page.url
        after = _figures(page)
        assert after["range"] != before["range"] and after["incidents"] != before["incidents"], (before, after)
        assert page.eval_on_selector("[data-testid=window-picker]", "e => e.value") == "90"
        # from-to: the custom range
        page.select_option("[data-testid=window-picker]", "")
        page.fill("[data-testid=window-from]", "2026-11-01")
        page.fill("[data-testid=window-to]", "2026-11-30")
        with page.expect_navigation():
            page.click("[data-testid=window-apply]")
        wait_map_idle(page, rec=rec)
        assert "from=2026-11-01" in page.url and "to=2026-11-30" in page.url and "window=" not in page.url
        assert "2026-11-01" in page.inner_text("[data-testid=window-range]")

        # the coverage page: 黛溪's gaps under a heading naming it; the empty response radius is off
        rec.stop(page)
        resp, rec = _goto(page, demo_live.url, f"/map/coverage?lang={lang}")
        recs.append(rec)
        assert resp.status == 200
        assert name in page.inner_text("[data-testid=gaps-heading]")
        shown = page.eval_on_selector_all("tr[data-gap]", "els => els.map(e => Number(e.getAttribute('data-gap')))")
        assert shown == daixi["gaps"]  # 黛溪's own gaps (none at all when every road is reached in time)
        if not shown:
            assert page.locator("[data-testid=gaps-heading] + .empty-note").count() == 1
        assert not page.evaluate("gisapp.map.hasLayer(gisapp.layers.service_areas)")
        page.click("[data-testid=sa-show]")  # asked for: filled and switched on
        wait_for_js(page, "gisapp.map.hasLayer(gisapp.layers.service_areas) && "
                          "gisapp.layers.service_areas.getLayers().length > 0")
        wait_map_idle(page, rec=rec)
        if lang == "zh":
            page.screenshot(path=str(SHOTS / "coverage-chief-zh.png"))
        for r in recs:
            assert r.console_errors == [], r.console_errors
            assert r.foreign == [], r.foreign
            assert r.failed == [], r.failed
        assert ctx.csp_violations == [], ctx.csp_violations
    finally:
        rec.stop(page)
        ctx.close()
