"""Serve the reports (issue 14) under /api/v1/reports/: SLA per organisation and month, overdue
legs, arrivals, outcomes, the 满天星 ranking and its explanations, trends, the hour x weekday
heat map, grids, the incidents behind a figure, and the XLSX / CSV exports (audited).

Roles: admin and leadership (every organisation), chief (their own; the county for comparison).
Routes only parse the request and call gisapp.reports inside one read transaction.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, Flask, Response, jsonify, request

from gisapp.core.audit import audit
from gisapp.core.errors import ValidationError
from gisapp.core.features import parse_id
from gisapp.reports import export, figures, ranking
from gisapp.reports.filters import parse_filters, parse_month
from gisapp.web.context import arg_int, db_tx, geojson, request_language, require_role, settings
from gisapp.web.openapi import document, param

bp = Blueprint("reports", __name__, url_prefix="/api/v1/reports")

READERS = ("leadership", "chief")  # and admin (require_role lets admin through)


def init_app(app: Flask) -> None:
    # a weights file that is malformed or does not sum to 1 stops the service here (RankingError)
    ranking.load_weights(app.extensions["gisapp.settings"])
    app.register_blueprint(bp)


def _filters(conn, user):
    figures.tune(conn)
    return parse_filters(conn, settings(), user, request.args)


def _month(f) -> str:
    raw = request.args.get("month")
    if raw:
        parse_month(raw, "month")
        return raw
    return f"{f.last_day.year:04d}-{f.last_day.month:02d}"


@bp.get("/sla")
def sla():
    user = require_role(*READERS)
    with db_tx() as conn:
        return jsonify(figures.sla_report(conn, settings(), _filters(conn, user)))


@bp.get("/overdue")
def overdue():
    user = require_role(*READERS)
    with db_tx() as conn:
        return jsonify(figures.overdue_report(conn, settings(), _filters(conn, user)))


@bp.get("/arrivals")
def arrivals():
    user = require_role(*READERS)
    with db_tx() as conn:
        return jsonify(figures.arrivals_report(conn, settings(), _filters(conn, user)))


@bp.get("/outcomes")
def outcomes():
    user = require_role(*READERS)
    with db_tx() as conn:
        return jsonify(figures.outcomes_report(conn, settings(), _filters(conn, user)))


def _weights():
    s = settings()
    return ranking.override(ranking.load_weights(s), request.args.get("weights"))


@bp.get("/ranking")
def ranking_board():
    user = require_role(*READERS)
    w = _weights()
    with db_tx() as conn:
        f = _filters(conn, user)
        return jsonify(ranking.ranking(conn, settings(), f, _month(f), w))


@bp.get("/ranking/<oid>")
def ranking_explain(oid: str):
    user = require_role(*READERS)
    oid_i = parse_id(oid, "organisation_id")
    w = _weights()
    with db_tx() as conn:
        f = _filters(conn, user)
        return jsonify(ranking.explain(conn, settings(), f, _month(f), w, oid_i))


@bp.get("/trends")
def trends():
    user = require_role(*READERS)
    months = arg_int("months", 12, 1, 60)
    with db_tx() as conn:
        return jsonify(figures.trends_report(conn, settings(), _filters(conn, user), months))


@bp.get("/heatmap")
def heatmap():
    user = require_role(*READERS)
    with db_tx() as conn:
        return jsonify(figures.heatmap_report(conn, settings(), _filters(conn, user)))


@bp.get("/grids")
def grids():
    user = require_role(*READERS)
    with db_tx() as conn:
        return geojson(figures.grids_report(conn, settings(), _filters(conn, user)))


@bp.get("/incidents")
def incidents():
    user = require_role(*READERS)
    limit = arg_int("limit", 50, 1, 1000)
    offset = arg_int("offset", 0, 0, 10_000_000)
    measure = request.args.get("measure") or "all"
    cell = {"weekday": arg_int("weekday", None, 1, 7), "hour": arg_int("hour", None, 0, 23),
            "grid": arg_int("grid", None, 1, 999_999_999)}
    with db_tx() as conn:
        return jsonify(figures.incidents_report(conn, settings(), _filters(conn, user), measure, limit, offset,
                                                **cell))


def _attachment(body: bytes, mimetype: str, name: str) -> Response:
    resp = Response(body, mimetype=mimetype)
    resp.headers["Content-Disposition"] = f"attachment; filename=\"{name}\"; filename*=UTF-8''{quote(name)}"
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _stem(f) -> str:
    return f"report-{f.first_day.isoformat()}-{f.last_day.isoformat()}" + (
        f"-org{f.organisation_id}" if f.organisation_id else "")


@bp.get("/export.xlsx")
def export_xlsx():
    user = require_role(*READERS)
    with db_tx() as conn:
        f = _filters(conn, user)
        body = export.xlsx(conn, settings(), f, request_language())
        audit(conn, user, "export", "reports", "xlsx", {"format": "xlsx", "period": [f.first_day, f.last_day],
                                                        **f.filters_json(), "bytes": len(body)})
    return _attachment(body, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", _stem(f) + ".xlsx")


@bp.get("/export.csv")
def export_csv():
    user = require_role(*READERS)
    table = request.args.get("table", "sla")
    if table not in export.TABLES:
        raise ValidationError(f"table must be one of {', '.join(export.TABLES)}", "table", key="err.one_of",
                              params={"options": list(export.TABLES)})
    with db_tx() as conn:
        f = _filters(conn, user)
        body = export.csv_bytes(conn, settings(), f, table, request_language())
        audit(conn, user, "export", "reports", table, {"format": "csv", "table": table,
                                                       "period": [f.first_day, f.last_day], **f.filters_json(),
                                                       "bytes": len(body)})
    return _attachment(body, "text/csv; charset=utf-8", f"{_stem(f)}-{table}.csv")


# --- OpenAPI -------------------------------------------------------------------------------------

_FILTERS = [
    param("month", {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}, "a local (Beijing) month, YYYY-MM"),
    param("from", {"type": "string", "format": "date"}, "first local day, YYYY-MM-DD (default: this month)"),
    param("to", {"type": "string", "format": "date"}, "last local day, inclusive (at most 5 years after from)"),
    param("organisation", {"type": "string"}, "organisation id or code (a chief: their own)"),
    param("channel", {"type": "string", "enum": ["110", "122"]}),
    param("type", {"type": "string"}, "incident type code of the dispatch rules"),
]
_RATE = {"type": ["number", "null"]}
_ROW = {"type": "object", "properties": {
    "organisation_id": {"type": ["integer", "null"]}, "code": {"type": ["string", "null"]},
    "name": {"type": "string"}, "name_en": {"type": ["string", "null"]}, "kind": {"type": "string"},
    "month": {"type": ["string", "null"]}, "legs": {"type": "integer"},
    **{f"{c}_{k}": ({"type": "integer"} if k != "rate" else _RATE)
       for c in ("sign_off", "first_feedback", "close") for k in ("met", "decided", "rate")},
    "overdue_now": {"type": "integer"}}}
_STAT = {"type": "object", "properties": {"key": {"type": "string"}, "label": {"type": "string"},
                                          "label_en": {"type": ["string", "null"]}, "n": {"type": "integer"},
                                          "mean_s": _RATE, "p50_s": _RATE, "p90_s": _RATE}}
_COUNT = {"type": "object", "properties": {"code": {"type": "string"}, "label": {"type": "string"},
                                           "label_en": {"type": "string"}, "n": {"type": "integer"}}}
_PART = {"type": "object", "properties": {"measure": {"type": "string"}, "label": {"type": "string"},
                                          "label_en": {"type": "string"}, "value": _RATE, "weight": {"type": "number"},
                                          "points": _RATE}}
_WEIGHTS = param("weights", {"type": "string"}, "override: measure:weight,... summing to 1 (else 400)")
_MONTH = param("month", {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}, "the ranked month (default: this one)")
_RANK_ROW = {"type": "object", "properties": {
    "organisation_id": {"type": "integer"}, "name": {"type": "string"}, "name_en": {"type": ["string", "null"]},
    "score": _RATE, "stars": _RATE, "rank": {"type": ["integer", "null"]},
    "rank_change": {"type": ["integer", "null"]}, "parts": {"type": "array", "items": _PART}}}

document("/api/v1/reports/sla", "get", "SLA rates per organisation and local month with counts, and the county's",
         tag="reports", params=_FILTERS, response={"type": "object", "required": ["rows", "county", "empty"],
                                                   "properties": {"period": {"type": "object"},
                                                                  "filters": {"type": "object"},
                                                                  "rows": {"type": "array", "items": _ROW},
                                                                  "county": _ROW, "empty": {"type": "boolean"}}})
document("/api/v1/reports/overdue", "get", "Legs of the period whose clock is overdue now", tag="reports",
         params=_FILTERS, response={"type": "object", "properties": {"rows": {"type": "array", "items": {
             "type": "object", "properties": {"leg_id": {"type": "integer"}, "incident_id": {"type": "integer"},
                                              "code": {"type": "string"}, "organisation_id": {"type": "integer"},
                                              "organisation": {"type": "string"},
                                              "clock": {"enum": ["sign_off", "first_feedback", "close"]},
                                              "due_at": {"type": "string", "format": "date-time"},
                                              "late_s": {"type": "number"}}}}}})
document("/api/v1/reports/arrivals", "get",
         "Arrival times (mean, p50, p90) by organisation, channel, type and urban / rural roads", tag="reports",
         params=_FILTERS, response={"type": "object", "properties": {
             k: {"type": "array", "items": _STAT} for k in ("by_organisation", "by_channel", "by_type", "by_area")}})
document("/api/v1/reports/outcomes", "get",
         "Stations' and the accident section's share of accidents, mediation rate, outcomes", tag="reports",
         params=_FILTERS, response={"type": "object", "properties": {
             "accident_incidents": {"type": "integer"}, "station_share": _RATE, "accident_section_share": _RATE,
             "mediation_rate": _RATE, "outcomes": {"type": "array", "items": _COUNT},
             "closed_without_dispatch": {"type": "array", "items": _COUNT}}})
document("/api/v1/reports/ranking", "get", "满天星: the stations' monthly scores, stars, rank and its change",
         tag="reports", params=[*_FILTERS[1:], _MONTH, _WEIGHTS], response={"type": "object", "properties": {
             "month": {"type": "string"}, "weights": {"type": "object"},
             "rows": {"type": "array", "items": _RANK_ROW}}})
document("/api/v1/reports/ranking/{id}", "get", "One station's score explained: its parts and the legs behind them",
         tag="reports", params=[{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}},
                                *_FILTERS[1:], _MONTH, _WEIGHTS],
         response={"type": "object", "properties": {"parts": {"type": "array", "items": _PART}}})
document("/api/v1/reports/trends", "get", "Monthly series of the last months (rates, arrival, incidents, mediation)",
         tag="reports", params=[*_FILTERS, param("months", {"type": "integer", "minimum": 1, "maximum": 60})],
         response={"type": "object", "properties": {"months": {"type": "array", "items": {"type": "string"}},
                                                    "series": {"type": "object"}}})
document("/api/v1/reports/heatmap", "get", "Incidents by local weekday (Monday 1) and hour", tag="reports",
         params=_FILTERS, response={"type": "object", "properties": {"cells": {"type": "array", "items": {
             "type": "array", "items": {"type": "integer"}}}}})
document("/api/v1/reports/grids", "get", "Patrol grids with the period's incidents and SLA misses (GeoJSON)",
         tag="reports", params=_FILTERS, response={"type": "object", "properties": {
             "type": {"const": "FeatureCollection"}, "features": {"type": "array"}}})
document("/api/v1/reports/incidents", "get", "The incidents behind a figure, newest first", tag="reports",
         params=[*_FILTERS, param("measure", {"type": "string"}, "all, sign_off_miss, first_feedback_miss, close_miss, any_miss, "
                                  "overdue, accident, mediated or outcome:<code>"),
                 param("weekday", {"type": "integer", "minimum": 1, "maximum": 7}, "a heat-map cell: ISO weekday"),
                 param("hour", {"type": "integer", "minimum": 0, "maximum": 23}, "a heat-map cell: local hour"),
                 param("grid", {"type": "integer", "minimum": 1, "maximum": 999999999}, "a grid of the choropleth (its id)"),
                 param("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                 param("offset", {"type": "integer", "minimum": 0})],
         response={"type": "object", "properties": {"total": {"type": "integer"}, "rows": {"type": "array"}}})
document("/api/v1/reports/export.xlsx", "get", "The report tables as an XLSX workbook (audited)", tag="reports",
         params=_FILTERS, response={"type": "string", "format": "binary"})
document("/api/v1/reports/export.csv", "get", "One report table as CSV, UTF-8 with BOM (audited)", tag="reports",
         params=[*_FILTERS, param("table", {"type": "string", "enum": list(export.TABLES)})],
         response={"type": "string"})
