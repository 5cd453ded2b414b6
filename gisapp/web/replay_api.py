"""Serve replays (推演, issue 15) under /api/v1/planning/replays as background jobs.

POST checks the request with the engine's parsers (keyed 4xx before anything is queued), queues
a ``replay`` job (gisapp.core.jobs) in the same transaction as its audit row, and, once that is
committed, asks for runner processes; the job's progress, result (the comparison of the baseline
and the scenario) or keyed failure is read with GET. Planner and admin roles.
"""

from __future__ import annotations

import logging

import psycopg
from flask import Blueprint, jsonify, request

from gisapp.core import jobs, scope
from gisapp.core.audit import audit
from gisapp.core.errors import NotFound
from gisapp.core.features import parse_id
from gisapp.jobkinds import REPLAY, replay_params
from gisapp.web.context import db_tx, json_object, request_language, require_role, settings
from gisapp.web.openapi import ID_PARAM, document, param

log = logging.getLogger("gisapp.jobs")
bp = Blueprint("replay_api", __name__, url_prefix="/api/v1/planning/replays")

_ROLES = ("planner",)      # and admin (require_role lets admin through)
_TAG = "planning"


def _visible(user: dict, row: dict) -> dict:
    if row.get("organisation_id") is not None and not scope.may_see(user, row["organisation_id"]):
        raise NotFound(f"no job with id {row['id']}", "id", key="err.job.not_found", params={"id": row["id"]})
    return row


@bp.post("")
def create_replay():
    user = require_role(*_ROLES)
    body = json_object()
    with db_tx() as conn:
        params = replay_params(conn, body)       # keyed 4xx: nothing is queued
        row = jobs.enqueue(conn, REPLAY, params, user)
        audit(conn, user, "create", "replay_job", row["id"], {"period": params["period"], "names": params["names"]})
    try:
        with db_tx() as conn:                     # after the commit: runners see the job
            jobs.ensure_runners(conn, settings())
    except (OSError, psycopg.Error):              # queued all the same: the maintenance sweep starts runners
        log.exception("replay job %s: could not start a runner now", row["id"])
    resp = jsonify({"job": jobs.job_json(row, request_language())})
    resp.status_code = 202
    return resp


_scenario = {"type": "object", "description": "a replay scenario: boundaries, participation, roster", "properties": {
    "name": {"type": "string"},
    "boundaries": {"type": "object", "properties": {"kind": {"enum": ["in_force", "at", "plan"]},
                                                    "date": {"type": "string", "format": "date"},
                                                    "plan_id": {"type": "integer"}}},
    "participation": {"type": "object", "properties": {
        "kind": {"enum": ["recorded", "squadrons_alone", "all_stations", "stations"]},
        "stations": {"type": "array", "items": {"type": "string"}}}},
    "roster": {"type": "object", "properties": {"kind": {"enum": ["recorded", "posts"]},
                                                "proposal_id": {"type": "integer"},
                                                "cars_scale": {"type": "number", "minimum": 0.5, "maximum": 2.0}}}}}
_job = {"type": "object", "properties": {"job": {"type": "object"}}}
document("/api/v1/planning/replays", "post",
         "Queue a replay of a period's recorded incidents under a baseline and a scenario (a background job)",
         tag=_TAG, status="202", response=_job, body={
             "type": "object", "required": ["period", "scenario"], "properties": {
                 "period": {"type": "object", "required": ["from", "to"], "properties": {
                     "from": {"type": "string", "format": "date"}, "to": {"type": "string", "format": "date"}},
                     "description": "local (Asia/Shanghai) dates, inclusive; at most 3 years"},
                 "baseline": _scenario, "scenario": _scenario}})


@bp.get("")
def list_replays():
    user = require_role(*_ROLES)
    lang = request_language()
    with db_tx() as conn:
        rows = [r for r in jobs.list_jobs(conn, REPLAY, 50)
                if r.get("organisation_id") is None or scope.may_see(user, r["organisation_id"])]
        last = conn.execute("SELECT (max(reported_at) AT TIME ZONE %s)::date AS d FROM incident",
                            [settings().local_timezone]).fetchone()["d"]
    return jsonify({"jobs": [jobs.job_json(r, lang, with_result=False) for r in rows],
                    "last_incident_date": last.isoformat() if last else None})


document("/api/v1/planning/replays", "get",
         "The newest replay jobs (without their results) and the local date of the last recorded incident", tag=_TAG)


@bp.get("/<jid>")
def get_replay(jid: str):
    user = require_role(*_ROLES)
    with db_tx() as conn:
        row = _visible(user, jobs.get(conn, parse_id(jid), REPLAY))
    return jsonify({"job": jobs.job_json(row, request_language(), with_result=request.args.get(
        "result", "true").lower() not in ("0", "false"))})


document("/api/v1/planning/replays/{id}", "get",
         "A replay job: status, progress, its keyed error, and its result (the comparison) once done", tag=_TAG,
         params=[ID_PARAM, param("result", {"type": "boolean"}, "include the result (default true)")], response=_job)


@bp.post("/<jid>/cancel")
def cancel_replay(jid: str):
    user = require_role(*_ROLES)
    j = parse_id(jid)
    with db_tx() as conn:
        _visible(user, jobs.get(conn, j, REPLAY))
        row = jobs.cancel(conn, j, REPLAY)
        audit(conn, user, "cancel", "replay_job", j, {})
    return jsonify({"job": jobs.job_json(row, request_language(), with_result=False)})


document("/api/v1/planning/replays/{id}/cancel", "post", "Cancel a queued or running replay", tag=_TAG,
         params=[ID_PARAM], response=_job)


def init_app(app) -> None:
    app.register_blueprint(bp)
