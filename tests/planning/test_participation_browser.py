"""The programme's participation history on /map/plan (issue 15) in Debian's headless chromium: the
table opens, lists the demo's dated changes in Beijing time, zh and en, with zero console errors
and no request to another address; screenshot in var/screenshots/."""

from __future__ import annotations

import pytest
from support.browser import logged_in_page, wait_map_idle, watch
from support.database import PASSWORD

from gisapp.core.config import ROOT

SHOTS = ROOT / "var" / "screenshots"


@pytest.mark.parametrize("lang,joins,title", [("zh", "参与交通管理", "参与交通管理与交所合一的历史"),
                                              ("en", "joins traffic management", "Participation history")])
def test_participation_history_on_the_plan_page(demo_live, demo_users, lang, joins, title):
    base = demo_live.url
    with logged_in_page(base, "t_planner", PASSWORD, {"width": 1500, "height": 950}) as page:
        rec = watch(page, base)
        page.goto(base + f"/map/plan?lang={lang}")
        wait_map_idle(page)
        section = page.locator("[data-testid=plan-participation]")
        assert title in section.inner_text()
        page.click("#plan-participation summary")
        table = page.locator("[data-testid=plan-participation-table]")
        table.wait_for(state="visible")
        rows = table.locator("tr")
        assert rows.count() == 1 + 14 + 8    # header, 14 stations join, 4 stations and 4 squadrons merge
        text = table.inner_text()
        assert text.count(joins) == 14
        # newest first, local (Beijing) dates of the programme's steps
        assert rows.nth(1).inner_text().startswith("2022-11-01") and rows.nth(23 - 1).inner_text().startswith(
            "2021-07-01")
        SHOTS.mkdir(parents=True, exist_ok=True)
        section.screenshot(path=str(SHOTS / f"plan_participation_{lang}.png"))
        assert rec.console_errors == []
        assert rec.foreign == []
        assert rec.failed == []
