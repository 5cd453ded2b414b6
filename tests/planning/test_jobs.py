"""The job queue and its runner (gisapp.core.jobs), in-process on a database of their own (the
planning world's copy): claiming with SKIP LOCKED, the runner slots, a failing handler leaves
nothing half-written and stores its keyed reason, an unknown kind, the engine's absence reported
as a failed job, progress that only moves forward, cancellation seen at the next report."""

from __future__ import annotations

import sys

import pytest
from psycopg.types.json import Jsonb

from gisapp import jobkinds
from gisapp.core import db, jobs
from gisapp.core.config import Settings
from gisapp.core.errors import ValidationError


@pytest.fixture
def settings(plan_db):
    return Settings.from_env({"database_url": plan_db, "jobs_max_runners": 2, "jobs_idle_exit_s": 0.0,
                              "jobs_poll_s": 0.05, "jobs_heartbeat_s": 0.2, "jobs_spawn": False})


@pytest.fixture
def conn(plan_db):
    with db.connect(plan_db, autocommit=True) as c:
        c.execute("DELETE FROM job")
        yield c


def _queue(conn, kind="replay", params=None) -> int:
    return conn.execute("INSERT INTO job (kind, params, created_by) VALUES (%s, %s, 'test') RETURNING id",
                        [kind, Jsonb(params or {})]).fetchone()["id"]


def _row(conn, jid):
    return conn.execute("SELECT * FROM job WHERE id = %s", [jid]).fetchone()


def test_a_run_writes_progress_and_its_result_once(conn, settings):
    seen = []

    def handler(work, s, params, progress):
        for i in range(5):
            progress(i / 5, f"step {i}")
            seen.append(_row(conn, jid)["progress"])
        return {"answer": params["x"] * 2}

    jid = _queue(conn, "double", {"x": 21})
    n = jobs.Runner(settings.database_url, settings, {"double": handler}).run()
    assert n == 1
    row = _row(conn, jid)
    assert row["status"] == "done" and row["result"] == {"answer": 42} and row["progress"] == 1
    assert row["started_at"] <= row["finished_at"] and row["runner"]
    assert seen == sorted(seen)


def test_a_failing_handler_leaves_nothing_half_written(conn, settings):
    def handler(work, s, params, progress):
        work.execute("INSERT INTO job (kind, created_by) VALUES ('written', 'handler')")
        raise ValidationError("no incident in the period", "period", status=422, key="err.replay.no_incidents",
                              params={"from": "2020-01-01", "to": "2020-01-02"})

    jid = _queue(conn, "bad")
    other = _queue(conn, "nobody_handles_this")
    jobs.Runner(settings.database_url, settings, {"bad": handler}).run()
    row = _row(conn, jid)
    assert row["status"] == "failed" and row["result"] is None and row["error_key"] == "err.replay.no_incidents"
    assert "2020-01-01" in row["error"]["message_zh"] and "2020-01-01" in row["error"]["message_en"]
    assert row["error"]["field"] == "period"
    assert conn.execute("SELECT count(*) AS n FROM job WHERE kind = 'written'").fetchone()["n"] == 0
    assert _row(conn, other)["error_key"] == "err.job.unknown_kind"
    out = jobs.job_json(_row(conn, jid), "en")
    assert out["error"]["key"] == "err.replay.no_incidents" and out["error"]["message"] == row["error"]["message_en"]


def test_the_engines_absence_is_a_failed_job_that_says_so(conn, settings, monkeypatch):
    monkeypatch.setitem(sys.modules, "gisapp.replay", None)     # `from gisapp import replay` raises ImportError
    monkeypatch.delattr("gisapp.replay", raising=False)
    jid = _queue(conn, "replay", {"period": {"from": "2025-01-01", "to": "2025-01-02"}, "scenario": {}})
    jobs.Runner(settings.database_url, settings, jobkinds.HANDLERS).run()
    row = _row(conn, jid)
    assert row["status"] == "failed" and row["error_key"] == "err.job.engine_missing" and row["result"] is None
    assert "gisapp.replay" in row["error"]["message_en"]


def test_cancel_is_seen_at_the_next_progress_report(conn, settings):
    def handler(work, s, params, progress):
        progress(0.1, "started")
        jobs.cancel(conn, jid)                    # what POST .../cancel does, meanwhile
        progress(0.2, "next")
        raise AssertionError("not reached")

    jid = _queue(conn, "slow")
    jobs.Runner(settings.database_url, settings, {"slow": handler}).run()
    row = _row(conn, jid)
    assert row["status"] == "cancelled" and row["result"] is None and row["error_key"] is None


def test_claims_skip_locked_rows_and_slots_limit_the_runners(conn, settings, plan_db):
    a, b = _queue(conn, "x"), _queue(conn, "x")
    r = jobs.Runner(plan_db, settings, {})
    with db.connect(plan_db) as c1, db.connect(plan_db) as c2:
        first = r.claim(c1)                      # c1's transaction holds the row...
        second = r.claim(c2)                     # ...so c2 takes the next one instead of waiting
        assert {first["id"], second["id"]} == {a, b}
        assert r.claim(c2) is None
        c1.rollback()
        c2.rollback()
    with db.connect(plan_db, autocommit=True) as l1, db.connect(plan_db, autocommit=True) as l2, \
            db.connect(plan_db, autocommit=True) as l3:
        assert r.take_slot(l1) == 0 and r.take_slot(l2) == 1
        assert r.take_slot(l3) is None           # jobs_max_runners = 2
        assert jobs.runners(l3) == 2
        assert jobs.Runner(plan_db, settings, {}).run() == 0     # no slot: exits at once
