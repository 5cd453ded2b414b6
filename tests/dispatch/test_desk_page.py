"""The station desk page /desk over real HTTP: who may open it and for which organisation, the nav
entry and a duty officer's home, the page's config (texts in the page language, Beijing time zone,
the organisation), CSP nonces and no inline handlers. The browser walk is test_desk_browser.py."""

from __future__ import annotations

import json
import re

import pytest
from support.server import Client

from gisapp.core import db


def _config(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="desk-config" nonce="([^"]+)">(.*?)</script>', html, re.S)
    assert m, html[:500]
    return json.loads(m.group(2))


@pytest.fixture(scope="module")
def orgs(dispatch_db):
    with db.connect(dispatch_db) as conn:
        duty = conn.execute("SELECT station_id FROM app_user WHERE username = 't_duty_officer'").fetchone()["station_id"]
        other = conn.execute("SELECT id FROM organisation WHERE id <> %s AND kind = 'station' ORDER BY code LIMIT 1",
                             [duty]).fetchone()
        section = conn.execute("SELECT id FROM organisation WHERE kind = 'accident_section' LIMIT 1").fetchone()["id"]
    return {"duty": duty, "other": other["id"] if other else section, "section": section}


def test_desk_opens_for_the_duty_officer_and_the_chief_on_their_own_organisation(dlogin, dlive, orgs):
    anon = Client(dlive.url)
    r = anon.get("/desk", allow_redirects=False)
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    for role in ("duty_officer", "chief"):
        c = dlogin(role)
        r = c.get("/desk")
        assert r.status_code == 200, r.text[:300]
        cfg = _config(r.text)
        assert cfg["organisation"]["id"] == orgs["duty"]
        assert cfg["timezone"] == "Asia/Shanghai" and cfg["lang"] == "zh"
        assert cfg["sla_s"] == {"sign_off": 90, "first_feedback": 18000, "close": 79200}
        assert cfg["i18n"]["desk.title"] == "值班台" and cfg["i18n"]["desk.sound.enable"] == "启用提示音"
        assert cfg["query"] == ""  # their own organisation: the API scopes it
        assert 'href="/desk"' in r.text  # the nav entry
        # another organisation's desk: 403, a bad id: 400
        assert c.get(f"/desk?organisation_id={orgs['other']}").status_code == 403
        assert c.get("/desk?organisation_id=x1").status_code == 400
        en = c.get("/desk?lang=en")
        assert _config(en.text)["i18n"]["desk.title"] == "Station desk" and "Station desk" in en.text
        c.get("/desk?lang=zh")
    # a duty officer's home is the desk; a chief's home links to it
    r = dlogin("duty_officer").get("/", allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"].endswith("/desk")
    home = dlogin("chief").get("/")
    assert home.status_code == 200 and 'href="/desk"' in home.text


def test_desk_for_other_roles(dlogin, orgs):
    for role in ("viewer", "planner"):
        r = dlogin(role).get("/desk")
        assert r.status_code == 403 and "值班民警" in r.text  # the page names the roles that may open it
    for role in ("dispatcher", "admin"):
        c = dlogin(role)
        r = c.get("/desk")  # no organisation named: a picker
        assert r.status_code == 200 and 'data-testid="desk-picker"' in r.text and "desk-config" not in r.text
        assert f'value="{orgs["section"]}"' in r.text
        r = c.get(f"/desk?organisation_id={orgs['section']}")
        assert r.status_code == 200
        cfg = _config(r.text)
        assert cfg["organisation"]["id"] == orgs["section"] and cfg["query"] == f"organisation_id={orgs['section']}"
        assert c.get("/desk?organisation_id=987654321").status_code == 404
        assert 'href="/desk"' not in c.get("/").text  # dispatchers work from their own screen


def test_desk_page_is_csp_clean(dlogin):
    r = dlogin("duty_officer").get("/desk")
    csp = r.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    scripts = re.findall(r"<script([^>]*)>", r.text)
    assert scripts
    for attrs in scripts:  # every script is the project's own file or carries the nonce
        assert 'src="/static/' in attrs or f'nonce="{nonce}"' in attrs, attrs
    assert not re.search(r"\son[a-z]+=", r.text), "inline event handler"
    assert "http://" not in r.text.replace(r.url.split("/desk")[0], "") and "https://" not in r.text
