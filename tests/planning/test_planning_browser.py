"""The planner's tools on /map/plan in Debian's headless chromium: make a proposal,
draw a polygon and give it to a station, validate (issues on the map), compare (charts, changed areas),
with zero console errors and no request to another address; screenshots in var/screenshots/."""

from __future__ import annotations

import pytest
from support.browser import logged_in_page, wait_for_js, wait_map_idle, watch
from support.database import PASSWORD

from gisapp.core.config import ROOT

SHOTS = ROOT / "var" / "screenshots"


@pytest.fixture(scope="module")
def page(demo_live, demo_users):
    with logged_in_page(demo_live.url, "t_planner", PASSWORD, {"width": 1500, "height": 950}) as pg:
        yield pg


def _wait_msg(page, timeout=90000):
    wait_for_js(page, "document.getElementById('plan-msg').textContent.length > 0 && "
                           "!document.getElementById('plan-msg').textContent.endsWith('…')", timeout=timeout)


def test_plan_tools_in_the_browser(page, demo_live, demo_conn):
    base = demo_live.url
    rec = watch(page, base)
    page.goto(base + "/map/plan")
    wait_map_idle(page)
    wait_for_js(page, "window.gisapp.planDraw && document.querySelectorAll('#plan-zone option').length > 0")
    assert page.locator(".leaflet-draw-draw-polygon").count() == 1       # Leaflet.draw, served locally
    # A proposal (network Voronoi: the quickest to make) becomes the selected draft, drawn as
    # editable areas with its stated objective.
    page.click("[data-propose=voronoi]")
    _wait_msg(page)
    assert "路网泰森多边形方案" in page.inner_text("#plan-msg"), page.inner_text("#plan-msg")
    wait_for_js(page, "!document.getElementById('plan-current').hidden")
    n_areas = page.evaluate("window.gisapp.planDraw.items.getLayers().length")
    stations = demo_conn.execute("SELECT count(*) AS n FROM jurisdiction WHERE kind = 'station' "
                                 "AND valid_to IS NULL").fetchone()["n"]
    assert n_areas >= stations
    assert "平均到达" in page.inner_text("#plan-objective") and "CV" in page.inner_text("#plan-objective")
    # Draw a triangle in the middle of the map and give it to the second station of the list.
    page.select_option("#plan-target", index=2)
    page.click(".leaflet-draw-draw-polygon")
    box = page.locator("#map, .folium-map").first.bounding_box()
    cx, cy = box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.5
    for dx, dy in ((0, 0), (60, 10), (20, 60), (0, 0)):
        page.mouse.click(cx + dx, cy + dy)
        page.wait_for_timeout(250)
    _wait_msg(page)
    assert page.inner_text("#plan-msg") == "已保存。", page.inner_text("#plan-msg")
    plan_id = page.evaluate("window.gisappPlan.state.plan.id")
    audit = demo_conn.execute("SELECT count(*) AS n FROM audit_log WHERE entity = 'plan' AND entity_id = %s "
                              "AND action = 'reassign'", [str(plan_id)]).fetchone()["n"]
    assert audit == 1
    # Validation: the drawn triangle cuts grids; the issues are listed and drawn on the map.
    page.click("[data-testid=plan-validate]")
    page.wait_for_selector("#plan-issues .plan-issue, #plan-issues .better", timeout=60000)
    issues = page.locator("#plan-issues .plan-issue").count()
    assert issues >= 1
    assert page.evaluate("window.gisappPlan.state.issues.getLayers().length") >= 1
    # the map flies to the issue: wait for the move to end and its tiles to load before the screenshot
    page.evaluate("() => { window.__moved = false; window.gisapp.map.once('moveend', function () { window.__moved = true; }); }")
    page.locator("#plan-issues .plan-issue").first.click()
    wait_for_js(page, "window.__moved === true", timeout=30000)
    wait_map_idle(page, rec=rec)
    page.screenshot(path=str(SHOTS / "plan_validation.png"))
    # Comparison table, one row per jurisdiction, and the incidents that change owner on the map.
    page.click("[data-testid=plan-compare]")
    page.wait_for_selector("[data-testid=plan-chart-incidents] canvas", timeout=90000)
    rows = page.evaluate("window.echarts.getInstanceByDom(document.getElementById('plan-chart-incidents'))"
                         ".getOption().yAxis[0].data.length")
    assert rows >= stations
    assert page.evaluate("window.gisappPlan.state.changed.getLayers().length") > 0
    page.wait_for_timeout(800)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "plan_tools.png"))
    assert rec.console_errors == []
    assert rec.foreign == []
    assert rec.failed == []
