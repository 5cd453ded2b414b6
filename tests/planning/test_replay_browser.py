"""The 推演 (replay) panel on /map/plan in Debian's headless chromium, as a planner, zh and en, on the
demo: pick a period, baseline and scenario, run, follow the progress bar, several runs listed, the
before/after charts (ECharts), the map of the arrival-time change per grid with its legend and of
the areas whose owner changes; a refused request and a failed run say why. Zero console errors
(but the deliberate 400), zero requests to other addresses. Screenshot
var/screenshots/plan-replay-<lang>.png (the zh one is copied to docs/ for the README)."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest
from psycopg.types.json import Jsonb
from support.browser import launch, login, new_context, wait_for_js, wait_map_idle, watch
from support.database import PASSWORD

from gisapp.core import jobs
from gisapp.core.config import ROOT

SHOTS = ROOT / "var" / "screenshots"
TEXT = {"zh": {"done": "已完成", "failed": "失败", "queued": "已排队", "title": "推演", "legend": "到达时间变化"},
        "en": {"done": "done", "failed": "failed", "queued": "queued", "title": "Replay", "legend": "Arrival-time change"}}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


def _last(conn):
    return conn.execute("SELECT max(reported_at AT TIME ZONE 'Asia/Shanghai')::date AS d FROM incident").fetchone()["d"]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_replay_panel(browser, lang, demo_live, demo_users, demo_conn, demo_app):
    base, txt = demo_live.url, TEXT[lang]
    ctx = new_context(browser, viewport={"width": 1500, "height": 1000}, locale="zh-CN" if lang == "zh" else "en-GB")
    page = ctx.new_page()
    try:
        login(page, base, "t_planner", PASSWORD)
        rec = watch(page, base)
        page.goto(f"{base}/map/plan?lang={lang}")
        wait_map_idle(page)
        assert txt["title"] in page.inner_text("[data-testid=replay-panel] h2")
        last = _last(demo_conn)
        wait_for_js(page, "document.getElementById('rp-to').value !== ''")
        assert page.input_value("#rp-to") == last.isoformat()      # the last recorded day, local date
        assert page.input_value("[data-testid=rp-scenario-participation]") == "squadrons_alone"
        # A reversed period is refused before anything is queued: the page says which field and why.
        before = demo_conn.execute("SELECT count(*) AS n FROM job").fetchone()["n"]
        page.fill("#rp-from", last.isoformat())
        page.fill("#rp-to", (last - timedelta(days=3)).isoformat())
        page.click("[data-testid=rp-run]")
        wait_for_js(page, "document.getElementById('rp-msg').className.indexOf('err') >= 0")
        assert page.inner_text("#rp-msg")
        assert demo_conn.execute("SELECT count(*) AS n FROM job").fetchone()["n"] == before
        # Two runs: squadrons alone over 14 days, and half the cars over 7 days.
        page.fill("#rp-from", (last - timedelta(days=13)).isoformat())
        page.fill("#rp-to", last.isoformat())
        page.fill("[data-testid=rp-scenario-name]", "squadrons alone " + lang)
        page.click("[data-testid=rp-run]")
        wait_for_js(page, "window.gisappReplay.state.selected !== null")
        first = page.evaluate("window.gisappReplay.state.selected")
        assert txt["queued"] in page.inner_text("#rp-msg") or str(first) in page.inner_text("#rp-msg")
        page.fill("#rp-from", (last - timedelta(days=6)).isoformat())
        page.select_option("[data-testid=rp-scenario-participation]", "recorded")
        page.fill("[data-testid=rp-scenario-scale]", "0.5")
        page.fill("[data-testid=rp-scenario-name]", "half the cars " + lang)
        page.click("[data-testid=rp-run]")
        wait_for_js(page, f"window.gisappReplay.state.selected !== {first}")
        second = page.evaluate("window.gisappReplay.state.selected")
        # both listed with a progress bar; the second (selected) opens when done
        wait_for_js(page, f"document.querySelectorAll('[data-testid=rp-job][data-id=\"{first}\"], "
                          f"[data-testid=rp-job][data-id=\"{second}\"]').length === 2")
        assert page.locator("[data-testid=rp-job] [data-testid=rp-progress]").count() >= 2
        wait_for_js(page, f"window.gisappReplay.state.result && window.gisappReplay.state.result.id === {second}",
                    timeout=240000)
        assert page.get_attribute(f"[data-testid=rp-job][data-id='{second}']", "data-status") == "done"
        assert txt["done"] in page.inner_text(f"[data-testid=rp-job][data-id='{second}']")
        for name in ("delta", "arrival", "workload", "target"):
            assert page.locator(f"[data-testid=rp-chart-{name}] canvas").count() >= 1, name
        # open the first run (squadrons alone) once it is done: charts, map and legend follow it
        wait_for_js(page, f"document.querySelector('[data-testid=rp-job][data-id=\"{first}\"]')"
                          ".dataset.status === 'done'", timeout=240000)
        page.click(f"[data-testid=rp-job][data-id='{first}']")
        wait_for_js(page, f"window.gisappReplay.state.result.id === {first}")
        job = demo_conn.execute("SELECT result FROM job WHERE id = %s", [first]).fetchone()["result"]
        grids = page.evaluate("window.gisappReplay.state.delta.getLayers().length")
        assert grids == len(job["per_grid"]["features"]) > 0
        assert page.evaluate("window.gisappReplay.state.changed.getLayers().length") == \
            len(job["changed_owner"]["areas"]["features"])
        assert txt["legend"] in page.inner_text("[data-testid=rp-legend]")
        fills = page.evaluate("window.gisappReplay.state.delta.getLayers().map(l => l.options.fillColor)")
        assert len(set(fills)) >= 2                                    # a scale, not one colour
        workload = page.evaluate("window.echarts.getInstanceByDom(document.getElementById('rp-chart-workload'))"
                                 ".getOption().series.map(s => s.data.length)")
        assert workload[0] == workload[1] >= 2
        summary = page.inner_text("[data-testid=rp-summary]")
        assert str(job["baseline"]["incidents"]) in summary
        wait_map_idle(page, rec=rec)
        page.evaluate("document.getElementById('rp-jobs').scrollIntoView()")   # runs, summary and charts in view
        page.wait_for_timeout(300)
        SHOTS.mkdir(parents=True, exist_ok=True)
        shot = SHOTS / f"plan-replay-{lang}.png"
        page.screenshot(path=str(shot))
        if lang == "zh":
            shutil.copyfile(shot, ROOT / "docs" / "plan-replay-zh.png")
        # A run that fails in its runner (its plan went away) says why in the list and when opened.
        settings = demo_app.extensions["gisapp.settings"]
        bad = demo_conn.execute(
            "INSERT INTO job (kind, params, created_by) VALUES ('replay', %s, 't_planner') RETURNING id",
            [Jsonb({"period": {"from": (last - timedelta(days=6)).isoformat(), "to": last.isoformat()},
                    "baseline": {"name": "b"}, "names": {"baseline": "b", "scenario": "gone"},
                    "scenario": {"name": "gone", "boundaries": {"kind": "plan", "plan_id": 987654}}})]).fetchone()["id"]
        jobs.ensure_runners(demo_conn, settings)
        page.evaluate("window.gisappReplay.loadJobs()")
        wait_for_js(page, f"document.querySelector('[data-testid=rp-job][data-id=\"{bad}\"]') && "
                          f"document.querySelector('[data-testid=rp-job][data-id=\"{bad}\"]').dataset.status === 'failed'",
                    timeout=120000)
        err = page.inner_text(f"[data-testid=rp-job][data-id='{bad}'] [data-testid=rp-job-error]")
        assert "987654" in err
        page.click(f"[data-testid=rp-job][data-id='{bad}']")
        wait_for_js(page, "document.getElementById('rp-msg').textContent.indexOf('987654') >= 0")
        assert page.is_hidden("[data-testid=rp-result]")
        # The other choices: boundaries as at a date, chosen stations; the fields show as chosen and
        # the job holds the scenario as picked.
        for kind, sel in (("at", "rp-scenario-bdate"), ("plan", "rp-scenario-plan")):
            page.select_option("[data-testid=rp-scenario-boundaries]", kind)
            assert page.is_visible(f"[data-testid={sel}]")
        page.select_option("[data-testid=rp-scenario-roster]", "posts")
        assert page.is_visible("[data-testid=rp-scenario-proposal]")
        page.select_option("[data-testid=rp-scenario-roster]", "recorded")
        assert page.is_hidden("[data-testid=rp-scenario-proposal]")
        page.select_option("[data-testid=rp-scenario-boundaries]", "at")
        page.fill("[data-testid=rp-scenario-bdate]", (last - timedelta(days=400)).isoformat())
        page.select_option("[data-testid=rp-scenario-participation]", "stations")
        codes = page.evaluate("Array.from(document.querySelectorAll('[data-testid=rp-scenario-stations] option'))"
                              ".map(o => o.value)")
        assert len(codes) >= 10
        page.select_option("[data-testid=rp-scenario-stations]", codes[:2])
        page.fill("[data-testid=rp-scenario-scale]", "1")
        page.fill("[data-testid=rp-scenario-name]", "two stations " + lang)
        page.click("[data-testid=rp-run]")
        wait_for_js(page, f"window.gisappReplay.state.selected !== {bad} && window.gisappReplay.state.selected !== {second}")
        third = page.evaluate("window.gisappReplay.state.selected")
        params = demo_conn.execute("SELECT params FROM job WHERE id = %s", [third]).fetchone()["params"]
        assert params["scenario"]["boundaries"] == {"kind": "at", "date": (last - timedelta(days=400)).isoformat()}
        assert params["scenario"]["participation"] == {"kind": "stations", "stations": codes[:2]}
        wait_for_js(page, f"window.gisappReplay.state.result && window.gisappReplay.state.result.id === {third}",
                    timeout=240000)
        # the deliberate 400 (reversed period) is the only message in the console
        assert [e for e in rec.console_errors if "status of 400" not in e] == []
        assert rec.foreign == []
        assert rec.failed == []
        assert ctx.csp_violations == []
    finally:
        ctx.close()
