"""Serve the HTML pages: log-in, index and the role maps (coverage, grids, plan, dispatch).

Views only parse the request, check the role and render; the maps are composed by
``layers.pages`` from the layer builders. Every page needs a session log-in; which role may
open which page is ``PAGE_ROLES``. The language is zh-CN unless ``?lang=en`` (kept for the
session) or the user's saved preference says otherwise; texts come from ``gisapp.i18n``.

The dispatch page includes ``web/templates/dispatch_panel.html`` and ``web/static/js/dispatch.js``,
the plan page ``plan_panel.html`` and ``js/plan.js`` (with the drawing tools of ``layers.plan_tools``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, abort, g, redirect, render_template, request, session, url_for
from markupsafe import Markup, escape

from gisapp.core import scope
from gisapp.core.catalog import ORGANISATION_ROLES
from gisapp.core.errors import Unauthorized, ValidationError
from gisapp.core.i18n import LANGUAGES, MESSAGES, catalogue, normalise_language, t
from gisapp.core.sessions import TooManyAttempts
from gisapp.web import audit_page
from gisapp.web.context import db_tx, end_login_session, page_csrf_token, settings, start_login_session
from layers import data as mapdata
from layers import measures

log = logging.getLogger("gisapp.pages")

bp = Blueprint("pages", __name__)


def init_app(app) -> None:
    app.register_blueprint(bp)
    audit_page.init_app(app)  # the admins' audit page (and its API)
    from gisapp.web import reports_page  # imports this module (page, PAGE_ROLES)

    reports_page.init_app(app)  # /reports, /reports/print (issue 14)

# Which roles may open which page (admin may open all).
PAGE_ROLES: dict[str, tuple[str, ...]] = {
    "index": ("admin", "dispatcher", "planner", "chief", "duty_officer", "viewer", "leadership"),
    "coverage": ("admin", "dispatcher", "planner", "chief", "duty_officer", "viewer", "leadership"),
    "grids": ("admin", "planner", "chief", "duty_officer", "viewer", "leadership"),
    "plan": ("admin", "planner"),
    "dispatch": ("admin", "dispatcher"),
    # the station desk: a duty officer's and a chief's own organisation; dispatchers and admins
    # open any organisation's desk with ?organisation_id=
    "desk": ("admin", "dispatcher", "chief", "duty_officer"),
    # issue 14: the reports (SLA, arrivals, outcomes, 满天星 ranking) and the monthly print report
    "reports": ("admin", "leadership", "chief"),
}
# Roles whose home is today's figures (reports_page.home) instead of the layer counts.
REPORT_HOME_ROLES = ("chief", "leadership")
# Roles whose nav shows the desk (dispatchers have their own screen) and whose home is the desk.
DESK_NAV_ROLES = ("chief", "duty_officer")
DESK_HOME_ROLES = ("duty_officer",)
DESK_ORG_KINDS = ("station", "squadron", "accident_section")
NAV = (("coverage", "nav.coverage", "fa-route"), ("grids", "nav.grids", "fa-table-cells"),
       ("plan", "nav.plan", "fa-draw-polygon"), ("dispatch", "nav.dispatch", "fa-tower-broadcast"))
SERVICE_AREAS_ENDPOINT = "/api/v1/routing/service-areas"

# Icons are Font Awesome symbols in one SVG sprite (no icon web font to download).
ICON_SPRITE = "/static/vendor/fontawesome/icons.svg"

# --- language ------------------------------------------------------------------------------------

def current_language() -> str:
    """Return the page language: ?lang= (kept in the session), else the user's preference, else the default."""
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        session["lang"] = asked
        return asked
    if session.get("lang") in LANGUAGES:
        return session["lang"]
    user = getattr(g, "user", None)
    if user and user.get("language") in LANGUAGES:
        return user["language"]
    return normalise_language(settings().default_language)


@bp.before_app_request
def _language() -> None:
    g.lang = current_language() if not request.path.startswith(("/api/", "/tiles/", "/static/")) else "zh"


@bp.app_context_processor
def _template_globals() -> dict[str, Any]:
    lang = getattr(g, "lang", "zh")

    def _(key: str, **params: Any) -> str:
        return t(key, lang, **params)

    def icon(name: str, cls: str = "") -> Markup:
        return Markup(f'<svg class="ic {escape(cls)}" aria-hidden="true"><use href="{ICON_SPRITE}#fa-{escape(name)}"></use></svg>')

    def tr(key: str, fallback: Any) -> str:
        return t(key, lang) if key in MESSAGES else str(fallback)

    return {"_": _, "tr": tr, "icon": icon, "lang": lang, "html_lang": "en" if lang == "en" else "zh-CN", "nav_items": _nav_items(),
            "user": getattr(g, "user", None), "other_lang": "zh" if lang == "en" else "en",
            "csrf_token": page_csrf_token}


def _nav_items() -> list[dict]:
    user = getattr(g, "user", None)
    if not user:
        return []
    items = [{"page": p, "label": key, "icon": icon, "href": f"/map/{p}"}
             for p, key, icon in NAV if _allowed(user, p)]
    if user["role"] in DESK_NAV_ROLES:
        items.insert(0, {"page": "desk", "label": "nav.desk", "icon": "fa-bell", "href": "/desk"})
    if _allowed(user, "reports"):
        items.insert(1 if user["role"] in DESK_NAV_ROLES else 0,
                     {"page": "reports", "label": "nav.reports", "icon": "fa-chart-column", "href": "/reports"})
    if user["role"] == "admin":
        items.append({"page": "audit", "label": "nav.audit", "icon": "fa-list", "href": "/audit"})
    return items


# --- access --------------------------------------------------------------------------------------

def _allowed(user: dict, page: str) -> bool:
    return user["role"] == "admin" or user["role"] in PAGE_ROLES[page]


def page(name: str) -> Callable:
    """Require a session log-in (else redirect to /login) and a role allowed on page ``name`` (else 403)."""

    def deco(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*a: Any, **kw: Any):
            user = getattr(g, "user", None)
            if user is None:
                return redirect(url_for("pages.login", next=request.full_path.rstrip("?")))
            if not _allowed(user, name):
                roles = "、".join(t(f"role.{r}", g.lang) for r in PAGE_ROLES[name])
                return render_template("error.html", title=t("error.forbidden", g.lang),
                                       detail=t("error.forbidden_detail", g.lang, roles=roles)), 403
            g.page = name
            return view(*a, **kw)

        return wrapper

    return deco


def _safe_next(target: str | None) -> str:
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The log-in form; a successful log-in puts the user id in the session."""
    error = None
    nxt = _safe_next(request.values.get("next"))
    status = 200
    if request.method == "POST":
        username = (request.form.get("username") or "").strip()
        password = request.form.get("password") or ""
        error = t("login.failed", g.lang)
        status = 401
        if username and password:
            try:
                start_login_session(username, password, via="page")
                return redirect(nxt)
            except TooManyAttempts as e:
                error = t("login.locked", g.lang, seconds=e.extra.get("retry_after_s", 60))
                status = 429
            except Unauthorized:
                pass
    return render_template("login.html", error=error, next=nxt), status


@bp.post("/logout")
def logout():
    """End the session and go back to the log-in form."""
    end_login_session()
    return redirect(url_for("pages.login"))


@bp.post("/prefs/language")
def set_language():
    """Save the language preference (session, and the user's record when logged in)."""
    lang = request.form.get("lang")
    if lang not in LANGUAGES:
        abort(400)
    session["lang"] = lang
    user = getattr(g, "user", None)
    if user:
        with db_tx() as conn:
            conn.execute("UPDATE app_user SET language = %s WHERE id = %s", [lang, user["id"]])
    return redirect(_safe_next(request.form.get("next")))


# --- pages ---------------------------------------------------------------------------------------

@bp.get("/")
def index():
    """The home page; a duty officer's home is the station desk."""
    user = getattr(g, "user", None)
    if user is not None and user["role"] in DESK_HOME_ROLES:
        return redirect("/desk")
    return _index()


@page("index")
def _index():
    """Links to the maps the role may open, the data counts and their provenance; a chief's and the
    leadership's home: today's figures (reports_page.home)."""
    if g.user["role"] in REPORT_HOME_ROLES:
        from gisapp.web import reports_page

        return reports_page.home(g.user)
    with db_tx() as conn:
        counts = mapdata.layer_counts(conn)
        meta = mapdata.dataset_meta(conn)
    cards = [{"page": p, "title": key, "icon": icon, "desc": f"index.{p}_desc", "href": f"/map/{p}"}
             for p, key, icon in NAV if _allowed(g.user, p)]
    if g.user["role"] in DESK_NAV_ROLES:
        cards.insert(0, {"page": "desk", "title": "nav.desk", "icon": "fa-bell", "desc": "index.desk_desc",
                         "href": "/desk"})
    return render_template("index.html", counts=counts, meta=meta, cards=cards)


def _render_map(name: str, template: str, page_map: Any, **ctx: Any):
    rendered = page_map.composer.render()
    # Bootstrap and Font Awesome's CSS only on the pages whose side panel uses them
    return render_template(template, m=rendered, panel=page_map.panel, panel_assets=name in ("dispatch", "plan"), **ctx)


@bp.get("/map/data/<key>")
def map_data(key: str):
    """Features of a layer that a map page loads when it is first switched on (villages, units, ...).

    Any role that may open a map page may read them; a chief's units and heat map are their station's.
    """
    from flask import jsonify

    from layers.builders import LAZY_KEYS
    from layers.pages import lazy_data

    user = getattr(g, "user", None)
    if user is None:
        abort(401)
    if not any(_allowed(user, p) for p in ("coverage", "grids", "plan", "dispatch")):
        abort(403)
    if key not in LAZY_KEYS:
        abort(404)
    station = request.args.get("station", type=int)
    if key in ("units", "heatmap"):  # organisation-scoped: a chief's are their station's
        station = scope.only_organisation(user, station, "station")
    with db_tx() as conn:
        data = lazy_data(conn, settings(), g.lang, key, station_id=station)
    resp = jsonify(data)
    resp.mimetype = "application/geo+json" if key != "heatmap" else "application/json"
    return resp


@bp.get("/map/coverage")
@page("coverage")
def coverage():
    """Roads by best travel time, gaps, per-jurisdiction table, response radius on demand.

    ``?roads=geojson`` draws the roads as one embedded GeoJSON instead of vector tiles
    (small networks, and the benchmark's comparison).
    """
    from layers.pages import coverage_map

    roads = "geojson" if request.args.get("roads") == "geojson" else "tiles"
    with db_tx() as conn:
        pm = coverage_map(conn, settings(), g.lang, roads=roads, service_areas_endpoint=SERVICE_AREAS_ENDPOINT,
                          chief_station_id=g.user.get("station_id") if g.user["role"] in ORGANISATION_ROLES
                          else None)
        return _render_map("coverage", "coverage.html", pm)


@bp.get("/map/grids")
@page("grids")
def grids():
    """A station's grids; a chief sees only their own station, others choose one (?station=<id or code>)."""
    from layers.pages import grids_map

    with db_tx() as conn:
        stations = mapdata.stations_list(conn)
        if g.user["role"] in ORGANISATION_ROLES:  # a chief, a duty officer: their own organisation
            station_id = g.user.get("station_id")
            if station_id is None:
                return render_template("error.html", title=t("error.no_station", g.lang), detail=""), 403
            stations = [s for s in stations if s["id"] == station_id]
            if not stations:  # e.g. the accident section's duty officer: no station grids of its own
                return render_template("error.html", title=t("error.no_station", g.lang), detail=""), 403
        else:
            wanted = request.args.get("station")
            match = [s for s in stations if wanted and (str(s["id"]) == wanted or s["code"] == wanted)]
            station_id = match[0]["id"] if match else (stations[0]["id"] if stations else None)
        if station_id is None:
            return render_template("error.html", title=t("grids.none", g.lang), detail=""), 404
        station = mapdata.station_org(conn, station_id)
        try:  # the patrol window, measure and source the user chose (kept in the URL)
            window = measures.parse_window(request.args, settings())
            measure = measures.parse_measure(request.args.get("measure"))
            source = measures.parse_source(request.args.get("source"))
        except ValidationError as e:
            return render_template("error.html", title=e.message(g.lang), detail="", field=e.field), 400
        pm = grids_map(conn, settings(), g.lang, station_id, window=window, measure=measure, source=source)
        return _render_map("grids", "grids.html", pm, station=station, stations=stations)


@bp.get("/map/plan")
@page("plan")
def plan():
    """The planner's base map (jurisdictions, joint zones, grids); planning adds drafting tools."""
    from layers.pages import plan_map

    with db_tx() as conn:
        pm = plan_map(conn, settings(), g.lang)
        return _render_map("plan", "plan.html", pm, participation=_participation_changes(conn))


def _participation_changes(conn) -> list[dict]:
    """The dated participation changes of every station and squadron, newest first, with local dates
    (the table of plan_participation.html, issue 15)."""
    from zoneinfo import ZoneInfo

    from gisapp.dispatch.participation import list_versions, sync_flags

    tz = ZoneInfo(settings().local_timezone)
    sync_flags(conn)
    rows = []
    for o in list_versions(conn):
        prev = None
        for v in o["versions"]:
            if v["valid_from"] is not None and prev is not None:
                at = datetime.fromisoformat(v["valid_from"]).astimezone(tz)
                changes = []
                if v["takes_part_in_traffic"] != prev["takes_part_in_traffic"]:
                    changes.append("pp.joins" if v["takes_part_in_traffic"] else "pp.leaves")
                if v["merged"] != prev["merged"]:
                    changes.append("pp.merges" if v["merged"] else "pp.unmerges")
                rows.append({"at": at, "date": at.strftime("%Y-%m-%d"), "code": o["code"], "name": o["name"],
                             "name_en": o["name_en"], "kind": o["kind"], "changes": changes, "note": v["note"],
                             "future": at > datetime.now(tz)})
            prev = v
    return sorted(rows, key=lambda r: (-r["at"].timestamp(), r["kind"] != "station", r["code"]))


@bp.get("/map/dispatch")
@page("dispatch")
def dispatch():
    """The dispatcher's live map; the dispatch panel and script are included when present."""
    from layers.pages import dispatch_map

    with db_tx() as conn:
        pm = dispatch_map(conn, settings(), g.lang)
        return _render_map("dispatch", "dispatch.html", pm)


@bp.get("/desk")
@page("desk")
def desk():
    """The station desk: the legs of one organisation, live, with sign-off, feedback, closure with an
    outcome, hand-back and each leg's timeline (``web/static/js/desk.js``).

    A duty officer or chief works their own organisation (another one by ``?organisation_id=``
    answers 403); a dispatcher or admin names one with ``?organisation_id=`` (without it: a picker).
    """
    from layers.pages import tile_url
    from layers.style import style_config
    from layers.tiles import TILE_LAYERS

    asked = request.args.get("organisation_id", "").strip()
    if asked and not asked.isdigit():
        abort(400)
    asked_id = int(asked) if asked else None
    user = g.user
    if not scope.sees_all(user):
        own = user.get("station_id")
        if own is None:
            return render_template("error.html", title=t("error.no_station", g.lang), detail=""), 403
        if asked_id is not None and asked_id != own:
            return render_template("error.html", title=t("error.forbidden", g.lang),
                                   detail=t("desk.other_org", g.lang)), 403
        asked_id = own
    s = settings()
    with db_tx() as conn:
        if asked_id is None:
            orgs = mapdata.organisations_of_kinds(conn, DESK_ORG_KINDS)
            return render_template("desk.html", org=None, orgs=orgs, cfg=None)
        org = mapdata.station_org(conn, asked_id)
        if org is None:
            return render_template("error.html", title=t("desk.not_found", g.lang), detail=""), 404
        hq = mapdata.organisation_hq(conn, asked_id)
        versions = mapdata.data_versions(conn)
    name = (org["name_en"] or org["name"]) if g.lang == "en" else org["name"]
    cfg = {
        "lang": g.lang,
        "i18n": catalogue(g.lang, DESK_TEXT_PREFIXES),
        "organisation": {"id": org["id"], "code": org["code"], "name": name, "kind": org["kind"],
                         "hq": hq},
        "timezone": s.local_timezone,
        "sla_s": {"sign_off": s.sign_off_sla_s, "first_feedback": s.first_feedback_sla_s, "close": s.close_sla_s},
        "query": "" if not scope.sees_all(user) else f"organisation_id={org['id']}",
        "roads": tile_url("roads", versions, TILE_LAYERS["roads"].areas),
        "style": {"roads": style_config()["roads"]},
        "user": {"username": user["username"], "role": user["role"]},
    }
    return render_template("desk.html", org=dict(org, label=name), orgs=None, cfg=cfg)


# The i18n keys desk.js reads (gisapp.t): its own, the dispatch panel's statuses and clocks, severities.
DESK_TEXT_PREFIXES = ("desk.", "dp.leg.", "dp.role.", "dp.conn.", "severity.", "channel.", "role.", "err.status.")
