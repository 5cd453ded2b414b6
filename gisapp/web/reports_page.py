"""The report pages (issue 14): ``/reports`` (filters, tables, charts, the 满天星 ranking, the grid
choropleth, the incidents behind every figure, XLSX / CSV downloads) and ``/reports/print?month=``
(a print-ready A4 monthly report); and the home page of a station chief and the leadership
(today's figures instead of layer counts).

The pages only render a shell and a config; ``web/static/js/reports.js`` (and ``home.js``) draw
everything from the reports API (``/api/v1/reports/*``, ``gisapp.web`` reports API) with Apache
ECharts and Leaflet served from ``web/static/vendor``. Roles: admin and leadership (every
organisation), a chief (their own station; the county beside it for comparison).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, g, render_template, request

from gisapp.core import scope
from gisapp.core.i18n import catalogue, t
from gisapp.dispatch.rules import CHANNELS, load_rules
from gisapp.dispatch.today import today_figures
from gisapp.web.context import db_tx, settings
from gisapp.web.pages import page
from layers import data as mapdata

bp = Blueprint("reports_page", __name__)

# Organisations a report may be filtered to (the legs' owners).
REPORT_ORG_KINDS = ("station", "squadron", "accident_section")
# The brief's figures, drawn beside the measured ones (targets of the bureau's programme).
BRIEF_TARGETS = {"sign_off_rate": 0.95, "first_feedback_rate": 0.97, "close_rate": 0.998,
                 "station_share": 0.45, "mediation_rate": 0.84}
# i18n keys the scripts read (gisapp.t)
TEXT_PREFIXES = ("rp.", "home.", "channel.", "dp.status.", "org.")
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def init_app(app) -> None:
    app.register_blueprint(bp)


def _now_local() -> datetime:
    return datetime.now(UTC).astimezone(ZoneInfo(settings().local_timezone))


def _org_label(org: dict | None, lang: str) -> str:
    if not org:
        return t("rp.county", lang)
    return (org.get("name_en") or org["name"]) if lang == "en" else org["name"]


def page_config(conn, lang: str, user: dict, mode: str) -> dict[str, Any]:
    """What reports.js / home.js need: texts, the organisations the user may pick, the catalogue's
    channels and types, the current Beijing month and day, the brief's targets."""
    s = settings()
    now = _now_local()
    orgs = mapdata.organisations_of_kinds(conn, REPORT_ORG_KINDS)
    own = None
    if not scope.sees_all(user):
        own_id = user.get("station_id")
        orgs = [o for o in orgs if o["id"] == own_id]
        own = orgs[0]["id"] if orgs else None
    rules = load_rules(s)
    return {
        "mode": mode,
        "lang": lang,
        "i18n": catalogue(lang, TEXT_PREFIXES),
        "timezone": s.local_timezone,
        "role": user["role"],
        "own_organisation": own,
        "organisations": [{"id": o["id"], "code": o["code"], "name": _org_label(o, lang), "kind": o["kind"]}
                          for o in orgs],
        "channels": list(CHANNELS),
        "types": [{"code": ty.code, "name": ty.en if lang == "en" else ty.zh, "category": ty.category}
                  for ty in rules.types.values()],
        "month": now.strftime("%Y-%m"),
        "today": now.strftime("%Y-%m-%d"),
        "targets": BRIEF_TARGETS,
        "api": "/api/v1/reports",
    }


@bp.get("/reports")
@page("reports")
def reports():
    """The reports page: filters, SLA table, arrivals, outcomes, ranking, trends, heat map, grid map."""
    with db_tx() as conn:
        cfg = page_config(conn, g.lang, g.user, "page")
    own = next((o for o in cfg["organisations"] if o["id"] == cfg["own_organisation"]), None)
    return render_template("reports.html", cfg=cfg, own=own)


@bp.get("/reports/print")
@page("reports")
def reports_print():
    """The monthly report for printing or saving as PDF (A4): ``?month=YYYY-MM`` (default this month),
    ``organisation`` (id; a chief's is their own station)."""
    month = (request.args.get("month") or "").strip() or _now_local().strftime("%Y-%m")
    if not _MONTH.match(month):
        return render_template("error.html", title=t("rp.bad_month", g.lang), detail=month[:20]), 400
    asked = (request.args.get("organisation") or "").strip()
    if asked and not asked.isdigit():
        return render_template("error.html", title=t("rp.bad_org", g.lang), detail=asked[:40]), 400
    with db_tx() as conn:
        cfg = page_config(conn, g.lang, g.user, "print")
        org_id = cfg["own_organisation"] if not scope.sees_all(g.user) else (int(asked) if asked else None)
        if asked and not scope.sees_all(g.user) and int(asked) != org_id:
            return render_template("error.html", title=t("error.forbidden", g.lang),
                                   detail=t("rp.outside_scope", g.lang)), 403
        org = mapdata.station_org(conn, org_id) if org_id is not None else None
        if org_id is not None and org is None:
            return render_template("error.html", title=t("rp.bad_org", g.lang), detail=asked[:40]), 404
    cfg["month"] = month
    cfg["print_organisation"] = org_id
    generated = _now_local().strftime("%Y-%m-%d %H:%M")
    return render_template("reports_print.html", cfg=cfg, month=month, org_label=_org_label(org, g.lang),
                           generated=generated)


def home(user: dict):
    """The home page of a chief (their station) and of the leadership (the county): today's figures,
    the month's rates and the ranking position (home.js, from the reports API), links to the reports
    and the desk."""
    s = settings()
    org_id = None if scope.sees_all(user) else user.get("station_id")
    with db_tx() as conn:
        figures = today_figures(conn, s, org_id)
        org = mapdata.station_org(conn, org_id) if org_id is not None else None
        cfg = page_config(conn, g.lang, user, "home")
    return render_template("home_reports.html", figures=figures, org_label=_org_label(org, g.lang), cfg=cfg,
                           desk=user["role"] == "chief" and org_id is not None)
