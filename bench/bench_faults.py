"""Benchmark the service through faults: PostgreSQL stopped for 5 s and for 35 s, a web worker killed.

Against a real gunicorn (the worker class of `make run`) on a throwaway PostgreSQL server of its
own (initdb'd under var/bench_faults, stopped and started by the benchmark; the project's
cluster is not touched), with the database of bench_live.py:
  - incidents posted at 10/s for 60 s through POST /api/v1/dispatch/incidents, each with an
    ``Idempotency-Key`` header (a dispatcher's bearer token); a client retries a post that was not
    acknowledged (503, a dropped connection, any other error) with the same key until it is
    (after the Retry-After the server asks for);
  - stream clients on /api/v1/stream?types=incident throughout, each resuming with
    ``Last-Event-ID`` whenever its stream ends (as a browser's EventSource does);
  - the faults, at fixed times after the load starts: PostgreSQL stopped (pg_ctl -m fast) at 5 s
    for 5 s, one gunicorn worker killed with SIGKILL at 13 s (gunicorn starts another), PostgreSQL
    stopped at 18 s for 35 s.

Figures: acknowledged (incidents posted and acknowledged), lost (acknowledged, not in the
database), duplicates (incidents stored twice for one key, by their description), recovery_s (from
PostgreSQL accepting connections again to the first acknowledged write; the worse of the two
outages), outage_5xx (answers 500-599 other than 503 over the run), stream_missing (acknowledged
incidents whose incident.created event some stream client never received).

Last line: faults: acknowledged=<n> lost=<a> duplicates=<b> recovery_s=<c> outage_5xx=<d> stream_missing=<e>

Environment: BENCH_FAULTS_DURATION_S (60), BENCH_FAULTS_RATE (10 incidents/s), BENCH_FAULTS_STREAMS (10),
GISAPP_WORKERS / GISAPP_THREADS (as `make run`).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import bench_live  # noqa: E402  (the database, the log-in)
from support.pgtemp import ThrowawayCluster  # noqa: E402

from gisapp.core import db  # noqa: E402

DURATION_S = float(os.environ.get("BENCH_FAULTS_DURATION_S", 60))
RATE = float(os.environ.get("BENCH_FAULTS_RATE", 10))
STREAMS = int(os.environ.get("BENCH_FAULTS_STREAMS", 10))
WORKERS = int(os.environ.get("GISAPP_WORKERS") or 2)
THREADS = int(os.environ.get("GISAPP_THREADS") or 256)
OUTAGES = ((5.0, 5.0), (18.0, 35.0))  # (start after the load began, length), seconds
KILL_AT = 13.0
SETTLE_S = 90.0  # after the load: time for the last retries and the streams to catch up
BOX = bench_live.BOX
VAR = ROOT / "var" / "bench_faults"


class Recorder:
    """Every answer of the posting clients, with the time it came."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked: dict[str, int] = {}  # key -> incident id
        self.ok_times: list[float] = []
        self.statuses: dict[str, int] = {}
        self.other_5xx: list[str] = []
        self.refused: list[str] = []  # 4xx other than a running duplicate (409): the post was given up

    def answer(self, status: str, t: float) -> None:
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1


def start_gunicorn(url: str, log_path: Path, token: str) -> tuple[subprocess.Popen, str]:
    """gunicorn as `make run` starts it, its log kept in ``log_path``; wait until every worker answers."""
    env = dict(os.environ, GISAPP_DATABASE_URL=url, GISAPP_SECRET_KEY="bench-secret")
    log = open(log_path, "wb")  # noqa: SIM115 - open for the server's life
    proc = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "gunicorn"), "--bind", "127.0.0.1:0", "--workers", str(WORKERS),
         "--threads", str(THREADS), "--worker-class", "gthread", "--timeout", "120", "--graceful-timeout", "3",
         "wsgi:app"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    base = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and base is None:
        m = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", log_path.read_text(errors="replace"))
        base = m.group(1) if m else None
        time.sleep(0.2)
    if base is None:
        proc.kill()
        raise SystemExit("gunicorn did not start; see " + str(log_path))
    pids: set[str] = set()
    while time.monotonic() < deadline and len(pids) < WORKERS:
        try:
            r = requests.get(base + "/api/v1/dispatch/catalogue", timeout=30,
                             headers={"Connection": "close", "Authorization": f"Bearer {token}"})
            pids.add(r.headers.get("X-Gisapp-Worker", ""))
        except requests.RequestException:
            time.sleep(0.5)
    return proc, base


def worker_pid(base: str, master: int, token: str) -> int | None:
    """The pid of a gunicorn worker (a child of ``master``) that answers a request."""
    for _ in range(20):
        try:
            pid = int(requests.get(base + "/api/v1/dispatch/catalogue", timeout=10,
                                   headers={"Authorization": f"Bearer {token}"}).headers["X-Gisapp-Worker"])
        except (requests.RequestException, KeyError, ValueError):
            time.sleep(0.2)
            continue
        try:
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == master:
            return pid
    return None


def post_incident(base: str, token: str, i: int, run: str, rec: Recorder, give_up_at: float) -> None:
    """Post one incident and retry it with the same key until it is acknowledged."""
    rnd = random.Random(i)
    key = f"faults-{run}-{i:05d}"
    body = {"channel": "110", "type": "dispute", "description": f"faults bench {key}",
            "location": {"type": "Point", "coordinates": [round(rnd.uniform(BOX[0], BOX[2]), 6),
                                                          round(rnd.uniform(BOX[1], BOX[3]), 6)]}}
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    while time.monotonic() < give_up_at:
        try:
            r = requests.post(base + "/api/v1/dispatch/incidents", json=body, headers=headers, timeout=30)
        except requests.RequestException as e:
            rec.answer(type(e).__name__, time.monotonic())
            time.sleep(0.5)
            continue
        now = time.monotonic()
        rec.answer(str(r.status_code), now)
        if r.status_code in (200, 201):
            with rec.lock:
                rec.acked[key] = r.json()["id"]
                rec.ok_times.append(now)
            return
        if r.status_code == 503:
            time.sleep(float(r.headers.get("Retry-After") or 1))
            continue
        if r.status_code >= 500:
            with rec.lock:
                rec.other_5xx.append(f"{r.status_code} {r.text[:200]}")
        elif r.status_code != 409:  # 409: the same key is still being written by an earlier try
            with rec.lock:
                rec.refused.append(f"{r.status_code} {r.text[:200]}")
            return
        time.sleep(0.5)


class StreamClient(threading.Thread):
    """One EventSource-like client: reads incident events, resumes with Last-Event-ID when the stream ends."""

    def __init__(self, base: str, cookie: str, stop: threading.Event):
        super().__init__(daemon=True)
        self.base, self.cookie, self.stop = base, cookie, stop
        self.seen: set[int] = set()
        self.last: int | None = None
        self.reconnects = 0
        self.refusals: dict[int, int] = {}

    def run(self) -> None:
        u = urlsplit(self.base)
        while not self.stop.is_set():
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
            try:
                headers = {"Accept": "text/event-stream", "Cookie": self.cookie}
                if self.last is not None:
                    headers["Last-Event-ID"] = str(self.last)
                conn.request("GET", "/api/v1/stream?types=incident", headers=headers)
                resp = conn.getresponse()
                if resp.status != 200:
                    self.refusals[resp.status] = self.refusals.get(resp.status, 0) + 1
                    resp.read()
                    self.stop.wait(float(resp.getheader("Retry-After") or 1))
                    continue
                eid = None
                while not self.stop.is_set():
                    line = resp.readline()
                    if not line:
                        break
                    if line.startswith(b"id: "):
                        eid = int(line[4:])
                    elif line.startswith(b"data: ") and eid is not None:
                        msg = json.loads(line[6:])
                        if msg["type"] == "incident.created":
                            self.seen.add(msg["data"]["incident"]["id"])
                        self.last, eid = eid, None
            except (OSError, http.client.HTTPException, ValueError):
                self.stop.wait(0.5)
            finally:
                conn.close()
            self.reconnects += 1


def main() -> None:
    VAR.mkdir(parents=True, exist_ok=True)
    print(f"bench-faults: {RATE:g} incidents/s with idempotency keys for {DURATION_S:g} s, {STREAMS} stream "
          f"clients; PostgreSQL stopped at {OUTAGES[0][0]:g} s for {OUTAGES[0][1]:g} s and at {OUTAGES[1][0]:g} s "
          f"for {OUTAGES[1][1]:g} s, a worker killed at {KILL_AT:g} s; gunicorn gthread {WORKERS} workers x "
          f"{THREADS} threads", flush=True)
    shutil.rmtree(VAR / "cluster", ignore_errors=True)
    cluster = ThrowawayCluster(VAR / "cluster")
    proc = None
    try:
        cluster.start()
        os.environ["GISAPP_DATABASE_URL"] = cluster.url()  # bench_live.make_database makes its database there
        url = bench_live.make_database()
        with db.connect(url) as conn:
            from gisapp.core.accounts import create_token

            uid = conn.execute("SELECT id FROM app_user WHERE username = 'b_dispatcher'").fetchone()["id"]
            token = create_token(conn, uid, "bench-faults")["token"]
            conn.commit()
        proc, base = start_gunicorn(url, VAR / "gunicorn.log", token)
        viewer = bench_live.login(base, "b_viewer")
        cookie = "; ".join(f"{c.name}={c.value}" for c in viewer.cookies)
        run = f"{int(time.time())}"

        stop_streams = threading.Event()
        streams = [StreamClient(base, cookie, stop_streams) for _ in range(STREAMS)]
        for s in streams:
            s.start()
        time.sleep(2)
        rec = Recorder()
        t0 = time.monotonic()
        give_up_at = t0 + DURATION_S + SETTLE_S

        def load() -> None:
            posters = []
            for i in range(int(DURATION_S * RATE)):
                delay = t0 + i / RATE - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                th = threading.Thread(target=post_incident, args=(base, token, i, run, rec, give_up_at), daemon=True)
                th.start()
                posters.append(th)
            for th in posters:
                th.join()

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        events = sorted([(start, "stop", length) for start, length in OUTAGES] + [(KILL_AT, "kill", 0.0)])
        recoveries: list[float] = []
        for at, what, length in events:
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            if what == "kill":
                pid = worker_pid(base, proc.pid, token)
                if pid is None:
                    print("warning: found no worker to kill", flush=True)
                else:
                    os.kill(pid, signal.SIGKILL)
                    print(f"[{time.monotonic() - t0:5.1f} s] killed worker {pid}", flush=True)
                continue
            cluster.stop()
            down = time.monotonic()
            print(f"[{down - t0:5.1f} s] PostgreSQL stopped for {length:g} s", flush=True)
            time.sleep(max(0.0, down + length - time.monotonic()))
            cluster.start(wait=False)
            ready = cluster.wait_ready(every_s=0.01)
            print(f"[{ready - t0:5.1f} s] PostgreSQL accepts connections again", flush=True)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with rec.lock:
                    after = [t for t in rec.ok_times if t >= ready]
                if after:
                    recoveries.append(min(after) - ready)
                    print(f"[{min(after) - t0:5.1f} s] first acknowledged write, {recoveries[-1]:.2f} s after",
                          flush=True)
                    break
                time.sleep(0.05)
            else:
                recoveries.append(float("inf"))
        loader.join()
        print(f"[{time.monotonic() - t0:5.1f} s] every post answered; waiting for the streams", flush=True)
        acked_ids = set(rec.acked.values())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(acked_ids - s.seen for s in streams):
            time.sleep(0.5)
        stop_streams.set()

        with db.connect(url) as conn:
            stored = {r["id"] for r in conn.execute("SELECT id FROM incident WHERE id = ANY(%s)", [list(acked_ids)])}
            dup = conn.execute(
                "SELECT coalesce(sum(n - 1), 0) AS d FROM (SELECT count(*) AS n FROM incident "
                "WHERE description LIKE %s GROUP BY description) x", [f"faults bench faults-{run}-%"]).fetchone()["d"]
            unkeyed = conn.execute("SELECT count(*) AS n FROM incident WHERE description LIKE %s "
                                   "AND idempotency_key IS NULL", [f"faults bench faults-{run}-%"]).fetchone()["n"]
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        cluster.destroy()

    lost = len(acked_ids - stored)
    missing_pairs = sum(len(acked_ids - s.seen) for s in streams)
    stream_missing = len({i for s in streams for i in acked_ids - s.seen})
    posted = int(DURATION_S * RATE)
    outage_5xx = len(rec.other_5xx)
    recovery = max(recoveries) if recoveries else float("nan")
    print(f"posted {posted}, acknowledged {len(rec.acked)}, given up {len(rec.refused)}, never answered "
          f"{posted - len(rec.acked) - len(rec.refused)}; stored without key {unkeyed}")
    print("answers: " + ", ".join(f"{k} {v}" for k, v in sorted(rec.statuses.items())))
    for why in sorted(set(rec.other_5xx + rec.refused))[:5]:
        print("  error:", why)
    print("recovery after each outage (s): " + ", ".join(f"{r:.2f}" for r in recoveries))
    print(f"streams: {STREAMS} clients, {sum(s.reconnects for s in streams)} reconnects, refusals "
          f"{sum(sum(s.refusals.values()) for s in streams)}, (client, incident) pairs missing {missing_pairs}")
    print(f"faults: acknowledged={len(rec.acked)} lost={lost} duplicates={dup} recovery_s={recovery:.2f} "
          f"outage_5xx={outage_5xx} stream_missing={stream_missing}")


if __name__ == "__main__":
    main()
