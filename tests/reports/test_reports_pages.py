"""The report pages over real HTTP on the demo world (issue 14): who opens /reports and
/reports/print, the nav entry, the page config (texts in the page language, Beijing time zone, a
chief's organisation fixed), bad input to the print page, and the home page of a chief and the
leadership (today's figures, checked against the database) while other roles keep theirs. The
browser walk is test_reports_browser.py."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from support.server import Client, login_factory

BEIJING = ZoneInfo("Asia/Shanghai")


def _config(html: str, name: str = "reports-config") -> dict:
    m = re.search(r'<script type="application/json" id="' + name + r'" nonce="([^"]+)">(.*?)</script>', html, re.S)
    assert m, html[:500]
    return json.loads(m.group(2))


@pytest.fixture
def plogin(demo_live, demo_users):
    fn, made = login_factory(demo_live)
    yield fn
    for c in made:
        c.close()


def test_reports_pages_open_for_admin_leadership_and_chief_only(plogin, demo_live, demo_users):
    anon = Client(demo_live.url)
    r = anon.get("/reports", allow_redirects=False)
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert anon.get("/reports/print", allow_redirects=False).status_code == 302
    for role in ("admin", "leadership", "chief"):
        c = plogin(role)
        r = c.get("/reports")
        assert r.status_code == 200, (role, r.text[:300])
        assert 'href="/reports"' in r.text  # the nav entry
        assert "/static/vendor/echarts/echarts.min.js" in r.text
        cfg = _config(r.text)
        assert cfg["timezone"] == "Asia/Shanghai" and cfg["lang"] == "zh" and cfg["mode"] == "page"
        assert cfg["i18n"]["rp.title"] == "考核报表"
        assert cfg["month"] == datetime.now(UTC).astimezone(BEIJING).strftime("%Y-%m")
        if role == "chief":  # their own station, fixed; nothing else to pick
            own = demo_users["chief"]["station_id"]
            assert cfg["own_organisation"] == own
            assert [o["id"] for o in cfg["organisations"]] == [own]
            assert re.search(r'<select[^>]*data-testid="rp-org"[^>]*disabled', r.text)
        else:
            assert cfg["own_organisation"] is None
            kinds = {o["kind"] for o in cfg["organisations"]}
            assert {"station", "squadron", "accident_section"} <= kinds
        en = c.get("/reports?lang=en")
        assert _config(en.text)["i18n"]["rp.title"] == "Reports" and ">Reports<" in en.text
        pr = c.get("/reports/print?month=2026-11")
        assert pr.status_code == 200 and 'data-testid="pr-month">2026-11<' in pr.text
        c.get("/reports?lang=zh")
    for role in ("viewer", "dispatcher", "planner", "duty_officer"):
        c = plogin(role)
        assert c.get("/reports").status_code == 403, role
        assert 'href="/reports"' not in c.get("/").text, role


def test_print_page_bad_input(plogin, demo_users):
    lead = plogin("leadership")
    assert lead.get("/reports/print?month=2026-13").status_code == 400
    assert lead.get("/reports/print?month=x").status_code == 400
    assert lead.get("/reports/print?organisation=abc").status_code == 400
    assert lead.get("/reports/print?organisation=99999999").status_code == 404
    st = demo_users["chief"]["station_id"]
    r = lead.get(f"/reports/print?month=2026-11&organisation={st}")
    assert r.status_code == 200 and _config(r.text)["print_organisation"] == st
    chief = plogin("chief")
    assert chief.get(f"/reports/print?organisation={st}").status_code == 200
    assert chief.get(f"/reports/print?organisation={st + 1}").status_code == 403
    # the print page's header: organisation, month, generation time in Beijing time
    r = chief.get("/reports/print?month=2026-10")
    assert 'data-testid="pr-month">2026-10<' in r.text and "北京时间" in r.text
    gen = re.search(r'data-testid="pr-generated">([^<]+)<', r.text).group(1)
    shown = datetime.strptime(gen, "%Y-%m-%d %H:%M").replace(tzinfo=BEIJING)
    assert abs((datetime.now(UTC) - shown).total_seconds()) < 180


def _today_independently(conn, org: int | None) -> dict:
    """Today's counts straight from the tables (the clocks' limits of the settings: 90 s, 5 h, 22 h)."""
    now = conn.execute("SELECT now() AS n").fetchone()["n"]
    midnight = datetime.combine(now.astimezone(BEIJING).date(), datetime.min.time(), BEIJING)
    where = "" if org is None else f" AND organisation_id = {int(org)}"
    open_legs = conn.execute("SELECT count(*) AS n FROM dispatch_leg WHERE status NOT IN ('closed', 'cancelled', "
                             "'handed_back') AND dispatched_at <= %s" + where, [now]).fetchone()["n"]
    overdue = conn.execute(
        "SELECT count(*) FILTER (WHERE signed_off_at IS NULL AND dispatched_at < %(now)s - interval '90 seconds') "
        " + count(*) FILTER (WHERE first_feedback_at IS NULL AND coalesce(first_dispatched_at, dispatched_at) "
        "   < %(now)s - interval '18000 seconds') "
        " + count(*) FILTER (WHERE closed_at IS NULL AND coalesce(first_dispatched_at, dispatched_at) "
        "   < %(now)s - interval '79200 seconds') AS n "
        "FROM dispatch_leg WHERE status NOT IN ('closed', 'cancelled', 'handed_back') AND dispatched_at <= %(now)s"
        + where, {"now": now}).fetchone()["n"]
    inc_org = "" if org is None else (
        f" AND (station_org_id = {int(org)} OR traffic_org_id = {int(org)} OR EXISTS (SELECT 1 FROM dispatch_leg l "
        f"WHERE l.incident_id = incident.id AND l.organisation_id = {int(org)}))")
    incidents = conn.execute("SELECT count(*) AS n FROM incident WHERE reported_at >= %s AND reported_at <= %s "
                             "AND status NOT IN ('merged', 'cancelled')" + inc_org, [midnight, now]).fetchone()["n"]
    return {"open_legs": open_legs, "overdue_clocks": overdue, "incidents_today": incidents}


def _figure(html: str, testid: str) -> int:
    m = re.search(r'data-testid="' + testid + r'"[^>]*>\s*<div class="v">(\d+)</div>', html)
    assert m, testid
    return int(m.group(1))


def test_home_pages_by_role(plogin, demo_users, demo_conn):
    chief = plogin("chief")
    r = chief.get("/")
    assert r.status_code == 200
    assert 'data-testid="home-figures"' in r.text and 'data-testid="index"' not in r.text  # no layer counts
    assert 'href="/reports"' in r.text and 'href="/desk"' in r.text
    cfg = _config(r.text, "home-config")
    assert cfg["own_organisation"] == demo_users["chief"]["station_id"] and cfg["mode"] == "home"
    want = _today_independently(demo_conn, demo_users["chief"]["station_id"])
    assert _figure(r.text, "home-open-legs") == want["open_legs"]
    assert _figure(r.text, "home-overdue") == want["overdue_clocks"]
    assert _figure(r.text, "home-incidents-today") == want["incidents_today"]
    assert "黛溪派出所" in r.text
    lead = plogin("leadership")
    r = lead.get("/")
    assert r.status_code == 200 and 'data-testid="home-figures"' in r.text
    assert 'data-testid="home-to-desk"' not in r.text  # the leadership has no desk
    want = _today_independently(demo_conn, None)
    assert _figure(r.text, "home-open-legs") == want["open_legs"]
    assert _figure(r.text, "home-overdue") == want["overdue_clocks"]
    assert _figure(r.text, "home-incidents-today") == want["incidents_today"]
    assert "全县" in r.text
    en = lead.get("/?lang=en")
    assert "Open legs" in en.text and "Clocks overdue now" in en.text
    lead.get("/?lang=zh")
    # the other roles keep their homes: the admin, viewer, planner and dispatcher see the layer counts
    for role in ("admin", "viewer", "planner", "dispatcher"):
        h = plogin(role).get("/")
        assert 'data-testid="index"' in h.text and 'data-testid="home-figures"' not in h.text, role
