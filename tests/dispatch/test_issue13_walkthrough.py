"""Issue 13's "Done when", walked in headless chromium on the demo world, three people at three
screens (browser contexts whose own clock is UTC, so that Beijing time on screen is the page's
doing): a dispatcher on /map/dispatch takes a 122 injury accident by clicking the map with the
default layers on (the road tiles included) and dispatches it by the rules (一警双派); the
station's duty officer sees the leg arrive on /desk (banner, countdown), signs it off, goes en
route and arrives, gives first feedback and closes it with on-site mediation; the accident
section's duty officer works the section's own leg on its desk the same way; the dispatcher's
screen follows every step live, and the incident leaves the queue when both legs are closed.
Every time shown is Beijing time. No console error, no request to another host, no CSP
violation. Screenshots in var/screenshots/walkthrough-*.png."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from support.browser import launch, login, new_context, wait_for_js, wait_map_idle, watch
from support.database import PASSWORD

from gisapp.core import db
from gisapp.core.config import ROOT, Settings

SHOTS = ROOT / "var" / "screenshots"
BEIJING = ZoneInfo("Asia/Shanghai")
SCREEN = {"width": 1280, "height": 800}
ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
STEP_LABEL = {"signed_off": "已签收", "en_route": "出警中", "arrived": "已到场", "first_feedback": "已反馈", "closed": "已结案"}


def _beijing(ts: datetime, seconds: bool = True) -> str:
    return ts.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


@pytest.fixture(scope="module")
def people(demo_users, demo_database_url):
    """The station's duty officer (t_duty_officer) and the accident section's (t_duty_accident)."""
    from gisapp.core.accounts import create_user

    with db.connect(demo_database_url) as conn:
        section = conn.execute("SELECT id FROM organisation WHERE kind = 'accident_section' ORDER BY code LIMIT 1"
                               ).fetchone()["id"]
        if conn.execute("SELECT 1 FROM app_user WHERE username = 't_duty_accident'").fetchone() is None:
            create_user(conn, "t_duty_accident", PASSWORD, "duty_officer", section)
        conn.commit()
    return {"station": demo_users["duty_officer"]["station_id"], "section": section}


@pytest.fixture(scope="module")
def browser(demo_live):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


def _place(conn, station: int) -> dict:
    """A village of the station's jurisdiction with no recent incident near it (no possible duplicate)."""
    s = Settings()
    return conn.execute(
        "SELECT v.name, ST_X(v.geom) AS lon, ST_Y(v.geom) AS lat FROM village v JOIN jurisdiction j "
        "ON j.kind = 'station' AND j.organisation_id = %s AND j.valid_from <= now() "
        "AND (j.valid_to IS NULL OR j.valid_to > now()) AND ST_Contains(j.geom, v.geom) "
        "WHERE NOT EXISTS (SELECT 1 FROM incident i WHERE i.reported_at > now() - %s * interval '1 second' "
        "AND ST_DWithin(i.geom::geography, v.geom::geography, %s)) ORDER BY v.code DESC LIMIT 1",
        [station, 3 * s.duplicate_window_s, 3 * s.duplicate_radius_m]).fetchone()


def _screen(browser, base: str, user: str):
    ctx = new_context(browser, viewport=SCREEN, locale="zh-CN", timezone_id="UTC")
    page = ctx.new_page()
    rec = watch(page, base)
    login(page, base, user, PASSWORD)
    return ctx, page, rec


def _click_map_at(page, lon: float, lat: float, zoom: int = 15) -> str:
    """Centre the dispatcher's map on a point and click it with the mouse; the tag under the mouse."""
    page.evaluate(f"gisapp.map.setView([{lat}, {lon}], {zoom}, {{animate: false}})")
    page.wait_for_timeout(600)
    pt = page.evaluate(f"""(() => {{ const p = gisapp.map.latLngToContainerPoint([{lat}, {lon}]);
        const r = gisapp.map.getContainer().getBoundingClientRect();
        return {{x: r.left + p.x, y: r.top + p.y}}; }})()""")
    page.evaluate("gisapp.map.closePopup()")
    tag = page.evaluate(f"document.elementFromPoint({pt['x']}, {pt['y']}).tagName")
    page.mouse.click(pt["x"], pt["y"])
    return tag


def _work_leg(desk, dispatcher, conn, leg_id: int, feedback: str, outcome_label: str, note: str) -> None:
    """On a desk: sign the leg off, en route, arrived, first feedback, close with an outcome; after each
    step the dispatcher's screen shows the leg's new status without a reload."""
    row = f"[data-testid=desk-leg][data-id='{leg_id}']"
    desk.wait_for_selector(row, timeout=30000)
    desk.click(row)
    desk.wait_for_selector(f"[data-testid=desk-leg-detail][data-leg='{leg_id}']")
    on_dispatch = f"#dp-detail .dp-leg[data-leg='{leg_id}'] [data-testid=leg-status]"

    def step(status: str) -> None:
        desk.wait_for_selector(f"[data-testid=desk-leg-detail][data-leg='{leg_id}'][data-status={status}]", timeout=20000)
        assert conn.execute("SELECT status FROM dispatch_leg WHERE id = %s", [leg_id]).fetchone()["status"] == status
        wait_for_js(dispatcher, f"(document.querySelector(\"{on_dispatch}\") || {{}}).textContent === {STEP_LABEL[status]!r}",
                    timeout=20000)

    for to in ("signed_off", "en_route", "arrived"):
        desk.click(f"[data-testid=desk-go-{to}]")
        step(to)
    desk.fill("[data-testid=desk-feedback-note]", feedback)
    desk.click("[data-testid=desk-feedback-submit]")
    step("first_feedback")
    options = desk.eval_on_selector_all("[data-testid=desk-outcome] option", "els => els.map(e => [e.value, e.textContent])")
    code = [v for v, text in options if text == outcome_label]
    assert code, options
    desk.select_option("[data-testid=desk-outcome]", code[0])
    desk.fill("[data-testid=desk-close-note]", note)
    desk.click("[data-testid=desk-close-submit]")
    step("closed")
    assert conn.execute("SELECT outcome, outcome_note FROM dispatch_leg WHERE id = %s", [leg_id]).fetchone() == {
        "outcome": code[0], "outcome_note": note}


def _times_are_beijing(page, conn, incident_id: int, leg_id: int) -> None:
    """The desk's timeline shows every event of the leg at its Beijing time; no ISO/UTC time anywhere."""
    events = conn.execute("SELECT at FROM incident_event WHERE incident_id = %s AND (leg_id = %s OR leg_id IS NULL) "
                          "ORDER BY id", [incident_id, leg_id]).fetchall()
    assert len(events) >= 8
    wait_for_js(page, f"document.querySelectorAll('[data-testid=desk-event]').length === {len(events)}")
    tl = page.inner_text("[data-testid=desk-timeline]")
    for ev in events:
        assert _beijing(ev["at"]) in tl, (_beijing(ev["at"]), tl)
    reported = conn.execute("SELECT reported_at FROM incident WHERE id = %s", [incident_id]).fetchone()["reported_at"]
    assert page.inner_text("[data-testid=desk-reported]") == _beijing(reported)
    assert not ISO.search(page.inner_text("body"))


def test_done_when_dispatcher_station_and_accident_section(browser, demo_live, demo_conn, people):
    base = demo_live.url
    place = _place(demo_conn, people["station"])
    assert place, "no free village in the station's jurisdiction"
    screens = [_screen(browser, base, u) for u in ("t_dispatcher", "t_duty_officer", "t_duty_accident")]
    (dctx, dpage, drec), (sctx, spage, srec), (actx, apage, arec) = screens
    inc = None
    try:
        # --- three screens open and live ---
        dpage.goto(f"{base}/map/dispatch")
        wait_map_idle(dpage)
        dpage.wait_for_selector("[data-testid=stream-state][data-state=live]", timeout=30000)
        wait_for_js(dpage, "document.querySelector('#dp-intake-form [name=type] option')")
        assert dpage.evaluate("gisapp.map.hasLayer(gisapp.layers.roads)")  # the default layers are on
        for page, org in ((spage, people["station"]), (apage, people["section"])):
            assert page.url.rstrip("/").endswith("/desk")  # a duty officer's home is the desk
            page.wait_for_selector("[data-testid=desk-conn][data-state=live]", timeout=30000)
            assert page.get_attribute("[data-testid=desk]", "data-org") == str(org)

        # --- the dispatcher takes a 122 injury accident by clicking the map ---
        if not dpage.evaluate("document.querySelector('[data-testid=intake]').open"):
            dpage.click("[data-testid=intake] summary")
        dpage.select_option("[data-testid=intake-channel]", "122")
        dpage.select_option("[data-testid=intake-type]", "traffic_accident")
        dpage.select_option("[data-testid=intake-severity]", "injury")
        dpage.click("[data-action=pick]")
        tag = _click_map_at(dpage, place["lon"], place["lat"])
        assert tag == "CANVAS", tag  # the click went through a road tile to the map
        wait_for_js(dpage, "document.querySelector('[data-testid=intake-point]').textContent.indexOf(',') > 0")
        wait_for_js(dpage, "document.querySelector('[data-testid=intake-address]').value !== ''")
        assert place["name"] in dpage.input_value("[data-testid=intake-address]")
        dpage.fill("#dp-intake-form [name=description]", "两车相撞，一人受伤，双方对责任有争议")
        dpage.click("[data-testid=intake-submit]")
        dpage.wait_for_selector("#dp-detail .dp-leg[data-leg]", timeout=30000)
        inc = demo_conn.execute("SELECT id, code, reported_at FROM incident ORDER BY id DESC LIMIT 1").fetchone()
        legs = {r["organisation_id"]: r["id"] for r in demo_conn.execute(
            "SELECT id, organisation_id FROM dispatch_leg WHERE incident_id = %s", [inc["id"]])}
        assert set(legs) == {people["station"], people["section"]}, legs  # 一警双派: station and accident section
        assert dpage.inner_text("[data-testid=reported-at]") == _beijing(inc["reported_at"], seconds=False)

        # --- both desks see their own leg arrive, with the banner and the running countdown ---
        for page, org in ((spage, people["station"]), (apage, people["section"])):
            page.wait_for_selector(f"[data-testid=desk-leg][data-id='{legs[org]}']", timeout=30000)
            alert = page.locator("[data-testid=desk-alert]")
            alert.wait_for(state="visible")
            assert inc["code"] in alert.inner_text()
            first = page.inner_text("[data-testid=desk-alert-countdown]")
            wait_for_js(page, f"document.querySelector('[data-testid=desk-alert-countdown]').textContent !== {first!r}")
            # the other organisation's leg is not on this desk
            other = legs[people["section"] if org == people["station"] else people["station"]]
            assert page.locator(f"[data-testid=desk-leg][data-id='{other}']").count() == 0
        SHOTS.mkdir(parents=True, exist_ok=True)
        spage.screenshot(path=str(SHOTS / "walkthrough-desk-arrival.png"))

        # --- the station's duty officer works the station's leg; the dispatcher's screen follows ---
        _work_leg(spage, dpage, demo_conn, legs[people["station"]], "已到现场，两车追尾，一人轻伤送医", "现场调解",
                  "双方当场达成调解协议")
        _times_are_beijing(spage, demo_conn, inc["id"], legs[people["station"]])
        spage.screenshot(path=str(SHOTS / "walkthrough-desk-station.png"), full_page=True)
        # the incident stays in the dispatcher's queue while the accident section's leg is open
        assert dpage.locator(f"[data-testid=queue-item][data-id='{inc['id']}']").count() == 1

        # --- the accident section's officer works its own leg ---
        _work_leg(apage, dpage, demo_conn, legs[people["section"]], "事故科已到场勘查，固定证据", "简易程序",
                  "按简易程序处理，出具事故认定书")
        _times_are_beijing(apage, demo_conn, inc["id"], legs[people["section"]])
        apage.screenshot(path=str(SHOTS / "walkthrough-desk-accident.png"), full_page=True)

        # --- the incident is closed: it leaves the dispatcher's queue, live ---
        dpage.wait_for_selector(f"[data-testid=queue-item][data-id='{inc['id']}']", state="detached", timeout=20000)
        assert demo_conn.execute("SELECT status FROM incident WHERE id = %s", [inc["id"]]).fetchone()["status"] == "closed"
        assert not ISO.search(dpage.inner_text("[data-testid=dispatch-panel]"))
        dpage.screenshot(path=str(SHOTS / "walkthrough-dispatcher.png"))

        for ctx, page, rec in screens:
            assert rec.console_errors == [], (page.url, rec.console_errors)
            assert rec.foreign == [], rec.foreign
            assert ctx.csp_violations == [], ctx.csp_violations
    finally:
        for ctx, page, rec in screens:
            rec.stop(page)
            ctx.close()
