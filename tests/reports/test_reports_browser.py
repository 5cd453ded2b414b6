"""The report pages in headless chromium on the demo world (issue 14), as a chief and as the
leadership, in Chinese and in English: /reports loads with zero console errors and zero requests
to other hosts; the filters (organisation, channel, month) change the tables and the charts to
what the API answers; a 满天星 score opens its parts and the legs behind them; a figure opens the
incidents behind it (JQ codes, reported time in Beijing time); the XLSX download is read back with
openpyxl and checked against the API's JSON; the print page renders its charts; the home pages of
the chief and the leadership show today's figures. Screenshots in var/screenshots/."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
import shapely.geometry
from support.browser import launch, login, new_context, wait_for_js, watch
from support.database import PASSWORD
from support.server import login_factory

from gisapp.core.config import ROOT

SHOTS = ROOT / "var" / "screenshots"
BEIJING = ZoneInfo("Asia/Shanghai")
DESKTOP = {"width": 1400, "height": 900}
TITLE = {"zh": "考核报表", "en": "Reports"}
COUNTY = {"zh": "全县（对比）", "en": "County (for comparison)"}


@pytest.fixture(scope="module")
def browser(demo_live, demo_users):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture
def api(demo_live, demo_users):
    fn, made = login_factory(demo_live)
    yield fn
    for c in made:
        c.close()


def _this_month() -> str:
    return datetime.now(UTC).astimezone(BEIJING).strftime("%Y-%m")


def _previous_month(m: str) -> str:
    y, mo = int(m[:4]), int(m[5:])
    return f"{y - (mo == 1):04d}-{(mo - 2) % 12 + 1:02d}"


def _open(browser, base: str, role: str, lang: str, path: str = "/reports"):
    ctx = new_context(browser, viewport=DESKTOP, locale="zh-CN" if lang == "zh" else "en-GB", accept_downloads=True)
    page = ctx.new_page()
    rec = watch(page, base)
    login(page, base, f"t_{role}", PASSWORD)
    page.goto(base + path + ("&" if "?" in path else "?") + f"lang={lang}")
    return ctx, page, rec


def _ready(page, after: int = 0) -> int:
    """Wait until the reports have loaded (the load numbered after ``after``); return its number."""
    wait_for_js(page, "(function(){var r=document.getElementById('reports');return r && r.getAttribute('data-state') "
                      f"!== 'loading' && Number(r.getAttribute('data-seq') || 0) > {after};}})()", 60000)
    assert page.get_attribute("#reports", "data-state") == "ready", page.inner_text("[data-testid=rp-error]")
    return int(page.get_attribute("#reports", "data-seq"))


def _clean(rec, ctx) -> None:
    assert rec.console_errors == [], rec.console_errors
    assert rec.foreign == [], rec.foreign
    assert rec.failed == [], rec.failed
    assert ctx.csp_violations == [], ctx.csp_violations


def _sla_rows(page) -> list[dict]:
    return page.evaluate("""Array.from(document.querySelectorAll('[data-testid=rp-sla] tr[data-org]')).map(function (tr) {
        return {org: Number(tr.getAttribute('data-org')), month: tr.getAttribute('data-month'),
                legs: tr.children[2].textContent.trim()}; })""")


def _county_legs(page) -> str:
    return page.inner_text("[data-testid=rp-sla-county] td:nth-child(3) a").strip()


def _charts_drawn(page, names: list[str], svg: bool = False) -> None:
    for n in names:
        sel = f"[data-chart={n}] " + ("svg" if svg else "canvas")
        assert page.locator(sel).count() >= 1, n


CHARTS = ["arrivals", "outcomes", "trend_rates", "trend_volume", "heatmap"]


@pytest.mark.parametrize("role,lang", [("chief", "zh"), ("leadership", "zh"), ("leadership", "en"), ("chief", "en")])
def test_reports_page_loads_clean(role, lang, browser, demo_live, demo_users, api):
    ctx, page, rec = _open(browser, demo_live.url, role, lang)
    try:
        _ready(page)
        assert TITLE[lang] in page.inner_text("h1")
        rows = _sla_rows(page)
        month = _this_month()
        q = {"month": month}
        if role == "chief":
            own = demo_users["chief"]["station_id"]
            q["organisation"] = own
            assert page.is_disabled("[data-testid=rp-org]")
            assert page.input_value("[data-testid=rp-org]") == str(own)
            assert {r["org"] for r in rows} == {own}
        want = api(role).get("/api/v1/reports/sla?" + urlencode(q)).json()
        assert len(rows) == len(want["rows"]) and len(rows) >= 1
        assert [r["legs"] for r in rows] == [f"{x['legs']:,}" for x in want["rows"]]
        assert page.inner_text("[data-testid=rp-sla-county] td:first-child") == COUNTY[lang]
        assert _county_legs(page) == f"{want['county']['legs']:,}"
        _charts_drawn(page, CHARTS)
        assert int(page.get_attribute("[data-testid=rp-map]", "data-features")) > 0
        assert page.locator("[data-testid=rp-map] path.leaflet-interactive").count() > 0
        ranking = api(role).get(f"/api/v1/reports/ranking?month={month}").json()
        assert page.locator("[data-testid=rp-rank-row]").count() == len(ranking["rows"])
        if lang == "en":
            assert "Sign-off within 90 s" in page.inner_text("[data-testid=rp-kpis]")
        else:
            assert "90秒签收率" in page.inner_text("[data-testid=rp-kpis]")
        SHOTS.mkdir(parents=True, exist_ok=True)
        if (role, lang) != ("chief", "en"):
            page.screenshot(path=str(SHOTS / f"reports-{role}-{lang}.png"), full_page=True)
        _clean(rec, ctx)
    finally:
        ctx.close()


def test_filters_change_tables_and_charts(browser, demo_live, demo_users, api):
    ctx, page, rec = _open(browser, demo_live.url, "leadership", "zh")
    lead = api("leadership")
    try:
        seq = _ready(page)
        month = _this_month()
        all_rows = _sla_rows(page)
        assert len({r["org"] for r in all_rows}) > 5
        arr_before = page.evaluate("gisappReports.charts.arrivals.getOption().xAxis[0].data.length")
        # organisation: one station
        st = demo_users["chief"]["station_id"]
        page.select_option("[data-testid=rp-org]", str(st))
        seq = _ready(page, seq)
        rows = _sla_rows(page)
        assert {r["org"] for r in rows} == {st}
        want = lead.get(f"/api/v1/reports/sla?month={month}&organisation={st}").json()
        assert [r["legs"] for r in rows] == [f"{x['legs']:,}" for x in want["rows"]]
        assert page.evaluate("gisappReports.charts.arrivals.getOption().xAxis[0].data.length") < arr_before
        assert "organisation=" + str(st) in page.get_attribute("[data-testid=rp-xlsx]", "href")
        # channel 122: the county's legs become the 122 calls' legs
        page.select_option("[data-testid=rp-org]", "")
        seq = _ready(page, seq)
        county_all = _county_legs(page)
        page.select_option("[data-testid=rp-channel]", "122")
        seq = _ready(page, seq)
        want = lead.get(f"/api/v1/reports/sla?month={month}&channel=122").json()
        assert _county_legs(page) == f"{want['county']['legs']:,}" != county_all
        trend = page.evaluate("gisappReports.charts.trend_volume.getOption().series[0].data")
        want_tr = lead.get(f"/api/v1/reports/trends?months=12&month={month}&channel=122").json()
        assert trend == want_tr["series"]["incidents"]
        # month: the previous one
        prev = _previous_month(month)
        page.fill("[data-testid=rp-month]", prev)
        page.dispatch_event("[data-testid=rp-month]", "change")
        seq = _ready(page, seq)
        months = {r["month"] for r in _sla_rows(page)}
        assert months == {prev}
        want = lead.get(f"/api/v1/reports/sla?month={prev}&channel=122").json()
        assert _county_legs(page) == f"{want['county']['legs']:,}"
        assert page.inner_text("[data-testid=rp-rank-month]").startswith(prev)
        heat = page.evaluate("gisappReports.charts.heatmap.getOption().series[0].data.reduce(function(s,c){return s+c[2];},0)")
        want_h = lead.get(f"/api/v1/reports/heatmap?month={prev}&channel=122").json()
        assert heat == sum(c[2] for c in want_h["cells"])
        # a from-to period
        page.check("[data-testid=rp-pmode-range]")
        seq = _ready(page, seq)
        assert page.is_visible("[data-testid=rp-from]") and not page.is_visible("[data-testid=rp-month]")
        assert page.input_value("[data-testid=rp-from]") == prev + "-01"
        _clean(rec, ctx)
    finally:
        ctx.close()


def test_ranking_score_explains_itself(browser, demo_live, demo_users, api):
    ctx, page, rec = _open(browser, demo_live.url, "leadership", "en")
    lead = api("leadership")
    try:
        _ready(page)
        month = _this_month()
        board = lead.get(f"/api/v1/reports/ranking?month={month}").json()
        first = board["rows"][0]
        row = page.locator("[data-testid=rp-rank-row]").first
        assert row.get_attribute("data-org") == str(first["organisation_id"])
        assert row.locator("td.rank").inner_text() == str(first["rank"])
        assert float(row.locator("[data-stars]").get_attribute("data-stars")) == first["stars"]
        row.locator("[data-testid=rp-score]").click()
        page.wait_for_selector("[data-testid=rp-rank-parts]")
        want = lead.get(f"/api/v1/reports/ranking/{first['organisation_id']}?month={month}").json()
        parts = page.locator("[data-testid=rp-rank-parts] tr[data-measure]")
        assert parts.count() == len(want["parts"])
        assert [parts.nth(i).get_attribute("data-measure") for i in range(parts.count())] == \
            [p["measure"] for p in want["parts"]]
        for p in want["parts"]:
            if p["legs"]:
                box = page.locator(f"[data-testid=rp-rank-legs][data-measure={p['measure']}]")
                assert box.locator(".leg").count() == min(len(p["legs"]), 200)
                assert box.locator(".leg.miss").count() == sum(1 for x in p["legs"][:200] if x["met"] is False)
        assert "how the score is made" in page.inner_text("[data-testid=rp-rank-detail-title]")
        # a chief explains their own station's score only
        _clean(rec, ctx)
    finally:
        ctx.close()
    ctx, page, rec = _open(browser, demo_live.url, "chief", "zh")
    try:
        _ready(page)
        assert page.locator("[data-testid=rp-score]").count() <= 1
        own = demo_users["chief"]["station_id"]
        btn = page.locator(f"[data-testid=rp-score][data-org='{own}']")
        if btn.count():
            btn.click()
            page.wait_for_selector("[data-testid=rp-rank-parts]")
            assert "得分构成" in page.inner_text("[data-testid=rp-rank-detail-title]")
        _clean(rec, ctx)
    finally:
        ctx.close()


def test_figures_open_their_incidents(browser, demo_live, demo_users, api):
    ctx, page, rec = _open(browser, demo_live.url, "chief", "zh")
    chief = api("chief")
    own = demo_users["chief"]["station_id"]
    month = _this_month()
    try:
        _ready(page)
        # the county row's legs (the chief's incidents of the month: their scope)
        page.click("[data-testid=rp-sla-county] td:nth-child(3) a.fig")
        wait_for_js(page, "document.querySelector('[data-testid=rp-drawer]').getAttribute('data-state') === 'ready'")
        want = chief.get(f"/api/v1/reports/incidents?measure=all&month={month}&organisation={own}&limit=50").json()
        assert int(page.get_attribute("[data-testid=rp-drawer]", "data-total")) == want["total"] > 0
        first = page.locator("[data-testid=rp-incident]").first
        assert first.locator("td.code").inner_text() == want["rows"][0]["code"]
        at = datetime.fromisoformat(want["rows"][0]["reported_at"]).astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")
        assert first.locator("td:nth-child(2)").inner_text() == at
        assert page.locator("[data-testid=rp-incident]").count() == min(50, want["total"])
        if want["total"] > 50:
            page.click("[data-testid=rp-drawer-more]")
            wait_for_js(page, f"document.querySelectorAll('[data-testid=rp-incident]').length === {min(100, want['total'])}")
        page.click("[data-testid=rp-drawer-close]")
        assert page.is_hidden("[data-testid=rp-drawer]")
        # the sign-off KPI: the incidents whose sign-off was missed
        page.click("[data-testid=rp-kpi-sign_off_rate]")
        wait_for_js(page, "document.querySelector('[data-testid=rp-drawer]').getAttribute('data-measure') === "
                          "'sign_off_miss' && document.querySelector('[data-testid=rp-drawer]').getAttribute('data-state') === 'ready'")
        want = chief.get(f"/api/v1/reports/incidents?measure=sign_off_miss&month={month}&organisation={own}").json()
        assert int(page.get_attribute("[data-testid=rp-drawer]", "data-total")) == want["total"]
        assert "签收超时" in page.inner_text("[data-testid=rp-drawer-title]")
        # an outcome figure
        codes = page.locator("[data-testid^=rp-outcome-]")
        if codes.count():
            code = codes.first.get_attribute("data-testid").removeprefix("rp-outcome-")
            codes.first.click()
            wait_for_js(page, f"document.querySelector('[data-testid=rp-drawer]').getAttribute('data-measure') === 'outcome:{code}'"
                              " && document.querySelector('[data-testid=rp-drawer]').getAttribute('data-state') === 'ready'")
            want = chief.get(f"/api/v1/reports/incidents?measure=outcome:{code}&month={month}&organisation={own}").json()
            assert int(page.get_attribute("[data-testid=rp-drawer]", "data-total")) == want["total"]
        _clean(rec, ctx)
    finally:
        ctx.close()


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_heat_map_cell_and_a_grid_open_their_incidents(lang, browser, demo_live, demo_users, api):
    """The calendar heat map and the grid choropleth drill to the incidents behind a cell, as a
    person clicks them (the cell with the most incidents; the grid with the most)."""
    ctx, page, rec = _open(browser, demo_live.url, "leadership", lang)
    leader = api("leadership")
    month = _this_month()
    drawer_ready = ("document.querySelector('[data-testid=rp-drawer]').getAttribute('data-state') === 'ready' && "
                    "!document.querySelector('[data-testid=rp-drawer]').hidden")
    try:
        _ready(page)
        hm = leader.get(f"/api/v1/reports/heatmap?month={month}").json()
        d, h, n = max(hm["cells"], key=lambda c: (c[2], -c[0], -c[1]))
        page.locator("[data-chart=heatmap]").scroll_into_view_if_needed()
        # the cell's centre in the chart's pixels (ECharts' own conversion), clicked with the mouse
        xy = page.evaluate(f"echarts.getInstanceByDom(document.querySelector('[data-chart=heatmap]'))"
                           f".convertToPixel({{seriesIndex: 0}}, ['{h}', {d - 1}])")
        box = page.locator("[data-chart=heatmap]").bounding_box()
        page.mouse.click(box["x"] + xy[0], box["y"] + xy[1])
        wait_for_js(page, drawer_ready)
        assert int(page.get_attribute("[data-testid=rp-drawer]", "data-total")) == n > 0
        title = page.inner_text("[data-testid=rp-drawer-title]")
        assert (f"{h}时" if lang == "zh" else f"{h}:00") in title, title
        for row in page.locator("[data-testid=rp-incident] td:nth-child(2)").all_inner_texts()[:10]:
            at = datetime.strptime(row, "%Y-%m-%d %H:%M:%S")  # Beijing time on screen
            assert at.hour == h and at.isoweekday() == d, row
        page.click("[data-testid=rp-drawer-close]")
        # the grid with the most incidents on the choropleth
        gr = leader.get(f"/api/v1/reports/grids?month={month}").json()
        top = max(gr["features"], key=lambda f: f["properties"]["incidents"])
        page.locator("[data-testid=rp-map]").scroll_into_view_if_needed()
        # Leaflet draws the features in order: the grid's path, clicked at a point inside the
        # polygon (its representative point placed within the path's box on screen)
        i = gr["features"].index(top)
        path = page.locator("[data-testid=rp-map] path.leaflet-interactive").nth(i)
        shp = shapely.geometry.shape(top["geometry"])
        minx, miny, maxx, maxy = shp.bounds
        rp = shp.representative_point()
        box = path.bounding_box()
        page.mouse.click(box["x"] + box["width"] * (rp.x - minx) / (maxx - minx),
                         box["y"] + box["height"] * (maxy - rp.y) / (maxy - miny))
        wait_for_js(page, drawer_ready)
        want = leader.get(f"/api/v1/reports/incidents?month={month}&grid={top['id']}").json()
        assert int(page.get_attribute("[data-testid=rp-drawer]", "data-total")) == want["total"] \
            == top["properties"]["incidents"] > 0
        assert top["properties"]["name"] in page.inner_text("[data-testid=rp-drawer-title]")
        _clean(rec, ctx)
    finally:
        ctx.close()


def test_xlsx_download_matches_the_api(browser, demo_live, demo_users, api, tmp_path):
    from openpyxl import load_workbook

    ctx, page, rec = _open(browser, demo_live.url, "leadership", "zh")
    lead = api("leadership")
    prev = _previous_month(_this_month())
    try:
        seq = _ready(page)
        page.fill("[data-testid=rp-month]", prev)
        page.dispatch_event("[data-testid=rp-month]", "change")
        _ready(page, seq)
        with page.expect_download() as dl:
            page.click("[data-testid=rp-xlsx]")
        path = tmp_path / "report.xlsx"
        dl.value.save_as(path)
        assert dl.value.suggested_filename.endswith(".xlsx")
        wb = load_workbook(io.BytesIO(path.read_bytes()))
        assert "SLA 及时率" in wb.sheetnames and "满天星排名" in wb.sheetnames
        ws = wb["SLA 及时率"]
        header = [c.value for c in ws[1]]
        assert header[:4] == ["月份", "单位代码", "单位", "警单数"]
        got = {}
        for row in ws.iter_rows(min_row=2, values_only=True):
            rec_ = dict(zip(header, row, strict=False))
            got[(rec_["单位"], rec_["月份"])] = rec_
        want = lead.get(f"/api/v1/reports/sla?month={prev}").json()
        assert len(got) == len(want["rows"]) + 1
        for w in want["rows"]:
            g = got[(w["name"], datetime(int(prev[:4]), int(prev[5:]), 1))]  # a real date, not a string
            assert g["警单数"] == w["legs"] and isinstance(g["警单数"], int | float)
            assert g["签收及时数"] == w["sign_off_met"] and g["签收应考核数"] == w["sign_off_decided"]
            assert (g["签收及时率"] is None and w["sign_off_rate"] is None) or \
                abs(g["签收及时率"] - w["sign_off_rate"]) < 1e-9
            assert g["结案及时数"] == w["close_met"]
        rk = wb["满天星排名"]
        rk_rows = list(rk.iter_rows(min_row=2, values_only=True))
        board = lead.get(f"/api/v1/reports/ranking?month={prev}").json()
        assert len(rk_rows) == len(board["rows"])
        # the CSV link follows the table chosen and the filters
        page.select_option("[data-testid=rp-csv-table]", "overdue")
        href = page.get_attribute("[data-testid=rp-csv]", "href")
        assert "table=overdue" in href and f"month={prev}" in href
        _clean(rec, ctx)
    finally:
        ctx.close()


def test_print_page_renders_with_charts(browser, demo_live, demo_users, api):
    prev = _previous_month(_this_month())
    ctx, page, rec = _open(browser, demo_live.url, "chief", "zh", f"/reports/print?month={prev}")
    try:
        _ready(page)
        assert page.inner_text("[data-testid=pr-month]") == prev
        assert page.inner_text("[data-testid=pr-org]") == "黛溪派出所"
        assert page.inner_text("[data-testid=pr-generated]")
        _charts_drawn(page, CHARTS, svg=True)   # the print report draws SVG: sharp on paper
        own = demo_users["chief"]["station_id"]
        want = api("chief").get(f"/api/v1/reports/sla?month={prev}&organisation={own}").json()
        assert [r["legs"] for r in _sla_rows(page)] == [f"{x['legs']:,}" for x in want["rows"]]
        page.emulate_media(media="print")
        assert page.evaluate("getComputedStyle(document.querySelector('.navbar')).display") == "none"
        assert page.evaluate("getComputedStyle(document.querySelector('[data-section=arrivals]')).breakBefore") == "page"
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "reports-print.png"), full_page=True)
        pdf = page.pdf(format="A4", print_background=True)
        assert pdf[:5] == b"%PDF-" and len(pdf) > 20_000
        _clean(rec, ctx)
    finally:
        ctx.close()


@pytest.mark.parametrize("role,lang", [("chief", "zh"), ("leadership", "en")])
def test_home_pages_show_todays_figures(role, lang, browser, demo_live, demo_users, api):
    ctx, page, rec = _open(browser, demo_live.url, role, lang, "/")
    try:
        page.wait_for_selector("[data-testid=home-figures]")
        wait_for_js(page, "document.getElementById('home').getAttribute('data-state') !== 'loading'")
        assert page.get_attribute("#home", "data-state") == "ready"
        for tid in ("home-open-legs", "home-overdue", "home-incidents-today", "home-legs-today"):
            assert page.locator(f"[data-testid={tid}] .v").inner_text().isdigit()
        month = _this_month()
        board = api(role).get(f"/api/v1/reports/ranking?month={month}").json()
        if role == "chief":
            own = demo_users["chief"]["station_id"]
            mine = next(r for r in board["rows"] if r["organisation_id"] == own)
            assert f"第 {mine['rank']} 名" in page.inner_text("[data-testid=home-rank-own]")
            sla = api(role).get(f"/api/v1/reports/sla?month={month}&organisation={own}").json()
            rate = sla["rows"][0]["sign_off_rate"] if sla["rows"] else None
            shown = page.inner_text("[data-testid=home-rate-mine] [data-rate=sign_off]").split("\n")[0]
            assert shown == ("—" if rate is None else f"{rate * 100:.1f}%")
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "home-chief.png"), full_page=True)
        else:
            ranked = sorted(board["rows"], key=lambda r: r["rank"])
            top = page.locator("[data-testid=home-rank-top] [data-testid=home-rank-row]")
            bottom = page.locator("[data-testid=home-rank-bottom] [data-testid=home-rank-row]")
            assert top.count() == 3 and bottom.count() == 3
            assert top.first.locator("td").first.inner_text() == str(ranked[0]["rank"])
            assert bottom.last.locator("td").first.inner_text() == str(ranked[-1]["rank"])
            assert "Top three" in page.inner_text("[data-testid=home-rank]")
            assert "County" in page.inner_text("[data-testid=home-rates]")
            page.screenshot(path=str(SHOTS / "home-leadership-en.png"), full_page=True)
        page.click("[data-testid=home-to-reports]")
        _ready(page)
        _clean(rec, ctx)
    finally:
        ctx.close()
