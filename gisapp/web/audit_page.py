"""The audit log for admins: the page ``/audit`` (filters, paging, CSV export ``/audit.csv``) and
``GET /api/v1/audit`` with the same filters; and the client of every request for the log.

Filters (query parameters, page and API alike): ``since``, ``until`` (ISO times; without a zone
they are local times, ``local_timezone``), ``actor``, ``action``, ``entity``, ``entity_id``, ``q``
(text anywhere in the row), ``limit``, ``offset``; ``format=csv`` for CSV (UTF-8 with BOM).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, g, jsonify, redirect, render_template, request, url_for

from gisapp.core.audit import audit_choices, audit_csv, local_time, query_audit, request_client
from gisapp.core.errors import ValidationError
from gisapp.core.i18n import t

from .context import arg_choice, arg_int, client_label, db_tx, only_params, require_role, settings

bp = Blueprint("audit_page", __name__)

FILTERS = ("since", "until", "actor", "action", "entity", "entity_id", "q")
PARAMS = (*FILTERS, "limit", "offset", "format", "lang")
CSV_MAX_ROWS = 100_000
PAGE_SIZE = 50


def init_app(app) -> None:
    app.register_blueprint(bp)

    @app.before_request
    def _name_the_client() -> None:
        request_client.set(client_label())


def _time(name: str) -> datetime | None:
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None
    try:
        v = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError("must be an ISO time such as 2026-01-31T08:00 (local) or with a zone",
                              name, key="err.not_time") from None
    return v if v.tzinfo else v.replace(tzinfo=ZoneInfo(settings().local_timezone))


def filters_from_request() -> dict:
    only_params(*PARAMS)
    out: dict = {"since": _time("since"), "until": _time("until")}
    for key in ("actor", "action", "entity", "entity_id", "q"):
        raw = (request.args.get(key) or "").strip()
        if len(raw) > 200:
            raise ValidationError("at most 200 characters", key, key="err.too_long", params={"limit": 200})
        out[key] = raw or None
    return out


def _csv(filters: dict, lang: str) -> Response:
    with db_tx() as conn:
        res = query_audit(conn, filters, CSV_MAX_ROWS, 0)
    header = [t(f"audit.col.{c}", lang) for c in ("id", "at", "actor", "action", "entity", "entity_id",
                                                  "client", "detail")]
    body = audit_csv(res["rows"], settings().local_timezone, header)
    stamp = datetime.now(ZoneInfo(settings().local_timezone)).strftime("%Y%m%d-%H%M%S")
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="audit-{stamp}.csv"', "Cache-Control": "no-store"})


@bp.get("/api/v1/audit")
def api_audit():
    """The audit log (admin), newest first; ``X-Total-Count`` is the number of matching rows."""
    require_role("admin")
    filters = filters_from_request()
    if arg_choice("format", ("json", "csv"), "json") == "csv":
        return _csv(filters, "en")
    limit = arg_int("limit", 100, 1, 10000)
    offset = arg_int("offset", 0, 0, 10**9)
    with db_tx() as conn:
        res = query_audit(conn, filters, limit, offset)
    resp = jsonify(res["rows"])
    resp.headers["X-Total-Count"] = str(res["total"])
    return resp


@bp.get("/audit")
@bp.get("/audit.csv")
def audit_page():
    """Who did what, when (local time) and from where; admins only."""
    user = getattr(g, "user", None)
    if user is None:
        return redirect(url_for("pages.login", next=request.full_path.rstrip("?")))
    if user["role"] != "admin":
        return render_template("error.html", title=t("error.forbidden", g.lang),
                               detail=t("error.forbidden_detail", g.lang, roles=t("role.admin", g.lang))), 403
    g.page = "audit"
    filters = filters_from_request()
    if request.path.endswith(".csv") or request.args.get("format") == "csv":
        return _csv(filters, g.lang)
    offset = arg_int("offset", 0, 0, 10**9)
    limit = arg_int("limit", PAGE_SIZE, 1, 500)
    with db_tx() as conn:
        res = query_audit(conn, filters, limit, offset)
        choices = audit_choices(conn)
    tz = settings().local_timezone
    for r in res["rows"]:
        r["local_at"] = local_time(r["at"], tz)
    args = {k: v for k, v in request.args.items() if k in FILTERS and v}
    return render_template("audit.html", res=res, choices=choices, args=args, tz=tz,
                           prev_offset=max(0, offset - limit) if offset > 0 else None,
                           next_offset=offset + limit if offset + limit < res["total"] else None)
