"""The dispatcher's live panel in headless chromium, on the demo world: an incident taken elsewhere
appears without a reload, one click dispatches it (recommended units with road ETA and the route
on the map), one click signs a leg off; no console error, no request to another host."""

from __future__ import annotations

import pytest
from support.browser import logged_in_page, wait_map_idle, watch
from support.database import PASSWORD
from support.dispatch import off_trunk_points

from gisapp.core.config import ROOT

SHOTS = ROOT / "var" / "screenshots"


@pytest.fixture(scope="module")
def page(demo_live, demo_users):
    with logged_in_page(demo_live.url, "t_dispatcher", PASSWORD, {"width": 1600, "height": 900}) as pg:
        yield pg


def test_live_panel_takes_dispatches_and_signs_off_without_reload(page, demo_live, demo_login, demo_conn):
    rec = watch(page, demo_live.url)
    try:
        page.goto(demo_live.url + "/map/dispatch")
        wait_map_idle(page)
        page.wait_for_selector("[data-testid=stream-state][data-state=live]", timeout=30000)
        assert page.inner_text("[data-testid=stream-state]") == "实时"
        # a call taken at another desk appears in the queue without a reload
        # an injury accident in the first station's jurisdiction, off the trunk roads (issue 15)
        st = demo_conn.execute("SELECT id FROM organisation WHERE kind = 'station' ORDER BY code LIMIT 1").fetchone()
        lon, lat = off_trunk_points(demo_conn, st["id"])[0]
        other = demo_login("dispatcher")
        r = other.post("/api/v1/dispatch/incidents", json={
            "channel": "122", "type": "traffic_accident", "severity": "injury",
            "location": {"type": "Point", "coordinates": [lon, lat]},
            "description": "两车相撞，一人受伤"})
        assert r.status_code == 201, r.text
        inc = r.json()
        item = f"[data-testid=queue-item][data-id='{inc['id']}']"
        page.wait_for_selector(item, timeout=20000)
        # its detail: the plan of the dual dispatch with recommended units (road ETA) and a route drawn
        page.click(item)
        page.wait_for_selector("#dp-detail .dp-rec", timeout=30000)
        assert "伤人事故一警双派" in page.inner_text("#dp-detail")  # the rule by its name, not its code
        assert page.evaluate("document.querySelectorAll('#dp-detail .dp-leg').length") == 2
        assert page.evaluate("gisapp.map.hasLayer && Object.values(gisapp.map._layers).some("
                             "l => l.feature && l.feature.type === 'LineString' || (l.options && "
                             "l.options.dashArray === '8 6'))")
        # one click dispatches both legs
        page.click("[data-testid=dispatch-btn]")
        page.wait_for_selector("#dp-detail [data-testid=go-signed_off]", timeout=20000)
        assert page.evaluate("document.querySelectorAll('#dp-detail .dp-leg[data-leg]').length") == 2
        legs = demo_conn.execute("SELECT id, role, status, unit_id FROM dispatch_leg WHERE incident_id = %s "
                                 "ORDER BY role", [inc["id"]]).fetchall()
        assert [x["role"] for x in legs] == ["primary", "specialist"] and all(x["unit_id"] for x in legs)
        # one click signs the primary leg off; the sign-off clock shows it met
        page.click(f"#dp-detail .dp-leg[data-leg='{legs[0]['id']}'] [data-testid=go-signed_off]")
        page.wait_for_selector(f"#dp-detail .dp-leg[data-leg='{legs[0]['id']}'] [data-testid=go-en_route]",
                               timeout=20000)
        status = demo_conn.execute("SELECT status FROM dispatch_leg WHERE id = %s", [legs[0]["id"]]).fetchone()
        assert status["status"] == "signed_off"
        # a change made elsewhere (the accident section signs off) shows up live as well
        assert other.post(f"/api/v1/dispatch/legs/{legs[1]['id']}/transition",
                          json={"to": "signed_off"}).status_code == 200
        page.wait_for_selector(f"#dp-detail .dp-leg[data-leg='{legs[1]['id']}'] [data-testid=go-en_route]",
                               timeout=20000)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "dispatch-live-panel.png"))
        assert rec.console_errors == [], rec.console_errors
        assert rec.foreign == [], rec.foreign
        assert any("/api/v1/stream" in u for u in rec.requests)
    finally:
        rec.stop(page)
