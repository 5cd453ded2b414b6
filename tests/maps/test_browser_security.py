"""Browser hardening (issue 12, item 7): security headers on every kind of response, and user-written
text shown literally on every page: HTML written into a road, town, organisation, grid, incident and
plan never runs (the payload would set ``window.__xss``), shows as text, and no page breaks the
Content-Security-Policy (a violation fails the test)."""

from __future__ import annotations

import re

import pytest
from support.browser import launch, login, new_context, wait_for_js, wait_map_idle, watch
from support.database import PASSWORD
from support.server import Client

VIEWPORT = {"width": 1500, "height": 900}


def payload(tag: str) -> str:
    return f'<img src=x onerror="window.__xss=1">{tag}<script>window.__xss=2</script>'


# --- headers -------------------------------------------------------------------------------------

def _assert_hardened(resp) -> None:
    h = resp.headers
    assert h.get("X-Content-Type-Options") == "nosniff", (resp.url, dict(h))
    assert h.get("X-Frame-Options") == "DENY", (resp.url, dict(h))
    csp = h.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp, (resp.url, csp)
    script_src = re.search(r"script-src ([^;]*)", csp)
    assert script_src and "'self'" in script_src.group(1), csp
    assert "'unsafe-inline'" not in script_src.group(1) and "'unsafe-eval'" not in script_src.group(1), csp
    assert "object-src 'none'" in csp and "default-src 'self'" in csp, csp
    assert h.get("Referrer-Policy") == "strict-origin-when-cross-origin", dict(h)


def test_security_headers_on_html_json_tiles_and_static(maps_live, maps_login):
    anon = Client(maps_live.url)
    admin = maps_login("admin")
    page = admin.get("/map/coverage")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    _assert_hardened(page)
    # the page's inline scripts carry the nonce of its policy, and there is no inline handler
    nonce = re.search(r"'nonce-([^']+)'", page.headers["Content-Security-Policy"]).group(1)
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", page.text)
    assert inline and all(f'nonce="{nonce}"' in attrs for attrs in inline), inline
    assert not re.search(r"\son(click|change|load|error)=", page.text)
    assert admin.get("/map/coverage").headers["Content-Security-Policy"] != page.headers["Content-Security-Policy"]
    for resp in (anon.get("/login"), admin.get("/api/v1/layers"), anon.get("/api/v1/nowhere"),
                 admin.get("/tiles/roads/10/861/394.mvt"), anon.get("/static/js/gisapp-map.js"),
                 anon.get("/healthz")):
        assert resp.status_code in (200, 204, 404), (resp.url, resp.status_code)
        _assert_hardened(resp)
    tile = admin.get("/tiles/roads/10/861/394.mvt")
    assert tile.status_code in (200, 204)


# --- escaping ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hostile(maps_live, maps_users, maps_database_url):
    """HTML written into a road, a town, a station, one of its grids, an open incident and a plan;
    everything put back afterwards."""
    from gisapp.core import db

    c = Client(maps_live.url)
    c.headers["Origin"] = maps_live.url
    assert c.post("/login", data={"username": "t_admin", "password": PASSWORD},
                  allow_redirects=False).status_code == 302
    with db.connect(maps_database_url, autocommit=True) as conn:
        road = conn.execute("SELECT id, name FROM road_edge WHERE name IS NOT NULL ORDER BY id LIMIT 1").fetchone()
        town = conn.execute("SELECT id, name FROM town ORDER BY id LIMIT 1").fetchone()
        org = conn.execute("SELECT id, name FROM organisation WHERE code = 'ST-HS'").fetchone()
        grid = conn.execute("SELECT id, name FROM grid WHERE organisation_id = %s ORDER BY id LIMIT 1",
                            [org["id"]]).fetchone()
        inc = conn.execute("SELECT id, code, address, description FROM incident WHERE status = 'open' "
                           "ORDER BY id LIMIT 1").fetchone()
        texts = {k: payload(f"XSS-{k}") for k in ("road", "town", "org", "grid", "address", "description", "plan")}
        for layer, row, key in (("road_edges", road, "road"), ("towns", town, "town"),
                                ("organisations", org, "org"), ("grids", grid, "grid")):
            r = c.patch(f"/api/v1/{layer}/{row['id']}", json={"properties": {"name": texts[key]}})
            assert r.status_code == 200, r.text
        conn.execute("UPDATE incident SET address = %s, description = %s WHERE id = %s",
                     [texts["address"], texts["description"], inc["id"]])
        r = c.post("/api/v1/plans", json={"name": texts["plan"], "kind": "station"})
        assert r.status_code == 201, r.text
        plan = r.json()
        try:
            yield {"texts": texts, "road": road, "town": town, "org": org, "grid": grid, "incident": inc,
                   "plan": plan}
        finally:
            for layer, row in (("road_edges", road), ("towns", town), ("organisations", org), ("grids", grid)):
                c.patch(f"/api/v1/{layer}/{row['id']}", json={"properties": {"name": row["name"]}})
            conn.execute("UPDATE incident SET address = %s, description = %s WHERE id = %s",
                         [inc["address"], inc["description"], inc["id"]])
            c.delete(f"/api/v1/plans/{plan['id']}")
            c.close()


@pytest.fixture(scope="module")
def admin_page(maps_live, maps_users):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        ctx = new_context(browser, viewport=VIEWPORT, locale="zh-CN")
        page = ctx.new_page()
        login(page, maps_live.url, "t_admin", PASSWORD)
        yield page
        violations = ctx.csp_violations
        ctx.close()
        browser.close()
        assert violations == [], violations


def _open(page, base: str, path: str):
    rec = watch(page, base)
    resp = page.goto(base + path, wait_until="domcontentloaded")
    assert resp.status == 200, (path, resp.status)
    wait_map_idle(page, rec=rec)
    return rec


def _assert_inert(page, rec, *texts: str) -> None:
    page.wait_for_timeout(300)
    assert page.evaluate("window.__xss") is None, "an injected script ran"
    assert page.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0, "injected markup was parsed"
    content = page.evaluate("document.body.textContent")
    for text in texts:
        assert text in content, f"{text!r} is not shown literally"
    assert rec.csp_violations == [], rec.csp_violations
    assert rec.console_errors == [], rec.console_errors


def test_road_and_town_names_show_as_text_on_the_coverage_map(admin_page, maps_live, hostile):
    texts = hostile["texts"]
    rec = _open(admin_page, maps_live.url, "/map/coverage?roads=geojson")
    try:
        opened = admin_page.evaluate("""(tag) => {
          let n = 0;
          Object.values(gisapp.map._layers).forEach(l => {
            const p = l.feature && l.feature.properties;
            if (p && String(p.name || '').includes(tag)) {  // hover it: its own or its layer's tooltip opens
              l.fire('mouseover', {latlng: l.getBounds ? l.getBounds().getCenter() : l.getLatLng()}, true); n++;
            }
          });
          return n;
        }""", "XSS-road")
        assert opened >= 1, "no road tooltip carries the edited name"
        tips = admin_page.evaluate("Array.from(document.querySelectorAll('.leaflet-tooltip')).map(e => e.textContent)")
        assert any(texts["road"] in tip for tip in tips), tips
        labels = admin_page.evaluate("Array.from(document.querySelectorAll('.town-label')).map(e => e.textContent)")
        assert texts["town"] in labels, labels
        _assert_inert(admin_page, rec, texts["road"], texts["town"], texts["org"])
    finally:
        rec.stop(admin_page)


def test_grid_and_station_names_show_as_text_on_the_grids_map(admin_page, maps_live, hostile):
    texts = hostile["texts"]
    rec = _open(admin_page, maps_live.url, f"/map/grids?station={hostile['org']['id']}")
    try:
        assert texts["grid"] in admin_page.inner_text("[data-testid=grid-table]")
        assert admin_page.inner_text("[data-testid=station-name]") == texts["org"]
        _assert_inert(admin_page, rec, texts["grid"], texts["org"])
    finally:
        rec.stop(admin_page)


def test_plan_and_organisation_names_show_as_text_on_the_plan_map(admin_page, maps_live, hostile):
    texts = hostile["texts"]
    rec = _open(admin_page, maps_live.url, "/map/plan")
    try:
        wait_for_js(admin_page, "document.querySelectorAll('#plan-select option').length > 1", timeout=20000)
        options = admin_page.evaluate("Array.from(document.querySelectorAll('#plan-select option')).map(o => o.textContent)")
        assert any(texts["plan"] in o for o in options), options
        _assert_inert(admin_page, rec, texts["plan"], texts["org"])
    finally:
        rec.stop(admin_page)


def test_incident_address_and_description_show_as_text_on_the_dispatch_map(admin_page, maps_live, hostile):
    texts = hostile["texts"]
    inc = hostile["incident"]
    rec = _open(admin_page, maps_live.url, "/map/dispatch")
    try:
        item = f"[data-testid=queue-item][data-id='{inc['id']}']"
        admin_page.wait_for_selector(item, timeout=20000)
        admin_page.click(item)
        admin_page.wait_for_selector("#dp-detail h3", timeout=20000)
        detail = admin_page.evaluate("document.getElementById('dp-detail').textContent")
        assert texts["address"] in detail and texts["description"] in detail, detail
        # the incident's popup on the map as well
        admin_page.evaluate("""(id) => Object.values(gisapp.map._layers).forEach(l => {
            if (l.feature && l.feature.properties && l.feature.properties.id === id && l.openPopup) { l.openPopup(); }
        })""", inc["id"])
        _assert_inert(admin_page, rec, texts["address"], texts["description"])
    finally:
        rec.stop(admin_page)
