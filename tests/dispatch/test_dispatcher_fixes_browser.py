"""The dispatcher's fixes of issue 13, walked in headless chromium as a dispatcher would, on the demo
world with the default layers on (the road tiles included), in zh-CN and in English, on a
1280x800 screen whose clock is Beijing time. No console error, no request to another host, no
Content-Security-Policy violation."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from support.browser import launch, login, new_context, wait_for_js, wait_map_idle, watch
from support.database import PASSWORD

VIEWPORT = {"width": 1280, "height": 800}


@contextmanager
def _dispatcher(base_url: str, lang: str):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        ctx = new_context(browser, viewport=VIEWPORT, locale="zh-CN" if lang == "zh" else "en-GB",
                          timezone_id="Asia/Shanghai")
        page = ctx.new_page()
        login(page, base_url, "t_dispatcher", PASSWORD)
        try:
            yield page
            assert ctx.csp_violations == [], ctx.csp_violations
        finally:
            ctx.close()
            browser.close()


@pytest.fixture(scope="module", params=["zh", "en"])
def lang(request):
    return request.param


@pytest.fixture(scope="module")
def page(demo_live, demo_users, lang):
    with _dispatcher(demo_live.url, lang) as pg:
        yield pg


def _open(page, base: str, lang: str):
    rec = watch(page, base)
    page.goto(f"{base}/map/dispatch?lang={lang}")
    wait_map_idle(page)
    page.wait_for_selector("[data-testid=stream-state][data-state=live]", timeout=30000)
    wait_for_js(page, "document.querySelector('#dp-intake-form [name=type] option')")
    return rec


def _done(page, rec):
    try:
        assert rec.console_errors == [], rec.console_errors
        assert rec.foreign == [], rec.foreign
    finally:
        rec.stop(page)


def _village(conn, n: int) -> dict:
    """The n-th village of the demo world (each test its own, far from the others' duplicates)."""
    return conn.execute("SELECT code, name, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM village "
                        "ORDER BY code OFFSET %s LIMIT 1", [n]).fetchone()


def _click_map_at(page, lon: float, lat: float, zoom: int = 15) -> str:
    """Centre the map on a point and click it there as a person would (a real mouse click);
    return the tag of the element under the mouse (a road tile's CANVAS with the default layers)."""
    page.evaluate(f"gisapp.map.setView([{lat}, {lon}], {zoom}, {{animate: false}})")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(300)
    pt = page.evaluate(f"""(() => {{ const p = gisapp.map.latLngToContainerPoint([{lat}, {lon}]);
        const r = gisapp.map.getContainer().getBoundingClientRect();
        return {{x: r.left + p.x, y: r.top + p.y}}; }})()""")
    # close any popup that would cover the point
    page.evaluate("gisapp.map.closePopup()")
    tag = page.evaluate(f"document.elementFromPoint({pt['x']}, {pt['y']}).tagName")
    page.mouse.click(pt["x"], pt["y"])
    return tag


def _intake(page):
    if not page.evaluate("document.querySelector('[data-testid=intake]').open"):
        page.click("[data-testid=intake] summary")


def test_pick_on_the_map_with_the_road_tiles_on_names_the_place(page, lang, demo_live, demo_conn, demo_http):
    """Fix 1 and 7: the pick reaches the map over the road tiles; the address is the gazetteer's name."""
    rec = _open(page, demo_live.url, lang)
    try:
        assert page.evaluate("gisapp.map.hasLayer(gisapp.layers.roads)")  # the default layers
        v = _village(demo_conn, 11 if lang == "zh" else 12)
        _intake(page)
        page.click("[data-action=pick]")
        tag = _click_map_at(page, v["lon"], v["lat"])
        assert tag == "CANVAS", tag  # the click lands on a road tile
        wait_for_js(page, "document.querySelector('[data-testid=intake-point]').textContent.indexOf(',') > 0")
        lon, lat = [float(x) for x in page.inner_text("[data-testid=intake-point]").split(",")]
        assert abs(lon - v["lon"]) < 0.0005 and abs(lat - v["lat"]) < 0.0005
        # the address is filled from the gazetteer: the village picked (and its town)
        wait_for_js(page, "document.querySelector('[data-testid=intake-address]').value !== ''")
        address = page.input_value("[data-testid=intake-address]")
        assert v["name"] in address, (address, v["name"])
        expected = demo_http.get(f"/api/v1/dispatch/reverse_geocode?lon={lon}&lat={lat}").json()
        assert address == expected["label"]
        # no popup of a road was opened by the pick
        assert page.evaluate("document.querySelectorAll('.leaflet-popup').length") == 0
        _done(page, rec)
    finally:
        rec.stop(page)


def test_times_are_beijing_time(page, lang, demo_live, demo_conn, demo_login):
    """Fix 2: a call at 17:18 UTC on the 3rd reads 01:18 on the 4th in the panel and the map popup."""
    v = _village(demo_conn, 21 if lang == "zh" else 22)
    other = demo_login("dispatcher")
    r = other.post("/api/v1/dispatch/incidents", json={
        "channel": "110", "type": "dispute", "lon": v["lon"], "lat": v["lat"],
        "reported_at": "2026-12-03T17:18:00Z" if lang == "zh" else "2026-12-02T17:18:00Z"})
    assert r.status_code == 201, r.text
    inc = r.json()
    day = "2026-12-04" if lang == "zh" else "2026-12-03"
    rec = _open(page, demo_live.url, lang)
    try:
        item = f"[data-testid=queue-item][data-id='{inc['id']}']"
        page.wait_for_selector(item, timeout=20000)
        page.click(item)
        page.wait_for_selector("[data-testid=reported-at]")
        assert page.inner_text("[data-testid=reported-at]") == f"{day} 01:18"
        # the incident's popup on the map (its marker came with the page)
        page.evaluate(f"""(() => {{ let m = null; gisapp.layers.incidents.eachLayer(l => {{
            if (l.feature && l.feature.properties.id === {inc['id']}) m = l; }});
            gisapp.layers.incidents.zoomToShowLayer(m, () => {{ m.openPopup();
              window.__popup = document.querySelector('.leaflet-popup-content').innerText; }}); }})()""")
        wait_for_js(page, "window.__popup", timeout=10000)
        popup = page.evaluate("window.__popup")
        assert f"{day} 01:18" in popup and "17:18" not in popup, popup
        # the clock shows Beijing time, whatever the browser's own zone
        assert page.evaluate("gisapp.time('2026-12-03T17:18:05Z', 'hms')") == "01:18:05"
        _done(page, rec)
    finally:
        rec.stop(page)


def test_marker_after_reload_selects_and_detail_is_in_view(page, lang, demo_live, demo_conn, demo_login):
    """Fix 8: after a reload, clicking an incident's marker opens its detail, in view at 1280x800."""
    v = _village(demo_conn, 31 if lang == "zh" else 32)
    other = demo_login("dispatcher")
    r = other.post("/api/v1/dispatch/incidents", json={"channel": "110", "type": "dispute",
                                                       "lon": v["lon"], "lat": v["lat"]})
    assert r.status_code == 201, r.text
    inc = r.json()
    rec = _open(page, demo_live.url, lang)  # the marker comes with the page
    try:
        page.evaluate(f"""(() => {{ let m = null; gisapp.layers.incidents.eachLayer(l => {{
            if (l.feature && l.feature.properties.id === {inc['id']}) m = l; }});
            window.__m = m; gisapp.layers.incidents.zoomToShowLayer(m, () => {{ window.__shown = true; }}); }})()""")
        wait_for_js(page, "window.__shown === true && window.__m.getElement()")
        page.wait_for_timeout(400)
        box = page.evaluate("(() => { const r = window.__m.getElement().getBoundingClientRect();"
                            " return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()")
        page.mouse.click(box["x"], box["y"])
        page.wait_for_selector("[data-testid=incident-detail]:not([hidden])", timeout=10000)
        assert inc["code"] in page.inner_text("[data-testid=incident-detail] h3")
        assert page.evaluate(f"document.querySelector('[data-testid=queue-item][data-id=\"{inc['id']}\"]')"
                             ".classList.contains('sel')")
        # the detail's head is on screen without scrolling past the queue
        rect = page.evaluate("(() => { const r = document.querySelector('[data-testid=incident-detail] h3')"
                             ".getBoundingClientRect(); return {top: r.top, bottom: r.bottom, left: r.left}; })()")
        assert 0 <= rect["top"] and rect["bottom"] <= VIEWPORT["height"], rect
        under = page.evaluate(f"document.elementFromPoint({rect['left'] + 5}, {(rect['top'] + rect['bottom']) / 2})"
                              ".closest('[data-testid=incident-detail]') !== null")
        assert under
        _done(page, rec)
    finally:
        rec.stop(page)


def test_duplicate_is_asked_before_dispatch_and_board_follows_merge(page, lang, demo_live, demo_conn, demo_login):
    """Fix 3: with "dispatch at once" ticked, a duplicate is named by its code before anything is
    written; dispatched anyway and merged, its freed unit shows available at once."""
    v = _village(demo_conn, 41 if lang == "zh" else 42)
    other = demo_login("dispatcher")
    r = other.post("/api/v1/dispatch/incidents", json={"channel": "110", "type": "dispute", "lon": v["lon"],
                                                       "lat": v["lat"], "dispatch": True, "auto_assign": True})
    assert r.status_code == 201, r.text
    first = r.json()
    rec = _open(page, demo_live.url, lang)
    try:
        _intake(page)
        page.select_option("[data-testid=intake-channel]", "110")
        page.select_option("[data-testid=intake-type]", "dispute")
        page.click("[data-action=pick]")
        _click_map_at(page, v["lon"] + 0.0008, v["lat"], zoom=17)  # beside its marker, 70 m away
        wait_for_js(page, "document.querySelector('[data-testid=intake-point]').textContent.indexOf(',') > 0")
        assert page.is_checked("#dp-intake-form [name=dispatch]")
        n_before = demo_conn.execute("SELECT count(*) AS n FROM incident").fetchone()["n"]
        page.click("[data-testid=intake-submit]")
        page.wait_for_selector("[data-testid=ask]:not([hidden])", timeout=10000)
        assert first["code"] in page.inner_text("[data-testid=ask]")
        assert "#" + str(first["id"]) not in page.inner_text("[data-testid=ask]")
        # nothing taken, nothing dispatched while the question is open
        assert demo_conn.execute("SELECT count(*) AS n FROM incident").fetchone()["n"] == n_before
        page.click("[data-testid=ask-dispatch-anyway]")
        page.wait_for_selector("#dp-detail [data-testid=merge]", timeout=20000)
        second = demo_conn.execute("SELECT id, code, status FROM incident ORDER BY id DESC LIMIT 1").fetchone()
        assert second["status"] == "dispatched"
        assert first["code"] in page.inner_text("[data-testid=duplicates]")
        busy = demo_conn.execute("SELECT unit_id FROM dispatch_leg WHERE incident_id = %s AND unit_id IS NOT NULL",
                                 [second["id"]]).fetchall()
        assert busy
        avail = int(page.inner_text("[data-testid=units-available]"))
        page.click(f"#dp-detail [data-testid=merge][data-into='{first['id']}']")
        # the freed units are available on the board at once, without a reload
        wait_for_js(page, f"Number(document.querySelector('[data-testid=units-available]').textContent) === "
                          f"{avail + len(busy)}", timeout=15000)
        assert demo_conn.execute("SELECT status FROM incident WHERE id = %s", [second["id"]]).fetchone()["status"] \
            == "merged"
        _done(page, rec)
    finally:
        rec.stop(page)


def test_point_outside_the_county_is_a_choice(page, lang, demo_live, demo_conn):
    """Fix 6: a point just outside the county is offered to be taken anyway (then marked)."""
    pt = demo_conn.execute(
        "SELECT ST_X(p) AS lon, ST_Y(p) AS lat FROM (SELECT ST_PointN(ST_ExteriorRing(ST_GeometryN("
        "ST_Buffer(geom::geography, %s)::geometry, 1)), 1) AS p FROM county LIMIT 1) s",
        [600 if lang == "zh" else 900]).fetchone()
    rec = _open(page, demo_live.url, lang)
    try:
        _intake(page)
        page.click("[data-action=pick]")
        _click_map_at(page, pt["lon"], pt["lat"])
        wait_for_js(page, "document.querySelector('[data-testid=intake-point]').textContent.indexOf(',') > 0")
        page.uncheck("#dp-intake-form [name=dispatch]")
        page.click("[data-testid=intake-submit]")
        page.wait_for_selector("[data-testid=ask-outside-take]", timeout=10000)
        assert "allow_outside" not in page.inner_text("[data-testid=ask]")
        page.click("[data-testid=ask-outside-take]")
        page.wait_for_selector("[data-testid=incident-detail]:not([hidden])", timeout=20000)
        row = demo_conn.execute("SELECT code, outside_county FROM incident ORDER BY id DESC LIMIT 1").fetchone()
        assert row["outside_county"] is True
        assert row["code"] in page.inner_text("[data-testid=incident-detail] h3")
        _done(page, rec)
    finally:
        rec.stop(page)


def test_choose_a_unit_see_why_and_names_in_the_page_language(page, lang, demo_live, demo_conn, demo_login):
    """Fix 4 and 9: pick any recommended unit per leg before dispatch, each with why (ETA, distance,
    capability, status); organisation names in the page's language (the legend's source)."""
    v = _village(demo_conn, 51 if lang == "zh" else 52)
    other = demo_login("dispatcher")
    r = other.post("/api/v1/dispatch/incidents", json={"channel": "122", "type": "traffic_accident",
                                                       "severity": "injury", "lon": v["lon"], "lat": v["lat"]})
    assert r.status_code == 201, r.text
    inc = r.json()
    rec = _open(page, demo_live.url, lang)
    try:
        item = f"[data-testid=queue-item][data-id='{inc['id']}']"
        page.wait_for_selector(item, timeout=20000)
        page.click(item)
        page.wait_for_selector("#dp-detail [data-plan-role=primary] [data-testid=choose]", timeout=30000)
        why = page.inner_text("#dp-detail [data-plan-role=primary] [data-testid=rec-why]")
        status_text = "空闲" if lang == "zh" else "Available"
        assert status_text in why, why
        choices = page.query_selector_all("#dp-detail [data-plan-role=primary] [data-testid=choose]")
        pick = choices[-1].get_attribute("data-unit")  # not the nearest when there are several
        choices[-1].click()
        page.wait_for_selector(f"#dp-detail [data-plan-role=primary] [data-testid=choose][data-unit='{pick}']"
                               "[aria-pressed=true]")
        page.click("[data-testid=dispatch-btn]")
        page.wait_for_selector("#dp-detail .dp-leg[data-leg]", timeout=20000)
        leg = demo_conn.execute("SELECT l.unit_id, o.name, o.name_en FROM dispatch_leg l JOIN organisation o "
                                "ON o.id = l.organisation_id WHERE l.incident_id = %s AND l.role = 'primary'",
                                [inc["id"]]).fetchone()
        assert leg["unit_id"] == int(pick)
        org_texts = [e.inner_text() for e in page.query_selector_all("#dp-detail [data-testid=leg-org]")]
        expected = leg["name_en"] if lang == "en" else leg["name"]
        assert expected in org_texts, (org_texts, expected)
        if lang == "en":
            # the legend and the panel agree: no Chinese organisation name in the English panel
            assert not any(any("\u4e00" <= ch <= "\u9fff" for ch in t) for t in org_texts), org_texts
        _done(page, rec)
    finally:
        rec.stop(page)


def _duty_points(conn, n: int) -> list[dict]:
    """Points in the duty officer's station (the chief's), spread out (no duplicates of each other)."""
    return conn.execute(
        """SELECT ST_X(p.geom) AS lon, ST_Y(p.geom) AS lat, j.organisation_id FROM app_user u
           JOIN jurisdiction j ON j.organisation_id = u.station_id AND j.kind = 'station' AND j.valid_to IS NULL,
           LATERAL (SELECT (ST_Dump(ST_GeneratePoints(ST_Buffer(j.geom, -0.003), %s, 1313))).geom) p
           WHERE u.username = 't_duty_officer' ORDER BY ST_X(p.geom)""", [n]).fetchall()


def test_reassign_a_leg_to_another_recommended_unit(page, lang, demo_live, demo_conn, demo_login):
    """Fix 4 (after dispatch): a dispatched leg is given another recommended unit from the panel."""
    v = _village(demo_conn, 101 if lang == "zh" else 102)
    # earlier walks on the shared demo may have left the station's cars on open legs: two free
    # cars (one is dispatched, the other is the one to reassign to)
    demo_conn.execute("UPDATE unit SET status = 'available', current_leg_id = NULL "
                      "WHERE status NOT IN ('off_duty', 'out_of_service') AND organisation_id IN ("
                      "SELECT organisation_id FROM jurisdiction WHERE kind = 'station' AND valid_to IS NULL "
                      "AND ST_Intersects(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326)))", [v["lon"], v["lat"]])
    other = demo_login("dispatcher")
    r = other.post("/api/v1/dispatch/incidents", json={"channel": "110", "type": "dispute", "lon": v["lon"],
                                                       "lat": v["lat"], "dispatch": True, "auto_assign": True})
    assert r.status_code == 201, r.text
    inc = r.json()
    leg = inc["legs"][0]
    assert leg["unit_id"]
    rec = _open(page, demo_live.url, lang)
    try:
        item = f"[data-testid=queue-item][data-id='{inc['id']}']"
        page.wait_for_selector(item, timeout=20000)
        page.click(item)
        box = f"#dp-detail .dp-leg[data-leg='{leg['id']}']"
        page.click(f"{box} [data-testid=show-reassign]")
        page.wait_for_selector(f"{box} [data-testid=reassign]", timeout=30000)
        assert page.inner_text(f"{box} [data-testid=rec-why]")  # why: org, kind, crew, status, capabilities
        target = page.get_attribute(f"{box} [data-testid=reassign] >> nth=0", "data-unit")
        page.click(f"{box} [data-testid=reassign] >> nth=0")
        code = demo_conn.execute("SELECT code FROM unit WHERE id = %s", [int(target)]).fetchone()["code"]
        page.wait_for_selector(f"{box} [data-testid=leg-unit]:has-text('{code}')", timeout=20000)
        row = demo_conn.execute("SELECT unit_id FROM dispatch_leg WHERE id = %s", [leg["id"]]).fetchone()
        assert row["unit_id"] == int(target) != leg["unit_id"]
        assert demo_conn.execute("SELECT status FROM unit WHERE id = %s", [leg["unit_id"]]).fetchone()["status"] \
            == "available"
        _done(page, rec)
    finally:
        rec.stop(page)


def test_close_without_dispatch_with_an_outcome(page, lang, demo_live, demo_conn, demo_login):
    """Fix 5: a false alarm is closed from the panel with an outcome of the catalogue, no leg."""
    v = _village(demo_conn, 111 if lang == "zh" else 112)
    other = demo_login("dispatcher")
    inc = other.post("/api/v1/dispatch/incidents", json={"channel": "110", "type": "dispute", "lon": v["lon"],
                                                         "lat": v["lat"]}).json()
    rec = _open(page, demo_live.url, lang)
    try:
        item = f"[data-testid=queue-item][data-id='{inc['id']}']"
        page.wait_for_selector(item, timeout=20000)
        page.click(item)
        page.click("[data-testid=close-box] summary")
        options = page.eval_on_selector_all("[data-testid=close-outcome] option", "els => els.map(e => e.value)")
        assert "false_alarm" in options and "phone_advice" in options and "mediation" not in options
        label = page.eval_on_selector("[data-testid=close-outcome] option[value=phone_advice]", "e => e.textContent")
        assert label == ("电话告知/咨询" if lang == "zh" else "Advice by phone")
        page.select_option("[data-testid=close-outcome]", "phone_advice")
        page.fill("[data-testid=close-form] textarea", "已电话告知报警人")
        page.click("[data-testid=close-submit]")
        page.wait_for_selector(item, state="detached", timeout=20000)
        row = demo_conn.execute("SELECT status, outcome, outcome_note FROM incident WHERE id = %s",
                                [inc["id"]]).fetchone()
        assert (row["status"], row["outcome"], row["outcome_note"]) == ("closed", "phone_advice", "已电话告知报警人")
        assert demo_conn.execute("SELECT count(*) AS n FROM dispatch_leg WHERE incident_id = %s",
                                 [inc["id"]]).fetchone()["n"] == 0
        _done(page, rec)
    finally:
        rec.stop(page)


def test_screen_follows_the_desk_live_and_redispatches_a_handed_back_leg(page, lang, demo_live, demo_conn,
                                                                         demo_login):
    """The dispatcher's screen follows the station's desk without a reload (sign-off, feedback,
    closing with an outcome, hand-back), and a handed-back incident shows its reason in the queue
    and is re-dispatched to a chosen organisation from the panel."""
    pts = _duty_points(demo_conn, 6)
    a, b = (pts[0], pts[3]) if lang == "zh" else (pts[1], pts[5])
    other = demo_login("dispatcher")
    duty = demo_login("duty_officer")
    one = other.post("/api/v1/dispatch/incidents", json={"channel": "110", "type": "dispute", "lon": a["lon"],
                                                         "lat": a["lat"], "dispatch": True, "auto_assign": True})
    assert one.status_code == 201, one.text
    one = one.json()
    two = other.post("/api/v1/dispatch/incidents", json={"channel": "110", "type": "dispute", "lon": b["lon"],
                                                         "lat": b["lat"], "dispatch": True, "auto_assign": True})
    assert two.status_code == 201, two.text
    two = two.json()
    leg1 = one["legs"][0]
    assert leg1["organisation_id"] == a["organisation_id"] and leg1["unit_id"]
    rec = _open(page, demo_live.url, lang)
    try:
        item = f"[data-testid=queue-item][data-id='{one['id']}']"
        page.wait_for_selector(item, timeout=20000)
        page.click(item)
        status = f"#dp-detail .dp-leg[data-leg='{leg1['id']}'] [data-testid=leg-status]"
        labels = {"zh": {"signed_off": "已签收", "arrived": "已到场", "first_feedback": "已反馈"},
                  "en": {"signed_off": "signed off", "arrived": "arrived", "first_feedback": "first feedback"}}[lang]
        for to, body in (("signed_off", {}), ("en_route", {}), ("arrived", {}),
                         ("first_feedback", {"note": "双方情绪稳定"})):
            r = duty.post(f"/api/v1/dispatch/legs/{leg1['id']}/transition", json={"to": to, **body})
            assert r.status_code == 200, r.text
            if to in labels:
                page.wait_for_selector(f"{status}:has-text('{labels[to]}')", timeout=20000)
        r = duty.post(f"/api/v1/dispatch/legs/{leg1['id']}/transition",
                      json={"to": "closed", "outcome": "mediation", "note": "现场调解成功"})
        assert r.status_code == 200, r.text
        page.wait_for_selector(item, state="detached", timeout=20000)  # closed: off the queue, live
        # a hand-back at the desk: the incident is back in the queue, flagged, with its reason
        leg2 = two["legs"][0]
        r = duty.post(f"/api/v1/dispatch/legs/{leg2['id']}/hand_back", json={"reason": "不属于本所辖区"})
        assert r.status_code == 200, r.text
        item2 = f"[data-testid=queue-item][data-id='{two['id']}']"
        page.wait_for_selector(f"{item2} [data-testid=needs-owner]", timeout=20000)
        page.click(item2)
        page.wait_for_selector("[data-testid=needs-owner-box]")
        assert page.inner_text("[data-testid=hand-back-reason]") == "不属于本所辖区"
        assert page.query_selector("[data-testid=dispatch-btn]") is None
        # re-dispatched to another organisation from the panel
        orgs = page.eval_on_selector_all("[data-testid=redispatch-org] option", "els => els.map(e => e.value)")
        target = next(o for o in orgs if int(o) != leg2["organisation_id"])
        page.select_option("[data-testid=redispatch-org]", target)
        page.click("[data-testid=redispatch]")
        page.wait_for_selector("[data-testid=needs-owner-box]", state="detached", timeout=20000)
        new = demo_conn.execute("SELECT organisation_id, status, redispatch_of FROM dispatch_leg WHERE incident_id = %s "
                                "ORDER BY id DESC LIMIT 1", [two["id"]]).fetchone()
        assert (new["organisation_id"], new["status"], new["redispatch_of"]) == (int(target), "dispatched", leg2["id"])
        _done(page, rec)
    finally:
        rec.stop(page)
