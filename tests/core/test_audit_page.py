"""The admins' audit page (issue 12, item 8): who did what, when (local time) and from where --
log-ins, failed log-ins, writes, views of personal data (grid staff) -- with filters, paging and
CSV export, in both languages, in the headless browser; the same filters on GET /api/v1/audit;
every other role gets 403."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from support.browser import launch, login, new_context, watch
from support.database import PASSWORD
from support.server import Client

AGENT = "AuditTester/1.0 (issue 12)"


def _client(base: str, role: str | None = None, password: str = PASSWORD) -> tuple[Client, int]:
    c = Client(base)
    c.headers["User-Agent"] = AGENT
    c.headers["Origin"] = base
    status = 0
    if role:
        status = c.post("/login", data={"username": f"t_{role}", "password": password},
                        allow_redirects=False).status_code
    return c, status


@pytest.fixture(scope="module")
def trail(demo_live, demo_users, demo_database_url):
    """A failed log-in, a log-in, a write, a view of grid staff, all from one recognisable client."""
    from gisapp.core import db

    base = demo_live.url
    _, failed = _client(base, "planner", "wrong-password")
    assert failed == 401
    planner, ok = _client(base, "planner")
    assert ok == 302
    with db.connect(demo_database_url, autocommit=True) as conn:
        grid = conn.execute("SELECT g.id FROM grid g WHERE EXISTS (SELECT 1 FROM grid_staff s WHERE s.grid_id = g.id) "
                            "ORDER BY g.id LIMIT 1").fetchone()
    r = planner.get(f"/api/v1/grids/{grid['id']}")
    assert r.status_code == 200 and r.json()["properties"]["staff"], r.text
    r = planner.patch(f"/api/v1/grids/{grid['id']}", json={"properties": {"name": "审计测试警格"}})
    assert r.status_code == 200, r.text
    yield {"grid_id": grid["id"]}
    planner.close()


def test_reads_of_grid_staff_and_writes_are_logged_with_client(demo_live, demo_users, trail, demo_database_url):
    admin, _ = _client(demo_live.url, "admin")
    rows = admin.get("/api/v1/audit", params={"actor": "t_planner", "limit": 50}).json()
    by_action = {r["action"]: r for r in rows}
    assert {"login", "view_personal", "update"} <= set(by_action), rows
    view = by_action["view_personal"]
    assert view["entity"] == "grid_staff" and view["entity_id"] == str(trail["grid_id"])
    assert AGENT in view["client"] and "127.0.0.1" in view["client"]
    # a write made in the layer code names its client too
    assert by_action["update"]["entity"] == "grids" and AGENT in (by_action["update"]["client"] or "")
    failed = admin.get("/api/v1/audit", params={"action": "login_failed", "actor": "t_planner"})
    assert failed.status_code == 200 and failed.json() and AGENT in failed.json()[0]["client"]


def test_api_filters_paging_and_csv(demo_live, demo_users, trail):
    admin, _ = _client(demo_live.url, "admin")
    all_rows = admin.get("/api/v1/audit", params={"limit": 10000})
    total = int(all_rows.headers["X-Total-Count"])
    assert total >= 4 and len(all_rows.json()) == min(total, 10000)
    page1 = admin.get("/api/v1/audit", params={"limit": 2}).json()
    page2 = admin.get("/api/v1/audit", params={"limit": 2, "offset": 2}).json()
    assert len(page1) == 2 and [r["id"] for r in page1 + page2] == [r["id"] for r in all_rows.json()[:4]]
    text = admin.get("/api/v1/audit", params={"q": "AuditTester"}).json()
    assert text and all(AGENT in (r["client"] or "") for r in text)
    future = (datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert admin.get("/api/v1/audit", params={"since": future}).json() == []
    assert admin.get("/api/v1/audit", params={"until": future, "entity": "grid_staff"}).json()
    assert admin.get("/api/v1/audit", params={"since": "yesterday"}).status_code == 400
    assert admin.get("/api/v1/audit", params={"colour": "red"}).status_code == 400
    csv_resp = admin.get("/api/v1/audit", params={"format": "csv", "actor": "t_planner"})
    assert csv_resp.status_code == 200 and csv_resp.headers["Content-Type"].startswith("text/csv")
    assert csv_resp.content.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(csv_resp.content.decode("utf-8-sig"))))
    assert table[0][:3] == ["ID", "Time", "Actor"] and {r[3] for r in table[1:]} >= {"login", "view_personal"}
    for role in ("dispatcher", "planner", "chief", "viewer"):
        c, _ = _client(demo_live.url, role)
        assert c.get("/api/v1/audit").status_code == 403
        assert c.get("/audit").status_code == 403
        assert c.get("/audit.csv").status_code == 403
    anon = Client(demo_live.url)
    assert anon.get("/api/v1/audit").status_code == 401
    assert anon.get("/audit", allow_redirects=False).status_code == 302


def test_audit_page_in_the_browser_in_both_languages(demo_live, demo_users, trail):
    from playwright.sync_api import sync_playwright

    base = demo_live.url
    with sync_playwright() as p:
        browser = launch(p)
        ctx = new_context(browser, viewport={"width": 1500, "height": 900}, locale="zh-CN", accept_downloads=True)
        page = ctx.new_page()
        try:
            login(page, base, "t_admin", PASSWORD)
            rec = watch(page, base)
            # linked in the nav for admins, zh-CN by default
            page.goto(base + "/")
            page.click("[data-testid=navbar] a[data-page=audit]")
            page.wait_for_selector("[data-testid=audit-table]")
            assert page.inner_text("h1").strip() == "审计日志"
            assert "操作人" in page.inner_text("[data-testid=audit-table]")
            # filter: the planner's views of personal data
            page.select_option("[data-testid=filter-actor]", "t_planner")
            page.select_option("[data-testid=filter-action]", "view_personal")
            page.click("[data-testid=audit-apply]")
            page.wait_for_load_state("networkidle")
            rows = page.locator("[data-testid=audit-row]")
            assert rows.count() >= 1
            first = rows.nth(0).inner_text()
            assert "t_planner" in first and "view_personal" in first and "grid_staff" in first and AGENT in first
            # the time is Beijing time
            shown = datetime.strptime(first.split("\t")[0].strip(), "%Y-%m-%d %H:%M:%S")
            now_bj = datetime.now(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None)
            assert abs((now_bj - shown).total_seconds()) < 3600
            # text filter and paging
            page.goto(base + "/audit?limit=2")
            assert page.locator("[data-testid=audit-row]").count() == 2
            first_ids = page.eval_on_selector_all("[data-testid=audit-row]", "rs => rs.map(r => r.dataset.id)")
            page.click("[data-testid=audit-next]")
            page.wait_for_load_state("networkidle")
            next_ids = page.eval_on_selector_all("[data-testid=audit-row]", "rs => rs.map(r => r.dataset.id)")
            assert next_ids and not set(first_ids) & set(next_ids)
            page.fill("[data-testid=filter-q]", "AuditTester")
            page.click("[data-testid=audit-apply]")
            page.wait_for_load_state("networkidle")
            texts = page.eval_on_selector_all("[data-testid=audit-row]", "rs => rs.map(r => r.innerText)")
            assert texts and all(AGENT in t for t in texts)
            # the CSV export of what is shown: UTF-8 with BOM, Chinese headers
            with page.expect_download() as dl:
                page.click("[data-testid=audit-csv]")
            with open(dl.value.path(), "rb") as fh:
                data = fh.read()
            assert data.startswith(b"\xef\xbb\xbf")
            table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
            assert table[0][:3] == ["编号", "时间", "操作人"] and len(table) - 1 == len(texts)
            # English
            page.goto(base + "/audit?lang=en")
            assert page.inner_text("h1").strip() == "Audit log"
            assert "Actor" in page.inner_text("[data-testid=audit-table]")
            assert rec.console_errors == [] and rec.foreign == []
            rec.stop(page)
            # other roles: no link, 403
            for role in ("dispatcher", "viewer"):
                other = browser.new_context()
                op = other.new_page()
                login(op, base, f"t_{role}", PASSWORD)
                assert op.locator("[data-testid=navbar] a[data-page=audit]").count() == 0
                assert op.goto(base + "/audit").status == 403
                other.close()
            assert ctx.csp_violations == [], ctx.csp_violations
        finally:
            ctx.close()
            browser.close()


def test_dispatch_writes_are_on_the_audit_trail(demo_live, demo_users, trail):
    """Intake and dispatch are writes too: they are on the trail with who, when and the client."""
    disp, ok = _client(demo_live.url, "dispatcher")
    assert ok == 302
    r = disp.post("/api/v1/dispatch/incidents", json={
        "channel": "110", "type": "theft", "location": {"type": "Point", "coordinates": [117.74, 36.88]},
        "description": "审计：派警也要留痕", "dispatch": True})
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    admin, _ = _client(demo_live.url, "admin")
    rows = admin.get("/api/v1/audit", params={"entity": "incident", "entity_id": str(iid)}).json()
    actions = {x["action"] for x in rows}
    assert {"dispatch_created", "dispatch_dispatched"} <= actions, rows
    assert all(x["actor"] == "t_dispatcher" and AGENT in (x["client"] or "") for x in rows)
    disp.close()
    admin.close()
