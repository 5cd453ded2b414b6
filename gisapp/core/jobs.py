"""Background jobs (issue 15): a queue in PostgreSQL (table ``job``, migration 0130) and the runner
processes that work it.

- The web layer queues a job (:func:`enqueue`) inside the request's transaction and, once that is
  committed, asks for runners (:func:`ensure_runners`): it spawns ``gisapp jobs worker
  --exit-when-idle`` processes, never threads of the web worker, so a replay's CPU time never
  holds a gunicorn thread or the GIL of a web worker.
- A runner takes one of ``jobs_max_runners`` slots (a session advisory lock; no slot: it exits),
  claims the oldest queued job with ``SELECT ... FOR UPDATE SKIP LOCKED``, and runs the handler
  of its kind (the registry is passed in by the caller, which sits above the packages the
  handlers call: ``gisapp.jobkinds``). Progress and a heartbeat are written as the job advances,
  on a connection of their own; a cancelled job is seen at the next progress report and stops.
- The end is one statement: the result with status ``done``, or ``failed`` with the keyed reason
  (zh and en), or nothing when the job was cancelled meanwhile. The handler's own transaction is
  rolled back, so a failing job leaves nothing half-written.
- A running job whose heartbeat is older than ``jobs_stale_after_s`` lost its runner: the
  maintenance sweep (:func:`sweep_stale`) marks it failed.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from .config import ROOT
from .errors import Conflict, GisappError, NotFound
from .i18n import t

log = logging.getLogger("gisapp.jobs")

STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
_LOCK_NS = 15_0130          # advisory lock namespace of the runner slots (key 1; key 2 = slot)

Handler = Callable[[psycopg.Connection, Any, dict, Callable[[float, str], None]], dict]


class Cancelled(Exception):
    """Raised inside a job's progress report when the job was cancelled (or taken away)."""


# --- the queue ------------------------------------------------------------------------------------

def enqueue(conn: psycopg.Connection, kind: str, params: dict, user: dict) -> dict:
    """Queue a job (in the caller's transaction) and return its row."""
    return conn.execute(
        "INSERT INTO job (kind, params, created_by, organisation_id) VALUES (%s, %s, %s, %s) RETURNING *",
        [kind, Jsonb(params), (user or {}).get("username", "system"), (user or {}).get("station_id")]).fetchone()


def get(conn: psycopg.Connection, job_id: int, kind: str | None = None) -> dict:
    row = conn.execute("SELECT * FROM job WHERE id = %s AND (%s::text IS NULL OR kind = %s)",
                       [job_id, kind, kind]).fetchone()
    if row is None:
        raise NotFound(f"no job with id {job_id}", "id", key="err.job.not_found", params={"id": job_id})
    return row


def list_jobs(conn: psycopg.Connection, kind: str, limit: int = 50) -> list[dict]:
    """The newest jobs of a kind, without their results."""
    return conn.execute(
        "SELECT id, kind, params, status, progress, message, error_key, error, created_by, organisation_id, "
        "runner, created_at, started_at, finished_at, heartbeat, NULL::jsonb AS result "
        "FROM job WHERE kind = %s ORDER BY id DESC LIMIT %s", [kind, max(1, min(limit, 500))]).fetchall()


def cancel(conn: psycopg.Connection, job_id: int, kind: str | None = None) -> dict:
    """Cancel a queued or running job (a runner stops it at its next progress report); 409 when it
    has already ended."""
    row = get(conn, job_id, kind)
    out = conn.execute(
        "UPDATE job SET status = 'cancelled', finished_at = now(), message = 'cancelled' "
        "WHERE id = %s AND status IN ('queued', 'running') RETURNING *", [job_id]).fetchone()
    if out is None:
        raise Conflict(f"job {job_id} has already ended ({row['status']})", "status", key="err.job.ended",
                       params={"id": job_id, "status": row["status"]})
    return out


def counts(conn: psycopg.Connection) -> dict[str, int]:
    rows = conn.execute("SELECT status, count(*) AS n FROM job GROUP BY status").fetchall()
    return {r["status"]: r["n"] for r in rows}


def job_json(row: dict, lang: str = "zh", with_result: bool = True) -> dict:
    """A job as the API shows it: times in ISO, the error in the reader's language."""
    err = None
    if row.get("error_key"):
        e = row.get("error") or {}
        err = {"key": row["error_key"], "field": e.get("field"),
               "message": e.get("message_en" if lang == "en" else "message_zh") or e.get("message_en") or ""}
    out = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()
           if k not in ("error_key", "error", "result", "runner")}
    out["progress"] = round(float(row.get("progress") or 0.0), 4)
    out["error"] = err
    out["result"] = row.get("result") if with_result else None
    return out


def sweep_stale(conn: psycopg.Connection, stale_after_s: float) -> int:
    """Fail the running jobs whose runner stopped beating (it died); return how many."""
    zh = t("err.job.stale", "zh", seconds=int(stale_after_s))
    en = t("err.job.stale", "en", seconds=int(stale_after_s))
    rows = conn.execute(
        "UPDATE job SET status = 'failed', finished_at = now(), error_key = 'err.job.stale', "
        "error = jsonb_build_object('key', 'err.job.stale', 'field', NULL, 'message_zh', %s::text, "
        "'message_en', %s::text) "
        "WHERE status = 'running' AND coalesce(heartbeat, started_at) < now() - make_interval(secs => %s) "
        "RETURNING id", [zh, en, float(stale_after_s)]).fetchall()
    return len(rows)


# --- runners --------------------------------------------------------------------------------------

def runners(conn: psycopg.Connection) -> int:
    """How many runners hold a slot now (in this database)."""
    return conn.execute(
        "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objsubid = 2 "
        "AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        [_LOCK_NS]).fetchone()["n"]


_children: list[subprocess.Popen] = []
_spawn_lock = threading.Lock()


def _settings_env(settings) -> dict[str, str]:
    """The environment of a runner: this process's, the database URL and the settings that differ
    from their defaults (tests and embedded services pass overrides, not variables)."""
    from dataclasses import fields

    from .config import Settings

    env = dict(os.environ)
    env["GISAPP_DATABASE_URL"] = settings.database_url
    default = Settings()
    over = {}
    for f in fields(settings):
        v = getattr(settings, f.name)
        if f.name in ("secret_key", "caller_key", "caller_key_previous", "database_url") or v == getattr(default, f.name):
            continue
        if isinstance(v, (str, int, float, bool, list, tuple, dict)) or v is None:
            over[f.name] = list(v) if isinstance(v, tuple) else v
    env["GISAPP_JOBS_SETTINGS_JSON"] = json.dumps(over)
    return env


def runner_settings():
    """The settings of a runner process (``from_env`` and the overrides its parent passed)."""
    from dataclasses import fields

    from .config import Settings

    raw = os.environ.get("GISAPP_JOBS_SETTINGS_JSON")
    over = json.loads(raw) if raw else {}
    kinds = {f.name: f for f in fields(Settings)}
    default = Settings()
    for k, v in list(over.items()):
        if k not in kinds:
            over.pop(k)
        elif isinstance(getattr(default, k), tuple) and isinstance(v, list):
            over[k] = tuple(v)
    return Settings.from_env(over)


def ensure_runners(conn: psycopg.Connection, settings) -> int:
    """Spawn runner processes for the queued jobs, up to ``jobs_max_runners`` in all; return how many
    were started. ``conn`` must see the committed queue (call it after the request's commit)."""
    if not settings.jobs_spawn:
        return 0
    with _spawn_lock:
        for p in list(_children):        # reap the runners that have exited
            if p.poll() is not None:
                _children.remove(p)
        queued = conn.execute("SELECT count(*) AS n FROM job WHERE status = 'queued'").fetchone()["n"]
        if not queued:
            return 0
        live = max(runners(conn), sum(1 for p in _children if p.poll() is None))
        want = min(queued, max(settings.jobs_max_runners, 0) - live)
        logdir = ROOT / "var" / "log"
        logdir.mkdir(parents=True, exist_ok=True)
        env = _settings_env(settings)
        for _ in range(max(want, 0)):
            with open(logdir / "jobs.log", "ab") as out:
                _children.append(subprocess.Popen(
                    [sys.executable, "-m", "gisapp.cli", "jobs", "worker", "--exit-when-idle"],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, cwd=str(ROOT),
                    start_new_session=True))
        return max(want, 0)


def _fail_payload(e: BaseException) -> tuple[str, dict]:
    if isinstance(e, GisappError) and e.key:
        return e.key, {"key": e.key, "field": e.field, "message_zh": e.message("zh"), "message_en": e.message("en")}
    reason = f"{type(e).__name__}: {e}"[:500]
    return "err.job.crashed", {"key": "err.job.crashed", "field": None,
                               "message_zh": t("err.job.crashed", "zh", reason=reason),
                               "message_en": t("err.job.crashed", "en", reason=reason)}


class Runner:
    """One runner process's loop: take a slot, claim jobs one by one, run them, exit when idle."""

    def __init__(self, url: str, settings, handlers: dict[str, Handler], *, exit_when_idle: bool = True,
                 connect: Callable[..., psycopg.Connection] | None = None):
        from . import db

        self.url, self.settings, self.handlers = url, settings, handlers
        self.exit_when_idle = exit_when_idle
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._connect = connect or (lambda **kw: db.connect(url, **kw))
        self._current: int | None = None
        self._stop = threading.Event()
        self.done = 0

    def take_slot(self, conn: psycopg.Connection) -> int | None:
        for slot in range(max(self.settings.jobs_max_runners, 0)):
            if conn.execute("SELECT pg_try_advisory_lock(%s, %s) AS ok", [_LOCK_NS, slot]).fetchone()["ok"]:
                return slot
        return None

    def claim(self, conn: psycopg.Connection) -> dict | None:
        return conn.execute(
            """UPDATE job SET status = 'running', started_at = now(), heartbeat = now(), runner = %s,
                              message = 'started'
               WHERE id = (SELECT id FROM job WHERE status = 'queued' ORDER BY created_at, id
                           FOR UPDATE SKIP LOCKED LIMIT 1)
               RETURNING *""", [self.name]).fetchone()

    def _beat(self) -> None:
        with self._connect(autocommit=True) as conn:
            while not self._stop.wait(max(self.settings.jobs_heartbeat_s, 0.2)):
                jid = self._current
                if jid is not None:
                    conn.execute("UPDATE job SET heartbeat = now() WHERE id = %s AND status = 'running'", [jid])

    def run(self) -> int:
        """Work until idle (or forever); return the number of jobs ended. Exits at once without a slot."""
        with self._connect(autocommit=True) as lock_conn:
            slot = self.take_slot(lock_conn)
            if slot is None:
                log.info("jobs: no free runner slot (%s in use), exiting", self.settings.jobs_max_runners)
                return 0
            beat = threading.Thread(target=self._beat, name="gisapp-job-heartbeat", daemon=True)
            beat.start()
            idle_since = time.monotonic()
            try:
                with self._connect(autocommit=True) as qconn:
                    while True:
                        job = self.claim(qconn)
                        if job is None:
                            if self.exit_when_idle and time.monotonic() - idle_since >= self.settings.jobs_idle_exit_s:
                                return self.done
                            time.sleep(max(self.settings.jobs_poll_s, 0.05))
                            continue
                        self.run_job(qconn, job)
                        self.done += 1
                        idle_since = time.monotonic()
            finally:
                self._stop.set()

    def run_job(self, qconn: psycopg.Connection, job: dict) -> str:
        """Run one claimed job to its end; return the status it ended with."""
        jid = job["id"]
        self._current = jid
        last = [0.0]

        def progress(frac: float, message: str = "") -> None:
            frac = min(max(float(frac), 0.0), 1.0)
            now = time.monotonic()
            if now - last[0] < 0.2 and frac < 1.0:     # at most five writes a second
                alive = qconn.execute("SELECT status FROM job WHERE id = %s", [jid]).fetchone()
            else:
                last[0] = now
                alive = qconn.execute(
                    "UPDATE job SET progress = greatest(progress, %s), message = left(%s, 500), heartbeat = now() "
                    "WHERE id = %s AND status = 'running' RETURNING status", [frac, str(message), jid]).fetchone()
            if alive is None or alive["status"] != "running":
                raise Cancelled(jid)

        handler = self.handlers.get(job["kind"])
        try:
            if handler is None:
                raise GisappError(f"no handler for job kind {job['kind']!r}", "kind", 500, key="err.job.unknown_kind",
                                  params={"kind": job["kind"]})
            with self._connect() as work:           # the handler's transaction: rolled back at the end
                try:
                    result = handler(work, self.settings, job["params"] or {}, progress)
                finally:
                    work.rollback()
            row = qconn.execute(
                "UPDATE job SET status = 'done', progress = 1, result = %s, message = 'done', finished_at = now(), "
                "heartbeat = now() WHERE id = %s AND status = 'running' RETURNING status",
                [Jsonb(result), jid]).fetchone()
            return "done" if row else "cancelled"
        except Cancelled:
            return "cancelled"
        except Exception as e:  # noqa: BLE001 - any failure is stored with its reason
            key, payload = _fail_payload(e)
            if key == "err.job.crashed":
                log.exception("job %s (%s) failed", jid, job["kind"])
            qconn.execute(
                "UPDATE job SET status = 'failed', error_key = %s, error = %s, finished_at = now(), heartbeat = now() "
                "WHERE id = %s AND status = 'running'", [key, Jsonb(payload), jid])
            return "failed"
        finally:
            self._current = None
