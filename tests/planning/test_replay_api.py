"""Replays as background jobs over real HTTP on the demo (issue 15): POST 202 -> progress -> done
with the comparison; bad input answers a keyed 4xx with nothing queued; other roles 403; cancel;
two jobs at once in runner processes while the web answers; a dead runner's job failed by the
maintenance sweep; a job that fails inside the runner says why and writes no result."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from support.server import login_factory

from gisapp.core import jobs
from gisapp.maintenance import Maintenance

SCENARIO = {"name": "squadrons alone", "participation": {"kind": "squadrons_alone"}}


@pytest.fixture(scope="module")
def log_in(demo_live, demo_users):
    fn, made = login_factory(demo_live)
    yield fn
    for c in made:
        c.close()


def _period(conn, days: int, back: int = 0) -> dict:
    last = conn.execute("SELECT max(reported_at AT TIME ZONE 'Asia/Shanghai')::date AS d FROM incident").fetchone()["d"]
    last -= timedelta(days=back)
    return {"from": (last - timedelta(days=days - 1)).isoformat(), "to": last.isoformat()}


def _wait(c, jid: int, until, seen: list | None = None, limit_s: float = 300) -> dict:
    """Poll a job until ``until(job)``; the limit only keeps a broken run from hanging the suite."""
    deadline = time.monotonic() + limit_s
    while True:
        r = c.get(f"/api/v1/planning/replays/{jid}")
        assert r.status_code == 200, r.text
        job = r.json()["job"]
        if seen is not None:
            seen.append((job["status"], job["progress"]))
        if until(job):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.3)


def _count(conn) -> int:
    return conn.execute("SELECT count(*) AS n FROM job").fetchone()["n"]


def test_a_replay_runs_to_done_with_progress(log_in, demo_conn):
    c = log_in("planner")
    r = c.post("/api/v1/planning/replays", json={"period": _period(demo_conn, 7), "baseline": {"name": "baseline"},
                                                 "scenario": SCENARIO})
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    assert job["status"] == "queued" and job["progress"] == 0 and job["result"] is None and job["error"] is None
    assert job["created_by"] == "t_planner"
    seen: list = []
    done = _wait(c, job["id"], lambda j: j["status"] in jobs.FINISHED, seen)
    assert done["status"] == "done", done
    assert done["progress"] == 1 and done["finished_at"] and done["started_at"]
    progress = [p for s, p in seen]
    assert progress == sorted(progress)                      # it only moves forward
    res = done["result"]
    assert {"baseline", "scenario", "delta", "per_grid", "changed_owner", "workload"} <= set(res)
    assert set(res["delta"]["mean_arrival_s"]) >= {"value", "ci_low", "ci_high"}
    assert res["per_grid"]["type"] == "FeatureCollection" and res["per_grid"]["features"]
    assert res["baseline"]["incidents"] == res["scenario"]["incidents"] > 0
    # the list has it, without the result; the audit log has its creation
    listed = c.get("/api/v1/planning/replays").json()["jobs"]
    mine = [j for j in listed if j["id"] == job["id"]]
    assert mine and mine[0]["result"] is None and mine[0]["status"] == "done"
    assert demo_conn.execute("SELECT count(*) AS n FROM audit_log WHERE entity = 'replay_job' AND entity_id = %s "
                             "AND action = 'create' AND actor = 't_planner'", [str(job["id"])]).fetchone()["n"] == 1
    assert c.get(f"/api/v1/planning/replays/{job['id']}?result=false").json()["job"]["result"] is None


@pytest.mark.parametrize("body,status,field,key", [
    ({"scenario": SCENARIO}, 400, "period", None),
    ({"period": {"from": "2025-03-01", "to": "2025-02-01"}, "scenario": SCENARIO}, 400, "period.to",
     "err.replay.period_reversed"),
    ({"period": {"from": "2020-01-01", "to": "2024-06-01"}, "scenario": SCENARIO}, 400, "period.to",
     "err.replay.period_too_long"),
    ({"period": {"from": "1999-01-01", "to": "1999-01-31"}, "scenario": SCENARIO}, 422, "period",
     "err.replay.no_incidents"),
    ({"period": {"from": "2025-13-01", "to": "2025-02-01"}, "scenario": SCENARIO}, 400, "period.from", None),
    ("PERIOD", 400, "scenario", None),
    ("PERIOD", 404, "scenario.boundaries.plan_id", "err.replay.unknown_plan"),
    ("PERIOD", (404, 422), "scenario.participation.stations", "err.replay.unknown_org"),
])
def test_bad_input_is_refused_before_anything_is_queued(log_in, demo_conn, body, status, field, key):
    c = log_in("planner")
    if body == "PERIOD":
        period = _period(demo_conn, 7)
        body = {"period": period}
        if field == "scenario.boundaries.plan_id":
            body["scenario"] = {"name": "x", "boundaries": {"kind": "plan", "plan_id": 987654}}
        elif field == "scenario.participation.stations":
            body["scenario"] = {"name": "x", "participation": {"kind": "stations", "stations": ["NO-SUCH"]}}
    before = _count(demo_conn)
    r = c.post("/api/v1/planning/replays", json=body)
    assert r.status_code in (status if isinstance(status, tuple) else (status,)), r.text
    err = r.json()
    assert err["field"] == field, err
    if key:
        assert err["key"] == key
    assert err["message"]
    assert _count(demo_conn) == before


@pytest.mark.parametrize("role", ["viewer", "dispatcher", "chief", "leadership"])
def test_other_roles_are_refused(log_in, demo_conn, role):
    c = log_in(role)
    before = _count(demo_conn)
    r = c.post("/api/v1/planning/replays", json={"period": _period(demo_conn, 7), "scenario": SCENARIO})
    assert r.status_code == 403
    assert r.json()["key"] == "err.role_forbidden"
    assert c.get("/api/v1/planning/replays").status_code == 403
    assert _count(demo_conn) == before


def test_admin_may_replay_and_unknown_jobs_are_404(log_in):
    c = log_in("admin")
    assert c.get("/api/v1/planning/replays").status_code == 200
    r = c.get("/api/v1/planning/replays/99999999")
    assert r.status_code == 404 and r.json()["key"] == "err.job.not_found"


def test_cancel_a_running_job_and_two_at_once_while_the_web_answers(log_in, demo_conn):
    c = log_in("planner")
    viewer = log_in("viewer")
    # Two replays of 90 days: both run at once, in two runner processes.
    ids = []
    for back in (0, 120):
        r = c.post("/api/v1/planning/replays", json={"period": _period(demo_conn, 90, back), "scenario": SCENARIO})
        assert r.status_code == 202, r.text
        ids.append(r.json()["job"]["id"])
    deadline = time.monotonic() + 120
    answered = 0
    while True:   # while they run, the web answers other requests
        assert viewer.get("/healthz").status_code == 200
        assert viewer.get("/api/v1/plans").status_code == 200
        answered += 1
        rows = demo_conn.execute("SELECT status, runner FROM job WHERE id = ANY(%s)", [ids]).fetchall()
        if all(r["status"] == "running" for r in rows):
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.2)
    assert len({r["runner"] for r in rows}) == 2            # two processes, neither of them the web's
    assert all(not r["runner"].endswith(f":{__import__('os').getpid()}") for r in rows)
    assert answered >= 1
    # Cancel the first while it runs; it stays cancelled and gets no result.
    r = c.post(f"/api/v1/planning/replays/{ids[0]}/cancel")
    assert r.status_code == 200 and r.json()["job"]["status"] == "cancelled"
    assert demo_conn.execute("SELECT count(*) AS n FROM audit_log WHERE entity = 'replay_job' AND entity_id = %s "
                             "AND action = 'cancel'", [str(ids[0])]).fetchone()["n"] == 1
    r = c.post(f"/api/v1/planning/replays/{ids[0]}/cancel")
    assert r.status_code == 409 and r.json()["key"] == "err.job.ended"
    second = _wait(c, ids[1], lambda j: j["status"] in jobs.FINISHED)
    assert second["status"] == "done", second
    # the cancelled job's runner noticed (it has moved on or exited): still cancelled, no result
    first = c.get(f"/api/v1/planning/replays/{ids[0]}").json()["job"]
    assert first["status"] == "cancelled" and first["result"] is None


def test_a_queued_job_cancelled_never_runs(log_in, demo_conn, demo_app):
    c = log_in("planner")
    settings = demo_app.extensions["gisapp.settings"]
    row = demo_conn.execute(
        "INSERT INTO job (kind, params, created_by) VALUES ('replay', %s, 't_planner') RETURNING id",
        [__import__("psycopg").types.json.Jsonb({"period": _period(demo_conn, 7), "scenario": SCENARIO})]).fetchone()
    r = c.post(f"/api/v1/planning/replays/{row['id']}/cancel")
    assert r.status_code == 200
    assert jobs.ensure_runners(demo_conn, settings) == 0           # nothing is queued any more
    assert c.get(f"/api/v1/planning/replays/{row['id']}").json()["job"]["status"] == "cancelled"


def test_a_job_failing_in_the_runner_says_why(log_in, demo_conn, demo_app):
    """The plan was deleted between the request and the run: the runner's parse fails, keyed."""
    from psycopg.types.json import Jsonb

    c = log_in("planner")
    settings = demo_app.extensions["gisapp.settings"]
    row = demo_conn.execute(
        "INSERT INTO job (kind, params, created_by) VALUES ('replay', %s, 't_planner') RETURNING id",
        [Jsonb({"period": _period(demo_conn, 7), "baseline": {"name": "b"},
                "scenario": {"name": "gone", "boundaries": {"kind": "plan", "plan_id": 987654}}})]).fetchone()
    jobs.ensure_runners(demo_conn, settings)
    job = _wait(c, row["id"], lambda j: j["status"] in jobs.FINISHED)
    assert job["status"] == "failed" and job["result"] is None
    assert job["error"]["key"] == "err.replay.unknown_plan"
    assert "987654" in job["error"]["message"]
    en = c.get(f"/api/v1/planning/replays/{row['id']}?lang=en").json()["job"]
    assert en["error"]["message"] != job["error"]["message"]


def test_a_dead_runners_job_is_failed_by_the_maintenance_sweep(log_in, demo_conn, demo_app):
    c = log_in("planner")
    settings = demo_app.extensions["gisapp.settings"]
    row = demo_conn.execute(
        "INSERT INTO job (kind, params, created_by, status, started_at, heartbeat, runner) "
        "VALUES ('replay', '{}', 't_planner', 'running', now() - interval '1 hour', now() - interval '1 hour', "
        "'gone:1') RETURNING id").fetchone()
    live = demo_conn.execute(
        "INSERT INTO job (kind, params, created_by, status, started_at, heartbeat, runner) "
        "VALUES ('replay', '{}', 't_planner', 'running', now(), now(), 'alive:2') RETURNING id").fetchone()
    out = Maintenance(settings.database_url, settings).task()
    assert out["stale_jobs_failed"] >= 1
    job = c.get(f"/api/v1/planning/replays/{row['id']}").json()["job"]
    assert job["status"] == "failed" and job["error"]["key"] == "err.job.stale" and job["finished_at"]
    assert demo_conn.execute("SELECT status FROM job WHERE id = %s", [live["id"]]).fetchone()["status"] == "running"
    demo_conn.execute("UPDATE job SET status = 'cancelled', finished_at = now() WHERE id = %s", [live["id"]])


def test_a_plan_as_the_scenarios_boundaries(log_in, demo_conn):
    c = log_in("planner")
    draft = c.post("/api/v1/plans", json={"name": "replay me", "kind": "station"})
    assert draft.status_code == 201, draft.text
    r = c.post("/api/v1/planning/replays", json={
        "period": _period(demo_conn, 7),
        "scenario": {"name": "the draft", "boundaries": {"kind": "plan", "plan_id": draft.json()["id"]}}})
    assert r.status_code == 202, r.text
    job = _wait(c, r.json()["job"]["id"], lambda j: j["status"] in jobs.FINISHED)
    assert job["status"] == "done", job
    assert job["result"]["scenario"]["scenario"]["boundaries"]["kind"] == "plan"
